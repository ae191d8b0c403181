//! The backend interface: what the frontend and router need from a place that stores data.
//! Today the only implementation is a SQLite file in this process; a replica or shard on
//! another host, or a PostgreSQL server, would be another implementation of these traits.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::connection::{ConnectionSettings, Role};
use super::error::StorageError;
use super::exec::{self, ExecOutput, ExecRequest, PreparedShape};
use super::pool::{Canceller, ConnPool, Lease};
use super::schema::Schema;

/// What a session is about to do, which decides the connection it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Read,
    Write,
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// A connection for one statement or one transaction; dropping it ends (and, inside a
    /// transaction, rolls back) its use. A wait for it ends as `canceller` says (its
    /// `lock_timeout`, a CancelRequest, shutdown).
    async fn session(
        &self,
        intent: Intent,
        canceller: &Canceller,
    ) -> Result<Box<dyn BackendSession>, StorageError>;
    /// The result columns and parameter count of a statement, without running it.
    async fn describe(&self, sql: Arc<str>) -> Result<PreparedShape, StorageError>;
    /// The current schema snapshot.
    fn schema(&self) -> Arc<Schema>;
    /// Waits for leases to end, checkpoints and closes.
    async fn close(&self);
    /// Deletes replication log records below `below` (keeping the newest); returns how many.
    async fn trim_replication_log(&self, below: u64) -> Result<usize, StorageError>;
}

#[async_trait]
pub trait BackendSession: Send {
    async fn execute(
        &mut self,
        request: ExecRequest,
        canceller: &Canceller,
    ) -> Result<ExecOutput, StorageError>;
    async fn begin(&mut self, canceller: &Canceller) -> Result<(), StorageError>;
    /// Commits; returns the replication log position of the transaction's writes, if any.
    async fn commit(&mut self, canceller: &Canceller) -> Result<Option<u64>, StorageError>;
    async fn rollback(&mut self, canceller: &Canceller) -> Result<(), StorageError>;
    fn in_transaction(&self) -> bool;
}

