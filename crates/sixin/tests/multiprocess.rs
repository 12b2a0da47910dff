//! Two real `sixin serve` processes on one database enforce one set of limits (SPEC §4.4
//! check 7, §8 scale-out): the daily limit to strangers and the per-second limit count sends
//! made through either process, and maintenance mode switched through one applies to both.
//! The clocks of both processes are set through the admin API (test mode), so the windows
//! are deterministic. And one `sixin serve` with a single request thread (`SIXIN_WORKERS=1`)
//! answers many concurrent sends and reads: reads run inline on that thread and sends wait
//! for the writer thread, which must never wait for it in turn.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

const TOKEN: &str = "multiprocess-admin-token";
const SEND: &str = "/web_im/v1/web_im/send_msg";
/// 2024-03-11 00:00:00 in UTC+8, in ms: a day boundary of the daily window.
const MIDNIGHT_CST_MS: i64 = 1_710_086_400_000;
const PER_SECOND: u64 = 2;
const PER_DAY: u64 = 3;

/// A `sixin serve` child process, killed on drop.
struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sixin serve` on an ephemeral port with the limits given through `SIXIN_*`.
fn serve(database: &str) -> Node {
    serve_with(database, &[])
}

/// [`serve`] with more `SIXIN_*` settings.
fn serve_with(database: &str, env: &[(&str, &str)]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sixin"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database,
            "--test-mode",
        ])
        .env("SIXIN_LOG", "warn")
        .env("SIXIN_ADMIN_TOKEN", TOKEN)
        .env("SIXIN_SENDS_PER_SECOND", PER_SECOND.to_string())
        .env("SIXIN_DAILY_SENDS_TO_STRANGERS", PER_DAY.to_string())
        .env_remove("SIXIN_MAINTENANCE")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sixin serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut node = Node {
        child,
        base: String::new(),
    };
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        if let Some(url) = line.strip_prefix("# sixin listening on ") {
            node.base = url.trim().to_string();
            return node;
        }
    }
    panic!("sixin serve exited before listening");
}

#[derive(Clone)]
struct Login {
    mid: u64,
    sessdata: String,
    bili_jct: String,
}

struct World {
    http: reqwest::Client,
}

impl World {
    async fn admin(&self, node: &Node, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/admin/v1{path}", node.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("admin request");
        assert_eq!(resp.status().as_u16(), 200, "admin {path}");
        resp.json().await.expect("admin JSON")
    }

    async fn user(&self, node: &Node, name: &str) -> Login {
        let v = self
            .admin(
                node,
                reqwest::Method::POST,
                "/users",
                json!({ "name": name }),
            )
            .await;
        Login {
            mid: v["mid"].as_u64().expect("mid"),
            sessdata: v["SESSDATA"].as_str().expect("SESSDATA").to_string(),
            bili_jct: v["bili_jct"].as_str().expect("bili_jct").to_string(),
        }
    }

    async fn follow(&self, node: &Node, who: &Login, whom: &Login) {
        let v = self
            .admin(
                node,
                reqwest::Method::PUT,
                "/relations",
                json!({"mid": who.mid, "fid": whom.mid, "follow": true}),
            )
            .await;
        assert_eq!(v["follow"], true, "{v}");
    }

    /// The request threads a node reports in `/metrics`.
    async fn runtime_workers(&self, node: &Node) -> usize {
        let text = self
            .http
            .get(format!("{}/metrics", node.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find_map(|l| l.strip_prefix("sixin_runtime_workers "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no sixin_runtime_workers in {text}"))
    }

    /// Sets the test clock of every node to `ms`.
    async fn clock(&self, nodes: &[&Node], ms: i64) {
        for n in nodes {
            let v = self
                .admin(n, reqwest::Method::POST, "/clock", json!({ "set_ms": ms }))
                .await;
            assert!(v["now_ms"].as_i64().expect("now_ms") >= ms, "{v}");
        }
    }

    /// `viewer`'s newest 200 messages with `talker` at the server at `base`, before seqno
    /// `end` when given.
    async fn fetch(&self, base: &str, viewer: &Login, talker: u64, end: Option<u64>) -> Value {
        let mut url = format!(
            "{base}/svr_sync/v1/svr_sync/fetch_session_msgs?talker_id={talker}&session_type=1&size=200"
        );
        if let Some(end) = end {
            url.push_str(&format!("&end_seqno={end}"));
        }
        self.http
            .get(url)
            .header("Cookie", format!("SESSDATA={}", viewer.sessdata))
            .send()
            .await
            .expect("fetch")
            .json()
            .await
            .expect("fetch JSON")
    }

    async fn send(&self, node: &Node, from: &Login, to: &Login, text: &str) -> Value {
        self.try_send(&node.base, from, to, text)
            .await
            .expect("send")
    }

    /// A send to the server at `base`; `None` when no answer came (the server is gone).
    async fn try_send(&self, base: &str, from: &Login, to: &Login, text: &str) -> Option<Value> {
        let form = [
            ("msg[sender_uid]", from.mid.to_string()),
            ("msg[receiver_id]", to.mid.to_string()),
            ("msg[receiver_type]", "1".to_string()),
            ("msg[msg_type]", "1".to_string()),
            ("msg[dev_id]", "multiprocess".to_string()),
            ("msg[timestamp]", "1710000000".to_string()),
            ("msg[content]", json!({ "content": text }).to_string()),
            ("csrf", from.bili_jct.clone()),
        ];
        let answer = self
            .http
            .post(format!("{base}{SEND}"))
            .header(
                "Cookie",
                format!("SESSDATA={}; bili_jct={}", from.sessdata, from.bili_jct),
            )
            .form(&form)
            .send()
            .await
            .ok()?;
        answer.json().await.ok()
    }
}

fn assert_code(v: &Value, code: i64, message: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["message"], message, "{v}");
}

async fn limits_are_shared(database: String) {
    // One after the other, so the first runs the migrations alone.
    let n1 = serve(&database);
    let n2 = serve(&database);
    let both = [&n1, &n2];
    let w = World {
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
    };
    // Without `workers`, a server runs three request threads per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(w.runtime_workers(&n1).await, 3 * cores);
    let a = w.user(&n1, "a").await;
    let friend = w.user(&n2, "friend").await;
    let mut strangers = Vec::new();
    for k in 0..6 {
        strangers.push(w.user(both[k % 2], &format!("x{k}")).await);
    }
    w.follow(&n2, &friend, &a).await;

    // Daily limit to strangers: 3 a day in total, whichever process takes the send. Each send
    // gets its own second on both clocks, so the per-second limit stays out of the way.
    let noon = MIDNIGHT_CST_MS + 12 * 3_600_000;
    for k in 0..PER_DAY as usize {
        w.clock(&both, noon + 1000 * k as i64).await;
        let v = w.send(both[k % 2], &a, &strangers[k], "你好").await;
        assert_code(&v, 0, "0");
    }
    // Neither process has seen 3 sends on its own, yet both refuse the 4th.
    for (k, n) in both.iter().enumerate() {
        w.clock(&both, noon + 10_000 + 1000 * k as i64).await;
        let v = w.send(n, &a, &strangers[3], "你好").await;
        assert_code(&v, 21046, "你发消息的频率太高了，请在24小时后再发吧~");
    }
    // Sends to a follower are not limited by it.
    w.clock(&both, noon + 20_000).await;
    assert_code(&w.send(&n2, &a, &friend, "hi").await, 0, "0");

    // Per-second limit: 2 a second in total, across the processes.
    let t = noon + 30_000;
    w.clock(&both, t).await;
    assert_code(&w.send(&n1, &a, &friend, "1").await, 0, "0");
    w.clock(&both, t + 100).await;
    assert_code(&w.send(&n2, &a, &friend, "2").await, 0, "0");
    for (k, n) in both.iter().enumerate() {
        w.clock(&both, t + 200 + 100 * k as i64).await;
        let v = w.send(n, &a, &friend, "3").await;
        assert_code(&v, 21020, "你发送消息频率过快，请稍后再发~");
    }
    // The next second starts afresh, on both.
    w.clock(&both, t + 1000).await;
    assert_code(&w.send(&n2, &a, &friend, "4").await, 0, "0");
    w.clock(&both, t + 1100).await;
    assert_code(&w.send(&n1, &a, &friend, "5").await, 0, "0");

    // The next calendar day (UTC+8): a fresh daily allowance, shared again.
    let tomorrow = MIDNIGHT_CST_MS + 86_400_000;
    for k in 0..PER_DAY as usize {
        w.clock(&both, tomorrow + 1000 * k as i64).await;
        let v = w.send(both[(k + 1) % 2], &a, &strangers[3 + k], "早");
        assert_code(&v.await, 0, "0");
    }
    w.clock(&both, tomorrow + 5000).await;
    let late = w.user(&n1, "late").await;
    let v = w.send(&n1, &a, &late, "早");
    assert_code(&v.await, 21046, "你发消息的频率太高了，请在24小时后再发吧~");

    // Maintenance switched through one process stops sends through the other.
    let v = w
        .admin(
            &n1,
            reqwest::Method::PUT,
            "/maintenance",
            json!({"maintenance": true}),
        )
        .await;
    assert_eq!(v, json!({"maintenance": true}));
    w.clock(&both, tomorrow + 10_000).await;
    let v = w.send(&n2, &a, &friend, "during").await;
    assert_code(&v, 21028, "由于系统升级，暂无法发送，敬请谅解");
    w.admin(
        &n2,
        reqwest::Method::PUT,
        "/maintenance",
        json!({"maintenance": false}),
    )
    .await;
    assert_code(&w.send(&n1, &a, &friend, "after").await, 0, "0");
}

/// The PostgreSQL server to test against; `None` (with a message) when not configured, a
/// failure under `CI=true`.
fn postgres_url() -> Option<String> {
    match std::env::var("SIXIN_TEST_DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but SIXIN_TEST_DATABASE_URL is not set: the PostgreSQL test must run"
                );
            }
            eprintln!("SIXIN_TEST_DATABASE_URL not set: skipping the two-process PostgreSQL test");
            None
        }
    }
}

/// A fresh database on the PostgreSQL server, dropped (with its connections) on drop.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> PgDatabase {
        use sqlx::Connection;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("sixin_mp_{}_{nanos}", std::process::id());
        let mut c = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at SIXIN_TEST_DATABASE_URL is unreachable: {e}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("create the test database");
        let mut url = url::Url::parse(admin_url).expect("SIXIN_TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        PgDatabase {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_limits_on_postgres() {
    let Some(admin) = postgres_url() else { return };
    let db = PgDatabase::create(&admin).await;
    limits_are_shared(db.url.clone()).await;
}

/// A temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TempDir {
    fn new() -> TempDir {
        let dir = TempDir(std::env::temp_dir().join(format!(
            "sixin-multiprocess-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        )));
        std::fs::create_dir_all(&dir.0).expect("temp dir");
        dir
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_limits_on_sqlite() {
    let dir = TempDir::new();
    limits_are_shared(format!("sqlite://{}", dir.0.join("shared.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_thread_serves_concurrent_sends_and_reads() {
    const SENDS: usize = 40;
    let dir = TempDir::new();
    let db = format!("sqlite://{}", dir.0.join("one.db").display());
    let node = serve_with(
        &db,
        &[
            ("SIXIN_WORKERS", "1"),
            ("SIXIN_SENDS_PER_SECOND", "1000"),
            ("SIXIN_DAILY_SENDS_TO_STRANGERS", "1000"),
        ],
    );
    let w = World {
        http: reqwest::Client::new(),
    };
    assert_eq!(w.runtime_workers(&node).await, 1);
    let a = w.user(&node, "a").await;
    let b = w.user(&node, "b").await;
    w.follow(&node, &b, &a).await;
    let shared = std::sync::Arc::new((w, node, a, b));
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..SENDS {
        let s = shared.clone();
        tasks.spawn(async move { s.0.send(&s.1, &s.2, &s.3, &format!("m{k}")).await });
    }
    let answers = tasks.join_all().await;
    let (w, node, a, b) = &*shared;
    let mut keys: Vec<u64> = answers
        .iter()
        .map(|v| {
            assert_code(v, 0, "0");
            v["data"]["msg_key"].as_u64().expect("msg_key")
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), SENDS);
    // Every acknowledged message is there, in one gap-free run of seqnos.
    let page = w.fetch(&node.base, b, a.mid, None).await;
    assert_code(&page, 0, "0");
    let msgs = page["data"]["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), SENDS, "{page}");
    let seqnos: Vec<u64> = msgs
        .iter()
        .map(|m| m["msg_seqno"].as_u64().unwrap())
        .collect();
    assert_eq!(seqnos, (1..=SENDS as u64).rev().collect::<Vec<_>>());
    assert_eq!(page["data"]["has_more"], 0);
}

/// Every send a server acknowledged is in the database after the process is killed (SIGKILL)
/// in the middle of a stream of concurrent sends, as read by the next process on the file: the
/// group commit answers only after its commit, whose log frames are in the file by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_a_killed_process() {
    const SENDERS: usize = 32;
    const RECEIVERS: usize = 8;
    let dir = TempDir::new();
    let db = format!("sqlite://{}", dir.0.join("killed.db").display());
    let unlimited = [
        ("SIXIN_SENDS_PER_SECOND", "1000000"),
        ("SIXIN_DAILY_SENDS_TO_STRANGERS", "1000000"),
    ];
    let mut node = serve_with(&db, &unlimited);
    let w = World {
        http: reqwest::Client::new(),
    };
    let a = w.user(&node, "a").await;
    let mut receivers = Vec::new();
    for k in 0..RECEIVERS {
        let b = w.user(&node, &format!("b{k}")).await;
        w.follow(&node, &b, &a).await;
        receivers.push(b);
    }
    let shared = std::sync::Arc::new((w, node.base.clone(), a, receivers));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(usize, u64)>::new()));
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..SENDERS {
        let (s, acked, failed) = (shared.clone(), acked.clone(), failed.clone());
        tasks.spawn(async move {
            let (w, base, a, receivers) = &*s;
            for n in 0.. {
                let to = (t + n) % RECEIVERS;
                match w
                    .try_send(base, a, &receivers[to], &format!("{t}-{n}"))
                    .await
                {
                    Some(v) if v["code"] == 0 => {
                        let key = v["data"]["msg_key"].as_u64().expect("msg_key");
                        acked.lock().unwrap().push((to, key));
                    }
                    Some(v) => panic!("a send was refused: {v}"),
                    None => {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                }
            }
        });
    }
    // Killed while every sender has a send in flight.
    let started = std::time::Instant::now();
    while acked.lock().unwrap().len() < 300 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "300 sends not acknowledged in a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    node.child.kill().expect("kill the server");
    node.child.wait().expect("reap the server");
    tasks.join_all().await;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        failed.load(std::sync::atomic::Ordering::Relaxed),
        SENDERS,
        "every sender lost its connection to the killed server"
    );
    assert!(acked.len() >= 300, "{} sends acknowledged", acked.len());

    let node = serve_with(&db, &unlimited);
    let (w, _, a, receivers) = &*shared;
    for (k, b) in receivers.iter().enumerate() {
        // The whole conversation, newest first, page by page.
        let mut stored = std::collections::HashSet::new();
        let mut seqnos = Vec::new();
        let mut end = None;
        loop {
            let page = w.fetch(&node.base, b, a.mid, end).await;
            assert_code(&page, 0, "0");
            for m in page["data"]["messages"].as_array().into_iter().flatten() {
                stored.insert(m["msg_key"].as_u64().expect("msg_key"));
                seqnos.push(m["msg_seqno"].as_u64().expect("msg_seqno"));
            }
            if page["data"]["has_more"] != 1 {
                break;
            }
            end = page["data"]["min_seqno"].as_u64();
        }
        let mine: Vec<u64> = acked
            .iter()
            .filter(|(to, _)| *to == k)
            .map(|(_, key)| *key)
            .collect();
        for key in &mine {
            assert!(
                stored.contains(key),
                "acknowledged message {key} to b{k} was lost"
            );
        }
        // Stored in one gap-free run of seqnos (a send may have been stored unacknowledged).
        assert!(stored.len() >= mine.len());
        assert_eq!(seqnos, (1..=stored.len() as u64).rev().collect::<Vec<_>>());
    }
}
