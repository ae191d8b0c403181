//! The storage layer's error: what SQLite said, classified so the frontend can give the
//! PostgreSQL SQLSTATE an application expects.

use rusqlite::ErrorCode;

/// What kind of failure SQLite reported, independent of its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    UniqueViolation,
    NotNullViolation,
    ForeignKeyViolation,
    CheckViolation,
    /// A value outside its integer type's range (shardgate's own range checks).
    NumericOutOfRange,
    /// A string longer than its `varchar(n)`.
    StringTooLong,
    /// A date or time text that does not parse, found by one of shardgate's SQL functions.
    InvalidDatetimeFormat,
    /// A value shardgate cannot store correctly, found by one of its SQL functions.
    Unsupported,
    UndefinedTable,
    UndefinedColumn,
    UndefinedFunction,
    DuplicateTable,
    Syntax,
    /// Refused by the authorizer: file-system access, internal tables, unsafe pragmas.
    PermissionDenied,
    ReadOnly,
    Busy,
    Interrupted,
    DatatypeMismatch,
    TooManyConnections,
    /// The file could not be read or written (I/O error, cannot open).
    Io,
    /// The file is damaged or is not a database.
    Corrupt,
    Internal,
}

impl StorageErrorKind {
    /// The database file itself failed, not the statement: another copy may answer it.
    pub fn is_file_failure(self) -> bool {
        matches!(self, StorageErrorKind::Io | StorageErrorKind::Corrupt)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    pub message: String,
}

/// SQLite passes only the text of a SQL function's error on, so shardgate's own functions
/// start it with a marker naming the error's kind.
const FUNCTION_ERRORS: [(&str, StorageErrorKind); 2] = [
    (
        "[shardgate:invalid-datetime] ",
        StorageErrorKind::InvalidDatetimeFormat,
    ),
    ("[shardgate:unsupported] ", StorageErrorKind::Unsupported),
];

/// The error one of shardgate's SQL functions reports for an input the SQL layer refused.
pub fn function_error(error: &crate::sql::error::SqlError) -> rusqlite::Error {
    use crate::sql::error::SqlError;
    let kind = match error {
        SqlError::InvalidDatetime(_) => StorageErrorKind::InvalidDatetimeFormat,
        SqlError::Unsupported(_) => StorageErrorKind::Unsupported,
        _ => StorageErrorKind::Internal,
    };
    let marker = FUNCTION_ERRORS
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(marker, _)| *marker)
        .unwrap_or_default();
    rusqlite::Error::UserFunctionError(format!("{marker}{error}").into())
}

fn from_function_error(text: &str) -> Option<StorageError> {
    FUNCTION_ERRORS.iter().find_map(|(marker, kind)| {
        let (_, message) = text.split_once(marker)?;
        Some(StorageError::new(*kind, message))
    })
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        StorageError {
            kind,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        StorageError::new(StorageErrorKind::Internal, message)
    }
}

/// Prefix of the CHECK constraints shardgate adds for integer ranges (see `sql::rewrite`).
pub const RANGE_CHECK_PREFIX: &str = "_sg_range_";
/// Prefix of the CHECK constraints shardgate adds for `varchar(n)` lengths.
pub const LENGTH_CHECK_PREFIX: &str = "_sg_len_";

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        use StorageErrorKind as K;
        let text = error.to_string();
        if let Some(own) = from_function_error(&text) {
            return own;
        }
        let (code, extended) = match &error {
            rusqlite::Error::SqliteFailure(e, _) => (Some(e.code), e.extended_code),
            _ => (None, 0),
        };
        let kind = match code {
            Some(ErrorCode::ConstraintViolation) => match extended {
                // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
                2067 | 1555 => K::UniqueViolation,
                // SQLITE_CONSTRAINT_NOTNULL
                1299 => K::NotNullViolation,
                // SQLITE_CONSTRAINT_FOREIGNKEY
                787 => K::ForeignKeyViolation,
                _ if text.contains(RANGE_CHECK_PREFIX) => K::NumericOutOfRange,
                _ if text.contains(LENGTH_CHECK_PREFIX) => K::StringTooLong,
                _ => K::CheckViolation,
            },
            Some(ErrorCode::OperationInterrupted) => K::Interrupted,
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => K::Busy,
            Some(ErrorCode::ReadOnly) => K::ReadOnly,
            Some(ErrorCode::AuthorizationForStatementDenied) => K::PermissionDenied,
            Some(ErrorCode::TypeMismatch) => K::DatatypeMismatch,
            Some(ErrorCode::SystemIoFailure) | Some(ErrorCode::CannotOpen) => K::Io,
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => K::Corrupt,
            _ if text.contains("no such table") => K::UndefinedTable,
            _ if text.contains("no such column") || text.contains("has no column named") => {
                K::UndefinedColumn
            }
            _ if text.contains("no such function")
                || text.contains("wrong number of arguments") =>
            {
                K::UndefinedFunction
            }
            _ if text.contains("already exists") => K::DuplicateTable,
            _ if text.contains("syntax error") || text.contains("incomplete input") => K::Syntax,
            _ if text.contains("not authorized") || text.contains("prohibited") => {
                K::PermissionDenied
            }
            _ if text.contains("attempt to write a readonly database") => K::ReadOnly,
            _ => K::Internal,
        };
        let message = match kind {
            K::NumericOutOfRange => "integer out of range".to_string(),
            K::StringTooLong => "value too long for type character varying".to_string(),
            K::Interrupted => "canceling statement due to user request".to_string(),
            K::PermissionDenied if text.contains("not authorized") => {
                "permission denied: shardgate does not let clients reach files, internal tables or settings of the server".to_string()
            }
            _ => text,
        };
        StorageError { kind, message }
    }
}
