//! `send_msg`: the checks of SPEC §4.4 in their order, then one atomic insert.

use sixin_proto::content::{self, parse_recall_target};
use sixin_proto::{KeyHitInfos, SendResult};

use super::{relations, DomainError, Result, Service};
use crate::store::{Group, Insert, NewMessage, Peer, SendCheck, SendReads, StoreError, User};

/// A parsed `send_msg` request (check 1, parsing, is done by the HTTP layer).
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub sender_uid: u64,
    pub receiver_id: u64,
    pub receiver_type: u64,
    pub msg_type: u64,
    pub content: String,
    pub dev_id: String,
    pub new_face_version: u8,
    /// `msg_source` derived from `mobi_app`.
    pub msg_source: u32,
    /// Mentioned members (fan groups); `None` or empty: nobody.
    pub at_uids: Option<Vec<u64>>,
}

/// The message a send stores (`content` as stored: a recall's is its target's key).
fn new_message(
    sender: u64,
    req: &SendRequest,
    msg_type: u32,
    content: String,
    manual: bool,
) -> NewMessage {
    NewMessage {
        sender_uid: sender,
        receiver_type: req.receiver_type as u8,
        receiver_id: req.receiver_id,
        msg_type,
        content,
        at_uids: None,
        notify_code: String::new(),
        new_face_version: req.new_face_version,
        msg_source: req.msg_source,
        visible_to: None,
        dev_id: req.dev_id.clone(),
        manual,
        push: false,
        official: false,
    }
}

/// An insert's own refusals, in the checks' terms.
fn insert_refusal(e: StoreError) -> DomainError {
    match e {
        // Someone recalled it between the check and the write.
        StoreError::Stale => DomainError::AlreadyRecalled,
        // Another send won the one message allowed.
        StoreError::Conflict => DomainError::OneMessageLimit,
        // Check 7: a rate counter counted with the insert went over its limit.
        StoreError::Limited(k) => relations::rate_limit_error(k),
        e => e.into(),
    }
}

/// `mobi_app` → `msg_source` (SPEC §1).
pub fn msg_source_of(mobi_app: Option<&str>) -> u32 {
    match mobi_app.map(str::trim) {
        Some("android") => 2,
        Some("iphone") | Some("ipad") => 1,
        Some("h5") => 3,
        Some("pc") => 4,
        _ => 7,
    }
}

/// `host` matches a pattern like `*.hdslb.com` (any subdomain, or the domain itself) or an
/// exact host name.
fn host_allowed(host: &str, patterns: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(base) => host == base || host.ends_with(&format!(".{base}")),
            None => host == p,
        }
    })
}

/// Content that passed check 4.
enum Checked {
    Text(String),
    Image,
    /// A recall, with the key of the message it takes back.
    Recall(u64),
}

/// Where a message goes, once check 3 has found it (a user, for a recall, with what the send
/// read about them).
enum Target {
    User(User, Box<SendReads>),
    Group(Group),
}

