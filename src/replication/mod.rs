//! Replication: the row-level log a primary writes in the same transaction as its data
//! ([`log`], [`changeset`]), the shipper that applies it to each replica in order
//! ([`shipper`]), the snapshots that rebuild a replica that cannot catch up ([`snapshot`]),
//! and, here, what ties them together for one shard: acknowledgement per replication mode,
//! health checks and log truncation.

pub mod changeset;
pub mod log;
pub mod replica;
pub mod shipper;
pub mod snapshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::config::{ReplicationConfig, ReplicationMode, ShardConfig};
use crate::storage::{Backend, ConnectionSettings, Intent};
use log::Position;
use replica::Replica;

/// The replicas of one shard and the tasks that feed and watch them.
pub struct Replication {
    pub config: ReplicationConfig,
    pub replicas: Vec<Arc<Replica>>,
    committed: watch::Receiver<Position>,
    progress: Arc<Notify>,
    /// Writes acknowledged without the acknowledgements their mode asks for.
    pub degraded_writes: AtomicU64,
    last_degraded_log: AtomicI64,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Replication {
    /// Starts a shipper per replica, the health checks and the log truncation. `committed`
    /// announces the primary writer's committed positions; `primary` is the primary backend
    /// (its writer trims the log).
    pub fn start(
        shard: &ShardConfig,
        config: &ReplicationConfig,
        read_connections: usize,
        settings: ConnectionSettings,
        committed: watch::Receiver<Position>,
        primary: Arc<dyn Backend>,
    ) -> Arc<Replication> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let progress = Arc::new(Notify::new());
        let replicas: Vec<Arc<Replica>> = shard
            .replicas
            .iter()
            .map(|r| Arc::new(Replica::new(r.name.clone(), r.weight, r.path.clone())))
            .collect();
        let ctx = Arc::new(shipper::ShipContext {
            primary_path: shard.primary.clone(),
            settings: ConnectionSettings {
                replication_log: None,
                ..settings
            },
            read_connections,
            committed: committed.clone(),
            progress: progress.clone(),
            apply_delay: config.apply_delay,
            retry_interval: config.health_check_interval,
            shutdown: shutdown_rx,
        });
        let replication = Arc::new(Replication {
            config: config.clone(),
            replicas,
            committed,
            progress,
            degraded_writes: AtomicU64::new(0),
            last_degraded_log: AtomicI64::new(0),
            shutdown,
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        for replica in &replication.replicas {
            tasks.push(tokio::spawn(shipper::run(replica.clone(), ctx.clone())));
        }
        tasks.push(tokio::spawn(maintain(replication.clone(), primary)));
        if let Ok(mut slot) = replication.tasks.lock() {
            *slot = tasks;
        }
        replication
    }

    /// The primary's last committed position.
    pub fn primary_position(&self) -> Position {
        *self.committed.borrow()
    }

    /// Records behind the primary.
    pub fn lag_records(&self, replica: &Replica) -> u64 {
        self.primary_position()
            .lsn
            .saturating_sub(replica.applied().lsn)
    }

    /// How long the oldest record a replica has not applied has been committed.
    pub fn lag(&self, replica: &Replica) -> Duration {
        let since = replica.pending_since_us();
        if since == 0 || self.lag_records(replica) == 0 {
            return Duration::ZERO;
        }
        let now = chrono::Utc::now().timestamp_micros();
        Duration::from_micros(now.saturating_sub(since).max(0) as u64)
    }

    /// Whether a replica may serve a read that must see `min_lsn`.
    pub fn can_serve(&self, replica: &Replica, min_lsn: u64) -> bool {
        replica.is_healthy()
            && replica.applied().lsn >= min_lsn
            && self.lag(replica) <= self.config.max_lag
    }

    /// Waits until the write that committed at `lsn` may be acknowledged in this mode.
    pub async fn acknowledge(&self, lsn: u64) {
        let required = match self.config.mode {
            ReplicationMode::Asynchronous => return,
            ReplicationMode::SemiSynchronous => self.config.min_acks.min(self.replicas.len()),
            ReplicationMode::Synchronous => self.replicas.len(),
        };
        let deadline = tokio::time::Instant::now() + self.config.ack_timeout;
        loop {
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let healthy: Vec<&Arc<Replica>> =
                self.replicas.iter().filter(|r| r.is_healthy()).collect();
            let acked = healthy.iter().filter(|r| r.applied().lsn >= lsn).count();
            let enough = match self.config.mode {
                ReplicationMode::Synchronous => acked == healthy.len(),
                _ => acked >= required.min(healthy.len()),
            };
            if enough {
                if acked < required {
                    self.degraded(lsn, acked, required);
                }
                return;
            }
            tokio::select! {
                _ = progress => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if self.config.mode == ReplicationMode::Synchronous {
                        // A replica that holds every write back leaves the rotation rather
                        // than stalling the primary.
                        for replica in &healthy {
                            if replica.applied().lsn < lsn {
                                replica.mark_unhealthy(format!(
                                    "did not apply LSN {lsn} within ack_timeout"
                                ));
                            }
                        }
                    }
                    let acked = self.replicas.iter().filter(|r| r.applied().lsn >= lsn).count();
                    self.degraded(lsn, acked, required);
                    return;
                }
            }
        }
    }

    fn degraded(&self, lsn: u64, acked: usize, required: usize) {
        let total = self.degraded_writes.fetch_add(1, Ordering::Relaxed) + 1;
        // One line a second at most: with a replica down every write is degraded.
        let now = chrono::Utc::now().timestamp();
        if self.last_degraded_log.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                "write at LSN {lsn} acknowledged with {acked} of {required} replica acknowledgement(s) ({}); {total} degraded write(s) so far",
                self.config.mode
            );
        }
    }

    /// Stops the shippers and the maintenance task, and waits for them.
    pub async fn stop(&self) {
        self.shutdown.send_replace(true);
        self.progress.notify_waiters();
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Every `health_check_interval`: checks each replica's file and connections (rebuilding one
/// that is gone or damaged, bringing back one that answers again) and truncates the log below
/// what every replica applied, keeping at most `log_retention` records.
async fn maintain(replication: Arc<Replication>, primary: Arc<dyn Backend>) {
    let mut shutdown = replication.shutdown.subscribe();
    let mut interval = tokio::time::interval(replication.config.health_check_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        for replica in &replication.replicas {
            check_health(&replication, replica).await;
        }
        let lowest_applied = replication
            .replicas
            .iter()
            .map(|r| r.applied().lsn)
            .min()
            .unwrap_or(0);
        let newest = replication.primary_position().lsn;
        let retained_from = newest.saturating_sub(replication.config.log_retention);
        let below = (lowest_applied + 1).max(retained_from);
        match primary.trim_replication_log(below).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!("replication log: removed {n} record(s) below LSN {below}"),
            Err(e) => tracing::warn!("replication log truncation failed: {e}"),
        }
    }
}

