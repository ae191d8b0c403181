//! Rewriting of PostgreSQL catalog queries into SQL that SQLite accepts.
//!
//! This module owns the translation of the PostgreSQL-only forms that psql, pgjdbc and pgbench
//! use when they introspect the server: regular-expression operators (`~`, `!~`, `~*`,
//! `OPERATOR(pg_catalog.~)`), `COLLATE pg_catalog.default`, the `reg*` and `oid`/`name` casts,
//! schema-qualified function calls, `E'...'` strings, array constructs (`ARRAY(SELECT ...)`,
//! `= ANY(...)`, subscripts), `LATERAL` single-row subqueries, column aliases on derived tables
//! and `generate_series` aliases. Everything works on the sqlparser AST.
//!
//! The rewritten forms target the functions registered by the `pg_catalog` module
//! (`regclass_in`, `regclass_out`, `regtype_out`, `regnamespace_out`, `pg_any_eq`,
//! `pg_array_elem`, `regexp`, ...). The rewrite is safe on statements that do not touch the
//! catalog too: it only changes constructs SQLite would reject anyway.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArgumentList, FunctionArguments, Ident, InTarget, ObjectName,
    ObjectNamePart, OrderByExpr, OrderByKind, Query, Select, SelectItem, SetExpr, Statement,
    Subscript, TableFactor, Value, VisitMut, VisitorMut, visit_expressions_mut, visit_relations,
};

/// Relations PostgreSQL resolves in `pg_catalog` even when the query does not qualify them.
const CATALOG_RELATIONS: &[&str] = &[
    "pg_am",
    "pg_attrdef",
    "pg_attribute",
    "pg_auth_members",
    "pg_authid",
    "pg_cast",
    "pg_class",
    "pg_collation",
    "pg_constraint",
    "pg_conversion",
    "pg_database",
    "pg_default_acl",
    "pg_depend",
    "pg_description",
    "pg_enum",
    "pg_event_trigger",
    "pg_extension",
    "pg_foreign_data_wrapper",
    "pg_foreign_server",
    "pg_foreign_table",
    "pg_index",
    "pg_indexes",
    "pg_inherits",
    "pg_init_privs",
    "pg_language",
    "pg_locks",
    "pg_matviews",
    "pg_namespace",
    "pg_opclass",
    "pg_operator",
    "pg_partitioned_table",
    "pg_policy",
    "pg_proc",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_range",
    "pg_rewrite",
    "pg_roles",
    "pg_seclabel",
    "pg_sequence",
    "pg_sequences",
    "pg_settings",
    "pg_shdescription",
    "pg_stat_activity",
    "pg_stat_user_tables",
    "pg_statistic_ext",
    "pg_tables",
    "pg_tablespace",
    "pg_timezone_names",
    "pg_trigger",
    "pg_type",
    "pg_user",
    "pg_user_mapping",
    "pg_views",
];

/// Functions PostgreSQL lets you call without parentheses; SQLite needs them.
const NILADIC_FUNCTIONS: &[&str] = &[
    "current_user",
    "session_user",
    "current_role",
    "current_schema",
    "current_catalog",
    "user",
];

/// Rewrites the PostgreSQL-only forms psql/pgjdbc use in catalog queries into forms SQLite accepts,
/// in place. Runs on statements that read pg_catalog tables (the caller decides), before the
/// general rewriting (which will later turn `$n` into `?n`, `::type` casts into CAST(... AS sqlite type) and print the statement with `to_string()`).
pub fn rewrite_catalog_query(stmt: &mut Statement) {
    let _ = stmt.visit(&mut CatalogRewriter);
}

/// True if the statement reads any pg_catalog / information_schema relation (qualified or not: pg_class, pg_namespace, …).
pub fn reads_catalog(stmt: &Statement) -> bool {
    visit_relations(stmt, |name| {
        if is_catalog_relation(name) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

fn is_catalog_relation(name: &ObjectName) -> bool {
    let parts = name_parts(name);
    match parts.as_slice() {
        [schema, _] | [_, schema, _] => schema == "pg_catalog" || schema == "information_schema",
        [table] => CATALOG_RELATIONS.contains(&table.as_str()),
        _ => false,
    }
}

/// Lower-cased identifier parts of a name (quoted parts keep their case, as in PostgreSQL).
fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) if i.quote_style.is_some() => i.value.clone(),
            ObjectNamePart::Identifier(i) => i.value.to_lowercase(),
            other => other.to_string(),
        })
        .collect()
}

fn strip_pg_catalog(name: &mut ObjectName) {
    if name.0.len() == 2 && name_parts(name).first().is_some_and(|s| s == "pg_catalog") {
        name.0.remove(0);
    }
}

struct CatalogRewriter;

impl VisitorMut for CatalogRewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        inline_lateral_values(query);
        expand_array_rows(query);
        rename_series_columns(query);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        move_derived_column_aliases(factor);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        rewrite_structural(expr);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        rewrite_local(expr);
        ControlFlow::Continue(())
    }
}

fn func(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

fn string_lit(s: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(s.to_string()).into())
}

fn nested(e: Expr) -> Expr {
    match e {
        Expr::Nested(_) | Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_) => e,
        Expr::Function(_) => e,
        other => Expr::Nested(Box::new(other)),
    }
}

fn take(expr: &mut Expr) -> Expr {
    std::mem::replace(expr, Expr::Value(Value::Null.into()))
}

fn function_name(f: &Function) -> String {
    name_parts(&f.name).last().cloned().unwrap_or_default()
}

/// Plain expression arguments of a call, or `None` if any argument is named or a wildcard.
fn plain_args(f: &mut Function) -> Option<&mut Vec<FunctionArg>> {
    match &mut f.args {
        FunctionArguments::List(list)
            if list
                .args
                .iter()
                .all(|a| matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(_)))) =>
        {
            Some(&mut list.args)
        }
        _ => None,
    }
}

fn arg_expr(arg: &mut FunctionArg) -> Option<&mut Expr> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        _ => None,
    }
}

/// The subquery of `ARRAY(SELECT ...)`, possibly parenthesized.
fn array_subquery(expr: &mut Expr) -> Option<&mut Query> {
    match expr {
        Expr::Nested(inner) => array_subquery(inner),
        Expr::Function(f) if function_name(f) == "array" => match &mut f.args {
            FunctionArguments::Subquery(q) => Some(q),
            _ => None,
        },
        _ => None,
    }
}

