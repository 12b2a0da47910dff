//! Launching servers and talking to them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use sixin_server::{Config, Running};

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Declares a scenario `async fn $name(s: &Server)` as one test per backend.
#[macro_export]
macro_rules! scenario {
    ($name:ident) => {
        $crate::scenario_with!($name, |_| {});
    };
}

/// The same, on servers whose configuration `$tweak` (a `FnOnce(&mut Config)`) adjusts.
#[macro_export]
macro_rules! scenario_with {
    ($name:ident, $tweak:expr) => {
        mod $name {
            // The tweak may name a function of the scenario's module.
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s = $crate::Server::start_sqlite_with($tweak).await;
                super::$name(&s).await;
                s.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(s) = $crate::Server::start_postgres_with($tweak).await else {
                    return;
                };
                super::$name(&s).await;
                s.finish().await;
            }
        }
    };
}

/// A user with a login.
#[derive(Debug, Clone)]
pub struct User {
    pub mid: u64,
    pub name: String,
    pub sessdata: String,
    pub bili_jct: String,
}

impl User {
    /// A user from a login object (`{"mid","name","SESSDATA","bili_jct",...}`).
    pub fn from_login_json(v: &Value) -> User {
        User::from_login(v)
    }

    fn from_login(v: &Value) -> User {
        User {
            mid: v["mid"].as_u64().expect("mid"),
            name: v["name"].as_str().expect("name").to_string(),
            sessdata: v["SESSDATA"].as_str().expect("SESSDATA").to_string(),
            bili_jct: v["bili_jct"].as_str().expect("bili_jct").to_string(),
        }
    }
    pub fn cookie(&self) -> String {
        format!(
            "SESSDATA={}; bili_jct={}; DedeUserID={}",
            self.sessdata, self.bili_jct, self.mid
        )
    }
}

struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Dropping needs async I/O; a scoped runtime on its own thread works from any context.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    pub backend: &'static str,
    pub database_url: String,
    running: Option<Running>,
    _dir: Option<tempdir::TempDir>,
    _pg: Option<PgDatabase>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn test_config(database: String) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        database,
        test_mode: true,
        admin_token: ADMIN_TOKEN.into(),
        max_connections: 4,
        // Scenarios send bursts; the rate-limit scenarios lower these themselves.
        sends_per_second: 1_000_000,
        daily_sends_to_strangers: 1_000_000,
        ..Config::default()
    }
}

/// A minimal temporary directory, removed on drop.
pub mod tempdir {
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let n = super::COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "sixin-test-{}-{}-{}-{}",
                tag,
                std::process::id(),
                n,
                rand_suffix()
            ));
            std::fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    pub fn rand_suffix() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        h.finish()
    }
}

/// The PostgreSQL server tests run against, if any. Under `CI=true` it must be set.
pub fn postgres_url() -> Option<String> {
    match std::env::var("SIXIN_TEST_DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but SIXIN_TEST_DATABASE_URL is not set: the PostgreSQL half of the suite must run");
            }
            eprintln!(
                "SIXIN_TEST_DATABASE_URL not set: skipping the PostgreSQL run of this scenario"
            );
            None
        }
    }
}

/// Creates a fresh database on the PostgreSQL server of `admin_url`; returns its URL and a
/// guard that drops it.
async fn create_pg_database(admin_url: &str) -> (String, PgDatabase) {
    use sqlx::Connection;
    let name = format!(
        "sixin_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        tempdir::rand_suffix() % 1_000_000
    );
    let mut c = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at SIXIN_TEST_DATABASE_URL is unreachable: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(admin_url).expect("SIXIN_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    (
        url.to_string(),
        PgDatabase {
            admin_url: admin_url.to_string(),
            name,
        },
    )
}

impl Server {
    pub async fn start_sqlite() -> Server {
        Server::start_sqlite_with(|_| {}).await
    }

