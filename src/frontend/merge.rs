//! Merging the results of one read run on several shards, so that the client sees what one
//! database holding every row would have answered — or a clear refusal, never a partial or
//! wrong answer.
//!
//! A plain SELECT is concatenated. Anything that orders, limits, deduplicates or aggregates
//! runs in two stages: each shard runs a *shard query* (the same rows, with `LIMIT n+m` and the
//! ORDER BY terms as extra columns; or, when aggregating, partial aggregates per group), the
//! proxy loads every shard's rows into an in-memory SQLite table `_merge`, and a *final query*
//! over it orders, limits, re-aggregates (sum of counts, `avg` as sum over count) and applies
//! HAVING. Using SQLite for the final stage gives the same ordering and NULL semantics as a
//! single shard.

use rusqlite::types::Value;
use sqlparser::ast::{
    Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    LimitClause, OrderByKind, Query, SelectItem, SetExpr, Statement, Value as SqlValue, Visit,
    VisitMut, Visitor, VisitorMut,
};

use crate::sql::error::SqlError;
use crate::sql::plan::Plan;
use crate::storage::ExecOutput;

fn unsupported(reason: impl std::fmt::Display) -> SqlError {
    SqlError::Unsupported(format!("{reason} is not supported across shards"))
}

/// The aggregates whose shard results combine into the answer (`avg` as a sum over a count).
const COMBINED: &[&str] = &["count", "sum", "min", "max", "avg", "total"];

/// SQL aggregate functions (PostgreSQL's and SQLite's).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "total",
    "group_concat",
    "string_agg",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "json_agg",
    "jsonb_agg",
    "json_group_array",
    "json_group_object",
];

fn function_arguments(function: &sqlparser::ast::Function) -> Vec<&FunctionArg> {
    match &function.args {
        FunctionArguments::List(list) => list.args.iter().collect(),
        _ => Vec::new(),
    }
}

fn is_aggregate(function: &sqlparser::ast::Function) -> bool {
    let name = function.name.to_string().to_ascii_lowercase();
    // min/max with several arguments are SQLite's scalar functions, not aggregates.
    let scalar_min_max = (name == "min" || name == "max") && function_arguments(function).len() > 1;
    AGGREGATES.contains(&name.as_str()) && !scalar_min_max
}

/// Whether an expression holds an aggregate (or refuses a window function).
fn has_aggregate(expr: &Expr) -> Result<bool, SqlError> {
    struct Finder {
        aggregate: bool,
        window: bool,
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Function(function) = expr {
                if function.over.is_some() {
                    self.window = true;
                } else if is_aggregate(function) {
                    self.aggregate = true;
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut finder = Finder {
        aggregate: false,
        window: false,
    };
    let _ = expr.visit(&mut finder);
    if finder.window {
        return Err(unsupported("a window function over a sharded table"));
    }
    Ok(finder.aggregate)
}

/// A LIMIT or OFFSET value: a literal or a bound parameter; `None` for NULL (no limit, no
/// offset, as in PostgreSQL). Values are at most `i64::MAX`, SQLite's largest integer.
fn count_value(expr: &Expr, params: &[Value]) -> Result<Option<u64>, SqlError> {
    let value = match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse::<u64>().ok().map(Some),
            SqlValue::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| params.get(i.checked_sub(1)?))
                .and_then(|v| match v {
                    Value::Integer(i) => u64::try_from(*i).ok().map(Some),
                    Value::Null => Some(None),
                    _ => None,
                }),
            SqlValue::Null => Some(None),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => return count_value(expr, params),
        _ => None,
    };
    match value {
        Some(Some(n)) if n > i64::MAX as u64 => Err(SqlError::OutOfRange(format!(
            "LIMIT or OFFSET {n} is out of range for type bigint"
        ))),
        Some(n) => Ok(n),
        None => Err(unsupported(format!("LIMIT or OFFSET {expr}"))),
    }
}

/// One ORDER BY term: its expression in the final query and in the shard query, and its
/// direction.
struct OrderTerm {
    expr: String,
    shard_expr: String,
    /// A select-list position beside `*` (1-based): checked against the columns the shards
    /// return.
    position: Option<usize>,
    descending: bool,
    nulls_first: Option<bool>,
}

impl OrderTerm {
    /// The term in the final query.
    fn sql(&self) -> String {
        self.with_direction(&self.expr)
    }

    /// The term in the shard query.
    fn shard_sql(&self) -> String {
        self.with_direction(&self.shard_expr)
    }

    fn with_direction(&self, expr: &str) -> String {
        let mut text = expr.to_string();
        if self.descending {
            text.push_str(" DESC");
        }
        match self.nulls_first {
            Some(true) => text.push_str(" NULLS FIRST"),
            Some(false) => text.push_str(" NULLS LAST"),
            None => {}
        }
        text
    }
}

/// How shard results combine.
pub enum MergePlan {
    /// Rows of every shard, one after another.
    Concatenate,
    /// Shards run `shard_sql`; the final query runs over their rows.
    Staged(Staged),
}

pub struct Staged {
    /// PostgreSQL text each shard runs.
    pub shard_sql: String,
    /// Columns the shard query adds after the client's (ORDER BY terms).
    hidden: usize,
    /// Names of the `_merge` columns when they are known at plan time (aggregation).
    named_columns: Option<Vec<String>>,
    distinct: bool,
    order: Vec<OrderTerm>,
    limit: Option<u64>,
    offset: u64,
    /// Aggregation: the final select list and GROUP BY/HAVING, over `_merge`.
    aggregate: Option<FinalAggregate>,
}

struct FinalAggregate {
    items: Vec<String>,
    group_by: Vec<String>,
    having: Option<String>,
}

/// Rewrites an expression of the client's query into one over `_merge`: aggregates become
/// their re-aggregation over partial columns, GROUP BY expressions their group column.
struct Lift<'a> {
    /// The [`match_key`] of each GROUP BY expression, in `_g<i>` order.
    groups: &'a [String],
    /// Shard-query select items (text) for partial aggregates, in `_p<i>` order.
    partials: Vec<String>,
    /// DISTINCT aggregate arguments added as groups of the shard query.
    distinct_groups: Vec<String>,
    /// Final-query text of each aggregate replaced by the placeholder `_agg<i>`.
    replacements: Vec<String>,
    /// The bound parameters: the final query has none, so `$n` outside aggregates and
    /// groups (which the shards evaluate) becomes its value.
    params: &'a [Value],
    error: Option<SqlError>,
}

