//! Scenarios: sessions and unread counts (SPEC §2.3, §4.1, §4.2): single_unread,
//! my_group_unread, get_sessions, new_sessions, session_detail, update_ack, remove_session,
//! set_top, set_msg_dnd, get_msg_dnd, set_push_ss, get_session_ss. Bad input for these
//! endpoints is here too (`bad_*`).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::*;

const MY_GROUP_UNREAD: &str = "/session_svr/v1/session_svr/my_group_unread";
/// UP主小助手 (system_msg_type 7), 主播小助手 (1), 支付小助手 (9).
const UP_HELPER: u64 = 844424930131966;
const LIVE_HELPER: u64 = 844424930131967;
const PAY_HELPER: u64 = 844424930131965;
const SYS_PIC: &str =
    "https://message.biliimg.com/bfs/im/489a63efadfb202366c2f88853d2217b5ddc7a13.png";
const NOTIFY_CONTENT: &str =
    r#"{"title":"流量奖励到账通知","text":"恭喜您已获得2000流量曝光奖励，快来投稿使用吧。"}"#;

// ---- helpers ----

fn upstream(name: &str) -> Value {
    let path = format!(
        "{}/../../data/upstream-examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("upstream example parses")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn st(n: u64) -> String {
    n.to_string()
}

/// The server clock now, in µs (rounded down to the ms the admin API reports).
async fn clock_us(s: &Server) -> i64 {
    let (code, v) = s.admin(Method::GET, "/clock", None).await;
    assert_eq!(code, 200, "{v}");
    v["now_ms"].as_i64().expect("now_ms") * 1000
}

/// The last µs of the clock's current ms: an upper bound for anything stamped before now.
async fn clock_us_hi(s: &Server) -> i64 {
    clock_us(s).await + 999
}

/// Moves the clock one second on, then sends a text (distinct times, and no per-second limit).
async fn say(s: &Server, from: &User, to: &User, text: &str) -> u64 {
    s.advance_clock(1000).await;
    s.send_text(from, to, text).await
}

/// `say`, returning the µs bounds the message's time must lie within.
async fn say_timed(s: &Server, from: &User, to: &User, text: &str) -> (u64, i64, i64) {
    s.advance_clock(1000).await;
    let lo = clock_us(s).await;
    let key = s.send_text(from, to, text).await;
    (key, lo, clock_us_hi(s).await)
}

async fn detail_ok(s: &Server, viewer: &User, talker: u64) -> Value {
    let v = s.detail(viewer, talker).await;
    ok(&v).clone()
}

async fn ack(s: &Server, viewer: &User, talker: u64, seqno: Option<&str>) -> Value {
    let mut p = vec![("talker_id", st(talker)), ("session_type", "1".to_string())];
    if let Some(a) = seqno {
        p.push(("ack_seqno", a.to_string()));
    }
    s.post(viewer, UPDATE_ACK, &p).await
}

fn assert_empty_ok(v: &Value) {
    assert_eq!(
        v,
        &json!({"code": 0, "msg": "0", "message": "0", "ttl": 1, "data": {}})
    );
}

/// Asserts the read state of `viewer`'s session with `talker`.
async fn expect_state(
    s: &Server,
    viewer: &User,
    talker: &User,
    ack_seqno: u64,
    unread: u64,
    max: u64,
    last: u64,
) {
    let d = detail_ok(s, viewer, talker.mid).await;
    assert_eq!(
        d["ack_seqno"], ack_seqno,
        "{} about {}: {d}",
        viewer.name, talker.name
    );
    assert_eq!(
        d["unread_count"], unread,
        "{} about {}: {d}",
        viewer.name, talker.name
    );
    assert_eq!(
        d["max_seqno"], max,
        "{} about {}: {d}",
        viewer.name, talker.name
    );
    assert_eq!(
        d["last_msg"]["msg_seqno"], last,
        "{} about {}: {d}",
        viewer.name, talker.name
    );
}

fn talker_ids(data: &Value) -> Vec<u64> {
    match &data["session_list"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|x| x["talker_id"].as_u64().expect("talker_id"))
            .collect(),
        other => panic!("session_list is neither null nor an array: {other}"),
    }
}

async fn list(s: &Server, viewer: &User, session_type: u8, extra: &[(&str, String)]) -> Value {
    let mut p = vec![("session_type", session_type.to_string())];
    p.extend(extra.iter().cloned());
    s.sessions(viewer, &p).await
}

async fn new_list(s: &Server, viewer: &User, params: &[(&str, String)]) -> Value {
    let v = s.get(viewer, NEW_SESSIONS, params).await;
    ok(&v).clone()
}

