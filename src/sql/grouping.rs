//! PostgreSQL's grouping rule: in a grouped query (one with GROUP BY, HAVING or an aggregate),
//! a column outside every aggregate must be grouped, or belong to a table whose primary key is
//! grouped (it is then determined by the group). SQLite answers such a query with the value of
//! an arbitrary row of the group ("bare columns"); shardgate refuses it as PostgreSQL does
//! (`42803`), whether the query runs on one shard or is merged from several.
//!
//! Columns are resolved against the plain tables of the query's own FROM list; a column that
//! does not resolve there (an outer query's column, a derived table's) is left to SQLite.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, GroupByExpr, Ident, ObjectNamePart, OrderByKind, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, Value as SqlValue, Visit,
    VisitMut, Visitor, VisitorMut,
};

use super::error::SqlError;
use super::rewrite::name_text;
use crate::storage::Schema;

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

/// Whether a call is an aggregate (not a window function, not SQLite's scalar min/max).
pub(crate) fn is_aggregate(function: &sqlparser::ast::Function) -> bool {
    let name = function.name.to_string().to_ascii_lowercase();
    let arguments = match &function.args {
        sqlparser::ast::FunctionArguments::List(list) => list.args.len(),
        _ => 0,
    };
    // min/max with several arguments are SQLite's scalar functions, not aggregates.
    let scalar_min_max = (name == "min" || name == "max") && arguments > 1;
    function.over.is_none() && AGGREGATES.contains(&name.as_str()) && !scalar_min_max
}