/// The text an expression is matched by against GROUP BY expressions: identifiers and
/// function names folded as PostgreSQL folds them (`City`, `city` and `"city"` are one
/// column).
fn match_key(expr: &Expr) -> String {
    struct Fold;
    fn fold(ident: &mut Ident) {
        if ident.quote_style.is_none() {
            ident.value = ident.value.to_ascii_lowercase();
        }
        ident.quote_style = Some('"');
    }
    impl VisitorMut for Fold {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
            match expr {
                Expr::Identifier(ident) => fold(ident),
                Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(fold),
                Expr::Function(function) => {
                    for part in function.name.0.iter_mut() {
                        if let sqlparser::ast::ObjectNamePart::Identifier(ident) = part {
                            fold(ident);
                        }
                    }
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut folded = expr.clone();
    let _ = VisitMut::visit(&mut folded, &mut Fold);
    folded.to_string()
}

/// A bound parameter's value as a literal of the final query.
fn parameter_literal(placeholder: &str, params: &[Value]) -> Result<Expr, SqlError> {
    let value = placeholder
        .strip_prefix('$')
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| params.get(i.checked_sub(1)?))
        .ok_or_else(|| SqlError::Syntax(format!("there is no parameter {placeholder}")))?;
    let literal = match value {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Number(i.to_string(), false),
        Value::Real(f) if f.is_finite() => SqlValue::Number(format!("{f:?}"), false),
        Value::Text(t) => SqlValue::SingleQuotedString(t.clone()),
        Value::Real(_) | Value::Blob(_) => {
            return Err(unsupported(format!(
                "parameter {placeholder} (a non-finite or binary value) outside aggregates over several shards"
            )));
        }
    };
    Ok(Expr::value(literal))
}

impl Lift<'_> {
    fn partial(&mut self, sql: String) -> String {
        let index = match self.partials.iter().position(|p| *p == sql) {
            Some(i) => i,
            None => {
                self.partials.push(sql);
                self.partials.len() - 1
            }
        };
        format!("_p{index}")
    }

    /// The `_merge` column of a GROUP BY expression. (A DISTINCT aggregate's argument is a
    /// column of the shard rows too, but only that aggregate reads it: outside it, its
    /// value per group is not defined.)
    fn group_column(&mut self, text: &str) -> Option<String> {
        self.groups
            .iter()
            .position(|g| g == text)
            .map(|i| format!("_g{i}"))
    }

    /// The final-query replacement of an aggregate call.
    fn aggregate(&mut self, function: &sqlparser::ast::Function) -> Result<String, SqlError> {
        let name = function.name.to_string().to_ascii_lowercase();
        if !COMBINED.contains(&name.as_str()) {
            return Err(SqlError::Unsupported(format!(
                "aggregate {name} is not supported across shards: only {} are combined from each shard's partial results",
                COMBINED.join(", ")
            )));
        }
        let (distinct, argument) = match &function.args {
            FunctionArguments::List(list) => {
                let distinct = matches!(
                    list.duplicate_treatment,
                    Some(sqlparser::ast::DuplicateTreatment::Distinct)
                );
                if !list.clauses.is_empty() {
                    return Err(unsupported(format!("{function}")));
                }
                let argument = match list.args.as_slice() {
                    [] => None,
                    [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => None,
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Some(e.clone()),
                    _ => return Err(unsupported(format!("{function}"))),
                };
                (distinct, argument)
            }
            FunctionArguments::None => (false, None),
            FunctionArguments::Subquery(_) => return Err(unsupported(format!("{function}"))),
        };
        if distinct && function.filter.is_some() {
            return Err(SqlError::Unsupported(format!(
                "{function} is not supported across shards: an aggregate with both DISTINCT and FILTER cannot be combined from the shards"
            )));
        }
        if !function.within_group.is_empty() {
            return Err(unsupported(format!("{function}")));
        }
        // A FILTER applies to the partial aggregates, on the shards.
        let filter = function
            .filter
            .as_ref()
            .map(|f| format!(" FILTER (WHERE {f})"))
            .unwrap_or_default();
        if distinct {
            // Each shard returns the distinct values per group; the final query aggregates
            // them once.
            let Some(argument) = argument else {
                return Err(unsupported(format!("{function}")));
            };
            let text = argument.to_string();
            let index = match self.distinct_groups.iter().position(|g| *g == text) {
                Some(i) => i,
                None => {
                    self.distinct_groups.push(text);
                    self.distinct_groups.len() - 1
                }
            };
            return match name.as_str() {
                "count" | "sum" | "min" | "max" | "avg" | "total" => {
                    Ok(format!("{name}(DISTINCT _d{index})"))
                }
                _ => Err(unsupported(format!("{function}"))),
            };
        }
        let argument = argument.map(|a| a.to_string());
        let over = |f: &str| match &argument {
            Some(a) => format!("{f}({a}){filter}"),
            None => format!("{f}(*){filter}"),
        };
        Ok(match name.as_str() {
            "count" => format!("coalesce(sum({}), 0)", self.partial(over("count"))),
            "sum" => format!("sum({})", self.partial(over("sum"))),
            "total" => format!("total({})", self.partial(over("total"))),
            "min" => format!("min({})", self.partial(over("min"))),
            "max" => format!("max({})", self.partial(over("max"))),
            "avg" => {
                let sum = self.partial(over("sum"));
                let count = self.partial(over("count"));
                format!("(CAST(sum({sum}) AS DOUBLE PRECISION) / nullif(sum({count}), 0))")
            }
            _ => return Err(unsupported(format!("aggregate {name}"))),
        })
    }

    fn lift(&mut self, expr: &Expr) -> Result<String, SqlError> {
        let mut lifted = expr.clone();
        let _ = VisitMut::visit(&mut lifted, self);
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        // What is left must not read a column outside the groups.
        struct Columns(Vec<String>);
        impl Visitor for Columns {
            type Break = ();
            fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
                match expr {
                    Expr::Identifier(ident) => self.0.push(ident.value.clone()),
                    Expr::CompoundIdentifier(parts) => self.0.push(
                        parts
                            .iter()
                            .map(|p| p.value.as_str())
                            .collect::<Vec<_>>()
                            .join("."),
                    ),
                    _ => {}
                }
                std::ops::ControlFlow::Continue(())
            }
        }
        let mut columns = Columns(Vec::new());
        let _ = lifted.visit(&mut columns);
        let placeholder = |c: &str, prefix: &str| {
            c.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if let Some(column) = columns
            .0
            .iter()
            .find(|c| !(placeholder(c, "_g") || placeholder(c, "_agg")))
        {
            return Err(SqlError::Syntax(format!(
                "column \"{column}\" must appear in the GROUP BY clause or be used in an aggregate function"
            )));
        }
        // Placeholders are replaced last to first, so `_agg1` never matches inside `_agg10`.
        let mut text = lifted.to_string();
        for (i, replacement) in self.replacements.iter().enumerate().rev() {
            text = text.replace(&format!("_agg{i}"), replacement);
        }
        Ok(text)
    }
}

impl VisitorMut for Lift<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
        if let Some(column) = self.group_column(&match_key(expr)) {
            *expr = Expr::Identifier(Ident::new(column));
            return std::ops::ControlFlow::Continue(());
        }
        if let Expr::Function(function) = expr
            && is_aggregate(function)
        {
            match self.aggregate(function) {
                Ok(text) => {
                    *expr =
                        Expr::Identifier(Ident::new(format!("_agg{}", self.replacements.len())));
                    self.replacements.push(text);
                }
                Err(e) => {
                    self.error = Some(e);
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        if let Expr::Value(v) = expr
            && let SqlValue::Placeholder(p) = &v.value
        {
            match parameter_literal(p, self.params) {
                Ok(literal) => *expr = literal,
                Err(e) => {
                    self.error = Some(e);
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// The select items' expressions and aliases (no wildcards).
fn select_items(projection: &[SelectItem]) -> Option<Vec<(Expr, Option<String>)>> {
    projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some((e.clone(), None)),
            SelectItem::ExprWithAlias { expr, alias } => {
                Some((expr.clone(), Some(alias.value.clone())))
            }
            _ => None,
        })
        .collect()
}

/// An ORDER BY or GROUP BY term that names a select item by position or alias.
fn resolve_item(expr: &Expr, items: &[(Expr, Option<String>)]) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n
                .parse::<usize>()
                .ok()
                .and_then(|i| i.checked_sub(1))
                .filter(|i| *i < items.len()),
            _ => None,
        },
        Expr::Identifier(ident) => items.iter().position(|(_, alias)| {
            alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&ident.value))
        }),
        _ => None,
    }
}

/// An ORDER BY name that is the output name of one unaliased select item (`city` for
/// `u.city`), as PostgreSQL resolves it.
fn output_name(expr: &Expr, items: &[(Expr, Option<String>)]) -> Option<usize> {
    let Expr::Identifier(ident) = expr else {
        return None;
    };
    let named: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (item, alias))| {
            alias.is_none()
                && match item {
                    Expr::Identifier(i) => i.value == ident.value,
                    Expr::CompoundIdentifier(parts) => {
                        parts.last().is_some_and(|p| p.value == ident.value)
                    }
                    _ => false,
                }
        })
        .map(|(i, _)| i)
        .collect();
    match named.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// `u.city AS city` grouped by `city`: the alias and the column are one.