/// Rewrites that must see a construct before its children are rewritten (top-down).
fn rewrite_structural(expr: &mut Expr) {
    match expr {
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => {
            let left = take(left);
            *expr = membership(left, right, false);
        }
        Expr::AllOp {
            left,
            compare_op: BinaryOperator::NotEq,
            right,
        } => {
            let left = take(left);
            *expr = membership(left, right, true);
        }
        Expr::Function(f) if function_name(f) == "array_to_string" => {
            let Some(args) = plain_args(f) else { return };
            if args.len() != 2 {
                return;
            }
            let sep = match arg_expr(&mut args[1]) {
                Some(e) => take(e),
                None => return,
            };
            let Some(first) = arg_expr(&mut args[0]) else {
                return;
            };
            let aggregated = array_subquery(first).and_then(|q| aggregate_in_place(q, sep.clone()));
            match aggregated {
                Some(q) => *expr = Expr::Subquery(Box::new(q)),
                None => {
                    if let Some(e) = arg_expr(&mut args[1]) {
                        *e = sep;
                    }
                }
            }
        }
        Expr::Function(f) if function_name(f) == "array" => {
            // A bare ARRAY(SELECT ...) becomes the array's text form, which the array helper
            // functions of the catalog understand.
            let FunctionArguments::Subquery(q) = &mut f.args else {
                return;
            };
            if let Some(q) = aggregate_in_place(q, string_lit(",")) {
                let agg = Expr::Subquery(Box::new(q));
                let coalesced = func("coalesce", vec![agg, string_lit("")]);
                let text = Expr::BinaryOp {
                    left: Box::new(Expr::BinaryOp {
                        left: Box::new(string_lit("{")),
                        op: BinaryOperator::StringConcat,
                        right: Box::new(coalesced),
                    }),
                    op: BinaryOperator::StringConcat,
                    right: Box::new(string_lit("}")),
                };
                *expr = Expr::Nested(Box::new(text));
            }
        }
        _ => {}
    }
}

/// `x = ANY(<right>)` / `x <> ALL(<right>)` as IN / NOT IN where SQLite can express it, else
/// through `pg_any_eq` on the array's text form.
fn membership(left: Expr, right: &mut Expr, negated: bool) -> Expr {
    let mut right = take(right);
    while let Expr::Nested(inner) = right {
        right = *inner;
    }
    let target: Result<InTarget, Expr> = match right {
        Expr::Subquery(q) => Ok(InTarget::Subquery(q)),
        Expr::Array(a) => Ok(InTarget::List(a.elem)),
        Expr::Function(mut f) if function_name(&f) == "array" => {
            match std::mem::replace(&mut f.args, FunctionArguments::None) {
                FunctionArguments::Subquery(q) => Ok(InTarget::Subquery(q)),
                other => {
                    f.args = other;
                    Err(Expr::Function(f))
                }
            }
        }
        other => Err(other),
    };
    match target {
        Ok(target) => Expr::In {
            expr: Box::new(left),
            target,
            negated,
            global: false,
        },
        Err(right) => {
            let call = func("pg_any_eq", vec![left, right]);
            if negated {
                Expr::UnaryOp {
                    op: sqlparser::ast::UnaryOperator::Not,
                    expr: Box::new(call),
                }
            } else {
                call
            }
        }
    }
}

/// Turns `SELECT e FROM ... ORDER BY o` into `SELECT group_concat(e, sep ORDER BY o) FROM ...`,
/// keeping the query correlated (SQLite cannot correlate a subquery in FROM).
fn aggregate_in_place(query: &mut Query, sep: Expr) -> Option<Query> {
    let mut q = query.clone();
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    if select.projection.len() != 1 || select.distinct.is_some() || !group_by_is_empty(select) {
        return None;
    }
    let value = match select.projection.first_mut()? {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let mut order = Vec::new();
    if let Some(order_by) = q.order_by.take() {
        let OrderByKind::Expressions(exprs) = order_by.kind else {
            return None;
        };
        for mut o in exprs {
            // ORDER BY 1 means the first output column; inside an aggregate it would be a
            // constant.
            if let Expr::Value(v) = &o.expr
                && matches!(&v.value, Value::Number(n, _) if n == "1")
            {
                o.expr = value.clone();
            }
            order.push(o);
        }
    }
    let mut clauses: Vec<FunctionArgumentClause> = Vec::new();
    if !order.is_empty() {
        clauses.push(FunctionArgumentClause::OrderBy(
            order.into_iter().collect::<Vec<OrderByExpr>>(),
        ));
    }
    let mut agg = func("group_concat", vec![value, sep]);
    if let Expr::Function(f) = &mut agg
        && let FunctionArguments::List(list) = &mut f.args
    {
        list.clauses = clauses;
    }
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    select.projection = vec![SelectItem::UnnamedExpr(agg)];
    Some(q)
}

fn group_by_is_empty(select: &Select) -> bool {
    match &select.group_by {
        sqlparser::ast::GroupByExpr::Expressions(e, m) => e.is_empty() && m.is_empty(),
        sqlparser::ast::GroupByExpr::All(_) => false,
    }
}

/// Bottom-up rewrites of single nodes.
fn rewrite_local(expr: &mut Expr) {
    match expr {
        Expr::BinaryOp { left, op, right } => {
            let name = match op {
                BinaryOperator::PGRegexMatch => "~".to_string(),
                BinaryOperator::PGRegexNotMatch => "!~".to_string(),
                BinaryOperator::PGRegexIMatch => "~*".to_string(),
                BinaryOperator::PGRegexNotIMatch => "!~*".to_string(),
                BinaryOperator::PGCustomBinaryOperator(parts) => {
                    parts.last().cloned().unwrap_or_default()
                }
                _ => return,
            };
            let plain = match name.as_str() {
                "=" => Some(BinaryOperator::Eq),
                "<>" | "!=" => Some(BinaryOperator::NotEq),
                "<" => Some(BinaryOperator::Lt),
                ">" => Some(BinaryOperator::Gt),
                "<=" => Some(BinaryOperator::LtEq),
                ">=" => Some(BinaryOperator::GtEq),
                "||" => Some(BinaryOperator::StringConcat),
                _ => None,
            };
            if let Some(plain) = plain {
                *op = plain;
                return;
            }
            let (l, r) = (take(left), take(right));
            *expr = match name.as_str() {
                "~" | "!~" => Expr::RLike {
                    negated: name == "!~",
                    expr: Box::new(l),
                    pattern: Box::new(r),
                    regexp: true,
                },
                "~*" | "!~*" => Expr::RLike {
                    negated: name == "!~*",
                    expr: Box::new(l),
                    pattern: Box::new(Expr::Nested(Box::new(Expr::BinaryOp {
                        left: Box::new(string_lit("(?i)")),
                        op: BinaryOperator::StringConcat,
                        right: Box::new(nested(r)),
                    }))),
                    regexp: true,
                },
                // LIKE in SQLite is already case-insensitive for ASCII, which covers ~~*.
                "~~" | "~~*" | "!~~" | "!~~*" => Expr::Like {
                    negated: name.starts_with('!'),
                    any: false,
                    expr: Box::new(l),
                    pattern: Box::new(r),
                    escape_char: None,
                },
                _ => Expr::BinaryOp {
                    left: Box::new(l),
                    op: op.clone(),
                    right: Box::new(r),
                },
            };
        }
        // SQLite has no pg_catalog.default collation, and the default is what it uses anyway.
        Expr::Collate { expr: inner, .. } => {
            let inner = take(inner);
            *expr = inner;
        }
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => {
            if let Some(new) = rewrite_cast(inner, data_type) {
                *expr = new;
            }
        }
        Expr::Function(f) => {
            strip_pg_catalog(&mut f.name);
            let name = function_name(f);
            if matches!(f.args, FunctionArguments::None)
                && NILADIC_FUNCTIONS.contains(&name.as_str())
            {
                f.args = FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: Vec::new(),
                    clauses: Vec::new(),
                });
            }
        }
        Expr::CompoundFieldAccess { root, access_chain }
            if composite_field(root, access_chain).is_some() =>
        {
            if let Some(column) = composite_field(root, access_chain) {
                *expr = column;
            }
        }
        Expr::Trim {
            trim_where,
            trim_what,
            expr: inner,
            trim_characters: None,
        } => {
            let name = match trim_where {
                Some(sqlparser::ast::TrimWhereField::Leading) => "ltrim",
                Some(sqlparser::ast::TrimWhereField::Trailing) => "rtrim",
                _ => "trim",
            };
            let mut args = vec![take(inner)];
            if let Some(what) = trim_what {
                args.push(take(what));
            }
            *expr = func(name, args);
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            // `a[i]`, or `t.a[i]`, which parses as `t` with the chain `.a`, `[i]`.
            let Some((sqlparser::ast::AccessExpr::Subscript(Subscript::Index { index }), path)) =
                access_chain.split_last_mut()
            else {
                return;
            };
            let mut parts = match root.as_ref() {
                Expr::Identifier(id) => vec![id.clone()],
                Expr::CompoundIdentifier(ids) => ids.clone(),
                _ if path.is_empty() => Vec::new(),
                _ => return,
            };
            for step in path.iter() {
                match step {
                    sqlparser::ast::AccessExpr::Dot(Expr::Identifier(id)) => parts.push(id.clone()),
                    _ => return,
                }
            }
            let array = if path.is_empty() {
                take(root)
            } else {
                Expr::CompoundIdentifier(parts)
            };
            let i = take(index);
            *expr = func("pg_array_elem", vec![array, i]);
        }
        Expr::Value(v) => {
            if let Value::EscapedStringLiteral(s) = &v.value {
                v.value = Value::SingleQuotedString(s.clone());
            }
        }
        _ => {}
    }
}