/// The text an expression is matched by against GROUP BY expressions: identifiers and
/// function names folded as PostgreSQL folds them (`City`, `city` and `"city"` are one
/// column).
pub(crate) fn match_key(expr: &Expr) -> String {
    struct Fold;
    fn fold(ident: &mut Ident) {
        if ident.quote_style.is_none() {
            ident.value = ident.value.to_ascii_lowercase();
        }
        ident.quote_style = Some('"');
    }
    impl VisitorMut for Fold {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(ident) => fold(ident),
                Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(fold),
                Expr::Function(function) => {
                    for part in function.name.0.iter_mut() {
                        if let ObjectNamePart::Identifier(ident) = part {
                            fold(ident);
                        }
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut folded = expr.clone();
    let _ = VisitMut::visit(&mut folded, &mut Fold);
    folded.to_string()
}

/// An ORDER BY or GROUP BY term that names a select item by position or alias.
pub(crate) fn resolve_item(expr: &Expr, items: &[(Expr, Option<String>)]) -> Option<usize> {
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

/// Checks every SELECT of a statement (subqueries included).
pub(crate) fn check_statement(stmt: &Statement, schema: &Schema) -> Result<(), SqlError> {
    struct Queries<'a> {
        schema: &'a Schema,
        error: Option<SqlError>,
    }
    impl Visitor for Queries<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Err(e) = check_body(query, &query.body, self.schema) {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut queries = Queries {
        schema,
        error: None,
    };
    let _ = stmt.visit(&mut queries);
    queries.error.map_or(Ok(()), Err)
}

fn check_body(query: &Query, body: &SetExpr, schema: &Schema) -> Result<(), SqlError> {
    match body {
        SetExpr::Select(select) => {
            // A query's ORDER BY belongs to its SELECT only when there is no set operation.
            let order = std::ptr::eq(body, query.body.as_ref()).then_some(query);
            dependent_on_key(select, order, schema).map(|_| ())
        }
        SetExpr::SetOperation { left, right, .. } => {
            check_body(query, left, schema)?;
            check_body(query, right, schema)
        }
        _ => Ok(()),
    }
}

/// Checks the grouping of `select` (with the ORDER BY of `query`, when it is the query's own
/// SELECT) and returns the columns it reads outside GROUP BY and aggregates that are allowed
/// because their table's primary key is grouped: grouping by them as well changes no group.
pub(crate) fn dependent_on_key(
    select: &Select,
    query: Option<&Query>,
    schema: &Schema,
) -> Result<Vec<Expr>, SqlError> {
    let items: Vec<(Expr, Option<String>)> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some((e.clone(), None)),
            SelectItem::ExprWithAlias { expr, alias } => {
                Some((expr.clone(), Some(alias.value.clone())))
            }
            _ => None,
        })
        .collect();
    let order: Vec<&Expr> = query
        .and_then(|q| q.order_by.as_ref())
        .map(|o| match &o.kind {
            OrderByKind::Expressions(terms) => terms.iter().map(|t| &t.expr).collect(),
            OrderByKind::All(_) => Vec::new(),
        })
        .unwrap_or_default();
    // Grouping sets name their columns in nested lists: left to SQLite (and refused across
    // shards).
    let group_by: Vec<&Expr> = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers)
            if modifiers.is_empty()
                && !exprs.iter().any(|g| {
                    matches!(g, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_))
                }) =>
        {
            exprs.iter().collect()
        }
        _ => return Ok(Vec::new()),
    };
    let aggregated = items
        .iter()
        .map(|(e, _)| e)
        .chain(select.having.iter())
        .chain(order.iter().copied())
        .any(has_own_aggregate);
    if group_by.is_empty() && select.having.is_none() && !aggregated {
        return Ok(Vec::new());
    }
    let tables = Tables::of(select, schema);
    // GROUP BY names an output column by position or alias unless an input column has that
    // name (PostgreSQL's order of resolution).
    let groups: Vec<&Expr> = group_by
        .iter()
        .map(|g| match resolve_item(g, &items) {
            Some(i) if !matches!(g, Expr::Identifier(id) if tables.has_column(&id.value)) => {
                &items[i].0
            }
            _ => *g,
        })
        .collect();
    let group_keys: Vec<String> = groups.iter().map(|g| match_key(g)).collect();
    let grouped_columns: Vec<(usize, String)> =
        groups.iter().filter_map(|g| tables.resolve(g)).collect();
    // `*` and `t.*` read every column of their tables.
    let wildcard: Vec<Expr> = select
        .projection
        .iter()
        .flat_map(|item| match item {
            SelectItem::Wildcard(_) => tables.columns(None),
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                tables.columns(Some(&name_text(name).to_ascii_lowercase()))
            }
            _ => Vec::new(),
        })
        .collect();
    let mut allowed = Vec::new();
    let checked = items
        .iter()
        .map(|(e, _)| e)
        .chain(wildcard.iter())
        .chain(select.having.iter())
        .chain(
            order
                .iter()
                .copied()
                .filter(|o| resolve_item(o, &items).is_none()),
        );
    for expr in checked {
        for column in ungrouped_columns(expr, &group_keys) {
            let Some((table, name)) = tables.resolve(&column) else {
                continue;
            };
            if grouped_columns.contains(&(table, name.clone())) {
                continue;
            }
            if tables.key_grouped(table, &grouped_columns) {
                if !allowed
                    .iter()
                    .any(|a: &Expr| match_key(a) == match_key(&column))
                {
                    allowed.push(column);
                }
                continue;
            }
            return Err(SqlError::Ungrouped(column.to_string()));
        }
    }
    Ok(allowed)
}

