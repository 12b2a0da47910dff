//! Scenarios: the stream of a user's new messages (`GET /sixin/v1/events`, server-sent events).

use std::time::Duration;

use serde_json::{json, Value};

use crate::*;

const EVENTS: &str = "/sixin/v1/events";
const FETCH: &str = "/svr_sync/v1/svr_sync/fetch_session_msgs";

/// One server-sent event: its name, id and data.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    event: String,
    id: String,
    data: Value,
}

/// An open stream, read event by event.
struct Stream {
    resp: reqwest::Response,
    buf: String,
    /// The id of the `open` event.
    start: u64,
}

impl Stream {
    async fn open(s: &Server, user: &User, last_event_id: Option<&str>) -> Stream {
        Stream::open_at(&s.http, &s.base, user, last_event_id).await
    }

    async fn open_at(
        http: &reqwest::Client,
        base: &str,
        user: &User,
        last_event_id: Option<&str>,
    ) -> Stream {
        let mut req = events_request(http, base, user);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        Stream::from_response(req.send().await.expect("request")).await
    }

    async fn from_response(resp: reqwest::Response) -> Stream {
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut stream = Stream {
            resp,
            buf: String::new(),
            start: 0,
        };
        // First the stream's start: where a reconnect before any message resumes from.
        let open = stream
            .next_raw(Duration::from_secs(15))
            .await
            .expect("open");
        assert_eq!((open.event.as_str(), &open.data), ("open", &json!({})));
        stream.start = open.id.parse().expect("numeric id");
        stream
    }

