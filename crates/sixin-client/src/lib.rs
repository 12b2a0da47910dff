//! An async client for the Bilibili private-message web API.
//!
//! It talks to the official hosts (`https://api.vc.bilibili.com` and `https://api.bilibili.com`)
//! or to a sixin server (one base URL for everything), with the same typed calls. It is polite
//! by default towards the official hosts (about one request a second, backing off on 21020,
//! -412 and -509), signs requests with WBI keys fetched from `nav` and cached, keeps every id a
//! `u64`, and pages through whole histories without gaps or duplicates.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sixin_client::Error> {
//! use sixin_client::{Client, Credentials};
//! let client = Client::builder()
//!     .server("http://127.0.0.1:8080")
//!     .credentials(Credentials::from_env()?)
//!     .build()?;
//! let unread = client.single_unread(Default::default()).await?;
//! println!("{} unread from people you follow", unread.follow_unread);
//! # Ok(()) }
//! ```

mod api;
mod credentials;
mod error;
mod events;
mod paging;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use sixin_proto::envelope::Data;
use sixin_proto::Envelope;
use tokio::sync::Mutex;
use url::Url;

pub use api::*;
pub use credentials::Credentials;
pub use error::Error;
pub use events::{Events, MessageEvent};
pub use paging::{Direction, HistoryPager};
pub use sixin_proto as proto;

pub type Result<T> = std::result::Result<T, Error>;

pub const OFFICIAL_VC: &str = "https://api.vc.bilibili.com";
pub const OFFICIAL_API: &str = "https://api.bilibili.com";
const USER_AGENT: &str = concat!("sixin-client/", env!("CARGO_PKG_VERSION"));

/// Which upstream host a path lives on (one and the same for a sixin server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Host {
    Vc,
    Api,
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    vc: String,
    api: String,
    credentials: Option<Credentials>,
    min_interval: Option<Duration>,
    max_retries: u32,
    timeout: Duration,
    sign_reads: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            vc: OFFICIAL_VC.into(),
            api: OFFICIAL_API.into(),
            credentials: None,
            min_interval: None,
            max_retries: 4,
            timeout: Duration::from_secs(20),
            sign_reads: false,
        }
    }
}

impl ClientBuilder {
    /// One base URL for every path: a sixin server.
    pub fn server(mut self, url: &str) -> Self {
        let u = url.trim_end_matches('/').to_string();
        self.vc = u.clone();
        self.api = u;
        self
    }

    /// Separate base URLs for the `api.vc` and `api` hosts.
    pub fn hosts(mut self, vc: &str, api: &str) -> Self {
        self.vc = vc.trim_end_matches('/').into();
        self.api = api.trim_end_matches('/').into();
        self
    }

    pub fn credentials(mut self, c: Credentials) -> Self {
        self.credentials = Some(c);
        self
    }

    /// The least time between two requests. Default: 1 s towards the official hosts, none
    /// towards anything else.
    pub fn min_interval(mut self, d: Duration) -> Self {
        self.min_interval = Some(d);
        self
    }

    /// How often a request answered with 21020, -412 or -509 (or HTTP 412 / 429, or a read
    /// that failed in transit or got a 5xx from a gateway) is tried again, with exponential
    /// back-off from half a second. Default 4. Sends whose answer was lost are reconciled
    /// first (see [`Client::send`]).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// WBI-sign every request, not only sends (which are always signed). Off by default; a
    /// client switches it on by itself the first time a server refuses an unsigned request
    /// with -403.
    pub fn sign_reads(mut self, on: bool) -> Self {
        self.sign_reads = on;
        self
    }

