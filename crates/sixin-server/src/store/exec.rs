//! Statements written once, run on either driver.
//!
//! A statement is its SQL text (`$n` placeholders, the dialect both backends share) plus a list
//! of [`Arg`]s; rows are read through [`Get`] by column name. [`Exec`] runs statements on an
//! sqlx connection (PostgreSQL) or directly on a SQLite connection ([`Native`]), which is what
//! the SQLite store uses for its reads and its group-commit writer: no thread hand-off per
//! statement, and prepared statements kept per connection.

use std::future::Future;

use rusqlite::ffi;
use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::{Result, StoreError};

/// One bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I(i64),
    S(String),
    /// A nullable integer column.
    OI(Option<i64>),
    /// A nullable text column.
    OS(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::I(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::S(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::S(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::S(v.clone())
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::OI(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::OS(v)
    }
}

/// `args![a, b, ...]`: an array of [`Arg`]s from values that convert into one.
macro_rules! args {
    ($($v:expr),* $(,)?) => { [$($crate::store::exec::Arg::from($v)),*] };
}
pub(crate) use args;

fn null_column(col: &'static str) -> StoreError {
    StoreError::Other(format!("column {col} is NULL"))
}

/// A result row, read by column name.
pub(crate) trait Get {
    fn opt_i64(&self, col: &'static str) -> Result<Option<i64>>;
    fn opt_str(&self, col: &'static str) -> Result<Option<String>>;

    fn i64(&self, col: &'static str) -> Result<i64> {
        self.opt_i64(col)?.ok_or_else(|| null_column(col))
    }
    fn str(&self, col: &'static str) -> Result<String> {
        self.opt_str(col)?.ok_or_else(|| null_column(col))
    }
    fn u64(&self, col: &'static str) -> Result<u64> {
        Ok(self.i64(col)? as u64)
    }
    fn flag(&self, col: &'static str) -> Result<bool> {
        Ok(self.i64(col)? != 0)
    }
}

impl Get for AnyRow {
    fn opt_i64(&self, col: &'static str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn opt_str(&self, col: &'static str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
}

/// How a row becomes a value. A plain function, so statements and their decoding can be
/// handed to the writer thread.
pub(crate) type Decode<T> = fn(&dyn Get) -> Result<T>;

/// Runs statements on one connection.
pub(crate) trait Exec: Send {
    fn all<T: Send + 'static>(
        &mut self,
        sql: &str,
        args: &[Arg],
        decode: Decode<T>,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;

    /// Runs a statement that returns no rows; answers the rows it changed.
    fn exec(&mut self, sql: &str, args: &[Arg]) -> impl Future<Output = Result<u64>> + Send;

    fn opt<T: Send + 'static>(
        &mut self,
        sql: &str,
        args: &[Arg],
        decode: Decode<T>,
    ) -> impl Future<Output = Result<Option<T>>> + Send {
        async move { Ok(self.all(sql, args, decode).await?.into_iter().next()) }
    }

    fn one<T: Send + 'static>(
        &mut self,
        sql: &str,
        args: &[Arg],
        decode: Decode<T>,
    ) -> impl Future<Output = Result<T>> + Send {
        async move {
            self.opt(sql, args, decode)
                .await?
                .ok_or(StoreError::NotFound)
        }
    }
}

fn bind_any<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::I(v) => q.bind(*v),
            Arg::S(s) => q.bind(s.as_str()),
            Arg::OI(v) => q.bind(*v),
            Arg::OS(v) => q.bind(v.as_deref()),
        };
    }
    q
}

impl Exec for sqlx::AnyConnection {
    async fn all<T: Send + 'static>(
        &mut self,
        sql: &str,
        args: &[Arg],
        decode: Decode<T>,
    ) -> Result<Vec<T>> {
        let rows = bind_any(sqlx::query(sql), args)
            .fetch_all(&mut *self)
            .await?;
        rows.iter().map(|r| decode(r)).collect()
    }

    async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        if args.is_empty() {
            // Transaction control and the like: sent as a plain statement.
            return Ok(sqlx::Executor::execute(&mut *self, sql)
                .await?
                .rows_affected());
        }
        Ok(bind_any(sqlx::query(sql), args)
            .execute(&mut *self)
            .await?
            .rows_affected())
    }
}

