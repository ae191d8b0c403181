//! Connection pools and leases. A lease owns one connection until dropped; dropping it inside
//! a transaction rolls the transaction back first, so a pooled connection is never handed out
//! mid-transaction (even when a client disconnects in the middle of one).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::InterruptHandle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection::{self, ConnectionSettings, Role, SqlConn};
use super::error::StorageError;

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

    pub async fn lease(self: &Arc<Self>) -> Result<Lease, StorageError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::internal("the database is shutting down"))?;
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

/// Interrupts whatever statement a session is running right now (CancelRequest).
#[derive(Clone, Default)]
pub struct Canceller {
    running: Arc<Mutex<Option<Arc<InterruptHandle>>>>,
}

impl Canceller {
    pub fn cancel(&self) {
        if let Ok(running) = self.running.lock()
            && let Some(handle) = running.as_ref()
        {
            handle.interrupt();
        }
    }

    fn set(&self, handle: Option<Arc<InterruptHandle>>) {
        if let Ok(mut running) = self.running.lock() {
            *running = handle;
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
    /// Runs `f` on the leased connection without stalling other tasks. A panic inside `f` loses this
    /// connection (the pool opens a new one later) and is reported as an internal error.
    pub async fn run<T: Send + 'static>(
        &mut self,
        canceller: &Canceller,
        f: impl FnOnce(&SqlConn) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StorageError::internal("connection lost after an earlier failure"))?;
        canceller.set(Some(Arc::new(conn.conn.get_interrupt_handle())));
        // On the multi-threaded runtime the statement runs on this worker (block_in_place
        // hands the worker's other tasks to another thread): a point select is a few µs of
        // SQLite work, and a spawn_blocking round trip per statement cost a fifth of pgbench -S
        // throughput (25k → 33k TPS). A panic is still contained to this statement.
        let joined = if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    let result = f(&conn);
                    (conn, result)
                }))
                .map_err(|_| "a panic")
            })
        } else {
            tokio::task::spawn_blocking(move || {
                let result = f(&conn);
                (conn, result)
            })
            .await
            .map_err(|_| "a panic")
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
