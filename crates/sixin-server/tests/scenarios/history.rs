//! Scenarios: history, `fetch_session_msgs` (SPEC §4.3), and the emoji decoration of the texts it
//! returns (SPEC §4.4 "Emoji").

use serde_json::{json, Value};

use crate::*;

const TV_DOGE_URL: &str =
    "http://i0.hdslb.com/bfs/emote/6ea59c827c414b4a2955fe79e0f6fd3dcd515e24.png";
/// The 小黄脸 `[doge]`, which `[doge]` means in text sent with `new_face_version = 1`.
const FACE_DOGE_URL: &str =
    "http://i0.hdslb.com/bfs/emote/bba7c12aa51fed0199c241465560dfc2714c593e.png";
const FACE_SMILE_URL: &str =
    "http://i0.hdslb.com/bfs/emote/685612eadc33f6bc233776c6241813385844f182.png";
const SYSTEM_NOTICE_MID: u64 = 844424930131968;

// ---- helpers ----

/// Two users who follow each other, so no send limit or tip gets in the way.
async fn friends(s: &Server) -> (User, User) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.follow(&a, &b, true).await;
    s.follow(&b, &a, true).await;
    (a, b)
}

/// Sends `n` texts `"m1"`..`"mn"` one after the other, alternating senders (a first), so that
/// message `"m{i}"` has seqno i. Returns the msg_keys in seqno order.
async fn chat(s: &Server, a: &User, b: &User, n: u64) -> Vec<u64> {
    let mut keys = Vec::new();
    for i in 1..=n {
        let (from, to) = if i % 2 == 1 { (a, b) } else { (b, a) };
        keys.push(s.send_text(from, to, &format!("m{i}")).await);
    }
    keys
}

/// Sends `n` texts from `from` to `to`, `batch` at a time concurrently (the clock moves 1 s
/// between batches).
async fn send_many(s: &Server, from: &User, to: &User, n: usize, batch: usize) {
    let mut sent = 0;
    while sent < n {
        let mut set = tokio::task::JoinSet::new();
        for i in sent..(sent + batch).min(n) {
            let http = s.http.clone();
            let url = s.url(SEND);
            let cookie = from.cookie();
            let mut form = Server::send_form(
                from,
                to.mid,
                1,
                &json!({ "content": format!("bulk {i}") }).to_string(),
            );
            form.push(("csrf", from.bili_jct.clone()));
            set.spawn(async move {
                let resp = http
                    .post(url)
                    .header("Cookie", cookie)
                    .form(&form)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(resp.status().as_u16(), 200);
                resp.text().await.expect("body")
            });
        }
        while let Some(r) = set.join_next().await {
            let v: Value = serde_json::from_str(&r.expect("task")).expect("JSON answer");
            assert_eq!(v["code"], 0, "bulk send failed: {v}");
        }
        sent += batch;
        s.advance_clock(1000).await;
    }
}

/// A text with explicit `msg[new_face_version]` (None: field absent); returns its msg_key.
async fn send_face(s: &Server, from: &User, to: &User, text: &str, nfv: Option<&str>) -> u64 {
    let mut form = Server::send_form(from, to.mid, 1, &json!({ "content": text }).to_string());
    if let Some(v) = nfv {
        form.push(("msg[new_face_version]", v.to_string()));
    }
    let v = s.post(from, SEND, &form).await;
    ok(&v)["msg_key"].as_u64().expect("msg_key")
}

/// The raw answer text of a fetch as `user` with exactly `params`.
async fn fetch_text(s: &Server, user: &User, params: &[(&str, String)]) -> String {
    let resp = s
        .http
        .get(s.url(FETCH))
        .header("Cookie", user.cookie())
        .query(params)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("body")
}

/// `data` of a successful fetch of `user`'s conversation with `talker`, plus `extra` params.
async fn page(s: &Server, user: &User, talker: &User, extra: &[(&str, String)]) -> Value {
    let v = s.fetch(user, talker, extra).await;
    ok(&v).clone()
}

fn seqnos(d: &Value) -> Vec<u64> {
    d["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["msg_seqno"].as_u64().expect("msg_seqno"))
                .collect()
        })
        .unwrap_or_default()
}

