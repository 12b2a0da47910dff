//! Several `sixin serve` instances sharing one database: msg_keys stay unique and each
//! conversation's seqnos stay gap-free, whichever node takes the write.

use std::collections::BTreeSet;

use serde_json::json;

use crate::*;

async fn two_nodes(database: String) {
    let n1 = sixin_server::start(test_config(database.clone()))
        .await
        .expect("node 1");
    let n2 = sixin_server::start(test_config(database))
        .await
        .expect("node 2");
    let node_of = |k: u64| (k >> 12) & 0x3ff;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bases = [format!("http://{}", n1.addr), format!("http://{}", n2.addr)];

    let mk = |name: &str| {
        let http = http.clone();
        let base = bases[0].clone();
        let name = name.to_string();
        async move {
            let v: serde_json::Value = http
                .post(format!("{base}/admin/v1/users"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({ "name": name }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let a = mk("a").await;
    let b = mk("b").await;
    let (a_mid, b_mid) = (a["mid"].as_u64().unwrap(), b["mid"].as_u64().unwrap());
    // They follow each other, so the one-message rule (SPEC §4.4 check 6) stays out of the way.
    for (mid, fid) in [(a_mid, b_mid), (b_mid, a_mid)] {
        let resp = http
            .put(format!("{}/admin/v1/relations", bases[0]))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "mid": mid, "fid": fid, "follow": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }

    // 60 sends, alternating senders and nodes, all at once.
    let mut tasks = Vec::new();
    for k in 0..60usize {
        let (from, to) = if k % 2 == 0 { (&a, b_mid) } else { (&b, a_mid) };
        let base = bases[k % 3 % 2].clone();
        let http = http.clone();
        let cookie = format!("SESSDATA={}", from["SESSDATA"].as_str().unwrap());
        let form = vec![
            ("msg[sender_uid]", from["mid"].to_string()),
            ("msg[receiver_id]", to.to_string()),
            ("msg[receiver_type]", "1".to_string()),
            ("msg[msg_type]", "1".to_string()),
            ("msg[dev_id]", "dev".to_string()),
            ("msg[timestamp]", "1700000000".to_string()),
            (
                "msg[content]",
                json!({ "content": format!("m{k}") }).to_string(),
            ),
            ("csrf", from["bili_jct"].as_str().unwrap().to_string()),
        ];
        tasks.push(tokio::spawn(async move {
            let v: serde_json::Value = http
                .post(format!("{base}{SEND}"))
                .header("Cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(v["code"], 0, "{v}");
            v["data"]["msg_key"].as_u64().unwrap()
        }));
    }
    let mut keys = BTreeSet::new();
    for t in tasks {
        assert!(keys.insert(t.await.unwrap()), "duplicate msg_key");
    }
    assert_eq!(keys.len(), 60);
    let nodes: BTreeSet<u64> = keys.iter().map(|k| node_of(*k)).collect();
    assert_eq!(nodes.len(), 2, "both nodes wrote, with different node ids");

    // Both nodes return the same gap-free history.
    for base in &bases {
        let v: serde_json::Value = http
            .get(format!(
                "{base}{FETCH}?talker_id={b_mid}&session_type=1&size=200"
            ))
            .header(
                "Cookie",
                format!("SESSDATA={}", a["SESSDATA"].as_str().unwrap()),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let msgs = v["data"]["messages"].as_array().unwrap();
        let seqnos: Vec<u64> = msgs
            .iter()
            .map(|m| m["msg_seqno"].as_u64().unwrap())
            .collect();
        assert_eq!(seqnos, (1..=60).rev().collect::<Vec<u64>>());
        let got: BTreeSet<u64> = msgs
            .iter()
            .map(|m| m["msg_key"].as_u64().unwrap())
            .collect();
        assert_eq!(got, keys);
    }
    n1.stop().await.unwrap();
    n2.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_sqlite() {
    let dir = tempdir::TempDir::new("multinode");
    two_nodes(format!("sqlite://{}", dir.0.join("shared.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_postgres() {
    let Some(admin) = postgres_url() else { return };
    let (url, _guard) = create_pg_database_pub(&admin).await;
    two_nodes(url).await;
}
