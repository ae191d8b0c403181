//! Rewriting PostgreSQL statements into SQLite statements.
//!
//! Works on the sqlparser AST and prints it back, so literals and identifiers keep their
//! quoting. Expression forms (`$n`, `::type`, `ILIKE`, `E''`, ...) are rewritten by one
//! visitor; DDL gets per-statement treatment that also records the declared PostgreSQL types.
//!
//! The same visitor gives SQLite PostgreSQL's data exceptions: divisors, integer arithmetic
//! (typed by `infer::Scope` from the schema, the parameters and the literals, as PostgreSQL
//! resolves them) and casts go through the checking functions of `storage::checked`. It
//! decides what an expression needs from the expression as written, before its operands are
//! rewritten, and applies it once they are.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AlterTableOperation, AssignmentTarget, BinaryOperator, CastKind, ColumnOption, DataType,
    Distinct, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, LimitClause,
    ObjectName, ObjectNamePart, ObjectType, Query, SetExpr, Statement, TableConstraint,
    TableFactor, TableObject, UnaryOperator, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::error::SqlError;
use super::infer::Scope;
use super::types::{PgType, TypeWithMod, declared_type, store_trigger_name, store_triggers};
use crate::storage::checked;
use crate::storage::schema::{CatalogChange, Schema};

/// What a PostgreSQL statement becomes on SQLite.
#[derive(Debug, Clone, Default)]
pub struct Rewritten {
    pub statements: Vec<String>,
    pub catalog: Vec<CatalogChange>,
    pub changes_schema: bool,
}

