//! The task that keeps one replica following its primary: it checks the replica file at start
//! (rebuilding it from a snapshot when it cannot follow the log), opens its read connections,
//! then applies log records in order, in batches, whenever the primary commits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, watch};

use super::changeset;
use super::log::{self, Part, Position, Record};
use super::replica::Replica;
use super::snapshot;
use crate::storage::{Backend, ConnectionSettings, SqlConn, SqliteBackend, StorageError};

/// Records applied in one replica transaction at most.
const BATCH_RECORDS: usize = 256;

/// What every shipper of a shard shares.
pub struct ShipContext {
    pub primary_path: PathBuf,
    pub settings: ConnectionSettings,
    pub read_connections: usize,
    pub committed: watch::Receiver<Position>,
    /// Notified after every applied batch and health change (acknowledgement waiters).
    pub progress: Arc<Notify>,
    /// Artificial delay before each batch (testing and demonstrating lag).
    pub apply_delay: Duration,
    pub retry_interval: Duration,
    pub shutdown: watch::Receiver<bool>,
}

impl ShipContext {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// How following the log ended.
enum Interrupted {
    Stop,
    Rebuild(String),
}

/// Runs until shutdown.
pub async fn run(replica: Arc<Replica>, ctx: Arc<ShipContext>) {
    let mut rebuild_reason: Option<String> = None;
    while !ctx.stopping() {
        if let Some(old) = replica.set_backend(None) {
            old.close().await;
        }
        // Preparing checks the file anyway: a rebuild asked for before now is covered.
        replica.take_rebuild_request();
        let prepared = prepare(&replica, &ctx, rebuild_reason.take()).await;
        let outcome = match prepared {
            Ok(applier) => follow(&replica, &ctx, applier).await,
            Err(e) => {
                replica.mark_unhealthy(format!("cannot open the replica: {e}"));
                ctx.progress.notify_waiters();
                let mut shutdown = ctx.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(ctx.retry_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        match outcome {
            Interrupted::Stop => break,
            Interrupted::Rebuild(why) => {
                replica
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                replica.mark_unhealthy(why.clone());
                ctx.progress.notify_waiters();
                rebuild_reason = Some(why);
            }
        }
    }
    if let Some(old) = replica.set_backend(None) {
        old.close().await;
    }
}

/// The replica's writer: the log applier, with its log identity and applied position.
struct Applier {
    conn: SqlConn,
    identity: String,
    position: Position,
}

/// Why a replica file cannot follow the primary's log from where it is, if it cannot.
fn reason_to_rebuild(
    replica: &Path,
    primary: &Connection,
    identity: &str,
) -> Result<Option<String>, StorageError> {
    if !replica.exists() {
        return Ok(Some("the replica file does not exist".into()));
    }
    let stored = snapshot::open_primary_reader(replica).and_then(|c| log::stored_position(&c));
    let (replica_identity, position) = match stored {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Some("the file is not a replica (no log position)".into())),
        Err(e) => return Ok(Some(format!("the replica file is unreadable: {e}"))),
    };
    if replica_identity != identity {
        return Ok(Some(
            "the replica follows another primary (log identity differs)".into(),
        ));
    }
    let last = log::last_position(primary)?;
    if position.lsn > last.lsn {
        return Ok(Some(format!(
            "the replica is ahead of the primary (LSN {} > {})",
            position.lsn, last.lsn
        )));
    }
    let first = log::first_lsn(primary)?.unwrap_or(last.lsn + 1);
    if position.lsn < last.lsn && position.lsn + 1 < first {
        return Ok(Some(format!(
            "the log records after LSN {} were truncated",
            position.lsn
        )));
    }
    if position.lsn >= first {
        let at = log::read_after(primary, position.lsn - 1, 1)?;
        if at.first().is_some_and(|r| r.checksum != position.checksum) {
            return Ok(Some(format!(
                "the replica diverged (checksum differs at LSN {})",
                position.lsn
            )));
        }
    }
    Ok(None)
}

async fn prepare(
    replica: &Arc<Replica>,
    ctx: &Arc<ShipContext>,
    forced: Option<String>,
) -> Result<Applier, StorageError> {
    let path = replica.path.clone();
    let primary_path = ctx.primary_path.clone();
    let settings = ctx.settings.clone();
    let name = replica.name.clone();
    tokio::task::spawn_blocking(move || {
        let primary = snapshot::open_primary_reader(&primary_path)?;
        let (identity, _) = log::stored_position(&primary)?
            .ok_or_else(|| StorageError::internal("the primary has no replication log identity"))?;
        let reason = match forced {
            Some(reason) => Some(reason),
            None => reason_to_rebuild(&path, &primary, &identity)?,
        };
        drop(primary);
        if let Some(reason) = reason {
            tracing::info!("replica {name}: rebuilding from a snapshot of the primary: {reason}");
            let (_, position) = snapshot::rebuild(&primary_path, &path)?;
            tracing::info!("replica {name}: snapshot at LSN {}", position.lsn);
        }
        let conn = crate::storage::open_replica_applier(&path, &settings)?;
        let (identity, position) = conn
            .as_internal(log::stored_position)?
            .ok_or_else(|| StorageError::internal("the snapshot has no log position"))?;
        Ok(Applier {
            conn,
            identity,
            position,
        })
    })
    .await
    .map_err(|e| StorageError::internal(format!("replica preparation failed: {e}")))?
}

/// Applies `records` (which follow `applier.position`) in one transaction, verifying the
/// checksum chain; the new position is stored in the same transaction.
fn apply_batch(applier: &mut Applier, records: &[Record]) -> Result<(), String> {
    let mut position = applier.position;
    let result = applier.conn.as_internal(|conn| -> Result<(), String> {
        conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
        // Row changes since the last DDL, merged; `since` is the first LSN among them.
        let mut merged = changeset::Merged::new().map_err(|e| e.to_string())?;
        let mut since = position.lsn + 1;
        for record in records {
            if record.lsn != position.lsn + 1 {
                return Err(format!(
                    "log gap: expected LSN {}, got {}",
                    position.lsn + 1,
                    record.lsn
                ));
            }
            let expected = log::chain_checksum(position.checksum, record.lsn, &record.payload);
            if expected != record.checksum {
                return Err(format!("checksum mismatch at LSN {}", record.lsn));
            }
            for part in log::decode_parts(&record.payload)? {
                match part {
                    Part::Rows(changeset) => merged
                        .add(&changeset)
                        .map_err(|e| format!("LSN {}: {e}", record.lsn))?,
                    Part::Ddl(sql) => {
                        merged
                            .apply_and_clear(conn)
                            .map_err(|e| format!("LSN {since}..={}: {e}", record.lsn))?;
                        since = record.lsn;
                        conn.execute_batch(&sql)
                            .map_err(|e| format!("LSN {}: DDL failed: {e}", record.lsn))?;
                    }
                }
            }
            position = Position {
                lsn: record.lsn,
                checksum: record.checksum,
            };
        }
        merged
            .apply_and_clear(conn)
            .map_err(|e| format!("LSN {since}..={}: {e}", position.lsn))?;
        log::store_position(conn, &applier.identity, position).map_err(|e| e.to_string())?;
        conn.execute_batch("COMMIT").map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => {
            applier.position = position;
            Ok(())
        }
        Err(e) => {
            applier.conn.rollback();
            Err(e)
        }
    }
}

async fn follow(replica: &Arc<Replica>, ctx: &Arc<ShipContext>, applier: Applier) -> Interrupted {
    replica.set_applied(applier.position);
    ctx.progress.notify_waiters();
    // Writes wait for the applier, not for the read connections: those open meanwhile, and
    // the replica serves reads once they are ready.
    let mut readers = Some(tokio::spawn(SqliteBackend::open_replica(
        replica.path.clone(),
        ctx.read_connections,
        ctx.settings.clone(),
    )));

    let primary_path = ctx.primary_path.clone();
    let primary =
        match tokio::task::spawn_blocking(move || snapshot::open_primary_reader(&primary_path))
            .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Interrupted::Rebuild(format!("cannot read the primary's log: {e}"));
            }
            Err(e) => return Interrupted::Rebuild(format!("cannot read the primary's log: {e}")),
        };
    let mut work = Some((applier, primary));
    let mut committed = ctx.committed.clone();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        if ctx.stopping() {
            return Interrupted::Stop;
        }
        if readers
            .as_ref()
            .is_some_and(|opening| opening.is_finished())
            && let Some(opening) = readers.take()
            && let Err(why) = serve_reads(replica, ctx, opening.await)
        {
            return Interrupted::Rebuild(why);
        }
        if replica.take_rebuild_request() {
            return Interrupted::Rebuild(
                replica
                    .problem()
                    .unwrap_or_else(|| "rebuild requested".into()),
            );
        }
        let target = committed.borrow_and_update().lsn;
        if replica.applied().lsn >= target {
            replica.set_pending_since_us(0);
            if !replica.in_rotation() {
                replica.rejoin_rotation(target);
                ctx.progress.notify_waiters();
            }
            let opened = async {
                match readers.as_mut() {
                    Some(opening) => opening.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return Interrupted::Stop; },
                _ = replica.wake.notified() => {}
                _ = shutdown.changed() => return Interrupted::Stop,
                opened = opened => {
                    readers = None;
                    if let Err(why) = serve_reads(replica, ctx, opened) {
                        return Interrupted::Rebuild(why);
                    }
                }
            }
            continue;
        }
        if !ctx.apply_delay.is_zero() {
            tokio::time::sleep(ctx.apply_delay).await;
        }
        let Some((mut applier, primary)) = work.take() else {
            return Interrupted::Rebuild("the applier was lost".into());
        };
        let replica_for_batch = replica.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let records = log::read_after(&primary, applier.position.lsn, BATCH_RECORDS)
                .map_err(|e| format!("cannot read the primary's log: {e}"));
            let result = records.and_then(|records| {
                let Some(first) = records.first() else {
                    return Ok(());
                };
                if first.lsn != applier.position.lsn + 1 {
                    return Err(format!(
                        "the log records after LSN {} were truncated",
                        applier.position.lsn
                    ));
                }
                replica_for_batch.set_pending_since_us(first.committed_at);
                apply_batch(&mut applier, &records)?;
                replica_for_batch.note_applied(records.iter().map(|r| r.committed_at));
                Ok(())
            });
            (applier, primary, result)
        })
        .await;
        match joined {
            Ok((applier, primary, Ok(()))) => {
                replica.set_applied(applier.position);
                work = Some((applier, primary));
                ctx.progress.notify_waiters();
            }
            Ok((_, _, Err(e))) => return Interrupted::Rebuild(e),
            Err(e) => return Interrupted::Rebuild(format!("the applier failed: {e}")),
        }
    }
}

/// The replica's read connections opened (or failed to): it joins the read rotation.
fn serve_reads(
    replica: &Replica,
    ctx: &ShipContext,
    opened: Result<Result<SqliteBackend, StorageError>, tokio::task::JoinError>,
) -> Result<(), String> {
    let backend = match opened {
        Ok(Ok(backend)) => backend,
        Ok(Err(e)) => return Err(format!("cannot open read connections: {e}")),
        Err(e) => return Err(format!("cannot open read connections: {e}")),
    };
    replica.set_backend(Some(Arc::new(backend)));
    replica.mark_healthy();
    ctx.progress.notify_waiters();
    Ok(())
}
