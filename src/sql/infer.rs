//! Type inference: the types of `$n` parameters from their context, and the names and types
//! of result columns, as PostgreSQL would report them.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, LimitClause, SelectItem,
    SetExpr, Statement, TableFactor, Value, Visit, VisitMut, Visitor, VisitorMut,
};

use super::datetime;
use super::error::SqlError;
use super::numeric;
use super::rewrite::name_text;
use super::types::{PgType, TypeWithMod, declared_type};
use crate::storage::schema::Schema;

/// The tables a statement mentions, by alias and by name, to resolve column references.
pub(crate) struct Scope<'a> {
    schema: &'a Schema,
    /// alias or table name (lower case) → table name
    tables: Vec<(String, String)>,
    /// Columns of set-returning functions in FROM: (alias or function name, column, type).
    functions: Vec<(String, String, TypeWithMod)>,
    /// The types of `$1`, `$2`, ... where they are known.
    params: Vec<TypeWithMod>,
}

/// A set-returning function in FROM whose result column type is known, with the expressions
/// that decide it.
struct FromFunction {
    key: String,
    column: String,
    args: Vec<Expr>,
}

/// `generate_series(a, b [, step]) [AS s | AS s(col)]`: PostgreSQL names the column after
/// the column alias, else the table alias, else the function.
fn from_function(factor: &TableFactor) -> Option<FromFunction> {
    let TableFactor::Table {
        name,
        alias,
        args: Some(args),
        ..
    } = factor
    else {
        return None;
    };
    let function = name_text(name).to_ascii_lowercase();
    let function = function.rsplit('.').next().unwrap_or(&function).to_string();
    if function != "generate_series" {
        return None;
    }
    let (key, column) = match alias {
        Some(alias) => {
            let key = alias.name.value.to_ascii_lowercase();
            let column = alias
                .columns
                .first()
                .map(|c| c.name.value.to_ascii_lowercase())
                .unwrap_or_else(|| key.clone());
            (key, column)
        }
        None => (function.clone(), function),
    };
    let args = args
        .args
        .iter()
        .take(2)
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    Some(FromFunction { key, column, args })
}

impl<'a> Scope<'a> {
    pub(crate) fn of(stmt: &Statement, schema: &'a Schema) -> Scope<'a> {
        struct Collect(Vec<(String, String)>, Vec<FromFunction>);
        impl Visitor for Collect {
            type Break = ();
            fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
                if let Some(function) = from_function(factor) {
                    self.1.push(function);
                }
                if let TableFactor::Table { name, alias, .. } = factor {
                    let table = name_text(name).to_ascii_lowercase();
                    let key = alias
                        .as_ref()
                        .map(|a| a.name.value.to_ascii_lowercase())
                        .unwrap_or_else(|| table.clone());
                    self.0.push((key, table));
                }
                ControlFlow::Continue(())
            }
            fn pre_visit_relation(&mut self, name: &sqlparser::ast::ObjectName) -> ControlFlow<()> {
                let table = name_text(name).to_ascii_lowercase();
                if !self.0.iter().any(|(_, t)| *t == table) {
                    self.0.push((table.clone(), table));
                }
                ControlFlow::Continue(())
            }
        }
        let mut collect = Collect(Vec::new(), Vec::new());
        let _ = stmt.visit(&mut collect);
        let mut scope = Scope {
            schema,
            tables: collect.0,
            functions: Vec::new(),
            params: Vec::new(),
        };
        // generate_series returns the type of its bounds: int4, int8, numeric, timestamp...
        let functions = collect
            .1
            .into_iter()
            .map(|f| {
                let ty = f
                    .args
                    .iter()
                    .filter_map(|a| scope.expr_type(a).map(|t| t.pg))
                    .reduce(wider)
                    .unwrap_or(PgType::Int4);
                (f.key, f.column, TypeWithMod::plain(ty))
            })
            .collect();
        scope.functions = functions;
        scope
    }