fn texts(d: &Value) -> Vec<String> {
    d["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let c: Value = serde_json::from_str(m["content"].as_str().expect("content"))
                        .expect("content JSON");
                    c["content"].as_str().expect("text").to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A non-empty page: exactly these seqnos (newest first), their bounds, and `has_more`; each text
/// is `"m{seqno}"` (the `chat` convention).
fn assert_chat_page(d: &Value, expected: &[u64], has_more: u8) {
    assert!(!expected.is_empty());
    assert_eq!(seqnos(d), expected, "{d}");
    assert_eq!(
        texts(d),
        expected.iter().map(|n| format!("m{n}")).collect::<Vec<_>>(),
        "{d}"
    );
    assert_eq!(d["min_seqno"].as_u64(), expected.last().copied(), "{d}");
    assert_eq!(d["max_seqno"].as_u64(), expected.first().copied(), "{d}");
    assert_eq!(d["has_more"], has_more, "{d}");
    assert!(d.get("e_infos").is_none(), "{d}");
}

/// The empty page: messages null, has_more 0, min_seqno u64::MAX, max_seqno 0, no e_infos.
fn assert_empty_page(d: &Value) {
    assert_eq!(d["messages"], Value::Null, "{d}");
    assert!(
        d.as_object().expect("data object").contains_key("messages"),
        "{d}"
    );
    assert_eq!(d["has_more"], 0, "{d}");
    assert_eq!(d["min_seqno"].as_u64(), Some(u64::MAX), "{d}");
    assert_eq!(d["max_seqno"], 0, "{d}");
    assert!(d.get("e_infos").is_none(), "{d}");
}

/// The same, on the raw text: the sentinel must be written as the exact integer.
fn assert_empty_page_text(text: &str) {
    assert!(
        text.contains("\"min_seqno\":18446744073709551615"),
        "{text}"
    );
    assert!(text.contains("\"messages\":null"), "{text}");
    assert!(text.contains("\"max_seqno\":0"), "{text}");
    assert!(text.contains("\"has_more\":0"), "{text}");
    assert!(!text.contains("e_infos"), "{text}");
    let v: Value = serde_json::from_str(text).expect("JSON");
    assert_empty_page(ok(&v));
}

fn p(name: &'static str, value: impl ToString) -> (&'static str, String) {
    (name, value.to_string())
}

fn fetch_params(talker: u64, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![p("talker_id", talker), p("session_type", 1)];
    v.extend(extra.iter().cloned());
    v
}

/// Error answers carry no data.
fn assert_fetch_err(v: &Value, code: i64, message: &str) {
    assert_err(v, code, message);
    assert!(v.get("data").is_none_or(Value::is_null), "{v}");
}

fn desc(hi: u64, lo: u64) -> Vec<u64> {
    (lo..=hi).rev().collect()
}

// ---- the four windows ----

async fn window_neither_bound_newest_size(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 10).await;
    let d = page(s, &a, &b, &[p("size", 3)]).await;
    assert_chat_page(&d, &[10, 9, 8], 1);
    let d = page(s, &b, &a, &[p("size", 9)]).await;
    assert_chat_page(&d, &desc(10, 2), 1);
    // Exactly all of them: nothing older remains.
    let d = page(s, &a, &b, &[p("size", 10)]).await;
    assert_chat_page(&d, &desc(10, 1), 0);
    let d = page(s, &b, &a, &[p("size", 20)]).await;
    assert_chat_page(&d, &desc(10, 1), 0);
    // end_seqno=0 is the same as absent.
    let d = page(s, &a, &b, &[p("size", 3), p("end_seqno", 0)]).await;
    assert_chat_page(&d, &[10, 9, 8], 1);
    // begin_seqno=0 is a bound below every seqno: catching up from the very beginning.
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 3), p("begin_seqno", 0), p("end_seqno", 0)],
    )
    .await;
    assert_chat_page(&d, &[3, 2, 1], 1);
    // Empty bounds too.
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 3), p("begin_seqno", ""), p("end_seqno", "")],
    )
    .await;
    assert_chat_page(&d, &[10, 9, 8], 1);
}
scenario!(window_neither_bound_newest_size);

async fn window_end_only_pages_backwards(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 10).await;
    let d = page(s, &a, &b, &[p("size", 3), p("end_seqno", 8)]).await;
    assert_chat_page(&d, &[7, 6, 5], 1);
    // Exclusive: end itself is never returned.
    let d = page(s, &a, &b, &[p("size", 3), p("end_seqno", 4)]).await;
    assert_chat_page(&d, &[3, 2, 1], 0);
    let d = page(s, &b, &a, &[p("size", 5), p("end_seqno", 3)]).await;
    assert_chat_page(&d, &[2, 1], 0);
    let d = page(s, &a, &b, &[p("size", 1), p("end_seqno", 2)]).await;
    assert_chat_page(&d, &[1], 0);
    let d = page(s, &a, &b, &[p("size", 5), p("end_seqno", 1)]).await;
    assert_empty_page(&d);
    // An end above the newest message: the newest `size`.
    let d = page(s, &a, &b, &[p("size", 3), p("end_seqno", 11)]).await;
    assert_chat_page(&d, &[10, 9, 8], 1);
    let d = page(s, &a, &b, &[p("size", 3), p("end_seqno", 1000)]).await;
    assert_chat_page(&d, &[10, 9, 8], 1);
    let d = page(s, &a, &b, &[p("size", 3), p("end_seqno", u64::MAX)]).await;
    assert_chat_page(&d, &[10, 9, 8], 1);
    let d = page(s, &a, &b, &[p("size", 20), p("end_seqno", 10)]).await;
    assert_chat_page(&d, &desc(9, 1), 0);
}
scenario!(window_end_only_pages_backwards);

async fn window_begin_only_catches_up_oldest_first(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 10).await;
    // The OLDEST `size` above begin, returned newest first.
    let d = page(s, &a, &b, &[p("size", 3), p("begin_seqno", 2)]).await;
    assert_chat_page(&d, &[5, 4, 3], 1);
    let d = page(s, &b, &a, &[p("size", 3), p("begin_seqno", 6)]).await;
    assert_chat_page(&d, &[9, 8, 7], 1);
    // Exactly the remaining ones: nothing newer remains.
    let d = page(s, &a, &b, &[p("size", 3), p("begin_seqno", 7)]).await;
    assert_chat_page(&d, &[10, 9, 8], 0);
    let d = page(s, &a, &b, &[p("size", 3), p("begin_seqno", 9)]).await;
    assert_chat_page(&d, &[10], 0);
    let d = page(s, &a, &b, &[p("size", 20), p("begin_seqno", 1)]).await;
    assert_chat_page(&d, &desc(10, 2), 0);
    // Exclusive: begin itself is never returned; nothing above the newest.
    let d = page(s, &a, &b, &[p("size", 3), p("begin_seqno", 10)]).await;
    assert_empty_page(&d);
    let d = page(s, &a, &b, &[p("size", 3), p("begin_seqno", 11)]).await;
    assert_empty_page(&d);
    let d = page(s, &a, &b, &[p("size", 3), p("begin_seqno", u64::MAX)]).await;
    assert_empty_page(&d);
    // end_seqno=0 is absent: still the begin-only window.
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 3), p("begin_seqno", 2), p("end_seqno", 0)],
    )
    .await;
    assert_chat_page(&d, &[5, 4, 3], 1);
}
scenario!(window_begin_only_catches_up_oldest_first);

