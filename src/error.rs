//! The one place where shardgate's errors become PostgreSQL errors with a SQLSTATE.

use pgwire::error::{ErrorInfo, PgWireError};

use crate::sql::error::SqlError;
use crate::storage::{StorageError, StorageErrorKind};

/// Errors of the session layer itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    #[error("{0} can only be used in transaction blocks")]
    NoTransaction(&'static str),
    #[error("cannot insert multiple commands into a prepared statement")]
    MultipleCommandsInPrepared,
    #[error("{0}")]
    Protocol(String),
    #[error("terminating connection due to administrator command")]
    ShuttingDown,
    #[error("savepoint \"{0}\" does not exist")]
    NoSavepoint(String),
}

/// Any error a statement can end with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl Error {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Sql(e) => match e {
                SqlError::Unsupported(_) => "0A000",
                SqlError::Syntax(_) => "42601",
                SqlError::InvalidParameter(_) => "22P02",
                SqlError::OutOfRange(_) => "22003",
                SqlError::InvalidDatetime(_) => "22007",
                SqlError::UnknownSetting(_) => "42704",
                SqlError::InvalidCopy(_) => "22P04",
            },
            Error::Storage(e) => match e.kind {
                StorageErrorKind::UniqueViolation => "23505",
                StorageErrorKind::NotNullViolation => "23502",
                StorageErrorKind::ForeignKeyViolation => "23503",
                StorageErrorKind::CheckViolation => "23514",
                StorageErrorKind::NumericOutOfRange => "22003",
                StorageErrorKind::StringTooLong => "22001",
                StorageErrorKind::InvalidDatetimeFormat => "22007",
                StorageErrorKind::Unsupported => "0A000",
                StorageErrorKind::UndefinedTable => "42P01",
                StorageErrorKind::UndefinedColumn => "42703",
                StorageErrorKind::UndefinedFunction => "42883",
                StorageErrorKind::DuplicateTable => "42P07",
                StorageErrorKind::Syntax => "42601",
                StorageErrorKind::PermissionDenied => "42501",
                StorageErrorKind::ReadOnly => "25006",
                StorageErrorKind::Busy => "55P03",
                StorageErrorKind::Interrupted => "57014",
                StorageErrorKind::DatatypeMismatch => "42804",
                StorageErrorKind::TooManyConnections => "53300",
                StorageErrorKind::Io => "58030",
                StorageErrorKind::Corrupt => "XX001",
                StorageErrorKind::Internal => "XX000",
            },
            Error::Session(e) => match e {
                SessionError::InFailedTransaction => "25P02",
                SessionError::NoTransaction(_) => "25P01",
                SessionError::MultipleCommandsInPrepared => "42601",
                SessionError::Protocol(_) => "08P01",
                SessionError::ShuttingDown => "57P01",
                SessionError::NoSavepoint(_) => "3B001",
            },
        }
    }

    /// FATAL for errors after which the server closes the connection, as PostgreSQL does.
    pub fn severity(&self) -> &'static str {
        match self {
            Error::Session(SessionError::ShuttingDown) => "FATAL",
            _ => "ERROR",
        }
    }

    pub fn to_error_info(&self) -> ErrorInfo {
        ErrorInfo::new(
            self.severity().into(),
            self.sqlstate().into(),
            self.to_string(),
        )
    }

    pub fn to_pgwire(&self) -> PgWireError {
        PgWireError::UserError(Box::new(self.to_error_info()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_constraint_errors_get_postgres_codes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n INT CONSTRAINT \"_sg_range_n\" CHECK (n < 10), c INT CHECK (c > 0));
             INSERT INTO p VALUES (1, 'a', 1, 1);",
        )
        .unwrap();
        let code = |sql: &str| {
            Error::from(StorageError::from(conn.execute_batch(sql).unwrap_err())).sqlstate()
        };
        assert_eq!(code("INSERT INTO p VALUES (1, 'b', 1, 1)"), "23505");
        assert_eq!(code("INSERT INTO p VALUES (2, NULL, 1, 1)"), "23502");
        assert_eq!(code("INSERT INTO p VALUES (3, 'c', 99, 1)"), "22003");
        assert_eq!(code("INSERT INTO p VALUES (4, 'c', 1, -1)"), "23514");
        assert_eq!(code("SELECT * FROM nope"), "42P01");
        assert_eq!(code("SELECT nope FROM p"), "42703");
        assert_eq!(code("SELEC 1"), "42601");
    }
}
