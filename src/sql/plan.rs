//! Planning: a statement's text becomes a [`Plan`] once — parsed, classified, rewritten for
//! SQLite, with inferred parameter types — and plans are cached by text, so a prepared
//! statement or a repeated query is never parsed twice.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectType, Query, SelectItem, Set,
    SetExpr, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode, Value,
    Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::copy::{CopyCommand, parse_copy};
use super::error::SqlError;
use super::infer::{
    ProjectedItem, Scope, parameter_types, projection, resolve_timestamptz_literals,
    round_numeric_arithmetic,
};
use super::rewrite::{Rewritten, name_text, rewrite};
use super::types::TypeWithMod;
use crate::storage::schema::Schema;

/// A transaction isolation level, as PostgreSQL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    pub const LEVELS: [Isolation; 4] = [
        Isolation::ReadUncommitted,
        Isolation::ReadCommitted,
        Isolation::RepeatableRead,
        Isolation::Serializable,
    ];

    /// `read committed`, `REPEATABLE  READ`, ... (the value of `transaction_isolation`).
    pub fn parse(text: &str) -> Option<Isolation> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let text = words.join(" ");
        Self::LEVELS
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(&text))
    }

    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read uncommitted",
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        }
    }

    /// One snapshot for the whole transaction. SQLite keeps a writer's snapshot only by
    /// holding the writer, so such a transaction takes its shards' writers at BEGIN; at the
    /// lower levels (PostgreSQL's READ UNCOMMITTED is READ COMMITTED) every statement has its
    /// own snapshot and the writer is taken at the first write.
    pub fn holds_snapshot(self) -> bool {
        matches!(self, Isolation::RepeatableRead | Isolation::Serializable)
    }
}

impl From<TransactionIsolationLevel> for Isolation {
    fn from(level: TransactionIsolationLevel) -> Isolation {
        match level {
            TransactionIsolationLevel::ReadUncommitted => Isolation::ReadUncommitted,
            TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
            TransactionIsolationLevel::RepeatableRead | TransactionIsolationLevel::Snapshot => {
                Isolation::RepeatableRead
            }
            TransactionIsolationLevel::Serializable => Isolation::Serializable,
        }
    }
}

fn isolation_of(modes: &[TransactionMode]) -> Option<Isolation> {
    modes.iter().find_map(|mode| match mode {
        TransactionMode::IsolationLevel(level) => Some(Isolation::from(*level)),
        TransactionMode::AccessMode(_) => None,
    })
}

/// The setting `SET TRANSACTION ISOLATION LEVEL` changes.
pub const TRANSACTION_ISOLATION: &str = "transaction_isolation";
/// The setting `SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL` changes.
pub const DEFAULT_TRANSACTION_ISOLATION: &str = "default_transaction_isolation";

/// Transaction control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// `isolation` is the level BEGIN names, if any.
    Begin {
        read_only: bool,
        isolation: Option<Isolation>,
    },
    Commit,
    Rollback,
    Savepoint(String),
    Release(String),
    RollbackTo(String),
}

/// What the session layer does with a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run on a backend connection.
    Execute,
    Transaction(TxnOp),
    /// `SET name = value`; `None` resets to the default (`RESET name`, `SET name TO DEFAULT`).
    Set {
        name: String,
        value: Option<String>,
    },
    ResetAll,
    /// `SHOW name`, or `SELECT current_setting('name')` (with the column name it reports).
    Show {
        name: String,
        column: String,
    },
    Copy(CopyCommand),
    /// Answered with just its tag (`DISCARD`, `DEALLOCATE`, `CHECKPOINT`, ...).
    NoOp,
    Empty,
    /// Refused with this error when executed.
    Refuse(SqlError),
}

