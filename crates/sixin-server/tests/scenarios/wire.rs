//! Scenarios: wire conventions (SPEC §1): routing by path, the envelope, 404/405, cookies and
//! authentication, CSRF, form parsing and WBI signatures.

use reqwest::Method;
use serde_json::{json, Value};

use crate::*;

/// A body to send: content type and bytes.
pub(crate) struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn form(pairs: &[(&str, String)]) -> Body {
        Body {
            content_type: "application/x-www-form-urlencoded".into(),
            bytes: serde_urlencoded::to_string(pairs)
                .expect("form")
                .into_bytes(),
        }
    }

    pub fn multipart(pairs: &[(&str, String)]) -> Body {
        let boundary = "----sixinTestBoundary7MA4YWxkTrZu0gW";
        let mut bytes = Vec::new();
        for (k, v) in pairs {
            bytes.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Body {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            bytes,
        }
    }
}

/// One request exactly as given (`path_and_query` is appended to the base URL verbatim);
/// returns the HTTP status and the body text.
pub(crate) async fn raw(
    s: &Server,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: Option<Body>,
) -> (u16, String) {
    let mut rb = s.http.request(method, s.url(path_and_query));
    for (k, v) in headers {
        rb = rb.header(*k, v.as_str());
    }
    if let Some(b) = body {
        rb = rb.header("Content-Type", b.content_type).body(b.bytes);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

pub(crate) fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn cookie(u: &User) -> (&'static str, String) {
    ("Cookie", u.cookie())
}

/// Cookies for `SESSDATA` alone.
fn sess_cookie(sessdata: &str) -> (&'static str, String) {
    ("Cookie", format!("SESSDATA={sessdata}"))
}

/// A query string (no leading `?`) of `pairs`, percent-encoded as a form.
fn qs(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).expect("query")
}

fn ack_form(talker: &User) -> Vec<(&'static str, String)> {
    vec![
        ("talker_id", talker.mid.to_string()),
        ("session_type", "1".into()),
    ]
}

const NOT_LOGGED_IN: &str =
    "{\"code\":-101,\"msg\":\"账号未登录\",\"message\":\"账号未登录\",\"ttl\":1}";
const NOT_FOUND: &str = "{\"code\":-404,\"msg\":\"啥都木有\",\"message\":\"啥都木有\",\"ttl\":1}";
const FORBIDDEN: &str =
    "{\"code\":-403,\"msg\":\"访问权限不足\",\"message\":\"访问权限不足\",\"ttl\":1}";
const CSRF_FAILED: &str =
    "{\"code\":-111,\"msg\":\"csrf 校验失败\",\"message\":\"csrf 校验失败\",\"ttl\":1}";
const EMPTY_OK: &str = "{\"code\":0,\"msg\":\"0\",\"message\":\"0\",\"ttl\":1,\"data\":{}}";

// ---- routing, envelope, 404, 405 ----

async fn host_header_is_ignored(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let c = s.user("carol").await;
    s.send_text(&b, &a, "hi").await;
    for host in [
        "api.vc.bilibili.com",
        "api.bilibili.com",
        "message.bilibili.com",
        "sixin.example.org:8443",
    ] {
        let h = ("Host", host.to_string());
        let (st, text) = raw(
            s,
            Method::GET,
            SINGLE_UNREAD,
            &[cookie(&a), h.clone()],
            None,
        )
        .await;
        assert_eq!(st, 200, "{host}: {text}");
        assert_eq!(ok(&parse(&text))["unfollow_unread"], 1, "{host}: {text}");

        let (st, text) = raw(s, Method::GET, NAV, &[cookie(&a), h.clone()], None).await;
        assert_eq!(st, 200, "{host}: {text}");
        let v = parse(&text);
        assert_eq!(ok(&v)["isLogin"], true, "{host}: {text}");
        assert_eq!(ok(&v)["mid"], a.mid, "{host}: {text}");

        // (An ack of a conversation that does not exist: the unread count above stays.)
        let mut form = ack_form(&c);
        form.push(("csrf", a.bili_jct.clone()));
        let (st, text) = raw(
            s,
            Method::POST,
            UPDATE_ACK,
            &[cookie(&a), h.clone()],
            Some(Body::form(&form)),
        )
        .await;
        assert_eq!(st, 200, "{host}: {text}");
        assert_eq!(text, EMPTY_OK, "{host}");

        let (st, text) = raw(s, Method::GET, "/nope", &[cookie(&a), h], None).await;
        assert_eq!(st, 404, "{host}: {text}");
        assert_eq!(text, NOT_FOUND, "{host}");
    }
    let mut form = ack_form(&b);
    form.push(("csrf", a.bili_jct.clone()));
    let h = ("Host", "api.vc.bilibili.com".to_string());
    let (_, text) = raw(
        s,
        Method::POST,
        UPDATE_ACK,
        &[cookie(&a), h],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(text, EMPTY_OK);
    assert_eq!(s.unread(&a).await["unfollow_unread"], 0);
}
scenario!(host_header_is_ignored);

async fn envelope_shape_is_exact(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;

    // Success: code, msg, message, ttl, data — in that order, as text.
    let mut form = ack_form(&b);
    form.push(("csrf", a.bili_jct.clone()));
    let (st, text) = raw(
        s,
        Method::POST,
        UPDATE_ACK,
        &[cookie(&a)],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(text, EMPTY_OK);

    let resp = s
        .http
        .get(s.url(SINGLE_UNREAD))
        .header("Cookie", a.cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v = parse(&resp.text().await.unwrap());
    let d = ok(&v);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["code", "msg", "message", "ttl", "data"]);
    for k in [
        "unfollow_unread",
        "follow_unread",
        "unfollow_push_msg",
        "dustbin_push_msg",
        "dustbin_unread",
        "biz_msg_unfollow_unread",
        "biz_msg_follow_unread",
        "custom_unread",
    ] {
        assert!(d[k].is_u64(), "{k} in {d}");
    }

    // Business errors are HTTP 200, with both message and msg, and no data.
    let (st, text) = raw(s, Method::GET, SINGLE_UNREAD, &[], None).await;
    assert_eq!(st, 200);
    assert_eq!(text, NOT_LOGGED_IN);
    let (st, text) = raw(
        s,
        Method::GET,
        &format!("{FETCH}?session_type=1"),
        &[cookie(&a)],
        None,
    )
    .await;
    assert_eq!(st, 200);
    let v = parse(&text);
    assert_err(&v, -400, "请求错误");
    assert!(v.get("data").is_none() || v["data"].is_null(), "{v}");
    let (st, text) = raw(
        s,
        Method::POST,
        UPDATE_ACK,
        &[cookie(&a)],
        Some(Body::form(&ack_form(&b))),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(text, CSRF_FAILED);
}
scenario!(envelope_shape_is_exact);

async fn unknown_paths_are_404(s: &Server) {
    let a = s.user("alice").await;
    for path in [
        "/",
        "/nope",
        "/x/web-interface/navv",
        "/session_svr/v1/session_svr/get_sessions/extra",
        "/session_svr/v1/session_svr/no_such_thing",
        "/web_im/v1/web_im/send_msg2",
        "/admin/v1/no_such_thing",
    ] {
        for (method, headers) in [
            (Method::GET, vec![]),
            (Method::GET, vec![cookie(&a)]),
            (Method::POST, vec![cookie(&a)]),
        ] {
            let (st, text) = raw(s, method.clone(), path, &headers, None).await;
            assert_eq!(st, 404, "{method} {path}: {text}");
            assert_eq!(text, NOT_FOUND, "{method} {path}");
        }
    }
}
scenario!(unknown_paths_are_404);

async fn wrong_method_is_405(s: &Server) {
    let a = s.user("alice").await;
    for (method, path) in [
        (Method::GET, SEND),
        (Method::GET, UPDATE_ACK),
        (Method::GET, REMOVE_SESSION),
        (Method::GET, SET_TOP),
        (Method::POST, NAV),
        (Method::POST, GET_SESSIONS),
        (Method::POST, SINGLE_UNREAD),
        (Method::POST, FETCH),
        (Method::PUT, SINGLE_UNREAD),
        (Method::DELETE, SEND),
        (Method::GET, "/admin/v1/relations"),
        (Method::PUT, "/admin/v1/users"),
        (Method::POST, "/healthz"),
    ] {
        let (st, text) = raw(s, method.clone(), path, &[cookie(&a)], None).await;
        assert_eq!(st, 405, "{method} {path}: {text}");
        let v = parse(&text);
        assert_eq!(v["code"], -405, "{method} {path}: {text}");
        assert_eq!(v["ttl"], 1, "{text}");
    }
}
scenario!(wrong_method_is_405);

// ---- authentication ----

async fn missing_or_unknown_sessdata_is_101(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let unknown = format!(
        "{}%2C{}%2C{}",
        "0".repeat(32),
        4_102_444_800u64,
        "1".repeat(16)
    );
    let cookie_sets: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("Cookie", String::new())],
        vec![("Cookie", "SESSDATA=".into())],
        vec![(
            "Cookie",
            format!("bili_jct={}; DedeUserID={}", a.bili_jct, a.mid),
        )],
        vec![sess_cookie(&unknown)],
        vec![sess_cookie(&unknown.replace("%2C", ","))],
        vec![sess_cookie("garbage%ZZ%")],
        // A SESSDATA that is only the prefix of a real one.
        vec![sess_cookie(&a.sessdata[..32])],
        vec![("Cookie", format!("sessdata={}", a.sessdata))],
    ];
    for headers in &cookie_sets {
        for path in [
            SINGLE_UNREAD.to_string(),
            format!("{GET_SESSIONS}?session_type=1"),
            format!("{FETCH}?talker_id={}&session_type=1&size=20", b.mid),
            format!("{SESSION_DETAIL}?talker_id={}&session_type=1", b.mid),
            MYINFO.to_string(),
            format!("/account/v1/user/cards?uids={}", b.mid),
            format!("/x/im/user_infos?uids={}", b.mid),
        ] {
            let (st, text) = raw(s, Method::GET, &path, headers, None).await;
            assert_eq!(st, 200, "{path} {headers:?}");
            assert_eq!(text, NOT_LOGGED_IN, "{path} {headers:?}");
        }
        // POSTs: authentication comes before the csrf check.
        let mut form = ack_form(&b);
        form.push(("csrf", a.bili_jct.clone()));
        let (_, text) = raw(
            s,
            Method::POST,
            UPDATE_ACK,
            headers,
            Some(Body::form(&form)),
        )
        .await;
        assert_eq!(text, NOT_LOGGED_IN, "{headers:?}");
        let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"x\"}");
        form.push(("csrf", a.bili_jct.clone()));
        let (_, text) = raw(s, Method::POST, SEND, headers, Some(Body::form(&form))).await;
        assert_eq!(text, NOT_LOGGED_IN, "{headers:?}");
    }
    // Nothing was sent.
    let d = s.fetch(&b, &a, &[("size", "20".into())]).await;
    assert_eq!(ok(&d)["messages"], Value::Null);
}
scenario!(missing_or_unknown_sessdata_is_101);

async fn cookie_forms_accepted(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    assert!(
        a.sessdata.contains(','),
        "SESSDATA has upstream's shape: {}",
        a.sessdata
    );
    let encoded = a.sessdata.replace(',', "%2C");
    let variants = [
        format!("SESSDATA={}", a.sessdata),
        format!("SESSDATA={encoded}"),
        format!("SESSDATA={}", a.sessdata.replace(',', "%2c")),
        format!(
            "buvid3=abc-def; SESSDATA={encoded}; bili_jct={}; DedeUserID={}",
            a.bili_jct, a.mid
        ),
        format!("  SESSDATA={encoded} ;b_nut=100"),
        // DedeUserID is informative only: SESSDATA names the user.
        format!("SESSDATA={encoded}; DedeUserID={}", b.mid),
    ];
    for c in &variants {
        let (st, text) = raw(s, Method::GET, NAV, &[("Cookie", c.clone())], None).await;
        assert_eq!(st, 200);
        let v = parse(&text);
        assert_eq!(ok(&v)["mid"], a.mid, "{c}: {text}");
        assert_eq!(ok(&v)["uname"], "alice", "{c}: {text}");
    }
    // A POST with the encoded cookie and the matching csrf.
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"encoded cookie\"}");
    form.push(("csrf", a.bili_jct.clone()));
    let (_, text) = raw(
        s,
        Method::POST,
        SEND,
        &[(
            "Cookie",
            format!("SESSDATA={encoded}; bili_jct={}", a.bili_jct),
        )],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(
        ok(&parse(&text))["msg_content"],
        "{\"content\":\"encoded cookie\"}",
        "{text}"
    );
}
scenario!(cookie_forms_accepted);

/// A login used with its cookie in two forms (as issued, and percent-encoded as browsers store
/// it) ends for both when logged out with one.
async fn logout_ends_the_login_in_every_cookie_form(s: &Server) {
    let a = s.user("alice").await;
    let encoded = format!("SESSDATA={}", a.sessdata.replace(',', "%2C"));
    let unread = |cookie: String| async move {
        let (st, text) = raw(s, Method::GET, SINGLE_UNREAD, &[("Cookie", cookie)], None).await;
        assert_eq!(st, 200);
        parse(&text)
    };
    ok(&unread(encoded.clone()).await);
    ok(&s.get(&a, SINGLE_UNREAD, &[]).await);
    assert_eq!(ok(&s.post(&a, "/sixin/v1/logout", &[]).await), &json!({}));
    assert_err(&unread(encoded).await, -101, "账号未登录");
    assert_err(&s.get(&a, SINGLE_UNREAD, &[]).await, -101, "账号未登录");
}
scenario!(logout_ends_the_login_in_every_cookie_form);

async fn revoked_login_is_101(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let (st, v) = s
        .admin(Method::POST, &format!("/users/{}/logins", a.mid), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let a2 = User {
        sessdata: v["SESSDATA"].as_str().unwrap().into(),
        bili_jct: v["bili_jct"].as_str().unwrap().into(),
        ..a.clone()
    };
    ok(&s.get(&a, SINGLE_UNREAD, &[]).await);
    ok(&s.get(&a2, SINGLE_UNREAD, &[]).await);

    let (st, v) = s
        .admin(Method::DELETE, &format!("/users/{}/logins", a.mid), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["revoked"], 2, "{v}");
    for u in [&a, &a2] {
        assert_err(&s.get(u, SINGLE_UNREAD, &[]).await, -101, "账号未登录");
        assert_err(
            &s.post(u, UPDATE_ACK, &ack_form(&b)).await,
            -101,
            "账号未登录",
        );
        let send = s.send(u, b.mid, 1, "{\"content\":\"x\"}").await;
        assert_err(&send, -101, "账号未登录");
        let nav = s.get(u, NAV, &[]).await;
        assert_err(&nav, -101, "账号未登录");
        assert_eq!(nav["data"]["isLogin"], false);
    }
    // Other users are unaffected, and a new login works.
    ok(&s.get(&b, SINGLE_UNREAD, &[]).await);
    let (st, v) = s
        .admin(Method::POST, &format!("/users/{}/logins", a.mid), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let a3 = User {
        sessdata: v["SESSDATA"].as_str().unwrap().into(),
        bili_jct: v["bili_jct"].as_str().unwrap().into(),
        ..a.clone()
    };
    s.send_text(&a3, &b, "back again").await;
    assert_err(&s.get(&a, SINGLE_UNREAD, &[]).await, -101, "账号未登录");
    // Revoking again revokes only what is still live.
    let (_, v) = s
        .admin(Method::DELETE, &format!("/users/{}/logins", a.mid), None)
        .await;
    assert_eq!(v["revoked"], 1, "{v}");
    assert_err(&s.get(&a3, SINGLE_UNREAD, &[]).await, -101, "账号未登录");
}
scenario!(revoked_login_is_101);

async fn login_expires_after_180_days(s: &Server) {
    const DAY_MS: i64 = 86_400_000;
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.advance_clock(179 * DAY_MS).await;
    ok(&s.get(&a, SINGLE_UNREAD, &[]).await);
    s.send_text(&a, &b, "still here").await;
    // A login made now lives 180 days from now.
    let (st, v) = s
        .admin(Method::POST, &format!("/users/{}/logins", a.mid), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let fresh = User {
        sessdata: v["SESSDATA"].as_str().unwrap().into(),
        bili_jct: v["bili_jct"].as_str().unwrap().into(),
        ..a.clone()
    };
    s.advance_clock(DAY_MS + 60_000).await;
    for u in [&a, &b] {
        assert_err(&s.get(u, SINGLE_UNREAD, &[]).await, -101, "账号未登录");
        assert_err(
            &s.post(u, UPDATE_ACK, &ack_form(&b)).await,
            -101,
            "账号未登录",
        );
        let nav = s.get(u, NAV, &[]).await;
        assert_err(&nav, -101, "账号未登录");
        assert_eq!(nav["data"]["isLogin"], false);
    }
    ok(&s.get(&fresh, SINGLE_UNREAD, &[]).await);
    s.advance_clock(178 * DAY_MS).await;
    ok(&s.get(&fresh, SINGLE_UNREAD, &[]).await);
    s.advance_clock(2 * DAY_MS).await;
    assert_err(&s.get(&fresh, SINGLE_UNREAD, &[]).await, -101, "账号未登录");
}
scenario!(login_expires_after_180_days);

// ---- CSRF ----

async fn csrf_is_checked_on_every_post(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let (st, v) = s
        .admin(Method::POST, &format!("/users/{}/logins", a.mid), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let other_login_jct = v["bili_jct"].as_str().unwrap().to_string();
    assert_ne!(other_login_jct, a.bili_jct);
    assert_eq!(a.bili_jct.len(), 32);
    assert!(
        a.bili_jct.bytes().all(|c| c.is_ascii_hexdigit()),
        "{}",
        a.bili_jct
    );

    let bad: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("csrf", String::new())],
        vec![("csrf", "0".repeat(32))],
        vec![("csrf", a.bili_jct.to_uppercase())],
        vec![("csrf", format!("{} ", &a.bili_jct[..31]))],
        // A valid token, but of another user's login.
        vec![("csrf", b.bili_jct.clone())],
        vec![("csrf_token", b.bili_jct.clone())],
        // A valid token of another login of the same user.
        vec![("csrf", other_login_jct.clone())],
        vec![("bili_jct", a.bili_jct.clone())],
    ];
    for extra in &bad {
        for path in [UPDATE_ACK, REMOVE_SESSION, SET_TOP] {
            let mut form = ack_form(&b);
            form.push(("op_type", "0".into()));
            form.extend(extra.iter().cloned());
            assert_err(&s.post_raw(&a, path, &form).await, -111, "csrf 校验失败");
        }
        let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"no csrf\"}");
        form.extend(extra.iter().cloned());
        let v = s.post_raw(&a, SEND, &form).await;
        assert_err(&v, -111, "csrf 校验失败");
        assert!(v.get("data").is_none(), "{v}");
    }
    // Nothing was stored by the refused sends, and the session was not pinned.
    let page = s.fetch(&b, &a, &[("size", "20".into())]).await;
    assert_eq!(ok(&page)["messages"], Value::Null);
    assert_err(&s.detail(&a, b.mid).await, 1000004, "入口节点已存在");

    // The right token under either name, in the body or in the query string.
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"csrf\"}");
    form.push(("csrf", a.bili_jct.clone()));
    ok(&s.post_raw(&a, SEND, &form).await);
    s.follow(&b, &a, true).await;
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"csrf_token\"}");
    form.push(("csrf_token", a.bili_jct.clone()));
    ok(&s.post_raw(&a, SEND, &form).await);
    let form = Server::send_form(&a, b.mid, 1, "{\"content\":\"csrf in query\"}");
    let (_, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?csrf={}", a.bili_jct),
        &[cookie(&a)],
        Some(Body::form(&form)),
    )
    .await;
    ok(&parse(&text));
    let mut form = ack_form(&b);
    form.push(("csrf_token", a.bili_jct.clone()));
    assert_eq!(
        s.post_raw(&a, UPDATE_ACK, &form).await,
        json!({"code":0,"msg":"0","message":"0","ttl":1,"data":{}})
    );

    let page = s.fetch(&b, &a, &[("size", "20".into())]).await;
    let texts: Vec<&str> = ok(&page)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "{\"content\":\"csrf in query\"}",
            "{\"content\":\"csrf_token\"}",
            "{\"content\":\"csrf\"}"
        ]
    );
    // GETs need no csrf.
    ok(&s.get(&a, SINGLE_UNREAD, &[]).await);
}
scenario!(csrf_is_checked_on_every_post);

