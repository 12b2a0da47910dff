//! The client library against a sixin server launched by the test (never the real service),
//! plus local test doubles for the network peer where the server cannot be made to misbehave.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sixin_client::proto::{DndSetting, Message};
use sixin_client::{
    Client, Credentials, Direction, Error, FetchQuery, OutgoingMessage, RelationAct, SessionsQuery,
    UnreadQuery,
};
use support::{TempDir, TestServer, UP_ASSISTANT};

fn newest(talker_id: u64, size: u32) -> FetchQuery {
    FetchQuery {
        talker_id,
        session_type: 1,
        size,
        begin_seqno: None,
        end_seqno: None,
    }
}

fn text_of(m: &Message) -> String {
    serde_json::from_str::<serde_json::Value>(&m.content).unwrap()["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn assert_api<T: std::fmt::Debug>(r: sixin_client::Result<T>, code: i64, message: &str) {
    match r {
        Err(Error::Api {
            code: c,
            message: m,
        }) => {
            assert_eq!((c, m.as_str()), (code, message));
        }
        other => panic!("expected API error {code} {message}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_endpoints() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let a = s.client(&alice);
    assert!(!a.is_official());
    assert_eq!(a.mid().unwrap(), alice.mid);

    let nav = a.nav().await.unwrap();
    assert!(nav.is_login);
    assert_eq!(nav.mid, Some(alice.mid));
    assert_eq!(nav.uname.as_deref(), Some("alice"));
    assert!(nav.wbi_img.img_url.ends_with(".png"), "{:?}", nav.wbi_img);
    assert!(nav.wbi_img.sub_url.ends_with(".png"), "{:?}", nav.wbi_img);
    // The mixin key comes from those two URLs.
    let img = sixin_client::proto::wbi::key_from_url(&nav.wbi_img.img_url).unwrap();
    let sub = sixin_client::proto::wbi::key_from_url(&nav.wbi_img.sub_url).unwrap();
    assert_eq!(
        a.wbi_mixin_key().await.unwrap(),
        sixin_client::proto::wbi::mixin_key(img, sub)
    );

    let me = a.myinfo().await.unwrap();
    assert_eq!((me.mid, me.name.as_str()), (alice.mid, "alice"));

    let cards = a
        .user_cards(&[bob.mid, 999_999_999, alice.mid])
        .await
        .unwrap();
    let got: Vec<(u64, &str)> = cards.iter().map(|c| (c.mid, c.name.as_str())).collect();
    assert_eq!(got, vec![(bob.mid, "bob"), (alice.mid, "alice")]);
    let infos = a.user_infos(&[alice.mid, UP_ASSISTANT]).await.unwrap();
    let got: Vec<(u64, &str)> = infos
        .iter()
        .map(|c| (c.card.mid, c.card.name.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(alice.mid, "alice"), (UP_ASSISTANT, "UP主小助手")]
    );
    assert_eq!(infos[0].vip.vip_type, 0);

    // Logged out: nav still answers (isLogin false, keys present); everything else is -101.
    let nobody = Client::builder()
        .server(&s.base)
        .credentials(Credentials::new("not-a-session", "0".repeat(32), alice.mid))
        .build()
        .unwrap();
    let nav = nobody.nav().await.unwrap();
    assert!(!nav.is_login);
    assert!(nav.wbi_img.img_url.ends_with(".png"));
    assert_api(nobody.myinfo().await, -101, "账号未登录");
    assert_api(
        nobody.single_unread(UnreadQuery::default()).await,
        -101,
        "账号未登录",
    );
    // No credentials at all: the same.
    let anon = Client::builder().server(&s.base).build().unwrap();
    assert_api(
        anon.get_sessions(SessionsQuery::default()).await,
        -101,
        "账号未登录",
    );
    assert!(matches!(anon.mid(), Err(Error::Config(_))));

    // A wrong CSRF token fails every POST with -111, reads still work.
    let bad_csrf = Client::builder()
        .server(&s.base)
        .credentials(Credentials::new(
            alice.sessdata.clone(),
            "f".repeat(32),
            alice.mid,
        ))
        .build()
        .unwrap();
    assert_eq!(bad_csrf.myinfo().await.unwrap().mid, alice.mid);
    assert_api(
        bad_csrf.send_text(bob.mid, "x").await,
        -111,
        "csrf 校验失败",
    );
    assert_api(
        bad_csrf.update_ack(bob.mid, 1, None).await,
        -111,
        "csrf 校验失败",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_session_endpoints() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    s.friends(&alice, &bob).await;
    s.friends(&alice, &carol).await;
    let a = s.client(&alice);
    let b = s.client(&bob);

    // Nothing yet.
    assert_eq!(
        a.single_unread(UnreadQuery::default()).await.unwrap(),
        Default::default()
    );
    assert_eq!(a.my_group_unread().await.unwrap().unread_count, 0);
    let list = a.get_sessions(SessionsQuery::default()).await.unwrap();
    assert_eq!(list.session_list, None);
    assert_eq!(list.has_more, 0);
    assert_api(
        a.session_detail(bob.mid, 1).await,
        1000004,
        "入口节点已存在",
    );
    let empty = a.fetch_session_msgs(newest(bob.mid, 20)).await.unwrap();
    assert_eq!(empty.messages, None);
    assert_eq!(
        (empty.min_seqno, empty.max_seqno, empty.has_more),
        (u64::MAX, 0, 0)
    );

    // bob writes three texts.
    let mut keys = Vec::new();
    for t in ["one", "two", "three [doge]"] {
        let r = b.send_text(alice.mid, t).await.unwrap();
        assert_eq!(
            r.msg_content.as_deref(),
            Some(serde_json::json!({ "content": t }).to_string().as_str())
        );
        assert_eq!(r.key_hit_infos, Some(Default::default()));
        // Snowflake keys are far above 2^53: any float on the way would have mangled them.
        assert!(r.msg_key > 1 << 53, "{}", r.msg_key);
        keys.push(r.msg_key);
    }
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");

    let u = a.single_unread(UnreadQuery::default()).await.unwrap();
    assert_eq!(
        (u.follow_unread, u.unfollow_unread, u.dustbin_unread),
        (3, 0, 0)
    );
    let only_unfollowed = a
        .single_unread(UnreadQuery {
            unread_type: 2,
            show_unfollow_list: true,
            show_dustbin: false,
        })
        .await
        .unwrap();
    assert_eq!(only_unfollowed.follow_unread, 0);

    let list = a.get_sessions(SessionsQuery::default()).await.unwrap();
    let sessions = list.session_list.clone().unwrap();
    assert_eq!(sessions.len(), 1);
    let sb = &sessions[0];
    assert_eq!(
        (
            sb.talker_id,
            sb.session_type,
            sb.unread_count,
            sb.max_seqno,
            sb.ack_seqno
        ),
        (bob.mid, 1, 3, 3, 0)
    );
    assert_eq!(sb.is_follow, 1);
    assert_eq!(sb.last_msg.as_ref().map(|m| m.msg_key), Some(keys[2]));
    assert_eq!(list.system_msg, None);
    assert!(list.show_level);

    let detail = a.session_detail(bob.mid, 1).await.unwrap();
    assert_eq!(&detail, sb);
    // bob's own side is read: sending marks the session read.
    let bd = b.session_detail(alice.mid, 1).await.unwrap();
    assert_eq!((bd.ack_seqno, bd.unread_count, bd.max_seqno), (3, 0, 3));

    // History: newest first, every field, keys exact.
    let page = a.fetch_session_msgs(newest(bob.mid, 20)).await.unwrap();
    let msgs = page.messages.clone().unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.msg_key).collect::<Vec<_>>(),
        vec![keys[2], keys[1], keys[0]]
    );
    assert_eq!(
        msgs.iter().map(|m| m.msg_seqno).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!((page.min_seqno, page.max_seqno, page.has_more), (1, 3, 0));
    assert_eq!(text_of(&msgs[0]), "three [doge]");
    assert!(msgs
        .iter()
        .all(|m| m.sender_uid == bob.mid && m.receiver_id == alice.mid && m.msg_type == 1));
    let e = page.e_infos.expect("e_infos for [doge]");
    assert!(e.iter().any(|i| i.text == "[doge]"), "{e:?}");
    // The raw page is the same data, as JSON.
    let raw = a.fetch_session_msgs_raw(newest(bob.mid, 20)).await.unwrap();
    assert_eq!(raw["messages"][0]["msg_key"].as_u64(), Some(keys[2]));
    assert_eq!(raw["min_seqno"].as_u64(), Some(1));
    // The four windows.
    let win = |b: Option<u64>, e: Option<u64>, size| FetchQuery {
        talker_id: bob.mid,
        session_type: 1,
        size,
        begin_seqno: b,
        end_seqno: e,
    };
    let seqnos = |p: sixin_client::proto::MessagePage| {
        p.messages
            .unwrap_or_default()
            .iter()
            .map(|m| m.msg_seqno)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqnos(a.fetch_session_msgs(win(None, Some(3), 1)).await.unwrap()),
        vec![2]
    );
    let fwd = a.fetch_session_msgs(win(Some(0), None, 2)).await.unwrap();
    assert_eq!(fwd.has_more, 1);
    assert_eq!(seqnos(fwd), vec![2, 1]);
    assert_eq!(
        seqnos(
            a.fetch_session_msgs(win(Some(1), Some(3), 20))
                .await
                .unwrap()
        ),
        vec![2]
    );

    // new_sessions: what changed after a time.
    let fresh = a.new_sessions(sb.session_ts - 1, 20).await.unwrap();
    assert_eq!(
        fresh
            .session_list
            .unwrap()
            .iter()
            .map(|s| s.talker_id)
            .collect::<Vec<_>>(),
        vec![bob.mid]
    );
    assert!(!fresh.show_level);
    assert_eq!(
        a.new_sessions(sb.session_ts, 20)
            .await
            .unwrap()
            .session_list,
        None
    );

    // Marking read: up to a seqno, never backwards, then everything.
    a.update_ack(bob.mid, 1, Some(2)).await.unwrap();
    let d = a.session_detail(bob.mid, 1).await.unwrap();
    assert_eq!((d.ack_seqno, d.unread_count), (2, 1));
    assert!(d.ack_ts > 0);
    a.update_ack(bob.mid, 1, Some(1)).await.unwrap();
    assert_eq!(a.session_detail(bob.mid, 1).await.unwrap().ack_seqno, 2);
    a.update_ack(bob.mid, 1, None).await.unwrap();
    let d = a.session_detail(bob.mid, 1).await.unwrap();
    assert_eq!((d.ack_seqno, d.unread_count), (3, 0));
    assert_eq!(
        a.single_unread(UnreadQuery::default())
            .await
            .unwrap()
            .follow_unread,
        0
    );

    // Sends: text with a keyword rule, image, recall.
    let r = a.send_text(bob.mid, "用支付宝付吧").await.unwrap();
    let hit = r.key_hit_infos.expect("key_hit_infos");
    assert_eq!(hit.rule_id, Some(2));
    assert!(hit.toast.unwrap().starts_with("【温馨提示】"));
    let img_url = "https://i0.hdslb.com/bfs/im/0123456789abcdef.png";
    let img = a.send_image(bob.mid, img_url).await.unwrap();
    assert_eq!(img.msg_content, None);
    assert_api(
        a.send_image(bob.mid, "https://evil.example.com/x.png")
            .await,
        21037,
        "图片格式不合法，不要调戏接口啦",
    );
    assert_api(
        a.send_text(alice.mid, "me").await,
        21026,
        "不能给自己发送消息哦~",
    );
    let mut bad = OutgoingMessage::text(bob.mid, "x");
    bad.msg_type = 7;
    assert_api(a.send(&bad).await, 21035, "该类消息暂时无法发送");
    assert_api(
        a.send_text(bob.mid, &"长".repeat(1000)).await,
        21007,
        "消息过长，无法发送",
    );

    let recall = a.recall(bob.mid, img.msg_key).await.unwrap();
    assert!(recall.msg_key > img.msg_key);
    assert_api(
        a.recall(bob.mid, img.msg_key).await,
        21042,
        "消息已经撤回了哦",
    );
    assert_api(a.recall(bob.mid, 12345).await, 10005, "msgkey不存在");
    // Someone else's message is not the caller's to recall.
    assert_api(a.recall(bob.mid, keys[0]).await, 10005, "msgkey不存在");
    let e = a.recall(bob.mid, 12345).await.unwrap_err();
    assert_eq!(e.code(), Some(10005));
    assert!(e.api_code().is_some());
    assert_eq!(e.to_string(), "API error 10005: msgkey不存在");

    let page = b.fetch_session_msgs(newest(alice.mid, 3)).await.unwrap();
    let msgs = page.messages.unwrap();
    assert_eq!(msgs[0].msg_type, 5);
    assert_eq!(msgs[0].msg_key, recall.msg_key);
    assert_eq!(msgs[0].content, img.msg_key.to_string());
    assert_eq!(
        (msgs[1].msg_key, msgs[1].msg_type, msgs[1].msg_status),
        (img.msg_key, 2, 1)
    );
    let c: serde_json::Value = serde_json::from_str(&msgs[1].content).unwrap();
    assert_eq!(c["url"], img_url);

    // The recall window.
    let late = a.send_text(bob.mid, "too late to take back").await.unwrap();
    s.advance_clock(121_000).await;
    assert_api(
        a.recall(bob.mid, late.msg_key).await,
        21041,
        "消息已超期，不能撤回了哦",
    );

    // Pinning.
    b.send_text(alice.mid, "carol's turn next").await.unwrap();
    s.client(&carol)
        .send_text(alice.mid, "hi from carol")
        .await
        .unwrap();
    let order = |l: sixin_client::proto::SessionList| {
        l.session_list
            .unwrap()
            .iter()
            .map(|s| s.talker_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        order(a.get_sessions(SessionsQuery::default()).await.unwrap()),
        vec![carol.mid, bob.mid]
    );
    a.set_top(bob.mid, 1, true).await.unwrap();
    let l = a.get_sessions(SessionsQuery::default()).await.unwrap();
    assert!(l.session_list.as_ref().unwrap()[0].top_ts > 0);
    assert_eq!(order(l), vec![bob.mid, carol.mid]);
    a.set_top(bob.mid, 1, false).await.unwrap();
    let l = a.get_sessions(SessionsQuery::default()).await.unwrap();
    assert_eq!(l.session_list.as_ref().unwrap()[1].top_ts, 0);
    assert_eq!(order(l), vec![carol.mid, bob.mid]);

    // Do-not-disturb: reported per id, and DND sessions don't count as unread.
    assert_eq!(
        a.single_unread(UnreadQuery::default())
            .await
            .unwrap()
            .follow_unread,
        2
    );
    a.set_msg_dnd(bob.mid, false, true).await.unwrap();
    let dnd = a.get_msg_dnd(&[bob.mid, carol.mid], &[]).await.unwrap();
    assert_eq!(
        dnd.uid_settings,
        vec![
            DndSetting {
                id: bob.mid,
                setting: 1
            },
            DndSetting {
                id: carol.mid,
                setting: 0
            }
        ]
    );
    assert_eq!(dnd.group_settings, vec![]);
    assert_eq!(a.session_detail(bob.mid, 1).await.unwrap().is_dnd, 1);
    assert_eq!(
        a.single_unread(UnreadQuery::default())
            .await
            .unwrap()
            .follow_unread,
        1
    );
    a.set_msg_dnd(bob.mid, false, false).await.unwrap();
    assert_eq!(
        a.get_msg_dnd(&[bob.mid], &[]).await.unwrap().uid_settings[0].setting,
        0
    );

    // Push setting and relation status.
    let ss = a.get_session_ss(bob.mid).await.unwrap();
    assert_eq!((ss.follow_status, ss.push_setting), (6, 0));
    a.set_push_ss(bob.mid, 1).await.unwrap();
    assert_eq!(a.get_session_ss(bob.mid).await.unwrap().push_setting, 1);
    let dave = s.user("dave").await;
    assert_eq!(a.get_session_ss(dave.mid).await.unwrap().follow_status, 0);
    s.follow(&alice, &dave).await;
    assert_eq!(a.get_session_ss(dave.mid).await.unwrap().follow_status, 2);

    // Removing hides the session until the next message, which brings it back.
    a.remove_session(carol.mid, 1).await.unwrap();
    assert_eq!(
        order(a.get_sessions(SessionsQuery::default()).await.unwrap()),
        vec![bob.mid]
    );
    assert_eq!(
        a.single_unread(UnreadQuery::default())
            .await
            .unwrap()
            .follow_unread,
        1
    );
    s.client(&carol)
        .send_text(alice.mid, "still there?")
        .await
        .unwrap();
    assert_eq!(
        order(a.get_sessions(SessionsQuery::default()).await.unwrap()),
        vec![carol.mid, bob.mid]
    );

    // A system notification: its own session with account_info, listed in system_msg.
    s.notification(&alice, "T", "X").await;
    let l = a.get_sessions(SessionsQuery::default()).await.unwrap();
    assert_eq!(
        l.system_msg.as_ref().and_then(|m| m.get("7")).copied(),
        Some(UP_ASSISTANT)
    );
    let sys = &l.session_list.as_ref().unwrap()[0];
    assert_eq!(
        (sys.talker_id, sys.system_msg_type, sys.is_follow),
        (UP_ASSISTANT, 7, 1)
    );
    assert_eq!(sys.account_info.as_ref().unwrap().name, "UP主小助手");
    let last = sys.last_msg.as_ref().unwrap();
    assert_eq!((last.msg_type, last.sender_uid), (10, UP_ASSISTANT));
    let only_system = a
        .get_sessions(SessionsQuery {
            session_type: 7,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(order(only_system), vec![UP_ASSISTANT]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_interception_and_settings() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let mallory = s.user("mallory").await;
    let a = s.client(&alice);
    let b = s.client(&bob);
    let c = s.client(&carol);
    let m = s.client(&mallory);

    // Following: self, twice, mutual (which starts the chat).
    assert_api(
        a.relation_modify(alice.mid, RelationAct::Follow).await,
        22001,
        "不能对自己进行此操作",
    );
    a.relation_modify(bob.mid, RelationAct::Follow)
        .await
        .unwrap();
    assert_eq!(a.get_session_ss(bob.mid).await.unwrap().follow_status, 2);
    assert_api(
        a.relation_modify(bob.mid, RelationAct::Follow).await,
        22014,
        "已经关注用户，无法重复关注",
    );
    b.relation_modify(alice.mid, RelationAct::Follow)
        .await
        .unwrap();
    assert_eq!(a.get_session_ss(bob.mid).await.unwrap().follow_status, 6);
    let page = a.fetch_session_msgs(newest(bob.mid, 20)).await.unwrap();
    let msgs = page.messages.expect("the mutual-follow message");
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].sender_uid, msgs[0].msg_source), (bob.mid, 17));
    assert_eq!(text_of(&msgs[0]), "我们已互相关注，开始聊天吧~");
    a.relation_modify(bob.mid, RelationAct::Unfollow)
        .await
        .unwrap();
    assert_eq!(b.get_session_ss(alice.mid).await.unwrap().follow_status, 2);

    // The one-message rule, seen through is_limit and send.
    assert_eq!(
        c.is_limit(alice.mid, 1).await.unwrap(),
        sixin_client::proto::IsLimit {
            is_limit: 0,
            report_limit: 0
        }
    );
    c.send_text(alice.mid, "hello stranger").await.unwrap();
    assert_eq!(c.is_limit(alice.mid, 1).await.unwrap().is_limit, 1);
    assert_api(
        c.send_text(alice.mid, "hello again").await,
        21047,
        "对方主动回复或关注你前，最多发送1条消息~",
    );
    // carol sees the tip under her message, alice doesn't.
    let mine = c
        .fetch_session_msgs(newest(alice.mid, 20))
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(
        mine.iter().map(|m| m.msg_type).collect::<Vec<_>>(),
        vec![18, 1]
    );
    let theirs = a
        .fetch_session_msgs(newest(carol.mid, 20))
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(
        theirs.iter().map(|m| m.msg_type).collect::<Vec<_>>(),
        vec![1]
    );

    // Blocking.
    a.relation_modify(carol.mid, RelationAct::Block)
        .await
        .unwrap();
    assert_eq!(
        a.get_session_ss(carol.mid).await.unwrap().follow_status,
        128
    );
    assert_api(
        a.relation_modify(carol.mid, RelationAct::Block).await,
        22120,
        "重复加入黑名单",
    );
    assert_api(
        a.relation_modify(carol.mid, RelationAct::Follow).await,
        22003,
        "关注失败，请将该用户从黑名单中移出后再试",
    );
    assert_api(
        a.send_text(carol.mid, "x").await,
        25005,
        "你已拉黑了对方，请先将对方移出黑名单后才能聊天",
    );
    assert_api(
        c.send_text(alice.mid, "x").await,
        25003,
        "因对方隐私设置，暂无法给他发送聊天消息",
    );
    a.relation_modify(carol.mid, RelationAct::Unblock)
        .await
        .unwrap();
    assert_eq!(a.get_session_ss(carol.mid).await.unwrap().follow_status, 0);

    // Interception: spam from a stranger goes to the dustbin.
    m.send_text(alice.mid, "兼职刷单，日结工资").await.unwrap();
    let with_dustbin = UnreadQuery {
        unread_type: 0,
        show_unfollow_list: true,
        show_dustbin: true,
    };
    let u = a.single_unread(with_dustbin).await.unwrap();
    // (Unfollowed: carol's message, and bob's mutual-follow message since alice unfollowed.)
    assert_eq!((u.dustbin_unread, u.unfollow_unread), (1, 2), "{u:?}");
    assert_eq!(
        a.single_unread(UnreadQuery::default())
            .await
            .unwrap()
            .dustbin_unread,
        0
    );
    let dustbin = a
        .get_sessions(SessionsQuery {
            session_type: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let list = dustbin.session_list.unwrap();
    assert_eq!(
        list.iter()
            .map(|s| (s.talker_id, s.is_intercept))
            .collect::<Vec<_>>(),
        vec![(mallory.mid, 1)]
    );
    a.batch_update_dustbin_ack().await.unwrap();
    assert_eq!(
        a.single_unread(with_dustbin).await.unwrap().dustbin_unread,
        0
    );
    // Released: trusted, out of the dustbin, never intercepted again.
    a.update_intercept(mallory.mid, 1, false).await.unwrap();
    let d = a.session_detail(mallory.mid, 1).await.unwrap();
    assert_eq!((d.is_intercept, d.is_trust), (0, 1));
    assert_eq!(
        a.get_sessions(SessionsQuery {
            session_type: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .session_list,
        None
    );
    // Intercepted by hand, then the dustbin emptied.
    a.update_intercept(mallory.mid, 1, true).await.unwrap();
    assert_eq!(
        a.session_detail(mallory.mid, 1).await.unwrap().is_intercept,
        1
    );
    a.batch_rm_dustbin().await.unwrap();
    assert_eq!(
        a.get_sessions(SessionsQuery {
            session_type: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .session_list,
        None
    );

    // The system settings object.
    let sys = a.get_sys_setting().await.unwrap();
    assert!(sys.is_object(), "{sys}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_groups() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let g = s
        .admin(
            reqwest::Method::POST,
            "/groups",
            serde_json::json!({"owner": alice.mid, "name": "测试团"}),
        )
        .await;
    let gid = g["group_id"].as_u64().unwrap_or_else(|| panic!("{g}"));
    s.admin(
        reqwest::Method::POST,
        &format!("/groups/{gid}/members"),
        serde_json::json!({"mid": bob.mid}),
    )
    .await;
    let a = s.client(&alice);
    let b = s.client(&bob);
    let key = b
        .send(&OutgoingMessage::text(gid, "hi group").to_group())
        .await
        .unwrap()
        .msg_key;
    // Opening (305), bob's welcome (306) and his text are unread for alice, in groups only.
    assert_eq!(a.my_group_unread().await.unwrap().unread_count, 3);
    assert_eq!(
        a.single_unread(UnreadQuery::default()).await.unwrap(),
        Default::default()
    );
    let q = FetchQuery {
        talker_id: gid,
        session_type: 2,
        size: 20,
        begin_seqno: None,
        end_seqno: None,
    };
    let msgs = a.fetch_session_msgs(q).await.unwrap().messages.unwrap();
    let got: Vec<(u64, u64, u32)> = msgs
        .iter()
        .map(|m| (m.msg_seqno, m.sender_uid, m.msg_type))
        .collect();
    assert_eq!(got, vec![(3, bob.mid, 1), (2, 0, 306), (1, 0, 305)]);
    assert_eq!(msgs[0].msg_key, key);
    assert!(msgs
        .iter()
        .all(|m| m.receiver_type == 2 && m.receiver_id == gid));
    let all = a
        .history(gid, 2, Direction::ForwardFrom(0))
        .page_size(1)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.msg_seqno).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let groups = a
        .get_sessions(SessionsQuery {
            session_type: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let sg = &groups.session_list.unwrap()[0];
    assert_eq!(
        (
            sg.talker_id,
            sg.session_type,
            sg.group_name.as_str(),
            sg.unread_count
        ),
        (gid, 2, "测试团", 3)
    );
    a.update_ack(gid, 2, None).await.unwrap();
    assert_eq!(a.my_group_unread().await.unwrap().unread_count, 0);
    a.set_msg_dnd(gid, true, true).await.unwrap();
    assert_eq!(
        a.get_msg_dnd(&[], &[gid]).await.unwrap().group_settings,
        vec![DndSetting {
            id: gid,
            setting: 1
        }]
    );
    // Not a member: the group codes.
    let c = s.client(&carol);
    assert_api(
        c.fetch_session_msgs(q).await,
        700014,
        "你已不在此同萌中QAQ，无法执行此操作",
    );
    assert_api(
        c.send(&OutgoingMessage::text(gid, "let me in").to_group())
            .await,
        700014,
        "你已不在此同萌中QAQ，无法执行此操作",
    );
    s.admin(
        reqwest::Method::POST,
        &format!("/groups/{gid}/dissolve"),
        serde_json::json!({}),
    )
    .await;
    assert_api(
        b.send(&OutgoingMessage::text(gid, "anyone?").to_group())
            .await,
        700013,
        "已解散QAQ，无法执行此操作",
    );
    s.stop().await;
}

/// Sends `n` texts alternately from `a` and `b`, many at a time.
async fn fill_history(a: &Client, a_mid: u64, b: &Client, b_mid: u64, n: usize) -> HashSet<u64> {
    let mut keys = HashSet::new();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (c, to) = if i % 2 == 0 {
            (a.clone(), b_mid)
        } else {
            (b.clone(), a_mid)
        };
        set.spawn(async move {
            c.send_text(to, &format!("message {i}"))
                .await
                .unwrap()
                .msg_key
        });
        if set.len() >= 16 {
            keys.insert(set.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(k) = set.join_next().await {
        keys.insert(k.unwrap());
    }
    assert_eq!(keys.len(), n);
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_history_pages_without_gaps_or_duplicates() {
    // Filled fast, so the per-second send limit is lifted here (see the next test for it).
    let s = TestServer::start_with(|c| c.sends_per_second = 1_000_000).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    let a = s.client(&alice);
    let b = s.client(&bob);
    const N: u64 = 450;
    let keys = fill_history(&a, alice.mid, &b, bob.mid, N as usize).await;

    for size in [20u32, 200] {
        // Backwards, page by page.
        let mut pager = a.history(bob.mid, 1, Direction::Backward).page_size(size);
        let mut seqnos = Vec::new();
        let mut pages = 0;
        let mut got_keys = HashSet::new();
        while let Some(page) = pager.next_page().await.unwrap() {
            pages += 1;
            assert!(page.len() <= size as usize);
            for m in page {
                seqnos.push(m.msg_seqno);
                got_keys.insert(m.msg_key);
            }
        }
        assert_eq!(
            seqnos,
            (1..=N).rev().collect::<Vec<_>>(),
            "backward, size {size}"
        );
        assert_eq!(got_keys, keys);
        assert_eq!(pages, N.div_ceil(u64::from(size)), "size {size}");
        assert!(pager.next_page().await.unwrap().is_none());

        // Forwards from the beginning.
        let all = a
            .history(bob.mid, 1, Direction::ForwardFrom(0))
            .page_size(size)
            .collect_all()
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|m| m.msg_seqno).collect::<Vec<_>>(),
            (1..=N).collect::<Vec<_>>(),
            "forward, size {size}"
        );
        assert_eq!(all.iter().map(|m| m.msg_key).collect::<HashSet<_>>(), keys);
        // Both sides see the same seqnos and keys.
        let theirs = b
            .history(alice.mid, 1, Direction::ForwardFrom(0))
            .page_size(size)
            .collect_all()
            .await
            .unwrap();
        assert_eq!(theirs, all);

        // Forwards from the middle: only what follows.
        let rest = a
            .history(bob.mid, 1, Direction::ForwardFrom(100))
            .page_size(size)
            .collect_all()
            .await
            .unwrap();
        assert_eq!(
            rest.iter().map(|m| m.msg_seqno).collect::<Vec<_>>(),
            (101..=N).collect::<Vec<_>>()
        );
    }

    // Messages arriving during a walk: a backward walk is not disturbed, a forward walk picks
    // them up at its end.
    let mut back = a.history(bob.mid, 1, Direction::Backward).page_size(50);
    let mut fwd = a
        .history(bob.mid, 1, Direction::ForwardFrom(0))
        .page_size(50);
    let mut back_seq: Vec<u64> = back
        .next_page()
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|m| m.msg_seqno)
        .collect();
    let mut fwd_seq: Vec<u64> = fwd
        .next_page()
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|m| m.msg_seqno)
        .collect();
    for i in 0..5 {
        b.send_text(alice.mid, &format!("late {i}")).await.unwrap();
    }
    while let Some(p) = back.next_page().await.unwrap() {
        back_seq.extend(p.iter().map(|m| m.msg_seqno));
    }
    while let Some(p) = fwd.next_page().await.unwrap() {
        fwd_seq.extend(p.iter().map(|m| m.msg_seqno));
    }
    assert_eq!(back_seq, (1..=N).rev().collect::<Vec<_>>());
    assert_eq!(fwd_seq, (1..=N + 5).collect::<Vec<_>>());

    // Raw pages carry the same messages as the typed ones.
    let mut raw = a.history(bob.mid, 1, Direction::ForwardFrom(0));
    let first = raw.next_raw_page().await.unwrap().unwrap();
    assert_eq!(first.len(), 200);
    assert_eq!(first[0]["msg_seqno"].as_u64(), Some(1));
    let typed: Message = serde_json::from_value(first[0].clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), first[0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_rate_limit_is_absorbed_by_backing_off() {
    // The server's default: 5 sends a second per sender, more → 21020.
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    let a = s.client(&alice);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..12 {
        let a = a.clone();
        let to = bob.mid;
        set.spawn(async move { a.send_text(to, &format!("burst {i}")).await });
    }
    let mut keys = HashSet::new();
    while let Some(r) = set.join_next().await {
        keys.insert(
            r.unwrap()
                .expect("every send gets through after backing off")
                .msg_key,
        );
    }
    assert_eq!(keys.len(), 12);
    // Each stored once: a 21020 stores nothing, so sending again is safe.
    let all = a
        .history(bob.mid, 1, Direction::Backward)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(all.iter().map(|m| m.msg_key).collect::<HashSet<_>>(), keys);
    // With retries off, the burst shows the typed error.
    let impatient = Client::builder()
        .server(&s.base)
        .credentials(alice.credentials())
        .max_retries(0)
        .build()
        .unwrap();
    // 16 at once: at least 6 of them fall into one second.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let c = impatient.clone();
        let to = bob.mid;
        set.spawn(async move { c.send_text(to, &format!("impatient {i}")).await });
    }
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.unwrap() {
            errors.push(e);
        }
    }
    assert!(!errors.is_empty());
    for e in errors {
        assert!(
            matches!(&e, Error::Api { code: 21020, message } if message == "你发送消息频率过快，请稍后再发~"),
            "{e:?}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_cookies_file() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let dir = TempDir::new("cookies");
    let path = dir.0.join("cookies.txt");
    std::fs::write(
        &path,
        format!(
            "# Netscape HTTP Cookie File\n# https://curl.se/docs/http-cookies.html\n\n\
             .bilibili.com\tTRUE\t/\tFALSE\t1900000000\tbuvid3\tsomething\n\
             #HttpOnly_.bilibili.com\tTRUE\t/\tTRUE\t1900000000\tSESSDATA\t{}\n\
             .bilibili.com\tTRUE\t/\tFALSE\t1900000000\tbili_jct\t{}\n\
             .bilibili.com\tTRUE\t/\tFALSE\t1900000000\tDedeUserID\t{}\n",
            alice.sessdata, alice.bili_jct, alice.mid
        ),
    )
    .unwrap();
    let creds = Credentials::from_cookies_file(&path).unwrap();
    assert_eq!(creds, alice.credentials());
    let c = Client::builder()
        .server(&format!("{}/", s.base))
        .credentials(creds)
        .build()
        .unwrap();
    assert_eq!(c.myinfo().await.unwrap().mid, alice.mid);
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    c.send_text(bob.mid, "from a cookies file").await.unwrap();
    assert!(matches!(
        Credentials::from_cookies_file(&dir.0.join("missing.txt")),
        Err(Error::Io(_))
    ));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wbi_signatures_against_a_server_that_requires_them() {
    let s = TestServer::start_with(|c| c.wbi = sixin_server::config::WbiMode::Require).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;

    // A client told to sign reads.
    let signed = Client::builder()
        .server(&s.base)
        .credentials(alice.credentials())
        .sign_reads(true)
        .build()
        .unwrap();
    let k = signed.send_text(bob.mid, "signed").await.unwrap().msg_key;
    let page = signed
        .fetch_session_msgs(newest(bob.mid, 20))
        .await
        .unwrap();
    assert_eq!(page.messages.unwrap()[0].msg_key, k);
    signed.update_ack(bob.mid, 1, None).await.unwrap();
    assert_eq!(
        signed
            .get_sessions(SessionsQuery::default())
            .await
            .unwrap()
            .session_list
            .unwrap()
            .len(),
        1
    );

    // A client left at the defaults finds out on the first -403 and signs from then on.
    let b = s.client(&bob);
    assert_eq!(
        b.single_unread(UnreadQuery::default())
            .await
            .unwrap()
            .follow_unread,
        1
    );
    b.update_ack(alice.mid, 1, None).await.unwrap();
    b.send_text(alice.mid, "also signed").await.unwrap();
    let all = b
        .history(alice.mid, 1, Direction::Backward)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);

    // Keys rotate daily; a client whose cached keys went stale fetches new ones.
    let before = signed.wbi_mixin_key().await.unwrap();
    s.advance_clock(3 * 86_400_000).await;
    assert_eq!(
        signed
            .single_unread(UnreadQuery::default())
            .await
            .unwrap()
            .follow_unread,
        1
    );
    signed.send_text(bob.mid, "after rotation").await.unwrap();
    assert_ne!(signed.wbi_mixin_key().await.unwrap(), before);

    // A plain request without a signature is refused by this server.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let v: serde_json::Value = http
        .get(format!(
            "{}/session_svr/v1/session_svr/single_unread",
            s.base
        ))
        .header("Cookie", alice.credentials().cookie_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], -403);
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Back-off and pacing: a local fake of the network peer answers what a real server can't be
// made to answer on demand (21020, -412).

#[derive(Clone, Default)]
struct Fake {
    hits: Arc<AtomicUsize>,
    /// How many of the first answers are the error.
    failures: usize,
    code: i64,
    status: u16,
    /// A body that is not an API envelope (an HTML error page), instead of the error code.
    page: Option<&'static str>,
    times: Arc<std::sync::Mutex<Vec<Instant>>>,
}

fn envelope(code: i64, message: &str, data: serde_json::Value) -> String {
    serde_json::json!({"code": code, "message": message, "msg": message, "ttl": 1, "data": data})
        .to_string()
}

async fn fake_answer(fake: &Fake, ok: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = fake.hits.fetch_add(1, Ordering::SeqCst);
    fake.times.lock().unwrap().push(Instant::now());
    let (status, body) = if n < fake.failures {
        let msg = match fake.code {
            21020 => "你发送消息频率过快，请稍后再发~",
            -412 => "请求被拦截",
            -509 => "请求过于频繁，请稍后再试",
            _ => "出错了",
        };
        match fake.page {
            Some(p) => (fake.status, p.to_string()),
            None => (
                fake.status,
                envelope(fake.code, msg, serde_json::Value::Null),
            ),
        }
    } else {
        (200, envelope(0, "0", ok))
    };
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn start_fake(fake: Fake) -> String {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/session_svr/v1/session_svr/single_unread",
            get(|axum::extract::State(f): axum::extract::State<Fake>| async move {
                fake_answer(&f, serde_json::json!({"unfollow_unread": 1, "follow_unread": 2, "unfollow_push_msg": 0,
                    "dustbin_push_msg": 0, "dustbin_unread": 0, "biz_msg_unfollow_unread": 0,
                    "biz_msg_follow_unread": 0, "custom_unread": 0}))
                .await
            }),
        )
        .route(
            "/web_im/v1/web_im/send_msg",
            post(|axum::extract::State(f): axum::extract::State<Fake>| async move {
                fake_answer(&f, serde_json::json!({"msg_key": 7_345_551_441_311_046_575u64, "msg_content": "{\"content\":\"x\"}",
                    "key_hit_infos": {}}))
                .await
            }),
        )
        .route(
            "/x/web-interface/nav",
            get(|| async {
                envelope(0, "0", serde_json::json!({"isLogin": true, "mid": 1, "wbi_img": {
                    "img_url": "https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png",
                    "sub_url": "https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png"}}))
            }),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn fake_client(base: &str) -> Client {
    Client::builder()
        .server(base)
        .credentials(Credentials::new("s", "0123456789abcdef0123456789abcdef", 1))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_and_retries_on_21020() {
    let fake = Fake {
        failures: 2,
        code: 21020,
        status: 200,
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    let c = fake_client(&base);
    let started = Instant::now();
    let u = c.single_unread(UnreadQuery::default()).await.unwrap();
    assert_eq!((u.unfollow_unread, u.follow_unread), (1, 2));
    assert_eq!(fake.hits.load(Ordering::SeqCst), 3);
    // Two back-offs, growing.
    let t = fake.times.lock().unwrap().clone();
    let (d1, d2) = (t[1] - t[0], t[2] - t[1]);
    assert!(d1 >= Duration::from_millis(400), "{d1:?}");
    assert!(d2 > d1, "{d1:?} then {d2:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A send answered 21020 is sent again (the server did not store it) and succeeds.
    let fake = Fake {
        failures: 2,
        code: 21020,
        status: 200,
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    let r = fake_client(&base).send_text(2, "x").await.unwrap();
    assert_eq!(r.msg_key, 7_345_551_441_311_046_575);
    assert_eq!(fake.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_on_412_and_509_and_gives_up_after_max_retries() {
    // -412 comes with HTTP 412 from the real service.
    let fake = Fake {
        failures: 1,
        code: -412,
        status: 412,
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    fake_client(&base)
        .single_unread(UnreadQuery::default())
        .await
        .unwrap();
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);

    let fake = Fake {
        failures: 1,
        code: -509,
        status: 200,
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    fake_client(&base)
        .single_unread(UnreadQuery::default())
        .await
        .unwrap();
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);

    // Always 21020: the typed error after max_retries + 1 attempts.
    let fake = Fake {
        failures: usize::MAX,
        code: 21020,
        status: 200,
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    let c = Client::builder()
        .server(&base)
        .credentials(Credentials::new("s", "0123456789abcdef0123456789abcdef", 1))
        .max_retries(1)
        .build()
        .unwrap();
    assert_api(
        c.single_unread(UnreadQuery::default()).await,
        21020,
        "你发送消息频率过快，请稍后再发~",
    );
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);
    assert_api(
        c.send_text(2, "x").await,
        21020,
        "你发送消息频率过快，请稍后再发~",
    );
    assert_eq!(fake.hits.load(Ordering::SeqCst), 4);

    // A bare HTTP 412 / 429 page (no envelope), as a gateway answers: backed off too.
    for status in [412, 429] {
        let fake = Fake {
            failures: 1,
            status,
            page: Some("<html>blocked</html>"),
            ..Default::default()
        };
        let base = start_fake(fake.clone()).await;
        fake_client(&base)
            .single_unread(UnreadQuery::default())
            .await
            .unwrap();
        assert_eq!(fake.hits.load(Ordering::SeqCst), 2, "{status}");
    }
    // A read answered 502 by a gateway is repeated; the error page alone is a typed error.
    let fake = Fake {
        failures: 1,
        status: 502,
        page: Some("<html>bad gateway</html>"),
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    fake_client(&base)
        .single_unread(UnreadQuery::default())
        .await
        .unwrap();
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);
    let fake = Fake {
        failures: usize::MAX,
        status: 404,
        page: Some("not here"),
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    match fake_client(&base)
        .single_unread(UnreadQuery::default())
        .await
    {
        Err(Error::Http { status: 404, body }) => assert_eq!(body, "not here"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.hits.load(Ordering::SeqCst), 1);

    // Other codes are not retried.
    let fake = Fake {
        failures: 1,
        code: 21047,
        status: 200,
        ..Default::default()
    };
    let base = start_fake(fake.clone()).await;
    assert!(fake_client(&base).send_text(2, "x").await.is_err());
    assert_eq!(fake.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paces_requests() {
    // The official hosts get about one request a second unless told otherwise.
    let official = Client::builder().build().unwrap();
    assert!(official.is_official());
    let official = Client::builder()
        .hosts("https://api.vc.bilibili.com", "https://api.bilibili.com")
        .build()
        .unwrap();
    assert!(official.is_official());

    let fake = Fake::default();
    let base = start_fake(fake.clone()).await;
    let c = Client::builder()
        .server(&base)
        .credentials(Credentials::new("s", "0123456789abcdef0123456789abcdef", 1))
        .min_interval(Duration::from_millis(250))
        .build()
        .unwrap();
    for _ in 0..4 {
        c.single_unread(UnreadQuery::default()).await.unwrap();
    }
    let t = fake.times.lock().unwrap().clone();
    for w in t.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(240),
            "{:?}",
            w[1] - w[0]
        );
    }
    // Clones share the pace.
    let c2 = c.clone();
    let (r1, r2) = tokio::join!(
        c.single_unread(UnreadQuery::default()),
        c2.single_unread(UnreadQuery::default())
    );
    r1.unwrap();
    r2.unwrap();
    let t = fake.times.lock().unwrap().clone();
    assert!(t[5] - t[4] >= Duration::from_millis(240));
}

// ---------------------------------------------------------------------------------------------
// A send whose answer is lost: a TCP proxy between client and server forwards the first send
// request and then drops the client's connection without relaying the answer.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// After the server has answered (the message is surely stored).
    AfterAnswer,
    /// As soon as the request is forwarded (the server is still working on it).
    BeforeAnswer,
    /// Instead of forwarding the request (nothing was stored).
    NotForwarded,
    /// The server's answer replaced by a gateway's 502 page (stored, but the client can't
    /// know).
    BadGateway,
}

struct Proxy {
    addr: std::net::SocketAddr,
    /// Send requests seen (forwarded or not).
    sends_seen: Arc<AtomicUsize>,
    /// When set, the next send request is cut off.
    armed: Arc<AtomicBool>,
}

const SEND_LINE: &[u8] = b"POST /web_im/v1/web_im/send_msg";

async fn start_proxy(upstream: std::net::SocketAddr, mode: Cut) -> Proxy {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let sends_seen = Arc::new(AtomicUsize::new(0));
    let (armed2, seen) = (armed.clone(), sends_seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let armed = armed2.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // Set when this connection carries the request whose answer is to be lost
                // (HTTP/1.1 without pipelining: the next bytes from the server answer it).
                let poisoned = Arc::new(AtomicBool::new(false));
                let cut = Arc::new(tokio::sync::Notify::new());
                let (p, c2) = (poisoned.clone(), cut.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        let is_send = chunk.windows(SEND_LINE.len()).any(|w| w == SEND_LINE);
                        if is_send {
                            seen.fetch_add(1, Ordering::SeqCst);
                            if armed.swap(false, Ordering::SeqCst) {
                                p.store(true, Ordering::SeqCst);
                            }
                        }
                        if p.load(Ordering::SeqCst) && mode == Cut::NotForwarded {
                            c2.notify_one();
                            return;
                        }
                        if sw.write_all(chunk).await.is_err() {
                            return;
                        }
                        if p.load(Ordering::SeqCst) {
                            if mode == Cut::BeforeAnswer {
                                c2.notify_one();
                            }
                            // Keep the server's side open a while, so it finishes its work
                            // undisturbed.
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            return;
                        }
                    }
                });
                let mut cw = Some(cw);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    tokio::select! {
                        r = sr.read(&mut buf) => {
                            let n = match r { Ok(0) | Err(_) => break, Ok(n) => n };
                            if poisoned.load(Ordering::SeqCst) {
                                // The answer to the poisoned request: swallow it, hang up.
                                if let (Cut::BadGateway, Some(mut w)) = (mode, cw.take()) {
                                    let page = "<html>502 Bad Gateway</html>";
                                    let _ = w
                                        .write_all(format!("HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}", page.len()).as_bytes())
                                        .await;
                                }
                                cw = None;
                                continue;
                            }
                            if let Some(w) = cw.as_mut() {
                                if w.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                        _ = cut.notified(), if cw.is_some() => {
                            cw = None;
                        }
                    }
                }
            });
        }
    });
    Proxy {
        addr,
        sends_seen,
        armed,
    }
}

async fn send_through_cutting_proxy(mode: Cut) {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    let proxy = start_proxy(s.addr, mode).await;
    let via = s.client_at(&format!("http://{}", proxy.addr), &alice);
    // Some traffic first, so the send may travel on a reused connection.
    via.send_text(bob.mid, "before").await.unwrap();
    s.client(&bob)
        .send_text(alice.mid, "lost answer")
        .await
        .unwrap();
    assert_eq!(proxy.sends_seen.load(Ordering::SeqCst), 1);

    // The same text bob just sent, so only alice's own messages may match.
    proxy.armed.store(true, Ordering::SeqCst);
    let r = via.send_text(bob.mid, "lost answer").await.unwrap();
    assert!(
        !proxy.armed.load(Ordering::SeqCst),
        "the proxy did cut a send off"
    );
    let expected_requests = if mode == Cut::NotForwarded { 3 } else { 2 };
    assert_eq!(
        proxy.sends_seen.load(Ordering::SeqCst),
        expected_requests,
        "{mode:?}"
    );
    let all = s
        .client(&bob)
        .history(alice.mid, 1, Direction::ForwardFrom(0))
        .collect_all()
        .await
        .unwrap();
    let copies: Vec<&Message> = all
        .iter()
        .filter(|m| m.sender_uid == alice.mid && text_of(m) == "lost answer")
        .collect();
    assert_eq!(copies.len(), 1, "stored exactly once: {all:?}");
    assert_eq!(copies[0].msg_key, r.msg_key);
    assert_eq!(all.len(), 3);

    // The proxy is disarmed now: the same text again is a new message.
    let again = via.send_text(bob.mid, "lost answer").await.unwrap();
    assert_ne!(again.msg_key, r.msg_key);
    let all = s
        .client(&bob)
        .history(alice.mid, 1, Direction::ForwardFrom(0))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .filter(|m| m.sender_uid == alice.mid && text_of(m) == "lost answer")
            .count(),
        2
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_retried_after_a_dropped_connection_is_stored_once() {
    send_through_cutting_proxy(Cut::AfterAnswer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_cut_off_before_the_answer_is_stored_once() {
    send_through_cutting_proxy(Cut::BeforeAnswer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_that_never_arrived_is_sent_again_once() {
    send_through_cutting_proxy(Cut::NotForwarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_answered_by_a_gateway_error_is_stored_once() {
    send_through_cutting_proxy(Cut::BadGateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_transport_error() {
    // Nothing listens there: the connection is refused.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let c = Client::builder()
        .server(&format!("http://127.0.0.1:{port}"))
        .credentials(Credentials::new("s", "0123456789abcdef0123456789abcdef", 1))
        .max_retries(1)
        .build()
        .unwrap();
    assert!(matches!(
        c.send_text(2, "x").await,
        Err(Error::Transport(_))
    ));
    assert!(matches!(
        c.single_unread(UnreadQuery::default()).await,
        Err(Error::Transport(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// sixin's event stream.

/// A TCP relay whose connections can all be cut at once.
struct Relay {
    addr: std::net::SocketAddr,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let list = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Relay { addr, conns }
    }

    /// Closes every connection relayed so far.
    fn cut(&self) {
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_new_messages_and_resume() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    let (a, b) = (s.client(&alice), s.client(&bob));
    b.send_text(alice.mid, "before").await.unwrap();

    let mut events = a.events(None).await.unwrap();
    let k1 = b.send_text(alice.mid, "one").await.unwrap().msg_key;
    let k2 = a.send_text(bob.mid, "two").await.unwrap().msg_key;

    let page = a.fetch_session_msgs(newest(bob.mid, 3)).await.unwrap();
    let stored: Vec<Message> = page.messages.unwrap().into_iter().rev().collect();
    assert_eq!(
        stored.iter().map(text_of).collect::<Vec<_>>(),
        ["before", "one", "two"]
    );
    for (k, m) in [(k1, &stored[1]), (k2, &stored[2])] {
        let e = events.next().await.unwrap();
        assert_eq!(
            e,
            sixin_client::MessageEvent {
                session_type: 1,
                talker_id: bob.mid,
                msg: m.clone(),
            }
        );
        assert_eq!(e.msg.msg_key, k);
        assert_eq!(events.last_key(), Some(k));
    }

    // Resumed after the first: the second, then what comes next.
    let mut resumed = a.events(Some(k1)).await.unwrap();
    assert_eq!(resumed.next().await.unwrap().msg.msg_key, k2);
    let k3 = b.send_text(alice.mid, "three").await.unwrap().msg_key;
    assert_eq!(resumed.next().await.unwrap().msg.msg_key, k3);
    assert_eq!(events.next().await.unwrap().msg.msg_key, k3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reconnect_after_a_cut_without_loss_or_repeat() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.friends(&alice, &bob).await;
    let relay = Relay::start(s.addr).await;
    let a = s.client_at(&format!("http://{}", relay.addr), &alice);
    let b = s.client(&bob);

    let mut events = a.events(None).await.unwrap();
    let k1 = b.send_text(alice.mid, "one").await.unwrap().msg_key;
    assert_eq!(events.next().await.unwrap().msg.msg_key, k1);
    relay.cut();
    // Stored while the stream is down.
    let k2 = b.send_text(alice.mid, "two").await.unwrap().msg_key;
    let k3 = b.send_text(alice.mid, "three").await.unwrap().msg_key;
    let got = [
        events.next().await.unwrap().msg.msg_key,
        events.next().await.unwrap().msg.msg_key,
    ];
    assert_eq!(got, [k2, k3]);
    let k4 = b.send_text(alice.mid, "four").await.unwrap().msg_key;
    assert_eq!(events.next().await.unwrap().msg.msg_key, k4);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_refused() {
    let s = TestServer::start().await;
    let alice = s.user("alice").await;
    let a = s.client(&alice);
    // A stream whose login ends is ended by the server, and cannot be opened again.
    let mut events = a.events(None).await.unwrap();
    s.admin(
        reqwest::Method::DELETE,
        &format!("/users/{}/logins", alice.mid),
        serde_json::Value::Null,
    )
    .await;
    assert_api(events.next().await, -101, "账号未登录");
    assert_api(a.events(None).await.map(|_| ()), -101, "账号未登录");
    s.stop().await;
    // A server without the stream (as the official hosts).
    let base = start_fake(Fake::default()).await;
    match fake_client(&base).events(None).await {
        Err(Error::Http { status: 404, .. }) => {}
        other => panic!("expected HTTP 404, got {:?}", other.map(|_| ())),
    }
}
