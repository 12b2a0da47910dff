//! Persistence: one domain-level trait, implemented over SQL for SQLite and PostgreSQL.
//!
//! The store holds no rules and knows no error codes: it stores and reads what the domain layer
//! decided. It does own the atomicity of each write (a message, its seqno, and the session rows
//! it touches commit together).

mod exec;
mod sql;
mod walvfs;

use async_trait::async_trait;

pub use sql::{open, KeyFn, SqlStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("stale: the row changed underneath")]
    Stale,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The insert's rate counter at this index of `Insert::hits` went over its limit (the
    /// counters up to it were counted, nothing was inserted).
    #[error("rate limit {0} reached")]
    Limited(usize),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub const SESSION_USER: u8 = 1;
pub const SESSION_GROUP: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub mid: u64,
    pub name: String,
    pub face: String,
    pub sign: String,
    pub level: u8,
    pub password_hash: Option<String>,
    /// 0 for people; the upstream system account type for built-in senders.
    pub system_msg_type: u8,
    pub created_ms: i64,
    /// 0: anyone may message me; 1: only people I follow.
    pub privacy: u8,
    /// Flagged by an operator: messages from this user are intercepted.
    pub flagged: bool,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    /// `None` picks the next free mid.
    pub mid: Option<u64>,
    pub name: String,
    pub face: String,
    pub sign: String,
    pub level: u8,
    pub password_hash: Option<String>,
    pub system_msg_type: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub mid: u64,
    pub bili_jct: String,
    pub expires_ms: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    pub follow: bool,
    pub special: bool,
    pub block: bool,
}

/// What the send checks need to know about two users, read in two primary-key queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairState {
    /// a's relation towards b, and b's towards a.
    pub a_to_b: Relation,
    pub b_to_a: Relation,
    /// Hand-written messages each has sent in their conversation.
    pub a_manual_sent: u64,
    pub b_manual_sent: u64,
    /// b released a from the dustbin (b's session with a is trusted).
    pub b_trusts_a: bool,
}

/// Everything a send to a user reads before it writes (its receiver, the pair's relations and
/// sessions, the sender's flag, a server switch) and the receiver's automatic replies, which it
/// may send after: read together, on SQLite in one read transaction of one connection.
#[derive(Debug, Clone, Default)]
pub struct SendReads {
    pub receiver: Option<User>,
    /// The sender is flagged (their messages to strangers are intercepted).
    pub sender_flagged: bool,
    /// a is the sender, b the receiver.
    pub pair: PairState,
    /// The value of the server flag asked for (0 when unset).
    pub flag: i64,
    pub receiver_replies: AutoReplies,
}

/// The checks of a send to a person, run on what the send read ([`SendReads`]): the insert to
/// make, or the domain's answer refusing it.
pub type SendCheck =
    Box<dyn FnOnce(&SendReads) -> std::result::Result<Insert, crate::domain::DomainError> + Send>;

/// What [`Store::send_to_person`] did: what it read, and the messages it stored or the checks'
/// refusal.
pub struct PersonSend {
    pub reads: SendReads,
    pub stored: std::result::Result<Vec<StoredMessage>, crate::domain::DomainError>,
    /// Whether what was stored went to the receiver's dustbin (as the checks decided).
    pub intercepted: bool,
}

impl PersonSend {
    /// A send whose checks passed, stored as `insert` said.
    pub fn stored(reads: SendReads, insert: &Insert, stored: Vec<StoredMessage>) -> PersonSend {
        PersonSend {
            reads,
            stored: Ok(stored),
            intercepted: insert.intercept_receiver,
        }
    }
}

/// A message as stored: the wire message plus who may see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub conv_id: i64,
    pub msg: sixin_proto::Message,
    /// `Some(mid)`: only that participant sees it (system tips).
    pub visible_to: Option<u64>,
}

/// Who a message is between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A one-to-one conversation between two users.
    Pair { a: u64, b: u64 },
    /// A fan group's conversation.
    Group { group_id: u64, conv_id: i64 },
}