fn is_same_column(term: &Expr, item: &Expr) -> bool {
    let Expr::Identifier(name) = term else {
        return false;
    };
    let column = match item {
        Expr::Identifier(i) => Some(i),
        Expr::CompoundIdentifier(parts) => parts.last(),
        _ => None,
    };
    column.is_some_and(|c| c.value.eq_ignore_ascii_case(&name.value))
}

/// Whether a GROUP BY name that is also an output alias means the input column instead: an
/// input column of that name exists (and is not the aliased item itself).
fn alias_yields_to_column(
    term: &Expr,
    item: &Expr,
    is_input_column: &dyn Fn(&str) -> bool,
) -> bool {
    if shadows_column(term, item) {
        return true;
    }
    let Expr::Identifier(name) = term else {
        return false;
    };
    is_input_column(&name.value) && !is_same_column(term, item)
}

/// Whether a GROUP BY name that is also an output alias names an input column: the aliased
/// expression reads a column of that name.
fn shadows_column(term: &Expr, item: &Expr) -> bool {
    let Expr::Identifier(name) = term else {
        return false;
    };
    if is_same_column(term, item) {
        return false;
    }
    struct Reads<'a>(&'a str, bool);
    impl Visitor for Reads<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
            let column = match expr {
                Expr::Identifier(i) => Some(i),
                Expr::CompoundIdentifier(parts) => parts.last(),
                _ => None,
            };
            if column.is_some_and(|c| c.value.eq_ignore_ascii_case(self.0)) {
                self.1 = true;
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut reads = Reads(&name.value, false);
    let _ = item.visit(&mut reads);
    reads.1
}