/// True for a literal or parameter, i.e. an input value rather than a catalog column.
fn is_input_value(expr: &Expr) -> bool {
    match expr {
        Expr::Value(v) => matches!(
            v.value,
            Value::SingleQuotedString(_)
                | Value::EscapedStringLiteral(_)
                | Value::Placeholder(_)
                | Value::DoubleQuotedString(_)
        ),
        Expr::Nested(e) => is_input_value(e),
        Expr::Cast { expr, .. } => is_input_value(expr),
        _ => false,
    }
}

fn rewrite_cast(inner: &mut Expr, data_type: &DataType) -> Option<Expr> {
    let type_text = data_type.to_string().to_lowercase();
    let type_name = type_text
        .strip_prefix("pg_catalog.")
        .unwrap_or(&type_text)
        .trim_matches('"')
        .to_string();
    if type_name.ends_with("[]") || matches!(data_type, DataType::Array(_)) {
        return Some(take(inner));
    }
    let sqlite_cast = |e: Expr, dt: DataType| Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(e),
        data_type: dt,
        format: None,
    };
    let input = is_input_value(inner);
    Some(match type_name.as_str() {
        "regclass" if input => func("regclass_in", vec![take(inner)]),
        "regclass" => func("regclass_out", vec![take(inner)]),
        "regtype" if input => func("regtype_in", vec![take(inner)]),
        "regtype" => func("regtype_out", vec![take(inner)]),
        "regnamespace" if input => func("regnamespace_in", vec![take(inner)]),
        "regnamespace" => func("regnamespace_out", vec![take(inner)]),
        "regrole" if !input => func("pg_get_userbyid", vec![take(inner)]),
        // Procedures are stored by name, which is what a regproc prints as.
        "regproc" | "regprocedure" => take(inner),
        "oid" | "xid" | "cid" | "int2" | "int4" | "int8" | "smallint" | "integer" | "int"
        | "bigint" => sqlite_cast(take(inner), DataType::Integer(None)),
        "text" | "name" | "char" | "\"char\"" | "bpchar" | "varchar" | "character varying"
        | "character" => sqlite_cast(take(inner), DataType::Text),
        _ => return None,
    })
}

