//! The SQL store, one implementation for both backends through sqlx's `Any` driver.
//!
//! The statements are written in the common dialect of SQLite (3.35+) and PostgreSQL: `$n`
//! placeholders, `INSERT .. ON CONFLICT .. DO UPDATE`, `RETURNING`, 64-bit integers only. What
//! differs (connection set-up, migrations, row locks) is switched on [`Backend`]. SQLite gets a
//! single writer connection, so in-process writers queue instead of failing with SQLITE_BUSY,
//! plus a pool of readers that WAL lets run beside it.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use super::*;
use crate::config::{redact_url, Config, Durability};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct SqlStore {
    backend: Backend,
    write: AnyPool,
    read: AnyPool,
    writer: Writer,
    pair_ids: std::sync::RwLock<std::collections::HashMap<(u64, u64), i64>>,
}

/// The function that gives each stored message its key, in insert order.
pub type KeyFn = std::sync::Arc<dyn Fn() -> u64 + Send + Sync>;

/// A write waiting for the next group commit.
enum Job {
    Insert {
        peer: Peer,
        insert: Insert,
        key_of: KeyFn,
        reply: tokio::sync::oneshot::Sender<Result<Vec<StoredMessage>>>,
    },
    Hit {
        key: String,
        win: i64,
        reply: tokio::sync::oneshot::Sender<Result<u64>>,
    },
}

/// Group commit for SQLite's single writer: concurrent sends queue their writes, and whoever
/// gets the writer next commits everything queued in one transaction, each write in its own
/// savepoint (so one write's failure undoes only that write). Every caller is answered only
/// after the commit, so an acknowledged send is as durable as before, at a fraction of the
/// commits.
#[derive(Clone)]
struct Writer {
    pool: AnyPool,
    /// Queued jobs, and how many were ever queued (a job's id is the count when it came).
    queue: Arc<std::sync::Mutex<(Vec<Job>, u64)>>,
    /// The id of the last job taken into a batch.
    drained: Arc<std::sync::atomic::AtomicU64>,
    turn: Arc<tokio::sync::Mutex<()>>,
    rows_written: Arc<std::sync::atomic::AtomicU64>,
}

const MAX_BATCH: usize = 256;

impl Writer {
    fn new(pool: AnyPool) -> Writer {
        Writer {
            pool,
            queue: Default::default(),
            drained: Default::default(),
            turn: Default::default(),
            rows_written: Default::default(),
        }
    }

    /// Queues `job` and returns once a batch holding it has been committed (or failed).
    async fn submit(&self, job: Job) {
        let mine = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.1 += 1;
            q.0.push(job);
            q.1
        };
        let _turn = self.turn.lock().await;
        // Jobs leave the queue in the order they came; run batches until ours has left it.
        while self.drained.load(std::sync::atomic::Ordering::Acquire) < mine {
            let jobs: Vec<Job> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let n = q.0.len().min(MAX_BATCH);
                let jobs: Vec<Job> = q.0.drain(..n).collect();
                // Ids are consecutive: the last one drained is `pushed - still queued`.
                self.drained
                    .store(q.1 - q.0.len() as u64, std::sync::atomic::Ordering::Release);
                jobs
            };
            // In its own task: a caller that goes away must not abort the others' commit.
            let me = self.clone();
            let _ = tokio::spawn(async move { me.run(jobs).await }).await;
        }
    }

    async fn run(&self, jobs: Vec<Job>) {
        // What each job did inside the transaction, in job order.
        enum Done {
            Insert(Result<(Vec<StoredMessage>, u64)>),
            Hit(Result<u64>),
        }
        let mut done: Vec<Done> = Vec::with_capacity(jobs.len());
        let outcome: Result<()> = async {
            let mut tx = self.pool.begin().await?;
            for job in &jobs {
                let mut sp = sqlx::Connection::begin(&mut *tx).await?;
                let (ok, d) = match job {
                    Job::Insert {
                        peer,
                        insert,
                        key_of,
                        ..
                    } => {
                        let r = insert_in(&mut sp, *peer, insert, &**key_of).await;
                        (r.is_ok(), Done::Insert(r))
                    }
                    Job::Hit { key, win, .. } => {
                        let r = count_hit_in(&mut sp, key, *win).await;
                        (r.is_ok(), Done::Hit(r))
                    }
                };
                if ok {
                    sp.commit().await?;
                } else {
                    sp.rollback().await?;
                }
                done.push(d);
            }
            tx.commit().await
        }
        .await
        .map_err(StoreError::from);
        let failed = |e: &StoreError| StoreError::Other(format!("group commit failed: {e}"));
        let mut done = done.into_iter();
        for job in jobs {
            let d = done.next();
            match job {
                Job::Insert { reply, .. } => {
                    let answer = match (&outcome, d) {
                        (Err(e), _) => Err(failed(e)),
                        (Ok(()), Some(Done::Insert(Ok((stored, written))))) => {
                            self.rows_written
                                .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
                            Ok(stored)
                        }
                        (Ok(()), Some(Done::Insert(Err(e)))) => Err(e),
                        (Ok(()), _) => Err(StoreError::Other("write not run".into())),
                    };
                    let _ = reply.send(answer);
                }
                Job::Hit { reply, .. } => {
                    let answer = match (&outcome, d) {
                        (Err(e), _) => Err(failed(e)),
                        (Ok(()), Some(Done::Hit(r))) => r,
                        (Ok(()), _) => Err(StoreError::Other("write not run".into())),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

async fn count_hit_in(conn: &mut sqlx::AnyConnection, key: &str, win: i64) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "INSERT INTO rate_counters (key, win, count) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
         count = CASE WHEN rate_counters.win = excluded.win THEN rate_counters.count + 1 ELSE 1 END, \
         win = excluded.win RETURNING count",
    )
    .bind(key)
    .bind(win)
    .fetch_one(&mut *conn)
    .await?;
    Ok(u(n))
}

fn i(v: u64) -> i64 {
    v as i64
}
fn u(v: i64) -> u64 {
    v as u64
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Opens (creating when needed) and migrates the database `config.database` names.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>> {
    sqlx::any::install_default_drivers();
    let url = config.database.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::Other("sqlite URL without a path".into()));
        }
        if path != ":memory:" {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Other(format!("creating {}: {e}", dir.display()))
                    })?;
                }
            }
        }
        let sync = match config.durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(10));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            pool.close().await;
        }
        let any_url = format!("sqlite://{path}");
        let opts = AnyConnectOptions::from_str(&any_url)?;
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .after_connect(move |conn, _meta| sqlite_pragmas(conn, sync))
            .connect_with(opts.clone())
            .await?;
        let read = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .after_connect(move |conn, _meta| sqlite_pragmas(conn, sync))
            .connect_with(opts)
            .await?;
        tracing::info!(database = %redact_url(url), "opened SQLite (WAL, synchronous={sync})");
        Ok(Arc::new(SqlStore {
            backend: Backend::Sqlite,
            writer: Writer::new(write.clone()),
            write,
            read,
            pair_ids: Default::default(),
        }))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            pool.close().await;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(2))
            .connect(url)
            .await?;
        tracing::info!(database = %redact_url(url), "opened PostgreSQL");
        Ok(Arc::new(SqlStore {
            backend: Backend::Postgres,
            writer: Writer::new(pool.clone()),
            write: pool.clone(),
            read: pool,
            pair_ids: Default::default(),
        }))
    } else {
        Err(StoreError::Other(format!(
            "unsupported database URL {} (use sqlite://PATH or postgres://...)",
            redact_url(url)
        )))
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Per-connection SQLite settings (WAL itself is persistent and was set when migrating).
fn sqlite_pragmas<'c>(
    conn: &'c mut sqlx::AnyConnection,
    sync: &'static str,
) -> BoxFuture<'c, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute("PRAGMA busy_timeout = 10000").await?;
        conn.execute(format!("PRAGMA synchronous = {sync}").as_str())
            .await?;
        Ok(())
    })
}

