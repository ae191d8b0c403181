//! Connection pools and leases. A lease owns one connection until dropped; dropping it inside
//! a transaction rolls the transaction back first, so a pooled connection is never handed out
//! mid-transaction (even when a client disconnects in the middle of one). A lease that has to
//! wait waits as its session's [`Canceller`] allows, never unbounded for a client.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rusqlite::InterruptHandle;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::connection::{self, ConnectionSettings, Role, SqlConn};
use super::error::{StorageError, StorageErrorKind};

fn shutting_down() -> StorageError {
    StorageError::new(
        StorageErrorKind::ShuttingDown,
        "terminating connection due to administrator command",
    )
}

pub struct ConnPool {
    path: PathBuf,
    role: Role,
    settings: ConnectionSettings,
    idle: Mutex<Vec<SqlConn>>,
    size: u32,
    permits: Arc<Semaphore>,
}

impl ConnPool {
    /// Opens `size` connections up front, so a bad path or permission fails at start-up.
    pub fn open(
        path: PathBuf,
        role: Role,
        size: usize,
        settings: ConnectionSettings,
    ) -> Result<Arc<ConnPool>, StorageError> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(connection::open(&path, role, &settings)?);
        }
        Ok(Arc::new(ConnPool {
            path,
            role,
            settings,
            idle: Mutex::new(idle),
            size: size as u32,
            permits: Arc::new(Semaphore::new(size)),
        }))
    }

    /// A connection of this pool; when all are leased, waits as `canceller` allows (its
    /// `lock_timeout`, a CancelRequest, shutdown).
    pub async fn lease(self: &Arc<Self>, canceller: &Canceller) -> Result<Lease, StorageError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(shutting_down()),
            Err(TryAcquireError::NoPermits) => canceller
                .bounded_wait(self.permits.clone().acquire_owned())
                .await?
                .map_err(|_| shutting_down())?,
        };
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            // A connection was lost to a panic: replace it.
            None => {
                let pool = self.clone();
                tokio::task::spawn_blocking(move || {
                    connection::open(&pool.path, pool.role, &pool.settings)
                })
                .await
                .map_err(|e| {
                    StorageError::internal(format!("opening a connection failed: {e}"))
                })??
            }
        };
        Ok(Lease {
            conn: Some(conn),
            pool: self.clone(),
            permit: Some(permit),
        })
    }

    fn give_back(&self, conn: SqlConn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    /// Takes every connection out of the pool (waiting for leases to end) and runs `f` on
    /// one of them; used at shutdown to checkpoint.
    pub async fn close(self: &Arc<Self>, f: impl FnOnce(&SqlConn) + Send + 'static) {
        let Ok(permits) = self.permits.clone().acquire_many_owned(self.size).await else {
            return;
        };
        self.permits.close();
        let conns: Vec<SqlConn> = self
            .idle
            .lock()
            .map(|mut idle| idle.drain(..).collect())
            .unwrap_or_default();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(first) = conns.first() {
                f(first);
            }
            drop(conns);
            drop(permits);
        })
        .await;
    }
}

/// A session's hold on what it is doing right now: a CancelRequest interrupts its running
/// statement or ends its wait for a connection (57014), shutdown ends the wait (57P01), and
/// its `lock_timeout` bounds the wait (55P03).
#[derive(Clone, Default)]
pub struct Canceller {
    inner: Arc<CancelState>,
}

#[derive(Default)]
struct CancelState {
    running: Mutex<Option<Arc<InterruptHandle>>>,
    /// Wakes a wait for a connection.
    wake: Notify,
    /// Shutdown began: waits end at once, and no new one starts.
    terminating: AtomicBool,
    /// `lock_timeout` in milliseconds; 0 waits until cancelled.
    lock_timeout_ms: AtomicU64,
    /// Resolves once the session's client has closed its connection.
    hang_up: OnceLock<HangUp>,
}

/// A future that resolves once a session's client has gone away, made afresh for each wait.
pub type HangUp = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

impl Canceller {
    /// A wait starts watching for the client going away after this long.
    const WATCH_HANG_UP_AFTER: Duration = Duration::from_millis(50);

    pub fn with_lock_timeout(lock_timeout: Duration) -> Canceller {
        let canceller = Canceller::default();
        canceller.set_lock_timeout(lock_timeout);
        canceller
    }