    pub fn build(self) -> Result<Client> {
        let vc = Url::parse(&self.vc)
            .map_err(|e| Error::Config(format!("bad base URL {}: {e}", self.vc)))?;
        let api = Url::parse(&self.api)
            .map_err(|e| Error::Config(format!("bad base URL {}: {e}", self.api)))?;
        let official = vc.host_str().is_some_and(|h| h.ends_with("bilibili.com"))
            || api.host_str().is_some_and(|h| h.ends_with("bilibili.com"));
        let min_interval = self.min_interval.unwrap_or(if official {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        });
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(self.timeout)
            .build()
            .map_err(Error::Transport)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                vc,
                api,
                credentials: self.credentials,
                min_interval,
                max_retries: self.max_retries,
                sign_all: AtomicBool::new(self.sign_reads),
                official,
                last_request: Mutex::new(None),
                wbi: Mutex::new(None),
                attributed: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    vc: Url,
    api: Url,
    credentials: Option<Credentials>,
    min_interval: Duration,
    max_retries: u32,
    /// Sign every request (set by the builder, or after a server refused an unsigned one).
    sign_all: AtomicBool,
    official: bool,
    last_request: Mutex<Option<Instant>>,
    /// (mixin key, fetched at).
    wbi: Mutex<Option<(String, Instant)>>,
    /// msg_keys already returned for reconciled sends, so one stored message is never claimed
    /// by two retried sends.
    attributed: std::sync::Mutex<Vec<u64>>,
}

/// The client. Cheap to clone; clones share pacing and caches.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

const WBI_TTL: Duration = Duration::from_secs(30 * 60);

/// A request to make: where, what, how.
pub(crate) struct Req<'a> {
    pub host: Host,
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    /// `Some` makes it a POST with this form (csrf added).
    pub form: Option<Vec<(String, String)>>,
    pub sign: bool,
}

/// What a single attempt gave.
pub(crate) enum Attempt<T> {
    Done(T),
    Retry(Error),
}

/// The pause before retry `attempt` (0-based): 0.5 s doubling, plus up to a quarter of
/// jitter so clients backing off together don't come back together.
fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.min(6));
    Duration::from_millis(base + rand::random::<u64>() % (base / 4 + 1))
}