const MSG_COLS: &str = "m.conv_id AS m_conv_id, m.seqno AS m_seqno, m.msg_key AS m_msg_key, \
    m.sender_uid AS m_sender_uid, m.receiver_type AS m_receiver_type, m.receiver_id AS m_receiver_id, \
    m.msg_type AS m_msg_type, m.content AS m_content, m.ts AS m_ts, m.at_uids AS m_at_uids, \
    m.msg_status AS m_msg_status, m.sys_cancel AS m_sys_cancel, m.notify_code AS m_notify_code, \
    m.new_face_version AS m_new_face_version, m.msg_source AS m_msg_source, m.visible_to AS m_visible_to";

fn decode_message(row: &AnyRow) -> std::result::Result<Option<StoredMessage>, sqlx::Error> {
    let Some(seqno) = row.try_get::<Option<i64>, _>("m_seqno")? else {
        return Ok(None);
    };
    let at_uids: Option<String> = row.try_get("m_at_uids")?;
    let msg_type = row.try_get::<i64, _>("m_msg_type")? as u32;
    let sys_cancel: i64 = row.try_get("m_sys_cancel")?;
    Ok(Some(StoredMessage {
        conv_id: row.try_get("m_conv_id")?,
        visible_to: row.try_get::<Option<i64>, _>("m_visible_to")?.map(u),
        msg: sixin_proto::Message {
            sender_uid: u(row.try_get("m_sender_uid")?),
            receiver_type: row.try_get::<i64, _>("m_receiver_type")? as u8,
            receiver_id: u(row.try_get("m_receiver_id")?),
            msg_type,
            content: row.try_get("m_content")?,
            msg_seqno: u(seqno),
            timestamp: row.try_get("m_ts")?,
            at_uids: at_uids.and_then(|s| serde_json::from_str(&s).ok()),
            msg_key: u(row.try_get("m_msg_key")?),
            msg_status: row.try_get::<i64, _>("m_msg_status")? as u32,
            sys_cancel: (msg_type == sixin_proto::content::RECALL && sys_cancel != 0)
                .then_some(true),
            notify_code: row.try_get("m_notify_code")?,
            new_face_version: Some(row.try_get::<i64, _>("m_new_face_version")? as u8),
            msg_source: row.try_get::<i64, _>("m_msg_source")? as u32,
        },
    }))
}

const SESSION_SELECT: &str =
    "SELECT s.owner, s.session_type, s.talker_id, s.conv_id, s.ack_seqno, \
    s.ack_ts, s.session_ts, s.last_seqno, s.unread_count, s.top_ts, s.is_dnd, s.push_setting, \
    s.removed, s.is_intercept, s.is_trust, COALESCE(c.max_seqno, 0) AS max_seqno, \
    COALESCE(r.follow, 0) AS follows, COALESCE(u.system_msg_type, 0) AS talker_system_type, \
    s.manual_sent, s.biz_unread, s.official_unread, ";

const SESSION_JOINS: &str = " FROM sessions s \
    LEFT JOIN conversations c ON c.id = s.conv_id \
    LEFT JOIN relations r ON r.mid = s.owner AND r.fid = s.talker_id \
    LEFT JOIN users u ON u.mid = s.talker_id \
    LEFT JOIN messages m ON m.conv_id = s.conv_id AND m.seqno = s.last_seqno ";

fn decode_session(row: &AnyRow) -> std::result::Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        owner: u(row.try_get("owner")?),
        session_type: row.try_get::<i64, _>("session_type")? as u8,
        talker_id: u(row.try_get("talker_id")?),
        conv_id: row.try_get("conv_id")?,
        ack_seqno: u(row.try_get("ack_seqno")?),
        ack_ts: row.try_get("ack_ts")?,
        session_ts: row.try_get("session_ts")?,
        last_seqno: u(row.try_get("last_seqno")?),
        unread_count: u(row.try_get("unread_count")?),
        top_ts: row.try_get("top_ts")?,
        is_dnd: row.try_get::<i64, _>("is_dnd")? != 0,
        push_setting: row.try_get::<i64, _>("push_setting")? as u8,
        removed: row.try_get::<i64, _>("removed")? != 0,
        is_intercept: row.try_get::<i64, _>("is_intercept")? != 0,
        is_trust: row.try_get::<i64, _>("is_trust")? != 0,
        max_seqno: u(row.try_get("max_seqno")?),
        follows: row.try_get::<i64, _>("follows")? != 0,
        talker_system_type: row.try_get::<i64, _>("talker_system_type")? as u8,
        last_msg: decode_message(row)?.map(|m| m.msg),
        manual_sent: u(row.try_get("manual_sent")?),
        biz_unread: u(row.try_get("biz_unread")?),
        official_unread: u(row.try_get("official_unread")?),
        group: None,
    })
}

fn decode_user(row: &AnyRow) -> std::result::Result<User, sqlx::Error> {
    Ok(User {
        mid: u(row.try_get("mid")?),
        name: row.try_get("name")?,
        face: row.try_get("face")?,
        sign: row.try_get("sign")?,
        level: row.try_get::<i64, _>("level")? as u8,
        password_hash: row.try_get("password_hash")?,
        system_msg_type: row.try_get::<i64, _>("system_msg_type")? as u8,
        created_ms: row.try_get("created_ms")?,
        privacy: row.try_get::<i64, _>("privacy")? as u8,
        flagged: row.try_get::<i64, _>("flagged")? != 0,
    })
}

