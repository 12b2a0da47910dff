//! The stream of a user's new messages (`GET /sixin/v1/events`, server-sent events).
//!
//! A stream remembers, per session, the newest seqno it has delivered. A write of this
//! process wakes the streams of the users it concerns (every stream, for a fan group), which
//! read only the session it changed ([`Service::events_of`]); every `events_poll_ms` a stream
//! reads every session of its user that moved since [`LOOKBACK_US`] before the newest it has
//! seen ([`Service::new_events`]), for writes of other processes sharing the database (and
//! any it was not told about). Either way it delivers the messages after the remembered
//! seqno. A session the stream has not delivered from yet starts after the key the stream
//! started from: message keys increase in the order a process stores them, so a stream
//! started (or resumed) at a key gets exactly the messages this process stores after it.
use serde::Serialize;
use std::collections::HashMap;

use super::{Result, Service};
use crate::store::{GroupQuery, Insert, KeyFn, Peer, StoredMessage, Window};

/// How far back (µs) a look reaches before the newest session time it has seen.
pub const LOOKBACK_US: i64 = 30_000_000;
/// Sessions read per statement while looking.
const PAGE: u32 = 200;
/// Messages read per statement from one session.
const BURST: u32 = 200;
/// Messages a session that the stream has not delivered from yet is looked back into.
const NEW_SESSION_BACKLOG: u64 = 200;
/// Messages one look gathers, about (it ends with the session it is in).
const MAX_PER_LOOK: usize = 2000;

/// What a write changed, as told to the streams of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Messages between two users.
    Pair(u64, u64),
    /// Messages in a fan group.
    Group(u64),
}

impl Changed {
    /// Whether a stream of `mid` should look.
    pub fn concerns(self, mid: u64) -> bool {
        match self {
            Changed::Pair(a, b) => a == mid || b == mid,
            // Membership is not known here; groups are few, and a look is cheap.
            Changed::Group(_) => true,
        }
    }
}

/// One event's data: a message new to the stream's user, with the session it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct MessageEvent {
    pub session_type: u8,
    pub talker_id: u64,
    pub msg: sixin_proto::Message,
}

/// Where a stream is.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Messages of sessions not delivered from yet count when their key is above this.
    start_key: u64,
    /// The newest (session_ts, talker) seen; looks start `LOOKBACK_US` before it.
    seen_ts: i64,
    /// (session_type, talker) → newest seqno delivered.
    delivered: HashMap<(u8, u64), u64>,
}

impl Cursor {
    /// A stream of what is stored after `key`.
    pub fn after_key(key: u64) -> Cursor {
        let ms = (key >> (crate::ids::NODE_BITS + crate::ids::SEQ_BITS)) as i64;
        Cursor {
            start_key: key,
            seen_ts: ms.saturating_mul(1000),
            delivered: HashMap::new(),
        }
    }
}