async fn check_health(replication: &Replication, replica: &Arc<Replica>) {
    // A replica without read connections is being (re)built by its shipper.
    let Some(backend) = replica.backend() else {
        return;
    };
    if let Some(problem) = file_problem(&replica.path) {
        replica.request_rebuild(problem);
        return;
    }
    let probe = async {
        let internal = crate::storage::Canceller::default();
        let mut session = backend.session(Intent::Read, &internal).await?;
        session
            .execute(
                crate::storage::ExecRequest::sql("SELECT count(*) FROM sqlite_schema"),
                &internal,
            )
            .await
    };
    match probe.await {
        Ok(_)
            if !replica.is_healthy()
                && replica
                    .problem()
                    .is_some_and(|p| p.starts_with(READ_FAILED)) =>
        {
            tracing::info!("replica {} answers again", replica.name);
            replica.mark_healthy();
            replication.progress.notify_waiters();
        }
        Ok(_) => {}
        Err(e) => replica.request_rebuild(format!("health check failed: {e}")),
    }
}

/// What is wrong with a replica file that its open connections would not notice: it was
/// deleted (they keep the old inode) or its header was overwritten.
fn file_problem(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut header = [0u8; 16];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some("the replica file was deleted".into())
        }
        Err(e) => Some(format!("cannot read the replica file: {e}")),
        Ok(()) if &header != b"SQLite format 3\0" => {
            Some("the replica file is damaged (not a SQLite header)".into())
        }
        Ok(()) => None,
    }
}

/// The problem a replica is marked with after a failed read, which a passing health check
/// clears.
pub const READ_FAILED: &str = "a read failed";