/// Rewrites one parsed statement. Catalog queries come already rewritten for the emulated
/// catalog, which uses SQLite's own `generate_series` column (`value`). `types` tells the
/// types of the statement's expressions (its tables' columns, its parameters).
pub(crate) fn rewrite(
    mut stmt: Statement,
    catalog_query: bool,
    types: &Scope<'_>,
) -> Result<Rewritten, SqlError> {
    cast_assigned_literals(&mut stmt, types.schema());
    let mut visitor = ExprRewriter {
        error: None,
        rename_series_column: !catalog_query,
        types,
        checks: Vec::new(),
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

/// PostgreSQL reads a string literal assigned to a column with the input function of the
/// column's type (`'abc'` into an integer is `22P02`, `'yes'` into a boolean is true); SQLite
/// stores the text. Such a literal becomes a cast to the column's type, which the expression
/// visitor then checks like any other cast.
fn cast_assigned_literals(stmt: &mut Statement, schema: &Schema) {
    let cast = |literal: &mut Expr, ty: Option<TypeWithMod>| {
        if let (Expr::Value(v), Some(ty)) = (&*literal, ty)
            && matches!(v.value, Value::SingleQuotedString(_))
            && checked::cast_function(ty.pg).is_some()
        {
            *literal = Expr::Cast {
                kind: CastKind::DoubleColon,
                expr: Box::new(take(literal)),
                data_type: custom_type(ty.pg.wire_type().name()),
                format: None,
            };
        }
    };
    match stmt {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return;
            };
            let table = name_text(name);
            let columns = super::infer::insert_columns(&table, &insert.columns, schema);
            if let Some(source) = &mut insert.source
                && let SetExpr::Values(values) = source.body.as_mut()
            {
                for row in &mut values.rows {
                    for (expr, column) in row.iter_mut().zip(&columns) {
                        cast(expr, schema.column_type(&table, column));
                    }
                }
            }
        }
        Statement::Update(update) => {
            let TableFactor::Table { name, .. } = &update.table.relation else {
                return;
            };
            let table = name_text(name);
            for assignment in &mut update.assignments {
                if let AssignmentTarget::ColumnName(column) = &assignment.target {
                    cast(
                        &mut assignment.value,
                        schema.column_type(&table, &name_text(column)),
                    );
                }
            }
        }
        _ => {}
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
        // bigint needs the check too: SQLite keeps an integer literal beyond 64 bits as a float.
        let range = match declared.ty.pg {
            PgType::Int8 => Some((i64::MIN, i64::MAX)),
            other => other.integer_range(),
        };
        if let Some((low, high)) = range {
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
struct ExprRewriter<'s, 'a> {
    error: Option<SqlError>,
    /// Name `generate_series`' column after its alias, as PostgreSQL does.
    rename_series_column: bool,
    types: &'s Scope<'a>,
    /// What each expression on the path from the root needs checked, decided from the
    /// expression as the client wrote it (before its operands are rewritten).
    checks: Vec<Check>,
}

/// A PostgreSQL data check an expression gets on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    /// Integer arithmetic whose result must fit this type.
    IntegerResult(PgType),
    /// Float arithmetic of this type (overflow is an error, not Infinity).
    FloatResult(PgType),
    /// A cast of a float to an integer type (which rounds half to even).
    CastFromFloat,
}

impl ExprRewriter<'_, '_> {
    fn refuse(&mut self, reason: String) -> ControlFlow<()> {
        self.error = Some(SqlError::Unsupported(reason));
        ControlFlow::Break(())
    }
}

fn function_name(function: &Function) -> String {
    name_text(&function.name).to_ascii_lowercase()
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn operator_char(op: &BinaryOperator) -> char {
    match op {
        BinaryOperator::Plus => '+',
        BinaryOperator::Minus => '-',
        BinaryOperator::Multiply => '*',
        BinaryOperator::Divide => '/',
        _ => '?',
    }
}

fn take(expr: &mut Expr) -> Expr {
    std::mem::replace(expr, Expr::value(Value::Null))
}

fn integer_literal(n: i64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

/// PostgreSQL's LIKE escapes with a backslash unless the statement names another escape (or
/// none, with `ESCAPE ''`); SQLite has no escape unless told.
fn like_escape(escape: Option<Box<Expr>>) -> Option<Box<Expr>> {
    match escape {
        None => Some(Box::new(Expr::value(Value::SingleQuotedString(
            "\\".into(),
        )))),
        Some(e) if matches!(&*e, Expr::Value(v) if v.value == Value::SingleQuotedString(String::new())) => {
            None
        }
        other => other,
    }
}

impl ExprRewriter<'_, '_> {
    fn check_of(&self, expr: &Expr) -> Check {
        match expr {
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide,
                right,
            } => {
                let integer = |e: &Expr| self.types.expr_type(e).is_some_and(|t| t.pg.is_integer());
                match self.types.expr_type(expr).map(|t| t.pg) {
                    Some(result) if integer(left) && integer(right) => Check::IntegerResult(result),
                    Some(result @ (PgType::Float4 | PgType::Float8)) => Check::FloatResult(result),
                    _ => Check::None,
                }
            }
            // -x and abs(x) leave the type's range for its minimum.
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: operand,
            } => self.integer_result(operand),
            Expr::Function(function) if function_name(function) == "abs" => match &function.args {
                FunctionArguments::List(list) => match list.args.as_slice() {
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(operand))] => {
                        self.integer_result(operand)
                    }
                    _ => Check::None,
                },
                _ => Check::None,
            },
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if declared_type(&data_type.to_string()).ty.pg.is_integer()
                && self
                    .types
                    .expr_type(inner)
                    .is_some_and(|t| matches!(t.pg, PgType::Float4 | PgType::Float8)) =>
            {
                Check::CastFromFloat
            }
            _ => Check::None,
        }
    }

    /// The check of an operation on one integer operand, whose result has its type.
    fn integer_result(&self, operand: &Expr) -> Check {
        match self.types.expr_type(operand) {
            Some(t) if t.pg.is_integer() => Check::IntegerResult(t.pg),
            _ => Check::None,
        }
    }

    /// `CAST(inner AS target)` in SQLite, through the checking function where SQLite's own
    /// cast would not raise PostgreSQL's errors.
    fn cast(inner: Expr, target: TypeWithMod, check: Check) -> Expr {
        let Some(function) = checked::cast_function(target.pg) else {
            if target.pg == PgType::Varchar && target.typmod > 4 {
                // An explicit cast to varchar(n) truncates.
                let text = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(inner),
                    data_type: custom_type("TEXT"),
                    format: None,
                };
                return call(
                    "substr",
                    vec![
                        text,
                        integer_literal(1),
                        integer_literal(i64::from(target.typmod - 4)),
                    ],
                );
            }
            return Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(inner),
                data_type: custom_type(target.pg.sqlite_cast_type()),
                format: None,
            };
        };
        let mut args = vec![inner];
        if check == Check::CastFromFloat {
            args.push(integer_literal(1));
        }
        if let (Some(precision), Some(scale)) = (target.numeric_precision(), target.numeric_scale())
        {
            args.push(integer_literal(precision as i64));
            args.push(integer_literal(scale as i64));
        }
        call(function, args)
    }
}