impl Service {
    /// How often a stream looks for writes it was not told about.
    pub fn events_poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.config.events_poll_ms.max(1))
    }

    /// Tells this process's streams about a write.
    pub(crate) fn changed(&self, c: Changed) {
        // No stream listening is not an error.
        let _ = self.changes.send(c);
    }

    /// Stores messages (as [`crate::store::Store::insert_messages`]) and tells the streams.
    pub(crate) async fn insert_messages(
        &self,
        peer: Peer,
        insert: Insert,
        key_of: KeyFn,
    ) -> crate::store::Result<Vec<StoredMessage>> {
        let stored = self.store.insert_messages(peer, insert, key_of).await?;
        self.changed(match peer {
            Peer::Pair { a, b } => Changed::Pair(a, b),
            Peer::Group { group_id, .. } => Changed::Group(group_id),
        });
        Ok(stored)
    }

    /// Ends every event stream (the server is shutting down).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Becomes true when the event streams are to end.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Subscribes to what writes of this process change.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Changed> {
        self.changes.subscribe()
    }

    /// A cursor for a stream starting now: it gets every message stored from here on.
    pub fn cursor_now(&self) -> Cursor {
        Cursor::after_key(self.keys.next(self.clock.now_ms()))
    }

    /// The messages new to `mid` since `cursor` in any of their sessions, in key order; moves
    /// the cursor past them. Stops after about `MAX_PER_LOOK` messages: the next look goes
    /// on from there.
    pub async fn new_events(&self, mid: u64, cursor: &mut Cursor) -> Result<Vec<MessageEvent>> {
        let from = cursor.seen_ts.saturating_sub(LOOKBACK_US);
        let mut out = Vec::new();
        if !self.store.any_session_since(mid, from).await? {
            return Ok(out);
        }
        let mut after = (from, 0u64);
        'pages: loop {
            let moved = self.store.sessions_moved_after(mid, after, PAGE).await?;
            for s in &moved {
                after = (s.session_ts, s.talker_id);
                cursor.seen_ts = cursor.seen_ts.max(s.session_ts);
                self.deliver_session(
                    mid,
                    cursor,
                    (1, s.talker_id),
                    s.conv_id,
                    s.max_seqno,
                    &mut out,
                )
                .await?;
                if out.len() >= MAX_PER_LOOK {
                    break 'pages;
                }
            }
            if moved.len() < PAGE as usize {
                let groups = self.group_views(mid, None, Some(from)).await?;
                for g in groups {
                    let Some(conv_id) = g.conv_id else { continue };
                    cursor.seen_ts = cursor.seen_ts.max(g.session_ts);
                    self.deliver_session(
                        mid,
                        cursor,
                        (2, g.talker_id),
                        conv_id,
                        g.max_seqno,
                        &mut out,
                    )
                    .await?;
                }
                break;
            }
        }
        // In key order, the order this process stored them in: a client that resumes from
        // the last key it got has got every message before it.
        out.sort_by_key(|e| e.msg.msg_key);
        Ok(out)
    }

    /// The messages new to `mid` in the sessions `changes` name (writes of this process that
    /// concern them), in key order.
    pub async fn events_of(
        &self,
        mid: u64,
        cursor: &mut Cursor,
        changes: &[Changed],
    ) -> Result<Vec<MessageEvent>> {
        let mut out = Vec::new();
        for c in changes {
            match *c {
                Changed::Pair(a, b) => {
                    let talker = if a == mid { b } else { a };
                    let Some(s) = self.store.session(mid, 1, talker).await? else {
                        continue;
                    };
                    // As `sessions_moved_after` chooses them.
                    let (Some(conv_id), false, false) = (s.conv_id, s.removed, s.is_intercept)
                    else {
                        continue;
                    };
                    if s.last_seqno == 0 {
                        continue;
                    }
                    cursor.seen_ts = cursor.seen_ts.max(s.session_ts);
                    self.deliver_session(mid, cursor, (1, talker), conv_id, s.max_seqno, &mut out)
                        .await?;
                }
                Changed::Group(g) => {
                    for v in self.group_views(mid, Some(g), None).await? {
                        let Some(conv_id) = v.conv_id else { continue };
                        cursor.seen_ts = cursor.seen_ts.max(v.session_ts);
                        self.deliver_session(mid, cursor, (2, g), conv_id, v.max_seqno, &mut out)
                            .await?;
                    }
                }
            }
        }
        out.sort_by_key(|e| e.msg.msg_key);
        Ok(out)
    }

    /// `mid`'s views of their fan groups (one group, or those that moved after `after`).
    async fn group_views(
        &self,
        mid: u64,
        group_id: Option<u64>,
        after: Option<i64>,
    ) -> Result<Vec<crate::store::SessionRow>> {
        Ok(self
            .store
            .group_sessions(
                mid,
                &GroupQuery {
                    group_id,
                    after,
                    before: None,
                    include_removed: false,
                },
            )
            .await?)
    }

    /// Adds the messages of one session after what the cursor delivered, up to `max`.
    async fn deliver_session(
        &self,
        mid: u64,
        cursor: &mut Cursor,
        session: (u8, u64),
        conv_id: i64,
        max: u64,
        out: &mut Vec<MessageEvent>,
    ) -> Result<()> {
        let known = cursor.delivered.get(&session).copied();
        let mut begin = match known {
            Some(done) if done >= max => return Ok(()),
            Some(done) => done,
            None => max.saturating_sub(NEW_SESSION_BACKLOG),
        };
        loop {
            let window = Window {
                begin: Some(begin),
                end: Some(max.saturating_add(1)),
                oldest_first: true,
                limit: BURST,
                tips_only: false,
            };
            let mut msgs = self.store.messages(conv_id, mid, window).await?;
            // Read newest first; delivered oldest first.
            msgs.reverse();
            let n = msgs.len();
            for m in msgs {
                begin = begin.max(m.msg_seqno);
                if known.is_none() && m.msg_key <= cursor.start_key {
                    continue;
                }
                out.push(MessageEvent {
                    session_type: session.0,
                    talker_id: session.1,
                    msg: m,
                });
            }
            if n < BURST as usize {
                break;
            }
        }
        cursor.delivered.insert(session, max.max(begin));
        Ok(())
    }
}
