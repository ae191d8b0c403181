//! SQLite's session extension, declared by hand: capturing a connection's row changes as a
//! changeset on the primary, and applying one on a replica.
//!
//! rusqlite's own `session` feature would switch on build-time bindgen (libclang), so the
//! bundled SQLite is compiled with `SQLITE_ENABLE_SESSION` (see `.cargo/config.toml`) and the
//! few functions used are declared here.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;

use rusqlite::Connection;
use rusqlite::ffi;

#[repr(C)]
struct Sqlite3Session {
    _private: [u8; 0],
}

#[repr(C)]
struct Sqlite3Changegroup {
    _private: [u8; 0],
}

#[repr(C)]
struct Sqlite3ChangesetIter {
    _private: [u8; 0],
}

type TableFilter = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type ConflictHandler = unsafe extern "C" fn(*mut c_void, c_int, *mut Sqlite3ChangesetIter) -> c_int;

unsafe extern "C" {
    fn sqlite3session_create(
        db: *mut ffi::sqlite3,
        db_name: *const c_char,
        session: *mut *mut Sqlite3Session,
    ) -> c_int;
    fn sqlite3session_delete(session: *mut Sqlite3Session);
    fn sqlite3session_object_config(
        session: *mut Sqlite3Session,
        op: c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn sqlite3session_attach(session: *mut Sqlite3Session, table: *const c_char) -> c_int;
    fn sqlite3session_table_filter(
        session: *mut Sqlite3Session,
        filter: Option<TableFilter>,
        ctx: *mut c_void,
    );
    fn sqlite3session_isempty(session: *mut Sqlite3Session) -> c_int;
    fn sqlite3session_changeset(
        session: *mut Sqlite3Session,
        size: *mut c_int,
        changeset: *mut *mut c_void,
    ) -> c_int;
    fn sqlite3changegroup_new(group: *mut *mut Sqlite3Changegroup) -> c_int;
    fn sqlite3changegroup_add(
        group: *mut Sqlite3Changegroup,
        size: c_int,
        data: *mut c_void,
    ) -> c_int;
    fn sqlite3changegroup_output(
        group: *mut Sqlite3Changegroup,
        size: *mut c_int,
        data: *mut *mut c_void,
    ) -> c_int;
    fn sqlite3changegroup_delete(group: *mut Sqlite3Changegroup);
    fn sqlite3changeset_apply_v2(
        db: *mut ffi::sqlite3,
        size: c_int,
        changeset: *mut c_void,
        filter: Option<TableFilter>,
        conflict: Option<ConflictHandler>,
        ctx: *mut c_void,
        rebase: *mut *mut c_void,
        rebase_size: *mut c_int,
        flags: c_int,
    ) -> c_int;
}

/// A failure of the session extension, with SQLite's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChangesetError(pub String);

fn sqlite_error(conn: &Connection, code: c_int, what: &str) -> ChangesetError {
    // SAFETY: the handle is valid while `conn` lives; sqlite3_errmsg returns a string
    // owned by the connection that stays valid until the next call on it.
    let message = unsafe {
        let text = ffi::sqlite3_errmsg(conn.handle());
        if text.is_null() {
            String::new()
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    };
    ChangesetError(format!("{what} failed (SQLite code {code}): {message}"))
}

/// Tables a capture ignores: shardgate's own bookkeeping (the log itself, a replica's applied
/// position) which is not replicated as rows. `_shardgate_columns` is replicated: it holds the
/// declared types replicas report.
pub fn is_unreplicated_table(name: &str) -> bool {
    name.starts_with("sqlite_")
        || (name.starts_with(crate::storage::INTERNAL_PREFIX) && name != "_shardgate_columns")
}

unsafe extern "C" fn capture_filter(_ctx: *mut c_void, table: *const c_char) -> c_int {
    if table.is_null() {
        return 0;
    }
    // SAFETY: SQLite passes a NUL-terminated table name.
    let name = unsafe { CStr::from_ptr(table) }.to_string_lossy();
    c_int::from(!is_unreplicated_table(&name))
}

/// Row changes recorded on one connection's `main` database since the capture started, for
/// every table, including tables without a PRIMARY KEY (by rowid).
///
/// The capture belongs to the connection it was started on and must be dropped before that
/// connection closes; `storage::SqlConn` owns both and drops the capture first.
pub struct Capture {
    session: *mut Sqlite3Session,
}

// SAFETY: the session is only used together with its connection, which moves between threads
// with it but is never used from two threads at once.
unsafe impl Send for Capture {}

impl Capture {
    pub fn start(conn: &Connection) -> Result<Capture, ChangesetError> {
        let mut session = ptr::null_mut();
        let main = c"main";
        // SAFETY: valid connection handle and out-pointer.
        let code = unsafe { sqlite3session_create(conn.handle(), main.as_ptr(), &mut session) };
        if code != ffi::SQLITE_OK {
            return Err(sqlite_error(conn, code, "sqlite3session_create"));
        }
        let capture = Capture { session };
        let mut rowid: c_int = 1;
        // SAFETY: `session` was just created; ROWID must be configured before attaching.
        let code = unsafe {
            sqlite3session_object_config(
                capture.session,
                ffi::SQLITE_SESSION_OBJCONFIG_ROWID,
                (&mut rowid as *mut c_int).cast(),
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(sqlite_error(conn, code, "sqlite3session_object_config"));
        }
        // SAFETY: valid session; the filter is a plain function without context.
        unsafe {
            sqlite3session_table_filter(capture.session, Some(capture_filter), ptr::null_mut());
        }
        // SAFETY: a NULL table name attaches every table of the database.
        let code = unsafe { sqlite3session_attach(capture.session, ptr::null()) };
        if code != ffi::SQLITE_OK {
            return Err(sqlite_error(conn, code, "sqlite3session_attach"));
        }
        Ok(capture)
    }

    pub fn is_empty(&self) -> bool {
        // SAFETY: valid session.
        unsafe { sqlite3session_isempty(self.session) != 0 }
    }

    /// The changeset of everything captured so far (empty if nothing changed).
    pub fn changeset(&self, conn: &Connection) -> Result<Vec<u8>, ChangesetError> {
        let mut size: c_int = 0;
        let mut buffer: *mut c_void = ptr::null_mut();
        // SAFETY: valid session and out-pointers; the buffer is freed below.
        let code = unsafe { sqlite3session_changeset(self.session, &mut size, &mut buffer) };
        if code != ffi::SQLITE_OK {
            return Err(sqlite_error(conn, code, "sqlite3session_changeset"));
        }
        // SAFETY: SQLite allocated `size` bytes at `buffer` for us.
        Ok(unsafe { take_sqlite_buffer(buffer, size) })
    }
}

/// Copies and frees a buffer SQLite allocated for the caller.
///
/// # Safety
/// `buffer` is NULL or was allocated by SQLite and holds `size` bytes; it is not used again.
unsafe fn take_sqlite_buffer(buffer: *mut c_void, size: c_int) -> Vec<u8> {
    let bytes = if buffer.is_null() || size <= 0 {
        Vec::new()
    } else {
        // SAFETY: the caller guarantees `size` readable bytes at `buffer`.
        unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), size as usize) }.to_vec()
    };
    // SAFETY: allocated by SQLite (sqlite3_free accepts NULL).
    unsafe { ffi::sqlite3_free(buffer) };
    bytes
}

