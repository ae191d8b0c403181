//! Opening a SQLite connection the way shardgate needs it: WAL, pragmas, the SQL functions
//! PostgreSQL clients call, the emulated `pg_catalog`, and the authorizer that keeps clients
//! away from the server's files and shardgate's own tables.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Connection, OpenFlags};

use super::error::StorageError;
use super::{pg_catalog, schema};
use crate::config::SyncMode;

/// Settings every connection to a database file gets.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub synchronous: SyncMode,
    pub busy_timeout: Duration,
    /// The logical database name clients use (what `current_database()` says).
    pub database: String,
    /// What `version()` says.
    pub server_version: String,
    /// The role the emulated catalog names as owner of every object.
    pub owner: String,
}

/// Whether a connection may write. Read connections are `query_only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

/// A SQLite connection plus the switch that lets shardgate's own statements past the
/// authorizer.
pub struct SqlConn {
    pub conn: Connection,
    internal: Arc<AtomicBool>,
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
    let internal = Arc::new(AtomicBool::new(false));
    install_authorizer(&conn, internal.clone())?;
    Ok(SqlConn { conn, internal })
}

fn attached_count(conn: &Connection) -> Result<i32, StorageError> {
    let mut stmt = conn.prepare("SELECT count(*) FROM pragma_database_list WHERE seq > 1")?;
    let n: i64 = stmt.query_row([], |row| row.get(0))?;
    Ok(n as i32)
}

fn install_authorizer(conn: &Connection, internal: Arc<AtomicBool>) -> Result<(), StorageError> {
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        if internal.load(Ordering::Acquire) {
            return Authorization::Allow;
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
    conn.create_scalar_function("gen_random_uuid", 0, volatile, |_| {
        Ok(uuid::Uuid::new_v4().to_string())
    })?;
    conn.create_scalar_function("pg_backend_pid", 0, deterministic, |_| {
        Ok(std::process::id() as i64)
    })?;
    Ok(())
}
