//! One shard: its primary, its replicas, and which of them a statement runs on. Writes, DDL,
//! catalog reads and everything inside a read-write transaction go to the primary. Reads go to
//! a replica picked by smooth weighted round robin among those that are healthy, within
//! `max_lag`, and have applied the session's last write on this shard (read-your-writes); when
//! none qualifies, to the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::balance::SmoothWeighted;
use crate::replication::Replication;
use crate::replication::replica::Replica;
use crate::storage::{Backend, SqliteBackend};

/// `SET shardgate.read_from`: where a session's reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// A replica that has the session's writes, else the primary.
    Auto,
    Primary,
    /// Any healthy replica, even one without the session's latest writes.
    Replica,
}

impl ReadFrom {
    pub const SETTING: &'static str = "shardgate.read_from";

    pub fn parse(value: &str) -> Option<ReadFrom> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(ReadFrom::Auto),
            "primary" => Some(ReadFrom::Primary),
            "replica" => Some(ReadFrom::Replica),
            _ => None,
        }
    }
}

pub enum ReadTarget {
    Primary,
    Replica(Arc<Replica>, Arc<SqliteBackend>),
}

/// One row of `SHOW shardgate.replicas`.
pub struct DatabaseStatus {
    pub name: String,
    pub role: &'static str,
    pub healthy: bool,
    pub weight: u32,
    pub applied_lsn: u64,
    pub lag_records: u64,
    pub lag_seconds: f64,
    pub reads: u64,
    pub writes: u64,
    pub errors: u64,
    /// On the primary: writes acknowledged without the acknowledgements their mode asks for.
    pub degraded_writes: u64,
    /// Median and 99th percentile commit-to-apply delay of recent records, in milliseconds.
    pub apply_delay_ms: Option<(f64, f64)>,
    pub problem: Option<String>,
}

pub struct Shard {
    pub name: String,
    pub primary: Arc<dyn Backend>,
    pub replication: Option<Arc<Replication>>,
    balancer: SmoothWeighted,
    pub primary_reads: AtomicU64,
    pub primary_writes: AtomicU64,
}

impl Shard {
    pub fn new(
        name: String,
        primary: Arc<dyn Backend>,
        replication: Option<Arc<Replication>>,
    ) -> Shard {
        let replicas = replication.as_ref().map_or(0, |r| r.replicas.len());
        Shard {
            name,
            primary,
            replication,
            balancer: SmoothWeighted::new(replicas),
            primary_reads: AtomicU64::new(0),
            primary_writes: AtomicU64::new(0),
        }
    }

    /// Where a read runs, for a session whose last write committed at `last_write_lsn`.
    pub fn read_target(&self, last_write_lsn: u64, read_from: ReadFrom) -> ReadTarget {
        let Some(replication) = &self.replication else {
            return ReadTarget::Primary;
        };
        let candidates: Vec<(usize, u32)> = match read_from {
            ReadFrom::Primary => return ReadTarget::Primary,
            ReadFrom::Auto => replication
                .replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| replication.can_serve(r, last_write_lsn))
                .map(|(i, r)| (i, r.weight))
                .collect(),
            ReadFrom::Replica => replication
                .replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_healthy())
                .map(|(i, r)| (i, r.weight))
                .collect(),
        };
        let Some(chosen) = self.balancer.pick(&candidates) else {
            return ReadTarget::Primary;
        };
        let replica = &replication.replicas[chosen];
        match replica.readable() {
            Some(backend) => ReadTarget::Replica(replica.clone(), backend),
            None => ReadTarget::Primary,
        }
    }

    /// Whether `replica` has not yet applied everything the primary committed.
    pub fn is_behind(&self, replica: &Replica) -> bool {
        self.replication
            .as_ref()
            .is_some_and(|r| r.lag_records(replica) > 0)
    }

    /// Waits until a write committed at `lsn` may be acknowledged, per the replication mode.
    pub async fn acknowledge(&self, lsn: u64) {
        if let Some(replication) = &self.replication {
            replication.acknowledge(lsn).await;
        }
    }

    pub fn status(&self) -> Vec<DatabaseStatus> {
        let primary_lsn = self
            .replication
            .as_ref()
            .map_or(0, |r| r.primary_position().lsn);
        let mut rows = vec![DatabaseStatus {
            name: self.name.clone(),
            role: "primary",
            healthy: true,
            weight: 0,
            applied_lsn: primary_lsn,
            lag_records: 0,
            lag_seconds: 0.0,
            reads: self.primary_reads.load(Ordering::Relaxed),
            writes: self.primary_writes.load(Ordering::Relaxed),
            errors: 0,
            degraded_writes: self
                .replication
                .as_ref()
                .map_or(0, |r| r.degraded_writes.load(Ordering::Relaxed)),
            apply_delay_ms: None,
            problem: None,
        }];
        if let Some(replication) = &self.replication {
            rows.extend(replication.replicas.iter().map(|r| DatabaseStatus {
                name: r.name.clone(),
                role: "replica",
                healthy: r.is_healthy(),
                weight: r.weight,
                applied_lsn: r.applied().lsn,
                lag_records: replication.lag_records(r),
                lag_seconds: replication.lag(r).as_secs_f64(),
                reads: r.reads.load(Ordering::Relaxed),
                writes: 0,
                errors: r.errors.load(Ordering::Relaxed),
                degraded_writes: 0,
                apply_delay_ms: r.apply_delay_percentiles(),
                problem: r.problem(),
            }));
        }
        rows
    }

    /// Stops replication, then closes the primary (which checkpoints).
    pub async fn close(&self) {
        if let Some(replication) = &self.replication {
            replication.stop().await;
        }
        self.primary.close().await;
    }
}