/// The names that qualify a column of the only table in a FROM list without joins (its
/// alias, or its name).
fn single_table_qualifiers(from: &[sqlparser::ast::TableWithJoins]) -> Option<Vec<String>> {
    let [table] = from else {
        return None;
    };
    if !table.joins.is_empty() {
        return None;
    }
    match &table.relation {
        sqlparser::ast::TableFactor::Table { name, alias, .. } => Some(match alias {
            Some(alias) => vec![alias.name.value.clone()],
            None => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.clone())
                .into_iter()
                .collect(),
        }),
        _ => None,
    }
}

/// Rewrites `q.column` to `column` for the qualifiers of the only table, outside subqueries.
struct Unqualify<'a> {
    qualifiers: &'a [String],
    depth: usize,
}

impl VisitorMut for Unqualify<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, _: &mut Query) -> std::ops::ControlFlow<()> {
        self.depth += 1;
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut Query) -> std::ops::ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
        if self.depth == 0
            && let Expr::CompoundIdentifier(parts) = expr
            && let [qualifier, column] = parts.as_slice()
            && self.qualifiers.iter().any(|q| {
                if qualifier.quote_style.is_some() {
                    *q == qualifier.value
                } else {
                    q.eq_ignore_ascii_case(&qualifier.value)
                }
            })
        {
            *expr = Expr::Identifier(column.clone());
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// An ORDER BY term that is a select-list position (an integer literal).
fn position(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse::<usize>().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn position_error(position: usize) -> SqlError {
    SqlError::Syntax(format!(
        "ORDER BY position {position} is not in select list"
    ))
}

impl MergePlan {
    /// `is_input_column` says whether a bare name is a column of the query's tables (in GROUP
    /// BY it then wins over an output alias of the same name, as in PostgreSQL).
    pub fn for_plan(
        plan: &Plan,
        params: &[Value],
        is_input_column: &dyn Fn(&str) -> bool,
    ) -> Result<MergePlan, SqlError> {
        let Some(Statement::Query(query)) = plan.statement.as_deref() else {
            return Ok(MergePlan::Concatenate);
        };
        Self::for_query(query, params, is_input_column)
    }

    fn for_query(
        query: &Query,
        params: &[Value],
        is_input_column: &dyn Fn(&str) -> bool,
    ) -> Result<MergePlan, SqlError> {
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(unsupported("a set operation over a sharded table"));
        };
        if query.with.is_some() {
            return Err(unsupported("WITH over a sharded table"));
        }
        if query.fetch.is_some() || !query.locks.is_empty() {
            return Err(unsupported(
                "FETCH FIRST or a locking clause (FOR UPDATE/SHARE) over a sharded table",
            ));
        }
        if matches!(select.distinct, Some(Distinct::On(_))) {
            return Err(unsupported("DISTINCT ON"));
        }
        let group_by = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
            _ => return Err(unsupported("this GROUP BY form")),
        };
        if group_by
            .iter()
            .any(|g| matches!(g, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)))
        {
            return Err(unsupported("GROUP BY ROLLUP, CUBE or GROUPING SETS"));
        }
        let mut aggregated = !group_by.is_empty() || select.having.is_some();
        for item in &select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => continue,
            };
            aggregated |= has_aggregate(expr)?;
        }
        let order: Vec<&sqlparser::ast::OrderByExpr> = match &query.order_by {
            None => Vec::new(),
            Some(order_by) => match &order_by.kind {
                OrderByKind::Expressions(terms) => terms.iter().collect(),
                OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL")),
            },
        };
        for term in &order {
            if has_aggregate(&term.expr)? {
                aggregated = true;
            }
        }
        let (limit, offset) = match &query.limit_clause {
            None => (None, 0),
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) if limit_by.is_empty() => (
                limit
                    .as_ref()
                    .map(|l| count_value(l, params))
                    .transpose()?
                    .flatten(),
                offset
                    .as_ref()
                    .map(|o| count_value(&o.value, params))
                    .transpose()?
                    .flatten()
                    .unwrap_or(0),
            ),
            Some(other) => return Err(unsupported(format!("LIMIT form {other}"))),
        };
        let distinct = select.distinct.is_some();
        if !aggregated && order.is_empty() && limit.is_none() && offset == 0 && !distinct {
            return Ok(MergePlan::Concatenate);
        }
        let from = select
            .from
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let filter = select
            .selection
            .as_ref()
            .map(|w| format!(" WHERE {w}"))
            .unwrap_or_default();
        let direction = |term: &sqlparser::ast::OrderByExpr| {
            (
                matches!(term.options.sort, Some(sqlparser::ast::OrderBySort::Desc)),
                term.options.nulls_first,
            )
        };
        if !aggregated {
            // The client's columns, then each ORDER BY term as a hidden column.
            let items = select_items(&select.projection);
            let mut hidden = Vec::new();
            let mut terms = Vec::new();
            for term in &order {
                let (descending, nulls_first) = direction(term);
                let expr = match items
                    .as_deref()
                    .and_then(|items| resolve_item(&term.expr, items).map(|i| &items[i].0))
                {
                    Some(item) => item.clone(),
                    None => match (position(&term.expr), &items) {
                        (Some(p), Some(_)) => return Err(position_error(p)),
                        // A position beside `*`: the shards order by it, the final query by
                        // the column it names.
                        (Some(0), None) => return Err(position_error(0)),
                        (Some(p), None) => {
                            terms.push(OrderTerm {
                                expr: format!("_c{}", p.saturating_sub(1)),
                                shard_expr: p.to_string(),
                                position: Some(p),
                                descending,
                                nulls_first,
                            });
                            continue;
                        }
                        (None, _) => term.expr.clone(),
                    },
                };
                let column = format!("_h{}", hidden.len());
                hidden.push(format!("{expr} AS {column}"));
                terms.push(OrderTerm {
                    expr: column.clone(),
                    shard_expr: column,
                    position: None,
                    descending,
                    nulls_first,
                });
            }
            let projection = select
                .projection
                .iter()
                .map(|i| i.to_string())
                .chain(hidden.iter().cloned())
                .collect::<Vec<_>>()
                .join(", ");
            let shard_order = if terms.is_empty() {
                String::new()
            } else {
                format!(
                    " ORDER BY {}",
                    terms
                        .iter()
                        .map(OrderTerm::shard_sql)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            // Each shard's first `limit + offset` rows hold the answer's; beyond SQLite's
            // largest integer, every row.
            let shard_limit = limit
                .and_then(|l| l.checked_add(offset))
                .filter(|n| *n <= i64::MAX as u64)
                .map(|n| format!(" LIMIT {n}"))
                .unwrap_or_default();
            let shard_sql = format!(
                "SELECT {}{projection} FROM {from}{filter}{shard_order}{shard_limit}",
                if distinct { "DISTINCT " } else { "" }
            );
            return Ok(MergePlan::Staged(Staged {
                shard_sql,
                hidden: hidden.len(),
                named_columns: None,
                distinct,
                order: terms,
                limit,
                offset,
                aggregate: None,
            }));
        }
        let mut items = select_items(&select.projection)
            .ok_or_else(|| unsupported("* with aggregates or GROUP BY"))?;
        let mut group_by = group_by;
        let mut having = select.having.clone();
        let mut order_exprs: Vec<Expr> = order.iter().map(|t| t.expr.clone()).collect();
        // Over one table, `u.city` and `city` are the same column: written one way in GROUP
        // BY and the other in the select list, they must still match.
        if let Some(qualifiers) = single_table_qualifiers(&select.from) {
            for expr in items
                .iter_mut()
                .map(|(e, _)| e)
                .chain(group_by.iter_mut())
                .chain(having.iter_mut())
                .chain(order_exprs.iter_mut())
            {
                let _ = VisitMut::visit(
                    expr,
                    &mut Unqualify {
                        qualifiers: &qualifiers,
                        depth: 0,
                    },
                );
            }
        }
        let groups: Vec<&Expr> = group_by
            .iter()
            .map(|g| match resolve_item(g, &items) {
                // In GROUP BY an input column wins over an output alias of the same name
                // (`age / 10 AS age ... GROUP BY age` groups by the column age).
                Some(i) if !alias_yields_to_column(g, &items[i].0, is_input_column) => &items[i].0,
                _ => g,
            })
            .collect();
        let group_keys: Vec<String> = groups.iter().map(|g| match_key(g)).collect();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let mut lift = Lift {
            groups: &group_keys,
            partials: Vec::new(),
            distinct_groups: Vec::new(),
            replacements: Vec::new(),
            params,
            error: None,
        };
        let final_items: Vec<String> = items
            .iter()
            .map(|(expr, alias)| {
                lift.lift(expr).map(|text| match alias {
                    Some(a) => format!("{text} AS \"{}\"", a.replace('"', "\"\"")),
                    None => text,
                })
            })
            .collect::<Result<_, _>>()?;
        let having = having.as_ref().map(|h| lift.lift(h)).transpose()?;
        let mut terms = Vec::new();
        for (term, term_expr) in order.iter().zip(&order_exprs) {
            let item = resolve_item(term_expr, &items).or_else(|| output_name(term_expr, &items));
            let expr = match item {
                Some(i) => lift.lift(&items[i].0)?,
                None => match position(term_expr) {
                    Some(p) => return Err(position_error(p)),
                    None => lift.lift(term_expr)?,
                },
            };
            let (descending, nulls_first) = direction(term);
            terms.push(OrderTerm {
                shard_expr: expr.clone(),
                expr,
                position: None,
                descending,
                nulls_first,
            });
        }
        let mut shard_items = Vec::new();
        let mut columns = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            shard_items.push(format!("{group} AS _g{i}"));
            columns.push(format!("_g{i}"));
        }
        for (i, value) in lift.distinct_groups.iter().enumerate() {
            shard_items.push(format!("{value} AS _d{i}"));
            columns.push(format!("_d{i}"));
        }
        for (i, partial) in lift.partials.iter().enumerate() {
            shard_items.push(format!("{partial} AS _p{i}"));
            columns.push(format!("_p{i}"));
        }
        if shard_items.is_empty() {
            shard_items.push("1 AS _p0".into());
            columns.push("_p0".into());
        }
        let shard_groups: Vec<&String> = groups.iter().chain(&lift.distinct_groups).collect();
        let group_clause = if shard_groups.is_empty() {
            String::new()
        } else {
            format!(
                " GROUP BY {}",
                shard_groups
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let shard_sql = format!(
            "SELECT {} FROM {from}{filter}{group_clause}",
            shard_items.join(", ")
        );
        Ok(MergePlan::Staged(Staged {
            shard_sql,
            hidden: 0,
            named_columns: Some(columns),
            distinct,
            order: terms,
            limit,
            offset,
            aggregate: Some(FinalAggregate {
                items: final_items,
                group_by: (0..groups.len()).map(|i| format!("_g{i}")).collect(),
                having,
            }),
        }))
    }
}

/// The column affinity SQLite gives a declared type (its rules, in their order), as a type
/// name with that affinity; `None` for no affinity (BLOB or no type).
fn affinity(declared: &str) -> Option<&'static str> {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Some("INTEGER")
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Some("TEXT")
    } else if t.contains("BLOB") || t.trim().is_empty() {
        None
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Some("REAL")
    } else {
        Some("NUMERIC")
    }
}

