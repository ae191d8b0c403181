//! Configuration: the TOML file shardgate is started with, parsed strictly (unknown keys are
//! errors) and validated into a resolved topology with absolute file paths.
//!
//! Every problem is reported with the key it concerns, and all problems are reported at once,
//! so an operator fixes a config in one pass.

mod duration;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use duration::parse_duration;

/// The configuration shipped with shardgate, used by `serve` when no file is given and the
/// default path does not exist (so a fresh checkout starts with `cargo run -- serve`).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/shardgate.toml");

/// A config-file problem, naming the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Everything that can go wrong loading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigProblem>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    Trust,
    Md5,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMethod::Trust => "trust",
            AuthMethod::Md5 => "md5",
            AuthMethod::ScramSha256 => "scram-sha-256",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SyncMode {
    Off,
    Normal,
    Full,
    Extra,
}

impl SyncMode {
    pub fn pragma_value(self) -> &'static str {
        match self {
            SyncMode::Off => "OFF",
            SyncMode::Normal => "NORMAL",
            SyncMode::Full => "FULL",
            SyncMode::Extra => "EXTRA",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    replication: RawReplication,
    sharding: Option<RawSharding>,
    #[serde(default)]
    shards: Vec<RawShard>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    mode: Option<ReplicationMode>,
    min_acks: Option<usize>,
    ack_timeout: Option<String>,
    max_lag: Option<String>,
    health_check_interval: Option<String>,
    log_retention: Option<u64>,
    apply_delay: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplica {
    name: String,
    path: PathBuf,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_database")]
    database: String,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_auth")]
    auth: AuthMethod,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_shutdown_timeout")]
    shutdown_timeout: String,
    #[serde(default)]
    admin_users: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    synchronous: Option<SyncMode>,
    busy_timeout: Option<String>,
    lock_timeout: Option<String>,
    idle_in_transaction_session_timeout: Option<String>,
    read_connections: Option<usize>,
    page_cache_mib: Option<u32>,
    mmap_mib: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShard {
    name: String,
    primary: PathBuf,
    #[serde(default)]
    replicas: Vec<RawReplica>,
    min_key: Option<i64>,
    max_key: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSharding {
    strategy: ShardingStrategy,
    #[serde(default = "default_virtual_nodes")]
    virtual_nodes: usize,
    #[serde(default)]
    tables: Vec<RawShardedTable>,
    #[serde(default)]
    reference_tables: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShardedTable {
    name: String,
    key: String,
}

fn default_virtual_nodes() -> usize {
    150
}

fn default_listen() -> String {
    "127.0.0.1:6432".into()
}
fn default_database() -> String {
    "app".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_auth() -> AuthMethod {
    AuthMethod::ScramSha256
}
fn default_max_connections() -> usize {
    10_000
}
fn default_shutdown_timeout() -> String {
    "10s".into()
}

/// A user's stored password: either the clear text, or PostgreSQL's `md5<hex>` form.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredPassword {
    Plain(String),
    /// The 32 hex digits of md5(password || username).
    Md5Hex(String),
}

impl fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredPassword::Plain(_) => f.write_str("Plain(***)"),
            StoredPassword::Md5Hex(_) => f.write_str("Md5Hex(***)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: StoredPassword,
}

#[derive(Debug, Clone)]
pub struct ShardConfig {
    pub name: String,
    /// Absolute (or data-dir-relative resolved) path of the primary's SQLite file.
    pub primary: PathBuf,
    pub replicas: Vec<ReplicaConfig>,
    /// Range strategy: the inclusive key range this shard holds.
    pub key_range: Option<(i64, i64)>,
}

/// How rows of sharded tables are placed (the reference design's three strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardingStrategy {
    Hash,
    Range,
    ConsistentHash,
}

impl fmt::Display for ShardingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShardingStrategy::Hash => "hash",
            ShardingStrategy::Range => "range",
            ShardingStrategy::ConsistentHash => "consistent_hash",
        })
    }
}

#[derive(Debug, Clone)]
pub struct ShardingConfig {
    pub strategy: ShardingStrategy,
    pub virtual_nodes: usize,
    /// Sharded tables (lower-case names) and their key columns (lower-case).
    pub tables: Vec<(String, String)>,
    /// Tables copied to every shard (lower-case names).
    pub reference_tables: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub name: String,
    pub path: PathBuf,
    /// Share of the reads relative to the other replicas' weights.
    pub weight: u32,
}