async fn window_both_bounds_newest_between(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 10).await;
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 3), p("begin_seqno", 2), p("end_seqno", 9)],
    )
    .await;
    assert_chat_page(&d, &[8, 7, 6], 1);
    let d = page(
        s,
        &b,
        &a,
        &[p("size", 3), p("begin_seqno", 2), p("end_seqno", 6)],
    )
    .await;
    assert_chat_page(&d, &[5, 4, 3], 0);
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 10), p("begin_seqno", 2), p("end_seqno", 9)],
    )
    .await;
    assert_chat_page(&d, &desc(8, 3), 0);
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 1), p("begin_seqno", 4), p("end_seqno", 6)],
    )
    .await;
    assert_chat_page(&d, &[5], 0);
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 20), p("begin_seqno", 8), p("end_seqno", 1000)],
    )
    .await;
    assert_chat_page(&d, &[10, 9], 0);
    // Nothing strictly between.
    for (begin, end) in [(5, 6), (5, 5), (6, 5), (10, 11), (20, 30)] {
        let d = page(
            s,
            &a,
            &b,
            &[p("size", 5), p("begin_seqno", begin), p("end_seqno", end)],
        )
        .await;
        assert_empty_page(&d);
    }
}
scenario!(window_both_bounds_newest_between);

// ---- sizes ----

async fn empty_history_sentinel_is_exact(s: &Server) {
    let (a, b) = friends(s).await;
    let stranger = s.user("carol").await;
    // Never chatted, with and without sizes, bounds, and web.
    for (viewer, talker) in [
        (&a, b.mid),
        (&b, a.mid),
        (&a, stranger.mid),
        (&stranger, a.mid),
    ] {
        for extra in [
            vec![],
            vec![p("size", 20)],
            vec![p("size", 200), p("begin_seqno", 1)],
            vec![p("size", 20), p("end_seqno", 5), p("mobi_app", "web")],
        ] {
            let text = fetch_text(s, viewer, &fetch_params(talker, &extra)).await;
            assert_empty_page_text(&text);
        }
    }
    // One's own mid, and a mid nobody has.
    let text = fetch_text(s, &a, &fetch_params(a.mid, &[p("size", 20)])).await;
    assert_empty_page_text(&text);
    let text = fetch_text(s, &a, &fetch_params(987654321012, &[p("size", 20)])).await;
    assert_empty_page_text(&text);
    // A chat between two others is not visible to a third.
    chat(s, &a, &b, 2).await;
    let text = fetch_text(s, &stranger, &fetch_params(a.mid, &[p("size", 20)])).await;
    assert_empty_page_text(&text);
    // An empty window of an existing chat is the same page.
    let text = fetch_text(
        s,
        &a,
        &fetch_params(b.mid, &[p("size", 20), p("begin_seqno", 2)]),
    )
    .await;
    assert_empty_page_text(&text);
}
scenario!(empty_history_sentinel_is_exact);

async fn size_absent_or_zero_returns_only_system_tips(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 3).await;
    for viewer in [&a, &b] {
        let talker = if viewer.mid == a.mid { &b } else { &a };
        let text = fetch_text(s, viewer, &fetch_params(talker.mid, &[])).await;
        assert_empty_page_text(&text);
        let text = fetch_text(s, viewer, &fetch_params(talker.mid, &[p("size", 0)])).await;
        assert_empty_page_text(&text);
        let text = fetch_text(s, viewer, &fetch_params(talker.mid, &[p("size", "")])).await;
        assert_empty_page_text(&text);
        let text = fetch_text(
            s,
            viewer,
            &fetch_params(talker.mid, &[p("size", 0), p("end_seqno", 3)]),
        )
        .await;
        assert_empty_page_text(&text);
    }
}
scenario!(size_absent_or_zero_returns_only_system_tips);

async fn size_one_and_two_hundred(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 4).await;
    let d = page(s, &a, &b, &[p("size", 1)]).await;
    assert_chat_page(&d, &[4], 1);
    let d = page(s, &a, &b, &[p("size", 1), p("end_seqno", 4)]).await;
    assert_chat_page(&d, &[3], 1);
    let d = page(s, &a, &b, &[p("size", 1), p("begin_seqno", 2)]).await;
    assert_chat_page(&d, &[3], 1);
    let d = page(s, &a, &b, &[p("size", 1), p("begin_seqno", 3)]).await;
    assert_chat_page(&d, &[4], 0);
    let d = page(s, &a, &b, &[p("size", 200)]).await;
    assert_chat_page(&d, &[4, 3, 2, 1], 0);
    // Leading zeros are still decimal numbers.
    let d = page(s, &a, &b, &[p("size", "002")]).await;
    assert_chat_page(&d, &[4, 3], 1);
}
scenario!(size_one_and_two_hundred);