impl Staged {
    /// Whether the client's result columns must be described separately (the shard query's
    /// columns are partial aggregates, not the client's).
    pub fn aggregates(&self) -> bool {
        self.aggregate.is_some()
    }

    /// The final query over `_merge`, whose shard rows have `width` columns.
    fn final_sql(&self, width: usize) -> Result<String, SqlError> {
        let visible = width.saturating_sub(self.hidden);
        if let Some(p) = self
            .order
            .iter()
            .filter_map(|t| t.position)
            .find(|p| *p > visible)
        {
            return Err(position_error(p));
        }
        let order = if self.order.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                self.order
                    .iter()
                    .map(OrderTerm::sql)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let limit = match (self.limit, self.offset) {
            (Some(l), o) => format!(" LIMIT {l} OFFSET {o}"),
            (None, 0) => String::new(),
            (None, o) => format!(" LIMIT -1 OFFSET {o}"),
        };
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        match &self.aggregate {
            Some(aggregate) => {
                let group = if aggregate.group_by.is_empty() {
                    String::new()
                } else {
                    format!(" GROUP BY {}", aggregate.group_by.join(", "))
                };
                let having = aggregate
                    .having
                    .as_ref()
                    .map(|h| format!(" HAVING {h}"))
                    .unwrap_or_default();
                Ok(format!(
                    "SELECT {distinct}{} FROM _merge{group}{having}{order}{limit}",
                    aggregate.items.join(", ")
                ))
            }
            None => {
                let columns: Vec<String> = (0..visible).map(|i| format!("_c{i}")).collect();
                Ok(format!(
                    "SELECT {distinct}{} FROM _merge{order}{limit}",
                    columns.join(", ")
                ))
            }
        }
    }