/// A message to store. Seqno and key are allocated by the store inside the transaction.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub sender_uid: u64,
    pub receiver_type: u8,
    pub receiver_id: u64,
    pub msg_type: u32,
    pub content: String,
    pub at_uids: Option<Vec<u64>>,
    pub notify_code: String,
    pub new_face_version: u8,
    pub msg_source: u32,
    pub visible_to: Option<u64>,
    pub dev_id: String,
    /// Written by hand (not automatic, not a recall): counts for the one-message rule.
    pub manual: bool,
    /// A push (notification content, msg_source 5 or 6); `official` for broadcasts (5).
    pub push: bool,
    pub official: bool,
}

/// One insert: the messages (stored in order, consecutive seqnos) and the clock reading.
#[derive(Debug, Clone)]
pub struct Insert {
    pub messages: Vec<NewMessage>,
    pub now_us: i64,
    /// Mark the conversation read for the sender up to the last inserted message it can see.
    pub sender_reads: bool,
    /// For a recall: the key of the message whose status becomes 1. The insert fails with
    /// `Stale` when that message is no longer in status 0.
    pub recall_target: Option<u64>,
    /// Put the receiver's session in the dustbin (unless they trust the sender).
    pub intercept_receiver: bool,
    /// Fail with `Conflict` when the sender has already written this many messages by hand
    /// in the conversation (checked under the conversation's lock).
    pub max_manual_sent: Option<u64>,
    /// Fan groups: fail with `Stale` unless the group is open and this sender is a member
    /// (checked under the conversation's lock, so nothing lands after a freeze or dissolve).
    pub member_of_open_group: Option<u64>,
    /// Rate counters to count in the same transaction, in order, before anything is
    /// inserted; the first that goes over its limit stops the insert with `Limited`.
    pub hits: Vec<RateHit>,
}

impl Insert {
    /// Messages stored as they are: no read mark, recall, interception, rule or counter.
    pub fn plain(messages: Vec<NewMessage>, now_us: i64) -> Insert {
        Insert {
            messages,
            now_us,
            sender_reads: false,
            recall_target: None,
            intercept_receiver: false,
            max_manual_sent: None,
            member_of_open_group: None,
            hits: Vec::new(),
        }
    }
}

/// One hit on a rate counter (`key`, in window `win`), allowed up to `limit` per window.
#[derive(Debug, Clone)]
pub struct RateHit {
    pub key: String,
    pub win: i64,
    pub limit: u64,
}

/// Which fan-group sessions a list returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupQuery {
    /// One group only.
    pub group_id: Option<u64>,
    /// Exclusive bounds on the session time (µs).
    pub after: Option<i64>,
    pub before: Option<i64>,
    /// Include sessions the owner removed (and that have had no message since).
    pub include_removed: bool,
}

/// Which sessions a list returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// People and system accounts.
    Users {
        /// `Some(true)`: followed people and system accounts; `Some(false)`: the rest.
        followed: Option<bool>,
        system: Option<bool>,
    },
    /// Intercepted sessions (the dustbin).
    Intercepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    SessionTs,
    AckTs,
}

impl SortBy {
    /// The time a list sorted this way orders (and pages) a session by.
    pub fn time_of(self, r: &SessionRow) -> i64 {
        match self {
            SortBy::SessionTs => r.session_ts,
            SortBy::AckTs => r.ack_ts,
        }
    }

    /// Puts unpinned sessions in list order: newest first, the talker breaking ties.
    pub fn sort(self, rows: &mut [SessionRow]) {
        rows.sort_by(|a, b| {
            self.time_of(b)
                .cmp(&self.time_of(a))
                .then(b.talker_id.cmp(&a.talker_id))
        });
    }
}

