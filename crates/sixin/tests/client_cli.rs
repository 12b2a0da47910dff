//! The `sixin` client commands, run as a user would, against a sixin server launched by the
//! test (never the real service).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use sixin_client::{Client, Credentials, Direction, FetchQuery};

const ADMIN_TOKEN: &str = "cli-test-admin-token";
/// UP主小助手, the system account notifications come from.
const UP_ASSISTANT: u64 = 844424930131966;

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "sixin-cli-client-{tag}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone)]
struct Login {
    mid: u64,
    sessdata: String,
    bili_jct: String,
}

impl Login {
    fn credentials(&self) -> Credentials {
        Credentials::new(self.sessdata.clone(), self.bili_jct.clone(), self.mid)
    }
}

struct Server {
    base: String,
    http: reqwest::Client,
    running: Option<sixin_server::Running>,
    _dir: TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = TempDir::new("server");
        let config = sixin_server::Config {
            listen: "127.0.0.1:0".into(),
            database: format!("sqlite://{}", dir.0.join("sixin.db").display()),
            test_mode: true,
            admin_token: ADMIN_TOKEN.into(),
            max_connections: 4,
            // Histories are filled quickly here.
            sends_per_second: 1_000_000,
            ..sixin_server::Config::default()
        };
        let running = sixin_server::start(config).await.expect("server starts");
        Server {
            base: format!("http://{}", running.addr),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            running: Some(running),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin {path}: {status} {v}");
        v
    }

    async fn user(&self, name: &str) -> Login {
        let v = self
            .admin(reqwest::Method::POST, "/users", json!({ "name": name }))
            .await;
        Login {
            mid: v["mid"].as_u64().unwrap(),
            sessdata: v["SESSDATA"].as_str().unwrap().into(),
            bili_jct: v["bili_jct"].as_str().unwrap().into(),
        }
    }

    async fn follow(&self, a: &Login, b: &Login) {
        self.admin(
            reqwest::Method::PUT,
            "/relations",
            json!({"mid": a.mid, "fid": b.mid, "follow": true}),
        )
        .await;
    }

    async fn friends(&self, a: &Login, b: &Login) {
        self.follow(a, b).await;
        self.follow(b, a).await;
    }

    async fn system_message(&self, to: &Login, msg_type: u32, content: Value) -> Value {
        self.admin(
            reqwest::Method::POST,
            "/messages/system",
            json!({"system_msg_type": 7, "to": to.mid, "msg_type": msg_type, "content": content}),
        )
        .await
    }

    fn client(&self, who: &Login) -> Client {
        Client::builder()
            .server(&self.base)
            .credentials(who.credentials())
            .build()
            .unwrap()
    }

    /// The `sixin` binary, logged in as `who` through the environment.
    fn cli(&self, who: &Login) -> Cli {
        Cli {
            base: self.base.clone(),
            env: vec![
                ("SESSDATA".into(), who.sessdata.clone()),
                ("bili_jct".into(), who.bili_jct.clone()),
                ("DedeUserID".into(), who.mid.to_string()),
            ],
        }
    }
}

#[derive(Clone)]
struct Cli {
    base: String,
    env: Vec<(String, String)>,
}

impl Cli {
    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sixin"));
        c.env("SIXIN_LOG", "warn")
            .env_remove("SIXIN_SERVER")
            .env_remove("SESSDATA")
            .env_remove("bili_jct")
            .env_remove("DedeUserID");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.arg("--server").arg(&self.base).args(args);
        c
    }

    /// Runs to completion (off the async runtime, so the in-process server keeps serving).
    async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "sixin {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            !out.status.success(),
            "sixin {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Every message of a conversation as received, oldest first.
async fn raw_history(c: &Client, talker: u64) -> Vec<Value> {
    let mut pager = c.history(talker, 1, Direction::ForwardFrom(0));
    let mut all = Vec::new();
    while let Some(p) = pager.next_raw_page().await.unwrap() {
        all.extend(p);
    }
    all
}

