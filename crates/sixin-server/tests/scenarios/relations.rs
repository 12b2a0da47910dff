//! Scenarios: relations and who may message whom (SPEC §3, §4.2 session types 2/5/7/8/9,
//! §4.4 checks 6–7 and side effects, §4.5 `/x/relation/modify`, §5, §7): follow / block,
//! the one-message rule (21047) and its tip, privacy, rate limits, maintenance mode,
//! interception (the dustbin), auto-replies, the settings endpoints, system accounts and the
//! push counters of `single_unread` (docs/unread-counters.md), `is_limit`, `get_sys_setting`.
//! The decisions asserted here are listed in docs/decisions.md ("Relations and limits").

use reqwest::Method;
use serde_json::{json, Value};

use crate::*;

const MODIFY: &str = "/x/relation/modify";
const IS_LIMIT: &str = "/link_setting/v1/link_setting/is_limit";
const GET_SYS_SETTING: &str = "/link_setting/v1/link_setting/get_sys_setting";
const UPDATE_INTERCEPT: &str = "/session_svr/v1/session_svr/update_intercept";
const DUSTBIN_ACK: &str = "/session_svr/v1/session_svr/batch_update_dustbin_ack";
const DUSTBIN_RM: &str = "/session_svr/v1/session_svr/batch_rm_dustbin";
const SETTINGS: &str = "/sixin/v1/settings";

const FOLLOW: u8 = 1;
const UNFOLLOW: u8 = 2;
pub(crate) const BLOCK: u8 = 5;
const UNBLOCK: u8 = 6;

const TIP_TEXT: &str = "对方主动回复或关注你前，最多发送1条消息";
const GREETING: &str = "我们已互相关注，开始聊天吧~";
const E21047: &str = "对方主动回复或关注你前，最多发送1条消息~";
pub(crate) const E25003: &str = "因对方隐私设置，暂无法给他发送聊天消息";
const E25005: &str = "你已拉黑了对方，请先将对方移出黑名单后才能聊天";
const E21020: &str = "你发送消息频率过快，请稍后再发~";
const E21046: &str = "你发消息的频率太高了，请在24小时后再发吧~";
const E21028: &str = "由于系统升级，暂无法发送，敬请谅解";

/// 2024-03-11 00:00:00 in UTC+8 (= 2024-03-10 16:00:00 UTC), in ms: a day boundary of the
/// daily windows.
const MIDNIGHT_CST_MS: i64 = 1_710_086_400_000;

/// The built-in system accounts (docs/decisions.md).
const SYS_LIVE: u64 = 844424930131967; // 1 主播小助手
const SYS_NOTICE: u64 = 844424930131968; // 5 系统通知
const SYS_UP: u64 = 844424930131966; // 7 UP主小助手
const SYS_CUSTOM: u64 = 844424930131969; // 8 客服消息
const SYS_PAY: u64 = 844424930131965; // 9 支付小助手
const SYS_PIC: &str =
    "https://message.biliimg.com/bfs/im/489a63efadfb202366c2f88853d2217b5ddc7a13.png";

const IMAGE: &str = r#"{"url":"https://i0.hdslb.com/bfs/im/a1b2c3.png","height":100,"width":100,"imageType":"png","original":1,"size":12.5}"#;

// ---- helpers ----

fn st(n: u64) -> String {
    n.to_string()
}

fn text(t: &str) -> String {
    json!({ "content": t }).to_string()
}

async fn modify(s: &Server, who: &User, fid: u64, act: u8) -> Value {
    s.post(
        who,
        MODIFY,
        &[
            ("fid", st(fid)),
            ("act", act.to_string()),
            ("re_src", "11".into()),
        ],
    )
    .await
}

/// `/x/relation/modify` answers success without a `data` field, as upstream does.
fn assert_bare_ok(v: &Value) {
    assert_eq!(v, &json!({"code": 0, "msg": "0", "message": "0", "ttl": 1}));
}

pub(crate) async fn act(s: &Server, who: &User, fid: u64, act: u8) {
    assert_bare_ok(&modify(s, who, fid, act).await);
}

/// `get_session_ss` of `viewer` towards `talker`.
async fn ss(s: &Server, viewer: &User, talker: u64) -> Value {
    let v = s
        .get(viewer, GET_SESSION_SS, &[("talker_uid", st(talker))])
        .await;
    ok(&v).clone()
}

async fn follow_status(s: &Server, viewer: &User, talker: u64) -> Value {
    ss(s, viewer, talker).await["follow_status"].clone()
}

async fn set_clock(s: &Server, ms: i64) {
    let (code, v) = s
        .admin(Method::POST, "/clock", Some(json!({ "set_ms": ms })))
        .await;
    assert_eq!(code, 200, "{v}");
}

async fn send_text(s: &Server, from: &User, to: u64, t: &str) -> Value {
    s.send(from, to, 1, &text(t)).await
}

async fn say(s: &Server, from: &User, to: &User, t: &str) -> u64 {
    s.send_text(from, to, t).await
}

/// The conversation as `viewer` sees it, oldest first.
async fn history(s: &Server, viewer: &User, talker: u64) -> Vec<Value> {
    let v = s
        .get(
            viewer,
            FETCH,
            &[
                ("talker_id", st(talker)),
                ("session_type", "1".into()),
                ("size", "200".into()),
            ],
        )
        .await;
    let mut msgs = ok(&v)["messages"].as_array().cloned().unwrap_or_default();
    msgs.reverse();
    msgs
}

/// (sender, msg_type, msg_source, text) of each message; `text` is the text of a type-1
/// message, the first tip's text of a type 18, else the raw content.
fn summary(msgs: &[Value]) -> Vec<(u64, u64, u64, String)> {
    msgs.iter()
        .map(|m| {
            let content = m["content"].as_str().expect("content is a string");
            let t = match m["msg_type"].as_u64() {
                Some(1) => serde_json::from_str::<Value>(content).expect("text content")["content"]
                    .as_str()
                    .expect("text")
                    .to_string(),
                Some(18) => {
                    let outer: Value = serde_json::from_str(content).expect("tip content");
                    let items: Value =
                        serde_json::from_str(outer["content"].as_str().expect("tip items"))
                            .expect("tip items are JSON");
                    items[0]["text"].as_str().expect("tip text").to_string()
                }
                _ => content.to_string(),
            };
            (
                m["sender_uid"].as_u64().expect("sender_uid"),
                m["msg_type"].as_u64().expect("msg_type"),
                m["msg_source"].as_u64().expect("msg_source"),
                t,
            )
        })
        .collect()
}

async fn said(s: &Server, viewer: &User, talker: u64) -> Vec<(u64, u64, u64, String)> {
    summary(&history(s, viewer, talker).await)
}

fn line(sender: u64, msg_type: u64, source: u64, t: &str) -> (u64, u64, u64, String) {
    (sender, msg_type, source, t.to_string())
}

async fn list(s: &Server, viewer: &User, session_type: u8, extra: &[(&str, String)]) -> Value {
    let mut p = vec![("session_type", session_type.to_string())];
    p.extend(extra.iter().cloned());
    s.sessions(viewer, &p).await
}

fn talkers_of(d: &Value) -> Vec<u64> {
    d["session_list"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| x["talker_id"].as_u64().expect("talker_id"))
                .collect()
        })
        .unwrap_or_default()
}

async fn talkers(
    s: &Server,
    viewer: &User,
    session_type: u8,
    extra: &[(&str, String)],
) -> Vec<u64> {
    talkers_of(&list(s, viewer, session_type, extra).await)
}

async fn new_talkers(s: &Server, viewer: &User) -> Vec<u64> {
    let v = s.get(viewer, NEW_SESSIONS, &[]).await;
    talkers_of(ok(&v))
}

async fn detail_ok(s: &Server, viewer: &User, talker: u64) -> Value {
    let v = s.detail(viewer, talker).await;
    ok(&v).clone()
}

async fn unread_with(s: &Server, viewer: &User, params: &[(&str, &str)]) -> Value {
    let p: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let v = s.get(viewer, SINGLE_UNREAD, &p).await;
    ok(&v).clone()
}

fn counters(unfollow: u64, follow: u64, dustbin: u64) -> Value {
    json!({
        "unfollow_unread": unfollow,
        "follow_unread": follow,
        "unfollow_push_msg": 0,
        "dustbin_push_msg": 0,
        "dustbin_unread": dustbin,
        "biz_msg_unfollow_unread": 0,
        "biz_msg_follow_unread": 0,
        "custom_unread": 0,
    })
}

async fn is_limit(s: &Server, who: &User, uid: u64) -> Value {
    let v = s
        .get(who, IS_LIMIT, &[("uid", st(uid)), ("type", "1".into())])
        .await;
    ok(&v)["is_limit"].clone()
}

