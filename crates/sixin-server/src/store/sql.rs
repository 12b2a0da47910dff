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
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

use super::exec::{all_unprepared, args, now_or_never, Arg, Decode, Exec, Get, Native, Readers};
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
    /// SQLite only: the group-commit writer, the gate it shares with sqlx's write pool, and
    /// the inline readers.
    writer: Option<Writer>,
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
    readers: Option<Readers>,
    rows_written: Arc<std::sync::atomic::AtomicU64>,
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
    /// A send to a person: its reads and checks run inside the batch, on the state the
    /// batch's earlier jobs left.
    Person {
        sender: u64,
        receiver: u64,
        reads: Box<SendReads>,
        check: SendCheck,
        key_of: KeyFn,
        reply: tokio::sync::oneshot::Sender<Result<PersonSend>>,
    },
}

/// Group commit for SQLite's single writer: a thread owns the writer's own SQLite connection
/// and takes every queued write into one transaction, each write in its own savepoint (so one
/// write's failure undoes only that write). Whatever queues while a batch commits goes into the
/// next one. Every caller is answered only after the commit, so an acknowledged send is as
/// durable as a transaction of its own, at a fraction of the commits.
struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Dropped with the store, which stops the checkpointer.
    _stop: std::sync::mpsc::Sender<()>,
}

/// The page size of a new SQLite database. A send changes a few bytes in each of about seven
/// pages (its message, its conversation, both sessions and their index entries), and every
/// changed page is written whole to the log, checksummed, and copied again into the database
/// file by the checkpointer; reads after another connection's commit read whole pages back.
/// Half of SQLite's default of 4096 halves those bytes and costs a send or a page of sessions
/// 5–15% less CPU (docs/benchmarks.md); a message row still fits in a page up to about 490
/// bytes (longer ones continue on an overflow page).
pub(crate) const SQLITE_PAGE_SIZE: u32 = 2048;

/// How often the checkpointer copies the write-ahead log into the database file. A checkpoint
/// copies each page once, its newest frame, however often it was written since the last one:
/// the pages every send to a person changes on the sender's side (their session row, its list
/// entries, the conversation's row) repeat within half a second of sends and are copied once
/// instead of once per group commit. Against 50 ms (with a restart every 16,000 frames), six
/// alternating rounds of sends on 10 million messages: 10,106 sends/s on average against
/// 7,684, p99 13–22 ms against 24–34 (docs/benchmarks.md).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

const MAX_BATCH: usize = 512;

/// The writer checkpoints itself only if the log grew this long all the same (a stalled
/// checkpointer): ten times [`RESTART_FRAMES`].
const WRITER_CHECKPOINT_FRAMES: i64 = 640_000;

/// Log length (frames) from which the checkpointer makes the log start over: about a second
/// of sends at 10,000 a second, 130 MB of log with 2048-byte pages.
const RESTART_FRAMES: i64 = 64_000;

impl Writer {
    /// Starts the writer thread; it stops once the store (the last sender) is gone.
    fn spawn(
        mut conn: Native,
        checkpointer: Native,
        db_file: std::fs::File,
        gate: Arc<tokio::sync::Mutex<()>>,
        rows_written: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Writer> {
        // Checkpoints copy pages beside the writer instead of inside its commits.
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let ckpt_gate = gate.clone();
        std::thread::Builder::new()
            .name("sixin-checkpoint".into())
            .spawn(move || run_checkpointer(checkpointer, db_file, ckpt_gate, stopped))
            .map_err(|e| StoreError::Other(format!("starting the checkpointer: {e}")))?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sixin-writer".into())
            .spawn(move || {
                raise_writer_priority();
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    // The process's other writes (sqlx's write pool) wait meanwhile.
                    let _gate = gate.blocking_lock();
                    // A panic inside a batch must not take the writer down with it: its
                    // callers lose their answers (an error for each), the transaction is
                    // undone, and the next batch starts afresh.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_batch(&mut conn, batch, &rows_written)
                    }));
                    if ran.is_err() {
                        tracing::error!("a group commit panicked; its writes were undone");
                        let _ = conn.batch("ROLLBACK");
                    }
                }
            })
            .map_err(|e| StoreError::Other(format!("starting the writer thread: {e}")))?;
        Ok(Writer { jobs, _stop: stop })
    }

    /// Queues the job `make` builds around a reply channel, and answers what the channel
    /// answers once the batch holding the job has committed.
    async fn call<T>(
        &self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<Result<T>>) -> Job,
    ) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A send error means the thread is gone: dropping the job drops its reply, which
        // reads as "the writer stopped".
        let _ = self.jobs.send(make(reply));
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Other("the writer stopped".into())))
    }
}

/// The nice value the writer thread asks for (Linux; the process's other threads keep theirs).
///
/// Every send waits for the writer's commit, so while the writer is off its core, every send
/// in flight waits. At the normal priority the scheduler often hands its core to a request
/// thread it has just woken (an answer of the batch) or to the load's own threads; at -10 it
/// keeps the core until its batch is done. On 10 million messages: the cores idle 10–12% of
/// a send round instead of 14–16%, and about 5% more sends against the host's speed over
/// seven alternating pairs of rounds (13% in three with the old binary reniced from outside;
/// docs/benchmarks.md).
const WRITER_NICE: i32 = -10;

/// Sets the calling thread's nice value (Linux, where a `PRIO_PROCESS` priority given a thread
/// id is that thread's own). Lowering it below the process's needs `CAP_SYS_NICE` or an
/// `RLIMIT_NICE` that allows it.
#[cfg(target_os = "linux")]
fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if set == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Asks for [`WRITER_NICE`] for the calling thread; without the right to it the writer runs
/// at the process's priority, which is only slower.
fn raise_writer_priority() {
    #[cfg(target_os = "linux")]
    match set_thread_nice(WRITER_NICE) {
        Ok(()) => tracing::debug!(
            nice = WRITER_NICE,
            "the writer thread runs at a raised priority"
        ),
        Err(error) => tracing::info!(
            %error,
            "the writer thread runs at the process's priority (raising it needs CAP_SYS_NICE)"
        ),
    }
}

/// New log frames per catch-up round (written while the checkpointer synced) under which it
/// holds the writer for the last copy.
const CATCH_UP_FRAMES: u64 = 1000;

/// The checkpointer thread: every [`CHECKPOINT_EVERY`] it copies the write-ahead log into the
/// database file as far as readers allow, without holding up the writer.
///
/// The log starts over (instead of growing) only when a batch begins with the log wholly in
/// the database file, durably. The writer keeps appending, so once the log is long the
/// checkpointer first makes what it copied durable (`fdatasync` of the database file, the slow
/// part) and copies again while the writer goes on, until little is left; then it holds the
/// writer between two batches for the last copy, whose sync now finds only those few pages.
/// A checkpoint by the writer itself would copy and sync everything since the last complete
/// one inside a commit: tens of milliseconds during which every send waits.
fn run_checkpointer(
    mut ckpt: Native,
    db_file: std::fs::File,
    gate: Arc<tokio::sync::Mutex<()>>,
    stopped: std::sync::mpsc::Receiver<()>,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(CHECKPOINT_EVERY)
    {
        if let Err(e) = checkpoint_round(&mut ckpt, &db_file, &gate) {
            tracing::warn!(error = %e, "checkpoint failed");
        }
    }
    let _ = ckpt.checkpoint();
}

/// One turn of the checkpointer (see [`run_checkpointer`]).
fn checkpoint_round(
    ckpt: &mut Native,
    db_file: &std::fs::File,
    gate: &tokio::sync::Mutex<()>,
) -> Result<()> {
    let (mut log, _) = ckpt.checkpoint()?;
    if log < RESTART_FRAMES {
        return Ok(());
    }
    let sync = || {
        db_file
            .sync_data()
            .map_err(|e| StoreError::Other(format!("syncing the database file: {e}")))
    };
    // Each round makes durable what was copied, then copies what came meanwhile: fewer new
    // frames each time, as the disk syncs faster than the writer dirties pages.
    for _ in 0..6 {
        sync()?;
        let (now, _) = ckpt.checkpoint()?;
        if now.abs_diff(std::mem::replace(&mut log, now)) < CATCH_UP_FRAMES {
            break;
        }
    }
    sync()?;
    let _writer_held = gate.blocking_lock();
    ckpt.checkpoint()?;
    Ok(())
}

/// A connection of sqlx's write pool, held with the write gate (SQLite): no group commit runs
/// while it is in use.
struct WriteConn {
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    /// SQLite: transactions begin with `BEGIN IMMEDIATE`.
    immediate: bool,
}

