//! A client session: its settings, its transaction state, and the registry that lets a
//! CancelRequest find the session it is for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;
use crate::sql::error::SqlError;
use crate::sql::plan::{DEFAULT_TRANSACTION_ISOLATION, Isolation, TRANSACTION_ISOLATION};
use crate::storage::{BackendSession, Canceller};

/// How long a statement waits for a connection another session holds (55P03 after it).
pub const LOCK_TIMEOUT: &str = "lock_timeout";
/// How long a session may stay idle inside a transaction (FATAL 25P03 after it).
pub const IDLE_IN_TRANSACTION_SESSION_TIMEOUT: &str = "idle_in_transaction_session_timeout";

/// Defaults the configuration sets, shared by every session.
#[derive(Debug, Default)]
pub struct ConfiguredDefaults(Vec<(&'static str, String)>);

impl ConfiguredDefaults {
    pub fn new(config: &Config) -> ConfiguredDefaults {
        ConfiguredDefaults(vec![
            (LOCK_TIMEOUT, format_timeout(config.storage.lock_timeout)),
            (
                IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                format_timeout(config.storage.idle_in_transaction_session_timeout),
            ),
        ])
    }
}

/// A timeout setting's value as PostgreSQL reads it: milliseconds, or a number with a unit
/// (`us`, `ms`, `s`, `min`, `h`, `d`); 0 is no limit.
pub fn parse_timeout(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis_per_unit = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let millis = (number * millis_per_unit).round();
    // PostgreSQL's upper bound for these settings (INT_MAX milliseconds).
    (0.0..=f64::from(i32::MAX))
        .contains(&millis)
        .then(|| Duration::from_millis(millis as u64))
}

/// A timeout as PostgreSQL shows it: in the largest unit that divides it (`1s`, `100ms`).
pub fn format_timeout(timeout: Duration) -> String {
    let millis = timeout.as_millis();
    if millis == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// The value a session stores for `SET name = value`: timeouts in PostgreSQL's normalized
/// form (`SET lock_timeout = 1000` shows `1s`), isolation levels by their names; an invalid
/// value is refused as PostgreSQL refuses it.
pub fn checked_setting(name: &str, value: Option<String>) -> Result<Option<String>, SqlError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let invalid = || {
        SqlError::InvalidSettingValue(format!(
            "invalid value for parameter \"{name}\": \"{value}\""
        ))
    };
    let checked = if name.eq_ignore_ascii_case(LOCK_TIMEOUT)
        || name.eq_ignore_ascii_case(IDLE_IN_TRANSACTION_SESSION_TIMEOUT)
    {
        format_timeout(parse_timeout(&value).ok_or_else(invalid)?)
    } else if name.eq_ignore_ascii_case(DEFAULT_TRANSACTION_ISOLATION)
        || name.eq_ignore_ascii_case(TRANSACTION_ISOLATION)
    {
        Isolation::parse(&value)
            .ok_or_else(invalid)?
            .name()
            .to_string()
    } else {
        value
    };
    Ok(Some(checked))
}

/// Settings the proxy answers itself (`SET`, `SHOW`, `current_setting`). Only what a session
/// changed is stored per session: a copy of every default cost 9 KB per idle connection.
#[derive(Debug, Clone)]
pub struct Settings {
    user: String,
    application_name: String,
    configured: Arc<ConfiguredDefaults>,
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
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
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
    pub fn new(
        user: &str,
        application_name: &str,
        configured: Arc<ConfiguredDefaults>,
    ) -> Settings {
        Settings {
            user: user.to_string(),
            application_name: application_name.to_string(),
            configured,
            changed: HashMap::new(),
        }
    }

    /// A timeout setting ([`LOCK_TIMEOUT`], [`IDLE_IN_TRANSACTION_SESSION_TIMEOUT`]); zero is
    /// no limit. Stored values were checked by [`checked_setting`].
    pub fn timeout(&self, name: &str) -> Duration {
        self.get(name)
            .and_then(parse_timeout)
            .unwrap_or(Duration::ZERO)
    }

    /// The isolation level a transaction BEGIN starts without naming one.
    pub fn default_isolation(&self) -> Isolation {
        self.get(DEFAULT_TRANSACTION_ISOLATION)
            .and_then(Isolation::parse)
            .unwrap_or(Isolation::ReadCommitted)
    }

    /// The canonical name and default value of a known setting.
    fn default_of(&self, name: &str) -> Option<(&'static str, &str)> {
        let (canonical, value) = DEFAULTS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))?;
        let configured = self
            .configured
            .0
            .iter()
            .find(|(known, _)| known == canonical)
            .map(|(_, value)| value.as_str());
        let value = match *canonical {
            "application_name" => self.application_name.as_str(),
            "session_authorization" => self.user.as_str(),
            _ => configured.unwrap_or(value),
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

/// A transaction's hold on shards: one connection per shard, each inside BEGIN. A READ
/// COMMITTED transaction opens a shard's writer at its first write there, a REPEATABLE READ or
/// SERIALIZABLE one every shard's writer at BEGIN, a read-only one a reader at its first read.
pub struct Txn {
    pub read_only: bool,
    /// READ COMMITTED (the default) takes a shard's writer at the transaction's first write
    /// there; a level that holds its snapshot takes every shard's writer at BEGIN.
    pub isolation: Isolation,
    /// A statement ran: the isolation level can no longer change.
    pub ran_statement: bool,
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
            isolation: Isolation::ReadCommitted,
            ran_statement: false,
            sessions: Vec::new(),
            wrote_on: None,
            spans_shards,
            savepoints: Vec::new(),
        }
    }

    /// Holds a connection to `shard` (a writer, unless the transaction is read-only).
    pub fn holds(&self, shard: usize) -> bool {
        self.sessions.iter().any(|(s, _)| *s == shard)
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

impl SessionState {
    /// A setting as SHOW reports it: `transaction_isolation` is the open transaction's level.
    pub fn setting(&self, name: &str) -> Option<&str> {
        match &self.txn {
            TxnState::Active(txn) | TxnState::Failed(txn)
                if name.eq_ignore_ascii_case(TRANSACTION_ISOLATION) =>
            {
                Some(txn.isolation.name())
            }
            _ if name.eq_ignore_ascii_case(TRANSACTION_ISOLATION) => {
                self.settings.get(DEFAULT_TRANSACTION_ISOLATION)
            }
            _ => self.settings.get(name),
        }
    }

    /// How long the session may now wait for the client's next message: inside a
    /// transaction, its `idle_in_transaction_session_timeout` (`None`: no limit).
    pub fn idle_limit(&self) -> Option<Duration> {
        if matches!(self.txn, TxnState::Idle) {
            return None;
        }
        let limit = self.settings.timeout(IDLE_IN_TRANSACTION_SESSION_TIMEOUT);
        (!limit.is_zero()).then_some(limit)
    }
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

    /// Ends every session's wait for a connection, now and later (shutdown has begun).
    pub fn terminate_waits(&self) {
        if let Ok(sessions) = self.sessions.lock() {
            sessions
                .values()
                .for_each(|(_, canceller)| canceller.terminate());
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn timeouts_read_and_show_as_in_postgres() {
        assert_eq!(parse_timeout("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout(" 1.5 s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("0"), Some(Duration::ZERO));
        assert_eq!(parse_timeout("-1"), None);
        assert_eq!(parse_timeout("10 parsecs"), None);
        assert_eq!(parse_timeout("30d"), None);
        assert_eq!(format_timeout(Duration::from_millis(1000)), "1s");
        assert_eq!(format_timeout(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_timeout(Duration::from_secs(7200)), "2h");
        assert_eq!(format_timeout(Duration::ZERO), "0");
        assert_eq!(
            checked_setting("Lock_Timeout", Some("1000".into())),
            Ok(Some("1s".into()))
        );
        assert!(checked_setting("lock_timeout", Some("soon".into())).is_err());
        assert_eq!(
            checked_setting(
                "default_transaction_isolation",
                Some("REPEATABLE READ".into())
            ),
            Ok(Some("repeatable read".into()))
        );
    }

    #[test]
    fn configured_defaults_show_until_changed() {
        let configured = Arc::new(ConfiguredDefaults(vec![(LOCK_TIMEOUT, "30s".into())]));
        let mut settings = Settings::new("alice", "psql", configured);
        assert_eq!(settings.get("lock_timeout"), Some("30s"));
        assert_eq!(settings.timeout(LOCK_TIMEOUT), Duration::from_secs(30));
        settings.set("lock_timeout", Some("0".into()));
        assert_eq!(settings.timeout(LOCK_TIMEOUT), Duration::ZERO);
        settings.set("lock_timeout", None);
        assert_eq!(settings.get("lock_timeout"), Some("30s"));
    }

    #[test]
    fn defaults_changes_and_resets() {
        let mut settings = Settings::new("alice", "psql", Default::default());
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
