//! Session lists, unread counts, read marks and per-session settings.

use std::collections::BTreeMap;

use sixin_proto::{
    AccountInfo, DndSetting, MsgDnd, Session, SessionList, SessionSettings, SingleUnread,
};

use super::{system, Caller, DomainError, Result, Service};
use crate::store::{
    GroupQuery, ListKind, SessionFlag, SessionQuery, SessionRow, SortBy, SESSION_GROUP,
    SESSION_USER,
};

pub const MAX_SESSIONS: u32 = 100;
const MAX_PINNED: u32 = 100;

#[derive(Debug, Clone)]
pub struct SessionsRequest {
    pub session_type: u8,
    pub group_fold: bool,
    pub unfollow_fold: bool,
    pub sort_rule: i64,
    pub begin_ts: Option<i64>,
    pub end_ts: Option<i64>,
    pub size: u32,
    pub web: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct UnreadRequest {
    pub unread_type: u8,
    pub show_unfollow_list: bool,
    pub show_dustbin: bool,
}

impl Service {
    /// The session object of a stored row.
    pub(crate) fn session_object(&self, row: SessionRow, web: bool) -> Session {
        let sys = system::by_type(row.talker_system_type).filter(|_| row.talker_system_type > 0);
        let group = row.group.clone().unwrap_or_default();
        let mut last_msg = row.last_msg;
        if let Some(m) = last_msg.as_mut() {
            self.decorate(std::slice::from_mut(m), web);
        }
        Session {
            talker_id: row.talker_id,
            session_type: row.session_type,
            at_seqno: group.at_seqno,
            top_ts: row.top_ts,
            group_name: group.name,
            group_cover: group.cover,
            is_follow: u8::from(row.follows || sys.is_some()),
            is_dnd: u8::from(row.is_dnd),
            ack_seqno: row.ack_seqno,
            ack_ts: row.ack_ts,
            session_ts: row.session_ts,
            unread_count: row.unread_count,
            last_msg,
            group_type: group.group_type,
            can_fold: 0,
            status: 0,
            max_seqno: row.max_seqno,
            new_push_msg: u8::from(row.biz_unread > 0 && row.push_setting == 0),
            setting: row.push_setting,
            is_guardian: 0,
            is_intercept: u8::from(row.is_intercept),
            is_trust: u8::from(row.is_trust),
            system_msg_type: row.talker_system_type,
            account_info: sys.map(|a| AccountInfo {
                name: a.name.to_string(),
                pic_url: a.pic_url.to_string(),
            }),
            live_status: 0,
            biz_msg_unread_count: row.biz_unread,
            user_label: None,
        }
    }

    pub async fn get_sessions(&self, caller: &Caller, req: SessionsRequest) -> Result<SessionList> {
        let kind = match req.session_type {
            1 | 4 => Some(ListKind::Users {
                followed: req.unfollow_fold.then_some(true),
                system: None,
            }),
            2 | 8 => Some(ListKind::Users {
                followed: Some(false),
                system: Some(false),
            }),
            7 => Some(ListKind::Users {
                followed: None,
                system: Some(true),
            }),
            9 => Some(ListKind::Users {
                followed: Some(true),
                system: None,
            }),
            5 => Some(ListKind::Intercepted),
            3 => None,
            _ => return Err(DomainError::InvalidArgument("session_type")),
        };
        let with_groups = req.session_type == 3 || (req.session_type == 4 && !req.group_fold);
        let sort = if req.sort_rule == 3 {
            SortBy::AckTs
        } else {
            SortBy::SessionTs
        };
        let size = if req.size == 0 {
            20
        } else {
            req.size.min(MAX_SESSIONS)
        };
        let first_page = req.begin_ts.is_none() && req.end_ts.is_none();
        let key = |r: &SessionRow| sort.time_of(r);
        let mut pinned = Vec::new();
        let mut rest = Vec::new();
        let system_mids: Vec<u64> = system::SYSTEM_ACCOUNTS.iter().map(|a| a.mid).collect();
        // Which system accounts the caller has sessions with: read with a first page of user
        // sessions when there is one, else on its own.
        let mut present = None;
        if let Some(kind) = kind {
            let page = SessionQuery {
                kind,
                sort,
                after: req.begin_ts,
                before: req.end_ts,
                pinned: false,
                limit: size + 1,
            };
            if first_page {
                // Pinned sessions head the first page; later pages hold unpinned ones only, so
                // paging by the last session's time never repeats or skips one.
                let pins = SessionQuery {
                    pinned: true,
                    after: None,
                    before: None,
                    limit: MAX_PINNED,
                    ..page
                };
                let first = self
                    .store
                    .first_sessions(caller.mid, &pins, &page, &system_mids)
                    .await?;
                (pinned, rest) = (first.pinned, first.page);
                present = Some(first.talkers_present);
            } else {
                rest = self.store.sessions(caller.mid, &page).await?;
            }
        }
        if with_groups {
            // A user belongs to few groups: their sessions are read whole and merged here.
            let groups = self
                .store
                .group_sessions(
                    caller.mid,
                    &GroupQuery {
                        group_id: None,
                        after: None,
                        before: None,
                        include_removed: false,
                    },
                )
                .await?;
            let by_join = req.session_type == 3 && !matches!(req.sort_rule, 1..=3);
            for g in groups {
                if g.top_ts > 0 {
                    if first_page {
                        pinned.push(g);
                    }
                } else if (by_join && first_page)
                    || (!by_join
                        && req.begin_ts.is_none_or(|b| key(&g) > b)
                        && req.end_ts.is_none_or(|e| key(&g) < e))
                {
                    rest.push(g);
                }
            }
            pinned.sort_by_key(|r| std::cmp::Reverse(r.top_ts));
            if by_join {
                // "Groups by join time ascending" (sort rules other than 1–3 on the group list).
                rest.sort_by_key(|g| g.group.as_ref().map_or(0, |v| v.joined_us));
            } else {
                sort.sort(&mut rest);
            }
        }
        // In join order, all of a user's groups come on the first page: join times are no cursor a
        // client pages with, and a user belongs to few groups.
        let by_join = with_groups && req.session_type == 3 && !matches!(req.sort_rule, 1..=3);
        let has_more = !by_join && rest.len() > size as usize;
        if !by_join {
            rest.truncate(size as usize);
        }
        let mut rows = pinned;
        rows.extend(rest);
        let present = match present {
            Some(p) => p,
            None => {
                self.store
                    .talkers_with_sessions(caller.mid, &system_mids)
                    .await?
            }
        };
        let system_msg = (!present.is_empty()).then(|| {
            system::SYSTEM_ACCOUNTS
                .iter()
                .filter(|a| present.contains(&a.mid))
                .map(|a| (a.system_msg_type.to_string(), a.mid))
                .collect::<BTreeMap<_, _>>()
        });
        Ok(SessionList {
            session_list: self.session_list(rows, req.web),
            has_more: u8::from(has_more),
            anti_disturb_cleaning: false,
            is_address_list_empty: 0,
            system_msg,
            show_level: true,
        })
    }