/// A planned statement.
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: Action,
    /// Writes, DDL, and anything not known to be a read go to the primary.
    pub is_write: bool,
    /// The command tag's first words (`SELECT`, `INSERT`, `CREATE TABLE`, ...).
    pub tag: String,
    pub rewritten: Rewritten,
    pub params: Vec<TypeWithMod>,
    pub projection: Option<Vec<ProjectedItem>>,
    /// Reads `pg_catalog` (or `information_schema`): needs the emulated catalog.
    pub reads_catalog: bool,
    /// The text carries a `/* shardgate:primary */` comment: read from the primary.
    pub primary_hint: bool,
    /// A `/* shardgate:shard=NAME */` comment: run on that shard.
    pub shard_hint: Option<String>,
    /// The statement as parsed (PostgreSQL), for routing across shards.
    pub statement: Option<Arc<Statement>>,
    /// `CREATE VIRTUAL TABLE`: its rows could not be replicated.
    pub creates_virtual_table: bool,
}

impl Plan {
    fn simple(action: Action, tag: &str) -> Plan {
        Plan {
            action,
            is_write: false,
            tag: tag.to_string(),
            rewritten: Rewritten::default(),
            params: Vec::new(),
            projection: None,
            reads_catalog: false,
            primary_hint: false,
            shard_hint: None,
            statement: None,
            creates_virtual_table: false,
        }
    }

    fn refuse(error: SqlError) -> Plan {
        Plan::simple(Action::Refuse(error), "")
    }
}

/// Plans by statement text, dropped whenever the schema changes.
#[derive(Default)]
pub struct PlanCache {
    plans: Mutex<HashMap<String, Arc<[Arc<Plan>]>>>,
}

const PLAN_CACHE_LIMIT: usize = 10_000;

impl PlanCache {
    /// The plans of every statement in `sql`.
    pub fn plan(&self, sql: &str, schema: &Schema) -> Arc<[Arc<Plan>]> {
        if let Some(plans) = self.plans.lock().ok().and_then(|p| p.get(sql).cloned()) {
            return plans;
        }
        let plans: Arc<[Arc<Plan>]> = plan_text(sql, schema).into_iter().map(Arc::new).collect();
        if let Ok(mut cache) = self.plans.lock() {
            if cache.len() >= PLAN_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(sql.to_string(), plans.clone());
        }
        plans
    }

    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.plans.lock() {
            cache.clear();
        }
    }
}

fn first_word(sql: &str) -> String {
    let stripped = strip_comments(sql);
    stripped
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(after) = trimmed.strip_prefix("/*") {
            rest = after.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            out.push_str(trimmed);
            return out;
        }
    }
}

/// The text of the `/* ... */` comments in `sql`, trimmed.
fn comments(sql: &str) -> impl Iterator<Item = &str> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        let start = rest.find("/*")?;
        let after = &rest[start + 2..];
        let end = after.find("*/")?;
        rest = &after[end + 2..];
        Some(after[..end].trim())
    })
}

/// Whether a comment in `sql` says `shardgate:primary`.
fn has_primary_hint(sql: &str) -> bool {
    comments(sql).any(|c| c.eq_ignore_ascii_case("shardgate:primary"))
}

/// The shard a `/* shardgate:shard=NAME */` comment names.
fn shard_hint(sql: &str) -> Option<String> {
    comments(sql).find_map(|c| {
        let (key, value) = c.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("shardgate:shard")
            .then(|| value.trim().trim_matches(['\'', '"']).to_string())
    })
}

/// Plans every statement of a query string.
pub fn plan_text(sql: &str, schema: &Schema) -> Vec<Plan> {
    let mut plans = plan_statements(sql, schema);
    if has_primary_hint(sql) {
        plans.iter_mut().for_each(|p| p.primary_hint = true);
    }
    if let Some(shard) = shard_hint(sql) {
        plans
            .iter_mut()
            .for_each(|p| p.shard_hint = Some(shard.clone()));
    }
    plans
}