/// A SQLite database file: one writer (none on a replica, which only the replication log
/// writes), a pool of readers.
pub struct SqliteBackend {
    writer: Option<Arc<ConnPool>>,
    readers: Arc<ConnPool>,
    schema: Arc<RwLock<Arc<Schema>>>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the file at `path` and its parent directories.
    pub async fn open(
        path: PathBuf,
        readers: usize,
        settings: ConnectionSettings,
    ) -> Result<SqliteBackend, StorageError> {
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StorageError::internal(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let writer = ConnPool::open(path.clone(), Role::Writer, 1, settings.clone())?;
            let readers = ConnPool::open(path, Role::Reader, readers, settings)?;
            Ok::<_, StorageError>((Some(writer), readers))
        })
        .await
        .map_err(|e| StorageError::internal(e.to_string()))?
        .map(|(writer, readers)| SqliteBackend {
            writer,
            readers,
            schema: Arc::new(RwLock::new(Arc::new(Schema::default()))),
        })
    }

    /// Opens read connections to a replica's file, which must exist already.
    pub async fn open_replica(
        path: PathBuf,
        readers: usize,
        settings: ConnectionSettings,
    ) -> Result<SqliteBackend, StorageError> {
        let readers = tokio::task::spawn_blocking(move || {
            ConnPool::open(path, Role::Reader, readers, settings)
        })
        .await
        .map_err(|e| StorageError::internal(e.to_string()))??;
        let backend = SqliteBackend {
            writer: None,
            readers,
            schema: Arc::new(RwLock::new(Arc::new(Schema::default()))),
        };
        backend.load_schema().await?;
        Ok(backend)
    }

    fn writer(&self) -> Result<&Arc<ConnPool>, StorageError> {
        self.writer.as_ref().ok_or_else(|| {
            StorageError::new(
                super::StorageErrorKind::ReadOnly,
                "cannot execute a write on a replica",
            )
        })
    }

    /// Loads the schema snapshot; called once after opening. A primary first converts what an
    /// earlier version stored in a form this one does not read.
    pub async fn load_schema(&self) -> Result<(), StorageError> {
        let pool = self.writer.as_ref().unwrap_or(&self.readers);
        let internal = Canceller::default();
        let mut lease = pool.lease(&internal).await?;
        let primary = self.writer.is_some();
        let schema = lease
            .run_blocking(&internal, move |conn| {
                if primary {
                    super::schema::convert_stored_forms(conn)?;
                }
                conn.as_internal(Schema::load)
            })
            .await?;
        if let Ok(mut slot) = self.schema.write() {
            *slot = Arc::new(schema);
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn session(
        &self,
        intent: Intent,
        canceller: &Canceller,
    ) -> Result<Box<dyn BackendSession>, StorageError> {
        let lease = match intent {
            Intent::Read => self.readers.lease(canceller).await?,
            Intent::Write => self.writer()?.lease(canceller).await?,
        };
        Ok(Box::new(SqliteSession {
            lease,
            schema: self.schema.clone(),
        }))
    }

    async fn describe(&self, sql: Arc<str>) -> Result<PreparedShape, StorageError> {
        let internal = Canceller::default();
        let mut lease = self.readers.lease(&internal).await?;
        lease
            .run_blocking(&internal, move |conn| exec::describe(conn, &sql))
            .await
    }

    fn schema(&self) -> Arc<Schema> {
        self.schema.read().map(|s| s.clone()).unwrap_or_default()
    }

    async fn trim_replication_log(&self, below: u64) -> Result<usize, StorageError> {
        let internal = Canceller::default();
        let mut lease = self.writer()?.lease(&internal).await?;
        lease
            .run_blocking(&internal, move |conn| {
                conn.as_internal(|c| crate::replication::log::truncate_below(c, below))
            })
            .await
    }

    async fn close(&self) {
        self.readers.close(|_| {}).await;
        let Some(writer) = &self.writer else {
            return;
        };
        writer
            .close(|conn| {
                if let Err(e) =
                    conn.as_internal(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
                {
                    tracing::warn!("checkpoint at shutdown failed: {e}");
                }
            })
            .await;
    }
}

struct SqliteSession {
    lease: Lease,
    schema: Arc<RwLock<Arc<Schema>>>,
}

#[async_trait]
impl BackendSession for SqliteSession {
    async fn execute(
        &mut self,
        request: ExecRequest,
        canceller: &Canceller,
    ) -> Result<ExecOutput, StorageError> {
        let changes_schema = request.changes_schema;
        // Cloned (a reference count) because the request moves into the closure.
        let first_statement = request.statements.first().cloned().unwrap_or_default();
        let (output, schema) = self
            .lease
            .run(canceller, &first_statement, move |conn| {
                let output = exec::execute(conn, &request)?;
                let schema = if changes_schema {
                    Some(conn.as_internal(Schema::load)?)
                } else {
                    None
                };
                Ok((output, schema))
            })
            .await?;
        if let Some(schema) = schema
            && let Ok(mut slot) = self.schema.write()
        {
            *slot = Arc::new(schema);
        }
        Ok(output)
    }

    async fn begin(&mut self, canceller: &Canceller) -> Result<(), StorageError> {
        self.lease
            .run(canceller, "BEGIN", |conn| conn.begin())
            .await
    }

    async fn commit(&mut self, canceller: &Canceller) -> Result<Option<u64>, StorageError> {
        self.lease
            .run(canceller, "COMMIT", |conn| conn.commit())
            .await
    }

    async fn rollback(&mut self, canceller: &Canceller) -> Result<(), StorageError> {
        self.lease
            .run(canceller, "ROLLBACK", |conn| {
                conn.rollback();
                Ok(())
            })
            .await
    }

    fn in_transaction(&self) -> bool {
        self.lease.in_transaction()
    }
}