const USER_COLS: &str =
    "mid, name, face, sign, level, password_hash, system_msg_type, created_ms, privacy, flagged";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Placeholders `$from, $from+1, ...` for an IN list.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|k| format!("${k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One insert (see [`Store::insert_messages`]) on a connection inside a transaction; returns
/// the stored messages and the rows written. On error the caller rolls back.
async fn insert_in(
    tx: &mut sqlx::AnyConnection,
    peer: Peer,
    insert: &Insert,
    key_of: &(dyn Fn() -> u64 + Send + Sync),
) -> Result<(Vec<StoredMessage>, u64)> {
    let n = insert.messages.len() as i64;
    if n == 0 {
        return Ok((Vec::new(), 0));
    }
    let now_us = insert.now_us;
    let mut written: u64 = 0;
    // The conversation row is the seqno counter: bumping it first takes the row lock that
    // orders every writer of this conversation, on any node.
    let (conv_id, max) = match peer {
        Peer::Pair { a, b } => {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let row = sqlx::query(
                    "INSERT INTO conversations (kind, pair_key, user_lo, user_hi, max_seqno, last_ts_us) \
                     VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (pair_key) DO UPDATE SET \
                     max_seqno = conversations.max_seqno + $4, last_ts_us = $5 RETURNING id, max_seqno",
                )
                .bind(format!("{lo}:{hi}"))
                .bind(i(lo))
                .bind(i(hi))
                .bind(n)
                .bind(now_us)
                .fetch_one(&mut *tx)
                .await?;
            (
                row.try_get::<i64, _>("id")?,
                row.try_get::<i64, _>("max_seqno")?,
            )
        }
        Peer::Group { conv_id, .. } => {
            let max: i64 = sqlx::query_scalar(
                    "UPDATE conversations SET max_seqno = max_seqno + $1, last_ts_us = $2 WHERE id = $3 \
                     RETURNING max_seqno",
                )
                .bind(n)
                .bind(now_us)
                .bind(conv_id)
                .fetch_one(&mut *tx)
                .await?;
            (conv_id, max)
        }
    };
    written += 1;
    let first_seqno = u(max - n + 1);

    if let (Some(sender), Peer::Group { group_id, .. }) = (insert.member_of_open_group, peer) {
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT g.state FROM groups g JOIN group_members gm ON gm.group_id = g.group_id \
                 AND gm.mid = $2 AND gm.left_seqno = 0 WHERE g.group_id = $1",
        )
        .bind(i(group_id))
        .bind(i(sender))
        .fetch_optional(&mut *tx)
        .await?;
        if open != Some(0) {
            return Err(StoreError::Stale);
        }
    }

    if let (Some(limit), Peer::Pair { a, b }) = (insert.max_manual_sent, peer) {
        let sender = insert.messages[0].sender_uid;
        let other = if sender == a { b } else { a };
        let sent: Option<i64> = sqlx::query_scalar(
                "SELECT manual_sent FROM sessions WHERE owner = $1 AND session_type = 1 AND talker_id = $2",
            )
            .bind(i(sender))
            .bind(i(other))
            .fetch_optional(&mut *tx)
            .await?;
        if u(sent.unwrap_or(0)) >= limit {
            return Err(StoreError::Conflict);
        }
    }

    if let Some(target) = insert.recall_target {
        let r = sqlx::query(
                "UPDATE messages SET msg_status = 1 WHERE msg_key = $1 AND conv_id = $2 AND msg_status = 0",
            )
            .bind(i(target))
            .bind(conv_id)
            .execute(&mut *tx)
            .await?;
        written += r.rows_affected();
        if r.rows_affected() != 1 {
            return Err(StoreError::Stale);
        }
    }

    let ts = now_us / 1_000_000;
    let mut stored = Vec::with_capacity(insert.messages.len());
    for (k, m) in insert.messages.iter().enumerate() {
        let seqno = first_seqno + k as u64;
        let key = key_of();
        let at_uids = m
            .at_uids
            .as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
        sqlx::query(
                "INSERT INTO messages (conv_id, seqno, msg_key, sender_uid, receiver_type, receiver_id, \
                 msg_type, content, ts, at_uids, msg_status, sys_cancel, notify_code, new_face_version, \
                 msg_source, visible_to, dev_id, push_kind) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, $11, $12, $13, $14, $15, $16)",
            )
            .bind(conv_id)
            .bind(i(seqno))
            .bind(i(key))
            .bind(i(m.sender_uid))
            .bind(i64::from(m.receiver_type))
            .bind(i(m.receiver_id))
            .bind(i64::from(m.msg_type))
            .bind(&m.content)
            .bind(ts)
            .bind(at_uids)
            .bind(&m.notify_code)
            .bind(i64::from(m.new_face_version))
            .bind(i64::from(m.msg_source))
            .bind(m.visible_to.map(i))
            .bind(&m.dev_id)
            .bind(match (m.push, m.official) {
                (false, _) => 0i64,
                (true, false) => 1,
                (true, true) => 2,
            })
            .execute(&mut *tx)
            .await?;
        written += 1;
        stored.push(StoredMessage {
            conv_id,
            visible_to: m.visible_to,
            msg: sixin_proto::Message {
                sender_uid: m.sender_uid,
                receiver_type: m.receiver_type,
                receiver_id: m.receiver_id,
                msg_type: m.msg_type,
                content: m.content.clone(),
                msg_seqno: seqno,
                timestamp: ts,
                at_uids: m.at_uids.clone(),
                msg_key: key,
                msg_status: 0,
                sys_cancel: None,
                notify_code: m.notify_code.clone(),
                new_face_version: Some(m.new_face_version),
                msg_source: m.msg_source,
            },
        });
    }

    let sender = insert.messages[0].sender_uid;
    if let Peer::Group { group_id, .. } = peer {
        for m in &stored {
            for mid in m.msg.at_uids.iter().flatten().filter(|m| **m != 0) {
                let r = sqlx::query(
                    "INSERT INTO group_mentions (group_id, mid, seqno) VALUES ($1, $2, $3) \
                         ON CONFLICT (group_id, mid, seqno) DO NOTHING",
                )
                .bind(i(group_id))
                .bind(i(*mid))
                .bind(i(m.msg.msg_seqno))
                .execute(&mut *tx)
                .await?;
                written += r.rows_affected();
            }
        }
        // Members' views are derived from the group's counter; only the sender's read
        // mark moves (and brings the session back if they had removed it).
        if insert.sender_reads && sender != 0 {
            let last = stored.last().map_or(0, |m| m.msg.msg_seqno);
            let r = sqlx::query(
                "UPDATE sessions SET ack_seqno = $1, ack_ts = $2, removed = 0 \
                     WHERE owner = $3 AND session_type = 2 AND talker_id = $4 AND ack_seqno < $1",
            )
            .bind(i(last))
            .bind(now_us)
            .bind(i(sender))
            .bind(i(group_id))
            .execute(&mut *tx)
            .await?;
            written += r.rows_affected();
        }
    }
    let pair = match peer {
        Peer::Pair { a, b } => vec![(a, b), (b, a)],
        Peer::Group { .. } => Vec::new(),
    };
    for (owner, talker) in pair {
        let visible: Vec<(&StoredMessage, &NewMessage)> = stored
            .iter()
            .zip(&insert.messages)
            .filter(|(s, _)| s.visible_to.is_none_or(|v| v == owner))
            .collect();
        let Some(last) = visible.last().map(|(s, _)| s.msg.msg_seqno) else {
            continue;
        };
        let incoming: Vec<&NewMessage> = visible
            .iter()
            .filter(|(s, _)| s.msg.sender_uid != owner)
            .map(|(_, m)| *m)
            .collect();
        let unread = incoming.len() as i64;
        let biz = incoming.iter().filter(|m| m.push).count() as i64;
        let official = incoming.iter().filter(|m| m.push && m.official).count() as i64;
        let manual = insert
            .messages
            .iter()
            .filter(|m| m.manual && m.sender_uid == owner)
            .count() as i64;
        let intercept = i64::from(insert.intercept_receiver && owner != sender);
        let reads = owner == sender && insert.sender_reads;
        let sql = if reads {
            "INSERT INTO sessions (owner, session_type, talker_id, conv_id, ack_seqno, ack_ts, session_ts, \
                 last_seqno, unread_count, biz_unread, official_unread, manual_sent) \
                 VALUES ($1, 1, $2, $3, $4, $5, $5, $4, 0, 0, 0, $6) \
                 ON CONFLICT (owner, session_type, talker_id) DO UPDATE SET \
                 conv_id = excluded.conv_id, ack_seqno = excluded.ack_seqno, ack_ts = excluded.ack_ts, \
                 session_ts = excluded.session_ts, last_seqno = excluded.last_seqno, unread_count = 0, \
                 biz_unread = 0, official_unread = 0, manual_sent = sessions.manual_sent + $6, removed = 0"
        } else {
            "INSERT INTO sessions (owner, session_type, talker_id, conv_id, session_ts, last_seqno, \
                 unread_count, biz_unread, official_unread, manual_sent, is_intercept) \
                 VALUES ($1, 1, $2, $3, $5, $4, $7, $8, $9, $6, $10) \
                 ON CONFLICT (owner, session_type, talker_id) DO UPDATE SET \
                 conv_id = excluded.conv_id, session_ts = excluded.session_ts, last_seqno = excluded.last_seqno, \
                 unread_count = sessions.unread_count + $7, biz_unread = sessions.biz_unread + $8, \
                 official_unread = sessions.official_unread + $9, manual_sent = sessions.manual_sent + $6, \
                 removed = 0, is_intercept = CASE WHEN $10 = 1 AND sessions.is_trust = 0 THEN 1 \
                 ELSE sessions.is_intercept END"
        };
        let mut q = sqlx::query(sql)
            .bind(i(owner))
            .bind(i(talker))
            .bind(conv_id)
            .bind(i(last))
            .bind(now_us)
            .bind(manual);
        if !reads {
            q = q.bind(unread).bind(biz).bind(official).bind(intercept);
        }
        written += q.execute(&mut *tx).await?.rows_affected();
    }
    Ok((stored, written))
}

