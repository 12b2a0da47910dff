//! One typed call per endpoint.

use serde_json::Value;
use sixin_proto::{
    Empty, GroupUnread, ImUserInfo, IsLimit, Message, MessagePage, MsgDnd, MyInfo, Nav, SendResult,
    Session, SessionList, SessionSettings, SingleUnread, UserCard,
};

use crate::{Attempt, Client, Error, Host, Req, Result};

const SESSION_SVR: &str = "/session_svr/v1/session_svr";
const LINK_SETTING: &str = "/link_setting/v1/link_setting";

fn kv(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// Parameters of `single_unread`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnreadQuery {
    /// 0 all, 1 followed only, 2 unfollowed only, 3 intercepted only.
    pub unread_type: u8,
    pub show_unfollow_list: bool,
    pub show_dustbin: bool,
}

/// Parameters of `get_sessions`.
#[derive(Debug, Clone, Copy)]
pub struct SessionsQuery {
    pub session_type: u8,
    pub group_fold: bool,
    pub unfollow_fold: bool,
    pub sort_rule: u8,
    pub begin_ts: Option<i64>,
    pub end_ts: Option<i64>,
    pub size: u32,
}

impl Default for SessionsQuery {
    fn default() -> Self {
        SessionsQuery {
            session_type: 4,
            group_fold: false,
            unfollow_fold: false,
            sort_rule: 2,
            begin_ts: None,
            end_ts: None,
            size: 20,
        }
    }
}

/// Parameters of `fetch_session_msgs`.
#[derive(Debug, Clone, Copy)]
pub struct FetchQuery {
    pub talker_id: u64,
    pub session_type: u8,
    pub size: u32,
    pub begin_seqno: Option<u64>,
    pub end_seqno: Option<u64>,
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub receiver_id: u64,
    /// 1 user, 2 fan group.
    pub receiver_type: u8,
    pub msg_type: u32,
    /// The content object's JSON text.
    pub content: String,
    pub new_face_version: bool,
}

impl OutgoingMessage {
    pub fn text(receiver_id: u64, text: &str) -> OutgoingMessage {
        OutgoingMessage {
            receiver_id,
            receiver_type: 1,
            msg_type: 1,
            content: serde_json::json!({ "content": text }).to_string(),
            new_face_version: true,
        }
    }
    pub fn image(receiver_id: u64, url: &str) -> OutgoingMessage {
        OutgoingMessage {
            receiver_id,
            receiver_type: 1,
            msg_type: 2,
            content: serde_json::json!({ "url": url }).to_string(),
            new_face_version: true,
        }
    }
    pub fn recall(receiver_id: u64, msg_key: u64) -> OutgoingMessage {
        OutgoingMessage {
            receiver_id,
            receiver_type: 1,
            msg_type: 5,
            content: msg_key.to_string(),
            new_face_version: true,
        }
    }
    /// The same message to a fan group.
    pub fn to_group(mut self) -> OutgoingMessage {
        self.receiver_type = 2;
        self
    }
}

/// `act` of `/x/relation/modify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationAct {
    Follow = 1,
    Unfollow = 2,
    Block = 5,
    Unblock = 6,
}

