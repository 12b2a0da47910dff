//! Scenarios: send_msg (SPEC §4.4 checks 1–5, answers, side effects).

use serde_json::{json, Value};

use crate::*;

async fn text_send_answer_and_both_views(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let v = s
        .send(
            &a,
            b.mid,
            1,
            &json!({"content": "up主你好，\n催更[doge]"}).to_string(),
        )
        .await;
    let d = ok(&v);
    let key = d["msg_key"].as_u64().unwrap();
    assert!(key > (1u64 << 53), "msg_key is a large snowflake: {key}");
    assert_eq!(
        d["msg_content"],
        "{\"content\":\"up主你好，\\n催更[doge]\"}"
    );
    assert_eq!(d["key_hit_infos"], json!({}));
    // new_face_version absent: the old name resolves to [tv_doge].
    assert_eq!(
        d["e_infos"],
        json!([{"text": "[doge]", "url": "http://i0.hdslb.com/bfs/emote/6ea59c827c414b4a2955fe79e0f6fd3dcd515e24.png", "size": 1}])
    );

    // bob doesn't follow alice: her first message to him also stores the one-message tip
    // (msg_type 18, next seqno), which only she sees.
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let page = s.fetch(viewer, talker, &[("size", "20".into())]).await;
        let d = ok(&page);
        let msgs = d["messages"].as_array().unwrap();
        let m = if viewer.mid == a.mid {
            assert_eq!(msgs.len(), 2, "{page}");
            let tip = &msgs[0];
            assert_eq!(tip["msg_type"], 18);
            assert_eq!(tip["msg_source"], 18);
            assert_eq!(tip["msg_seqno"], 2);
            assert_eq!(tip["sender_uid"], a.mid);
            assert_eq!(tip["receiver_id"], b.mid);
            assert_eq!(tip["receiver_type"], 1);
            assert_eq!(tip["msg_status"], 0);
            assert_eq!(tip["content"], ONE_MESSAGE_TIP_CONTENT);
            assert_ne!(tip["msg_key"].as_u64(), Some(key));
            assert_eq!(d["min_seqno"], 1);
            assert_eq!(d["max_seqno"], 2);
            &msgs[1]
        } else {
            assert_eq!(msgs.len(), 1, "{page}");
            assert_eq!(d["min_seqno"], 1);
            assert_eq!(d["max_seqno"], 1);
            &msgs[0]
        };
        assert_eq!(m["msg_key"].as_u64(), Some(key));
        assert_eq!(m["msg_seqno"], 1);
        assert_eq!(m["sender_uid"], a.mid);
        assert_eq!(m["receiver_id"], b.mid);
        assert_eq!(m["receiver_type"], 1);
        assert_eq!(m["msg_type"], 1);
        assert_eq!(m["msg_status"], 0);
        assert_eq!(m["msg_source"], 7);
        assert_eq!(m["notify_code"], "");
        assert_eq!(m["at_uids"], json!(null));
        assert_eq!(m["new_face_version"], 0);
        assert_eq!(d["has_more"], 0);
    }
    // The sender's session is read, past the tip; the receiver has one unread and never sees
    // the tip, though the conversation's max_seqno counts it.
    let da = s.detail(&a, b.mid).await;
    assert_eq!(ok(&da)["unread_count"], 0);
    assert_eq!(ok(&da)["ack_seqno"], 2);
    assert_eq!(ok(&da)["max_seqno"], 2);
    assert_eq!(ok(&da)["last_msg"]["msg_type"], 18);
    let db = s.detail(&b, a.mid).await;
    assert_eq!(ok(&db)["unread_count"], 1);
    assert_eq!(ok(&db)["ack_seqno"], 0);
    assert_eq!(ok(&db)["max_seqno"], 2);
    assert_eq!(ok(&db)["last_msg"]["msg_key"].as_u64(), Some(key));
    assert_eq!(s.unread(&b).await["unfollow_unread"], 1);
    // The tip is not unread for its owner either.
    let ua = s.unread(&a).await;
    assert_eq!(ua["unfollow_unread"], 0);
    assert_eq!(ua["follow_unread"], 0);
}
scenario!(text_send_answer_and_both_views);

async fn payment_keyword_hits_rule_2(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let v = s
        .send(&a, b.mid, 1, &json!({"content": "支付宝"}).to_string())
        .await;
    let d = ok(&v);
    assert_eq!(d["msg_content"], "{\"content\":\"支付宝\"}");
    assert_eq!(d["key_hit_infos"]["rule_id"], 2);
    assert_eq!(
        d["key_hit_infos"]["toast"],
        "【温馨提示】为保障消费者权益，根据平台规则，如创作者在与消费者沟通中进行发布要求非法转账、欺诈转账等违规行为，平台有权对此进行处罚，感谢您的理解。"
    );
    assert_eq!(d["key_hit_infos"]["high_text"], json!([{}]));
    assert!(d.get("e_infos").is_none(), "{d}");
}
scenario!(payment_keyword_hits_rule_2);

/// The content of the type-18 tip a sender gets under a first message to someone who doesn't
/// follow them.
pub(crate) const ONE_MESSAGE_TIP_CONTENT: &str = r##"{"content":"[{\"text\":\"对方主动回复或关注你前，最多发送1条消息\",\"color_day\":\"#9499A0\",\"color_nig\":\"#9499A0\"}]"}"##;

// ---- helpers shared by the send scenarios (and the `send_` ones of bad_input.rs) ----