// ---- request parsing ----

async fn post_fields_from_body_query_or_multipart(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&b, &a, true).await;

    // Everything in the query string, empty body.
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"in the query\"}");
    form.push(("csrf", a.bili_jct.clone()));
    let (st, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?{}", qs(&form)),
        &[cookie(&a)],
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        ok(&parse(&text))["msg_content"],
        "{\"content\":\"in the query\"}",
        "{text}"
    );
    let (st, text) = raw(
        s,
        Method::POST,
        &format!(
            "{SEND}?{}",
            qs(&form).replace("in+the+query", "in%20the%20query2")
        ),
        &[cookie(&a)],
        Some(Body::form(&[])),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        ok(&parse(&text))["msg_content"],
        "{\"content\":\"in the query2\"}",
        "{text}"
    );

    // Multipart.
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"多部分 & = + %20\"}");
    form.push(("csrf", a.bili_jct.clone()));
    form.push(("build", "0".into()));
    form.push(("mobi_app", "web".into()));
    let (st, text) = raw(
        s,
        Method::POST,
        SEND,
        &[cookie(&a)],
        Some(Body::multipart(&form)),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        ok(&parse(&text))["msg_content"],
        "{\"content\":\"多部分 & = + %20\"}",
        "{text}"
    );

    // Split: some fields in the query, the rest in the body.
    let form = Server::send_form(&a, b.mid, 1, "{\"content\":\"split\"}");
    let (q, body) = form.split_at(3);
    let mut body = body.to_vec();
    body.push(("csrf", a.bili_jct.clone()));
    let (st, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?{}", qs(q)),
        &[cookie(&a)],
        Some(Body::form(&body)),
    )
    .await;
    assert_eq!(st, 200);
    ok(&parse(&text));

    // Multipart update_ack.
    let mut form = ack_form(&a);
    form.push(("csrf", b.bili_jct.clone()));
    let (_, text) = raw(
        s,
        Method::POST,
        UPDATE_ACK,
        &[cookie(&b)],
        Some(Body::multipart(&form)),
    )
    .await;
    assert_eq!(text, EMPTY_OK);

    let page = s.fetch(&b, &a, &[("size", "20".into())]).await;
    let texts: Vec<&str> = ok(&page)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "{\"content\":\"split\"}",
            "{\"content\":\"多部分 & = + %20\"}",
            "{\"content\":\"in the query2\"}",
            "{\"content\":\"in the query\"}",
        ]
    );
    // The multipart ack (no ack_seqno: the latest) marked all four read.
    assert_eq!(ok(&s.detail(&b, a.mid).await)["unread_count"], 0);
}
scenario!(post_fields_from_body_query_or_multipart);