async fn size_above_200_is_clamped(s: &Server) {
    let (a, b) = friends(s).await;
    send_many(s, &a, &b, 205, 8).await;
    let mut full = None;
    for size in ["200", "201", "500", "4294967296", "18446744073709551615"] {
        let d = page(s, &b, &a, &[p("size", size)]).await;
        assert_eq!(
            d["messages"].as_array().map(Vec::len),
            Some(200),
            "size={size}"
        );
        assert_eq!(seqnos(&d), desc(205, 6), "size={size}");
        assert_eq!(d["min_seqno"], 6);
        assert_eq!(d["max_seqno"], 205);
        assert_eq!(d["has_more"], 1);
        assert!(d.get("e_infos").is_none(), "{d}");
        if let Some(f) = &full {
            assert_eq!(&d, f, "size={size}");
        }
        full = Some(d);
    }
    // Every message exactly once, with distinct keys.
    let d = full.unwrap();
    let mut seen: Vec<String> = texts(&d);
    let older = page(s, &a, &b, &[p("size", 500), p("end_seqno", 6)]).await;
    assert_eq!(seqnos(&older), desc(5, 1));
    assert_eq!(older["has_more"], 0);
    seen.extend(texts(&older));
    seen.sort();
    let mut want: Vec<String> = (0..205).map(|i| format!("bulk {i}")).collect();
    want.sort();
    assert_eq!(seen, want);
    // begin_seqno=0 catches up from the beginning: the oldest 200, with five newer left.
    let d = page(
        s,
        &a,
        &b,
        &[p("size", 500), p("begin_seqno", 0), p("end_seqno", 0)],
    )
    .await;
    assert_eq!(seqnos(&d), desc(200, 1));
    assert_eq!(d["has_more"], 1);
    let d = page(s, &a, &b, &[p("size", 1000), p("begin_seqno", 4)]).await;
    assert_eq!(seqnos(&d), desc(204, 5));
    assert_eq!(d["has_more"], 1);
    assert_eq!(d["min_seqno"], 5);
    assert_eq!(d["max_seqno"], 204);
}
scenario!(size_above_200_is_clamped);

// ---- paging ----

