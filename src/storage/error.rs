//! The storage layer's error: what SQLite said, classified so the frontend can give the
//! PostgreSQL SQLSTATE an application expects.
//!
//! SQLite reports most mistakes with the generic `SQLITE_ERROR` code and a message; the
//! classifier reads the extended code where SQLite has one and otherwise the message, against
//! one table of SQLite's message texts (`sqlite3ErrorMsg` calls of sqlite3.c a statement can
//! reach). shardgate's own SQL functions (`storage::checked`) raise errors whose message
//! starts with a marker naming the kind, so the data exceptions they detect arrive here with
//! their kind intact.

use rusqlite::ErrorCode;

/// What kind of failure SQLite reported, independent of its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    UniqueViolation,
    NotNullViolation,
    ForeignKeyViolation,
    CheckViolation,
    /// A value outside its type's range: shardgate's range checks, checked arithmetic and
    /// casts, SQLite's own integer overflow.
    NumericOutOfRange,
    /// A string longer than its `varchar(n)`.
    StringTooLong,
    DivisionByZero,
    /// Text that is not a valid value of the type it is cast to.
    InvalidTextRepresentation,
    InvalidDatetimeFormat,
    DatetimeFieldOverflow,
    InvalidEscapeSequence,
    /// Something PostgreSQL does that SQLite cannot (and shardgate refuses rather than
    /// answering differently).
    FeatureNotSupported,
    UndefinedTable,
    UndefinedColumn,
    UndefinedFunction,
    /// An index, trigger, collation or module that does not exist.
    UndefinedObject,
    DuplicateTable,
    DuplicateColumn,
    DuplicateObject,
    AmbiguousColumn,
    DuplicateAlias,
    GroupingError,
    WindowingError,
    /// An ORDER BY / GROUP BY position or ON CONFLICT target that matches nothing.
    InvalidColumnReference,
    WrongObjectType,
    ReservedName,
    InvalidSchemaName,
    InvalidRecursion,
    GeneratedAlways,
    Syntax,
    StatementTooComplex,
    TooManyColumns,
    TooManyArguments,
    ProgramLimitExceeded,
    ActiveTransaction,
    NoActiveTransaction,
    NoSavepoint,
    /// Refused by the authorizer: file-system access, internal tables, unsafe pragmas.
    PermissionDenied,
    ReadOnly,
    Busy,
    Interrupted,
    /// A wait for a connection another session holds outlasted `lock_timeout`.
    LockTimeout,
    /// The server is shutting down.
    ShuttingDown,
    DatatypeMismatch,
    TooManyConnections,
    DiskFull,
    OutOfMemory,
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

/// Starts the message of an error raised by one of shardgate's SQL functions; the kind's
/// name and a colon follow, then the message the client sees.
const FUNCTION_ERROR_MARKER: &str = "\u{1}shardgate:";

/// The kinds shardgate's SQL functions raise, by the name their error message carries.
const FUNCTION_ERROR_KINDS: &[(&str, StorageErrorKind)] = &[
    ("division_by_zero", StorageErrorKind::DivisionByZero),
    ("out_of_range", StorageErrorKind::NumericOutOfRange),
    ("invalid_text", StorageErrorKind::InvalidTextRepresentation),
    ("invalid_datetime", StorageErrorKind::InvalidDatetimeFormat),
    ("datetime_overflow", StorageErrorKind::DatetimeFieldOverflow),
    ("not_supported", StorageErrorKind::FeatureNotSupported),
];

/// The error a shardgate SQL function returns to SQLite so that the statement fails with
/// `kind` and `message`.
pub(crate) fn function_error(
    kind: StorageErrorKind,
    message: impl std::fmt::Display,
) -> rusqlite::Error {
    let name = FUNCTION_ERROR_KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("internal", |(name, _)| name);
    rusqlite::Error::UserFunctionError(format!("{FUNCTION_ERROR_MARKER}{name}:{message}").into())
}

/// The kind and client message of an error raised through [`function_error`].
fn raised_by_function(text: &str) -> Option<(StorageErrorKind, String)> {
    let start = text.find(FUNCTION_ERROR_MARKER)?;
    let (name, message) = text[start + FUNCTION_ERROR_MARKER.len()..].split_once(':')?;
    let kind = FUNCTION_ERROR_KINDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(StorageErrorKind::Internal, |(_, k)| *k);
    Some((kind, message.to_string()))
}