    /// A zero timeout waits until cancelled, as PostgreSQL's `lock_timeout = 0` does.
    pub fn set_lock_timeout(&self, lock_timeout: Duration) {
        let millis = u64::try_from(lock_timeout.as_millis()).unwrap_or(u64::MAX);
        self.inner.lock_timeout_ms.store(millis, Ordering::Relaxed);
    }

    /// Lets waits end when the client goes away (a dropped connection's statement would
    /// otherwise still take the writer, and run, once it is free).
    pub fn watch_hang_up(&self, hang_up: HangUp) {
        let _ = self.inner.hang_up.set(hang_up);
    }

    /// CancelRequest: like PostgreSQL, it affects only what runs or waits right now.
    pub fn cancel(&self) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(handle) = running.as_ref()
        {
            handle.interrupt();
        }
        self.inner.wake.notify_waiters();
    }

    /// Shutdown: ends the session's wait for a connection now, and any later one at once.
    pub fn terminate(&self) {
        self.inner.terminating.store(true, Ordering::Release);
        self.inner.wake.notify_waiters();
    }

    fn set(&self, handle: Option<Arc<InterruptHandle>>) {
        if let Ok(mut running) = self.inner.running.lock() {
            *running = handle;
        }
    }

    /// Waits for `acquire` unless the session is cancelled, the server shuts down or the
    /// session's `lock_timeout` passes first.
    async fn bounded_wait<T>(
        &self,
        acquire: impl std::future::Future<Output = T>,
    ) -> Result<T, StorageError> {
        let woken = self.inner.wake.notified();
        tokio::pin!(woken);
        // Registered before the flag is read, so a terminate() in between still wakes it.
        woken.as_mut().enable();
        if self.inner.terminating.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        let timeout = match self.inner.lock_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(Duration::from_millis(millis)),
        };
        let hung_up = async {
            match self.inner.hang_up.get() {
                Some(hang_up) => {
                    // Watching the socket costs system calls; most waits (writers queueing
                    // behind short transactions) end sooner than this.
                    tokio::time::sleep(Self::WATCH_HANG_UP_AFTER).await;
                    hang_up().await
                }
                None => std::future::pending().await,
            }
        };
        let expired = async {
            match timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            acquired = acquire => Ok(acquired),
            () = woken => Err(if self.inner.terminating.load(Ordering::Acquire) {
                shutting_down()
            } else {
                StorageError::new(
                    StorageErrorKind::Interrupted,
                    "canceling statement due to user request",
                )
            }),
            () = hung_up => Err(StorageError::new(
                StorageErrorKind::Interrupted,
                "canceling statement: the client closed its connection",
            )),
            () = expired => Err(StorageError::new(
                StorageErrorKind::LockTimeout,
                "canceling statement due to lock timeout",
            )),
        }
    }
}

/// One connection, owned by one session until dropped.
pub struct Lease {
    conn: Option<SqlConn>,
    pool: Arc<ConnPool>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    /// Runs `f` on the leased connection. `cost_key` names the work (the statement text, or
    /// `BEGIN`/`COMMIT`; hashed once, literals left out, by [`shape_hash`]): work of a shape
    /// this connection last finished quickly runs right
    /// here on the async worker, anything else (new, or slow last time) runs under
    /// `block_in_place`, which hands the worker's other tasks to another thread first. A panic
    /// inside `f` loses this connection (the pool opens a new one later) and is reported as an
    /// internal error.
    pub async fn run<T: Send + 'static>(
        &mut self,
        canceller: &Canceller,
        cost_key: &str,
        f: impl FnOnce(&SqlConn) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let shape = shape_hash(cost_key);
        let inline = self
            .conn
            .as_ref()
            .is_some_and(|conn| conn.run_times.is_quick(shape));
        let started = Instant::now();
        let result = self.run_placed(canceller, inline, f).await;
        if let Some(conn) = self.conn.as_mut() {
            conn.run_times.record(shape, started.elapsed());
        }
        result
    }

    /// Runs `f` without ever blocking the async worker: for work whose cost is not worth
    /// remembering (describing a statement, loading the schema, trimming the log).
    pub async fn run_blocking<T: Send + 'static>(
        &mut self,
        canceller: &Canceller,
        f: impl FnOnce(&SqlConn) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.run_placed(canceller, false, f).await
    }

    async fn run_placed<T: Send + 'static>(
        &mut self,
        canceller: &Canceller,
        inline: bool,
        f: impl FnOnce(&SqlConn) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StorageError::internal("connection lost after an earlier failure"))?;
        canceller.set(Some(Arc::new(conn.conn.get_interrupt_handle())));
        let contained = move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let result = f(&conn);
                (conn, result)
            }))
            .map_err(|_| "a panic")
        };
        // A spawn_blocking round trip per statement cost a fifth of pgbench -S throughput
        // (25k → 33k TPS with block_in_place), and block_in_place itself wakes a thread per
        // statement; a point select is a few µs of SQLite work, less than either hand-off.
        let joined = if inline {
            contained()
        } else if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(contained)
        } else {
            tokio::task::spawn_blocking(contained)
                .await
                .unwrap_or(Err("a panic"))
        };
        canceller.set(None);
        match joined {
            Ok((conn, result)) => {
                self.conn = Some(conn);
                result
            }
            Err(e) => Err(StorageError::internal(format!(
                "statement execution failed: {e}"
            ))),
        }
    }

    pub fn in_transaction(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.conn.is_autocommit())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let pool = self.pool.clone();
        let permit = self.permit.take();
        if conn.conn.is_autocommit() {
            pool.give_back(conn);
            drop(permit);
            return;
        }
        let rollback = move || {
            conn.rollback();
            if conn.conn.is_autocommit() {
                pool.give_back(conn);
            }
            drop(permit);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(rollback);
            }
            Err(_) => rollback(),
        }
    }
}

