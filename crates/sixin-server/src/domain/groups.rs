//! Fan groups (应援团): lifecycle, membership and the system messages they produce.

use serde::Serialize;

use super::{DomainError, Result, Service};
use crate::store::{
    Group, GroupQuery, Insert, NewMessage, Peer, SessionFlag, StoreError, SESSION_GROUP,
};

pub const GROUP_LEFT: u32 = 302;
pub const GROUP_FROZEN: u32 = 303;
pub const GROUP_DISSOLVED: u32 = 304;
pub const GROUP_OPENED: u32 = 305;
pub const GROUP_JOINED: u32 = 306;
pub const SOURCE_GROUP_SYSTEM: u32 = 13;

pub const STATE_NORMAL: u8 = 0;
pub const STATE_FROZEN: u8 = 1;
pub const STATE_DISSOLVED: u8 = 2;

/// A group as the operator surface prints it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    pub group_id: u64,
    pub owner: u64,
    pub name: String,
    pub cover: String,
    pub group_type: u8,
    /// "normal", "frozen" or "dissolved".
    pub state: &'static str,
    pub members: u64,
    pub max_seqno: u64,
}

fn state_name(s: u8) -> &'static str {
    match s {
        STATE_FROZEN => "frozen",
        STATE_DISSOLVED => "dissolved",
        _ => "normal",
    }
}

impl Service {
    async fn group_or_404(&self, group_id: u64) -> Result<Group> {
        self.store
            .group(group_id)
            .await?
            .ok_or(DomainError::NotFound)
    }

    pub async fn group_info(&self, group_id: u64) -> Result<GroupInfo> {
        let g = self.group_or_404(group_id).await?;
        Ok(GroupInfo {
            group_id: g.group_id,
            owner: g.owner,
            name: g.name,
            cover: g.cover,
            group_type: g.group_type,
            state: state_name(g.state),
            members: self.store.member_count(group_id).await?,
            max_seqno: g.max_seqno,
        })
    }

    /// Stores one fan-group system message (sender 0, msg_source 13) at `now_us`; returns its
    /// seqno.
    async fn group_notice(
        &self,
        g: &Group,
        msg_type: u32,
        text: String,
        now_us: i64,
    ) -> Result<u64> {
        let now_ms = now_us.div_euclid(1000);
        let keys = self.keys.clone();
        let stored = self
            .insert_messages(
                Peer::Group {
                    group_id: g.group_id,
                    conv_id: g.conv_id,
                },
                Insert {
                    messages: vec![NewMessage {
                        sender_uid: 0,
                        receiver_type: 2,
                        receiver_id: g.group_id,
                        msg_type,
                        content: serde_json::json!({ "group_id": g.group_id, "content": text })
                            .to_string(),
                        at_uids: None,
                        notify_code: String::new(),
                        new_face_version: 0,
                        msg_source: SOURCE_GROUP_SYSTEM,
                        visible_to: None,
                        dev_id: String::new(),
                        manual: false,
                        push: false,
                        official: false,
                    }],
                    ..Insert::plain(Vec::new(), now_us)
                },
                std::sync::Arc::new(move || keys.next(now_ms)),
            )
            .await?;
        Ok(stored.last().map_or(0, |m| m.msg.msg_seqno))
    }