    /// The scope of `stmt` with its parameters' types known, for the rewrite's decisions.
    pub(crate) fn with_params(
        stmt: &Statement,
        schema: &'a Schema,
        params: &[TypeWithMod],
    ) -> Scope<'a> {
        let mut scope = Scope::of(stmt, schema);
        scope.params = params.to_vec();
        scope
    }

    pub(crate) fn schema(&self) -> &'a Schema {
        self.schema
    }

    fn function_column(&self, qualifier: Option<&str>, column: &str) -> Option<TypeWithMod> {
        let column = column.to_ascii_lowercase();
        let qualifier = qualifier.map(str::to_ascii_lowercase);
        self.functions
            .iter()
            .find(|(key, col, _)| *col == column && qualifier.as_ref().is_none_or(|q| q == key))
            .map(|(_, _, ty)| *ty)
    }

    fn column(&self, qualifier: Option<&str>, column: &str) -> Option<TypeWithMod> {
        match qualifier {
            Some(q) => {
                let q = q.to_ascii_lowercase();
                let table = self
                    .tables
                    .iter()
                    .find(|(alias, _)| *alias == q)
                    .map(|(_, t)| t.as_str())
                    .unwrap_or(q.as_str());
                self.schema
                    .column_type(table, column)
                    .or_else(|| self.function_column(Some(&q), column))
            }
            None => self
                .tables
                .iter()
                .find_map(|(_, t)| self.schema.column_type(t, column))
                .or_else(|| self.function_column(None, column)),
        }
    }

    /// The type PostgreSQL would give `expr`, when it can be told without running it.
    pub(crate) fn expr_type(&self, expr: &Expr) -> Option<TypeWithMod> {
        let plain = |pg| Some(TypeWithMod::plain(pg));
        match expr {
            Expr::Identifier(ident) => self.column(None, &ident.value),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [.., q, c] => self.column(Some(&q.value), &c.value),
                [c] => self.column(None, &c.value),
                [] => None,
            },
            Expr::Nested(inner) => self.expr_type(inner),
            Expr::Cast { data_type, .. } => Some(declared_type(&data_type.to_string()).ty),
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => {
                    if n.contains(['e', 'E']) {
                        plain(PgType::Numeric)
                    } else if n.contains('.') {
                        // PostgreSQL prints a numeric literal with the digits it was written with.
                        self.numeric_scale(expr).map(TypeWithMod::numeric_of_scale)
                    } else if n.parse::<i32>().is_ok() {
                        plain(PgType::Int4)
                    } else if n.parse::<i64>().is_ok() {
                        plain(PgType::Int8)
                    } else {
                        plain(PgType::Numeric)
                    }
                }
                Value::Boolean(_) => plain(PgType::Bool),
                Value::Placeholder(p) => p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| self.params.get(n.checked_sub(1)?).copied()),
                Value::SingleQuotedString(_)
                | Value::EscapedStringLiteral(_)
                | Value::DollarQuotedString(_) => plain(PgType::Text),
                _ => None,
            },
            Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
            | Expr::In { .. }
            | Expr::Between { .. }
            | Expr::Like { .. }
            | Expr::ILike { .. }
            | Expr::Exists { .. } => plain(PgType::Bool),
            Expr::UnaryOp { expr, .. } => self.expr_type(expr),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::And
                | BinaryOperator::Or => plain(PgType::Bool),
                BinaryOperator::StringConcat => plain(PgType::Text),
                BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo => {
                    let l = self.expr_type(left)?;
                    let r = self.expr_type(right)?;
                    let ty = wider(l.pg, r.pg);
                    match self.numeric_scale(expr) {
                        Some(scale) if ty == PgType::Numeric => {
                            Some(TypeWithMod::numeric_of_scale(scale))
                        }
                        _ => Some(TypeWithMod::plain(ty)),
                    }
                }
                _ => None,
            },
            Expr::Function(function) => {
                let name = name_text(&function.name).to_ascii_lowercase();
                let first_arg = match &function.args {
                    FunctionArguments::List(list) => list.args.first().and_then(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.expr_type(e),
                        _ => None,
                    }),
                    _ => None,
                };
                match name.as_str() {
                    "count" => plain(PgType::Int8),
                    "sum" => match first_arg.map(|t| t.pg) {
                        Some(PgType::Int2 | PgType::Int4) => plain(PgType::Int8),
                        Some(PgType::Float4) => plain(PgType::Float4),
                        Some(PgType::Float8) => plain(PgType::Float8),
                        // A sum has the scale of what it adds up.
                        _ => match self.numeric_scale(expr) {
                            Some(scale) => Some(TypeWithMod::numeric_of_scale(scale)),
                            None => plain(PgType::Numeric),
                        },
                    },
                    "avg" => match first_arg.map(|t| t.pg) {
                        Some(PgType::Float4 | PgType::Float8) => plain(PgType::Float8),
                        _ => plain(PgType::Numeric),
                    },
                    "min" | "max" | "coalesce" | "abs" | "nullif" | "round" => first_arg,
                    name if name == numeric::ROUND_FUNCTION => first_arg,
                    "length" | "char_length" | "octet_length" | "strpos" | "position" => {
                        plain(PgType::Int4)
                    }
                    "now" | "transaction_timestamp" | "statement_timestamp" | "clock_timestamp" => {
                        plain(PgType::Timestamptz)
                    }
                    "current_timestamp" => plain(PgType::Timestamptz),
                    "current_date" => plain(PgType::Date),
                    "random" => plain(PgType::Float8),
                    "gen_random_uuid" => plain(PgType::Uuid),
                    "pg_backend_pid" => plain(PgType::Int4),
                    "version" | "current_database" | "current_schema" | "current_user"
                    | "session_user" | "lower" | "upper" | "trim" | "ltrim" | "rtrim"
                    | "substr" | "substring" | "replace" | "concat" | "md5" | "current_setting"
                    | "set_config" | "string_agg" | "format" => plain(PgType::Text),
                    _ => None,
                }
            }
            Expr::Case {
                conditions,
                else_result,
                ..
            } => conditions
                .iter()
                .find_map(|c| self.expr_type(&c.result))
                .or_else(|| else_result.as_ref().and_then(|e| self.expr_type(e))),
            Expr::Subquery(query) => match query.body.as_ref() {
                SetExpr::Select(select) => match select.projection.first() {
                    Some(SelectItem::UnnamedExpr(e))
                    | Some(SelectItem::ExprWithAlias { expr: e, .. }) => self.expr_type(e),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }
}

