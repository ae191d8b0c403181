//! Storage: SQLite files and the connections that execute statements on them.
//!
//! A database file has exactly one writer connection (so concurrent writers queue in the
//! proxy instead of colliding on SQLITE_BUSY) and a pool of read connections (WAL readers run
//! beside the writer). Connections are leased to a session for one statement or for a whole
//! transaction; a lease dropped inside a transaction rolls it back before the connection is
//! reused. A wait for a leased connection is bounded by the session's `lock_timeout` and ends
//! on a CancelRequest, at shutdown and when the client goes away (see [`Canceller`]). Work a connection last finished in under 500 µs (a point select, a one-row update)
//! runs directly on the async worker, because handing it to another thread costs more than
//! the work; anything else runs under `block_in_place` (or on the blocking pool on a
//! single-threaded runtime), so a long statement never holds up other sessions' tasks.

mod backend;
pub(crate) mod checked;
mod connection;
mod error;
mod exec;
pub mod pg_catalog;
mod pool;
pub mod schema;

pub use backend::{Backend, BackendSession, Intent, SqliteBackend};
pub use connection::{ConnectionSettings, SqlConn, open_replica_applier, open_scratch};
pub use error::{LENGTH_CHECK_PREFIX, RANGE_CHECK_PREFIX, StorageError, StorageErrorKind};
pub use exec::{ColumnOrigin, ExecOutput, ExecRequest, Params, PreparedShape};
pub use pool::{Canceller, HangUp};
pub use rusqlite::types::Value;
pub use schema::{INTERNAL_PREFIX, Schema};