/// SQLite's messages for statements PostgreSQL would refuse too, by the class PostgreSQL
/// gives the same mistake. An entry matches a message that contains all its fragments; the
/// first match decides, so the more specific entries come first.
const MESSAGE_KINDS: &[(&[&str], StorageErrorKind)] = {
    use StorageErrorKind as K;
    &[
        // Names that resolve to nothing.
        (&["no such table"], K::UndefinedTable),
        (&["no such view"], K::UndefinedTable),
        (&["no such column"], K::UndefinedColumn),
        (&["has no column named"], K::UndefinedColumn),
        (&["no such function"], K::UndefinedFunction),
        (
            &["wrong number of arguments to function"],
            K::UndefinedFunction,
        ),
        (&["unknown function"], K::UndefinedFunction),
        (&["is not a function"], K::UndefinedFunction),
        (
            &["DISTINCT aggregates must have exactly one argument"],
            K::UndefinedFunction,
        ),
        (&["no such index"], K::UndefinedObject),
        (&["no such trigger"], K::UndefinedObject),
        (&["no such collation sequence"], K::UndefinedObject),
        (&["no such module"], K::UndefinedObject),
        (&["no such savepoint"], K::NoSavepoint),
        (&["unknown database"], K::InvalidSchemaName),
        (&["ambiguous column name"], K::AmbiguousColumn),
        (&["ambiguous reference to"], K::AmbiguousColumn),
        (&["cannot join using column"], K::UndefinedColumn),
        // Names that already exist.
        (&["duplicate column name"], K::DuplicateColumn),
        (&["trigger", "already exists"], K::DuplicateObject),
        (&["already exists"], K::DuplicateTable),
        (
            &["there is already another table or index with this name"],
            K::DuplicateTable,
        ),
        (&["there is already an index named"], K::DuplicateTable),
        (&["there is already a table named"], K::DuplicateTable),
        (&["duplicate WITH table name"], K::DuplicateAlias),
        (&["object name reserved for internal use"], K::ReservedName),
        // ALTER TABLE forms SQLite cannot do (PostgreSQL can).
        (&["Cannot add a"], K::FeatureNotSupported),
        (&["cannot add a STORED column"], K::FeatureNotSupported),
        (&["cannot drop", "column"], K::FeatureNotSupported),
        (
            &["default value of column", "is not constant"],
            K::FeatureNotSupported,
        ),
        (
            &["AUTOINCREMENT is only allowed on an"],
            K::FeatureNotSupported,
        ),
        (&["unsupported frame specification"], K::FeatureNotSupported),
        (&["unsupported use of NULLS"], K::FeatureNotSupported),
        (
            &["recursive aggregate queries not supported"],
            K::FeatureNotSupported,
        ),
        (
            &["cannot use window functions in recursive queries"],
            K::FeatureNotSupported,
        ),
        (&["RETURNING may not use"], K::FeatureNotSupported),
        (
            &["cannot use RETURNING in a trigger"],
            K::FeatureNotSupported,
        ),
        // Misplaced aggregates, windows and references.
        (&["misuse of aggregate"], K::GroupingError),
        (&["misuse of aliased aggregate"], K::GroupingError),
        (&["more than", "aggregate terms"], K::StatementTooComplex),
        (
            &["aggregate functions are not allowed in the GROUP BY clause"],
            K::GroupingError,
        ),
        (
            &["a GROUP BY clause is required before HAVING"],
            K::GroupingError,
        ),
        (
            &["HAVING clause on a non-aggregate query"],
            K::GroupingError,
        ),
        (&["misuse of window function"], K::WindowingError),
        (&["is not a window function"], K::WindowingError),
        (&["no such window"], K::WindowingError),
        (&["term out of range"], K::InvalidColumnReference),
        (
            &["ORDER BY term does not match any column"],
            K::InvalidColumnReference,
        ),
        (
            &["expected", "columns for", "but got"],
            K::InvalidColumnReference,
        ),
        (
            &["ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint"],
            K::InvalidColumnReference,
        ),
        (&["because it is a view"], K::WrongObjectType),
        (&["use DROP TABLE to delete table"], K::WrongObjectType),
        (&["use DROP VIEW to delete view"], K::WrongObjectType),
        (&["cannot INSERT into generated column"], K::GeneratedAlways),
        (&["cannot UPDATE generated column"], K::GeneratedAlways),
        (&["circular reference"], K::InvalidRecursion),
        (&["is circularly defined"], K::InvalidRecursion),
        (&["recursive reference in a subquery"], K::InvalidRecursion),
        (
            &["multiple references to recursive table"],
            K::InvalidRecursion,
        ),
        // Statements that do not form valid SQL.
        (&["syntax error"], K::Syntax),
        (&["unrecognized token"], K::Syntax),
        (&["incomplete input"], K::Syntax),
        (&["no tables specified"], K::Syntax),
        (
            &["do not have the same number of result columns"],
            K::Syntax,
        ),
        (&["sub-select returns"], K::Syntax),
        (&["row value misused"], K::Syntax),
        (&["values were supplied"], K::Syntax),
        (&["values for", "columns"], K::Syntax),
        (
            &["all VALUES must have the same number of terms"],
            K::Syntax,
        ),
        (&["columns assigned", "values"], K::Syntax),
        (&["IN(...) element has"], K::Syntax),
        (&["a JOIN clause is required before"], K::Syntax),
        (&["unknown join type"], K::Syntax),
        (&["variable number must be between"], K::Syntax),
        // Limits.
        (
            &["too many terms in compound SELECT"],
            K::StatementTooComplex,
        ),
        (&["too many terms in"], K::StatementTooComplex),
        (&["Expression tree is too large"], K::StatementTooComplex),
        (&["parser stack overflow"], K::StatementTooComplex),
        (&["too many FROM clause terms"], K::StatementTooComplex),
        (&["tables in a join"], K::StatementTooComplex),
        (
            &["too many levels of trigger recursion"],
            K::StatementTooComplex,
        ),
        (&["too many references to"], K::StatementTooComplex),
        (&["too many columns"], K::TooManyColumns),
        (&["too many SQL variables"], K::TooManyArguments),
        (&["too many arguments on function"], K::TooManyArguments),
        (&["string or blob too big"], K::ProgramLimitExceeded),
        (
            &["LIKE or GLOB pattern too complex"],
            K::ProgramLimitExceeded,
        ),
        // Values.
        (&["integer overflow"], K::NumericOutOfRange),
        (&["hex literal too big"], K::NumericOutOfRange),
        (&["oversized integer"], K::NumericOutOfRange),
        (&["malformed JSON"], K::InvalidTextRepresentation),
        (
            &["ESCAPE expression must be a single character"],
            K::InvalidEscapeSequence,
        ),
        (&["datatype mismatch"], K::DatatypeMismatch),
        (&["cannot store", "value in", "column"], K::DatatypeMismatch),
        // Transactions.
        (
            &["cannot start a transaction within a transaction"],
            K::ActiveTransaction,
        ),
        (&["no transaction is active"], K::NoActiveTransaction),
        // The authorizer, read-only connections, resources.
        (&["not authorized"], K::PermissionDenied),
        (&["prohibited"], K::PermissionDenied),
        (&["may not be modified"], K::PermissionDenied),
        (&["may not be altered"], K::PermissionDenied),
        (&["may not be dropped"], K::PermissionDenied),
        (&["attempt to write a readonly database"], K::ReadOnly),
        (&["database or disk is full"], K::DiskFull),
        (&["out of memory"], K::OutOfMemory),
    ]
};

