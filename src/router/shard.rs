//! One shard: its primary, its replicas, and which of them a statement runs on. Writes, DDL,
//! catalog reads and everything inside a read-write transaction go to the primary. Reads go to
//! a replica picked by smooth weighted round robin among those that are healthy, within
//! `max_lag`, and hold what the session's `read_consistency` asks for: under `strong`, every
//! write acknowledged on this shard before the read arrived (waiting up to `read_wait` for a
//! replica to apply it); under `session`, the session's own last write on this shard; under
//! `eventual`, anything. When none qualifies, the primary answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::balance::SmoothWeighted;
use crate::config::ReadConsistency;
use crate::replication::Replication;
use crate::replication::replica::{ReadCounts, Replica};
use crate::storage::{Backend, SqliteBackend};

/// `SET shardgate.read_from`: where a session's reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// A replica that holds what the session's `read_consistency` asks for, else the primary.
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

/// What a session's read asks for: where it may go and what it must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPolicy {
    pub from: ReadFrom,
    pub consistency: ReadConsistency,
}

impl Default for ReadPolicy {
    /// The strictest automatic choice, for reads that do not say otherwise.
    fn default() -> ReadPolicy {
        ReadPolicy {
            from: ReadFrom::Auto,
            consistency: ReadConsistency::Strong,
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
    /// Reads answered per `read_consistency` level, in the order of [`ReadConsistency::ALL`].
    pub reads_per_level: [u64; 3],
    pub writes: u64,
    pub errors: u64,
    /// On the primary: writes acknowledged without the acknowledgements their mode asks for.
    pub degraded_writes: u64,
    /// Median and 99th percentile commit-to-apply delay of recent records, in milliseconds.
    pub apply_delay_ms: Option<(f64, f64)>,
    /// On a replica: whether writes wait for it, how often it left that rotation and rejoined.
    pub in_rotation: bool,
    pub left_rotation: u64,
    pub rejoined_rotation: u64,
    pub problem: Option<String>,
}

fn per_level(reads: &ReadCounts) -> [u64; 3] {
    ReadConsistency::ALL.map(|level| reads.of(level))
}

pub struct Shard {
    pub name: String,
    pub primary: Arc<dyn Backend>,
    pub replication: Option<Arc<Replication>>,
    balancer: SmoothWeighted,
    pub primary_reads: ReadCounts,
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
            primary_reads: ReadCounts::default(),
            primary_writes: AtomicU64::new(0),
        }
    }

    /// Where a read runs, for a session whose last write on this shard committed at
    /// `session_lsn`.
    pub async fn read_target(&self, policy: ReadPolicy, session_lsn: u64) -> ReadTarget {
        let Some(replication) = &self.replication else {
            return ReadTarget::Primary;
        };
        let pick = |candidates: &[(usize, u32)]| self.balancer.pick(candidates);
        let chosen = match (policy.from, policy.consistency) {
            (ReadFrom::Primary, _) => None,
            (ReadFrom::Replica, _) => {
                let healthy: Vec<(usize, u32)> = replication
                    .replicas
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.is_healthy())
                    .map(|(i, r)| (i, r.weight))
                    .collect();
                pick(&healthy)
            }
            (ReadFrom::Auto, ReadConsistency::Eventual) => pick(&replication.candidates(0)),
            (ReadFrom::Auto, ReadConsistency::Session) => {
                pick(&replication.candidates(session_lsn))
            }
            (ReadFrom::Auto, ReadConsistency::Strong) => {
                // Read as of the read's arrival: writes acknowledged later need not be seen.
                let min_lsn = replication.acknowledged_lsn().max(session_lsn);
                replication
                    .replica_holding(min_lsn, replication.config.read_wait, pick)
                    .await
            }
        };
        let Some(replica) = chosen.and_then(|i| replication.replicas.get(i)) else {
            return ReadTarget::Primary;
        };
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
            reads: self.primary_reads.total(),
            reads_per_level: per_level(&self.primary_reads),
            writes: self.primary_writes.load(Ordering::Relaxed),
            errors: 0,
            degraded_writes: self
                .replication
                .as_ref()
                .map_or(0, |r| r.degraded_writes.load(Ordering::Relaxed)),
            apply_delay_ms: None,
            in_rotation: true,
            left_rotation: 0,
            rejoined_rotation: 0,
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
                reads: r.reads.total(),
                reads_per_level: per_level(&r.reads),
                writes: 0,
                errors: r.errors.load(Ordering::Relaxed),
                degraded_writes: 0,
                apply_delay_ms: r.apply_delay_percentiles(),
                in_rotation: r.in_rotation(),
                left_rotation: r.left_rotation.load(Ordering::Relaxed),
                rejoined_rotation: r.rejoined_rotation.load(Ordering::Relaxed),
                problem: r.problem().or_else(|| {
                    r.rotation_problem()
                        .map(|why| format!("out of the acknowledgement rotation: {why}"))
                }),
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
