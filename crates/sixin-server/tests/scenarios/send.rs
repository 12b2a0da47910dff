//! Scenarios: send_msg (SPEC §4.4 checks 1–5, answers, side effects).

use serde_json::json;

use crate::*;

async fn text_send_answer_and_both_views(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let v = s
        .send(&a, b.mid, 1, &json!({"content": "up主你好，\n催更[doge]"}).to_string())
        .await;
    let d = ok(&v);
    let key = d["msg_key"].as_u64().unwrap();
    assert!(key > (1u64 << 53), "msg_key is a large snowflake: {key}");
    assert_eq!(d["msg_content"], "{\"content\":\"up主你好，\\n催更[doge]\"}");
    assert_eq!(d["key_hit_infos"], json!({}));
    // new_face_version absent: the old name resolves to [tv_doge].
    assert_eq!(
        d["e_infos"],
        json!([{"text": "[doge]", "url": "http://i0.hdslb.com/bfs/emote/6ea59c827c414b4a2955fe79e0f6fd3dcd515e24.png", "size": 1}])
    );

    for (viewer, talker) in [(&a, &b), (&b, &a)] {
        let page = s.fetch(viewer, talker, &[("size", "20".into())]).await;
        let d = ok(&page);
        let m = &d["messages"][0];
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
        assert_eq!(d["min_seqno"], 1);
        assert_eq!(d["max_seqno"], 1);
        assert_eq!(d["has_more"], 0);
    }
    // The sender's session is read; the receiver has one unread.
    let da = s.detail(&a, b.mid).await;
    assert_eq!(ok(&da)["unread_count"], 0);
    assert_eq!(ok(&da)["ack_seqno"], 1);
    let db = s.detail(&b, a.mid).await;
    assert_eq!(ok(&db)["unread_count"], 1);
    assert_eq!(ok(&db)["ack_seqno"], 0);
    assert_eq!(s.unread(&b).await["unfollow_unread"], 1);
    assert_eq!(s.unread(&a).await["unfollow_unread"], 0);
}
scenario!(text_send_answer_and_both_views);

async fn payment_keyword_hits_rule_2(s: &Server) {
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let v = s.send(&a, b.mid, 1, &json!({"content": "支付宝"}).to_string()).await;
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