/// Runs a statement through sqlx without keeping it prepared (PostgreSQL then plans it for
/// the values at hand instead of using a generic plan).
pub(crate) async fn all_unprepared<T>(
    conn: &mut sqlx::AnyConnection,
    sql: &str,
    args: &[Arg],
    decode: Decode<T>,
) -> Result<Vec<T>> {
    let rows = bind_any(sqlx::query(sql).persistent(false), args)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| decode(r)).collect()
}

/// Whether SQLite's extended result code says a row with that key exists already.
fn is_conflict(extended_code: std::os::raw::c_int) -> bool {
    extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
        || extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if is_conflict(f.extended_code) => {
                StoreError::Conflict
            }
            _ => StoreError::Other(format!("sqlite: {e}")),
        }
    }
}

/// A SQLite connection used directly; its statements stay prepared.
///
/// Statements run through SQLite's C interface rather than rusqlite's rows: a page of
/// messages or sessions reads hundreds of columns, and rusqlite's layers per column (the
/// index check, the typed value, its `Result`) cost three times SQLite's own calls.
pub(crate) struct Native {
    /// Prepared statements by their text (hashed with FxHash: statements are a few hundred
    /// bytes, and the hash is computed once per statement run). Declared before `conn`, so
    /// they are finalized before the connection closes.
    stmts: rustc_hash::FxHashMap<Box<str>, Stmt>,
    conn: rusqlite::Connection,
}

// SAFETY: the statements belong to the connection and move with it; the connection is
// opened without SQLite's mutexes, and `&mut self` gives one thread at a time.
unsafe impl Send for Native {}

/// Statements a connection keeps prepared; when full, the cache starts over.
const MAX_STATEMENTS: usize = 256;

/// One prepared statement.
struct Stmt {
    ptr: std::ptr::NonNull<ffi::sqlite3_stmt>,
    /// For each parameter in order, the argument it takes: `$n` takes `args[n - 1]`.
    params: Box<[usize]>,
    /// The result columns' names.
    names: Box<[Box<str>]>,
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared by this connection and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.ptr.as_ptr()) };
    }
}

/// What SQLite says went wrong on `db`, after a call answered `rc`.
fn sqlite_error(db: *mut ffi::sqlite3, rc: std::os::raw::c_int) -> StoreError {
    // SAFETY: `db` is an open connection; its message stays valid until its next call.
    let (code, msg) = unsafe {
        let m = ffi::sqlite3_errmsg(db);
        let msg = if m.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned()
        };
        (ffi::sqlite3_extended_errcode(db), msg)
    };
    if is_conflict(code) {
        return StoreError::Conflict;
    }
    StoreError::Other(format!("sqlite: {msg} (code {rc})"))
}

impl Stmt {
    fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Result<Stmt> {
        let len = std::os::raw::c_int::try_from(sql.len())
            .map_err(|_| StoreError::Other("statement too long".into()))?;
        let mut ptr = std::ptr::null_mut();
        let mut tail = std::ptr::null();
        // SAFETY: `sql` is valid for `len` bytes; SQLite writes the two out-pointers.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as std::os::raw::c_uint,
                &mut ptr,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(sqlite_error(db, rc));
        }
        let ptr = std::ptr::NonNull::new(ptr)
            .ok_or_else(|| StoreError::Other("empty statement".into()))?;
        // From here on, dropping `stmt` finalizes it.
        let mut stmt = Stmt {
            ptr,
            params: Box::default(),
            names: Box::default(),
        };
        let used = (tail as usize).wrapping_sub(sql.as_ptr() as usize);
        if sql.get(used..).is_some_and(|rest| !rest.trim().is_empty()) {
            return Err(StoreError::Other(format!("more than one statement: {sql}")));
        }
        let p = stmt.ptr.as_ptr();
        // SAFETY: `p` is a live statement; the names SQLite answers live as long as it.
        unsafe {
            let n = ffi::sqlite3_bind_parameter_count(p);
            stmt.params = (1..=n)
                .map(|idx| {
                    let name = ffi::sqlite3_bind_parameter_name(p, idx);
                    (!name.is_null())
                        .then(|| std::ffi::CStr::from_ptr(name).to_str().ok())
                        .flatten()
                        .and_then(|name| name.strip_prefix('$'))
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n >= 1)
                        .map(|n| n - 1)
                        .ok_or_else(|| StoreError::Other(format!("parameter {idx} is not $n")))
                })
                .collect::<Result<_>>()?;
            let n = ffi::sqlite3_column_count(p);
            stmt.names = (0..n)
                .map(|i| {
                    let name = ffi::sqlite3_column_name(p, i);
                    if name.is_null() {
                        return Err(StoreError::Other("out of memory".into()));
                    }
                    Ok(std::ffi::CStr::from_ptr(name)
                        .to_string_lossy()
                        .into_owned()
                        .into_boxed_str())
                })
                .collect::<Result<_>>()?;
        }
        Ok(stmt)
    }

    /// Binds `args[n - 1]` to each parameter `$n`, wherever it appears.
    fn bind(&mut self, db: *mut ffi::sqlite3, args: &[Arg]) -> Result<()> {
        let p = self.ptr.as_ptr();
        for (i, &a) in self.params.iter().enumerate() {
            let arg = args
                .get(a)
                .ok_or_else(|| StoreError::Other(format!("no value for ${}", a + 1)))?;
            let idx = i as std::os::raw::c_int + 1;
            // SAFETY: `p` is live and `idx` one of its parameters; text is copied by SQLite
            // (`SQLITE_TRANSIENT`).
            let rc = unsafe {
                match arg {
                    Arg::I(v) | Arg::OI(Some(v)) => ffi::sqlite3_bind_int64(p, idx, *v),
                    Arg::S(s) | Arg::OS(Some(s)) => ffi::sqlite3_bind_text64(
                        p,
                        idx,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as std::os::raw::c_uchar,
                    ),
                    Arg::OI(None) | Arg::OS(None) => ffi::sqlite3_bind_null(p, idx),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(sqlite_error(db, rc));
            }
        }
        Ok(())
    }
}

