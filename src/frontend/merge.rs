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

/// A LIMIT or OFFSET value: a literal or a bound parameter.
fn count_value(expr: &Expr, params: &[Value]) -> Result<u64, SqlError> {
    let value = match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse::<u64>().ok(),
            SqlValue::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| params.get(i.checked_sub(1)?))
                .and_then(|v| match v {
                    Value::Integer(i) => u64::try_from(*i).ok(),
                    _ => None,
                }),
            SqlValue::Null => Some(u64::MAX),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => return count_value(expr, params),
        _ => None,
    };
    value.ok_or_else(|| unsupported(format!("LIMIT or OFFSET {expr}")))
}

/// One ORDER BY term of the final query, its expression and direction.
struct OrderTerm {
    expr: String,
    descending: bool,
    nulls_first: Option<bool>,
}

impl OrderTerm {
    fn sql(&self) -> String {
        let mut text = self.expr.clone();
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
    groups: &'a [String],
    /// Shard-query select items (text) for partial aggregates, in `_p<i>` order.
    partials: Vec<String>,
    /// DISTINCT aggregate arguments added as groups of the shard query.
    distinct_groups: Vec<String>,
    /// Final-query text of each aggregate replaced by the placeholder `_agg<i>`.
    replacements: Vec<String>,
    error: Option<SqlError>,
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

    fn group_column(&mut self, text: &str) -> Option<String> {
        if let Some(i) = self.groups.iter().position(|g| g == text) {
            return Some(format!("_g{i}"));
        }
        self.distinct_groups
            .iter()
            .position(|g| g == text)
            .map(|i| format!("_d{i}"))
    }

    /// The final-query replacement of an aggregate call.
    fn aggregate(&mut self, function: &sqlparser::ast::Function) -> Result<String, SqlError> {
        let name = function.name.to_string().to_ascii_lowercase();
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
        if function.filter.is_some() || !function.within_group.is_empty() {
            return Err(unsupported(format!("{function}")));
        }
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
            Some(a) => format!("{f}({a})"),
            None => format!("{f}(*)"),
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
                format!("(CAST(sum({sum}) AS DOUBLE PRECISION) / sum({count}))")
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
        if let Some(column) = columns
            .0
            .iter()
            .find(|c| !(c.starts_with("_g") || c.starts_with("_agg") || c.starts_with("_d")))
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
        if let Some(column) = self.group_column(&expr.to_string()) {
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

impl MergePlan {
    pub fn for_plan(plan: &Plan, params: &[Value]) -> Result<MergePlan, SqlError> {
        let Some(Statement::Query(query)) = plan.statement.as_deref() else {
            return Ok(MergePlan::Concatenate);
        };
        Self::for_query(query, params)
    }

    fn for_query(query: &Query, params: &[Value]) -> Result<MergePlan, SqlError> {
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(unsupported("a set operation over a sharded table"));
        };
        if query.with.is_some() {
            return Err(unsupported("WITH over a sharded table"));
        }
        if query.fetch.is_some() || !query.locks.is_empty() {
            return Err(unsupported("FETCH or a locking clause over several shards"));
        }
        if matches!(select.distinct, Some(Distinct::On(_))) {
            return Err(unsupported("DISTINCT ON"));
        }
        let group_by = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
            _ => return Err(unsupported("this GROUP BY form")),
        };
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
                limit.as_ref().map(|l| count_value(l, params)).transpose()?,
                offset
                    .as_ref()
                    .map(|o| count_value(&o.value, params))
                    .transpose()?
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
                let expr = match items
                    .as_deref()
                    .and_then(|items| resolve_item(&term.expr, items).map(|i| &items[i].0))
                {
                    Some(item) => item.clone(),
                    None if matches!(&term.expr, Expr::Value(_)) => {
                        return Err(unsupported("ORDER BY a position beside *"));
                    }
                    None => term.expr.clone(),
                };
                let (descending, nulls_first) = direction(term);
                terms.push(OrderTerm {
                    expr: format!("_h{}", hidden.len()),
                    descending,
                    nulls_first,
                });
                hidden.push(format!("{expr} AS _h{}", hidden.len()));
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
                        .map(OrderTerm::sql)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let shard_limit = limit
                .map(|l| format!(" LIMIT {}", l.saturating_add(offset)))
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
        let items = select_items(&select.projection)
            .ok_or_else(|| unsupported("* with aggregates or GROUP BY"))?;
        let groups: Vec<String> = group_by
            .iter()
            .map(|g| match resolve_item(g, &items) {
                Some(i) => items[i].0.to_string(),
                None => g.to_string(),
            })
            .collect();
        let mut lift = Lift {
            groups: &groups,
            partials: Vec::new(),
            distinct_groups: Vec::new(),
            replacements: Vec::new(),
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
        let having = select.having.as_ref().map(|h| lift.lift(h)).transpose()?;
        let mut terms = Vec::new();
        for term in &order {
            let expr = match resolve_item(&term.expr, &items) {
                Some(i) => lift.lift(&items[i].0)?,
                None => lift.lift(&term.expr)?,
            };
            let (descending, nulls_first) = direction(term);
            terms.push(OrderTerm {
                expr,
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

impl Staged {
    /// Whether the client's result columns must be described separately (the shard query's
    /// columns are partial aggregates, not the client's).
    pub fn aggregates(&self) -> bool {
        self.aggregate.is_some()
    }

    /// The final query over `_merge`, whose shard rows have `width` columns.
    fn final_sql(&self, width: usize) -> String {
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
                format!(
                    "SELECT {distinct}{} FROM _merge{group}{having}{order}{limit}",
                    aggregate.items.join(", ")
                )
            }
            None => {
                let visible = width.saturating_sub(self.hidden);
                let columns: Vec<String> = (0..visible).map(|i| format!("_c{i}")).collect();
                format!(
                    "SELECT {distinct}{} FROM _merge{order}{limit}",
                    columns.join(", ")
                )
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
    pub fn merge(
        &self,
        outputs: Vec<ExecOutput>,
        rewrite: impl Fn(&str) -> Result<String, SqlError>,
    ) -> Result<ExecOutput, SqlError> {
        let width = outputs.first().map_or(0, |o| o.columns.len());
        let columns = self.merge_columns(width);
        let final_sql = rewrite(&self.final_sql(width))?;
        let internal = |e: rusqlite::Error| {
            SqlError::Unsupported(format!("merging shard results failed: {e}"))
        };
        let conn = rusqlite::Connection::open_in_memory().map_err(internal)?;
        let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
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
