//! Rebuilding a replica file from a consistent copy of its primary.
//!
//! The copy is taken with SQLite's backup API in one step, inside one read transaction on the
//! primary, so it is a consistent snapshot while the primary's writer keeps committing (WAL).
//! The copy carries the primary's log, whose newest record is the position the replica then
//! resumes from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::log::{self, Position};
use crate::storage::StorageError;

/// A file's companions in WAL mode.
pub fn wal_companions(path: &Path) -> [PathBuf; 2] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with_suffix("-wal"), with_suffix("-shm")]
}

fn remove_database_files(path: &Path) -> Result<(), StorageError> {
    for file in std::iter::once(path.to_path_buf()).chain(wal_companions(path)) {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StorageError::internal(format!(
                    "cannot remove {}: {e}",
                    file.display()
                )));
            }
        }
    }
    Ok(())
}

/// Opens the primary for reading the log or copying it, outside the pools (no authorizer:
/// these connections only ever run shardgate's own statements).
pub fn open_primary_reader(primary: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open_with_flags(
        primary,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Replaces the file at `replica` with a snapshot of `primary`; returns the log identity and
/// the position the snapshot holds. The caller has closed every connection to `replica`.
pub fn rebuild(primary: &Path, replica: &Path) -> Result<(String, Position), StorageError> {
    if let Some(parent) = replica.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            StorageError::internal(format!("cannot create {}: {e}", parent.display()))
        })?;
    }
    let mut temporary = replica.as_os_str().to_owned();
    temporary.push(".snapshot");
    let temporary = PathBuf::from(temporary);
    remove_database_files(&temporary)?;
    let source = open_primary_reader(primary)?;
    let mut copy = Connection::open(&temporary)?;
    {
        let backup = Backup::new(&source, &mut copy)?;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    drop(source);
    let (identity, _) = log::stored_position(&copy)?
        .ok_or_else(|| StorageError::internal("the primary has no replication log identity"))?;
    let position = log::last_position(&copy)?;
    copy.execute_batch("BEGIN; DELETE FROM _shardgate_log;")?;
    log::store_position(&copy, &identity, position)?;
    copy.execute_batch("COMMIT")?;
    copy.pragma_update(None, "journal_mode", "WAL")?;
    copy.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(copy);
    remove_database_files(replica)?;
    for companion in wal_companions(&temporary) {
        let _ = std::fs::remove_file(companion);
    }
    std::fs::rename(&temporary, replica).map_err(|e| {
        StorageError::internal(format!(
            "cannot move the snapshot to {}: {e}",
            replica.display()
        ))
    })?;
    Ok((identity, position))
}
