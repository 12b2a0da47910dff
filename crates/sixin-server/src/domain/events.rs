//! The stream of a user's new messages (`GET /sixin/v1/events`, server-sent events).
//!
//! A stream remembers, per session, the newest seqno it has delivered. A write of this
//! process wakes the streams of the users it concerns (for a fan group, the streams of users
//! who were members at their stream's last full look), which read only the sessions it
//! changed (`Service::events_of`); every `events_poll_ms` a stream reads every session of
//! its user that moved since `LOOKBACK_US` before the newest it has seen
//! (`Service::new_events`), for writes of other processes sharing the database (and any it
//! was not told about). Either way it delivers the messages after the remembered seqno whose
//! key is above the stream's start key: message keys increase in the order a process stores
//! them.
use serde::Serialize;
use std::collections::HashMap;
use tokio::sync::broadcast;

use super::{Result, Service};
use crate::store::{GroupQuery, Insert, KeyFn, Peer, StoredMessage, Window};

/// How far back (µs) a look reaches before the newest session time it has seen.
const LOOKBACK_US: i64 = 30_000_000;
/// Sessions read per statement while looking.
const PAGE: u32 = 200;
/// Messages read per statement from one session.
const BURST: u32 = 200;
/// Messages a session that the stream has not delivered from yet is looked back into.
const NEW_SESSION_BACKLOG: u64 = 200;
/// Messages one look gathers, about (the next look goes on).
const MAX_PER_LOOK: usize = 2000;
/// How far (ms of keys) before its `Last-Event-ID` a resumed stream starts.
pub const RESUME_MARGIN_MS: i64 = 5000;

/// What a write changed, as told to the streams of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Messages between two users.
    Pair(u64, u64),
    /// Messages in a fan group.
    Group(u64),
}

/// Where writes tell the streams of this process: a channel per user with a stream open (so
/// a write wakes only its parties' streams), and one for fan-group writes (members are not
/// known here).
pub struct Changes {
    users: std::sync::Mutex<HashMap<u64, UserStreams>>,
    groups: broadcast::Sender<Changed>,
    /// Numbers the streams.
    next_id: std::sync::atomic::AtomicU64,
}

/// One user's open streams: their channel, and each stream's id and end signal, oldest first.
struct UserStreams {
    tx: broadcast::Sender<Changed>,
    open: std::collections::VecDeque<(u64, std::sync::Arc<tokio::sync::Notify>)>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            users: std::sync::Mutex::new(HashMap::new()),
            groups: broadcast::channel(CHANNEL).0,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

/// Streams one user may have open in a process: a new one beyond ends the oldest.
pub const MAX_STREAMS_PER_USER: usize = 8;

/// Writes a stream may fall behind by before it looks at everything instead.
const CHANNEL: usize = 256;

/// A stream's view of [`Changes`]: what concerns its user, and what any fan group got.
struct Subscription {
    user: broadcast::Receiver<Changed>,
    groups: broadcast::Receiver<Changed>,
    /// Signalled when the stream is to end (a newer stream of its user took its place).
    evicted: std::sync::Arc<tokio::sync::Notify>,
    id: u64,
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
struct Cursor {
    /// Messages count when their key is above this.
    start_key: u64,
    /// The newest (session_ts, talker) seen; looks start `LOOKBACK_US` before it.
    seen_ts: i64,
    /// (session_type, talker) → newest seqno delivered.
    delivered: HashMap<(u8, u64), u64>,
    /// Sessions a look left before their end (it had gathered enough): the next look goes on
    /// with them first.
    unfinished: Vec<Unfinished>,
    /// A look left sessions it did not read: the next one is a full look, at once.
    rescan: bool,
    /// The fan groups of the user as of the last full look (`None` before the first).
    groups: Option<std::collections::HashSet<u64>>,
}

#[derive(Debug, Clone, Copy)]
struct Unfinished {
    session: (u8, u64),
    conv_id: i64,
    max: u64,
}

impl Cursor {
    /// A stream of what is stored after `key`. A resume (`Last-Event-ID`) starts
    /// [`RESUME_MARGIN_MS`] of keys earlier, see [`Cursor::resume_after`].
    fn after_key(key: u64) -> Cursor {
        Cursor {
            start_key: key,
            seen_ts: crate::ids::key_ms(key).saturating_mul(1000),
            delivered: HashMap::new(),
            unfinished: Vec::new(),
            rescan: false,
            groups: None,
        }
    }