impl Scope<'_> {
    /// The number of digits after the point PostgreSQL gives the numeric (or integer) value of
    /// `expr`, when it follows from the statement: a literal's digits, a `numeric(p, s)`
    /// column's scale, the larger scale for `+` and `-`, the sum of both for `*`, and for
    /// `sum`, `min`, `max`, `abs` the scale of their argument. Integers have scale 0.
    fn numeric_scale(&self, expr: &Expr) -> Option<usize> {
        let args = |function: &sqlparser::ast::Function| -> Vec<Expr> {
            match &function.args {
                FunctionArguments::List(list) => list
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        match expr {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) if !n.contains(['e', 'E']) => {
                    Some(n.split_once('.').map_or(0, |(_, digits)| digits.len()))
                }
                _ => None,
            },
            Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => self.numeric_scale(inner),
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                let ty = declared_type(&data_type.to_string()).ty;
                match ty.pg {
                    PgType::Numeric => ty.numeric_scale().or_else(|| self.numeric_scale(inner)),
                    pg if pg.is_integer() => Some(0),
                    _ => None,
                }
            }
            Expr::BinaryOp { left, op, right } => {
                let (l, r) = (self.numeric_scale(left)?, self.numeric_scale(right)?);
                match op {
                    BinaryOperator::Plus | BinaryOperator::Minus => Some(l.max(r)),
                    BinaryOperator::Multiply => Some(l + r),
                    _ => None,
                }
            }
            Expr::Function(function) => {
                let name = name_text(&function.name).to_ascii_lowercase();
                match (name.as_str(), args(function).as_slice()) {
                    ("sum" | "min" | "max" | "abs", [arg]) => self.numeric_scale(arg),
                    (name, [_, digits]) if name == "round" || name == numeric::ROUND_FUNCTION => {
                        self.numeric_scale(digits).and_then(|_| match digits {
                            Expr::Value(v) => match &v.value {
                                Value::Number(n, _) => n.parse().ok(),
                                _ => None,
                            },
                            _ => None,
                        })
                    }
                    _ => None,
                }
            }
            _ => match self.expr_type(expr)? {
                ty if ty.pg.is_integer() => Some(0),
                ty => ty.numeric_scale(),
            },
        }
    }
}

