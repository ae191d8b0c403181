//! SQL: PostgreSQL in, SQLite out. Parsing, classification, rewriting, and the inference of
//! parameter and result types.
pub mod catalog_rewrite;
pub mod copy;
pub(crate) mod datetime;
pub mod error;
pub(crate) mod grouping;
pub mod infer;
pub(crate) mod numeric;
pub mod plan;
pub mod rewrite;
pub mod types;