pub(crate) type Form = Vec<(&'static str, String)>;

/// A stranger's mid: no user has it.
pub(crate) const NOBODY: u64 = 987_654_321_987;

pub(crate) fn text(t: &str) -> String {
    json!({ "content": t }).to_string()
}

/// `form` with `key` set to `value` (replaced, or added when absent).
pub(crate) fn with(mut form: Form, key: &'static str, value: impl Into<String>) -> Form {
    let value = value.into();
    match form.iter_mut().find(|(k, _)| *k == key) {
        Some(p) => p.1 = value,
        None => form.push((key, value)),
    }
    form
}

/// `form` without `key`.
pub(crate) fn without(form: Form, key: &str) -> Form {
    form.into_iter().filter(|(k, _)| *k != key).collect()
}

/// A send form from `from` (with its csrf added).
pub(crate) fn form(from: &User, to: u64, msg_type: u32, content: &str) -> Form {
    with(
        Server::send_form(from, to, msg_type, content),
        "csrf",
        from.bili_jct.clone(),
    )
}

/// Posts `form` exactly as given to send_msg as `from`.
pub(crate) async fn send_raw(s: &Server, from: &User, form: &Form) -> Value {
    s.post_raw(from, SEND, form).await
}

/// Both follow each other (so no relation rule can get in the way of many sends).
pub(crate) async fn befriend(s: &Server, a: &User, b: &User) {
    s.follow(a, b, true).await;
    s.follow(b, a, true).await;
}

pub(crate) async fn set_clock(s: &Server, ms: i64) {
    let (st, v) = s
        .admin(
            reqwest::Method::POST,
            "/clock",
            Some(json!({ "set_ms": ms })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

/// The whole conversation as `viewer` sees it (newest first).
pub(crate) async fn history(s: &Server, viewer: &User, talker: &User) -> Vec<Value> {
    let v = s.fetch(viewer, talker, &[("size", "200".into())]).await;
    let d = ok(&v);
    match d["messages"].as_array() {
        Some(a) => a.clone(),
        None => {
            assert_eq!(d["messages"], Value::Null, "{v}");
            assert_eq!(d["min_seqno"].as_u64(), Some(u64::MAX), "{v}");
            assert_eq!(d["max_seqno"], 0, "{v}");
            Vec::new()
        }
    }
}

pub(crate) fn by_key(messages: &[Value], key: u64) -> &Value {
    messages
        .iter()
        .find(|m| m["msg_key"].as_u64() == Some(key))
        .unwrap_or_else(|| panic!("msg_key {key} not in {messages:?}"))
}

/// Neither side has a conversation: no message, no session.
pub(crate) async fn assert_nothing_stored(s: &Server, a: &User, b: &User) {
    for (x, y) in [(a, b), (b, a)] {
        assert!(history(s, x, y).await.is_empty());
        assert_err(&s.detail(x, y.mid).await, 1000004, "入口节点已存在");
    }
}

/// A send answer that is a success with nothing but `msg_key` in `data` (image, recall).
fn only_key(v: &Value) -> u64 {
    let d = ok(v);
    assert_eq!(d.as_object().map(|o| o.len()), Some(1), "{v}");
    d["msg_key"].as_u64().expect("msg_key")
}

/// A fresh login of `u` (the admin API's POST /users/{mid}/logins).
pub(crate) async fn relogin(s: &Server, u: &User) -> User {
    let (st, v) = s
        .admin(
            reqwest::Method::POST,
            &format!("/users/{}/logins", u.mid),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["mid"].as_u64(), Some(u.mid), "{v}");
    User {
        sessdata: v["SESSDATA"].as_str().expect("SESSDATA").into(),
        bili_jct: v["bili_jct"].as_str().expect("bili_jct").into(),
        ..u.clone()
    }
}

async fn post_no_cookie(s: &Server, form: &Form) -> Value {
    let resp = s
        .http
        .post(s.url(SEND))
        .form(form)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("JSON answer")
}

// ---- check order ----

async fn send_checks_run_in_spec_order(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let long_text = text(&"a".repeat(1990)); // 2002 bytes
    let long_junk = "x".repeat(2001);

    // 1 before 2: a bad field wins over an unsendable type.
    for f in [
        with(
            form(&a, b.mid, 7, "{}"),
            "msg[sender_uid]",
            b.mid.to_string(),
        ),
        with(form(&a, b.mid, 7, "{}"), "msg[sender_uid]", "abc"),
        with(form(&a, b.mid, 7, "{}"), "msg[receiver_id]", "-1"),
        without(form(&a, b.mid, 7, "{}"), "msg[dev_id]"),
        without(form(&a, a.mid, 7, "{}"), "msg[timestamp]"),
    ] {
        assert_err(&send_raw(s, &a, &f).await, -400, "请求错误");
    }
    // sender ≠ caller is -400 even to oneself.
    let f = with(
        form(&a, a.mid, 1, &text("hi")),
        "msg[sender_uid]",
        b.mid.to_string(),
    );
    assert_err(&send_raw(s, &a, &f).await, -400, "请求错误");

    // 2 before 3: unsendable type to oneself, to nobody, with a bad receiver_type.
    assert_err(
        &s.send(&a, a.mid, 7, "{}").await,
        21035,
        "该类消息暂时无法发送",
    );
    assert_err(
        &s.send(&a, NOBODY, 7, "{}").await,
        21035,
        "该类消息暂时无法发送",
    );
    let f = with(form(&a, b.mid, 7, "{}"), "msg[receiver_type]", "3");
    assert_err(&send_raw(s, &a, &f).await, 21035, "该类消息暂时无法发送");
    // ... and before 4.
    assert_err(
        &s.send(&a, b.mid, 7, &long_junk).await,
        21035,
        "该类消息暂时无法发送",
    );

    // 3 before 4: an unknown receiver or oneself wins over any content problem.
    assert_err(&s.send(&a, NOBODY, 1, &long_text).await, -400, "请求错误");
    assert_err(
        &s.send(&a, a.mid, 1, &long_text).await,
        21026,
        "不能给自己发送消息哦~",
    );
    assert_err(
        &s.send(&a, a.mid, 1, "not json").await,
        21026,
        "不能给自己发送消息哦~",
    );
    let evil = json!({"url": "http://evil.com/a.png"}).to_string();
    assert_err(&s.send(&a, NOBODY, 2, &evil).await, -400, "请求错误");
    assert_err(
        &s.send(&a, a.mid, 2, &evil).await,
        21026,
        "不能给自己发送消息哦~",
    );
    let f = with(form(&a, b.mid, 1, &long_text), "msg[receiver_type]", "3");
    assert_err(&send_raw(s, &a, &f).await, -400, "请求错误");
    // ... and before 5.
    assert_err(
        &s.send(&a, a.mid, 5, "12345").await,
        21026,
        "不能给自己发送消息哦~",
    );
    assert_err(&s.send(&a, NOBODY, 5, "12345").await, -400, "请求错误");

    // 4: length before the shape of the content, for every type.
    assert_err(
        &s.send(&a, b.mid, 1, &long_junk).await,
        21007,
        "消息过长，无法发送",
    );
    let long_evil = json!({"url": format!("http://evil.com/{}.png", "a".repeat(2000))}).to_string();
    assert_err(
        &s.send(&a, b.mid, 2, &long_evil).await,
        21007,
        "消息过长，无法发送",
    );
    assert_err(
        &s.send(&a, b.mid, 5, &"1".repeat(2001)).await,
        21007,
        "消息过长，无法发送",
    );
    // 4 before 5: a malformed recall is -400 before any key lookup.
    assert_err(&s.send(&a, b.mid, 5, "abc").await, -400, "请求错误");

    assert_nothing_stored(s, &a, &b).await;
    assert!(history(s, &a, &a).await.is_empty());
}
scenario!(send_checks_run_in_spec_order);

// ---- -101 / -111 ----

async fn send_without_login_is_101(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let f = form(&a, b.mid, 1, &text("hi"));

    // No cookie at all (and auth comes before csrf and field checks).
    assert_err(&post_no_cookie(s, &f).await, -101, "账号未登录");
    assert_err(&post_no_cookie(s, &vec![]).await, -101, "账号未登录");
    // A cookie header without SESSDATA, or with an empty one.
    for cookie in [
        format!("bili_jct={}; DedeUserID={}", a.bili_jct, a.mid),
        format!("SESSDATA=; bili_jct={}; DedeUserID={}", a.bili_jct, a.mid),
    ] {
        let resp = s
            .http
            .post(s.url(SEND))
            .header("Cookie", cookie)
            .form(&f)
            .send()
            .await
            .unwrap();
        assert_err(&resp.json::<Value>().await.unwrap(), -101, "账号未登录");
    }
    // An unknown SESSDATA, even with the right bili_jct and DedeUserID.
    let forged = User {
        sessdata: "0123456789abcdef0123456789abcdef".into(),
        ..a.clone()
    };
    assert_err(&send_raw(s, &forged, &f).await, -101, "账号未登录");
    assert_err(&send_raw(s, &forged, &vec![]).await, -101, "账号未登录");
    // Another user's SESSDATA with this user's csrf token: the login decides, and its token differs.
    assert_err(
        &send_raw(
            s,
            &User {
                sessdata: b.sessdata.clone(),
                ..a.clone()
            },
            &f,
        )
        .await,
        -111,
        "csrf 校验失败",
    );

    // Revoked logins.
    ok(&send_raw(s, &a, &f).await);
    let (st, v) = s
        .admin(
            reqwest::Method::DELETE,
            &format!("/users/{}/logins", a.mid),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_err(&send_raw(s, &a, &f).await, -101, "账号未登录");
    assert_err(&send_raw(s, &a, &vec![]).await, -101, "账号未登录");
    // A fresh login works again; the revoked one stays dead.
    let a2 = relogin(s, &a).await;
    let v2 = send_raw(s, &a2, &form(&a2, b.mid, 1, &text("again"))).await;
    ok(&v2);
    assert_err(&send_raw(s, &a, &f).await, -101, "账号未登录");
    // Exactly the two accepted sends are stored.
    let h = history(s, &b, &a).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["content"], text("again"));
    assert_eq!(h[1]["content"], text("hi"));
}
scenario!(send_without_login_is_101);

async fn send_with_expired_login_is_101(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    s.advance_clock(179 * 86_400_000).await;
    ok(&s.send(&a, b.mid, 1, &text("day 179")).await);
    s.advance_clock(2 * 86_400_000).await;
    assert_err(
        &s.send(&a, b.mid, 1, &text("day 181")).await,
        -101,
        "账号未登录",
    );
    // A login made now lasts another 180 days.
    let a2 = relogin(s, &a).await;
    ok(&s.send(&a2, b.mid, 1, &text("day 181, new login")).await);
    let h = history(s, &relogin(s, &b).await, &a).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["content"], text("day 181, new login"));
    assert_eq!(h[1]["content"], text("day 179"));
}
scenario!(send_with_expired_login_is_101);

async fn send_csrf_is_checked_before_fields(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let base = Server::send_form(&a, b.mid, 1, &text("hi"));

    // Missing, empty, wrong, another login's token, case-changed.
    let upper = a.bili_jct.to_uppercase();
    for f in [
        base.clone(),
        with(base.clone(), "csrf", ""),
        with(base.clone(), "csrf", "0123456789abcdef0123456789abcdef"),
        with(base.clone(), "csrf", b.bili_jct.clone()),
        with(base.clone(), "csrf_token", b.bili_jct.clone()),
    ] {
        assert_err(&send_raw(s, &a, &f).await, -111, "csrf 校验失败");
    }
    if upper != a.bili_jct {
        assert_err(
            &send_raw(s, &a, &with(base.clone(), "csrf", upper)).await,
            -111,
            "csrf 校验失败",
        );
    }
    // csrf before the field checks.
    assert_err(&send_raw(s, &a, &vec![]).await, -111, "csrf 校验失败");
    assert_err(
        &send_raw(
            s,
            &a,
            &vec![("csrf", "nope".into()), ("msg[msg_type]", "abc".into())],
        )
        .await,
        -111,
        "csrf 校验失败",
    );
    assert_nothing_stored(s, &a, &b).await;

    // csrf_token is accepted in place of csrf (also next to an empty csrf).
    let k1 = ok(&send_raw(s, &a, &with(base.clone(), "csrf_token", a.bili_jct.clone())).await)
        ["msg_key"]
        .as_u64()
        .unwrap();
    let f = with(
        with(base.clone(), "csrf", ""),
        "csrf_token",
        a.bili_jct.clone(),
    );
    let k2 = ok(&send_raw(s, &a, &f).await)["msg_key"].as_u64().unwrap();
    // The token also works when it comes in the query string.
    let resp = s
        .http
        .post(s.url(SEND))
        .header("Cookie", a.cookie())
        .query(&[("csrf", a.bili_jct.clone())])
        .form(&base)
        .send()
        .await
        .unwrap();
    let k3 = ok(&resp.json::<Value>().await.unwrap())["msg_key"]
        .as_u64()
        .unwrap();
    let h = history(s, &b, &a).await;
    let keys: Vec<u64> = h.iter().map(|m| m["msg_key"].as_u64().unwrap()).collect();
    assert_eq!(keys, vec![k3, k2, k1]);
}
scenario!(send_csrf_is_checked_before_fields);

// ---- 21035 / 21026 ----

async fn send_unsendable_types_are_21035(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let share =
        json!({"author": "x", "headline": "", "id": 1, "source": 5, "thumb": "", "title": "t"})
            .to_string();
    let tip =
        json!({"content": "[{\"text\":\"hi\",\"color_day\":\"#000\",\"color_nig\":\"#fff\"}]"})
            .to_string();
    let image = json!({"url": "https://i0.hdslb.com/bfs/emote/a.png"}).to_string();
    for (t, c) in [
        ("0", text("hi")),
        ("3", text("hi")),
        ("4", text("hi")),
        ("6", image.clone()),
        ("7", share),
        ("10", text("hi")),
        ("11", text("hi")),
        ("16", text("hi")),
        ("18", tip),
        ("19", text("hi")),
        ("301", text("hi")),
        ("306", text("hi")),
        ("18446744073709551615", text("hi")),
    ] {
        let v = send_raw(s, &a, &with(form(&a, b.mid, 1, &c), "msg[msg_type]", t)).await;
        assert_err(&v, 21035, "该类消息暂时无法发送");
        assert!(v["data"].is_null(), "{v}");
    }
    assert_nothing_stored(s, &a, &b).await;
}
scenario!(send_unsendable_types_are_21035);

async fn send_to_self_is_21026(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let image = json!({"url": "https://i0.hdslb.com/bfs/emote/a.png"}).to_string();
    for (t, c) in [(1, text("me")), (2, image), (5, "12345".to_string())] {
        let v = s.send(&a, a.mid, t, &c).await;
        assert_err(&v, 21026, "不能给自己发送消息哦~");
    }
    // Also with the id written with blanks and leading zeros.
    let f = with(
        form(&a, a.mid, 1, &text("me")),
        "msg[receiver_id]",
        format!(" 000{} ", a.mid),
    );
    assert_err(&send_raw(s, &a, &f).await, 21026, "不能给自己发送消息哦~");
    assert!(history(s, &a, &a).await.is_empty());
    assert_err(&s.detail(&a, a.mid).await, 1000004, "入口节点已存在");
    // A real message afterwards starts at seqno 1: nothing was allocated. (bob doesn't follow
    // alice, so her one-message tip follows it at seqno 2.)
    let k = s.send_text(&a, &b, "first").await;
    let h = history(s, &a, &b).await;
    assert_eq!(by_key(&h, k)["msg_seqno"], 1);
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["msg_type"], 18);
    assert_eq!(h[0]["msg_seqno"], 2);
    assert_eq!(history(s, &b, &a).await[0]["msg_seqno"], 1);
}
scenario!(send_to_self_is_21026);

// ---- 21007 ----

async fn send_length_limit_is_2000_bytes(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    // `{"content":"` + `"}` is 14 bytes.
    let ascii_2000 = text(&"a".repeat(1986));
    assert_eq!(ascii_2000.len(), 2000);
    let ascii_2001 = text(&"a".repeat(1987));
    assert_eq!(ascii_2001.len(), 2001);
    // Chinese characters are 3 bytes each: 662 of them make exactly 2000.
    let han_2000 = text(&"中".repeat(662));
    assert_eq!(han_2000.len(), 2000);
    let han_2001 = text(&format!("{}a", "中".repeat(662)));
    assert_eq!(han_2001.len(), 2001);
    let han_2003 = text(&"中".repeat(663));
    assert_eq!(
        han_2003.chars().count(),
        677,
        "far fewer than 2000 characters"
    );

    for c in [&ascii_2001, &han_2001, &han_2003] {
        assert_err(&s.send(&a, b.mid, 1, c).await, 21007, "消息过长，无法发送");
    }
    assert_nothing_stored(s, &a, &b).await;

    for c in [&ascii_2000, &han_2000] {
        let v = s.send(&a, b.mid, 1, c).await;
        let d = ok(&v);
        assert_eq!(d["msg_content"].as_str(), Some(c.as_str()));
    }
    let h = history(s, &b, &a).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["content"].as_str(), Some(han_2000.as_str()));
    assert_eq!(h[1]["content"].as_str(), Some(ascii_2000.as_str()));
    // An image content of exactly 2000 bytes is fine too.
    let prefix = "{\"url\":\"https://i0.hdslb.com/bfs/im/";
    let pad = 2000 - prefix.len() - "\"}".len();
    let img = format!("{prefix}{}\"}}", "b".repeat(pad));
    assert_eq!(img.len(), 2000);
    only_key(&s.send(&a, b.mid, 2, &img).await);
    let img_2001 = format!("{prefix}{}\"}}", "b".repeat(pad + 1));
    assert_err(
        &s.send(&a, b.mid, 2, &img_2001).await,
        21007,
        "消息过长，无法发送",
    );
    assert_eq!(history(s, &a, &b).await.len(), 3);
}
scenario!(send_length_limit_is_2000_bytes);

// ---- images, 21037 ----

async fn send_images_from_allowed_hosts_only(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let upstream = "{\"url\":\"https://message.biliimg.com/bfs/im_new/c161fdf51d901c1607a15e30f10116dd425503913.jpg\",\"height\":300,\"width\":300,\"imageType\":\"jpeg\",\"original\":1,\"size\":55.443}";
    let mut sent = Vec::new();
    for c in [
        upstream.to_string(),
        json!({"url": "https://i0.hdslb.com/bfs/im/a.png"}).to_string(),
        json!({"url": "http://i0.hdslb.com/bfs/emote/a.png", "height": 1, "width": 2}).to_string(),
        json!({"url": "https://I2.HDSLB.COM/bfs/a.png"}).to_string(),
        json!({"url": "https://hdslb.com/a.png"}).to_string(),
        json!({"url": "https://album.biliimg.com/bfs/a.webp", "extra": {"kept": true}}).to_string(),
    ] {
        let v = s.send(&a, b.mid, 2, &c).await;
        sent.push((only_key(&v), c));
    }
    for c in [
        json!({"url": "http://evil.com/a.png"}),
        json!({"url": "https://evil.com/bfs/i0.hdslb.com/a.png"}),
        json!({"url": "ftp://i0.hdslb.com/a.png"}),
        json!({"url": "file:///etc/passwd"}),
        json!({"url": "javascript:alert(1)"}),
        json!({"url": "not-a-url"}),
        json!({"url": "i0.hdslb.com/a.png"}),
        json!({"url": "https://evilhdslb.com/a.png"}),
        json!({"url": "https://i0.hdslb.com.evil.net/a.png"}),
        json!({"url": "https://i0.hdslb.com@evil.com/a.png"}),
        json!({"url": "https://biliimg.com.cn/a.png"}),
    ] {
        let v = s.send(&a, b.mid, 2, &c.to_string()).await;
        assert_err(&v, 21037, "图片格式不合法，不要调戏接口啦");
    }
    // Stored byte for byte, as type 2, and seen the same by both sides.
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let h = history(s, viewer, talker).await;
        assert_eq!(h.len(), sent.len());
        for (i, (key, c)) in sent.iter().enumerate() {
            let m = by_key(&h, *key);
            assert_eq!(m["msg_type"], 2);
            assert_eq!(m["content"].as_str(), Some(c.as_str()));
            assert_eq!(m["msg_seqno"], i as u64 + 1);
            assert_eq!(m["msg_status"], 0);
        }
    }
}
scenario!(send_images_from_allowed_hosts_only);

