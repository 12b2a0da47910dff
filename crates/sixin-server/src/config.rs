//! Configuration: defaults, then a TOML file, then `SIXIN_*` environment variables, then the
//! command line.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// How WBI signatures (`w_rid`, `wts`) on incoming requests are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WbiMode {
    /// Signatures are not checked.
    #[default]
    Ignore,
    /// A signature that is present must be right.
    Verify,
    /// Every API request must carry a right signature.
    Require,
}

/// When a send is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Committed to the database: survives a killed process.
    #[default]
    Process,
    /// Also flushed to stable storage (fsync) before the answer: survives power loss.
    Power,
}

/// A keyword rule that adds `key_hit_infos` to a send answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordRule {
    pub rule_id: u64,
    pub keywords: Vec<String>,
    pub toast: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address `sixin serve` listens on.
    pub listen: String,
    /// `sqlite://PATH` or `postgres://...`.
    pub database: String,
    /// Enables the admin clock endpoints.
    pub test_mode: bool,
    /// Bearer token of the admin API; empty disables the admin API (403).
    pub admin_token: String,
    pub wbi: WbiMode,
    pub durability: Durability,
    /// Secret the rotating WBI keys are derived from; empty picks a random one per start.
    pub wbi_secret: String,
    /// How long after sending a message its sender may recall it.
    pub recall_window_secs: i64,
    pub login_ttl_days: i64,
    /// Hosts image messages may point at; `*.` matches any subdomain.
    pub image_hosts: Vec<String>,
    /// Largest `msg[content]` accepted, in bytes.
    pub max_content_bytes: usize,
    /// An extra emoji catalog (same format as data/emoji.json) merged over the default one.
    pub emoji_file: String,
    pub keyword_rules: Vec<KeywordRule>,
    /// Database connections (PostgreSQL) or read connections (SQLite).
    pub max_connections: u32,
    /// Threads that run requests in `sixin serve`; 0 means three per CPU core. SQLite reads
    /// run on these threads and may wait for the disk, so there are more of them than cores.
    pub workers: usize,
    /// Messages one sender may send per second (more → 21020).
    pub sends_per_second: u64,
    /// Messages one sender may send per day to people who don't follow them (more → 21046).
    /// Days are calendar days in UTC+8.
    pub daily_sends_to_strangers: u64,
    /// Read-only mode: sends get 21028 (the admin API can also switch it at run time).
    pub maintenance: bool,
    /// A message from someone the receiver doesn't follow that contains one of these goes to
    /// the receiver's dustbin (intercepted).
    pub spam_keywords: Vec<String>,
    /// Whether users may send messages to the built-in system accounts.
    pub system_accounts_accept_messages: bool,
    /// How often (ms) an event stream (`/sixin/v1/events`) looks for messages it was not told
    /// about (stored by other processes sharing the database), and checks its login again.
    pub events_poll_ms: u64,
}

/// Request threads per CPU core when `workers` is 0 (see docs/benchmarks.md: with one per
/// core, a read waiting for the disk leaves its core idle).
pub const WORKERS_PER_CORE: usize = 3;

pub const PAYMENT_TOAST: &str = "【温馨提示】为保障消费者权益，根据平台规则，如创作者在与消费者沟通中进行发布要求非法转账、欺诈转账等违规行为，平台有权对此进行处罚，感谢您的理解。";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database: "sqlite://./sixin-data/sixin.db".into(),
            test_mode: false,
            admin_token: String::new(),
            wbi: WbiMode::Ignore,
            durability: Durability::Process,
            wbi_secret: String::new(),
            recall_window_secs: 120,
            login_ttl_days: 180,
            image_hosts: vec!["*.hdslb.com".into(), "*.biliimg.com".into()],
            max_content_bytes: 2000,
            emoji_file: String::new(),
            keyword_rules: vec![KeywordRule {
                rule_id: 2,
                keywords: vec![
                    "支付宝".into(),
                    "微信转账".into(),
                    "银行卡".into(),
                    "转账".into(),
                ],
                toast: PAYMENT_TOAST.into(),
            }],
            max_connections: 8,
            workers: 0,
            sends_per_second: 5,
            daily_sends_to_strangers: 100,
            maintenance: false,
            spam_keywords: vec!["兼职刷单".into(), "日结工资".into(), "加我微信领取".into()],
            system_accounts_accept_messages: false,
            events_poll_ms: 2000,
        }
    }
}

impl Config {
    /// Defaults, then `file` (when given), then `SIXIN_*` variables (`SIXIN_ADMIN_TOKEN`,
    /// `SIXIN_DATABASE`, ...).
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig.merge(Env::prefixed("SIXIN_"))
            .extract()
            .map_err(Box::new)
    }

    /// How many threads run requests: `workers`, or three per CPU core when it is 0.
    pub fn worker_threads(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        WORKERS_PER_CORE * cores
    }

    /// The documented default configuration file.
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&Config::default()).unwrap_or_default();
        format!(
            "# sixin configuration. Every key is optional; environment variables SIXIN_<KEY>\n\
             # (e.g. SIXIN_ADMIN_TOKEN) override this file, and command-line flags override both.\n\
             # wbi: ignore | verify | require. durability: process | power.\n\n{body}"
        )
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_parses_back_to_the_defaults() {
        let parsed: Config = toml::from_str(&Config::default_toml()).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn workers_default_to_three_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(Config::default().worker_threads(), 3 * cores);
        let set = Config {
            workers: 5,
            ..Config::default()
        };
        assert_eq!(set.worker_threads(), 5);
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
