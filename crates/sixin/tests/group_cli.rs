//! `sixin group create|add|remove|freeze|dissolve`, run as an operator would, then the result
//! seen through a `sixin serve` on the same database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

fn sixin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sixin"));
    c.env("SIXIN_LOG", "warn")
        .env_remove("SIXIN_ADMIN_TOKEN")
        .env_remove("SIXIN_DATABASE");
    c
}

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "sixin-group-cli-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn db(&self) -> String {
        format!("sqlite://{}/data/sixin.db", self.0.display())
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `sixin ARGS --database DB`.
fn run(db: &str, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--database", db]);
    sixin().args(&all).output().unwrap()
}

/// Runs a command that must succeed and print exactly one JSON object on one line.
fn run_json(db: &str, args: &[&str]) -> Value {
    let out = run(db, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sixin {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object: {stdout:?}: {e}"))
}

/// Runs a command that must fail: non-zero exit, nothing on stdout, a message on stderr
/// containing `needle`.
fn run_fails(db: &str, args: &[&str], needle: &str) {
    let out = run(db, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "sixin {args:?} should fail");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(needle),
        "sixin {args:?}: {needle:?} not in {stderr:?}"
    );
}

struct Served(Child);
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sixin serve` on an ephemeral port; returns the process and the base URL.
fn serve(db: &str) -> (Served, String) {
    let mut child = sixin()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", db])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Served(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("# sixin listening on ") {
            return (served, url.to_string());
        }
    }
    panic!("sixin serve exited before listening");
}

struct Login {
    mid: u64,
    cookie: String,
    csrf: String,
}

fn login(v: &Value) -> Login {
    Login {
        mid: v["mid"].as_u64().unwrap(),
        cookie: format!(
            "SESSDATA={}; bili_jct={}; DedeUserID={}",
            v["SESSDATA"].as_str().unwrap(),
            v["bili_jct"].as_str().unwrap(),
            v["mid"]
        ),
        csrf: v["bili_jct"].as_str().unwrap().to_string(),
    }
}

async fn get(
    http: &reqwest::Client,
    base: &str,
    who: &Login,
    path: &str,
    q: &[(&str, String)],
) -> Value {
    let resp = http
        .get(format!("{base}{path}"))
        .header("Cookie", &who.cookie)
        .query(q)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    who: &Login,
    path: &str,
    form: &[(&str, String)],
) -> Value {
    let mut f = form.to_vec();
    f.push(("csrf", who.csrf.clone()));
    let resp = http
        .post(format!("{base}{path}"))
        .header("Cookie", &who.cookie)
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.json().await.unwrap()
}

const FETCH: &str = "/svr_sync/v1/svr_sync/fetch_session_msgs";
const DETAIL: &str = "/session_svr/v1/session_svr/session_detail";
const SESSIONS: &str = "/session_svr/v1/session_svr/get_sessions";
const GROUP_UNREAD: &str = "/session_svr/v1/session_svr/my_group_unread";
const SEND: &str = "/web_im/v1/web_im/send_msg";

fn sys(g: u64, text: &str) -> String {
    format!(r#"{{"group_id":{g},"content":"{text}"}}"#)
}

#[tokio::test]
async fn group_commands_print_json_and_the_server_shows_their_messages() {
    let dir = TempDir::new("life");
    let db = dir.db();
    let alice = run_json(&db, &["user", "add", "--name", "alice", "--mid", "5001"]);
    let bob = run_json(&db, &["user", "add", "--name", "bob", "--mid", "5002"]);
    let carol = run_json(&db, &["user", "add", "--name", "carol", "--mid", "5003"]);
    let cover = "https://i0.hdslb.com/bfs/face/alice.jpg";

    // create: every option, then the defaults.
    let g1 = run_json(
        &db,
        &[
            "group",
            "create",
            "--owner",
            "5001",
            "--name",
            "alice的应援团",
            "--cover",
            cover,
            "--type",
            "2",
        ],
    );
    assert_eq!(
        g1,
        json!({"group_id": 100001, "owner": 5001, "name": "alice的应援团", "cover": cover,
               "group_type": 2, "state": "normal", "members": 1, "max_seqno": 1})
    );
    let g2 = run_json(
        &db,
        &["group", "create", "--owner", "5002", "--name", "bob团"],
    );
    assert_eq!(
        g2,
        json!({"group_id": 100002, "owner": 5002, "name": "bob团", "cover": "",
               "group_type": 0, "state": "normal", "members": 1, "max_seqno": 1})
    );
    let with = |state: &str, members: u64, max: u64| {
        let mut v = g1.clone();
        v["state"] = json!(state);
        v["members"] = json!(members);
        v["max_seqno"] = json!(max);
        v
    };

    // add / remove.
    assert_eq!(
        run_json(&db, &["group", "add", "--group", "100001", "--mid", "5002"]),
        with("normal", 2, 2)
    );
    assert_eq!(
        run_json(&db, &["group", "add", "--group", "100001", "--mid", "5003"]),
        with("normal", 3, 3)
    );
    run_fails(
        &db,
        &["group", "add", "--group", "100001", "--mid", "5003"],
        "already a member",
    );
    assert_eq!(
        run_json(
            &db,
            &["group", "remove", "--group", "100001", "--mid", "5003"]
        ),
        with("normal", 2, 4)
    );
    run_fails(
        &db,
        &["group", "remove", "--group", "100001", "--mid", "5003"],
        "not found",
    );
    run_fails(
        &db,
        &["group", "remove", "--group", "100001", "--mid", "5001"],
        "owner",
    );
    run_fails(
        &db,
        &["group", "add", "--group", "100001", "--mid", "9999"],
        "not found",
    );
    run_fails(
        &db,
        &["group", "add", "--group", "100009", "--mid", "5003"],
        "not found",
    );
    run_fails(
        &db,
        &[
            "group", "create", "--owner", "5001", "--name", "x", "--type", "1",
        ],
        "group_type",
    );
    run_fails(
        &db,
        &["group", "create", "--owner", "9999", "--name", "x"],
        "not found",
    );
    run_fails(
        &db,
        &["group", "create", "--owner", "5001", "--name", " "],
        "name",
    );
    // Missing or malformed arguments are clap's errors.
    let out = sixin()
        .args(["group", "add", "--group", "100001", "--database", &db])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = sixin()
        .args(["group", "freeze", "--group", "abc", "--database", &db])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // freeze / dissolve.
    assert_eq!(
        run_json(&db, &["group", "freeze", "--group", "100001"]),
        with("frozen", 2, 5)
    );
    run_fails(&db, &["group", "freeze", "--group", "100001"], "frozen");
    run_fails(
        &db,
        &["group", "add", "--group", "100001", "--mid", "5003"],
        "frozen",
    );
    let d2 = run_json(&db, &["group", "dissolve", "--group", "100002"]);
    assert_eq!(d2["state"], "dissolved");
    assert_eq!(d2["max_seqno"], 2);
    run_fails(
        &db,
        &["group", "dissolve", "--group", "100002"],
        "dissolved",
    );
    run_fails(&db, &["group", "freeze", "--group", "100002"], "dissolved");

    // The server on that database shows it all.
    let (_served, base) = serve(&db);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (alice, bob, carol) = (login(&alice), login(&bob), login(&carol));
    let g = 100001u64;
    let q = |k: &'static str, v: u64| (k, v.to_string());

    // Both members read the five system messages, newest first.
    for who in [&alice, &bob] {
        let v = get(
            &http,
            &base,
            who,
            FETCH,
            &[q("talker_id", g), q("session_type", 2), q("size", 20)],
        )
        .await;
        assert_eq!(v["code"], 0, "{v}");
        let msgs = v["data"]["messages"].as_array().unwrap();
        let got: Vec<(u64, u64, String)> = msgs
            .iter()
            .map(|m| {
                assert_eq!(m["sender_uid"], 0, "{m}");
                assert_eq!(m["receiver_type"], 2, "{m}");
                assert_eq!(m["receiver_id"], g, "{m}");
                assert_eq!(m["msg_source"], 13, "{m}");
                assert_eq!(m["at_uids"], Value::Null, "{m}");
                (
                    m["msg_seqno"].as_u64().unwrap(),
                    m["msg_type"].as_u64().unwrap(),
                    m["content"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (5, 303, sys(g, "该应援团已被冻结")),
                (4, 302, sys(g, "carol离开了应援团")),
                (3, 306, sys(g, "欢迎carol入群")),
                (2, 306, sys(g, "欢迎bob入群")),
                (1, 305, sys(g, "alice的应援团开通啦 (>▽<)")),
            ]
        );
    }
    // carol left: no history, but her session (ending at her 302) is listed.
    let v = get(
        &http,
        &base,
        &carol,
        FETCH,
        &[q("talker_id", g), q("session_type", 2), q("size", 20)],
    )
    .await;
    assert_eq!(v["code"], 700014, "{v}");
    assert_eq!(v["message"], "你已不在此同萌中QAQ，无法执行此操作");
    let v = get(
        &http,
        &base,
        &carol,
        DETAIL,
        &[q("talker_id", g), q("session_type", 2)],
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    let d = &v["data"];
    assert_eq!(d["group_name"], "alice的应援团");
    assert_eq!(d["group_cover"], cover);
    assert_eq!(d["group_type"], 2);
    assert_eq!(d["max_seqno"], 4);
    assert_eq!(d["last_msg"]["msg_type"], 302);
    assert_eq!(d["last_msg"]["content"], sys(g, "carol离开了应援团"));

    // Frozen: no sending.
    let send = vec![
        ("msg[sender_uid]", bob.mid.to_string()),
        ("msg[receiver_id]", g.to_string()),
        ("msg[receiver_type]", "2".to_string()),
        ("msg[msg_type]", "1".to_string()),
        (
            "msg[dev_id]",
            "372778FD-E359-461D-86A3-EA2BCC6FF52A".to_string(),
        ),
        ("msg[timestamp]", "1626181379".to_string()),
        ("msg[content]", json!({"content": "hi"}).to_string()),
    ];
    let v = post(&http, &base, &bob, SEND, &send).await;
    assert_eq!(v["code"], 700013, "{v}");
    assert_eq!(v["message"], "已解散QAQ，无法执行此操作");

    // bob's groups: his own (dissolved, created first) then alice's, by join time.
    let v = get(&http, &base, &bob, SESSIONS, &[q("session_type", 3)]).await;
    let ids: Vec<u64> = v["data"]["session_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["talker_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![100002, 100001], "{v}");
    let v = get(
        &http,
        &base,
        &bob,
        FETCH,
        &[q("talker_id", 100002), q("session_type", 2), q("size", 20)],
    )
    .await;
    assert_eq!(v["code"], 700013, "{v}");
    let v = get(
        &http,
        &base,
        &bob,
        DETAIL,
        &[q("talker_id", 100002), q("session_type", 2)],
    )
    .await;
    assert_eq!(v["data"]["last_msg"]["msg_type"], 304, "{v}");
    assert_eq!(
        v["data"]["last_msg"]["content"],
        sys(100002, "该应援团已解散")
    );
    // Unread: 100001 after his join (4 of 5), and both messages of his own group.
    let v = get(&http, &base, &bob, GROUP_UNREAD, &[]).await;
    assert_eq!(v["data"], json!({"unread_count": 4 + 2}), "{v}");
    // alice, the owner, has all five unread; the dissolved group isn't hers.
    let v = get(&http, &base, &alice, GROUP_UNREAD, &[]).await;
    assert_eq!(v["data"], json!({"unread_count": 5}), "{v}");
}