async fn send_image_validates_only_the_url(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    // SPEC §2.2: store content as given, validate only what is listed (the url).
    let mut keys = Vec::new();
    for c in [
        "{\"url\":\"https://i0.hdslb.com/bfs/im/a.png\",\"height\":\"300\",\"width\":null,\"imageType\":1,\"original\":true,\"size\":\"55.4\"}",
        "{\"url\":\"https://i0.hdslb.com/bfs/im/b.png\",\"height\":-1,\"width\":1.5,\"original\":300,\"size\":-2}",
        "{\"size\":1,\"url\":\"https://message.biliimg.com/bfs/im_new/c.jpg\",\"url2\":\"http://evil.com/x.png\"}",
    ] {
        let v = s.send(&a, b.mid, 2, c).await;
        keys.push((only_key(&v), c));
    }
    let h = history(s, &b, &a).await;
    assert_eq!(h.len(), keys.len());
    for (k, c) in keys {
        assert_eq!(by_key(&h, k)["content"].as_str(), Some(c));
    }
}
scenario!(send_image_validates_only_the_url);

// ---- recall ----

async fn send_recall_marks_target_and_stores_type_5(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let k1 = s.send_text(&a, &b, "oops").await;
    let v = s.send(&a, b.mid, 5, &k1.to_string()).await;
    let k2 = only_key(&v);
    assert!(k2 > k1);
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let h = history(s, viewer, talker).await;
        assert_eq!(h.len(), 2);
        let target = by_key(&h, k1);
        assert_eq!(target["msg_status"], 1);
        assert_eq!(target["msg_type"], 1);
        assert_eq!(target["content"], text("oops"));
        assert_eq!(target["msg_seqno"], 1);
        let recall = by_key(&h, k2);
        assert_eq!(recall["msg_type"], 5);
        assert_eq!(recall["content"].as_str(), Some(k1.to_string().as_str()));
        assert_eq!(recall["msg_status"], 0);
        assert_eq!(recall["msg_seqno"], 2);
        assert_eq!(recall["sender_uid"], a.mid);
        assert_eq!(recall["receiver_id"], b.mid);
        assert_eq!(recall["msg_source"], 7);
    }
    // The sender has read it all; the recall counts as unread for the receiver.
    let da = s.detail(&a, b.mid).await;
    assert_eq!(ok(&da)["ack_seqno"], 2);
    assert_eq!(ok(&da)["unread_count"], 0);
    let db = s.detail(&b, a.mid).await;
    assert_eq!(ok(&db)["unread_count"], 2);
    assert_eq!(ok(&db)["last_msg"]["msg_key"].as_u64(), Some(k2));

    // The key as a JSON string, with blanks around, also works; it is stored bare.
    let k3 = s.send_text(&a, &b, "again").await;
    let k4 = only_key(&s.send(&a, b.mid, 5, &format!(" \"{k3}\" ")).await);
    let h = history(s, &b, &a).await;
    assert_eq!(by_key(&h, k3)["msg_status"], 1);
    assert_eq!(
        by_key(&h, k4)["content"].as_str(),
        Some(k3.to_string().as_str())
    );
    assert_eq!(by_key(&h, k4)["msg_type"], 5);
    // An image can be recalled too.
    let img = json!({"url": "https://i0.hdslb.com/bfs/im/a.png"}).to_string();
    let k5 = only_key(&s.send(&a, b.mid, 2, &img).await);
    only_key(&s.send(&a, b.mid, 5, &k5.to_string()).await);
    let h = history(s, &a, &b).await;
    assert_eq!(by_key(&h, k5)["msg_status"], 1);
    assert_eq!(by_key(&h, k5)["content"].as_str(), Some(img.as_str()));
    assert_eq!(h.len(), 6);
    assert_eq!(h[0]["msg_seqno"], 6);
}
scenario!(send_recall_marks_target_and_stores_type_5);