async fn paging_backwards_visits_every_message_once(s: &Server) {
    let (a, b) = friends(s).await;
    let keys = chat(s, &a, &b, 45).await;
    let mut got: Vec<u64> = Vec::new();
    let mut got_keys: Vec<u64> = Vec::new();
    let mut end: Option<u64> = None;
    let mut pages = Vec::new();
    loop {
        let mut extra = vec![p("size", 20)];
        if let Some(e) = end {
            extra.push(p("end_seqno", e));
        }
        let d = page(s, &b, &a, &extra).await;
        let sq = seqnos(&d);
        pages.push((sq.clone(), d["has_more"].as_u64().unwrap()));
        got.extend(&sq);
        got_keys.extend(
            d["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["msg_key"].as_u64().unwrap()),
        );
        if d["has_more"] == 0 {
            break;
        }
        end = Some(d["min_seqno"].as_u64().unwrap());
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(
        pages,
        vec![(desc(45, 26), 1), (desc(25, 6), 1), (desc(5, 1), 0)]
    );
    assert_eq!(got, desc(45, 1));
    got_keys.reverse();
    assert_eq!(got_keys, keys);
    // Past the oldest: the empty page.
    let d = page(s, &b, &a, &[p("size", 20), p("end_seqno", 1)]).await;
    assert_empty_page(&d);
}
scenario!(paging_backwards_visits_every_message_once);

async fn paging_forwards_catches_up_in_order(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 7).await;
    // The client's first look.
    let first = page(s, &b, &a, &[p("size", 20)]).await;
    assert_chat_page(&first, &desc(7, 1), 0);
    let mut all: Vec<u64> = seqnos(&first).into_iter().rev().collect();
    // 38 more arrive, then the client catches up from its newest.
    for i in 8..=45u64 {
        let (from, to) = if i % 2 == 1 { (&a, &b) } else { (&b, &a) };
        s.send_text(from, to, &format!("m{i}")).await;
    }
    let mut begin = first["max_seqno"].as_u64().unwrap();
    let mut pages = Vec::new();
    loop {
        let d = page(s, &b, &a, &[p("size", 20), p("begin_seqno", begin)]).await;
        let sq = seqnos(&d);
        let has_more = d["has_more"].as_u64().unwrap();
        pages.push((sq.clone(), has_more));
        all.extend(sq.iter().rev());
        assert_eq!(
            texts(&d),
            sq.iter().map(|n| format!("m{n}")).collect::<Vec<_>>()
        );
        if has_more == 0 {
            break;
        }
        begin = d["max_seqno"].as_u64().unwrap();
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages, vec![(desc(27, 8), 1), (desc(45, 28), 0)]);
    assert_eq!(all, (1..=45).collect::<Vec<_>>());
    // Caught up: the empty page, has_more 0.
    let d = page(s, &b, &a, &[p("size", 20), p("begin_seqno", 45)]).await;
    assert_empty_page(&d);
    // One more arrives: the next catch-up returns just it.
    s.send_text(&a, &b, "m46").await;
    let d = page(s, &b, &a, &[p("size", 20), p("begin_seqno", 45)]).await;
    assert_chat_page(&d, &[46], 0);
}
scenario!(paging_forwards_catches_up_in_order);

// ---- message objects ----

const MESSAGE_FIELDS: [&str; 13] = [
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
    "new_face_version",
    "msg_source",
];

fn assert_fields(m: &Value) {
    let obj = m.as_object().expect("message object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    let mut want = MESSAGE_FIELDS.to_vec();
    want.sort();
    assert_eq!(keys, want, "{m}");
}

async fn sender_and_receiver_see_identical_messages(s: &Server) {
    let (a, b) = friends(s).await;
    let (st, v) = s
        .admin(
            reqwest::Method::POST,
            "/clock",
            Some(json!({ "set_ms": 1_700_000_000_000i64 })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let k1 = s.send_text(&a, &b, "你好[doge]").await;
    let img = json!({"url": "https://i0.hdslb.com/bfs/im/abc.png", "height": 10, "width": 20, "imageType": "png", "original": 1, "size": 1.5}).to_string();
    let v = s.send(&b, a.mid, 2, &img).await;
    let k2 = ok(&v)["msg_key"].as_u64().unwrap();
    let k3 = send_face(s, &b, &a, "new [doge]", Some("1")).await;
    let mut form = Server::send_form(
        &a,
        b.mid,
        1,
        &json!({"content": "from android"}).to_string(),
    );
    form.push(("mobi_app", "android".into()));
    let v = s.post(&a, &format!("{SEND}?mobi_app=android"), &form).await;
    let k4 = ok(&v)["msg_key"].as_u64().unwrap();
    let k5 = s.send_text(&a, &b, "oops").await;
    let v = s.send(&a, b.mid, 5, &k5.to_string()).await;
    let k6 = ok(&v)["msg_key"].as_u64().unwrap();

    let da = page(s, &a, &b, &[p("size", 20)]).await;
    let db = page(s, &b, &a, &[p("size", 20)]).await;
    assert_eq!(da, db, "both sides see the same page");
    let ms = db["messages"].as_array().unwrap();
    assert_eq!(ms.len(), 6);
    for m in ms {
        assert_fields(m);
        assert_eq!(m["receiver_type"], 1);
        assert_eq!(m["notify_code"], "");
        assert_eq!(m["at_uids"], Value::Null);
        let ts = m["timestamp"].as_i64().unwrap();
        assert!(
            (1_700_000_000..1_700_000_010).contains(&ts),
            "server clock seconds: {m}"
        );
    }
    let by_seq = |n: u64| ms.iter().find(|m| m["msg_seqno"] == n).unwrap();
    let expect = [
        (
            1,
            k1,
            &a,
            &b,
            1,
            json!({"content": "你好[doge]"}).to_string(),
            0,
            0,
            7,
        ),
        (2, k2, &b, &a, 2, img.clone(), 0, 0, 7),
        (
            3,
            k3,
            &b,
            &a,
            1,
            json!({"content": "new [doge]"}).to_string(),
            1,
            0,
            7,
        ),
        (
            4,
            k4,
            &a,
            &b,
            1,
            json!({"content": "from android"}).to_string(),
            0,
            0,
            2,
        ),
        (
            5,
            k5,
            &a,
            &b,
            1,
            json!({"content": "oops"}).to_string(),
            0,
            1,
            7,
        ),
        (6, k6, &a, &b, 5, k5.to_string(), 0, 0, 7),
    ];
    for (seq, key, from, to, ty, content, nfv, status, source) in expect {
        let m = by_seq(seq);
        assert_eq!(m["msg_key"].as_u64(), Some(key), "{m}");
        assert_eq!(m["sender_uid"], from.mid, "{m}");
        assert_eq!(m["receiver_id"], to.mid, "{m}");
        assert_eq!(m["msg_type"], ty, "{m}");
        assert_eq!(m["content"], content, "{m}");
        assert_eq!(m["new_face_version"], nfv, "{m}");
        assert_eq!(m["msg_status"], status, "{m}");
        assert_eq!(m["msg_source"], source, "{m}");
    }
    assert_eq!(seqnos(&db), desc(6, 1));
    // msg_keys are time-ordered.
    let mut ks = vec![k1, k2, k3, k4, k5, k6];
    let sorted = {
        let mut x = ks.clone();
        x.sort();
        x
    };
    assert_eq!(ks, sorted);
    ks.dedup();
    assert_eq!(ks.len(), 6);
    // Keys above 2^53 are written as exact integers.
    let text = fetch_text(s, &a, &fetch_params(b.mid, &[p("size", 20)])).await;
    for k in [k1, k2, k3, k4, k5, k6] {
        assert!(text.contains(&format!("\"msg_key\":{k},")), "{k} in {text}");
    }
    assert!(text.contains(&format!("\"content\":\"{k5}\"")), "{text}");
    // Also for web clients.
    let wa = page(s, &a, &b, &[p("size", 20), p("mobi_app", "web")]).await;
    let wb = page(s, &b, &a, &[p("size", 20), p("mobi_app", "web")]).await;
    assert_eq!(wa, wb);
}
scenario!(sender_and_receiver_see_identical_messages);

async fn recalled_messages_and_recalls_are_returned(s: &Server) {
    let (a, b) = friends(s).await;
    s.send_text(&b, &a, "before").await;
    let secret = s.send_text(&a, &b, "secret [tv_doge]").await;
    s.advance_clock(30_000).await;
    let v = s.send(&a, b.mid, 5, &secret.to_string()).await;
    let recall = ok(&v)["msg_key"].as_u64().unwrap();
    s.send_text(&b, &a, "after").await;
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let d = page(s, viewer, talker, &[p("size", 20)]).await;
        assert_eq!(seqnos(&d), vec![4, 3, 2, 1]);
        let ms = d["messages"].as_array().unwrap();
        // The recall itself: type 5, the target key as content, normal status, no sys_cancel.
        assert_eq!(ms[1]["msg_type"], 5);
        assert_eq!(ms[1]["msg_key"].as_u64(), Some(recall));
        assert_eq!(ms[1]["content"], secret.to_string());
        assert_eq!(ms[1]["msg_status"], 0);
        assert_eq!(ms[1]["sender_uid"], a.mid);
        assert!(ms[1].get("sys_cancel").is_none(), "{}", ms[1]);
        // The recalled message keeps its content, with status 1.
        assert_eq!(ms[2]["msg_key"].as_u64(), Some(secret));
        assert_eq!(ms[2]["msg_type"], 1);
        assert_eq!(
            ms[2]["content"],
            json!({"content": "secret [tv_doge]"}).to_string()
        );
        assert_eq!(ms[2]["msg_status"], 1);
        assert!(ms[2].get("sys_cancel").is_none(), "{}", ms[2]);
        assert_eq!(ms[0]["msg_status"], 0);
        assert_eq!(ms[3]["msg_status"], 0);
        // Its emoji still count.
        assert_eq!(
            d["e_infos"],
            json!([{"text": "[tv_doge]", "url": TV_DOGE_URL, "size": 1}])
        );
        // Windows count recall rows like any other message.
        let d = page(s, viewer, talker, &[p("size", 1), p("end_seqno", 4)]).await;
        assert_eq!(seqnos(&d), vec![3]);
        assert_eq!(d["messages"][0]["msg_type"], 5);
        assert_eq!(d["has_more"], 1);
        assert!(d.get("e_infos").is_none(), "{d}");
    }
}
scenario!(recalled_messages_and_recalls_are_returned);

async fn fetch_does_not_mark_read(s: &Server) {
    let (a, b) = friends(s).await;
    for i in 1..=3 {
        s.send_text(&a, &b, &format!("m{i}")).await;
    }
    let before = s.unread(&b).await;
    assert_ne!(before["follow_unread"], 0, "{before}");
    let detail_before = s.detail(&b, a.mid).await;
    assert_eq!(ok(&detail_before)["unread_count"], 3, "{detail_before}");
    assert_eq!(ok(&detail_before)["ack_seqno"], 0, "{detail_before}");
    let sessions_before = s.sessions(&b, &[p("session_type", 1)]).await;
    for extra in [
        vec![p("size", 20)],
        vec![p("size", 200), p("mobi_app", "web")],
        vec![p("size", 1), p("begin_seqno", 2)],
        vec![p("size", 1), p("end_seqno", 2)],
        vec![],
    ] {
        let v = s.fetch(&b, &a, &extra).await;
        ok(&v);
    }
    assert_eq!(s.detail(&b, a.mid).await, detail_before);
    assert_eq!(s.unread(&b).await, before);
    assert_eq!(
        s.sessions(&b, &[p("session_type", 1)]).await,
        sessions_before
    );
    // The sender's side stays read.
    let d = s.detail(&a, b.mid).await;
    assert_eq!(ok(&d)["unread_count"], 0, "{d}");
    assert_eq!(ok(&d)["ack_seqno"], 3, "{d}");
}
scenario!(fetch_does_not_mark_read);

async fn system_account_history(s: &Server) {
    let b = s.user("bob").await;
    let content = json!({"title": "通知", "text": "你好[doge]", "jump_text": "", "jump_uri": ""});
    let (st, v) = s
        .admin(
            reqwest::Method::POST,
            "/messages/system",
            Some(json!({"system_msg_type": 5, "to": b.mid, "msg_type": 10, "content": content, "notify_code": "1_2", "msg_source": 5})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let text = fetch_text(s, &b, &fetch_params(SYSTEM_NOTICE_MID, &[p("size", 20)])).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    let d = ok(&v);
    assert_eq!(seqnos(d), vec![1]);
    let m = &d["messages"][0];
    assert_fields(m);
    assert_eq!(m["sender_uid"], SYSTEM_NOTICE_MID);
    assert_eq!(m["receiver_id"], b.mid);
    assert_eq!(m["msg_type"], 10);
    assert_eq!(m["notify_code"], "1_2");
    assert_eq!(m["msg_source"], 5);
    assert_eq!(
        serde_json::from_str::<Value>(m["content"].as_str().unwrap()).unwrap(),
        content
    );
    // Only texts get e_infos.
    assert!(d.get("e_infos").is_none(), "{d}");
    assert_eq!(d["has_more"], 0);
}
scenario!(system_account_history);

// ---- emoji ----

async fn e_infos_only_for_known_emoji_deduplicated(s: &Server) {
    let (a, b) = friends(s).await;
    s.send_text(&a, &b, "plain").await; // 1
    s.send_text(&b, &a, "[tv_doge][tv_doge] x [tv_doge]").await; // 2
    s.send_text(&a, &b, "[不存在的表情] [tv_doge] [] [[tv_doge]")
        .await; // 3
    send_face(s, &b, &a, "[微笑]", Some("1")).await; // 4: the 小黄脸 [微笑]
    s.send_text(&a, &b, "[nope] [tv_doge").await; // 5
    s.send_text(&b, &a, "no emoji here").await; // 6
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        // Pages without a known emoji have no e_infos at all.
        let d = page(s, viewer, talker, &[p("size", 2)]).await;
        assert_eq!(seqnos(&d), vec![6, 5]);
        assert!(d.get("e_infos").is_none(), "{d}");
        let d = page(s, viewer, talker, &[p("size", 1), p("end_seqno", 2)]).await;
        assert!(d.get("e_infos").is_none(), "{d}");
        // All six: [tv_doge] once although three messages hold it.
        let d = page(s, viewer, talker, &[p("size", 20)]).await;
        let mut infos = d["e_infos"].as_array().expect("e_infos").clone();
        infos.sort_by_key(|i| i["text"].as_str().unwrap().to_string());
        assert_eq!(
            Value::Array(infos),
            json!([
                {"text": "[tv_doge]", "url": TV_DOGE_URL, "size": 1},
                {"text": "[微笑]", "url": FACE_SMILE_URL, "size": 1},
            ])
        );
        // Only the returned messages count.
        let d = page(s, viewer, talker, &[p("size", 2), p("begin_seqno", 2)]).await;
        assert_eq!(seqnos(&d), vec![4, 3]);
        let mut infos = d["e_infos"].as_array().expect("e_infos").clone();
        infos.sort_by_key(|i| i["text"].as_str().unwrap().to_string());
        assert_eq!(
            Value::Array(infos),
            json!([
                {"text": "[tv_doge]", "url": TV_DOGE_URL, "size": 1},
                {"text": "[微笑]", "url": FACE_SMILE_URL, "size": 1},
            ])
        );
        let d = page(s, viewer, talker, &[p("size", 1), p("begin_seqno", 1)]).await;
        assert_eq!(
            d["e_infos"],
            json!([{"text": "[tv_doge]", "url": TV_DOGE_URL, "size": 1}])
        );
    }
}
scenario!(e_infos_only_for_known_emoji_deduplicated);

async fn old_emoji_names_without_web_are_returned_as_sent(s: &Server) {
    let (a, b) = friends(s).await;
    // Sent with odd JSON spacing and an extra field: returned byte for byte.
    let raw = "{ \"content\" : \"催更[doge][微笑]\", \"extra\": 1 }";
    let v = s.send(&a, b.mid, 1, raw).await;
    ok(&v);
    let mut form = Server::send_form(&b, a.mid, 1, "{\"content\":\"[doge]!\"}");
    form.push(("msg[new_face_version]", "0".into()));
    ok(&s.post(&b, SEND, &form).await);
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        for extra in [
            vec![p("size", 20)],
            vec![p("size", 20), p("mobi_app", "android")],
        ] {
            let d = page(s, viewer, talker, &extra).await;
            let ms = d["messages"].as_array().unwrap();
            assert_eq!(ms[1]["content"], raw);
            assert_eq!(ms[1]["new_face_version"], 0);
            assert_eq!(ms[0]["content"], "{\"content\":\"[doge]!\"}");
            assert_eq!(ms[0]["new_face_version"], 0);
            let mut infos = d["e_infos"].as_array().expect("e_infos").clone();
            infos.sort_by_key(|i| i["text"].as_str().unwrap().to_string());
            // Old names: the text as written, the image of the new name.
            let tv_smile =
                "http://i0.hdslb.com/bfs/emote/70dc5c7b56f93eb61bddba11e28fb1d18fddcd4c.png";
            assert_eq!(
                Value::Array(infos),
                json!([
                    {"text": "[doge]", "url": TV_DOGE_URL, "size": 1},
                    {"text": "[微笑]", "url": tv_smile, "size": 1},
                ])
            );
        }
    }
}
scenario!(old_emoji_names_without_web_are_returned_as_sent);

async fn web_converts_old_names_of_old_face_texts(s: &Server) {
    let (a, b) = friends(s).await;
    send_face(s, &a, &b, "hi[doge][doge]", None).await; // 1: absent
    send_face(s, &b, &a, "[doge] and [tv_doge]", Some("0")).await; // 2: 0
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let d = page(s, viewer, talker, &[p("size", 20), p("mobi_app", "web")]).await;
        let ms = d["messages"].as_array().unwrap();
        assert_eq!(
            ms[0]["content"],
            json!({"content": "[tv_doge] and [tv_doge]"}).to_string()
        );
        assert_eq!(
            ms[1]["content"],
            json!({"content": "hi[tv_doge][tv_doge]"}).to_string()
        );
        assert_eq!(ms[0]["new_face_version"], 0);
        assert_eq!(
            d["e_infos"],
            json!([{"text": "[tv_doge]", "url": TV_DOGE_URL, "size": 1}])
        );
        // mobi_app other than web: unchanged.
        let d = page(s, viewer, talker, &[p("size", 20), p("mobi_app", "iphone")]).await;
        let ms = d["messages"].as_array().unwrap();
        assert_eq!(
            ms[0]["content"],
            json!({"content": "[doge] and [tv_doge]"}).to_string()
        );
        assert_eq!(
            ms[1]["content"],
            json!({"content": "hi[doge][doge]"}).to_string()
        );
        let mut infos = d["e_infos"].as_array().expect("e_infos").clone();
        infos.sort_by_key(|i| i["text"].as_str().unwrap().to_string());
        assert_eq!(
            Value::Array(infos),
            json!([
                {"text": "[doge]", "url": TV_DOGE_URL, "size": 1},
                {"text": "[tv_doge]", "url": TV_DOGE_URL, "size": 1},
            ])
        );
    }
    // A web text without old names comes back byte for byte.
    let raw = "{ \"content\" : \"[tv_doge] \\u4e2d\" }";
    ok(&s.send(&a, b.mid, 1, raw).await);
    let d = page(s, &b, &a, &[p("size", 1), p("mobi_app", "web")]).await;
    assert_eq!(d["messages"][0]["content"], raw);
    assert_eq!(
        d["e_infos"],
        json!([{"text": "[tv_doge]", "url": TV_DOGE_URL, "size": 1}])
    );
}
scenario!(web_converts_old_names_of_old_face_texts);

async fn web_keeps_names_of_new_face_texts(s: &Server) {
    let (a, b) = friends(s).await;
    send_face(s, &a, &b, "新[doge][微笑]", Some("1")).await;
    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        for extra in [
            vec![p("size", 20), p("mobi_app", "web")],
            vec![p("size", 20)],
        ] {
            let d = page(s, viewer, talker, &extra).await;
            let m = &d["messages"][0];
            assert_eq!(
                m["content"],
                json!({"content": "新[doge][微笑]"}).to_string()
            );
            assert_eq!(m["new_face_version"], 1);
            // [doge] and [微笑] are the 小黄脸 emotes of those names.
            assert_eq!(
                d["e_infos"],
                json!([
                    {"text": "[doge]", "url": FACE_DOGE_URL, "size": 1},
                    {"text": "[微笑]", "url": FACE_SMILE_URL, "size": 1},
                ])
            );
        }
    }
}
scenario!(web_keeps_names_of_new_face_texts);

// ---- errors and bad input ----

async fn bad_talker_id(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 1).await;
    let v = s
        .get(&a, FETCH, &[p("session_type", 1), p("size", 20)])
        .await;
    assert_fetch_err(&v, -400, "请求错误");
    for bad in [
        "",
        "abc",
        "-1",
        "-0x1",
        "1.5",
        "1e3",
        "18446744073709551616",
        "99999999999999999999999",
        " ",
        "0x10",
    ] {
        let v = s
            .get(
                &a,
                FETCH,
                &[p("talker_id", bad), p("session_type", 1), p("size", 20)],
            )
            .await;
        assert_fetch_err(&v, -400, "请求错误");
    }
    // u64::MAX is a well-formed id nobody has.
    let text = fetch_text(s, &a, &fetch_params(u64::MAX, &[p("size", 20)])).await;
    assert_empty_page_text(&text);
}
scenario!(bad_talker_id);

