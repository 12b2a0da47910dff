//! The rules of the service: who may do what, in which order the checks run, and what each
//! operation changes. No SQL and no HTTP here: the store does the former, `http` the latter.

mod accounts;
pub mod events;
pub mod groups;
mod history;
pub mod relations;
mod send;
mod sessions;
pub mod system;

use std::sync::Arc;

use sixin_proto::emoji::Catalog;

use crate::clock::Clock;
use crate::config::Config;
use crate::ids::KeyGen;
use crate::store::{Store, StoreError};

pub use accounts::{Caller, LoginCookies, NewUserRequest, RelationPatch};
pub use history::FetchRequest;
pub use relations::RelationAct;
pub use send::{msg_source_of, SendRequest};
pub use sessions::{SessionsRequest, UnreadRequest};

/// Everything a domain rule can fail with. Exactly one function (in `http`) turns these into
/// `{code, message}` answers.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("not logged in")]
    NotLoggedIn,
    #[error("csrf check failed")]
    Csrf,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("wbi signature missing or wrong")]
    Forbidden,
    #[error("message type cannot be sent")]
    UnsupportedMsgType,
    #[error("cannot send to yourself")]
    SendToSelf,
    #[error("content too long")]
    TooLong,
    #[error("image url not allowed")]
    BadImage,
    #[error("msg_key not found")]
    MsgKeyNotFound,
    #[error("already recalled")]
    AlreadyRecalled,
    #[error("recall window passed")]
    RecallExpired,
    #[error("not a member of the group")]
    NotGroupMember,
    #[error("the group is dissolved")]
    GroupDissolved,
    #[error("no such session")]
    SessionNotFound,
    #[error("not found")]
    NotFound,
    #[error("the receiver's privacy settings refuse the caller")]
    PrivacyBlocked,
    #[error("the caller blocked the receiver")]
    YouBlocked,
    #[error("one message until the receiver replies or follows")]
    OneMessageLimit,
    #[error("sending too fast")]
    TooFast,
    #[error("daily limit to strangers reached")]
    DailyLimit,
    #[error("maintenance mode")]
    Maintenance,
    #[error("relation with oneself")]
    SelfRelation,
    #[error("follow refused: blocked")]
    FollowBlocked,
    #[error("already followed")]
    AlreadyFollowed,
    #[error("already blocked")]
    AlreadyBlocked,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, DomainError>;

/// The service: configuration, clock, ids and storage, shared by every request.
pub struct Service {
    pub store: Arc<dyn Store>,
    pub clock: Arc<Clock>,
    pub config: Arc<Config>,
    pub keys: Arc<KeyGen>,
    pub emoji: Catalog,
    wbi_secret: String,
    logins: LoginCache,
    /// What writes of this process change, for event streams ([`events`]).
    changes: events::Changes,
    /// Set when the server shuts down: event streams end.
    closing: tokio::sync::watch::Sender<bool>,
}

/// Logins recently read from the store, so authenticating a request rarely costs a query.
/// An entry lives a few seconds: a revocation made through another process sharing the
/// database takes effect within that time (one made here, at once).
///
/// Entries are found by the cookie's value as sent, so a request whose login is cached
/// neither decodes nor hashes it; each entry keeps the login's hash (what the store knows it
/// by) for revocations.
pub(crate) struct LoginCache {
    entries: std::sync::RwLock<std::collections::HashMap<String, CachedLogin>>,
    ttl: std::time::Duration,
}

struct CachedLogin {
    hash: String,
    login: crate::store::Login,
    at: std::time::Instant,
}

impl LoginCache {
    const MAX_ENTRIES: usize = 100_000;

    fn new(ttl: std::time::Duration) -> Self {
        LoginCache {
            entries: Default::default(),
            ttl,
        }
    }

    /// The login of the cookie value `sent`, if cached and fresh.
    pub(crate) fn get(&self, sent: &str) -> Option<crate::store::Login> {
        let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
        map.get(sent)
            .filter(|e| e.at.elapsed() < self.ttl)
            .map(|e| e.login.clone())
    }

    /// Caches `login`, found by the hash `hash` of the cookie value `sent`.
    pub(crate) fn put(&self, sent: &str, hash: String, login: crate::store::Login) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX_ENTRIES {
            map.retain(|_, e| e.at.elapsed() < self.ttl);
            if map.len() >= Self::MAX_ENTRIES {
                map.clear();
            }
        }
        let at = std::time::Instant::now();
        map.insert(sent.to_string(), CachedLogin { hash, login, at });
    }

    /// Forgets the login with the hash `hash`, under whichever cookie values it was cached.
    pub(crate) fn forget(&self, hash: &str) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.hash != hash);
    }

    pub(crate) fn forget_mid(&self, mid: u64) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| e.login.mid != mid);
    }
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<Clock>,
        config: Arc<Config>,
        keys: Arc<KeyGen>,
        emoji: Catalog,
    ) -> Service {
        let wbi_secret = if config.wbi_secret.is_empty() {
            hex::encode(rand::random::<[u8; 16]>())
        } else {
            config.wbi_secret.clone()
        };
        Service {
            store,
            clock,
            config,
            keys,
            emoji,
            wbi_secret,
            logins: LoginCache::new(std::time::Duration::from_secs(5)),
            changes: events::Changes::default(),
            closing: tokio::sync::watch::channel(false).0,
        }
    }

    /// The WBI keys (img_key, sub_key) of the UTC day `day` (days since the epoch). Keys rotate
    /// daily; a request signed with yesterday's keys is still accepted.
    pub fn wbi_keys(&self, day: i64) -> (String, String) {
        use md5::{Digest, Md5};
        let k = |what: &str| hex::encode(Md5::digest(format!("{}:{what}:{day}", self.wbi_secret)));
        (k("img"), k("sub"))
    }

    pub fn wbi_day(&self) -> i64 {
        self.clock.now_secs().div_euclid(86_400)
    }

    /// Checks the signature of a request's query pairs against today's and yesterday's keys.
    pub fn verify_wbi(&self, pairs: &[(String, String)]) -> Result<()> {
        let day = self.wbi_day();
        let signed_with = |d: i64| {
            let (img, sub) = self.wbi_keys(d);
            sixin_proto::wbi::verify(pairs, &sixin_proto::wbi::mixin_key(&img, &sub)).is_ok()
        };
        if signed_with(day) || signed_with(day - 1) {
            Ok(())
        } else {
            Err(DomainError::Forbidden)
        }
    }
}