impl Service {
    pub async fn send(&self, caller: &super::Caller, req: SendRequest) -> Result<SendResult> {
        // 1 (the rest of it): the sender field must be the caller.
        if req.sender_uid != caller.mid {
            return Err(DomainError::BadRequest("msg[sender_uid] is not the caller"));
        }
        // 2: only text, image and recall are sendable.
        let msg_type = match req.msg_type {
            1 | 2 | 5 => req.msg_type as u32,
            _ => return Err(DomainError::UnsupportedMsgType),
        };
        // 3: the receiver. A text or an image to a person goes through `send_to_person`; what
        // stays here to a person is a recall, which checks its target (5) in between.
        let target = match req.receiver_type {
            1 if msg_type != content::RECALL => {
                return self.send_to_person(caller, &req, msg_type).await
            }
            1 => {
                // Everything checks 3 to 7 need, in one read.
                let mut reads = self
                    .store
                    .send_reads(caller.mid, req.receiver_id, relations::MAINTENANCE_FLAG)
                    .await?;
                let receiver = reads
                    .receiver
                    .take()
                    .ok_or(DomainError::BadRequest("unknown receiver"))?;
                if receiver.mid == caller.mid {
                    return Err(DomainError::SendToSelf);
                }
                Target::User(receiver, Box::new(reads))
            }
            2 => Target::Group(self.writable_group(caller.mid, req.receiver_id).await?),
            _ => return Err(DomainError::BadRequest("unknown receiver_type")),
        };
        // 4: the content.
        let checked = self.check_content(msg_type, &req.content)?;
        let text = match &checked {
            Checked::Text(t) => Some(t.clone()),
            _ => None,
        };
        // 5: recall.
        let recall_target = if let Checked::Recall(key) = checked {
            let conv_id = match &target {
                Target::User(r, _) => self.store.pair_conversation(caller.mid, r.mid).await?,
                Target::Group(g) => Some(g.conv_id),
            };
            Some(self.check_recall(caller.mid, conv_id, key).await?)
        } else {
            None
        };
        let manual = relations::is_manual_source(req.msg_source) && msg_type != content::RECALL;
        let stored_content = match recall_target {
            Some(k) => k.to_string(),
            None => req.content.clone(),
        };
        let message = new_message(caller.mid, &req, msg_type, stored_content, manual);
        let (peer, insert) = match &target {
            Target::User(receiver, reads) => {
                // 6: blocks and privacy; the one-message rule does not apply to a recall.
                let policy = relations::send_policy(&self.config, receiver, &reads.pair, msg_type)?;
                // 7: rate limits (counted with the insert) and maintenance.
                let hits = self
                    .rate_hits_with(caller, policy.receiver_follows, reads.flag)
                    .await?;
                (
                    Peer::Pair {
                        a: caller.mid,
                        b: receiver.mid,
                    },
                    Insert {
                        messages: vec![message],
                        now_us: self.clock.now_us(),
                        sender_reads: true,
                        recall_target,
                        intercept_receiver: relations::intercepted(
                            &self.config,
                            reads.sender_flagged,
                            &policy,
                            None,
                        ),
                        max_manual_sent: None,
                        member_of_open_group: None,
                        hits,
                    },
                )
            }
            Target::Group(g) => {
                // 6 does not apply to groups; 7's per-second limit and maintenance do.
                let hits = self.rate_hits(caller, true).await?;
                let at_uids = req.at_uids.clone().filter(|v| !v.is_empty());
                (
                    Peer::Group {
                        group_id: g.group_id,
                        conv_id: g.conv_id,
                    },
                    Insert {
                        messages: vec![NewMessage { at_uids, ..message }],
                        now_us: self.clock.now_us(),
                        sender_reads: true,
                        recall_target,
                        intercept_receiver: false,
                        max_manual_sent: None,
                        member_of_open_group: Some(caller.mid),
                        hits,
                    },
                )
            }
        };
        let now_ms = self.clock.now_ms();
        let keys = self.keys.clone();
        let stored = self
            .insert_messages(peer, insert, std::sync::Arc::new(move || keys.next(now_ms)))
            .await;
        let stored = match (stored, &target) {
            // The group was frozen or dissolved, or the caller left, since check 3: its answer
            // now is the one to give.
            (Err(StoreError::Stale), Target::Group(g)) => {
                self.writable_group(caller.mid, g.group_id).await?;
                Err(StoreError::Stale)
            }
            (r, _) => r,
        }
        .map_err(insert_refusal)?;
        let msg = &stored.first().ok_or(DomainError::NotFound)?.msg;
        // A recall is not written by hand: it gets no automatic reply.
        let to_person = matches!(target, Target::User(..));
        Ok(self.answer(msg, text.as_deref(), &req, to_person))
    }

