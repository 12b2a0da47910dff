//! `sixin-wal`: SQLite's default file layer (VFS), except for how the write-ahead log is
//! written.
//!
//! SQLite appends each page of a commit to the log with two `pwrite`s (the frame's 24-byte
//! header, then the page), so a group commit of a few hundred pages makes a few hundred
//! system calls through the file system's write path, on the writer thread every send waits
//! for. Through this VFS the frames of one commit are gathered in memory and reach the file in
//! few `pwrite`s (one per 124 KB), written when SQLite writes the commit frame's header, and
//! the commit frame's page right after it.
//!
//! What SQLite relies on is unchanged:
//! - every frame is in the file (the kernel's page cache) before its commit becomes visible
//!   to any reader: SQLite publishes a commit in the shared index only after the write of its
//!   commit frame returned, and that write first writes everything gathered before it;
//! - nothing stays gathered once SQLite's call that writes a commit's frames returns, so
//!   nothing gathered can outlive the write lock and land later over another connection's
//!   frames. This holds because a connection opened through this VFS never spills its cache
//!   to the log before a commit (`PRAGMA cache_spill = OFF`, set by
//!   [`super::exec::Native::open_gathering`]): every frame it writes belongs to a commit,
//!   and the commit's last frame header writes them;
//! - any other use of the log file (a read, a sync, its size, a truncation, a file control, a
//!   write elsewhere than after what is gathered, closing it) first writes what is gathered,
//!   in the order it was asked for, and the first write after a sync goes straight to the
//!   file (with `PRAGMA synchronous = FULL` and sector padding, SQLite splits a frame around
//!   a sync, and its tail must not wait);
//! - a failed write is answered as SQLite's own would be: `SQLITE_FULL` or
//!   `SQLITE_IOERR_WRITE` from the write that triggered it, so the commit fails and SQLite
//!   undoes it; from a read, a sync or a size it is `SQLITE_IOERR_WRITE`, which makes SQLite
//!   undo the whole transaction rather than one statement.
//!
//! Files other than the log (the database file, its shared-memory index, temporary files) are
//! opened by the default VFS itself, in place, and used with its methods directly.

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the VFS by.
pub(crate) const NAME: &CStr = c"sixin-wal";
/// [`NAME`] as text (what rusqlite takes).
pub(crate) const NAME_STR: &str = "sixin-wal";

/// Size of a log frame's header (SQLite's `WAL_FRAME_HDRSIZE`).
const FRAME_HEADER: usize = 24;

/// The most the default VFS writes in one call: it masks a write's length to 17 bits, so
/// gathered frames go to it in pieces of this size (31 file pages), each one `pwrite`.
const MAX_WRITE: usize = 31 * 4096;

/// Gathered bytes beyond which they are written even before the commit frame (a commit of
/// thousands of pages).
const MAX_GATHERED: usize = 4 << 20;

/// An open log file: the default VFS's file for it, after the part of the allocation this
/// VFS keeps for itself.
#[repr(C)]
struct LogFile {
    /// Must come first: SQLite reads the methods from the start of every file.
    base: ffi::sqlite3_file,
    /// Frames not yet written, from file offset `at`.
    gathered: Vec<u8>,
    at: i64,
    /// The default VFS's file, inside the same allocation.
    real: *mut ffi::sqlite3_file,
    /// Writes made to the file (for tests: how many `pwrite`s a commit cost).
    writes: u64,
    /// The last call was a sync: the next write goes straight to the file.
    synced: bool,
}

/// Where the default VFS's file starts inside this VFS's allocation.
const REAL_OFFSET: usize = std::mem::size_of::<LogFile>().next_multiple_of(16);

struct Registered {
    /// The default VFS: what every call goes to in the end.
    real: *mut ffi::sqlite3_vfs,
    ok: bool,
}

// SAFETY: the pointer is SQLite's default VFS, a static object that SQLite itself uses from
// every thread; it is only read here.
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Registered> = OnceLock::new();