/// Injects a notification from the system account of `system_msg_type`; returns the message.
async fn notify(s: &Server, to: &User, system_msg_type: u8) -> Value {
    s.advance_clock(1000).await;
    let (code, v) = s
        .admin(
            Method::POST,
            "/messages/system",
            Some(json!({
                "system_msg_type": system_msg_type,
                "to": to.mid,
                "msg_type": 10,
                "content": NOTIFY_CONTENT,
                "notify_code": "2091_253",
            })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn relation(s: &Server, a: &User, b: &User, patch: Value) {
    let mut body = patch;
    body["mid"] = json!(a.mid);
    body["fid"] = json!(b.mid);
    let (code, v) = s.admin(Method::PUT, "/relations", Some(body)).await;
    assert_eq!(code, 200, "{v}");
}

async fn set_dnd(s: &Server, viewer: &User, field: &str, id: u64, setting: u8) {
    let v = s
        .post(
            viewer,
            SET_MSG_DND,
            &[(field, st(id)), ("setting", setting.to_string())],
        )
        .await;
    assert_empty_ok(&v);
}

async fn set_top(s: &Server, viewer: &User, talker: u64, op_type: u8) -> Value {
    s.post(
        viewer,
        SET_TOP,
        &[
            ("talker_id", st(talker)),
            ("session_type", "1".into()),
            ("op_type", op_type.to_string()),
        ],
    )
    .await
}

async fn remove(s: &Server, viewer: &User, talker: u64) -> Value {
    s.post(
        viewer,
        REMOVE_SESSION,
        &[("talker_id", st(talker)), ("session_type", "1".into())],
    )
    .await
}

fn unread_json(follow: u64, unfollow: u64) -> Value {
    json!({
        "unfollow_unread": unfollow,
        "follow_unread": follow,
        "unfollow_push_msg": 0,
        "dustbin_push_msg": 0,
        "dustbin_unread": 0,
        "biz_msg_unfollow_unread": 0,
        "biz_msg_follow_unread": 0,
        "custom_unread": 0,
    })
}

/// `unread_json` with `biz_msg_follow_unread` set too.
fn unread_biz(follow: u64, unfollow: u64, biz_follow: u64) -> Value {
    let mut v = unread_json(follow, unfollow);
    v["biz_msg_follow_unread"] = json!(biz_follow);
    v
}

async fn unread_with(s: &Server, viewer: &User, params: &[(&str, String)]) -> Value {
    let v = s.get(viewer, SINGLE_UNREAD, params).await;
    ok(&v).clone()
}

/// `n` new users, each sending one text to `to`, one second apart (oldest first).
async fn talkers_to(s: &Server, to: &User, n: usize) -> Vec<User> {
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let t = s.user(&format!("talker{k}")).await;
        say(s, &t, to, &format!("hello {k}")).await;
        out.push(t);
    }
    out
}

// ---- the session object ----

async fn session_object_fields_for_both_participants(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    // bob follows alice: no first-message limit, no tip.
    s.follow(&b, &a, true).await;
    let (key, lo, hi) = say_timed(s, &a, &b, "hello").await;

    let db = detail_ok(s, &b, a.mid).await;
    let upstream_detail = upstream("response-session_detail.json");
    assert_eq!(keys(&db), keys(&upstream_detail["data"]), "{db}");
    assert_eq!(
        keys(&db["last_msg"]),
        keys(&upstream_detail["data"]["last_msg"]),
        "{db}"
    );
    assert!(db.get("account_info").is_none(), "{db}");
    let ts = db["session_ts"].as_i64().expect("session_ts is an integer");
    assert!(
        lo <= ts && ts <= hi,
        "session_ts {ts} is the send time in µs ({lo}..={hi})"
    );
    let last_msg = json!({
        "sender_uid": a.mid,
        "receiver_type": 1,
        "receiver_id": b.mid,
        "msg_type": 1,
        "content": "{\"content\":\"hello\"}",
        "msg_seqno": 1,
        "timestamp": ts / 1_000_000,
        "at_uids": null,
        "msg_key": key,
        "msg_status": 0,
        "notify_code": "",
        "new_face_version": 0,
        "msg_source": 7,
    });
    let object = |talker: u64, is_follow: u8, ack_seqno: u64, ack_ts: i64, unread: u64| {
        json!({
            "talker_id": talker,
            "session_type": 1,
            "at_seqno": 0,
            "top_ts": 0,
            "group_name": "",
            "group_cover": "",
            "is_follow": is_follow,
            "is_dnd": 0,
            "ack_seqno": ack_seqno,
            "ack_ts": ack_ts,
            "session_ts": ts,
            "unread_count": unread,
            "last_msg": last_msg,
            "group_type": 0,
            "can_fold": 0,
            "status": 0,
            "max_seqno": 1,
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
    // The receiver: follows the sender, nothing read.
    assert_eq!(db, object(a.mid, 1, 0, 0, 1));
    // The sender: sending marked it read at the send time.
    let da = detail_ok(s, &a, b.mid).await;
    assert_eq!(da, object(b.mid, 0, 1, ts, 0));

    // The list endpoints carry the very same objects.
    for (viewer, want) in [(&b, &db), (&a, &da)] {
        let l = list(s, viewer, 1, &[]).await;
        assert_eq!(l["session_list"], json!([want]), "{l}");
        let n = new_list(s, viewer, &[]).await;
        assert_eq!(n["session_list"], json!([want]), "{n}");
    }
}
scenario!(session_object_fields_for_both_participants);

async fn system_session_object_has_account_info(s: &Server) {
    let u = s.user("uploader").await;
    let lo = clock_us(s).await;
    let m = notify(s, &u, 7).await;
    let hi = clock_us_hi(s).await;
    let key = m["msg_key"].as_u64().expect("msg_key");

    let l = list(s, &u, 1, &[]).await;
    let item = &l["session_list"][0];
    let upstream_list = upstream("response-get_sessions.json");
    let upstream_sys = &upstream_list["data"]["session_list"][0];
    assert_eq!(keys(item), keys(upstream_sys), "{item}");
    let ts = item["session_ts"].as_i64().expect("session_ts");
    assert!(lo <= ts && ts <= hi, "{ts} in {lo}..={hi}");
    let want = json!({
        "talker_id": UP_HELPER,
        "session_type": 1,
        "at_seqno": 0,
        "top_ts": 0,
        "group_name": "",
        "group_cover": "",
        "is_follow": 1,
        "is_dnd": 0,
        "ack_seqno": 0,
        "ack_ts": 0,
        "session_ts": ts,
        "unread_count": 1,
        "last_msg": {
            "sender_uid": UP_HELPER,
            "receiver_type": 1,
            "receiver_id": u.mid,
            "msg_type": 10,
            "content": NOTIFY_CONTENT,
            "msg_seqno": 1,
            "timestamp": ts / 1_000_000,
            "at_uids": null,
            "msg_key": key,
            "msg_status": 0,
            "notify_code": "2091_253",
            "new_face_version": 1,
            "msg_source": 6,
        },
        "group_type": 0,
        "can_fold": 0,
        "status": 0,
        "max_seqno": 1,
        // The notification is a push (msg_source 6), unread.
        "new_push_msg": 1,
        "setting": 0,
        "is_guardian": 0,
        "is_intercept": 0,
        "is_trust": 0,
        "system_msg_type": 7,
        "account_info": {"name": "UP主小助手", "pic_url": SYS_PIC},
        "live_status": 0,
        "biz_msg_unread_count": 1,
        "user_label": null,
    });
    assert_eq!(item, &want);
    assert_eq!(l["system_msg"], json!({"7": UP_HELPER}));
    assert_eq!(detail_ok(s, &u, UP_HELPER).await, want);
    // A personal push from a system account (not 客服) counts in biz_msg_follow_unread
    // (docs/unread-counters.md), not in follow_unread.
    assert_eq!(s.unread(&u).await, unread_biz(0, 0, 1));
    // Read, the session has no unread push any more.
    assert_empty_ok(&ack(s, &u, UP_HELPER, None).await);
    let d = detail_ok(s, &u, UP_HELPER).await;
    assert_eq!(
        (
            d["unread_count"].clone(),
            d["new_push_msg"].clone(),
            d["biz_msg_unread_count"].clone()
        ),
        (json!(0), json!(0), json!(0)),
        "{d}"
    );
    assert_eq!(s.unread(&u).await, unread_json(0, 0));
}
scenario!(system_session_object_has_account_info);

// ---- unread, last_msg, ack, session_ts through a conversation ----

async fn read_state_of_both_sides_through_sends_recalls_acks_removals(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&a, &b, true).await;
    s.follow(&b, &a, true).await;

    say(s, &a, &b, "m1").await;
    say(s, &a, &b, "m2").await;
    let k3 = say(s, &a, &b, "m3").await;
    expect_state(s, &b, &a, 0, 3, 3, 3).await;
    expect_state(s, &a, &b, 3, 0, 3, 3).await;
    assert_eq!(s.unread(&b).await, unread_json(3, 0));
    assert_eq!(s.unread(&a).await, unread_json(0, 0));

    // A reply marks bob's side read and is one unread for alice.
    say(s, &b, &a, "m4").await;
    expect_state(s, &b, &a, 4, 0, 4, 4).await;
    expect_state(s, &a, &b, 3, 1, 4, 4).await;
    assert_eq!(s.unread(&a).await, unread_json(1, 0));

    // Alice recalls m3: the recall is message 5, unread for bob; sending it reads alice's side.
    s.advance_clock(1000).await;
    let lo = clock_us(s).await;
    let v = s.send(&a, b.mid, 5, &k3.to_string()).await;
    let recall_key = ok(&v)["msg_key"].as_u64().expect("msg_key");
    let hi = clock_us_hi(s).await;
    expect_state(s, &b, &a, 4, 1, 5, 5).await;
    expect_state(s, &a, &b, 5, 0, 5, 5).await;
    let db = detail_ok(s, &b, a.mid).await;
    let da = detail_ok(s, &a, b.mid).await;
    for d in [&db, &da] {
        assert_eq!(d["last_msg"]["msg_type"], 5, "{d}");
        assert_eq!(d["last_msg"]["msg_key"], recall_key, "{d}");
        assert_eq!(d["last_msg"]["content"], k3.to_string(), "{d}");
        assert_eq!(d["last_msg"]["sender_uid"], a.mid, "{d}");
        let ts = d["session_ts"].as_i64().unwrap();
        assert!(
            lo <= ts && ts <= hi,
            "session_ts {ts} is the recall time ({lo}..={hi})"
        );
    }
    assert_eq!(db["session_ts"], da["session_ts"]);
    assert_eq!(
        da["ack_ts"], da["session_ts"],
        "sending sets the sender's ack_ts"
    );
    assert_eq!(s.unread(&b).await, unread_json(1, 0));
    assert_eq!(s.unread(&a).await, unread_json(0, 0));

    // Bob reads everything.
    assert_empty_ok(&ack(s, &b, a.mid, Some("")).await);
    expect_state(s, &b, &a, 5, 0, 5, 5).await;
    assert_eq!(s.unread(&b).await, unread_json(0, 0));

    say(s, &a, &b, "m6").await;
    say(s, &a, &b, "m7").await;
    expect_state(s, &b, &a, 5, 2, 7, 7).await;
    assert_empty_ok(&ack(s, &b, a.mid, Some("6")).await);
    expect_state(s, &b, &a, 6, 1, 7, 7).await;
    assert_eq!(s.unread(&b).await, unread_json(1, 0));

    // Bob removes the session: hidden from his lists, read, detail still answers.
    assert_empty_ok(&remove(s, &b, a.mid).await);
    expect_state(s, &b, &a, 7, 0, 7, 7).await;
    assert_eq!(s.unread(&b).await, unread_json(0, 0));
    assert_eq!(list(s, &b, 1, &[]).await["session_list"], Value::Null);
    assert_eq!(new_list(s, &b, &[]).await["session_list"], Value::Null);
    // Alice's side is untouched.
    assert_eq!(talker_ids(&list(s, &a, 1, &[]).await), vec![b.mid]);
    expect_state(s, &a, &b, 7, 0, 7, 7).await;

    // A new message brings it back with its whole history.
    let (_, lo, hi) = say_timed(s, &a, &b, "m8").await;
    expect_state(s, &b, &a, 7, 1, 8, 8).await;
    expect_state(s, &a, &b, 8, 0, 8, 8).await;
    assert_eq!(talker_ids(&list(s, &b, 1, &[]).await), vec![a.mid]);
    assert_eq!(talker_ids(&new_list(s, &b, &[]).await), vec![a.mid]);
    let db = detail_ok(s, &b, a.mid).await;
    let da = detail_ok(s, &a, b.mid).await;
    let ts = db["session_ts"].as_i64().unwrap();
    assert!(lo <= ts && ts <= hi);
    assert_eq!(da["session_ts"], ts);
    let page = s.fetch(&b, &a, &[("size", "20".into())]).await;
    let msgs = ok(&page)["messages"].as_array().expect("messages").clone();
    let seqnos: Vec<u64> = msgs
        .iter()
        .map(|m| m["msg_seqno"].as_u64().unwrap())
        .collect();
    assert_eq!(seqnos, vec![8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(msgs[5]["msg_key"], k3);
    assert_eq!(msgs[5]["msg_status"], 1, "m3 is recalled");
}
scenario!(read_state_of_both_sides_through_sends_recalls_acks_removals);

async fn first_message_to_a_stranger_is_one_unread_for_the_receiver(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    // bob doesn't follow alice: whatever the sender's side gets (a tip), the receiver sees one
    // message, one unread.
    let (key, lo, hi) = say_timed(s, &a, &b, "hello").await;
    let d = detail_ok(s, &b, a.mid).await;
    assert_eq!(d["unread_count"], 1, "{d}");
    assert_eq!(d["ack_seqno"], 0, "{d}");
    assert_eq!(d["is_follow"], 0, "{d}");
    assert_eq!(d["last_msg"]["msg_key"], key, "{d}");
    assert_eq!(d["last_msg"]["msg_type"], 1, "{d}");
    let ts = d["session_ts"].as_i64().unwrap();
    assert!(lo <= ts && ts <= hi);
    assert_eq!(s.unread(&b).await, unread_json(0, 1));
    assert_eq!(talker_ids(&list(s, &b, 8, &[]).await), vec![a.mid]);
    assert_eq!(list(s, &b, 9, &[]).await["session_list"], Value::Null);
    // Once bob follows, the same session is a followed one.
    s.follow(&b, &a, true).await;
    assert_eq!(s.unread(&b).await, unread_json(1, 0));
    assert_eq!(talker_ids(&list(s, &b, 9, &[]).await), vec![a.mid]);
    assert_eq!(detail_ok(s, &b, a.mid).await["is_follow"], 1);
    assert_empty_ok(&ack(s, &b, a.mid, None).await);
    assert_eq!(s.unread(&b).await, unread_json(0, 0));
    assert_eq!(detail_ok(s, &b, a.mid).await["unread_count"], 0);
}
scenario!(first_message_to_a_stranger_is_one_unread_for_the_receiver);

// ---- single_unread ----

async fn single_unread_splits_by_live_follow_relations(s: &Server) {
    let u = s.user("me").await;
    let f = s.user("friend").await;
    let g = s.user("stranger").await;
    s.follow(&u, &f, true).await;
    say(s, &f, &u, "f1").await;
    say(s, &f, &u, "f2").await;
    say(s, &g, &u, "g1").await;
    let full = s.get(&u, SINGLE_UNREAD, &[]).await;
    assert_eq!(
        full,
        json!({"code": 0, "msg": "0", "message": "0", "ttl": 1, "data": unread_json(2, 1)})
    );
    assert_eq!(
        keys(&full["data"]),
        keys(&upstream("response-single_unread.json")["data"])
    );

    // The split follows the relation as it is now.
    s.follow(&u, &f, false).await;
    assert_eq!(s.unread(&u).await, unread_json(0, 3));
    s.follow(&u, &f, true).await;
    s.follow(&u, &g, true).await;
    assert_eq!(s.unread(&u).await, unread_json(3, 0));
    s.follow(&u, &g, false).await;
    assert_eq!(s.unread(&u).await, unread_json(2, 1));
    // The other direction of a follow doesn't matter.
    s.follow(&g, &u, true).await;
    assert_eq!(s.unread(&u).await, unread_json(2, 1));

    // unread_type: 1 followed only, 2 unfollowed only, 0 both.
    let p = |t: &str| vec![("unread_type", t.to_string())];
    assert_eq!(unread_with(s, &u, &p("1")).await, unread_json(2, 0));
    assert_eq!(unread_with(s, &u, &p("2")).await, unread_json(0, 1));
    assert_eq!(unread_with(s, &u, &p("0")).await, unread_json(2, 1));
    assert_eq!(
        unread_with(
            s,
            &u,
            &[
                ("show_unfollow_list", "1".into()),
                ("show_dustbin", "1".into())
            ]
        )
        .await,
        unread_json(2, 1)
    );
    assert_eq!(
        unread_with(
            s,
            &u,
            &[("unread_type", "3".into()), ("show_dustbin", "1".into())]
        )
        .await,
        unread_json(0, 0)
    );

    // DND sessions don't count, on either side of the split.
    set_dnd(s, &u, "dnd_uid", f.mid, 1).await;
    assert_eq!(s.unread(&u).await, unread_json(0, 1));
    set_dnd(s, &u, "dnd_uid", g.mid, 1).await;
    assert_eq!(s.unread(&u).await, unread_json(0, 0));
    set_dnd(s, &u, "dnd_uid", f.mid, 0).await;
    set_dnd(s, &u, "dnd_uid", g.mid, 0).await;
    assert_eq!(s.unread(&u).await, unread_json(2, 1));

    // Pushes from a system account (msg_source 6) count in biz_msg_follow_unread, not in
    // follow_unread (docs/unread-counters.md).
    notify(s, &u, 7).await;
    notify(s, &u, 7).await;
    assert_eq!(s.unread(&u).await, unread_biz(2, 1, 2));
    assert_eq!(unread_with(s, &u, &p("2")).await, unread_biz(0, 1, 2));

    // Reading brings the counts down.
    assert_empty_ok(&ack(s, &u, f.mid, None).await);
    assert_eq!(s.unread(&u).await, unread_biz(0, 1, 2));
    assert_empty_ok(&ack(s, &u, UP_HELPER, Some("1")).await);
    assert_eq!(s.unread(&u).await, unread_biz(0, 1, 1));
    assert_empty_ok(&remove(s, &u, g.mid).await);
    assert_eq!(s.unread(&u).await, unread_biz(0, 0, 1));
    assert_empty_ok(&ack(s, &u, UP_HELPER, None).await);
    assert_eq!(s.unread(&u).await, unread_json(0, 0));
}
scenario!(single_unread_splits_by_live_follow_relations);

async fn my_group_unread_is_zero_without_groups(s: &Server) {
    let u = s.user("me").await;
    let t = s.user("t").await;
    say(s, &t, &u, "hi").await;
    let v = s.get(&u, MY_GROUP_UNREAD, &[]).await;
    assert_eq!(
        v,
        json!({"code": 0, "msg": "0", "message": "0", "ttl": 1, "data": {"unread_count": 0}})
    );
}
scenario!(my_group_unread_is_zero_without_groups);

// ---- update_ack ----

async fn update_ack_is_monotonic_clamped_and_recounts(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    // Mutual: no first-message limit or tip on either side, so seqnos are exactly the texts.
    s.follow(&b, &a, true).await;
    s.follow(&a, &b, true).await;
    for k in 1..=6 {
        say(s, &a, &b, &format!("m{k}")).await;
    }
    expect_state(s, &b, &a, 0, 6, 6, 6).await;

    // Ack to the middle: exactly the later ones stay unread; ack_ts is the clock in µs.
    s.advance_clock(1000).await;
    let lo = clock_us(s).await;
    assert_empty_ok(&ack(s, &b, a.mid, Some("5")).await);
    let hi = clock_us_hi(s).await;
    expect_state(s, &b, &a, 5, 1, 6, 6).await;
    let d = detail_ok(s, &b, a.mid).await;
    let ack_ts1 = d["ack_ts"].as_i64().unwrap();
    assert!(
        lo <= ack_ts1 && ack_ts1 <= hi,
        "ack_ts {ack_ts1} in {lo}..={hi}"
    );
    assert_eq!(s.unread(&b).await, unread_json(1, 0));

    // Never backwards, but ack_ts still moves.
    s.advance_clock(1000).await;
    let lo = clock_us(s).await;
    assert_empty_ok(&ack(s, &b, a.mid, Some("3")).await);
    let hi = clock_us_hi(s).await;
    expect_state(s, &b, &a, 5, 1, 6, 6).await;
    let ack_ts2 = detail_ok(s, &b, a.mid).await["ack_ts"].as_i64().unwrap();
    assert!(
        lo <= ack_ts2 && ack_ts2 <= hi,
        "ack_ts {ack_ts2} in {lo}..={hi}"
    );
    assert!(ack_ts2 > ack_ts1);
    assert_empty_ok(&ack(s, &b, a.mid, Some("0")).await);
    expect_state(s, &b, &a, 5, 1, 6, 6).await;

    // Clamped to the conversation's max.
    assert_empty_ok(&ack(s, &b, a.mid, Some("999")).await);
    expect_state(s, &b, &a, 6, 0, 6, 6).await;
    assert_empty_ok(&ack(s, &b, a.mid, Some("18446744073709551615")).await);
    expect_state(s, &b, &a, 6, 0, 6, 6).await;

    // Empty → latest; absent → latest.
    say(s, &a, &b, "m7").await;
    say(s, &a, &b, "m8").await;
    expect_state(s, &b, &a, 6, 2, 8, 8).await;
    assert_empty_ok(&ack(s, &b, a.mid, Some("")).await);
    expect_state(s, &b, &a, 8, 0, 8, 8).await;
    for k in 9..=11 {
        say(s, &a, &b, &format!("m{k}")).await;
    }
    assert_empty_ok(&ack(s, &b, a.mid, Some("10")).await);
    expect_state(s, &b, &a, 10, 1, 11, 11).await;
    assert_empty_ok(&ack(s, &b, a.mid, None).await);
    expect_state(s, &b, &a, 11, 0, 11, 11).await;
    // The sender's side never changed.
    expect_state(s, &a, &b, 11, 0, 11, 11).await;

    // Acking inside a conversation with a reply in it only counts the other side's messages.
    say(s, &a, &b, "m12").await;
    say(s, &b, &a, "m13").await;
    say(s, &a, &b, "m14").await;
    expect_state(s, &a, &b, 14, 0, 14, 14).await;
    expect_state(s, &b, &a, 13, 1, 14, 14).await;
    expect_state(s, &a, &b, 14, 0, 14, 14).await;

    // No conversation: code 0, nothing created.
    let c = s.user("carol").await;
    assert_empty_ok(&ack(s, &b, c.mid, Some("3")).await);
    assert_empty_ok(&ack(s, &b, c.mid, None).await);
    assert_empty_ok(&ack(s, &b, 999_999_999, None).await);
    assert_empty_ok(
        &s.post(
            &b,
            UPDATE_ACK,
            &[
                ("talker_id", "221082140".into()),
                ("session_type", "2".into()),
                ("ack_seqno", "4".into()),
            ],
        )
        .await,
    );
    assert_err(&s.detail(&b, c.mid).await, 1000004, "入口节点已存在");
    assert_eq!(talker_ids(&list(s, &b, 1, &[]).await), vec![a.mid]);
}
scenario!(update_ack_is_monotonic_clamped_and_recounts);

async fn unread_stays_exact_under_concurrent_acks_and_sends(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&b, &a, true).await;
    let consistent = |d: &Value| {
        let last = d["last_msg"]["msg_seqno"].as_u64().unwrap();
        let ack = d["ack_seqno"].as_u64().unwrap();
        assert_eq!(d["max_seqno"].as_u64().unwrap(), last, "{d}");
        assert_eq!(d["unread_count"].as_u64().unwrap(), last - ack, "{d}");
    };
    let sender = async {
        for k in 0..30 {
            say(s, &a, &b, &format!("m{k}")).await;
        }
    };
    let reader = async {
        let mut last_ack = 0;
        for k in 0..40u64 {
            let target = match k % 3 {
                0 => None,
                1 => Some((k / 2).to_string()),
                _ => Some(String::new()),
            };
            assert_empty_ok(&ack(s, &b, a.mid, target.as_deref()).await);
            let v = s.detail(&b, a.mid).await;
            if v["code"] == 1000004 {
                continue;
            }
            let d = ok(&v).clone();
            consistent(&d);
            let now = d["ack_seqno"].as_u64().unwrap();
            assert!(now >= last_ack, "ack went back from {last_ack} to {now}");
            last_ack = now;
        }
    };
    tokio::join!(sender, reader);
    let d = detail_ok(s, &b, a.mid).await;
    consistent(&d);
    assert_eq!(d["max_seqno"], 30);
    assert_eq!(
        s.unread(&b).await,
        unread_json(30 - d["ack_seqno"].as_u64().unwrap(), 0)
    );
    assert_empty_ok(&ack(s, &b, a.mid, None).await);
    let d = detail_ok(s, &b, a.mid).await;
    assert_eq!(
        (d["ack_seqno"].clone(), d["unread_count"].clone()),
        (json!(30), json!(0))
    );
}
scenario!(unread_stays_exact_under_concurrent_acks_and_sends);

// ---- get_sessions ----

async fn get_sessions_lists_by_session_type(s: &Server) {
    let u = s.user("me").await;
    let f = s.user("friend").await;
    let g = s.user("stranger").await;
    s.follow(&u, &f, true).await;
    say(s, &f, &u, "from a friend").await;
    say(s, &g, &u, "from a stranger").await;
    notify(s, &u, 7).await;

    let l1 = list(s, &u, 1, &[]).await;
    assert_eq!(talker_ids(&l1), vec![UP_HELPER, g.mid, f.mid]);
    let mut rest = l1.clone();
    rest.as_object_mut().unwrap().remove("session_list");
    assert_eq!(
        rest,
        json!({
            "has_more": 0,
            "anti_disturb_cleaning": false,
            "is_address_list_empty": 0,
            "system_msg": {"7": UP_HELPER},
            "show_level": true,
        })
    );
    let sl = l1["session_list"].as_array().unwrap();
    assert_eq!(sl[0]["is_follow"], 1);
    assert_eq!(sl[0]["system_msg_type"], 7);
    assert_eq!(
        sl[0]["account_info"],
        json!({"name": "UP主小助手", "pic_url": SYS_PIC})
    );
    assert_eq!(sl[1]["is_follow"], 0);
    assert_eq!(sl[2]["is_follow"], 1);
    for item in &sl[1..] {
        assert!(item.get("account_info").is_none(), "{item}");
        assert_eq!(item["system_msg_type"], 0);
    }

    let ids = |d: Value| talker_ids(&d);
    assert_eq!(
        ids(list(s, &u, 4, &[]).await),
        vec![UP_HELPER, g.mid, f.mid]
    );
    assert_eq!(ids(list(s, &u, 2, &[]).await), vec![g.mid]);
    assert_eq!(ids(list(s, &u, 8, &[]).await), vec![g.mid]);
    assert_eq!(ids(list(s, &u, 9, &[]).await), vec![UP_HELPER, f.mid]);
    assert_eq!(ids(list(s, &u, 7, &[]).await), vec![UP_HELPER]);
    for t in [3u8, 5] {
        let d = list(s, &u, t, &[]).await;
        assert_eq!(d["session_list"], Value::Null, "type {t}: {d}");
        assert_eq!(d["has_more"], 0, "type {t}: {d}");
        assert_eq!(d["show_level"], true, "type {t}: {d}");
    }
    for rule in ["1", "2"] {
        assert_eq!(
            ids(list(s, &u, 1, &[("sort_rule", rule.into())]).await),
            vec![UP_HELPER, g.mid, f.mid]
        );
    }
    assert_eq!(
        ids(list(s, &u, 1, &[("group_fold", "1".into())]).await),
        vec![UP_HELPER, g.mid, f.mid]
    );

    // unfollow_fold leaves unfollowed people out of 1 and 4 only.
    let fold = [("unfollow_fold", "1".to_string())];
    assert_eq!(ids(list(s, &u, 1, &fold).await), vec![UP_HELPER, f.mid]);
    assert_eq!(ids(list(s, &u, 4, &fold).await), vec![UP_HELPER, f.mid]);
    assert_eq!(ids(list(s, &u, 2, &fold).await), vec![g.mid]);
    assert_eq!(ids(list(s, &u, 8, &fold).await), vec![g.mid]);

    // The lists follow relations as they change.
    s.follow(&u, &f, false).await;
    assert_eq!(ids(list(s, &u, 9, &[]).await), vec![UP_HELPER]);
    assert_eq!(ids(list(s, &u, 8, &[]).await), vec![g.mid, f.mid]);
    assert_eq!(ids(list(s, &u, 2, &[]).await), vec![g.mid, f.mid]);
    assert_eq!(ids(list(s, &u, 1, &fold).await), vec![UP_HELPER]);
    assert_eq!(list(s, &u, 1, &[]).await["session_list"][2]["is_follow"], 0);
    s.follow(&u, &g, true).await;
    assert_eq!(ids(list(s, &u, 9, &[]).await), vec![UP_HELPER, g.mid]);
    assert_eq!(ids(list(s, &u, 8, &[]).await), vec![f.mid]);
    assert_eq!(list(s, &u, 1, &[]).await["session_list"][1]["is_follow"], 1);
    // A follower who isn't followed back is still a stranger.
    s.follow(&f, &u, true).await;
    assert_eq!(ids(list(s, &u, 8, &[]).await), vec![f.mid]);

    // More system accounts: all listed in system_msg, keyed by type.
    notify(s, &u, 1).await;
    notify(s, &u, 9).await;
    let l7 = list(s, &u, 7, &[]).await;
    assert_eq!(ids(l7.clone()), vec![PAY_HELPER, LIVE_HELPER, UP_HELPER]);
    assert_eq!(
        l7["system_msg"],
        json!({"1": LIVE_HELPER, "7": UP_HELPER, "9": PAY_HELPER})
    );
    assert_eq!(l7["session_list"][0]["account_info"]["name"], "支付小助手");
    assert_eq!(l7["session_list"][1]["account_info"]["name"], "主播小助手");
    assert_eq!(l7["session_list"][0]["system_msg_type"], 9);
    assert_eq!(l7["session_list"][1]["system_msg_type"], 1);
    assert_eq!(ids(list(s, &u, 8, &[]).await), vec![f.mid]);

    // Someone with no system sessions gets no system_msg at all.
    let d = list(s, &g, 1, &[]).await;
    assert_eq!(ids(d.clone()), vec![u.mid]);
    assert!(d.get("system_msg").is_none(), "{d}");
}
scenario!(get_sessions_lists_by_session_type);

async fn get_sessions_sort_rule_3_orders_by_ack_ts(s: &Server) {
    let u = s.user("me").await;
    let t = talkers_to(s, &u, 3).await;
    // Read in the order t2, t0, t1 → ack_ts order (newest first) t1, t0, t2.
    for k in [2usize, 0, 1] {
        s.advance_clock(1000).await;
        assert_empty_ok(&ack(s, &u, t[k].mid, None).await);
    }
    let ids = |d: Value| talker_ids(&d);
    assert_eq!(
        ids(list(s, &u, 1, &[("sort_rule", "3".into())]).await),
        vec![t[1].mid, t[0].mid, t[2].mid]
    );
    assert_eq!(
        ids(list(s, &u, 1, &[]).await),
        vec![t[2].mid, t[1].mid, t[0].mid]
    );
    assert_eq!(
        ids(list(s, &u, 1, &[("sort_rule", "1".into())]).await),
        vec![t[2].mid, t[1].mid, t[0].mid]
    );

    // Paging by ack_ts.
    let first = list(s, &u, 1, &[("sort_rule", "3".into()), ("size", "1".into())]).await;
    assert_eq!(ids(first.clone()), vec![t[1].mid]);
    assert_eq!(first["has_more"], 1);
    let end = first["session_list"][0]["ack_ts"].as_i64().unwrap();
    let second = list(
        s,
        &u,
        1,
        &[
            ("sort_rule", "3".into()),
            ("size", "1".into()),
            ("end_ts", end.to_string()),
        ],
    )
    .await;
    assert_eq!(ids(second.clone()), vec![t[0].mid]);
    assert_eq!(second["has_more"], 1);
    let end = second["session_list"][0]["ack_ts"].as_i64().unwrap();
    let third = list(
        s,
        &u,
        1,
        &[
            ("sort_rule", "3".into()),
            ("size", "5".into()),
            ("end_ts", end.to_string()),
        ],
    )
    .await;
    assert_eq!(ids(third.clone()), vec![t[2].mid]);
    assert_eq!(third["has_more"], 0);
}
scenario!(get_sessions_sort_rule_3_orders_by_ack_ts);

async fn get_sessions_pages_45_sessions_and_pins(s: &Server) {
    let u = s.user("me").await;
    let t = talkers_to(s, &u, 45).await;
    // Newest first.
    let newest: Vec<u64> = t.iter().rev().map(|x| x.mid).collect();

    let mut seen = Vec::new();
    let mut tss = Vec::new();
    let mut end: Option<i64> = None;
    for (want_len, want_more) in [(20usize, 1), (20, 1), (5, 0)] {
        let mut p = vec![("size", "20".to_string())];
        if let Some(e) = end {
            p.push(("end_ts", e.to_string()));
        }
        let d = list(s, &u, 1, &p).await;
        let items = d["session_list"].as_array().expect("a page").clone();
        assert_eq!(items.len(), want_len, "{d}");
        assert_eq!(d["has_more"], want_more);
        for it in &items {
            seen.push(it["talker_id"].as_u64().unwrap());
            tss.push(it["session_ts"].as_i64().unwrap());
        }
        end = Some(items.last().unwrap()["session_ts"].as_i64().unwrap());
    }
    assert_eq!(seen, newest, "every session exactly once, newest first");
    assert!(
        tss.windows(2).all(|w| w[0] > w[1]),
        "strictly descending session_ts"
    );
    let end_of_last = list(
        s,
        &u,
        1,
        &[("size", "20".into()), ("end_ts", end.unwrap().to_string())],
    )
    .await;
    assert_eq!(end_of_last["session_list"], Value::Null);
    assert_eq!(end_of_last["has_more"], 0);

    let ids = |d: Value| talker_ids(&d);
    // begin_ts only: the newest `size` after it (exclusive).
    let d = list(s, &u, 1, &[("begin_ts", tss[10].to_string())]).await;
    assert_eq!(ids(d.clone()), newest[..10].to_vec());
    assert_eq!(d["has_more"], 0);
    let d = list(
        s,
        &u,
        1,
        &[("begin_ts", tss[10].to_string()), ("size", "5".into())],
    )
    .await;
    assert_eq!(ids(d.clone()), newest[..5].to_vec());
    assert_eq!(d["has_more"], 1);
    // Both bounds, both exclusive.
    let d = list(
        s,
        &u,
        1,
        &[
            ("begin_ts", tss[30].to_string()),
            ("end_ts", tss[10].to_string()),
        ],
    )
    .await;
    assert_eq!(ids(d.clone()), newest[11..30].to_vec());
    assert_eq!(d["has_more"], 0);
    // Exactly `size` left: no more.
    let d = list(
        s,
        &u,
        1,
        &[("size", "20".into()), ("end_ts", tss[24].to_string())],
    )
    .await;
    assert_eq!(ids(d.clone()), newest[25..].to_vec());
    assert_eq!(d["has_more"], 0);
    // begin_ts=0 / end_ts=0 mean absent.
    let d = list(
        s,
        &u,
        1,
        &[("begin_ts", "0".into()), ("end_ts", "0".into())],
    )
    .await;
    assert_eq!(ids(d), newest[..20].to_vec());

    // Pin an old session: it heads the first page, on top of `size` unpinned ones.
    s.advance_clock(1000).await;
    let lo = clock_us(s).await;
    assert_empty_ok(&set_top(s, &u, newest[40], 0).await);
    let hi = clock_us_hi(s).await;
    let top_ts = detail_ok(s, &u, newest[40]).await["top_ts"]
        .as_i64()
        .unwrap();
    assert!(
        lo <= top_ts && top_ts <= hi,
        "top_ts {top_ts} is the pin time in µs ({lo}..={hi})"
    );
    s.advance_clock(1000).await;
    assert_empty_ok(&set_top(s, &u, newest[30], 0).await);

    let mut want_first = vec![newest[30], newest[40]];
    want_first.extend_from_slice(&newest[..20]);
    let p1 = list(s, &u, 1, &[("size", "20".into())]).await;
    assert_eq!(ids(p1.clone()), want_first);
    assert_eq!(p1["has_more"], 1);
    assert_eq!(p1["session_list"][1]["top_ts"], top_ts);
    assert_eq!(p1["session_list"][2]["top_ts"], 0);
    // Later pages hold unpinned sessions only.
    let end = p1["session_list"][21]["session_ts"].as_i64().unwrap();
    let p2 = list(
        s,
        &u,
        1,
        &[("size", "20".into()), ("end_ts", end.to_string())],
    )
    .await;
    let mut want_second: Vec<u64> = newest[20..30].to_vec();
    want_second.extend_from_slice(&newest[31..40]);
    want_second.push(newest[41]);
    assert_eq!(ids(p2.clone()), want_second);
    assert_eq!(p2["has_more"], 1);
    let end = p2["session_list"][19]["session_ts"].as_i64().unwrap();
    let p3 = list(
        s,
        &u,
        1,
        &[("size", "20".into()), ("end_ts", end.to_string())],
    )
    .await;
    assert_eq!(ids(p3.clone()), newest[42..].to_vec());
    assert_eq!(p3["has_more"], 0);
    // Pinned sessions also lead the other lists they belong to.
    assert_eq!(
        ids(list(s, &u, 8, &[("size", "3".into())]).await),
        vec![newest[30], newest[40], newest[0], newest[1], newest[2]]
    );

    // Unpinning puts them back in place with top_ts 0.
    assert_empty_ok(&set_top(s, &u, newest[40], 1).await);
    assert_empty_ok(&set_top(s, &u, newest[30], 1).await);
    assert_eq!(detail_ok(s, &u, newest[40]).await["top_ts"], 0);
    assert_eq!(
        ids(list(s, &u, 1, &[("size", "20".into())]).await),
        newest[..20].to_vec()
    );
    let d = list(
        s,
        &u,
        1,
        &[("size", "20".into()), ("end_ts", tss[29].to_string())],
    )
    .await;
    assert_eq!(ids(d), newest[30..45].to_vec());
}
scenario!(get_sessions_pages_45_sessions_and_pins);

async fn set_top_pins_first_and_unpins(s: &Server) {
    let u = s.user("me").await;
    let t = talkers_to(s, &u, 3).await;
    let ids = |d: Value| talker_ids(&d);
    assert_eq!(
        ids(list(s, &u, 1, &[]).await),
        vec![t[2].mid, t[1].mid, t[0].mid]
    );
    assert_empty_ok(&set_top(s, &u, t[0].mid, 0).await);
    assert_eq!(
        ids(list(s, &u, 1, &[]).await),
        vec![t[0].mid, t[2].mid, t[1].mid]
    );
    assert_eq!(
        ids(new_list(s, &u, &[]).await),
        vec![t[2].mid, t[1].mid, t[0].mid],
        "new_sessions is by time"
    );
    // A new message elsewhere doesn't unseat the pinned one.
    // (Following t1 first lets it send a second message.)
    s.follow(&u, &t[1], true).await;
    say(s, &t[1], &u, "again").await;
    assert_eq!(
        ids(list(s, &u, 1, &[]).await),
        vec![t[0].mid, t[1].mid, t[2].mid]
    );
    // Pinning again refreshes top_ts; the other side's view isn't pinned.
    let first = detail_ok(s, &u, t[0].mid).await["top_ts"].as_i64().unwrap();
    assert!(first > 1_000_000_000_000_000, "top_ts is µs: {first}");
    s.advance_clock(1000).await;
    assert_empty_ok(&set_top(s, &u, t[0].mid, 0).await);
    let second = detail_ok(s, &u, t[0].mid).await["top_ts"].as_i64().unwrap();
    assert!(second >= first + 1_000_000, "{first} → {second}");
    assert_eq!(detail_ok(s, &t[0], u.mid).await["top_ts"], 0);
    assert_empty_ok(&set_top(s, &u, t[0].mid, 1).await);
    assert_eq!(detail_ok(s, &u, t[0].mid).await["top_ts"], 0);
    assert_eq!(
        ids(list(s, &u, 1, &[]).await),
        vec![t[1].mid, t[2].mid, t[0].mid]
    );
    // Unpinning twice is fine.
    assert_empty_ok(&set_top(s, &u, t[0].mid, 1).await);
    assert_eq!(detail_ok(s, &u, t[0].mid).await["top_ts"], 0);
}
scenario!(set_top_pins_first_and_unpins);

/// 105 sessions, created with concurrent sends.
async fn many_talkers(s: &Server, u: &User, n: usize) -> Vec<User> {
    let mut talkers = Vec::with_capacity(n);
    for k in 0..n {
        talkers.push(s.user(&format!("t{k}")).await);
    }
    let mut set = tokio::task::JoinSet::new();
    for t in &talkers {
        let http = s.http.clone();
        let url = s.url(SEND);
        let cookie = t.cookie();
        let mut form = Server::send_form(
            t,
            u.mid,
            1,
            &json!({"content": format!("hi from {}", t.mid)}).to_string(),
        );
        form.push(("csrf", t.bili_jct.clone()));
        set.spawn(async move {
            let resp = http
                .post(url)
                .header("Cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("send");
            let v: Value = resp.json().await.expect("JSON answer");
            assert_eq!(v["code"], 0, "{v}");
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("send task");
    }
    talkers
}

async fn session_list_sizes_default_and_clamp(s: &Server) {
    let u = s.user("me").await;
    let talkers = many_talkers(s, &u, 105).await;
    let all: BTreeSet<u64> = talkers.iter().map(|t| t.mid).collect();
    assert_eq!(s.unread(&u).await, unread_json(0, 105));

    for (size, want) in [
        (None, 20usize),
        (Some("0"), 20),
        (Some("7"), 7),
        (Some("100"), 100),
        (Some("101"), 100),
        (Some("500"), 100),
    ] {
        let p: Vec<(&str, String)> = size.map(|z| ("size", z.to_string())).into_iter().collect();
        for new in [false, true] {
            let d = if new {
                new_list(s, &u, &p).await
            } else {
                list(s, &u, 1, &p).await
            };
            let ids = talker_ids(&d);
            assert_eq!(ids.len(), want, "size {size:?} (new_sessions: {new})");
            assert_eq!(d["has_more"], 1, "size {size:?} (new_sessions: {new})");
            let distinct: BTreeSet<u64> = ids.iter().copied().collect();
            assert_eq!(distinct.len(), want);
            assert!(distinct.is_subset(&all));
            let ts: Vec<i64> = d["session_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["session_ts"].as_i64().unwrap())
                .collect();
            assert!(ts.windows(2).all(|w| w[0] >= w[1]), "newest first");
        }
    }
}
scenario!(session_list_sizes_default_and_clamp);

// ---- remove_session ----

async fn removed_sessions_hide_and_reappear_with_history(s: &Server) {
    let u = s.user("me").await;
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&u, &b, true).await;
    say(s, &a, &u, "a1").await;
    say(s, &b, &u, "b1").await;
    say(s, &b, &u, "b2").await;
    let ids = |d: Value| talker_ids(&d);
    assert_eq!(ids(list(s, &u, 1, &[]).await), vec![b.mid, a.mid]);
    assert_eq!(s.unread(&u).await, unread_json(2, 1));

    assert_empty_ok(&remove(s, &u, b.mid).await);
    for t in [1u8, 4, 9] {
        let d = list(s, &u, t, &[]).await;
        assert!(!talker_ids(&d).contains(&b.mid), "type {t}: {d}");
    }
    assert_eq!(ids(list(s, &u, 1, &[]).await), vec![a.mid]);
    assert_eq!(ids(new_list(s, &u, &[]).await), vec![a.mid]);
    assert_eq!(s.unread(&u).await, unread_json(0, 1), "removing marks read");
    // session_detail still works, and the history is kept.
    let d = detail_ok(s, &u, b.mid).await;
    assert_eq!(d["ack_seqno"], 2);
    assert_eq!(d["unread_count"], 0);
    assert_eq!(d["max_seqno"], 2);
    assert_eq!(d["last_msg"]["msg_seqno"], 2);
    let page = s.fetch(&u, &b, &[("size", "20".into())]).await;
    assert_eq!(ok(&page)["messages"].as_array().unwrap().len(), 2);
    // The other participant still sees it.
    assert_eq!(ids(list(s, &b, 1, &[]).await), vec![u.mid]);
    // Removing twice, or removing what never existed, is fine.
    assert_empty_ok(&remove(s, &u, b.mid).await);
    let c = s.user("carol").await;
    assert_empty_ok(&remove(s, &u, c.mid).await);
    assert_err(&s.detail(&u, c.mid).await, 1000004, "入口节点已存在");

    // A new message brings it back, on top, with everything before it.
    say(s, &b, &u, "b3").await;
    assert_eq!(ids(list(s, &u, 1, &[]).await), vec![b.mid, a.mid]);
    assert_eq!(ids(new_list(s, &u, &[]).await), vec![b.mid, a.mid]);
    let d = detail_ok(s, &u, b.mid).await;
    assert_eq!(
        (
            d["ack_seqno"].clone(),
            d["unread_count"].clone(),
            d["max_seqno"].clone()
        ),
        (json!(2), json!(1), json!(3))
    );
    let page = s.fetch(&u, &b, &[("size", "20".into())]).await;
    let seqnos: Vec<u64> = ok(&page)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg_seqno"].as_u64().unwrap())
        .collect();
    assert_eq!(seqnos, vec![3, 2, 1]);
    assert_eq!(s.unread(&u).await, unread_json(1, 1));

    // The owner's own message also brings it back (read).
    assert_empty_ok(&remove(s, &u, a.mid).await);
    assert_eq!(ids(list(s, &u, 1, &[]).await), vec![b.mid]);
    // (alice follows me, so my message to her adds no tip on my side. Her own first message,
    // "a1", came with a tip for her at seqno 2: mine is seqno 3.)
    s.follow(&a, &u, true).await;
    let k = say(s, &u, &a, "u1").await;
    assert_eq!(ids(list(s, &u, 1, &[]).await), vec![a.mid, b.mid]);
    let d = detail_ok(s, &u, a.mid).await;
    assert_eq!(d["unread_count"], 0);
    assert_eq!(d["ack_seqno"], 3);
    assert_eq!(d["max_seqno"], 3);
    assert_eq!(d["last_msg"]["msg_key"].as_u64(), Some(k));
    // alice's tip is hers alone: my view of the conversation skips it.
    let page = s.fetch(&u, &a, &[("size", "20".into())]).await;
    let seqnos: Vec<u64> = ok(&page)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg_seqno"].as_u64().unwrap())
        .collect();
    assert_eq!(seqnos, vec![3, 1]);
    // A pinned session that is removed is hidden too, until its next message.
    assert_empty_ok(&set_top(s, &u, b.mid, 0).await);
    assert_empty_ok(&remove(s, &u, b.mid).await);
    assert_eq!(ids(list(s, &u, 1, &[]).await), vec![a.mid]);
}
scenario!(removed_sessions_hide_and_reappear_with_history);

// ---- new_sessions ----

async fn new_sessions_after_begin_ts(s: &Server) {
    let u = s.user("me").await;
    let t = talkers_to(s, &u, 3).await;
    let l = list(s, &u, 1, &[]).await;
    let ts: Vec<i64> = l["session_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["session_ts"].as_i64().unwrap())
        .collect();
    // ts[0] is t2's (newest), ts[2] is t0's.
    let ids = |d: Value| talker_ids(&d);
    let all = new_list(s, &u, &[]).await;
    assert_eq!(ids(all.clone()), vec![t[2].mid, t[1].mid, t[0].mid]);
    let mut rest = all.clone();
    rest.as_object_mut().unwrap().remove("session_list");
    assert_eq!(
        rest,
        json!({"has_more": 0, "anti_disturb_cleaning": false, "is_address_list_empty": 0, "show_level": false})
    );
    assert_eq!(all["session_list"], l["session_list"]);
    assert_eq!(l["show_level"], true);

    let after = |x: i64| vec![("begin_ts", x.to_string())];
    assert_eq!(
        ids(new_list(s, &u, &after(ts[2])).await),
        vec![t[2].mid, t[1].mid]
    );
    assert_eq!(
        ids(new_list(s, &u, &after(ts[2] - 1)).await),
        vec![t[2].mid, t[1].mid, t[0].mid]
    );
    assert_eq!(ids(new_list(s, &u, &after(ts[1])).await), vec![t[2].mid]);
    // An idle poll: the whole answer, exactly.
    let idle = json!({"session_list": null, "has_more": 0, "anti_disturb_cleaning": false,
        "is_address_list_empty": 0, "show_level": false});
    assert_eq!(new_list(s, &u, &after(ts[0])).await, idle);
    assert_eq!(
        ids(new_list(s, &u, &[("begin_ts", "0".into())]).await).len(),
        3
    );

    let two = new_list(s, &u, &[("size", "2".into())]).await;
    assert_eq!(ids(two.clone()), vec![t[2].mid, t[1].mid]);
    assert_eq!(two["has_more"], 1);
    let two = new_list(
        s,
        &u,
        &[("size", "2".into()), ("begin_ts", ts[2].to_string())],
    )
    .await;
    assert_eq!(ids(two.clone()), vec![t[2].mid, t[1].mid]);
    assert_eq!(two["has_more"], 0);

    // A new message, an ack, a pin: only the message moves session_ts.
    s.advance_clock(1000).await;
    assert_empty_ok(&ack(s, &u, t[1].mid, None).await);
    assert_empty_ok(&set_top(s, &u, t[1].mid, 0).await);
    assert_eq!(new_list(s, &u, &after(ts[0])).await, idle);
    // (Following t0 first lets it send a second message.)
    s.follow(&u, &t[0], true).await;
    say(s, &t[0], &u, "again").await;
    let d = new_list(s, &u, &after(ts[0])).await;
    assert_eq!(ids(d.clone()), vec![t[0].mid]);
    assert_eq!(d["session_list"][0]["unread_count"], 2);
    // System sessions are included.
    notify(s, &u, 7).await;
    let d = new_list(s, &u, &after(ts[0])).await;
    assert_eq!(ids(d.clone()), vec![UP_HELPER, t[0].mid]);
    assert_eq!(d["session_list"][0]["account_info"]["name"], "UP主小助手");
}
scenario!(new_sessions_after_begin_ts);

// ---- session_detail ----

async fn session_detail_never_chatted_is_1000004(s: &Server) {
    let u = s.user("me").await;
    let c = s.user("carol").await;
    let want = json!({"code": 1000004, "msg": "入口节点已存在", "message": "入口节点已存在", "ttl": 1, "data": null});
    assert_eq!(s.detail(&u, c.mid).await, want);
    assert_eq!(s.detail(&u, 999_999_999).await, want);
    assert_eq!(s.detail(&u, UP_HELPER).await, want);
    assert_eq!(
        s.get(
            &u,
            SESSION_DETAIL,
            &[
                ("talker_id", "221082140".into()),
                ("session_type", "2".into())
            ]
        )
        .await,
        want
    );
    // Settings alone don't make a session.
    assert_empty_ok(&set_top(s, &u, c.mid, 0).await);
    set_dnd(s, &u, "dnd_uid", c.mid, 1).await;
    assert_empty_ok(
        &s.post(
            &u,
            SET_PUSH_SS,
            &[("talker_uid", st(c.mid)), ("setting", "1".into())],
        )
        .await,
    );
    assert_eq!(s.detail(&u, c.mid).await, want);
    assert_eq!(list(s, &u, 1, &[]).await["session_list"], Value::Null);
    assert_eq!(new_list(s, &u, &[]).await["session_list"], Value::Null);
    // ... but they apply once it exists.
    say(s, &c, &u, "hi").await;
    let d = detail_ok(s, &u, c.mid).await;
    assert!(d["top_ts"].as_i64().unwrap() > 0, "{d}");
    assert_eq!(d["is_dnd"], 1);
    assert_eq!(d["unread_count"], 1);
    assert_eq!(s.unread(&u).await, unread_json(0, 0), "DND");
    // The sender has it now too, with nothing of the receiver's settings.
    let d = detail_ok(s, &c, u.mid).await;
    assert_eq!(d["top_ts"], 0);
    assert_eq!(d["is_dnd"], 0);
}
scenario!(session_detail_never_chatted_is_1000004);

async fn last_msg_gets_new_emoji_names_for_web(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    // bob follows alice: her side gets no tip, so both last_msgs are the text.
    s.follow(&b, &a, true).await;
    say(s, &a, &b, "催更[doge]").await;
    let old = "{\"content\":\"催更[doge]\"}";
    let new = "{\"content\":\"催更[tv_doge]\"}";
    let web = [("mobi_app", "web".to_string())];
    let detail = |viewer: &User, talker: u64, web: bool| {
        let mut p = vec![("talker_id", st(talker)), ("session_type", "1".to_string())];
        if web {
            p.push(("mobi_app", "web".to_string()));
        }
        let viewer = viewer.clone();
        async move {
            let v = s.get(&viewer, SESSION_DETAIL, &p).await;
            ok(&v).clone()
        }
    };
    for (viewer, talker) in [(&a, b.mid), (&b, a.mid)] {
        assert_eq!(
            detail(viewer, talker, false).await["last_msg"]["content"],
            old
        );
        assert_eq!(
            detail(viewer, talker, true).await["last_msg"]["content"],
            new
        );
        let mut p = vec![("session_type", "1".to_string())];
        assert_eq!(
            s.sessions(viewer, &p).await["session_list"][0]["last_msg"]["content"],
            old
        );
        p.extend(web.iter().cloned());
        assert_eq!(
            s.sessions(viewer, &p).await["session_list"][0]["last_msg"]["content"],
            new
        );
        assert_eq!(
            new_list(s, viewer, &[]).await["session_list"][0]["last_msg"]["content"],
            old
        );
        assert_eq!(
            new_list(s, viewer, &web).await["session_list"][0]["last_msg"]["content"],
            new
        );
    }
}
scenario!(last_msg_gets_new_emoji_names_for_web);

async fn ids_up_to_u64_max_are_accepted(s: &Server) {
    let u = s.user("me").await;
    let max = u64::MAX.to_string();
    assert_err(&s.detail(&u, u64::MAX).await, 1000004, "入口节点已存在");
    assert_empty_ok(&ack(s, &u, u64::MAX, Some(&max)).await);
    assert_empty_ok(&remove(s, &u, u64::MAX).await);
    let v = s
        .get(&u, GET_SESSION_SS, &[("talker_uid", max.clone())])
        .await;
    assert_eq!(
        ok(&v),
        &json!({"follow_status": 0, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );
    set_dnd(s, &u, "dnd_uid", u64::MAX, 1).await;
    let v = s
        .get(
            &u,
            GET_MSG_DND,
            &[
                ("uids_str", format!("{max},1")),
                ("group_ids_str", max.clone()),
            ],
        )
        .await;
    assert_eq!(
        ok(&v),
        &json!({"uid_settings": [{"id": u64::MAX, "setting": 1}, {"id": 1, "setting": 0}],
                "group_settings": [{"id": u64::MAX, "setting": 0}]})
    );
    let d = new_list(s, &u, &[("begin_ts", max.clone())]).await;
    assert_eq!(d["session_list"], Value::Null);
    let d = list(
        s,
        &u,
        1,
        &[("end_ts", max.clone()), ("begin_ts", max.clone())],
    )
    .await;
    assert_eq!(d["session_list"], Value::Null);
    // One past u64 is malformed.
    let over = "18446744073709551616".to_string();
    let v = s
        .get(
            &u,
            SESSION_DETAIL,
            &[("talker_id", over.clone()), ("session_type", "1".into())],
        )
        .await;
    assert_err(&v, -400, "请求错误");
    let v = s.get(&u, GET_SESSION_SS, &[("talker_uid", over)]).await;
    assert_err(&v, -400, "请求错误");
}
scenario!(ids_up_to_u64_max_are_accepted);

// ---- link_setting ----

async fn get_session_ss_reports_relations_and_push_setting(s: &Server) {
    let u = s.user("me").await;
    let t = s.user("them").await;
    let ss = |v: Value| ok(&v).clone();
    let get = || {
        let p = vec![("talker_uid", st(t.mid))];
        let u = &u;
        async move { s.get(u, GET_SESSION_SS, &p).await }
    };
    let full = get().await;
    assert_eq!(
        full,
        json!({"code": 0, "msg": "0", "message": "0", "ttl": 1,
               "data": {"follow_status": 0, "special": 0, "push_setting": 0, "show_push_setting": 1}})
    );
    assert_eq!(
        keys(&full["data"]),
        keys(&upstream("response-get_session_ss.json")["data"])
    );
    // Being followed alone is still 0.
    s.follow(&t, &u, true).await;
    assert_eq!(ss(get().await)["follow_status"], 0);
    s.follow(&t, &u, false).await;
    s.follow(&u, &t, true).await;
    assert_eq!(
        ss(get().await),
        json!({"follow_status": 2, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );
    s.follow(&t, &u, true).await;
    assert_eq!(
        ss(get().await),
        json!({"follow_status": 6, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );
    relation(s, &u, &t, json!({"special": true, "follow": true})).await;
    assert_eq!(
        ss(get().await),
        json!({"follow_status": 6, "special": 1, "push_setting": 0, "show_push_setting": 1})
    );
    // The talker's view of me is its own.
    assert_eq!(
        ss(s.get(&t, GET_SESSION_SS, &[("talker_uid", st(u.mid))])
            .await),
        json!({"follow_status": 6, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );

    // Push setting.
    let v = s
        .post(
            &u,
            SET_PUSH_SS,
            &[("talker_uid", st(t.mid)), ("setting", "1".into())],
        )
        .await;
    assert_empty_ok(&v);
    assert_eq!(
        ss(get().await),
        json!({"follow_status": 6, "special": 1, "push_setting": 1, "show_push_setting": 1})
    );
    assert_eq!(
        ss(s.get(&t, GET_SESSION_SS, &[("talker_uid", st(u.mid))])
            .await)["push_setting"],
        0
    );
    assert_empty_ok(
        &s.post(
            &u,
            SET_PUSH_SS,
            &[("talker_uid", st(t.mid)), ("setting", "0".into())],
        )
        .await,
    );
    assert_eq!(ss(get().await)["push_setting"], 0);
    // It survives a conversation starting, and doesn't disturb it.
    assert_empty_ok(
        &s.post(
            &u,
            SET_PUSH_SS,
            &[("talker_uid", st(t.mid)), ("setting", "1".into())],
        )
        .await,
    );
    say(s, &t, &u, "hi").await;
    assert_eq!(ss(get().await)["push_setting"], 1);
    assert_eq!(detail_ok(s, &u, t.mid).await["unread_count"], 1);

    // Blocked.
    let x = s.user("blocked").await;
    relation(s, &u, &x, json!({"block": true})).await;
    assert_eq!(
        ss(s.get(&u, GET_SESSION_SS, &[("talker_uid", st(x.mid))])
            .await),
        json!({"follow_status": 128, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );
    relation(s, &u, &x, json!({"block": false})).await;
    assert_eq!(
        ss(s.get(&u, GET_SESSION_SS, &[("talker_uid", st(x.mid))])
            .await)["follow_status"],
        0
    );
}
scenario!(get_session_ss_reports_relations_and_push_setting);

async fn msg_dnd_settings_round_trip(s: &Server) {
    let u = &s.user("me").await;
    let t1 = s.user("t1").await;
    let t2 = s.user("t2").await;
    say(s, &t1, u, "hi").await;
    let gid: u64 = 221082140;

    let get = |params: Vec<(&'static str, String)>| async move {
        let v = s.get(u, GET_MSG_DND, &params).await;
        ok(&v).clone()
    };
    let both = format!("{},{}", t1.mid, t2.mid);
    assert_eq!(
        get(vec![("own_uid", st(u.mid)), ("uids_str", both.clone())]).await,
        json!({"uid_settings": [{"id": t1.mid, "setting": 0}, {"id": t2.mid, "setting": 0}], "group_settings": []})
    );

    set_dnd(s, u, "dnd_uid", t1.mid, 1).await;
    let want = json!({"uid_settings": [{"id": t1.mid, "setting": 1}, {"id": t2.mid, "setting": 0}], "group_settings": []});
    assert_eq!(
        get(vec![("own_uid", st(u.mid)), ("uids_str", both.clone())]).await,
        want
    );
    assert_eq!(get(vec![("uids", both.clone())]).await, want);
    assert_eq!(detail_ok(s, u, t1.mid).await["is_dnd"], 1);
    assert_eq!(list(s, u, 1, &[]).await["session_list"][0]["is_dnd"], 1);
    // Only the setter's view.
    assert_eq!(detail_ok(s, &t1, u.mid).await["is_dnd"], 0);
    let v = s.get(&t1, GET_MSG_DND, &[("uids_str", st(u.mid))]).await;
    assert_eq!(ok(&v)["uid_settings"], json!([{"id": u.mid, "setting": 0}]));

    // Groups.
    set_dnd(s, u, "dnd_group_id", gid, 1).await;
    let gl = format!("{gid},5");
    let want = json!({
        "uid_settings": [{"id": t1.mid, "setting": 1}],
        "group_settings": [{"id": gid, "setting": 1}, {"id": 5, "setting": 0}],
    });
    assert_eq!(
        get(vec![
            ("uids_str", st(t1.mid)),
            ("group_ids_str", gl.clone())
        ])
        .await,
        want
    );
    assert_eq!(
        get(vec![("uids", st(t1.mid)), ("group_ids", gl.clone())]).await,
        want
    );
    // A group id is not a user id.
    assert_eq!(
        get(vec![("uids_str", st(gid))]).await,
        json!({"uid_settings": [{"id": gid, "setting": 0}], "group_settings": []})
    );
    assert_eq!(
        get(vec![]).await,
        json!({"uid_settings": [], "group_settings": []})
    );

    // Turning it off.
    set_dnd(s, u, "dnd_uid", t1.mid, 0).await;
    set_dnd(s, u, "dnd_group_id", gid, 0).await;
    assert_eq!(
        get(vec![("uids_str", both.clone()), ("group_ids_str", st(gid))]).await,
        json!({"uid_settings": [{"id": t1.mid, "setting": 0}, {"id": t2.mid, "setting": 0}],
               "group_settings": [{"id": gid, "setting": 0}]})
    );
    assert_eq!(detail_ok(s, u, t1.mid).await["is_dnd"], 0);
}
scenario!(msg_dnd_settings_round_trip);

// ---- bad input ----

async fn bad_session_and_enum_params(s: &Server) {
    let u = &s.user("me").await;
    let t = s.user("t").await;
    say(s, &t, u, "hi").await;
    let bad = "请求错误";
    let inv = "非法参数";

    // get_sessions / new_sessions.
    assert_err(&s.get(u, GET_SESSIONS, &[]).await, -400, bad);
    assert_err(
        &s.get(u, GET_SESSIONS, &[("session_type", "".into())]).await,
        -400,
        bad,
    );
    assert_err(
        &s.get(u, GET_SESSIONS, &[("session_type", "x".into())])
            .await,
        -400,
        bad,
    );
    for t in ["0", "6", "10", "300"] {
        assert_err(
            &s.get(u, GET_SESSIONS, &[("session_type", t.into())]).await,
            2,
            inv,
        );
    }
    for p in [
        ("size", "-3"),
        ("size", "abc"),
        ("begin_ts", "-1"),
        ("end_ts", "x"),
    ] {
        let v = s
            .get(
                u,
                GET_SESSIONS,
                &[("session_type", "1".into()), (p.0, p.1.into())],
            )
            .await;
        assert_err(&v, -400, bad);
        let v = s.get(u, NEW_SESSIONS, &[(p.0, p.1.into())]).await;
        if p.0 != "end_ts" {
            assert_err(&v, -400, bad);
        }
    }

    // session_detail.
    let detail = |talker: &str, session_type: &str| {
        let p = vec![
            ("talker_id", talker.to_string()),
            ("session_type", session_type.to_string()),
        ];
        async move { s.get(u, SESSION_DETAIL, &p).await }
    };
    assert_err(&detail("abc", "1").await, -400, bad);
    assert_err(&detail("", "1").await, -400, bad);
    assert_err(&detail("-5", "1").await, -400, bad);
    assert_err(&detail(&st(t.mid), "").await, -400, bad);
    assert_err(
        &s.get(u, SESSION_DETAIL, &[("talker_id", st(t.mid))]).await,
        -400,
        bad,
    );
    assert_err(&detail(&st(t.mid), "3").await, 2, inv);

    // single_unread.
    assert_err(
        &s.get(u, SINGLE_UNREAD, &[("unread_type", "9".into())])
            .await,
        2,
        inv,
    );
    assert_err(
        &s.get(u, SINGLE_UNREAD, &[("unread_type", "-1".into())])
            .await,
        2,
        inv,
    );
    assert_err(
        &s.get(u, SINGLE_UNREAD, &[("unread_type", "x".into())])
            .await,
        -400,
        bad,
    );

    // update_ack.
    let up = |p: Vec<(&'static str, String)>| async move { s.post(u, UPDATE_ACK, &p).await };
    assert_err(
        &up(vec![
            ("talker_id", "abc".into()),
            ("session_type", "1".into()),
        ])
        .await,
        -400,
        bad,
    );
    assert_err(&up(vec![("session_type", "1".into())]).await, -400, bad);
    assert_err(&up(vec![("talker_id", st(t.mid))]).await, -400, bad);
    assert_err(
        &up(vec![
            ("talker_id", st(t.mid)),
            ("session_type", "1".into()),
            ("ack_seqno", "-1".into()),
        ])
        .await,
        -400,
        bad,
    );
    assert_err(
        &up(vec![
            ("talker_id", st(t.mid)),
            ("session_type", "1".into()),
            ("ack_seqno", "1.5".into()),
        ])
        .await,
        -400,
        bad,
    );
    assert_err(
        &up(vec![("talker_id", st(t.mid)), ("session_type", "7".into())]).await,
        2,
        inv,
    );
    // Nothing was read by the failures.
    assert_eq!(detail_ok(s, u, t.mid).await["unread_count"], 1);

    // remove_session.
    let rm = |p: Vec<(&'static str, String)>| async move { s.post(u, REMOVE_SESSION, &p).await };
    assert_err(
        &rm(vec![
            ("talker_id", "abc".into()),
            ("session_type", "1".into()),
        ])
        .await,
        -400,
        bad,
    );
    assert_err(&rm(vec![("talker_id", st(t.mid))]).await, -400, bad);
    assert_err(
        &rm(vec![("talker_id", st(t.mid)), ("session_type", "4".into())]).await,
        2,
        inv,
    );
    assert_eq!(talker_ids(&list(s, u, 1, &[]).await), vec![t.mid]);

    // set_top.
    let top = |p: Vec<(&'static str, String)>| async move { s.post(u, SET_TOP, &p).await };
    let base = || vec![("talker_id", st(t.mid)), ("session_type", "1".to_string())];
    for op in ["5", "2", "-1", "256"] {
        let mut p = base();
        p.push(("op_type", op.into()));
        assert_err(&top(p).await, 2, inv);
    }
    assert_err(&top(base()).await, -400, bad);
    let mut p = base();
    p.push(("op_type", "pin".into()));
    assert_err(&top(p).await, -400, bad);
    assert_err(
        &top(vec![
            ("talker_id", "abc".into()),
            ("session_type", "1".into()),
            ("op_type", "0".into()),
        ])
        .await,
        -400,
        bad,
    );
    assert_err(
        &top(vec![("talker_id", st(t.mid)), ("op_type", "0".into())]).await,
        -400,
        bad,
    );
    assert_eq!(detail_ok(s, u, t.mid).await["top_ts"], 0);

    // set_msg_dnd / get_msg_dnd.
    let dnd = |p: Vec<(&'static str, String)>| async move { s.post(u, SET_MSG_DND, &p).await };
    assert_err(
        &dnd(vec![("dnd_uid", st(t.mid)), ("setting", "2".into())]).await,
        2,
        inv,
    );
    assert_err(
        &dnd(vec![("dnd_uid", st(t.mid)), ("setting", "-1".into())]).await,
        2,
        inv,
    );
    assert_err(&dnd(vec![("dnd_uid", st(t.mid))]).await, -400, bad);
    assert_err(&dnd(vec![("setting", "1".into())]).await, -400, bad);
    assert_err(
        &dnd(vec![("dnd_uid", "abc".into()), ("setting", "1".into())]).await,
        -400,
        bad,
    );
    assert_eq!(detail_ok(s, u, t.mid).await["is_dnd"], 0);
    assert_err(
        &s.get(u, GET_MSG_DND, &[("uids_str", "1,abc".into())]).await,
        -400,
        bad,
    );

    // set_push_ss / get_session_ss.
    let push = |p: Vec<(&'static str, String)>| async move { s.post(u, SET_PUSH_SS, &p).await };
    assert_err(
        &push(vec![("talker_uid", st(t.mid)), ("setting", "2".into())]).await,
        2,
        inv,
    );
    assert_err(
        &push(vec![("talker_uid", "abc".into()), ("setting", "1".into())]).await,
        -400,
        bad,
    );
    assert_err(&push(vec![("talker_uid", st(t.mid))]).await, -400, bad);
    assert_err(&push(vec![("setting", "1".into())]).await, -400, bad);
    assert_err(
        &s.get(u, GET_SESSION_SS, &[("talker_uid", "abc".into())])
            .await,
        -400,
        bad,
    );
    assert_err(&s.get(u, GET_SESSION_SS, &[]).await, -400, bad);
    let v = s.get(u, GET_SESSION_SS, &[("talker_uid", st(t.mid))]).await;
    assert_eq!(ok(&v)["push_setting"], 0);
}
scenario!(bad_session_and_enum_params);

fn post_endpoints(talker: u64) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let t = st(talker);
    vec![
        (
            UPDATE_ACK,
            vec![("talker_id", t.clone()), ("session_type", "1".into())],
        ),
        (
            REMOVE_SESSION,
            vec![("talker_id", t.clone()), ("session_type", "1".into())],
        ),
        (
            SET_TOP,
            vec![
                ("talker_id", t.clone()),
                ("session_type", "1".into()),
                ("op_type", "0".into()),
            ],
        ),
        (
            SET_MSG_DND,
            vec![("dnd_uid", t.clone()), ("setting", "1".into())],
        ),
        (
            SET_PUSH_SS,
            vec![("talker_uid", t), ("setting", "1".into())],
        ),
    ]
}

async fn bad_posts_without_csrf_are_rejected(s: &Server) {
    let u = s.user("me").await;
    let t = s.user("t").await;
    say(s, &t, &u, "hi").await;
    let other = s.user("other").await;
    for (path, form) in post_endpoints(t.mid) {
        assert_err(&s.post_raw(&u, path, &form).await, -111, "csrf 校验失败");
        let mut wrong = form.clone();
        wrong.push(("csrf", other.bili_jct.clone()));
        assert_err(&s.post_raw(&u, path, &wrong).await, -111, "csrf 校验失败");
        let mut empty = form.clone();
        empty.push(("csrf", String::new()));
        assert_err(&s.post_raw(&u, path, &empty).await, -111, "csrf 校验失败");
    }
    // Nothing changed.
    let d = detail_ok(s, &u, t.mid).await;
    assert_eq!(
        (
            d["unread_count"].clone(),
            d["top_ts"].clone(),
            d["is_dnd"].clone()
        ),
        (json!(1), json!(0), json!(0))
    );
    assert_eq!(talker_ids(&list(s, &u, 1, &[]).await), vec![t.mid]);
    let v = s
        .get(&u, GET_SESSION_SS, &[("talker_uid", st(t.mid))])
        .await;
    assert_eq!(ok(&v)["push_setting"], 0);
    // csrf_token is accepted in place of csrf, in the body or the query.
    for (path, form) in post_endpoints(t.mid) {
        if path == REMOVE_SESSION {
            continue;
        }
        let mut with = form.clone();
        with.push(("csrf_token", u.bili_jct.clone()));
        assert_empty_ok(&s.post_raw(&u, path, &with).await);
    }
    let resp = s
        .http
        .post(s.url(&format!("{REMOVE_SESSION}?csrf={}", u.bili_jct)))
        .header("Cookie", u.cookie())
        .form(&[("talker_id", st(t.mid)), ("session_type", "1".into())])
        .send()
        .await
        .expect("request");
    assert_empty_ok(&resp.json::<Value>().await.expect("JSON"));
    let d = detail_ok(s, &u, t.mid).await;
    assert_eq!(d["unread_count"], 0);
    assert!(d["top_ts"].as_i64().unwrap() > 0);
    assert_eq!(d["is_dnd"], 1);
    assert_eq!(list(s, &u, 1, &[]).await["session_list"], Value::Null);
}
scenario!(bad_posts_without_csrf_are_rejected);

async fn bad_requests_without_login_are_rejected(s: &Server) {
    let u = s.user("me").await;
    let t = s.user("t").await;
    say(s, &t, &u, "hi").await;
    let gets: Vec<(&str, Vec<(&str, String)>)> = vec![
        (SINGLE_UNREAD, vec![]),
        (MY_GROUP_UNREAD, vec![]),
        (GET_SESSIONS, vec![("session_type", "1".into())]),
        (NEW_SESSIONS, vec![]),
        (
            SESSION_DETAIL,
            vec![("talker_id", st(t.mid)), ("session_type", "1".into())],
        ),
        (GET_MSG_DND, vec![("uids_str", st(t.mid))]),
        (GET_SESSION_SS, vec![("talker_uid", st(t.mid))]),
    ];
    let cookies = [
        None,
        Some("SESSDATA=not-a-login".to_string()),
        Some(format!(
            "SESSDATA=; bili_jct={}; DedeUserID={}",
            u.bili_jct, u.mid
        )),
        Some(format!("bili_jct={}; DedeUserID={}", u.bili_jct, u.mid)),
    ];
    for cookie in &cookies {
        for (path, params) in &gets {
            let mut rb = s.http.get(s.url(path)).query(params);
            if let Some(c) = cookie {
                rb = rb.header("Cookie", c);
            }
            let resp = rb.send().await.expect("request");
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            assert_err(
                &resp.json::<Value>().await.expect("JSON"),
                -101,
                "账号未登录",
            );
        }
        for (path, form) in post_endpoints(t.mid) {
            let mut form = form.clone();
            form.push(("csrf", u.bili_jct.clone()));
            let mut rb = s.http.post(s.url(path)).form(&form);
            if let Some(c) = cookie {
                rb = rb.header("Cookie", c);
            }
            let resp = rb.send().await.expect("request");
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            assert_err(
                &resp.json::<Value>().await.expect("JSON"),
                -101,
                "账号未登录",
            );
        }
    }
    // A revoked login is logged out too.
    let (code, v) = s
        .admin(Method::DELETE, &format!("/users/{}/logins", u.mid), None)
        .await;
    assert_eq!(code, 200, "{v}");
    assert_err(&s.get(&u, SINGLE_UNREAD, &[]).await, -101, "账号未登录");
    assert_err(
        &s.post(&u, UPDATE_ACK, &post_endpoints(t.mid)[0].1).await,
        -101,
        "账号未登录",
    );
    // Nothing changed for the talker's session on my side... checked through a fresh login.
    let (code, v) = s
        .admin(Method::POST, &format!("/users/{}/logins", u.mid), None)
        .await;
    assert_eq!(code, 200, "{v}");
    let fresh = User {
        mid: u.mid,
        name: u.name.clone(),
        sessdata: v["SESSDATA"].as_str().unwrap().to_string(),
        bili_jct: v["bili_jct"].as_str().unwrap().to_string(),
    };
    let d = detail_ok(s, &fresh, t.mid).await;
    assert_eq!(
        (
            d["unread_count"].clone(),
            d["top_ts"].clone(),
            d["is_dnd"].clone()
        ),
        (json!(1), json!(0), json!(0))
    );
}
scenario!(bad_requests_without_login_are_rejected);
