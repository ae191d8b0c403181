//! Routing: which shard, and within it which database, runs a statement. [`shard`] picks
//! between a shard's primary and replicas; [`placement`] says which shard holds a key; the
//! `Router` holds the shards in config order.

pub mod balance;
pub mod placement;
pub mod shard;
pub mod sharding;

use std::sync::Arc;

pub use shard::{DatabaseStatus, ReadFrom, ReadPolicy, ReadTarget, Shard};

/// Every shard of the cluster, in config order. The first shard also holds the tables that are
/// neither sharded nor reference tables, and answers catalog queries.
pub struct Router {
    pub shards: Vec<Arc<Shard>>,
    /// How rows are spread over the shards (none with a single shard and no [sharding]).
    pub sharding: Option<sharding::Sharding>,
}

impl Router {
    pub fn new(shards: Vec<Arc<Shard>>, sharding: Option<sharding::Sharding>) -> Router {
        Router { shards, sharding }
    }

    pub fn shard_index(&self, name: &str) -> Option<usize> {
        self.shards.iter().position(|s| s.name == name)
    }

    /// The first shard.
    pub fn home(&self) -> &Arc<Shard> {
        &self.shards[0]
    }

    /// Stops replication on every shard and closes every primary.
    pub async fn close(&self) {
        for shard in &self.shards {
            shard.close().await;
        }
    }
}