impl Client {
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.inner.credentials.as_ref()
    }

    /// Whether every request is WBI-signed (see [`ClientBuilder::sign_reads`]).
    pub fn signs_every_request(&self) -> bool {
        self.inner.sign_all.load(Ordering::Relaxed)
    }

    /// Whether the client talks to the official hosts.
    pub fn is_official(&self) -> bool {
        self.inner.official
    }

    /// The caller's mid, from the credentials.
    pub fn mid(&self) -> Result<u64> {
        self.inner
            .credentials
            .as_ref()
            .and_then(|c| c.mid)
            .ok_or_else(|| Error::Config("the credentials carry no DedeUserID (mid)".into()))
    }

    pub(crate) async fn pace(&self) {
        if self.inner.min_interval.is_zero() {
            return;
        }
        let mut last = self.inner.last_request.lock().await;
        if let Some(t) = *last {
            let wait = self.inner.min_interval.saturating_sub(t.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        *last = Some(Instant::now());
    }

    /// The current WBI mixin key, from `nav` (cached for half an hour).
    pub async fn wbi_mixin_key(&self) -> Result<String> {
        {
            let cache = self.inner.wbi.lock().await;
            if let Some((k, at)) = cache.as_ref() {
                if at.elapsed() < WBI_TTL {
                    return Ok(k.clone());
                }
            }
        }
        let nav = self.nav().await?;
        if nav.wbi_img.img_url.is_empty() || nav.wbi_img.sub_url.is_empty() {
            return Err(Error::Decode("nav carries no WBI keys".into()));
        }
        let img = sixin_proto::wbi::key_from_url(&nav.wbi_img.img_url).unwrap_or_default();
        let sub = sixin_proto::wbi::key_from_url(&nav.wbi_img.sub_url).unwrap_or_default();
        let key = sixin_proto::wbi::mixin_key(img, sub);
        *self.inner.wbi.lock().await = Some((key.clone(), Instant::now()));
        Ok(key)
    }

    fn url(&self, host: Host, path: &str) -> Result<Url> {
        let base = match host {
            Host::Vc => &self.inner.vc,
            Host::Api => &self.inner.api,
        };
        let mut u = base.clone();
        let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
        u.set_path(&joined);
        Ok(u)
    }

    pub(crate) fn url_for(&self, req: &Req<'_>) -> Result<Url> {
        self.url(req.host, req.path)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    fn cookie_header(&self) -> Option<String> {
        self.inner
            .credentials
            .as_ref()
            .map(Credentials::cookie_header)
    }

    /// One HTTP exchange; transport failures are returned as errors, not retried.
    pub(crate) async fn once<T: DeserializeOwned>(&self, req: &Req<'_>) -> Result<Attempt<T>> {
        let mut url = self.url(req.host, req.path)?;
        let mut query = req.query.clone();
        // The key first: fetching it is a request of its own (paced in turn).
        let key = if self.signs(req) {
            Some(self.wbi_mixin_key().await?)
        } else {
            None
        };
        self.pace().await;
        if let Some(key) = key {
            let wts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let (_, signed) = sixin_proto::wbi::sign(&query, wts, &key);
            url.set_query(Some(&signed));
            query.clear();
        } else if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let mut rb = match &req.form {
            Some(form) => {
                let mut form = form.clone();
                let csrf = self
                    .inner
                    .credentials
                    .as_ref()
                    .and_then(|c| c.bili_jct.clone())
                    .ok_or_else(|| {
                        Error::Config("a POST needs bili_jct (the CSRF token)".into())
                    })?;
                form.push(("csrf".into(), csrf.clone()));
                form.push(("csrf_token".into(), csrf));
                self.inner.http.post(url).form(&form)
            }
            None => self.inner.http.get(url),
        };
        if let Some(c) = self.cookie_header() {
            rb = rb.header(reqwest::header::COOKIE, c);
        }
        let resp = rb.send().await.map_err(Error::Transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(Error::Transport)?;
        let env: Envelope<serde_json::Value> = match serde_json::from_str(&text) {
            Ok(e) => e,
            Err(_) if !status.is_success() => {
                let err = Error::Http {
                    status: status.as_u16(),
                    body: truncate(&text),
                };
                // 412 / 429 without an envelope: turned away at the gate (nothing was done),
                // back off like -412.
                return if matches!(status.as_u16(), 412 | 429) {
                    Ok(Attempt::Retry(err))
                } else {
                    Err(err)
                };
            }
            Err(e) => return Err(Error::Decode(format!("{e}: {}", truncate(&text)))),
        };
        if env.code != 0 {
            // Some upstream answers carry the text in `msg` only.
            let message = match (&env.message, &env.msg) {
                (m, Some(alt)) if m.is_empty() => alt.clone(),
                (m, _) => m.clone(),
            };
            let err = Error::Api {
                code: env.code,
                message,
            };
            return Ok(if matches!(env.code, 21020 | -412 | -509) {
                Attempt::Retry(err)
            } else {
                return Err(err);
            });
        }
        // Decode the data from the same text so big numbers never pass through a float.
        let typed: Envelope<T> = serde_json::from_str(&text)
            .map_err(|e| Error::Decode(format!("{e}: {}", truncate(&text))))?;
        match typed.data {
            Data::Value(v) => Ok(Attempt::Done(v)),
            _ => serde_json::from_value(serde_json::Value::Null)
                .map(Attempt::Done)
                .map_err(|_| Error::Decode("answer without data".into())),
        }
    }

    /// Whether this request goes out WBI-signed.
    pub(crate) fn signs(&self, req: &Req<'_>) -> bool {
        req.sign || self.inner.sign_all.load(Ordering::Relaxed)
    }

    /// After a -403 (访问权限不足): an unsigned request is signed from now on, a signed one
    /// gets fresh keys (they rotate). Returns whether trying again may help.
    pub(crate) async fn wbi_refused(&self, signed: bool) -> bool {
        if signed {
            *self.inner.wbi.lock().await = None;
        } else {
            self.inner.sign_all.store(true, Ordering::Relaxed);
        }
        true
    }

    /// A request with the polite retry rules: API back-off codes always; transport failures
    /// only for reads (a POST is never blindly repeated); one more try after a -403 that
    /// signing (or fresh WBI keys) may cure.
    pub(crate) async fn call<T: DeserializeOwned>(&self, req: Req<'_>) -> Result<T> {
        let mut attempt = 0;
        let mut wbi_retried = false;
        loop {
            let signed = self.signs(&req);
            let r = self.once::<T>(&req).await;
            let err = match r {
                Ok(Attempt::Done(v)) => return Ok(v),
                Ok(Attempt::Retry(e)) => e,
                Err(Error::Api { code: -403, .. })
                    if !wbi_retried && self.wbi_refused(signed).await =>
                {
                    wbi_retried = true;
                    continue;
                }
                // A read may always be repeated; a POST whose answer was lost is not.
                Err(e @ Error::Transport(_)) if req.form.is_none() => e,
                Err(
                    e @ Error::Http {
                        status: 500..=599, ..
                    },
                ) if req.form.is_none() => e,
                Err(e) => return Err(e),
            };
            if attempt >= self.inner.max_retries {
                return Err(err);
            }
            tracing::debug!(error = %err, attempt, "retrying after back-off");
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}