    /// A stream resumed by a client that has every message up to `key`: it starts
    /// [`RESUME_MARGIN_MS`] of keys before `key`, so a message stored in that time that the
    /// client never got (one whose write committed after a later key's) is not lost; what the
    /// client got again it recognises by its `msg_key`. A key from the future counts as `now`.
    fn resume_after(key: u64, now: u64) -> Cursor {
        Cursor::after_key(
            key.min(now)
                .saturating_sub(crate::ids::ms_keys(RESUME_MARGIN_MS)),
        )
    }

    /// Whether a write to fan group `group` may concern the stream (its user was a member at
    /// the last full look; a group joined since is found by the next poll).
    fn may_concern(&self, group: u64) -> bool {
        self.groups.as_ref().is_none_or(|g| g.contains(&group))
    }

    /// Whether a look stopped before the end of what is new.
    fn behind(&self) -> bool {
        self.rescan || !self.unfinished.is_empty()
    }
}

impl Service {
    /// How often a stream looks for writes it was not told about.
    fn events_poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.config.events_poll_ms.max(1))
    }

    /// Tells this process's streams about a write.
    pub(crate) fn changed(&self, c: Changed) {
        match c {
            Changed::Pair(a, b) => {
                let mut users = self.changes.users.lock().unwrap_or_else(|e| e.into_inner());
                for mid in [a, b] {
                    // A channel whose streams have all ended goes.
                    if users.get(&mid).is_some_and(|u| u.tx.send(c).is_err()) {
                        users.remove(&mid);
                    }
                }
            }
            // No stream listening is not an error.
            Changed::Group(_) => {
                let _ = self.changes.groups.send(c);
            }
        }
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

    /// A send to a person, checked and stored ([`crate::store::Store::send_to_person`], the
    /// maintenance switch being [`super::relations::MAINTENANCE_FLAG`]); tells the streams
    /// when something was stored.
    pub(crate) async fn store_person_send(
        &self,
        sender: u64,
        receiver: u64,
        check: crate::store::SendCheck,
        key_of: KeyFn,
    ) -> crate::store::Result<crate::store::PersonSend> {
        let sent = self
            .store
            .send_to_person(
                sender,
                receiver,
                super::relations::MAINTENANCE_FLAG,
                check,
                key_of,
            )
            .await?;
        if sent.stored.is_ok() {
            self.changed(Changed::Pair(sender, receiver));
        }
        Ok(sent)
    }

    /// Ends every event stream (the server is shutting down).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// A stream of `mid` holding `sub` ends: the user's channel goes with their last stream.
    fn unsubscribe(&self, mid: u64, sub: &Subscription) {
        let mut users = self.changes.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = users.get_mut(&mid) {
            u.open.retain(|(id, _)| *id != sub.id);
            if u.open.is_empty() {
                users.remove(&mid);
            }
        }
    }

    /// Users with an open stream (their channels).
    pub fn streaming_users(&self) -> usize {
        self.changes
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Subscribes a stream of `mid` to what writes of this process change.
    fn subscribe(&self, mid: u64) -> Subscription {
        let id = self
            .changes
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evicted = std::sync::Arc::new(tokio::sync::Notify::new());
        let mut users = self.changes.users.lock().unwrap_or_else(|e| e.into_inner());
        let u = users.entry(mid).or_insert_with(|| UserStreams {
            tx: broadcast::channel(CHANNEL).0,
            open: std::collections::VecDeque::new(),
        });
        u.open.push_back((id, evicted.clone()));
        if u.open.len() > MAX_STREAMS_PER_USER {
            if let Some((_, oldest)) = u.open.pop_front() {
                // Kept until the stream sees it, whenever it next waits.
                oldest.notify_one();
            }
        }
        Subscription {
            user: u.tx.subscribe(),
            groups: self.changes.groups.subscribe(),
            evicted,
            id,
        }
    }

    /// Opens a stream of `mid`'s new messages: from now on, or resumed from `resume` (a
    /// `msg_key` the client has every message up to: it starts `RESUME_MARGIN_MS` of keys
    /// earlier, so a message committed out of key order is not lost).
    /// `sessdata` is the login the stream checks again at every poll.
    pub fn open_events(
        self: &std::sync::Arc<Self>,
        mid: u64,
        sessdata: Option<String>,
        resume: Option<u64>,
    ) -> EventStream {
        let now = self.keys.next(self.clock.now_ms());
        let cursor = match resume {
            None => Cursor::after_key(now),
            Some(key) => Cursor::resume_after(key, now),
        };
        EventStream {
            changes: self.subscribe(mid),
            closing: self.closing.subscribe(),
            svc: self.clone(),
            mid,
            sessdata,
            cursor,
            pending: std::collections::VecDeque::new(),
            look_now: true,
            next_poll: tokio::time::Instant::now() + self.events_poll(),
        }
    }

    /// The messages new to `mid` since `cursor` in any of their sessions, in key order; moves
    /// the cursor past them (only when the look succeeds). Stops after about `MAX_PER_LOOK`
    /// messages: the next look goes on from there ([`Cursor::behind`]).
    async fn new_events(&self, mid: u64, cursor: &mut Cursor) -> Result<Vec<MessageEvent>> {
        let mut c = cursor.clone();
        c.rescan = false;
        let mut out = Vec::new();
        if self.continue_unfinished(mid, &mut c, &mut out).await? {
            let from = c.seen_ts.saturating_sub(LOOKBACK_US);
            // Joining a fan group moves its view, so the groups are read again only then.
            if c.groups.is_none() || self.store.any_session_since(mid, from).await? {
                // Fan groups first: they are few. All of them, to know which writes concern
                // the stream.
                let groups = self.group_views(mid, None).await?;
                c.groups = Some(groups.iter().map(|g| g.talker_id).collect());
                // How far this look got: the newest session time it went through completely.
                let mut seen = c.seen_ts;
                for g in groups.into_iter().filter(|g| g.session_ts > from) {
                    let Some(conv_id) = g.conv_id else { continue };
                    seen = seen.max(g.session_ts);
                    self.deliver_session(
                        mid,
                        &mut c,
                        (2, g.talker_id),
                        conv_id,
                        g.max_seqno,
                        &mut out,
                    )
                    .await?;
                }
                let mut after = (from, 0u64);
                let mut cut = false;
                'pages: loop {
                    let moved = self.store.sessions_moved_after(mid, after, PAGE).await?;
                    for s in &moved {
                        if out.len() >= MAX_PER_LOOK {
                            cut = true;
                            break 'pages;
                        }
                        after = (s.session_ts, s.talker_id);
                        self.deliver_session(
                            mid,
                            &mut c,
                            (1, s.talker_id),
                            s.conv_id,
                            s.max_seqno,
                            &mut out,
                        )
                        .await?;
                        seen = seen.max(s.session_ts);
                    }
                    if moved.len() < PAGE as usize {
                        break;
                    }
                }
                if cut {
                    // The next look starts from the last session gone through (less the
                    // look-back), at once; what it delivered again is skipped by seqno.
                    c.seen_ts = c.seen_ts.max(after.0);
                    c.rescan = true;
                } else {
                    c.seen_ts = seen;
                }
            }
        }
        // In key order, the order this process stored them in.
        out.sort_by_key(|e| e.msg.msg_key);
        *cursor = c;
        Ok(out)
    }

    /// The messages new to `mid` in the sessions `changes` name (writes of this process that
    /// concern them), in key order; moves the cursor as [`Service::new_events`] does.
    async fn events_of(
        &self,
        mid: u64,
        cursor: &mut Cursor,
        changes: &[Changed],
    ) -> Result<Vec<MessageEvent>> {
        let mut c = cursor.clone();
        let mut out = Vec::new();
        if self.continue_unfinished(mid, &mut c, &mut out).await? {
            for change in changes {
                if out.len() >= MAX_PER_LOOK {
                    // Writes not looked at: the next look reads everything.
                    c.rescan = true;
                    break;
                }
                match *change {
                    Changed::Pair(a, b) => {
                        let talker = if a == mid { b } else { a };
                        let Some(s) = self.store.moved_session(mid, talker).await? else {
                            continue;
                        };
                        c.seen_ts = c.seen_ts.max(s.session_ts);
                        self.deliver_session(
                            mid,
                            &mut c,
                            (1, talker),
                            s.conv_id,
                            s.max_seqno,
                            &mut out,
                        )
                        .await?;
                    }
                    Changed::Group(g) => {
                        for v in self.group_views(mid, Some(g)).await? {
                            let Some(conv_id) = v.conv_id else { continue };
                            c.seen_ts = c.seen_ts.max(v.session_ts);
                            self.deliver_session(
                                mid,
                                &mut c,
                                (2, g),
                                conv_id,
                                v.max_seqno,
                                &mut out,
                            )
                            .await?;
                        }
                    }
                }
            }
        }
        out.sort_by_key(|e| e.msg.msg_key);
        *cursor = c;
        Ok(out)
    }

    /// Goes on with the sessions an earlier look left; whether it got through them all.
    async fn continue_unfinished(
        &self,
        mid: u64,
        c: &mut Cursor,
        out: &mut Vec<MessageEvent>,
    ) -> Result<bool> {
        for u in std::mem::take(&mut c.unfinished) {
            if out.len() >= MAX_PER_LOOK {
                c.unfinished.push(u);
                continue;
            }
            self.deliver_session(mid, c, u.session, u.conv_id, u.max, out)
                .await?;
        }
        Ok(c.unfinished.is_empty())
    }

    /// `mid`'s views of their fan groups (all of them, or one).
    async fn group_views(
        &self,
        mid: u64,
        group_id: Option<u64>,
    ) -> Result<Vec<crate::store::SessionRow>> {
        Ok(self
            .store
            .group_sessions(
                mid,
                &GroupQuery {
                    group_id,
                    after: None,
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
        let mut begin = match cursor.delivered.get(&session).copied() {
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
                if m.msg_key <= cursor.start_key {
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
            if out.len() >= MAX_PER_LOOK {
                // Enough for this look: the rest of the session comes next.
                cursor.delivered.insert(session, begin);
                cursor.unfinished.push(Unfinished {
                    session,
                    conv_id,
                    max,
                });
                return Ok(());
            }
        }
        cursor.delivered.insert(session, max.max(begin));
        Ok(())
    }
}

/// One open stream of a user's new messages ([`Service::open_events`]).
pub struct EventStream {
    svc: std::sync::Arc<Service>,
    mid: u64,
    sessdata: Option<String>,
    changes: Subscription,
    closing: tokio::sync::watch::Receiver<bool>,
    cursor: Cursor,
    pending: std::collections::VecDeque<MessageEvent>,
    /// Look before waiting (the first look, and after a write that concerns the caller).
    look_now: bool,
    next_poll: tokio::time::Instant,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.svc.unsubscribe(self.mid, &self.changes);
    }
}

impl EventStream {
    /// The key the stream starts after.
    pub fn start_key(&self) -> u64 {
        self.cursor.start_key
    }

    /// The next message to send; `None` ends the stream (shutdown, the login ended, or a
    /// newer stream of the user took its place).
    pub async fn next(&mut self) -> Option<MessageEvent> {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if tokio::time::Instant::now() >= self.next_poll {
                // The login may have ended meanwhile (checked while messages flow too).
                self.next_poll = tokio::time::Instant::now() + self.svc.events_poll();
                match self.svc.authenticate(self.sessdata.as_deref()).await {
                    Ok(c) if c.mid == self.mid => {}
                    _ => return None,
                }
                if self.pending.is_empty() {
                    self.look_now = true;
                }
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            // A full look (the first one, every poll, and when changes were missed), or a look
            // at the sessions this process's writes changed.
            let mut full = std::mem::take(&mut self.look_now);
            let mut changed: Vec<Changed> = Vec::new();
            if !full {
                let evicted = self.changes.evicted.clone();
                tokio::select! {
                    _ = self.closing.changed() => return None,
                    _ = evicted.notified() => return None,
                    r = self.changes.user.recv() => match r {
                        Ok(c) => changed.push(c),
                        Err(RecvError::Lagged(_)) => full = true,
                        Err(RecvError::Closed) => return None,
                    },
                    r = self.changes.groups.recv() => match r {
                        Ok(Changed::Group(g)) if !self.cursor.may_concern(g) => continue,
                        Ok(c) => changed.push(c),
                        Err(RecvError::Lagged(_)) => full = true,
                        Err(RecvError::Closed) => return None,
                    },
                    // The poll: checked at the top of the loop.
                    _ = tokio::time::sleep_until(self.next_poll) => continue,
                }
            }
            // Whatever else was written meanwhile is in this look.
            for rx in [&mut self.changes.user, &mut self.changes.groups] {
                loop {
                    match rx.try_recv() {
                        Ok(Changed::Group(g)) if !self.cursor.may_concern(g) => {}
                        Ok(c) if !changed.contains(&c) => changed.push(c),
                        Ok(_) => {}
                        Err(TryRecvError::Lagged(_)) => full = true,
                        Err(_) => break,
                    }
                }
            }
            let events = if full {
                self.svc.new_events(self.mid, &mut self.cursor).await
            } else {
                self.svc
                    .events_of(self.mid, &mut self.cursor, &changed)
                    .await
            };
            match events {
                Ok(events) => {
                    self.pending.extend(events);
                    // Cut short: the next look goes on at once.
                    self.look_now = self.cursor.behind();
                }
                Err(e) => {
                    // Looked at again at the next poll.
                    tracing::warn!(mid = self.mid, error = %e, "event stream look failed");
                }
            }
        }
    }
}