    pub async fn start_sqlite_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempdir::TempDir::new("sqlite");
        let url = format!("sqlite://{}", dir.0.join("sixin.db").display());
        let mut config = test_config(url.clone());
        tweak(&mut config);
        let mut s = Server::launch(config, "sqlite").await;
        s._dir = Some(dir);
        s
    }

    pub async fn start_postgres() -> Option<Server> {
        Server::start_postgres_with(|_| {}).await
    }

    pub async fn start_postgres_with(tweak: impl FnOnce(&mut Config)) -> Option<Server> {
        let admin = postgres_url()?;
        let (url, guard) = create_pg_database(&admin).await;
        let mut config = test_config(url);
        tweak(&mut config);
        let mut s = Server::launch(config, "postgres").await;
        s._pg = Some(guard);
        Some(s)
    }

    async fn launch(config: Config, backend: &'static str) -> Server {
        let database_url = config.database.clone();
        let running = sixin_server::start(config).await.expect("server starts");
        Server {
            base: format!("http://{}", running.addr),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            backend,
            database_url,
            running: Some(running),
            _dir: None,
            _pg: None,
        }
    }

    pub async fn finish(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean shutdown");
        }
    }

    /// Stops this SQLite server, runs `between` on its database file, and starts a new server
    /// on the file.
    pub async fn restart_sqlite_after(mut self, between: impl FnOnce(&std::path::Path)) -> Server {
        let dir = self._dir.take().expect("a SQLite server");
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean shutdown");
        }
        let db = dir.0.join("sixin.db");
        between(&db);
        let config = test_config(format!("sqlite://{}", db.display()));
        let mut s = Server::launch(config, "sqlite").await;
        s._dir = Some(dir);
        s
    }

    /// The SQLite database file (None on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.0.join("sixin.db"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    // ---- admin API ----

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, self.url(&format!("/admin/v1{path}")))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("admin request");
        let status = resp.status().as_u16();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn user(&self, name: &str) -> User {
        let (st, v) = self
            .admin(
                reqwest::Method::POST,
                "/users",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(st, 200, "create user: {v}");
        User::from_login(&v)
    }

    /// `a` follows `b` (or stops, with `on = false`).
    pub async fn follow(&self, a: &User, b: &User, on: bool) {
        let (st, v) = self
            .admin(
                reqwest::Method::PUT,
                "/relations",
                Some(json!({"mid": a.mid, "fid": b.mid, "follow": on})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }

    pub async fn advance_clock(&self, ms: i64) {
        let (st, v) = self
            .admin(
                reqwest::Method::POST,
                "/clock",
                Some(json!({ "advance_ms": ms })),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }

    // ---- API ----

    /// GET `path` with `params` as `user`; returns the parsed JSON answer (asserting HTTP 200).
    pub async fn get(&self, user: &User, path: &str, params: &[(&str, String)]) -> Value {
        let resp = self
            .http
            .get(self.url(path))
            .header("Cookie", user.cookie())
            .query(params)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200, "GET {path}");
        serde_json::from_str(&resp.text().await.expect("body")).expect("JSON answer")
    }

    /// POST a form to `path` as `user`, with the right csrf added.
    pub async fn post(&self, user: &User, path: &str, params: &[(&str, String)]) -> Value {
        let mut form: Vec<(&str, String)> = params.to_vec();
        form.push(("csrf", user.bili_jct.clone()));
        self.post_raw(user, path, &form).await
    }

    /// POST a form exactly as given (no csrf added).
    pub async fn post_raw(&self, user: &User, path: &str, form: &[(&str, String)]) -> Value {
        self.post_raw_task(user, path, form).await
    }

    /// [`Self::post_raw`] as a future that borrows nothing, for requests sent concurrently
    /// (a task each).
    pub fn post_raw_task(
        &self,
        user: &User,
        path: &str,
        form: &[(&str, String)],
    ) -> impl std::future::Future<Output = Value> + Send + 'static {
        let req = self
            .http
            .post(self.url(path))
            .header("Cookie", user.cookie())
            .form(form);
        let path = path.to_string();
        async move {
            let resp = req.send().await.expect("request");
            assert_eq!(resp.status().as_u16(), 200, "POST {path}");
            serde_json::from_str(&resp.text().await.expect("body")).expect("JSON answer")
        }
    }

    pub fn send_form(
        from: &User,
        to: u64,
        msg_type: u32,
        content: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("msg[sender_uid]", from.mid.to_string()),
            ("msg[receiver_id]", to.to_string()),
            ("msg[receiver_type]", "1".into()),
            ("msg[msg_type]", msg_type.to_string()),
            ("msg[msg_status]", "0".into()),
            ("msg[dev_id]", "372778FD-E359-461D-86A3-EA2BCC6FF52A".into()),
            ("msg[timestamp]", "1626181379".into()),
            ("msg[content]", content.to_string()),
        ]
    }

    /// Sends any message; returns the whole answer.
    pub async fn send(&self, from: &User, to: u64, msg_type: u32, content: &str) -> Value {
        self.post(from, SEND, &Server::send_form(from, to, msg_type, content))
            .await
    }

    /// Sends a text and asserts success; returns its msg_key.
    pub async fn send_text(&self, from: &User, to: &User, text: &str) -> u64 {
        let v = self
            .send(from, to.mid, 1, &json!({ "content": text }).to_string())
            .await;
        assert_eq!(v["code"], 0, "send failed: {v}");
        v["data"]["msg_key"].as_u64().expect("msg_key")
    }

    pub async fn fetch(&self, user: &User, talker: &User, extra: &[(&str, String)]) -> Value {
        let mut p = vec![
            ("talker_id", talker.mid.to_string()),
            ("session_type", "1".to_string()),
        ];
        p.extend(extra.iter().cloned());
        self.get(user, FETCH, &p).await
    }

    pub async fn unread(&self, user: &User) -> Value {
        let v = self.get(user, SINGLE_UNREAD, &[]).await;
        assert_eq!(v["code"], 0, "{v}");
        v["data"].clone()
    }

    pub async fn detail(&self, user: &User, talker: u64) -> Value {
        self.get(
            user,
            SESSION_DETAIL,
            &[
                ("talker_id", talker.to_string()),
                ("session_type", "1".into()),
            ],
        )
        .await
    }

    pub async fn sessions(&self, user: &User, params: &[(&str, String)]) -> Value {
        let v = self.get(user, GET_SESSIONS, params).await;
        assert_eq!(v["code"], 0, "{v}");
        v["data"].clone()
    }
}