async fn bad_session_type(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 1).await;
    let v = s
        .get(&a, FETCH, &[p("talker_id", b.mid), p("size", 20)])
        .await;
    assert_fetch_err(&v, -400, "请求错误");
    for bad in ["", "abc", "1.0", "-x"] {
        let v = s
            .get(
                &a,
                FETCH,
                &[p("talker_id", b.mid), p("session_type", bad), p("size", 20)],
            )
            .await;
        assert_fetch_err(&v, -400, "请求错误");
    }
    for invalid in ["0", "3", "9", "256", "-1"] {
        let v = s
            .get(
                &a,
                FETCH,
                &[
                    p("talker_id", b.mid),
                    p("session_type", invalid),
                    p("size", 20),
                ],
            )
            .await;
        assert_fetch_err(&v, 2, "非法参数");
    }
}
scenario!(bad_session_type);

async fn bad_size_and_seqnos(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 3).await;
    for bad in ["-1", "abc", "1.5", "20abc"] {
        let v = s.fetch(&a, &b, &[p("size", bad)]).await;
        assert_fetch_err(&v, -400, "请求错误");
    }
    for name in ["begin_seqno", "end_seqno"] {
        for bad in ["abc", "-1", "1.5", "18446744073709551616"] {
            let v = s.fetch(&a, &b, &[p("size", 20), p(name, bad)]).await;
            assert_fetch_err(&v, -400, "请求错误");
        }
    }
    // Nothing changed: the history is intact.
    let d = page(s, &a, &b, &[p("size", 20)]).await;
    assert_chat_page(&d, &[3, 2, 1], 0);
}
scenario!(bad_size_and_seqnos);