fn kind_of_message(text: &str) -> StorageErrorKind {
    MESSAGE_KINDS
        .iter()
        .find(|(fragments, _)| fragments.iter().all(|f| text.contains(f)))
        .map_or(StorageErrorKind::Internal, |(_, kind)| *kind)
}

/// The kind SQLite's primary and extended result codes decide, where they decide one.
fn kind_of_code(code: ErrorCode, extended: i32, text: &str) -> Option<StorageErrorKind> {
    use StorageErrorKind as K;
    Some(match code {
        ErrorCode::ConstraintViolation => match extended {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => K::UniqueViolation,
            rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => K::NotNullViolation,
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => K::ForeignKeyViolation,
            rusqlite::ffi::SQLITE_CONSTRAINT_DATATYPE => K::DatatypeMismatch,
            _ if text.contains(RANGE_CHECK_PREFIX) => K::NumericOutOfRange,
            _ if text.contains(LENGTH_CHECK_PREFIX) => K::StringTooLong,
            _ => K::CheckViolation,
        },
        ErrorCode::OperationInterrupted => K::Interrupted,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => K::Busy,
        ErrorCode::ReadOnly => K::ReadOnly,
        ErrorCode::AuthorizationForStatementDenied => K::PermissionDenied,
        ErrorCode::TypeMismatch => K::DatatypeMismatch,
        ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => K::Io,
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => K::Corrupt,
        ErrorCode::DiskFull => K::DiskFull,
        ErrorCode::OutOfMemory => K::OutOfMemory,
        ErrorCode::TooBig => K::ProgramLimitExceeded,
        _ => return None,
    })
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        use StorageErrorKind as K;
        let text = error.to_string();
        if let Some((kind, message)) = raised_by_function(&text) {
            return StorageError { kind, message };
        }
        let kind = match &error {
            rusqlite::Error::SqliteFailure(e, _) => kind_of_code(e.code, e.extended_code, &text),
            _ => None,
        }
        .unwrap_or_else(|| kind_of_message(&text));
        let message = match kind {
            K::NumericOutOfRange if text.contains(RANGE_CHECK_PREFIX) => {
                "integer out of range".to_string()
            }
            K::NumericOutOfRange => "bigint out of range".to_string(),
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