/// Registers the VFS (once per process); answers whether connections can open it.
pub(crate) fn register() -> bool {
    REGISTERED
        .get_or_init(|| {
            // SAFETY: plain calls into SQLite; the VFS object is leaked, so it outlives every
            // connection, as SQLite requires of a registered VFS.
            unsafe {
                let real = ffi::sqlite3_vfs_find(std::ptr::null());
                if real.is_null() {
                    return Registered { real, ok: false };
                }
                let mut vfs: ffi::sqlite3_vfs = *real;
                vfs.szOsFile = (REAL_OFFSET + (*real).szOsFile as usize) as c_int;
                vfs.pNext = std::ptr::null_mut();
                vfs.zName = NAME.as_ptr();
                vfs.xOpen = Some(open);
                // Every other entry (and `pAppData`, which the default VFS reads) stays the
                // default VFS's own.
                let vfs = Box::leak(Box::new(vfs));
                let ok = ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK;
                Registered { real, ok }
            }
        })
        .ok
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    REGISTERED.get().map_or(std::ptr::null_mut(), |r| r.real)
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real = real_vfs();
    let Some(real_open) = (if real.is_null() { None } else { (*real).xOpen }) else {
        (*file).pMethods = std::ptr::null();
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Any other file is the default VFS's, in place: its methods, its layout.
        return real_open(real, name, file, flags, out_flags);
    }
    let real_file = file
        .cast::<u8>()
        .add(REAL_OFFSET)
        .cast::<ffi::sqlite3_file>();
    let rc = real_open(real, name, real_file, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        // Not open: SQLite must not call any method (it checks for none).
        (*file).pMethods = std::ptr::null();
        return rc;
    }
    file.cast::<LogFile>().write(LogFile {
        base: ffi::sqlite3_file {
            pMethods: &LOG_METHODS,
        },
        gathered: Vec::new(),
        at: 0,
        real: real_file,
        writes: 0,
        synced: false,
    });
    ffi::SQLITE_OK
}

/// The log file behind `f`, opened by [`open`].
unsafe fn log<'a>(f: *mut ffi::sqlite3_file) -> &'a mut LogFile {
    &mut *f.cast::<LogFile>()
}

/// The default VFS's methods of the log file.
unsafe fn real_methods(l: &LogFile) -> &ffi::sqlite3_io_methods {
    &*(*l.real).pMethods
}

/// Writes what is gathered; answers SQLite's result code.
unsafe fn flush(l: &mut LogFile) -> c_int {
    if l.gathered.is_empty() {
        return ffi::SQLITE_OK;
    }
    let mut rc = ffi::SQLITE_OK;
    let mut at = l.at;
    for chunk in l.gathered.chunks(MAX_WRITE) {
        rc = match real_methods(l).xWrite {
            Some(write) => write(l.real, chunk.as_ptr().cast(), chunk.len() as c_int, at),
            None => ffi::SQLITE_IOERR_WRITE,
        };
        l.writes += 1;
        if rc != ffi::SQLITE_OK {
            break;
        }
        at += chunk.len() as i64;
    }
    // Written or not, it is not kept: a failed write fails the commit, and the frames it held
    // are past the log's last commit, where the next commit writes its own.
    l.gathered.clear();
    rc
}

/// Whether a frame header is a commit frame's: its second field, the database's size in
/// pages after the commit, is zero for every other frame.
fn is_commit_header(header: &[u8]) -> bool {
    header.len() == FRAME_HEADER && header[4..8] != [0, 0, 0, 0]
}