async fn send_recall_twice_is_21042(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let k1 = s.send_text(&a, &b, "oops").await;
    only_key(&s.send(&a, b.mid, 5, &k1.to_string()).await);
    assert_err(
        &s.send(&a, b.mid, 5, &k1.to_string()).await,
        21042,
        "消息已经撤回了哦",
    );
    assert_err(
        &s.send(&a, b.mid, 5, &format!("\"{k1}\"")).await,
        21042,
        "消息已经撤回了哦",
    );
    // "Already recalled" comes before "too old".
    s.advance_clock(300_000).await;
    assert_err(
        &s.send(&a, b.mid, 5, &k1.to_string()).await,
        21042,
        "消息已经撤回了哦",
    );
    assert_eq!(history(s, &a, &b).await.len(), 2);
}
scenario!(send_recall_twice_is_21042);

async fn send_recall_window_is_120_seconds(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let k1 = s.send_text(&a, &b, "one").await;
    s.advance_clock(119_000).await;
    only_key(&s.send(&a, b.mid, 5, &k1.to_string()).await);

    let k2 = s.send_text(&a, &b, "two").await;
    s.advance_clock(121_000).await;
    assert_err(
        &s.send(&a, b.mid, 5, &k2.to_string()).await,
        21041,
        "消息已超期，不能撤回了哦",
    );
    let h = history(s, &b, &a).await;
    assert_eq!(h.len(), 3, "the refused recall stored nothing");
    assert_eq!(by_key(&h, k2)["msg_status"], 0);
    assert_eq!(by_key(&h, k1)["msg_status"], 1);
    // A day later it is still too old.
    s.advance_clock(86_400_000).await;
    assert_err(
        &s.send(&a, b.mid, 5, &k2.to_string()).await,
        21041,
        "消息已超期，不能撤回了哦",
    );
}
scenario!(send_recall_window_is_120_seconds);