async fn fan_group_session_not_member(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 1).await;
    for extra in [
        vec![],
        vec![p("size", 20)],
        vec![p("size", 20), p("begin_seqno", 1)],
    ] {
        let mut params = vec![p("talker_id", 12345), p("session_type", 2)];
        params.extend(extra);
        let v = s.get(&a, FETCH, &params).await;
        assert_fetch_err(&v, 700014, "你已不在此同萌中QAQ，无法执行此操作");
    }
    // The user id of a chat partner is no group either.
    let v = s
        .get(
            &a,
            FETCH,
            &[p("talker_id", b.mid), p("session_type", 2), p("size", 20)],
        )
        .await;
    assert_fetch_err(&v, 700014, "你已不在此同萌中QAQ，无法执行此操作");
}
scenario!(fan_group_session_not_member);

async fn fetch_requires_login(s: &Server) {
    let (a, b) = friends(s).await;
    chat(s, &a, &b, 2).await;
    let params = fetch_params(b.mid, &[p("size", 20)]);
    // No cookie at all.
    let resp = s
        .http
        .get(s.url(FETCH))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_fetch_err(&v, -101, "账号未登录");
    // No cookie and bad parameters: authentication comes first.
    let resp = s
        .http
        .get(s.url(FETCH))
        .query(&[("session_type", "9")])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_fetch_err(&v, -101, "账号未登录");
    // An unknown SESSDATA, with the right DedeUserID.
    let forged = User {
        sessdata: "0123456789abcdef0123456789abcdef".into(),
        ..a.clone()
    };
    let v = s.get(&forged, FETCH, &params).await;
    assert_fetch_err(&v, -101, "账号未登录");
    let empty = User {
        sessdata: String::new(),
        ..a.clone()
    };
    let v = s.get(&empty, FETCH, &params).await;
    assert_fetch_err(&v, -101, "账号未登录");
    // A revoked login.
    let (st, body) = s
        .admin(
            reqwest::Method::DELETE,
            &format!("/users/{}/logins", a.mid),
            None,
        )
        .await;
    assert!((200..300).contains(&st), "{st} {body}");
    let v = s.get(&a, FETCH, &params).await;
    assert_fetch_err(&v, -101, "账号未登录");
    // The other side's login still works.
    let d = page(s, &b, &a, &[p("size", 20)]).await;
    assert_chat_page(&d, &[2, 1], 0);
}
scenario!(fetch_requires_login);
