//! `sixin serve --demo`: a small world to try the API on: three users, follows, one-to-one
//! conversations, a notification from a system account and a fan group.

use serde_json::json;

use crate::domain::{Caller, LoginCookies, NewUserRequest, RelationPatch, SendRequest, Service};

pub const DEMO_PASSWORD: &str = "demo";
const DEMO_USERS: [(u64, &str, &str); 3] = [
    (10001, "alice", "我是 alice，sixin 的演示用户。"),
    (10002, "bob", "bob 的签名"),
    (10003, "carol", "carol 只关注了 alice"),
];

fn text(s: &str) -> String {
    json!({ "content": s }).to_string()
}

/// Seeds the demo world into an empty database (users, follows, conversations, a system
/// notification), then returns a fresh login for each demo user.
pub async fn seed(svc: &Service) -> anyhow::Result<Vec<LoginCookies>> {
    let mut logins = Vec::new();
    if svc.store.user_count().await? == 0 {
        for (mid, name, sign) in DEMO_USERS {
            logins.push(
                svc.create_user(NewUserRequest {
                    mid: Some(mid),
                    name: name.into(),
                    password: Some(DEMO_PASSWORD.into()),
                    face: None,
                    sign: Some(sign.into()),
                    level: Some(3),
                })
                .await?,
            );
        }
        let follow = RelationPatch {
            follow: Some(true),
            special: None,
            block: None,
        };
        svc.patch_relation(10001, 10002, follow).await?;
        svc.patch_relation(10002, 10001, follow).await?;
        svc.patch_relation(10003, 10001, follow).await?;

        let as_caller = |l: &LoginCookies| Caller {
            mid: l.mid,
            bili_jct: l.bili_jct.clone(),
        };
        let (alice, bob, carol) = (
            as_caller(&logins[0]),
            as_caller(&logins[1]),
            as_caller(&logins[2]),
        );
        let send = |from: &Caller, to: u64, msg_type: u64, content: String| {
            let from = from.clone();
            async move {
                svc.send(
                    &from,
                    SendRequest {
                        sender_uid: from.mid,
                        receiver_id: to,
                        receiver_type: 1,
                        msg_type,
                        content,
                        dev_id: "00000000-0000-4000-8000-000000000000".into(),
                        new_face_version: 0,
                        msg_source: 7,
                        at_uids: None,
                    },
                )
                .await
            }
        };
        send(&alice, 10002, 1, text("你好 bob！sixin 跑起来了[doge]")).await?;
        send(&bob, 10001, 1, text("收到～[tv_微笑]")).await?;
        send(
            &bob,
            10001,
            2,
            json!({
                "url": "https://i0.hdslb.com/bfs/face/member/noface.jpg",
                "height": 180, "width": 180, "imageType": "jpeg", "original": 1, "size": 6.5
            })
            .to_string(),
        )
        .await?;
        send(&carol, 10001, 1, text("alice 你好，我是 carol")).await?;
        svc.inject_system_message(
            crate::domain::system::by_type(7).map_or(0, |a| a.mid),
            10001,
            10,
            json!({
                "title": "欢迎使用 sixin",
                "text": "这是一条来自 UP主小助手 的演示通知。",
                "jump_text": "", "jump_uri": "", "modules": null,
                "jump_text_2": "", "jump_uri_2": "", "jump_text_3": "", "jump_uri_3": "",
                "notifier": null, "biz_content": null
            })
            .to_string(),
            "2091_253".into(),
            6,
        )
        .await?;
        let group = svc.create_group(10001, "alice的应援团", "", 0).await?;
        svc.join_group(group.group_id, 10002).await?;
        svc.join_group(group.group_id, 10003).await?;
        svc.send(
            &alice,
            SendRequest {
                sender_uid: 10001,
                receiver_id: group.group_id,
                receiver_type: 2,
                msg_type: 1,
                content: text("欢迎大家！@bob 周末一起看直播吗"),
                dev_id: "00000000-0000-4000-8000-000000000000".into(),
                new_face_version: 1,
                msg_source: 7,
                at_uids: Some(vec![10002]),
            },
        )
        .await?;
        return Ok(logins);
    }
    for (mid, _, _) in DEMO_USERS {
        if let Ok(l) = svc.create_login(mid).await {
            logins.push(l);
        }
    }
    Ok(logins)
}
