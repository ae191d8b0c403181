//! A client session: its settings, its transaction state, and the registry that lets a
//! CancelRequest find the session it is for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::storage::{BackendSession, Canceller};

/// Settings the proxy answers itself (`SET`, `SHOW`, `current_setting`). Only what a session
/// changed is stored per session: a copy of every default cost 9 KB per idle connection.
#[derive(Debug, Clone)]
pub struct Settings {
    user: String,
    application_name: String,
    /// What this session SET, by lower-cased name: (canonical name, value).
    changed: HashMap<String, (String, String)>,
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

/// Every known setting and its default; the two that differ per session are filled in by
/// [`Settings::default_of`].
const DEFAULTS: &[(&str, &str)] = &[
    ("server_version", crate::SERVER_VERSION),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("application_name", ""),
    ("search_path", "\"$user\", public"),
    ("extra_float_digits", "1"),
    ("transaction_isolation", "serializable"),
    ("default_transaction_isolation", "serializable"),
    ("transaction_read_only", "off"),
    ("default_transaction_read_only", "off"),
    ("max_identifier_length", "63"),
    ("is_superuser", "off"),
    ("session_authorization", ""),
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
];

impl Settings {
    pub fn new(user: &str, application_name: &str) -> Settings {
        Settings {
            user: user.to_string(),
            application_name: application_name.to_string(),
            changed: HashMap::new(),
        }
    }

    /// The canonical name and default value of a known setting.
    fn default_of(&self, name: &str) -> Option<(&'static str, &str)> {
        let (canonical, value) = DEFAULTS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))?;
        let value = match *canonical {
            "application_name" => self.application_name.as_str(),
            "session_authorization" => self.user.as_str(),
            _ => value,
        };
        Some((canonical, value))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        match self.changed.get(&name.to_ascii_lowercase()) {
            Some((_, value)) => Some(value.as_str()),
            None => self.default_of(name).map(|(_, value)| value),
        }
    }

    /// Sets (or with `None` resets) a setting; returns its canonical name and new value.
    /// Unknown names are accepted when qualified (`myapp.x`), as PostgreSQL does.
    pub fn set(&mut self, name: &str, value: Option<String>) -> Option<(String, String)> {
        let key = name.to_ascii_lowercase();
        let (canonical, default) = match self.default_of(name) {
            Some((canonical, default)) => (canonical.to_string(), Some(default.to_string())),
            None if name.contains('.') => (name.to_string(), None),
            None => return None,
        };
        let value = match (value, default) {
            (Some(value), _) => value,
            (None, Some(default)) => {
                self.changed.remove(&key);
                return Some((canonical, default));
            }
            (None, None) => String::new(),
        };
        self.changed.insert(key, (canonical.clone(), value.clone()));
        Some((canonical, value))
    }

    pub fn reset_all(&mut self) {
        self.changed.clear();
    }
}

/// A transaction's hold on the shards it touched: one connection per shard, each inside
/// BEGIN, opened when the transaction first needs that shard.
pub struct Txn {
    pub read_only: bool,
    /// How a read-only transaction picks the replica of a shard it joins: the session's
    /// `read_consistency` and `read_from` as of the statement that joins it.
    pub read_policy: crate::router::ReadPolicy,
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
            read_policy: crate::router::ReadPolicy::default(),
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

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn defaults_changes_and_resets() {
        let mut settings = Settings::new("alice", "psql");
        assert_eq!(settings.get("timezone"), Some("UTC"));
        assert_eq!(settings.get("session_authorization"), Some("alice"));
        assert_eq!(settings.get("APPLICATION_NAME"), Some("psql"));
        assert_eq!(settings.get("no_such_setting"), None);

        assert_eq!(
            settings.set("timezone", Some("Europe/Paris".into())),
            Some(("TimeZone".into(), "Europe/Paris".into()))
        );
        assert_eq!(settings.get("TimeZone"), Some("Europe/Paris"));
        assert_eq!(
            settings.set("TIMEZONE", None),
            Some(("TimeZone".into(), "UTC".into()))
        );
        assert_eq!(settings.get("timezone"), Some("UTC"));

        assert_eq!(settings.set("no_such_setting", Some("1".into())), None);
        assert_eq!(
            settings.set("myapp.tenant", Some("7".into())),
            Some(("myapp.tenant".into(), "7".into()))
        );
        assert_eq!(settings.get("myapp.tenant"), Some("7"));
        assert_eq!(
            settings.set("myapp.tenant", None),
            Some(("myapp.tenant".into(), String::new()))
        );

        settings.set("application_name", Some("batch".into()));
        settings.reset_all();
        assert_eq!(settings.get("application_name"), Some("psql"));
    }
}