/// `+`, `-` and `*` of numerics are exact in PostgreSQL, with a result scale that follows from
/// the operands' (see [`Scope::numeric_scale`]); SQLite computes them in doubles, where
/// 0.1 + 0.2 is 0.30000000000000004. Rounding the double to the result's scale gives the
/// double nearest to the exact decimal result, the same one a literal of that value is, so
/// comparisons and stored values agree with PostgreSQL for values of up to 15 significant
/// digits (numeric columns of larger precision are refused when they are created).
pub fn round_numeric_arithmetic(stmt: &mut Statement, schema: &Schema) {
    struct Round<'s, 'a> {
        scope: &'s Scope<'a>,
    }
    impl VisitorMut for Round<'_, '_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let rounded = match expr {
                Expr::BinaryOp {
                    op: BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply,
                    ..
                } => true,
                // A cast to numeric(p, s) rounds to s; a sum of numerics has their scale.
                Expr::Cast { .. } => true,
                Expr::Function(function) => {
                    name_text(&function.name).eq_ignore_ascii_case("sum") && function.over.is_none()
                }
                _ => false,
            };
            if rounded
                && self
                    .scope
                    .expr_type(expr)
                    .is_some_and(|t| t.pg == PgType::Numeric)
                && let Some(scale) = self.scope.numeric_scale(expr)
            {
                let exact = std::mem::replace(expr, Expr::value(Value::Null));
                *expr = Expr::Function(sqlparser::ast::Function {
                    name: sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(
                        numeric::ROUND_FUNCTION,
                    )]),
                    uses_odbc_syntax: false,
                    parameters: FunctionArguments::None,
                    args: FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Nested(Box::new(
                                exact,
                            )))),
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
                                Value::Number(scale.to_string(), false),
                            ))),
                        ],
                        clauses: vec![],
                    }),
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: vec![],
                });
            }
            ControlFlow::Continue(())
        }
    }
    let scope = Scope::of(stmt, schema);
    let _ = stmt.visit(&mut Round { scope: &scope });
}

/// The columns an INSERT fills, in order: those it names, else every column of its table.
pub(crate) fn insert_columns(
    table: &str,
    named: &[sqlparser::ast::ObjectName],
    schema: &Schema,
) -> Vec<String> {
    if named.is_empty() {
        schema
            .table(table)
            .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    } else {
        named.iter().map(name_text).collect()
    }
}

fn wider(a: PgType, b: PgType) -> PgType {
    use PgType::*;
    let rank = |t| match t {
        Int2 => 1,
        Int4 => 2,
        Int8 => 3,
        Numeric => 4,
        Float4 => 5,
        Float8 => 6,
        _ => 0,
    };
    if rank(a) == 0 {
        b
    } else if rank(b) == 0 || rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

fn placeholder_index(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => placeholder_index(inner),
        _ => None,
    }
}