/// A statement being stepped; reset when dropped, which ends its read of the database.
struct Running<'a> {
    stmt: &'a Stmt,
    db: *mut ffi::sqlite3,
}

impl Running<'_> {
    /// Steps to the next row: true when there is one.
    fn step(&mut self) -> Result<bool> {
        // SAFETY: the statement is live and bound.
        match unsafe { ffi::sqlite3_step(self.stmt.ptr.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(sqlite_error(self.db, rc)),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live. An error it answers is the last step's, reported.
        unsafe { ffi::sqlite3_reset(self.stmt.ptr.as_ptr()) };
    }
}

struct NativeRow<'a> {
    stmt: *mut ffi::sqlite3_stmt,
    names: &'a [Box<str>],
    /// A statement's decoder asks for the same columns in the same order on every row. Its
    /// k-th request so far: the name asked for (its address and length: names are
    /// `'static`, so these never stand for two different names) and the column found. Learnt
    /// on the first row; later rows skip comparing names. A decoder asking more often than
    /// there are slots finds its further columns by name every time.
    learnt: &'a [std::cell::Cell<Learnt>],
    /// How many columns the decoder asked for so far on this row.
    asked: std::cell::Cell<usize>,
}

/// A learnt column request: the name's address and length, and the column's index.
#[derive(Clone, Copy, Default)]
struct Learnt(usize, usize, std::os::raw::c_int);