impl WriteConn {
    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`, waiting up to the busy timeout if another connection holds it): a deferred
    /// transaction that read first and then writes is refused at once with "database is
    /// locked" whenever another connection holds the lock at that moment, or committed since
    /// the transaction's first read (another process on the same file).
    async fn begin(&mut self) -> Result<sqlx::Transaction<'_, sqlx::Any>> {
        Ok(if self.immediate {
            sqlx::Connection::begin_with(&mut *self.conn, "BEGIN IMMEDIATE").await?
        } else {
            sqlx::Connection::begin(&mut *self.conn).await?
        })
    }
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.conn
    }
}

impl Job {
    fn fail(self, e: &StoreError) {
        let e = StoreError::Other(format!("group commit failed: {e}"));
        match self {
            Job::Insert { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Job::Hit { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Job::Person { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// One insert job inside the batch's transaction. The outer error ends the whole batch: it is
/// what an insert that failed without a savepoint to return to gives.
fn run_insert(
    conn: &mut Native,
    tally: &mut Tally,
    peer: Peer,
    insert: &Insert,
    key_of: &(dyn Fn() -> u64 + Send + Sync),
) -> Result<Result<(Vec<StoredMessage>, u64)>> {
    let (r, intact) = now_or_never(hits_then_insert(conn, tally, peer, insert, key_of))?;
    match r {
        Err(e) if !intact => Err(e),
        r => Ok(r),
    }
}

/// Whether an insert can be refused after it started writing (a recall whose message was
/// recalled meanwhile, the one-message rule, a group frozen meanwhile): only those pay for a
/// savepoint. Any other failure is unexpected and undoes the whole transaction.
fn may_be_refused(insert: &Insert) -> bool {
    insert.recall_target.is_some()
        || insert.max_manual_sent.is_some()
        || insert.member_of_open_group.is_some()
}

/// Counts `insert.hits` (kept even when one stops the insert with `Limited`), then inserts;
/// an insert that may be refused runs under a savepoint and is undone alone. Answers the
/// result and whether the transaction can still commit.
async fn hits_then_insert<E: Exec>(
    tx: &mut E,
    tally: &mut Tally,
    peer: Peer,
    insert: &Insert,
    key_of: &(dyn Fn() -> u64 + Send + Sync),
) -> (Result<(Vec<StoredMessage>, u64)>, bool) {
    for (k, hit) in insert.hits.iter().enumerate() {
        match tally.hit(tx, &hit.key, hit.win).await {
            Ok(n) if n > hit.limit => return (Err(StoreError::Limited(k)), true),
            Ok(_) => {}
            Err(e) => return (Err(e), false),
        }
    }
    if !may_be_refused(insert) {
        let r = insert_in(tx, peer, insert, key_of).await;
        let intact = r.is_ok();
        return (r, intact);
    }
    if let Err(e) = tx.exec("SAVEPOINT ins", &[]).await {
        return (Err(e), false);
    }
    let r = insert_in(tx, peer, insert, key_of).await;
    let closed = match &r {
        Ok(_) => tx.exec("RELEASE ins", &[]).await,
        Err(_) => match tx.exec("ROLLBACK TO ins", &[]).await {
            Ok(_) => tx.exec("RELEASE ins", &[]).await,
            Err(e) => Err(e),
        },
    };
    (r, closed.is_ok())
}

/// What a send's checks made of what it read.
enum Checked {
    /// The insert to make.
    Passed(SendReads, Insert),
    /// The answer that refuses it.
    Refused(PersonSend),
}

/// Runs a send's checks on what it read.
fn run_check(reads: SendReads, check: SendCheck) -> Checked {
    match check(&reads) {
        Ok(insert) => Checked::Passed(reads, insert),
        Err(refused) => Checked::Refused(PersonSend {
            reads,
            stored: Err(refused),
            intercepted: false,
        }),
    }
}

/// A send to a person whose checks the pair's sessions may decide ([`pair_may_decide`]),
/// inside the batch's transaction: those sessions read again, the checks, then the insert.
/// The outer error ends the whole batch (see [`run_insert`]).
fn run_person(
    conn: &mut Native,
    tally: &mut Tally,
    (sender, receiver): (u64, u64),
    mut reads: SendReads,
    check: SendCheck,
    key_of: &(dyn Fn() -> u64 + Send + Sync),
) -> Result<Result<(PersonSend, u64)>> {
    // A read writes nothing: one that fails leaves the transaction as it was.
    if let Err(e) =
        now_or_never(pair_sessions_in(conn, sender, receiver, &mut reads.pair)).and_then(|r| r)
    {
        return Ok(Err(e));
    }
    let (reads, insert) = match run_check(reads, check) {
        Checked::Passed(reads, insert) => (reads, insert),
        Checked::Refused(refused) => return Ok(Ok((refused, 0))),
    };
    let peer = Peer::Pair {
        a: sender,
        b: receiver,
    };
    Ok(run_insert(conn, tally, peer, &insert, key_of)?
        .map(|(stored, written)| (PersonSend::stored(reads, &insert, stored), written)))
}

/// One group commit on the writer's connection; answers every job.
fn run_batch(conn: &mut Native, jobs: Vec<Job>, rows_written: &std::sync::atomic::AtomicU64) {
    // What each job did inside the transaction, in job order, with its reply.
    enum Done {
        Insert(
            Result<(Vec<StoredMessage>, u64)>,
            tokio::sync::oneshot::Sender<Result<Vec<StoredMessage>>>,
        ),
        Hit(Result<u64>, tokio::sync::oneshot::Sender<Result<u64>>),
        Person(
            Box<Result<(PersonSend, u64)>>,
            tokio::sync::oneshot::Sender<Result<PersonSend>>,
        ),
    }
    let mut done: Vec<Done> = Vec::with_capacity(jobs.len());
    let mut tally = Tally::default();
    let mut jobs = jobs.into_iter();
    let outcome: Result<()> = (|| {
        // IMMEDIATE: take the write lock now (waiting for another process's writer if need
        // be), so no statement of the batch can fail on a snapshot another writer outdated.
        conn.batch("BEGIN IMMEDIATE")?;
        for job in jobs.by_ref() {
            match job {
                Job::Insert {
                    peer,
                    insert,
                    key_of,
                    reply,
                } => {
                    // The reply waits in `done` until the batch's outcome is known, whatever
                    // that is.
                    let r = run_insert(conn, &mut tally, peer, &insert, &*key_of);
                    let failed = r.as_ref().err().map(|e| StoreError::Other(e.to_string()));
                    done.push(Done::Insert(r.unwrap_or_else(Err), reply));
                    if let Some(e) = failed {
                        return Err(e);
                    }
                }
                Job::Hit { key, win, reply } => {
                    conn.batch("SAVEPOINT job")?;
                    let r = now_or_never(tally.hit(conn, &key, win)).and_then(|r| r);
                    if r.is_err() {
                        conn.batch("ROLLBACK TO job")?;
                    }
                    conn.batch("RELEASE job")?;
                    done.push(Done::Hit(r, reply));
                }
                Job::Person {
                    sender,
                    receiver,
                    reads,
                    check,
                    key_of,
                    reply,
                } => {
                    let r = run_person(
                        conn,
                        &mut tally,
                        (sender, receiver),
                        *reads,
                        check,
                        &*key_of,
                    );
                    let failed = r.as_ref().err().map(|e| StoreError::Other(e.to_string()));
                    done.push(Done::Person(Box::new(r.unwrap_or_else(Err)), reply));
                    if let Some(e) = failed {
                        return Err(e);
                    }
                }
            }
        }
        now_or_never(tally.write(conn)).and_then(|r| r)?;
        conn.batch("COMMIT")
    })();
    if outcome.is_err() {
        // Undo whatever part of the batch ran; an error here means no transaction was open.
        let _ = conn.batch("ROLLBACK");
    }
    let written = |n: u64| {
        rows_written.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    for d in done {
        if let Err(e) = &outcome {
            let e = StoreError::Other(format!("group commit failed: {e}"));
            match d {
                Done::Insert(_, reply) => {
                    let _ = reply.send(Err(e));
                }
                Done::Hit(_, reply) => {
                    let _ = reply.send(Err(e));
                }
                Done::Person(_, reply) => {
                    let _ = reply.send(Err(e));
                }
            }
            continue;
        }
        match d {
            Done::Insert(r, reply) => {
                let _ = reply.send(r.map(|(stored, n)| {
                    written(n);
                    stored
                }));
            }
            Done::Hit(r, reply) => {
                let _ = reply.send(r);
            }
            Done::Person(r, reply) => {
                let _ = reply.send((*r).map(|(sent, n)| {
                    written(n);
                    sent
                }));
            }
        }
    }
    // Jobs the batch never reached (it failed before them).
    let e = outcome
        .err()
        .unwrap_or_else(|| StoreError::Other("write not run".into()));
    for job in jobs {
        job.fail(&e);
    }
}

/// The rate counters one write transaction has counted so far. A group commit's sends mostly
/// count the same few counters (a sender's per-second and per-day ones), and the transaction
/// holds the write lock throughout: a counter's first hit in the batch is counted in its row, which answers
/// its value; the later ones are counted here, and the row is written once, before the commit
/// ([`Tally::write`]). A hit is never undone inside a batch (see [`hits_then_insert`]) unless
/// the whole batch is, and the tally with it.
#[derive(Default)]
struct Tally {
    /// Counter key → (window, count in that window, whether the row is behind).
    counts: std::collections::HashMap<String, (i64, u64, bool)>,
}

impl Tally {
    async fn hit<E: Exec>(&mut self, conn: &mut E, key: &str, win: i64) -> Result<u64> {
        if let Some((w, count, behind)) = self.counts.get_mut(key) {
            if *w == win {
                *count += 1;
                *behind = true;
                return Ok(*count);
            }
            // A new window: the row starts it over, and is written now.
        }
        let count = count_hit_in(conn, key, win).await?;
        self.counts.insert(key.to_string(), (win, count, false));
        Ok(count)
    }

    /// Writes the counters whose rows are behind the tally.
    async fn write<E: Exec>(&mut self, conn: &mut E) -> Result<()> {
        for (key, (win, count, behind)) in &self.counts {
            if *behind {
                conn.exec(
                    "UPDATE rate_counters SET win = $1, count = $2 WHERE key = $3",
                    &args![*win, i(*count), key.as_str()],
                )
                .await?;
            }
        }
        Ok(())
    }
}

async fn count_hit_in<E: Exec>(conn: &mut E, key: &str, win: i64) -> Result<u64> {
    conn.one(
        "INSERT INTO rate_counters (key, win, count) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
         count = CASE WHEN rate_counters.win = excluded.win THEN rate_counters.count + 1 ELSE 1 END, \
         win = excluded.win RETURNING count",
        &args![key, win],
        |r| r.u64("count"),
    )
    .await
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
                // Only a new file takes it: an existing database keeps the page size it has.
                .page_size(SQLITE_PAGE_SIZE)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(10));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            pool.close().await;
        }
        if path == ":memory:" {
            return Err(StoreError::Other(
                "an in-memory SQLite database is not supported: give a file path".into(),
            ));
        }
        let any_url = format!("sqlite://{path}");
        let opts = AnyConnectOptions::from_str(&any_url)?;
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |conn, _meta| sqlite_pragmas(conn, sync))
            .connect_with(opts.clone())
            .await?;
        let read = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| sqlite_pragmas(conn, sync))
            .connect_with(opts)
            .await?;
        // The writer keeps its own page cache (nothing else writes, so it stays valid) and
        // savepoint journals in memory. 64 MB holds the pages a busy writer keeps coming back
        // to (the newest messages of active conversations, their sessions and index entries):
        // on 10 million messages it reads 6,300 pages a second from the file instead of 15,000
        // with 16 MB. Checkpoints are the checkpointer thread's (see run_checkpointer); the
        // writer's own is a backstop.
        // Its log frames reach the file in one write per 124 KB of a commit, and its cache
        // never spills before a commit (store/walvfs.rs).
        let native = Native::open_gathering(
            path,
            &format!(
                "PRAGMA synchronous = {sync}; PRAGMA cache_size = -65536; \
                 PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_FRAMES};"
            ),
        )?;
        let checkpointer = Native::open(path, &format!("PRAGMA synchronous = {sync};"))?;
        let rows_written: Arc<std::sync::atomic::AtomicU64> = Default::default();
        tracing::info!(database = %redact_url(url), "opened SQLite (WAL, synchronous={sync})");
        let gate: Arc<tokio::sync::Mutex<()>> = Default::default();
        Ok(Arc::new(SqlStore {
            backend: Backend::Sqlite,
            writer: Some(Writer::spawn(
                native,
                checkpointer,
                // Only for fdatasync. Closing a descriptor drops the process's POSIX locks on
                // the file, so it stays open as long as the store's own connections: it is
                // closed when the checkpointer stops, with the store.
                std::fs::File::open(path)
                    .map_err(|e| StoreError::Other(format!("opening {path}: {e}")))?,
                gate.clone(),
                rows_written.clone(),
            )?),
            gate: Some(gate),
            // Every request thread may be reading at once: one idle connection kept for each.
            readers: Some(Readers::new(
                path,
                (config.max_connections as usize).max(config.worker_threads()),
            )),
            rows_written,
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
            .test_before_acquire(false)
            .connect(url)
            .await?;
        tracing::info!(database = %redact_url(url), "opened PostgreSQL");
        Ok(Arc::new(SqlStore {
            backend: Backend::Postgres,
            writer: None,
            gate: None,
            readers: None,
            rows_written: Default::default(),
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
        // Checkpoints are the checkpointer thread's, not a rare write's (see run_checkpointer).
        conn.execute(format!("PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_FRAMES}").as_str())
            .await?;
        Ok(())
    })
}

/// The columns of a message as the API shows it (`m` the message), decoded by [`decode_msg`].
macro_rules! msg_view_cols {
    () => {
        "m.seqno AS m_seqno, m.msg_key AS m_msg_key, \
         m.sender_uid AS m_sender_uid, m.receiver_type AS m_receiver_type, \
         m.receiver_id AS m_receiver_id, m.msg_type AS m_msg_type, m.content AS m_content, \
         m.ts AS m_ts, m.at_uids AS m_at_uids, m.msg_status AS m_msg_status, \
         m.sys_cancel AS m_sys_cancel, m.notify_code AS m_notify_code, \
         m.new_face_version AS m_new_face_version, m.msg_source AS m_msg_source"
    };
}
const MSG_VIEW_COLS: &str = msg_view_cols!();
/// A stored message's columns: the view and where it is kept (conversation, who may see it),
/// decoded by [`decode_message`].
const MSG_COLS: &str = concat!(
    "m.conv_id AS m_conv_id, ",
    msg_view_cols!(),
    ", m.visible_to AS m_visible_to"
);

fn decode_message(row: &dyn Get) -> Result<Option<StoredMessage>> {
    let conv_id = row.opt_i64("m_conv_id")?;
    let visible_to = row.opt_i64("m_visible_to")?.map(u);
    Ok(decode_msg(row)?.map(|msg| StoredMessage {
        conv_id: conv_id.unwrap_or_default(),
        visible_to,
        msg,
    }))
}

/// A message of [`MSG_VIEW_COLS`]; None where a join found none.
fn decode_msg(row: &dyn Get) -> Result<Option<sixin_proto::Message>> {
    // Read in MSG_VIEW_COLS order: a native row finds each column right after the previous one.
    let Some(seqno) = row.opt_i64("m_seqno")? else {
        return Ok(None);
    };
    let msg_key = row.u64("m_msg_key")?;
    let sender_uid = row.u64("m_sender_uid")?;
    let receiver_type = row.i64("m_receiver_type")? as u8;
    let receiver_id = row.u64("m_receiver_id")?;
    let msg_type = row.i64("m_msg_type")? as u32;
    let content = row.str("m_content")?;
    let timestamp = row.i64("m_ts")?;
    let at_uids = row.opt_str("m_at_uids")?;
    let msg_status = row.i64("m_msg_status")? as u32;
    let sys_cancel = row.i64("m_sys_cancel")?;
    let notify_code = row.str("m_notify_code")?;
    let new_face_version = row.i64("m_new_face_version")? as u8;
    let msg_source = row.i64("m_msg_source")? as u32;
    Ok(Some(sixin_proto::Message {
        sender_uid,
        receiver_type,
        receiver_id,
        msg_type,
        content,
        msg_seqno: u(seqno),
        timestamp,
        at_uids: at_uids.and_then(|s| serde_json::from_str(&s).ok()),
        msg_key,
        msg_status,
        sys_cancel: (msg_type == sixin_proto::content::RECALL && sys_cancel != 0).then_some(true),
        notify_code,
        new_face_version: Some(new_face_version),
        msg_source,
    }))
}

/// A member's view of a fan group (`gm` the membership, `c` the group's conversation): the
/// newest seqno and time they see; a member who left sees the group as it was then.
const GROUP_VIEW_MAX: &str =
    "(CASE WHEN gm.left_seqno > 0 THEN gm.left_seqno ELSE c.max_seqno END)";
const GROUP_VIEW_TS: &str = "(CASE WHEN gm.left_seqno > 0 THEN gm.left_us ELSE c.last_ts_us END)";

/// The built-in system accounts have fixed mids (`domain::system`), so whether a talker is one,
/// and which, is read off the talker id: no lookup in `users` for every session row.
static SYSTEM_TALKER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mids: Vec<String> = crate::domain::system::SYSTEM_ACCOUNTS
        .iter()
        .map(|a| i(a.mid).to_string())
        .collect();
    format!("s.talker_id IN ({})", mids.join(", "))
});

/// The `system_msg_type` of a user session's talker (0: not a system account), known from its
/// fixed mid without asking the database.
fn talker_system_type(session_type: u8, talker_id: u64) -> u8 {
    if session_type != 1 {
        return 0;
    }
    crate::domain::system::by_mid(talker_id).map_or(0, |a| a.system_msg_type)
}

const SESSION_SELECT: &str = "SELECT s.owner, s.session_type, s.talker_id, s.conv_id, \
    s.ack_seqno, s.ack_ts, s.session_ts, s.last_seqno, s.unread_count, s.top_ts, s.is_dnd, \
    s.push_setting, s.removed, s.is_intercept, s.is_trust, s.conv_max AS max_seqno, \
    COALESCE(r.follow, 0) AS follows, s.manual_sent, s.biz_unread, s.official_unread, ";

const SESSION_JOINS: &str = " FROM sessions s \
    LEFT JOIN relations r ON r.mid = s.owner AND r.fid = s.talker_id \
    LEFT JOIN messages m ON m.conv_id = s.conv_id AND m.seqno = s.last_seqno ";

fn decode_session(row: &dyn Get) -> Result<SessionRow> {
    let session_type = row.i64("session_type")? as u8;
    let talker_id = row.u64("talker_id")?;
    Ok(SessionRow {
        owner: row.u64("owner")?,
        session_type,
        talker_id,
        conv_id: row.opt_i64("conv_id")?,
        ack_seqno: row.u64("ack_seqno")?,
        ack_ts: row.i64("ack_ts")?,
        session_ts: row.i64("session_ts")?,
        last_seqno: row.u64("last_seqno")?,
        unread_count: row.u64("unread_count")?,
        top_ts: row.i64("top_ts")?,
        is_dnd: row.flag("is_dnd")?,
        push_setting: row.i64("push_setting")? as u8,
        removed: row.flag("removed")?,
        is_intercept: row.flag("is_intercept")?,
        is_trust: row.flag("is_trust")?,
        max_seqno: row.u64("max_seqno")?,
        follows: row.flag("follows")?,
        talker_system_type: talker_system_type(session_type, talker_id),
        manual_sent: row.u64("manual_sent")?,
        biz_unread: row.u64("biz_unread")?,
        official_unread: row.u64("official_unread")?,
        last_msg: decode_msg(row)?,
        group: None,
    })
}

fn decode_user(row: &dyn Get) -> Result<User> {
    Ok(User {
        mid: row.u64("mid")?,
        name: row.str("name")?,
        face: row.str("face")?,
        sign: row.str("sign")?,
        level: row.i64("level")? as u8,
        password_hash: row.opt_str("password_hash")?,
        system_msg_type: row.i64("system_msg_type")? as u8,
        created_ms: row.i64("created_ms")?,
        privacy: row.i64("privacy")? as u8,
        flagged: row.flag("flagged")?,
    })
}

fn decode_relation(r: &dyn Get) -> Result<Relation> {
    Ok(Relation {
        follow: r.flag("follow")?,
        special: r.flag("special")?,
        block: r.flag("block")?,
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
async fn insert_in<E: Exec>(
    tx: &mut E,
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
            tx.one(
                "INSERT INTO conversations (kind, pair_key, user_lo, user_hi, max_seqno, last_ts_us) \
                 VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (pair_key) DO UPDATE SET \
                 max_seqno = conversations.max_seqno + $4, last_ts_us = $5 RETURNING id, max_seqno",
                &args![format!("{lo}:{hi}"), i(lo), i(hi), n, now_us],
                |r| Ok((r.i64("id")?, r.i64("max_seqno")?)),
            )
            .await?
        }
        Peer::Group { conv_id, .. } => {
            let max = tx
                .one(
                    "UPDATE conversations SET max_seqno = max_seqno + $1, last_ts_us = $2 \
                     WHERE id = $3 RETURNING max_seqno",
                    &args![n, now_us, conv_id],
                    |r| r.i64("max_seqno"),
                )
                .await?;
            (conv_id, max)
        }
    };
    written += 1;
    let first_seqno = u(max - n + 1);

    if let (Some(sender), Peer::Group { group_id, .. }) = (insert.member_of_open_group, peer) {
        let open = tx
            .opt(
                "SELECT g.state FROM groups g JOIN group_members gm ON gm.group_id = g.group_id \
                 AND gm.mid = $2 AND gm.left_seqno = 0 WHERE g.group_id = $1",
                &args![i(group_id), i(sender)],
                |r| r.i64("state"),
            )
            .await?;
        if open != Some(0) {
            return Err(StoreError::Stale);
        }
    }

    if let (Some(limit), Peer::Pair { a, b }) = (insert.max_manual_sent, peer) {
        let sender = insert.messages[0].sender_uid;
        let other = if sender == a { b } else { a };
        let sent = tx
            .opt(
                "SELECT manual_sent FROM sessions WHERE owner = $1 AND session_type = 1 \
                 AND talker_id = $2",
                &args![i(sender), i(other)],
                |r| r.u64("manual_sent"),
            )
            .await?;
        if sent.unwrap_or(0) >= limit {
            return Err(StoreError::Conflict);
        }
    }

    if let Some(target) = insert.recall_target {
        let changed = tx
            .exec(
                "UPDATE messages SET msg_status = 1 WHERE msg_key = $1 AND conv_id = $2 \
                 AND msg_status = 0",
                &args![i(target), conv_id],
            )
            .await?;
        written += changed;
        if changed != 1 {
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
        let push_kind: i64 = match (m.push, m.official) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        tx.exec(
            "INSERT INTO messages (conv_id, seqno, msg_key, sender_uid, receiver_type, receiver_id, \
             msg_type, content, ts, at_uids, msg_status, sys_cancel, notify_code, new_face_version, \
             msg_source, visible_to, dev_id, push_kind) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, $11, $12, $13, $14, $15, $16)",
            &args![
                conv_id,
                i(seqno),
                i(key),
                i(m.sender_uid),
                i64::from(m.receiver_type),
                i(m.receiver_id),
                i64::from(m.msg_type),
                &m.content,
                ts,
                at_uids,
                &m.notify_code,
                i64::from(m.new_face_version),
                i64::from(m.msg_source),
                m.visible_to.map(i),
                &m.dev_id,
                push_kind,
            ],
        )
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
                written += tx
                    .exec(
                        "INSERT INTO group_mentions (group_id, mid, seqno) VALUES ($1, $2, $3) \
                         ON CONFLICT (group_id, mid, seqno) DO NOTHING",
                        &args![i(group_id), i(*mid), i(m.msg.msg_seqno)],
                    )
                    .await?;
            }
        }
        // Members' views are derived from the group's counter; only the sender's read
        // mark moves (and brings the session back if they had removed it).
        if insert.sender_reads && sender != 0 {
            let last = stored.last().map_or(0, |m| m.msg.msg_seqno);
            written += tx
                .exec(
                    "UPDATE sessions SET ack_seqno = $1, ack_ts = $2, removed = 0 \
                     WHERE owner = $3 AND session_type = 2 AND talker_id = $4 AND ack_seqno < $1",
                    &args![i(last), now_us, i(sender), i(group_id)],
                )
                .await?;
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
            // Nothing here is for this side: only the conversation's counter moved.
            written += tx
                .exec(
                    "UPDATE sessions SET conv_max = $1 \
                     WHERE owner = $2 AND session_type = 1 AND talker_id = $3",
                    &args![max, i(owner), i(talker)],
                )
                .await?;
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
        written += if reads {
            tx.exec(
                "INSERT INTO sessions (owner, session_type, talker_id, conv_id, ack_seqno, ack_ts, \
                 session_ts, last_seqno, unread_count, biz_unread, official_unread, manual_sent, conv_max) \
                 VALUES ($1, 1, $2, $3, $4, $5, $5, $4, 0, 0, 0, $6, $7) \
                 ON CONFLICT (owner, session_type, talker_id) DO UPDATE SET \
                 conv_id = excluded.conv_id, ack_seqno = excluded.ack_seqno, ack_ts = excluded.ack_ts, \
                 session_ts = excluded.session_ts, last_seqno = excluded.last_seqno, unread_count = 0, \
                 biz_unread = 0, official_unread = 0, manual_sent = sessions.manual_sent + $6, removed = 0, \
                 conv_max = excluded.conv_max",
                &args![i(owner), i(talker), conv_id, i(last), now_us, manual, max],
            )
            .await?
        } else {
            tx.exec(
                "INSERT INTO sessions (owner, session_type, talker_id, conv_id, session_ts, last_seqno, \
                 unread_count, biz_unread, official_unread, manual_sent, is_intercept, conv_max) \
                 VALUES ($1, 1, $2, $3, $5, $4, $7, $8, $9, $6, $10, $11) \
                 ON CONFLICT (owner, session_type, talker_id) DO UPDATE SET \
                 conv_id = excluded.conv_id, session_ts = excluded.session_ts, last_seqno = excluded.last_seqno, \
                 conv_max = excluded.conv_max, \
                 unread_count = sessions.unread_count + $7, biz_unread = sessions.biz_unread + $8, \
                 official_unread = sessions.official_unread + $9, manual_sent = sessions.manual_sent + $6, \
                 removed = 0, is_intercept = CASE WHEN $10 = 1 AND sessions.is_trust = 0 THEN 1 \
                 ELSE sessions.is_intercept END",
                &args![
                    i(owner),
                    i(talker),
                    conv_id,
                    i(last),
                    now_us,
                    manual,
                    unread,
                    biz,
                    official,
                    intercept,
                    max
                ],
            )
            .await?
        };
    }
    Ok((stored, written))
}

/// Statement texts by their shape, each built once: a shape is a handful of choices, so there
/// are at most a few hundred, kept for the life of the process.
struct StatementTexts(std::sync::RwLock<rustc_hash::FxHashMap<u64, &'static str>>);

impl StatementTexts {
    const fn new() -> Self {
        StatementTexts(std::sync::RwLock::new(rustc_hash::FxHashMap::with_hasher(
            rustc_hash::FxBuildHasher,
        )))
    }

    /// The text of shape `key`, built by `build` the first time.
    fn get(&self, key: u64, build: impl FnOnce() -> String) -> &'static str {
        if let Some(sql) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return sql;
        }
        let mut texts = self.0.write().unwrap_or_else(|e| e.into_inner());
        texts
            .entry(key)
            .or_insert_with(|| Box::leak(build().into_boxed_str()))
    }
}

static SESSION_LIST_TEXTS: StatementTexts = StatementTexts::new();
static MESSAGES_TEXTS: StatementTexts = StatementTexts::new();
static TALKERS_TEXTS: StatementTexts = StatementTexts::new();

/// The statement of one session list query; `args` holds `$1` (the owner) and gets the
/// query's own values, numbered after those already there.
fn session_list_sql(q: &SessionQuery, args: &mut Vec<Arg>) -> &'static str {
    let first = args.len();
    if !q.pinned {
        args.extend(q.after.map(Arg::I));
        args.extend(q.before.map(Arg::I));
    }
    args.push(Arg::I(i64::from(q.limit)));
    let kind = match q.kind {
        ListKind::Intercepted => 0,
        ListKind::Users { followed, system } => {
            let three = |v: Option<bool>| match v {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            };
            1 + three(followed) * 3 + three(system)
        }
    };
    let sort = match q.sort {
        SortBy::SessionTs => 0,
        SortBy::AckTs => 1,
    };
    let key = (first as u64) << 16
        | kind << 4
        | sort << 3
        | u64::from(q.pinned) << 2
        | u64::from(q.after.is_some()) << 1
        | u64::from(q.before.is_some());
    SESSION_LIST_TEXTS.get(key, || session_list_text(q, first))
}

/// The text of [`session_list_sql`], its own parameters numbered from `first + 1`.
fn session_list_text(q: &SessionQuery, first: usize) -> String {
    let mut sql = format!(
        "{SESSION_SELECT}{MSG_VIEW_COLS}{SESSION_JOINS} WHERE s.owner = $1 \
         AND s.session_type = 1 AND s.last_seqno > 0 AND s.removed = 0"
    );
    match q.kind {
        ListKind::Intercepted => sql.push_str(" AND s.is_intercept = 1"),
        ListKind::Users { followed, system } => {
            sql.push_str(" AND s.is_intercept = 0");
            let system_talker = &*SYSTEM_TALKER;
            match followed {
                Some(true) => sql.push_str(&format!(
                    " AND (COALESCE(r.follow, 0) = 1 OR {system_talker})"
                )),
                Some(false) => sql.push_str(&format!(
                    " AND COALESCE(r.follow, 0) = 0 AND NOT {system_talker}"
                )),
                None => {}
            }
            match system {
                Some(true) => sql.push_str(&format!(" AND {system_talker}")),
                Some(false) => sql.push_str(&format!(" AND NOT {system_talker}")),
                None => {}
            }
        }
    }
    let col = match q.sort {
        SortBy::SessionTs => "s.session_ts",
        SortBy::AckTs => "s.ack_ts",
    };
    let mut n = first;
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
    sql
}

/// The statement of [`Store::messages`] for a window of this shape (bits: a `begin`, an
/// `end`, tips only, oldest first); its parameters are the conversation, the viewer, then
/// `begin` and `end` where present, then the limit.
fn messages_sql(shape: usize) -> String {
    let (begin, end, tips_only, oldest_first) = (
        shape & 1 != 0,
        shape & 2 != 0,
        shape & 4 != 0,
        shape & 8 != 0,
    );
    let mut sql = format!(
        "SELECT {MSG_VIEW_COLS} FROM messages m WHERE m.conv_id = $1 AND m.msg_status <> 2 \
         AND (m.visible_to IS NULL OR m.visible_to = $2)"
    );
    let mut n = 2;
    if begin {
        n += 1;
        sql.push_str(&format!(" AND m.seqno > ${n}"));
    }
    if end {
        n += 1;
        sql.push_str(&format!(" AND m.seqno < ${n}"));
    }
    if tips_only {
        sql.push_str(" AND m.msg_type = 18");
    }
    n += 1;
    sql.push_str(if oldest_first {
        " ORDER BY m.seqno ASC"
    } else {
        " ORDER BY m.seqno DESC"
    });
    sql.push_str(&format!(" LIMIT ${n}"));
    sql
}

/// See [`Store::talkers_with_sessions`]: one primary-key read per talker (`$2`...), joined with
/// `UNION ALL`: no temporary table for an IN list, and on PostgreSQL no generic plan that scans
/// every session of an owner with thousands.
fn talkers_sql(n: usize) -> &'static str {
    TALKERS_TEXTS.get(n as u64, || {
        (0..n)
            .map(|k| {
                format!(
                    "SELECT talker_id FROM sessions WHERE owner = $1 AND session_type = 1 \
                     AND talker_id = ${} AND last_seqno > 0",
                    k + 2
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    })
}

fn talkers_args(owner: u64, talkers: &[u64]) -> Vec<Arg> {
    let mut args = Vec::from(args![i(owner)]);
    args.extend(talkers.iter().map(|t| Arg::I(i(*t))));
    args
}

/// See [`Store::first_sessions`], on one connection. With `one_statement` (PostgreSQL: a round
/// trip fewer) the pinned sessions and the page are one `UNION ALL`; otherwise (SQLite, inside
/// one read transaction) two statements, which spares the copy of every column a compound of
/// ordered parts makes through its subqueries.
async fn first_sessions_in<E: Exec>(
    c: &mut E,
    one_statement: bool,
    owner: u64,
    pinned: &SessionQuery,
    page: &SessionQuery,
    talkers: &[u64],
) -> Result<FirstSessions> {
    let (top, rest) = if one_statement {
        let mut args = Vec::from(args![i(owner)]);
        let sql = format!(
            "SELECT * FROM ({}) AS pinned UNION ALL SELECT * FROM ({}) AS page",
            session_list_sql(pinned, &mut args),
            session_list_sql(page, &mut args)
        );
        // A compound statement keeps no order of its own: each part is put back in its order.
        let (mut top, mut rest): (Vec<_>, Vec<_>) = c
            .all(&sql, &args, decode_session)
            .await?
            .into_iter()
            .partition(|r| r.top_ts > 0);
        top.sort_by_key(|r| std::cmp::Reverse(r.top_ts));
        page.sort.sort(&mut rest);
        (top, rest)
    } else {
        // Each statement answers in its own ORDER BY.
        let mut args = Vec::from(args![i(owner)]);
        let sql = session_list_sql(pinned, &mut args);
        let top = c.all(sql, &args, decode_session).await?;
        let mut args = Vec::from(args![i(owner)]);
        let sql = session_list_sql(page, &mut args);
        (top, c.all(sql, &args, decode_session).await?)
    };
    let talkers_present = if talkers.is_empty() {
        Vec::new()
    } else {
        c.all(
            talkers_sql(talkers.len()),
            &talkers_args(owner, talkers),
            |r| r.u64("talker_id"),
        )
        .await?
    };
    Ok(FirstSessions {
        pinned: top,
        page: rest,
        talkers_present,
    })
}

/// See [`Store::pair_state`]: four point reads in one statement (one read transaction): each
/// side's relation towards the other (kind 0), and each side's session of the pair (kind 1).
/// UNION ALL, not OR: an OR of two keys deduplicates its rows through a temporary table.
async fn pair_state_in<E: Exec>(c: &mut E, a: u64, b: u64) -> Result<PairState> {
    let rows = c
        .all(
            "SELECT 0 AS kind, mid AS who, follow, special, block, \
             0 AS manual_sent, 0 AS is_trust FROM relations WHERE mid = $1 AND fid = $2 \
             UNION ALL SELECT 0, mid, follow, special, block, 0, 0 \
             FROM relations WHERE mid = $2 AND fid = $1 \
             UNION ALL SELECT 1, owner, 0, 0, 0, manual_sent, is_trust \
             FROM sessions WHERE owner = $1 AND session_type = 1 AND talker_id = $2 \
             UNION ALL SELECT 1, owner, 0, 0, 0, manual_sent, is_trust \
             FROM sessions WHERE owner = $2 AND session_type = 1 AND talker_id = $1",
            &args![i(a), i(b)],
            |r| {
                Ok((
                    r.i64("kind")? == 0,
                    r.u64("who")?,
                    decode_relation(r)?,
                    r.u64("manual_sent")?,
                    r.flag("is_trust")?,
                ))
            },
        )
        .await?;
    let mut st = PairState::default();
    for (relation, who, rel, sent, trust) in rows {
        match (relation, who == a) {
            (true, true) => st.a_to_b = rel,
            (true, false) => st.b_to_a = rel,
            (false, true) => st.a_manual_sent = sent,
            (false, false) => {
                st.b_manual_sent = sent;
                st.b_trusts_a = trust;
            }
        }
    }
    Ok(st)
}

/// The user sessions an event stream looks at (see [`Store::sessions_moved_after`]).
const MOVED_SESSIONS: &str = "SELECT talker_id, conv_id, session_ts, conv_max FROM sessions \
    WHERE owner = $1 AND session_type = 1 AND last_seqno > 0 AND removed = 0 \
    AND is_intercept = 0 AND conv_id IS NOT NULL";

fn decode_moved(r: &dyn Get) -> Result<MovedSession> {
    Ok(MovedSession {
        talker_id: r.u64("talker_id")?,
        conv_id: r.i64("conv_id")?,
        session_ts: r.i64("session_ts")?,
        max_seqno: r.u64("conv_max")?,
    })
}

/// Whether what the pair's sessions say (`a` the sender) may decide a send's checks when read
/// again inside its write: only while the receiver neither follows the sender nor ever wrote
/// to them by hand (a count that only grows) does the one-message rule depend on them. Changes
/// of relations or trust that race a send are ordered before or after it as its reads saw them.
fn pair_may_decide(pair: &PairState) -> bool {
    !pair.b_to_a.follow && pair.b_manual_sent == 0
}

/// Reads again, into `st`, what the pair's sessions say (who wrote by hand, whether `b` trusts
/// `a`): a send's writer does, inside its transaction, so the one-message rule is decided on
/// the state its insert lands on.
async fn pair_sessions_in<E: Exec>(c: &mut E, a: u64, b: u64, st: &mut PairState) -> Result<()> {
    let rows = c
        .all(
            "SELECT owner, manual_sent, is_trust \
             FROM sessions WHERE owner = $1 AND session_type = 1 AND talker_id = $2 \
             UNION ALL SELECT owner, manual_sent, is_trust \
             FROM sessions WHERE owner = $2 AND session_type = 1 AND talker_id = $1",
            &args![i(a), i(b)],
            |r| Ok((r.u64("owner")?, r.u64("manual_sent")?, r.flag("is_trust")?)),
        )
        .await?;
    (st.a_manual_sent, st.b_manual_sent, st.b_trusts_a) = (0, 0, false);
    for (owner, sent, trust) in rows {
        if owner == a {
            st.a_manual_sent = sent;
        } else {
            st.b_manual_sent = sent;
            st.b_trusts_a = trust;
        }
    }
    Ok(())
}

/// See [`Store::send_reads`]: four statements, on one connection.
async fn send_reads_in<E: Exec>(
    c: &mut E,
    sender: u64,
    receiver: u64,
    flag: &str,
) -> Result<SendReads> {
    static USERS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {USER_COLS} FROM users WHERE mid = $1 \
             UNION ALL SELECT {USER_COLS} FROM users WHERE mid = $2"
        )
    });
    let users = c
        .all(&USERS, &args![i(receiver), i(sender)], decode_user)
        .await?;
    let pair = pair_state_in(c, sender, receiver).await?;
    let flag = c
        .opt(FLAG_BY_NAME, &args![flag], |r| r.i64("value"))
        .await?
        .unwrap_or(0);
    let receiver_replies = c
        .opt(AUTO_REPLIES_OF, &args![i(receiver)], decode_auto_replies)
        .await?
        .unwrap_or_default();
    Ok(SendReads {
        sender_flagged: users.iter().any(|u| u.mid == sender && u.flagged),
        receiver: users.into_iter().find(|u| u.mid == receiver),
        pair,
        flag,
        receiver_replies,
    })
}

/// A server flag's value (see [`Store::server_flag`]).
const FLAG_BY_NAME: &str = "SELECT value FROM server_flags WHERE name = $1";

/// A user's automatic replies, decoded by [`decode_auto_replies`].
const AUTO_REPLIES_OF: &str =
    "SELECT follow_reply, message_reply, keyword_replies FROM auto_replies WHERE mid = $1";

fn decode_auto_replies(r: &dyn Get) -> Result<AutoReplies> {
    Ok(AutoReplies {
        follow_reply: r.str("follow_reply")?,
        message_reply: r.str("message_reply")?,
        keyword_replies: serde_json::from_str(&r.str("keyword_replies")?).unwrap_or_default(),
    })
}

impl SqlStore {
    /// Counts the hits and inserts (see [`hits_then_insert`]) in `tx`, then commits it, or
    /// rolls it back when the insert failed past its savepoint.
    async fn insert_in_tx(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        peer: Peer,
        insert: &Insert,
        key_of: &(dyn Fn() -> u64 + Send + Sync),
    ) -> Result<Vec<StoredMessage>> {
        let mut tally = Tally::default();
        let (r, intact) = hits_then_insert(&mut *tx, &mut tally, peer, insert, key_of).await;
        if intact {
            tally.write(&mut *tx).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        let (stored, written) = r?;
        self.rows_written
            .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        Ok(stored)
    }

    /// Runs a read: on SQLite inline on a reader connection, on PostgreSQL through the pool.
    async fn rows<T: Send + 'static>(
        &self,
        sql: &str,
        args: impl Into<Vec<Arg>>,
        decode: Decode<T>,
    ) -> Result<Vec<T>> {
        let args: Vec<Arg> = args.into();
        match &self.readers {
            Some(r) => r.with(|c| c.query(sql, &args, decode)),
            None => {
                let mut c = self.read.acquire().await?;
                (*c).all(sql, &args, decode).await
            }
        }
    }

    /// [`Self::rows`] for statements whose text varies with their arguments (IN lists), or
    /// that PostgreSQL must plan for the values at hand.
    async fn rows_unprepared<T: Send + 'static>(
        &self,
        sql: &str,
        args: impl Into<Vec<Arg>>,
        decode: Decode<T>,
    ) -> Result<Vec<T>> {
        let args: Vec<Arg> = args.into();
        match &self.readers {
            // SQLite statements are cheap to keep: an LRU of them per connection.
            Some(r) => r.with(|c| c.query(sql, &args, decode)),
            None => {
                let mut c = self.read.acquire().await?;
                all_unprepared(&mut c, sql, &args, decode).await
            }
        }
    }

    async fn row<T: Send + 'static>(
        &self,
        sql: &str,
        args: impl Into<Vec<Arg>>,
        decode: Decode<T>,
    ) -> Result<Option<T>> {
        Ok(self.rows(sql, args, decode).await?.into_iter().next())
    }

    /// A connection for a write outside the group commit.
    async fn w(&self) -> Result<WriteConn> {
        let gate = match &self.gate {
            Some(g) => Some(g.clone().lock_owned().await),
            None => None,
        };
        Ok(WriteConn {
            _gate: gate,
            conn: self.write.acquire().await?,
            immediate: self.backend == Backend::Sqlite,
        })
    }

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
            .fetch_optional(&mut *self.w().await?)
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
            .execute(&mut *self.w().await?)
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
                    .fetch_one(&mut *self.w().await?)
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
            .execute(&mut *self.w().await?)
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
        .execute(&mut *self.w().await?)
        .await?;
        Ok(())
    }

    async fn user(&self, mid: u64) -> Result<Option<User>> {
        self.row(
            &format!("SELECT {USER_COLS} FROM users WHERE mid = $1"),
            args![i(mid)],
            decode_user,
        )
        .await
    }

    async fn users(&self, mids: &[u64]) -> Result<Vec<User>> {
        if mids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE mid IN ({})",
            placeholders(1, mids.len())
        );
        self.rows_unprepared(
            &sql,
            mids.iter().map(|m| Arg::I(i(*m))).collect::<Vec<Arg>>(),
            decode_user,
        )
        .await
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
        .execute(&mut *self.w().await?)
        .await?;
        Ok(())
    }

    async fn login(&self, sessdata_hash: &str) -> Result<Option<Login>> {
        self.row(
            "SELECT mid, bili_jct, expires_ms, revoked FROM logins WHERE sessdata_hash = $1",
            args![sessdata_hash],
            |r| {
                Ok(Login {
                    mid: r.u64("mid")?,
                    bili_jct: r.str("bili_jct")?,
                    expires_ms: r.i64("expires_ms")?,
                    revoked: r.flag("revoked")?,
                })
            },
        )
        .await
    }

    async fn revoke_logins(&self, mid: u64) -> Result<u64> {
        let r = sqlx::query("UPDATE logins SET revoked = 1 WHERE mid = $1 AND revoked = 0")
            .bind(i(mid))
            .execute(&mut *self.w().await?)
            .await?;
        Ok(r.rows_affected())
    }

    async fn revoke_login(&self, sessdata_hash: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE logins SET revoked = 1 WHERE sessdata_hash = $1 AND revoked = 0")
                .bind(sessdata_hash)
                .execute(&mut *self.w().await?)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn relation(&self, mid: u64, fid: u64) -> Result<Relation> {
        Ok(self
            .row(
                "SELECT follow, special, block FROM relations WHERE mid = $1 AND fid = $2",
                args![i(mid), i(fid)],
                decode_relation,
            )
            .await?
            .unwrap_or_default())
    }

    async fn pair_state(&self, a: u64, b: u64) -> Result<PairState> {
        match &self.readers {
            Some(r) => r.with(|c| now_or_never(pair_state_in(c, a, b))?),
            None => pair_state_in(&mut *self.read.acquire().await?, a, b).await,
        }
    }

    async fn send_reads(&self, sender: u64, receiver: u64, flag: &str) -> Result<SendReads> {
        match &self.readers {
            Some(r) => r.with(|c| {
                c.in_read_transaction(|c| now_or_never(send_reads_in(c, sender, receiver, flag))?)
            }),
            None => send_reads_in(&mut *self.read.acquire().await?, sender, receiver, flag).await,
        }
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
        .execute(&mut *self.w().await?)
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
        if let Some(writer) = &self.writer {
            return writer
                .call(|reply| Job::Insert {
                    peer,
                    insert,
                    key_of,
                    reply,
                })
                .await;
        }
        let mut w = self.w().await?;
        let tx = w.begin().await?;
        let stored = self.insert_in_tx(tx, peer, &insert, &*key_of).await?;
        Ok(stored)
    }

    async fn send_to_person(
        &self,
        sender: u64,
        receiver: u64,
        flag: &'static str,
        check: SendCheck,
        key_of: KeyFn,
    ) -> Result<PersonSend> {
        // Read beside the writer first (on SQLite, on this thread).
        let reads = self.send_reads(sender, receiver, flag).await?;
        let peer = Peer::Pair {
            a: sender,
            b: receiver,
        };
        if !pair_may_decide(&reads.pair) {
            // Nothing a write could change meanwhile decides the checks: they run here, and
            // the write only inserts.
            let (reads, insert) = match run_check(reads, check) {
                Checked::Passed(reads, insert) => (reads, insert),
                Checked::Refused(refused) => return Ok(refused),
            };
            let intercepted = insert.intercept_receiver;
            let stored = self.insert_messages(peer, insert, key_of).await?;
            return Ok(PersonSend {
                reads,
                stored: Ok(stored),
                intercepted,
            });
        }
        if let Some(writer) = &self.writer {
            // The writer reads the pair's sessions again inside its group commit.
            return writer
                .call(|reply| Job::Person {
                    sender,
                    receiver,
                    reads: Box::new(reads),
                    check,
                    key_of,
                    reply,
                })
                .await;
        }
        let mut w = self.w().await?;
        let mut tx = w.begin().await?;
        // PostgreSQL: sends between the same two people take turns from here to the commit
        // (across processes too) and read the pair's sessions again, so each one's checks see
        // the other's message: of two strangers writing each other at once, only the first is
        // under the one-message rule.
        let (lo, hi) = if sender <= receiver {
            (sender, receiver)
        } else {
            (receiver, sender)
        };
        tx.exec(
            "SELECT pg_advisory_xact_lock($1)",
            &args![i(lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi)],
        )
        .await?;
        let mut reads = reads;
        pair_sessions_in(&mut *tx, sender, receiver, &mut reads.pair).await?;
        let (reads, insert) = match run_check(reads, check) {
            Checked::Passed(reads, insert) => (reads, insert),
            Checked::Refused(refused) => {
                tx.rollback().await?;
                return Ok(refused);
            }
        };
        let stored = self.insert_in_tx(tx, peer, &insert, &*key_of).await?;
        Ok(PersonSend::stored(reads, &insert, stored))
    }

    async fn message_by_key(&self, msg_key: u64) -> Result<Option<StoredMessage>> {
        Ok(self
            .row(
                &format!("SELECT {MSG_COLS} FROM messages m WHERE m.msg_key = $1"),
                args![i(msg_key)],
                decode_message,
            )
            .await?
            .flatten())
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
        let id = self
            .row(
                "SELECT id FROM conversations WHERE pair_key = $1",
                args![format!("{lo}:{hi}")],
                |r| r.i64("id"),
            )
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
        let shape = usize::from(w.begin.is_some())
            | usize::from(w.end.is_some()) << 1
            | usize::from(w.tips_only) << 2
            | usize::from(w.oldest_first) << 3;
        let sql = MESSAGES_TEXTS.get(shape as u64, || messages_sql(shape));
        let mut args = Vec::from(args![conv_id, i(viewer)]);
        if let Some(b) = w.begin {
            args.push(Arg::I(i(b.min(i64::MAX as u64))));
        }
        if let Some(e) = w.end {
            args.push(Arg::I(i(e.min(i64::MAX as u64))));
        }
        args.push(Arg::I(i64::from(w.limit)));
        let mut out: Vec<sixin_proto::Message> = self
            .rows(sql, args, decode_msg)
            .await?
            .into_iter()
            .flatten()
            .collect();
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
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "{SESSION_SELECT}{MSG_VIEW_COLS}{SESSION_JOINS} WHERE s.owner = $1 \
                 AND s.session_type = $2 AND s.talker_id = $3"
            )
        });
        self.row(
            &SQL,
            args![i(owner), i64::from(session_type), i(talker_id)],
            decode_session,
        )
        .await
    }

    async fn sessions(&self, owner: u64, q: &SessionQuery) -> Result<Vec<SessionRow>> {
        let mut args = Vec::from(args![i(owner)]);
        let sql = session_list_sql(q, &mut args);
        self.rows(sql, args, decode_session).await
    }

    async fn first_sessions(
        &self,
        owner: u64,
        pinned: &SessionQuery,
        page: &SessionQuery,
        talkers: &[u64],
    ) -> Result<FirstSessions> {
        match &self.readers {
            Some(r) => r.with(|c| {
                c.in_read_transaction(|c| {
                    now_or_never(first_sessions_in(c, false, owner, pinned, page, talkers))?
                })
            }),
            None => {
                let mut c = self.read.acquire().await?;
                first_sessions_in(&mut *c, true, owner, pinned, page, talkers).await
            }
        }
    }

    async fn any_session_since(&self, owner: u64, since: i64) -> Result<bool> {
        // Built once: an idle poll is the hot path this answers.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM sessions WHERE owner = $1 \
                 AND session_type = 1 AND session_ts > $2) OR EXISTS (SELECT 1 FROM sessions s \
                 JOIN groups g ON g.group_id = s.talker_id JOIN conversations c ON c.id = g.conv_id \
                 JOIN group_members gm ON gm.group_id = g.group_id AND gm.mid = s.owner \
                 WHERE s.owner = $1 AND s.session_type = 2 AND {GROUP_VIEW_TS} > $2) \
                 THEN 1 ELSE 0 END AS any_new"
            )
        });
        let any = self
            .row(&SQL, args![i(owner), since], |r| r.flag("any_new"))
            .await?;
        Ok(any.unwrap_or(false))
    }

    async fn sessions_since(&self, owner: u64, since: i64, limit: u32) -> Result<Vec<SessionRow>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "{SESSION_SELECT}{MSG_VIEW_COLS}{SESSION_JOINS} WHERE s.owner = $1 \
                 AND s.session_type = 1 AND s.session_ts > $2 AND s.last_seqno > 0 \
                 AND s.removed = 0 AND s.is_intercept = 0 \
                 ORDER BY s.session_ts DESC, s.talker_id DESC LIMIT $3"
            )
        });
        self.rows(
            &SQL,
            args![i(owner), since, i64::from(limit)],
            decode_session,
        )
        .await
    }

    async fn sessions_moved_after(
        &self,
        owner: u64,
        (ts, talker): (i64, u64),
        limit: u32,
    ) -> Result<Vec<MovedSession>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "{MOVED_SESSIONS} AND (session_ts > $2 OR (session_ts = $2 AND talker_id > $3)) \
                 ORDER BY session_ts, talker_id LIMIT $4"
            )
        });
        self.rows(
            &SQL,
            args![i(owner), ts, i(talker), i64::from(limit)],
            decode_moved,
        )
        .await
    }

    async fn moved_session(&self, owner: u64, talker: u64) -> Result<Option<MovedSession>> {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("{MOVED_SESSIONS} AND talker_id = $2"));
        self.row(&SQL, args![i(owner), i(talker)], decode_moved)
            .await
    }

    async fn talkers_with_sessions(&self, owner: u64, talkers: &[u64]) -> Result<Vec<u64>> {
        if talkers.is_empty() {
            return Ok(Vec::new());
        }
        self.rows(
            talkers_sql(talkers.len()),
            talkers_args(owner, talkers),
            |r| r.u64("talker_id"),
        )
        .await
    }

    async fn unread_rows(&self, owner: u64) -> Result<Vec<UnreadRow>> {
        const SQL: &str = "SELECT s.talker_id, s.unread_count, s.biz_unread, s.official_unread, \
            s.push_setting, COALESCE(r.follow, 0) AS follows, s.is_intercept FROM sessions s \
            LEFT JOIN relations r ON r.mid = s.owner AND r.fid = s.talker_id \
            WHERE s.owner = $1 AND s.unread_count > 0 AND s.session_type = 1 AND s.is_dnd = 0";
        self.rows(SQL, args![i(owner)], |r| {
            let talker_id = r.u64("talker_id")?;
            Ok(UnreadRow {
                talker_id,
                unread: r.u64("unread_count")?,
                biz_unread: r.u64("biz_unread")?,
                official_unread: r.u64("official_unread")?,
                push_setting: r.i64("push_setting")? as u8,
                follows: r.flag("follows")?,
                talker_system_type: talker_system_type(1, talker_id),
                is_intercept: r.flag("is_intercept")?,
            })
        })
        .await
    }

    async fn ack(
        &self,
        owner: u64,
        session_type: u8,
        talker_id: u64,
        ack: Option<u64>,
        now_us: i64,
    ) -> Result<bool> {
        let mut w = self.w().await?;
        let mut tx = w.begin().await?;
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
            .execute(&mut *self.w().await?)
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
        .execute(&mut *self.w().await?)
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
        let mut args = Vec::from(args![i(owner), i64::from(session_type)]);
        args.extend(talkers.iter().map(|t| Arg::I(i(*t))));
        self.rows_unprepared(&sql, args, |r| Ok((r.u64("talker_id")?, r.flag("is_dnd")?)))
            .await
    }

    async fn count_hit(&self, key: &str, win: i64) -> Result<u64> {
        if let Some(writer) = &self.writer {
            return writer
                .call(|reply| Job::Hit {
                    key: key.to_string(),
                    win,
                    reply,
                })
                .await;
        }
        let mut conn = self.w().await?;
        count_hit_in(&mut *conn, key, win).await
    }

    async fn server_flag(&self, name: &str) -> Result<i64> {
        Ok(self
            .row(FLAG_BY_NAME, args![name], |r| r.i64("value"))
            .await?
            .unwrap_or(0))
    }

    async fn set_server_flag(&self, name: &str, value: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO server_flags (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(())
    }

    async fn set_user_privacy(&self, mid: u64, privacy: u8) -> Result<()> {
        sqlx::query("UPDATE users SET privacy = $1 WHERE mid = $2")
            .bind(i64::from(privacy))
            .bind(i(mid))
            .execute(&mut *self.w().await?)
            .await?;
        Ok(())
    }

    async fn set_user_flagged(&self, mid: u64, flagged: bool) -> Result<()> {
        sqlx::query("UPDATE users SET flagged = $1 WHERE mid = $2")
            .bind(i64::from(flagged))
            .bind(i(mid))
            .execute(&mut *self.w().await?)
            .await?;
        Ok(())
    }

    async fn auto_replies(&self, mid: u64) -> Result<AutoReplies> {
        Ok(self
            .row(AUTO_REPLIES_OF, args![i(mid)], decode_auto_replies)
            .await?
            .unwrap_or_default())
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
        .execute(&mut *self.w().await?)
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
        .execute(&mut *self.w().await?)
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
            .execute(&mut *self.w().await?)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn intercepted_talkers(&self, owner: u64) -> Result<Vec<u64>> {
        self.rows(
            "SELECT talker_id FROM sessions WHERE owner = $1 AND session_type = 1 AND is_intercept = 1",
            args![i(owner)],
            |r| r.u64("talker_id"),
        )
        .await
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
            let mut w = self.w().await?;
            let mut tx = w.begin().await?;
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
            // add_member takes the write connection itself.
            drop(w);
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
        self.row(
            "SELECT g.group_id, g.conv_id, g.owner, g.name, g.cover, g.group_type, g.state, c.max_seqno \
             FROM groups g JOIN conversations c ON c.id = g.conv_id WHERE g.group_id = $1",
            args![i(group_id)],
            |r| {
                Ok(Group {
                    group_id: r.u64("group_id")?,
                    conv_id: r.i64("conv_id")?,
                    owner: r.u64("owner")?,
                    name: r.str("name")?,
                    cover: r.str("cover")?,
                    group_type: r.i64("group_type")? as u8,
                    state: r.i64("state")? as u8,
                    max_seqno: r.u64("max_seqno")?,
                })
            },
        )
        .await
    }

    async fn set_group_state(&self, group_id: u64, state: u8) -> Result<()> {
        // States only move forwards (normal → frozen → dissolved): of two concurrent changes to
        // the same state one wins, the other gets `Conflict`.
        let r = sqlx::query("UPDATE groups SET state = $1 WHERE group_id = $2 AND state < $1")
            .bind(i64::from(state))
            .bind(i(group_id))
            .execute(&mut *self.w().await?)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn member(&self, group_id: u64, mid: u64) -> Result<Option<Member>> {
        self.row(
            "SELECT joined_us, left_seqno FROM group_members WHERE group_id = $1 AND mid = $2",
            args![i(group_id), i(mid)],
            |r| {
                Ok(Member {
                    joined_us: r.i64("joined_us")?,
                    left_seqno: r.u64("left_seqno")?,
                })
            },
        )
        .await
    }

    async fn add_member(&self, group_id: u64, mid: u64, now_us: i64) -> Result<()> {
        let mut w = self.w().await?;
        let mut tx = w.begin().await?;
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
            .execute(&mut *self.w().await?)
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
        let mut sql = format!(
            "SELECT s.owner, s.session_type, s.talker_id, s.conv_id, s.ack_seqno, s.ack_ts, \
             {GROUP_VIEW_TS} AS session_ts, {GROUP_VIEW_MAX} AS last_seqno, \
             CASE WHEN {GROUP_VIEW_MAX} > s.ack_seqno THEN {GROUP_VIEW_MAX} - s.ack_seqno ELSE 0 END \
             AS unread_count, s.top_ts, s.is_dnd, s.push_setting, s.removed, \
             CAST(0 AS BIGINT) AS is_intercept, CAST(0 AS BIGINT) AS is_trust, \
             {GROUP_VIEW_MAX} AS max_seqno, CAST(0 AS BIGINT) AS follows, \
             CAST(0 AS BIGINT) AS manual_sent, \
             CAST(0 AS BIGINT) AS biz_unread, CAST(0 AS BIGINT) AS official_unread, \
             g.name AS g_name, g.cover AS g_cover, g.group_type AS g_type, \
             g.state AS g_state, gm.joined_us, gm.left_seqno, \
             COALESCE((SELECT MAX(x.seqno) FROM group_mentions x WHERE x.group_id = g.group_id \
               AND x.mid = s.owner AND x.seqno > s.ack_seqno AND x.seqno <= {GROUP_VIEW_MAX}), 0) AS at_seqno, \
             {MSG_VIEW_COLS} \
             FROM sessions s JOIN groups g ON g.group_id = s.talker_id \
             JOIN conversations c ON c.id = g.conv_id \
             JOIN group_members gm ON gm.group_id = g.group_id AND gm.mid = s.owner \
             LEFT JOIN messages m ON m.conv_id = c.id AND m.seqno = {GROUP_VIEW_MAX} \
             WHERE s.owner = $1 AND s.session_type = 2"
        );
        let mut n = 1;
        if !q.include_removed {
            sql.push_str(&format!(
                " AND (s.removed = 0 OR {GROUP_VIEW_MAX} > s.last_seqno)"
            ));
        }
        if q.group_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND s.talker_id = ${n}"));
        }
        if q.after.is_some() {
            n += 1;
            sql.push_str(&format!(" AND {GROUP_VIEW_TS} > ${n}"));
        }
        if q.before.is_some() {
            n += 1;
            sql.push_str(&format!(" AND {GROUP_VIEW_TS} < ${n}"));
        }
        let mut args = Vec::from(args![i(owner)]);
        args.extend(q.group_id.map(|g| Arg::I(i(g))));
        args.extend(q.after.map(Arg::I));
        args.extend(q.before.map(Arg::I));
        // The columns a user session has and a group session doesn't are constants above,
        // so both decode alike.
        self.rows(&sql, args, |r| {
            Ok(SessionRow {
                group: Some(GroupView {
                    name: r.str("g_name")?,
                    cover: r.str("g_cover")?,
                    group_type: r.i64("g_type")? as u8,
                    state: r.i64("g_state")? as u8,
                    joined_us: r.i64("joined_us")?,
                    left_seqno: r.u64("left_seqno")?,
                    at_seqno: r.u64("at_seqno")?,
                }),
                ..decode_session(r)?
            })
        })
        .await
    }

    fn rows_written(&self) -> u64 {
        self.rows_written.load(std::sync::atomic::Ordering::Relaxed)
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
            q.execute(&mut *self.w().await?).await?;
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
        let mut w = self.w().await?;
        let mut tx = w.begin().await?;
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
                "INSERT INTO sessions (owner, session_type, talker_id, conv_id, ack_seqno, ack_ts, session_ts, last_seqno, manual_sent, conv_max) \
                 VALUES ($1, 1, $2, $3, $4, $5, $5, $4, 1, $4)",
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
        sqlx::query(sql).execute(&mut *self.w().await?).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.row("SELECT 1 AS one", Vec::new(), |r| r.i64("one"))
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(keys: &[(&str, i64)]) -> (Vec<Job>, Vec<tokio::sync::oneshot::Receiver<Result<u64>>>) {
        keys.iter()
            .map(|(key, win)| {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let job = Job::Hit {
                    key: key.to_string(),
                    win: *win,
                    reply,
                };
                (job, answer)
            })
            .unzip()
    }

    fn counters(c: &mut Native) -> Vec<(String, i64, i64)> {
        c.query(
            "SELECT key, win, count FROM rate_counters ORDER BY key",
            &[],
            |r| Ok((r.str("key")?, r.i64("win")?, r.i64("count")?)),
        )
        .unwrap()
    }

    /// Hits on the same counters inside one batch are counted one by one, a new window starts
    /// the count over, and the rows hold the tally once the batch is committed.
    #[test]
    fn a_batch_counts_each_hit_and_leaves_the_rows_at_its_tally() {
        let (mut c, dir) = crate::store::exec::scratch("tally");
        c.batch(
            "CREATE TABLE rate_counters (key TEXT PRIMARY KEY, win INTEGER NOT NULL, \
             count INTEGER NOT NULL)",
        )
        .unwrap();
        let written = std::sync::atomic::AtomicU64::new(0);
        let answers = |rx: Vec<tokio::sync::oneshot::Receiver<Result<u64>>>| {
            rx.into_iter()
                .map(|mut a| a.try_recv().unwrap().unwrap())
                .collect::<Vec<_>>()
        };

        let (jobs, rx) = hits(&[
            ("s:1", 10),
            ("s:1", 10),
            ("d:1", 5),
            ("s:1", 10),
            ("s:2", 10),
            ("s:1", 11),
            ("s:1", 11),
            ("d:1", 5),
        ]);
        run_batch(&mut c, jobs, &written);
        assert_eq!(answers(rx), vec![1, 2, 1, 3, 1, 1, 2, 2]);
        assert_eq!(
            counters(&mut c),
            vec![
                ("d:1".to_string(), 5, 2),
                ("s:1".to_string(), 11, 2),
                ("s:2".to_string(), 10, 1)
            ]
        );

        // The next batch goes on from the rows.
        let (jobs, rx) = hits(&[("s:1", 11), ("d:1", 5), ("d:1", 5), ("s:2", 12)]);
        run_batch(&mut c, jobs, &written);
        assert_eq!(answers(rx), vec![3, 3, 4, 1]);
        assert_eq!(
            counters(&mut c),
            vec![
                ("d:1".to_string(), 5, 4),
                ("s:1".to_string(), 11, 3),
                ("s:2".to_string(), 12, 1)
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn page_size(path: &std::path::Path) -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    /// A database the store creates gets 2048-byte pages; one that exists keeps its own
    /// (and is still opened and migrated).
    #[tokio::test]
    async fn a_new_database_gets_the_store_page_size_and_an_old_one_keeps_its_own() {
        let dir = crate::store::exec::scratch_dir("pagesize");
        let config = |file: &std::path::Path| Config {
            database: format!("sqlite://{}", file.display()),
            ..Config::default()
        };

        let new = dir.join("new.db");
        let store = open(&config(&new)).await.unwrap();
        assert_eq!(store.user_count().await.unwrap(), 0);
        drop(store);
        assert_eq!(page_size(&new), 2048);

        let old = dir.join("old.db");
        rusqlite::Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x INTEGER);")
            .unwrap();
        assert_eq!(page_size(&old), 4096);
        let store = open(&config(&old)).await.unwrap();
        assert_eq!(store.user_count().await.unwrap(), 0);
        drop(store);
        assert_eq!(page_size(&old), 4096);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The nice value of this process's thread named `name`, once there is one.
    #[cfg(target_os = "linux")]
    fn thread_nice(name: &str) -> Option<i64> {
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // After the parenthesized name: state is field 3, nice field 19.
            let rest = &stat[stat.rfind(')')? + 2..];
            return rest.split(' ').nth(16)?.parse().ok();
        }
        None
    }

    /// The writer thread runs at WRITER_NICE whenever the process may raise a thread's
    /// priority, and at the process's own otherwise; the other threads keep theirs.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_thread_asks_for_a_raised_priority() {
        // Whether a thread of this process may take WRITER_NICE: asked by a thread of its own.
        let may_raise = std::thread::spawn(|| set_thread_nice(WRITER_NICE).is_ok())
            .join()
            .unwrap();

        let dir = crate::store::exec::scratch_dir("writernice");
        let store = open(&Config {
            database: format!("sqlite://{}", dir.join("nice.db").display()),
            ..Config::default()
        })
        .await
        .unwrap();
        let process_nice = i64::from(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) });
        let expected = if may_raise {
            i64::from(WRITER_NICE)
        } else {
            process_nice
        };
        // The writer asks first thing once started: wait for it (5 s at most).
        let since = std::time::Instant::now();
        while thread_nice("sixin-writer") != Some(expected)
            && since.elapsed() < std::time::Duration::from_secs(5)
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(thread_nice("sixin-writer"), Some(expected));
        assert_eq!(thread_nice("sixin-checkpoin"), Some(process_nice));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
