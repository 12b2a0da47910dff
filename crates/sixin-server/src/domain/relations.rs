//! Who may message whom (SPEC §3, §4.4 checks 6–7, §4.5, §5): relations, privacy, the
//! one-message rule, rate limits, maintenance, interception and auto-replies.

use sixin_proto::content::{SystemTip, TipItem};

use super::{system, Caller, DomainError, Result, Service};
use crate::config::Config;
use crate::store::{AutoReplies, Insert, NewMessage, PairState, Peer, RateHit, Relation, User};

/// The tip a sender sees under their first message to someone who doesn't follow them.
pub const ONE_MESSAGE_TIP: &str = "对方主动回复或关注你前，最多发送1条消息";
/// The message a follow that makes a mutual follow adds.
pub const MUTUAL_FOLLOW_TEXT: &str = "我们已互相关注，开始聊天吧~";
const TIP_COLOR: &str = "#9499A0";

pub const SOURCE_OFFICIAL_PUSH: u32 = 5;
pub const SOURCE_PUSH: u32 = 6;
pub const SOURCE_FOLLOW_REPLY: u32 = 8;
pub const SOURCE_MESSAGE_REPLY: u32 = 9;
pub const SOURCE_KEYWORD_REPLY: u32 = 10;
pub const SOURCE_MUTUAL_FOLLOW: u32 = 17;
pub const SOURCE_SYSTEM_TIP: u32 = 18;

pub(crate) const MAINTENANCE_FLAG: &str = "maintenance";

/// Whether a message from a source is written by a person (platform sources), as opposed
/// to an automatic one.
pub fn is_manual_source(source: u32) -> bool {
    matches!(source, 0..=4 | 7)
}

/// The calendar day (UTC+8, the service's home time zone) of a Unix time in seconds.
pub fn day_of(secs: i64) -> i64 {
    (secs + 8 * 3600).div_euclid(86_400)
}

/// What the relation checks decided about one send.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SendPolicy {
    /// The receiver follows the caller.
    pub receiver_follows: bool,
    /// The receiver released the caller from the dustbin for good.
    pub receiver_trusts: bool,
    /// The one-message rule applies to this message: it must be the caller's first, and it
    /// gets the tip.
    pub one_message_rule: bool,
}

/// `/x/relation/modify` acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationAct {
    Follow,
    Unfollow,
    Block,
    Unblock,
}

impl RelationAct {
    pub fn from_code(act: i64) -> Option<RelationAct> {
        match act {
            1 => Some(RelationAct::Follow),
            2 => Some(RelationAct::Unfollow),
            5 => Some(RelationAct::Block),
            6 => Some(RelationAct::Unblock),
            _ => None,
        }
    }
}

/// A plain automatic text message between two users.
fn auto_text(from: u64, to: u64, text: &str, source: u32) -> NewMessage {
    NewMessage {
        sender_uid: from,
        receiver_type: 1,
        receiver_id: to,
        msg_type: 1,
        content: serde_json::json!({ "content": text }).to_string(),
        at_uids: None,
        notify_code: String::new(),
        new_face_version: 1,
        msg_source: source,
        visible_to: None,
        dev_id: String::new(),
        manual: false,
        push: false,
        official: false,
    }
}

/// The one-message tip, visible to `sender` only.
pub(crate) fn one_message_tip(sender: u64, receiver: u64) -> NewMessage {
    let tip = SystemTip::from_items(&[TipItem {
        text: ONE_MESSAGE_TIP.into(),
        color_day: TIP_COLOR.into(),
        color_nig: TIP_COLOR.into(),
        jump_url: None,
    }]);
    NewMessage {
        msg_type: sixin_proto::content::SYSTEM_TIP,
        content: serde_json::to_string(&tip).unwrap_or_default(),
        visible_to: Some(sender),
        ..auto_text(sender, receiver, "", SOURCE_SYSTEM_TIP)
    }
}

/// The answer when the rate counter at `index` of a send's counters went over its limit.
pub(crate) fn rate_limit_error(index: usize) -> DomainError {
    if index == 0 {
        DomainError::TooFast
    } else {
        DomainError::DailyLimit
    }
}