/// What [`Store::first_sessions`] reads.
#[derive(Debug)]
pub struct FirstSessions {
    pub pinned: Vec<SessionRow>,
    pub page: Vec<SessionRow>,
    pub talkers_present: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct SessionQuery {
    pub kind: ListKind,
    pub sort: SortBy,
    /// Exclusive lower bound on the sort time.
    pub after: Option<i64>,
    /// Exclusive upper bound on the sort time.
    pub before: Option<i64>,
    /// `true`: only pinned sessions (unbounded); `false`: only unpinned ones.
    pub pinned: bool,
    pub limit: u32,
}

/// One user's stored view of one conversation, with what a session object needs joined in.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub owner: u64,
    pub session_type: u8,
    pub talker_id: u64,
    pub conv_id: Option<i64>,
    pub ack_seqno: u64,
    pub ack_ts: i64,
    pub session_ts: i64,
    pub last_seqno: u64,
    pub unread_count: u64,
    pub top_ts: i64,
    pub is_dnd: bool,
    pub push_setting: u8,
    pub removed: bool,
    pub is_intercept: bool,
    pub is_trust: bool,
    pub max_seqno: u64,
    /// Whether the owner follows the talker.
    pub follows: bool,
    pub talker_system_type: u8,
    pub last_msg: Option<sixin_proto::Message>,
    pub manual_sent: u64,
    pub biz_unread: u64,
    pub official_unread: u64,
    /// Fan-group sessions: the group and the newest unread message mentioning the owner.
    pub group: Option<GroupView>,
}

/// What a member's group session shows of the group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    pub cover: String,
    pub group_type: u8,
    pub state: u8,
    pub joined_us: i64,
    /// 0 while a member; else the seqno their view ends at.
    pub left_seqno: u64,
    pub at_seqno: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub group_id: u64,
    pub conv_id: i64,
    pub owner: u64,
    pub name: String,
    pub cover: String,
    pub group_type: u8,
    /// 0 normal, 1 frozen, 2 dissolved.
    pub state: u8,
    pub max_seqno: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub joined_us: i64,
    /// 0 while a member.
    pub left_seqno: u64,
}

/// A per-user session flag to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFlag {
    Removed(bool),
    /// A fan-group session removed while its view ended at this seqno: it stays hidden until
    /// a newer message arrives.
    GroupRemovedAt(u64),
    TopTs(i64),
    Dnd(bool),
    PushSetting(u8),
}

/// A session that moved (see [`Store::sessions_moved_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedSession {
    pub talker_id: u64,
    pub conv_id: i64,
    pub session_ts: i64,
    /// The conversation's newest seqno.
    pub max_seqno: u64,
}

/// The window of a history read; bounds are exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub begin: Option<u64>,
    pub end: Option<u64>,
    /// `true`: the oldest messages after `begin`; `false`: the newest before `end`.
    pub oldest_first: bool,
    pub limit: u32,
    /// Only system tips (msg_type 18).
    pub tips_only: bool,
}

/// Unread messages of one session, with what `single_unread` splits them by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadRow {
    pub talker_id: u64,
    pub unread: u64,
    pub biz_unread: u64,
    pub official_unread: u64,
    pub push_setting: u8,
    pub follows: bool,
    pub talker_system_type: u8,
    pub is_intercept: bool,
}

