//! Which shards a statement touches: the shard key found in the parsed statement (INSERT
//! values, `WHERE key = ...`, `IN`, `AND`/`OR`, and for the range strategy `BETWEEN`, `<`,
//! `>`), bound parameters included, normalized by the key column's type
//! ([`ShardKey::normalize`]). What cannot be answered correctly across shards (joins whose
//! matches may be on other shards, outer joins preserving a table that is on every shard,
//! subqueries over sharded tables, ...) is refused with the reason; what cannot be narrowed
//! goes to every shard that may hold rows.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::types::Value;
use sqlparser::ast::{
    BinaryOperator, Expr, FromTable, ObjectName, Query, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins, UnaryOperator, Value as SqlValue, Visit, Visitor,
};

use super::placement::{KeyKind, Placement, PlacementError, ShardKey};
use crate::config::{ShardConfig, ShardingConfig, ShardingStrategy};
use crate::sql::error::SqlError;
use crate::sql::rewrite::name_text;
use crate::storage::Schema;

/// Where a statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// One shard runs it as planned.
    One(usize),
    /// Each of these shards runs it: a write on all of them together, a read merged.
    Many(Vec<usize>),
    /// Every shard runs it on the same data (a reference table, DDL): one shard's row count
    /// and rows answer for all.
    Everywhere(Vec<usize>),
    /// An INSERT whose rows belong to several shards: each shard's own statement text.
    Split(Vec<(usize, String)>),
}

/// The sharding layout of the cluster.
pub struct Sharding {
    pub strategy: ShardingStrategy,
    pub placement: Placement,
    /// Sharded table → key column (lower case).
    keys: HashMap<String, String>,
    reference: HashSet<String>,
    pub shard_names: Vec<String>,
}

fn unsupported(reason: impl Into<String>) -> SqlError {
    SqlError::Unsupported(reason.into())
}

fn lower_name(name: &ObjectName) -> String {
    name_text(name).to_ascii_lowercase()
}

/// Tables named in a FROM list: (table, alias or table name).
fn from_tables(from: &[TableWithJoins], out: &mut Vec<(String, String)>) -> bool {
    let mut simple = true;
    let mut add = |factor: &TableFactor, out: &mut Vec<(String, String)>| match factor {
        TableFactor::Table { name, alias, .. } => {
            let table = lower_name(name);
            let alias = alias
                .as_ref()
                .map(|a| a.name.value.to_ascii_lowercase())
                .unwrap_or_else(|| table.clone());
            out.push((table, alias));
        }
        _ => simple = false,
    };
    for item in from {
        add(&item.relation, out);
        for join in &item.joins {
            add(&join.relation, out);
        }
    }
    simple
}

/// Every relation named anywhere in a statement, subqueries included, each once in the
/// order it first appears (so that messages name the same table every time).
fn all_relations(stmt: &Statement) -> Vec<String> {
    relations_below(stmt, 0)
}

/// Every relation a statement reads inside a query of its own: in subqueries and derived
/// tables of a SELECT (not its own FROM list), anywhere in the queries of an INSERT, UPDATE,
/// DELETE, CREATE TABLE ... AS or CREATE VIEW.
fn nested_relations(stmt: &Statement) -> Vec<String> {
    let from_depth = if matches!(stmt, Statement::Query(_)) {
        2
    } else {
        1
    };
    relations_below(stmt, from_depth)
}