impl SqlStore {
    fn lock_suffix(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn lease_node_id(&self, instance: &str, now_ms: i64, lease_ms: i64) -> Result<u16> {
        let start = (rand::random::<u16>()) % crate::ids::MAX_NODES;
        for k in 0..crate::ids::MAX_NODES {
            let node = (start + k) % crate::ids::MAX_NODES;
            let got = sqlx::query(
                "INSERT INTO nodes (node_id, lease_ms, instance) VALUES ($1, $2, $3) \
                 ON CONFLICT (node_id) DO UPDATE SET lease_ms = excluded.lease_ms, instance = excluded.instance \
                 WHERE nodes.lease_ms < $4 OR nodes.instance = $3 RETURNING node_id",
            )
            .bind(i64::from(node))
            .bind(now_ms + lease_ms)
            .bind(instance)
            .bind(now_ms)
            .fetch_optional(&self.write)
            .await?;
            if got.is_some() {
                return Ok(node);
            }
        }
        Err(StoreError::Other("all 1024 node ids are leased".into()))
    }

    async fn renew_node_id(
        &self,
        node: u16,
        instance: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE nodes SET lease_ms = $1 WHERE node_id = $2 AND instance = $3")
            .bind(now_ms + lease_ms)
            .bind(i64::from(node))
            .bind(instance)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn create_user(&self, user: NewUser, now_ms: i64) -> Result<User> {
        // Concurrent creations race for the same next mid; the losers pick again.
        for _attempt in 0..64 {
            let mid = match user.mid {
                Some(m) => m,
                None => {
                    let max: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(mid), 0) FROM users WHERE system_msg_type = 0 AND mid < 100000000000",
                    )
                    .fetch_one(&self.write)
                    .await?;
                    (max.max(10000) + 1) as u64
                }
            };
            let res = sqlx::query(
                "INSERT INTO users (mid, name, face, sign, level, password_hash, system_msg_type, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(i(mid))
            .bind(&user.name)
            .bind(&user.face)
            .bind(&user.sign)
            .bind(i64::from(user.level))
            .bind(user.password_hash.clone())
            .bind(i64::from(user.system_msg_type))
            .bind(now_ms)
            .execute(&self.write)
            .await;
            match res {
                Ok(_) => {
                    return Ok(User {
                        mid,
                        name: user.name,
                        face: user.face,
                        sign: user.sign,
                        level: user.level,
                        password_hash: user.password_hash,
                        system_msg_type: user.system_msg_type,
                        created_ms: now_ms,
                        privacy: 0,
                        flagged: false,
                    })
                }
                Err(e) if is_unique_violation(&e) && user.mid.is_none() => continue,
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict),
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn upsert_system_user(&self, user: NewUser, now_ms: i64) -> Result<()> {
        let mid = user
            .mid
            .ok_or_else(|| StoreError::Other("system user without mid".into()))?;
        sqlx::query(
            "INSERT INTO users (mid, name, face, sign, level, system_msg_type, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (mid) DO UPDATE SET \
             name = excluded.name, face = excluded.face, system_msg_type = excluded.system_msg_type",
        )
        .bind(i(mid))
        .bind(&user.name)
        .bind(&user.face)
        .bind(&user.sign)
        .bind(i64::from(user.level))
        .bind(i64::from(user.system_msg_type))
        .bind(now_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn user(&self, mid: u64) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE mid = $1"))
            .bind(i(mid))
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(decode_user).transpose()?)
    }

    async fn users(&self, mids: &[u64]) -> Result<Vec<User>> {
        if mids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE mid IN ({})",
            placeholders(1, mids.len())
        );
        let mut q = sqlx::query(&sql);
        for m in mids {
            q = q.bind(i(*m));
        }
        let rows = q.fetch_all(&self.read).await?;
        Ok(rows
            .iter()
            .map(decode_user)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn user_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE system_msg_type = 0")
            .fetch_one(&self.read)
            .await?;
        Ok(u(n))
    }

    async fn create_login(&self, sessdata_hash: &str, login: &Login, now_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO logins (sessdata_hash, mid, bili_jct, created_ms, expires_ms, revoked) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(sessdata_hash)
        .bind(i(login.mid))
        .bind(&login.bili_jct)
        .bind(now_ms)
        .bind(login.expires_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn login(&self, sessdata_hash: &str) -> Result<Option<Login>> {
        let row = sqlx::query(
            "SELECT mid, bili_jct, expires_ms, revoked FROM logins WHERE sessdata_hash = $1",
        )
        .bind(sessdata_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some(r) => Some(Login {
                mid: u(r.try_get("mid")?),
                bili_jct: r.try_get("bili_jct")?,
                expires_ms: r.try_get("expires_ms")?,
                revoked: r.try_get::<i64, _>("revoked")? != 0,
            }),
            None => None,
        })
    }

    async fn revoke_logins(&self, mid: u64) -> Result<u64> {
        let r = sqlx::query("UPDATE logins SET revoked = 1 WHERE mid = $1 AND revoked = 0")
            .bind(i(mid))
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected())
    }

    async fn revoke_login(&self, sessdata_hash: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE logins SET revoked = 1 WHERE sessdata_hash = $1 AND revoked = 0")
                .bind(sessdata_hash)
                .execute(&self.write)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn relation(&self, mid: u64, fid: u64) -> Result<Relation> {
        let row =
            sqlx::query("SELECT follow, special, block FROM relations WHERE mid = $1 AND fid = $2")
                .bind(i(mid))
                .bind(i(fid))
                .fetch_optional(&self.read)
                .await?;
        Ok(match row {
            Some(r) => Relation {
                follow: r.try_get::<i64, _>("follow")? != 0,
                special: r.try_get::<i64, _>("special")? != 0,
                block: r.try_get::<i64, _>("block")? != 0,
            },
            None => Relation::default(),
        })
    }

    async fn pair_state(&self, a: u64, b: u64) -> Result<PairState> {
        let mut st = PairState::default();
        let rows = sqlx::query(
            "SELECT mid, follow, special, block FROM relations \
             WHERE (mid = $1 AND fid = $2) OR (mid = $2 AND fid = $1)",
        )
        .bind(i(a))
        .bind(i(b))
        .fetch_all(&self.read)
        .await?;
        for r in &rows {
            let rel = Relation {
                follow: r.try_get::<i64, _>("follow")? != 0,
                special: r.try_get::<i64, _>("special")? != 0,
                block: r.try_get::<i64, _>("block")? != 0,
            };
            if u(r.try_get("mid")?) == a {
                st.a_to_b = rel;
            } else {
                st.b_to_a = rel;
            }
        }
        let rows = sqlx::query(
            "SELECT owner, manual_sent, is_trust FROM sessions WHERE session_type = 1 \
             AND ((owner = $1 AND talker_id = $2) OR (owner = $2 AND talker_id = $1))",
        )
        .bind(i(a))
        .bind(i(b))
        .fetch_all(&self.read)
        .await?;
        for r in &rows {
            let sent = u(r.try_get("manual_sent")?);
            if u(r.try_get("owner")?) == a {
                st.a_manual_sent = sent;
            } else {
                st.b_manual_sent = sent;
                st.b_trusts_a = r.try_get::<i64, _>("is_trust")? != 0;
            }
        }
        Ok(st)
    }

    async fn set_relation(&self, mid: u64, fid: u64, rel: Relation, now_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO relations (mid, fid, follow, special, block, follow_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (mid, fid) DO UPDATE SET follow = excluded.follow, special = excluded.special, \
             block = excluded.block, follow_ms = CASE WHEN relations.follow = 0 AND excluded.follow = 1 \
             THEN excluded.follow_ms ELSE relations.follow_ms END",
        )
        .bind(i(mid))
        .bind(i(fid))
        .bind(i64::from(rel.follow))
        .bind(i64::from(rel.special))
        .bind(i64::from(rel.block))
        .bind(now_ms)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn follow_counts(&self, mid: u64) -> Result<(u64, u64)> {
        let following: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM relations WHERE mid = $1 AND follow = 1")
                .bind(i(mid))
                .fetch_one(&self.read)
                .await?;
        let followers: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM relations WHERE fid = $1 AND follow = 1")
                .bind(i(mid))
                .fetch_one(&self.read)
                .await?;
        Ok((u(following), u(followers)))
    }

    async fn insert_messages(
        &self,
        peer: Peer,
        insert: Insert,
        key_of: KeyFn,
    ) -> Result<Vec<StoredMessage>> {
        if self.backend == Backend::Sqlite {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.writer
                .submit(Job::Insert {
                    peer,
                    insert,
                    key_of,
                    reply,
                })
                .await;
            return answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Other("the writer stopped".into())));
        }
        let mut tx = self.write.begin().await?;
        match insert_in(&mut tx, peer, &insert, &*key_of).await {
            Ok((stored, written)) => {
                tx.commit().await?;
                self.writer
                    .rows_written
                    .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
                Ok(stored)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    async fn message_by_key(&self, msg_key: u64) -> Result<Option<StoredMessage>> {
        let row = sqlx::query(&format!(
            "SELECT {MSG_COLS} FROM messages m WHERE m.msg_key = $1"
        ))
        .bind(i(msg_key))
        .fetch_optional(&self.read)
        .await?;
        match row {
            Some(r) => Ok(decode_message(&r)?),
            None => Ok(None),
        }
    }

    async fn pair_conversation(&self, a: u64, b: u64) -> Result<Option<i64>> {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        // A pair's conversation id never changes once created (rows are never deleted), so it
        // is remembered; only "no conversation yet" is asked again.
        if let Some(id) = self
            .pair_ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(lo, hi))
        {
            return Ok(Some(*id));
        }
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM conversations WHERE pair_key = $1")
                .bind(format!("{lo}:{hi}"))
                .fetch_optional(&self.read)
                .await?;
        if let Some(id) = id {
            let mut map = self.pair_ids.write().unwrap_or_else(|e| e.into_inner());
            if map.len() >= 1_000_000 {
                map.clear();
            }
            map.insert((lo, hi), id);
        }
        Ok(id)
    }

    async fn messages(
        &self,
        conv_id: i64,
        viewer: u64,
        w: Window,
    ) -> Result<Vec<sixin_proto::Message>> {
        let mut sql = format!(
            "SELECT {MSG_COLS} FROM messages m WHERE m.conv_id = $1 AND m.msg_status <> 2 \
             AND (m.visible_to IS NULL OR m.visible_to = $2)"
        );
        let mut n = 2;
        if w.begin.is_some() {
            n += 1;
            sql.push_str(&format!(" AND m.seqno > ${n}"));
        }
        if w.end.is_some() {
            n += 1;
            sql.push_str(&format!(" AND m.seqno < ${n}"));
        }
        if w.tips_only {
            sql.push_str(" AND m.msg_type = 18");
        }
        n += 1;
        sql.push_str(if w.oldest_first {
            " ORDER BY m.seqno ASC"
        } else {
            " ORDER BY m.seqno DESC"
        });
        sql.push_str(&format!(" LIMIT ${n}"));
        let mut q = sqlx::query(&sql).bind(conv_id).bind(i(viewer));
        if let Some(b) = w.begin {
            q = q.bind(i(b.min(i64::MAX as u64)));
        }
        if let Some(e) = w.end {
            q = q.bind(i(e.min(i64::MAX as u64)));
        }
        q = q.bind(i64::from(w.limit));
        let rows = q.fetch_all(&self.read).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(m) = decode_message(r)? {
                out.push(m.msg);
            }
        }
        if w.oldest_first {
            out.reverse();
        }
        Ok(out)
    }

    async fn session(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
    ) -> Result<Option<SessionRow>> {
        let sql = format!(
            "{SESSION_SELECT}{MSG_COLS}{SESSION_JOINS} WHERE s.owner = $1 AND s.session_type = $2 AND s.talker_id = $3"
        );
        let row = sqlx::query(&sql)
            .bind(i(owner))
            .bind(i64::from(session_type))
            .bind(i(talker_id))
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(decode_session).transpose()?)
    }

    async fn sessions(&self, owner: u64, q: &SessionQuery) -> Result<Vec<SessionRow>> {
        let mut sql = format!(
            "{SESSION_SELECT}{MSG_COLS}{SESSION_JOINS} WHERE s.owner = $1 AND s.session_type = 1 \
             AND s.last_seqno > 0 AND s.removed = 0"
        );
        match q.kind {
            ListKind::Intercepted => sql.push_str(" AND s.is_intercept = 1"),
            ListKind::Users { followed, system } => {
                sql.push_str(" AND s.is_intercept = 0");
                match followed {
                    Some(true) => sql.push_str(
                        " AND (COALESCE(r.follow, 0) = 1 OR COALESCE(u.system_msg_type, 0) > 0)",
                    ),
                    Some(false) => sql.push_str(
                        " AND COALESCE(r.follow, 0) = 0 AND COALESCE(u.system_msg_type, 0) = 0",
                    ),
                    None => {}
                }
                match system {
                    Some(true) => sql.push_str(" AND COALESCE(u.system_msg_type, 0) > 0"),
                    Some(false) => sql.push_str(" AND COALESCE(u.system_msg_type, 0) = 0"),
                    None => {}
                }
            }
        }
        let col = match q.sort {
            SortBy::SessionTs => "s.session_ts",
            SortBy::AckTs => "s.ack_ts",
        };
        let mut n = 1;
        if q.pinned {
            sql.push_str(" AND s.top_ts > 0 ORDER BY s.top_ts DESC");
        } else {
            sql.push_str(" AND s.top_ts = 0");
            if q.after.is_some() {
                n += 1;
                sql.push_str(&format!(" AND {col} > ${n}"));
            }
            if q.before.is_some() {
                n += 1;
                sql.push_str(&format!(" AND {col} < ${n}"));
            }
            sql.push_str(&format!(" ORDER BY {col} DESC, s.talker_id DESC"));
        }
        n += 1;
        sql.push_str(&format!(" LIMIT ${n}"));
        let mut query = sqlx::query(&sql).bind(i(owner));
        if !q.pinned {
            if let Some(a) = q.after {
                query = query.bind(a);
            }
            if let Some(b) = q.before {
                query = query.bind(b);
            }
        }
        let rows = query.bind(i64::from(q.limit)).fetch_all(&self.read).await?;
        Ok(rows
            .iter()
            .map(decode_session)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn sessions_since(&self, owner: u64, since: i64, limit: u32) -> Result<Vec<SessionRow>> {
        let sql = format!(
            "{SESSION_SELECT}{MSG_COLS}{SESSION_JOINS} WHERE s.owner = $1 AND s.session_type = 1 AND s.session_ts > $2 \
             AND s.last_seqno > 0 AND s.removed = 0 AND s.is_intercept = 0 \
             ORDER BY s.session_ts DESC, s.talker_id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(i(owner))
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(decode_session)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn talkers_with_sessions(&self, owner: u64, talkers: &[u64]) -> Result<Vec<u64>> {
        if talkers.is_empty() {
            return Ok(Vec::new());
        }
        // Not a cached prepared statement: PostgreSQL's generic plan for it, tuned to owners
        // with a handful of sessions, scans every session of an owner with thousands.
        let sql = format!(
            "SELECT s.talker_id FROM sessions s WHERE s.owner = $1 AND s.session_type = 1 \
             AND s.talker_id IN ({}) AND s.last_seqno > 0",
            placeholders(2, talkers.len())
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql)
            .persistent(false)
            .bind(i(owner));
        for t in talkers {
            q = q.bind(i(*t));
        }
        Ok(q.fetch_all(&self.read).await?.into_iter().map(u).collect())
    }

    async fn unread_rows(&self, owner: u64) -> Result<Vec<UnreadRow>> {
        let rows = sqlx::query(
            "SELECT s.talker_id, s.unread_count, s.biz_unread, s.official_unread, s.push_setting, \
             COALESCE(r.follow, 0) AS follows, \
             COALESCE(u.system_msg_type, 0) AS talker_system_type, s.is_intercept FROM sessions s \
             LEFT JOIN relations r ON r.mid = s.owner AND r.fid = s.talker_id \
             LEFT JOIN users u ON u.mid = s.talker_id \
             WHERE s.owner = $1 AND s.unread_count > 0 AND s.session_type = 1 AND s.is_dnd = 0",
        )
        .bind(i(owner))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnreadRow {
                    talker_id: u(r.try_get("talker_id")?),
                    unread: u(r.try_get("unread_count")?),
                    biz_unread: u(r.try_get("biz_unread")?),
                    official_unread: u(r.try_get("official_unread")?),
                    push_setting: r.try_get::<i64, _>("push_setting")? as u8,
                    follows: r.try_get::<i64, _>("follows")? != 0,
                    talker_system_type: r.try_get::<i64, _>("talker_system_type")? as u8,
                    is_intercept: r.try_get::<i64, _>("is_intercept")? != 0,
                })
            })
            .collect()
    }

    async fn ack(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
        ack: Option<u64>,
        now_us: i64,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query("SELECT conv_id, ack_seqno FROM sessions WHERE owner = $1 AND session_type = $2 AND talker_id = $3")
            .bind(i(owner))
            .bind(i64::from(session_type))
            .bind(i(talker_id))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let Some(conv_id) = row.try_get::<Option<i64>, _>("conv_id")? else {
            return Ok(false);
        };
        let current = u(row.try_get("ack_seqno")?);
        if session_type == 2 {
            // A member's unread count is derived (max - ack): moving the mark is all there is.
            let view_max: i64 = sqlx::query_scalar(
                "SELECT CASE WHEN gm.left_seqno > 0 THEN gm.left_seqno ELSE c.max_seqno END \
                 FROM group_members gm JOIN groups g ON g.group_id = gm.group_id \
                 JOIN conversations c ON c.id = g.conv_id WHERE gm.group_id = $1 AND gm.mid = $2",
            )
            .bind(i(talker_id))
            .bind(i(owner))
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
            let target = ack.map_or(u(view_max), |a| a.min(u(view_max))).max(current);
            sqlx::query("UPDATE sessions SET ack_seqno = $1, ack_ts = $2 WHERE owner = $3 AND session_type = 2 AND talker_id = $4")
                .bind(i(target))
                .bind(now_us)
                .bind(i(owner))
                .bind(i(talker_id))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(true);
        }
        // Locking the conversation row orders this recount after any insert in flight, so an
        // unread message can't be missed between the count and the write.
        let max: i64 = sqlx::query_scalar(&format!(
            "SELECT max_seqno FROM conversations WHERE id = $1{}",
            self.lock_suffix()
        ))
        .bind(conv_id)
        .fetch_one(&mut *tx)
        .await?;
        let max = u(max);
        let target = ack.map_or(max, |a| a.min(max));
        if target > current {
            // The unread messages after the new mark: by the other side, visible to the owner.
            const UNREAD: &str = "WHERE m.conv_id = $3 AND m.seqno > $1 AND m.sender_uid <> $4 \
                AND m.msg_status <> 2 AND (m.visible_to IS NULL OR m.visible_to = $4)";
            sqlx::query(&format!(
                "UPDATE sessions SET ack_seqno = $1, ack_ts = $2, \
                 unread_count = (SELECT COUNT(*) FROM messages m {UNREAD}), \
                 biz_unread = (SELECT COUNT(*) FROM messages m {UNREAD} AND m.push_kind > 0), \
                 official_unread = (SELECT COUNT(*) FROM messages m {UNREAD} AND m.push_kind = 2) \
                 WHERE owner = $4 AND session_type = $5 AND talker_id = $6"
            ))
            .bind(i(target))
            .bind(now_us)
            .bind(conv_id)
            .bind(i(owner))
            .bind(i64::from(session_type))
            .bind(i(talker_id))
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("UPDATE sessions SET ack_ts = $1 WHERE owner = $2 AND session_type = $3 AND talker_id = $4")
                .bind(now_us)
                .bind(i(owner))
                .bind(i64::from(session_type))
                .bind(i(talker_id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn set_session_flag(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
        flag: SessionFlag,
    ) -> Result<()> {
        if let SessionFlag::GroupRemovedAt(seqno) = flag {
            sqlx::query(
                "UPDATE sessions SET removed = 1, last_seqno = $1 WHERE owner = $2 AND session_type = $3 AND talker_id = $4",
            )
            .bind(i(seqno))
            .bind(i(owner))
            .bind(i64::from(session_type))
            .bind(i(talker_id))
            .execute(&self.write)
            .await?;
            return Ok(());
        }
        let (col, v) = match flag {
            SessionFlag::GroupRemovedAt(_) => unreachable!("handled above"),
            SessionFlag::Removed(b) => ("removed", i64::from(b)),
            SessionFlag::TopTs(t) => ("top_ts", t),
            SessionFlag::Dnd(b) => ("is_dnd", i64::from(b)),
            SessionFlag::PushSetting(s) => ("push_setting", i64::from(s)),
        };
        sqlx::query(&format!(
            "INSERT INTO sessions (owner, session_type, talker_id, {col}) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner, session_type, talker_id) DO UPDATE SET {col} = excluded.{col}"
        ))
        .bind(i(owner))
        .bind(i64::from(session_type))
        .bind(i(talker_id))
        .bind(v)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn dnd_settings(
        &self,
        owner: u64,
        session_type: u8,
        talkers: &[u64],
    ) -> Result<Vec<(u64, bool)>> {
        if talkers.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT talker_id, is_dnd FROM sessions WHERE owner = $1 AND session_type = $2 AND talker_id IN ({})",
            placeholders(3, talkers.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(i(owner))
            .bind(i64::from(session_type));
        for t in talkers {
            q = q.bind(i(*t));
        }
        let rows = q.fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    u(r.try_get("talker_id")?),
                    r.try_get::<i64, _>("is_dnd")? != 0,
                ))
            })
            .collect()
    }

    async fn count_hit(&self, key: &str, win: i64) -> Result<u64> {
        if self.backend == Backend::Sqlite {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.writer
                .submit(Job::Hit {
                    key: key.to_string(),
                    win,
                    reply,
                })
                .await;
            return answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Other("the writer stopped".into())));
        }
        let mut conn = self.write.acquire().await?;
        count_hit_in(&mut conn, key, win).await
    }

    async fn server_flag(&self, name: &str) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT value FROM server_flags WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        Ok(v.unwrap_or(0))
    }

    async fn set_server_flag(&self, name: &str, value: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO server_flags (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn set_user_privacy(&self, mid: u64, privacy: u8) -> Result<()> {
        sqlx::query("UPDATE users SET privacy = $1 WHERE mid = $2")
            .bind(i64::from(privacy))
            .bind(i(mid))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn set_user_flagged(&self, mid: u64, flagged: bool) -> Result<()> {
        sqlx::query("UPDATE users SET flagged = $1 WHERE mid = $2")
            .bind(i64::from(flagged))
            .bind(i(mid))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn auto_replies(&self, mid: u64) -> Result<AutoReplies> {
        let row = sqlx::query(
            "SELECT follow_reply, message_reply, keyword_replies FROM auto_replies WHERE mid = $1",
        )
        .bind(i(mid))
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some(r) => AutoReplies {
                follow_reply: r.try_get("follow_reply")?,
                message_reply: r.try_get("message_reply")?,
                keyword_replies: serde_json::from_str(&r.try_get::<String, _>("keyword_replies")?)
                    .unwrap_or_default(),
            },
            None => AutoReplies::default(),
        })
    }

    async fn set_auto_replies(&self, mid: u64, a: &AutoReplies) -> Result<()> {
        let keywords = serde_json::to_string(&a.keyword_replies).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO auto_replies (mid, follow_reply, message_reply, keyword_replies) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mid) DO UPDATE SET follow_reply = excluded.follow_reply, \
             message_reply = excluded.message_reply, keyword_replies = excluded.keyword_replies",
        )
        .bind(i(mid))
        .bind(&a.follow_reply)
        .bind(&a.message_reply)
        .bind(keywords)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn claim_daily_reply(&self, owner: u64, counterpart: u64, day: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO auto_reply_log (owner, counterpart, day) VALUES ($1, $2, $3) \
             ON CONFLICT (owner, counterpart, day) DO NOTHING",
        )
        .bind(i(owner))
        .bind(i(counterpart))
        .bind(day)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn set_intercept(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
        intercept: bool,
    ) -> Result<bool> {
        let sql = if intercept {
            "UPDATE sessions SET is_intercept = 1, is_trust = 0 WHERE owner = $1 AND session_type = $2 AND talker_id = $3"
        } else {
            "UPDATE sessions SET is_intercept = 0, is_trust = 1 WHERE owner = $1 AND session_type = $2 AND talker_id = $3"
        };
        let r = sqlx::query(sql)
            .bind(i(owner))
            .bind(i64::from(session_type))
            .bind(i(talker_id))
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn intercepted_talkers(&self, owner: u64) -> Result<Vec<u64>> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT talker_id FROM sessions WHERE owner = $1 AND session_type = 1 AND is_intercept = 1",
        )
        .bind(i(owner))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(u).collect())
    }

    async fn create_group(
        &self,
        owner: u64,
        name: &str,
        cover: &str,
        group_type: u8,
        now_us: i64,
    ) -> Result<Group> {
        for _attempt in 0..5 {
            let mut tx = self.write.begin().await?;
            let next: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(group_id), 100000) + 1 FROM groups")
                    .fetch_one(&mut *tx)
                    .await?;
            let conv_id: i64 = sqlx::query_scalar(
                "INSERT INTO conversations (kind, group_id, max_seqno, last_ts_us) VALUES (2, $1, 0, $2) RETURNING id",
            )
            .bind(next)
            .bind(now_us)
            .fetch_one(&mut *tx)
            .await?;
            let r = sqlx::query(
                "INSERT INTO groups (group_id, conv_id, owner, name, cover, group_type, state, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
            )
            .bind(next)
            .bind(conv_id)
            .bind(i(owner))
            .bind(name)
            .bind(cover)
            .bind(i64::from(group_type))
            .bind(now_us / 1000)
            .execute(&mut *tx)
            .await;
            match r {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            self.add_member(u(next), owner, now_us).await?;
            return Ok(Group {
                group_id: u(next),
                conv_id,
                owner,
                name: name.to_string(),
                cover: cover.to_string(),
                group_type,
                state: 0,
                max_seqno: 0,
            });
        }
        Err(StoreError::Conflict)
    }

    async fn group(&self, group_id: u64) -> Result<Option<Group>> {
        let row = sqlx::query(
            "SELECT g.group_id, g.conv_id, g.owner, g.name, g.cover, g.group_type, g.state, c.max_seqno \
             FROM groups g JOIN conversations c ON c.id = g.conv_id WHERE g.group_id = $1",
        )
        .bind(i(group_id))
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some(r) => Some(Group {
                group_id: u(r.try_get("group_id")?),
                conv_id: r.try_get("conv_id")?,
                owner: u(r.try_get("owner")?),
                name: r.try_get("name")?,
                cover: r.try_get("cover")?,
                group_type: r.try_get::<i64, _>("group_type")? as u8,
                state: r.try_get::<i64, _>("state")? as u8,
                max_seqno: u(r.try_get("max_seqno")?),
            }),
            None => None,
        })
    }