async fn unknown_and_client_params_are_ignored(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&b, &a, true).await;
    let noise: Vec<(&str, String)> = vec![
        ("build", "8130300".into()),
        ("mobi_app", "android".into()),
        ("platform", "android".into()),
        ("sender_device_id", "1".into()),
        ("from_filework", "0".into()),
        ("w_sender_uid", a.mid.to_string()),
        ("w_receiver_id", b.mid.to_string()),
        ("w_dev_id", "372778FD-E359-461D-86A3-EA2BCC6FF52A".into()),
        ("wts", "1700000000".into()),
        ("w_rid", "0123456789abcdef0123456789abcdef".into()),
        ("web_location", "333.1296".into()),
        ("x-unknown[field]", "whatever".into()),
        ("access_key", "".into()),
    ];
    // POST: noise in the query and in the body.
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"noisy\"}");
    form.extend(noise.iter().cloned());
    form.push(("csrf", a.bili_jct.clone()));
    let (st, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?{}", qs(&noise)),
        &[cookie(&a)],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(st, 200);
    let key = ok(&parse(&text))["msg_key"].as_u64().expect("msg_key");
    // mobi_app=android selects msg_source 2.
    let page = s.fetch(&b, &a, &[("size", "1".into())]).await;
    let m = &ok(&page)["messages"][0];
    assert_eq!(m["msg_key"].as_u64(), Some(key));
    assert_eq!(m["msg_source"], 2);

    // GETs with the same noise.
    for (path, mut params) in [
        (SINGLE_UNREAD, vec![]),
        (GET_SESSIONS, vec![("session_type", "1".to_string())]),
        (NEW_SESSIONS, vec![("begin_ts", "0".to_string())]),
        (
            FETCH,
            vec![
                ("talker_id", a.mid.to_string()),
                ("session_type", "1".into()),
                ("size", "5".into()),
            ],
        ),
        (
            SESSION_DETAIL,
            vec![
                ("talker_id", a.mid.to_string()),
                ("session_type", "1".into()),
            ],
        ),
        (NAV, vec![]),
        (MYINFO, vec![]),
        ("/account/v1/user/cards", vec![("uids", a.mid.to_string())]),
        ("/x/im/user_infos", vec![("uids", a.mid.to_string())]),
    ] {
        let plain = s.get(&b, path, &params).await;
        params.extend(noise.iter().filter(|(k, _)| *k != "mobi_app").cloned());
        let noisy = s.get(&b, path, &params).await;
        ok(&noisy);
        assert_eq!(plain, noisy, "{path}");
    }
}
scenario!(unknown_and_client_params_are_ignored);

