//! Opening a SQLite connection the way shardgate needs it: WAL, pragmas, the SQL functions
//! PostgreSQL clients call, the emulated `pg_catalog`, and the authorizer that keeps clients
//! away from the server's files and shardgate's own tables.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Connection, OpenFlags};

use super::error::StorageError;
use super::pool::RunTimes;
use super::{pg_catalog, schema};
use crate::config::SyncMode;
use crate::replication::log::{LogWriter, Position};

/// Settings every connection to a database file gets.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub synchronous: SyncMode,
    pub busy_timeout: Duration,
    pub page_cache_mib: u32,
    pub mmap_mib: u32,
    /// The logical database name clients use (what `current_database()` says).
    pub database: String,
    /// What `version()` says.
    pub server_version: String,
    /// The role the emulated catalog names as owner of every object.
    pub owner: String,
    /// Set on a primary with replicas: its writer logs every write transaction and announces
    /// each committed position here.
    pub replication_log: Option<tokio::sync::watch::Sender<Position>>,
}

impl ConnectionSettings {
    /// The settings a configuration gives every connection (no replication log).
    pub fn new(config: &crate::config::Config) -> ConnectionSettings {
        ConnectionSettings {
            synchronous: config.storage.synchronous,
            busy_timeout: config.storage.busy_timeout,
            page_cache_mib: config.storage.page_cache_mib,
            mmap_mib: config.storage.mmap_mib,
            database: config.database.clone(),
            server_version: crate::SERVER_VERSION.to_string(),
            owner: config
                .users
                .first()
                .map(|u| u.name.clone())
                .unwrap_or_default(),
            replication_log: None,
        }
    }
}

/// An in-memory database with the SQL functions and LIKE semantics of every shardgate
/// connection, for work the proxy does itself (merging shard results).
pub fn open_scratch(settings: &ConnectionSettings) -> Result<Connection, StorageError> {
    let conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "case_sensitive_like", "ON")?;
    register_functions(&conn, settings)?;
    Ok(conn)
}

/// Whether a connection may write. Read connections are `query_only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

/// A SQLite connection plus the switch that lets shardgate's own statements past the
/// authorizer, and on a replicated primary's writer, the replication log writer.
pub struct SqlConn {
    // Declared first so that it is dropped first: the log's capture must end before the
    // connection it records closes.
    log: Option<RefCell<LogWriter>>,
    pub conn: Connection,
    internal: Arc<AtomicBool>,
    pub(super) run_times: RunTimes,
}