impl VisitorMut for ExprRewriter<'_, '_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let check = self.check_of(expr);
        self.checks.push(check);
        ControlFlow::Continue(())
    }

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
        let check = self.checks.pop().unwrap_or(Check::None);
        match expr {
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                let target = declared_type(&data_type.to_string()).ty;
                if target.pg == PgType::Bool
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
                *expr = Self::cast(take(inner), target, check);
            }
            Expr::BinaryOp {
                op: BinaryOperator::Divide,
                right,
                ..
            } => {
                // SQLite divides by zero into NULL; PostgreSQL raises 22012.
                let divisor = take(right);
                **right = call(checked::NONZERO, vec![divisor]);
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Modulo,
                right,
            } => {
                *expr = call(checked::MODULO, vec![take(left), take(right)]);
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
                let target = declared_type(&typed.data_type.to_string()).ty;
                let value = Expr::Value(typed.value.value.clone().into());
                *expr = match checked::cast_function(target.pg) {
                    Some(_) => Self::cast(value, target, Check::None),
                    None => value,
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
                    expr: Box::new(call("lower", vec![take(left)])),
                    pattern: Box::new(call("lower", vec![take(pattern)])),
                    escape_char: like_escape(escape_char.take()),
                };
            }
            Expr::Like {
                any: false,
                escape_char,
                ..
            } => {
                *escape_char = like_escape(escape_char.take());
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
        match check {
            Check::IntegerResult(ty) => {
                if let Some(function) = checked::arithmetic_check(ty) {
                    *expr = call(function, vec![take(expr)]);
                }
            }
            Check::FloatResult(ty) => {
                if let Expr::BinaryOp { left, op, right } = expr
                    && let Some(function) = checked::float_arithmetic(ty, operator_char(op))
                {
                    *expr = call(&function, vec![take(left), take(right)]);
                }
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
        let schema = crate::storage::schema::Schema::default();
        rewrite(stmt.clone(), false, &Scope::of(&stmt, &schema))
            .unwrap()
            .statements
    }

    fn refused(sql: &str) -> SqlError {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let schema = crate::storage::schema::Schema::default();
        rewrite(stmt.clone(), false, &Scope::of(&stmt, &schema)).unwrap_err()
    }

    #[test]
    fn placeholders_casts_and_strings() {
        assert_eq!(
            sqlite("SELECT $1::int, E'a\\tb', $$x$$ FROM t WHERE id = $2"),
            vec!["SELECT sg_cast_int4(?1), 'a\tb', 'x' FROM t WHERE id = ?2"]
        );
        assert_eq!(sqlite("SELECT 't'::boolean"), vec!["SELECT 1"]);
    }

    #[test]
    fn ilike_becomes_case_folded_like() {
        assert_eq!(
            sqlite("SELECT * FROM t WHERE name ILIKE 'A%'"),
            vec!["SELECT * FROM t WHERE lower(name) LIKE lower('A%') ESCAPE '\\'"]
        );
    }

    #[test]
    fn like_gets_postgres_default_escape() {
        assert_eq!(
            sqlite(
                "SELECT 1 WHERE 'a' NOT LIKE '100\\%' AND 'b' LIKE 'x!%' ESCAPE '!' AND 'c' LIKE 'y' ESCAPE ''"
            ),
            vec![
                "SELECT 1 WHERE 'a' NOT LIKE '100\\%' ESCAPE '\\' AND 'b' LIKE 'x!%' ESCAPE '!' AND 'c' LIKE 'y'"
            ]
        );
    }

    #[test]
    fn divisors_integer_arithmetic_and_casts_are_checked() {
        assert_eq!(
            sqlite(
                "SELECT 1 / 0, 5 % 2, 2147483647 + 1, 1.5 * 2, '1'::int8, 2.5::float8::int2, 'x'::numeric(5,2), '{}'::json"
            ),
            vec![
                "SELECT sg_int4(1 / sg_nonzero(0)), sg_mod(5, 2), sg_int4(2147483647 + 1), 1.5 * 2, sg_cast_int8('1'), sg_cast_int2(sg_cast_float8(2.5), 1), sg_cast_numeric('x', 5, 2), sg_cast_json('{}')"
            ]
        );
        assert_eq!(
            sqlite("SELECT DATE '2024-01-05', 'abc'::varchar(2), x::text FROM t"),
            vec![
                "SELECT sg_cast_date('2024-01-05'), substr(CAST('abc' AS TEXT), 1, 2), CAST(x AS TEXT) FROM t"
            ]
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