    /// A text or an image to a person: checks 3 to 7 run on what the send read; when the
    /// pair's sessions may decide the one-message rule, the store reads them again inside the
    /// write and the checks run there (`Store::send_to_person`), so two strangers writing each
    /// other at once cannot both pass the rule.
    async fn send_to_person(
        &self,
        caller: &super::Caller,
        req: &SendRequest,
        msg_type: u32,
    ) -> Result<SendResult> {
        // 4 is answered after 3, but needs nothing read.
        let checked = self.check_content(msg_type, &req.content);
        let text = match &checked {
            Ok(Checked::Text(t)) => Some(t.clone()),
            _ => None,
        };
        let manual = relations::is_manual_source(req.msg_source);
        let message = new_message(caller.mid, req, msg_type, req.content.clone(), manual);
        let sender = caller.mid;
        let config = self.config.clone();
        // Check 7's counters: per second, and per day unless the receiver follows.
        let mut hits = self.rate_counters(caller, false);
        let now_us = self.clock.now_us();
        let spam_text = text.clone();
        let check: SendCheck = Box::new(move |reads: &SendReads| {
            // 3.
            let receiver = reads
                .receiver
                .as_ref()
                .ok_or(DomainError::BadRequest("unknown receiver"))?;
            if receiver.mid == sender {
                return Err(DomainError::SendToSelf);
            }
            // 4.
            checked?;
            // 6: relations, privacy and the one-message rule.
            let policy = relations::send_policy(&config, receiver, &reads.pair, msg_type)?;
            // 7: maintenance is answered by the caller, which counts the rates first.
            if config.maintenance || reads.flag != 0 {
                return Err(DomainError::Maintenance);
            }
            if policy.receiver_follows {
                hits.truncate(1);
            }
            let rule = policy.one_message_rule;
            let messages = std::iter::once(message)
                .chain(rule.then(|| relations::one_message_tip(sender, receiver.mid)))
                .collect();
            Ok(Insert {
                messages,
                now_us,
                sender_reads: true,
                recall_target: None,
                intercept_receiver: relations::intercepted(
                    &config,
                    reads.sender_flagged,
                    &policy,
                    spam_text.as_deref(),
                ),
                max_manual_sent: rule.then_some(1),
                member_of_open_group: None,
                hits,
            })
        });
        let now_ms = self.clock.now_ms();
        let keys = self.keys.clone();
        let sent = self
            .store_person_send(
                sender,
                req.receiver_id,
                check,
                std::sync::Arc::new(move || keys.next(now_ms)),
            )
            .await
            .map_err(insert_refusal)?;
        let reads = sent.reads;
        let stored = match sent.stored {
            Ok(stored) => stored,
            Err(DomainError::Maintenance) => {
                // 7 in maintenance: the counters are counted on their own, and the first
                // over its limit answers before maintenance does.
                let follows = reads
                    .receiver
                    .as_ref()
                    .and_then(|r| {
                        relations::send_policy(&self.config, r, &reads.pair, msg_type).ok()
                    })
                    .is_some_and(|p| p.receiver_follows);
                self.rate_hits_with(caller, follows, reads.flag).await?;
                return Err(DomainError::Maintenance);
            }
            Err(e) => return Err(e),
        };
        let msg = &stored.first().ok_or(DomainError::NotFound)?.msg;

        // Side effects: the message is stored whatever happens to them. A message written by
        // hand that reached the receiver (not their dustbin) may get an automatic reply.
        if manual && !sent.intercepted {
            if let Err(e) = self
                .auto_reply_to_message(
                    sender,
                    req.receiver_id,
                    &reads.receiver_replies,
                    text.as_deref(),
                )
                .await
            {
                tracing::warn!(error = %e, "auto-reply failed");
            }
        }
        Ok(self.answer(msg, text.as_deref(), req, true))
    }

    /// The answer to a stored send: its key and, for a text, its emoji (and, to a person, the
    /// content as stored and its keyword hits).
    fn answer(
        &self,
        msg: &sixin_proto::Message,
        text: Option<&str>,
        req: &SendRequest,
        to_person: bool,
    ) -> SendResult {
        let mut result = SendResult {
            msg_key: msg.msg_key,
            e_infos: None,
            msg_content: None,
            key_hit_infos: None,
        };
        if let Some(t) = text {
            let infos = self.emoji.e_infos(t, req.new_face_version == 1);
            result.e_infos = (!infos.is_empty()).then_some(infos);
            // Upstream gives these two only for texts to users.
            if to_person {
                result.msg_content = Some(msg.content.clone());
                result.key_hit_infos = Some(self.key_hits(t));
            }
        }
        result
    }