/// How long work of each statement shape last took on one connection, to tell statements that
/// may run on the async worker from those that must not block it.
#[derive(Default)]
pub struct RunTimes(HashMap<u64, Duration>);

impl RunTimes {
    /// Work up to this long runs on the async worker. A statement that suddenly takes longer
    /// (its table grew) stalls that worker once and is then run off it.
    const QUICK: Duration = Duration::from_micros(500);
    /// Shapes remembered per connection; an application with more distinct statements than
    /// this starts over, which costs each statement one off-worker run.
    const CAPACITY: usize = 4096;

    /// `shape` is a [`shape_hash`].
    fn is_quick(&self, shape: u64) -> bool {
        self.0.get(&shape).is_some_and(|took| *took <= Self::QUICK)
    }

    fn record(&mut self, shape: u64, took: Duration) {
        if self.0.len() >= Self::CAPACITY && !self.0.contains_key(&shape) {
            self.0.clear();
        }
        self.0.insert(shape, took);
    }
}

/// A hash of a statement's text with its number and string literals left out, so that the
/// simple protocol's `... WHERE aid = 17` and `... WHERE aid = 42` share one remembered cost
/// (keyed by the full text, every simple-protocol point select looked new and ran off-worker).
fn shape_hash(sql: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    let mut mix = |byte: u8| hash = (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    let mut bytes = sql.bytes().peekable();
    let mut after_identifier = false;
    while let Some(byte) = bytes.next() {
        if byte == b'\'' {
            // Skip to the closing quote; '' inside a string is an escaped quote.
            while let Some(inner) = bytes.next() {
                if inner == b'\'' && bytes.next_if_eq(&b'\'').is_none() {
                    break;
                }
            }
            mix(b'?');
            after_identifier = false;
        } else if byte.is_ascii_digit() && !after_identifier {
            while bytes
                .next_if(|b| b.is_ascii_digit() || *b == b'.')
                .is_some()
            {}
            mix(b'?');
        } else {
            mix(byte);
            after_identifier = byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'"';
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::shape_hash;

    #[test]
    fn literals_do_not_change_a_shape_but_identifiers_and_operators_do() {
        let point = "SELECT abalance FROM pgbench_accounts WHERE aid = 17;";
        assert_eq!(
            shape_hash(point),
            shape_hash("SELECT abalance FROM pgbench_accounts WHERE aid = 123456;")
        );
        assert_eq!(
            shape_hash("SELECT * FROM t WHERE name = 'it''s' AND x = 1.5"),
            shape_hash("SELECT * FROM t WHERE name = 'other' AND x = 20")
        );
        assert_ne!(
            shape_hash("SELECT * FROM t1"),
            shape_hash("SELECT * FROM t2")
        );
        assert_ne!(
            shape_hash("SELECT * FROM t WHERE a = 1"),
            shape_hash("SELECT * FROM t WHERE a > 1")
        );
        assert_ne!(shape_hash(point), shape_hash("COMMIT"));
    }
}