/// A user's auto-replies (empty text: off).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AutoReplies {
    #[serde(default)]
    pub follow_reply: String,
    #[serde(default)]
    pub message_reply: String,
    #[serde(default)]
    pub keyword_replies: Vec<KeywordReply>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeywordReply {
    pub keyword: String,
    pub reply: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is, for logs and `/healthz`.
    fn backend(&self) -> &'static str;

    /// Leases a free Snowflake node id for this process.
    async fn lease_node_id(&self, instance: &str, now_ms: i64, lease_ms: i64) -> Result<u16>;
    async fn renew_node_id(
        &self,
        node: u16,
        instance: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<()>;

    async fn create_user(&self, user: NewUser, now_ms: i64) -> Result<User>;
    /// Creates or updates a built-in account (system senders).
    async fn upsert_system_user(&self, user: NewUser, now_ms: i64) -> Result<()>;
    async fn user(&self, mid: u64) -> Result<Option<User>>;
    async fn users(&self, mids: &[u64]) -> Result<Vec<User>>;
    async fn user_count(&self) -> Result<u64>;

    async fn create_login(&self, sessdata_hash: &str, login: &Login, now_ms: i64) -> Result<()>;
    async fn login(&self, sessdata_hash: &str) -> Result<Option<Login>>;
    async fn revoke_logins(&self, mid: u64) -> Result<u64>;
    /// Revokes one login; false when it is unknown or already revoked.
    async fn revoke_login(&self, sessdata_hash: &str) -> Result<bool>;

    async fn relation(&self, mid: u64, fid: u64) -> Result<Relation>;
    async fn pair_state(&self, a: u64, b: u64) -> Result<PairState>;
    /// What a send from `sender` to `receiver` reads (see [`SendReads`]), with the server
    /// flag `flag`.
    async fn send_reads(&self, sender: u64, receiver: u64, flag: &str) -> Result<SendReads>;
    async fn set_relation(&self, mid: u64, fid: u64, rel: Relation, now_ms: i64) -> Result<()>;
    /// (following, followers) counts of `mid`.
    async fn follow_counts(&self, mid: u64) -> Result<(u64, u64)>;

    /// Stores messages between `peer` atomically, with their seqnos, keys (`key_of` is called
    /// once per message in order) and session updates. Returns them as stored.
    async fn insert_messages(
        &self,
        peer: Peer,
        insert: Insert,
        key_of: KeyFn,
    ) -> Result<Vec<StoredMessage>>;

    /// A send to a person: reads what its checks need (as [`Store::send_reads`]), runs
    /// `check` on it and stores the insert `check` returns (as [`Store::insert_messages`]).
    /// Whenever the pair's sessions may decide the one-message rule, they are read inside
    /// the write transaction, after any earlier send between the two has landed: of two
    /// strangers writing each other at once, only the first is under the rule. (SQLite reads
    /// beside the writer first and hands only those sends to the writer's own reads;
    /// PostgreSQL reads them in the send's transaction, the pair's sends taking turns on an
    /// advisory lock.) An insert's own refusals (`Limited`, `Conflict`) are errors, as from
    /// [`Store::insert_messages`].
    async fn send_to_person(
        &self,
        sender: u64,
        receiver: u64,
        flag: &'static str,
        check: SendCheck,
        key_of: KeyFn,
    ) -> Result<PersonSend>;

    async fn message_by_key(&self, msg_key: u64) -> Result<Option<StoredMessage>>;
    /// The conversation between two users, if they ever exchanged a message.
    async fn pair_conversation(&self, a: u64, b: u64) -> Result<Option<i64>>;
    /// Messages of a conversation visible to `viewer` in the window, newest first.
    async fn messages(
        &self,
        conv_id: i64,
        viewer: u64,
        window: Window,
    ) -> Result<Vec<sixin_proto::Message>>;

    async fn session(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
    ) -> Result<Option<SessionRow>>;
    async fn sessions(&self, owner: u64, query: &SessionQuery) -> Result<Vec<SessionRow>>;
    /// A first page: the pinned sessions (`pinned`, newest pin first), the page (`page`, in
    /// its order) and which of `talkers` have sessions with messages (as
    /// [`Store::talkers_with_sessions`]), read together.
    async fn first_sessions(
        &self,
        owner: u64,
        pinned: &SessionQuery,
        page: &SessionQuery,
        talkers: &[u64],
    ) -> Result<FirstSessions>;
    /// Whether any user or fan-group session of `owner` moved after `since` (a superset of
    /// what `sessions_since` and `group_sessions` with `after: since` return): the cheap
    /// answer to an idle poller.
    async fn any_session_since(&self, owner: u64, since: i64) -> Result<bool>;
    /// Sessions with `session_ts > since`, newest first.
    async fn sessions_since(&self, owner: u64, since: i64, limit: u32) -> Result<Vec<SessionRow>>;
    /// The visible, not intercepted user sessions of `owner` whose `(session_ts, talker_id)`
    /// comes after `after`, oldest first: what an event stream of `owner` looks at.
    async fn sessions_moved_after(
        &self,
        owner: u64,
        after: (i64, u64),
        limit: u32,
    ) -> Result<Vec<MovedSession>>;
    /// The session of `owner` with `talker`, if it is one [`Store::sessions_moved_after`]
    /// would choose.
    async fn moved_session(&self, owner: u64, talker: u64) -> Result<Option<MovedSession>>;
    /// Which of `talkers` `owner` has a (visible) session with.
    async fn talkers_with_sessions(&self, owner: u64, talkers: &[u64]) -> Result<Vec<u64>>;
    async fn unread_rows(&self, owner: u64) -> Result<Vec<UnreadRow>>;

    /// Moves the read mark to `min(ack, max_seqno)` (or the max when `None`) unless it is
    /// already further, recounting unread messages. Returns false when there is no session.
    async fn ack(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
        ack: Option<u64>,
        now_us: i64,
    ) -> Result<bool>;
    /// Sets a per-user flag, creating the settings row when needed.
    async fn set_session_flag(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
        flag: SessionFlag,
    ) -> Result<()>;
    /// DND settings of `owner` towards the given talkers (unset ones are left out).
    async fn dnd_settings(
        &self,
        owner: u64,
        session_type: u8,
        talkers: &[u64],
    ) -> Result<Vec<(u64, bool)>>;

    /// Adds one to the counter `key` in window `win` (a new window starts from 1) and returns
    /// the count, atomically across processes.
    async fn count_hit(&self, key: &str, win: i64) -> Result<u64>;
    async fn server_flag(&self, name: &str) -> Result<i64>;
    async fn set_server_flag(&self, name: &str, value: i64) -> Result<()>;
    async fn set_user_privacy(&self, mid: u64, privacy: u8) -> Result<()>;
    async fn set_user_flagged(&self, mid: u64, flagged: bool) -> Result<()>;
    async fn auto_replies(&self, mid: u64) -> Result<AutoReplies>;
    async fn set_auto_replies(&self, mid: u64, replies: &AutoReplies) -> Result<()>;
    /// Records that `owner` auto-replied to `counterpart` on `day`; false when it already did.
    async fn claim_daily_reply(&self, owner: u64, counterpart: u64, day: i64) -> Result<bool>;
    /// Sets (or clears) the dustbin flag of a session; releasing also trusts it.
    async fn set_intercept(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
        intercept: bool,
    ) -> Result<bool>;
    /// The talkers of `owner`'s intercepted sessions.
    async fn intercepted_talkers(&self, owner: u64) -> Result<Vec<u64>>;

    /// Creates a fan group (its conversation, and the owner as first member) and returns it.
    async fn create_group(
        &self,
        owner: u64,
        name: &str,
        cover: &str,
        group_type: u8,
        now_us: i64,
    ) -> Result<Group>;
    async fn group(&self, group_id: u64) -> Result<Option<Group>>;
    async fn set_group_state(&self, group_id: u64, state: u8) -> Result<()>;
    async fn member(&self, group_id: u64, mid: u64) -> Result<Option<Member>>;
    /// Adds (or re-admits) a member; their read mark starts at the group's newest message.
    async fn add_member(&self, group_id: u64, mid: u64, now_us: i64) -> Result<()>;
    /// Ends a membership at `left_seqno`.
    async fn end_membership(
        &self,
        group_id: u64,
        mid: u64,
        left_seqno: u64,
        now_us: i64,
    ) -> Result<()>;
    async fn member_count(&self, group_id: u64) -> Result<u64>;
    /// `owner`'s fan-group sessions (members and former members), filtered like `sessions`.
    async fn group_sessions(&self, owner: u64, q: &GroupQuery) -> Result<Vec<SessionRow>>;
    /// Rows the store wrote for messages since it started (for /metrics and the scale test).
    fn rows_written(&self) -> u64;

    /// Benchmark seeding: plain users `mids` named `u<mid>`, in bulk (existing ones kept).
    async fn seed_users(&self, mids: &[u64], now_ms: i64) -> Result<()>;
    /// Benchmark seeding: `count` texts alternating between `a` and `b` (a first), stamped from
    /// `first_us` a millisecond apart, both sides read to the end. Writes in bulk, bypassing
    /// the send rules; for empty conversations only.
    async fn seed_conversation(
        &self,
        a: u64,
        b: u64,
        count: u64,
        first_us: i64,
        key_of: &(dyn Fn() -> u64 + Send + Sync),
    ) -> Result<()>;

    /// Refreshes the planner's statistics (after bulk loads).
    async fn analyze(&self) -> Result<()>;

    /// Liveness probe of the database.
    async fn ping(&self) -> Result<()>;
}
