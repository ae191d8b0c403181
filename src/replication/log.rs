//! The replication log: one record per committed write transaction, written by the primary's
//! writer connection in the same SQLite transaction as the rows it describes.
//!
//! A record holds the transaction's parts in order: row changes (a session changeset) and DDL
//! (the SQL as run on the primary, between the changesets captured before and after it). Each
//! record has a dense LSN, a commit time and a checksum chained from the previous record's, so
//! a replica that applied LSN n with checksum c is provably on the same history.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::changeset::{Capture, ChangesetError};
use crate::storage::StorageError;

/// A position in the log: the last applied (or written) record and its chained checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub lsn: u64,
    pub checksum: u64,
}

/// One part of a logged transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Rows(Vec<u8>),
    Ddl(String),
}

/// A record as stored and shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub lsn: u64,
    /// Microseconds since the Unix epoch.
    pub committed_at: i64,
    pub payload: Vec<u8>,
    pub checksum: u64,
}

/// Creates the log and position tables (on a primary and on a replica alike: a replica made
/// from a snapshot carries the primary's).
pub fn create_tables(conn: &Connection) -> Result<(), StorageError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _shardgate_log (
            lsn INTEGER PRIMARY KEY,
            committed_at INTEGER NOT NULL,
            payload BLOB NOT NULL,
            checksum INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS _shardgate_position (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            identity TEXT NOT NULL,
            lsn INTEGER NOT NULL,
            checksum INTEGER NOT NULL
        );",
    )?;
    Ok(())
}

/// The log identity and position stored in this file, if any: on a primary, its own identity
/// (the position row is not used); on a replica, the primary it follows and what it applied.
pub fn stored_position(conn: &Connection) -> Result<Option<(String, Position)>, StorageError> {
    Ok(conn
        .query_row(
            "SELECT identity, lsn, checksum FROM _shardgate_position WHERE id = 1",
            [],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    Position {
                        lsn: row.get::<_, i64>(1)? as u64,
                        checksum: row.get::<_, i64>(2)? as u64,
                    },
                ))
            },
        )
        .optional()?)
}

pub fn store_position(
    conn: &Connection,
    identity: &str,
    position: Position,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO _shardgate_position (id, identity, lsn, checksum) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET identity = excluded.identity, lsn = excluded.lsn, checksum = excluded.checksum",
    )?
    .execute(params![identity, position.lsn as i64, position.checksum as i64])?;
    Ok(())
}

