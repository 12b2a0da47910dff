//! Scenario: SQLite's write-ahead log under sustained sending (SQLite only: it is about
//! SQLite's log, so it is a plain test rather than a `scenario!`).
//!
//! The log is watched from outside, through its file's header, without opening SQLite on it (a
//! checkpoint from the test would do the server's work for it).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::send::{befriend, form, text};
use crate::*;

/// Conversations written to at once: each message of a group commit lands in its own
/// conversation's page of `messages`, so a commit dirties about one page per message.
const PAIRS: usize = 48;
/// Sends in flight at any time.
const IN_FLIGHT: usize = 32;
/// Sends between two looks at the log's header.
const ROUND: usize = 500;
/// The server's RESTART_FRAMES: from this log length the checkpointer makes the log start over.
const RESTART_FRAMES: u64 = 64_000;
/// Restarts to see: after the second, the file has been reused from its start once already, so
/// its bounded length shows the log does not just keep growing.
const RESTARTS: u32 = 2;
/// Sends after which a log that did not start over often enough fails the test (instead of
/// hanging).
const MAX_SENDS: usize = 240_000;
/// Pads each text so that messages fill pages faster.
const PAD: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// What the test reads of the write-ahead log's 32-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WalHeader {
    page_size: u64,
    /// Grows by one each time the log starts over from its beginning.
    checkpoint_seq: u32,
}