unsafe extern "C" fn log_write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let l = log(f);
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
    let follows = !l.gathered.is_empty() && offset == l.at + l.gathered.len() as i64;
    let after_sync = std::mem::replace(&mut l.synced, false);
    if len == FRAME_HEADER && !after_sync {
        // A frame starts: gathered after the frames before it, or the first of a commit.
        if !l.gathered.is_empty() && !follows {
            let rc = flush(l);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if l.gathered.is_empty() {
            l.at = offset;
        }
        l.gathered.extend_from_slice(bytes);
        if is_commit_header(bytes) {
            // Everything before the commit frame's page is written now; the page itself, next,
            // goes straight to the file (nothing is gathered to follow).
            return flush(l);
        }
        return ffi::SQLITE_OK;
    }
    if follows {
        // A frame's page, after its header.
        l.gathered.extend_from_slice(bytes);
        if l.gathered.len() >= MAX_GATHERED {
            return flush(l);
        }
        return ffi::SQLITE_OK;
    }
    // Anything else (the log's own header, a commit frame's page, a frame rewritten in place,
    // the rest of a frame split around a sync) is written at once, after what was gathered.
    let rc = flush(l);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    l.writes += 1;
    match real_methods(l).xWrite {
        Some(write) => write(l.real, data, amount, offset),
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

unsafe extern "C" fn log_close(f: *mut ffi::sqlite3_file) -> c_int {
    let l = log(f);
    let written = flush(l);
    let closed = match real_methods(l).xClose {
        Some(close) => close(l.real),
        None => ffi::SQLITE_OK,
    };
    std::ptr::drop_in_place(std::ptr::addr_of_mut!(l.gathered));
    (*f).pMethods = std::ptr::null();
    if written != ffi::SQLITE_OK {
        written
    } else {
        closed
    }
}

/// Defines a method that writes what is gathered, then calls the default VFS's. A failed
/// write is `SQLITE_IOERR_WRITE` whatever the default VFS answered (a full disk is
/// `SQLITE_FULL` there): from a read inside a statement, `SQLITE_FULL` would undo only the
/// statement, and the transaction could commit without the frames.
macro_rules! flushing {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*), $after:expr) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            let l = log(f);
            if flush(l) != ffi::SQLITE_OK {
                return ffi::SQLITE_IOERR_WRITE;
            }
            $after(&mut *l);
            match real_methods(l).$method {
                Some(m) => m(l.real, $($arg),*),
                None => ffi::SQLITE_MISUSE,
            }
        }
    };
}

/// Defines a method that only calls the default VFS's.
macro_rules! passing {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*), $default:expr) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            let l = log(f);
            match real_methods(l).$method {
                Some(m) => m(l.real, $($arg),*),
                None => $default,
            }
        }
    };
}

fn nothing(_: &mut LogFile) {}
fn synced(l: &mut LogFile) {
    l.synced = true;
}

flushing!(log_read, xRead, (buf: *mut c_void, amount: c_int, offset: i64), nothing);
flushing!(log_truncate, xTruncate, (size: i64), nothing);
flushing!(log_sync, xSync, (flags: c_int), synced);
flushing!(log_file_size, xFileSize, (size: *mut i64), nothing);
flushing!(log_file_control, xFileControl, (op: c_int, arg: *mut c_void), nothing);
passing!(log_lock, xLock, (level: c_int), ffi::SQLITE_OK);
passing!(log_unlock, xUnlock, (level: c_int), ffi::SQLITE_OK);
passing!(log_reserved, xCheckReservedLock, (out: *mut c_int), ffi::SQLITE_OK);
passing!(log_sector_size, xSectorSize, (), 4096);
passing!(log_device, xDeviceCharacteristics, (), 0);

/// The log file's methods: version 1, since the shared-memory index and memory-mapped reads
/// are the database file's, never the log's.
static LOG_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(log_close),
    xRead: Some(log_read),
    xWrite: Some(log_write),
    xTruncate: Some(log_truncate),
    xSync: Some(log_sync),
    xFileSize: Some(log_file_size),
    xLock: Some(log_lock),
    xUnlock: Some(log_unlock),
    xCheckReservedLock: Some(log_reserved),
    xFileControl: Some(log_file_control),
    xSectorSize: Some(log_sector_size),
    xDeviceCharacteristics: Some(log_device),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// The writes a connection's log file has made so far through this VFS (tests), or `None`