// ---- WBI ----

/// The mixin key of the WBI keys `nav` hands out now.
async fn nav_mixin(s: &Server, u: Option<&User>) -> String {
    let headers: Vec<(&str, String)> = u.map(cookie).into_iter().collect();
    let (st, text) = raw(s, Method::GET, NAV, &headers, None).await;
    assert_eq!(st, 200);
    let v = parse(&text);
    let img =
        sixin_proto::wbi::key_from_url(v["data"]["wbi_img"]["img_url"].as_str().expect("img_url"))
            .expect("img key")
            .to_string();
    let sub =
        sixin_proto::wbi::key_from_url(v["data"]["wbi_img"]["sub_url"].as_str().expect("sub_url"))
            .expect("sub key")
            .to_string();
    assert_eq!(img.len(), 32, "{text}");
    assert_eq!(sub.len(), 32, "{text}");
    sixin_proto::wbi::mixin_key(&img, &sub)
}

fn owned(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `%20`-style signed query (as JavaScript clients send it).
fn signed(pairs: &[(&str, String)], mixin: &str) -> String {
    sixin_proto::wbi::sign(&owned(pairs), now_secs(), mixin).1
}

/// A `+`-style signed query (as Python's urlencode writes it), sent with `+` for spaces.
fn signed_plus(pairs: &[(&str, String)], mixin: &str) -> String {
    let mut all = owned(pairs);
    all.push(("wts".into(), now_secs().to_string()));
    let w_rid = sixin_proto::wbi::compute_w_rid(&all, mixin, sixin_proto::wbi::SpaceEncoding::Plus);
    all.push(("w_rid".into(), w_rid));
    serde_urlencoded::to_string(&all).unwrap()
}

fn replace_w_rid(query: &str, w_rid: &str) -> String {
    let (head, _) = query.rsplit_once("w_rid=").expect("w_rid");
    format!("{head}w_rid={w_rid}")
}

async fn get_q(s: &Server, u: &User, path: &str, query: &str) -> Value {
    let (st, text) = raw(
        s,
        Method::GET,
        &format!("{path}?{query}"),
        &[cookie(u)],
        None,
    )
    .await;
    assert_eq!(st, 200, "{path}?{query}: {text}");
    parse(&text)
}

async fn wbi_ignored_by_default(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let mixin = nav_mixin(s, Some(&a)).await;
    let q = signed(&[("unread_type", "0".into())], &mixin);
    for query in [
        "w_rid=0&wts=0".to_string(),
        "w_rid=zzzz".to_string(),
        "wts=1700000000".to_string(),
        replace_w_rid(&q, "00000000000000000000000000000000"),
        q.clone(),
    ] {
        ok(&get_q(s, &a, SINGLE_UNREAD, &query).await);
    }
    let form = Server::send_form(&a, b.mid, 1, "{\"content\":\"unsigned is fine\"}");
    let mut form2 = form.clone();
    form2.push(("csrf", a.bili_jct.clone()));
    let (_, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?w_rid=bad&wts=1"),
        &[cookie(&a)],
        Some(Body::form(&form2)),
    )
    .await;
    ok(&parse(&text));
}
scenario!(wbi_ignored_by_default);

async fn wbi_verify_checks_present_signatures(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&b, &a, true).await;
    let mixin = nav_mixin(s, Some(&a)).await;
    // The same keys are handed out logged out.
    assert_eq!(nav_mixin(s, None).await, mixin);

    // Unsigned requests pass.
    ok(&get_q(s, &a, SINGLE_UNREAD, "unread_type=0").await);
    ok(&s
        .get(&a, GET_SESSIONS, &[("session_type", "1".into())])
        .await);

    // Signed with a value containing a space, both encodings.
    let params = vec![
        ("unread_type", "0".to_string()),
        ("note", "hello world (a!b*c)'".to_string()),
    ];
    let pct = signed(&params, &mixin);
    assert!(pct.contains("note=hello%20world%20abc"), "{pct}");
    ok(&get_q(s, &a, SINGLE_UNREAD, &pct).await);
    ok(&get_q(s, &a, SINGLE_UNREAD, &pct.replace("%20", "+")).await);
    let plus = signed_plus(&params, &mixin);
    assert!(plus.contains("note=hello+world"), "{plus}");
    ok(&get_q(s, &a, SINGLE_UNREAD, &plus).await);
    ok(&get_q(s, &a, SINGLE_UNREAD, &plus.replace('+', "%20")).await);

    // Wrong signatures are refused with -403 and no data.
    for query in [
        replace_w_rid(&pct, "00000000000000000000000000000000"),
        replace_w_rid(&pct, ""),
        pct.replace("unread_type=0", "unread_type=1"),
        pct.replace("note=hello", "note=hallo"),
        format!("{pct}&extra=1"),
        // w_rid without wts.
        "unread_type=0&w_rid=0123456789abcdef0123456789abcdef".to_string(),
    ] {
        let (st, text) = raw(
            s,
            Method::GET,
            &format!("{SINGLE_UNREAD}?{query}"),
            &[cookie(&a)],
            None,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(text, FORBIDDEN, "{query}");
    }
    // Signed with other keys.
    let other = sixin_proto::wbi::mixin_key(
        "7cd084941338484aae1ad9425b84077c",
        "4932caff0ff746eab6f01bf08b70ac45",
    );
    assert_err(
        &get_q(s, &a, SINGLE_UNREAD, &signed(&params, &other)).await,
        -403,
        "访问权限不足",
    );

    // A signed send: the query carries the w_* fields, the body the message.
    let sign_params = vec![
        ("w_sender_uid", a.mid.to_string()),
        ("w_receiver_id", b.mid.to_string()),
        (
            "w_dev_id",
            "372778FD-E359-461D-86A3-EA2BCC6FF52A".to_string(),
        ),
    ];
    let q = signed(&sign_params, &mixin);
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"signed send\"}");
    form.push(("csrf", a.bili_jct.clone()));
    let (_, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?{q}"),
        &[cookie(&a)],
        Some(Body::form(&form)),
    )
    .await;
    ok(&parse(&text));
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"forged send\"}");
    form.push(("csrf", a.bili_jct.clone()));
    let forged = replace_w_rid(&q, "ffffffffffffffffffffffffffffffff");
    let (_, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?{forged}"),
        &[cookie(&a)],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(text, FORBIDDEN);
    let page = s.fetch(&b, &a, &[("size", "20".into())]).await;
    let msgs = ok(&page)["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{page}");
    assert_eq!(msgs[0]["content"], "{\"content\":\"signed send\"}");

    // Keys rotate daily; yesterday's keys are still accepted, older ones are not.
    let yesterday = signed(&params, &mixin);
    s.advance_clock(86_400_000).await;
    let today = nav_mixin(s, Some(&a)).await;
    assert_ne!(today, mixin, "keys rotate daily");
    ok(&get_q(s, &a, SINGLE_UNREAD, &yesterday).await);
    ok(&get_q(s, &a, SINGLE_UNREAD, &signed(&params, &today)).await);
    s.advance_clock(86_400_000).await;
    assert_err(
        &get_q(s, &a, SINGLE_UNREAD, &yesterday).await,
        -403,
        "访问权限不足",
    );
    ok(&get_q(s, &a, SINGLE_UNREAD, &signed(&params, &today)).await);
}
scenario_with!(wbi_verify_checks_present_signatures, |c| c.wbi =
    sixin_server::config::WbiMode::Verify);

