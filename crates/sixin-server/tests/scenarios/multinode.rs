//! Several `sixin serve` instances sharing one database: msg_keys stay unique and each
//! conversation's seqnos stay gap-free, whichever node takes the write.

use std::collections::BTreeSet;

use crate::*;

async fn two_nodes(database: String) {
    let ([n1, n2], bases, http) = two_nodes_on(database).await;
    let node_of = |k: u64| (k >> 12) & 0x3ff;

    let (a, b) = friends_on(&http, &bases[0]).await;
    let (a_mid, b_mid) = (a.mid, b.mid);

    // 60 sends, alternating senders and nodes, all at once.
    let mut tasks = Vec::new();
    for k in 0..60usize {
        let (from, to) = if k % 2 == 0 { (&a, b_mid) } else { (&b, a_mid) };
        let base = bases[k % 3 % 2].clone();
        let http = http.clone();
        let from = from.clone();
        tasks.push(tokio::spawn(async move {
            let v = send_on(&http, &base, &from, to, &format!("m{k}")).await;
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
        let v = json_answer(
            http.get(format!(
                "{base}{FETCH}?talker_id={b_mid}&session_type=1&size=200"
            ))
            .header("Cookie", a.cookie()),
        )
        .await;
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