    fn session_list(&self, rows: Vec<SessionRow>, web: bool) -> Option<Vec<Session>> {
        (!rows.is_empty()).then(|| {
            rows.into_iter()
                .map(|r| self.session_object(r, web))
                .collect()
        })
    }

    pub async fn new_sessions(
        &self,
        caller: &Caller,
        begin_ts: i64,
        size: u32,
        web: bool,
    ) -> Result<SessionList> {
        let size = if size == 0 {
            20
        } else {
            size.min(MAX_SESSIONS)
        };
        let empty = SessionList {
            session_list: None,
            has_more: 0,
            anti_disturb_cleaning: false,
            is_address_list_empty: 0,
            system_msg: None,
            show_level: false,
        };
        // Most polls find nothing new: one cheap statement answers them.
        if !self.store.any_session_since(caller.mid, begin_ts).await? {
            return Ok(empty);
        }
        let mut rows = self
            .store
            .sessions_since(caller.mid, begin_ts, size + 1)
            .await?;
        let groups = self
            .store
            .group_sessions(
                caller.mid,
                &GroupQuery {
                    group_id: None,
                    after: Some(begin_ts),
                    before: None,
                    include_removed: false,
                },
            )
            .await?;
        if !groups.is_empty() {
            rows.extend(groups);
            rows.sort_by(|a, b| {
                b.session_ts
                    .cmp(&a.session_ts)
                    .then(b.talker_id.cmp(&a.talker_id))
            });
        }
        let has_more = rows.len() > size as usize;
        rows.truncate(size as usize);
        Ok(SessionList {
            session_list: self.session_list(rows, web),
            has_more: u8::from(has_more),
            ..empty
        })
    }

    pub async fn session_detail(
        &self,
        caller: &Caller,
        talker_id: u64,
        session_type: u8,
        web: bool,
    ) -> Result<Session> {
        check_session_type(session_type)?;
        if session_type != SESSION_USER {
            let q = GroupQuery {
                group_id: Some(talker_id),
                after: None,
                before: None,
                include_removed: true,
            };
            return match self.store.group_sessions(caller.mid, &q).await?.pop() {
                Some(row) => Ok(self.session_object(row, web)),
                None => Err(DomainError::SessionNotFound),
            };
        }
        match self
            .store
            .session(caller.mid, session_type, talker_id)
            .await?
        {
            Some(row) if row.last_seqno > 0 => Ok(self.session_object(row, web)),
            _ => Err(DomainError::SessionNotFound),
        }
    }

    pub async fn update_ack(
        &self,
        caller: &Caller,
        talker_id: u64,
        session_type: u8,
        ack: Option<u64>,
    ) -> Result<()> {
        check_session_type(session_type)?;
        // Acking a conversation that does not exist changes nothing and is not an error.
        self.store
            .ack(
                caller.mid,
                session_type,
                talker_id,
                ack,
                self.clock.now_us(),
            )
            .await?;
        Ok(())
    }