impl SqlConn {
    /// Runs `f` with the authorizer letting shardgate's own statements through (internal
    /// tables, catalog refreshes). The switch is reset even if `f` fails.
    pub fn as_internal<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        self.internal.store(true, Ordering::Release);
        let _reset = Reset(&self.internal);
        f(&self.conn)
    }

    /// Whether this connection writes the replication log.
    pub fn logs_writes(&self) -> bool {
        self.log.is_some()
    }

    pub fn begin(&self) -> Result<(), StorageError> {
        self.conn.execute_batch("BEGIN")?;
        if let Some(log) = &self.log {
            let started = self.as_internal(|c| log.borrow_mut().begin(c));
            if let Err(e) = started {
                self.rollback();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Commits; on a logging writer the transaction's log record is written inside it first.
    /// Returns the record's LSN if the transaction changed anything. On failure the
    /// transaction is rolled back: no write is committed without its record.
    pub fn commit(&self) -> Result<Option<u64>, StorageError> {
        let Some(log) = &self.log else {
            self.conn.execute_batch("COMMIT")?;
            return Ok(None);
        };
        // The session extension reads the schema (pragmas) that clients may not.
        let pending = self
            .as_internal(|c| log.borrow_mut().prepare_commit(c))
            .and_then(|pending| {
                self.conn.execute_batch("COMMIT")?;
                Ok(pending)
            });
        match pending {
            Ok(pending) => {
                let mut log = log.borrow_mut();
                log.abandon();
                Ok(pending.map(|p| log.committed(p)))
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Rolls back whatever transaction is open (a no-op outside one).
    pub fn rollback(&self) {
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!("rollback failed: {e}");
        }
        if let Some(log) = &self.log {
            log.borrow_mut().abandon();
        }
    }

    /// Runs DDL statements with the log capture bracketing them (a changeset cannot span a
    /// schema change); the DDL itself becomes a part of the transaction's record.
    pub fn with_ddl_logged<T>(
        &self,
        statements: &[Arc<str>],
        run: impl FnOnce() -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let Some(log) = &self.log else {
            return run();
        };
        self.as_internal(|c| log.borrow_mut().before_ddl(c))?;
        let output = run()?;
        let sql = statements
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<_>>()
            .join(";\n");
        self.as_internal(|c| log.borrow_mut().after_ddl(c, sql))?;
        Ok(output)
    }
}

/// Pragmas a client may read (never set): they only describe the schema or the file.
const READABLE_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "schema_version",
    "data_version",
    "page_count",
    "page_size",
    "freelist_count",
    "encoding",
    "user_version",
];

pub fn open(
    path: &Path,
    role: Role,
    settings: &ConnectionSettings,
) -> Result<SqlConn, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(settings.busy_timeout)?;
    if role == Role::Writer {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", settings.synchronous.pragma_value())?;
    // A negative cache_size is in KiB.
    conn.pragma_update(
        None,
        "cache_size",
        -i64::from(settings.page_cache_mib) * 1024,
    )?;
    conn.pragma_update(
        None,
        "mmap_size",
        i64::from(settings.mmap_mib) * 1024 * 1024,
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // PostgreSQL's LIKE is case-sensitive; ILIKE is rewritten to lower() LIKE lower().
    conn.pragma_update(None, "case_sensitive_like", "ON")?;
    conn.set_prepared_statement_cache_capacity(512);
    register_functions(&conn, settings)?;
    rusqlite::vtab::series::load_module(&conn)?;
    if role == Role::Writer {
        schema::create_internal_tables(&conn)?;
    }
    pg_catalog::install(
        &conn,
        &pg_catalog::ServerInfo {
            database: settings.database.clone(),
            user: settings.owner.clone(),
            server_version: settings.server_version.clone(),
        },
    )?;
    if role == Role::Reader {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    // VACUUM INTO works by attaching its target: with no attachment slot left it cannot.
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED,
        attached_count(&conn)?,
    )?;
    let log = match (&settings.replication_log, role) {
        (Some(committed), Role::Writer) => {
            Some(RefCell::new(LogWriter::open(&conn, committed.clone())?))
        }
        _ => None,
    };
    let internal = Arc::new(AtomicBool::new(false));
    install_authorizer(&conn, internal.clone(), log.is_some())?;
    Ok(SqlConn {
        log,
        conn,
        internal,
        run_times: RunTimes::default(),
    })
}

/// The one connection that writes a replica: the log applier. Foreign keys and triggers are
/// off on it, because their effects on the primary are already in the changesets.
pub fn open_replica_applier(
    path: &Path,
    settings: &ConnectionSettings,
) -> Result<SqlConn, StorageError> {
    let settings = ConnectionSettings {
        replication_log: None,
        ..settings.clone()
    };
    let conn = open(path, Role::Writer, &settings)?;
    conn.as_internal(|c| {
        c.pragma_update(None, "foreign_keys", "OFF")?;
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
            false,
        )
    })?;
    Ok(conn)
}

fn attached_count(conn: &Connection) -> Result<i32, StorageError> {
    let mut stmt = conn.prepare("SELECT count(*) FROM pragma_database_list WHERE seq > 1")?;
    let n: i64 = stmt.query_row([], |row| row.get(0))?;
    Ok(n as i32)
}

/// `replicated`: the connection writes the replication log, whose changesets cannot carry
/// virtual tables, so none may be created through it.
fn install_authorizer(
    conn: &Connection,
    internal: Arc<AtomicBool>,
    replicated: bool,
) -> Result<(), StorageError> {
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        if internal.load(Ordering::Acquire) {
            return Authorization::Allow;
        }
        if replicated && matches!(ctx.action, AuthAction::CreateVtable { .. }) {
            return Authorization::Deny;
        }
        authorize_client(&ctx)
    }))?;
    Ok(())
}

fn is_internal_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with(schema::INTERNAL_PREFIX)
}