    /// The next message event (see [`Stream::next_raw`]).
    async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        let e = self.next_raw(wait).await?;
        assert_eq!(e.event, "message", "{e:?}");
        Some(e)
    }

    /// The next event (comments skipped), `None` when the server ended the stream; fails
    /// the test after `wait` without one.
    async fn next_raw(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = Event {
                    event: String::new(),
                    id: String::new(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        e.event = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        e.id = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !e.event.is_empty() {
                    e.data = serde_json::from_str(&data).expect("event data is JSON");
                    return Some(e);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("an event in time")
                .expect("stream readable")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    async fn next(&mut self) -> Event {
        self.next_within(Duration::from_secs(15))
            .await
            .expect("the stream goes on")
    }

    /// Asserts nothing arrives for `wait`.
    async fn quiet_for(&mut self, wait: Duration) {
        let got = tokio::time::timeout(wait, self.next_within(wait * 2)).await;
        assert!(got.is_err(), "unexpected event: {got:?}");
    }
}

/// A request for `user`'s stream from the server at `base`.
fn events_request(http: &reqwest::Client, base: &str, user: &User) -> reqwest::RequestBuilder {
    http.get(format!("{base}{EVENTS}"))
        .header("Cookie", user.cookie())
}

/// The message objects of `viewer`'s conversation with `talker`, oldest first.
async fn messages(s: &Server, viewer: &User, talker: u64, session_type: u8) -> Vec<Value> {
    let v = s
        .get(
            viewer,
            FETCH,
            &[
                ("talker_id", talker.to_string()),
                ("session_type", session_type.to_string()),
                ("size", "50".to_string()),
            ],
        )
        .await;
    let mut m = ok(&v)["messages"].as_array().cloned().unwrap_or_default();
    m.reverse();
    m
}

fn expected(session_type: u8, talker: u64, msg: &Value) -> Event {
    Event {
        event: "message".into(),
        id: msg["msg_key"].as_u64().expect("msg_key").to_string(),
        data: json!({ "session_type": session_type, "talker_id": talker, "msg": msg }),
    }
}

async fn befriend(s: &Server, a: &User, b: &User) {
    s.follow(a, b, true).await;
    s.follow(b, a, true).await;
}

/// Streams that never poll: whatever they get, they were told about by the writes.
fn no_polling(c: &mut sixin_server::Config) {
    c.events_poll_ms = 3_600_000;
}

/// A stream gets every message of the caller's sessions stored after it opened (theirs and
/// their own, from any device), each exactly as history shows it, in the order stored, as
/// soon as it is stored (the streams here never poll).
async fn events_stream_new_messages(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let c = s.user("c").await;
    befriend(s, &a, &b).await;
    befriend(s, &b, &c).await;
    s.send_text(&a, &b, "before").await;

    let mut stream = Stream::open(s, &b, None).await;
    s.send_text(&a, &b, "1").await;
    s.send_text(&b, &a, "2").await;
    s.send_text(&c, &b, "3").await;
    // Nothing of conversations b is not in.
    s.send_text(&a, &c, "not b's").await;
    s.send_text(&a, &b, "4").await;

    let ab = messages(s, &b, a.mid, 1).await;
    let cb = messages(s, &b, c.mid, 1).await;
    assert_eq!(ab.len(), 4);
    let want = vec![
        expected(1, a.mid, &ab[1]),
        expected(1, a.mid, &ab[2]),
        expected(1, c.mid, &cb[0]),
        expected(1, a.mid, &ab[3]),
    ];
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(stream.next().await);
    }
    assert_eq!(got, want);
    // What goes to the dustbin is not announced.
    let d = s.user("d").await;
    ok(&s
        .send(&d, b.mid, 1, &json!({"content": "兼职刷单"}).to_string())
        .await);
    stream.quiet_for(Duration::from_millis(2500)).await;

    // A recall is a message too.
    let key = ab[3]["msg_key"].as_u64().unwrap();
    ok(&s.send(&a, b.mid, 5, &key.to_string()).await);
    let ab = messages(s, &b, a.mid, 1).await;
    assert_eq!(stream.next().await, expected(1, a.mid, &ab[4]));

    // Resuming after the second event: the stream starts RESUME_MARGIN_MS of keys earlier
    // (a message stored in that time the client never got is not lost), so it gives every
    // message of b's with a key after that, as they are now (the recalled one marked so),
    // in key order; then what comes next.
    let k = want[1].id.parse::<u64>().unwrap();
    let mut resumed = Stream::open(s, &b, Some(&want[1].id)).await;
    let from = k - (5000u64 << 22);
    assert_eq!(resumed.start, from);
    assert_eq!(ab[3]["msg_status"], 1, "{ab:?}");
    let mut again: Vec<Event> = ab
        .iter()
        .map(|m| expected(1, a.mid, m))
        .chain(cb.iter().map(|m| expected(1, c.mid, m)))
        .filter(|e| e.id.parse::<u64>().unwrap() > from)
        .collect();
    again.sort_by_key(|e| e.id.parse::<u64>().unwrap());
    assert!(again.len() >= 4, "{again:?}");
    for w in again {
        assert_eq!(resumed.next().await, w);
    }
    s.send_text(&c, &b, "5").await;
    let cb = messages(s, &b, c.mid, 1).await;
    assert_eq!(resumed.next().await, expected(1, c.mid, &cb[1]));
    assert_eq!(stream.next().await, expected(1, c.mid, &cb[1]));
}
scenario_with!(events_stream_new_messages, no_polling);

/// A member's stream gets the messages of their fan groups (the stream never polls).
async fn events_stream_group_messages(s: &Server) {
    let owner = s.user("owner").await;
    let m = s.user("m").await;
    let g = groups::group_of(s, &owner, "g").await;
    groups::join(s, g, &m).await;

    let mut stream = Stream::open(s, &m, None).await;
    groups::gsay(s, &owner, g, "大家好", &[]).await;
    let history = messages(s, &m, g, 2).await;
    let last = history.last().expect("the group's message");
    assert_eq!(last["content"], json!({"content": "大家好"}).to_string());
    assert_eq!(stream.next().await, expected(2, g, last));
}
scenario_with!(events_stream_group_messages, no_polling);

/// A resume may name its key as the `last_event_id` parameter too (a client that cannot set
/// headers on its first request).
async fn events_stream_resume_by_parameter(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    befriend(s, &a, &b).await;
    let k = s.send_text(&a, &b, "one").await;
    let k2 = s.send_text(&a, &b, "two").await;
    let resp = events_request(&s.http, &s.base, &b)
        .query(&[("last_event_id", k.to_string())])
        .send()
        .await
        .expect("request");
    let mut stream = Stream::from_response(resp).await;
    assert_eq!(stream.start, k - (5000u64 << 22));
    let ab = messages(s, &b, a.mid, 1).await;
    assert_eq!(ab[1]["msg_key"], k2);
    // Within the margin: both, in key order.
    assert_eq!(stream.next().await, expected(1, a.mid, &ab[0]));
    assert_eq!(stream.next().await, expected(1, a.mid, &ab[1]));
}
scenario_with!(events_stream_resume_by_parameter, no_polling);

/// A resume from a key in the future resumes from now (with the margin a resume has).
async fn events_stream_resume_from_the_future(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    befriend(s, &a, &b).await;
    let before = s.send_text(&a, &b, "before").await;
    let mut stream = Stream::open(s, &b, Some(&u64::MAX.to_string())).await;
    assert!(stream.start < before, "{} {before}", stream.start);
    assert!(
        stream.start > before - (6000u64 << 22),
        "{} {before}",
        stream.start
    );
    s.send_text(&a, &b, "after").await;
    let ab = messages(s, &b, a.mid, 1).await;
    assert_eq!(stream.next().await, expected(1, a.mid, &ab[0]));
    assert_eq!(stream.next().await, expected(1, a.mid, &ab[1]));
}
scenario_with!(events_stream_resume_from_the_future, no_polling);

fn unlimited(c: &mut sixin_server::Config) {
    c.sends_per_second = 1_000_000;
    c.events_poll_ms = 3_600_000;
}

/// More than one look's worth (2,000 messages) waiting for a resumed stream: it gets them
/// all, each once, over several looks.
async fn events_stream_catches_up_over_several_looks(s: &Server) {
    let b = s.user("b").await;
    let mut senders = Vec::new();
    for k in 0..11 {
        let a = s.user(&format!("a{k}")).await;
        befriend(s, &a, &b).await;
        senders.push(a);
    }
    let sent = futures_join_all(senders.iter().map(|a| {
        let b = &b;
        async move {
            let mut keys = Vec::new();
            for n in 0..200 {
                keys.push(s.send_text(a, b, &n.to_string()).await);
            }
            keys
        }
    }))
    .await;
    let mut want: Vec<u64> = sent.into_iter().flatten().collect();
    want.sort_unstable();
    let mut stream = Stream::open(s, &b, Some("0")).await;
    assert_eq!(stream.start, 0);
    let mut got = Vec::new();
    for _ in 0..want.len() {
        got.push(stream.next().await.id.parse::<u64>().unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, want);
    stream.quiet_for(Duration::from_millis(500)).await;
}
scenario_with!(events_stream_catches_up_over_several_looks, unlimited);

/// A group joined after the stream opened: its messages come with the next poll.
async fn events_stream_group_joined_later(s: &Server) {
    let owner = s.user("owner").await;
    let m = s.user("m").await;
    let g = groups::group_of(s, &owner, "g").await;
    let mut stream = Stream::open(s, &m, None).await;
    // Let the first look find m in no group.
    stream.quiet_for(Duration::from_millis(300)).await;
    groups::join(s, g, &m).await;
    groups::gsay(s, &owner, g, "欢迎", &[]).await;
    let history = messages(s, &m, g, 2).await;
    assert!(!history.is_empty());
    let from_start: Vec<Event> = history
        .iter()
        .filter(|h| h["msg_key"].as_u64().unwrap() > stream.start)
        .map(|h| expected(2, g, h))
        .collect();
    assert!(
        from_start
            .iter()
            .any(|e| e.data["msg"]["content"].as_str() == Some(r#"{"content":"欢迎"}"#)),
        "{from_start:?}"
    );
    for w in from_start {
        assert_eq!(stream.next().await, w);
    }
}
scenario!(events_stream_group_joined_later);

/// A user keeps at most eight streams open: a ninth ends the oldest.
async fn events_streams_per_user_are_capped(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    befriend(s, &a, &b).await;
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(Stream::open(s, &b, None).await);
    }
    let mut ninth = Stream::open(s, &b, None).await;
    assert_eq!(streams[0].next_within(Duration::from_secs(10)).await, None);
    s.send_text(&a, &b, "hi").await;
    let ab = messages(s, &b, a.mid, 1).await;
    for st in streams[1..].iter_mut().chain([&mut ninth]) {
        assert_eq!(st.next().await, expected(1, a.mid, &ab[0]));
    }
}
scenario_with!(events_streams_per_user_are_capped, no_polling);

/// Who may open a stream, and from where.
async fn events_stream_bad_requests(s: &Server) {
    // No login: the documented JSON answer, not a stream.
    let resp = s.http.get(s.url(EVENTS)).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_err(&resp.json::<Value>().await.unwrap(), -101, "账号未登录");
    let a = s.user("a").await;
    let not_text = reqwest::header::HeaderValue::from_bytes(b"1\xff").unwrap();
    for bad in ["abc", "-1", "18446744073709551616", ""]
        .map(reqwest::header::HeaderValue::from_static)
        .into_iter()
        .chain([not_text])
    {
        let resp = events_request(&s.http, &s.base, &a)
            .header("Last-Event-ID", bad)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200);
        assert_err(&resp.json::<Value>().await.unwrap(), -400, "请求错误");
    }
    let resp = events_request(&s.http, &s.base, &a)
        .query(&[("last_event_id", "x1")])
        .send()
        .await
        .expect("request");
    assert_err(&resp.json::<Value>().await.unwrap(), -400, "请求错误");
    // Only GET.
    let resp = s
        .http
        .post(s.url(EVENTS))
        .header("Cookie", a.cookie())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 405);
}
scenario!(events_stream_bad_requests);

/// A stream ends once its login does.
async fn events_stream_ends_with_its_login(s: &Server) {
    let a = s.user("a").await;
    let mut stream = Stream::open(s, &a, None).await;
    ok(&s.post(&a, "/sixin/v1/logout", &[]).await);
    assert_eq!(stream.next_within(Duration::from_secs(10)).await, None);
}
scenario!(events_stream_ends_with_its_login);

/// Two processes on one database: a stream gets what the other process stores too.
async fn other_nodes_writes_reach_the_stream(database: String) {
    let ([n1, n2], [b1, b2], http) = two_nodes_on(database).await;
    let (a, b) = friends_on(&http, &b1).await;
    let (a, b) = (&a, &b);
    let mut stream = Stream::open_at(&http, &b1, b, None).await;
    let mut keys = Vec::new();
    for (k, base) in [&b2, &b1, &b2].into_iter().enumerate() {
        let v = send_on(&http, base, a, b.mid, &k.to_string()).await;
        keys.push(ok(&v)["msg_key"].as_u64().expect("msg_key"));
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = stream.next().await;
        assert_eq!(e.data["session_type"], 1);
        assert_eq!(e.data["talker_id"], a.mid);
        got.push((
            e.id.parse::<u64>().unwrap(),
            e.data["msg"]["content"].clone(),
        ));
    }
    got.sort_by_key(|g| g.0);
    let mut want: Vec<(u64, Value)> = keys
        .iter()
        .enumerate()
        .map(|(k, key)| (*key, json!(json!({"content": k.to_string()}).to_string())))
        .collect();
    want.sort_by_key(|w| w.0);
    assert_eq!(got, want);
    drop(stream);
    n1.stop().await.unwrap();
    n2.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_writes_reach_the_stream_sqlite() {
    let dir = tempdir::TempDir::new("events");
    other_nodes_writes_reach_the_stream(format!("sqlite://{}", dir.0.join("shared.db").display()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_writes_reach_the_stream_postgres() {
    let Some(admin) = postgres_url() else { return };
    let (url, _guard) = create_pg_database_pub(&admin).await;
    other_nodes_writes_reach_the_stream(url).await;
}

/// Shutting the server down ends its streams, so the shutdown does not wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_streams() {
    let dir = tempdir::TempDir::new("events-stop");
    let database = format!("sqlite://{}", dir.0.join("s.db").display());
    let ([n1, n2], [b1, _], http) = two_nodes_on(database).await;
    n2.stop().await.unwrap();
    let (a, _) = friends_on(&http, &b1).await;
    let mut stream = Stream::open_at(&http, &b1, &a, None).await;
    tokio::time::timeout(Duration::from_secs(10), n1.stop())
        .await
        .expect("the shutdown does not wait for the stream")
        .unwrap();
    assert_eq!(stream.next_within(Duration::from_secs(10)).await, None);
}

/// A user's channel for their streams lives as long as one of them does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_channels_go_with_the_last_stream() {
    let dir = tempdir::TempDir::new("events-channels");
    let database = format!("sqlite://{}", dir.0.join("s.db").display());
    let ([n1, n2], [b1, _], http) = two_nodes_on(database).await;
    n2.stop().await.unwrap();
    let (a, b) = friends_on(&http, &b1).await;
    let svc = n1.service.clone();
    let a1 = Stream::open_at(&http, &b1, &a, None).await;
    let mut a2 = Stream::open_at(&http, &b1, &a, None).await;
    let b1s = Stream::open_at(&http, &b1, &b, None).await;
    assert_eq!(svc.streaming_users(), 2);
    drop(a1);
    drop(b1s);
    // A stream whose client left ends when the server next writes to it.
    let k = ok(&send_on(&http, &b1, &b, a.mid, "hi").await)["msg_key"]
        .as_u64()
        .unwrap();
    assert_eq!(a2.next().await.id, k.to_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while svc.streaming_users() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "b's channel stayed");
        send_on(&http, &b1, &a, b.mid, "again").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(a2);
    while svc.streaming_users() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "a's channel stayed");
        send_on(&http, &b1, &b, a.mid, "again").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n1.stop().await.unwrap();
}