/// Calls `f` on `expr` and on each sub-expression of its own query, skipping subqueries
/// (their columns and aggregates belong to another query level); `f` may stop the walk.
fn visit_own_level(expr: &Expr, f: impl FnMut(&Expr) -> ControlFlow<()>) {
    struct OwnLevel<F> {
        depth: usize,
        f: F,
    }
    impl<F: FnMut(&Expr) -> ControlFlow<()>> Visitor for OwnLevel<F> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if self.depth == 0 {
                (self.f)(expr)
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    let _ = expr.visit(&mut OwnLevel { depth: 0, f });
}

/// Whether an expression calls an aggregate of its own query (not of a subquery).
fn has_own_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    visit_own_level(expr, |e| {
        if matches!(e, Expr::Function(function) if is_aggregate(function)) {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// The column references of `expr` outside aggregates, outside subqueries and outside
/// sub-expressions that are GROUP BY expressions.
fn ungrouped_columns(expr: &Expr, group_keys: &[String]) -> Vec<Expr> {
    struct Strip<'a> {
        group_keys: &'a [String],
    }
    impl VisitorMut for Strip<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let covered = self.group_keys.contains(&match_key(expr))
                || matches!(expr, Expr::Function(f) if is_aggregate(f))
                || matches!(expr, Expr::Subquery(_) | Expr::Exists { .. });
            if covered {
                *expr = Expr::value(SqlValue::Null);
            }
            ControlFlow::Continue(())
        }
    }
    let mut stripped = expr.clone();
    let _ = VisitMut::visit(&mut stripped, &mut Strip { group_keys });
    let mut columns = Vec::new();
    visit_own_level(&stripped, |e| {
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            columns.push(e.clone());
        }
        ControlFlow::Continue(())
    });
    columns
}

/// The plain tables of a FROM list: (qualifier, schema entry).
struct Tables<'a>(Vec<(String, &'a crate::storage::schema::TableInfo)>);

impl<'a> Tables<'a> {
    fn of(select: &Select, schema: &'a Schema) -> Tables<'a> {
        let mut tables = Vec::new();
        let mut add = |factor: &TableFactor| {
            if let TableFactor::Table { name, alias, .. } = factor
                && let Some(info) = schema.table(&name_text(name))
            {
                let qualifier = match alias {
                    Some(alias) => alias.name.value.to_ascii_lowercase(),
                    None => name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .map(|i| i.value.to_ascii_lowercase())
                        .unwrap_or_default(),
                };
                tables.push((qualifier, info.as_ref()));
            }
        };
        for item in &select.from {
            add(&item.relation);
            for join in &item.joins {
                add(&join.relation);
            }
        }
        Tables(tables)
    }

    /// Every column of the tables `qualifier` names (all tables for `None`), qualified.
    fn columns(&self, qualifier: Option<&str>) -> Vec<Expr> {
        self.0
            .iter()
            .filter(|(q, _)| qualifier.is_none_or(|qualifier| qualifier == q))
            .flat_map(|(q, table)| {
                table.columns.iter().map(move |c| {
                    Expr::CompoundIdentifier(vec![Ident::new(q.clone()), Ident::new(&c.name)])
                })
            })
            .collect()
    }

    fn has_column(&self, name: &str) -> bool {
        self.0.iter().any(|(_, t)| t.column(name).is_some())
    }

    /// The table (by index) and lower-case column name a column reference means, when it
    /// means exactly one.
    fn resolve(&self, expr: &Expr) -> Option<(usize, String)> {
        let (qualifier, column) = match expr {
            Expr::Identifier(ident) => (None, ident),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [.., table, column] => (Some(table.value.to_ascii_lowercase()), column),
                _ => return None,
            },
            _ => return None,
        };
        let mut matching = self.0.iter().enumerate().filter(|(_, (q, t))| {
            qualifier.as_ref().is_none_or(|qualifier| qualifier == q)
                && t.column(&column.value).is_some()
        });
        let (index, _) = matching.next()?;
        if matching.next().is_some() {
            return None;
        }
        Some((index, column.value.to_ascii_lowercase()))
    }

    /// Whether table `index` has a one-column primary key among the grouped columns.
    fn key_grouped(&self, index: usize, grouped: &[(usize, String)]) -> bool {
        let Some((_, table)) = self.0.get(index) else {
            return false;
        };
        let keys: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.as_str())
            .collect();
        matches!(keys.as_slice(), [key] if grouped.iter().any(|(t, c)| *t == index && c.eq_ignore_ascii_case(key)))
    }
}
