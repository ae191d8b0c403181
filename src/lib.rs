//! shardgate: a PostgreSQL wire-protocol server that routes SQL to SQLite primaries.
//!
//! A statement flows parse → classify → route → execute → encode:
//! - [`sql`] parses PostgreSQL with sqlparser, classifies it, rewrites it for SQLite and infers
//!   parameter and result types;
//! - [`router`] decides which backend connection runs it;
//! - [`storage`] runs it on SQLite;
//! - [`frontend`] speaks the wire protocol, owns sessions and encodes results.

pub mod config;
pub mod error;
pub mod frontend;
pub mod server;
pub mod sql;
pub mod storage;