async fn send_recall_of_foreign_keys_is_10005(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let c = s.user("carol").await;
    let d = s.user("dave").await;
    let e = s.user("erin").await;
    // No one-message rule or tip in the way (erin stays a stranger: nothing is ever sent to her).
    befriend(s, &a, &b).await;
    befriend(s, &a, &c).await;
    befriend(s, &c, &d).await;
    let ab = s.send_text(&a, &b, "a to b").await;
    let ba = s.send_text(&b, &a, "b to a").await;
    let ac = s.send_text(&a, &c, "a to c").await;
    let cd = s.send_text(&c, &d, "c to d").await;
    let recall_ab = only_key(&s.send(&a, b.mid, 5, &ab.to_string()).await);
    let ab2 = s.send_text(&a, &b, "a to b again").await;

    let cases: Vec<(&User, u64, String)> = vec![
        // Unknown keys.
        (&a, b.mid, "12345".into()),
        (&a, b.mid, (ab2 + 1).to_string()),
        (&a, b.mid, "0".into()),
        (&a, b.mid, i64::MAX.to_string()),
        (&a, b.mid, u64::MAX.to_string()),
        // The caller's own message, but of another conversation.
        (&a, b.mid, ac.to_string()),
        (&a, c.mid, ab2.to_string()),
        // Somebody else's conversation.
        (&a, b.mid, cd.to_string()),
        (&a, c.mid, cd.to_string()),
        // The other side's message.
        (&a, b.mid, ba.to_string()),
        (&b, a.mid, ab2.to_string()),
        // A recall message itself.
        (&a, b.mid, recall_ab.to_string()),
        // A key of a conversation the caller has never had.
        (&a, e.mid, ab2.to_string()),
    ];
    for (who, to, c) in cases {
        assert_err(&s.send(who, to, 5, &c).await, 10005, "msgkey不存在");
    }
    // Nothing changed.
    let h = history(s, &a, &b).await;
    assert_eq!(h.len(), 4);
    assert_eq!(by_key(&h, ba)["msg_status"], 0);
    assert_eq!(by_key(&h, ab2)["msg_status"], 0);
    assert_eq!(history(s, &c, &a).await.len(), 1);
    assert_eq!(history(s, &c, &d).await[0]["msg_status"], 0);
    assert_nothing_stored(s, &a, &e).await;
    // The owner can still recall them.
    only_key(&s.send(&b, a.mid, 5, &ba.to_string()).await);
    only_key(&s.send(&c, d.mid, 5, &cd.to_string()).await);
    only_key(&s.send(&a, c.mid, 5, &ac.to_string()).await);
}
scenario!(send_recall_of_foreign_keys_is_10005);