    /// Hides a session until its next message; what it held counts as read.
    pub async fn remove_session(
        &self,
        caller: &Caller,
        talker_id: u64,
        session_type: u8,
    ) -> Result<()> {
        check_session_type(session_type)?;
        if session_type != SESSION_USER {
            return self.remove_group_session(caller.mid, talker_id).await;
        }
        // Nothing to hide without a conversation (ack says whether there is one).
        if !self
            .store
            .ack(
                caller.mid,
                session_type,
                talker_id,
                None,
                self.clock.now_us(),
            )
            .await?
        {
            return Ok(());
        }
        self.store
            .set_session_flag(
                caller.mid,
                session_type,
                talker_id,
                SessionFlag::Removed(true),
            )
            .await?;
        Ok(())
    }

    pub async fn set_top(
        &self,
        caller: &Caller,
        talker_id: u64,
        session_type: u8,
        pin: bool,
    ) -> Result<()> {
        check_session_type(session_type)?;
        let ts = if pin { self.clock.now_us() } else { 0 };
        self.store
            .set_session_flag(caller.mid, session_type, talker_id, SessionFlag::TopTs(ts))
            .await?;
        Ok(())
    }

    pub async fn set_dnd(
        &self,
        caller: &Caller,
        session_type: u8,
        talker_id: u64,
        on: bool,
    ) -> Result<()> {
        self.store
            .set_session_flag(caller.mid, session_type, talker_id, SessionFlag::Dnd(on))
            .await?;
        Ok(())
    }

    pub async fn get_dnd(
        &self,
        caller: &Caller,
        uids: &[u64],
        group_ids: &[u64],
    ) -> Result<MsgDnd> {
        let settings = |stored: Vec<(u64, bool)>, ids: &[u64]| {
            ids.iter()
                .map(|id| DndSetting {
                    id: *id,
                    setting: u8::from(stored.iter().any(|(t, on)| t == id && *on)),
                })
                .collect()
        };
        let users = self
            .store
            .dnd_settings(caller.mid, SESSION_USER, uids)
            .await?;
        let groups = self
            .store
            .dnd_settings(caller.mid, SESSION_GROUP, group_ids)
            .await?;
        Ok(MsgDnd {
            uid_settings: settings(users, uids),
            group_settings: settings(groups, group_ids),
        })
    }

    pub async fn set_push_setting(
        &self,
        caller: &Caller,
        talker_id: u64,
        setting: u8,
    ) -> Result<()> {
        self.store
            .set_session_flag(
                caller.mid,
                SESSION_USER,
                talker_id,
                SessionFlag::PushSetting(setting),
            )
            .await?;
        Ok(())
    }

    pub async fn session_settings(
        &self,
        caller: &Caller,
        talker_id: u64,
    ) -> Result<SessionSettings> {
        let mine = self.store.relation(caller.mid, talker_id).await?;
        let theirs = self.store.relation(talker_id, caller.mid).await?;
        let follow_status = if mine.block {
            128
        } else if mine.follow && theirs.follow {
            6
        } else if mine.follow {
            2
        } else {
            0
        };
        let push_setting = self
            .store
            .session(caller.mid, SESSION_USER, talker_id)
            .await?
            .map_or(0, |s| s.push_setting);
        Ok(SessionSettings {
            follow_status,
            special: u8::from(mine.special),
            push_setting,
            show_push_setting: 1,
        })
    }

    pub async fn single_unread(&self, caller: &Caller, req: UnreadRequest) -> Result<SingleUnread> {
        if req.unread_type > 3 {
            return Err(DomainError::InvalidArgument("unread_type"));
        }
        // Every unread message lands in exactly one counter (docs/unread-counters.md).
        let mut out = SingleUnread::default();
        for row in self.store.unread_rows(caller.mid).await? {
            // Pushes the user turned off (set_push_ss) don't count.
            let (biz, official) = if row.push_setting == 0 {
                (row.biz_unread, row.official_unread)
            } else {
                (0, 0)
            };
            let plain = row.unread.saturating_sub(row.biz_unread);
            if row.is_intercept {
                out.dustbin_unread += plain;
                out.dustbin_push_msg += biz;
            } else if row.talker_system_type == system::CUSTOMER_SERVICE {
                out.custom_unread += plain + biz;
            } else if row.talker_system_type > 0 {
                out.follow_unread += plain;
                out.biz_msg_follow_unread += biz - official;
                out.biz_msg_unfollow_unread += official;
                out.unfollow_push_msg += u64::from(official > 0);
            } else if row.follows {
                out.follow_unread += plain;
                out.biz_msg_follow_unread += biz;
            } else {
                out.unfollow_unread += plain;
                out.biz_msg_unfollow_unread += biz;
            }
        }
        let dustbin = req.show_dustbin;
        match req.unread_type {
            1 => out.unfollow_unread = 0,
            2 => out.follow_unread = 0,
            3 => {
                out.follow_unread = 0;
                out.unfollow_unread = 0;
            }
            _ => {}
        }
        if !dustbin {
            out.dustbin_unread = 0;
            out.dustbin_push_msg = 0;
        }
        let _ = req.show_unfollow_list;
        Ok(out)
    }
}

fn check_session_type(t: u8) -> Result<()> {
    match t {
        1 | 2 => Ok(()),
        _ => Err(DomainError::InvalidArgument("session_type")),
    }
}