/// The relations `node` names inside queries nested `from_depth` deep or more, each once,
/// in the order they first appear.
fn relations_below<V: Visit>(node: &V, from_depth: usize) -> Vec<String> {
    struct Nested {
        depth: usize,
        from_depth: usize,
        relations: Vec<String>,
    }
    impl Visitor for Nested {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            self.depth += 1;
            std::ops::ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            self.depth = self.depth.saturating_sub(1);
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_relation(&mut self, relation: &ObjectName) -> std::ops::ControlFlow<()> {
            let name = lower_name(relation);
            if self.depth >= self.from_depth && !self.relations.contains(&name) {
                self.relations.push(name);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut nested = Nested {
        depth: 0,
        from_depth,
        relations: Vec::new(),
    };
    let _ = node.visit(&mut nested);
    nested.relations
}

/// A literal, cast or bound parameter as a key value of `kind`.
fn key_value(expr: &Expr, params: &[Value], kind: KeyKind) -> Option<ShardKey> {
    ShardKey::normalize(kind, &literal_value(expr, params)?)
}

/// The value a literal, cast or bound parameter denotes, before key normalization.
fn literal_value(expr: &Expr, params: &[Value]) -> Option<Value> {
    Some(match expr {
        Expr::Nested(inner) => return literal_value(inner, params),
        Expr::Cast { expr, .. } => return literal_value(expr, params),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal_value(expr, params)? {
            Value::Integer(i) => Value::Integer(i.checked_neg()?),
            Value::Real(f) => Value::Real(-f),
            Value::Text(t) => Value::Text(format!("-{t}")),
            _ => return None,
        },
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => match n.parse::<i64>() {
                Ok(i) => Value::Integer(i),
                Err(_) => Value::Text(n.clone()),
            },
            SqlValue::SingleQuotedString(s) | SqlValue::EscapedStringLiteral(s) => {
                Value::Text(s.clone())
            }
            SqlValue::Placeholder(p) => {
                let index: usize = p.strip_prefix('$')?.parse().ok()?;
                params.get(index.checked_sub(1)?)?.clone()
            }
            _ => return None,
        },
        _ => return None,
    })
}

/// What the WHERE clause says about the shards, for the sharded tables in scope.
struct KeyScope<'a> {
    sharding: &'a Sharding,
    /// alias → key column and its kind, of the sharded tables in the FROM list.
    keyed: HashMap<String, (String, KeyKind)>,
    params: &'a [Value],
}

impl KeyScope<'_> {
    /// The kind of the shard key `expr` names, if it names one.
    fn key_kind(&self, expr: &Expr) -> Option<KeyKind> {
        match expr {
            Expr::Nested(inner) => self.key_kind(inner),
            Expr::Identifier(ident) => {
                let column = ident.value.to_ascii_lowercase();
                self.keyed
                    .values()
                    .find(|(key, _)| *key == column)
                    .map(|(_, kind)| *kind)
            }
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [.., table, column] => self
                    .keyed
                    .get(&table.value.to_ascii_lowercase())
                    .filter(|(key, _)| key.eq_ignore_ascii_case(&column.value))
                    .map(|(_, kind)| *kind),
                _ => None,
            },
            _ => None,
        }
    }

    fn is_key(&self, expr: &Expr) -> bool {
        self.key_kind(expr).is_some()
    }

    /// `expr` as a value of the key `key` names.
    fn value(&self, key: &Expr, expr: &Expr) -> Option<ShardKey> {
        key_value(expr, self.params, self.key_kind(key)?)
    }

    fn shard_of(&self, key: &Expr, expr: &Expr) -> Result<Option<BTreeSet<usize>>, SqlError> {
        let key = match self.value(key, expr) {
            Some(key) => key,
            None => return Ok(None),
        };
        match self.sharding.placement.shard_for(&key) {
            Ok(shard) => Ok(Some(BTreeSet::from([shard]))),
            // A key outside every range matches no row.
            Err(PlacementError::OutsideRanges(_)) => Ok(Some(BTreeSet::new())),
            Err(e) => Err(unsupported(e.to_string())),
        }
    }

    fn bound(&self, key: &Expr, expr: &Expr) -> Option<i64> {
        match self.value(key, expr)? {
            ShardKey::Int(i) => Some(i),
            ShardKey::Text(_) => None,
        }
    }

    fn range(&self, low: Option<i64>, high: Option<i64>) -> Option<BTreeSet<usize>> {
        (self.sharding.strategy == ShardingStrategy::Range).then(|| {
            self.sharding
                .placement
                .shards_for_range(low, high, self.sharding.shard_names.len())
                .into_iter()
                .collect()
        })
    }

    /// The shards rows satisfying `expr` can be on; `None` when it does not say.
    fn shards(&self, expr: &Expr) -> Result<Option<BTreeSet<usize>>, SqlError> {
        Ok(match expr {
            Expr::Nested(inner) => self.shards(inner)?,
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => match (self.shards(left)?, self.shards(right)?) {
                    (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
                    (Some(a), None) | (None, Some(a)) => Some(a),
                    (None, None) => None,
                },
                BinaryOperator::Or => match (self.shards(left)?, self.shards(right)?) {
                    (Some(a), Some(b)) => Some(a.union(&b).copied().collect()),
                    _ => None,
                },
                BinaryOperator::Eq if self.is_key(left) => self.shard_of(left, right)?,
                BinaryOperator::Eq if self.is_key(right) => self.shard_of(right, left)?,
                BinaryOperator::Gt | BinaryOperator::GtEq if self.is_key(left) => self
                    .bound(left, right)
                    .and_then(|low| self.range(Some(low), None)),
                BinaryOperator::Lt | BinaryOperator::LtEq if self.is_key(left) => self
                    .bound(left, right)
                    .and_then(|high| self.range(None, Some(high))),
                BinaryOperator::Gt | BinaryOperator::GtEq if self.is_key(right) => self
                    .bound(right, left)
                    .and_then(|high| self.range(None, Some(high))),
                BinaryOperator::Lt | BinaryOperator::LtEq if self.is_key(right) => self
                    .bound(right, left)
                    .and_then(|low| self.range(Some(low), None)),
                _ => None,
            },
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::List(list),
                negated: false,
                ..
            } if self.is_key(expr) => {
                let mut all = BTreeSet::new();
                for item in list {
                    match self.shard_of(expr, item)? {
                        Some(shards) => all.extend(shards),
                        None => return Ok(None),
                    }
                }
                Some(all)
            }
            Expr::Between {
                expr,
                negated: false,
                low,
                high,
            } if self.is_key(expr) => match (self.bound(expr, low), self.bound(expr, high)) {
                (Some(low), Some(high)) => self.range(Some(low), Some(high)),
                _ => None,
            },
            _ => None,
        })
    }
}