async fn newest_raw(c: &Client, talker: u64) -> Value {
    let page = c
        .fetch_session_msgs_raw(FetchQuery {
            talker_id: talker,
            session_type: 1,
            size: 1,
            begin_seqno: None,
            end_seqno: None,
        })
        .await
        .unwrap();
    page["messages"][0].clone()
}

fn text_of(m: &Value) -> String {
    serde_json::from_str::<Value>(m["content"].as_str().unwrap())
        .ok()
        .and_then(|c| c["content"].as_str().map(String::from))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_render_every_kind_of_message() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let dave = s.user("dave").await;
    s.friends(&alice, &bob).await;
    s.friends(&alice, &carol).await;
    let a = s.client(&alice);
    let b = s.client(&bob);

    // alice writes and takes it back; then bob writes a text with an emoji and an image.
    let oops = a.send_text(bob.mid, "oops").await.unwrap().msg_key;
    let recall = a.recall(bob.mid, oops).await.unwrap().msg_key;
    b.send_text(alice.mid, "你好[doge]").await.unwrap();
    let img = "https://i0.hdslb.com/bfs/im/0123456789abcdef.png";
    b.send_image(alice.mid, img).await.unwrap();
    s.client(&carol)
        .send_text(alice.mid, "hi from carol")
        .await
        .unwrap();
    // A notification card and a video card from a system account.
    s.system_message(
        &alice,
        10,
        json!({"title": "T", "text": "X", "jump_uri": "https://b"}),
    )
    .await;
    s.system_message(
        &alice,
        11,
        json!({"title": "V", "bvid": "BV1xx411c7mD", "rid": 1, "cover": "", "desc": ""}),
    )
    .await;
    // dave doesn't follow alice: her first message to him gets a system tip, the second 21047.
    a.send_text(dave.mid, "hello dave").await.unwrap();

    let cli = s.cli(&alice);
    let out = cli.ok(&["unread"]).await;
    // bob's two and carol's one; the two cards from the system account are notifications.
    assert_eq!(
        out,
        "followed:      3\nunfollowed:    0\nnotifications: 2\nservice:       0\ndustbin:       0\ngroups:        0\n"
    );
    let v = json_lines(&cli.ok(&["unread", "--json"]).await);
    assert_eq!(v.len(), 1);
    assert_eq!(
        (
            v[0]["follow_unread"].as_u64(),
            v[0]["unfollow_unread"].as_u64()
        ),
        (Some(3), Some(0))
    );
    assert_eq!(v[0]["biz_msg_follow_unread"].as_u64(), Some(2));
    assert_eq!(v[0]["group_unread"], 0);

    // The session table: one row per talker, names resolved, unread counts.
    let out = cli.ok(&["sessions"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("talker") && lines[0].contains("unread"),
        "{out}"
    );
    assert_eq!(lines.len(), 5, "{out}");
    let row = |who: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(who))
            .unwrap_or_else(|| panic!("no {who} in {out}"))
            .to_string()
    };
    assert!(
        row(&format!("UP主小助手({UP_ASSISTANT})")).contains("[视频] V"),
        "{out}"
    );
    let bob_row = row(&format!("bob({})", bob.mid));
    assert!(
        bob_row.contains(" 2 ") && bob_row.contains("[图片] "),
        "{bob_row}"
    );
    assert!(row(&format!("carol({})", carol.mid)).contains("hi from carol"));
    // The newest message alice sees with dave is the tip under her first message.
    assert!(
        row(&format!("dave({})", dave.mid)).contains("[系统提示] 对方主动回复"),
        "{out}"
    );
    let v = json_lines(&cli.ok(&["sessions", "--json"]).await);
    let talkers: HashSet<u64> = v.iter().map(|s| s["talker_id"].as_u64().unwrap()).collect();
    assert_eq!(
        talkers,
        HashSet::from([bob.mid, carol.mid, dave.mid, UP_ASSISTANT])
    );
    assert!(v
        .iter()
        .all(|s| s["session_type"] == 1 && s.get("unread_count").is_some()));

    // History, readable: text with emoji names, image URL, recalled, recall.
    let out = cli.ok(&["history", &bob.mid.to_string()]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].contains(&format!("#1 alice({}): oops (已撤回)", alice.mid)),
        "{out}"
    );
    assert!(
        lines[1].contains(&format!("#2 alice({}): [撤回了一条消息 {oops}]", alice.mid)),
        "{out}"
    );
    assert!(
        lines[2].contains(&format!("#3 bob({}): 你好[doge]", bob.mid)),
        "{out}"
    );
    assert!(
        lines[3].contains(&format!("#4 bob({}): [图片] {img}", bob.mid)),
        "{out}"
    );
    assert!(
        lines[0].starts_with('[') && lines[0].contains("Z] "),
        "{out}"
    );
    // The notification and video cards.
    let out = cli.ok(&["history", &UP_ASSISTANT.to_string()]).await;
    assert!(
        out.contains(&format!(
            "UP主小助手({UP_ASSISTANT}): [通知] T: X → https://b"
        )),
        "{out}"
    );
    assert!(
        out.contains("[视频] V https://www.bilibili.com/video/BV1xx411c7mD"),
        "{out}"
    );
    // The system tip (visible to alice only).
    let out = cli.ok(&["history", &dave.mid.to_string()]).await;
    assert!(out.contains("hello dave"), "{out}");
    assert!(
        out.contains("[系统提示] 对方主动回复或关注你前，最多发送1条消息"),
        "{out}"
    );
    let err = cli.fails(&["send", &dave.mid.to_string(), "again"]).await;
    assert!(
        err.contains("21047") && err.contains("对方主动回复或关注你前，最多发送1条消息~"),
        "{err}"
    );

    // --json: every message exactly as the API returns it, oldest first, keys exact.
    let lines = json_lines(&cli.ok(&["history", &bob.mid.to_string(), "--json"]).await);
    assert_eq!(lines, raw_history(&a, bob.mid).await);
    assert_eq!(lines[1]["msg_key"].as_u64(), Some(recall));
    assert_eq!(
        lines[1]["content"].as_str(),
        Some(oops.to_string().as_str())
    );
    // --limit: only the newest.
    let out = cli
        .ok(&["history", &bob.mid.to_string(), "--limit", "2"])
        .await;
    assert_eq!(out.lines().count(), 2);
    assert!(out.lines().next().unwrap().contains("#3 "), "{out}");

    // The global flags go before or after the command.
    let mut c = cli.command(&["sessions".into(), "--json".into()]);
    c.args(["--server", &s.base]);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_commands_and_credentials() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    let a = s.client(&alice);
    let cli = s.cli(&alice);
    let bob_id = bob.mid.to_string();

    // send TEXT
    let out = cli.ok(&["send", &bob_id, "hello there"]).await;
    let key: u64 = out
        .trim()
        .strip_prefix("sent: msg_key ")
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    let m = newest_raw(&a, bob.mid).await;
    assert_eq!(m["msg_key"].as_u64(), Some(key));
    assert_eq!(text_of(&m), "hello there");
    // send --image
    let img = "https://i0.hdslb.com/bfs/im/feedface.png";
    let v = json_lines(&cli.ok(&["send", &bob_id, "--image", img, "--json"]).await);
    let img_key = v[0]["msg_key"].as_u64().unwrap();
    let m = newest_raw(&a, bob.mid).await;
    assert_eq!(
        (m["msg_key"].as_u64(), m["msg_type"].as_u64()),
        (Some(img_key), Some(2))
    );
    assert_eq!(
        serde_json::from_str::<Value>(m["content"].as_str().unwrap()).unwrap()["url"],
        img
    );
    let v = json_lines(&cli.ok(&["send", &bob_id, "as json", "--json"]).await);
    assert_eq!(v[0]["msg_content"], "{\"content\":\"as json\"}");
    let json_key = v[0]["msg_key"].as_u64().unwrap();
    // Neither or both.
    cli.fails(&["send", &bob_id]).await;
    cli.fails(&["send", &bob_id, "text", "--image", img]).await;
    // A bad image host: the API's code and message.
    let err = cli
        .fails(&["send", &bob_id, "--image", "https://example.com/x.png"])
        .await;
    assert!(
        err.contains("21037") && err.contains("图片格式不合法，不要调戏接口啦"),
        "{err}"
    );

    // recall with --talker, then without (found among recent sessions).
    let out = cli
        .ok(&["recall", &key.to_string(), "--talker", &bob_id])
        .await;
    assert!(
        out.starts_with(&format!("recalled {key} (recall msg_key ")),
        "{out}"
    );
    let out = cli.ok(&["recall", &img_key.to_string()]).await;
    assert!(out.starts_with(&format!("recalled {img_key} ")), "{out}");
    let all = raw_history(&a, bob.mid).await;
    let status = |k: u64| {
        all.iter()
            .find(|m| m["msg_key"].as_u64() == Some(k))
            .unwrap()["msg_status"]
            .as_u64()
    };
    assert_eq!(
        (status(key), status(img_key), status(json_key)),
        (Some(1), Some(1), Some(0))
    );
    // --json works before the command too.
    let v = json_lines(
        &cli.ok(&[
            "--json",
            "recall",
            &json_key.to_string(),
            "--talker",
            &bob_id,
        ])
        .await,
    );
    assert!(v[0]["msg_key"].as_u64().unwrap() > json_key);
    let err = cli.fails(&["recall", "12345", "--talker", &bob_id]).await;
    assert!(
        err.contains("10005") && err.contains("msgkey不存在"),
        "{err}"
    );
    let err = cli
        .fails(&["recall", &key.to_string(), "--talker", &bob_id])
        .await;
    assert!(err.contains("21042"), "{err}");
    let err = cli.fails(&["recall", "12345"]).await;
    assert!(err.contains("--talker"), "{err}");

    // read
    let b = s.client(&bob);
    b.send_text(alice.mid, "unread 1").await.unwrap();
    b.send_text(alice.mid, "unread 2").await.unwrap();
    assert_eq!(a.session_detail(bob.mid, 1).await.unwrap().unread_count, 2);
    let out = cli.ok(&["read", &bob_id]).await;
    assert_eq!(out.trim(), "marked read");
    let d = a.session_detail(bob.mid, 1).await.unwrap();
    assert_eq!((d.unread_count, d.ack_seqno), (0, d.max_seqno));

    // Credentials from a cookies.txt instead of the environment.
    let dir = TempDir::new("cookies");
    let cookies = dir.0.join("cookies.txt");
    std::fs::write(
        &cookies,
        format!(
            "# Netscape HTTP Cookie File\n\
             #HttpOnly_.bilibili.com\tTRUE\t/\tTRUE\t1900000000\tSESSDATA\t{}\n\
             .bilibili.com\tTRUE\t/\tFALSE\t1900000000\tbili_jct\t{}\n\
             .bilibili.com\tTRUE\t/\tFALSE\t1900000000\tDedeUserID\t{}\n",
            bob.sessdata, bob.bili_jct, bob.mid
        ),
    )
    .unwrap();
    let anonymous = Cli {
        base: s.base.clone(),
        env: vec![],
    };
    let out = anonymous
        .ok(&[
            "--cookies",
            cookies.to_str().unwrap(),
            "send",
            &alice.mid.to_string(),
            "from bob's cookies",
        ])
        .await;
    assert!(out.starts_with("sent: msg_key "), "{out}");
    assert_eq!(
        text_of(&newest_raw(&a, bob.mid).await),
        "from bob's cookies"
    );
    let err = anonymous.fails(&["unread"]).await;
    assert!(err.contains("no credentials"), "{err}");
    let err = anonymous
        .fails(&[
            "unread",
            "--cookies",
            dir.0.join("nope.txt").to_str().unwrap(),
        ])
        .await;
    assert!(err.contains("nope.txt"), "{err}");
    // A login that is not valid: the API's code.
    let stale = Cli {
        base: s.base.clone(),
        env: vec![
            ("SESSDATA".into(), "expired".into()),
            ("bili_jct".into(), "x".into()),
            ("DedeUserID".into(), "1".into()),
        ],
    };
    let err = stale.fails(&["sessions"]).await;
    assert!(err.contains("-101") && err.contains("账号未登录"), "{err}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_new_messages_as_they_arrive() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    s.friends(&alice, &bob).await;
    s.friends(&alice, &carol).await;
    let dave = s.user("dave").await;
    s.friends(&alice, &dave).await;
    let b = s.client(&bob);
    let c = s.client(&carol);
    let d = s.client(&dave);
    b.send_text(alice.mid, "old message").await.unwrap();
    d.send_text(alice.mid, "dave's old message").await.unwrap();

    // Following the server's event stream (the default towards a sixin server), and polling.
    for (json, poll) in [(false, false), (true, false), (false, true), (true, true)] {
        // A conversation hidden when watching begins: only what comes after shows.
        s.client(&alice).remove_session(dave.mid, 1).await.unwrap();
        let mut args = vec!["--interval", "0.3", "--duration", "5"];
        if json {
            args.push("--json");
        }
        if poll {
            args.push("--poll");
        }
        let watcher = Watch::start(&s.cli(&alice), &args).await;
        let tag = match (json, poll) {
            (true, false) => "json",
            (false, false) => "text",
            (true, true) => "json polled",
            (false, true) => "text polled",
        };
        let k1 = b
            .send_text(alice.mid, &format!("new 1 {tag}"))
            .await
            .unwrap()
            .msg_key;
        let k2 = b
            .send_text(alice.mid, &format!("new 2 {tag}"))
            .await
            .unwrap()
            .msg_key;
        let k3 = c
            .send_text(alice.mid, &format!("first from carol {tag}"))
            .await
            .unwrap()
            .msg_key;
        let k4 = d
            .send_text(alice.mid, &format!("dave again {tag}"))
            .await
            .unwrap()
            .msg_key;
        let text = watcher.finish().await;
        assert!(!text.contains("old message"), "{text}");
        assert!(!text.contains("dave's old message"), "{text}");
        if json {
            let v = json_lines(&text);
            let keys: Vec<u64> = v.iter().map(|m| m["msg_key"].as_u64().unwrap()).collect();
            assert_eq!(keys.len(), 4, "{text}");
            assert_eq!(
                keys.iter().copied().collect::<HashSet<_>>(),
                HashSet::from([k1, k2, k3, k4])
            );
            assert!(keys.iter().position(|k| *k == k1) < keys.iter().position(|k| *k == k2));
        } else {
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 4, "{text}");
            let pos = |needle: &str| {
                lines
                    .iter()
                    .position(|l| l.contains(needle))
                    .unwrap_or_else(|| panic!("{needle} not in {text}"))
            };
            assert!(
                lines[pos(&format!("dave again {tag}"))]
                    .contains(&format!("dave({}): dave again {tag}", dave.mid)),
                "{text}"
            );
            let (new1, new2) = (format!("new 1 {tag}"), format!("new 2 {tag}"));
            assert!(pos(&new1) < pos(&new2));
            assert!(
                lines[pos(&new1)].starts_with(&format!("<{}> [", bob.mid)),
                "{text}"
            );
            assert!(
                lines[pos(&new1)].contains(&format!("bob({}): {new1}", bob.mid)),
                "{text}"
            );
            assert!(
                lines[pos("first from carol")].starts_with(&format!("<{}> [", carol.mid)),
                "{text}"
            );
        }
    }
    s.stop().await;
}