/// When a write is acknowledged to the client, relative to its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationMode {
    /// As soon as the primary commits.
    Asynchronous,
    /// Once `min_acks` replicas applied it, or after `ack_timeout` (counted as degraded).
    SemiSynchronous,
    /// Once every healthy replica applied it.
    Synchronous,
}

impl fmt::Display for ReplicationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplicationMode::Asynchronous => "asynchronous",
            ReplicationMode::SemiSynchronous => "semi_synchronous",
            ReplicationMode::Synchronous => "synchronous",
        })
    }
}

#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    pub mode: ReplicationMode,
    pub min_acks: usize,
    pub ack_timeout: std::time::Duration,
    /// A replica further behind than this leaves the read rotation.
    pub max_lag: std::time::Duration,
    pub health_check_interval: std::time::Duration,
    /// Log records kept beyond what every replica applied; a replica that falls further
    /// behind is rebuilt from a snapshot.
    pub log_retention: u64,
    /// A pause before each batch a replica applies: for tests and demonstrations of lag.
    pub apply_delay: std::time::Duration,
}

/// PostgreSQL waits for a lock forever and detects deadlocks; shardgate takes writers in one
/// order so its own statements cannot deadlock, and bounds every wait so that a client idling
/// in a transaction that wrote cannot stall every other writer of its shard for ever.
const DEFAULT_LOCK_TIMEOUT_SECS: u64 = 30;

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub synchronous: SyncMode,
    pub busy_timeout: std::time::Duration,
    /// How long a statement waits for a connection another session holds (a writer held by
    /// an open transaction) before it fails with 55P03; zero waits until cancelled.
    pub lock_timeout: std::time::Duration,
    /// A session idle inside a transaction longer than this is closed (25P03); zero never.
    pub idle_in_transaction_session_timeout: std::time::Duration,
    pub read_connections: usize,
    /// SQLite page cache per connection, in MiB.
    pub page_cache_mib: u32,
    /// How much of each database file is read through a memory map, in MiB (0: none).
    pub mmap_mib: u32,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: String,
    pub data_dir: PathBuf,
    pub auth: AuthMethod,
    pub max_connections: usize,
    pub shutdown_timeout: std::time::Duration,
    pub admin_users: Vec<String>,
    pub storage: StorageConfig,
    pub replication: ReplicationConfig,
    pub users: Vec<User>,
    pub shards: Vec<ShardConfig>,
    pub sharding: Option<ShardingConfig>,
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads `path`; when `path` is `None` and the default file is missing, uses the embedded
    /// default so that a fresh checkout can start without any file.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let default_path = Path::new("config/shardgate.toml");
        let text = match path {
            Some(p) => read(p)?,
            None if default_path.exists() => read(default_path)?,
            None => EMBEDDED_DEFAULT.to_string(),
        };
        Config::parse(&text, overrides)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![ConfigProblem {
                key: toml_error_key(&e),
                problem: e.message().to_string(),
            }])
        })?;
        validate(raw, overrides)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// A human-readable description of the resolved topology, printed by `check-config`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("listen            {}\n", self.listen));
        out.push_str(&format!("database          {}\n", self.database));
        out.push_str(&format!("data_dir          {}\n", self.data_dir.display()));
        out.push_str(&format!("auth              {}\n", self.auth));
        out.push_str(&format!("max_connections   {}\n", self.max_connections));
        out.push_str(&format!(
            "storage           synchronous={} busy_timeout={:?} lock_timeout={:?} idle_in_transaction_session_timeout={:?} read_connections={} page_cache_mib={} mmap_mib={}\n",
            self.storage.synchronous.pragma_value(),
            self.storage.busy_timeout,
            self.storage.lock_timeout,
            self.storage.idle_in_transaction_session_timeout,
            self.storage.read_connections,
            self.storage.page_cache_mib,
            self.storage.mmap_mib
        ));
        let users: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        out.push_str(&format!("users             {}\n", users.join(", ")));
        let r = &self.replication;
        out.push_str(&format!(
            "replication       mode={} min_acks={} ack_timeout={:?} max_lag={:?} health_check_interval={:?} log_retention={}\n",
            r.mode, r.min_acks, r.ack_timeout, r.max_lag, r.health_check_interval, r.log_retention
        ));
        if let Some(sharding) = &self.sharding {
            let tables: Vec<String> = sharding
                .tables
                .iter()
                .map(|(t, k)| format!("{t}({k})"))
                .collect();
            out.push_str(&format!(
                "sharding          strategy={} virtual_nodes={} tables=[{}] reference=[{}]\n",
                sharding.strategy,
                sharding.virtual_nodes,
                tables.join(", "),
                sharding.reference_tables.join(", ")
            ));
        }
        for shard in &self.shards {
            let range = shard
                .key_range
                .map(|(min, max)| format!(" keys {min}..={max}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "shard {:<11} primary {}{range}\n",
                shard.name,
                shard.primary.display()
            ));
            for replica in &shard.replicas {
                out.push_str(&format!(
                    "  replica {:<9} weight {} {}\n",
                    replica.name,
                    replica.weight,
                    replica.path.display()
                ));
            }
        }
        out
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Turns a toml/serde error into the dotted key it concerns, as far as it can be told.
fn toml_error_key(e: &toml::de::Error) -> String {
    let msg = e.message();
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        return rest[..end].to_string();
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some(end) = rest.find('`')
    {
        return rest[..end].to_string();
    }
    match e.span() {
        Some(span) => format!("(at byte {})", span.start),
        None => "(config)".to_string(),
    }
}