/// The row changes of consecutive transactions merged into one changeset, so that a replica
/// applies a batch with one `sqlite3changeset_apply` (which prepares its statements once per
/// table per call) instead of one per transaction; a row changed several times is written once.
/// The transactions merged must share one schema: DDL in between ends a merge.
pub struct Merged {
    group: *mut Sqlite3Changegroup,
    empty: bool,
}

// SAFETY: the changegroup is plain memory owned by this value; it is never shared.
unsafe impl Send for Merged {}

impl Merged {
    pub fn new() -> Result<Merged, ChangesetError> {
        let mut group = ptr::null_mut();
        // SAFETY: valid out-pointer.
        let code = unsafe { sqlite3changegroup_new(&mut group) };
        if code != ffi::SQLITE_OK || group.is_null() {
            return Err(ChangesetError(format!(
                "sqlite3changegroup_new failed (code {code})"
            )));
        }
        Ok(Merged { group, empty: true })
    }

    pub fn add(&mut self, changeset: &[u8]) -> Result<(), ChangesetError> {
        if changeset.is_empty() {
            return Ok(());
        }
        let size = c_int::try_from(changeset.len())
            .map_err(|_| ChangesetError("changeset larger than 2 GiB".into()))?;
        // SAFETY: the changegroup only reads the buffer, during the call.
        let code = unsafe {
            sqlite3changegroup_add(self.group, size, changeset.as_ptr().cast_mut().cast())
        };
        if code != ffi::SQLITE_OK {
            return Err(ChangesetError(format!(
                "merging changesets failed (code {code})"
            )));
        }
        self.empty = false;
        Ok(())
    }

