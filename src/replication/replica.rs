//! One replica as the rest of the server sees it: its read connections (absent while it is
//! being built), how far it has applied the log, whether it is healthy (reads may use it) and
//! why not, whether it is in the acknowledgement rotation (writes wait for it) and why not, and
//! its counters.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;

use super::log::Position;
use crate::config::ReadConsistency;
use crate::storage::SqliteBackend;

/// Reads a database answered, per `read_consistency` level of the sessions that sent them.
#[derive(Default)]
pub struct ReadCounts([AtomicU64; 3]);

impl ReadCounts {
    fn slot(level: ReadConsistency) -> usize {
        match level {
            ReadConsistency::Strong => 0,
            ReadConsistency::Session => 1,
            ReadConsistency::Eventual => 2,
        }
    }

    pub fn record(&self, level: ReadConsistency) {
        self.0[Self::slot(level)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn of(&self, level: ReadConsistency) -> u64 {
        self.0[Self::slot(level)].load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

pub struct Replica {
    pub name: String,
    pub weight: u32,
    pub path: PathBuf,
    backend: RwLock<Option<Arc<SqliteBackend>>>,
    applied: Mutex<Position>,
    /// Commit time (µs since the epoch) of the oldest record not yet applied; 0 when caught up.
    pending_since_us: AtomicI64,
    healthy: AtomicBool,
    problem: Mutex<Option<String>>,
    /// Whether `synchronous` and `semi_synchronous` writes wait for this replica. Every replica
    /// starts in it, so writes after a restart wait for replicas that are still catching up.
    in_rotation: AtomicBool,
    /// Why the replica last left the rotation.
    rotation_problem: Mutex<Option<String>>,
    pub left_rotation: AtomicU64,
    pub rejoined_rotation: AtomicU64,
    rebuild_requested: AtomicBool,
    /// Wakes the shipper for something other than a new commit (a rebuild request).
    pub(super) wake: Notify,
    pub reads: ReadCounts,
    pub errors: AtomicU64,
    /// Commit-to-apply delays of the most recent records, in milliseconds.
    apply_delays_ms: Mutex<VecDeque<f64>>,
}

/// How many recent commit-to-apply delays a replica keeps for its percentiles.
const DELAY_SAMPLES: usize = 10_000;

impl Replica {
    pub fn new(name: String, weight: u32, path: PathBuf) -> Replica {
        Replica {
            name,
            weight,
            path,
            backend: RwLock::new(None),
            applied: Mutex::new(Position::default()),
            pending_since_us: AtomicI64::new(0),
            healthy: AtomicBool::new(false),
            problem: Mutex::new(Some("starting".into())),
            in_rotation: AtomicBool::new(true),
            rotation_problem: Mutex::new(None),
            left_rotation: AtomicU64::new(0),
            rejoined_rotation: AtomicU64::new(0),
            rebuild_requested: AtomicBool::new(false),
            wake: Notify::new(),
            reads: ReadCounts::default(),
            errors: AtomicU64::new(0),
            apply_delays_ms: Mutex::new(VecDeque::with_capacity(DELAY_SAMPLES)),
        }
    }

    /// The read connections, when the replica is open and healthy.
    pub fn readable(&self) -> Option<Arc<SqliteBackend>> {
        if !self.is_healthy() {
            return None;
        }
        self.backend()
    }

    /// The read connections, healthy or not (health checks probe them).
    pub fn backend(&self) -> Option<Arc<SqliteBackend>> {
        self.backend.read().ok().and_then(|b| b.clone())
    }

    pub(super) fn set_backend(
        &self,
        backend: Option<Arc<SqliteBackend>>,
    ) -> Option<Arc<SqliteBackend>> {
        match self.backend.write() {
            Ok(mut slot) => std::mem::replace(&mut *slot, backend),
            Err(_) => None,
        }
    }

    pub fn applied(&self) -> Position {
        self.applied.lock().map(|p| *p).unwrap_or_default()
    }

    pub(super) fn set_applied(&self, position: Position) {
        if let Ok(mut applied) = self.applied.lock() {
            *applied = position;
        }
    }

    /// Records that records committed at `committed_at_us` were applied now.
    pub(super) fn note_applied(&self, committed_at_us: impl Iterator<Item = i64>) {
        let now = chrono::Utc::now().timestamp_micros();
        if let Ok(mut delays) = self.apply_delays_ms.lock() {
            for committed in committed_at_us {
                if delays.len() == DELAY_SAMPLES {
                    delays.pop_front();
                }
                delays.push_back(now.saturating_sub(committed).max(0) as f64 / 1000.0);
            }
        }
    }

    /// The median and 99th percentile of recent commit-to-apply delays, in milliseconds.
    pub fn apply_delay_percentiles(&self) -> Option<(f64, f64)> {
        let mut delays: Vec<f64> = self.apply_delays_ms.lock().ok()?.iter().copied().collect();
        if delays.is_empty() {
            return None;
        }
        delays.sort_by(f64::total_cmp);
        let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99)))
    }

    pub fn pending_since_us(&self) -> i64 {
        self.pending_since_us.load(Ordering::Acquire)
    }

    pub(super) fn set_pending_since_us(&self, micros: i64) {
        self.pending_since_us.store(micros, Ordering::Release);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub fn problem(&self) -> Option<String> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }

    pub(super) fn mark_healthy(&self) {
        if let Ok(mut problem) = self.problem.lock() {
            *problem = None;
        }
        self.healthy.store(true, Ordering::Release);
    }

    /// Takes the replica out of the read rotation, saying why.
    pub fn mark_unhealthy(&self, why: impl Into<String>) {
        let why = why.into();
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!("replica {} leaves the read rotation: {why}", self.name);
        }
        if let Ok(mut problem) = self.problem.lock() {
            *problem = Some(why);
        }
    }

    pub fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::Acquire)
    }

    /// Why the replica is out of the acknowledgement rotation, while it is.
    pub fn rotation_problem(&self) -> Option<String> {
        if self.in_rotation() {
            return None;
        }
        self.rotation_problem.lock().ok().and_then(|p| p.clone())
    }

    /// Writes stop waiting for this replica until it has caught up.
    pub(super) fn leave_rotation(&self, why: String) {
        if let Ok(mut problem) = self.rotation_problem.lock() {
            *problem = Some(why.clone());
        }
        if self.in_rotation.swap(false, Ordering::AcqRel) {
            let times = self.left_rotation.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                "replica {} leaves the acknowledgement rotation ({times} time(s) so far): {why}",
                self.name
            );
        }
    }

    /// The replica has applied everything the primary committed: writes wait for it again.
    pub(super) fn rejoin_rotation(&self, applied_lsn: u64) {
        if !self.in_rotation.swap(true, Ordering::AcqRel) {
            self.rejoined_rotation.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "replica {} caught up at LSN {applied_lsn} and rejoins the acknowledgement rotation",
                self.name
            );
        }
    }

    /// A read failed in a way that says the file is damaged: rebuild it from a snapshot.
    pub fn request_rebuild(&self, why: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.mark_unhealthy(why);
        self.rebuild_requested.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(super) fn take_rebuild_request(&self) -> bool {
        self.rebuild_requested.swap(false, Ordering::AcqRel)
    }
}