/// Check 6 on the pair's state as read (the caller is `a`, the receiver `b`).
pub(crate) fn send_policy(
    config: &Config,
    receiver: &User,
    pair: &PairState,
    msg_type: u32,
) -> Result<SendPolicy> {
    if receiver.system_msg_type != 0 && !config.system_accounts_accept_messages {
        return Err(DomainError::PrivacyBlocked);
    }
    if pair.a_to_b.block {
        return Err(DomainError::YouBlocked);
    }
    let theirs = pair.b_to_a;
    if theirs.block || (receiver.privacy == 1 && !theirs.follow) {
        return Err(DomainError::PrivacyBlocked);
    }
    let mut policy = SendPolicy {
        receiver_follows: theirs.follow,
        receiver_trusts: pair.b_trusts_a,
        ..Default::default()
    };
    if theirs.follow || msg_type == sixin_proto::content::RECALL {
        return Ok(policy);
    }
    if pair.b_manual_sent > 0 {
        // The receiver has written by hand: the rule is lifted.
        return Ok(policy);
    }
    if pair.a_manual_sent >= 1 {
        return Err(DomainError::OneMessageLimit);
    }
    policy.one_message_rule = true;
    Ok(policy)
}

/// Whether a message goes to the receiver's dustbin: the receiver doesn't follow the
/// sender, and the sender is flagged or the text hits a spam keyword.
pub(crate) fn intercepted(
    config: &Config,
    sender_flagged: bool,
    policy: &SendPolicy,
    text: Option<&str>,
) -> bool {
    // A follower is never intercepted, nor a talker the receiver released for good.
    if policy.receiver_follows || policy.receiver_trusts {
        return false;
    }
    let spam = text.is_some_and(|t| {
        config
            .spam_keywords
            .iter()
            .any(|k| !k.is_empty() && t.contains(k.as_str()))
    });
    spam || sender_flagged
}

impl Service {
    /// Check 6 of a send to a user: blocks, privacy and the one-message rule.
    pub(crate) async fn relation_policy(
        &self,
        caller: &Caller,
        receiver: &User,
        msg_type: u32,
    ) -> Result<SendPolicy> {
        let pair = self.store.pair_state(caller.mid, receiver.mid).await?;
        send_policy(&self.config, receiver, &pair, msg_type)
    }

    /// Check 7's rate counters for a send, in the order they are checked: per second, then
    /// per day when the receiver doesn't follow the sender.
    pub(crate) fn rate_counters(&self, caller: &Caller, receiver_follows: bool) -> Vec<RateHit> {
        let now = self.clock.now_secs();
        let mut hits = vec![RateHit {
            key: format!("s:{}", caller.mid),
            win: now,
            limit: self.config.sends_per_second,
        }];
        if !receiver_follows {
            hits.push(RateHit {
                key: format!("d:{}", caller.mid),
                win: day_of(now),
                limit: self.config.daily_sends_to_strangers,
            });
        }
        hits
    }

    /// Check 7 for a send: the rate counters to count in the same write as the message.
    /// In maintenance they are counted on their own and the answer is given here, in check
    /// 7's order (21020, 21046, then 21028).
    pub(crate) async fn rate_hits(
        &self,
        caller: &Caller,
        receiver_follows: bool,
    ) -> Result<Vec<RateHit>> {
        let flag = self.store.server_flag(MAINTENANCE_FLAG).await?;
        self.rate_hits_with(caller, receiver_follows, flag).await
    }

    /// [`Service::rate_hits`] with the maintenance flag's value as already read.
    pub(crate) async fn rate_hits_with(
        &self,
        caller: &Caller,
        receiver_follows: bool,
        maintenance_flag: i64,
    ) -> Result<Vec<RateHit>> {
        let hits = self.rate_counters(caller, receiver_follows);
        if self.config.maintenance || maintenance_flag != 0 {
            for (k, hit) in hits.iter().enumerate() {
                if self.store.count_hit(&hit.key, hit.win).await? > hit.limit {
                    return Err(rate_limit_error(k));
                }
            }
            return Err(DomainError::Maintenance);
        }
        Ok(hits)
    }

    pub async fn in_maintenance(&self) -> Result<bool> {
        Ok(self.config.maintenance || self.store.server_flag(MAINTENANCE_FLAG).await? != 0)
    }

    pub async fn set_maintenance(&self, on: bool) -> Result<()> {
        self.store
            .set_server_flag(MAINTENANCE_FLAG, i64::from(on))
            .await?;
        Ok(())
    }

    /// Stores automatic messages from `from` to `to` (never subject to the send checks, and
    /// never triggering further automatic messages). Nobody read anything: unlike a message
    /// written by hand, an automatic one leaves its sender's read mark where it was, so what
    /// the sender had not read yet stays unread.
    pub(crate) async fn deliver(
        &self,
        from: u64,
        to: u64,
        messages: Vec<NewMessage>,
    ) -> Result<()> {
        let now_ms = self.clock.now_ms();
        let keys = self.keys.clone();
        self.insert_messages(
            Peer::Pair { a: from, b: to },
            Insert::plain(messages, self.clock.now_us()),
            std::sync::Arc::new(move || keys.next(now_ms)),
        )
        .await?;
        Ok(())
    }