fn validate(raw: RawConfig, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, text: String| {
        problems.push(ConfigProblem {
            key: key.to_string(),
            problem: text,
        })
    };

    let listen_text = overrides.listen.clone().unwrap_or(raw.server.listen);
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problem(
                "server.listen",
                format!("{listen_text:?} is not an address such as 127.0.0.1:6432"),
            );
            None
        }
    };
    if raw.server.database.is_empty() {
        problem("server.database", "must not be empty".into());
    }
    if raw.server.max_connections == 0 {
        problem("server.max_connections", "must be at least 1".into());
    }
    let shutdown_timeout = match parse_duration(&raw.server.shutdown_timeout) {
        Ok(d) => d,
        Err(e) => {
            problem("server.shutdown_timeout", e);
            std::time::Duration::ZERO
        }
    };
    let busy_timeout = match raw.storage.busy_timeout.as_deref().map(parse_duration) {
        None => std::time::Duration::from_secs(5),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            problem("storage.busy_timeout", e);
            std::time::Duration::ZERO
        }
    };
    let mut duration = |key: &str, text: Option<&str>, default: u64| match text.map(parse_duration)
    {
        None => std::time::Duration::from_secs(default),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            problem(key, e);
            std::time::Duration::ZERO
        }
    };
    let lock_timeout = duration(
        "storage.lock_timeout",
        raw.storage.lock_timeout.as_deref(),
        DEFAULT_LOCK_TIMEOUT_SECS,
    );
    let idle_in_transaction_session_timeout = duration(
        "storage.idle_in_transaction_session_timeout",
        raw.storage.idle_in_transaction_session_timeout.as_deref(),
        0,
    );
    let replication = ReplicationConfig {
        mode: raw
            .replication
            .mode
            .unwrap_or(ReplicationMode::SemiSynchronous),
        min_acks: raw.replication.min_acks.unwrap_or(1),
        ack_timeout: duration(
            "replication.ack_timeout",
            raw.replication.ack_timeout.as_deref(),
            10,
        ),
        max_lag: duration(
            "replication.max_lag",
            raw.replication.max_lag.as_deref(),
            30,
        ),
        health_check_interval: duration(
            "replication.health_check_interval",
            raw.replication.health_check_interval.as_deref(),
            10,
        ),
        log_retention: raw.replication.log_retention.unwrap_or(100_000),
        apply_delay: duration(
            "replication.apply_delay",
            raw.replication.apply_delay.as_deref(),
            0,
        ),
    };
    if replication.health_check_interval.is_zero() {
        problem(
            "replication.health_check_interval",
            "must be longer than zero".into(),
        );
    }
    if replication.log_retention == 0 {
        problem("replication.log_retention", "must be at least 1".into());
    }
    let read_connections = raw.storage.read_connections.unwrap_or(4);
    if read_connections == 0 {
        problem("storage.read_connections", "must be at least 1".into());
    }

    let data_dir = overrides.data_dir.clone().unwrap_or(raw.server.data_dir);
    let data_dir = if data_dir.is_absolute() {
        data_dir
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&data_dir))
            .unwrap_or(data_dir)
    };

    let mut users = Vec::new();
    let mut seen_users = HashSet::new();
    for (i, user) in raw.users.into_iter().enumerate() {
        let key = format!("users[{i}]");
        if user.name.is_empty() {
            problem(&format!("{key}.name"), "must not be empty".into());
            continue;
        }
        if !seen_users.insert(user.name.clone()) {
            problem(
                &format!("{key}.name"),
                format!("duplicate user name {:?}", user.name),
            );
        }
        let password = match user.password.strip_prefix("md5") {
            Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                StoredPassword::Md5Hex(hex.to_ascii_lowercase())
            }
            _ => StoredPassword::Plain(user.password),
        };
        users.push(User {
            name: user.name,
            password,
        });
    }
    if users.is_empty() {
        problem("users", "at least one [[users]] entry is required".into());
    }
    if raw.server.auth == AuthMethod::ScramSha256 {
        for user in &users {
            if matches!(user.password, StoredPassword::Md5Hex(_)) {
                problem(
                    "server.auth",
                    format!(
                        "scram-sha-256 needs the clear-text password of user {:?} (an md5 hash cannot verify SCRAM)",
                        user.name
                    ),
                );
            }
        }
    }
    for admin in &raw.server.admin_users {
        if !seen_users.contains(admin) {
            problem(
                "server.admin_users",
                format!("{admin:?} is not a configured user"),
            );
        }
    }

    let mut shards = Vec::new();
    let mut seen_shards = HashSet::new();
    let mut seen_paths = HashSet::new();
    if raw.shards.is_empty() {
        problem("shards", "at least one [[shards]] entry is required".into());
    }
    if raw.shards.len() > 1 && raw.sharding.is_none() {
        problem(
            "sharding",
            "more than one shard needs a [sharding] section saying how rows are placed".into(),
        );
    }
    let strategy = raw.sharding.as_ref().map(|s| s.strategy);
    let sharding = raw.sharding.map(|sharding| {
        let mut seen = HashSet::new();
        let mut tables = Vec::new();
        for (i, table) in sharding.tables.into_iter().enumerate() {
            let name = table.name.to_ascii_lowercase();
            if name.is_empty() || table.key.is_empty() {
                problem(
                    &format!("sharding.tables[{i}]"),
                    "needs a name and a key".into(),
                );
            } else if !seen.insert(name.clone()) {
                problem(
                    &format!("sharding.tables[{i}].name"),
                    format!("table {name:?} is listed twice"),
                );
            }
            tables.push((name, table.key.to_ascii_lowercase()));
        }
        let mut reference_tables = Vec::new();
        for (i, table) in sharding.reference_tables.into_iter().enumerate() {
            let name = table.to_ascii_lowercase();
            if !seen.insert(name.clone()) {
                problem(
                    &format!("sharding.reference_tables[{i}]"),
                    format!("table {name:?} is already sharded or listed"),
                );
            }
            reference_tables.push(name);
        }
        if sharding.strategy == ShardingStrategy::ConsistentHash && sharding.virtual_nodes == 0 {
            problem("sharding.virtual_nodes", "must be at least 1".into());
        }
        ShardingConfig {
            strategy: sharding.strategy,
            virtual_nodes: sharding.virtual_nodes,
            tables,
            reference_tables,
        }
    });
    for (i, shard) in raw.shards.into_iter().enumerate() {
        let key = format!("shards[{i}]");
        if shard.name.is_empty() {
            problem(&format!("{key}.name"), "must not be empty".into());
        } else if !seen_shards.insert(shard.name.clone()) {
            problem(
                &format!("{key}.name"),
                format!("duplicate shard name {:?}", shard.name),
            );
        }
        if shard.primary.as_os_str().is_empty() {
            problem(&format!("{key}.primary"), "missing file path".into());
            continue;
        }
        let primary = data_dir.join(&shard.primary);
        if !seen_paths.insert(primary.clone()) {
            problem(
                &format!("{key}.primary"),
                format!("{} is used twice", primary.display()),
            );
        }
        let mut replicas = Vec::new();
        for (r, replica) in shard.replicas.into_iter().enumerate() {
            let key = format!("{key}.replicas[{r}]");
            if replica.name.is_empty() {
                problem(&format!("{key}.name"), "must not be empty".into());
            } else if !seen_shards.insert(replica.name.clone()) {
                problem(
                    &format!("{key}.name"),
                    format!("duplicate database name {:?}", replica.name),
                );
            }
            if replica.weight == 0 {
                problem(&format!("{key}.weight"), "must be at least 1".into());
            }
            if replica.path.as_os_str().is_empty() {
                problem(&format!("{key}.path"), "missing file path".into());
                continue;
            }
            let path = data_dir.join(&replica.path);
            if !seen_paths.insert(path.clone()) {
                problem(
                    &format!("{key}.path"),
                    format!("{} is used twice", path.display()),
                );
            }
            replicas.push(ReplicaConfig {
                name: replica.name,
                path,
                weight: replica.weight,
            });
        }
        if replication.mode == ReplicationMode::SemiSynchronous
            && !replicas.is_empty()
            && replication.min_acks > replicas.len()
        {
            problem(
                "replication.min_acks",
                format!(
                    "{} is more than the {} replica(s) of shard {:?}",
                    replication.min_acks,
                    replicas.len(),
                    shard.name
                ),
            );
        }
        let key_range = match (strategy, shard.min_key, shard.max_key) {
            (Some(ShardingStrategy::Range), Some(min), Some(max)) if min <= max => Some((min, max)),
            (Some(ShardingStrategy::Range), Some(_), Some(_)) => {
                problem(&format!("{key}.min_key"), "must not exceed max_key".into());
                None
            }
            (Some(ShardingStrategy::Range), _, _) => {
                problem(
                    &format!("{key}.min_key"),
                    "range sharding needs min_key and max_key on every shard".into(),
                );
                None
            }
            (_, None, None) => None,
            _ => {
                problem(
                    &format!("{key}.min_key"),
                    "min_key and max_key only apply to the range strategy".into(),
                );
                None
            }
        };
        shards.push(ShardConfig {
            name: shard.name,
            primary,
            replicas,
            key_range,
        });
    }

    let ranges: Vec<(&str, (i64, i64))> = shards
        .iter()
        .filter_map(|s| s.key_range.map(|r| (s.name.as_str(), r)))
        .collect();
    for (i, (a, (a_min, a_max))) in ranges.iter().enumerate() {
        for (b, (b_min, b_max)) in &ranges[i + 1..] {
            if a_min <= b_max && b_min <= a_max {
                problem(
                    "shards",
                    format!("the key ranges of shards {a:?} and {b:?} overlap"),
                );
            }
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Config {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6432))),
        database: raw.server.database,
        data_dir,
        auth: raw.server.auth,
        max_connections: raw.server.max_connections,
        shutdown_timeout,
        admin_users: raw.server.admin_users,
        storage: StorageConfig {
            synchronous: raw.storage.synchronous.unwrap_or(SyncMode::Normal),
            busy_timeout,
            lock_timeout,
            idle_in_transaction_session_timeout,
            read_connections,
            page_cache_mib: raw.storage.page_cache_mib.unwrap_or(2),
            mmap_mib: raw.storage.mmap_mib.unwrap_or(0),
        },
        replication,
        users,
        shards,
        sharding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<ConfigProblem> {
        match Config::parse(text, &Overrides::default()) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::parse(EMBEDDED_DEFAULT, &Overrides::default()).unwrap();
        assert_eq!(config.listen.port(), 6432);
        assert_eq!(config.database, "app");
        assert_eq!(config.shards.len(), 1);
        assert!(config.shards[0].primary.ends_with("main/primary.db"));
    }

    #[test]
    fn unknown_key_is_named() {
        let p = problems("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n");
        assert_eq!(p[0].key, "listne");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
[server]
listen = "nowhere"
shutdown_timeout = "ten seconds"
[[users]]
name = "a"
password = "x"
[[users]]
name = "a"
password = "y"
[[shards]]
name = "main"
primary = ""
"#;
        let keys: Vec<String> = problems(text).into_iter().map(|p| p.key).collect();
        assert!(keys.contains(&"server.listen".to_string()), "{keys:?}");
        assert!(
            keys.contains(&"server.shutdown_timeout".to_string()),
            "{keys:?}"
        );
        assert!(keys.contains(&"users[1].name".to_string()), "{keys:?}");
        assert!(keys.contains(&"shards[0].primary".to_string()), "{keys:?}");
    }

    #[test]
    fn md5_stored_password_is_recognised() {
        let text = "[server]\nauth = \"md5\"\n[[users]]\nname = \"u\"\npassword = \"md5AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n[[shards]]\nname = \"m\"\nprimary = \"m.db\"\n";
        let config = Config::parse(text, &Overrides::default()).unwrap();
        assert_eq!(
            config.users[0].password,
            StoredPassword::Md5Hex("a".repeat(32))
        );
    }

    #[test]
    fn overrides_win() {
        let config = Config::parse(
            EMBEDDED_DEFAULT,
            &Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some("/tmp/x".into()),
            },
        )
        .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(
            config.shards[0].primary,
            Path::new("/tmp/x/main/primary.db")
        );
    }
}