impl NativeRow<'_> {
    /// The column the decoder's next request is for: on every row after the first, the
    /// column learnt for this request on the first (inlined: it runs for every column read).
    #[inline(always)]
    fn index(&self, col: &'static str) -> Result<std::os::raw::c_int> {
        let k = self.asked.get();
        self.asked.set(k + 1);
        if let Some(Learnt(a, l, i)) = self.learnt.get(k).map(std::cell::Cell::get) {
            if a == col.as_ptr() as usize && l == col.len() {
                return Ok(i);
            }
        }
        self.learn(k, col)
    }

    /// Finds the column named `col` for the decoder's k-th request and remembers it.
    #[cold]
    #[inline(never)]
    fn learn(&self, k: usize, col: &'static str) -> Result<std::os::raw::c_int> {
        // Decoders mostly read in SELECT order: look right after the previous request's column.
        let count = self.names.len();
        let start = k
            .checked_sub(1)
            .and_then(|p| self.learnt.get(p))
            .map_or(0, |c| (c.get().2 as usize + 1) % count.max(1));
        let i = (start..count)
            .chain(0..start)
            .find(|i| &*self.names[*i] == col)
            .ok_or_else(|| StoreError::Other(format!("no column {col}")))?
            as std::os::raw::c_int;
        if let Some(slot) = self.learnt.get(k) {
            slot.set(Learnt(col.as_ptr() as usize, col.len(), i));
        }
        Ok(i)
    }

    /// The column's index and SQLite's type of its value.
    #[inline(always)]
    fn typed(&self, col: &'static str) -> Result<(std::os::raw::c_int, std::os::raw::c_int)> {
        let i = self.index(col)?;
        // SAFETY: the statement is on a row and `i` is one of its columns.
        Ok((i, unsafe { ffi::sqlite3_column_type(self.stmt, i) }))
    }

    #[inline(always)]
    fn integer(&self, i: std::os::raw::c_int) -> i64 {
        // SAFETY: as in `typed`, for a column whose value is an integer.
        unsafe { ffi::sqlite3_column_int64(self.stmt, i) }
    }

    fn text(&self, col: &'static str) -> Result<Option<String>> {
        let (i, t) = self.typed(col)?;
        match t {
            ffi::SQLITE_TEXT => {}
            ffi::SQLITE_NULL => return Ok(None),
            other => {
                return Err(StoreError::Other(format!(
                    "column {col} is {}, not text",
                    type_name(other)
                )))
            }
        }
        // SAFETY: as in `typed`; the bytes stay valid until the next call on this column.
        let bytes = unsafe {
            let p = ffi::sqlite3_column_text(self.stmt, i);
            let n = ffi::sqlite3_column_bytes(self.stmt, i);
            if p.is_null() {
                return Err(StoreError::Other(format!("column {col}: out of memory")));
            }
            std::slice::from_raw_parts(p, n.max(0) as usize)
        };
        std::str::from_utf8(bytes)
            .map(|t| Some(t.to_owned()))
            .map_err(|e| StoreError::Other(format!("column {col}: {e}")))
    }
}

/// The name of a SQLite value type, as errors give it.
fn type_name(t: std::os::raw::c_int) -> &'static str {
    match t {
        ffi::SQLITE_INTEGER => "Integer",
        ffi::SQLITE_FLOAT => "Real",
        ffi::SQLITE_TEXT => "Text",
        ffi::SQLITE_BLOB => "Blob",
        _ => "Null",
    }
}

fn not_integer(col: &'static str, t: std::os::raw::c_int) -> StoreError {
    StoreError::Other(format!("column {col} is {}, not an integer", type_name(t)))
}

impl Get for NativeRow<'_> {
    fn opt_i64(&self, col: &'static str) -> Result<Option<i64>> {
        match self.typed(col)? {
            (i, ffi::SQLITE_INTEGER) => Ok(Some(self.integer(i))),
            (_, ffi::SQLITE_NULL) => Ok(None),
            (_, t) => Err(not_integer(col, t)),
        }
    }
    fn opt_str(&self, col: &'static str) -> Result<Option<String>> {
        self.text(col)
    }
    fn i64(&self, col: &'static str) -> Result<i64> {
        match self.typed(col)? {
            (i, ffi::SQLITE_INTEGER) => Ok(self.integer(i)),
            (_, ffi::SQLITE_NULL) => Err(null_column(col)),
            (_, t) => Err(not_integer(col, t)),
        }
    }
    fn str(&self, col: &'static str) -> Result<String> {
        self.text(col)?.ok_or_else(|| null_column(col))
    }
}

impl Native {
    /// Opens the database file (which must exist and be migrated) with the given pragmas.
    pub(crate) fn open(path: &str, pragmas: &str) -> Result<Native> {
        Native::open_with(path, pragmas, None)
    }

    /// [`Native::open`] with its write-ahead log written through [`super::walvfs`] (a
    /// commit's frames gathered into few writes), and the cache never spilled to the log
    /// before a commit, which the VFS relies on: every gathered frame then belongs to the
    /// commit whose header writes it. Falls back to [`Native::open`] if the VFS cannot be
    /// registered.
    pub(crate) fn open_gathering(path: &str, pragmas: &str) -> Result<Native> {
        if !super::walvfs::register() {
            return Native::open(path, pragmas);
        }
        let conn = Native::open_with(path, pragmas, Some(super::walvfs::NAME_STR))?;
        conn.conn.execute_batch("PRAGMA cache_spill = OFF;")?;
        Ok(conn)
    }