/// The newest record's position (zero for an empty log).
pub fn last_position(conn: &Connection) -> Result<Position, StorageError> {
    Ok(conn
        .query_row(
            "SELECT lsn, checksum FROM _shardgate_log ORDER BY lsn DESC LIMIT 1",
            [],
            |row| {
                Ok(Position {
                    lsn: row.get::<_, i64>(0)? as u64,
                    checksum: row.get::<_, i64>(1)? as u64,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// The oldest LSN still in the log (records below it were truncated).
pub fn first_lsn(conn: &Connection) -> Result<Option<u64>, StorageError> {
    Ok(conn
        .query_row("SELECT min(lsn) FROM _shardgate_log", [], |row| {
            row.get::<_, Option<i64>>(0)
        })?
        .map(|lsn| lsn as u64))
}

/// Up to `limit` records after `after`, in order.
pub fn read_after(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<Record>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT lsn, committed_at, payload, checksum FROM _shardgate_log WHERE lsn > ?1 ORDER BY lsn LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit as i64], |row| {
        Ok(Record {
            lsn: row.get::<_, i64>(0)? as u64,
            committed_at: row.get(1)?,
            payload: row.get(2)?,
            checksum: row.get::<_, i64>(3)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes records below `below`, always keeping the newest one (it carries the position).
pub fn truncate_below(conn: &Connection, below: u64) -> Result<usize, StorageError> {
    Ok(conn.execute(
        "DELETE FROM _shardgate_log WHERE lsn < ?1 AND lsn < (SELECT max(lsn) FROM _shardgate_log)",
        params![below as i64],
    )?)
}

/// FNV-1a over the previous checksum, the LSN and the payload: cheap, and chained so that
/// equal positions mean equal histories.
pub fn chain_checksum(previous: u64, lsn: u64, payload: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in previous
        .to_le_bytes()
        .iter()
        .chain(lsn.to_le_bytes().iter())
        .chain(payload.iter())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const ROWS_TAG: u8 = 0;
const DDL_TAG: u8 = 1;

pub fn encode_parts(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let (tag, bytes) = match part {
            Part::Rows(changeset) => (ROWS_TAG, changeset.as_slice()),
            Part::Ddl(sql) => (DDL_TAG, sql.as_bytes()),
        };
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

pub fn decode_parts(mut payload: &[u8]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    while let Some((&tag, rest)) = payload.split_first() {
        let (len, rest) = rest
            .split_first_chunk::<8>()
            .ok_or("log record truncated in a part header")?;
        let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| "part too large")?;
        if rest.len() < len {
            return Err("log record truncated in a part".into());
        }
        let (bytes, rest) = rest.split_at(len);
        parts.push(match tag {
            ROWS_TAG => Part::Rows(bytes.to_vec()),
            DDL_TAG => {
                Part::Ddl(String::from_utf8(bytes.to_vec()).map_err(|_| "DDL part is not UTF-8")?)
            }
            other => return Err(format!("unknown log part tag {other}")),
        });
        payload = rest;
    }
    Ok(parts)
}

fn capture_error(e: ChangesetError) -> StorageError {
    StorageError::internal(format!("replication log: {e}"))
}

/// Writes the log from the primary's writer connection. Between `begin` and `commit` it
/// captures row changes; DDL is bracketed by `before_ddl`/`after_ddl` because a changeset
/// cannot span a schema change.
pub struct LogWriter {
    identity: Arc<str>,
    last: Position,
    capture: Option<Capture>,
    parts: Vec<Part>,
    committed: tokio::sync::watch::Sender<Position>,
}

/// What `prepare_commit` wrote, to be confirmed once COMMIT succeeds.
#[derive(Debug, Clone, Copy)]
pub struct PendingRecord(Position);

impl LogWriter {
    /// Reads (or, for a new primary, creates) the log identity and the last position.
    pub fn open(
        conn: &Connection,
        committed: tokio::sync::watch::Sender<Position>,
    ) -> Result<LogWriter, StorageError> {
        create_tables(conn)?;
        let identity = match stored_position(conn)? {
            Some((identity, _)) => identity,
            None => {
                let identity = uuid::Uuid::new_v4().to_string();
                store_position(conn, &identity, Position::default())?;
                identity
            }
        };
        let last = last_position(conn)?;
        committed.send_replace(last);
        Ok(LogWriter {
            identity: Arc::from(identity),
            last,
            capture: None,
            parts: Vec::new(),
            committed,
        })
    }

    pub fn identity(&self) -> Arc<str> {
        self.identity.clone()
    }

    /// Starts capturing; called right after BEGIN.
    pub fn begin(&mut self, conn: &Connection) -> Result<(), StorageError> {
        self.parts.clear();
        self.capture = Some(Capture::start(conn).map_err(capture_error)?);
        Ok(())
    }

    fn flush_capture(&mut self, conn: &Connection) -> Result<(), StorageError> {
        if let Some(capture) = self.capture.take()
            && !capture.is_empty()
        {
            let changeset = capture.changeset(conn).map_err(capture_error)?;
            if !changeset.is_empty() {
                self.parts.push(Part::Rows(changeset));
            }
        }
        Ok(())
    }

    pub fn before_ddl(&mut self, conn: &Connection) -> Result<(), StorageError> {
        self.flush_capture(conn)
    }

    pub fn after_ddl(&mut self, conn: &Connection, sql: String) -> Result<(), StorageError> {
        self.parts.push(Part::Ddl(sql));
        self.capture = Some(Capture::start(conn).map_err(capture_error)?);
        Ok(())
    }

    /// Writes the transaction's record (if it changed anything) inside the transaction.
    pub fn prepare_commit(
        &mut self,
        conn: &Connection,
    ) -> Result<Option<PendingRecord>, StorageError> {
        self.flush_capture(conn)?;
        if self.parts.is_empty() {
            return Ok(None);
        }
        let payload = encode_parts(&std::mem::take(&mut self.parts));
        let lsn = self.last.lsn + 1;
        let checksum = chain_checksum(self.last.checksum, lsn, &payload);
        let committed_at = chrono::Utc::now().timestamp_micros();
        conn.prepare_cached(
            "INSERT INTO _shardgate_log (lsn, committed_at, payload, checksum) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![lsn as i64, committed_at, payload, checksum as i64])?;
        Ok(Some(PendingRecord(Position { lsn, checksum })))
    }

    /// The COMMIT that carried `pending` succeeded: advance and wake the shippers.
    pub fn committed(&mut self, pending: PendingRecord) -> u64 {
        self.last = pending.0;
        self.committed.send_replace(self.last);
        self.last.lsn
    }

    /// The transaction rolled back: forget what was captured.
    pub fn abandon(&mut self) {
        self.capture = None;
        self.parts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let parts = vec![
            Part::Rows(vec![1, 2, 3]),
            Part::Ddl("CREATE TABLE t (a INT)".into()),
            Part::Rows(Vec::new()),
        ];
        assert_eq!(decode_parts(&encode_parts(&parts)).unwrap(), parts);
        assert!(decode_parts(&[0, 5]).is_err());
        assert!(decode_parts(&[9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn checksums_chain() {
        let a = chain_checksum(0, 1, b"x");
        let b = chain_checksum(a, 2, b"y");
        assert_ne!(a, b);
        assert_ne!(b, chain_checksum(chain_checksum(0, 1, b"z"), 2, b"y"));
    }

    #[test]
    fn a_transaction_writes_one_record_with_ddl_between_changesets() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let (tx, rx) = tokio::sync::watch::channel(Position::default());
        let mut log = LogWriter::open(&conn, tx).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        log.begin(&conn).unwrap();
        conn.execute_batch("INSERT INTO t VALUES (1, 'a')").unwrap();
        log.before_ddl(&conn).unwrap();
        conn.execute_batch("CREATE TABLE u (x INT)").unwrap();
        log.after_ddl(&conn, "CREATE TABLE u (x INT)".into())
            .unwrap();
        conn.execute_batch("INSERT INTO u VALUES (7)").unwrap();
        let pending = log.prepare_commit(&conn).unwrap().unwrap();
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(log.committed(pending), 1);
        assert_eq!(rx.borrow().lsn, 1);
        let records = read_after(&conn, 0, 10).unwrap();
        assert_eq!(records.len(), 1);
        let parts = decode_parts(&records[0].payload).unwrap();
        assert!(matches!(
            &parts[..],
            [Part::Rows(_), Part::Ddl(_), Part::Rows(_)]
        ));
        assert_eq!(
            records[0].checksum,
            chain_checksum(0, 1, &records[0].payload)
        );

        // A transaction that changes nothing writes nothing.
        conn.execute_batch("BEGIN").unwrap();
        log.begin(&conn).unwrap();
        assert!(log.prepare_commit(&conn).unwrap().is_none());
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(last_position(&conn).unwrap().lsn, 1);
    }

    #[test]
    fn rolled_back_savepoints_leave_nothing_in_the_changeset() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let (tx, _rx) = tokio::sync::watch::channel(Position::default());
        let mut log = LogWriter::open(&conn, tx).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        log.begin(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO t VALUES (1, 'kept'); SAVEPOINT s; INSERT INTO t VALUES (2, 'undone'); ROLLBACK TO s;",
        )
        .unwrap();
        let pending = log.prepare_commit(&conn).unwrap().unwrap();
        conn.execute_batch("COMMIT").unwrap();
        log.committed(pending);
        let record = &read_after(&conn, 0, 1).unwrap()[0];
        let replica = Connection::open_in_memory().unwrap();
        replica
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        for part in decode_parts(&record.payload).unwrap() {
            if let Part::Rows(changeset) = part {
                super::super::changeset::apply(&replica, &changeset).unwrap();
            }
        }
        let ids: Vec<i64> = replica
            .prepare("SELECT id FROM t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ids, [1]);
    }
}