    /// Column names of `_merge` for shard rows `width` wide.
    fn merge_columns(&self, width: usize) -> Vec<String> {
        match &self.named_columns {
            Some(names) => names.clone(),
            None => {
                let visible = width.saturating_sub(self.hidden);
                (0..visible)
                    .map(|i| format!("_c{i}"))
                    .chain((0..self.hidden).map(|i| format!("_h{i}")))
                    .collect()
            }
        }
    }

    /// Loads the shard rows into an in-memory `_merge` table and runs the final query, whose
    /// PostgreSQL text `rewrite` turns into SQLite's.
    /// `conn` is an empty in-memory database with shardgate's SQL functions
    /// (`storage::open_scratch`).
    pub fn merge(
        &self,
        conn: rusqlite::Connection,
        outputs: Vec<ExecOutput>,
        rewrite: impl Fn(&str) -> Result<String, SqlError>,
    ) -> Result<ExecOutput, SqlError> {
        let width = outputs.first().map_or(0, |o| o.columns.len());
        let columns = self.merge_columns(width);
        let final_sql = rewrite(&self.final_sql(width)?)?;
        let internal = |e: rusqlite::Error| {
            SqlError::Unsupported(format!("merging shard results failed: {e}"))
        };
        // Each column keeps the declared type (so the affinity) the shards' column has: a
        // group `age` compares with '50' as the number 50, as it does on one shard.
        let declared: Vec<Option<String>> = outputs.first().map_or_else(Vec::new, |o| {
            o.columns.iter().map(|c| c.decltype.clone()).collect()
        });
        let quoted: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                match declared
                    .get(i)
                    .and_then(|t| t.as_deref())
                    .and_then(affinity)
                {
                    Some(t) => format!("\"{c}\" {t}"),
                    None => format!("\"{c}\""),
                }
            })
            .collect();
        conn.execute_batch(&format!("CREATE TABLE _merge ({})", quoted.join(", ")))
            .map_err(internal)?;
        let mut origins = Vec::new();
        {
            let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            let mut insert = conn
                .prepare(&format!(
                    "INSERT INTO _merge VALUES ({})",
                    placeholders.join(", ")
                ))
                .map_err(internal)?;
            for output in outputs {
                if origins.is_empty() {
                    origins = output.columns;
                }
                for row in output.rows {
                    insert
                        .execute(rusqlite::params_from_iter(row.iter()))
                        .map_err(internal)?;
                }
            }
        }
        let mut stmt = conn.prepare(&final_sql).map_err(internal)?;
        let result_width = stmt.column_count();
        let mut rows = Vec::new();
        let mut cursor = stmt.query([]).map_err(internal)?;
        while let Some(row) = cursor.next().map_err(internal)? {
            rows.push(
                (0..result_width)
                    .map(|i| row.get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(internal)?,
            );
        }
        origins.truncate(result_width);
        Ok(ExecOutput {
            columns: origins,
            changes: rows.len() as u64,
            rows,
            lsn: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;
    use crate::storage::ColumnOrigin;

    fn plan(sql: &str, params: &[Value]) -> Result<MergePlan, SqlError> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        let Statement::Query(query) = statement else {
            panic!("not a query: {sql}");
        };
        MergePlan::for_query(&query, params, &|name| {
            ["id", "name", "age", "city", "score", "user_id", "total"]
                .contains(&name.to_ascii_lowercase().as_str())
        })
    }

    fn staged(sql: &str, params: &[Value]) -> Staged {
        match plan(sql, params) {
            Ok(MergePlan::Staged(staged)) => staged,
            Ok(MergePlan::Concatenate) => panic!("{sql}: concatenated"),
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// One shard's output: columns with their declared types, and rows.
    fn output(columns: &[Option<&str>], rows: Vec<Vec<Value>>) -> ExecOutput {
        ExecOutput {
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, decltype)| ColumnOrigin {
                    name: format!("c{i}"),
                    decltype: decltype.map(str::to_string),
                    table: None,
                    column: None,
                })
                .collect(),
            rows,
            changes: 0,
            lsn: None,
        }
    }

    /// The final query is PostgreSQL text; these tests use only SQL SQLite reads as it is.
    fn merge(staged: &Staged, outputs: Vec<ExecOutput>) -> Result<Vec<Vec<Value>>, SqlError> {
        let settings = crate::storage::ConnectionSettings::new(
            &crate::config::Config::parse(crate::config::EMBEDDED_DEFAULT, &Default::default())
                .unwrap(),
        );
        let scratch = crate::storage::open_scratch(&settings).unwrap();
        staged
            .merge(scratch, outputs, |sql| Ok(sql.to_string()))
            .map(|o| o.rows)
    }

    fn int(i: i64) -> Value {
        Value::Integer(i)
    }

    fn text(t: &str) -> Value {
        Value::Text(t.into())
    }

    #[test]
    fn having_compares_a_group_column_with_its_declared_affinity() {
        let staged = staged(
            "SELECT age, count(*) FROM users GROUP BY age HAVING age > '50' ORDER BY age",
            &[],
        );
        let rows = merge(
            &staged,
            vec![
                output(
                    &[Some("INTEGER"), None],
                    vec![vec![int(51), int(2)], vec![int(40), int(1)]],
                ),
                output(
                    &[Some("INTEGER"), None],
                    vec![vec![int(51), int(1)], vec![int(60), int(1)]],
                ),
            ],
        )
        .expect("merges");
        assert_eq!(rows, [vec![int(51), int(3)], vec![int(60), int(1)]]);
    }

    #[test]
    fn like_over_groups_is_case_sensitive() {
        let staged = staged(
            "SELECT city, count(*) FROM users GROUP BY city HAVING city LIKE 'P%'",
            &[],
        );
        let rows = merge(
            &staged,
            vec![
                output(&[Some("TEXT"), None], vec![vec![text("Paris"), int(1)]]),
                output(&[Some("TEXT"), None], vec![vec![text("paris"), int(4)]]),
            ],
        )
        .expect("merges");
        assert_eq!(rows, [vec![text("Paris"), int(1)]]);
    }

    #[test]
    fn parameters_outside_aggregates_become_literals_of_the_final_query() {
        let staged = staged(
            "SELECT city, count(*) + $3 FROM users WHERE age > $2 GROUP BY city HAVING count(*) > $1 AND city <> $4",
            &[int(1), int(30), int(100), text("Oslo")],
        );
        assert!(
            staged.shard_sql.contains("age > $2"),
            "{}",
            staged.shard_sql
        );
        let final_sql = staged.final_sql(2).expect("final query");
        assert!(!final_sql.contains('$'), "{final_sql}");
        assert!(final_sql.contains("+ 100"), "{final_sql}");
        assert!(final_sql.contains("> 1 AND _g0 <> 'Oslo'"), "{final_sql}");
    }

    #[test]
    fn order_by_a_position_beside_a_wildcard() {
        let staged = staged("SELECT * FROM users ORDER BY 2 DESC, 1 LIMIT 2", &[]);
        assert!(
            staged.shard_sql.ends_with("ORDER BY 2 DESC, 1 LIMIT 2"),
            "{}",
            staged.shard_sql
        );
        let rows = merge(
            &staged,
            vec![
                output(
                    &[None, None],
                    vec![vec![int(1), text("b")], vec![int(3), text("a")]],
                ),
                output(
                    &[None, None],
                    vec![vec![int(2), text("b")], vec![int(4), text("c")]],
                ),
            ],
        )
        .expect("merges");
        assert_eq!(rows, [vec![int(4), text("c")], vec![int(1), text("b")]]);
        // The shards return fewer columns than the position names.
        assert_eq!(
            staged.final_sql(1),
            Err(SqlError::Syntax(
                "ORDER BY position 2 is not in select list".into()
            ))
        );
        assert!(plan("SELECT * FROM users ORDER BY 0", &[]).is_err());
        assert!(plan("SELECT id FROM users ORDER BY 2", &[]).is_err());
    }

    #[test]
    fn limit_null_and_the_largest_limits() {
        let staged_null = staged("SELECT id FROM users ORDER BY id LIMIT NULL OFFSET 2", &[]);
        assert!(
            !staged_null.shard_sql.contains("LIMIT"),
            "{}",
            staged_null.shard_sql
        );
        assert!(
            staged_null
                .final_sql(1)
                .expect("final")
                .ends_with("LIMIT -1 OFFSET 2")
        );
        let staged_max = staged(
            "SELECT id FROM users ORDER BY id LIMIT 9223372036854775807 OFFSET 5",
            &[],
        );
        assert!(
            !staged_max.shard_sql.contains("LIMIT"),
            "{}",
            staged_max.shard_sql
        );
        let param = staged("SELECT id FROM users ORDER BY id LIMIT $1", &[Value::Null]);
        assert!(!param.shard_sql.contains("LIMIT"), "{}", param.shard_sql);
        assert!(matches!(
            plan(
                "SELECT id FROM users ORDER BY id LIMIT 9223372036854775808",
                &[]
            ),
            Err(SqlError::OutOfRange(_))
        ));
    }

    #[test]
    fn group_expressions_match_however_their_columns_are_written() {
        for sql in [
            "SELECT u.city, count(*) FROM users u GROUP BY city ORDER BY city",
            "SELECT city, count(*) FROM users u GROUP BY u.city ORDER BY u.city",
            "SELECT City, COUNT(*) FROM users GROUP BY \"city\"",
            "SELECT UPPER(city), count(*) FROM users GROUP BY upper(City)",
            "SELECT u.city, o.status, count(*) FROM users u JOIN orders o ON u.id = o.user_id GROUP BY u.city, o.status ORDER BY city, status",
            "SELECT u.city AS city, count(*) FROM users u JOIN orders o ON u.id = o.user_id GROUP BY city ORDER BY city",
        ] {
            staged(sql, &[]);
        }
        assert!(plan(
            "SELECT u.name, count(*) FROM users u JOIN orders o ON u.id = o.user_id GROUP BY name",
            &[]
        )
        .is_err());
    }

    #[test]
    fn an_alias_shadowing_an_input_column_groups_by_the_column() {
        let shadowing = staged(
            "SELECT age / 10 AS age, count(*) FROM users GROUP BY age",
            &[],
        );
        assert!(
            shadowing.shard_sql.ends_with("GROUP BY age"),
            "{}",
            shadowing.shard_sql
        );
        let alias = staged(
            "SELECT age / 10 AS decade, count(*) FROM users GROUP BY decade",
            &[],
        );
        assert!(
            alias.shard_sql.ends_with("GROUP BY age / 10"),
            "{}",
            alias.shard_sql
        );
    }

    #[test]
    fn filter_clauses_apply_to_the_partial_aggregates() {
        let staged = staged(
            "SELECT count(*) FILTER (WHERE age > 10), avg(score) FILTER (WHERE age > $1) FROM users",
            &[int(5)],
        );
        assert!(
            staged
                .shard_sql
                .contains("count(*) FILTER (WHERE age > 10) AS _p0"),
            "{}",
            staged.shard_sql
        );
        assert!(
            staged
                .shard_sql
                .contains("sum(score) FILTER (WHERE age > $1) AS _p1"),
            "{}",
            staged.shard_sql
        );
        assert!(matches!(
            plan(
                "SELECT count(DISTINCT city) FILTER (WHERE age > 1) FROM users",
                &[]
            ),
            Err(SqlError::Unsupported(_))
        ));
    }

    #[test]
    fn a_distinct_argument_is_not_a_group() {
        assert!(matches!(
            plan("SELECT count(DISTINCT age), age FROM users", &[]),
            Err(SqlError::Syntax(_))
        ));
    }

    #[test]
    fn random_is_postgresql_random_in_the_final_query() {
        let staged = staged("SELECT city, random() < 1 FROM users GROUP BY city", &[]);
        let rows = merge(
            &staged,
            (0..4)
                .map(|i| output(&[Some("TEXT")], vec![vec![text(&format!("c{i}"))]]))
                .collect(),
        )
        .expect("merges");
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r[1] == int(1)), "{rows:?}");
    }

    #[test]
    fn aggregates_that_do_not_combine_say_so() {
        assert_eq!(
            plan("SELECT string_agg(name, ',') FROM users", &[]).err(),
            Some(SqlError::Unsupported(
                "aggregate string_agg is not supported across shards: only count, sum, min, max, avg, total are combined from each shard's partial results".into()
            ))
        );
        assert!(matches!(
            plan(
                "SELECT city, count(*) FROM users GROUP BY ROLLUP (city)",
                &[]
            ),
            Err(SqlError::Unsupported(_))
        ));
    }
}