/// The type of every `$n` in `stmt` (index 0 is `$1`), from the column it is compared with
/// or assigned to, its INSERT column, a LIMIT/OFFSET, or an explicit cast. Parameters with
/// no context are `text`, as PostgreSQL resolves an unknown literal.
pub fn parameter_types(stmt: &Statement, schema: &Schema) -> Vec<TypeWithMod> {
    let scope = Scope::of(stmt, schema);
    let mut found: HashMap<usize, TypeWithMod> = HashMap::new();
    let mut max_index = 0usize;
    let note = |found: &mut HashMap<usize, TypeWithMod>, expr: &Expr, ty: Option<TypeWithMod>| {
        if let (Some(i), Some(ty)) = (placeholder_index(expr), ty) {
            found.entry(i).or_insert(ty);
        }
    };

    // INSERT ... (columns) VALUES (...)
    if let Statement::Insert(insert) = stmt
        && let sqlparser::ast::TableObject::TableName(name) = &insert.table
    {
        let table = name_text(name);
        let columns = insert_columns(&table, &insert.columns, schema);
        if let Some(source) = &insert.source
            && let SetExpr::Values(values) = source.body.as_ref()
        {
            for row in &values.rows {
                for (expr, column) in row.iter().zip(columns.iter()) {
                    note(&mut found, expr, schema.column_type(&table, column));
                }
            }
        }
    }
    if let Statement::Update(update) = stmt {
        for assignment in &update.assignments {
            if let sqlparser::ast::AssignmentTarget::ColumnName(column) = &assignment.target {
                let ty = scope.column(None, &name_text(column));
                note(&mut found, &assignment.value, ty);
            }
        }
    }

    struct Walk<'s, 'a> {
        scope: &'s Scope<'a>,
        found: HashMap<usize, TypeWithMod>,
        max_index: usize,
    }
    impl Walk<'_, '_> {
        fn pair(&mut self, a: &Expr, b: &Expr) {
            if let Some(i) = placeholder_index(a)
                && let Some(ty) = self.scope.expr_type(b)
            {
                self.found.entry(i).or_insert(ty);
            }
        }
    }
    impl Visitor for Walk<'_, '_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Some(i) = placeholder_index(expr) {
                self.max_index = self.max_index.max(i);
            }
            match expr {
                Expr::BinaryOp { left, right, op } => {
                    if matches!(op, BinaryOperator::StringConcat) {
                        let text = TypeWithMod::plain(PgType::Text);
                        for side in [left, right] {
                            if let Some(i) = placeholder_index(side) {
                                self.found.entry(i).or_insert(text);
                            }
                        }
                    } else {
                        self.pair(left, right);
                        self.pair(right, left);
                    }
                }
                Expr::In {
                    expr,
                    target: sqlparser::ast::InTarget::List(list),
                    ..
                } => {
                    for item in list {
                        self.pair(item, expr);
                    }
                }
                Expr::Between {
                    expr, low, high, ..
                } => {
                    self.pair(low, expr);
                    self.pair(high, expr);
                    self.pair(expr, low);
                }
                Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                    let text = TypeWithMod::plain(PgType::Text);
                    for side in [expr, pattern] {
                        if let Some(i) = placeholder_index(side) {
                            self.found.entry(i).or_insert(text);
                        }
                    }
                }
                Expr::Cast {
                    expr: inner,
                    data_type,
                    ..
                } => {
                    if let Some(i) = placeholder_index(inner) {
                        self.found
                            .entry(i)
                            .or_insert(declared_type(&data_type.to_string()).ty);
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
            if let Some(LimitClause::LimitOffset { limit, offset, .. }) = &query.limit_clause {
                let int8 = TypeWithMod::plain(PgType::Int8);
                for e in limit.iter().chain(offset.iter().map(|o| &o.value)) {
                    if let Some(i) = placeholder_index(e) {
                        self.found.entry(i).or_insert(int8);
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut walk = Walk {
        scope: &scope,
        found,
        max_index,
    };
    let _ = stmt.visit(&mut walk);
    max_index = walk.max_index;
    let found = walk.found;
    (1..=max_index)
        .map(|i| {
            found
                .get(&i)
                .copied()
                .unwrap_or(TypeWithMod::plain(PgType::Text))
        })
        .collect()
}

/// PostgreSQL resolves an untyped literal compared with, or assigned to, a timestamptz to a
/// timestamptz: `created = '2024-07-01 12:00:00-04'` compares instants. SQLite would compare
/// the literal's text with the stored form, so such literals (and the literals of explicit
/// casts) are written in the stored form here, where routing sees them too: a timestamptz
/// shard key is placed and found by its instant. A literal that is not a timestamp is an
/// error now, as in PostgreSQL, whether or not a row is compared with it; `'now'` is left to
/// run time (plans are cached) with the cast PostgreSQL implies.
pub fn resolve_timestamptz_literals(stmt: &mut Statement, schema: &Schema) -> Result<(), SqlError> {
    struct Resolve<'s, 'a> {
        scope: &'s Scope<'a>,
        error: Option<SqlError>,
    }
    fn literal_text(expr: &mut Expr) -> Option<&mut String> {
        match expr {
            Expr::Value(v) => match &mut v.value {
                Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s),
                Value::DollarQuotedString(d) => Some(&mut d.value),
                _ => None,
            },
            _ => None,
        }
    }
    /// Writes a literal in the stored form. False when that is left to the checked cast at
    /// run time: for `'now'`, which has no stored form yet, and for what the cast refuses with
    /// a code of its own (a field out of range is `22008`, not a malformed timestamp).
    fn store(expr: &mut Expr) -> Result<bool, SqlError> {
        let Some(text) = literal_text(expr) else {
            return Ok(true);
        };
        if text.trim().eq_ignore_ascii_case("now") {
            return Ok(false);
        }
        match datetime::to_stored(text) {
            Ok(stored) => {
                *text = stored;
                Ok(true)
            }
            Err(e) => match crate::storage::checked::check_datetime_text(text, PgType::Timestamptz)
            {
                Err(invalid)
                    if invalid.kind == crate::storage::StorageErrorKind::InvalidDatetimeFormat =>
                {
                    Err(SqlError::InvalidDatetime(invalid.message))
                }
                Err(_) => Ok(false),
                Ok(()) => match e {
                    // A form the cast accepts that the stored form cannot hold ('infinity',
                    // a zone name): the cast refuses it when it runs.
                    SqlError::Unsupported(_) | SqlError::InvalidDatetime(_) => Ok(false),
                    other => Err(other),
                },
            },
        }
    }
    fn resolve(expr: &mut Expr) -> Result<(), SqlError> {
        if store(expr)? {
            return Ok(());
        }
        let literal = std::mem::replace(expr, Expr::value(Value::Null));
        *expr = Expr::Cast {
            kind: sqlparser::ast::CastKind::DoubleColon,
            expr: Box::new(literal),
            data_type: sqlparser::ast::DataType::Custom(
                sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new("timestamptz")]),
                vec![],
            ),
            format: None,
        };
        Ok(())
    }
    impl Resolve<'_, '_> {
        fn is_timestamptz(&self, expr: &Expr) -> bool {
            self.scope
                .expr_type(expr)
                .is_some_and(|t| t.pg == PgType::Timestamptz)
        }

        fn pair(&self, left: &mut Expr, right: &mut Expr) -> Result<(), SqlError> {
            if self.is_timestamptz(left) {
                resolve(right)
            } else if self.is_timestamptz(right) {
                resolve(left)
            } else {
                Ok(())
            }
        }

        fn resolve_expr(&self, expr: &mut Expr) -> Result<(), SqlError> {
            match expr {
                Expr::BinaryOp {
                    left,
                    op:
                        BinaryOperator::Eq
                        | BinaryOperator::NotEq
                        | BinaryOperator::Lt
                        | BinaryOperator::LtEq
                        | BinaryOperator::Gt
                        | BinaryOperator::GtEq,
                    right,
                }
                | Expr::IsDistinctFrom(left, right)
                | Expr::IsNotDistinctFrom(left, right) => self.pair(left, right),
                Expr::Between {
                    expr, low, high, ..
                } if self.is_timestamptz(expr) => {
                    resolve(low)?;
                    resolve(high)
                }
                Expr::In {
                    expr,
                    target: sqlparser::ast::InTarget::List(list),
                    ..
                } if self.is_timestamptz(expr) => list.iter_mut().try_for_each(resolve),
                Expr::Cast {
                    expr: inner,
                    data_type,
                    ..
                } if declared_type(&data_type.to_string()).ty.pg == PgType::Timestamptz => {
                    store(inner).map(|_| ())
                }
                _ => Ok(()),
            }
        }
    }
    impl VisitorMut for Resolve<'_, '_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            match self.resolve_expr(expr) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    self.error = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let scope = Scope::of(stmt, schema);
    let is_timestamptz = |table: &str, column: &str| {
        schema
            .column_type(table, column)
            .is_some_and(|t| t.pg == PgType::Timestamptz)
    };
    match stmt {
        Statement::Insert(insert) => {
            if let sqlparser::ast::TableObject::TableName(name) = &insert.table
                && let Some(source) = insert.source.as_mut()
                && let SetExpr::Values(values) = source.body.as_mut()
            {
                let table = name_text(name);
                let columns = insert_columns(&table, &insert.columns, schema);
                for row in &mut values.rows {
                    for (expr, column) in row.iter_mut().zip(&columns) {
                        if is_timestamptz(&table, column) {
                            resolve(expr)?;
                        }
                    }
                }
            }
        }
        Statement::Update(update) => {
            for assignment in &mut update.assignments {
                if let sqlparser::ast::AssignmentTarget::ColumnName(column) = &assignment.target
                    && scope
                        .column(None, &name_text(column))
                        .is_some_and(|t| t.pg == PgType::Timestamptz)
                {
                    resolve(&mut assignment.value)?;
                }
            }
        }
        _ => {}
    }
    let mut resolver = Resolve {
        scope: &scope,
        error: None,
    };
    let _ = stmt.visit(&mut resolver);
    resolver.error.map_or(Ok(()), Err)
}

/// What the AST says about one select-list item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectedItem {
    /// `*` or `t.*`: expands to columns SQLite names.
    Wildcard,
    Column {
        name: Option<String>,
        ty: Option<TypeWithMod>,
    },
}

/// The select list (or RETURNING list) of a statement, item by item.
pub fn projection(stmt: &Statement, schema: &Schema) -> Option<Vec<ProjectedItem>> {
    let scope = Scope::of(stmt, schema);
    let (items, from): (&[SelectItem], &[sqlparser::ast::TableWithJoins]) = match stmt {
        Statement::Query(query) => {
            let mut body = query.body.as_ref();
            loop {
                match body {
                    SetExpr::Select(select) => break (&select.projection, &select.from),
                    SetExpr::SetOperation { left, .. } => body = left.as_ref(),
                    SetExpr::Query(q) => body = q.body.as_ref(),
                    _ => return None,
                }
            }
        }
        Statement::Insert(insert) => (insert.returning.as_deref()?, &[]),
        Statement::Update(update) => (update.returning.as_deref()?, &[]),
        Statement::Delete(delete) => (delete.returning.as_deref()?, &[]),
        _ => return None,
    };
    // `SELECT * FROM generate_series(...)`: the wildcard is the function's one column.
    let only_function = match from {
        [only] if only.joins.is_empty() => from_function(&only.relation),
        _ => None,
    };
    Some(
        items
            .iter()
            .map(|item| match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => match &only_function
                {
                    Some(f) => ProjectedItem::Column {
                        name: Some(f.column.clone()),
                        ty: scope.function_column(Some(&f.key), &f.column),
                    },
                    None => ProjectedItem::Wildcard,
                },
                SelectItem::UnnamedExpr(expr) => ProjectedItem::Column {
                    name: Some(column_name(expr)),
                    ty: scope.expr_type(expr),
                },
                SelectItem::ExprWithAlias { expr, alias } => ProjectedItem::Column {
                    name: Some(alias.value.clone()),
                    ty: scope.expr_type(expr),
                },
                SelectItem::ExprWithAliases { expr, .. } => ProjectedItem::Column {
                    name: None,
                    ty: scope.expr_type(expr),
                },
            })
            .collect(),
    )
}