    /// [`Native::open`] through the named VFS (`None`: SQLite's default).
    fn open_with(path: &str, pragmas: &str, vfs: Option<&str>) -> Result<Native> {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match vfs {
            Some(vfs) => rusqlite::Connection::open_with_flags_and_vfs(path, flags, vfs)?,
            None => rusqlite::Connection::open_with_flags(path, flags)?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(pragmas)?;
        Ok(Native {
            stmts: rustc_hash::FxHashMap::default(),
            conn,
        })
    }

    /// The `pwrite`s this connection's write-ahead log has made through [`super::walvfs`]
    /// (`None` when it was not opened through it, or has no log open).
    #[cfg(test)]
    pub(crate) fn log_writes(&self) -> Option<u64> {
        super::walvfs::log_writes(self.db())
    }

    /// The connection's handle (unit tests: file controls).
    #[cfg(test)]
    pub(crate) fn handle(&self) -> *mut ffi::sqlite3 {
        self.db()
    }

    fn db(&self) -> *mut ffi::sqlite3 {
        // SAFETY: only used for SQLite calls on this connection while it is open.
        unsafe { self.conn.handle() }
    }

    /// The statement `sql`, prepared once per connection, bound to `args` and ready to step.
    fn start(&mut self, sql: &str, args: &[Arg]) -> Result<Running<'_>> {
        let db = self.db();
        if !self.stmts.contains_key(sql) {
            if self.stmts.len() >= MAX_STATEMENTS {
                self.stmts.clear();
            }
            self.stmts.insert(sql.into(), Stmt::prepare(db, sql)?);
        }
        let stmt = self
            .stmts
            .get_mut(sql)
            .ok_or_else(|| StoreError::Other("statement cache".into()))?;
        stmt.bind(db, args)?;
        Ok(Running { stmt, db })
    }

    /// Runs `sql` and decodes every row.
    pub(crate) fn query<T>(
        &mut self,
        sql: &str,
        args: &[Arg],
        decode: Decode<T>,
    ) -> Result<Vec<T>> {
        let mut run = self.start(sql, args)?;
        // Room for each column asked for twice.
        let learnt = vec![std::cell::Cell::new(Learnt::default()); 2 * run.stmt.names.len()];
        let mut out = Vec::new();
        while run.step()? {
            out.push(decode(&NativeRow {
                stmt: run.stmt.ptr.as_ptr(),
                names: &run.stmt.names,
                learnt: &learnt,
                asked: std::cell::Cell::new(0),
            })?);
        }
        Ok(out)
    }

    /// Runs a statement that returns no rows; answers the rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let mut run = self.start(sql, args)?;
        if run.step()? {
            return Err(StoreError::Other(format!("statement returned rows: {sql}")));
        }
        drop(run);
        // SAFETY: the connection is open.
        Ok(unsafe { ffi::sqlite3_changes64(self.db()) } as u64)
    }

    /// Runs one statement without arguments or results (transaction control), kept prepared.
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        self.execute(sql, &[]).map(drop)
    }

    /// Runs `f` inside one read transaction: its statements see one snapshot, and the page
    /// cache, which SQLite drops whenever another connection committed since the last
    /// transaction, is dropped and read back once for all of them rather than once each.
    pub(crate) fn in_read_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Native) -> Result<T>,
    ) -> Result<T> {
        self.batch("BEGIN")?;
        let r = f(self);
        match r {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                // Only ends the transaction: nothing was written.
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Copies what the write-ahead log holds into the database file, as far as readers allow,
    /// without waiting for anyone. Answers how many frames the log holds and how many of them
    /// are now in the database file.
    pub(crate) fn checkpoint(&mut self) -> Result<(i64, i64)> {
        self.query("PRAGMA wal_checkpoint(PASSIVE)", &[], |r| {
            Ok((r.i64("log")?, r.i64("checkpointed")?))
        })?
        .pop()
        .ok_or_else(|| StoreError::Other("wal_checkpoint answered no row".into()))
    }
}

impl Exec for Native {
    fn all<T: Send + 'static>(
        &mut self,
        sql: &str,
        args: &[Arg],
        decode: Decode<T>,
    ) -> impl Future<Output = Result<Vec<T>>> + Send {
        let r = self.query(sql, args, decode);
        async move { r }
    }

    fn exec(&mut self, sql: &str, args: &[Arg]) -> impl Future<Output = Result<u64>> + Send {
        let r = self.execute(sql, args);
        async move { r }
    }
}

/// Runs a future that never waits (every statement on a [`Native`] connection completes
/// synchronously) to its end.
pub(crate) fn now_or_never<F: Future>(f: F) -> Result<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Ok(v),
        std::task::Poll::Pending => Err(StoreError::Other(
            "a SQLite statement did not complete synchronously".into(),
        )),
    }
}