// ---- msg_source, timestamp, emoji ----

async fn send_msg_source_follows_mobi_app(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let mut expected = Vec::new();
    for (app, source) in [
        (Some("web"), 7),
        (Some("android"), 2),
        (Some("iphone"), 1),
        (Some("ipad"), 1),
        (Some("h5"), 3),
        (Some("pc"), 4),
        (None, 7),
    ] {
        let mut f = form(&a, b.mid, 1, &text(&format!("from {app:?}")));
        if let Some(app) = app {
            f = with(f, "mobi_app", app);
            f = with(f, "build", "7560300");
        }
        let key = ok(&send_raw(s, &a, &f).await)["msg_key"].as_u64().unwrap();
        expected.push((key, source));
    }
    // mobi_app in the query string counts as well.
    let resp = s
        .http
        .post(s.url(SEND))
        .header("Cookie", a.cookie())
        .query(&[("mobi_app", "android"), ("build", "8000200")])
        .form(&form(&a, b.mid, 1, &text("query android")))
        .send()
        .await
        .unwrap();
    let key = ok(&resp.json::<Value>().await.unwrap())["msg_key"]
        .as_u64()
        .unwrap();
    expected.push((key, 2));
    // Recalls and images carry it too.
    let f = with(form(&a, b.mid, 5, &key.to_string()), "mobi_app", "h5");
    expected.push((only_key(&send_raw(s, &a, &f).await), 3));
    let img = json!({"url": "https://i0.hdslb.com/bfs/im/a.png"}).to_string();
    let f = with(form(&a, b.mid, 2, &img), "mobi_app", "pc");
    expected.push((only_key(&send_raw(s, &a, &f).await), 4));

    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let h = history(s, viewer, talker).await;
        assert_eq!(h.len(), expected.len());
        for (key, source) in &expected {
            assert_eq!(by_key(&h, *key)["msg_source"], *source, "{key}");
        }
    }
}
scenario!(send_msg_source_follows_mobi_app);

async fn send_timestamp_is_the_server_clock(s: &Server) {
    // In the future (2033), set before the logins are made so that they are fresh.
    let t0: i64 = 2_000_000_000_000;
    set_clock(s, t0).await;
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    // The client's time, in milliseconds or in seconds, is accepted and ignored.
    let f = with(
        form(&a, b.mid, 1, &text("ms")),
        "msg[timestamp]",
        "1626181379123",
    );
    let k1 = ok(&send_raw(s, &a, &f).await)["msg_key"].as_u64().unwrap();
    let f = with(
        form(&a, b.mid, 1, &text("far future")),
        "msg[timestamp]",
        "4102444800",
    );
    let k2 = ok(&send_raw(s, &a, &f).await)["msg_key"].as_u64().unwrap();
    let f = with(form(&a, b.mid, 1, &text("zero")), "msg[timestamp]", "0");
    let k3 = ok(&send_raw(s, &a, &f).await)["msg_key"].as_u64().unwrap();
    let secs = (t0 / 1000) as u64;
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let h = history(s, viewer, talker).await;
        for k in [k1, k2, k3] {
            let ts = by_key(&h, k)["timestamp"].as_u64().unwrap();
            assert!(
                (secs..=secs + 5).contains(&ts),
                "timestamp {ts} is not the server clock {secs}"
            );
        }
    }
    // msg_key carries the server clock's milliseconds (Snowflake: ms << 22).
    for k in [k1, k2, k3] {
        let ms = (k >> 22) as i64;
        assert!((t0..t0 + 5000).contains(&ms), "msg_key {k} has ms {ms}");
    }
    // The sessions carry it in microseconds.
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let d = s.detail(viewer, talker.mid).await;
        let ts = ok(&d)["session_ts"].as_i64().unwrap();
        assert!(
            (t0 * 1000..(t0 + 5000) * 1000).contains(&ts),
            "session_ts {ts}"
        );
    }
    let ack_ts = ok(&s.detail(&a, b.mid).await)["ack_ts"].as_i64().unwrap();
    assert!(
        (t0 * 1000..(t0 + 5000) * 1000).contains(&ack_ts),
        "ack_ts {ack_ts}"
    );

    // Moving the clock moves the next message's time.
    set_clock(s, t0 + 3_600_000).await;
    let k4 = s.send_text(&b, &a, "an hour later").await;
    let ts = by_key(&history(s, &a, &b).await, k4)["timestamp"]
        .as_u64()
        .unwrap();
    assert!((secs + 3600..=secs + 3605).contains(&ts), "{ts}");
}
scenario!(send_timestamp_is_the_server_clock);

async fn send_new_face_version_selects_emoji(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let small_doge = "http://i0.hdslb.com/bfs/emote/bba7c12aa51fed0199c241465560dfc2714c593e.png";
    let tv_doge = "http://i0.hdslb.com/bfs/emote/6ea59c827c414b4a2955fe79e0f6fd3dcd515e24.png";
    let c = text("催更[doge]");

    let v = send_raw(
        s,
        &a,
        &with(form(&a, b.mid, 1, &c), "msg[new_face_version]", "1"),
    )
    .await;
    let d = ok(&v);
    assert_eq!(
        d["e_infos"],
        json!([{"text": "[doge]", "url": small_doge, "size": 1}])
    );
    assert_eq!(d["msg_content"].as_str(), Some(c.as_str()));
    assert_eq!(d["key_hit_infos"], json!({}));
    let k1 = d["msg_key"].as_u64().unwrap();

    let v = send_raw(
        s,
        &a,
        &with(form(&a, b.mid, 1, &c), "msg[new_face_version]", "0"),
    )
    .await;
    let d = ok(&v);
    assert_eq!(
        d["e_infos"],
        json!([{"text": "[doge]", "url": tv_doge, "size": 1}])
    );
    let k2 = d["msg_key"].as_u64().unwrap();

    // No emoji: no e_infos at all.
    let v = send_raw(
        s,
        &a,
        &with(
            form(&a, b.mid, 1, &text("plain")),
            "msg[new_face_version]",
            "1",
        ),
    )
    .await;
    let d = ok(&v);
    assert!(d.get("e_infos").is_none(), "{v}");
    assert_eq!(d["key_hit_infos"], json!({}));

    let h = history(s, &b, &a).await;
    assert_eq!(by_key(&h, k1)["new_face_version"], 1);
    assert_eq!(by_key(&h, k2)["new_face_version"], 0);
    assert_eq!(by_key(&h, k1)["content"].as_str(), Some(c.as_str()));
}
scenario!(send_new_face_version_selects_emoji);

// ---- request encodings ----