impl Sharding {
    pub fn new(config: &ShardingConfig, shards: &[ShardConfig]) -> Sharding {
        let shard_names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
        let placement = match config.strategy {
            ShardingStrategy::Hash => Placement::Hash {
                shards: shards.len(),
            },
            ShardingStrategy::ConsistentHash => {
                Placement::consistent_hash(&shard_names, config.virtual_nodes)
            }
            ShardingStrategy::Range => Placement::Range {
                ranges: shards
                    .iter()
                    .map(|s| s.key_range.unwrap_or((i64::MAX, i64::MIN)))
                    .collect(),
            },
        };
        Sharding {
            strategy: config.strategy,
            placement,
            keys: config.tables.iter().cloned().collect(),
            reference: config.reference_tables.iter().cloned().collect(),
            shard_names,
        }
    }

    pub fn shard_index(&self, name: &str) -> Option<usize> {
        self.shard_names.iter().position(|n| n == name)
    }

    /// The sharded tables' names.
    pub fn sharded_tables(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn is_reference(&self, table: &str) -> bool {
        self.reference.contains(table)
    }

    pub fn key_of(&self, table: &str) -> Option<&str> {
        self.keys.get(table).map(String::as_str)
    }

    fn all(&self) -> Vec<usize> {
        (0..self.shard_names.len()).collect()
    }

    /// The kind of `table`'s shard key `key`, from its declared type.
    pub fn key_kind(schema: &Schema, table: &str, key: &str) -> KeyKind {
        KeyKind::of(schema.column_type(table, key).map(|t| t.pg))
    }

    fn names(&self, shards: &BTreeSet<usize>) -> String {
        shards
            .iter()
            .map(|i| self.shard_names[*i].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Routes a parsed statement. `is_write` is the planner's classification.
    pub fn route(
        &self,
        stmt: &Statement,
        params: &[Value],
        schema: &Schema,
        is_write: bool,
    ) -> Result<Route, SqlError> {
        match stmt {
            Statement::Insert(insert) => self.route_insert(insert, params, schema),
            Statement::Query(query) => self.route_query(stmt, query, params, schema, is_write),
            Statement::Update(update) => {
                let mut tables = Vec::new();
                from_tables(std::slice::from_ref(&update.table), &mut tables);
                if update.from.is_some() {
                    self.refuse_sharded(&tables, "UPDATE ... FROM")?;
                }
                let route = self.route_filtered(
                    stmt,
                    &tables,
                    update.selection.as_ref(),
                    params,
                    schema,
                    true,
                )?;
                self.check_key_update(&tables, update, &route, params, schema)?;
                Ok(route)
            }
            Statement::Delete(delete) => {
                let from = match &delete.from {
                    FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
                };
                let mut tables = Vec::new();
                from_tables(from, &mut tables);
                if delete.using.is_some() {
                    self.refuse_sharded(&tables, "DELETE ... USING")?;
                }
                self.route_filtered(
                    stmt,
                    &tables,
                    delete.selection.as_ref(),
                    params,
                    schema,
                    true,
                )
            }
            // Schema changes and everything else that writes reach every shard, so that every
            // shard has the same schema; session-free reads go to the first. A table or view
            // made from a query over a sharded table would hold each shard's own rows.
            _ if is_write => match nested_relations(stmt)
                .iter()
                .find(|t| self.keys.contains_key(*t))
            {
                Some(table) => Err(unsupported(format!(
                    "{} reading sharded table {table} is not supported across shards (each shard would store only its own rows)",
                    match stmt {
                        Statement::CreateTable(_) => "CREATE TABLE ... AS",
                        Statement::CreateView(_) => "CREATE VIEW",
                        _ => "a statement",
                    }
                ))),
                None => Ok(Route::Everywhere(self.all())),
            },
            _ => Ok(Route::One(0)),
        }
    }

    fn refuse_sharded(&self, tables: &[(String, String)], form: &str) -> Result<(), SqlError> {
        match tables.iter().find(|(t, _)| self.keys.contains_key(t)) {
            Some((table, _)) => Err(unsupported(format!(
                "{form} on sharded table {table} is not supported across shards"
            ))),
            None => Ok(()),
        }
    }

    fn route_insert(
        &self,
        insert: &sqlparser::ast::Insert,
        params: &[Value],
        schema: &Schema,
    ) -> Result<Route, SqlError> {
        let TableObject::TableName(name) = &insert.table else {
            return Ok(Route::One(0));
        };
        let table = lower_name(name);
        let reads = relations_below(insert, 1);
        if let Some(read) = reads.iter().find(|t| self.keys.contains_key(*t))
            && !self.keys.contains_key(&table)
        {
            return Err(unsupported(format!(
                "an INSERT into {table} reading sharded table {read} is not supported across shards"
            )));
        }
        let Some(key) = self.keys.get(&table) else {
            return self.unsharded_write(&[table.as_str()], &reads);
        };
        if insert
            .source
            .as_ref()
            .is_some_and(|q| matches!(q.body.as_ref(), SetExpr::Values(_)))
            && let Some(read) = reads.iter().find(|t| !self.reference.contains(*t))
        {
            return Err(unsupported(format!(
                "a subquery over table {read} in an INSERT into sharded table {table} is not supported across shards"
            )));
        }
        let columns: Vec<String> = if insert.columns.is_empty() {
            schema
                .table(&table)
                .map(|t| {
                    t.columns
                        .iter()
                        .map(|c| c.name.to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            insert.columns.iter().map(lower_name).collect()
        };
        let missing_key = || {
            unsupported(format!(
                "an INSERT into sharded table {table} must give its shard key {key} as a value"
            ))
        };
        let position = columns
            .iter()
            .position(|c| c == key)
            .ok_or_else(missing_key)?;
        let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|q| q.body.as_ref()) else {
            return Err(unsupported(format!(
                "INSERT ... SELECT into sharded table {table} is not supported across shards"
            )));
        };
        let kind = Self::key_kind(schema, &table, key);
        let mut by_shard: Vec<(usize, Vec<usize>)> = Vec::new();
        for (row_index, row) in values.rows.iter().enumerate() {
            let value = row
                .get(position)
                .and_then(|e| key_value(e, params, kind))
                .ok_or_else(missing_key)?;
            let shard = self
                .placement
                .shard_for(&value)
                .map_err(|e| unsupported(e.to_string()))?;
            match by_shard.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, rows)) => rows.push(row_index),
                None => by_shard.push((shard, vec![row_index])),
            }
        }
        match by_shard.as_slice() {
            [] => Ok(Route::One(0)),
            [(shard, _)] => Ok(Route::One(*shard)),
            _ => Ok(Route::Split(
                by_shard
                    .into_iter()
                    .map(|(shard, rows)| {
                        let mut part = insert.clone();
                        if let Some(source) = part.source.as_mut()
                            && let SetExpr::Values(values) = source.body.as_mut()
                        {
                            values.rows = rows
                                .iter()
                                .filter_map(|i| values.rows.get(*i).cloned())
                                .collect();
                        }
                        (shard, Statement::Insert(part).to_string())
                    })
                    .collect(),
            )),
        }
    }

    fn route_query(
        &self,
        stmt: &Statement,
        query: &Query,
        params: &[Value],
        schema: &Schema,
        is_write: bool,
    ) -> Result<Route, SqlError> {
        match query.body.as_ref() {
            SetExpr::Select(select) => {
                let mut tables = Vec::new();
                let simple = from_tables(&select.from, &mut tables);
                if !simple && tables.iter().any(|(t, _)| self.keys.contains_key(t)) {
                    return Err(unsupported(
                        "a derived table or table function beside a sharded table is not supported across shards",
                    ));
                }
                self.check_outer_joins(&select.from)?;
                if query.with.is_some() {
                    let relations = all_relations(stmt);
                    if let Some(table) = relations.iter().find(|t| self.keys.contains_key(*t)) {
                        return Err(unsupported(format!(
                            "a WITH query over sharded table {table} is not supported across shards"
                        )));
                    }
                }
                self.route_filtered(
                    stmt,
                    &tables,
                    select.selection.as_ref(),
                    params,
                    schema,
                    is_write,
                )
            }
            body => {
                let relations = all_relations(stmt);
                let form = match body {
                    SetExpr::SetOperation { .. } => "UNION, INTERSECT or EXCEPT",
                    _ => "a parenthesized query",
                };
                match relations.iter().find(|t| self.keys.contains_key(*t)) {
                    Some(table) => Err(unsupported(format!(
                        "{form} over sharded table {table} is not supported across shards"
                    ))),
                    None => Ok(self.unsharded_route(&relations, is_write)),
                }
            }
        }
    }

    /// An outer join preserves the rows of one side; when that side holds no sharded table
    /// its rows are on every shard, and every shard would add them (NULL-extended) again.
    /// Joins of a sharded side with a reference table, or of co-located sharded tables, find
    /// all their matches on one shard.
    fn check_outer_joins(&self, from: &[TableWithJoins]) -> Result<(), SqlError> {
        if self.shard_names.len() < 2 {
            return Ok(());
        }
        let table_of = |factor: &TableFactor| match factor {
            TableFactor::Table { name, .. } => Some(lower_name(name)),
            _ => None,
        };
        let is_sharded =
            |factor: &TableFactor| table_of(factor).is_some_and(|t| self.keys.contains_key(&t));
        for item in from {
            let mut left: Vec<String> = table_of(&item.relation).into_iter().collect();
            let mut left_sharded = is_sharded(&item.relation);
            for join in &item.joins {
                let right_sharded = is_sharded(&join.relation);
                let right = table_of(&join.relation).unwrap_or_default();
                let refused = |preserved: &str| {
                    Err(unsupported(format!(
                        "an outer join preserving the rows of {preserved}, which is not sharded, is not supported beside a sharded table across shards (every shard would add those rows)"
                    )))
                };
                use sqlparser::ast::JoinOperator as Op;
                match &join.join_operator {
                    Op::Join(_) | Op::Inner(_) | Op::CrossJoin(_) | Op::StraightJoin(_) => {}
                    Op::Left(_) | Op::LeftOuter(_) if !left_sharded && right_sharded => {
                        return refused(&left.join(", "));
                    }
                    Op::Right(_) | Op::RightOuter(_) if left_sharded && !right_sharded => {
                        return refused(&right);
                    }
                    Op::FullOuter(_) if left_sharded && !right_sharded => return refused(&right),
                    Op::FullOuter(_) if !left_sharded && right_sharded => {
                        return refused(&left.join(", "));
                    }
                    Op::Left(_)
                    | Op::LeftOuter(_)
                    | Op::Right(_)
                    | Op::RightOuter(_)
                    | Op::FullOuter(_) => {}
                    _ if left_sharded || right_sharded => {
                        return Err(unsupported(
                            "a SEMI, ANTI, APPLY, ASOF or ARRAY join beside a sharded table is not supported across shards",
                        ));
                    }
                    _ => {}
                }
                left.push(right);
                left_sharded |= right_sharded;
            }
        }
        Ok(())
    }

    /// A write to `targets`, none of them sharded, reading `reads`: on every shard when it
    /// writes a reference table (so every copy must read the same rows: reference tables
    /// only), otherwise on the first shard.
    fn unsharded_write(&self, targets: &[&str], reads: &[String]) -> Result<Route, SqlError> {
        let Some(target) = targets.iter().find(|t| self.reference.contains(**t)) else {
            return Ok(Route::One(0));
        };
        match reads
            .iter()
            .find(|t| !self.reference.contains(*t) && !targets.contains(&t.as_str()))
        {
            Some(table) => Err(unsupported(format!(
                "a write to reference table {target} reading table {table} is not supported across shards (every shard writes its own copy, and {table} is not on every shard)"
            ))),
            None => Ok(Route::Everywhere(self.all())),
        }
    }

    /// A statement over reference and first-shard tables only.
    fn unsharded_route(&self, tables: &[String], is_write: bool) -> Route {
        let writes_reference = is_write && tables.iter().any(|t| self.reference.contains(t));
        if writes_reference {
            Route::Everywhere(self.all())
        } else {
            Route::One(0)
        }
    }

    /// SELECT, UPDATE or DELETE over `tables` (the FROM list) filtered by `selection`.
    fn route_filtered(
        &self,
        stmt: &Statement,
        tables: &[(String, String)],
        selection: Option<&Expr>,
        params: &[Value],
        schema: &Schema,
        is_write: bool,
    ) -> Result<Route, SqlError> {
        let sharded: Vec<&(String, String)> = tables
            .iter()
            .filter(|(t, _)| self.keys.contains_key(t))
            .collect();
        let top: HashSet<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
        let relations = all_relations(stmt);
        // A subquery (or derived table) runs on each shard over that shard's rows only.
        let nested = nested_relations(stmt);
        if let Some(table) = relations
            .iter()
            .filter(|t| !top.contains(t.as_str()))
            .chain(nested.iter())
            .find(|t| self.keys.contains_key(*t))
        {
            return Err(unsupported(format!(
                "a subquery over sharded table {table} is not supported across shards"
            )));
        }
        if sharded.is_empty() {
            return match stmt {
                Statement::Update(_) | Statement::Delete(_) => {
                    let targets: Vec<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
                    self.unsharded_write(&targets, &relations)
                }
                _ => Ok(self.unsharded_route(&relations, is_write)),
            };
        }
        if let Some((table, _)) = tables
            .iter()
            .find(|(t, _)| !self.keys.contains_key(t) && !self.reference.contains(t))
        {
            return Err(unsupported(format!(
                "table {table} lives on the first shard only and cannot be joined with sharded table {} across shards",
                sharded[0].0
            )));
        }
        // Subqueries over reference tables are answered on every shard alike; a table that
        // lives on the first shard only has no rows on the others.
        if let Some(table) = nested.iter().find(|t| !self.reference.contains(*t)) {
            return Err(unsupported(format!(
                "a subquery over table {table}, which lives on the first shard only, is not supported beside sharded table {} across shards",
                sharded[0].0
            )));
        }
        if sharded.len() > 1 {
            self.check_colocated(stmt, &sharded)?;
        }
        if is_write && tables.iter().any(|(t, _)| self.reference.contains(t)) {
            // A write to a sharded table reading a reference table is fine; a write to a
            // reference table is routed above (no sharded table in it).
        }
        let scope = KeyScope {
            sharding: self,
            keyed: sharded
                .iter()
                .map(|(t, alias)| {
                    let key = self.keys[t].clone();
                    let kind = Self::key_kind(schema, t, &key);
                    (alias.clone(), (key, kind))
                })
                .collect(),
            params,
        };
        let shards = match selection {
            Some(expr) => scope.shards(expr)?,
            None => None,
        };
        Ok(match shards {
            Some(shards) if shards.len() == 1 => {
                Route::One(shards.into_iter().next().unwrap_or_default())
            }
            // No shard can hold a matching row: any one shard answers (with nothing).
            Some(shards) if shards.is_empty() => Route::One(0),
            Some(shards) => Route::Many(shards.into_iter().collect()),
            None => Route::Many(self.all()),
        })
    }

    /// Sharded tables joined in one statement must be joined on their shard keys, so that
    /// matching rows live on the same shard.
    fn check_colocated(
        &self,
        stmt: &Statement,
        sharded: &[&(String, String)],
    ) -> Result<(), SqlError> {
        struct Equalities<'a> {
            keyed: &'a HashMap<String, String>,
            pairs: Vec<(String, String)>,
        }
        impl Visitor for Equalities<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
                if let Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } = expr
                {
                    let key_alias = |e: &Expr| match e {
                        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                            [.., table, column] => {
                                let alias = table.value.to_ascii_lowercase();
                                self.keyed
                                    .get(&alias)
                                    .filter(|k| k.eq_ignore_ascii_case(&column.value))
                                    .map(|_| alias)
                            }
                            _ => None,
                        },
                        _ => None,
                    };
                    if let (Some(a), Some(b)) = (key_alias(left), key_alias(right)) {
                        self.pairs.push((a, b));
                    }
                }
                std::ops::ControlFlow::Continue(())
            }
        }
        let keyed: HashMap<String, String> = sharded
            .iter()
            .map(|(t, alias)| (alias.clone(), self.keys[t].clone()))
            .collect();
        let mut equalities = Equalities {
            keyed: &keyed,
            pairs: Vec::new(),
        };
        let _ = stmt.visit(&mut equalities);
        // Union-find over the aliases.
        let aliases: Vec<&String> = keyed.keys().collect();
        let mut parent: Vec<usize> = (0..aliases.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for (a, b) in &equalities.pairs {
            if let (Some(a), Some(b)) = (
                aliases.iter().position(|x| *x == a),
                aliases.iter().position(|x| *x == b),
            ) {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra] = rb;
            }
        }
        let first = root(&mut parent, 0);
        if (1..aliases.len()).any(|i| root(&mut parent, i) != first) {
            let tables: Vec<&str> = sharded.iter().map(|(t, _)| t.as_str()).collect();
            return Err(unsupported(format!(
                "sharded tables {} are joined without equality on their shard keys, so matching rows may be on different shards",
                tables.join(" and ")
            )));
        }
        Ok(())
    }

    /// An UPDATE may set the shard key only to a value on the same shard as the row.
    fn check_key_update(
        &self,
        tables: &[(String, String)],
        update: &sqlparser::ast::Update,
        route: &Route,
        params: &[Value],
        schema: &Schema,
    ) -> Result<(), SqlError> {
        let Some((table, _)) = tables.first() else {
            return Ok(());
        };
        let Some(key) = self.keys.get(table) else {
            return Ok(());
        };
        for assignment in &update.assignments {
            let sqlparser::ast::AssignmentTarget::ColumnName(column) = &assignment.target else {
                continue;
            };
            if !lower_name(column).eq_ignore_ascii_case(key) {
                continue;
            }
            let kind = Self::key_kind(schema, table, key);
            let new_shard = key_value(&assignment.value, params, kind)
                .and_then(|k| self.placement.shard_for(&k).ok());
            match (route, new_shard) {
                (Route::One(current), Some(new)) if *current == new => {}
                _ => {
                    let from = match route {
                        Route::One(s) => BTreeSet::from([*s]),
                        Route::Many(s) | Route::Everywhere(s) => s.iter().copied().collect(),
                        Route::Split(_) => BTreeSet::new(),
                    };
                    return Err(unsupported(format!(
                        "changing shard key {key} of {table} could move rows between shards (rows on {}{})",
                        self.names(&from),
                        new_shard
                            .map(|s| format!(", new value on {}", self.shard_names[s]))
                            .unwrap_or_default()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn expr(sql: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .expect("expression parses")
    }

    fn statement(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("statement parses")
            .remove(0)
    }

    /// 4 hash shards: users by id, orders by user_id, countries a reference table.
    fn sharding() -> Sharding {
        let config = ShardingConfig {
            strategy: ShardingStrategy::Hash,
            virtual_nodes: 1,
            tables: vec![
                ("users".into(), "id".into()),
                ("orders".into(), "user_id".into()),
            ],
            reference_tables: vec!["countries".into()],
        };
        let shards: Vec<ShardConfig> = (1..=4)
            .map(|i| ShardConfig {
                name: format!("shard-{i}"),
                primary: format!("shard-{i}.db").into(),
                replicas: Vec::new(),
                key_range: None,
            })
            .collect();
        Sharding::new(&config, &shards)
    }

    fn route(sql: &str, is_write: bool) -> Result<Route, SqlError> {
        sharding().route(&statement(sql), &[], &Schema::default(), is_write)
    }

    fn refusal(sql: &str, is_write: bool) -> String {
        match route(sql, is_write) {
            Err(SqlError::Unsupported(message)) => message,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn integer_keys_written_as_decimals_or_text_are_integers() {
        for written in [
            "42",
            "42.0",
            "'42'",
            "'42.0'",
            "4.2e1",
            "(42.00)",
            "CAST(42.0 AS INT)",
        ] {
            assert_eq!(
                key_value(&expr(written), &[], KeyKind::Integer),
                Some(ShardKey::Int(42)),
                "{written}"
            );
        }
        assert_eq!(
            key_value(&expr("-42.0"), &[], KeyKind::Integer),
            Some(ShardKey::Int(-42))
        );
        // Not an integer: kept as written (it matches no integer row anywhere).
        assert_eq!(
            key_value(&expr("42.5"), &[], KeyKind::Integer),
            Some(ShardKey::Text("42.5".into()))
        );
        assert_eq!(
            key_value(&expr("'1e400'"), &[], KeyKind::Integer),
            Some(ShardKey::Text("1e400".into()))
        );
        // A text key column keeps the text.
        assert_eq!(
            key_value(&expr("42.0"), &[], KeyKind::Text),
            Some(ShardKey::Text("42.0".into()))
        );
        assert_eq!(
            key_value(&expr("$1"), &[Value::Real(42.0)], KeyKind::Integer),
            Some(ShardKey::Int(42))
        );
    }

    #[test]
    fn uuid_keys_are_canonical_and_text_keys_as_written() {
        let canonical = Some(ShardKey::Text(
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into(),
        ));
        for written in [
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
            "'a0eebc999c0b4ef8bb6d6bb9bd380a11'",
            "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
            "CAST('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11' AS UUID)",
        ] {
            assert_eq!(
                key_value(&expr(written), &[], KeyKind::Uuid),
                canonical,
                "{written}"
            );
        }
        assert_eq!(
            key_value(&expr("'042'"), &[], KeyKind::Text),
            Some(ShardKey::Text("042".into()))
        );
        assert_eq!(
            key_value(&expr("$1"), &[Value::Text("042".into())], KeyKind::Integer),
            Some(ShardKey::Int(42))
        );
        assert_eq!(key_value(&expr("NULL"), &[], KeyKind::Integer), None);
    }

    #[test]
    fn subqueries_over_sharded_tables_are_refused_wherever_they_are() {
        for sql in [
            "SELECT name FROM users WHERE age > (SELECT avg(age) FROM users)",
            "SELECT id, (SELECT max(age) FROM users) FROM users",
            "SELECT u.id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
            "SELECT count(*) FROM (SELECT city FROM users) t",
            "UPDATE users SET age = (SELECT max(age) FROM users) WHERE id = 1",
            "DELETE FROM orders WHERE user_id IN (SELECT id FROM users)",
        ] {
            assert!(
                refusal(sql, sql.starts_with("UPDATE") || sql.starts_with("DELETE"))
                    .starts_with("a subquery over sharded table"),
                "{sql}"
            );
        }
        // Over a reference table, every shard answers alike.
        assert_eq!(
            route(
                "SELECT id FROM users WHERE city IN (SELECT name FROM countries)",
                false
            ),
            Ok(Route::Many(vec![0, 1, 2, 3]))
        );
    }

    #[test]
    fn tables_on_the_first_shard_only_are_not_read_beside_sharded_ones() {
        assert_eq!(
            refusal(
                "SELECT id, (SELECT v FROM settings WHERE k = 'mode') FROM users",
                false
            ),
            "a subquery over table settings, which lives on the first shard only, is not supported beside sharded table users across shards"
        );
        assert!(
            refusal("UPDATE countries SET name = (SELECT v FROM settings)", true)
                .starts_with("a write to reference table countries reading table settings")
        );
        assert!(
            refusal(
                "INSERT INTO countries (code, name) SELECT k, v FROM settings",
                true
            )
            .starts_with("a write to reference table countries reading table settings")
        );
        // A write to a first-shard table may read a reference table there.
        assert_eq!(
            route(
                "UPDATE settings SET v = (SELECT name FROM countries WHERE code = 'FR')",
                true
            ),
            Ok(Route::One(0))
        );
        assert_eq!(
            route(
                "INSERT INTO countries (code, name) VALUES ('FR', 'Paris')",
                true
            ),
            Ok(Route::Everywhere(vec![0, 1, 2, 3]))
        );
    }

    #[test]
    fn statements_storing_a_query_over_a_sharded_table_are_refused() {
        assert_eq!(
            refusal(
                "INSERT INTO settings (k, v) SELECT name, city FROM users",
                true
            ),
            "an INSERT into settings reading sharded table users is not supported across shards"
        );
        assert!(
            refusal("CREATE TABLE copy AS SELECT * FROM users", true)
                .starts_with("CREATE TABLE ... AS reading sharded table users")
        );
        assert!(
            refusal("CREATE VIEW v AS SELECT * FROM orders", true)
                .starts_with("CREATE VIEW reading sharded table orders")
        );
        assert_eq!(
            route("CREATE VIEW v AS SELECT * FROM countries", true),
            Ok(Route::Everywhere(vec![0, 1, 2, 3]))
        );
    }

    #[test]
    fn messages_name_the_first_table_written() {
        for _ in 0..20 {
            assert_eq!(
                refusal(
                    "SELECT id FROM users UNION SELECT user_id FROM orders",
                    false
                ),
                "UNION, INTERSECT or EXCEPT over sharded table users is not supported across shards"
            );
        }
        assert_eq!(
            refusal("(SELECT id FROM users)", false),
            "a parenthesized query over sharded table users is not supported across shards"
        );
    }

    #[test]
    fn outer_joins_preserving_a_table_on_every_shard_are_refused() {
        for sql in [
            "SELECT 1 FROM countries c LEFT JOIN users u ON u.city = c.name",
            "SELECT 1 FROM countries c LEFT JOIN users u ON true WHERE u.id = 1",
            "SELECT 1 FROM users u RIGHT JOIN countries c ON u.city = c.name",
            "SELECT 1 FROM countries c FULL JOIN users u ON u.city = c.name",
            "SELECT 1 FROM users u FULL JOIN countries c ON u.city = c.name",
            "SELECT 1 FROM countries c JOIN countries d ON c.code = d.code LEFT JOIN orders o ON o.status = d.code",
        ] {
            assert!(
                refusal(sql, false).starts_with("an outer join preserving the rows of countries"),
                "{sql}"
            );
        }
        for sql in [
            "SELECT 1 FROM users u LEFT JOIN countries c ON u.city = c.name",
            "SELECT 1 FROM countries c RIGHT JOIN users u ON u.city = c.name",
            "SELECT 1 FROM users u LEFT JOIN orders o ON o.user_id = u.id",
            "SELECT 1 FROM users u FULL JOIN orders o ON o.user_id = u.id",
            "SELECT 1 FROM countries c LEFT JOIN countries d ON c.code = d.code JOIN users u ON u.city = c.name",
        ] {
            assert!(route(sql, false).is_ok(), "{sql}");
        }
    }
}
