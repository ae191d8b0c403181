//! Merging the results of one read run on several shards, so that the client sees what one
//! database holding every row would have answered — or a clear refusal, never a partial or
//! wrong answer.

use std::sync::Arc;

use rusqlite::types::Value;
use sqlparser::ast::{Expr, SetExpr, Statement, Visit, Visitor};

use crate::sql::error::SqlError;
use crate::sql::plan::Plan;
use crate::storage::{ExecOutput, ExecRequest, Params};

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
    "variance",
    "json_agg",
    "json_group_array",
];

/// Finds aggregate or window function calls.
struct AggregateFinder(bool);

impl Visitor for AggregateFinder {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
        if let Expr::Function(function) = expr {
            let name = function.name.to_string().to_ascii_lowercase();
            // min/max with several arguments are SQLite's scalar functions, not aggregates.
            let arguments = match &function.args {
                sqlparser::ast::FunctionArguments::List(list) => list.args.len(),
                _ => 0,
            };
            let scalar_min_max = (name == "min" || name == "max") && arguments > 1;
            if function.over.is_some() || (AGGREGATES.contains(&name.as_str()) && !scalar_min_max) {
                self.0 = true;
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// How shard results combine.
pub enum MergePlan {
    /// Rows of every shard, one after another.
    Concatenate,
}

fn unsupported(reason: &str) -> SqlError {
    SqlError::Unsupported(format!("{reason} is not supported across shards"))
}

impl MergePlan {
    pub fn for_plan(plan: &Plan) -> Result<MergePlan, SqlError> {
        let Some(Statement::Query(query)) = plan.statement.as_deref() else {
            return Ok(MergePlan::Concatenate);
        };
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(unsupported("a set operation"));
        };
        if query.order_by.is_some() || query.limit_clause.is_some() {
            return Err(unsupported("ORDER BY or LIMIT"));
        }
        if select.distinct.is_some() || select.having.is_some() {
            return Err(unsupported("DISTINCT or HAVING"));
        }
        if !matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty())
        {
            return Err(unsupported("GROUP BY"));
        }
        if select.projection.iter().any(|item| {
            let mut finder = AggregateFinder(false);
            let _ = item.visit(&mut finder);
            finder.0
        }) {
            return Err(unsupported("an aggregate or window function"));
        }
        Ok(MergePlan::Concatenate)
    }

    /// What each shard runs.
    pub fn shard_request(&self, plan: &Plan, params: Vec<Value>) -> Result<ExecRequest, SqlError> {
        Ok(ExecRequest {
            statements: plan
                .rewritten
                .statements
                .iter()
                .map(|s| Arc::from(s.as_str()))
                .collect(),
            params: Params::One(params),
            catalog: Vec::new(),
            changes_schema: false,
            reads_catalog: false,
        })
    }

    pub fn merge(&self, outputs: Vec<ExecOutput>) -> Result<ExecOutput, SqlError> {
        let mut merged = ExecOutput::default();
        for output in outputs {
            if merged.columns.is_empty() {
                merged.columns = output.columns;
            }
            merged.rows.extend(output.rows);
        }
        merged.changes = merged.rows.len() as u64;
        Ok(merged)
    }
}