fn multipart(fields: &[(&str, String)]) -> (String, String) {
    let boundary = "----sixinBoundary7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A send with these headers and body; answers the JSON of its 200 answer.
async fn post_send(s: &Server, headers: &[(&str, String)], body: String) -> Value {
    let mut rb = s.http.post(s.url(SEND)).body(body);
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    let resp = rb.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

async fn send_accepts_multipart_query_and_odd_names(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let mut sent = Vec::new();

    // multipart/form-data.
    let (ct, body) = multipart(&form(&a, b.mid, 1, &text("multipart 你好")));
    let v = post_send(s, &[("Cookie", a.cookie()), ("Content-Type", ct)], body).await;
    sent.push((ok(&v)["msg_key"].as_u64().unwrap(), text("multipart 你好")));

    // The media type in another case, and the login cookie quoted, in the second of two
    // `Cookie` headers.
    let (ct, body) = multipart(&form(&a, b.mid, 1, &text("case")));
    let headers = [
        ("Cookie", "theme=dark; buvid3=x".to_string()),
        ("Cookie", format!("SESSDATA=\"{}\"", a.sessdata)),
        (
            "Content-Type",
            ct.replace("multipart/form-data", "Multipart/Form-Data"),
        ),
    ];
    let v = post_send(s, &headers, body).await;
    sent.push((ok(&v)["msg_key"].as_u64().unwrap(), text("case")));

    // Everything in the query string, empty body.
    let resp = s
        .http
        .post(s.url(SEND))
        .header("Cookie", a.cookie())
        .query(&form(&a, b.mid, 1, &text("query & = ? 你好")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    sent.push((
        ok(&v)["msg_key"].as_u64().unwrap(),
        text("query & = ? 你好"),
    ));

    // The published example's `msg[receiver_type] ` with a trailing space, in a form...
    let f: Form = form(&a, b.mid, 1, &text("space"))
        .into_iter()
        .map(|(k, v)| {
            (
                if k == "msg[receiver_type]" {
                    "msg[receiver_type] "
                } else {
                    k
                },
                v,
            )
        })
        .collect();
    sent.push((
        ok(&send_raw(s, &a, &f).await)["msg_key"].as_u64().unwrap(),
        text("space"),
    ));
    // ... and in a hand-written body.
    let body = format!(
        "msg[sender_uid]={}&msg[receiver_id]={}&msg[receiver_type] =1&msg[msg_type]=1&msg[msg_status]=0\
         &msg[dev_id]=372778FD-E359-461D-86A3-EA2BCC6FF52A&msg[timestamp]=1626181379\
         &msg[content]=%7B%22content%22%3A%22raw%22%7D&csrf={}",
        a.mid, b.mid, a.bili_jct
    );
    let resp = s
        .http
        .post(s.url(SEND))
        .header("Cookie", a.cookie())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    sent.push((ok(&v)["msg_key"].as_u64().unwrap(), text("raw")));

    // Unknown and client-specific extra parameters are ignored.
    let mut f = form(&a, b.mid, 1, &text("extras"));
    for (k, v) in [
        ("foo", "bar"),
        ("msg[unknown]", "x"),
        ("msg[msg_status]", "0"),
        ("build", "0"),
        ("mobi_app", "web"),
        ("from_filework", "0"),
        ("sender_device_id", "abc"),
        ("w_sender_uid", "1"),
        ("w_receiver_id", "2"),
        ("w_dev_id", "x"),
        ("w_rid", "00000000000000000000000000000000"),
        ("wts", "1700000000"),
    ] {
        f.push((k, v.to_string()));
    }
    sent.push((
        ok(&send_raw(s, &a, &f).await)["msg_key"].as_u64().unwrap(),
        text("extras"),
    ));

    let h = history(s, &b, &a).await;
    assert_eq!(h.len(), sent.len());
    for (key, c) in &sent {
        let m = by_key(&h, *key);
        assert_eq!(m["content"].as_str(), Some(c.as_str()));
        assert_eq!(m["receiver_type"], 1);
        assert_eq!(m["sender_uid"], a.mid);
    }
}
scenario!(send_accepts_multipart_query_and_odd_names);

// ---- seqnos and keys ----

async fn send_alternating_seqnos_have_no_gaps(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let mut keys = Vec::new();
    for i in 0..30 {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        keys.push(s.send_text(from, to, &format!("m{i}")).await);
    }
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "keys increase: {keys:?}"
    );
    let ha = history(s, &a, &b).await;
    let hb = history(s, &b, &a).await;
    assert_eq!(ha, hb, "both sides see the same messages");
    assert_eq!(ha.len(), 30);
    for (i, key) in keys.iter().enumerate() {
        let m = by_key(&ha, *key);
        assert_eq!(m["msg_seqno"], i as u64 + 1);
        assert_eq!(m["content"], text(&format!("m{i}")));
        assert_eq!(m["sender_uid"], if i % 2 == 0 { a.mid } else { b.mid });
    }
    // Newest first.
    let seqnos: Vec<u64> = ha
        .iter()
        .map(|m| m["msg_seqno"].as_u64().unwrap())
        .collect();
    assert_eq!(seqnos, (1..=30).rev().collect::<Vec<u64>>());
    // Each sender has read everything up to its own last message.
    assert_eq!(ok(&s.detail(&b, a.mid).await)["ack_seqno"], 30);
    assert_eq!(ok(&s.detail(&b, a.mid).await)["unread_count"], 0);
    assert_eq!(ok(&s.detail(&a, b.mid).await)["ack_seqno"], 29);
    assert_eq!(ok(&s.detail(&a, b.mid).await)["unread_count"], 1);
    // Another conversation starts at 1 again; its keys keep increasing globally.
    let c = s.user("carol").await;
    let kc = s.send_text(&a, &c, "hi carol").await;
    assert!(kc > keys[29]);
    assert_eq!(history(s, &c, &a).await[0]["msg_seqno"], 1);
}
scenario!(send_alternating_seqnos_have_no_gaps);

async fn send_concurrent_sends_lose_nothing(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40u32 {
        let (from, to) = if i % 2 == 0 {
            (a.clone(), b.mid)
        } else {
            (b.clone(), a.mid)
        };
        let http = s.http.clone();
        let url = s.url(SEND);
        let f = form(&from, to, 1, &text(&format!("c{i}")));
        set.spawn(async move {
            let resp = http
                .post(url)
                .header("Cookie", from.cookie())
                .form(&f)
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status().as_u16(), 200);
            let v: Value = resp.json().await.expect("JSON");
            (i, v)
        });
    }
    let mut keys = std::collections::HashMap::new();
    while let Some(r) = set.join_next().await {
        let (i, v) = r.expect("task");
        keys.insert(i, ok(&v)["msg_key"].as_u64().expect("msg_key"));
    }
    assert_eq!(keys.len(), 40);
    let distinct: std::collections::HashSet<u64> = keys.values().copied().collect();
    assert_eq!(distinct.len(), 40, "distinct keys");

    let ha = history(s, &a, &b).await;
    let hb = history(s, &b, &a).await;
    assert_eq!(ha.len(), 40);
    assert_eq!(ha, hb);
    let mut seqnos: Vec<u64> = ha
        .iter()
        .map(|m| m["msg_seqno"].as_u64().unwrap())
        .collect();
    seqnos.sort_unstable();
    assert_eq!(seqnos, (1..=40).collect::<Vec<u64>>());
    for (i, key) in &keys {
        assert_eq!(by_key(&ha, *key)["content"], text(&format!("c{i}")));
    }
    // The session counters agree with the history: each side has read up to its own last
    // message, and the other side's later messages are unread.
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let own_last = ha
            .iter()
            .filter(|m| m["sender_uid"].as_u64() == Some(viewer.mid))
            .map(|m| m["msg_seqno"].as_u64().unwrap())
            .max()
            .unwrap();
        let unread = ha
            .iter()
            .filter(|m| {
                m["sender_uid"].as_u64() == Some(talker.mid)
                    && m["msg_seqno"].as_u64().unwrap() > own_last
            })
            .count();
        let d = s.detail(viewer, talker.mid).await;
        let d = ok(&d);
        assert_eq!(d["ack_seqno"], own_last, "{d}");
        assert_eq!(d["unread_count"], unread as u64, "{d}");
        assert_eq!(d["max_seqno"], 40, "{d}");
        assert_eq!(d["last_msg"]["msg_seqno"], 40, "{d}");
    }
}
scenario!(send_concurrent_sends_lose_nothing);

// ---- session side effects ----

async fn send_updates_both_sessions_and_unremoves(s: &Server) {
    let t0: i64 = 2_000_000_000_000;
    set_clock(s, t0).await;
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    s.send_text(&a, &b, "one").await;
    s.send_text(&b, &a, "two").await;
    // b hides the conversation; a new message from a brings it back with its history.
    ok(&s
        .post(
            &b,
            REMOVE_SESSION,
            &[
                ("talker_id", a.mid.to_string()),
                ("session_type", "1".into()),
            ],
        )
        .await);
    let listed = |d: &Value, mid: u64| {
        d["session_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["talker_id"].as_u64() == Some(mid)))
    };
    assert!(!listed(
        &s.sessions(&b, &[("session_type", "1".into())]).await,
        a.mid
    ));
    set_clock(s, t0 + 60_000).await;
    let k3 = s.send_text(&a, &b, "three").await;
    let lb = s.sessions(&b, &[("session_type", "1".into())]).await;
    assert!(listed(&lb, a.mid), "{lb}");
    let sess = lb["session_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["talker_id"].as_u64() == Some(a.mid))
        .unwrap()
        .clone();
    assert_eq!(sess["last_msg"]["msg_key"].as_u64(), Some(k3));
    assert_eq!(sess["unread_count"], 1);
    assert_eq!(sess["max_seqno"], 3);
    let st = sess["session_ts"].as_i64().unwrap();
    assert!(
        ((t0 + 60_000) * 1000..(t0 + 65_000) * 1000).contains(&st),
        "{st}"
    );
    assert_eq!(history(s, &b, &a).await.len(), 3);
    // The sender's view: read up to its message, same session time.
    let da = ok(&s.detail(&a, b.mid).await).clone();
    assert_eq!(da["ack_seqno"], 3);
    assert_eq!(da["unread_count"], 0);
    assert_eq!(da["session_ts"], sess["session_ts"]);
    assert_eq!(da["last_msg"]["msg_key"].as_u64(), Some(k3));
    assert_eq!(s.unread(&b).await["follow_unread"], 1);
    assert_eq!(s.unread(&a).await["follow_unread"], 0);
}
scenario!(send_updates_both_sessions_and_unremoves);

async fn send_concurrent_recalls_succeed_once(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let k = s.send_text(&a, &b, "oops").await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..6 {
        set.spawn(s.post_raw_task(&a, SEND, &form(&a, b.mid, 5, &k.to_string())));
    }
    let mut wins = 0;
    while let Some(r) = set.join_next().await {
        let v = r.expect("task");
        if v["code"] == 0 {
            wins += 1;
        } else {
            assert_err(&v, 21042, "消息已经撤回了哦");
        }
    }
    assert_eq!(wins, 1);
    // One recall stored, right after the target: refused recalls used no seqno.
    let h = history(s, &b, &a).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["msg_type"], 5);
    assert_eq!(h[0]["msg_seqno"], 2);
    assert_eq!(h[1]["msg_status"], 1);
    let k2 = s.send_text(&a, &b, "next").await;
    assert_eq!(by_key(&history(s, &a, &b).await, k2)["msg_seqno"], 3);
}
scenario!(send_concurrent_recalls_succeed_once);

/// Refused writes share group commits with accepted ones: a refused recall is undone alone
/// and takes none of the plain sends queued beside it down with it.
async fn send_refused_recalls_leave_batch_mates_stored(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    befriend(s, &a, &b).await;
    let k = s.send_text(&a, &b, "oops").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..24u32 {
        let f = if i % 3 == 0 {
            form(&a, b.mid, 5, &k.to_string())
        } else {
            form(&a, b.mid, 1, &text(&format!("m{i}")))
        };
        let answer = s.post_raw_task(&a, SEND, &f);
        set.spawn(async move { (i, answer.await) });
    }
    let (mut recalls, mut texts) = (0, 0);
    while let Some(r) = set.join_next().await {
        let (i, v) = r.expect("task");
        if i % 3 != 0 {
            ok(&v);
            texts += 1;
        } else if v["code"] == 0 {
            recalls += 1;
        } else {
            assert_err(&v, 21042, "消息已经撤回了哦");
        }
    }
    assert_eq!((recalls, texts), (1, 16));
    // The target, one recall and 16 texts, on seqnos 1..=18 without a gap.
    let h = history(s, &b, &a).await;
    assert_eq!(h.len(), 18);
    let mut seqnos: Vec<u64> = h.iter().map(|m| m["msg_seqno"].as_u64().unwrap()).collect();
    seqnos.sort_unstable();
    assert_eq!(seqnos, (1..=18).collect::<Vec<u64>>());
    assert_eq!(h.iter().filter(|m| m["msg_type"] == 5).count(), 1);
    assert_eq!(by_key(&h, k)["msg_status"], 1);
    // Bob's unread count holds every stored message from Alice: 1 + 16 texts + 1 recall.
    let v = s
        .get(&b, "/session_svr/v1/session_svr/single_unread", &[])
        .await;
    assert_eq!(
        ok(&v)["unfollow_unread"].as_u64().unwrap() + ok(&v)["follow_unread"].as_u64().unwrap(),
        18
    );
}
scenario!(send_refused_recalls_leave_batch_mates_stored);