    /// Applies everything merged so far (see [`apply`]) and starts over empty.
    pub fn apply_and_clear(&mut self, conn: &Connection) -> Result<(), ChangesetError> {
        if self.empty {
            return Ok(());
        }
        let mut size: c_int = 0;
        let mut buffer: *mut c_void = ptr::null_mut();
        // SAFETY: valid changegroup and out-pointers.
        let code = unsafe { sqlite3changegroup_output(self.group, &mut size, &mut buffer) };
        // SAFETY: on success SQLite allocated `size` bytes at `buffer`; on failure it is NULL.
        let changeset = unsafe { take_sqlite_buffer(buffer, size) };
        if code != ffi::SQLITE_OK {
            return Err(sqlite_error(conn, code, "sqlite3changegroup_output"));
        }
        *self = Merged::new()?;
        apply(conn, &changeset)
    }
}

impl Drop for Merged {
    fn drop(&mut self) {
        // SAFETY: the changegroup is deleted exactly once.
        unsafe { sqlite3changegroup_delete(self.group) };
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: the session is deleted exactly once, before its connection closes.
        unsafe { sqlite3session_delete(self.session) };
    }
}

/// What went wrong while applying, noted by the callbacks.
#[derive(Default)]
struct ApplyProblems {
    conn: *mut ffi::sqlite3,
    problem: Option<String>,
}