async fn wbi_require_refuses_unsigned(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&b, &a, true).await;

    // nav hands out the keys, so it answers unsigned (logged in and logged out).
    let (st, text) = raw(s, Method::GET, NAV, &[cookie(&a)], None).await;
    assert_eq!(st, 200);
    assert_eq!(ok(&parse(&text))["mid"], a.mid, "{text}");
    let (_, text) = raw(s, Method::GET, NAV, &[], None).await;
    let v = parse(&text);
    assert_err(&v, -101, "账号未登录");
    assert!(v["data"]["wbi_img"]["img_url"].is_string(), "{v}");
    let mixin = nav_mixin(s, Some(&a)).await;

    // Unsigned or wrongly signed: -403.
    let params = vec![
        ("session_type", "1".to_string()),
        ("note", "a b".to_string()),
    ];
    let good = signed(&params, &mixin);
    for query in [
        "session_type=1".to_string(),
        "session_type=1&wts=1700000000".to_string(),
        replace_w_rid(&good, "00000000000000000000000000000000"),
    ] {
        let (st, text) = raw(
            s,
            Method::GET,
            &format!("{GET_SESSIONS}?{query}"),
            &[cookie(&a)],
            None,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(text, FORBIDDEN, "{query}");
    }
    let (_, text) = raw(s, Method::GET, MYINFO, &[cookie(&a)], None).await;
    assert_eq!(text, FORBIDDEN);
    // Signed: accepted, in both space encodings.
    ok(&get_q(s, &a, GET_SESSIONS, &good).await);
    ok(&get_q(s, &a, GET_SESSIONS, &signed_plus(&params, &mixin)).await);
    ok(&get_q(s, &a, MYINFO, &signed(&[], &mixin)).await);

    // POSTs: the query is what is signed.
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"unsigned\"}");
    form.push(("csrf", a.bili_jct.clone()));
    let (_, text) = raw(
        s,
        Method::POST,
        SEND,
        &[cookie(&a)],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(text, FORBIDDEN);
    let mut form = Server::send_form(&a, b.mid, 1, "{\"content\":\"signed\"}");
    form.push(("csrf", a.bili_jct.clone()));
    let q = signed(
        &[
            ("w_sender_uid", a.mid.to_string()),
            ("w_receiver_id", b.mid.to_string()),
        ],
        &mixin,
    );
    let (_, text) = raw(
        s,
        Method::POST,
        &format!("{SEND}?{q}"),
        &[cookie(&a)],
        Some(Body::form(&form)),
    )
    .await;
    ok(&parse(&text));
    let mut form = ack_form(&a);
    form.push(("csrf", b.bili_jct.clone()));
    let (_, text) = raw(
        s,
        Method::POST,
        UPDATE_ACK,
        &[cookie(&b)],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(text, FORBIDDEN);
    let (_, text) = raw(
        s,
        Method::POST,
        &format!("{UPDATE_ACK}?{}", signed(&[], &mixin)),
        &[cookie(&b)],
        Some(Body::form(&form)),
    )
    .await;
    assert_eq!(text, EMPTY_OK);

    let page = get_q(
        s,
        &b,
        FETCH,
        &signed(
            &[
                ("talker_id", a.mid.to_string()),
                ("session_type", "1".into()),
                ("size", "20".into()),
            ],
            &mixin,
        ),
    )
    .await;
    let msgs = ok(&page)["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{page}");
    assert_eq!(msgs[0]["content"], "{\"content\":\"signed\"}");

    // The operator surfaces are not signed.
    let (st, text) = raw(s, Method::GET, "/healthz", &[], None).await;
    assert_eq!(st, 200, "{text}");
    let (st, v) = s.admin(Method::GET, "/clock", None).await;
    assert_eq!(st, 200, "{v}");
}
scenario_with!(wbi_require_refuses_unsigned, |c| c.wbi =
    sixin_server::config::WbiMode::Require);