    async fn set_group_state(&self, group_id: u64, state: u8) -> Result<()> {
        // States only move forwards (normal → frozen → dissolved): of two concurrent changes to
        // the same state one wins, the other gets `Conflict`.
        let r = sqlx::query("UPDATE groups SET state = $1 WHERE group_id = $2 AND state < $1")
            .bind(i64::from(state))
            .bind(i(group_id))
            .execute(&self.write)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn member(&self, group_id: u64, mid: u64) -> Result<Option<Member>> {
        let row = sqlx::query(
            "SELECT joined_us, left_seqno FROM group_members WHERE group_id = $1 AND mid = $2",
        )
        .bind(i(group_id))
        .bind(i(mid))
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some(r) => Some(Member {
                joined_us: r.try_get("joined_us")?,
                left_seqno: u(r.try_get("left_seqno")?),
            }),
            None => None,
        })
    }

    async fn add_member(&self, group_id: u64, mid: u64, now_us: i64) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let conv_id: i64 = sqlx::query_scalar("SELECT conv_id FROM groups WHERE group_id = $1")
            .bind(i(group_id))
            .fetch_one(&mut *tx)
            .await?;
        let max: i64 = sqlx::query_scalar(&format!(
            "SELECT max_seqno FROM conversations WHERE id = $1{}",
            self.lock_suffix()
        ))
        .bind(conv_id)
        .fetch_one(&mut *tx)
        .await?;
        // Under the conversation's lock: a current member can't be added twice.
        let left: Option<i64> = sqlx::query_scalar(
            "SELECT left_seqno FROM group_members WHERE group_id = $1 AND mid = $2",
        )
        .bind(i(group_id))
        .bind(i(mid))
        .fetch_optional(&mut *tx)
        .await?;
        if left == Some(0) {
            tx.rollback().await?;
            return Err(StoreError::Conflict);
        }
        sqlx::query(
            "INSERT INTO group_members (group_id, mid, joined_us, left_seqno, left_us) VALUES ($1, $2, $3, 0, 0) \
             ON CONFLICT (group_id, mid) DO UPDATE SET joined_us = excluded.joined_us, left_seqno = 0, left_us = 0",
        )
        .bind(i(group_id))
        .bind(i(mid))
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sessions (owner, session_type, talker_id, conv_id, ack_seqno, ack_ts) VALUES ($1, 2, $2, $3, $4, $5) \
             ON CONFLICT (owner, session_type, talker_id) DO UPDATE SET conv_id = excluded.conv_id, \
             ack_seqno = CASE WHEN sessions.ack_seqno > excluded.ack_seqno THEN sessions.ack_seqno ELSE excluded.ack_seqno END, \
             removed = 0",
        )
        .bind(i(mid))
        .bind(i(group_id))
        .bind(conv_id)
        .bind(max)
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn end_membership(
        &self,
        group_id: u64,
        mid: u64,
        left_seqno: u64,
        now_us: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE group_members SET left_seqno = $1, left_us = $2 WHERE group_id = $3 AND mid = $4")
            .bind(i(left_seqno))
            .bind(now_us)
            .bind(i(group_id))
            .bind(i(mid))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn member_count(&self, group_id: u64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM group_members WHERE group_id = $1 AND left_seqno = 0",
        )
        .bind(i(group_id))
        .fetch_one(&self.read)
        .await?;
        Ok(u(n))
    }

    async fn group_sessions(&self, owner: u64, q: &GroupQuery) -> Result<Vec<SessionRow>> {
        // A member's view ends at the message they left with; until then it is the group's.
        const VIEW_MAX: &str =
            "(CASE WHEN gm.left_seqno > 0 THEN gm.left_seqno ELSE c.max_seqno END)";
        const VIEW_TS: &str = "(CASE WHEN gm.left_seqno > 0 THEN gm.left_us ELSE c.last_ts_us END)";
        let mut sql = format!(
            "SELECT s.owner, s.session_type, s.talker_id, s.conv_id, s.ack_seqno, s.ack_ts, \
             {VIEW_TS} AS session_ts, s.last_seqno, s.top_ts, s.is_dnd, s.push_setting, s.removed, \
             {VIEW_MAX} AS max_seqno, g.name AS g_name, g.cover AS g_cover, g.group_type AS g_type, \
             g.state AS g_state, gm.joined_us, gm.left_seqno, \
             COALESCE((SELECT MAX(x.seqno) FROM group_mentions x WHERE x.group_id = g.group_id \
               AND x.mid = s.owner AND x.seqno > s.ack_seqno AND x.seqno <= {VIEW_MAX}), 0) AS at_seqno, \
             {MSG_COLS} \
             FROM sessions s JOIN groups g ON g.group_id = s.talker_id \
             JOIN conversations c ON c.id = g.conv_id \
             JOIN group_members gm ON gm.group_id = g.group_id AND gm.mid = s.owner \
             LEFT JOIN messages m ON m.conv_id = c.id AND m.seqno = {VIEW_MAX} \
             WHERE s.owner = $1 AND s.session_type = 2"
        );
        let mut n = 1;
        if !q.include_removed {
            sql.push_str(&format!(
                " AND (s.removed = 0 OR {VIEW_MAX} > s.last_seqno)"
            ));
        }
        if q.group_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND s.talker_id = ${n}"));
        }
        if q.after.is_some() {
            n += 1;
            sql.push_str(&format!(" AND {VIEW_TS} > ${n}"));
        }
        if q.before.is_some() {
            n += 1;
            sql.push_str(&format!(" AND {VIEW_TS} < ${n}"));
        }
        let mut query = sqlx::query(&sql).bind(i(owner));
        if let Some(g) = q.group_id {
            query = query.bind(i(g));
        }
        if let Some(a) = q.after {
            query = query.bind(a);
        }
        if let Some(b) = q.before {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                let max = u(r.try_get("max_seqno")?);
                let ack = u(r.try_get("ack_seqno")?);
                Ok(SessionRow {
                    owner: u(r.try_get("owner")?),
                    session_type: 2,
                    talker_id: u(r.try_get("talker_id")?),
                    conv_id: r.try_get("conv_id")?,
                    ack_seqno: ack,
                    ack_ts: r.try_get("ack_ts")?,
                    session_ts: r.try_get("session_ts")?,
                    last_seqno: max,
                    unread_count: max.saturating_sub(ack),
                    top_ts: r.try_get("top_ts")?,
                    is_dnd: r.try_get::<i64, _>("is_dnd")? != 0,
                    push_setting: r.try_get::<i64, _>("push_setting")? as u8,
                    removed: r.try_get::<i64, _>("removed")? != 0,
                    is_intercept: false,
                    is_trust: false,
                    max_seqno: max,
                    follows: false,
                    talker_system_type: 0,
                    last_msg: decode_message(r)?.map(|m| m.msg),
                    manual_sent: 0,
                    biz_unread: 0,
                    official_unread: 0,
                    group: Some(GroupView {
                        name: r.try_get("g_name")?,
                        cover: r.try_get("g_cover")?,
                        group_type: r.try_get::<i64, _>("g_type")? as u8,
                        state: r.try_get::<i64, _>("g_state")? as u8,
                        joined_us: r.try_get("joined_us")?,
                        left_seqno: u(r.try_get("left_seqno")?),
                        at_seqno: u(r.try_get("at_seqno")?),
                    }),
                })
            })
            .collect()
    }

    fn rows_written(&self) -> u64 {
        self.writer
            .rows_written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn seed_users(&self, mids: &[u64], now_ms: i64) -> Result<()> {
        for chunk in mids.chunks(500) {
            let mut sql = String::from("INSERT INTO users (mid, name, created_ms) VALUES ");
            for (k, _) in chunk.iter().enumerate() {
                if k > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${}, ${})", 3 * k + 1, 3 * k + 2, 3 * k + 3));
            }
            sql.push_str(" ON CONFLICT (mid) DO NOTHING");
            let mut q = sqlx::query(&sql);
            for m in chunk {
                q = q.bind(i(*m)).bind(format!("u{m}")).bind(now_ms);
            }
            q.execute(&self.write).await?;
        }
        Ok(())
    }

    async fn seed_conversation(
        &self,
        a: u64,
        b: u64,
        count: u64,
        first_us: i64,
        key_of: &(dyn Fn() -> u64 + Send + Sync),
    ) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let last_us = first_us + (count as i64 - 1) * 1000;
        let mut tx = self.write.begin().await?;
        let conv_id: i64 = sqlx::query_scalar(
            "INSERT INTO conversations (kind, pair_key, user_lo, user_hi, max_seqno, last_ts_us) \
             VALUES (1, $1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(format!("{lo}:{hi}"))
        .bind(i(lo))
        .bind(i(hi))
        .bind(i(count))
        .bind(last_us)
        .fetch_one(&mut *tx)
        .await?;
        const COLS: usize = 7;
        let mut seq = 1u64;
        while seq <= count {
            let n = (count - seq + 1).min(500);
            let mut sql = String::from(
                "INSERT INTO messages (conv_id, seqno, msg_key, sender_uid, receiver_type, receiver_id, \
                 msg_type, content, ts, msg_source) VALUES ",
            );
            for k in 0..n as usize {
                if k > 0 {
                    sql.push_str(", ");
                }
                let p = COLS * k;
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, 1, ${}, 1, ${}, ${}, 7)",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7
                ));
            }
            let mut q = sqlx::query(&sql);
            for s in seq..seq + n {
                let (from, to) = if s % 2 == 1 { (a, b) } else { (b, a) };
                let ts_us = first_us + (s as i64 - 1) * 1000;
                q = q
                    .bind(conv_id)
                    .bind(i(s))
                    .bind(i(key_of()))
                    .bind(i(from))
                    .bind(i(to))
                    .bind(format!("{{\"content\":\"seed message {s}\"}}"))
                    .bind(ts_us / 1_000_000);
            }
            q.execute(&mut *tx).await?;
            seq += n;
        }
        for (owner, talker) in [(a, b), (b, a)] {
            sqlx::query(
                "INSERT INTO sessions (owner, session_type, talker_id, conv_id, ack_seqno, ack_ts, session_ts, last_seqno, manual_sent) \
                 VALUES ($1, 1, $2, $3, $4, $5, $5, $4, 1)",
            )
            .bind(i(owner))
            .bind(i(talker))
            .bind(conv_id)
            .bind(i(count))
            .bind(last_us)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn analyze(&self) -> Result<()> {
        let sql = match self.backend {
            Backend::Postgres => "ANALYZE",
            Backend::Sqlite => "PRAGMA optimize",
        };
        sqlx::query(sql).execute(&self.write).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}