/// SQLite's checksum of the header's first 24 bytes (words big-endian when the magic's low bit
/// is set, little-endian otherwise).
fn wal_checksum(bytes: &[u8], big_endian: bool) -> (u32, u32) {
    let word = |c: &[u8]| {
        let c: [u8; 4] = c.try_into().expect("4 bytes");
        if big_endian {
            u32::from_be_bytes(c)
        } else {
            u32::from_le_bytes(c)
        }
    };
    let (mut s0, mut s1) = (0u32, 0u32);
    for pair in bytes.chunks_exact(8) {
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

/// Reads the header of the log at `wal`; a read that raced a rewrite of the header (its
/// checksum does not match) is read again.
fn wal_header(wal: &Path) -> WalHeader {
    for _ in 0..1000 {
        let mut b = [0u8; 32];
        std::fs::File::open(wal)
            .and_then(|mut f| f.read_exact(&mut b))
            .unwrap_or_else(|e| panic!("reading the header of {}: {e}", wal.display()));
        let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let magic = be(0);
        if wal_checksum(&b[..24], magic & 1 == 1) != (be(24), be(28)) {
            continue;
        }
        assert!(
            magic == 0x377f_0682 || magic == 0x377f_0683,
            "WAL magic {magic:#x}"
        );
        assert_eq!(be(4), 3_007_000, "WAL format version");
        let page_size = u64::from(be(8));
        assert!(
            page_size.is_power_of_two() && (512..=65_536).contains(&page_size),
            "page size {page_size}"
        );
        return WalHeader {
            page_size,
            checkpoint_seq: be(12),
        };
    }
    panic!("the header of {} never read whole", wal.display());
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .len()
}

/// One acknowledged send: who sent it and the content it was stored with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acked {
    sender: u64,
    content: String,
}

/// Sends messages `from..to` (message `i` goes over pair `i % PAIRS`, each way in turn),
/// [`IN_FLIGHT`] at a time; each must be acknowledged, and lands in `acked[pair]` by msg_key.
async fn send_range(
    s: &Server,
    pairs: &[(User, User)],
    from: usize,
    to: usize,
    acked: &mut [HashMap<u64, Acked>],
) {
    let mut set = tokio::task::JoinSet::new();
    let mut next = from;
    loop {
        while next < to && set.len() < IN_FLIGHT {
            let i = next;
            next += 1;
            let (a, b) = &pairs[i % PAIRS];
            let (sender, receiver) = if (i / PAIRS).is_multiple_of(2) {
                (a, b)
            } else {
                (b, a)
            };
            let content = text(&format!("wal {i} {PAD}{PAD}{PAD}"));
            let answer = s.post_raw_task(sender, SEND, &form(sender, receiver.mid, 1, &content));
            let sender = sender.mid;
            set.spawn(async move { (i, sender, content, answer.await) });
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        let (i, sender, content, v) = done.expect("send task");
        let d = ok(&v);
        assert_eq!(d["msg_content"].as_str(), Some(content.as_str()), "{v}");
        let key = d["msg_key"].as_u64().expect("msg_key");
        let before = acked[i % PAIRS].insert(key, Acked { sender, content });
        assert_eq!(before, None, "msg_key {key} acknowledged twice");
    }
}

/// Every message of `a`'s conversation with `b` (as `a` sees it), paging back from the newest:
/// seqno → (msg_key, sender, content).
async fn whole_history(s: &Server, a: &User, b: &User) -> Vec<(u64, u64, Acked)> {
    let mut all = Vec::new();
    let mut params = vec![("size", "200".to_string())];
    loop {
        let v = s.fetch(a, b, &params).await;
        let d = ok(&v);
        let page = d["messages"].as_array().expect("a non-empty page");
        for m in page {
            assert_eq!(m["msg_type"], 1, "{m}");
            all.push((
                m["msg_seqno"].as_u64().expect("msg_seqno"),
                m["msg_key"].as_u64().expect("msg_key"),
                Acked {
                    sender: m["sender_uid"].as_u64().expect("sender_uid"),
                    content: m["content"].as_str().expect("content").to_string(),
                },
            ));
        }
        if d["has_more"] == 0 {
            return all;
        }
        assert_eq!(d["has_more"], 1, "{v}");
        params = vec![
            ("size", "200".to_string()),
            (
                "end_seqno",
                d["min_seqno"].as_u64().expect("min_seqno").to_string(),
            ),
        ];
    }
}

/// Under sustained concurrent sending the log starts over (its checkpoint sequence number
/// grows, its file stays short of twice the restart length), and every acknowledged message is
/// in the history afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_restarts_under_sustained_sending_and_keeps_every_message() {
    let started = std::time::Instant::now();
    let s = Server::start_sqlite().await;
    let db: PathBuf = s.sqlite_path().expect("a SQLite server");
    let wal = PathBuf::from(format!("{}-wal", db.display()));

    let mut pairs = Vec::new();
    for p in 0..PAIRS {
        let a = s.user(&format!("wa{p}")).await;
        let b = s.user(&format!("wb{p}")).await;
        befriend(&s, &a, &b).await;
        pairs.push((a, b));
    }
    let mut acked: Vec<HashMap<u64, Acked>> = vec![HashMap::new(); PAIRS];

    // The first few sends; the sequence number they leave is the one to beat.
    let mut sent = IN_FLIGHT * 2;
    send_range(&s, &pairs, 0, sent, &mut acked).await;
    let first = wal_header(&wal);
    // Restarts reuse the file from its start: it never needs to hold much more than the
    // restart length plus what comes while the checkpointer catches up.
    let bound = 2 * RESTART_FRAMES * (first.page_size + 24) + 32 + 64 * 1024;
    let mut longest = file_len(&wal);

    let mut last = first;
    while last.checkpoint_seq < first.checkpoint_seq + RESTARTS {
        assert!(
            sent < MAX_SENDS,
            "the log started over {} times in {sent} sends, not {RESTARTS} \
             (header {last:?}, {longest} bytes)",
            last.checkpoint_seq - first.checkpoint_seq
        );
        send_range(&s, &pairs, sent, sent + ROUND, &mut acked).await;
        sent += ROUND;
        last = wal_header(&wal);
        longest = longest.max(file_len(&wal));
        assert!(
            longest < bound,
            "log file of {longest} bytes (bound {bound})"
        );
        assert_eq!(last.page_size, first.page_size);
    }

    // Nothing acknowledged is lost: each conversation holds exactly its acknowledged
    // messages, at seqnos 1..=n without a gap.
    let mut total = 0;
    for (p, (a, b)) in pairs.iter().enumerate() {
        let history = whole_history(&s, a, b).await;
        let n = acked[p].len() as u64;
        let seqnos: Vec<u64> = history.iter().map(|(q, _, _)| *q).collect();
        assert_eq!(seqnos, (1..=n).rev().collect::<Vec<_>>(), "pair {p}");
        let stored: HashMap<u64, Acked> = history.into_iter().map(|(_, k, m)| (k, m)).collect();
        assert_eq!(stored, acked[p], "pair {p}");
        total += n as usize;
    }
    assert_eq!(total, sent);
    s.finish().await;
    eprintln!(
        "{sent} sends in {:.1}s; checkpoint sequence {} → {}; longest log {longest} bytes",
        started.elapsed().as_secs_f64(),
        first.checkpoint_seq,
        last.checkpoint_seq
    );
}

/// The statement that created SQLite's table `name`.
fn table_sql(db: &Path, name: &str) -> String {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .expect("the table")
}

/// Migration 0007 rebuilds `relations` in its key's own B-tree (WITHOUT ROWID): every relation
/// a database held before it is there after it, and the send checks and session lists read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_relations_survive_their_rebuild() {
    let s = Server::start_sqlite().await;
    let a = s.user("rel_a").await;
    let b = s.user("rel_b").await;
    let c = s.user("rel_c").await;
    s.follow(&a, &b, true).await;
    s.follow(&b, &c, true).await;
    s.follow(&c, &a, true).await;
    // c blocks b (which ends b's follow of c): b's messages to c are refused.
    crate::relations::act(&s, &c, b.mid, crate::relations::BLOCK).await;
    let db = s.sqlite_path().expect("a SQLite server");
    assert!(table_sql(&db, "relations").contains("WITHOUT ROWID"));

    // Back to the table as migration 0001 made it, with the same rows, and 0007 not run.
    let s = s
        .restart_sqlite_after(|db| {
            let conn = rusqlite::Connection::open(db).expect("open the database");
            conn.execute_batch(
                "CREATE TABLE relations_v1 (mid INTEGER NOT NULL, fid INTEGER NOT NULL, \
                 follow INTEGER NOT NULL DEFAULT 0, special INTEGER NOT NULL DEFAULT 0, \
                 block INTEGER NOT NULL DEFAULT 0, follow_ms INTEGER NOT NULL DEFAULT 0, \
                 PRIMARY KEY (mid, fid)); \
                 INSERT INTO relations_v1 SELECT mid, fid, follow, special, block, follow_ms \
                 FROM relations; DROP TABLE relations; \
                 ALTER TABLE relations_v1 RENAME TO relations; \
                 DELETE FROM _sqlx_migrations WHERE version = 7;",
            )
            .expect("rewind the schema");
            assert!(!table_sql(db, "relations").contains("WITHOUT ROWID"));
        })
        .await;
    assert!(table_sql(&db, "relations").contains("WITHOUT ROWID"));
    let rows: Vec<(i64, i64, i64, i64)> = {
        let conn = rusqlite::Connection::open(&db).expect("open the database");
        let mut st = conn
            .prepare("SELECT mid, fid, follow, block FROM relations ORDER BY mid, fid")
            .expect("prepare");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let mut want = vec![
        (a.mid as i64, b.mid as i64, 1, 0),
        (b.mid as i64, c.mid as i64, 0, 0),
        (c.mid as i64, a.mid as i64, 1, 0),
        (c.mid as i64, b.mid as i64, 0, 1),
    ];
    want.sort();
    assert_eq!(rows, want);

    // Read through the API: a follows b (is_follow in a's session), c blocked b.
    s.send_text(&a, &b, "after the rebuild").await;
    let d = s.detail(&a, b.mid).await;
    assert_eq!(d["code"], 0, "{d}");
    assert_eq!(d["data"]["is_follow"], 1, "{d}");
    let refused = s.send(&b, c.mid, 1, &text("blocked?")).await;
    assert_err(&refused, 25003, crate::relations::E25003);
    s.finish().await;
}

/// Migration 0008 gives every pair session its conversation's newest seqno (`conv_max`): a
/// database written before it lists its sessions with the same `max_seqno` after it, and new
/// messages keep it current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sessions_get_their_conversation_counter_on_upgrade() {
    let s = Server::start_sqlite().await;
    let a = s.user("cm_a").await;
    let b = s.user("cm_b").await;
    let c = s.user("cm_c").await;
    befriend(&s, &a, &b).await;
    for k in 0..3 {
        s.send_text(&a, &b, &format!("a{k}")).await;
    }
    s.send_text(&b, &a, "b0").await;
    befriend(&s, &a, &c).await;
    s.send_text(&c, &a, "c0").await;
    // Each side of a pair, and the counter its session object shows.
    let sides = [
        (&a, b.mid, 4),
        (&b, a.mid, 4),
        (&a, c.mid, 1),
        (&c, a.mid, 1),
    ];
    for (who, talker, max) in sides {
        let d = s.detail(who, talker).await;
        assert_eq!(d["data"]["max_seqno"], max, "{d}");
    }

    // Back to the schema before 0008: no conv_max column, 0008 not run.
    let s = s
        .restart_sqlite_after(|db| {
            let conn = rusqlite::Connection::open(db).expect("open the database");
            conn.execute_batch(
                "ALTER TABLE sessions DROP COLUMN conv_max; \
                 DELETE FROM _sqlx_migrations WHERE version = 8;",
            )
            .expect("rewind the schema");
        })
        .await;
    for (who, talker, max) in sides {
        let d = s.detail(who, talker).await;
        assert_eq!(d["data"]["max_seqno"], max, "{d}");
    }
    let list = s.sessions(&a, &[("session_type", "1".into())]).await;
    let maxes: Vec<(u64, u64)> = list["session_list"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|x| {
            (
                x["talker_id"].as_u64().unwrap(),
                x["max_seqno"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(maxes, vec![(c.mid, 1), (b.mid, 4)], "{list}");
    // A new message moves both sides' counters.
    s.send_text(&b, &a, "b1").await;
    assert_eq!(s.detail(&a, b.mid).await["data"]["max_seqno"], 5);
    assert_eq!(s.detail(&b, a.mid).await["data"]["max_seqno"], 5);
    s.finish().await;
}
