//! The `sixin` binary's operator commands, run as a newcomer would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn sixin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sixin"));
    c.env("SIXIN_LOG", "warn").env_remove("SIXIN_ADMIN_TOKEN");
    c
}

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "sixin-cli-{tag}-{}-{}",
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
        format!("sqlite://{}/sub/sixin.db", self.0.display())
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn json_line(out: &[u8]) -> Value {
    let text = String::from_utf8_lossy(out);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not one JSON object: {text:?}: {e}"))
}

#[test]
fn user_add_and_login_print_one_json_object() {
    let dir = TempDir::new("user");
    let out = sixin()
        .args([
            "user",
            "add",
            "--name",
            "dave",
            "--mid",
            "4242",
            "--password",
            "pw",
            "--database",
            &dir.db(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_line(&out.stdout);
    assert_eq!(v["mid"], 4242);
    assert_eq!(v["name"], "dave");
    assert_eq!(v["DedeUserID"], "4242");
    assert_eq!(v["bili_jct"].as_str().unwrap().len(), 32);
    assert!(v["SESSDATA"].as_str().unwrap().len() >= 32);
    assert_eq!(v.as_object().unwrap().len(), 5);

    let out = sixin()
        .args(["user", "login", "--mid", "4242", "--database", &dir.db()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let w = json_line(&out.stdout);
    assert_eq!(w["mid"], 4242);
    assert_ne!(w["SESSDATA"], v["SESSDATA"]);

    // The same mid again fails, with a message and a non-zero exit.
    let out = sixin()
        .args([
            "user",
            "add",
            "--name",
            "dave2",
            "--mid",
            "4242",
            "--database",
            &dir.db(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    // An unknown user has no login.
    let out = sixin()
        .args(["user", "login", "--mid", "99", "--database", &dir.db()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn print_default_config_is_loadable() {
    let out = sixin().args(["config", "print-default"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    assert!(text.contains("recall_window_secs = 120"), "{text}");
    let dir = TempDir::new("cfg");
    let file = dir.0.join("sixin.toml");
    std::fs::write(&file, text).unwrap();
    // A server started from the printed file and a database flag comes up.
    let out = sixin()
        .args([
            "user",
            "add",
            "--name",
            "x",
            "--config",
            file.to_str().unwrap(),
            "--database",
            &dir.db(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Served(Child);
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sixin serve --demo` on an ephemeral port; returns the process, the logins and the URL.
fn serve_demo(db: &str) -> (Served, Vec<Value>, String) {
    let mut child = sixin()
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--database",
            db,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Served(child);
    let mut logins = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("# sixin listening on ") {
            return (served, logins, url.to_string());
        }
        if line.starts_with('{') {
            logins.push(serde_json::from_str(&line).unwrap());
        }
    }
    panic!("sixin serve exited before listening");
}

#[tokio::test]
async fn serve_demo_leaves_working_logins_and_conversations() {
    let dir = TempDir::new("demo");
    let (_served, logins, base) = serve_demo(&dir.db());
    assert_eq!(logins.len(), 3);
    assert_eq!(logins[0]["name"], "alice");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let cookie = format!("SESSDATA={}", logins[0]["SESSDATA"].as_str().unwrap());
    let v: Value = http
        .get(format!(
            "{base}/session_svr/v1/session_svr/get_sessions?session_type=1"
        ))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], 0, "{v}");
    let list = v["data"]["session_list"].as_array().unwrap();
    let talkers: Vec<u64> = list
        .iter()
        .map(|s| s["talker_id"].as_u64().unwrap())
        .collect();
    // The system notification, carol's message and the conversation with bob.
    assert_eq!(talkers, vec![844424930131966, 10003, 10002]);
    assert_eq!(v["data"]["system_msg"]["7"], 844424930131966u64);
    let v: Value = http
        .get(format!("{base}/session_svr/v1/session_svr/single_unread"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // carol's message; bob's text and image; the notification is a push (docs/unread-counters.md).
    assert_eq!(v["data"]["unfollow_unread"], 1, "{v}");
    assert_eq!(v["data"]["follow_unread"], 2, "{v}");
    assert_eq!(v["data"]["biz_msg_follow_unread"], 1, "{v}");
    drop(_served);

    // A second run on the same database keeps the world and prints fresh logins.
    let (_served, again, base) = serve_demo(&dir.db());
    assert_eq!(again.len(), 3);
    assert_ne!(again[0]["SESSDATA"], logins[0]["SESSDATA"]);
    let cookie = format!("SESSDATA={}", again[1]["SESSDATA"].as_str().unwrap());
    let v: Value = http
        .get(format!(
            "{base}/svr_sync/v1/svr_sync/fetch_session_msgs?talker_id=10001&session_type=1&size=20"
        ))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["messages"].as_array().unwrap().len(), 3, "{v}");
}
