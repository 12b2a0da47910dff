//! Scenarios: sixin's web login and logout (`/sixin/v1/login`, `/sixin/v1/logout`), and the
//! range of the test clock.

use reqwest::Method;
use serde_json::json;

use crate::*;

async fn password_login_and_logout(s: &Server) {
    let (st, v) = s
        .admin(
            Method::POST,
            "/users",
            Some(json!({"name": "dora", "password": "s3cret"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let mid = v["mid"].as_u64().unwrap();
    let admin_login = User::from_login_json(&v);

    let login = |password: &'static str, mid: u64| {
        let http = s.http.clone();
        let url = s.url("/sixin/v1/login");
        async move {
            http.post(url)
                .form(&[("mid", mid.to_string()), ("password", password.to_string())])
                .send()
                .await
                .unwrap()
        }
    };
    // Wrong password, unknown user, a user without a password: not logged in.
    for (pw, m) in [("nope", mid), ("s3cret", 999_999_999)] {
        let r = login(pw, m).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("set-cookie").is_none());
        assert_err(&r.json().await.unwrap(), -101, "账号未登录");
    }
    let plain = s.user("plain").await;
    assert_err(
        &login("", plain.mid).await.json().await.unwrap(),
        -101,
        "账号未登录",
    );
    // A missing mid is a malformed request.
    let r = s
        .http
        .post(s.url("/sixin/v1/login"))
        .form(&[("password", "x")])
        .send()
        .await
        .unwrap();
    assert_err(&r.json().await.unwrap(), -400, "请求错误");

    let r = login("s3cret", mid).await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let v: serde_json::Value = r.json().await.unwrap();
    let d = ok(&v);
    assert_eq!(d["mid"], mid);
    assert_eq!(d["name"], "dora");
    assert_eq!(d["DedeUserID"], mid.to_string());
    let web = User::from_login_json(d);
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert!(cookies[0].starts_with(&format!(
        "SESSDATA={}; Path=/; Max-Age=15552000",
        web.sessdata
    )));
    assert!(cookies[0].ends_with("; HttpOnly"));
    assert!(cookies[1].starts_with(&format!("bili_jct={};", web.bili_jct)));
    assert!(cookies[2].starts_with(&format!("DedeUserID={mid};")));

    // The web login works like any other.
    assert_eq!(ok(&s.get(&web, MYINFO, &[]).await)["mid"], mid);
    // Logout needs the csrf token, then ends that login only.
    let v = s.post_raw(&web, "/sixin/v1/logout", &[]).await;
    assert_err(&v, -111, "csrf 校验失败");
    let v = s.post(&web, "/sixin/v1/logout", &[]).await;
    assert_eq!(ok(&v), &json!({}));
    assert_err(&s.get(&web, MYINFO, &[]).await, -101, "账号未登录");
    assert_eq!(ok(&s.get(&admin_login, MYINFO, &[]).await)["mid"], mid);
    // Logging out again: already logged out.
    assert_err(
        &s.post(&web, "/sixin/v1/logout", &[]).await,
        -101,
        "账号未登录",
    );
}
scenario!(password_login_and_logout);

async fn clock_stays_where_msg_keys_can_express_it(s: &Server) {
    // 2039-09-07T15:47:35.552Z is the first millisecond a 63-bit msg_key can't hold.
    let limit: i64 = 1 << 41;
    for body in [
        json!({"set_ms": limit}),
        json!({"set_ms": -1}),
        json!({"set_ms": i64::MAX}),
        json!({"advance_ms": i64::MAX}),
        json!({"advance_ms": i64::MIN}),
    ] {
        let (st, v) = s.admin(Method::POST, "/clock", Some(body.clone())).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(
            v["error"],
            "give exactly one of set_ms or advance_ms, landing between 1970 and 2039-09-07"
        );
    }
    let (st, v) = s
        .admin(
            Method::POST,
            "/clock",
            Some(json!({"set_ms": limit - 10_000})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // Messages sent then still get keys below 2^63.
    let a = s.user("a").await;
    let b = s.user("b").await;
    s.follow(&b, &a, true).await;
    let key = s.send_text(&a, &b, "late").await;
    assert!(
        key < (1u64 << 63) && key >> 22 >= (limit - 10_000) as u64,
        "{key}"
    );
}
scenario!(clock_stays_where_msg_keys_can_express_it);
