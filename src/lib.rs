//! shardgate: a PostgreSQL wire-protocol server that routes SQL to SQLite primaries.
//!
//! A statement flows parse → classify → route → execute → encode:
//! - [`sql`] parses PostgreSQL with sqlparser, classifies it, rewrites it for SQLite and infers
//!   parameter and result types;
//! - [`router`] decides which backend connection runs it;
//! - [`storage`] runs it on SQLite;
//! - [`frontend`] speaks the wire protocol, owns sessions and encodes results.

/// The `server_version` clients see: a PostgreSQL version that psql, pgjdbc and pgbench
/// accept, with shardgate's own version after it.
pub const SERVER_VERSION: &str = concat!("15.0 (shardgate ", env!("CARGO_PKG_VERSION"), ")");

pub mod config;
pub mod error;
pub mod frontend;
pub mod replication;
pub mod router;
pub mod server;
pub mod sql;
pub mod storage;
