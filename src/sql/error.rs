//! Errors of the SQL layer: statements shardgate refuses or cannot make sense of.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// PostgreSQL SQL that shardgate cannot run correctly on SQLite.
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Syntax(String),
    /// A column outside GROUP BY and outside every aggregate of a grouped query.
    #[error(
        "column \"{0}\" must appear in the GROUP BY clause or be used in an aggregate function"
    )]
    Ungrouped(String),
    /// A parameter value that does not decode as its type.
    #[error("{0}")]
    InvalidParameter(String),
    /// A binary parameter that is not a valid encoding of its type.
    #[error("{0}")]
    InvalidBinary(String),
    /// A date, time or timestamp outside PostgreSQL's range for its type.
    #[error("{0}")]
    DatetimeOutOfRange(String),
    /// A date or time text that does not parse (`22007`).
    #[error("{0}")]
    InvalidDatetime(String),
    /// A value outside its type's range.
    #[error("{0}")]
    OutOfRange(String),
    /// A value a setting does not accept.
    #[error("{0}")]
    InvalidSettingValue(String),
    #[error("unrecognized configuration parameter \"{0}\"")]
    UnknownSetting(String),
    #[error("{0}")]
    InvalidCopy(String),
}