/// A running `sixin watch`: started, and ready once it has printed that it is watching.
struct Watch {
    child: std::process::Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Watch {
    /// Starts `watch` with `args` and waits until it has taken stock of the conversations.
    async fn start(cli: &Cli, args: &[&str]) -> Watch {
        let mut all = vec!["watch".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut cmd = cli.command(&all);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut text = String::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                if line.starts_with("watching ") {
                    let _ = tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let ready = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(ready.is_ok(), "watch did not start");
        Watch { child, stderr }
    }

    /// Waits for the end (--duration); returns stdout.
    async fn finish(self) -> String {
        let Watch { child, stderr } = self;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let err = stderr.join().unwrap();
        assert!(out.status.success(), "{err}");
        String::from_utf8(out.stdout).unwrap()
    }
}

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Sends `n` texts alternately between two users, many at a time.
async fn fill(a: &Client, a_mid: u64, b: &Client, b_mid: u64, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (c, to) = if i % 2 == 0 {
            (a.clone(), b_mid)
        } else {
            (b.clone(), a_mid)
        };
        set.spawn(async move { c.send_text(to, &format!("message {i}")).await.unwrap() });
        if set.len() >= 16 {
            set.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_lossless_incremental_and_resumable() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    s.friends(&alice, &bob).await;
    s.friends(&alice, &carol).await;
    let a = s.client(&alice);
    let b = s.client(&bob);
    // A history many pages long, with an image and a recall in it.
    fill(&a, alice.mid, &b, bob.mid, 450).await;
    let img = a
        .send_image(bob.mid, "https://i0.hdslb.com/bfs/im/cafe.png")
        .await
        .unwrap()
        .msg_key;
    a.recall(bob.mid, img).await.unwrap();
    let cli = s.cli(&alice);
    let out_dir = TempDir::new("export");
    let dir = out_dir.0.to_str().unwrap().to_string();
    let jsonl = out_dir.0.join(format!("user-{}.jsonl", bob.mid));
    let html = out_dir.0.join(format!("user-{}.html", bob.mid));
    let bob_id = bob.mid.to_string();

    let out = cli.ok(&["export", &bob_id, "--out", &dir]).await;
    assert_eq!(out.trim(), format!("user-{}: 452 new, 452 in all", bob.mid));
    // Lossless: each line is one message exactly as the API returned it, oldest first.
    let first = read_lines(&jsonl);
    let received = raw_history(&a, bob.mid).await;
    assert_eq!(received.len(), 452);
    assert_eq!(first.len(), 452);
    for (line, m) in first.iter().zip(&received) {
        assert_eq!(line, &serde_json::to_string(m).unwrap());
    }
    let page: Value = serde_json::from_str(&first[0]).unwrap();
    for field in [
        "sender_uid",
        "receiver_type",
        "receiver_id",
        "msg_type",
        "content",
        "msg_seqno",
        "timestamp",
        "at_uids",
        "msg_key",
        "msg_status",
        "notify_code",
        "msg_source",
    ] {
        assert!(page.get(field).is_some(), "{field} missing from {page}");
    }
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.starts_with("<!DOCTYPE html>"), "{h:.200}");
    assert!(
        h.contains("452 条消息") && h.contains("message 449") && h.contains("与 bob("),
        "{h:.400}"
    );
    assert!(h.contains("<img src=\"https://i0.hdslb.com/bfs/im/cafe.png\" alt=\"图片\" loading=\"lazy\"></a> (已撤回)"));
    assert!(!h.contains("<script"), "self-contained, no scripts");

    // New messages: a second run appends only those.
    for i in 0..3 {
        b.send_text(alice.mid, &format!("brand new {i} <b>&</b>"))
            .await
            .unwrap();
    }
    let out = cli.ok(&["export", &bob_id, "--out", &dir]).await;
    assert_eq!(out.trim(), format!("user-{}: 3 new, 455 in all", bob.mid));
    let second = read_lines(&jsonl);
    assert_eq!(second.len(), 455);
    assert_eq!(&second[..452], &first[..], "earlier lines are untouched");
    let seqnos: Vec<u64> = second
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["msg_seqno"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqnos, (1..=455).collect::<Vec<_>>());
    let keys: HashSet<u64> = second
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["msg_key"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(keys.len(), 455);
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(
        h.contains("455 条消息") && h.contains("brand new 2 &lt;b&gt;&amp;&lt;/b&gt;"),
        "the transcript is regenerated"
    );
    // Nothing new: nothing appended.
    let out = cli.ok(&["export", &bob_id, "--out", &dir]).await;
    assert_eq!(out.trim(), format!("user-{}: 0 new, 455 in all", bob.mid));
    assert_eq!(read_lines(&jsonl), second);

    // An interrupted run: the last lines missing and the one before cut mid-way.
    let complete = std::fs::read(&jsonl).unwrap();
    let keep: usize =
        second[..449].iter().map(|l| l.len() + 1).sum::<usize>() + second[449].len() / 2;
    std::fs::write(&jsonl, &complete[..keep]).unwrap();
    let out = cli.ok(&["export", &bob_id, "--out", &dir]).await;
    assert_eq!(out.trim(), format!("user-{}: 6 new, 455 in all", bob.mid));
    assert_eq!(
        std::fs::read(&jsonl).unwrap(),
        complete,
        "resumed to the same complete file"
    );

    // --all: every conversation in the session list, the ones already exported incrementally.
    s.client(&carol)
        .send_text(alice.mid, "carol here")
        .await
        .unwrap();
    s.system_message(
        &alice,
        10,
        json!({"title": "T", "text": "X", "jump_uri": "https://b"}),
    )
    .await;
    let out = cli.ok(&["export", "--all", "--out", &dir]).await;
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let mut want = vec![
        format!("user-{}: 0 new, 455 in all", bob.mid),
        format!("user-{}: 1 new, 1 in all", carol.mid),
        format!("user-{UP_ASSISTANT}: 1 new, 1 in all"),
    ];
    want.sort();
    assert_eq!(lines, want);
    let sys = read_lines(&out_dir.0.join(format!("user-{UP_ASSISTANT}.jsonl")));
    assert_eq!(
        serde_json::from_str::<Value>(&sys[0]).unwrap()["msg_type"],
        10
    );
    let h = std::fs::read_to_string(out_dir.0.join(format!("user-{UP_ASSISTANT}.html"))).unwrap();
    assert!(h.contains("[通知] T: X → https://b"), "{h}");
    let v = json_lines(&cli.ok(&["export", "--all", "--out", &dir, "--json"]).await);
    assert_eq!(v.len(), 3);
    let bob_entry = v.iter().find(|e| e["talker_id"] == bob.mid).unwrap();
    assert_eq!(bob_entry["new"], 0);
    assert_eq!(bob_entry["total"], 455);
    assert_eq!(bob_entry["session_type"], 1);
    assert_eq!(bob_entry["jsonl"].as_str(), jsonl.to_str());
    assert!(out_dir.0.join(format!("user-{}.html", carol.mid)).exists());

    // A conversation that can't be exported (no such fan group) doesn't stop the others.
    let out = cli.run(&["export", "g:77", &bob_id, "--out", &dir]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("group-77") && stderr.contains("700014"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("user-{}: 0 new, 455 in all", bob.mid)
    );

    // Nothing to export named: an error.
    let err = cli.fails(&["export", "--out", &dir]).await;
    assert!(err.contains("--all"), "{err}");
    s.stop().await;
}

/// A TCP proxy that forwards everything, except that the answer to the first send request
/// is swallowed and the client's connection dropped (the message is stored; the client can't
/// know). Returns its address and the number of send requests it saw.
async fn answer_losing_proxy(
    upstream: std::net::SocketAddr,
) -> (std::net::SocketAddr, std::sync::Arc<AtomicU64>) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SEND_LINE: &[u8] = b"POST /web_im/v1/web_im/send_msg";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let sends = Arc::new(AtomicU64::new(0));
    let sends2 = sends.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (armed, sends) = (armed.clone(), sends2.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let poisoned = Arc::new(AtomicBool::new(false));
                let p = poisoned.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if buf[..n].windows(SEND_LINE.len()).any(|w| w == SEND_LINE) {
                            sends.fetch_add(1, Ordering::SeqCst);
                            if armed.swap(false, Ordering::SeqCst) {
                                p.store(true, Ordering::SeqCst);
                            }
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0
                        || poisoned.load(Ordering::SeqCst)
                        || cw.write_all(&buf[..n]).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (addr, sends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_whose_answer_is_lost_is_stored_once() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let (proxy, sends) = answer_losing_proxy(addr).await;
    let mut cli = s.cli(&alice);
    cli.base = format!("http://{proxy}");
    let out = cli.ok(&["send", &bob.mid.to_string(), "said once"]).await;
    let key: u64 = out
        .trim()
        .strip_prefix("sent: msg_key ")
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    assert_eq!(sends.load(Ordering::SeqCst), 1, "the send was not repeated");
    let all = raw_history(&s.client(&bob), alice.mid).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["msg_key"].as_u64(), Some(key));
    assert_eq!(text_of(&all[0]), "said once");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_group_commands() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let g = s
        .admin(
            reqwest::Method::POST,
            "/groups",
            json!({"owner": alice.mid, "name": "测试团"}),
        )
        .await;
    let gid = g["group_id"].as_u64().unwrap();
    s.admin(
        reqwest::Method::POST,
        &format!("/groups/{gid}/members"),
        json!({"mid": bob.mid}),
    )
    .await;
    let cli = s.cli(&alice);
    let bob_cli = s.cli(&bob);
    let g_id = gid.to_string();

    let out = bob_cli.ok(&["send", &g_id, "hi group", "--group"]).await;
    assert!(out.starts_with("sent: msg_key "), "{out}");
    let out = cli.ok(&["unread"]).await;
    assert!(out.contains("groups:        3"), "{out}");
    let out = cli.ok(&["sessions"]).await;
    let row = out
        .lines()
        .find(|l| l.starts_with(&format!("测试团(g:{gid})")))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(" group ") && row.contains("hi group"), "{row}");
    let out = cli.ok(&["history", &g_id, "--group"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("#1 系统: [群消息] 测试团开通啦"), "{out}");
    assert!(lines[1].contains("#2 系统: [群消息] 欢迎bob入群"), "{out}");
    assert!(
        lines[2].contains(&format!("#3 bob({}): hi group", bob.mid)),
        "{out}"
    );
    assert_eq!(
        cli.ok(&["read", &g_id, "--group"]).await.trim(),
        "marked read"
    );
    assert!(cli.ok(&["unread"]).await.contains("groups:        0"));

    let dir = TempDir::new("group-export");
    let out = cli
        .ok(&[
            "export",
            &format!("g:{gid}"),
            "--out",
            dir.0.to_str().unwrap(),
        ])
        .await;
    assert_eq!(out.trim(), format!("group-{gid}: 3 new, 3 in all"));
    let h = std::fs::read_to_string(dir.0.join(format!("group-{gid}.html"))).unwrap();
    assert!(h.contains("hi group") && h.contains("欢迎bob入群"), "{h}");
    assert!(
        h.contains(&format!("<title>粉丝团 测试团(g:{gid})</title>")),
        "{h}"
    );

    // watch shows group messages too.
    let watcher = Watch::start(&cli, &["--interval", "0.3", "--duration", "5"]).await;
    bob_cli.ok(&["send", &g_id, "group live", "--group"]).await;
    let text = watcher.finish().await;
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("<g:{gid}> ["))
            && text.contains(&format!("bob({}): group live", bob.mid)),
        "{text}"
    );
    s.stop().await;
}