/// `CROSS JOIN LATERAL (SELECT f(x)) AS o(n)`: SQLite has no LATERAL, but a single-row
/// subquery without FROM is just named expressions, so `o.n` is replaced by `f(x)`.
fn inline_lateral_values(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut bindings: Vec<(String, String, Expr)> = Vec::new();
    for twj in &mut select.from {
        twj.joins
            .retain(|join| match lateral_bindings(&join.relation) {
                Some(found) => {
                    bindings.extend(found);
                    false
                }
                None => true,
            });
    }
    if bindings.is_empty() {
        return;
    }
    let _ = visit_expressions_mut(query, |e| {
        if let Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
        {
            let (t, c) = (parts[0].value.to_lowercase(), parts[1].value.to_lowercase());
            if let Some((_, _, value)) = bindings.iter().find(|(bt, bc, _)| *bt == t && *bc == c) {
                *e = Expr::Nested(Box::new(value.clone()));
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn lateral_bindings(factor: &TableFactor) -> Option<Vec<(String, String, Expr)>> {
    let TableFactor::Derived {
        lateral: true,
        subquery,
        alias: Some(alias),
        ..
    } = factor
    else {
        return None;
    };
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty() || select.selection.is_some() || select.having.is_some() {
        return None;
    }
    let table = alias.name.value.to_lowercase();
    let mut out = Vec::new();
    for (i, item) in select.projection.iter().enumerate() {
        let (expr, own_name) = match item {
            SelectItem::UnnamedExpr(e) => (
                e,
                match e {
                    Expr::Identifier(id) => Some(id.value.clone()),
                    Expr::Function(f) => Some(function_name(f)),
                    _ => None,
                },
            ),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => return None,
        };
        let name = alias
            .columns
            .get(i)
            .map(|c| c.name.value.clone())
            .or(own_name)?;
        out.push((table.clone(), name.to_lowercase(), expr.clone()));
    }
    Some(out)
}

/// `(SELECT a) AS o(n)`: SQLite has no column aliases on derived tables, so the names move
/// into the subquery's select list.
fn move_derived_column_aliases(factor: &mut TableFactor) {
    let TableFactor::Derived {
        subquery,
        alias: Some(alias),
        ..
    } = factor
    else {
        return;
    };
    if alias.columns.is_empty() {
        return;
    }
    let SetExpr::Select(select) = subquery.body.as_mut() else {
        return;
    };
    if select.projection.len() != alias.columns.len() {
        return;
    }
    for (item, col) in select.projection.iter_mut().zip(&alias.columns) {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => take(e),
            _ => return,
        };
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: col.name.clone(),
        };
    }
    alias.columns.clear();
}

/// `(q.k).f` or `(k).f`, a field of a composite column: the columns that stand for a
/// composite are named `k__f` (see [`expand_array_rows`]).
fn composite_field(root: &Expr, access_chain: &[sqlparser::ast::AccessExpr]) -> Option<Expr> {
    let [sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field))] = access_chain else {
        return None;
    };
    let mut root = root;
    while let Expr::Nested(inner) = root {
        root = inner;
    }
    let field_of = |k: &Ident| Ident::new(format!("{}__{}", k.value, field.value));
    match root {
        Expr::Identifier(k) => Some(Expr::Identifier(field_of(k))),
        Expr::CompoundIdentifier(parts) => {
            let (k, qualifier) = parts.split_last()?;
            let mut parts = qualifier.to_vec();
            parts.push(field_of(k));
            Some(Expr::CompoundIdentifier(parts))
        }
        _ => None,
    }
}

/// The array argument of `[information_schema.]_pg_expandarray(arr)`.
fn expand_array_argument(expr: &Expr) -> Option<&Expr> {
    let mut expr = expr;
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    let Expr::Function(f) = expr else {
        return None;
    };
    if name_parts(&f.name).last().map(String::as_str) != Some("_pg_expandarray") {
        return None;
    }
    match &f.args {
        FunctionArguments::List(list) => match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => Some(arg),
            _ => None,
        },
        _ => None,
    }
}

/// `_pg_expandarray(arr)` (information_schema's helper, which pgjdbc's getPrimaryKeys and
/// getIndexInfo call on `pg_index.indkey`) returns one `(x, n)` row per element: the element
/// and its 1-based position. SQLite has no set-returning functions in a select list, so the
/// select joins `generate_series(1, cardinality(arr)) AS _pg_expand` instead: `(…).n` is
/// `_pg_expand.value`, `(…).x` is `pg_array_nth(arr, _pg_expand.value)`, and a bare
/// `_pg_expandarray(arr) AS k` becomes the columns `k__x` and `k__n`, which an outer
/// `(q.k).x` reads as `q.k__x`. Only one array per select is expanded, as pgjdbc uses it.
fn expand_array_rows(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut argument: Option<Expr> = None;
    for item in &select.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        let _ = sqlparser::ast::visit_expressions(expr, |e| {
            if let Some(arg) = expand_array_argument(e) {
                argument = Some(arg.clone());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if argument.is_some() {
            break;
        }
    }
    let Some(argument) = argument else {
        return;
    };
    let Ok(mut parsed) = sqlparser::parser::Parser::parse_sql(
        &sqlparser::dialect::PostgreSqlDialect {},
        "SELECT 1 FROM generate_series(1, 1) AS _pg_expand",
    ) else {
        return;
    };
    let Some(Statement::Query(series_query)) = parsed.pop() else {
        return;
    };
    let SetExpr::Select(mut series_select) = *series_query.body else {
        return;
    };
    let Some(mut series) = series_select.from.pop() else {
        return;
    };
    if let TableFactor::Table {
        args: Some(args), ..
    } = &mut series.relation
        && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(upper))) = args.args.get_mut(1)
    {
        *upper = func("cardinality", vec![argument.clone()]);
    }
    let position = Expr::CompoundIdentifier(vec![Ident::new("_pg_expand"), Ident::new("value")]);
    let element = func("pg_array_nth", vec![argument, position.clone()]);
    let replace_fields = |e: &mut Expr| {
        let _ = visit_expressions_mut(e, |e| {
            if let Expr::CompoundFieldAccess { root, access_chain } = e
                && expand_array_argument(root).is_some()
                && let [sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field))] =
                    access_chain.as_slice()
            {
                match field.value.to_ascii_lowercase().as_str() {
                    "x" => *e = element.clone(),
                    "n" => *e = position.clone(),
                    _ => {}
                }
            }
            ControlFlow::<()>::Continue(())
        });
    };
    let mut projection = Vec::with_capacity(select.projection.len() + 1);
    for item in std::mem::take(&mut select.projection) {
        let bare = match &item {
            SelectItem::UnnamedExpr(e) if expand_array_argument(e).is_some() => {
                Some(Ident::new("_pg_expandarray"))
            }
            SelectItem::ExprWithAlias { expr, alias } if expand_array_argument(expr).is_some() => {
                Some(alias.clone())
            }
            _ => None,
        };
        match (bare, item) {
            (Some(k), _) => {
                for (field, value) in [("x", &element), ("n", &position)] {
                    projection.push(SelectItem::ExprWithAlias {
                        expr: value.clone(),
                        alias: Ident::new(format!("{}__{field}", k.value)),
                    });
                }
            }
            (None, mut item) => {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } =
                    &mut item
                {
                    replace_fields(e);
                }
                projection.push(item);
            }
        }
    }
    select.projection = projection;
    if let Some(selection) = &mut select.selection {
        replace_fields(selection);
    }
    select.from.push(series);
}

