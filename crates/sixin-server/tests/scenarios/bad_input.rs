//! Scenarios: bad_input.

#[allow(unused_imports)]
use crate::*;

// ---- send_msg bad input (SPEC §4.4 check 1 and the content rules of check 4) ----

mod send_msg {
    use serde_json::{json, Value};

    use crate::send::{
        assert_nothing_stored, form, history, send_raw, text, with, without, Form, NOBODY,
    };
    use crate::*;

    const NUMERIC: [&str; 5] = [
        "msg[sender_uid]",
        "msg[receiver_id]",
        "msg[receiver_type]",
        "msg[msg_type]",
        "msg[timestamp]",
    ];

    async fn bad(s: &Server, a: &User, f: &Form) {
        let v = send_raw(s, a, f).await;
        assert_err(&v, -400, "请求错误");
        assert!(v["data"].is_null(), "{v}");
    }

    async fn send_missing_required_fields_are_400(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        let full = form(&a, b.mid, 1, &text("hi"));
        for key in [
            "msg[sender_uid]",
            "msg[receiver_id]",
            "msg[receiver_type]",
            "msg[msg_type]",
            "msg[dev_id]",
            "msg[timestamp]",
            "msg[content]",
        ] {
            bad(s, &a, &without(full.clone(), key)).await;
            // Empty or blank counts as missing.
            bad(s, &a, &with(full.clone(), key, "")).await;
            bad(s, &a, &with(full.clone(), key, "   ")).await;
        }
        // Only the csrf.
        bad(s, &a, &vec![("csrf", a.bili_jct.clone())]).await;
        // The same names without brackets are other fields.
        let unbracketed: Form = full
            .iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix("msg[")
                        .and_then(|k| k.strip_suffix(']'))
                        .unwrap_or(k),
                    v.clone(),
                )
            })
            .collect();
        bad(s, &a, &unbracketed).await;
        assert_nothing_stored(s, &a, &b).await;
        // msg[msg_status] and msg[new_face_version] are optional.
        let f = without(
            without(full.clone(), "msg[msg_status]"),
            "msg[new_face_version]",
        );
        ok(&send_raw(s, &a, &f).await);
    }
    scenario!(send_missing_required_fields_are_400);

    async fn send_malformed_numbers_are_400(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        let full = form(&a, b.mid, 1, &text("hi"));
        for key in NUMERIC {
            for value in [
                "abc",
                "12abc",
                "-1",
                "-0x1",
                "+1",
                "1.5",
                "1.0",
                "1e3",
                "0x10",
                "１",
                "18446744073709551616",
                "99999999999999999999999999",
                "1,2",
                "[1]",
                "\"1\"",
            ] {
                bad(s, &a, &with(full.clone(), key, value)).await;
            }
        }
        // A negative or overflowing msg_type is malformed, not an unsendable type.
        for value in ["-1", "-7", "18446744073709551617"] {
            bad(s, &a, &with(full.clone(), "msg[msg_type]", value)).await;
        }
        assert_nothing_stored(s, &a, &b).await;
        // Surrounding blanks and leading zeros are fine.
        let f = with(
            with(full.clone(), "msg[receiver_id]", format!(" 00{} ", b.mid)),
            "msg[msg_type]",
            " 1 ",
        );
        ok(&send_raw(s, &a, &f).await);
        assert_eq!(history(s, &b, &a).await.len(), 1);
    }
    scenario!(send_malformed_numbers_are_400);

    async fn send_sender_mismatch_is_400(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        let full = form(&a, b.mid, 1, &text("hi"));
        for sender in [
            b.mid.to_string(),
            "0".into(),
            NOBODY.to_string(),
            u64::MAX.to_string(),
            (a.mid + 1).to_string(),
        ] {
            bad(s, &a, &with(full.clone(), "msg[sender_uid]", sender)).await;
        }
        // The DedeUserID cookie does not name the sender: the login does.
        let lying = User {
            mid: b.mid,
            ..a.clone()
        };
        bad(
            s,
            &lying,
            &with(full.clone(), "msg[sender_uid]", b.mid.to_string()),
        )
        .await;
        // Even when the type is unsendable, and even to oneself.
        bad(
            s,
            &a,
            &with(
                form(&a, b.mid, 7, "{}"),
                "msg[sender_uid]",
                b.mid.to_string(),
            ),
        )
        .await;
        bad(
            s,
            &a,
            &with(
                form(&a, a.mid, 1, &text("hi")),
                "msg[sender_uid]",
                b.mid.to_string(),
            ),
        )
        .await;
        assert_nothing_stored(s, &a, &b).await;
    }
    scenario!(send_sender_mismatch_is_400);

    async fn send_unknown_receiver_is_400(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        for to in [NOBODY, 0, u64::MAX, i64::MAX as u64, 1u64 << 63] {
            bad(s, &a, &form(&a, to, 1, &text("hi"))).await;
        }
        // receiver_type other than 1 (user) and 2 (fan group).
        for rt in ["0", "3", "4", "255", "256", "18446744073709551615"] {
            bad(
                s,
                &a,
                &with(form(&a, b.mid, 1, &text("hi")), "msg[receiver_type]", rt),
            )
            .await;
        }
        // Fan groups don't exist yet: not a member.
        let v = send_raw(
            s,
            &a,
            &with(form(&a, 1, 1, &text("hi")), "msg[receiver_type]", "2"),
        )
        .await;
        assert_err(&v, 700014, "你已不在此同萌中QAQ，无法执行此操作");
        assert_nothing_stored(s, &a, &b).await;
    }
    scenario!(send_unknown_receiver_is_400);

    async fn send_bad_text_content_is_400(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        for c in [
            "hello",
            "{\"content\":\"\"}",
            "\"hello\"",
            "[\"hello\"]",
            "[{\"content\":\"hello\"}]",
            "123",
            "null",
            "true",
            "{}",
            "{\"text\":\"hello\"}",
            "{\"Content\":\"hello\"}",
            "{\"content\":123}",
            "{\"content\":null}",
            "{\"content\":true}",
            "{\"content\":[\"hello\"]}",
            "{\"content\":{\"content\":\"hello\"}}",
            "{\"content\":\"hello\"",
            "{\"content\":\"hello\"} trailing",
            "{'content':'hello'}",
            "{\"content\":\"a\u{0}b\"}",
        ] {
            bad(s, &a, &form(&a, b.mid, 1, c)).await;
        }
        assert_nothing_stored(s, &a, &b).await;
        // Extra fields next to a non-empty content are kept as given.
        let c = "{\"content\":\"hi\",\"extra\":{\"x\":[1,2]}}";
        let v = send_raw(s, &a, &form(&a, b.mid, 1, c)).await;
        assert_eq!(ok(&v)["msg_content"].as_str(), Some(c));
        assert_eq!(history(s, &b, &a).await[0]["content"].as_str(), Some(c));
    }
    scenario!(send_bad_text_content_is_400);

    async fn send_bad_image_content_is_400(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        for c in [
            "{}",
            "{\"height\":300,\"width\":300,\"imageType\":\"jpeg\"}",
            "{\"URL\":\"https://i0.hdslb.com/a.png\"}",
            "{\"url\":123}",
            "{\"url\":null}",
            "{\"url\":[\"https://i0.hdslb.com/a.png\"]}",
            "{\"url\":{\"href\":\"https://i0.hdslb.com/a.png\"}}",
            "\"https://i0.hdslb.com/a.png\"",
            "https://i0.hdslb.com/a.png",
            "[]",
            "null",
            "not json",
            "{\"url\":\"https://i0.hdslb.com/a.png\"",
        ] {
            bad(s, &a, &form(&a, b.mid, 2, c)).await;
        }
        assert_nothing_stored(s, &a, &b).await;
    }
    scenario!(send_bad_image_content_is_400);

    async fn send_bad_recall_content_is_400(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        s.follow(&b, &a, true).await;
        let k = s.send_text(&a, &b, "target").await;
        for c in [
            "abc",
            "-5",
            "+5",
            "1.5",
            "1e3",
            "0x10",
            "18446744073709551616",
            "[1]",
            &format!("[{k}]"),
            "null",
            "true",
            "{}",
            "\"abc\"",
            "\"-5\"",
            "\"\"",
            &format!("{k}abc"),
            &format!("{k} {k}"),
        ] {
            bad(s, &a, &form(&a, b.mid, 5, c)).await;
        }
        let h = history(s, &b, &a).await;
        assert_eq!(h.len(), 1);
        assert_eq!(h[0]["msg_status"], 0);
    }
    scenario!(send_bad_recall_content_is_400);

    async fn send_control_characters_never_break_storage(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        s.follow(&b, &a, true).await;
        // A raw NUL can't be stored in PostgreSQL text: refused alike on both backends.
        bad(
            s,
            &a,
            &with(form(&a, b.mid, 1, &text("hi")), "msg[dev_id]", "dev\u{0}id"),
        )
        .await;
        assert_nothing_stored(s, &a, &b).await;
        // An escaped NUL (and other escapes) inside the JSON text is ordinary text.
        let c = "{\"content\":\"a\\u0000b\\t\\u001f\\ud83d\\ude00\"}";
        let v = send_raw(s, &a, &form(&a, b.mid, 1, c)).await;
        assert_eq!(ok(&v)["msg_content"].as_str(), Some(c));
        let h = history(s, &b, &a).await;
        assert_eq!(h.len(), 1);
        assert_eq!(h[0]["content"].as_str(), Some(c));
    }
    scenario!(send_control_characters_never_break_storage);

    async fn send_malformed_bodies_get_documented_codes(s: &Server) {
        let a = s.user("alice").await;
        let b = s.user("bob").await;
        let post = |ct: &'static str, body: Vec<u8>| {
            s.http
                .post(s.url(SEND))
                .header("Cookie", a.cookie())
                .query(&[("csrf", a.bili_jct.clone())])
                .header("Content-Type", ct)
                .body(body)
                .send()
        };
        // A JSON body is not a form: the fields are missing.
        let json_body = json!({"msg[sender_uid]": a.mid, "msg[receiver_id]": b.mid}).to_string();
        let resp = post("application/json", json_body.into_bytes())
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_err(&resp.json::<Value>().await.unwrap(), -400, "请求错误");
        // multipart without a boundary, and with a broken one.
        for body in [
            b"garbage".to_vec(),
            b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1".to_vec(),
        ] {
            let resp = post("multipart/form-data", body.clone()).await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            assert_err(&resp.json::<Value>().await.unwrap(), -400, "请求错误");
            let resp = post("multipart/form-data; boundary=x", body).await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            assert_err(&resp.json::<Value>().await.unwrap(), -400, "请求错误");
        }
        // A body far over any limit: still an envelope with a documented code.
        let huge = text(&"a".repeat(200_000));
        let resp = s
            .http
            .post(s.url(SEND))
            .header("Cookie", a.cookie())
            .form(&form(&a, b.mid, 1, &huge))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        // Over the body limit: refused unread, and the connection is closed after the answer,
        // which says so (a client must not send its next request on it).
        let connection = resp.headers().get("connection").cloned();
        let v: Value = resp.json().await.unwrap();
        assert_err(&v, -400, "请求错误");
        assert_eq!(
            connection.as_ref().and_then(|h| h.to_str().ok()),
            Some("close")
        );
        // Invalid UTF-8 in a form value.
        let body = format!(
            "msg[sender_uid]={}&msg[receiver_id]={}&msg[receiver_type]=1&msg[msg_type]=1&msg[dev_id]=x\
             &msg[timestamp]=1&msg[content]=%7B%22content%22%3A%22%FF%FE%22%7D",
            a.mid, b.mid
        );
        let resp = post("application/x-www-form-urlencoded", body.into_bytes())
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().await.unwrap();
        assert!(v["code"] == 0 || v["code"] == -400, "{v}");
        if v["code"] == 0 {
            // Whatever was stored reads back as valid JSON text.
            let h = history(s, &b, &a).await;
            assert_eq!(h.len(), 1);
            let c: Value = serde_json::from_str(h[0]["content"].as_str().unwrap()).unwrap();
            assert!(c["content"].is_string());
        } else {
            assert_err(&v, -400, "请求错误");
            assert_nothing_stored(s, &a, &b).await;
        }
    }
    scenario!(send_malformed_bodies_get_documented_codes);
}
