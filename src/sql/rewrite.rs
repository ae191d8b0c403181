//! Rewriting PostgreSQL statements into SQLite statements.
//!
//! Works on the sqlparser AST and prints it back, so literals and identifiers keep their
//! quoting. Expression forms (`$n`, `::type`, `ILIKE`, `E''`, ...) are rewritten by one
//! visitor; DDL gets per-statement treatment that also records the declared PostgreSQL types.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AlterTableOperation, CastKind, ColumnOption, DataType, Distinct, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArguments, Ident, LimitClause, ObjectName, ObjectNamePart, ObjectType,
    Query, SetExpr, Statement, TableConstraint, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::datetime;
use super::error::SqlError;
use super::types::{PgType, TypeWithMod, declared_type, store_trigger_name, store_triggers};
use crate::storage::schema::CatalogChange;

/// What a PostgreSQL statement becomes on SQLite.
#[derive(Debug, Clone, Default)]
pub struct Rewritten {
    pub statements: Vec<String>,
    pub catalog: Vec<CatalogChange>,
    pub changes_schema: bool,
}

/// Rewrites one parsed statement. Catalog queries come already rewritten for the emulated
/// catalog, which uses SQLite's own `generate_series` column (`value`).
pub fn rewrite(mut stmt: Statement, catalog_query: bool) -> Result<Rewritten, SqlError> {
    let mut visitor = ExprRewriter {
        error: None,
        rename_series_column: !catalog_query,
    };
    let _ = stmt.visit(&mut visitor);
    if let Some(error) = visitor.error {
        return Err(error);
    }
    match stmt {
        Statement::CreateTable(create) => rewrite_create_table(create),
        Statement::Drop {
            object_type,
            if_exists,
            names,
            ..
        } => {
            let (keyword, forget) = match object_type {
                ObjectType::Table => ("TABLE", true),
                ObjectType::View => ("VIEW", true),
                ObjectType::Index => ("INDEX", false),
                other => {
                    return Err(SqlError::Unsupported(format!(
                        "DROP {other} is not supported"
                    )));
                }
            };
            let exists = if if_exists { " IF EXISTS" } else { "" };
            Ok(Rewritten {
                statements: names
                    .iter()
                    .map(|n| format!("DROP {keyword}{exists} {}", unqualified(n)))
                    .collect(),
                catalog: if forget {
                    names
                        .iter()
                        .map(|n| CatalogChange::Forget {
                            table: name_text(n),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                changes_schema: true,
            })
        }
        Statement::Truncate(truncate) => Ok(Rewritten {
            statements: truncate
                .table_names
                .iter()
                .map(|t| format!("DELETE FROM {}", unqualified(&t.name)))
                .collect(),
            ..Default::default()
        }),
        Statement::AlterTable(alter) => {
            let table = unqualified(&alter.name);
            let mut out = Rewritten {
                changes_schema: true,
                ..Default::default()
            };
            for op in alter.operations {
                match op {
                    AlterTableOperation::AddConstraint { constraint, .. } => match constraint {
                        TableConstraint::PrimaryKey(pk) => {
                            let columns: Vec<String> =
                                pk.columns.iter().map(|c| c.to_string()).collect();
                            let index = pk
                                .name
                                .map(|n| n.value)
                                .unwrap_or_else(|| format!("{}_pkey", name_text(&alter.name)));
                            out.statements.push(format!(
                                "CREATE UNIQUE INDEX \"{index}\" ON {table} ({})",
                                columns.join(", ")
                            ));
                        }
                        TableConstraint::Unique(unique) => {
                            let columns: Vec<String> =
                                unique.columns.iter().map(|c| c.to_string()).collect();
                            let index = unique.name.map(|n| n.value).unwrap_or_else(|| {
                                format!("{}_{}_key", name_text(&alter.name), columns.join("_"))
                            });
                            out.statements.push(format!(
                                "CREATE UNIQUE INDEX \"{index}\" ON {table} ({})",
                                columns.join(", ")
                            ));
                        }
                        other => {
                            return Err(SqlError::Unsupported(format!(
                                "ALTER TABLE ADD {other} is not supported: SQLite cannot add this constraint to an existing table"
                            )));
                        }
                    },
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        let mut column_def = column_def;
                        let declared = declared_type(&column_def.data_type.to_string());
                        check_storable(declared.ty)?;
                        out.catalog.push(CatalogChange::Declare {
                            table: name_text(&alter.name),
                            columns: vec![(column_def.name.value.clone(), declared.ty)],
                        });
                        column_def.data_type = sqlite_column_type(&column_def.data_type, declared);
                        out.statements
                            .push(format!("ALTER TABLE {table} ADD COLUMN {column_def}"));
                        out.statements.extend(store_triggers(
                            &name_text(&alter.name),
                            &column_def.name.value,
                            declared.ty,
                        ));
                    }
                    AlterTableOperation::RenameTable { table_name } => {
                        let to = match &table_name {
                            sqlparser::ast::RenameTableNameKind::As(n)
                            | sqlparser::ast::RenameTableNameKind::To(n) => n.clone(),
                        };
                        out.catalog.push(CatalogChange::Rename {
                            from: name_text(&alter.name),
                            to: name_text(&to),
                        });
                        out.statements.push(format!(
                            "ALTER TABLE {table} RENAME TO {}",
                            unqualified(&to)
                        ));
                    }
                    AlterTableOperation::DropColumn { column_names, .. } => {
                        for column in &column_names {
                            // SQLite refuses to drop a column its triggers use.
                            for event in ["INSERT", "UPDATE"] {
                                out.statements.push(format!(
                                    "DROP TRIGGER IF EXISTS \"{}\"",
                                    store_trigger_name(
                                        &name_text(&alter.name),
                                        &column.value,
                                        event
                                    )
                                ));
                            }
                            out.statements
                                .push(format!("ALTER TABLE {table} DROP COLUMN {column}"));
                        }
                    }
                    other => out.statements.push(format!("ALTER TABLE {table} {other}")),
                }
            }
            Ok(out)
        }
        Statement::CreateIndex(mut index) => {
            index.using = None;
            index.concurrently = false;
            index.with.clear();
            index.nulls_distinct = None;
            index.include.clear();
            Ok(Rewritten {
                statements: vec![index.to_string()],
                changes_schema: true,
                ..Default::default()
            })
        }
        Statement::CreateView(_) => Ok(Rewritten {
            statements: vec![stmt.to_string()],
            changes_schema: true,
            ..Default::default()
        }),
        other => Ok(Rewritten {
            statements: vec![other.to_string()],
            ..Default::default()
        }),
    }
}

/// The text of a possibly schema-qualified name without a `public.` schema.
fn unqualified(name: &ObjectName) -> String {
    match name.0.as_slice() {
        [schema, table] if schema.to_string().eq_ignore_ascii_case("public") => table.to_string(),
        _ => name.to_string(),
    }
}

/// `name` as a double-quoted SQL identifier.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The bare (unquoted) last identifier of a name.
pub fn name_text(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => ident.value.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn custom_type(name: &str) -> DataType {
    DataType::Custom(ObjectName::from(vec![Ident::new(name)]), vec![])
}

/// The type text written into SQLite's schema: PostgreSQL's own name where SQLite gives it
/// the right affinity, `INTEGER` for serials (so they become the auto-assigned rowid), and
/// the affinity's name where PostgreSQL's name would mislead SQLite (`interval`, `point`).
fn sqlite_column_type(data_type: &DataType, declared: super::types::DeclaredType) -> DataType {
    if declared.serial {
        return custom_type("INTEGER");
    }
    let text = data_type.to_string().to_ascii_uppercase();
    let affinity_misled = text.contains("INT") && !declared.ty.pg.is_integer()
        || matches!(declared.ty.pg, PgType::Int8 | PgType::Int2) && !text.contains("INT");
    if affinity_misled {
        custom_type(declared.ty.pg.sqlite_cast_type())
    } else {
        data_type.clone()
    }
}

/// Refuses a column type whose values shardgate could not keep as PostgreSQL does.
fn check_storable(ty: TypeWithMod) -> Result<(), SqlError> {
    if ty.pg != PgType::Numeric {
        return Ok(());
    }
    let digits = super::numeric::EXACT_DIGITS;
    match (ty.numeric_precision(), ty.numeric_scale()) {
        (Some(precision), Some(_)) if precision <= digits => Ok(()),
        (Some(precision), _) => Err(SqlError::Unsupported(format!(
            "numeric({precision}, ...) is not supported by shardgate: it keeps numerics exact up to {digits} digits; declare numeric(p, s) with p <= {digits}"
        ))),
        _ => Err(SqlError::Unsupported(format!(
            "numeric without a precision and scale is not supported by shardgate: its values could not be kept exact; declare numeric(p, s) with p <= {digits}"
        ))),
    }
}

fn rewrite_create_table(mut create: sqlparser::ast::CreateTable) -> Result<Rewritten, SqlError> {
    let table = name_text(&create.name);
    let mut declared_columns = Vec::new();
    let mut checks = Vec::new();
    for column in &mut create.columns {
        let mut declared = declared_type(&column.data_type.to_string());
        check_storable(declared.ty)?;
        let identity = column.options.iter().any(|o| {
            matches!(
                o.option,
                ColumnOption::Generated { .. } | ColumnOption::Identity(_)
            )
        });
        if identity && declared.ty.pg.is_integer() {
            declared.serial = true;
        }
        declared_columns.push((column.name.value.clone(), declared.ty));
        column.data_type = sqlite_column_type(&column.data_type, declared);
        for option in &mut column.options {
            // SQLite accepts only literals bare; an expression default needs parentheses.
            if let ColumnOption::Default(expr) = &mut option.option
                && !matches!(
                    expr,
                    Expr::Value(_) | Expr::Nested(_) | Expr::UnaryOp { .. }
                )
            {
                *expr = Expr::Nested(Box::new(expr.clone()));
            }
        }
        column.options.retain(|o| {
            !matches!(
                o.option,
                ColumnOption::Generated { .. } | ColumnOption::Identity(_)
            )
        });
        let quoted = column.name.to_string();
        if let Some((low, high)) = declared.ty.pg.integer_range() {
            checks.push(format!(
                "CONSTRAINT \"{}{}\" CHECK ({quoted} BETWEEN {low} AND {high})",
                crate::storage::RANGE_CHECK_PREFIX,
                column.name.value
            ));
        }
        if let (Some(precision), Some(scale)) =
            (declared.ty.numeric_precision(), declared.ty.numeric_scale())
        {
            // PostgreSQL refuses what needs more integer digits than precision - scale once
            // rounded to the scale.
            checks.push(format!(
                "CONSTRAINT \"{}{}\" CHECK (abs(round({quoted}, {scale})) < 1e{})",
                crate::storage::RANGE_CHECK_PREFIX,
                column.name.value,
                precision.saturating_sub(scale)
            ));
        }
        if declared.ty.pg == PgType::Varchar && declared.ty.typmod > 4 {
            checks.push(format!(
                "CONSTRAINT \"{}{}\" CHECK (length({quoted}) <= {})",
                crate::storage::LENGTH_CHECK_PREFIX,
                column.name.value,
                declared.ty.typmod - 4
            ));
        }
    }
    create.table_options = sqlparser::ast::CreateTableOptions::None;
    create.unlogged = false;
    let mut sql = create.to_string();
    if !checks.is_empty() && create.query.is_none() {
        // Append the range checks inside the column list's closing parenthesis.
        if let Some(close) = sql.rfind(')') {
            let extra: String = checks.iter().map(|c| format!(", {c}")).collect();
            sql.insert_str(close, &extra);
        }
    }
    let mut statements = vec![sql];
    for (column, ty) in &declared_columns {
        statements.extend(store_triggers(&table, column, *ty));
    }
    Ok(Rewritten {
        statements,
        catalog: vec![CatalogChange::Declare {
            table,
            columns: declared_columns,
        }],
        changes_schema: true,
    })
}

/// Rewrites PostgreSQL expression forms into SQLite's, everywhere in a statement.
struct ExprRewriter {
    error: Option<SqlError>,
    /// Name `generate_series`' column after its alias, as PostgreSQL does.
    rename_series_column: bool,
}

impl ExprRewriter {
    fn refuse(&mut self, reason: String) -> ControlFlow<()> {
        self.error = Some(SqlError::Unsupported(reason));
        ControlFlow::Break(())
    }
}

fn function_name(function: &Function) -> String {
    name_text(&function.name).to_ascii_lowercase()
}

fn lower_call(expr: Expr) -> Expr {
    call("lower", expr)
}

fn call(function: &str, expr: Expr) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(function)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

impl VisitorMut for ExprRewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        query.locks.clear();
        // PostgreSQL sorts NULLs as larger than any value (last ascending, first descending);
        // SQLite sorts them as smaller. Saying so explicitly gives PostgreSQL's order.
        if let Some(order_by) = &mut query.order_by
            && let sqlparser::ast::OrderByKind::Expressions(terms) = &mut order_by.kind
        {
            for term in terms {
                if term.options.nulls_first.is_none() {
                    let descending =
                        matches!(term.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
                    term.options.nulls_first = Some(descending);
                }
            }
        }
        if let Some(LimitClause::LimitOffset {
            limit: limit @ None,
            offset: Some(_),
            ..
        }) = &mut query.limit_clause
        {
            // SQLite needs a LIMIT before OFFSET; -1 means no limit.
            *limit = Some(Expr::value(Value::Number("-1".into(), false)));
        }
        if let SetExpr::Select(select) = query.body.as_ref()
            && matches!(select.distinct, Some(Distinct::On(_)))
        {
            return self.refuse("SELECT DISTINCT ON is not supported".into());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = factor
            && self.rename_series_column
            && name_text(name).eq_ignore_ascii_case("generate_series")
        {
            // PostgreSQL names the single output column after the alias; SQLite's
            // generate_series calls it `value`.
            let alias_name = alias
                .as_ref()
                .map(|a| {
                    a.columns
                        .first()
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| a.name.clone())
                })
                .unwrap_or_else(|| Ident::new("generate_series"));
            let table_alias = alias
                .as_ref()
                .map(|a| a.name.clone())
                .unwrap_or_else(|| Ident::new("generate_series"));
            let arg_text: Vec<String> = args.args.iter().map(|a| a.to_string()).collect();
            let sql = format!(
                "SELECT * FROM (SELECT value AS {alias_name} FROM generate_series({})) AS {table_alias}",
                arg_text.join(", ")
            );
            match Parser::parse_sql(&PostgreSqlDialect {}, &sql) {
                Ok(mut parsed) => {
                    if let Some(Statement::Query(query)) = parsed.pop()
                        && let SetExpr::Select(mut select) = *query.body
                        && let Some(from) = select.from.pop()
                    {
                        *factor = from.relation;
                    }
                }
                Err(e) => return self.refuse(format!("generate_series: {e}")),
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast {
                kind,
                expr: inner,
                data_type,
                ..
            } => {
                let target = declared_type(&data_type.to_string()).ty.pg;
                if target == PgType::Bool
                    && let Expr::Value(v) = inner.as_ref()
                    && let Value::SingleQuotedString(s) = &v.value
                {
                    match parse_bool(s) {
                        Some(b) => {
                            *expr =
                                Expr::value(Value::Number(if b { "1" } else { "0" }.into(), false));
                            return ControlFlow::Continue(());
                        }
                        None => {
                            self.error = Some(SqlError::InvalidParameter(format!(
                                "invalid input syntax for type boolean: \"{s}\""
                            )));
                            return ControlFlow::Break(());
                        }
                    }
                }
                if target == PgType::Timestamptz {
                    let value = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                    *expr = call(datetime::STORE_FUNCTION, value);
                    return ControlFlow::Continue(());
                }
                *kind = CastKind::Cast;
                *data_type = custom_type(target.sqlite_cast_type());
            }
            Expr::Value(v) => match &mut v.value {
                Value::Placeholder(p) if p.starts_with('$') => {
                    *p = format!("?{}", &p[1..]);
                }
                Value::EscapedStringLiteral(s) | Value::UnicodeStringLiteral(s) => {
                    v.value = Value::SingleQuotedString(std::mem::take(s));
                }
                Value::DollarQuotedString(d) => {
                    v.value = Value::SingleQuotedString(std::mem::take(&mut d.value));
                }
                _ => {}
            },
            Expr::TypedString(typed) => {
                let timestamptz =
                    declared_type(&typed.data_type.to_string()).ty.pg == PgType::Timestamptz;
                let value = Expr::Value(typed.value.value.clone().into());
                *expr = if timestamptz {
                    call(datetime::STORE_FUNCTION, value)
                } else {
                    value
                };
            }
            Expr::ILike {
                negated,
                any: false,
                expr: left,
                pattern,
                escape_char,
            } => {
                *expr = Expr::Like {
                    negated: *negated,
                    any: false,
                    expr: Box::new(lower_call(std::mem::replace(
                        left.as_mut(),
                        Expr::value(Value::Null),
                    ))),
                    pattern: Box::new(lower_call(std::mem::replace(
                        pattern.as_mut(),
                        Expr::value(Value::Null),
                    ))),
                    escape_char: escape_char.take(),
                };
            }
            Expr::Function(function) => {
                if function.name.0.len() > 1 {
                    let last = function.name.0.pop();
                    function.name.0 = last.into_iter().collect();
                }
                match function_name(function).as_str() {
                    "string_agg" => {
                        function.name = ObjectName::from(vec![Ident::new("group_concat")])
                    }
                    "char_length" | "character_length" => {
                        function.name = ObjectName::from(vec![Ident::new("length")])
                    }
                    _ => {}
                }
            }
            Expr::Array(_) | Expr::AnyOp { .. } | Expr::AllOp { .. } => {
                return self.refuse(format!("{expr} is not supported: SQLite has no arrays"));
            }
            Expr::AtTimeZone { .. } => {
                return self.refuse("AT TIME ZONE is not supported".into());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// PostgreSQL's boolean input forms.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The declared types of a `CREATE TABLE`'s columns, for tests and type inference.
pub fn declared_columns(rewritten: &Rewritten) -> Vec<(String, TypeWithMod)> {
    rewritten
        .catalog
        .iter()
        .flat_map(|c| match c {
            CatalogChange::Declare { columns, .. } => columns.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(sql: &str) -> Vec<String> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(stmt, false).unwrap().statements
    }

    fn refused(sql: &str) -> SqlError {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(stmt, false).unwrap_err()
    }

    #[test]
    fn placeholders_casts_and_strings() {
        assert_eq!(
            sqlite("SELECT $1::int, E'a\\tb', $$x$$ FROM t WHERE id = $2"),
            vec!["SELECT CAST(?1 AS INTEGER), 'a\tb', 'x' FROM t WHERE id = ?2"]
        );
        assert_eq!(sqlite("SELECT 't'::boolean"), vec!["SELECT 1"]);
    }

    #[test]
    fn ilike_becomes_case_folded_like() {
        assert_eq!(
            sqlite("SELECT * FROM t WHERE name ILIKE 'A%'"),
            vec!["SELECT * FROM t WHERE lower(name) LIKE lower('A%')"]
        );
    }

    #[test]
    fn ddl_forms() {
        assert_eq!(
            sqlite("DROP TABLE IF EXISTS a, b CASCADE"),
            vec!["DROP TABLE IF EXISTS a", "DROP TABLE IF EXISTS b"]
        );
        assert_eq!(
            sqlite("TRUNCATE a, b"),
            vec!["DELETE FROM a", "DELETE FROM b"]
        );
        assert_eq!(
            sqlite("alter table pgbench_branches add primary key (bid)"),
            vec!["CREATE UNIQUE INDEX \"pgbench_branches_pkey\" ON pgbench_branches (bid)"]
        );
        let create = sqlite(
            "create table t (id bigserial primary key, n int, s varchar(5)) with (fillfactor=100)",
        );
        assert_eq!(create.len(), 1);
        assert!(
            create[0].starts_with("CREATE TABLE t (id INTEGER PRIMARY KEY, n INT, s VARCHAR(5)"),
            "{}",
            create[0]
        );
        assert!(
            create[0].contains("CHECK (n BETWEEN -2147483648 AND 2147483647)"),
            "{}",
            create[0]
        );
        assert!(
            create[0].contains("CHECK (length(s) <= 5)"),
            "{}",
            create[0]
        );
        assert!(!create[0].contains("fillfactor"));
    }

    #[test]
    fn generate_series_names_its_column_after_the_alias() {
        assert_eq!(
            sqlite("select aid from generate_series(1, 3) as aid"),
            vec!["SELECT aid FROM (SELECT value AS aid FROM generate_series(1, 3)) AS aid"]
        );
    }

    #[test]
    fn unsupported_forms_are_refused() {
        assert!(matches!(
            refused("SELECT DISTINCT ON (a) a FROM t"),
            SqlError::Unsupported(_)
        ));
        assert!(matches!(
            refused("SELECT ARRAY[1,2]"),
            SqlError::Unsupported(_)
        ));
    }
}