pub const SEND: &str = "/web_im/v1/web_im/send_msg";
pub const FETCH: &str = "/svr_sync/v1/svr_sync/fetch_session_msgs";
pub const SINGLE_UNREAD: &str = "/session_svr/v1/session_svr/single_unread";
pub const GET_SESSIONS: &str = "/session_svr/v1/session_svr/get_sessions";
pub const NEW_SESSIONS: &str = "/session_svr/v1/session_svr/new_sessions";
pub const SESSION_DETAIL: &str = "/session_svr/v1/session_svr/session_detail";
pub const UPDATE_ACK: &str = "/session_svr/v1/session_svr/update_ack";
pub const REMOVE_SESSION: &str = "/session_svr/v1/session_svr/remove_session";
pub const SET_TOP: &str = "/session_svr/v1/session_svr/set_top";
pub const SET_MSG_DND: &str = "/link_setting/v1/link_setting/set_msg_dnd";
pub const GET_MSG_DND: &str = "/link_setting/v1/link_setting/get_msg_dnd";
pub const SET_PUSH_SS: &str = "/link_setting/v1/link_setting/set_push_ss";
pub const GET_SESSION_SS: &str = "/link_setting/v1/link_setting/get_session_ss";
pub const NAV: &str = "/x/web-interface/nav";
pub const MYINFO: &str = "/x/space/myinfo";

/// Asserts an error envelope: exact code and message, both `message` and `msg`.
pub fn assert_err(v: &Value, code: i64, message: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["message"], message, "{v}");
    assert_eq!(v["msg"], message, "{v}");
    assert_eq!(v["ttl"], 1, "{v}");
}

/// Asserts a success envelope and returns its data.
pub fn ok(v: &Value) -> &Value {
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["message"], "0", "{v}");
    assert_eq!(v["msg"], "0", "{v}");
    assert_eq!(v["ttl"], 1, "{v}");
    &v["data"]
}

/// A fresh PostgreSQL database for tests that start their own servers; dropped with the guard.
pub async fn create_pg_database_pub(admin_url: &str) -> (String, impl Drop) {
    create_pg_database(admin_url).await
}

/// Polls a set of futures together (the test crate has no `futures` dependency).
pub async fn futures_join_all<F, T>(fs: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (k, f) in pinned.iter_mut().enumerate() {
            if out[k].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[k] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}

/// The JSON answer of a request that must get one.
pub async fn json_answer(req: reqwest::RequestBuilder) -> Value {
    req.send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON answer")
}

/// Two users created through the admin API of the server at `base`, following each other (so
/// the one-message rule stays out of the way).
pub async fn friends_on(http: &reqwest::Client, base: &str) -> (User, User) {
    let mut users = Vec::new();
    for name in ["a", "b"] {
        let v = json_answer(
            http.post(format!("{base}/admin/v1/users"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&serde_json::json!({ "name": name })),
        )
        .await;
        users.push(User::from_login_json(&v));
    }
    let b = users.pop().expect("b");
    let a = users.pop().expect("a");
    for (mid, fid) in [(a.mid, b.mid), (b.mid, a.mid)] {
        let resp = http
            .put(format!("{base}/admin/v1/relations"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "mid": mid, "fid": fid, "follow": true }))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200);
    }
    (a, b)
}

/// A text from `from` to `to` through the server at `base`; the whole answer.
pub async fn send_on(http: &reqwest::Client, base: &str, from: &User, to: u64, t: &str) -> Value {
    let mut form = Server::send_form(
        from,
        to,
        1,
        &serde_json::json!({ "content": t }).to_string(),
    );
    form.push(("csrf", from.bili_jct.clone()));
    json_answer(
        http.post(format!("{base}/web_im/v1/web_im/send_msg"))
            .header("Cookie", from.cookie())
            .form(&form),
    )
    .await
}

/// Two `sixin serve` instances on one database, with their base URLs and a client.
pub async fn two_nodes_on(
    database: String,
) -> ([sixin_server::Running; 2], [String; 2], reqwest::Client) {
    let n1 = sixin_server::start(test_config(database.clone()))
        .await
        .expect("node 1");
    let n2 = sixin_server::start(test_config(database))
        .await
        .expect("node 2");
    let bases = [format!("http://{}", n1.addr), format!("http://{}", n2.addr)];
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    ([n1, n2], bases, http)
}