/// when its log is not open through it.
#[cfg(test)]
pub(crate) fn log_writes(db: *mut ffi::sqlite3) -> Option<u64> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: asks SQLite for the connection's log file; only read when it has our methods.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&mut file as *mut *mut ffi::sqlite3_file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods != &LOG_METHODS {
            return None;
        }
        Some(log(file).writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::exec::{scratch_dir, Arg, Native};

    #[test]
    fn a_commit_frame_header_is_known_by_its_size_field() {
        let mut h = [0u8; FRAME_HEADER];
        h[3] = 7; // page number
        assert!(!is_commit_header(&h));
        h[7] = 12; // database size after the commit
        assert!(is_commit_header(&h));
        assert!(!is_commit_header(&h[..20]));
    }

    /// Sets an integer file control of the main database of connection `db`.
    unsafe fn set_int(db: *mut ffi::sqlite3, op: std::ffi::c_int, value: std::ffi::c_int) {
        let mut v = value;
        let rc = ffi::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            op,
            (&mut v as *mut std::ffi::c_int).cast(),
        );
        assert_eq!(rc, ffi::SQLITE_OK);
    }

    /// A WAL database with table `t`, a writer through the VFS (with `pragmas`) and a reader
    /// through SQLite's default VFS.
    fn pair(tag: &str, pragmas: &str) -> (Native, Native, std::path::PathBuf) {
        pair_reserving(tag, pragmas, 0)
    }

    /// [`pair`], with `reserved` bytes kept unused (zero) at the end of every page.
    fn pair_reserving(
        tag: &str,
        pragmas: &str,
        reserved: std::ffi::c_int,
    ) -> (Native, Native, std::path::PathBuf) {
        let dir = scratch_dir(tag);
        let path = dir.join("t.db");
        let setup = rusqlite::Connection::open(&path).unwrap();
        // SAFETY: the handle of an open connection, before the database is written.
        unsafe { set_int(setup.handle(), ffi::SQLITE_FCNTL_RESERVE_BYTES, reserved) };
        setup
            .execute_batch(
                "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; \
                 CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL);",
            )
            .unwrap();
        drop(setup);
        let path = path.to_str().unwrap();
        let writer = Native::open_gathering(path, pragmas).unwrap();
        let reader = Native::open(path, "").unwrap();
        (writer, reader, dir)
    }

    fn intact(c: &mut Native) {
        let ok: Vec<String> = c
            .query("PRAGMA integrity_check", &[], |r| r.str("integrity_check"))
            .unwrap();
        assert_eq!(ok, ["ok"]);
    }

    /// What `c` sees of `t`: its rows, and the sum of their lengths.
    fn seen(c: &mut Native) -> (i64, i64) {
        c.query(
            "SELECT count(*) AS n, coalesce(sum(length(v)), 0) AS len FROM t",
            &[],
            |r| Ok((r.i64("n")?, r.i64("len")?)),
        )
        .unwrap()[0]
    }

    fn insert(c: &mut Native, from: i64, rows: i64, len: usize) {
        for k in from..from + rows {
            c.execute(
                "INSERT INTO t (k, v) VALUES ($1, $2)",
                &[Arg::I(k), Arg::S(format!("{k:0len$}"))],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_commit_of_many_pages_is_a_few_writes_and_every_reader_sees_it_at_once() {
        // As the server's writer with `durability = "process"`: no sync at a commit.
        let (mut w, mut r, dir) = pair("walvfs-commit", "PRAGMA synchronous = NORMAL;");
        // The first commit also writes the log's header.
        w.batch("BEGIN IMMEDIATE").unwrap();
        insert(&mut w, 0, 10, 100);
        w.batch("COMMIT").unwrap();
        let mut before = w.log_writes().expect("the writer's log is the VFS's");
        assert_eq!(seen(&mut r), (10, 1000));
        for round in 1..=5i64 {
            // About 100 pages of 2048 bytes: 200 writes without the VFS.
            w.batch("BEGIN IMMEDIATE").unwrap();
            insert(&mut w, round * 1000, 150, 1200);
            w.batch("COMMIT").unwrap();
            let now = w.log_writes().unwrap();
            // 150 rows of 1200 bytes: 150 pages and their index pages, about 330 KB of frames
            // gathered (3 writes of 124 KB), then the commit frame's page.
            assert_eq!(
                now - before,
                4,
                "round {round}: gathered frames, then the commit's page"
            );
            before = now;
            // Another connection, through the default VFS, sees the whole commit.
            assert_eq!(seen(&mut r), (10 + 150 * round, 1000 + 150 * 1200 * round));
        }
        // The reader's log is the default VFS's.
        assert_eq!(r.log_writes(), None);
        let ok: Vec<String> = r
            .query("PRAGMA integrity_check", &[], |r| r.str("integrity_check"))
            .unwrap();
        assert_eq!(ok, ["ok"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn undone_and_oversized_transactions_leave_nothing_behind_for_the_next_writer() {
        // A cache of 20 pages: without `cache_spill = OFF` the writer would write frames of an
        // unfinished transaction to the log, and after its rollback another connection's
        // commit would land where they were gathered.
        let (mut w, mut r, dir) = pair("walvfs-undone", "PRAGMA cache_size = 20;");
        w.batch("BEGIN IMMEDIATE").unwrap();
        insert(&mut w, 0, 3000, 300);
        w.execute("UPDATE t SET v = v || 'x' WHERE k % 7 = 0", &[])
            .unwrap();
        w.batch("COMMIT").unwrap();
        assert_eq!(seen(&mut r), (3000, 3000 * 300 + 429));
        let before = w.log_writes().unwrap();
        // Undone: nothing of it was written, nor is seen.
        w.batch("BEGIN IMMEDIATE").unwrap();
        insert(&mut w, 10_000, 2000, 300);
        w.batch("ROLLBACK").unwrap();
        assert_eq!(
            w.log_writes().unwrap(),
            before,
            "an undone transaction writes nothing"
        );
        assert_eq!(seen(&mut r), (3000, 3000 * 300 + 429));
        // Another connection (SQLite's default VFS) commits where the log ends now; the
        // writer reads it, then commits after it.
        r.batch("BEGIN IMMEDIATE").unwrap();
        insert(&mut r, 20_000, 49, 500);
        r.batch("COMMIT").unwrap();
        assert_eq!(seen(&mut w), (3049, 3000 * 300 + 429 + 49 * 500));
        w.batch("BEGIN IMMEDIATE").unwrap();
        insert(&mut w, 30_000, 10, 50);
        w.batch("COMMIT").unwrap();
        assert_eq!(seen(&mut r), (3059, 3000 * 300 + 429 + 49 * 500 + 500));
        // More than the gathering limit in one commit (about 6 MB of pages).
        let total = 3000 * 300 + 429 + 49 * 500 + 500 + 3000 * 1900;
        w.batch("BEGIN IMMEDIATE").unwrap();
        insert(&mut w, 40_000, 3000, 1900);
        w.batch("COMMIT").unwrap();
        assert_eq!(seen(&mut r), (6059, total));
        // The log copied into the database file and started over, then written again.
        let done: Vec<i64> = r
            .query("PRAGMA wal_checkpoint(TRUNCATE)", &[], |r| r.i64("busy"))
            .unwrap();
        assert_eq!(done, [0]);
        w.batch("BEGIN IMMEDIATE").unwrap();
        insert(&mut w, 50_000, 100, 1000);
        w.batch("COMMIT").unwrap();
        assert_eq!(seen(&mut r), (6159, total + 100_000));
        intact(&mut r);
        drop(w);
        drop(r);
        // Reopened from the files alone.
        let mut again = Native::open(dir.join("t.db").to_str().unwrap(), "").unwrap();
        assert_eq!(seen(&mut again), (6159, total + 100_000));
        drop(again);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn padded_and_synced_commits_are_read_whole() {
        // Without power-safe overwrite, `synchronous = FULL` pads each commit to a sector
        // boundary by repeating its last frame, split around a sync of the log, and every
        // commit ends with a sync. (The split that leaves exactly a frame's last 24 bytes
        // after the sync, which look like a frame header, is written straight to the file by
        // the rule for the first write after a sync; this run is not known to produce it.)
        let (mut w, mut r, dir) = pair_reserving("walvfs-padded", "PRAGMA synchronous = FULL;", 24);
        // SAFETY: the handle of the open connection, before its log is opened.
        unsafe { set_int(w.handle(), ffi::SQLITE_FCNTL_POWERSAFE_OVERWRITE, 0) };
        for k in 0..1500i64 {
            w.batch("BEGIN IMMEDIATE").unwrap();
            insert(&mut w, k, 1, (k % 37) as usize + 1);
            w.batch("COMMIT").unwrap();
            // Every commit, padding included, is read whole by another connection.
            let len: i64 = (0..=k)
                .map(|j| format!("{j:0w$}", w = (j % 37) as usize + 1).len() as i64)
                .sum();
            assert_eq!(seen(&mut r), (k + 1, len), "commit {k}");
        }
        intact(&mut r);
        drop(w);
        drop(r);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
