//! Scenarios: fan groups (应援团) — SPEC §2.1–2.3, §4.1 my_group_unread, §4.2 session types 3
//! and 4, §4.3 and §4.4 group cases, §5 "Fan groups": the admin surface, the 301–306 system
//! messages, sending with mentions, history, read marks, session lists, leaving, removing, and
//! the scale rule (a send writes a constant number of rows whatever the member count).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::*;

const MY_GROUP_UNREAD: &str = "/session_svr/v1/session_svr/my_group_unread";
const NOT_MEMBER: &str = "你已不在此同萌中QAQ，无法执行此操作";
const DISSOLVED: &str = "已解散QAQ，无法执行此操作";
/// UP主小助手: a system account.
const UP_HELPER: u64 = 844424930131966;
const COVER: &str = "https://i0.hdslb.com/bfs/face/member/noface.jpg";

// ---- helpers ----

fn st(n: u64) -> String {
    n.to_string()
}

/// The server clock now, in µs (rounded down to the ms the admin API reports).
async fn clock_us(s: &Server) -> i64 {
    let (code, v) = s.admin(Method::GET, "/clock", None).await;
    assert_eq!(code, 200, "{v}");
    v["now_ms"].as_i64().expect("now_ms") * 1000
}

/// Creates a group through the admin API; returns its answer.
async fn create_group_with(s: &Server, body: Value) -> Value {
    let (code, v) = s.admin(Method::POST, "/groups", Some(body)).await;
    assert_eq!(code, 200, "{v}");
    v
}

/// A group of `owner` named `name`; returns its id.
pub(crate) async fn group_of(s: &Server, owner: &User, name: &str) -> u64 {
    s.advance_clock(1000).await;
    let v = create_group_with(s, json!({"owner": owner.mid, "name": name})).await;
    v["group_id"].as_u64().expect("group_id")
}