/// A small pool of [`Native`] connections for reads, used inline by whoever asks: a read of a
/// few rows costs microseconds, less than handing it to another thread.
pub(crate) struct Readers {
    path: String,
    idle: std::sync::Mutex<Vec<Native>>,
    keep: usize,
}

impl Readers {
    pub(crate) fn new(path: &str, keep: usize) -> Readers {
        Readers {
            path: path.to_string(),
            idle: std::sync::Mutex::new(Vec::new()),
            keep: keep.max(1),
        }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Native) -> Result<T>) -> Result<T> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => Native::open(
                &self.path,
                "PRAGMA query_only = 1; PRAGMA cache_size = -4096;",
            )?,
        };
        let r = f(&mut conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.keep {
            idle.push(conn);
        }
        r
    }
}

/// A fresh, empty folder of this process (unit tests); remove it when done.
#[cfg(test)]
pub(crate) fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sixin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh SQLite file in its own folder, opened natively (unit tests); remove the folder
/// when done.
#[cfg(test)]
pub(crate) fn scratch(tag: &str) -> (Native, std::path::PathBuf) {
    let dir = scratch_dir(tag);
    let path = dir.join("t.db");
    rusqlite::Connection::open(&path).unwrap();
    (Native::open(path.to_str().unwrap(), "").unwrap(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `b` only where `a` is not NULL (as a message decoder stops at a missing message),
    /// then `c`: the columns asked for differ from row to row.
    fn decode(r: &dyn Get) -> Result<(Option<i64>, Option<String>, i64)> {
        let a = r.opt_i64("a")?;
        let b = match a {
            Some(_) => Some(r.str("b")?),
            None => None,
        };
        Ok((a, b, r.i64("c")?))
    }

    /// Reads the columns out of SELECT order.
    fn backwards(r: &dyn Get) -> Result<(i64, Option<i64>)> {
        Ok((r.i64("c")?, r.opt_i64("a")?))
    }

    #[test]
    fn native_rows_find_columns_whatever_the_decoder_asks_row_by_row() {
        let (mut c, dir) = scratch("exec");
        c.batch("CREATE TABLE t (k INTEGER, a INTEGER, b TEXT, c INTEGER)")
            .unwrap();
        c.batch(
            "INSERT INTO t VALUES (1, 10, 'x', 100), (2, NULL, NULL, 200), (3, 30, 'z', 300), \
             (4, NULL, NULL, 400)",
        )
        .unwrap();
        let sql = "SELECT a, b, c FROM t ORDER BY k";
        let rows = c.query(sql, &[], decode).unwrap();
        assert_eq!(
            rows,
            vec![
                (Some(10), Some("x".to_string()), 100),
                (None, None, 200),
                (Some(30), Some("z".to_string()), 300),
                (None, None, 400),
            ]
        );
        let rows = c.query(sql, &[], backwards).unwrap();
        assert_eq!(
            rows,
            vec![(100, Some(10)), (200, None), (300, Some(30)), (400, None)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn native_rows_name_the_column_whose_value_does_not_fit() {
        let (mut c, dir) = scratch("exec-types");
        c.batch("CREATE TABLE t (a INTEGER, b TEXT, n INTEGER)")
            .unwrap();
        c.batch("INSERT INTO t VALUES (NULL, 'x', 7)").unwrap();
        let sql = "SELECT a, b, n FROM t";
        let cases: [(Decode<()>, &str); 5] = [
            (|r| r.i64("a").map(drop), "column a is NULL"),
            (|r| r.str("a").map(drop), "column a is NULL"),
            (|r| r.i64("b").map(drop), "column b is Text, not an integer"),
            (
                |r| r.opt_i64("b").map(drop),
                "column b is Text, not an integer",
            ),
            (|r| r.str("n").map(drop), "column n is Integer, not text"),
        ];
        for (decode, want) in cases {
            match c.query(sql, &[], decode) {
                Err(StoreError::Other(m)) => assert_eq!(m, want),
                other => panic!("{want}: {other:?}"),
            }
        }
        // The optional readers answer a NULL as None; the rest read their values.
        let row = c
            .query(sql, &[], |r| {
                Ok((
                    r.opt_i64("a")?,
                    r.opt_str("a")?,
                    r.str("b")?,
                    r.u64("n")?,
                    r.flag("n")?,
                ))
            })
            .unwrap();
        assert_eq!(row, vec![(None, None, "x".to_string(), 7, true)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
