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
    #[error("terminating connection due to idle-in-transaction timeout")]
    IdleInTransactionTimeout,
    #[error("SET TRANSACTION ISOLATION LEVEL must be called before any query")]
    IsolationAfterQuery,
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
                SqlError::Ungrouped(_) => "42803",
                SqlError::InvalidParameter(_) => "22P02",
                SqlError::InvalidBinary(_) => "22P03",
                SqlError::DatetimeOutOfRange(_) => "22008",
                SqlError::OutOfRange(_) => "22003",
                SqlError::InvalidDatetime(_) => "22007",
                SqlError::InvalidSettingValue(_) => "22023",
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
                StorageErrorKind::DivisionByZero => "22012",
                StorageErrorKind::InvalidTextRepresentation => "22P02",
                StorageErrorKind::InvalidDatetimeFormat => "22007",
                StorageErrorKind::DatetimeFieldOverflow => "22008",
                StorageErrorKind::InvalidEscapeSequence => "22025",
                StorageErrorKind::FeatureNotSupported => "0A000",
                StorageErrorKind::UndefinedTable => "42P01",
                StorageErrorKind::UndefinedColumn => "42703",
                StorageErrorKind::UndefinedFunction => "42883",
                StorageErrorKind::UndefinedObject => "42704",
                StorageErrorKind::DuplicateTable => "42P07",
                StorageErrorKind::DuplicateColumn => "42701",
                StorageErrorKind::DuplicateObject => "42710",
                StorageErrorKind::AmbiguousColumn => "42702",
                StorageErrorKind::DuplicateAlias => "42712",
                StorageErrorKind::GroupingError => "42803",
                StorageErrorKind::WindowingError => "42P20",
                StorageErrorKind::InvalidColumnReference => "42P10",
                StorageErrorKind::WrongObjectType => "42809",
                StorageErrorKind::ReservedName => "42939",
                StorageErrorKind::InvalidSchemaName => "3F000",
                StorageErrorKind::InvalidRecursion => "42P19",
                StorageErrorKind::GeneratedAlways => "428C9",
                StorageErrorKind::Syntax => "42601",
                StorageErrorKind::StatementTooComplex => "54001",
                StorageErrorKind::TooManyColumns => "54011",
                StorageErrorKind::TooManyArguments => "54023",
                StorageErrorKind::ProgramLimitExceeded => "54000",
                StorageErrorKind::ActiveTransaction => "25001",
                StorageErrorKind::NoActiveTransaction => "25P01",
                StorageErrorKind::NoSavepoint => "3B001",
                StorageErrorKind::PermissionDenied => "42501",
                StorageErrorKind::ReadOnly => "25006",
                StorageErrorKind::Busy => "55P03",
                StorageErrorKind::Interrupted => "57014",
                StorageErrorKind::LockTimeout => "55P03",
                StorageErrorKind::ShuttingDown => "57P01",
                StorageErrorKind::DatatypeMismatch => "42804",
                StorageErrorKind::TooManyConnections => "53300",
                StorageErrorKind::DiskFull => "53100",
                StorageErrorKind::OutOfMemory => "53200",
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
                SessionError::IdleInTransactionTimeout => "25P03",
                SessionError::IsolationAfterQuery => "25001",
            },
        }
    }

    /// FATAL for errors after which the server closes the connection, as PostgreSQL does.
    pub fn severity(&self) -> &'static str {
        match self {
            Error::Session(SessionError::ShuttingDown | SessionError::IdleInTransactionTimeout) => {
                "FATAL"
            }
            Error::Storage(e) if e.kind == StorageErrorKind::ShuttingDown => "FATAL",
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

    #[test]
    fn every_class_of_sqlite_message_gets_postgres_code() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::storage::checked::register(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a INT);
             CREATE TABLE u (a INT);
             CREATE INDEX t_a ON t (a);
             CREATE VIEW v AS SELECT 1 AS x;
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;
             INSERT INTO t VALUES (1, 1);",
        )
        .unwrap();
        let code = |sql: &str| match conn.execute_batch(sql) {
            Ok(()) => format!("{sql}: no error"),
            Err(e) => Error::from(StorageError::from(e)).sqlstate().to_string(),
        };
        let compound = vec!["SELECT 1"; 501].join(" UNION ALL ");
        let wide = format!(
            "CREATE TABLE wide ({})",
            (0..2001)
                .map(|i| format!("c{i} INT"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let variables = "SELECT ?40000".to_string();
        let wrong = [
            ("SELECT 'unterminated", "42601"),
            ("SELECT 1 UNION SELECT 1, 2", "42601"),
            ("SELECT (SELECT 1, 2)", "42601"),
            ("INSERT INTO t (a) VALUES (1, 2)", "42601"),
            ("SELECT * FROM nope", "42P01"),
            ("SELECT nope FROM t", "42703"),
            ("INSERT INTO t (nope) VALUES (1)", "42703"),
            ("SELECT nope(1)", "42883"),
            ("SELECT abs(1, 2)", "42883"),
            ("SELECT count(DISTINCT a, id) FROM t", "42883"),
            ("DROP INDEX nope", "42704"),
            ("DROP TRIGGER nope", "42704"),
            ("SELECT 'a' = 'b' COLLATE nope", "42704"),
            ("CREATE VIRTUAL TABLE x USING nope", "42704"),
            ("SELECT * FROM nodb.t", "42P01"),
            ("CREATE TABLE nodb.x (a INT)", "3F000"),
            ("SELECT a FROM t, u", "42702"),
            ("CREATE TABLE t (x INT)", "42P07"),
            ("CREATE INDEX t_a ON t (a)", "42P07"),
            (
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
                "42710",
            ),
            ("CREATE TABLE d (a INT, a INT)", "42701"),
            (
                "WITH x AS (SELECT 1), x AS (SELECT 2) SELECT * FROM x",
                "42712",
            ),
            ("ALTER TABLE t ADD COLUMN b1 INT UNIQUE", "0A000"),
            ("ALTER TABLE t ADD COLUMN b2 INT PRIMARY KEY", "0A000"),
            (
                "ALTER TABLE t ADD COLUMN b3 INT DEFAULT (random())",
                "0A000",
            ),
            ("ALTER TABLE t ADD COLUMN b4 INT NOT NULL", "0A000"),
            ("ALTER TABLE t DROP COLUMN id", "0A000"),
            ("SELECT a FROM t WHERE count(*) > 1", "42803"),
            ("SELECT a FROM t HAVING a > 1", "42803"),
            ("SELECT a FROM t WHERE row_number() OVER () > 1", "42P20"),
            ("SELECT a FROM t ORDER BY 3", "42P10"),
            ("SELECT a FROM t GROUP BY 3", "42P10"),
            (
                "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING",
                "42P10",
            ),
            ("INSERT INTO v VALUES (1)", "42809"),
            ("DROP VIEW t", "42809"),
            ("DROP TABLE v", "42809"),
            (compound.as_str(), "54001"),
            (wide.as_str(), "54011"),
            (variables.as_str(), "42601"),
            ("SELECT abs(-9223372036854775808)", "22003"),
            ("SELECT 0x1FFFFFFFFFFFFFFFF", "22003"),
            ("SELECT json('{')", "22P02"),
            ("SELECT 'a' LIKE 'a' ESCAPE 'xx'", "22025"),
            ("INSERT INTO t (id) VALUES ('abc')", "42804"),
            ("COMMIT", "25P01"),
            ("ROLLBACK TO nope", "3B001"),
            ("BEGIN; BEGIN", "25001"),
            ("SELECT sg_nonzero(0)", "22012"),
            ("SELECT sg_cast_int4('abc')", "22P02"),
            ("SELECT sg_cast_date('2024-02-30')", "22008"),
            ("SELECT sg_cast_timestamp('x')", "22007"),
        ]
        .iter()
        .filter(|(sql, expected)| code(sql) != *expected)
        .map(|(sql, expected)| {
            format!(
                "{}: {} (want {expected})",
                &sql[..sql.len().min(60)],
                code(sql)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
        assert!(wrong.is_empty(), "{wrong}");
    }
}