unsafe extern "C" fn apply_filter(ctx: *mut c_void, table: *const c_char) -> c_int {
    // SAFETY: ctx is the ApplyProblems passed to sqlite3changeset_apply_v2, alive for the call.
    let problems = unsafe { &mut *ctx.cast::<ApplyProblems>() };
    if table.is_null() {
        return 0;
    }
    // SAFETY: SQLite passes a NUL-terminated table name.
    let name = unsafe { CStr::from_ptr(table) };
    // A table missing on the replica would silently skip its rows: that is divergence.
    let Ok(table_name) = CString::new(name.to_bytes()) else {
        return 0;
    };
    // SAFETY: valid connection handle; sqlite3_table_column_metadata with a NULL column only
    // checks that the table exists.
    let exists = unsafe {
        ffi::sqlite3_table_column_metadata(
            problems.conn,
            c"main".as_ptr(),
            table_name.as_ptr(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    } == ffi::SQLITE_OK;
    if !exists && problems.problem.is_none() {
        problems.problem = Some(format!(
            "table {} does not exist on the replica",
            name.to_string_lossy()
        ));
    }
    c_int::from(exists)
}

unsafe extern "C" fn abort_on_conflict(
    ctx: *mut c_void,
    kind: c_int,
    _iter: *mut Sqlite3ChangesetIter,
) -> c_int {
    // SAFETY: ctx is the ApplyProblems passed to sqlite3changeset_apply_v2, alive for the call.
    let problems = unsafe { &mut *ctx.cast::<ApplyProblems>() };
    if problems.problem.is_none() {
        let what = match kind {
            ffi::SQLITE_CHANGESET_DATA => "a row differs from the primary's before-image",
            ffi::SQLITE_CHANGESET_NOTFOUND => "a row to change is missing",
            ffi::SQLITE_CHANGESET_CONFLICT => "a row to insert already exists",
            ffi::SQLITE_CHANGESET_CONSTRAINT => "a constraint failed",
            ffi::SQLITE_CHANGESET_FOREIGN_KEY => "a foreign key failed",
            _ => "an unknown conflict",
        };
        problems.problem = Some(format!("conflict while applying: {what}"));
    }
    ffi::SQLITE_CHANGESET_ABORT
}

/// Applies `changeset` inside the caller's transaction. Any conflict or missing table means
/// the replica has diverged: the apply is aborted and the reason returned.
pub fn apply(conn: &Connection, changeset: &[u8]) -> Result<(), ChangesetError> {
    if changeset.is_empty() {
        return Ok(());
    }
    let size = c_int::try_from(changeset.len())
        .map_err(|_| ChangesetError("changeset larger than 2 GiB".into()))?;
    let mut problems = ApplyProblems {
        // SAFETY: valid handle for the duration of this call.
        conn: unsafe { conn.handle() },
        problem: None,
    };
    // SAFETY: the changeset buffer is only read by SQLite; the callbacks get `problems`,
    // which outlives the call. NOSAVEPOINT: the caller's transaction is the unit of apply.
    let code = unsafe {
        sqlite3changeset_apply_v2(
            conn.handle(),
            size,
            changeset.as_ptr().cast_mut().cast(),
            Some(apply_filter),
            Some(abort_on_conflict),
            (&mut problems as *mut ApplyProblems).cast(),
            ptr::null_mut(),
            ptr::null_mut(),
            ffi::SQLITE_CHANGESETAPPLY_NOSAVEPOINT,
        )
    };
    if let Some(problem) = problems.problem {
        return Err(ChangesetError(problem));
    }
    if code != ffi::SQLITE_OK {
        return Err(sqlite_error(conn, code, "sqlite3changeset_apply_v2"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Connection, Connection) {
        let schema = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
                      CREATE TABLE h (a INT, b TEXT);
                      CREATE TABLE _shardgate_log (lsn INTEGER PRIMARY KEY);";
        let primary = Connection::open_in_memory().unwrap();
        let replica = Connection::open_in_memory().unwrap();
        primary.execute_batch(schema).unwrap();
        replica.execute_batch(schema).unwrap();
        (primary, replica)
    }

    fn dump(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| {
            Ok(format!(
                "{:?}|{:?}",
                r.get::<_, rusqlite::types::Value>(0)?,
                r.get::<_, rusqlite::types::Value>(1)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn captured_rows_apply_on_another_database_including_rowid_tables() {
        let (primary, replica) = pair();
        let capture = Capture::start(&primary).unwrap();
        assert!(capture.is_empty());
        primary
            .execute_batch(
                "INSERT INTO t (v) VALUES ('a'), ('b');
                 UPDATE t SET v = 'B' WHERE id = 2;
                 INSERT INTO h VALUES (1, 'x'), (1, 'x');
                 INSERT INTO _shardgate_log VALUES (1);",
            )
            .unwrap();
        let changeset = capture.changeset(&primary).unwrap();
        drop(capture);
        replica.execute_batch("BEGIN").unwrap();
        apply(&replica, &changeset).unwrap();
        replica.execute_batch("COMMIT").unwrap();
        for sql in ["SELECT id, v FROM t ORDER BY id", "SELECT rowid, b FROM h"] {
            assert_eq!(dump(&primary, sql), dump(&replica, sql), "{sql}");
        }
        assert_eq!(
            dump(&replica, "SELECT lsn, lsn FROM _shardgate_log"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn merged_transactions_apply_to_the_same_result() {
        let (primary, replica) = pair();
        replica
            .execute_batch("INSERT INTO t VALUES (9, 'kept'), (10, 'gone')")
            .unwrap();
        primary
            .execute_batch("INSERT INTO t VALUES (9, 'kept'), (10, 'gone')")
            .unwrap();
        let mut merged = Merged::new().unwrap();
        for transaction in [
            "INSERT INTO t VALUES (1, 'a'), (2, 'b'); INSERT INTO h VALUES (1, 'x');",
            "UPDATE t SET v = 'B' WHERE id = 2; DELETE FROM t WHERE id = 10;",
            "UPDATE t SET v = 'BB' WHERE id = 2; INSERT INTO h VALUES (2, 'y');
             INSERT INTO t VALUES (3, 'short-lived');",
            "DELETE FROM t WHERE id = 3; DELETE FROM h WHERE a = 1;",
        ] {
            let capture = Capture::start(&primary).unwrap();
            primary.execute_batch(transaction).unwrap();
            merged.add(&capture.changeset(&primary).unwrap()).unwrap();
        }
        replica.execute_batch("BEGIN").unwrap();
        merged.apply_and_clear(&replica).unwrap();
        // Cleared: applying again changes nothing and is no conflict.
        merged.apply_and_clear(&replica).unwrap();
        replica.execute_batch("COMMIT").unwrap();
        for sql in ["SELECT id, v FROM t ORDER BY id", "SELECT rowid, b FROM h"] {
            assert_eq!(dump(&primary, sql), dump(&replica, sql), "{sql}");
        }
    }

    #[test]
    fn applying_twice_is_a_conflict_not_a_silent_success() {
        let (primary, replica) = pair();
        let capture = Capture::start(&primary).unwrap();
        primary
            .execute_batch("INSERT INTO t VALUES (1, 'a')")
            .unwrap();
        let changeset = capture.changeset(&primary).unwrap();
        apply(&replica, &changeset).unwrap();
        let err = apply(&replica, &changeset).unwrap_err();
        assert!(err.0.contains("already exists"), "{err}");
    }

    #[test]
    fn a_missing_table_on_the_replica_is_reported() {
        let (primary, replica) = pair();
        replica.execute_batch("DROP TABLE t").unwrap();
        let capture = Capture::start(&primary).unwrap();
        primary
            .execute_batch("INSERT INTO t VALUES (1, 'a')")
            .unwrap();
        let changeset = capture.changeset(&primary).unwrap();
        let err = apply(&replica, &changeset).unwrap_err();
        assert!(err.0.contains("does not exist"), "{err}");
    }
}