/// The authorizer's decision for a client statement.
fn authorize_client(ctx: &AuthContext<'_>) -> Authorization {
    let in_catalog = ctx.database_name == Some("pg_catalog");
    match ctx.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            let reads_schema = name.starts_with("table_")
                || name.starts_with("index_")
                || name == "foreign_key_list";
            if READABLE_PRAGMAS.contains(&name.as_str()) && (pragma_value.is_none() || reads_schema)
            {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        AuthAction::Function { function_name } => {
            let name = function_name.to_ascii_lowercase();
            if name == "load_extension"
                || name == "fts3_tokenizer"
                || name.starts_with("readfile")
                || name.starts_with("writefile")
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        // The emulated catalog keeps its own helper tables; they describe only the schema.
        AuthAction::Read { table_name, .. } => {
            if is_internal_table(table_name) && !in_catalog {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. } => {
            if in_catalog || is_internal_table(table_name) {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::CreateView { .. } | AuthAction::DropView { .. } if in_catalog => {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}

fn register_functions(
    conn: &Connection,
    settings: &ConnectionSettings,
) -> Result<(), StorageError> {
    let deterministic = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let volatile = FunctionFlags::SQLITE_UTF8;
    let version = settings.server_version.clone();
    conn.create_scalar_function("version", 0, deterministic, move |_| {
        Ok(format!("PostgreSQL {version}"))
    })?;
    let database = settings.database.clone();
    conn.create_scalar_function("current_database", 0, deterministic, move |_| {
        Ok(database.clone())
    })?;
    conn.create_scalar_function("current_schema", 0, deterministic, |_| Ok("public"))?;
    // now() and friends are the transaction's start time in PostgreSQL; SQLite evaluates
    // CURRENT_TIMESTAMP once per statement, which is what autocommit clients observe.
    for name in [
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "clock_timestamp",
    ] {
        conn.create_scalar_function(name, 0, volatile, |_| {
            Ok(chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S%.6f+00")
                .to_string())
        })?;
    }
    conn.create_scalar_function(
        crate::sql::numeric::ROUND_FUNCTION,
        2,
        deterministic,
        |ctx| {
            let scale: u32 = ctx.get(1)?;
            match ctx.get::<rusqlite::types::Value>(0)? {
                rusqlite::types::Value::Real(f) => crate::sql::numeric::round(f, scale)
                    .map(rusqlite::types::Value::Real)
                    .map_err(|e| super::checked::DataError::from_sql(&e).into()),
                // Integers need no rounding; text that is not a number is left to the input
                // checks, not turned into a number here.
                other => Ok(other),
            }
        },
    )?;
    // PostgreSQL's random() is a float in [0, 1); SQLite's is a 64-bit integer.
    conn.create_scalar_function("random", 0, volatile, |_| Ok(rand::random::<f64>()))?;
    conn.create_scalar_function("gen_random_uuid", 0, volatile, |_| {
        Ok(uuid::Uuid::new_v4().to_string())
    })?;
    conn.create_scalar_function("pg_backend_pid", 0, deterministic, |_| {
        Ok(std::process::id() as i64)
    })?;
    // SQLite's upper/lower fold ASCII only; PostgreSQL's fold every letter (ILIKE uses lower).
    conn.create_scalar_function("upper", 1, deterministic, |ctx| {
        fold_case(ctx, str::to_ascii_uppercase, char::to_uppercase)
    })?;
    conn.create_scalar_function("lower", 1, deterministic, |ctx| {
        fold_case(ctx, str::to_ascii_lowercase, char::to_lowercase)
    })?;
    super::checked::register(conn)?;
    conn.create_scalar_function("pg_sleep", 1, volatile, pg_sleep)?;
    Ok(())
}

/// `upper`/`lower` of any value as text (NULL stays NULL), with an ASCII fast path. Like
/// PostgreSQL's (`towupper`/`towlower` per character), a letter whose case mapping is several
/// characters (`ß` → `SS`) stays as it is.
fn fold_case<M: Iterator<Item = char> + ExactSizeIterator>(
    ctx: &rusqlite::functions::Context<'_>,
    ascii: fn(&str) -> String,
    map: fn(char) -> M,
) -> rusqlite::Result<Option<String>> {
    let text = match ctx.get_raw(0) {
        rusqlite::types::ValueRef::Null => return Ok(None),
        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
        rusqlite::types::ValueRef::Real(f) => f.to_string(),
        value => String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned(),
    };
    if text.is_ascii() {
        return Ok(Some(ascii(&text)));
    }
    Ok(Some(
        text.chars()
            .map(|c| {
                let mut mapped = map(c);
                match (mapped.len(), mapped.next()) {
                    (1, Some(single)) => single,
                    _ => c,
                }
            })
            .collect(),
    ))
}

/// PostgreSQL's `pg_sleep(seconds)`: sleeps in short steps, so that a cancel (which
/// interrupts the connection) or shutdown ends it as it ends any statement.
fn pg_sleep(ctx: &rusqlite::functions::Context<'_>) -> rusqlite::Result<rusqlite::types::Null> {
    const STEP: std::time::Duration = std::time::Duration::from_millis(10);
    let seconds = ctx.get::<Option<f64>>(0)?.unwrap_or(0.0);
    let length = std::time::Duration::try_from_secs_f64(seconds.max(0.0))
        .unwrap_or(std::time::Duration::MAX);
    // A length beyond any deadline sleeps until interrupted.
    let deadline = std::time::Instant::now().checked_add(length);
    loop {
        // SAFETY: the handle is this call's own connection, read during the call only.
        let interrupted =
            unsafe { rusqlite::ffi::sqlite3_is_interrupted(ctx.get_connection()?.handle()) != 0 };
        if interrupted {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
                None,
            ));
        }
        let left = deadline.map_or(STEP, |d| {
            d.saturating_duration_since(std::time::Instant::now())
        });
        if left.is_zero() {
            return Ok(rusqlite::types::Null);
        }
        std::thread::sleep(left.min(STEP));
    }
}
