//! A client session: its settings, its transaction state, and the registry that lets a
//! CancelRequest find the session it is for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::storage::{BackendSession, Canceller};

/// Settings the proxy answers itself (`SET`, `SHOW`, `current_setting`).
#[derive(Debug, Clone)]
pub struct Settings {
    values: HashMap<String, (String, String)>,
    defaults: HashMap<String, (String, String)>,
}

/// Settings PostgreSQL reports to the client with ParameterStatus when they change.
pub const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "standard_conforming_strings",
    "integer_datetimes",
    "IntervalStyle",
    "server_version",
    "server_encoding",
    "is_superuser",
    "session_authorization",
];

impl Settings {
    pub fn new(server_version: &str, user: &str, application_name: &str) -> Settings {
        let mut defaults = HashMap::new();
        for (name, value) in [
            ("server_version", server_version),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("IntervalStyle", "postgres"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("application_name", application_name),
            ("search_path", "\"$user\", public"),
            ("extra_float_digits", "1"),
            ("transaction_isolation", "serializable"),
            ("default_transaction_isolation", "serializable"),
            ("transaction_read_only", "off"),
            ("default_transaction_read_only", "off"),
            ("max_identifier_length", "63"),
            ("is_superuser", "off"),
            ("session_authorization", user),
            ("statement_timeout", "0"),
            ("lock_timeout", "0"),
            ("idle_in_transaction_session_timeout", "0"),
            ("lc_messages", "C"),
            ("lc_monetary", "C"),
            ("lc_numeric", "C"),
            ("lc_time", "C"),
            ("bytea_output", "hex"),
            ("client_min_messages", "notice"),
            ("jit", "off"),
            ("synchronous_commit", "on"),
            ("max_connections", "10000"),
            ("server_version_num", "150000"),
        ] {
            defaults.insert(
                name.to_ascii_lowercase(),
                (name.to_string(), value.to_string()),
            );
        }
        Settings {
            values: defaults.clone(),
            defaults,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or with `None` resets) a setting; returns its canonical name and new value.
    /// Unknown names are accepted when qualified (`myapp.x`), as PostgreSQL does.
    pub fn set(&mut self, name: &str, value: Option<String>) -> Option<(String, String)> {
        let key = name.to_ascii_lowercase();
        let canonical = self
            .defaults
            .get(&key)
            .map(|(n, _)| n.clone())
            .or_else(|| name.contains('.').then(|| name.to_string()))?;
        let value = match value {
            Some(v) => v,
            None => self
                .defaults
                .get(&key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        };
        self.values.insert(key, (canonical.clone(), value.clone()));
        Some((canonical, value))
    }

    pub fn reset_all(&mut self) {
        self.values = self.defaults.clone();
    }
}

/// A transaction's hold on the shards it touched: one connection per shard, each inside
/// BEGIN, opened when the transaction first needs that shard.
pub struct Txn {
    pub read_only: bool,
    pub sessions: Vec<(usize, Box<dyn BackendSession>)>,
    /// The shard this transaction has written on.
    pub wrote_on: Option<usize>,
    /// A transaction the proxy opened itself (a multi-statement query, COPY, a statement
    /// over several shards) may write on several shards; a client's may not.
    pub spans_shards: bool,
    /// Savepoints in force, replayed on a shard joined later.
    pub savepoints: Vec<String>,
}

impl Txn {
    pub fn new(read_only: bool, spans_shards: bool) -> Txn {
        Txn {
            read_only,
            sessions: Vec::new(),
            wrote_on: None,
            spans_shards,
            savepoints: Vec::new(),
        }
    }
}

/// Where a session stands with respect to transactions.
pub enum TxnState {
    Idle,
    /// Inside BEGIN ... COMMIT, pinned to one connection per shard it touched.
    Active(Txn),
    /// An error happened inside the transaction: only ROLLBACK gets through.
    Failed(Txn),
}

impl TxnState {
    pub fn take(&mut self) -> TxnState {
        std::mem::replace(self, TxnState::Idle)
    }
}

/// Rows of a `COPY ... FROM STDIN` being received.
pub struct CopyInState {
    pub insert_sql: std::sync::Arc<str>,
    pub types: Vec<crate::sql::types::PgType>,
    pub options: crate::sql::copy::CopyOptions,
    pub pending: Vec<u8>,
    pub rows: Vec<Vec<rusqlite::types::Value>>,
    pub count: u64,
    pub header_pending: bool,
    pub error: Option<crate::error::Error>,
    /// The transaction the rows go to; committed at CopyDone unless it is the client's.
    pub txn: Option<Txn>,
    pub own_transaction: bool,
    pub target: CopyTarget,
}

/// Which shards the rows of a COPY go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyTarget {
    Shard(usize),
    /// A sharded table: by the key at this place in each row.
    ByKey {
        position: usize,
    },
    /// A reference table: every shard.
    Everywhere,
}

pub struct SessionState {
    pub txn: TxnState,
    pub settings: Settings,
    pub copy_in: Option<CopyInState>,
}

/// One client connection's session.
pub struct Session {
    pub user: String,
    pub state: tokio::sync::Mutex<SessionState>,
    pub canceller: Canceller,
    /// Per shard, the replication log position of this session's last committed write there:
    /// its reads go only to replicas that have applied it (read-your-writes).
    pub last_write_lsn: Vec<std::sync::atomic::AtomicU64>,
}

/// Sessions by (pid, secret key), for CancelRequest.
#[derive(Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<i32, (Vec<u8>, Canceller)>>,
}

impl SessionRegistry {
    pub fn register(&self, pid: i32, secret: Vec<u8>, canceller: Canceller) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(pid, (secret, canceller));
        }
    }

    pub fn unregister(&self, pid: i32) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&pid);
        }
    }

    pub fn cancel(&self, pid: i32, secret: &[u8]) {
        let canceller = self.sessions.lock().ok().and_then(|s| {
            s.get(&pid)
                .filter(|(key, _)| key.as_slice() == secret)
                .map(|(_, c)| c.clone())
        });
        if let Some(canceller) = canceller {
            canceller.cancel();
        }
    }

    /// Interrupts every session's running statement (shutdown after its timeout).
    pub fn cancel_all(&self) {
        if let Ok(sessions) = self.sessions.lock() {
            sessions
                .values()
                .for_each(|(_, canceller)| canceller.cancel());
        }
    }
}

/// Removes a session from the registry when its connection ends.
pub struct RegistryGuard {
    pub registry: Arc<SessionRegistry>,
    pub pid: i32,
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        self.registry.unregister(self.pid);
    }
}