    /// Check 4: size, then shape.
    fn check_content(&self, msg_type: u32, raw: &str) -> Result<Checked> {
        if raw.len() > self.config.max_content_bytes {
            return Err(DomainError::TooLong);
        }
        match msg_type {
            content::TEXT => {
                let text: content::Text = serde_json::from_str(raw).map_err(|_| {
                    DomainError::BadRequest("text content is not {\"content\":\"...\"}")
                })?;
                if text.content.is_empty() {
                    return Err(DomainError::BadRequest("empty text"));
                }
                Ok(Checked::Text(text.content))
            }
            content::IMAGE => {
                // Only the url is validated (SPEC §2.2: store content as given); the other
                // fields are kept whatever their JSON type.
                let value: serde_json::Value = serde_json::from_str(raw)
                    .map_err(|_| DomainError::BadRequest("image content is not a JSON object"))?;
                let url = value
                    .get("url")
                    .and_then(serde_json::Value::as_str)
                    .ok_or(DomainError::BadRequest("image content has no url"))?;
                let ok = url::Url::parse(url.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .and_then(|u| {
                        u.host_str()
                            .map(|h| host_allowed(h, &self.config.image_hosts))
                    })
                    .unwrap_or(false);
                if !ok {
                    return Err(DomainError::BadImage);
                }
                Ok(Checked::Image)
            }
            _ => parse_recall_target(raw)
                .map(Checked::Recall)
                .ok_or(DomainError::BadRequest("recall content is not a msg_key")),
        }
    }

    /// Check 5: the recall's target must be the caller's own, live, recent message in this
    /// conversation.
    async fn check_recall(&self, caller: u64, conv_id: Option<i64>, key: u64) -> Result<u64> {
        let target = self
            .store
            .message_by_key(key)
            .await?
            .ok_or(DomainError::MsgKeyNotFound)?;
        if conv_id != Some(target.conv_id)
            || target.msg.sender_uid != caller
            || target.msg.msg_type == content::RECALL
            || target.visible_to.is_some()
        {
            return Err(DomainError::MsgKeyNotFound);
        }
        if target.msg.msg_status != 0 {
            return Err(DomainError::AlreadyRecalled);
        }
        if self.clock.now_secs() - target.msg.timestamp > self.config.recall_window_secs {
            return Err(DomainError::RecallExpired);
        }
        Ok(key)
    }

    /// The first configured keyword rule the text hits, as `key_hit_infos`.
    fn key_hits(&self, text: &str) -> KeyHitInfos {
        for rule in &self.config.keyword_rules {
            let hits = rule
                .keywords
                .iter()
                .filter(|k| !k.is_empty() && text.contains(k.as_str()))
                .count();
            if hits > 0 {
                return KeyHitInfos {
                    toast: Some(rule.toast.clone()),
                    rule_id: Some(rule.rule_id),
                    high_text: Some(vec![serde_json::json!({}); hits]),
                };
            }
        }
        KeyHitInfos::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let p = vec!["*.hdslb.com".to_string(), "img.example.org".to_string()];
        assert!(host_allowed("i0.hdslb.com", &p));
        assert!(host_allowed("hdslb.com", &p));
        assert!(host_allowed("IMG.example.org", &p));
        assert!(!host_allowed("evilhdslb.com", &p));
        assert!(!host_allowed("hdslb.com.evil.net", &p));
    }

    #[test]
    fn sources() {
        assert_eq!(msg_source_of(None), 7);
        assert_eq!(msg_source_of(Some("web")), 7);
        assert_eq!(msg_source_of(Some("android")), 2);
        assert_eq!(msg_source_of(Some("iphone")), 1);
        assert_eq!(msg_source_of(Some("ipad")), 1);
        assert_eq!(msg_source_of(Some("h5")), 3);
        assert_eq!(msg_source_of(Some("pc")), 4);
    }
}