fn plan_statements(sql: &str, schema: &Schema) -> Vec<Plan> {
    let body = strip_comments(sql);
    if body.trim().trim_matches(';').trim().is_empty() {
        return vec![Plan::simple(Action::Empty, "")];
    }
    // Forms sqlparser does not know (or SQLite does not), recognised by their first word.
    match first_word(&body).as_str() {
        "copy" => {
            return vec![match parse_copy(&body) {
                Some(Ok(copy)) => {
                    let is_write = copy.from_stdin;
                    let mut plan = Plan::simple(Action::Copy(copy), "COPY");
                    plan.is_write = is_write;
                    plan
                }
                Some(Err(e)) => Plan::refuse(e),
                None => Plan::refuse(SqlError::Syntax("invalid COPY".into())),
            }];
        }
        "vacuum" | "analyze" | "analyse" => {
            // SQLite's VACUUM rewrites the whole file and blocks writers; statistics are what
            // PostgreSQL users want from VACUUM ANALYZE, so both become SQLite's ANALYZE.
            let table = body
                .trim()
                .trim_end_matches(';')
                .split_whitespace()
                .skip(1)
                .find(|w| {
                    !matches!(
                        w.to_ascii_lowercase().as_str(),
                        "analyze" | "analyse" | "verbose" | "full" | "freeze"
                    )
                })
                .map(|t| t.to_string());
            let tag = if first_word(&body) == "vacuum" {
                "VACUUM"
            } else {
                "ANALYZE"
            };
            let mut plan = Plan::simple(Action::Execute, tag);
            plan.is_write = true;
            // ANALYZE may create sqlite_stat1. As schema work it runs on every shard, and it is
            // logged as DDL so that replicas gather their own statistics (the rows of sqlite_*
            // tables are not replicated).
            plan.rewritten.changes_schema = true;
            plan.rewritten.statements = vec![match table {
                Some(t) => format!("ANALYZE {t}"),
                None => "ANALYZE".into(),
            }];
            return vec![plan];
        }
        "checkpoint" => return vec![Plan::simple(Action::NoOp, "CHECKPOINT")],
        "listen" | "notify" | "unlisten" => {
            return vec![Plan::refuse(SqlError::Unsupported(
                "LISTEN/NOTIFY is not supported by shardgate".into(),
            ))];
        }
        "declare" | "fetch" | "move" | "close" => {
            return vec![Plan::refuse(SqlError::Unsupported(
                "server-side cursors (DECLARE, FETCH, MOVE, CLOSE) are not supported by shardgate; use the extended protocol's row limit or LIMIT/OFFSET".into(),
            ))];
        }
        _ => {}
    }
    match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
        Ok(statements) => statements
            .into_iter()
            .map(|stmt| plan_statement(stmt, schema))
            .collect(),
        Err(_) => {
            // Try it on SQLite as written; it cannot be classified, so it is a write.
            let mut plan = Plan::simple(Action::Execute, &first_word(&body).to_ascii_uppercase());
            plan.is_write = true;
            plan.rewritten.statements = vec![sql.trim().trim_end_matches(';').to_string()];
            plan.rewritten.changes_schema =
                matches!(first_word(&body).as_str(), "create" | "drop" | "alter");
            plan.creates_virtual_table = body
                .split_whitespace()
                .take(2)
                .map(str::to_ascii_lowercase)
                .eq(["create", "virtual"]);
            vec![plan]
        }
    }
}

fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.to_string()),
            Value::Boolean(b) => Some(if *b { "on" } else { "off" }.into()),
            Value::DollarQuotedString(d) => Some(d.value.clone()),
            _ => None,
        },
        Expr::Identifier(ident) => Some(ident.value.clone()),
        Expr::CompoundIdentifier(parts) => Some(
            parts
                .iter()
                .map(|p| p.value.clone())
                .collect::<Vec<_>>()
                .join("."),
        ),
        Expr::UnaryOp { op, expr } => literal_text(expr).map(|v| format!("{op}{v}")),
        _ => None,
    }
}

fn function_args(args: &FunctionArguments) -> Vec<&Expr> {
    match args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `SELECT current_setting('x')` and `SELECT set_config('x', 'v', is_local)` without FROM:
/// answered by the session, which owns the settings.
fn session_function(query: &Query) -> Option<Action> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty() || select.projection.len() != 1 {
        return None;
    }
    let (expr, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
        _ => return None,
    };
    let Expr::Function(function) = expr else {
        return None;
    };
    let fname = name_text(&function.name).to_ascii_lowercase();
    let args = function_args(&function.args);
    match (fname.as_str(), args.as_slice()) {
        ("current_setting", [name, ..]) => Some(Action::Show {
            name: literal_text(name)?,
            column: alias.unwrap_or(fname),
        }),
        ("set_config", [name, value, _]) => Some(Action::Set {
            name: literal_text(name)?,
            value: Some(literal_text(value)?),
        }),
        _ => None,
    }
}

