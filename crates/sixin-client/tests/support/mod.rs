//! A sixin server launched in-process for the client's tests, driven through its admin API.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use sixin_client::{Client, Credentials};
use sixin_server::{Config, Running};

pub const ADMIN_TOKEN: &str = "client-test-admin-token";

/// A temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "sixin-client-test-{tag}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
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

/// A user with a login, as the admin API prints it.
#[derive(Debug, Clone)]
pub struct Login {
    pub mid: u64,
    pub name: String,
    pub sessdata: String,
    pub bili_jct: String,
}

impl Login {
    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.sessdata.clone(), self.bili_jct.clone(), self.mid)
    }
}

pub struct TestServer {
    pub base: String,
    pub addr: std::net::SocketAddr,
    http: reqwest::Client,
    running: Option<Running>,
    _dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = TempDir::new("server");
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            database: format!("sqlite://{}", dir.0.join("sixin.db").display()),
            test_mode: true,
            admin_token: ADMIN_TOKEN.into(),
            max_connections: 4,
            ..Config::default()
        };
        tweak(&mut config);
        let running = sixin_server::start(config).await.expect("server starts");
        TestServer {
            base: format!("http://{}", running.addr),
            addr: running.addr,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
            running: Some(running),
            _dir: dir,
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean shutdown");
        }
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("admin request");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin {path}: {status} {v}");
        v
    }

    pub async fn user(&self, name: &str) -> Login {
        let v = self
            .admin(reqwest::Method::POST, "/users", json!({ "name": name }))
            .await;
        Login {
            mid: v["mid"].as_u64().expect("mid"),
            name: v["name"].as_str().expect("name").into(),
            sessdata: v["SESSDATA"].as_str().expect("SESSDATA").into(),
            bili_jct: v["bili_jct"].as_str().expect("bili_jct").into(),
        }
    }

    pub async fn follow(&self, a: &Login, b: &Login) {
        self.admin(
            reqwest::Method::PUT,
            "/relations",
            json!({"mid": a.mid, "fid": b.mid, "follow": true}),
        )
        .await;
    }

    /// Makes two users mutual followers, so no relation rule ever blocks their messages.
    pub async fn friends(&self, a: &Login, b: &Login) {
        self.follow(a, b).await;
        self.follow(b, a).await;
    }

    /// A notification card from the UP主小助手 system account; returns the stored message.
    pub async fn notification(&self, to: &Login, title: &str, text: &str) -> Value {
        self.admin(
            reqwest::Method::POST,
            "/messages/system",
            json!({"system_msg_type": 7, "to": to.mid, "msg_type": 10,
                   "content": {"title": title, "text": text, "jump_uri": "https://b"}}),
        )
        .await
    }

    pub async fn advance_clock(&self, ms: i64) {
        self.admin(reqwest::Method::POST, "/clock", json!({ "advance_ms": ms }))
            .await;
    }

    /// A client of this server logged in as `who`.
    pub fn client(&self, who: &Login) -> Client {
        self.client_at(&self.base, who)
    }

    pub fn client_at(&self, base: &str, who: &Login) -> Client {
        Client::builder()
            .server(base)
            .credentials(who.credentials())
            .build()
            .expect("client")
    }
}

/// The mid of the UP主小助手 system account.
pub const UP_ASSISTANT: u64 = 844424930131966;
