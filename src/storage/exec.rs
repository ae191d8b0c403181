//! Running one request on one SQLite connection: bind, step, collect rows.

use std::sync::Arc;

use rusqlite::types::Value;

use super::connection::SqlConn;
use super::error::StorageError;
use super::schema::{self, CatalogChange};

/// The parameters of a request: none, one set, or many sets of the same statement (COPY).
#[derive(Debug, Clone)]
pub enum Params {
    None,
    One(Vec<Value>),
    Many(Vec<Vec<Value>>),
}

/// What to run: SQLite statements in order (the rows and the row count of the last one are
/// returned, the changes of all are counted) and the declared-type bookkeeping of DDL.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub statements: Vec<Arc<str>>,
    pub params: Params,
    pub catalog: Vec<CatalogChange>,
    /// The request changes the schema: the schema snapshot is reloaded after it.
    pub changes_schema: bool,
    /// The request reads the emulated `pg_catalog`: bring it up to date first.
    pub reads_catalog: bool,
}

impl ExecRequest {
    pub fn sql(sql: impl Into<Arc<str>>) -> Self {
        ExecRequest {
            statements: vec![sql.into()],
            params: Params::None,
            catalog: Vec::new(),
            changes_schema: false,
            reads_catalog: false,
        }
    }

    /// One statement run once per parameter row (COPY FROM, batched inserts).
    pub fn for_each_row(sql: Arc<str>, rows: Vec<Vec<Value>>) -> Self {
        ExecRequest {
            params: Params::Many(rows),
            ..ExecRequest::sql(sql)
        }
    }
}

/// Where a result column comes from, as SQLite reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnOrigin {
    pub name: String,
    pub decltype: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub columns: Vec<ColumnOrigin>,
    pub rows: Vec<Vec<Value>>,
    pub changes: u64,
    /// The replication log record this request committed, if it committed a write on a
    /// logging primary.
    pub lsn: Option<u64>,
}

/// The shape of a prepared statement: its result columns and how many parameters it takes.
#[derive(Debug, Clone, Default)]
pub struct PreparedShape {
    pub columns: Vec<ColumnOrigin>,
    pub param_count: usize,
}

fn column_origins(stmt: &rusqlite::Statement<'_>) -> Vec<ColumnOrigin> {
    let decls = stmt.columns();
    let metas = stmt.columns_with_metadata();
    decls
        .iter()
        .zip(metas.iter())
        .map(|(decl, meta)| ColumnOrigin {
            name: decl.name().to_string(),
            decltype: decl.decl_type().map(str::to_string),
            table: meta.table_name().map(str::to_string),
            column: meta.origin_name().map(str::to_string),
        })
        .collect()
}

pub fn describe(conn: &SqlConn, sql: &str) -> Result<PreparedShape, StorageError> {
    let stmt = conn.conn.prepare_cached(sql)?;
    Ok(PreparedShape {
        columns: column_origins(&stmt),
        param_count: stmt.parameter_count(),
    })
}

/// Runs `request`. Outside a transaction it gets one of its own when it has several steps
/// (DDL and its declared-type bookkeeping commit together or not at all) or when the
/// connection logs writes (the log record commits with the rows it describes).
pub fn execute(conn: &SqlConn, request: &ExecRequest) -> Result<ExecOutput, StorageError> {
    if request.reads_catalog {
        conn.as_internal(super::pg_catalog::refresh)?;
    }
    let atomic = request.statements.len() > 1 || !request.catalog.is_empty();
    if !((atomic || conn.logs_writes()) && conn.conn.is_autocommit()) {
        return execute_steps(conn, request);
    }
    conn.begin()?;
    match execute_steps(conn, request) {
        Ok(mut output) => {
            output.lsn = conn.commit()?;
            Ok(output)
        }
        Err(error) => {
            conn.rollback();
            Err(error)
        }
    }
}

fn execute_steps(conn: &SqlConn, request: &ExecRequest) -> Result<ExecOutput, StorageError> {
    let output = if request.changes_schema {
        conn.with_ddl_logged(&request.statements, || run_statements(conn, request))?
    } else {
        run_statements(conn, request)?
    };
    if !request.catalog.is_empty() {
        conn.as_internal(|c| {
            request
                .catalog
                .iter()
                .try_for_each(|change| schema::apply_change(c, change))
        })?;
    }
    Ok(output)
}

fn run_statements(conn: &SqlConn, request: &ExecRequest) -> Result<ExecOutput, StorageError> {
    let mut output = ExecOutput::default();
    let last = request.statements.len().saturating_sub(1);
    for (i, sql) in request.statements.iter().enumerate() {
        let params = if i == last {
            &request.params
        } else {
            &Params::None
        };
        let mut stmt = conn.conn.prepare_cached(sql)?;
        let columns = column_origins(&stmt);
        let mut rows = Vec::new();
        let mut run_one = |values: &[Value]| -> Result<(), StorageError> {
            if values.len() != stmt.parameter_count() {
                return Err(StorageError::new(
                    super::StorageErrorKind::Syntax,
                    format!(
                        "bind message supplies {} parameters, but prepared statement requires {}",
                        values.len(),
                        stmt.parameter_count()
                    ),
                ));
            }
            for (index, value) in values.iter().enumerate() {
                stmt.raw_bind_parameter(index + 1, value)?;
            }
            if columns.is_empty() {
                stmt.raw_execute()?;
                output.changes += conn.conn.changes();
            } else {
                let mut cursor = stmt.raw_query();
                let width = columns.len();
                while let Some(row) = cursor.next()? {
                    let mut values = Vec::with_capacity(width);
                    for c in 0..width {
                        values.push(row.get::<_, Value>(c)?);
                    }
                    rows.push(values);
                }
                output.changes += rows.len() as u64;
            }
            Ok(())
        };
        match params {
            Params::None => run_one(&[])?,
            Params::One(values) => run_one(values)?,
            Params::Many(sets) => {
                for values in sets {
                    run_one(values)?;
                }
            }
        }
        if i == last {
            output.columns = columns;
            output.rows = rows;
        }
    }
    Ok(output)
}