    /// Opens a fan group owned by `owner` (its first member) with the 305 message.
    pub async fn create_group(
        &self,
        owner: u64,
        name: &str,
        cover: &str,
        group_type: u8,
    ) -> Result<GroupInfo> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(DomainError::BadRequest("name must be 1 to 64 characters"));
        }
        if !matches!(group_type, 0 | 2) {
            return Err(DomainError::BadRequest(
                "group_type must be 0 (应援团) or 2 (官方群)",
            ));
        }
        let user = self.store.user(owner).await?.ok_or(DomainError::NotFound)?;
        if user.system_msg_type != 0 {
            return Err(DomainError::BadRequest(
                "a system account cannot own a group",
            ));
        }
        let g = self
            .store
            .create_group(owner, name, cover.trim(), group_type, self.clock.now_us())
            .await?;
        self.group_notice(
            &g,
            GROUP_OPENED,
            format!("{name}开通啦 (>▽<)"),
            self.clock.now_us(),
        )
        .await?;
        self.group_info(g.group_id).await
    }

    /// Adds a member, welcomed with the 306 message.
    pub async fn join_group(&self, group_id: u64, mid: u64) -> Result<GroupInfo> {
        let g = self.group_or_404(group_id).await?;
        if g.state != STATE_NORMAL {
            return Err(DomainError::Conflict("the group is frozen or dissolved"));
        }
        let user = self.store.user(mid).await?.ok_or(DomainError::NotFound)?;
        if user.system_msg_type != 0 {
            return Err(DomainError::BadRequest(
                "a system account cannot join a group",
            ));
        }
        if self
            .store
            .member(group_id, mid)
            .await?
            .is_some_and(|m| m.left_seqno == 0)
        {
            return Err(DomainError::Conflict("already a member"));
        }
        // The store re-checks under its transaction: of two concurrent joins one is welcomed.
        match self
            .store
            .add_member(group_id, mid, self.clock.now_us())
            .await
        {
            Err(StoreError::Conflict) => return Err(DomainError::Conflict("already a member")),
            r => r?,
        }
        self.group_notice(
            &g,
            GROUP_JOINED,
            format!("欢迎{}入群", user.name),
            self.clock.now_us(),
        )
        .await?;
        self.group_info(group_id).await
    }

    /// Removes a member with the 302 message; their access to the history ends there.
    pub async fn leave_group(&self, group_id: u64, mid: u64) -> Result<GroupInfo> {
        let g = self.group_or_404(group_id).await?;
        if g.state == STATE_DISSOLVED {
            return Err(DomainError::Conflict("the group is dissolved"));
        }
        if g.owner == mid {
            return Err(DomainError::BadRequest(
                "the owner cannot leave; dissolve the group instead",
            ));
        }
        if self
            .store
            .member(group_id, mid)
            .await?
            .is_none_or(|m| m.left_seqno != 0)
        {
            return Err(DomainError::NotFound);
        }
        let name = self
            .store
            .user(mid)
            .await?
            .map(|u| u.name)
            .unwrap_or_default();
        // Their session's time is the time of the 302 their view ends at.
        let now_us = self.clock.now_us();
        let seqno = self
            .group_notice(&g, GROUP_LEFT, format!("{name}离开了应援团"), now_us)
            .await?;
        self.store
            .end_membership(group_id, mid, seqno, now_us)
            .await?;
        self.group_info(group_id).await
    }

    pub async fn freeze_group(&self, group_id: u64) -> Result<GroupInfo> {
        let g = self.group_or_404(group_id).await?;
        if g.state != STATE_NORMAL {
            return Err(DomainError::Conflict(
                "the group is already frozen or dissolved",
            ));
        }
        // The state changes first: no member's message can follow the notice, and of two
        // concurrent freezes only one writes it.
        match self.store.set_group_state(group_id, STATE_FROZEN).await {
            Err(StoreError::Conflict) => {
                return Err(DomainError::Conflict(
                    "the group is already frozen or dissolved",
                ))
            }
            r => r?,
        }
        self.group_notice(
            &g,
            GROUP_FROZEN,
            "该应援团已被冻结".to_string(),
            self.clock.now_us(),
        )
        .await?;
        self.group_info(group_id).await
    }

    pub async fn dissolve_group(&self, group_id: u64) -> Result<GroupInfo> {
        let g = self.group_or_404(group_id).await?;
        if g.state == STATE_DISSOLVED {
            return Err(DomainError::Conflict("the group is already dissolved"));
        }
        match self.store.set_group_state(group_id, STATE_DISSOLVED).await {
            Err(StoreError::Conflict) => {
                return Err(DomainError::Conflict("the group is already dissolved"))
            }
            r => r?,
        }
        self.group_notice(
            &g,
            GROUP_DISSOLVED,
            "该应援团已解散".to_string(),
            self.clock.now_us(),
        )
        .await?;
        self.group_info(group_id).await
    }

    /// The group a member may read: dissolved → 700013, not (or no longer) a member → 700014.
    pub(crate) async fn readable_group(&self, caller: u64, group_id: u64) -> Result<Group> {
        let g = self
            .store
            .group(group_id)
            .await?
            .ok_or(DomainError::NotGroupMember)?;
        // Someone who left is not a member, whatever became of the group since.
        if self
            .store
            .member(group_id, caller)
            .await?
            .is_none_or(|m| m.left_seqno != 0)
        {
            return Err(DomainError::NotGroupMember);
        }
        if g.state == STATE_DISSOLVED {
            return Err(DomainError::GroupDissolved);
        }
        Ok(g)
    }

    /// The group a member may write to: dissolved or frozen → 700013, unknown or not a member →
    /// 700014 (as for reading: a group one is not in is indistinguishable from none).
    pub(crate) async fn writable_group(&self, caller: u64, group_id: u64) -> Result<Group> {
        let g = self
            .store
            .group(group_id)
            .await?
            .ok_or(DomainError::NotGroupMember)?;
        if g.state != STATE_NORMAL {
            return Err(DomainError::GroupDissolved);
        }
        if self
            .store
            .member(group_id, caller)
            .await?
            .is_none_or(|m| m.left_seqno != 0)
        {
            return Err(DomainError::NotGroupMember);
        }
        Ok(g)
    }

    /// Unread messages across the caller's fan groups (do-not-disturb ones left out).
    pub async fn group_unread(&self, caller: u64) -> Result<u64> {
        let rows = self
            .store
            .group_sessions(
                caller,
                &GroupQuery {
                    group_id: None,
                    after: None,
                    before: None,
                    include_removed: true,
                },
            )
            .await?;
        Ok(rows
            .iter()
            .filter(|r| !r.is_dnd)
            .map(|r| r.unread_count)
            .sum())
    }

    /// Hides a fan-group session until a newer message; what it held counts as read.
    pub(crate) async fn remove_group_session(&self, caller: u64, group_id: u64) -> Result<()> {
        let rows = self
            .store
            .group_sessions(
                caller,
                &GroupQuery {
                    group_id: Some(group_id),
                    after: None,
                    before: None,
                    include_removed: true,
                },
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(());
        };
        self.store
            .ack(caller, SESSION_GROUP, group_id, None, self.clock.now_us())
            .await?;
        self.store
            .set_session_flag(
                caller,
                SESSION_GROUP,
                group_id,
                SessionFlag::GroupRemovedAt(row.max_seqno),
            )
            .await?;
        Ok(())
    }
}