/// True for a read that must still go to the primary: data-modifying CTEs and locking reads.
fn query_writes(query: &Query) -> bool {
    if query.locks.iter().len() > 0 {
        return true;
    }
    struct FindWrite(bool);
    impl Visitor for FindWrite {
        type Break = ();
        fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<()> {
            if matches!(
                stmt,
                Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with
                && with.cte_tables.iter().any(|cte| {
                    !matches!(
                        cte.query.body.as_ref(),
                        SetExpr::Select(_)
                            | SetExpr::Query(_)
                            | SetExpr::SetOperation { .. }
                            | SetExpr::Values(_)
                    )
                })
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut find = FindWrite(false);
    let _ = query.visit(&mut find);
    find.0
}

fn setting_name(name: &str) -> String {
    name.trim().to_string()
}

fn plan_statement(stmt: Statement, schema: &Schema) -> Plan {
    let session = |action, tag: &str| Plan::simple(action, tag);
    match &stmt {
        Statement::StartTransaction { modes, .. } => {
            let read_only = modes.iter().any(|m| {
                matches!(
                    m,
                    TransactionMode::AccessMode(TransactionAccessMode::ReadOnly)
                )
            });
            return session(
                Action::Transaction(TxnOp::Begin {
                    read_only,
                    isolation: isolation_of(modes),
                }),
                "BEGIN",
            );
        }
        Statement::Commit { .. } => return session(Action::Transaction(TxnOp::Commit), "COMMIT"),
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => {
            return session(
                Action::Transaction(TxnOp::RollbackTo(name.value.clone())),
                "ROLLBACK",
            );
        }
        Statement::Rollback { .. } => {
            return session(Action::Transaction(TxnOp::Rollback), "ROLLBACK");
        }
        Statement::Savepoint { name } => {
            return session(
                Action::Transaction(TxnOp::Savepoint(name.value.clone())),
                "SAVEPOINT",
            );
        }
        Statement::ReleaseSavepoint { name } => {
            return session(
                Action::Transaction(TxnOp::Release(name.value.clone())),
                "RELEASE",
            );
        }
        Statement::Set(set) => {
            let action = match set {
                Set::SingleAssignment {
                    variable, values, ..
                } => {
                    let value: Option<Vec<String>> = values.iter().map(literal_text).collect();
                    match value {
                        Some(v) if v.len() == 1 && v[0].eq_ignore_ascii_case("default") => {
                            Action::Set {
                                name: setting_name(&variable.to_string()),
                                value: None,
                            }
                        }
                        Some(v) => Action::Set {
                            name: setting_name(&variable.to_string()),
                            value: Some(v.join(", ")),
                        },
                        None => Action::Refuse(SqlError::Unsupported(format!(
                            "SET {variable} needs a literal value"
                        ))),
                    }
                }
                Set::SetTimeZone { value, .. } => Action::Set {
                    name: "TimeZone".into(),
                    value: literal_text(value),
                },
                Set::SetNames { charset_name, .. } => Action::Set {
                    name: "client_encoding".into(),
                    value: Some(charset_name.value.clone()),
                },
                Set::SetTransaction { modes, session, .. } => match isolation_of(modes) {
                    Some(level) => Action::Set {
                        name: if *session {
                            DEFAULT_TRANSACTION_ISOLATION
                        } else {
                            TRANSACTION_ISOLATION
                        }
                        .into(),
                        value: Some(level.name().into()),
                    },
                    // READ ONLY / READ WRITE after BEGIN: the access mode BEGIN chose stays.
                    None => Action::NoOp,
                },
                // SET ROLE: there are no roles to switch to.
                _ => Action::NoOp,
            };
            return session(action, "SET");
        }
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|v| v.value.clone())
                .collect::<Vec<_>>()
                .join(" ");
            let name = match name.to_ascii_lowercase().as_str() {
                "transaction isolation level" => "transaction_isolation".to_string(),
                "time zone" => "TimeZone".to_string(),
                // sqlparser splits a qualified name (`SHOW shardgate.replicas`) into words.
                _ if variable.len() == 2 => format!("{}.{}", variable[0].value, variable[1].value),
                _ => name,
            };
            return session(
                Action::Show {
                    column: name.to_ascii_lowercase(),
                    name,
                },
                "SHOW",
            );
        }
        Statement::Reset(reset) => {
            let action = match &reset.reset {
                sqlparser::ast::Reset::ConfigurationParameter(name) => Action::Set {
                    name: setting_name(&name.to_string()),
                    value: None,
                },
                _ => Action::ResetAll,
            };
            return session(action, "RESET");
        }
        Statement::Discard { .. } => return session(Action::ResetAll, "DISCARD ALL"),
        Statement::Deallocate { .. } => return session(Action::NoOp, "DEALLOCATE"),
        Statement::Query(query) => {
            if let Some(action) = session_function(query) {
                return session(action, "SELECT");
            }
        }
        _ => {}
    }

    let (tag, is_write) = match &stmt {
        Statement::Query(query) => ("SELECT".to_string(), query_writes(query)),
        Statement::Insert(_) => ("INSERT".into(), true),
        Statement::Update(_) => ("UPDATE".into(), true),
        Statement::Delete(_) => ("DELETE".into(), true),
        Statement::CreateTable(_) => ("CREATE TABLE".into(), true),
        Statement::CreateIndex(_) => ("CREATE INDEX".into(), true),
        Statement::CreateView(_) => ("CREATE VIEW".into(), true),
        Statement::AlterTable(_) => ("ALTER TABLE".into(), true),
        Statement::Truncate(_) => ("TRUNCATE TABLE".into(), true),
        Statement::Drop { object_type, .. } => (
            match object_type {
                ObjectType::Table => "DROP TABLE",
                ObjectType::Index => "DROP INDEX",
                ObjectType::View => "DROP VIEW",
                _ => "DROP",
            }
            .into(),
            true,
        ),
        other => (first_word(&other.to_string()).to_ascii_uppercase(), true),
    };
    let params = parameter_types(&stmt, schema);
    let projection = projection(&stmt, schema);
    let catalog =
        matches!(stmt, Statement::Query(_)) && super::catalog_rewrite::reads_catalog(&stmt);
    let mut stmt = stmt;
    if catalog {
        super::catalog_rewrite::rewrite_catalog_query(&mut stmt);
    }
    if let Err(error) = super::grouping::check_statement(&stmt, schema) {
        return Plan::refuse(error);
    }
    if let Err(error) = name_insert_columns(&mut stmt, schema) {
        return Plan::refuse(error);
    }
    if let Err(error) = resolve_timestamptz_literals(&mut stmt, schema) {
        return Plan::refuse(error);
    }
    let creates_virtual_table = matches!(stmt, Statement::CreateVirtualTable { .. });
    let parsed = Arc::new(stmt.clone());
    // After the copy routing and merging read: the rounding is how SQLite evaluates the
    // statement, not what it says.
    round_numeric_arithmetic(&mut stmt, schema);
    let types = Scope::with_params(&stmt, schema, &params);
    match rewrite(stmt, catalog, &types) {
        Ok(rewritten) => Plan {
            action: Action::Execute,
            is_write,
            tag,
            rewritten,
            params,
            projection,
            reads_catalog: catalog,
            primary_hint: false,
            shard_hint: None,
            statement: Some(parsed),
            creates_virtual_table,
        },
        Err(error) => Plan::refuse(error),
    }
}

/// PostgreSQL fills columns missing from the end of an `INSERT INTO t VALUES (...)` with their
/// defaults; SQLite refuses a short row. Naming the leading columns makes both agree.
fn name_insert_columns(stmt: &mut Statement, schema: &Schema) -> Result<(), SqlError> {
    let Statement::Insert(insert) = stmt else {
        return Ok(());
    };
    let sqlparser::ast::TableObject::TableName(name) = &insert.table else {
        return Ok(());
    };
    let (Some(table), Some(source)) = (schema.table(&name_text(name)), &insert.source) else {
        return Ok(());
    };
    if !insert.columns.is_empty() {
        return Ok(());
    }
    let width = match source.body.as_ref() {
        SetExpr::Values(values) => values.rows.iter().map(|row| row.len()).max(),
        SetExpr::Select(select)
            if !select.projection.iter().any(|item| {
                matches!(
                    item,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            }) =>
        {
            Some(select.projection.len())
        }
        _ => None,
    };
    match width {
        Some(width) if width > table.columns.len() => Err(SqlError::Syntax(
            "INSERT has more expressions than target columns".into(),
        )),
        Some(width) if width < table.columns.len() => {
            insert.columns = table.columns[..width]
                .iter()
                .map(|c| {
                    sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::with_quote(
                        '"',
                        c.name.as_str(),
                    )])
                })
                .collect();
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sql: &str) -> Vec<Plan> {
        plan_text(sql, &Schema::default())
    }

    #[test]
    fn classification() {
        assert!(!plan("SELECT 1")[0].is_write);
        assert!(plan("SELECT * FROM t FOR UPDATE")[0].is_write);
        assert!(plan("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x")[0].is_write);
        assert!(plan("INSERT INTO t VALUES (1)")[0].is_write);
        assert!(plan("this is not sql")[0].is_write);
        assert!(plan("/* shardgate:primary */ SELECT 1")[0].primary_hint);
        assert!(matches!(
            &plan("DECLARE c CURSOR FOR SELECT 1")[0].action,
            Action::Refuse(SqlError::Unsupported(_))
        ));
        assert!(plan("SELECT 1 /* shardgate:Primary */")[0].primary_hint);
        assert!(!plan("SELECT '/* shardgate:primary'")[0].primary_hint);
        assert_eq!(
            plan("/* shardgate:shard=shard-2 */ SELECT 1")[0]
                .shard_hint
                .as_deref(),
            Some("shard-2")
        );
        assert_eq!(
            plan("BEGIN ISOLATION LEVEL SERIALIZABLE")[0].action,
            Action::Transaction(TxnOp::Begin {
                read_only: false,
                isolation: Some(Isolation::Serializable)
            })
        );
        assert_eq!(
            plan("START TRANSACTION READ ONLY")[0].action,
            Action::Transaction(TxnOp::Begin {
                read_only: true,
                isolation: None
            })
        );
        assert_eq!(
            plan("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")[0].action,
            Action::Set {
                name: TRANSACTION_ISOLATION.into(),
                value: Some("repeatable read".into())
            }
        );
        assert_eq!(
            plan("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")[0]
                .action,
            Action::Set {
                name: DEFAULT_TRANSACTION_ISOLATION.into(),
                value: Some("read committed".into())
            }
        );
        assert_eq!(
            Isolation::parse("Repeatable   READ"),
            Some(Isolation::RepeatableRead)
        );
        assert_eq!(Isolation::parse("snapshot"), None);
        assert_eq!(plan("END")[0].action, Action::Transaction(TxnOp::Commit));
        assert_eq!(
            plan("ROLLBACK TO SAVEPOINT a")[0].action,
            Action::Transaction(TxnOp::RollbackTo("a".into()))
        );
        assert_eq!(plan("-- nothing\n;")[0].action, Action::Empty);
        assert_eq!(plan("SELECT 1; SELECT 2").len(), 2);
    }

    #[test]
    fn session_statements() {
        assert_eq!(
            plan("SET extra_float_digits = 3")[0].action,
            Action::Set {
                name: "extra_float_digits".into(),
                value: Some("3".into())
            }
        );
        assert_eq!(
            plan("SET application_name TO 'x'")[0].action,
            Action::Set {
                name: "application_name".into(),
                value: Some("x".into())
            }
        );
        assert_eq!(
            plan("SHOW TRANSACTION ISOLATION LEVEL")[0].action,
            Action::Show {
                name: "transaction_isolation".into(),
                column: "transaction_isolation".into()
            }
        );
        assert_eq!(
            plan("select current_setting('TimeZone')")[0].action,
            Action::Show {
                name: "TimeZone".into(),
                column: "current_setting".into()
            }
        );
        assert_eq!(
            plan("vacuum analyze pgbench_branches")[0]
                .rewritten
                .statements,
            vec!["ANALYZE pgbench_branches"]
        );
    }
}