    /// The receiver's automatic answer to a message a person wrote: the first matching keyword
    /// reply, else the message reply once per counterpart per day.
    pub(crate) async fn auto_reply_to_message(
        &self,
        sender: u64,
        receiver: u64,
        replies: &AutoReplies,
        text: Option<&str>,
    ) -> Result<()> {
        if let Some(t) = text {
            if let Some(k) = replies
                .keyword_replies
                .iter()
                .find(|k| !k.keyword.is_empty() && t.contains(k.keyword.as_str()))
            {
                return self
                    .deliver(
                        receiver,
                        sender,
                        vec![auto_text(receiver, sender, &k.reply, SOURCE_KEYWORD_REPLY)],
                    )
                    .await;
            }
        }
        if !replies.message_reply.is_empty()
            && self
                .store
                .claim_daily_reply(receiver, sender, day_of(self.clock.now_secs()))
                .await?
        {
            self.deliver(
                receiver,
                sender,
                vec![auto_text(
                    receiver,
                    sender,
                    &replies.message_reply,
                    SOURCE_MESSAGE_REPLY,
                )],
            )
            .await?;
        }
        Ok(())
    }

    /// `POST /x/relation/modify`.
    pub async fn relation_modify(&self, caller: &Caller, fid: u64, act: RelationAct) -> Result<()> {
        if fid == caller.mid {
            return Err(DomainError::SelfRelation);
        }
        let target = self
            .store
            .user(fid)
            .await?
            .ok_or(DomainError::BadRequest("unknown fid"))?;
        let now_ms = self.clock.now_ms();
        let mut mine = self.store.relation(caller.mid, fid).await?;
        match act {
            RelationAct::Follow => {
                if mine.block {
                    return Err(DomainError::FollowBlocked);
                }
                let theirs = self.store.relation(fid, caller.mid).await?;
                if theirs.block {
                    return Err(DomainError::FollowBlocked);
                }
                if mine.follow {
                    return Err(DomainError::AlreadyFollowed);
                }
                mine.follow = true;
                self.store
                    .set_relation(caller.mid, fid, mine, now_ms)
                    .await?;
                if target.system_msg_type != 0 {
                    return Ok(());
                }
                if theirs.follow {
                    self.deliver(
                        caller.mid,
                        fid,
                        vec![auto_text(
                            caller.mid,
                            fid,
                            MUTUAL_FOLLOW_TEXT,
                            SOURCE_MUTUAL_FOLLOW,
                        )],
                    )
                    .await?;
                }
                let replies = self.store.auto_replies(fid).await?;
                if !replies.follow_reply.is_empty() {
                    self.deliver(
                        fid,
                        caller.mid,
                        vec![auto_text(
                            fid,
                            caller.mid,
                            &replies.follow_reply,
                            SOURCE_FOLLOW_REPLY,
                        )],
                    )
                    .await?;
                }
            }
            RelationAct::Unfollow => {
                if mine.follow {
                    mine.follow = false;
                    mine.special = false;
                    self.store
                        .set_relation(caller.mid, fid, mine, now_ms)
                        .await?;
                }
            }
            RelationAct::Block => {
                if mine.block {
                    return Err(DomainError::AlreadyBlocked);
                }
                // Blocking ends both follows.
                let mut theirs = self.store.relation(fid, caller.mid).await?;
                mine = Relation {
                    follow: false,
                    special: false,
                    block: true,
                };
                self.store
                    .set_relation(caller.mid, fid, mine, now_ms)
                    .await?;
                if theirs.follow {
                    theirs.follow = false;
                    theirs.special = false;
                    self.store
                        .set_relation(fid, caller.mid, theirs, now_ms)
                        .await?;
                }
            }
            RelationAct::Unblock => {
                if mine.block {
                    mine.block = false;
                    self.store
                        .set_relation(caller.mid, fid, mine, now_ms)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// `is_limit`: whether the one-message rule currently stops the caller writing to `uid`.
    pub async fn is_limited(&self, caller: &Caller, uid: u64) -> Result<bool> {
        let Some(receiver) = self.store.user(uid).await? else {
            return Ok(false);
        };
        if receiver.mid == caller.mid {
            return Ok(false);
        }
        Ok(matches!(
            self.relation_policy(caller, &receiver, sixin_proto::content::TEXT)
                .await,
            Err(DomainError::OneMessageLimit)
        ))
    }

    pub async fn settings_of(&self, mid: u64) -> Result<(u8, AutoReplies)> {
        let user = self.store.user(mid).await?.ok_or(DomainError::NotFound)?;
        Ok((user.privacy, self.store.auto_replies(mid).await?))
    }

    /// Changes a user's privacy and auto-replies; `None` leaves a part as it is. Everything is
    /// checked before anything is written: a request with one bad part changes nothing.
    pub async fn update_settings(
        &self,
        mid: u64,
        privacy: Option<u8>,
        replies: Option<AutoReplies>,
    ) -> Result<()> {
        self.store.user(mid).await?.ok_or(DomainError::NotFound)?;
        if privacy.is_some_and(|p| p > 1) {
            return Err(DomainError::InvalidArgument("privacy"));
        }
        if let Some(r) = &replies {
            let too_long = |s: &str| s.len() > self.config.max_content_bytes;
            if too_long(&r.follow_reply)
                || too_long(&r.message_reply)
                || r.keyword_replies.len() > 50
                || r.keyword_replies
                    .iter()
                    .any(|k| k.keyword.is_empty() || too_long(&k.reply) || k.reply.is_empty())
            {
                return Err(DomainError::InvalidArgument("auto replies"));
            }
        }
        if let Some(p) = privacy {
            self.store.set_user_privacy(mid, p).await?;
        }
        if let Some(r) = &replies {
            self.store.set_auto_replies(mid, r).await?;
        }
        Ok(())
    }

    pub async fn set_flagged(&self, mid: u64, flagged: bool) -> Result<()> {
        self.store.user(mid).await?.ok_or(DomainError::NotFound)?;
        self.store.set_user_flagged(mid, flagged).await?;
        Ok(())
    }

    /// `update_intercept`: 0 releases a session from the dustbin and trusts it, 1 intercepts it.
    pub async fn update_intercept(
        &self,
        caller: &Caller,
        talker_id: u64,
        intercept: bool,
    ) -> Result<()> {
        if system::by_mid(talker_id).is_some() && intercept {
            return Err(DomainError::InvalidArgument("talker_id"));
        }
        self.store
            .set_intercept(caller.mid, 1, talker_id, intercept)
            .await?;
        Ok(())
    }

    pub async fn dustbin_ack_all(&self, caller: &Caller) -> Result<()> {
        for t in self.store.intercepted_talkers(caller.mid).await? {
            self.store
                .ack(caller.mid, 1, t, None, self.clock.now_us())
                .await?;
        }
        Ok(())
    }

    pub async fn dustbin_remove_all(&self, caller: &Caller) -> Result<()> {
        for t in self.store.intercepted_talkers(caller.mid).await? {
            self.remove_session(caller, t, 1).await?;
        }
        Ok(())
    }
}

impl Service {
    /// `get_sys_setting`, with the switches that describe what sixin offers.
    pub fn sys_setting(&self, web: bool) -> sixin_proto::SysSetting {
        let mut game_msg = serde_json::Map::new();
        if !web {
            game_msg.insert("show_install".into(), serde_json::Value::Bool(true));
        }
        sixin_proto::SysSetting {
            is_create_group_available: 0,
            is_auto_reply_available: 1,
            vc_hint_title: "我为什么会收到此类消息".into(),
            vc_hint_title_button: "了解更多".into(),
            vc_hint_detail: "您【特别关注】的UP主更新视频或专栏后，会第一时间在私信推送给您。如有需要可点击右上角设置关闭推送。".into(),
            vc_hint_detail_button: "关闭推送".into(),
            auto_reply_html: "/sixin/v1/settings".into(),
            is_receive_unfollow_wl: 1,
            is_voyage: 0,
            is_auto_reply_recommend_available: 0,
            is_discuss_style_im_page: 0,
            discuss_unread_style_im_page: 0,
            old_up_assistant_door: sixin_proto::OldUpAssistantDoor::default(),
            is_new_up_assistant_effective: 1,
            is_archive_gray: true,
            session_cfg: Default::default(),
            migrate_session_api: false,
            game_msg,
            auto_reply_msg_desc: "此条消息为自动回复".into(),
            huahuo_group_icon_new: String::new(),
            huahuo_group_icon_dark_new: String::new(),
            im_disabled_input_hint: "请到UP主空间发起咨询".into(),
        }
    }
}