/// The name PostgreSQL gives an unaliased select-list expression.
fn column_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|p| p.value.clone())
            .unwrap_or_else(|| "?column?".into()),
        Expr::Function(function) => name_text(&function.name).to_ascii_lowercase(),
        Expr::Nested(inner) => column_name(inner),
        Expr::Cast {
            expr, data_type, ..
        } => match column_name(expr).as_str() {
            "?column?" => declared_type(&data_type.to_string())
                .ty
                .pg
                .wire_type()
                .name()
                .to_string(),
            name => name.to_string(),
        },
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        _ => "?column?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn schema() -> Schema {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::storage::schema::create_internal_tables(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE accounts (aid INTEGER, bid INT, abalance INT, filler CHAR(84), big BIGINT, name VARCHAR(10), ok BOOLEAN)",
        )
        .unwrap();
        Schema::load(&conn).unwrap()
    }

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    fn pgs(types: Vec<TypeWithMod>) -> Vec<PgType> {
        types.into_iter().map(|t| t.pg).collect()
    }

    #[test]
    fn parameters_take_their_context_type() {
        let s = schema();
        assert_eq!(
            pgs(parameter_types(
                &parse("UPDATE accounts SET abalance = abalance + $1 WHERE aid = $2"),
                &s
            )),
            vec![PgType::Int4, PgType::Int4]
        );
        assert_eq!(
            pgs(parameter_types(
                &parse("INSERT INTO accounts (big, name, ok) VALUES ($1, $2, $3)"),
                &s
            )),
            vec![PgType::Int8, PgType::Varchar, PgType::Bool]
        );
        assert_eq!(
            pgs(parameter_types(
                &parse("SELECT * FROM accounts a WHERE a.big IN ($1, $2) LIMIT $3 OFFSET $4"),
                &s
            )),
            vec![PgType::Int8, PgType::Int8, PgType::Int8, PgType::Int8]
        );
        assert_eq!(
            pgs(parameter_types(&parse("SELECT $1::date, $2"), &s)),
            vec![PgType::Date, PgType::Text]
        );
    }

    #[test]
    fn result_columns_are_named_and_typed_like_postgres() {
        let s = schema();
        let items = projection(&parse("SELECT count(*), sum(abalance), 1, 'x', aid AS id, 1 + 2, max(big), now() FROM accounts"), &s).unwrap();
        let expect = [
            ("count", PgType::Int8),
            ("sum", PgType::Int8),
            ("?column?", PgType::Int4),
            ("?column?", PgType::Text),
            ("id", PgType::Int4),
            ("?column?", PgType::Int4),
            ("max", PgType::Int8),
            ("now", PgType::Timestamptz),
        ];
        for (item, (name, ty)) in items.iter().zip(expect) {
            assert_eq!(
                item,
                &ProjectedItem::Column {
                    name: Some(name.to_string()),
                    ty: Some(TypeWithMod::plain(ty))
                }
            );
        }
    }

    #[test]
    fn generate_series_columns_have_the_type_of_their_bounds() {
        let s = schema();
        let typed = |sql: &str| -> Vec<(Option<String>, Option<PgType>)> {
            projection(&parse(sql), &s)
                .unwrap()
                .into_iter()
                .map(|item| match item {
                    ProjectedItem::Column { name, ty } => (name, ty.map(|t| t.pg)),
                    ProjectedItem::Wildcard => (None, None),
                })
                .collect()
        };
        let col = |name: &str, ty| (Some(name.to_string()), Some(ty));
        assert_eq!(
            typed("SELECT x, x * 2 AS y FROM generate_series(1, 1000) AS x"),
            vec![col("x", PgType::Int4), col("y", PgType::Int4)]
        );
        assert_eq!(
            typed("SELECT s.n FROM pg_catalog.generate_series(1, 3000000000) AS s(n)"),
            vec![col("n", PgType::Int8)]
        );
        assert_eq!(
            typed("SELECT generate_series, aid FROM generate_series(1, 2), accounts"),
            vec![
                col("generate_series", PgType::Int4),
                col("aid", PgType::Int4)
            ]
        );
        assert_eq!(
            typed("SELECT * FROM generate_series(1, 3)"),
            vec![col("generate_series", PgType::Int4)]
        );
        assert_eq!(
            typed("SELECT * FROM generate_series(1, 3) AS g(n)"),
            vec![col("n", PgType::Int4)]
        );
        assert_eq!(
            typed("SELECT * FROM accounts, generate_series(1, 3) AS g"),
            vec![(None, None)]
        );
        assert_eq!(
            pgs(parameter_types(
                &parse("SELECT x FROM generate_series(1, 10) AS x WHERE x > $1"),
                &s
            )),
            vec![PgType::Int4]
        );
    }
}