fn dev_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02X}")).collect::<String>();
    // A version-4 UUID, as the web client generates.
    format!(
        "{}-{}-4{}-{:X}{}-{}",
        h(0..4),
        h(4..6),
        &h(6..8)[1..],
        8 | (b[8] & 3),
        &h(8..10)[1..],
        h(10..16)
    )
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Client {
    fn get<'a>(host: Host, path: &'a str, query: Vec<(String, String)>) -> Req<'a> {
        Req {
            host,
            path,
            query,
            form: None,
            sign: false,
        }
    }
    fn post<'a>(host: Host, path: &'a str, form: Vec<(String, String)>) -> Req<'a> {
        Req {
            host,
            path,
            query: Vec::new(),
            form: Some(form),
            sign: false,
        }
    }

    pub async fn single_unread(&self, q: UnreadQuery) -> Result<SingleUnread> {
        let p = format!("{SESSION_SVR}/single_unread");
        self.call(Client::get(
            Host::Vc,
            &p,
            vec![
                kv("unread_type", q.unread_type),
                kv("show_unfollow_list", u8::from(q.show_unfollow_list)),
                kv("show_dustbin", u8::from(q.show_dustbin)),
                kv("build", 0),
                kv("mobi_app", "web"),
            ],
        ))
        .await
    }

    pub async fn my_group_unread(&self) -> Result<GroupUnread> {
        let p = format!("{SESSION_SVR}/my_group_unread");
        self.call(Client::get(
            Host::Vc,
            &p,
            vec![kv("build", 0), kv("mobi_app", "web")],
        ))
        .await
    }

    pub async fn get_sessions(&self, q: SessionsQuery) -> Result<SessionList> {
        let p = format!("{SESSION_SVR}/get_sessions");
        let mut query = vec![
            kv("session_type", q.session_type),
            kv("group_fold", u8::from(q.group_fold)),
            kv("unfollow_fold", u8::from(q.unfollow_fold)),
            kv("sort_rule", q.sort_rule),
            kv("size", q.size),
            kv("build", 0),
            kv("mobi_app", "web"),
        ];
        if let Some(b) = q.begin_ts {
            query.push(kv("begin_ts", b));
        }
        if let Some(e) = q.end_ts {
            query.push(kv("end_ts", e));
        }
        self.call(Client::get(Host::Vc, &p, query)).await
    }

    pub async fn new_sessions(&self, begin_ts: i64, size: u32) -> Result<SessionList> {
        let p = format!("{SESSION_SVR}/new_sessions");
        self.call(Client::get(
            Host::Vc,
            &p,
            vec![
                kv("begin_ts", begin_ts),
                kv("size", size),
                kv("build", 0),
                kv("mobi_app", "web"),
            ],
        ))
        .await
    }

    pub async fn session_detail(&self, talker_id: u64, session_type: u8) -> Result<Session> {
        let p = format!("{SESSION_SVR}/session_detail");
        self.call(Client::get(
            Host::Vc,
            &p,
            vec![
                kv("talker_id", talker_id),
                kv("session_type", session_type),
                kv("build", 0),
                kv("mobi_app", "web"),
            ],
        ))
        .await
    }

    pub async fn fetch_session_msgs(&self, q: FetchQuery) -> Result<MessagePage> {
        self.call(Client::fetch_req(q)).await
    }

    /// `fetch_session_msgs` with the page kept as received JSON, every field of every message
    /// as the server sent it (for lossless export).
    pub async fn fetch_session_msgs_raw(&self, q: FetchQuery) -> Result<Value> {
        self.call(Client::fetch_req(q)).await
    }

    fn fetch_req(q: FetchQuery) -> Req<'static> {
        let mut query = vec![
            kv("talker_id", q.talker_id),
            kv("session_type", q.session_type),
            kv("size", q.size),
            kv("sender_device_id", 1),
            kv("build", 0),
            kv("mobi_app", "web"),
        ];
        if let Some(b) = q.begin_seqno {
            query.push(kv("begin_seqno", b));
        }
        if let Some(e) = q.end_seqno {
            query.push(kv("end_seqno", e));
        }
        Client::get(Host::Vc, "/svr_sync/v1/svr_sync/fetch_session_msgs", query)
    }

    /// Sends a message. A send whose answer was lost in transit is reconciled before it is
    /// tried again: after a pause (the server may still be at work on it), the conversation's
    /// newest messages are read back, and when the caller's newest message there has the same
    /// type and content, was stored since the attempt began and was not already claimed by
    /// another send of this client, it is taken as the answer — so a retried send never
    /// stores the message twice. Sends answered 21020 / -412 / -509 (not stored) are sent
    /// again after a back-off; a -403 is tried once more with fresh WBI keys.
    pub async fn send(&self, m: &OutgoingMessage) -> Result<SendResult> {
        let mid = self.mid()?;
        let dev = dev_id();
        let mut attempt = 0u32;
        let mut wbi_retried = false;
        // When the first attempt began: a lost send may have been stored since then.
        let mut started: Option<u64> = None;
        loop {
            let now = now_secs();
            let form = vec![
                kv("msg[sender_uid]", mid),
                kv("msg[receiver_id]", m.receiver_id),
                kv("msg[receiver_type]", m.receiver_type),
                kv("msg[msg_type]", m.msg_type),
                kv("msg[msg_status]", 0),
                kv("msg[dev_id]", &dev),
                kv("msg[timestamp]", now),
                kv("msg[new_face_version]", u8::from(m.new_face_version)),
                kv("msg[content]", &m.content),
                kv("build", 0),
                kv("mobi_app", "web"),
            ];
            let req = Req {
                host: Host::Vc,
                path: "/web_im/v1/web_im/send_msg",
                query: vec![
                    kv("w_sender_uid", mid),
                    kv("w_receiver_id", m.receiver_id),
                    kv("w_dev_id", &dev),
                ],
                form: Some(form),
                sign: true,
            };
            let err = match self.once::<SendResult>(&req).await {
                Ok(Attempt::Done(r)) => {
                    self.attribute(r.msg_key);
                    return Ok(r);
                }
                Ok(Attempt::Retry(e)) => e,
                Err(Error::Api { code: -403, .. }) if !wbi_retried => {
                    // Refused before anything was stored: fresh keys, and once more.
                    wbi_retried = true;
                    self.wbi_refused(true).await;
                    continue;
                }
                // No usable answer: the message may or may not have been stored.
                Err(
                    e @ (Error::Transport(_)
                    | Error::Http {
                        status: 500..=599, ..
                    }
                    | Error::Decode(_)),
                ) => {
                    // A connection that could not be made carried nothing; anything else may
                    // have been stored.
                    let unsent = matches!(&e, Error::Transport(t) if t.is_connect());
                    if !unsent {
                        started.get_or_insert(now);
                    }
                    tokio::time::sleep(crate::backoff(attempt)).await;
                    if let Some(since) = started {
                        // Looked for twice, a pause apart, when this very attempt may still be
                        // at work on the server.
                        let looks = if unsent { 1 } else { 2 };
                        for look in 0..looks {
                            if look > 0 {
                                tokio::time::sleep(crate::backoff(0)).await;
                            }
                            if let Some(found) = self.reconcile(m, mid, since).await? {
                                return Ok(found);
                            }
                        }
                    }
                    if attempt >= self.inner.max_retries {
                        return Err(e);
                    }
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if attempt >= self.inner.max_retries {
                return Err(err);
            }
            tokio::time::sleep(crate::backoff(attempt)).await;
            attempt += 1;
        }
    }

    fn attribute(&self, key: u64) {
        let mut a = self
            .inner
            .attributed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        a.push(key);
        if a.len() > 1024 {
            a.drain(..512);
        }
    }

    /// Looks for the message a lost send may have stored: the caller's newest message in the
    /// conversation (automatic ones such as the one-message tip aside), if it is this one.
    async fn reconcile(
        &self,
        m: &OutgoingMessage,
        mid: u64,
        since: u64,
    ) -> Result<Option<SendResult>> {
        // Without `mobi_app=web`, texts come back as stored (no emoji name conversion).
        let mut req = Client::fetch_req(FetchQuery {
            talker_id: m.receiver_id,
            session_type: m.receiver_type,
            size: 20,
            begin_seqno: None,
            end_seqno: None,
        });
        req.query.retain(|(k, _)| k != "mobi_app");
        let page: MessagePage = self.call(req).await?;
        let newest_mine = page
            .messages
            .unwrap_or_default()
            .into_iter()
            .find(|msg: &Message| {
                msg.sender_uid == mid && matches!(msg.msg_type, 1 | 2 | 5) && msg.msg_source != 18
            });
        let Some(msg) = newest_mine else {
            return Ok(None);
        };
        let mut taken = self
            .inner
            .attributed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let hit = msg.msg_type == m.msg_type
            && same_content(&msg.content, &m.content)
            // Allow for a server clock a little behind ours.
            && msg.timestamp + 5 >= since as i64
            && !taken.contains(&msg.msg_key);
        if !hit {
            return Ok(None);
        }
        taken.push(msg.msg_key);
        Ok(Some(SendResult {
            msg_key: msg.msg_key,
            e_infos: None,
            msg_content: (m.msg_type == 1).then(|| msg.content.clone()),
            key_hit_infos: None,
        }))
    }

    pub async fn send_text(&self, receiver_id: u64, text: &str) -> Result<SendResult> {
        self.send(&OutgoingMessage::text(receiver_id, text)).await
    }

    pub async fn send_image(&self, receiver_id: u64, url: &str) -> Result<SendResult> {
        self.send(&OutgoingMessage::image(receiver_id, url)).await
    }

    /// Recalls one of the caller's messages in the conversation with `talker_id`.
    pub async fn recall(&self, talker_id: u64, msg_key: u64) -> Result<SendResult> {
        self.send(&OutgoingMessage::recall(talker_id, msg_key))
            .await
    }

    /// Marks the conversation read up to `ack_seqno` (`None`: everything).
    pub async fn update_ack(
        &self,
        talker_id: u64,
        session_type: u8,
        ack_seqno: Option<u64>,
    ) -> Result<()> {
        let p = format!("{SESSION_SVR}/update_ack");
        let _: Empty = self
            .call(Client::post(
                Host::Vc,
                &p,
                vec![
                    kv("talker_id", talker_id),
                    kv("session_type", session_type),
                    kv(
                        "ack_seqno",
                        ack_seqno.map(|a| a.to_string()).unwrap_or_default(),
                    ),
                    kv("build", 0),
                    kv("mobi_app", "web"),
                ],
            ))
            .await?;
        Ok(())
    }

    async fn session_post(&self, name: &str, mut form: Vec<(String, String)>) -> Result<()> {
        let p = format!("{SESSION_SVR}/{name}");
        form.push(kv("build", 0));
        form.push(kv("mobi_app", "web"));
        let _: Empty = self.call(Client::post(Host::Vc, &p, form)).await?;
        Ok(())
    }

    pub async fn remove_session(&self, talker_id: u64, session_type: u8) -> Result<()> {
        self.session_post(
            "remove_session",
            vec![kv("talker_id", talker_id), kv("session_type", session_type)],
        )
        .await
    }

    pub async fn set_top(&self, talker_id: u64, session_type: u8, pinned: bool) -> Result<()> {
        self.session_post(
            "set_top",
            vec![
                kv("talker_id", talker_id),
                kv("session_type", session_type),
                kv("op_type", if pinned { 0 } else { 1 }),
            ],
        )
        .await
    }

    /// `status` 0 releases an intercepted session (and trusts it), 1 intercepts it.
    pub async fn update_intercept(
        &self,
        talker_id: u64,
        session_type: u8,
        intercept: bool,
    ) -> Result<()> {
        self.session_post(
            "update_intercept",
            vec![
                kv("talker_id", talker_id),
                kv("session_type", session_type),
                kv("status", u8::from(intercept)),
            ],
        )
        .await
    }

    pub async fn batch_update_dustbin_ack(&self) -> Result<()> {
        self.session_post("batch_update_dustbin_ack", Vec::new())
            .await
    }

    pub async fn batch_rm_dustbin(&self) -> Result<()> {
        self.session_post("batch_rm_dustbin", Vec::new()).await
    }

    /// Do-not-disturb towards a user (`group = false`) or a fan group.
    pub async fn set_msg_dnd(&self, id: u64, group: bool, on: bool) -> Result<()> {
        let p = format!("{LINK_SETTING}/set_msg_dnd");
        let mut form = vec![
            kv("setting", u8::from(on)),
            kv("build", 0),
            kv("mobi_app", "web"),
        ];
        form.push(kv(if group { "dnd_group_id" } else { "dnd_uid" }, id));
        if let Ok(mid) = self.mid() {
            form.push(kv("uid", mid));
        }
        let _: Empty = self.call(Client::post(Host::Vc, &p, form)).await?;
        Ok(())
    }

    pub async fn get_msg_dnd(&self, uids: &[u64], group_ids: &[u64]) -> Result<MsgDnd> {
        let p = format!("{LINK_SETTING}/get_msg_dnd");
        let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let mut q = vec![
            kv("uids_str", join(uids)),
            kv("group_ids_str", join(group_ids)),
            kv("build", 0),
            kv("mobi_app", "web"),
        ];
        if let Ok(mid) = self.mid() {
            q.push(kv("own_uid", mid));
        }
        self.call(Client::get(Host::Vc, &p, q)).await
    }

    pub async fn set_push_ss(&self, talker_uid: u64, setting: u8) -> Result<()> {
        let p = format!("{LINK_SETTING}/set_push_ss");
        let _: Empty = self
            .call(Client::post(
                Host::Vc,
                &p,
                vec![
                    kv("talker_uid", talker_uid),
                    kv("setting", setting),
                    kv("build", 0),
                    kv("mobi_app", "web"),
                ],
            ))
            .await?;
        Ok(())
    }

    pub async fn get_session_ss(&self, talker_uid: u64) -> Result<SessionSettings> {
        let p = format!("{LINK_SETTING}/get_session_ss");
        self.call(Client::get(
            Host::Vc,
            &p,
            vec![
                kv("talker_uid", talker_uid),
                kv("build", 0),
                kv("mobi_app", "web"),
            ],
        ))
        .await
    }

    pub async fn is_limit(&self, uid: u64, kind: u8) -> Result<IsLimit> {
        let p = format!("{LINK_SETTING}/is_limit");
        self.call(Client::get(
            Host::Vc,
            &p,
            vec![
                kv("uid", uid),
                kv("type", kind),
                kv("build", 0),
                kv("mobi_app", "web"),
            ],
        ))
        .await
    }

    /// The system settings object, as returned.
    pub async fn get_sys_setting(&self) -> Result<Value> {
        let p = format!("{LINK_SETTING}/get_sys_setting");
        self.call(Client::get(
            Host::Vc,
            &p,
            vec![kv("build", 0), kv("mobi_app", "web")],
        ))
        .await
    }

    /// `nav` answers -101 with data when logged out; that is not an error here.
    pub async fn nav(&self) -> Result<Nav> {
        let mut attempt = 0;
        loop {
            let req = Client::get(Host::Api, "/x/web-interface/nav", Vec::new());
            let err = match self.pace_nav(req).await {
                Ok(nav) => return Ok(nav),
                Err(e @ Error::Transport(_)) => e,
                Err(
                    e @ Error::Api {
                        code: 21020 | -412 | -509,
                        ..
                    },
                ) => e,
                Err(e) => return Err(e),
            };
            if attempt >= self.inner.max_retries {
                return Err(err);
            }
            tokio::time::sleep(crate::backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn pace_nav(&self, req: Req<'_>) -> Result<Nav> {
        // Not through `once`: that would sign, and signing needs nav.
        let url = self.url_for(&req)?;
        self.pace().await;
        let mut rb = self.http().get(url);
        if let Some(c) = self.credentials() {
            rb = rb.header(reqwest::header::COOKIE, c.cookie_header());
        }
        let text = rb
            .send()
            .await
            .map_err(Error::Transport)?
            .text()
            .await
            .map_err(Error::Transport)?;
        let env: sixin_proto::Envelope<Nav> =
            serde_json::from_str(&text).map_err(|e| Error::Decode(format!("nav: {e}")))?;
        env.data.into_option().ok_or(Error::Api {
            code: env.code,
            message: env.message,
        })
    }

    pub async fn myinfo(&self) -> Result<MyInfo> {
        self.call(Client::get(Host::Api, "/x/space/myinfo", Vec::new()))
            .await
    }

    pub async fn user_cards(&self, uids: &[u64]) -> Result<Vec<UserCard>> {
        let list = uids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.call(Client::get(
            Host::Vc,
            "/account/v1/user/cards",
            vec![kv("uids", list)],
        ))
        .await
    }

    pub async fn user_infos(&self, uids: &[u64]) -> Result<Vec<ImUserInfo>> {
        let list = uids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.call(Client::get(
            Host::Vc,
            "/x/im/user_infos",
            vec![kv("uids", list)],
        ))
        .await
    }

    pub async fn relation_modify(&self, fid: u64, act: RelationAct) -> Result<()> {
        let _: Option<Value> = self
            .call(Client::post(
                Host::Api,
                "/x/relation/modify",
                vec![kv("fid", fid), kv("act", act as u8), kv("re_src", 11)],
            ))
            .await?;
        Ok(())
    }

    /// A page-by-page walk through a whole conversation (see [`crate::HistoryPager`]).
    pub fn history(
        &self,
        talker_id: u64,
        session_type: u8,
        direction: crate::Direction,
    ) -> crate::HistoryPager {
        crate::HistoryPager::new(self.clone(), talker_id, session_type, direction)
    }
}

/// Content texts compared as JSON values, so key order and spacing don't matter.
fn same_content(stored: &str, sent: &str) -> bool {
    if stored == sent {
        return true;
    }
    match (
        serde_json::from_str::<Value>(stored),
        serde_json::from_str::<Value>(sent),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_ids_are_uuid_v4() {
        for _ in 0..100 {
            let d = dev_id();
            assert_eq!(d.len(), 36, "{d}");
            let parts: Vec<&str> = d.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                vec![8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'));
            assert!(
                matches!(parts[3].chars().next(), Some('8' | '9' | 'A' | 'B')),
                "{d}"
            );
        }
    }

    #[test]
    fn content_comparison() {
        assert!(same_content(
            "{\"content\":\"a\"}",
            "{ \"content\": \"a\" }"
        ));
        assert!(!same_content("{\"content\":\"a\"}", "{\"content\":\"b\"}"));
        assert!(same_content("123", "123"));
    }
}
