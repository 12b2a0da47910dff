//! Statements written once, run on either driver.
//!
//! A statement is its SQL text (`$n` placeholders, the dialect both backends share) plus a list
//! of [`Arg`]s; rows are read through [`Get`] by column name. [`Exec`] runs statements on an
//! sqlx connection (PostgreSQL) or directly on a SQLite connection ([`Native`]), which is what
//! the SQLite store uses for its reads and its group-commit writer: no thread hand-off per
//! statement, and prepared statements kept per connection.

use std::future::Future;

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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Conflict
            }
            _ => StoreError::Other(format!("sqlite: {e}")),
        }
    }
}

/// A SQLite connection used directly; its statements stay prepared.
pub(crate) struct Native {
    conn: rusqlite::Connection,
}

struct NativeRow<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    /// A statement's decoder asks for the same columns in the same order on every row. Its
    /// k-th request so far: the name asked for (its address and length: names are
    /// `'static`, so these never stand for two different names) and the column found. Learnt
    /// on the first row; later rows skip comparing names.
    learnt: &'a std::cell::RefCell<Vec<((usize, usize), usize)>>,
    /// How many columns the decoder asked for so far on this row.
    asked: std::cell::Cell<usize>,
}

impl NativeRow<'_, '_> {
    fn index(&self, col: &'static str) -> Result<usize> {
        let k = self.asked.get();
        self.asked.set(k + 1);
        let name = (col.as_ptr() as usize, col.len());
        if let Some(&(n, i)) = self.learnt.borrow().get(k) {
            if n == name {
                return Ok(i);
            }
        }
        let mut learnt = self.learnt.borrow_mut();
        // Decoders mostly read in SELECT order: look right after the previous request's column.
        let st = self.row.as_ref();
        let count = st.column_count();
        let start = k
            .checked_sub(1)
            .and_then(|p| learnt.get(p))
            .map_or(0, |&(_, i)| (i + 1) % count.max(1));
        let i = (start..count)
            .chain(0..start)
            .find(|i| st.column_name(*i).is_ok_and(|c| c == col))
            .ok_or_else(|| StoreError::Other(format!("no column {col}")))?;
        // Every earlier request of this row is learnt, so k is at most the length.
        if k < learnt.len() {
            learnt[k] = (name, i);
        } else {
            learnt.push((name, i));
        }
        Ok(i)
    }
}

impl NativeRow<'_, '_> {
    fn value(&self, col: &'static str) -> Result<rusqlite::types::ValueRef<'_>> {
        Ok(self.row.get_ref(self.index(col)?)?)
    }
}

fn not_integer(col: &'static str, v: rusqlite::types::ValueRef<'_>) -> StoreError {
    StoreError::Other(format!("column {col} is {}, not an integer", v.data_type()))
}

fn text(col: &'static str, v: rusqlite::types::ValueRef<'_>) -> Result<Option<String>> {
    match v {
        rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|t| Some(t.to_owned()))
            .map_err(|e| StoreError::Other(format!("column {col}: {e}"))),
        rusqlite::types::ValueRef::Null => Ok(None),
        other => Err(StoreError::Other(format!(
            "column {col} is {}, not text",
            other.data_type()
        ))),
    }
}

impl Get for NativeRow<'_, '_> {
    // The value is matched by hand rather than through `Row::get`, and the non-NULL readers
    // match it themselves rather than through the optional ones: a session row has dozens of
    // columns, and each layer per column is a noticeable part of a list's CPU.
    fn opt_i64(&self, col: &'static str) -> Result<Option<i64>> {
        match self.value(col)? {
            rusqlite::types::ValueRef::Integer(v) => Ok(Some(v)),
            rusqlite::types::ValueRef::Null => Ok(None),
            other => Err(not_integer(col, other)),
        }
    }
    fn opt_str(&self, col: &'static str) -> Result<Option<String>> {
        text(col, self.value(col)?)
    }
    fn i64(&self, col: &'static str) -> Result<i64> {
        match self.value(col)? {
            rusqlite::types::ValueRef::Integer(v) => Ok(v),
            rusqlite::types::ValueRef::Null => Err(null_column(col)),
            other => Err(not_integer(col, other)),
        }
    }
    fn str(&self, col: &'static str) -> Result<String> {
        text(col, self.value(col)?)?.ok_or_else(|| null_column(col))
    }
}

/// Binds `args[n - 1]` to each parameter `$n` of the statement, wherever it appears.
fn bind_native(st: &mut rusqlite::Statement<'_>, args: &[Arg]) -> Result<()> {
    for idx in 1..=st.parameter_count() {
        let n = st
            .parameter_name(idx)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| StoreError::Other(format!("parameter {idx} is not $n")))?;
        let arg = args
            .get(n - 1)
            .ok_or_else(|| StoreError::Other(format!("no value for ${n}")))?;
        match arg {
            Arg::I(v) => st.raw_bind_parameter(idx, v)?,
            Arg::S(s) => st.raw_bind_parameter(idx, s.as_str())?,
            Arg::OI(v) => st.raw_bind_parameter(idx, v)?,
            Arg::OS(v) => st.raw_bind_parameter(idx, v.as_deref())?,
        }
    }
    Ok(())
}

impl Native {
    /// Opens the database file (which must exist and be migrated) with the given pragmas.
    pub(crate) fn open(path: &str, pragmas: &str) -> Result<Native> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(pragmas)?;
        conn.set_prepared_statement_cache_capacity(256);
        Ok(Native { conn })
    }

    /// Runs `sql` and decodes every row.
    pub(crate) fn query<T>(
        &mut self,
        sql: &str,
        args: &[Arg],
        decode: Decode<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare_cached(sql)?;
        bind_native(&mut st, args)?;
        let learnt = std::cell::RefCell::new(Vec::with_capacity(st.column_count()));
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(decode(&NativeRow {
                row,
                learnt: &learnt,
                asked: std::cell::Cell::new(0),
            })?);
        }
        Ok(out)
    }

    pub(crate) fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let mut st = self.conn.prepare_cached(sql)?;
        bind_native(&mut st, args)?;
        Ok(st.raw_execute()? as u64)
    }

    /// Runs one statement without arguments or results (transaction control), kept prepared.
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        self.conn.prepare_cached(sql)?.raw_execute()?;
        Ok(())
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
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })?)
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
