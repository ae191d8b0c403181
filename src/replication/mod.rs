//! Replication: the row-level log a primary writes in the same transaction as its data, the
//! shipper that applies it to each replica in order, and the snapshots that rebuild a replica
//! that cannot catch up from the log.

pub mod changeset;
pub mod log;