pub(crate) async fn join(s: &Server, g: u64, u: &User) -> Value {
    s.advance_clock(1000).await;
    let (code, v) = s
        .admin(
            Method::POST,
            &format!("/groups/{g}/members"),
            Some(json!({"mid": u.mid})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn leave(s: &Server, g: u64, u: &User) -> Value {
    s.advance_clock(1000).await;
    let (code, v) = s
        .admin(
            Method::DELETE,
            &format!("/groups/{g}/members/{}", u.mid),
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn freeze(s: &Server, g: u64) -> Value {
    s.advance_clock(1000).await;
    let (code, v) = s
        .admin(Method::POST, &format!("/groups/{g}/freeze"), None)
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn dissolve(s: &Server, g: u64) -> Value {
    s.advance_clock(1000).await;
    let (code, v) = s
        .admin(Method::POST, &format!("/groups/{g}/dissolve"), None)
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

/// A send_msg form to fan group `g`.
fn gform(from: &User, g: u64, msg_type: u32, content: &str) -> Vec<(&'static str, String)> {
    let mut f = Server::send_form(from, g, msg_type, content);
    for p in f.iter_mut() {
        if p.0 == "msg[receiver_type]" {
            p.1 = "2".into();
        }
    }
    f
}

fn text(t: &str) -> String {
    json!({ "content": t }).to_string()
}

/// Sends a text to group `g` with `extra` form fields; returns the whole answer.
async fn gsend(
    s: &Server,
    from: &User,
    g: u64,
    t: &str,
    extra: &[(&'static str, String)],
) -> Value {
    let mut f = gform(from, g, 1, &text(t));
    f.extend(extra.iter().cloned());
    s.post(from, SEND, &f).await
}

/// One second on, then a text to group `g` that must succeed; returns its msg_key.
pub(crate) async fn gsay(
    s: &Server,
    from: &User,
    g: u64,
    t: &str,
    extra: &[(&'static str, String)],
) -> u64 {
    s.advance_clock(1000).await;
    let v = gsend(s, from, g, t, extra).await;
    ok(&v)["msg_key"]
        .as_u64()
        .unwrap_or_else(|| panic!("no msg_key: {v}"))
}

async fn gfetch(s: &Server, u: &User, g: u64, extra: &[(&str, String)]) -> Value {
    let mut p = vec![("talker_id", st(g)), ("session_type", "2".to_string())];
    p.extend(extra.iter().cloned());
    s.get(u, FETCH, &p).await
}

/// The messages of a fetch that must succeed (empty when null).
async fn history(s: &Server, u: &User, g: u64, extra: &[(&str, String)]) -> Vec<Value> {
    let v = gfetch(s, u, g, extra).await;
    match &ok(&v)["messages"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        other => panic!("messages: {other}"),
    }
}

async fn gdetail(s: &Server, u: &User, g: u64) -> Value {
    s.get(
        u,
        SESSION_DETAIL,
        &[("talker_id", st(g)), ("session_type", "2".into())],
    )
    .await
}

async fn gdetail_ok(s: &Server, u: &User, g: u64) -> Value {
    let v = gdetail(s, u, g).await;
    ok(&v).clone()
}

async fn gack(s: &Server, u: &User, g: u64, ack: Option<&str>) {
    let mut p = vec![("talker_id", st(g)), ("session_type", "2".to_string())];
    if let Some(a) = ack {
        p.push(("ack_seqno", a.to_string()));
    }
    let v = s.post(u, UPDATE_ACK, &p).await;
    assert_empty_ok(&v);
}

async fn group_unread(s: &Server, u: &User) -> u64 {
    let v = s.get(u, MY_GROUP_UNREAD, &[]).await;
    let d = ok(&v);
    assert_eq!(d, &json!({"unread_count": d["unread_count"]}), "{v}");
    d["unread_count"].as_u64().expect("unread_count")
}

fn assert_empty_ok(v: &Value) {
    assert_eq!(
        v,
        &json!({"code": 0, "msg": "0", "message": "0", "ttl": 1, "data": {}})
    );
}

/// (ack_seqno, unread_count, max_seqno, at_seqno, last_msg.msg_seqno) of `u`'s session.
async fn state(s: &Server, u: &User, g: u64) -> (u64, u64, u64, u64, u64) {
    let d = gdetail_ok(s, u, g).await;
    let n = |k: &str| d[k].as_u64().unwrap_or_else(|| panic!("{k}: {d}"));
    (
        n("ack_seqno"),
        n("unread_count"),
        n("max_seqno"),
        n("at_seqno"),
        d["last_msg"]["msg_seqno"]
            .as_u64()
            .unwrap_or_else(|| panic!("last_msg: {d}")),
    )
}

fn talker_ids(data: &Value) -> Vec<u64> {
    match &data["session_list"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|x| x["talker_id"].as_u64().expect("talker_id"))
            .collect(),
        other => panic!("session_list: {other}"),
    }
}

async fn list(s: &Server, u: &User, session_type: u8, extra: &[(&str, String)]) -> Value {
    let mut p = vec![("session_type", session_type.to_string())];
    p.extend(extra.iter().cloned());
    s.sessions(u, &p).await
}

async fn ids(s: &Server, u: &User, session_type: u8, extra: &[(&str, String)]) -> Vec<u64> {
    talker_ids(&list(s, u, session_type, extra).await)
}

/// The content text of a fan-group system message.
fn sys_content(g: u64, t: &str) -> String {
    format!(r#"{{"group_id":{g},"content":"{t}"}}"#)
}

/// Asserts a fan-group system message, whole (its key and time only checked for type).
fn assert_sys(m: &Value, g: u64, seqno: u64, msg_type: u32, t: &str) {
    assert!(m["msg_key"].as_u64().is_some_and(|k| k > 0), "{m}");
    assert!(
        m["timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000),
        "{m}"
    );
    let want = json!({
        "sender_uid": 0,
        "receiver_type": 2,
        "receiver_id": g,
        "msg_type": msg_type,
        "content": sys_content(g, t),
        "msg_seqno": seqno,
        "timestamp": m["timestamp"],
        "at_uids": null,
        "msg_key": m["msg_key"],
        "msg_status": 0,
        "notify_code": "",
        "new_face_version": 0,
        "msg_source": 13,
    });
    assert_eq!(m, &want);
}

/// Asserts a member's text in a group, whole.
fn assert_text(m: &Value, g: u64, from: &User, seqno: u64, t: &str, key: u64, at_uids: Value) {
    let want = json!({
        "sender_uid": from.mid,
        "receiver_type": 2,
        "receiver_id": g,
        "msg_type": 1,
        "content": text(t),
        "msg_seqno": seqno,
        "timestamp": m["timestamp"],
        "at_uids": at_uids,
        "msg_key": key,
        "msg_status": 0,
        "notify_code": "",
        "new_face_version": 0,
        "msg_source": 7,
    });
    assert_eq!(m, &want);
}

fn seqnos(msgs: &[Value]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m["msg_seqno"].as_u64().unwrap())
        .collect()
}

/// The admin API's error answer: the status and an `error` text.
fn assert_admin_err(code: u16, v: &Value, want: u16) {
    assert_eq!(code, want, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
}

// ---- the admin surface ----

async fn admin_group_lifecycle_and_answers(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;

    let v = create_group_with(
        s,
        json!({"owner": owner.mid, "name": "owner的应援团", "cover": COVER, "group_type": 2}),
    )
    .await;
    let g = 100001u64;
    let info = |state: &str, members: u64, max: u64| {
        json!({
            "group_id": g, "owner": owner.mid, "name": "owner的应援团", "cover": COVER,
            "group_type": 2, "state": state, "members": members, "max_seqno": max,
        })
    };
    // Ids start at 100001; the owner is the first member; the 305 is message 1.
    assert_eq!(v, info("normal", 1, 1));
    let (code, v) = s.admin(Method::GET, &format!("/groups/{g}"), None).await;
    assert_eq!((code, v), (200, info("normal", 1, 1)));

    // Defaults: no cover, 应援团 (0); the next id.
    let v2 = create_group_with(s, json!({"owner": bob.mid, "name": "  bob's  "})).await;
    assert_eq!(
        v2,
        json!({"group_id": 100002, "owner": bob.mid, "name": "bob's", "cover": "", "group_type": 0,
               "state": "normal", "members": 1, "max_seqno": 1})
    );

    assert_eq!(join(s, g, &bob).await, info("normal", 2, 2));
    assert_eq!(join(s, g, &carol).await, info("normal", 3, 3));
    // Already a member: 409, nothing written.
    let (code, v) = s
        .admin(
            Method::POST,
            &format!("/groups/{g}/members"),
            Some(json!({"mid": bob.mid})),
        )
        .await;
    assert_admin_err(code, &v, 409);
    assert_eq!(leave(s, g, &carol).await, info("normal", 2, 4));
    // Gone: removing again is 404; coming back is allowed.
    let (code, v) = s
        .admin(
            Method::DELETE,
            &format!("/groups/{g}/members/{}", carol.mid),
            None,
        )
        .await;
    assert_admin_err(code, &v, 404);
    assert_eq!(join(s, g, &carol).await, info("normal", 3, 5));
    // The owner can't leave.
    let (code, v) = s
        .admin(
            Method::DELETE,
            &format!("/groups/{g}/members/{}", owner.mid),
            None,
        )
        .await;
    assert_admin_err(code, &v, 400);

    assert_eq!(freeze(s, g).await, info("frozen", 3, 6));
    let (code, v) = s
        .admin(Method::POST, &format!("/groups/{g}/freeze"), None)
        .await;
    assert_admin_err(code, &v, 409);
    let dave = s.user("dave").await;
    let (code, v) = s
        .admin(
            Method::POST,
            &format!("/groups/{g}/members"),
            Some(json!({"mid": dave.mid})),
        )
        .await;
    assert_admin_err(code, &v, 409);
    // A frozen group can still lose members and be dissolved.
    assert_eq!(leave(s, g, &carol).await, info("frozen", 2, 7));
    assert_eq!(dissolve(s, g).await, info("dissolved", 2, 8));
    for path in [
        format!("/groups/{g}/dissolve"),
        format!("/groups/{g}/freeze"),
    ] {
        let (code, v) = s.admin(Method::POST, &path, None).await;
        assert_admin_err(code, &v, 409);
    }
    let (code, v) = s
        .admin(
            Method::POST,
            &format!("/groups/{g}/members"),
            Some(json!({"mid": dave.mid})),
        )
        .await;
    assert_admin_err(code, &v, 409);
    let (code, v) = s
        .admin(
            Method::DELETE,
            &format!("/groups/{g}/members/{}", bob.mid),
            None,
        )
        .await;
    assert_admin_err(code, &v, 409);
    let (code, v) = s.admin(Method::GET, &format!("/groups/{g}"), None).await;
    assert_eq!((code, v), (200, info("dissolved", 2, 8)));
    // The other group was untouched.
    let (_, v) = s.admin(Method::GET, "/groups/100002", None).await;
    assert_eq!(v, v2);
}
scenario!(admin_group_lifecycle_and_answers);

async fn admin_group_bad_input(s: &Server) {
    let owner = s.user("owner").await;
    let g = group_of(s, &owner, "g").await;
    let before = s.admin(Method::GET, &format!("/groups/{g}"), None).await;

    for body in [
        json!({"owner": owner.mid, "name": ""}),
        json!({"owner": owner.mid, "name": "   "}),
        json!({"owner": owner.mid, "name": "x".repeat(65)}),
        json!({"owner": owner.mid, "name": "n", "group_type": 1}),
        json!({"owner": owner.mid, "name": "n", "group_type": 3}),
        json!({"owner": owner.mid, "name": "n", "group_type": 256}),
        json!({"owner": owner.mid, "name": "n", "group_type": -1}),
        json!({"owner": owner.mid}),
        json!({"name": "n"}),
        json!({"owner": "x", "name": "n"}),
        json!({"owner": owner.mid, "name": "n", "surprise": 1}),
        // A system account owns no group.
        json!({"owner": UP_HELPER, "name": "n"}),
    ] {
        let (code, v) = s.admin(Method::POST, "/groups", Some(body.clone())).await;
        assert_admin_err(code, &v, 400);
    }
    // Not JSON at all.
    let resp = s
        .http
        .post(s.url("/admin/v1/groups"))
        .bearer_auth(ADMIN_TOKEN)
        .body("owner=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // An unknown owner.
    let (code, v) = s
        .admin(
            Method::POST,
            "/groups",
            Some(json!({"owner": 987654321, "name": "n"})),
        )
        .await;
    assert_admin_err(code, &v, 404);
    // 64 characters are fine (counted as characters, not bytes).
    let v = create_group_with(s, json!({"owner": owner.mid, "name": "团".repeat(64)})).await;
    assert_eq!(v["name"], "团".repeat(64));

    // Unknown group, unknown user, malformed ids.
    for (m, path, body, want) in [
        (Method::GET, "/groups/99".to_string(), None, 404),
        (Method::GET, "/groups/abc".to_string(), None, 400),
        (Method::GET, "/groups/-1".to_string(), None, 400),
        (
            Method::POST,
            "/groups/99/members".to_string(),
            Some(json!({"mid": owner.mid})),
            404,
        ),
        (
            Method::POST,
            format!("/groups/{g}/members"),
            Some(json!({"mid": 987654321})),
            404,
        ),
        (
            Method::POST,
            format!("/groups/{g}/members"),
            Some(json!({"mid": "x"})),
            400,
        ),
        (
            Method::POST,
            format!("/groups/{g}/members"),
            Some(json!({})),
            400,
        ),
        (
            Method::POST,
            format!("/groups/{g}/members"),
            Some(json!({"mid": UP_HELPER})),
            400,
        ),
        (
            Method::DELETE,
            format!("/groups/{g}/members/987654321"),
            None,
            404,
        ),
        (Method::DELETE, format!("/groups/{g}/members/x"), None, 400),
        (
            Method::DELETE,
            format!("/groups/99/members/{}", owner.mid),
            None,
            404,
        ),
        (Method::POST, "/groups/99/freeze".to_string(), None, 404),
        (Method::POST, "/groups/99/dissolve".to_string(), None, 404),
        (Method::POST, "/groups/x/dissolve".to_string(), None, 400),
    ] {
        let (code, v) = s.admin(m.clone(), &path, body.clone()).await;
        assert_admin_err(code, &v, want);
    }
    // Without the token: 401, nothing done.
    let resp = s
        .http
        .post(s.url(&format!("/admin/v1/groups/{g}/dissolve")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = s
        .http
        .post(s.url("/admin/v1/groups"))
        .bearer_auth("wrong")
        .json(&json!({"owner": owner.mid, "name": "n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        s.admin(Method::GET, &format!("/groups/{g}"), None).await,
        before
    );
}
scenario!(admin_group_bad_input);

async fn concurrent_joins_welcome_once(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let g = group_of(s, &owner, "g").await;
    let path = format!("/groups/{g}/members");
    let body = json!({"mid": bob.mid});
    let tries = (0..6).map(|_| s.admin(Method::POST, &path, Some(body.clone())));
    let codes: Vec<u16> = futures_join_all(tries)
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 5, "{codes:?}");
    let msgs = history(s, &owner, g, &[("size", "20".into())]).await;
    assert_eq!(seqnos(&msgs), vec![2, 1]);
    // Concurrent freezes: one notice.
    let path = format!("/groups/{g}/freeze");
    let codes: Vec<u16> = futures_join_all((0..4).map(|_| s.admin(Method::POST, &path, None)))
        .await
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    let msgs = history(s, &owner, g, &[("size", "20".into())]).await;
    assert_eq!(seqnos(&msgs), vec![3, 2, 1]);
    assert_sys(&msgs[0], g, 3, 303, "该应援团已被冻结");
}
scenario!(concurrent_joins_welcome_once);

// ---- the system messages ----

async fn system_messages_301_to_306_are_stored_exactly(s: &Server) {
    let owner = s.user("小明").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let lo = clock_us(s).await / 1_000_000;
    let g = group_of(s, &owner, "小明的应援团").await;
    join(s, g, &bob).await;
    join(s, g, &carol).await;
    leave(s, g, &carol).await;
    freeze(s, g).await;
    let hi = clock_us(s).await / 1_000_000 + 1;

    // Every member reads the same history, newest first.
    for viewer in [&owner, &bob] {
        let v = gfetch(s, viewer, g, &[("size", "20".into())]).await;
        let d = ok(&v);
        assert_eq!(d["has_more"], 0);
        assert_eq!(d["min_seqno"], 1);
        assert_eq!(d["max_seqno"], 5);
        assert!(d.get("e_infos").is_none(), "{d}");
        let msgs = d["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 5, "{v}");
        assert_sys(&msgs[4], g, 1, 305, "小明的应援团开通啦 (>▽<)");
        assert_sys(&msgs[3], g, 2, 306, "欢迎bob入群");
        assert_sys(&msgs[2], g, 3, 306, "欢迎carol入群");
        assert_sys(&msgs[1], g, 4, 302, "carol离开了应援团");
        assert_sys(&msgs[0], g, 5, 303, "该应援团已被冻结");
        // Keys grow with the seqnos; times are the server's, one second apart.
        let keys: Vec<u64> = msgs
            .iter()
            .rev()
            .map(|m| m["msg_key"].as_u64().unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        let ts: Vec<i64> = msgs
            .iter()
            .rev()
            .map(|m| m["timestamp"].as_i64().unwrap())
            .collect();
        assert!(ts.windows(2).all(|w| w[1] - w[0] >= 1), "{ts:?}");
        assert!(
            ts.iter().all(|t| (lo..=hi).contains(t)),
            "{ts:?} in {lo}..={hi}"
        );
    }

    // Dissolving adds the 304, seen as the last message of every session.
    dissolve(s, g).await;
    for viewer in [&owner, &bob] {
        let d = gdetail_ok(s, viewer, g).await;
        assert_sys(&d["last_msg"], g, 6, 304, "该应援团已解散");
        assert_eq!(d["max_seqno"], 6);
    }
    // carol's view ended at her own 302.
    let d = gdetail_ok(s, &carol, g).await;
    assert_sys(&d["last_msg"], g, 4, 302, "carol离开了应援团");
    assert_eq!(d["max_seqno"], 4);
}
scenario!(system_messages_301_to_306_are_stored_exactly);

// ---- sending ----

async fn group_send_checks_in_order(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let out = s.user("outsider").await;
    let g = group_of(s, &owner, "g").await;
    join(s, g, &bob).await;

    // 2 comes before 3: an unsendable type is 21035 even for an outsider.
    for who in [&bob, &out] {
        let v = s.post(who, SEND, &gform(who, g, 10, &text("x"))).await;
        assert_err(&v, 21035, "该类消息暂时无法发送");
    }
    // 3: not a member, or no such group → 700014 (before the content is looked at).
    for (who, to) in [
        (&out, g),
        (&out, 999_999),
        (&bob, 999_999),
        (&bob, 1),
        (&bob, out.mid),
    ] {
        let v = gsend(s, who, to, "hi", &[]).await;
        assert_err(&v, 700014, NOT_MEMBER);
        let v = s
            .post(who, SEND, &gform(who, to, 1, &"x".repeat(3000)))
            .await;
        assert_err(&v, 700014, NOT_MEMBER);
    }
    // 4 for members.
    let v = s
        .post(&bob, SEND, &gform(&bob, g, 1, &text(&"长".repeat(700))))
        .await;
    assert_err(&v, 21007, "消息过长，无法发送");
    for c in ["hello", "{\"content\":\"\"}", "{}"] {
        let v = s.post(&bob, SEND, &gform(&bob, g, 1, c)).await;
        assert_err(&v, -400, "请求错误");
    }
    let img = json!({"url": "https://evil.example.com/a.png", "height": 1, "width": 1,
                     "imageType": "png", "original": 1, "size": 1})
    .to_string();
    let v = s.post(&bob, SEND, &gform(&bob, g, 2, &img)).await;
    assert_err(&v, 21037, "图片格式不合法，不要调戏接口啦");
    // Sender must be the caller.
    let mut f = gform(&bob, g, 1, &text("x"));
    f[0].1 = st(owner.mid);
    let v = s.post(&bob, SEND, &f).await;
    assert_err(&v, -400, "请求错误");
    // Nothing of that was stored.
    assert_eq!(
        seqnos(&history(s, &owner, g, &[("size", "20".into())]).await),
        vec![2, 1]
    );

    // A text: the answer has msg_key only (upstream gives msg_content / key_hit_infos to user
    // receivers only), plus e_infos when it holds emoji; keyword rules don't apply.
    s.advance_clock(1000).await;
    let v = gsend(s, &bob, g, "大家好", &[]).await;
    let d = ok(&v);
    let k1 = d["msg_key"].as_u64().unwrap();
    assert_eq!(d, &json!({"msg_key": k1}));
    s.advance_clock(1000).await;
    let v = gsend(s, &owner, g, "支付宝转账[doge]", &[]).await;
    let d = ok(&v);
    let k2 = d["msg_key"].as_u64().unwrap();
    assert_eq!(
        d,
        &json!({"msg_key": k2, "e_infos": [{"text": "[doge]",
            "url": "http://i0.hdslb.com/bfs/emote/6ea59c827c414b4a2955fe79e0f6fd3dcd515e24.png", "size": 1}]})
    );
    // An image.
    let img = json!({"url": "https://i0.hdslb.com/bfs/im/a.png", "height": 10, "width": 20,
                     "imageType": "png", "original": 1, "size": 3.5})
    .to_string();
    s.advance_clock(1000).await;
    let v = s.post(&bob, SEND, &gform(&bob, g, 2, &img)).await;
    let k3 = ok(&v)["msg_key"].as_u64().unwrap();
    assert_eq!(ok(&v), &json!({"msg_key": k3}));

    let msgs = history(s, &owner, g, &[("size", "20".into())]).await;
    assert_eq!(seqnos(&msgs), vec![5, 4, 3, 2, 1]);
    assert_text(&msgs[2], g, &bob, 3, "大家好", k1, Value::Null);
    assert_text(&msgs[1], g, &owner, 4, "支付宝转账[doge]", k2, Value::Null);
    assert_eq!(msgs[0]["content"], img);
    assert_eq!(msgs[0]["msg_type"], 2);
    assert_eq!(msgs[0]["msg_key"], k3);
    // mobi_app picks msg_source as for users.
    s.advance_clock(1000).await;
    let mut f = gform(&bob, g, 1, &text("from android"));
    f.push(("mobi_app", "android".into()));
    let v = s.post(&bob, SEND, &f).await;
    ok(&v);
    let msgs = history(s, &bob, g, &[("size", "1".into())]).await;
    assert_eq!(msgs[0]["msg_source"], 2);

    // Recall works on one's own recent message in the group, not on others'.
    let v = s.post(&owner, SEND, &gform(&owner, g, 5, &st(k1))).await;
    assert_err(&v, 10005, "msgkey不存在");
    s.advance_clock(1000).await;
    let v = s.post(&bob, SEND, &gform(&bob, g, 5, &st(k1))).await;
    ok(&v);
    let v = s.post(&bob, SEND, &gform(&bob, g, 5, &st(k1))).await;
    assert_err(&v, 21042, "消息已经撤回了哦");
    // A key from another conversation is not in this one.
    let other = s.user("other").await;
    s.follow(&other, &bob, true).await;
    let pk = s.send_text(&bob, &other, "private").await;
    let v = s.post(&bob, SEND, &gform(&bob, g, 5, &st(pk))).await;
    assert_err(&v, 10005, "msgkey不存在");
    let msgs = history(s, &owner, g, &[("size", "20".into())]).await;
    assert_eq!(seqnos(&msgs), vec![7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(msgs[0]["msg_type"], 5);
    assert_eq!(msgs[0]["content"], st(k1));
    assert_eq!(msgs[4]["msg_status"], 1);
    assert_eq!(msgs[4]["msg_key"], k1);
    // Past the recall window: 21041.
    s.advance_clock(121_000).await;
    let v = s.post(&owner, SEND, &gform(&owner, g, 5, &st(k2))).await;
    assert_err(&v, 21041, "消息已超期，不能撤回了哦");

    // Frozen: 700013 for members and outsiders alike (3 checks the state first).
    freeze(s, g).await;
    for who in [&owner, &bob, &out] {
        let v = gsend(s, who, g, "hi", &[]).await;
        assert_err(&v, 700013, DISSOLVED);
    }
    // Frozen groups are still readable.
    assert_eq!(
        history(s, &bob, g, &[("size", "1".into())]).await[0]["msg_type"],
        303
    );
    dissolve(s, g).await;
    for who in [&owner, &bob, &out] {
        let v = gsend(s, who, g, "hi", &[]).await;
        assert_err(&v, 700013, DISSOLVED);
    }
}
scenario!(group_send_checks_in_order);

async fn group_send_requires_login_and_csrf(s: &Server) {
    let owner = s.user("owner").await;
    let g = group_of(s, &owner, "g").await;
    let f = gform(&owner, g, 1, &text("x"));
    let resp = s.http.post(s.url(SEND)).form(&f).send().await.unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_err(&v, -101, "账号未登录");
    let v = s.post_raw(&owner, SEND, &f).await;
    assert_err(&v, -111, "csrf 校验失败");
    assert_eq!(
        seqnos(&history(s, &owner, g, &[("size", "20".into())]).await),
        vec![1]
    );
}
scenario!(group_send_requires_login_and_csrf);

async fn mentions_in_every_client_form(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let g = group_of(s, &owner, "g").await;
    join(s, g, &bob).await;
    join(s, g, &carol).await;
    let (b, c) = (bob.mid, carol.mid);
    let both = json!([b, c]);

    let cases: Vec<(Vec<(&'static str, String)>, Value)> = vec![
        (vec![("msg[at_uids]", format!("[{b},{c}]"))], both.clone()),
        (
            vec![("msg[at_uids]", format!("[\"{b}\", \"{c}\"]"))],
            both.clone(),
        ),
        (vec![("msg[at_uids]", format!("{b},{c}"))], both.clone()),
        (vec![("msg[at_uids]", format!("{b}"))], json!([b])),
        (
            vec![("msg[at_uids][]", st(b)), ("msg[at_uids][]", st(c))],
            both.clone(),
        ),
        (
            vec![("msg[at_uids][0]", st(b)), ("msg[at_uids][1]", st(c))],
            both.clone(),
        ),
        // Repeats and 0 are dropped.
        (
            vec![("msg[at_uids]", format!("[{b},0,{b},{c},{b}]"))],
            both.clone(),
        ),
        // Nobody.
        (vec![("msg[at_uids]", "[0]".into())], Value::Null),
        (vec![("msg[at_uids]", "0".into())], Value::Null),
        (vec![("msg[at_uids]", "[]".into())], Value::Null),
        (vec![("msg[at_uids]", "".into())], Value::Null),
        (vec![], Value::Null),
    ];
    let mut want = Vec::new();
    for (k, (extra, at)) in cases.iter().enumerate() {
        let key = gsay(s, &owner, g, &format!("m{k}"), extra).await;
        want.push((key, at.clone()));
        // The session object's last message carries them too.
        let d = gdetail_ok(s, &bob, g).await;
        assert_eq!(d["last_msg"]["at_uids"], *at, "case {k}: {d}");
        assert_eq!(d["last_msg"]["msg_key"], key, "case {k}: {d}");
    }
    let msgs = history(s, &carol, g, &[("size", "50".into())]).await;
    let mine: Vec<&Value> = msgs
        .iter()
        .rev()
        .filter(|m| m["sender_uid"] == owner.mid)
        .collect();
    assert_eq!(mine.len(), want.len());
    for (k, (m, (key, at))) in mine.iter().zip(&want).enumerate() {
        assert_text(
            m,
            g,
            &owner,
            4 + k as u64,
            &format!("m{k}"),
            *key,
            at.clone(),
        );
    }

    // Malformed mentions are -400 and store nothing.
    for bad in [
        "[x]",
        "[1,",
        "a,b",
        "[-1]",
        "[1.5]",
        "{\"a\":1}",
        "[[1]]",
        "18446744073709551616",
    ] {
        let v = gsend(s, &owner, g, "bad", &[("msg[at_uids]", bad.into())]).await;
        assert_err(&v, -400, "请求错误");
    }
    let v = gsend(s, &owner, g, "bad", &[("msg[at_uids][]", "x".into())]).await;
    assert_err(&v, -400, "请求错误");
    // More than 100 mentioned: 2.
    let many = (1..=101u64)
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let v = gsend(s, &owner, g, "many", &[("msg[at_uids]", many)]).await;
    assert_err(&v, 2, "非法参数");
    let hundred = (1..=100u64)
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",");
    gsay(s, &owner, g, "hundred", &[("msg[at_uids]", hundred)]).await;
    assert_eq!(
        history(s, &owner, g, &[("size", "50".into())]).await.len(),
        3 + cases.len() + 1
    );
    // To a user, mentions are not kept.
    s.follow(&bob, &owner, true).await;
    let mut f = Server::send_form(&owner, bob.mid, 1, &text("dm"));
    f.push(("msg[at_uids]", format!("[{b}]")));
    ok(&s.post(&owner, SEND, &f).await);
    let page = s.fetch(&bob, &owner, &[("size", "5".into())]).await;
    assert_eq!(ok(&page)["messages"][0]["at_uids"], Value::Null, "{page}");
}
scenario!(mentions_in_every_client_form);

async fn at_seqno_is_the_newest_unread_mention(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let g = group_of(s, &owner, "g").await;
    join(s, g, &bob).await; // 2
    join(s, g, &carol).await; // 3
    let at = |m: &User| vec![("msg[at_uids]", format!("[{}]", m.mid))];

    assert_eq!(gdetail_ok(s, &bob, g).await["at_seqno"], 0);
    gsay(s, &owner, g, "@bob", &at(&bob)).await; // 4
    gsay(s, &owner, g, "plain", &[]).await; // 5
    gsay(s, &carol, g, "@bob again", &at(&bob)).await; // 6
    gsay(s, &owner, g, "@carol", &at(&carol)).await; // 7
    gsay(s, &owner, g, "plain", &[]).await; // 8
                                            // (ack, unread, max, at_seqno, last)
    assert_eq!(state(s, &bob, g).await, (1, 7, 8, 6, 8));
    // carol's own send read everything before it.
    assert_eq!(state(s, &carol, g).await, (6, 2, 8, 7, 8));
    // The sender isn't mentioned by their own message.
    assert_eq!(state(s, &owner, g).await, (8, 0, 8, 0, 8));

    // Reading past the newest mention leaves the older one… read too: at_seqno is the newest
    // unread mention only.
    gack(s, &bob, g, Some("5")).await;
    assert_eq!(state(s, &bob, g).await, (5, 3, 8, 6, 8));
    gack(s, &bob, g, Some("6")).await;
    assert_eq!(state(s, &bob, g).await, (6, 2, 8, 0, 8));
    // A new mention, then reading everything.
    gsay(
        s,
        &carol,
        g,
        "@bob 3",
        &[
            ("msg[at_uids][]", st(bob.mid)),
            ("msg[at_uids][]", st(owner.mid)),
        ],
    )
    .await; // 9
    assert_eq!(state(s, &bob, g).await, (6, 3, 9, 9, 9));
    assert_eq!(state(s, &owner, g).await, (8, 1, 9, 9, 9));
    gack(s, &bob, g, None).await;
    assert_eq!(state(s, &bob, g).await, (9, 0, 9, 0, 9));
    // The lists carry the same at_seqno.
    let l = list(s, &owner, 3, &[]).await;
    assert_eq!(l["session_list"][0]["at_seqno"], 9, "{l}");
    let l = list(s, &owner, 4, &[]).await;
    assert_eq!(l["session_list"][0]["at_seqno"], 9, "{l}");
    // A member who joins later isn't mentioned by what came before, even if named then.
    let dave = s.user("dave").await;
    gsay(s, &owner, g, "@dave before joining", &at(&dave)).await; // 10
    join(s, g, &dave).await; // 11
    assert_eq!(state(s, &dave, g).await, (10, 1, 11, 0, 11));
    gsay(s, &owner, g, "@dave", &at(&dave)).await; // 12
    assert_eq!(state(s, &dave, g).await, (10, 2, 12, 12, 12));
}
scenario!(at_seqno_is_the_newest_unread_mention);

// ---- history ----

async fn group_history_windows_and_access(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let out = s.user("outsider").await;
    let g = group_of(s, &owner, "g").await; // 1
    for k in 0..6 {
        gsay(s, &owner, g, &format!("early {k}"), &[]).await; // 2..7
    }
    join(s, g, &bob).await; // 8
    for k in 0..3 {
        gsay(s, &owner, g, &format!("late {k}"), &[]).await; // 9..11
    }
    // Earlier history isn't unread for a late joiner, but readable, through every window.
    assert_eq!(state(s, &bob, g).await, (7, 4, 11, 0, 11));
    let p = |k: &'static str, v: u64| (k, st(v));
    let page = |v: &Value| -> (Vec<u64>, Value, Value, Value) {
        let d = ok(v);
        let m = d["messages"]
            .as_array()
            .map(|a| seqnos(a))
            .unwrap_or_default();
        (
            m,
            d["has_more"].clone(),
            d["min_seqno"].clone(),
            d["max_seqno"].clone(),
        )
    };
    let v = gfetch(s, &bob, g, &[p("size", 3)]).await;
    assert_eq!(page(&v), (vec![11, 10, 9], json!(1), json!(9), json!(11)));
    let v = gfetch(s, &bob, g, &[p("size", 3), p("end_seqno", 9)]).await;
    assert_eq!(page(&v), (vec![8, 7, 6], json!(1), json!(6), json!(8)));
    let v = gfetch(s, &bob, g, &[p("size", 3), p("begin_seqno", 0)]).await;
    assert_eq!(page(&v), (vec![3, 2, 1], json!(1), json!(1), json!(3)));
    let v = gfetch(s, &bob, g, &[p("size", 3), p("begin_seqno", 9)]).await;
    assert_eq!(page(&v), (vec![11, 10], json!(0), json!(10), json!(11)));
    let v = gfetch(
        s,
        &bob,
        g,
        &[p("size", 20), p("begin_seqno", 2), p("end_seqno", 6)],
    )
    .await;
    assert_eq!(page(&v), (vec![5, 4, 3], json!(0), json!(3), json!(5)));
    // size 0: system tips only; a group has none.
    let v = gfetch(s, &bob, g, &[]).await;
    assert_eq!(
        ok(&v),
        &json!({"messages": null, "has_more": 0, "min_seqno": 18446744073709551615u64, "max_seqno": 0})
    );
    // Reading doesn't mark read.
    assert_eq!(state(s, &bob, g).await, (7, 4, 11, 0, 11));
    // web clients get new emoji names in group texts too.
    gsay(s, &owner, g, "[doge]", &[]).await; // 12
    let v = gfetch(s, &bob, g, &[p("size", 1), ("mobi_app", "web".into())]).await;
    let d = ok(&v);
    assert_eq!(d["messages"][0]["content"], text("[tv_doge]"));
    assert_eq!(d["e_infos"][0]["text"], "[tv_doge]");

    // Outsiders, unknown groups and user ids: 700014 with no data.
    for (who, to) in [(&out, g), (&bob, 999_999u64), (&bob, owner.mid)] {
        let v = gfetch(s, who, to, &[p("size", 20)]).await;
        assert_err(&v, 700014, NOT_MEMBER);
        assert!(v.get("data").is_none_or(Value::is_null), "{v}");
    }
    // A group is session_type 2; 3 is not a session type.
    let v = s
        .get(
            &bob,
            FETCH,
            &[
                ("talker_id", st(g)),
                ("session_type", "3".into()),
                p("size", 20),
            ],
        )
        .await;
    assert_err(&v, 2, "非法参数");
    // A user's conversation is not reachable as a group of the same number, and vice versa.
    let v = s
        .get(
            &bob,
            FETCH,
            &[
                ("talker_id", st(g)),
                ("session_type", "1".into()),
                p("size", 20),
            ],
        )
        .await;
    assert_eq!(ok(&v)["messages"], Value::Null);

    // Frozen: still readable; dissolved: 700013 for members, 700014 for others.
    freeze(s, g).await;
    assert_eq!(
        seqnos(&history(s, &bob, g, &[p("size", 2)]).await),
        vec![13, 12]
    );
    dissolve(s, g).await;
    for who in [&owner, &bob] {
        let v = gfetch(s, who, g, &[p("size", 20)]).await;
        assert_err(&v, 700013, DISSOLVED);
    }
    let v = gfetch(s, &out, g, &[p("size", 20)]).await;
    assert_err(&v, 700014, NOT_MEMBER);
}
scenario!(group_history_windows_and_access);

// ---- sessions ----

async fn group_session_object_and_read_marks(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let t0 = clock_us(s).await;
    s.advance_clock(1000).await;
    let v = create_group_with(
        s,
        json!({"owner": owner.mid, "name": "官方群", "cover": COVER, "group_type": 2}),
    )
    .await;
    let g = v["group_id"].as_u64().unwrap();
    // The owner hasn't read the opening message.
    assert_eq!(state(s, &owner, g).await, (0, 1, 1, 0, 1));
    join(s, g, &bob).await; // 2
    let t1 = clock_us(s).await;
    s.advance_clock(1000).await;
    let lo = clock_us(s).await;
    let key = gsay(
        s,
        &owner,
        g,
        "hi",
        &[("msg[at_uids]", format!("[{}]", bob.mid))],
    )
    .await; // 3
    let hi = clock_us(s).await + 999;

    let d = gdetail_ok(s, &bob, g).await;
    let ts = d["session_ts"].as_i64().unwrap();
    assert!(
        lo <= ts && ts <= hi,
        "session_ts {ts} is the last message's time ({lo}..={hi})"
    );
    let ack_ts = d["ack_ts"].as_i64().unwrap();
    assert!(
        t0 < ack_ts && ack_ts <= t1 + 999,
        "joining set the read mark at {ack_ts}"
    );
    let last = json!({
        "sender_uid": owner.mid,
        "receiver_type": 2,
        "receiver_id": g,
        "msg_type": 1,
        "content": text("hi"),
        "msg_seqno": 3,
        "timestamp": ts / 1_000_000,
        "at_uids": [bob.mid],
        "msg_key": key,
        "msg_status": 0,
        "notify_code": "",
        "new_face_version": 0,
        "msg_source": 7,
    });
    let object = |ack: u64, ack_ts: i64, unread: u64, at: u64| {
        json!({
            "talker_id": g,
            "session_type": 2,
            "at_seqno": at,
            "top_ts": 0,
            "group_name": "官方群",
            "group_cover": COVER,
            "is_follow": 0,
            "is_dnd": 0,
            "ack_seqno": ack,
            "ack_ts": ack_ts,
            "session_ts": ts,
            "unread_count": unread,
            "last_msg": last,
            "group_type": 2,
            "can_fold": 0,
            "status": 0,
            "max_seqno": 3,
            "new_push_msg": 0,
            "setting": 0,
            "is_guardian": 0,
            "is_intercept": 0,
            "is_trust": 0,
            "system_msg_type": 0,
            "live_status": 0,
            "biz_msg_unread_count": 0,
            "user_label": null,
        })
    };
    // bob joined after the 305: his welcome and the mention are unread.
    assert_eq!(d, object(1, ack_ts, 2, 3));
    // The owner's send read everything, at the send time.
    let od = gdetail_ok(s, &owner, g).await;
    assert_eq!(od, object(3, ts, 0, 0));
    // The lists carry the very same objects.
    for (u, want) in [(&bob, &d), (&owner, &od)] {
        for t in [3u8, 4] {
            let l = list(s, u, t, &[]).await;
            assert_eq!(l["session_list"], json!([want]), "{l}");
        }
        let n = s.get(u, NEW_SESSIONS, &[]).await;
        assert_eq!(ok(&n)["session_list"], json!([want]), "{n}");
    }

    // update_ack: never backwards, clamped to the max, empty = latest; sets ack_ts.
    assert_eq!(group_unread(s, &bob).await, 2);
    s.advance_clock(1000).await;
    gack(s, &bob, g, Some("2")).await;
    let d2 = gdetail_ok(s, &bob, g).await;
    assert_eq!(
        (
            d2["ack_seqno"].clone(),
            d2["unread_count"].clone(),
            d2["at_seqno"].clone()
        ),
        (json!(2), json!(1), json!(3))
    );
    assert!(d2["ack_ts"].as_i64().unwrap() > ack_ts, "{d2}");
    assert_eq!(group_unread(s, &bob).await, 1);
    gack(s, &bob, g, Some("1")).await;
    assert_eq!(state(s, &bob, g).await, (2, 1, 3, 3, 3));
    gack(s, &bob, g, Some("99")).await;
    assert_eq!(state(s, &bob, g).await, (3, 0, 3, 0, 3));
    assert_eq!(group_unread(s, &bob).await, 0);
    gsay(s, &owner, g, "more", &[]).await; // 4
    gack(s, &bob, g, Some("")).await;
    assert_eq!(state(s, &bob, g).await, (4, 0, 4, 0, 4));
    // Acking a group one is not in changes nothing.
    let out = s.user("out").await;
    gack(s, &out, g, None).await;
    gack(s, &out, g, Some("3")).await;
    let v = gdetail(s, &out, g).await;
    assert_err(&v, 1000004, "入口节点已存在");
    assert_eq!(v["data"], Value::Null, "{v}");
    assert_eq!(group_unread(s, &out).await, 0);
    // Unknown group: no session either.
    let v = gdetail(s, &bob, 999_999).await;
    assert_err(&v, 1000004, "入口节点已存在");

    // Fan groups are not in single_unread.
    gsay(s, &owner, g, "unread", &[]).await;
    assert_eq!(
        s.unread(&bob).await,
        json!({
            "unfollow_unread": 0, "follow_unread": 0, "unfollow_push_msg": 0, "dustbin_push_msg": 0,
            "dustbin_unread": 0, "biz_msg_unfollow_unread": 0, "biz_msg_follow_unread": 0, "custom_unread": 0,
        })
    );
    assert_eq!(group_unread(s, &bob).await, 1);
}
scenario!(group_session_object_and_read_marks);

async fn my_group_unread_sums_groups_without_dnd(s: &Server) {
    let me = s.user("me").await;
    let a = s.user("a").await;
    let b = s.user("b").await;
    let g1 = group_of(s, &a, "g1").await;
    let g2 = group_of(s, &b, "g2").await;
    join(s, g1, &me).await;
    join(s, g2, &me).await;
    // Each welcome is unread.
    assert_eq!(group_unread(s, &me).await, 2);
    for k in 0..3 {
        gsay(s, &a, g1, &format!("a{k}"), &[]).await;
    }
    gsay(s, &b, g2, "b", &[]).await;
    assert_eq!(group_unread(s, &me).await, 6);
    // A user's message is not a group's.
    s.follow(&me, &a, true).await;
    s.send_text(&a, &me, "dm").await;
    assert_eq!(group_unread(s, &me).await, 6);
    assert_eq!(s.unread(&me).await["follow_unread"], 1);

    // Do-not-disturb leaves a group out.
    let v = s
        .post(
            &me,
            SET_MSG_DND,
            &[("dnd_group_id", st(g1)), ("setting", "1".into())],
        )
        .await;
    assert_empty_ok(&v);
    assert_eq!(group_unread(s, &me).await, 2);
    assert_eq!(gdetail_ok(s, &me, g1).await["is_dnd"], 1);
    assert_eq!(gdetail_ok(s, &me, g2).await["is_dnd"], 0);
    // Only the setter's view.
    assert_eq!(gdetail_ok(s, &a, g1).await["is_dnd"], 0);
    let v = s
        .get(
            &me,
            GET_MSG_DND,
            &[
                ("group_ids_str", format!("{g1},{g2}")),
                ("uids_str", st(a.mid)),
            ],
        )
        .await;
    assert_eq!(
        ok(&v),
        &json!({"uid_settings": [{"id": a.mid, "setting": 0}],
                "group_settings": [{"id": g1, "setting": 1}, {"id": g2, "setting": 0}]})
    );
    // The group's DND is not the owner's.
    let v = s.get(&me, GET_MSG_DND, &[("uids", st(g1))]).await;
    assert_eq!(ok(&v)["uid_settings"], json!([{"id": g1, "setting": 0}]));
    let l = list(s, &me, 3, &[]).await;
    let dnd: Vec<(u64, u64)> = l["session_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["talker_id"].as_u64().unwrap(),
                x["is_dnd"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(BTreeSet::from_iter(dnd), BTreeSet::from([(g1, 1), (g2, 0)]));
    // Still counted in its own session.
    assert_eq!(gdetail_ok(s, &me, g1).await["unread_count"], 4);
    let v = s
        .post(
            &me,
            SET_MSG_DND,
            &[("dnd_group_id", st(g1)), ("setting", "0".into())],
        )
        .await;
    assert_empty_ok(&v);
    assert_eq!(group_unread(s, &me).await, 6);
    gack(s, &me, g2, None).await;
    assert_eq!(group_unread(s, &me).await, 4);
}
scenario!(my_group_unread_sums_groups_without_dnd);

async fn group_lists_sort_rules_pins_and_folding(s: &Server) {
    let me = s.user("me").await;
    let other = s.user("other").await;
    let friend = s.user("friend").await;
    s.follow(&me, &friend, true).await;
    s.follow(&friend, &me, true).await;

    let g1 = group_of(s, &me, "g1").await; // joined first (as owner)
    let g2 = group_of(s, &other, "g2").await;
    join(s, g2, &me).await; // joined second
    let g3 = group_of(s, &other, "g3").await;
    join(s, g3, &me).await; // joined third
    s.advance_clock(1000).await;
    s.send_text(&friend, &me, "hello").await; // user session
    gsay(s, &me, g1, "in g1", &[]).await;
    gsay(s, &other, g2, "in g2", &[]).await; // newest
                                             // session_ts: g2 > g1 > friend > g3.

    // 3: groups only; by join time ascending unless sort_rule is 1–3.
    for extra in [
        vec![],
        vec![("sort_rule", "0".to_string())],
        vec![("sort_rule", "4".to_string())],
    ] {
        assert_eq!(ids(s, &me, 3, &extra).await, vec![g1, g2, g3], "{extra:?}");
    }
    // In join order every group is on the first page, whatever the size; a bounded page has none.
    let p = list(s, &me, 3, &[("size", "1".into())]).await;
    assert_eq!(
        (talker_ids(&p), p["has_more"].clone()),
        (vec![g1, g2, g3], json!(0))
    );
    let p = list(
        s,
        &me,
        3,
        &[("size", "1".into()), ("end_ts", i64::MAX.to_string())],
    )
    .await;
    assert_eq!(
        (p["session_list"].clone(), p["has_more"].clone()),
        (json!(null), json!(0))
    );
    for rule in ["1", "2"] {
        assert_eq!(
            ids(s, &me, 3, &[("sort_rule", rule.into())]).await,
            vec![g2, g1, g3]
        );
    }
    // 3: by ack_ts (joining set it; g1's send and a read move it).
    s.advance_clock(1000).await;
    gack(s, &me, g3, None).await;
    assert_eq!(
        ids(s, &me, 3, &[("sort_rule", "3".into())]).await,
        vec![g3, g1, g2]
    );
    // 4: users and groups merged by session_ts (sort rules other than 3).
    for extra in [
        vec![],
        vec![("sort_rule", "2".to_string())],
        vec![("sort_rule", "0".to_string())],
    ] {
        assert_eq!(
            ids(s, &me, 4, &extra).await,
            vec![g2, g1, friend.mid, g3],
            "{extra:?}"
        );
    }
    // group_fold=1 leaves the groups out of 4; 1 lists users only; 3 has them still.
    let fold = [("group_fold", "1".to_string())];
    assert_eq!(ids(s, &me, 4, &fold).await, vec![friend.mid]);
    assert_eq!(ids(s, &me, 1, &[]).await, vec![friend.mid]);
    assert_eq!(ids(s, &me, 1, &fold).await, vec![friend.mid]);
    assert_eq!(ids(s, &me, 3, &fold).await, vec![g1, g2, g3]);
    // Other lists have no groups.
    for t in [2u8, 5, 7, 8] {
        assert_eq!(ids(s, &me, t, &[]).await, Vec::<u64>::new(), "type {t}");
    }
    assert_eq!(ids(s, &me, 9, &[]).await, vec![friend.mid]);

    // Paging 4 by session_ts.
    let p1 = list(s, &me, 4, &[("size", "2".into())]).await;
    assert_eq!(talker_ids(&p1), vec![g2, g1]);
    assert_eq!(p1["has_more"], 1);
    let end = p1["session_list"][1]["session_ts"].as_i64().unwrap();
    let p2 = list(
        s,
        &me,
        4,
        &[("size", "2".into()), ("end_ts", end.to_string())],
    )
    .await;
    assert_eq!(talker_ids(&p2), vec![friend.mid, g3]);
    assert_eq!(p2["has_more"], 0);
    let begin = p2["session_list"][0]["session_ts"].as_i64().unwrap();
    let p3 = list(s, &me, 4, &[("begin_ts", begin.to_string())]).await;
    assert_eq!(talker_ids(&p3), vec![g2, g1]);
    let p = list(
        s,
        &me,
        3,
        &[("sort_rule", "2".into()), ("size", "1".into())],
    )
    .await;
    assert_eq!(
        (talker_ids(&p), p["has_more"].clone()),
        (vec![g2], json!(1))
    );

    // new_sessions carries groups with anything newer than begin_ts.
    let n = s
        .get(&me, NEW_SESSIONS, &[("begin_ts", begin.to_string())])
        .await;
    assert_eq!(talker_ids(ok(&n)), vec![g2, g1]);
    let newest = p1["session_list"][0]["session_ts"].as_i64().unwrap();
    let n = s
        .get(&me, NEW_SESSIONS, &[("begin_ts", newest.to_string())])
        .await;
    assert_eq!(ok(&n)["session_list"], Value::Null);

    // Pinned groups head the first page of 3 and 4, newest pin first; not later pages.
    s.advance_clock(1000).await;
    let pin = |g: u64, op: &'static str| {
        let me = me.clone();
        async move {
            let v = s
                .post(
                    &me,
                    SET_TOP,
                    &[
                        ("talker_id", st(g)),
                        ("session_type", "2".into()),
                        ("op_type", op.into()),
                    ],
                )
                .await;
            assert_empty_ok(&v);
        }
    };
    let t_lo = clock_us(s).await;
    pin(g3, "0").await;
    s.advance_clock(1000).await;
    pin(g1, "0").await;
    let d = gdetail_ok(s, &me, g3).await;
    let top = d["top_ts"].as_i64().unwrap();
    assert!(top >= t_lo, "{d}");
    assert_eq!(ids(s, &me, 3, &[]).await, vec![g1, g3, g2]);
    assert_eq!(
        ids(s, &me, 3, &[("sort_rule", "2".into())]).await,
        vec![g1, g3, g2]
    );
    assert_eq!(ids(s, &me, 4, &[]).await, vec![g1, g3, g2, friend.mid]);
    let p1 = list(s, &me, 4, &[("size", "1".into())]).await;
    assert_eq!(talker_ids(&p1), vec![g1, g3, g2]);
    let end = p1["session_list"][2]["session_ts"].as_i64().unwrap();
    let p2 = list(
        s,
        &me,
        4,
        &[("size", "5".into()), ("end_ts", end.to_string())],
    )
    .await;
    assert_eq!(talker_ids(&p2), vec![friend.mid]);
    // Pinning is mine only; unpinning restores the order.
    assert_eq!(gdetail_ok(s, &other, g3).await["top_ts"], 0);
    pin(g1, "1").await;
    pin(g3, "1").await;
    assert_eq!(gdetail_ok(s, &me, g3).await["top_ts"], 0);
    assert_eq!(ids(s, &me, 4, &[]).await, vec![g2, g1, friend.mid, g3]);
    let v = s
        .post(
            &me,
            SET_TOP,
            &[
                ("talker_id", st(g1)),
                ("session_type", "2".into()),
                ("op_type", "2".into()),
            ],
        )
        .await;
    assert_err(&v, 2, "非法参数");
}
scenario!(group_lists_sort_rules_pins_and_folding);

async fn leaving_ends_access_but_the_session_stays(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let g = group_of(s, &owner, "g").await; // 1
    join(s, g, &bob).await; // 2
    gsay(
        s,
        &owner,
        g,
        "before",
        &[("msg[at_uids]", format!("[{}]", bob.mid))],
    )
    .await; // 3
    leave(s, g, &bob).await; // 4
    let left = gdetail_ok(s, &bob, g).await;
    // His session's time is the 302's, to the µs (the group's time right now).
    assert_eq!(
        left["session_ts"],
        gdetail_ok(s, &owner, g).await["session_ts"]
    );
    assert_sys(&left["last_msg"], g, 4, 302, "bob离开了应援团");
    assert_eq!(state(s, &bob, g).await, (1, 3, 4, 3, 4));

    // No more history, no more sending.
    let v = gfetch(s, &bob, g, &[("size", "20".into())]).await;
    assert_err(&v, 700014, NOT_MEMBER);
    let v = gsend(s, &bob, g, "still here?", &[]).await;
    assert_err(&v, 700014, NOT_MEMBER);

    // The group goes on; bob's view stays at his 302 (time included).
    gsay(
        s,
        &owner,
        g,
        "after",
        &[("msg[at_uids]", format!("[{}]", bob.mid))],
    )
    .await; // 5
    let d = gdetail_ok(s, &bob, g).await;
    assert_eq!(d, left);
    assert_eq!(
        d["session_ts"].as_i64().unwrap() / 1_000_000,
        d["last_msg"]["timestamp"].as_i64().unwrap()
    );
    assert_eq!(ids(s, &bob, 3, &[]).await, vec![g]);
    assert_eq!(ids(s, &bob, 4, &[]).await, vec![g]);
    assert_eq!(group_unread(s, &bob).await, 3);
    // new_sessions doesn't bring it back for the owner's later messages.
    let n = s
        .get(
            &bob,
            NEW_SESSIONS,
            &[("begin_ts", d["session_ts"].to_string())],
        )
        .await;
    assert_eq!(ok(&n)["session_list"], Value::Null);
    // Reading it stops at the 302.
    gack(s, &bob, g, None).await;
    assert_eq!(state(s, &bob, g).await, (4, 0, 4, 0, 4));
    assert_eq!(group_unread(s, &bob).await, 0);

    // Removing it hides it for good: nothing newer will come into his view.
    let v = s
        .post(
            &bob,
            REMOVE_SESSION,
            &[("talker_id", st(g)), ("session_type", "2".into())],
        )
        .await;
    assert_empty_ok(&v);
    gsay(s, &owner, g, "later", &[]).await; // 6
    assert_eq!(ids(s, &bob, 3, &[]).await, Vec::<u64>::new());
    assert_eq!(ids(s, &bob, 4, &[]).await, Vec::<u64>::new());
    assert_eq!(group_unread(s, &bob).await, 0);

    // Re-admitted: listed again, the history readable (all of it), the welcome unread.
    join(s, g, &bob).await; // 7
    assert_eq!(ids(s, &bob, 3, &[]).await, vec![g]);
    assert_eq!(state(s, &bob, g).await, (6, 1, 7, 0, 7));
    assert_eq!(
        seqnos(&history(s, &bob, g, &[("size", "3".into())]).await),
        vec![7, 6, 5]
    );
    gsay(s, &bob, g, "back", &[]).await; // 8
    assert_eq!(state(s, &bob, g).await, (8, 0, 8, 0, 8));

    // Leaving a group that is later dissolved: still "not a member" for him.
    let carol = s.user("carol").await;
    join(s, g, &carol).await; // 9
    leave(s, g, &carol).await; // 10
    dissolve(s, g).await; // 11
    let v = gfetch(s, &carol, g, &[("size", "20".into())]).await;
    assert_err(&v, 700014, NOT_MEMBER);
    let v = gfetch(s, &bob, g, &[("size", "20".into())]).await;
    assert_err(&v, 700013, DISSOLVED);
    assert_eq!(state(s, &carol, g).await, (8, 2, 10, 0, 10));
    assert_eq!(state(s, &bob, g).await, (8, 3, 11, 0, 11));
}
scenario!(leaving_ends_access_but_the_session_stays);

async fn remove_group_session_hides_until_a_newer_message(s: &Server) {
    let owner = s.user("owner").await;
    let bob = s.user("bob").await;
    let g = group_of(s, &owner, "g").await;
    join(s, g, &bob).await;
    gsay(s, &owner, g, "one", &[]).await; // 3
    gsay(s, &owner, g, "two", &[]).await; // 4
    assert_eq!(group_unread(s, &bob).await, 3);

    let remove = |u: User| async move {
        let v = s
            .post(
                &u,
                REMOVE_SESSION,
                &[("talker_id", st(g)), ("session_type", "2".into())],
            )
            .await;
        assert_empty_ok(&v);
    };
    remove(bob.clone()).await;
    // Hidden from the lists and read; the session itself and the history stay.
    for t in [3u8, 4] {
        assert_eq!(ids(s, &bob, t, &[]).await, Vec::<u64>::new());
    }
    let n = s.get(&bob, NEW_SESSIONS, &[]).await;
    assert_eq!(ok(&n)["session_list"], Value::Null);
    assert_eq!(group_unread(s, &bob).await, 0);
    assert_eq!(state(s, &bob, g).await, (4, 0, 4, 0, 4));
    assert_eq!(history(s, &bob, g, &[("size", "20".into())]).await.len(), 4);
    // Only bob's.
    assert_eq!(ids(s, &owner, 3, &[]).await, vec![g]);

    // A newer message brings it back, unread.
    gsay(
        s,
        &owner,
        g,
        "three",
        &[("msg[at_uids]", format!("[{}]", bob.mid))],
    )
    .await; // 5
    assert_eq!(ids(s, &bob, 3, &[]).await, vec![g]);
    assert_eq!(ids(s, &bob, 4, &[]).await, vec![g]);
    assert_eq!(state(s, &bob, g).await, (4, 1, 5, 5, 5));
    assert_eq!(group_unread(s, &bob).await, 1);

    // Removing again, then sending oneself brings it back too.
    remove(bob.clone()).await;
    assert_eq!(ids(s, &bob, 3, &[]).await, Vec::<u64>::new());
    gsay(s, &bob, g, "me", &[]).await; // 6
    assert_eq!(ids(s, &bob, 3, &[]).await, vec![g]);
    assert_eq!(state(s, &bob, g).await, (6, 0, 6, 0, 6));
    // A system message counts as newer too.
    remove(bob.clone()).await;
    let carol = s.user("carol").await;
    join(s, g, &carol).await; // 7
    assert_eq!(ids(s, &bob, 3, &[]).await, vec![g]);
    // Removing a group one is not in is a no-op.
    let out = s.user("out").await;
    remove(out.clone()).await;
    let v = gdetail(s, &out, g).await;
    assert_err(&v, 1000004, "入口节点已存在");
}
scenario!(remove_group_session_hides_until_a_newer_message);

// ---- scale ----

async fn rows_written(s: &Server) -> u64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix("sixin_store_rows_written_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sixin_store_rows_written_total in {text}"))
}

/// Rows written by one send of `from` to `g` (mentioning `at`, if any).
async fn rows_of_send(s: &Server, from: &User, g: u64, at: Option<&User>) -> u64 {
    let extra: Vec<(&'static str, String)> = at
        .map(|u| vec![("msg[at_uids]", format!("[{}]", u.mid))])
        .unwrap_or_default();
    s.advance_clock(1000).await;
    let before = rows_written(s).await;
    let v = gsend(s, from, g, "hello everyone", &extra).await;
    ok(&v);
    rows_written(s).await - before
}

/// Row counts of the tables a group send could write to, read straight from the database.
async fn table_rows(s: &Server) -> Vec<(&'static str, i64)> {
    use sqlx::Connection;
    const TABLES: [&str; 5] = [
        "messages",
        "sessions",
        "group_mentions",
        "group_members",
        "conversations",
    ];
    let mut out = Vec::new();
    if s.backend == "postgres" {
        let mut c = sqlx::PgConnection::connect(&s.database_url)
            .await
            .expect("connect");
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}"))
                .fetch_one(&mut c)
                .await
                .expect("count");
            out.push((t, n));
        }
    } else {
        let mut c = sqlx::SqliteConnection::connect(&s.database_url)
            .await
            .expect("connect");
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}"))
                .fetch_one(&mut c)
                .await
                .expect("count");
            out.push((t, n));
        }
    }
    out
}

/// Adds `n` fresh users to group `g` through the admin API, `workers` requests at a time.
async fn add_many_members(s: &Server, g: u64, n: usize, workers: usize) {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let http = s.http.clone();
        let base = s.base.clone();
        set.spawn(async move {
            let mut k = w;
            while k < n {
                let v: Value = http
                    .post(format!("{base}/admin/v1/users"))
                    .bearer_auth(ADMIN_TOKEN)
                    // Explicit mids: automatic allocation gives up under this much concurrency
                    // ("a user with that mid exists" after 5 tries; not a group matter).
                    .json(&json!({"name": format!("fan{k}"), "mid": 500_000_000 + k as u64}))
                    .send()
                    .await
                    .expect("create user")
                    .json()
                    .await
                    .expect("user JSON");
                let mid = v["mid"].as_u64().unwrap_or_else(|| panic!("{v}"));
                let resp = http
                    .post(format!("{base}/admin/v1/groups/{g}/members"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"mid": mid}))
                    .send()
                    .await
                    .expect("join");
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                assert_eq!(status, 200, "joining {mid}: {body}");
                k += workers;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("worker");
    }
}

async fn group_send_writes_constant_rows_at_5000_members(s: &Server) {
    let owner = s.user("owner").await;
    let watcher = s.user("watcher").await;
    let lurker = s.user("lurker").await;

    // A 2-member group.
    let small = group_of(s, &owner, "small").await;
    join(s, small, &watcher).await;
    let small_plain = rows_of_send(s, &owner, small, None).await;
    let small_at = rows_of_send(s, &owner, small, Some(&watcher)).await;

    // A 5,000-member group: owner, watcher, lurker and 4,997 fans.
    let big = group_of(s, &owner, "big").await; // 1
    join(s, big, &watcher).await; // 2
    join(s, big, &lurker).await; // 3
    let started = std::time::Instant::now();
    add_many_members(s, big, 4997, 8).await;
    eprintln!(
        "{}: 4997 members added in {:?}",
        s.backend,
        started.elapsed()
    );
    let (code, info) = s.admin(Method::GET, &format!("/groups/{big}"), None).await;
    assert_eq!(code, 200);
    assert_eq!(info["members"], 5000, "{info}");
    assert_eq!(info["max_seqno"], 5000, "{info}");

    let tables_before = table_rows(s).await;
    let big_plain = rows_of_send(s, &owner, big, None).await; // 5001
    let big_at = rows_of_send(s, &owner, big, Some(&watcher)).await; // 5002
                                                                     // Independently of the server's counter: the two sends added two messages and one mention
                                                                     // row, and not one session (or any other) row.
    let grown: Vec<(&str, i64)> = table_rows(s)
        .await
        .iter()
        .zip(&tables_before)
        .map(|((t, after), (_, before))| (*t, after - before))
        .collect();
    assert_eq!(
        grown,
        vec![
            ("messages", 2),
            ("sessions", 0),
            ("group_mentions", 1),
            ("group_members", 0),
            ("conversations", 0)
        ]
    );
    eprintln!(
        "{}: rows written per send: 2 members {small_plain} (+mention {small_at}), 5000 members {big_plain} (+mention {big_at})",
        s.backend
    );
    // The conversation counter, the message, the sender's read mark (+1 per mention).
    assert_eq!(small_plain, 3);
    assert_eq!(small_at, 4);
    assert_eq!(big_plain, small_plain);
    assert_eq!(big_at, small_at);

    // Every member's view is right nonetheless.
    assert_eq!(state(s, &watcher, big).await, (1, 5001, 5002, 5002, 5002));
    assert_eq!(state(s, &lurker, big).await, (2, 5000, 5002, 0, 5002));
    assert_eq!(state(s, &owner, big).await, (5002, 0, 5002, 0, 5002));
    // 5001 in the big group, 3 in the small one (its welcome and the two sends).
    assert_eq!(group_unread(s, &watcher).await, 5001 + 3);
    let l = list(s, &lurker, 3, &[]).await;
    assert_eq!(l["session_list"][0]["unread_count"], 5000);
    // A later reply from the watcher reads it all for them, and nothing for others.
    let w_rows = rows_of_send(s, &watcher, big, Some(&lurker)).await; // 5003
    assert_eq!(w_rows, 4);
    assert_eq!(state(s, &watcher, big).await, (5003, 0, 5003, 0, 5003));
    assert_eq!(state(s, &lurker, big).await, (2, 5001, 5003, 5003, 5003));
    assert_eq!(state(s, &owner, big).await, (5002, 1, 5003, 0, 5003));
    // And the newest history page is the same for everyone.
    let page = history(s, &lurker, big, &[("size", "3".into())]).await;
    assert_eq!(seqnos(&page), vec![5003, 5002, 5001]);
}
scenario!(group_send_writes_constant_rows_at_5000_members);

/// Members sending while the group is frozen: every send either lands before the freeze notice
/// or is refused with 700013 — nothing is stored after the notice.
async fn nothing_lands_after_a_freeze(s: &Server) {
    let owner = s.user("owner").await;
    let g = group_of(s, &owner, "race").await;
    let mut members = Vec::new();
    for k in 0..4 {
        let u = s.user(&format!("m{k}")).await;
        join(s, g, &u).await;
        members.push(u);
    }
    let mut tasks = Vec::new();
    for (k, u) in members.iter().enumerate() {
        for n in 0..6 {
            let (http, url, cookie) = (s.http.clone(), s.url(SEND), u.cookie());
            let mut form = gform(u, g, 1, &text(&format!("m{k}-{n}")));
            form.push(("csrf", u.bili_jct.clone()));
            tasks.push(tokio::spawn(async move {
                let v: Value = http
                    .post(url)
                    .header("Cookie", cookie)
                    .form(&form)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v["code"].as_i64().unwrap()
            }));
        }
    }
    let frozen = freeze(s, g).await;
    assert_eq!(frozen["state"], "frozen", "{frozen}");
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert!(codes.iter().all(|c| *c == 0 || *c == 700013), "{codes:?}");
    let all = history(s, &owner, g, &[("size", "200".into())]).await;
    let notice = all
        .iter()
        .find(|m| m["msg_type"] == 303)
        .expect("freeze notice");
    let notice_seq = notice["msg_seqno"].as_u64().unwrap();
    let texts_after: Vec<&Value> = all
        .iter()
        .filter(|m| m["msg_type"] == 1 && m["msg_seqno"].as_u64().unwrap() > notice_seq)
        .collect();
    assert!(texts_after.is_empty(), "{texts_after:?}");
    // Every accepted send is stored, every refused one is not.
    let stored = all.iter().filter(|m| m["msg_type"] == 1).count();
    assert_eq!(stored, codes.iter().filter(|c| **c == 0).count());
}
scenario!(nothing_lands_after_a_freeze);