/// `FROM generate_series(a, b) s ... WHERE x = s`: in PostgreSQL the alias names the column
/// too; SQLite's generate_series calls its column `value`, so references become `s.value`.
fn rename_series_columns(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut renames: Vec<(String, Ident)> = Vec::new();
    for twj in &mut select.from {
        let factors =
            std::iter::once(&mut twj.relation).chain(twj.joins.iter_mut().map(|j| &mut j.relation));
        for factor in factors {
            let TableFactor::Table {
                name,
                args: Some(_),
                alias,
                ..
            } = factor
            else {
                continue;
            };
            if name_parts(name).last().map(String::as_str) != Some("generate_series") {
                continue;
            }
            strip_pg_catalog(name);
            if let Some(alias) = alias {
                let column = alias
                    .columns
                    .first()
                    .map(|c| c.name.value.to_lowercase())
                    .unwrap_or_else(|| alias.name.value.to_lowercase());
                renames.push((column, alias.name.clone()));
                alias.columns.clear();
            }
        }
    }
    if renames.is_empty() {
        return;
    }
    let _ = visit_expressions_mut(query, |e| {
        if let Expr::Identifier(id) = e
            && let Some((_, table)) = renames.iter().find(|(c, _)| *c == id.value.to_lowercase())
        {
            *e = Expr::CompoundIdentifier(vec![table.clone(), Ident::new("value")]);
        }
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    // The end-to-end tests need the catalog itself; in the main crate this is
    // `crate::storage::pg_catalog`.
    use crate::storage::pg_catalog;
    use rusqlite::Connection;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    /// psql 15 queries captured with `psql -E` against PostgreSQL 15 (fixtures/psql15/*.sql);
    /// `{oid}` stands for the oid psql learned from the first `\d` query.
    const PSQL15: &[(&str, &str)] = &[
        (
            "dt",
            r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#,
        ),
        (
            "d_t_1",
            r#"SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;"#,
        ),
        (
            "d_t_2",
            r#"SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, '', c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, c.relreplident, am.amname
FROM pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)
WHERE c.oid = '{oid}';"#,
        ),
        (
            "d_t_3",
            r#"SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = '{oid}' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"#,
        ),
        (
            "d_t_4",
            r#"SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),
  pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, i.indisreplident, c2.reltablespace
FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i
  LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))
WHERE c.oid = '{oid}' AND c.oid = i.indrelid AND i.indexrelid = c2.oid
ORDER BY i.indisprimary DESC, c2.relname;"#,
        ),
        (
            "d_t_5",
            r#"SELECT pol.polname, pol.polpermissive,
  CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,
  pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
  pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid),
  CASE pol.polcmd
    WHEN 'r' THEN 'SELECT'
    WHEN 'a' THEN 'INSERT'
    WHEN 'w' THEN 'UPDATE'
    WHEN 'd' THEN 'DELETE'
    END AS cmd
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = '{oid}' ORDER BY 1;"#,
        ),
        (
            "d_t_6",
            r#"SELECT oid, stxrelid::pg_catalog.regclass, stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, stxname,
pg_catalog.pg_get_statisticsobjdef_columns(oid) AS columns,
  'd' = any(stxkind) AS ndist_enabled,
  'f' = any(stxkind) AS deps_enabled,
  'm' = any(stxkind) AS mcv_enabled,
stxstattarget
FROM pg_catalog.pg_statistic_ext
WHERE stxrelid = '{oid}'
ORDER BY nsp, stxname;"#,
        ),
        (
            "d_t_7",
            r#"SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid
     JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid
WHERE pc.oid ='{oid}' and pg_catalog.pg_relation_is_publishable('{oid}')
UNION
SELECT pubname
     , pg_get_expr(pr.prqual, c.oid)
     , (CASE WHEN pr.prattrs IS NOT NULL THEN
         (SELECT string_agg(attname, ', ')
           FROM pg_catalog.generate_series(0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s,
                pg_catalog.pg_attribute
          WHERE attrelid = pr.prrelid AND attnum = prattrs[s])
        ELSE NULL END) FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
     JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
WHERE pr.prrelid = '{oid}'
UNION
SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable('{oid}')
ORDER BY 1;"#,
        ),
        (
            "d_t_8",
            r#"SELECT c.oid::pg_catalog.regclass
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhparent AND i.inhrelid = '{oid}'
  AND c.relkind != 'p' AND c.relkind != 'I'
ORDER BY inhseqno;"#,
        ),
        (
            "d_t_9",
            r#"SELECT c.oid::pg_catalog.regclass, c.relkind, inhdetachpending, pg_catalog.pg_get_expr(c.relpartbound, c.oid)
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhrelid AND i.inhparent = '{oid}'
ORDER BY pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.oid::pg_catalog.regclass::pg_catalog.text;"#,
        ),
        (
            "di",
            r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner",
  c2.relname as "Table"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
     LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
     LEFT JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid
WHERE c.relkind IN ('i','I','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#,
        ),
        (
            "l",
            r#"SELECT d.datname as "Name",
       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
       pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
       d.datcollate as "Collate",
       d.datctype as "Ctype",
       d.daticulocale as "ICU Locale",
       CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "Locale Provider",
       pg_catalog.array_to_string(d.datacl, E'\n') AS "Access privileges"
FROM pg_catalog.pg_database d
ORDER BY 1;"#,
        ),
        (
            "dn",
            r#"SELECT n.nspname AS "Name",
  pg_catalog.pg_get_userbyid(n.nspowner) AS "Owner"
FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1;"#,
        ),
    ];
    const PGBENCH_PROBE: &str = r#"select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = 't' and o.n is not null group by 1, 2 order by 1 asc limit 1"#;
    const PGJDBC_GET_TABLES: &str = r#"SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME,  CASE n.nspname ~ '^pg_' OR n.nspname = 'information_schema'  WHEN true THEN CASE  WHEN n.nspname = 'pg_catalog' OR n.nspname = 'information_schema' THEN CASE c.relkind   WHEN 'r' THEN 'SYSTEM TABLE'   WHEN 'v' THEN 'SYSTEM VIEW'   WHEN 'i' THEN 'SYSTEM INDEX'   ELSE NULL   END  WHEN n.nspname = 'pg_toast' THEN CASE c.relkind   WHEN 'r' THEN 'SYSTEM TOAST TABLE'   WHEN 'i' THEN 'SYSTEM TOAST INDEX'   ELSE NULL   END  ELSE CASE c.relkind   WHEN 'r' THEN 'TEMPORARY TABLE'   WHEN 'p' THEN 'TEMPORARY TABLE'   WHEN 'i' THEN 'TEMPORARY INDEX'   WHEN 'S' THEN 'TEMPORARY SEQUENCE'   WHEN 'v' THEN 'TEMPORARY VIEW'   ELSE NULL   END  END  WHEN false THEN CASE c.relkind  WHEN 'r' THEN 'TABLE'  WHEN 'p' THEN 'PARTITIONED TABLE'  WHEN 'i' THEN 'INDEX'  WHEN 'P' then 'PARTITIONED INDEX'  WHEN 'S' THEN 'SEQUENCE'  WHEN 'v' THEN 'VIEW'  WHEN 'c' THEN 'TYPE'  WHEN 'f' THEN 'FOREIGN TABLE'  WHEN 'm' THEN 'MATERIALIZED VIEW'  ELSE NULL  END  ELSE NULL  END  AS TABLE_TYPE, d.description AS REMARKS,  '' as TYPE_CAT, '' as TYPE_SCHEM, '' as TYPE_NAME, '' AS SELF_REFERENCING_COL_NAME, '' AS REF_GENERATION  FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c  LEFT JOIN pg_catalog.pg_description d ON (c.oid = d.objoid AND d.objsubid = 0  and d.classoid = 'pg_class'::regclass)  WHERE c.relnamespace = n.oid  AND n.nspname LIKE 'public' AND c.relname LIKE '%' AND (false  OR ( c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ) )  ORDER BY TABLE_TYPE,TABLE_SCHEM,TABLE_NAME"#;
    const PGJDBC_GET_COLUMNS: &str = r#"SELECT * FROM (SELECT n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull,a.atttypmod,a.attlen,t.typtypmod,row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity,nullif(a.attgenerated, '') as attgenerated,pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc,dsc.description,t.typbasetype,t.typtype  FROM pg_catalog.pg_namespace n  JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid)  JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid)  JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid)  LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum)  LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)  LEFT JOIN pg_catalog.pg_class dc ON (dc.oid=dsc.classoid AND dc.relname='pg_class')  LEFT JOIN pg_catalog.pg_namespace dn ON (dc.relnamespace=dn.oid AND dn.nspname='pg_catalog')  WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped  AND n.nspname LIKE 'public' AND c.relname LIKE 't' ) c WHERE true  ORDER BY nspname,c.relname,attnum"#;

    /// pgjdbc 42.5's getPrimaryKeys(null, null, "t2") and getIndexInfo(null, null, "t2",
    /// false, false), captured with its driver log.
    const PGJDBC_GET_PRIMARY_KEYS: &str = r#"SELECT        result.TABLE_CAT,        result.TABLE_SCHEM,        result.TABLE_NAME,        result.COLUMN_NAME,        result.KEY_SEQ,        result.PK_NAME FROM      (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,   information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true  AND ct.relname = E't2' AND i.indisprimary  ) result where  result.A_ATTNUM = (result.KEYS).x  ORDER BY result.table_name, result.pk_name, result.key_seq"#;
    const PGJDBC_GET_INDEX_INFO: &str = r#"SELECT     tmp.TABLE_CAT,     tmp.TABLE_SCHEM,     tmp.TABLE_NAME,     tmp.NON_UNIQUE,     tmp.INDEX_QUALIFIER,     tmp.INDEX_NAME,     tmp.TYPE,     tmp.ORDINAL_POSITION,     trim(both '"' from pg_catalog.pg_get_indexdef(tmp.CI_OID, tmp.ORDINAL_POSITION, false)) AS COLUMN_NAME,   CASE tmp.AM_NAME     WHEN 'btree' THEN CASE tmp.I_INDOPTION[tmp.ORDINAL_POSITION - 1] & 1::smallint       WHEN 1 THEN 'D'       ELSE 'A'     END     ELSE NULL   END AS ASC_OR_DESC,     tmp.CARDINALITY,     tmp.PAGES,     tmp.FILTER_CONDITION FROM (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, NOT i.indisunique AS NON_UNIQUE,   NULL AS INDEX_QUALIFIER, ci.relname AS INDEX_NAME,   CASE i.indisclustered     WHEN true THEN 1    ELSE CASE am.amname       WHEN 'hash' THEN 2      ELSE 3    END   END AS TYPE,   (information_schema._pg_expandarray(i.indkey)).n AS ORDINAL_POSITION,   ci.reltuples AS CARDINALITY,   ci.relpages AS PAGES,   pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS FILTER_CONDITION,   ci.oid AS CI_OID,   i.indoption AS I_INDOPTION,   am.amname AS AM_NAME FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON (ct.oid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid)   JOIN pg_catalog.pg_am am ON (ci.relam = am.oid) WHERE true  AND ct.relname = E't2') AS tmp ORDER BY NON_UNIQUE, TYPE, INDEX_NAME, ORDINAL_POSITION "#;

    /// The table of the psql captures, created the way the server creates it: PostgreSQL type
    /// names kept as declared types (serial becomes INTEGER) plus `_shardgate_columns`.
    fn setup() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE _shardgate_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
                type_oid INTEGER NOT NULL, type_mod INTEGER NOT NULL,
                PRIMARY KEY (table_name, column_name));
             CREATE TABLE t (id INTEGER PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'x',
                amount numeric(10,2), at timestamptz, flag boolean);
             CREATE INDEX t_name ON t(name);
             INSERT INTO _shardgate_columns VALUES
                ('t', 'id', 23, -1), ('t', 'name', 1043, 24), ('t', 'amount', 1700, 655366),
                ('t', 'at', 1184, -1), ('t', 'flag', 16, -1);",
        )
        .unwrap();
        let info = pg_catalog::ServerInfo {
            database: "postgres".into(),
            user: "postgres".into(),
            server_version: "15.0 (shardgate 0.1.0)".into(),
        };
        pg_catalog::install(&conn, &info).unwrap();
        pg_catalog::refresh(&conn).unwrap();
        conn
    }

    /// Stand-in for the main crate's general rewrite: the remaining `::type` casts become
    /// CAST(... AS <SQLite type>).
    fn general_rewrite(stmt: &mut Statement) {
        let _ = visit_expressions_mut(stmt, |e| {
            if let Expr::Cast {
                kind: kind @ CastKind::DoubleColon,
                data_type,
                ..
            } = e
            {
                let t = data_type.to_string().to_lowercase();
                *data_type = if t.contains("int") || t == "oid" || t.contains("bool") {
                    DataType::Integer(None)
                } else if t.contains("float") || t.contains("real") || t.contains("double") {
                    DataType::Real
                } else {
                    DataType::Text
                };
                *kind = CastKind::Cast;
            }
            ControlFlow::<()>::Continue(())
        });
    }

    fn to_sqlite(sql: &str) -> String {
        let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        assert_eq!(stmts.len(), 1);
        let mut stmt = stmts.remove(0);
        assert!(reads_catalog(&stmt), "not seen as a catalog query: {sql}");
        rewrite_catalog_query(&mut stmt);
        general_rewrite(&mut stmt);
        stmt.to_string()
    }

    /// Runs a PostgreSQL catalog query the way the server would and renders rows like
    /// `psql -At -F '|' -P null='<NULL>'`; BOOLEAN-declared columns print as t/f, as the
    /// wire layer sends them.
    fn run(conn: &Connection, sql: &str) -> Vec<String> {
        pg_catalog::refresh(conn).unwrap();
        let sqlite_sql = to_sqlite(sql);
        let mut stmt = conn
            .prepare(&sqlite_sql)
            .unwrap_or_else(|e| panic!("{e}\n{sqlite_sql}"));
        let n = stmt.column_count();
        let bools: Vec<bool> = stmt
            .columns()
            .iter()
            .map(|c| {
                c.decl_type()
                    .is_some_and(|t| t.eq_ignore_ascii_case("BOOLEAN"))
            })
            .collect();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "<NULL>".to_string(),
                    rusqlite::types::ValueRef::Integer(v) if bools[i] => {
                        if v != 0 { "t" } else { "f" }.to_string()
                    }
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
        out
    }

    fn psql(name: &str, oid: &str) -> String {
        let (_, q) = PSQL15.iter().find(|(n, _)| *n == name).unwrap();
        q.replace("{oid}", oid)
    }

    /// Runs `\d t` the way psql does: look the table up, then query by its oid.
    fn describe_t(conn: &Connection) -> (String, Vec<Vec<String>>) {
        let first = run(conn, &psql("d_t_1", ""));
        assert_eq!(first.len(), 1);
        let oid = first[0].split('|').next().unwrap().to_string();
        let rest = (2..=9)
            .map(|i| run(conn, &psql(&format!("d_t_{i}"), &oid)))
            .collect();
        (first[0].clone(), rest)
    }

    #[test]
    fn psql_dt_matches_postgres() {
        let conn = setup();
        assert_eq!(run(&conn, &psql("dt", "")), ["public|t|table|postgres"]);
    }

    #[test]
    fn psql_describe_table_matches_postgres() {
        let conn = setup();
        let (first, rest) = describe_t(&conn);
        assert!(first.ends_with("|public|t"), "{first}");
        // PostgreSQL: 0|r|t|f|f|f|f|f|f||0||p|d|heap. relhasoids is the literal `false` of the
        // query, which SQLite returns as 0 without a declared type; psql only tests it for "t".
        assert_eq!(rest[0], ["0|r|t|f|f|f|f|0|f||0||p|d|heap"]);
        // PostgreSQL shows nextval('t_id_seq'::regclass) as id's default: SQLite's INTEGER
        // PRIMARY KEY has no default expression, so that one cell differs.
        assert_eq!(
            rest[1],
            [
                "id|integer|<NULL>|t|<NULL>||",
                "name|character varying(20)|'x'::character varying|t|<NULL>||",
                "amount|numeric(10,2)|<NULL>|f|<NULL>||",
                "at|timestamp with time zone|<NULL>|f|<NULL>||",
                "flag|boolean|<NULL>|f|<NULL>||",
            ]
        );
        assert_eq!(
            rest[2],
            [
                "t_pkey|t|t|f|t|CREATE UNIQUE INDEX t_pkey ON t USING btree (id)|PRIMARY KEY (id)|p|f|f|f|0",
                "t_name|f|f|f|t|CREATE INDEX t_name ON t USING btree (name)|<NULL>|<NULL>|<NULL>|<NULL>|f|0",
            ]
        );
        // Policies, extended statistics, publications, parents, partitions: none, as in PG.
        for r in &rest[3..] {
            assert!(r.is_empty(), "{r:?}");
        }
    }

    #[test]
    fn psql_di_matches_postgres() {
        let conn = setup();
        assert_eq!(
            run(&conn, &psql("di", "")),
            [
                "public|t_name|index|postgres|t",
                "public|t_pkey|index|postgres|t"
            ]
        );
    }

    #[test]
    fn psql_l_lists_the_one_database() {
        let conn = setup();
        // PostgreSQL also lists template0/template1, which do not exist here.
        assert_eq!(
            run(&conn, &psql("l", "")),
            ["postgres|postgres|UTF8|C.UTF-8|C.UTF-8|<NULL>|libc|<NULL>"]
        );
    }

    #[test]
    fn psql_dn_matches_postgres() {
        let conn = setup();
        assert_eq!(run(&conn, &psql("dn", "")), ["public|pg_database_owner"]);
    }

    #[test]
    fn psql_describe_unknown_table_finds_nothing() {
        let conn = setup();
        let q = psql("d_t_1", "").replace("^(t)$", "^(nosuch)$");
        assert!(run(&conn, &q).is_empty());
    }

    #[test]
    fn pgbench_partition_probe_returns_one_row() {
        let conn = setup();
        conn.execute_batch("CREATE TABLE pgbench_accounts (aid INTEGER PRIMARY KEY, bid INTEGER)")
            .unwrap();
        // Same answer as PostgreSQL 15 (public is the second entry of current_schemas(true)).
        assert_eq!(run(&conn, PGBENCH_PROBE), ["2|<NULL>|0"]);
        let accounts = PGBENCH_PROBE.replace("c.relname = 't'", "c.relname = 'pgbench_accounts'");
        assert_eq!(run(&conn, &accounts), ["2|<NULL>|0"]);
    }

    #[test]
    fn pgjdbc_get_tables_matches_postgres() {
        let conn = setup();
        assert_eq!(
            run(&conn, PGJDBC_GET_TABLES),
            ["<NULL>|public|t|TABLE|<NULL>|||||"]
        );
    }

    #[test]
    fn pgjdbc_get_columns_matches_postgres() {
        let conn = setup();
        // attnotnull is an OR expression, so it comes back as 1/0 (pgjdbc's getBoolean accepts
        // both); id's default differs as in \d.
        assert_eq!(
            run(&conn, PGJDBC_GET_COLUMNS),
            [
                "public|t|id|23|1|-1|4|-1|1|<NULL>|<NULL>|<NULL>|<NULL>|0|b",
                "public|t|name|1043|1|24|-1|-1|2|<NULL>|<NULL>|'x'::character varying|<NULL>|0|b",
                "public|t|amount|1700|0|655366|-1|-1|3|<NULL>|<NULL>|<NULL>|<NULL>|0|b",
                "public|t|at|1184|0|-1|8|-1|4|<NULL>|<NULL>|<NULL>|<NULL>|0|b",
                "public|t|flag|16|0|-1|1|-1|5|<NULL>|<NULL>|<NULL>|<NULL>|0|b",
            ]
        );
    }

    /// A table with a two-column primary key, declared after the key's columns, and a
    /// two-column index.
    fn setup_t2() -> Connection {
        let conn = setup();
        conn.execute_batch(
            "CREATE TABLE t2 (note text, b integer, a integer, PRIMARY KEY (a, b));
             CREATE INDEX t2_note_b ON t2 (note, b);
             INSERT INTO _shardgate_columns VALUES
                ('t2', 'note', 25, -1), ('t2', 'b', 23, -1), ('t2', 'a', 23, -1);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn pgjdbc_get_primary_keys_matches_postgres() {
        let conn = setup_t2();
        // One row per key column, in key order, with its 1-based position.
        assert_eq!(
            run(&conn, PGJDBC_GET_PRIMARY_KEYS),
            [
                "<NULL>|public|t2|a|1|t2_pkey",
                "<NULL>|public|t2|b|2|t2_pkey"
            ]
        );
        let on_t = PGJDBC_GET_PRIMARY_KEYS.replace("E't2'", "E't'");
        assert_eq!(run(&conn, &on_t), ["<NULL>|public|t|id|1|t_pkey"]);
    }

    #[test]
    fn pgjdbc_get_index_info_matches_postgres() {
        let conn = setup_t2();
        // NON_UNIQUE is `NOT indisunique`, an expression, so it comes back as 0/1.
        assert_eq!(
            run(&conn, PGJDBC_GET_INDEX_INFO),
            [
                "<NULL>|public|t2|0|<NULL>|t2_pkey|3|1|a|A|-1|0|<NULL>",
                "<NULL>|public|t2|0|<NULL>|t2_pkey|3|2|b|A|-1|0|<NULL>",
                "<NULL>|public|t2|1|<NULL>|t2_note_b|3|1|note|A|-1|0|<NULL>",
                "<NULL>|public|t2|1|<NULL>|t2_note_b|3|2|b|A|-1|0|<NULL>",
            ]
        );
    }

    #[test]
    fn set_returning_expandarray_becomes_a_series_join() {
        assert_eq!(
            rewritten(
                "SELECT (information_schema._pg_expandarray(i.indkey)).n AS k, _pg_expandarray(i.indkey) AS keys FROM pg_index i WHERE (_pg_expandarray(i.indkey)).x > 0"
            ),
            "SELECT _pg_expand.value AS k, pg_array_nth(i.indkey, _pg_expand.value) AS keys__x, _pg_expand.value AS keys__n FROM pg_index i, generate_series(1, cardinality(i.indkey)) AS _pg_expand WHERE pg_array_nth(i.indkey, _pg_expand.value) > 0"
        );
        assert_eq!(
            rewritten("SELECT (r.keys).x, (keys).n FROM (SELECT 1) r"),
            "SELECT r.keys__x, keys__n FROM (SELECT 1) r"
        );
        assert_eq!(
            rewritten("SELECT trim(both '\"' from a), trim(leading 'x' from b), trim(c)"),
            "SELECT trim(a, '\"'), ltrim(b, 'x'), trim(c)"
        );
        assert_eq!(
            rewritten("SELECT t.opts[t.n - 1], arr[2]"),
            "SELECT pg_array_elem(t.opts, t.n - 1), pg_array_elem(arr, 2)"
        );
    }

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite_catalog_query(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn regex_operators_become_regexp() {
        assert_eq!(
            rewritten(
                "SELECT 1 FROM pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default"
            ),
            "SELECT 1 FROM pg_class c WHERE c.relname REGEXP '^(t)$'"
        );
        assert_eq!(
            rewritten("SELECT a !~ 'x', a ~* 'y', a OPERATOR(pg_catalog.!~) 'z'"),
            "SELECT a NOT REGEXP 'x', a REGEXP ('(?i)' || 'y'), a NOT REGEXP 'z'"
        );
    }

    #[test]
    fn regclass_casts_depend_on_direction() {
        assert_eq!(
            rewritten(
                "SELECT c.oid::pg_catalog.regclass FROM pg_class c WHERE c.oid = 'public.t'::regclass"
            ),
            "SELECT regclass_out(c.oid) FROM pg_class c WHERE c.oid = regclass_in('public.t')"
        );
        assert_eq!(
            rewritten("SELECT $1::regclass::oid, t::regtype, 'int4'::regtype, x::oid, y::name"),
            "SELECT CAST(regclass_in($1) AS INTEGER), regtype_out(t), regtype_in('int4'), CAST(x AS INTEGER), CAST(y AS TEXT)"
        );
    }

    #[test]
    fn arrays_become_sqlite_forms() {
        assert_eq!(
            rewritten(
                "SELECT 1 WHERE a = ANY(ARRAY[1, 2]) AND b = ANY(SELECT 1) AND c = ANY(arr) AND d <> ALL(arr) AND k[0] = 1"
            ),
            "SELECT 1 WHERE a IN (1, 2) AND b IN (SELECT 1) AND pg_any_eq(c, arr) AND NOT pg_any_eq(d, arr) AND pg_array_elem(k, 0) = 1"
        );
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT relname FROM pg_class)"),
            "SELECT ('{' || coalesce((SELECT group_concat(relname, ',') FROM pg_class), '') || '}')"
        );
    }

    #[test]
    fn functions_lose_schema_and_gain_parentheses() {
        assert_eq!(
            rewritten(
                "SELECT pg_catalog.format_type(1, 2), current_user, session_user, CURRENT_TIMESTAMP, E'a\\nb'"
            ),
            "SELECT format_type(1, 2), current_user(), session_user(), CURRENT_TIMESTAMP, 'a\nb'"
        );
    }

    #[test]
    fn derived_column_aliases_move_into_the_select_list() {
        assert_eq!(
            rewritten("SELECT o.n FROM (SELECT 1) AS o(n)"),
            "SELECT o.n FROM (SELECT 1 AS n) AS o"
        );
    }

    #[test]
    fn reads_catalog_spots_catalog_relations() {
        let parse = |s: &str| {
            Parser::parse_sql(&PostgreSqlDialect {}, s)
                .unwrap()
                .remove(0)
        };
        assert!(reads_catalog(&parse("SELECT * FROM pg_class")));
        assert!(reads_catalog(&parse("SELECT * FROM pg_catalog.pg_foo")));
        assert!(reads_catalog(&parse(
            "SELECT * FROM information_schema.tables"
        )));
        assert!(reads_catalog(&parse(
            "SELECT * FROM t WHERE x IN (SELECT oid FROM pg_type)"
        )));
        assert!(!reads_catalog(&parse("SELECT * FROM t")));
        assert!(!reads_catalog(&parse("SELECT version()")));
    }

    #[test]
    fn rewriting_plain_queries_changes_nothing() {
        let sql = "SELECT a, count(*) FROM t WHERE b = $1 GROUP BY a ORDER BY 1";
        assert_eq!(rewritten(sql), sql);
    }
}