/// PUT /admin/v1/users/{mid}/settings; returns the settings JSON.
async fn admin_settings(s: &Server, mid: u64, body: Value) -> Value {
    let (code, v) = s
        .admin(Method::PUT, &format!("/users/{mid}/settings"), Some(body))
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

/// Injects a notification from the system account of `system_msg_type`.
async fn notify(s: &Server, system_msg_type: u8, to: &User, msg_type: u32, source: u32) -> Value {
    let (code, v) = s
        .admin(
            Method::POST,
            "/messages/system",
            Some(json!({
                "system_msg_type": system_msg_type,
                "to": to.mid,
                "msg_type": msg_type,
                "content": {"title": "通知", "text": "内容"},
                "notify_code": "2091_253",
                "msg_source": source,
            })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn intercept(s: &Server, viewer: &User, talker: u64, status: &str) -> Value {
    s.post(
        viewer,
        UPDATE_INTERCEPT,
        &[("talker_id", st(talker)), ("status", status.to_string())],
    )
    .await
}

fn assert_empty_ok(v: &Value) {
    assert_eq!(ok(v), &json!({}), "{v}");
}

fn no_csrf(form: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    form.to_vec()
}

/// A user whose cookie names no login.
fn logged_out(u: &User) -> User {
    User {
        sessdata: "0123456789abcdef0123456789abcdef%2C1999999999%2Cabcdef0123456789".into(),
        ..u.clone()
    }
}

// ---- /x/relation/modify ----

async fn relation_modify_follow_unfollow_block_unblock(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;

    // Follow: the follower sees 2; being followed alone is 0.
    act(s, &a, b.mid, FOLLOW).await;
    assert_eq!(follow_status(s, &a, b.mid).await, 2);
    assert_eq!(follow_status(s, &b, a.mid).await, 0);
    assert_err(
        &modify(s, &a, b.mid, FOLLOW).await,
        22014,
        "已经关注用户，无法重复关注",
    );
    // Following back makes it mutual on both sides.
    act(s, &b, a.mid, FOLLOW).await;
    assert_eq!(follow_status(s, &a, b.mid).await, 6);
    assert_eq!(follow_status(s, &b, a.mid).await, 6);

    // Unfollow; again changes nothing and succeeds.
    act(s, &a, b.mid, UNFOLLOW).await;
    assert_eq!(follow_status(s, &a, b.mid).await, 0);
    assert_eq!(follow_status(s, &b, a.mid).await, 2);
    act(s, &a, b.mid, UNFOLLOW).await;
    assert_eq!(follow_status(s, &a, b.mid).await, 0);
    // Unblocking someone not blocked changes nothing and succeeds.
    act(s, &a, b.mid, UNBLOCK).await;
    assert_eq!(follow_status(s, &a, b.mid).await, 0);
    assert_eq!(follow_status(s, &b, a.mid).await, 2);

    // Block: 128, and the other side's follow ends.
    act(s, &a, b.mid, BLOCK).await;
    assert_eq!(
        ss(s, &a, b.mid).await,
        json!({"follow_status": 128, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );
    assert_eq!(follow_status(s, &b, a.mid).await, 0);
    assert_err(&modify(s, &a, b.mid, BLOCK).await, 22120, "重复加入黑名单");
    // Following is refused while either side blocks the other.
    let e22003 = "关注失败，请将该用户从黑名单中移出后再试";
    assert_err(&modify(s, &a, b.mid, FOLLOW).await, 22003, e22003);
    assert_err(&modify(s, &b, a.mid, FOLLOW).await, 22003, e22003);
    assert_eq!(follow_status(s, &b, a.mid).await, 0);
    // Unblocking does not bring follows back.
    act(s, &a, b.mid, UNBLOCK).await;
    assert_eq!(follow_status(s, &a, b.mid).await, 0);
    assert_eq!(follow_status(s, &b, a.mid).await, 0);
    act(s, &b, a.mid, FOLLOW).await;
    assert_eq!(follow_status(s, &b, a.mid).await, 2);

    // Oneself: every act is 22001.
    for code in [FOLLOW, UNFOLLOW, BLOCK, UNBLOCK] {
        assert_err(
            &modify(s, &a, a.mid, code).await,
            22001,
            "不能对自己进行此操作",
        );
    }

    // A special follow ends with the follow.
    act(s, &a, b.mid, FOLLOW).await;
    let (code, v) = s
        .admin(
            Method::PUT,
            "/relations",
            Some(json!({"mid": a.mid, "fid": b.mid, "special": true})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(ss(s, &a, b.mid).await["special"], 1);
    act(s, &a, b.mid, UNFOLLOW).await;
    assert_eq!(
        ss(s, &a, b.mid).await,
        json!({"follow_status": 0, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );
    act(s, &a, b.mid, FOLLOW).await;
    assert_eq!(
        ss(s, &a, b.mid).await,
        json!({"follow_status": 6, "special": 0, "push_setting": 0, "show_push_setting": 1})
    );
    // The admin API sees the same relations.
    let (code, v) = s
        .admin(
            Method::PUT,
            "/relations",
            Some(json!({"mid": a.mid, "fid": b.mid})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        json!({"mid": a.mid, "fid": b.mid, "follow": true, "special": false, "block": false})
    );
}
scenario!(relation_modify_follow_unfollow_block_unblock);

async fn relation_modify_bad_input(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let post = |form: Vec<(&'static str, String)>| {
        let a = &a;
        async move { s.post(a, MODIFY, &form).await }
    };
    let fid = st(b.mid);
    // Missing or malformed parameters: -400.
    assert_err(&post(vec![("act", "1".into())]).await, -400, "请求错误");
    assert_err(
        &post(vec![("fid", "".into()), ("act", "1".into())]).await,
        -400,
        "请求错误",
    );
    assert_err(
        &post(vec![("fid", "b".into()), ("act", "1".into())]).await,
        -400,
        "请求错误",
    );
    assert_err(
        &post(vec![("fid", "-1".into()), ("act", "1".into())]).await,
        -400,
        "请求错误",
    );
    assert_err(&post(vec![("fid", fid.clone())]).await, -400, "请求错误");
    assert_err(
        &post(vec![("fid", fid.clone()), ("act", "x".into())]).await,
        -400,
        "请求错误",
    );
    // Well-formed but not an act: 2.
    for bad in ["0", "3", "4", "7", "128", "-1"] {
        assert_err(
            &post(vec![("fid", fid.clone()), ("act", bad.into())]).await,
            2,
            "非法参数",
        );
    }
    // An unknown user: -400.
    for unknown in ["999999999", "0"] {
        for code in ["1", "2", "5", "6"] {
            assert_err(
                &post(vec![("fid", unknown.into()), ("act", code.into())]).await,
                -400,
                "请求错误",
            );
        }
    }
    // Authentication and csrf come first.
    let form = vec![("fid", fid.clone()), ("act", "1".to_string())];
    assert_err(
        &s.post_raw(&a, MODIFY, &no_csrf(&form)).await,
        -111,
        "csrf 校验失败",
    );
    let mut wrong = form.clone();
    wrong.push(("csrf", "0".repeat(32)));
    assert_err(&s.post_raw(&a, MODIFY, &wrong).await, -111, "csrf 校验失败");
    assert_err(
        &s.post(&logged_out(&a), MODIFY, &form).await,
        -101,
        "账号未登录",
    );
    // Nothing changed.
    assert_eq!(follow_status(s, &a, b.mid).await, 0);
    // The csrf_token spelling works too.
    let mut alt = form.clone();
    alt.push(("csrf_token", a.bili_jct.clone()));
    assert_bare_ok(&s.post_raw(&a, MODIFY, &alt).await);
    assert_eq!(follow_status(s, &a, b.mid).await, 2);
}
scenario!(relation_modify_bad_input);

async fn mutual_follow_adds_a_greeting(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    // A one-way follow adds nothing.
    act(s, &b, a.mid, FOLLOW).await;
    assert_err(&s.detail(&a, b.mid).await, 1000004, "入口节点已存在");
    assert_err(&s.detail(&b, a.mid).await, 1000004, "入口节点已存在");

    // Completing the mutual follow adds the greeting, a text from the follower.
    act(s, &a, b.mid, FOLLOW).await;
    let msgs = history(s, &b, a.mid).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m["sender_uid"], a.mid);
    assert_eq!(m["receiver_id"], b.mid);
    assert_eq!(m["receiver_type"], 1);
    assert_eq!(m["msg_type"], 1);
    assert_eq!(m["msg_source"], 17);
    assert_eq!(m["msg_seqno"], 1);
    assert_eq!(m["msg_status"], 0);
    assert_eq!(m["content"], text(GREETING));
    assert_eq!(history(s, &a, b.mid).await, msgs);
    // Unread for the other side (who follows the greeter), not for the greeter.
    assert_eq!(s.unread(&b).await, counters(0, 1, 0));
    assert_eq!(s.unread(&a).await, counters(0, 0, 0));
    let db = detail_ok(s, &b, a.mid).await;
    assert_eq!(db["unread_count"], 1);
    assert_eq!(db["is_follow"], 1);
    assert_eq!(db["last_msg"]["msg_source"], 17);
    assert_eq!(detail_ok(s, &a, b.mid).await["unread_count"], 0);

    // The greeting is not hand-written: once nobody follows anybody, it lifts nothing for
    // the one it was sent to.
    act(s, &a, b.mid, UNFOLLOW).await;
    act(s, &b, a.mid, UNFOLLOW).await;
    say(s, &b, &a, "还记得我吗").await;
    assert_eq!(
        said(s, &b, a.mid).await,
        vec![
            line(a.mid, 1, 17, GREETING),
            line(b.mid, 1, 7, "还记得我吗"),
            line(b.mid, 18, 18, TIP_TEXT),
        ]
    );
    assert_err(&send_text(s, &b, a.mid, "在吗").await, 21047, E21047);
}
scenario!(mutual_follow_adds_a_greeting);

async fn follow_reply_goes_to_the_new_follower(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    admin_settings(s, b.mid, json!({"follow_reply": "感谢关注~"})).await;
    // The follower's own message reply does not answer an automatic message.
    admin_settings(s, a.mid, json!({"message_reply": "我不在"})).await;

    say(s, &a, &b, "hello").await;
    act(s, &a, b.mid, FOLLOW).await;
    assert_eq!(
        said(s, &a, b.mid).await,
        vec![
            line(a.mid, 1, 7, "hello"),
            line(a.mid, 18, 18, TIP_TEXT),
            line(b.mid, 1, 8, "感谢关注~"),
        ]
    );
    let reply = history(s, &a, b.mid).await.pop().unwrap();
    assert_eq!(reply["receiver_id"], a.mid);
    // The follower has it unread (and follows its sender); the automatic reply read nothing
    // for the followed user, whose message from the follower is still unread.
    assert_eq!(detail_ok(s, &a, b.mid).await["unread_count"], 1);
    assert_eq!(s.unread(&a).await, counters(0, 1, 0));
    assert_eq!(detail_ok(s, &b, a.mid).await["unread_count"], 1);
    assert_eq!(s.unread(&b).await, counters(1, 0, 0));
    // An automatic message does not lift the one-message rule.
    assert_err(&send_text(s, &a, b.mid, "again").await, 21047, E21047);
    assert_eq!(is_limit(s, &a, b.mid).await, 1);

    // Completing a mutual follow: the greeting first, then the follow reply.
    let x = s.user("x").await;
    act(s, &b, x.mid, FOLLOW).await;
    act(s, &x, b.mid, FOLLOW).await;
    assert_eq!(
        said(s, &x, b.mid).await,
        vec![line(x.mid, 1, 17, GREETING), line(b.mid, 1, 8, "感谢关注~")]
    );

    // Following a system account adds nothing.
    act(s, &a, SYS_UP, FOLLOW).await;
    assert_err(&s.detail(&a, SYS_UP).await, 1000004, "入口节点已存在");
}
scenario!(follow_reply_goes_to_the_new_follower);

async fn relations_drive_lists_and_counters_live(s: &Server) {
    let me = s.user("me").await;
    let f = s.user("followed").await;
    let g = s.user("stranger").await;
    act(s, &me, f.mid, FOLLOW).await;
    s.advance_clock(1000).await;
    notify(s, 7, &me, 10, 6).await;
    s.advance_clock(1000).await;
    say(s, &f, &me, "f1").await;
    say(s, &f, &me, "f2").await;
    s.advance_clock(1000).await;
    say(s, &g, &me, "g1").await;

    let fold = [("unfollow_fold", "1".to_string())];
    assert_eq!(talkers(s, &me, 1, &[]).await, vec![g.mid, f.mid, SYS_UP]);
    assert_eq!(talkers(s, &me, 4, &[]).await, vec![g.mid, f.mid, SYS_UP]);
    assert_eq!(talkers(s, &me, 1, &fold).await, vec![f.mid, SYS_UP]);
    assert_eq!(talkers(s, &me, 4, &fold).await, vec![f.mid, SYS_UP]);
    assert_eq!(talkers(s, &me, 2, &[]).await, vec![g.mid]);
    assert_eq!(talkers(s, &me, 8, &[]).await, vec![g.mid]);
    assert_eq!(talkers(s, &me, 9, &[]).await, vec![f.mid, SYS_UP]);
    assert_eq!(talkers(s, &me, 7, &[]).await, vec![SYS_UP]);
    let is_follow = |d: &Value| -> Vec<(u64, u64)> {
        d["session_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["talker_id"].as_u64().unwrap(),
                    x["is_follow"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        is_follow(&list(s, &me, 1, &[]).await),
        vec![(g.mid, 0), (f.mid, 1), (SYS_UP, 1)]
    );
    let mut want = counters(1, 2, 0);
    want["biz_msg_follow_unread"] = json!(1);
    assert_eq!(s.unread(&me).await, want);

    // Relations change: the lists and counters follow at once.
    act(s, &me, g.mid, FOLLOW).await;
    act(s, &me, f.mid, UNFOLLOW).await;
    assert_eq!(talkers(s, &me, 2, &[]).await, vec![f.mid]);
    assert_eq!(talkers(s, &me, 8, &[]).await, vec![f.mid]);
    assert_eq!(talkers(s, &me, 9, &[]).await, vec![g.mid, SYS_UP]);
    assert_eq!(talkers(s, &me, 1, &fold).await, vec![g.mid, SYS_UP]);
    assert_eq!(
        is_follow(&list(s, &me, 1, &[]).await),
        vec![(g.mid, 1), (f.mid, 0), (SYS_UP, 1)]
    );
    assert_eq!(detail_ok(s, &me, g.mid).await["is_follow"], 1);
    assert_eq!(detail_ok(s, &me, f.mid).await["is_follow"], 0);
    let mut want = counters(2, 1, 0);
    want["biz_msg_follow_unread"] = json!(1);
    assert_eq!(s.unread(&me).await, want);
    let mut only_followed = want.clone();
    only_followed["unfollow_unread"] = json!(0);
    assert_eq!(
        unread_with(s, &me, &[("unread_type", "1")]).await,
        only_followed
    );
    let mut only_unfollowed = want.clone();
    only_unfollowed["follow_unread"] = json!(0);
    assert_eq!(
        unread_with(s, &me, &[("unread_type", "2")]).await,
        only_unfollowed
    );

    // Blocking ends my follow: the talker moves to the unfollowed lists.
    act(s, &me, g.mid, BLOCK).await;
    assert_eq!(talkers(s, &me, 2, &[]).await, vec![g.mid, f.mid]);
    assert_eq!(talkers(s, &me, 9, &[]).await, vec![SYS_UP]);
    let mut want = counters(3, 0, 0);
    want["biz_msg_follow_unread"] = json!(1);
    assert_eq!(s.unread(&me).await, want);
}
scenario!(relations_drive_lists_and_counters_live);

// ---- the one-message rule (21047) ----

async fn one_message_rule_and_its_tip(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    assert_eq!(is_limit(s, &a, b.mid).await, 0);
    let v = send_text(s, &a, b.mid, "你好").await;
    let k1 = ok(&v)["msg_key"].as_u64().unwrap();

    // The sender sees the message and, after it, the tip; the receiver sees the message only.
    let mine = history(s, &a, b.mid).await;
    assert_eq!(
        summary(&mine),
        vec![line(a.mid, 1, 7, "你好"), line(a.mid, 18, 18, TIP_TEXT)]
    );
    let tip = &mine[1];
    assert_eq!(tip["receiver_id"], b.mid);
    assert_eq!(tip["receiver_type"], 1);
    assert_eq!(tip["msg_seqno"], 2);
    assert_eq!(tip["msg_status"], 0);
    let outer: Value = serde_json::from_str(tip["content"].as_str().unwrap()).unwrap();
    let items: Value = serde_json::from_str(outer["content"].as_str().unwrap()).unwrap();
    let items = items.as_array().expect("an array of tip items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["text"], TIP_TEXT);
    assert!(
        items[0]["color_day"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{tip}"
    );
    assert!(
        items[0]["color_nig"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{tip}"
    );
    assert_eq!(said(s, &b, a.mid).await, vec![line(a.mid, 1, 7, "你好")]);
    // size=0 returns the tips only: the sender's.
    let v = s.fetch(&a, &b, &[]).await;
    assert_eq!(
        summary(ok(&v)["messages"].as_array().unwrap()),
        vec![line(a.mid, 18, 18, TIP_TEXT)]
    );
    let v = s.fetch(&b, &a, &[]).await;
    assert_eq!(ok(&v)["messages"], Value::Null);

    // The sender read past the tip; the receiver has one unread, and a max_seqno counting it.
    let da = detail_ok(s, &a, b.mid).await;
    assert_eq!(
        (da["ack_seqno"].clone(), da["unread_count"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(da["max_seqno"], 2);
    assert_eq!(da["last_msg"]["msg_type"], 18);
    let db = detail_ok(s, &b, a.mid).await;
    assert_eq!(
        (db["unread_count"].clone(), db["max_seqno"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(db["last_msg"]["msg_seqno"], 1);
    assert_eq!(s.unread(&b).await, counters(1, 0, 0));
    assert_eq!(s.unread(&a).await, counters(0, 0, 0));

    // A second message, of any kind from any platform, is refused.
    assert_err(&send_text(s, &a, b.mid, "在吗").await, 21047, E21047);
    assert_err(&s.send(&a, b.mid, 2, IMAGE).await, 21047, E21047);
    let mut form = Server::send_form(&a, b.mid, 1, &text("android"));
    form.push(("mobi_app", "android".into()));
    assert_err(&s.post(&a, SEND, &form).await, 21047, E21047);
    assert_eq!(history(s, &a, b.mid).await, mine);
    assert_eq!(is_limit(s, &a, b.mid).await, 1);
    assert_eq!(is_limit(s, &b, a.mid).await, 0);

    // A recall is always allowed, and the recalled message still counts.
    let v = s.send(&a, b.mid, 5, &k1.to_string()).await;
    ok(&v);
    assert_err(&send_text(s, &a, b.mid, "再试一次").await, 21047, E21047);
    assert_eq!(said(s, &b, a.mid).await.len(), 2);
    assert_eq!(history(s, &b, a.mid).await[0]["msg_status"], 1);

    // The first message may be an image; it gets the tip too.
    let c = s.user("c").await;
    ok(&s.send(&c, b.mid, 2, IMAGE).await);
    let got = said(s, &c, b.mid).await;
    assert_eq!(got[1], line(c.mid, 18, 18, TIP_TEXT));
    assert_eq!(got.len(), 2);
    assert_err(&s.send(&c, b.mid, 2, IMAGE).await, 21047, E21047);

    // To someone who follows the sender: no tip, no limit.
    let d = s.user("d").await;
    act(s, &b, d.mid, FOLLOW).await;
    say(s, &d, &b, "1").await;
    say(s, &d, &b, "2").await;
    assert_eq!(
        said(s, &d, b.mid).await,
        vec![line(d.mid, 1, 7, "1"), line(d.mid, 1, 7, "2")]
    );
}
scenario!(one_message_rule_and_its_tip);

async fn one_message_rule_lifted_by_a_hand_written_reply(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    say(s, &a, &b, "hi").await;
    assert_err(&send_text(s, &a, b.mid, "hi?").await, 21047, E21047);
    // The receiver answers by hand (from any platform): the rule is lifted, for good.
    let mut form = Server::send_form(&b, a.mid, 1, &text("你好呀"));
    form.push(("mobi_app", "iphone".into()));
    ok(&s.post(&b, SEND, &form).await);
    assert_eq!(is_limit(s, &a, b.mid).await, 0);
    for t in ["1", "2", "3"] {
        say(s, &a, &b, t).await;
    }
    // The replier gets no tip: the rule never applied to them (the other side wrote first).
    assert_eq!(
        said(s, &b, a.mid).await,
        vec![
            line(a.mid, 1, 7, "hi"),
            line(b.mid, 1, 1, "你好呀"),
            line(a.mid, 1, 7, "1"),
            line(a.mid, 1, 7, "2"),
            line(a.mid, 1, 7, "3"),
        ]
    );
    // Only one tip, on the sender's side.
    let tips = said(s, &a, b.mid)
        .await
        .into_iter()
        .filter(|m| m.1 == 18)
        .count();
    assert_eq!(tips, 1);
    // Both write freely from now on.
    say(s, &b, &a, "ok").await;
    say(s, &b, &a, "ok2").await;
    assert_eq!(is_limit(s, &b, a.mid).await, 0);
}
scenario!(one_message_rule_lifted_by_a_hand_written_reply);

async fn one_message_rule_follows_the_receivers_follow(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    say(s, &a, &b, "hi").await;
    assert_err(&send_text(s, &a, b.mid, "hi?").await, 21047, E21047);
    act(s, &b, a.mid, FOLLOW).await;
    assert_eq!(is_limit(s, &a, b.mid).await, 0);
    say(s, &a, &b, "thanks").await;
    say(s, &a, &b, "for following").await;
    // The receiver stops following and never wrote by hand: the rule applies again (SPEC
    // §4.4 check 6 looks at the relation now).
    act(s, &b, a.mid, UNFOLLOW).await;
    assert_eq!(is_limit(s, &a, b.mid).await, 1);
    assert_err(&send_text(s, &a, b.mid, "?").await, 21047, E21047);
    // An admin-set follow counts the same.
    s.follow(&b, &a, true).await;
    say(s, &a, &b, "back").await;
    assert_eq!(said(s, &b, a.mid).await.len(), 4);
}
scenario!(one_message_rule_follows_the_receivers_follow);

async fn one_message_rule_concurrent_first_messages(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let one = |t: &'static str| send_text(s, &a, b.mid, t);
    let (r1, r2, r3, r4, r5, r6) = tokio::join!(
        one("m1"),
        one("m2"),
        one("m3"),
        one("m4"),
        one("m5"),
        one("m6")
    );
    let all = [r1, r2, r3, r4, r5, r6];
    let won: Vec<&Value> = all.iter().filter(|v| v["code"] == 0).collect();
    assert_eq!(won.len(), 1, "{all:?}");
    for v in all.iter().filter(|v| v["code"] != 0) {
        assert_err(v, 21047, E21047);
    }
    let mine = said(s, &a, b.mid).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[1], line(a.mid, 18, 18, TIP_TEXT));
    assert_eq!(said(s, &b, a.mid).await.len(), 1);
    assert_eq!(detail_ok(s, &b, a.mid).await["unread_count"], 1);
}
scenario!(one_message_rule_concurrent_first_messages);

/// Strangers writing each other at the same moment: whichever send is decided first is under
/// the rule and gets the tip; the other sees that message and is not. Eight pairs at once.
async fn one_message_rule_strangers_writing_each_other_at_once(s: &Server) {
    let mut pairs = Vec::new();
    for k in 0..8 {
        pairs.push((
            s.user(&format!("p{k}")).await,
            s.user(&format!("q{k}")).await,
        ));
    }
    let sends = pairs.iter().flat_map(|(p, q)| {
        [
            send_text(s, p, q.mid, "你好"),
            send_text(s, q, p.mid, "你好"),
        ]
    });
    let answers = futures_join_all(sends).await;
    for a in &answers {
        assert_eq!(a["code"], 0, "{answers:?}");
    }
    for (p, q) in &pairs {
        let p_view = said(s, p, q.mid).await;
        let q_view = said(s, q, p.mid).await;
        let tips = |view: &[(u64, u64, u64, String)]| {
            view.iter()
                .filter(|l| l.1 == 18)
                .cloned()
                .collect::<Vec<_>>()
        };
        let (p_tips, q_tips) = (tips(&p_view), tips(&q_view));
        assert_eq!(p_tips.len() + q_tips.len(), 1, "{p_view:?} {q_view:?}");
        // The tip follows its sender's own message, the first of the conversation.
        let (first, view) = if p_tips.is_empty() {
            (q, &q_view)
        } else {
            (p, &p_view)
        };
        assert_eq!(view[0], line(first.mid, 1, 7, "你好"));
        assert_eq!(view[1], line(first.mid, 18, 18, TIP_TEXT));
        assert_eq!(view.len(), 3, "{view:?}");
        // Both can go on writing: each has the other's hand-written message.
        say(s, p, q, "再见").await;
        say(s, q, p, "再见").await;
    }
}
scenario!(one_message_rule_strangers_writing_each_other_at_once);

// ---- privacy and blocks (25003, 25005) ----

async fn privacy_and_blocks_refuse_sends(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let c = s.user("c").await;

    // b accepts messages only from people b follows.
    admin_settings(s, b.mid, json!({"privacy": 1})).await;
    assert_err(&send_text(s, &a, b.mid, "hi").await, 25003, E25003);
    assert_err(&s.send(&a, b.mid, 2, IMAGE).await, 25003, E25003);
    assert_eq!(is_limit(s, &a, b.mid).await, 0);
    assert_err(&s.detail(&b, a.mid).await, 1000004, "入口节点已存在");
    act(s, &b, a.mid, FOLLOW).await;
    say(s, &a, &b, "1").await;
    say(s, &a, &b, "2").await;
    act(s, &b, a.mid, UNFOLLOW).await;
    assert_err(&send_text(s, &a, b.mid, "3").await, 25003, E25003);
    // Back to everyone: now the one-message rule speaks (25003 is checked before 21047).
    admin_settings(s, b.mid, json!({"privacy": 0})).await;
    assert_err(&send_text(s, &a, b.mid, "3").await, 21047, E21047);
    // b writes by hand to a, who follows nobody: allowed (a's privacy is open).
    say(s, &b, &a, "hello a").await;

    // Blocks: the blocked one gets 25003, the blocker 25005.
    say(s, &c, &b, "c here").await;
    let kc = history(s, &c, b.mid).await[0]["msg_key"].as_u64().unwrap();
    act(s, &b, c.mid, BLOCK).await;
    assert_err(&send_text(s, &c, b.mid, "hi").await, 25003, E25003);
    assert_err(&send_text(s, &b, c.mid, "hi").await, 25005, E25005);
    assert_err(&s.send(&b, c.mid, 2, IMAGE).await, 25005, E25005);
    // Check 6 covers recalls too (they pass check 5 first).
    assert_err(&s.send(&c, b.mid, 5, &kc.to_string()).await, 25003, E25003);
    // Both block each other: each sees their own block first.
    act(s, &c, b.mid, BLOCK).await;
    assert_err(&send_text(s, &c, b.mid, "hi").await, 25005, E25005);
    assert_err(&send_text(s, &b, c.mid, "hi").await, 25005, E25005);
    // A blocker whose receiver also restricts privacy: 25005 first.
    admin_settings(s, b.mid, json!({"privacy": 1})).await;
    assert_err(&send_text(s, &c, b.mid, "hi").await, 25005, E25005);
    // Earlier checks come before check 6.
    assert_err(
        &s.send(&c, b.mid, 3, &text("x")).await,
        21035,
        "该类消息暂时无法发送",
    );
    assert_err(
        &send_text(s, &c, b.mid, &"长".repeat(700)).await,
        21007,
        "消息过长，无法发送",
    );
    assert_err(
        &s.send(&c, b.mid, 1, r#"{"content":""}"#).await,
        -400,
        "请求错误",
    );
    assert_err(&s.send(&c, b.mid, 5, "123").await, 10005, "msgkey不存在");
    // Nothing was stored by any refused send.
    assert_eq!(said(s, &b, c.mid).await, vec![line(c.mid, 1, 7, "c here")]);
    // Unblocking both ways (and opening privacy) lets them talk again.
    act(s, &c, b.mid, UNBLOCK).await;
    act(s, &b, c.mid, UNBLOCK).await;
    admin_settings(s, b.mid, json!({"privacy": 0})).await;
    say(s, &b, &c, "sorry").await;
    say(s, &c, &b, "np").await;
}
scenario!(privacy_and_blocks_refuse_sends);

async fn system_accounts_refuse_messages(s: &Server) {
    let u = s.user("u").await;
    for mid in [SYS_LIVE, SYS_NOTICE, SYS_UP, SYS_CUSTOM, SYS_PAY] {
        assert_err(&send_text(s, &u, mid, "hi").await, 25003, E25003);
        assert_err(&s.send(&u, mid, 2, IMAGE).await, 25003, E25003);
        assert_eq!(is_limit(s, &u, mid).await, 0);
    }
    // Even with their message in the session.
    notify(s, 8, &u, 10, 6).await;
    assert_err(
        &send_text(s, &u, SYS_CUSTOM, "人工客服").await,
        25003,
        E25003,
    );
    assert_eq!(history(s, &u, SYS_CUSTOM).await.len(), 1);
}
scenario!(system_accounts_refuse_messages);

fn accept_system(c: &mut sixin_server::Config) {
    c.system_accounts_accept_messages = true;
}

async fn system_accounts_accept_messages_when_configured(s: &Server) {
    let u = s.user("u").await;
    notify(s, 8, &u, 10, 6).await;
    say_to(s, &u, SYS_CUSTOM, "人工客服").await;
    let h = said(s, &u, SYS_CUSTOM).await;
    assert_eq!(h[1], line(u.mid, 1, 7, "人工客服"));
}
scenario_with!(
    system_accounts_accept_messages_when_configured,
    accept_system
);

async fn say_to(s: &Server, from: &User, to: u64, t: &str) -> u64 {
    let v = send_text(s, from, to, t).await;
    ok(&v)["msg_key"].as_u64().expect("msg_key")
}

// ---- rate limits (21020, 21046) and maintenance (21028) ----

fn two_per_second(c: &mut sixin_server::Config) {
    c.sends_per_second = 2;
}

async fn per_second_limit(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let c = s.user("c").await;
    let d = s.user("d").await;
    act(s, &b, a.mid, FOLLOW).await;
    act(s, &c, a.mid, FOLLOW).await;
    // The window is the clock's Unix second: the clock is set inside one before each send.
    let t = MIDNIGHT_CST_MS + 60_000;
    let at = |ms: i64| set_clock(s, ms);

    at(t).await;
    say(s, &a, &b, "1").await;
    at(t + 400).await;
    say(s, &a, &c, "2").await;
    at(t + 500).await;
    assert_err(&send_text(s, &a, b.mid, "3").await, 21020, E21020);
    at(t + 600).await;
    assert_err(&s.send(&a, c.mid, 2, IMAGE).await, 21020, E21020);
    assert_eq!(said(s, &b, a.mid).await, vec![line(a.mid, 1, 7, "1")]);
    // Per sender: others are not affected.
    at(t + 700).await;
    say(s, &b, &a, "b is fine").await;
    at(t + 700).await;
    say(s, &c, &a, "c too").await;
    // The next second starts afresh.
    for (ms, t_) in [(1000, "4"), (1300, "5")] {
        at(t + ms).await;
        say(s, &a, &b, t_).await;
    }
    at(t + 1500).await;
    assert_err(&send_text(s, &a, b.mid, "6").await, 21020, E21020);

    // Attempts refused by checks 1–6 don't count; the limit counts attempts that pass them,
    // to followers and strangers alike.
    at(t + 2000).await;
    say_to(s, &a, d.mid, "first to d").await;
    for _ in 0..3 {
        at(t + 2100).await;
        assert_err(&send_text(s, &a, d.mid, "again").await, 21047, E21047);
    }
    at(t + 2200).await;
    assert_err(
        &s.send(&a, d.mid, 3, &text("x")).await,
        21035,
        "该类消息暂时无法发送",
    );
    at(t + 2200).await;
    assert_err(
        &send_text(s, &a, a.mid, "me").await,
        21026,
        "不能给自己发送消息哦~",
    );
    at(t + 2300).await;
    say(s, &a, &b, "7").await;
    at(t + 2400).await;
    assert_err(&send_text(s, &a, b.mid, "8").await, 21020, E21020);
    // A recall is a send like any other here.
    at(t + 3000).await;
    let k = say(s, &a, &b, "9").await;
    at(t + 3100).await;
    ok(&s.send(&a, b.mid, 5, &k.to_string()).await);
    at(t + 3200).await;
    assert_err(&send_text(s, &a, b.mid, "10").await, 21020, E21020);
}
scenario_with!(per_second_limit, two_per_second);

fn one_per_second(c: &mut sixin_server::Config) {
    c.sends_per_second = 1;
}

async fn relation_checks_come_before_rate_limits(s: &Server) {
    let a = s.user("a").await;
    let blocked = s.user("blocked").await;
    let blocker = s.user("blocker").await;
    let private = s.user("private").await;
    let stranger = s.user("stranger").await;
    let friend = s.user("friend").await;
    act(s, &friend, a.mid, FOLLOW).await;
    act(s, &a, blocked.mid, BLOCK).await;
    act(s, &blocker, a.mid, BLOCK).await;
    admin_settings(s, private.mid, json!({"privacy": 1})).await;
    let t = MIDNIGHT_CST_MS + 120_000;
    set_clock(s, t - 1000).await;
    say(s, &a, &stranger, "the one message").await;

    // Over the limit in second t...
    set_clock(s, t).await;
    say(s, &a, &friend, "1").await;
    set_clock(s, t).await;
    assert_err(&send_text(s, &a, friend.mid, "2").await, 21020, E21020);
    // ...a blocked, private or limited receiver still answers with its own code.
    for _ in 0..2 {
        for (to, code, msg) in [
            (blocked.mid, 25005, E25005),
            (blocker.mid, 25003, E25003),
            (private.mid, 25003, E25003),
            (stranger.mid, 21047, E21047),
            (friend.mid, 21020, E21020),
        ] {
            set_clock(s, t + 200).await;
            assert_err(&send_text(s, &a, to, "x").await, code, msg);
        }
    }
    set_clock(s, t + 1000).await;
    say(s, &a, &friend, "3").await;
}
scenario_with!(relation_checks_come_before_rate_limits, one_per_second);

fn three_a_day(c: &mut sixin_server::Config) {
    c.daily_sends_to_strangers = 3;
}

async fn daily_limit_to_strangers(s: &Server) {
    let a = s.user("a").await;
    let friend = s.user("friend").await;
    let mut x = Vec::new();
    for k in 0..8 {
        x.push(s.user(&format!("x{k}")).await);
    }
    act(s, &friend, a.mid, FOLLOW).await;
    // 23:58 in UTC+8.
    set_clock(s, MIDNIGHT_CST_MS - 120_000).await;
    for to in &x[..3] {
        s.advance_clock(1000).await;
        say(s, &a, to, "你好").await;
    }
    s.advance_clock(1000).await;
    assert_err(&send_text(s, &a, x[3].mid, "你好").await, 21046, E21046);
    assert_err(&s.send(&a, x[4].mid, 2, IMAGE).await, 21046, E21046);
    assert_err(&s.detail(&x[3], a.mid).await, 1000004, "入口节点已存在");
    // The one-message rule is checked first.
    assert_err(&send_text(s, &a, x[0].mid, "again").await, 21047, E21047);
    // Messages to people who follow the sender are neither limited nor counted.
    for t in ["1", "2", "3", "4"] {
        say(s, &a, &friend, t).await;
    }
    // Another sender has their own count.
    say(s, &x[5], &x[6], "hi").await;
    // The day is the calendar day in UTC+8: still refused at 23:59:59...
    set_clock(s, MIDNIGHT_CST_MS - 1000).await;
    assert_err(&send_text(s, &a, x[3].mid, "你好").await, 21046, E21046);
    // ...a fresh allowance at 00:00:00 (UTC midnight is eight hours later).
    set_clock(s, MIDNIGHT_CST_MS).await;
    say(s, &a, &x[3], "你好").await;
    say(s, &a, &x[4], "你好").await;
    say(s, &a, &x[5], "你好").await;
    assert_err(&send_text(s, &a, x[6].mid, "你好").await, 21046, E21046);
    // A receiver who follows the sender mid-day lifts the limit for sends to them.
    act(s, &x[6], a.mid, FOLLOW).await;
    say(s, &a, &x[6], "thanks").await;
    assert_err(&send_text(s, &a, x[7].mid, "你好").await, 21046, E21046);
    // The next day, it works again.
    set_clock(s, MIDNIGHT_CST_MS + 86_400_000).await;
    say(s, &a, &x[7], "你好").await;
}
scenario_with!(daily_limit_to_strangers, three_a_day);

fn three_a_second_five_a_day(c: &mut sixin_server::Config) {
    c.sends_per_second = 3;
    c.daily_sends_to_strangers = 5;
}

/// Sends that arrive together are counted one by one, whatever the writes they share: the
/// per-second counter counts every attempt that reaches it, the daily one those that passed
/// the per-second limit.
async fn rate_limits_hold_for_sends_at_once(s: &Server) {
    let a = s.user("a").await;
    let friend = s.user("friend").await;
    act(s, &friend, a.mid, FOLLOW).await;
    let mut x = Vec::new();
    for k in 0..24 {
        x.push(s.user(&format!("x{k}")).await);
    }
    let t = MIDNIGHT_CST_MS + 3_600_000;
    let codes = |answers: &[Value]| {
        let mut by_code = std::collections::BTreeMap::new();
        for v in answers {
            let code = v["code"].as_i64().expect("code");
            let msg = v["message"].as_str().expect("message").to_string();
            *by_code.entry((code, msg)).or_insert(0) += 1;
        }
        by_code.into_iter().collect::<Vec<_>>()
    };
    // Second 1: twelve at once, three get through.
    set_clock(s, t).await;
    let first = futures_join_all(x[..12].iter().map(|to| send_text(s, &a, to.mid, "你好"))).await;
    assert_eq!(
        codes(&first),
        vec![((0, "0".to_string()), 3), ((21020, E21020.to_string()), 9)],
        "{first:?}"
    );
    // Second 2: three pass the per-second limit; the daily one lets two of them through.
    set_clock(s, t + 1000).await;
    let second = futures_join_all(x[12..].iter().map(|to| send_text(s, &a, to.mid, "你好"))).await;
    assert_eq!(
        codes(&second),
        vec![
            ((0, "0".to_string()), 2),
            ((21020, E21020.to_string()), 9),
            ((21046, E21046.to_string()), 1)
        ],
        "{second:?}"
    );
    // The receivers that got a message are exactly five.
    let mut reached = 0;
    for to in &x {
        if said(s, to, a.mid).await.len() == 1 {
            reached += 1;
        }
    }
    assert_eq!(reached, 5);
    // What the counters hold afterwards: the day's allowance is gone, a follower still gets
    // through once the second is over.
    set_clock(s, t + 2000).await;
    let (reached_first, _) = x[..12]
        .iter()
        .zip(&first)
        .find(|(_, v)| v["code"] == 0)
        .expect("a send that got through");
    assert_err(
        &send_text(s, &a, reached_first.mid, "again").await,
        21047,
        E21047,
    );
    let untouched = s.user("y").await;
    assert_err(
        &send_text(s, &a, untouched.mid, "你好").await,
        21046,
        E21046,
    );
    say(s, &a, &friend, "1").await;
    say(s, &a, &friend, "2").await;
    assert_err(&send_text(s, &a, friend.mid, "3").await, 21020, E21020);
}
scenario_with!(
    rate_limits_hold_for_sends_at_once,
    three_a_second_five_a_day
);

fn tight_limits(c: &mut sixin_server::Config) {
    c.sends_per_second = 1;
    c.daily_sends_to_strangers = 1;
}

async fn maintenance(s: &Server, on: bool) -> Value {
    let (code, v) = s
        .admin(
            Method::PUT,
            "/maintenance",
            Some(json!({ "maintenance": on })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn check_seven_order_is_21020_21046_21028(s: &Server) {
    let a = s.user("a").await;
    let friend = s.user("friend").await;
    let x1 = s.user("x1").await;
    let x2 = s.user("x2").await;
    let x3 = s.user("x3").await;
    act(s, &friend, a.mid, FOLLOW).await;
    let t = MIDNIGHT_CST_MS + 600_000;
    set_clock(s, t).await;
    say(s, &a, &x1, "1").await;
    // Over both limits: 21020 first.
    set_clock(s, t).await;
    assert_err(&send_text(s, &a, x2.mid, "2").await, 21020, E21020);
    // A new second: the daily limit.
    set_clock(s, t + 1000).await;
    assert_err(&send_text(s, &a, x2.mid, "2").await, 21046, E21046);

    // Maintenance comes last: to a follower (no daily limit) it answers 21028 ...
    assert_eq!(maintenance(s, true).await, json!({"maintenance": true}));
    set_clock(s, t + 2000).await;
    assert_err(&send_text(s, &a, friend.mid, "m").await, 21028, E21028);
    // ... and that attempt counted for its second.
    set_clock(s, t + 2000).await;
    assert_err(&send_text(s, &a, friend.mid, "m").await, 21020, E21020);
    // To a stranger, the daily limit comes before maintenance.
    set_clock(s, t + 3000).await;
    assert_err(&send_text(s, &a, x3.mid, "m").await, 21046, E21046);
    // Relation checks come before all of them.
    act(s, &a, x3.mid, BLOCK).await;
    set_clock(s, t + 3000).await;
    assert_err(&send_text(s, &a, x3.mid, "m").await, 25005, E25005);
    assert_eq!(maintenance(s, false).await, json!({"maintenance": false}));
    set_clock(s, t + 4000).await;
    say(s, &a, &friend, "back").await;
    assert_eq!(
        said(s, &friend, a.mid).await,
        vec![line(a.mid, 1, 7, "back")]
    );
}
scenario_with!(check_seven_order_is_21020_21046_21028, tight_limits);

async fn maintenance_switched_by_the_admin_api(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    act(s, &b, a.mid, FOLLOW).await;
    say(s, &a, &b, "before").await;
    let (code, v) = s.admin(Method::GET, "/maintenance", None).await;
    assert_eq!((code, v), (200, json!({"maintenance": false})));
    assert_eq!(maintenance(s, true).await, json!({"maintenance": true}));
    let (code, v) = s.admin(Method::GET, "/maintenance", None).await;
    assert_eq!((code, v), (200, json!({"maintenance": true})));

    // Sends are refused, whatever the type ...
    assert_err(&send_text(s, &a, b.mid, "during").await, 21028, E21028);
    assert_err(&s.send(&a, b.mid, 2, IMAGE).await, 21028, E21028);
    assert_err(&send_text(s, &b, a.mid, "during").await, 21028, E21028);
    // ... reads keep working.
    assert_eq!(said(s, &b, a.mid).await, vec![line(a.mid, 1, 7, "before")]);
    assert_eq!(talkers(s, &b, 1, &[]).await, vec![a.mid]);
    assert_eq!(s.unread(&b).await, counters(0, 1, 0));
    assert_eq!(detail_ok(s, &b, a.mid).await["unread_count"], 1);
    assert_eq!(ss(s, &b, a.mid).await["follow_status"], 2);
    assert_eq!(is_limit(s, &b, a.mid).await, 0);
    let v = s.get(&a, SETTINGS, &[]).await;
    ok(&v);
    // Marking read is not a send.
    let v = s
        .post(
            &b,
            UPDATE_ACK,
            &[("talker_id", st(a.mid)), ("session_type", "1".into())],
        )
        .await;
    assert_empty_ok(&v);

    // The flag lives in the database: another process on it sees it.
    let other = sixin_server::start(test_config(s.database_url.clone()))
        .await
        .expect("second node");
    let resp = s
        .http
        .post(format!("http://{}{SEND}", other.addr))
        .header("Cookie", a.cookie())
        .form(&{
            let mut f = Server::send_form(&a, b.mid, 1, &text("elsewhere"));
            f.push(("csrf", a.bili_jct.clone()));
            f
        })
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_err(&v, 21028, E21028);

    assert_eq!(maintenance(s, false).await, json!({"maintenance": false}));
    say(s, &a, &b, "after").await;

    // Bad requests and authorization.
    for body in [
        json!({}),
        json!({"maintenance": "yes"}),
        json!({"maintenance": true, "x": 1}),
    ] {
        let (code, v) = s.admin(Method::PUT, "/maintenance", Some(body)).await;
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let resp = s
        .http
        .put(s.url("/admin/v1/maintenance"))
        .bearer_auth("wrong")
        .json(&json!({"maintenance": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (code, v) = s.admin(Method::GET, "/maintenance", None).await;
    assert_eq!((code, v), (200, json!({"maintenance": false})));
    other.stop().await.unwrap();
}
scenario!(maintenance_switched_by_the_admin_api);

fn in_maintenance(c: &mut sixin_server::Config) {
    c.maintenance = true;
}

async fn maintenance_from_the_configuration(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    assert_err(&send_text(s, &a, b.mid, "hi").await, 21028, E21028);
    let (code, v) = s.admin(Method::GET, "/maintenance", None).await;
    assert_eq!((code, v), (200, json!({"maintenance": true})));
    // The admin API cannot switch off what the configuration switched on.
    assert_eq!(maintenance(s, false).await, json!({"maintenance": true}));
    assert_err(&send_text(s, &a, b.mid, "hi").await, 21028, E21028);
    // Reads work; system notifications still arrive.
    notify(s, 5, &a, 10, 5).await;
    assert_eq!(talkers(s, &a, 1, &[]).await, vec![SYS_NOTICE]);
    assert_eq!(history(s, &a, SYS_NOTICE).await.len(), 1);
    assert_eq!(history(s, &a, b.mid).await, Vec::<Value>::new());
    // Relation checks still come first.
    act(s, &a, b.mid, BLOCK).await;
    assert_err(&send_text(s, &a, b.mid, "hi").await, 25005, E25005);
}
scenario_with!(maintenance_from_the_configuration, in_maintenance);

// ---- interception (the dustbin) ----

async fn spam_keywords_put_the_session_in_the_dustbin(s: &Server) {
    let spammer = s.user("spammer").await;
    let b = s.user("b").await;
    let friend = s.user("friend").await;
    admin_settings(s, b.mid, json!({"message_reply": "自动回复"})).await;
    act(s, &b, friend.mid, FOLLOW).await;

    // The sender notices nothing.
    let v = send_text(s, &spammer, b.mid, "日结工资，私聊").await;
    ok(&v);
    let ds = detail_ok(s, &spammer, b.mid).await;
    assert_eq!(
        (ds["is_intercept"].clone(), ds["is_trust"].clone()),
        (json!(0), json!(0))
    );
    // The receiver's session is intercepted: listed only under session_type 5.
    let db = detail_ok(s, &b, spammer.mid).await;
    assert_eq!(db["is_intercept"], 1);
    assert_eq!(db["is_trust"], 0);
    assert_eq!(db["unread_count"], 1);
    let l5 = list(s, &b, 5, &[]).await;
    assert_eq!(talkers_of(&l5), vec![spammer.mid]);
    assert_eq!(l5["session_list"][0], db);
    for t in [1u8, 2, 4, 8, 9] {
        assert_eq!(
            talkers(s, &b, t, &[]).await,
            Vec::<u64>::new(),
            "session_type {t}"
        );
    }
    assert_eq!(new_talkers(s, &b).await, Vec::<u64>::new());
    // Counted in dustbin_unread only, and only with show_dustbin=1.
    assert_eq!(s.unread(&b).await, counters(0, 0, 0));
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(0, 0, 1)
    );
    assert_eq!(
        unread_with(s, &b, &[("unread_type", "3"), ("show_dustbin", "1")]).await,
        counters(0, 0, 1)
    );
    assert_eq!(
        unread_with(s, &b, &[("unread_type", "3")]).await,
        counters(0, 0, 0)
    );
    // The message can be read; no auto-reply answered it.
    assert_eq!(
        said(s, &b, spammer.mid).await,
        vec![line(spammer.mid, 1, 7, "日结工资，私聊")]
    );
    assert_eq!(
        said(s, &spammer, b.mid).await,
        vec![
            line(spammer.mid, 1, 7, "日结工资，私聊"),
            line(spammer.mid, 18, 18, TIP_TEXT)
        ]
    );

    // Every default keyword; from someone the receiver follows, nothing is intercepted.
    for (k, word) in ["兼职刷单", "加我微信领取"].iter().enumerate() {
        let u = s.user(&format!("spam{k}")).await;
        say(s, &u, &b, &format!("你好，{word}")).await;
        assert_eq!(detail_ok(s, &b, u.mid).await["is_intercept"], 1, "{word}");
    }
    say(s, &friend, &b, "日结工资？").await;
    assert_eq!(detail_ok(s, &b, friend.mid).await["is_intercept"], 0);
    assert_eq!(talkers(s, &b, 1, &[]).await, vec![friend.mid]);
    assert_eq!(talkers(s, &b, 5, &[]).await.len(), 3);
    // Images carry no keywords.
    let img = s.user("img").await;
    ok(&s.send(&img, b.mid, 2, IMAGE).await);
    assert_eq!(detail_ok(s, &b, img.mid).await["is_intercept"], 0);
    // An auto-reply went to those not intercepted.
    assert_eq!(
        said(s, &img, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 9, "自动回复")
    );

    // An existing conversation moves to the dustbin when spam arrives in it.
    let c = s.user("c").await;
    say(s, &c, &b, "你好").await;
    say(s, &b, &c, "你好，有事吗").await;
    assert_eq!(detail_ok(s, &b, c.mid).await["is_intercept"], 0);
    say(s, &c, &b, "兼职刷单了解一下").await;
    assert_eq!(detail_ok(s, &b, c.mid).await["is_intercept"], 1);
    assert_eq!(talkers(s, &b, 5, &[]).await[0], c.mid);
    assert!(!talkers(s, &b, 1, &[]).await.contains(&c.mid));
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        json!({
            "unfollow_unread": 1, "follow_unread": 1, "unfollow_push_msg": 0,
            "dustbin_push_msg": 0, "dustbin_unread": 4, "biz_msg_unfollow_unread": 0,
            "biz_msg_follow_unread": 0, "custom_unread": 0,
        })
    );
}
scenario!(spam_keywords_put_the_session_in_the_dustbin);

async fn flagged_senders_are_intercepted(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let c = s.user("c").await;
    let fan = s.user("fan").await;
    let e = s.user("e").await;
    let v = admin_settings(s, a.mid, json!({"flagged": true})).await;
    assert_eq!(v["flagged"], true);
    say(s, &a, &b, "正常的问候").await;
    assert_eq!(detail_ok(s, &b, a.mid).await["is_intercept"], 1);
    ok(&s.send(&a, c.mid, 2, IMAGE).await);
    assert_eq!(detail_ok(s, &c, a.mid).await["is_intercept"], 1);
    // Not from someone the receiver follows.
    act(s, &fan, a.mid, FOLLOW).await;
    say(s, &a, &fan, "hi fan").await;
    assert_eq!(detail_ok(s, &fan, a.mid).await["is_intercept"], 0);
    // Unflagged: no longer.
    let v = admin_settings(s, a.mid, json!({"flagged": false})).await;
    assert_eq!(v["flagged"], false);
    say(s, &a, &e, "hi").await;
    assert_eq!(detail_ok(s, &e, a.mid).await["is_intercept"], 0);
    // Sessions already in the dustbin stay there.
    assert_eq!(detail_ok(s, &b, a.mid).await["is_intercept"], 1);
}
scenario!(flagged_senders_are_intercepted);

async fn releasing_trusts_for_good(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    say(s, &a, &b, "兼职刷单").await;
    assert_eq!(talkers(s, &b, 5, &[]).await, vec![a.mid]);

    assert_empty_ok(&intercept(s, &b, a.mid, "0").await);
    let db = detail_ok(s, &b, a.mid).await;
    assert_eq!(
        (db["is_intercept"].clone(), db["is_trust"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(list(s, &b, 5, &[]).await["session_list"], Value::Null);
    assert_eq!(talkers(s, &b, 1, &[]).await, vec![a.mid]);
    assert_eq!(talkers(s, &b, 2, &[]).await, vec![a.mid]);
    assert_eq!(new_talkers(s, &b).await, vec![a.mid]);
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(1, 0, 0)
    );
    // Releasing does not lift the one-message rule; a hand-written answer does.
    assert_err(&send_text(s, &a, b.mid, "日结工资").await, 21047, E21047);
    say(s, &b, &a, "什么事").await;
    // Spam and a flagged sender no longer put it in the dustbin.
    say(s, &a, &b, "日结工资").await;
    admin_settings(s, a.mid, json!({"flagged": true})).await;
    say(s, &a, &b, "加我微信领取").await;
    let db = detail_ok(s, &b, a.mid).await;
    assert_eq!(
        (db["is_intercept"].clone(), db["is_trust"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(2, 0, 0)
    );

    // Intercepting by hand (status=1) puts it back and drops the trust.
    assert_empty_ok(&intercept(s, &b, a.mid, "1").await);
    let db = detail_ok(s, &b, a.mid).await;
    assert_eq!(
        (db["is_intercept"].clone(), db["is_trust"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(talkers(s, &b, 5, &[]).await, vec![a.mid]);
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(0, 0, 2)
    );
    // An explicit session_type=1 is accepted.
    let v = s
        .post(
            &b,
            UPDATE_INTERCEPT,
            &[
                ("talker_id", st(a.mid)),
                ("session_type", "1".into()),
                ("status", "0".into()),
            ],
        )
        .await;
    assert_empty_ok(&v);
    assert_eq!(detail_ok(s, &b, a.mid).await["is_trust"], 1);
    // Any ordinary session can be intercepted by hand; the other side's view is its own.
    let c = s.user("c").await;
    say(s, &c, &b, "普通消息").await;
    assert_empty_ok(&intercept(s, &b, c.mid, "1").await);
    assert_eq!(talkers(s, &b, 5, &[]).await, vec![c.mid]);
    assert_eq!(detail_ok(s, &c, b.mid).await["is_intercept"], 0);
    // A talker never chatted with: nothing to change, no error.
    let d = s.user("d").await;
    assert_empty_ok(&intercept(s, &b, d.mid, "0").await);
    assert_err(&s.detail(&b, d.mid).await, 1000004, "入口节点已存在");
}
scenario!(releasing_trusts_for_good);

async fn update_intercept_bad_input(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    say(s, &a, &b, "兼职刷单").await;
    let post = |form: Vec<(&'static str, String)>| {
        let b = &b;
        async move { s.post(b, UPDATE_INTERCEPT, &form).await }
    };
    let t = st(a.mid);
    assert_err(&post(vec![("status", "0".into())]).await, -400, "请求错误");
    assert_err(
        &post(vec![("talker_id", t.clone())]).await,
        -400,
        "请求错误",
    );
    assert_err(
        &post(vec![("talker_id", "x".into()), ("status", "0".into())]).await,
        -400,
        "请求错误",
    );
    assert_err(
        &post(vec![("talker_id", t.clone()), ("status", "x".into())]).await,
        -400,
        "请求错误",
    );
    assert_err(
        &post(vec![("talker_id", t.clone()), ("status", "2".into())]).await,
        2,
        "非法参数",
    );
    assert_err(
        &post(vec![("talker_id", t.clone()), ("status", "-1".into())]).await,
        2,
        "非法参数",
    );
    for st_ in ["2", "3", "0"] {
        assert_err(
            &post(vec![
                ("talker_id", t.clone()),
                ("status", "0".into()),
                ("session_type", st_.into()),
            ])
            .await,
            2,
            "非法参数",
        );
    }
    // System sessions cannot be intercepted.
    notify(s, 5, &b, 10, 5).await;
    assert_err(
        &post(vec![("talker_id", st(SYS_NOTICE)), ("status", "1".into())]).await,
        2,
        "非法参数",
    );
    assert_eq!(detail_ok(s, &b, SYS_NOTICE).await["is_intercept"], 0);
    // csrf and login.
    let form = vec![("talker_id", t.clone()), ("status", "0".to_string())];
    assert_err(
        &s.post_raw(&b, UPDATE_INTERCEPT, &no_csrf(&form)).await,
        -111,
        "csrf 校验失败",
    );
    assert_err(
        &s.post(&logged_out(&b), UPDATE_INTERCEPT, &form).await,
        -101,
        "账号未登录",
    );
    for path in [DUSTBIN_ACK, DUSTBIN_RM] {
        assert_err(&s.post_raw(&b, path, &[]).await, -111, "csrf 校验失败");
        assert_err(
            &s.post(&logged_out(&b), path, &[]).await,
            -101,
            "账号未登录",
        );
    }
    // Nothing changed.
    let db = detail_ok(s, &b, a.mid).await;
    assert_eq!(
        (
            db["is_intercept"].clone(),
            db["is_trust"].clone(),
            db["unread_count"].clone()
        ),
        (json!(1), json!(0), json!(1))
    );
    assert_eq!(talkers(s, &b, 5, &[]).await, vec![a.mid]);
}
scenario!(update_intercept_bad_input);

async fn dustbin_batch_ack_and_remove(s: &Server) {
    let b = s.user("b").await;
    let s1 = s.user("s1").await;
    let s2 = s.user("s2").await;
    let n = s.user("n").await;
    // Empty dustbin: both succeed.
    assert_empty_ok(&s.post(&b, DUSTBIN_ACK, &[]).await);
    assert_empty_ok(&s.post(&b, DUSTBIN_RM, &[]).await);
    s.advance_clock(1000).await;
    say(s, &s1, &b, "兼职刷单").await;
    s.advance_clock(1000).await;
    say(s, &s2, &b, "日结工资").await;
    s.advance_clock(1000).await;
    say(s, &n, &b, "你好").await;
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(1, 0, 2)
    );

    // Marking the dustbin read leaves other sessions alone.
    assert_empty_ok(&s.post(&b, DUSTBIN_ACK, &[]).await);
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(1, 0, 0)
    );
    for t in [&s1, &s2] {
        let d = detail_ok(s, &b, t.mid).await;
        assert_eq!(d["unread_count"], 0);
        assert_eq!(d["ack_seqno"], d["max_seqno"]);
        assert!(d["ack_ts"].as_i64().unwrap() > 0);
        assert_eq!(d["is_intercept"], 1);
    }
    assert_eq!(detail_ok(s, &b, n.mid).await["unread_count"], 1);
    assert_eq!(talkers(s, &b, 5, &[]).await, vec![s2.mid, s1.mid]);

    // Removing the dustbin hides its sessions, keeping history and other sessions.
    assert_err(&send_text(s, &s1, b.mid, "哈喽").await, 21047, E21047);
    assert_empty_ok(&s.post(&b, DUSTBIN_RM, &[]).await);
    assert_eq!(list(s, &b, 5, &[]).await["session_list"], Value::Null);
    assert_eq!(talkers(s, &b, 1, &[]).await, vec![n.mid]);
    assert_eq!(
        said(s, &b, s2.mid).await,
        vec![line(s2.mid, 1, 7, "日结工资")]
    );
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(1, 0, 0)
    );
    // The next message brings the session back, still in the dustbin.
    s.advance_clock(1000).await;
    say(s, &b, &s2, "你是谁？").await;
    assert_eq!(talkers(s, &b, 5, &[]).await, vec![s2.mid]);
    s.advance_clock(1000).await;
    say(s, &s2, &b, "兼职刷单").await;
    assert_eq!(
        unread_with(s, &b, &[("show_dustbin", "1")]).await,
        counters(1, 0, 1)
    );
    assert_eq!(talkers(s, &b, 5, &[]).await, vec![s2.mid]);
}
scenario!(dustbin_batch_ack_and_remove);

// ---- auto-replies ----

async fn message_reply_once_per_counterpart_per_day(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let c = s.user("c").await;
    act(s, &b, a.mid, FOLLOW).await;
    admin_settings(s, b.mid, json!({"message_reply": "我现在不在，稍后回复"})).await;
    // a's own auto-reply never answers b's automatic one.
    admin_settings(s, a.mid, json!({"message_reply": "a 的自动回复", "keyword_replies": [{"keyword": "不在", "reply": "a 的关键词回复"}]})).await;
    set_clock(s, MIDNIGHT_CST_MS - 120_000).await;

    say(s, &a, &b, "在吗").await;
    let reply = line(b.mid, 1, 9, "我现在不在，稍后回复");
    assert_eq!(
        said(s, &a, b.mid).await,
        vec![line(a.mid, 1, 7, "在吗"), reply.clone()]
    );
    let m = history(s, &a, b.mid).await.pop().unwrap();
    assert_eq!(m["receiver_id"], a.mid);
    // The reply is unread for a; the automatic reply read nothing for b.
    assert_eq!(detail_ok(s, &a, b.mid).await["unread_count"], 1);
    assert_eq!(s.unread(&a).await, counters(1, 0, 0));
    assert_eq!(detail_ok(s, &b, a.mid).await["unread_count"], 1);
    assert_eq!(s.unread(&b).await, counters(0, 1, 0));

    // Once per counterpart per day: no more today, for texts or images.
    say(s, &a, &b, "还在吗").await;
    ok(&s.send(&a, b.mid, 2, IMAGE).await);
    assert_eq!(said(s, &a, b.mid).await.len(), 4);
    assert_eq!(detail_ok(s, &b, a.mid).await["unread_count"], 3);
    // Another counterpart gets their own; it lifts nothing for them.
    say(s, &c, &b, "你好").await;
    assert_eq!(
        said(s, &c, b.mid).await,
        vec![
            line(c.mid, 1, 7, "你好"),
            line(c.mid, 18, 18, TIP_TEXT),
            reply.clone()
        ]
    );
    assert_err(&send_text(s, &c, b.mid, "在吗").await, 21047, E21047);
    assert_eq!(is_limit(s, &c, b.mid).await, 1);

    // The next calendar day in UTC+8 (two minutes later): once more.
    set_clock(s, MIDNIGHT_CST_MS + 1000).await;
    ok(&s.send(&a, b.mid, 2, IMAGE).await);
    let got = said(s, &a, b.mid).await;
    assert_eq!(got.len(), 6);
    assert_eq!(got[5], reply);
    say(s, &a, &b, "好的").await;
    assert_eq!(said(s, &a, b.mid).await.len(), 7);
    // Nothing a sent was automatic.
    assert!(said(s, &b, a.mid)
        .await
        .iter()
        .all(|m| m.0 != a.mid || m.2 == 7));
}
scenario!(message_reply_once_per_counterpart_per_day);

async fn keyword_replies_first_match_wins(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    act(s, &b, a.mid, FOLLOW).await;
    admin_settings(
        s,
        b.mid,
        json!({
            "message_reply": "稍后回复",
            "keyword_replies": [
                {"keyword": "价格", "reply": "价格见置顶动态"},
                {"keyword": "价", "reply": "第二条"},
            ],
        }),
    )
    .await;
    say(s, &a, &b, "请问价格多少？").await;
    assert_eq!(
        said(s, &a, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 10, "价格见置顶动态")
    );
    // The keyword reply won over the message reply, which is still due today.
    say(s, &a, &b, "你好").await;
    assert_eq!(
        said(s, &a, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 9, "稍后回复")
    );
    // Keyword replies answer every time; the first listed keyword the text contains wins.
    say(s, &a, &b, "价钱呢").await;
    assert_eq!(
        said(s, &a, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 10, "第二条")
    );
    say(s, &a, &b, "价格？价钱？").await;
    assert_eq!(
        said(s, &a, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 10, "价格见置顶动态")
    );
    // No keyword, message reply used: nothing.
    say(s, &a, &b, "在吗").await;
    // Keywords match texts only.
    ok(&s.send(&a, b.mid, 2, IMAGE).await);
    assert_eq!(
        said(s, &a, b.mid).await,
        vec![
            line(a.mid, 1, 7, "请问价格多少？"),
            line(b.mid, 1, 10, "价格见置顶动态"),
            line(a.mid, 1, 7, "你好"),
            line(b.mid, 1, 9, "稍后回复"),
            line(a.mid, 1, 7, "价钱呢"),
            line(b.mid, 1, 10, "第二条"),
            line(a.mid, 1, 7, "价格？价钱？"),
            line(b.mid, 1, 10, "价格见置顶动态"),
            line(a.mid, 1, 7, "在吗"),
            (a.mid, 2, 7, IMAGE.to_string()),
        ]
    );
    // Keyword replies don't lift the one-message rule either.
    let c = s.user("c").await;
    say(s, &c, &b, "价格").await;
    assert_eq!(
        said(s, &c, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 10, "价格见置顶动态")
    );
    assert_err(&send_text(s, &c, b.mid, "价格?").await, 21047, E21047);
}
scenario!(keyword_replies_first_match_wins);

async fn auto_replies_answer_only_hand_written_messages(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    act(s, &b, a.mid, FOLLOW).await;
    let k = say(s, &a, &b, "发错了").await;
    admin_settings(
        s,
        b.mid,
        json!({"message_reply": "稍后回复", "keyword_replies": [{"keyword": "开始聊天", "reply": "关键词"}]}),
    )
    .await;
    // A recall is not answered.
    ok(&s.send(&a, b.mid, 5, &k.to_string()).await);
    assert_eq!(said(s, &a, b.mid).await.len(), 2);
    // The mutual-follow greeting (automatic, and containing a keyword) is not answered.
    act(s, &a, b.mid, FOLLOW).await;
    let got = said(s, &a, b.mid).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], line(a.mid, 1, 17, GREETING));
    // The message reply was still due: a hand-written message gets it.
    say(s, &a, &b, "你好").await;
    assert_eq!(
        said(s, &a, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 9, "稍后回复")
    );
    // Two users with auto-replies don't answer each other's.
    admin_settings(s, a.mid, json!({"message_reply": "a 稍后回复", "keyword_replies": [{"keyword": "回复", "reply": "a 关键词"}]})).await;
    let c = s.user("c").await;
    admin_settings(s, c.mid, json!({"message_reply": "c 稍后回复", "keyword_replies": [{"keyword": "回复", "reply": "c 关键词"}]})).await;
    say(s, &c, &a, "hi").await;
    assert_eq!(
        said(s, &c, a.mid).await,
        vec![
            line(c.mid, 1, 7, "hi"),
            line(c.mid, 18, 18, TIP_TEXT),
            line(a.mid, 1, 9, "a 稍后回复"),
        ]
    );
}
scenario!(auto_replies_answer_only_hand_written_messages);

// ---- settings: admin API and /sixin/v1/settings ----

async fn admin_settings_round_trip(s: &Server) {
    let a = s.user("a").await;
    let path = format!("/users/{}/settings", a.mid);
    let (code, v) = s.admin(Method::GET, &path, None).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        json!({"mid": a.mid, "privacy": 0, "flagged": false, "follow_reply": "",
               "message_reply": "", "keyword_replies": []})
    );
    let full = json!({
        "privacy": 1, "flagged": true, "follow_reply": "谢谢关注",
        "message_reply": "不在", "keyword_replies": [{"keyword": "k1", "reply": "r1"}, {"keyword": "k2", "reply": "r2"}],
    });
    let v = admin_settings(s, a.mid, full.clone()).await;
    let mut want = full.clone();
    want["mid"] = json!(a.mid);
    assert_eq!(v, want);
    let (code, v) = s.admin(Method::GET, &path, None).await;
    assert_eq!((code, v), (200, want.clone()));
    // Absent fields stay as they are.
    let v = admin_settings(s, a.mid, json!({"message_reply": ""})).await;
    want["message_reply"] = json!("");
    assert_eq!(v, want);
    let v = admin_settings(s, a.mid, json!({})).await;
    assert_eq!(v, want);
    // The user sees the same through their own endpoint (without the operator's flag).
    let v = s.get(&a, SETTINGS, &[]).await;
    assert_eq!(
        ok(&v),
        &json!({"privacy": 1, "follow_reply": "谢谢关注", "message_reply": "",
                "keyword_replies": [{"keyword": "k1", "reply": "r1"}, {"keyword": "k2", "reply": "r2"}]})
    );

    // Bad bodies: 400 with an error, nothing changed.
    for body in [
        json!({"privacy": 2}),
        json!({"privacy": -1}),
        json!({"privacy": "1"}),
        json!({"flagged": "yes"}),
        json!({"bogus": 1}),
        json!({"keyword_replies": [{"keyword": "", "reply": "r"}]}),
        json!({"keyword_replies": [{"keyword": "k", "reply": ""}]}),
        json!({"keyword_replies": [{"keyword": "k"}]}),
        json!({"keyword_replies": "k"}),
        json!({"message_reply": "长".repeat(700)}),
        json!({"follow_reply": 5}),
        // A bad part spoils the whole request: the good parts are not applied either.
        json!({"privacy": 0, "flagged": false, "keyword_replies": [{"keyword": "", "reply": "r"}]}),
        json!({"privacy": 0, "flagged": false, "follow_reply": "长".repeat(700)}),
    ] {
        let (code, v) = s.admin(Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(code, 400, "{body} → {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (code, v) = s.admin(Method::GET, &path, None).await;
    assert_eq!((code, v), (200, want));
    // Unknown users and malformed mids.
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"privacy": 1}))),
    ] {
        let (code, v) = s
            .admin(method.clone(), "/users/999999999/settings", body.clone())
            .await;
        assert_eq!(code, 404, "{v}");
        let (code, v) = s.admin(method, "/users/abc/settings", body).await;
        assert_eq!(code, 400, "{v}");
    }
    let resp = s
        .http
        .get(s.url(&format!("/admin/v1{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
scenario!(admin_settings_round_trip);

async fn user_settings_endpoint(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let get = || async { s.get(&a, SETTINGS, &[]).await };
    let empty =
        json!({"privacy": 0, "follow_reply": "", "message_reply": "", "keyword_replies": []});
    assert_eq!(ok(&get().await), &empty);

    let v = s
        .post(
            &a,
            SETTINGS,
            &[
                ("privacy", "1".into()),
                ("follow_reply", "感谢关注".into()),
                ("message_reply", "稍后回复".into()),
                (
                    "keyword_replies",
                    r#"[{"keyword":"价格","reply":"看置顶"}]"#.into(),
                ),
            ],
        )
        .await;
    let want = json!({"privacy": 1, "follow_reply": "感谢关注", "message_reply": "稍后回复",
                      "keyword_replies": [{"keyword": "价格", "reply": "看置顶"}]});
    assert_eq!(ok(&v), &want);
    assert_eq!(ok(&get().await), &want);
    let (_, adm) = s
        .admin(Method::GET, &format!("/users/{}/settings", a.mid), None)
        .await;
    assert_eq!(adm["privacy"], 1);
    assert_eq!(adm["keyword_replies"], want["keyword_replies"]);

    // They take effect: privacy, then the replies.
    assert_err(&send_text(s, &b, a.mid, "价格").await, 25003, E25003);
    act(s, &a, b.mid, FOLLOW).await;
    say(s, &b, &a, "价格").await;
    assert_eq!(
        said(s, &b, a.mid).await.last().unwrap(),
        &line(a.mid, 1, 10, "看置顶")
    );
    act(s, &b, a.mid, FOLLOW).await;
    assert_eq!(
        said(s, &b, a.mid).await.last().unwrap(),
        &line(a.mid, 1, 8, "感谢关注")
    );

    // Fields left out stay; an empty keyword list clears them.
    let v = s.post(&a, SETTINGS, &[("message_reply", "".into())]).await;
    let mut want2 = want.clone();
    want2["message_reply"] = json!("");
    assert_eq!(ok(&v), &want2);
    let v = s
        .post(
            &a,
            SETTINGS,
            &[("keyword_replies", "".into()), ("privacy", "0".into())],
        )
        .await;
    want2["keyword_replies"] = json!([]);
    want2["privacy"] = json!(0);
    assert_eq!(ok(&v), &want2);
    let v = s
        .post(&a, SETTINGS, &[("keyword_replies", "[]".into())])
        .await;
    assert_eq!(ok(&v), &want2);

    // Errors change nothing.
    for (field, value, code, msg) in [
        ("privacy", "2", 2, "非法参数"),
        ("privacy", "x", -400, "请求错误"),
        ("keyword_replies", "nope", -400, "请求错误"),
        (
            "keyword_replies",
            r#"{"keyword":"k","reply":"r"}"#,
            -400,
            "请求错误",
        ),
        (
            "keyword_replies",
            r#"[{"keyword":"","reply":"r"}]"#,
            2,
            "非法参数",
        ),
        (
            "keyword_replies",
            r#"[{"keyword":"k","reply":""}]"#,
            2,
            "非法参数",
        ),
    ] {
        let v = s.post(&a, SETTINGS, &[(field, value.to_string())]).await;
        assert_err(&v, code, msg);
    }
    let long = "长".repeat(700);
    assert_err(
        &s.post(&a, SETTINGS, &[("message_reply", long)]).await,
        2,
        "非法参数",
    );
    // A bad part spoils the whole request.
    assert_err(
        &s.post(
            &a,
            SETTINGS,
            &[
                ("privacy", "1".into()),
                ("message_reply", "新的".into()),
                ("keyword_replies", r#"[{"keyword":"","reply":"r"}]"#.into()),
            ],
        )
        .await,
        2,
        "非法参数",
    );
    assert_err(
        &s.post_raw(&a, SETTINGS, &[("privacy", "1".into())]).await,
        -111,
        "csrf 校验失败",
    );
    assert_err(
        &s.get(&logged_out(&a), SETTINGS, &[]).await,
        -101,
        "账号未登录",
    );
    assert_err(
        &s.post(&logged_out(&a), SETTINGS, &[("privacy", "1".into())])
            .await,
        -101,
        "账号未登录",
    );
    assert_eq!(ok(&get().await), &want2);
    // Each user has their own.
    assert_eq!(ok(&s.get(&b, SETTINGS, &[]).await), &empty);
}
scenario!(user_settings_endpoint);

// ---- system accounts ----

async fn system_accounts_in_session_lists(s: &Server) {
    let u = s.user("u").await;
    let x = s.user("x").await;
    let friend = s.user("friend").await;
    // No system session yet: no system_msg.
    say(s, &x, &u, "hi").await;
    let d = list(s, &u, 1, &[]).await;
    assert!(d.get("system_msg").is_none(), "{d}");

    let names = [
        (1u8, SYS_LIVE, "主播小助手", 11u32, 5u32),
        (5, SYS_NOTICE, "系统通知", 10, 5),
        (7, SYS_UP, "UP主小助手", 12, 6),
        (8, SYS_CUSTOM, "客服消息", 13, 6),
        (9, SYS_PAY, "支付小助手", 16, 6),
    ];
    for (t, mid, _, msg_type, source) in names {
        s.advance_clock(1000).await;
        let m = notify(s, t, &u, msg_type, source).await;
        assert_eq!(m["sender_uid"], mid);
        assert_eq!(m["receiver_id"], u.mid);
        assert_eq!(m["msg_type"], msg_type);
        assert_eq!(m["msg_source"], source);
        assert_eq!(m["notify_code"], "2091_253");
        assert_eq!(m["content"], r#"{"title":"通知","text":"内容"}"#);
    }
    act(s, &u, friend.mid, FOLLOW).await;
    s.advance_clock(1000).await;
    say(s, &friend, &u, "hey").await;

    let d = list(s, &u, 1, &[]).await;
    assert_eq!(
        d["system_msg"],
        json!({"1": SYS_LIVE, "5": SYS_NOTICE, "7": SYS_UP, "8": SYS_CUSTOM, "9": SYS_PAY})
    );
    assert_eq!(
        talkers_of(&d),
        vec![friend.mid, SYS_PAY, SYS_CUSTOM, SYS_UP, SYS_NOTICE, SYS_LIVE, x.mid]
    );
    for (t, mid, name, msg_type, source) in names {
        let item = d["session_list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["talker_id"] == mid)
            .unwrap()
            .clone();
        assert_eq!(item["session_type"], 1);
        assert_eq!(item["system_msg_type"], t);
        assert_eq!(
            item["account_info"],
            json!({"name": name, "pic_url": SYS_PIC})
        );
        assert_eq!(item["is_follow"], 1);
        assert_eq!(item["last_msg"]["msg_type"], msg_type);
        assert_eq!(item["last_msg"]["msg_source"], source);
        assert_eq!(item["last_msg"]["notify_code"], "2091_253");
        assert_eq!(detail_ok(s, &u, mid).await, item);
    }
    for i in d["session_list"].as_array().unwrap() {
        if i["talker_id"] == x.mid || i["talker_id"] == friend.mid {
            assert_eq!(i["system_msg_type"], 0);
            assert!(
                i.get("account_info").is_none() || i["account_info"].is_null(),
                "{i}"
            );
        }
    }
    let sys = vec![SYS_PAY, SYS_CUSTOM, SYS_UP, SYS_NOTICE, SYS_LIVE];
    let d7 = list(s, &u, 7, &[]).await;
    assert_eq!(talkers_of(&d7), sys);
    assert_eq!(d7["system_msg"], d["system_msg"]);
    // A later page (read without the pinned sessions) and the fan-group list name them too.
    let later = list(
        s,
        &u,
        1,
        &[("end_ts", d["session_list"][1]["session_ts"].to_string())],
    )
    .await;
    assert_eq!(later["system_msg"], d["system_msg"]);
    assert_eq!(
        talkers_of(&later),
        vec![SYS_CUSTOM, SYS_UP, SYS_NOTICE, SYS_LIVE, x.mid]
    );
    assert_eq!(list(s, &u, 3, &[]).await["system_msg"], d["system_msg"]);
    let mut followed = vec![friend.mid];
    followed.extend(&sys);
    assert_eq!(talkers(s, &u, 9, &[]).await, followed);
    assert_eq!(
        talkers(s, &u, 1, &[("unfollow_fold", "1".into())]).await,
        followed
    );
    assert_eq!(talkers(s, &u, 8, &[]).await, vec![x.mid]);
    assert_eq!(talkers(s, &u, 2, &[]).await, vec![x.mid]);
    // Others have no system sessions.
    assert!(list(s, &x, 1, &[]).await.get("system_msg").is_none());

    // Bad injections.
    for body in [
        json!({"system_msg_type": 5, "to": u.mid, "msg_type": 1, "content": {}}),
        json!({"system_msg_type": 5, "to": u.mid, "msg_type": 18, "content": {}}),
        json!({"system_msg_type": 5, "to": u.mid, "msg_type": 10, "content": {}, "msg_source": 7}),
        json!({"system_msg_type": 3, "to": u.mid, "msg_type": 10, "content": {}}),
        json!({"from": x.mid, "to": u.mid, "msg_type": 10, "content": {}}),
        json!({"to": u.mid, "msg_type": 10, "content": {}}),
        json!({"system_msg_type": 5, "to": SYS_UP, "msg_type": 10, "content": {}}),
    ] {
        let (code, v) = s
            .admin(Method::POST, "/messages/system", Some(body.clone()))
            .await;
        assert_eq!(code, 400, "{body} → {v}");
    }
    let (code, v) = s
        .admin(
            Method::POST,
            "/messages/system",
            Some(json!({"system_msg_type": 5, "to": 999999999u64, "msg_type": 10, "content": {}})),
        )
        .await;
    assert_eq!(code, 404, "{v}");
    // By mid works as well as by type.
    let (code, v) = s
        .admin(
            Method::POST,
            "/messages/system",
            Some(json!({"from": SYS_UP, "to": x.mid, "msg_type": 10, "content": {"a": 1}})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["msg_source"], 6);
    assert_eq!(v["notify_code"], "");
    assert_eq!(
        list(s, &x, 7, &[]).await["system_msg"],
        json!({"7": SYS_UP})
    );
}
scenario!(system_accounts_in_session_lists);

fn all_counters(
    unfollow: u64,
    follow: u64,
    push_msg: u64,
    biz_unfollow: u64,
    biz_follow: u64,
    custom: u64,
) -> Value {
    json!({
        "unfollow_unread": unfollow,
        "follow_unread": follow,
        "unfollow_push_msg": push_msg,
        "dustbin_push_msg": 0,
        "dustbin_unread": 0,
        "biz_msg_unfollow_unread": biz_unfollow,
        "biz_msg_follow_unread": biz_follow,
        "custom_unread": custom,
    })
}

async fn push_ss(s: &Server, viewer: &User, talker: u64, setting: u8) {
    let v = s
        .post(
            viewer,
            SET_PUSH_SS,
            &[("talker_uid", st(talker)), ("setting", setting.to_string())],
        )
        .await;
    assert_empty_ok(&v);
}

async fn system_messages_in_the_unread_counters(s: &Server) {
    let u = s.user("u").await;
    let f = s.user("f").await;
    let g = s.user("g").await;
    act(s, &u, f.mid, FOLLOW).await;
    // 客服消息: everything in custom_unread.
    notify(s, 8, &u, 10, 6).await;
    notify(s, 8, &u, 13, 5).await;
    // 系统通知: two official broadcasts.
    notify(s, 5, &u, 10, 5).await;
    notify(s, 5, &u, 10, 5).await;
    // UP主小助手: a personal push.
    notify(s, 7, &u, 11, 6).await;
    // 主播小助手: one of each.
    notify(s, 1, &u, 10, 5).await;
    notify(s, 1, &u, 12, 6).await;
    // 支付小助手: a personal push.
    notify(s, 9, &u, 16, 6).await;
    say(s, &f, &u, "followed").await;
    say(s, &g, &u, "stranger").await;

    let want = all_counters(1, 1, 2, 3, 3, 2);
    assert_eq!(s.unread(&u).await, want);
    assert_eq!(
        unread_with(s, &u, &[("show_dustbin", "1"), ("show_unfollow_list", "1")]).await,
        want
    );
    assert_eq!(
        unread_with(s, &u, &[("unread_type", "1")]).await,
        all_counters(0, 1, 2, 3, 3, 2)
    );
    assert_eq!(
        unread_with(s, &u, &[("unread_type", "2")]).await,
        all_counters(1, 0, 2, 3, 3, 2)
    );
    for bad in ["4", "9"] {
        assert_err(
            &s.get(&u, SINGLE_UNREAD, &[("unread_type", bad.into())])
                .await,
            2,
            "非法参数",
        );
    }
    // The session objects: unread pushes and the dot.
    let n = detail_ok(s, &u, SYS_NOTICE).await;
    assert_eq!(
        (
            n["unread_count"].clone(),
            n["biz_msg_unread_count"].clone(),
            n["new_push_msg"].clone(),
            n["setting"].clone()
        ),
        (json!(2), json!(2), json!(1), json!(0))
    );
    let fd = detail_ok(s, &u, f.mid).await;
    assert_eq!(
        (
            fd["biz_msg_unread_count"].clone(),
            fd["new_push_msg"].clone()
        ),
        (json!(0), json!(0))
    );

    // Pushes turned off (set_push_ss 1): kept, counted nowhere.
    push_ss(s, &u, SYS_NOTICE, 1).await;
    assert_eq!(s.unread(&u).await, all_counters(1, 1, 1, 1, 3, 2));
    let n = detail_ok(s, &u, SYS_NOTICE).await;
    assert_eq!(
        (
            n["unread_count"].clone(),
            n["biz_msg_unread_count"].clone(),
            n["new_push_msg"].clone(),
            n["setting"].clone()
        ),
        (json!(2), json!(2), json!(0), json!(1))
    );
    assert_eq!(ss(s, &u, SYS_NOTICE).await["push_setting"], 1);
    push_ss(s, &u, SYS_CUSTOM, 1).await;
    assert_eq!(s.unread(&u).await, all_counters(1, 1, 1, 1, 3, 0));
    assert_eq!(history(s, &u, SYS_CUSTOM).await.len(), 2);
    push_ss(s, &u, SYS_NOTICE, 0).await;
    push_ss(s, &u, SYS_CUSTOM, 0).await;
    assert_eq!(s.unread(&u).await, want);

    // Reading moves pushes out of the counters, partly or wholly.
    let ack = |talker: u64, seqno: Option<&'static str>| {
        let u = &u;
        async move {
            let mut p = vec![("talker_id", st(talker)), ("session_type", "1".to_string())];
            if let Some(a) = seqno {
                p.push(("ack_seqno", a.to_string()));
            }
            assert_empty_ok(&s.post(u, UPDATE_ACK, &p).await);
        }
    };
    ack(SYS_NOTICE, Some("1")).await;
    assert_eq!(s.unread(&u).await, all_counters(1, 1, 2, 2, 3, 2));
    let n = detail_ok(s, &u, SYS_NOTICE).await;
    assert_eq!(
        (
            n["unread_count"].clone(),
            n["biz_msg_unread_count"].clone(),
            n["new_push_msg"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    ack(SYS_LIVE, None).await;
    assert_eq!(s.unread(&u).await, all_counters(1, 1, 1, 1, 2, 2));
    let l = detail_ok(s, &u, SYS_LIVE).await;
    assert_eq!(
        (l["biz_msg_unread_count"].clone(), l["new_push_msg"].clone()),
        (json!(0), json!(0))
    );
    ack(SYS_CUSTOM, None).await;
    assert_eq!(s.unread(&u).await, all_counters(1, 1, 1, 1, 2, 0));
    // Do-not-disturb sessions count nowhere.
    let v = s
        .post(
            &u,
            SET_MSG_DND,
            &[("dnd_uid", st(SYS_UP)), ("setting", "1".into())],
        )
        .await;
    assert_empty_ok(&v);
    assert_eq!(s.unread(&u).await, all_counters(1, 1, 1, 1, 1, 0));
    // New pushes count again.
    notify(s, 8, &u, 10, 6).await;
    notify(s, 1, &u, 10, 5).await;
    assert_eq!(s.unread(&u).await, all_counters(1, 1, 2, 2, 1, 1));
}
scenario!(system_messages_in_the_unread_counters);

// ---- is_limit and get_sys_setting ----

async fn is_limit_and_sys_setting_shapes(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    let v = s
        .get(&a, IS_LIMIT, &[("uid", st(b.mid)), ("type", "1".into())])
        .await;
    assert_eq!(
        v,
        json!({"code": 0, "msg": "0", "message": "0", "ttl": 1, "data": {"is_limit": 0, "report_limit": 0}})
    );
    // `type` is optional; unknown users and oneself are not limited.
    let v = s.get(&a, IS_LIMIT, &[("uid", st(b.mid))]).await;
    assert_eq!(ok(&v), &json!({"is_limit": 0, "report_limit": 0}));
    for uid in [999999999u64, a.mid] {
        let v = s.get(&a, IS_LIMIT, &[("uid", st(uid))]).await;
        assert_eq!(ok(&v), &json!({"is_limit": 0, "report_limit": 0}));
    }
    say(s, &a, &b, "hi").await;
    let v = s
        .get(&a, IS_LIMIT, &[("uid", st(b.mid)), ("type", "1".into())])
        .await;
    assert_eq!(ok(&v), &json!({"is_limit": 1, "report_limit": 0}));
    assert_err(&s.get(&a, IS_LIMIT, &[]).await, -400, "请求错误");
    assert_err(
        &s.get(&a, IS_LIMIT, &[("uid", "x".into())]).await,
        -400,
        "请求错误",
    );
    assert_err(
        &s.get(&a, IS_LIMIT, &[("uid", st(b.mid)), ("type", "x".into())])
            .await,
        -400,
        "请求错误",
    );
    assert_err(
        &s.get(&logged_out(&a), IS_LIMIT, &[("uid", st(b.mid))])
            .await,
        -101,
        "账号未登录",
    );

    // get_sys_setting: the documented shape, every field present with its type.
    assert_err(
        &s.get(&logged_out(&a), GET_SYS_SETTING, &[]).await,
        -101,
        "账号未登录",
    );
    for web in [false, true] {
        let params: Vec<(&str, String)> = if web {
            vec![("mobi_app", "web".into())]
        } else {
            vec![]
        };
        let v = s.get(&a, GET_SYS_SETTING, &params).await;
        let d = ok(&v);
        let obj = d.as_object().expect("object");
        let numbers = [
            "is_create_group_available",
            "is_auto_reply_available",
            "is_receive_unfollow_wl",
            "is_voyage",
            "is_auto_reply_recommend_available",
            "is_discuss_style_im_page",
            "discuss_unread_style_im_page",
            "is_new_up_assistant_effective",
        ];
        let strings = [
            "vc_hint_title",
            "vc_hint_title_button",
            "vc_hint_detail",
            "vc_hint_detail_button",
            "auto_reply_html",
            "auto_reply_msg_desc",
            "huahuo_group_icon_new",
            "huahuo_group_icon_dark_new",
            "im_disabled_input_hint",
        ];
        let bools = ["is_archive_gray", "migrate_session_api"];
        let objects = ["old_up_assistant_door", "session_cfg", "game_msg"];
        for k in numbers {
            assert!(d[k].is_u64(), "{k}: {d}");
        }
        for k in strings {
            assert!(d[k].is_string(), "{k}: {d}");
        }
        for k in bools {
            assert!(d[k].is_boolean(), "{k}: {d}");
        }
        for k in objects {
            assert!(d[k].is_object(), "{k}: {d}");
        }
        assert_eq!(
            obj.len(),
            numbers.len() + strings.len() + bools.len() + objects.len(),
            "{d}"
        );
        let door = &d["old_up_assistant_door"];
        assert!(
            door["show_old_up_door"].is_u64()
                && door["title"].is_string()
                && door["sub_title"].is_string(),
            "{door}"
        );
        // sixin's values: auto-replies yes, fan-group creation not yet.
        assert_eq!(d["is_auto_reply_available"], 1);
        assert_eq!(d["is_create_group_available"], 0);
    }
}
scenario!(is_limit_and_sys_setting_shapes);

// A spam-keyword text (or any text from a flagged sender) in a released, trusted session is not
// intercepted, and so gets the receiver's auto-reply like any other message.
async fn trusted_sessions_get_auto_replies(s: &Server) {
    let a = s.user("a").await;
    let b = s.user("b").await;
    admin_settings(s, b.mid, json!({"message_reply": "稍后回复"})).await;
    say(s, &a, &b, "兼职刷单").await;
    assert_empty_ok(&intercept(s, &b, a.mid, "0").await);
    say(s, &b, &a, "什么事").await;
    // Not intercepted (trusted), so answered like any message.
    say(s, &a, &b, "日结工资").await;
    assert_eq!(detail_ok(s, &b, a.mid).await["is_intercept"], 0);
    assert_eq!(
        said(s, &a, b.mid).await.last().unwrap(),
        &line(b.mid, 1, 9, "稍后回复")
    );
}
scenario!(trusted_sessions_get_auto_replies);
