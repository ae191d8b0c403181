//! The schema as clients see it: every table's columns with the PostgreSQL type they were
//! declared with. SQLite keeps the declared type text, but not everything (a `bigserial`
//! key must be declared `INTEGER` to become the rowid), so shardgate records the declared
//! types in its own table, `_shardgate_columns`, written in the same transaction as the DDL.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;

use super::error::StorageError;
use crate::sql::types::{PgType, TypeWithMod, declared_type};

/// Tables whose names start with this belong to shardgate; clients cannot touch them.
pub const INTERNAL_PREFIX: &str = "_shardgate_";

pub fn create_internal_tables(conn: &Connection) -> Result<(), StorageError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _shardgate_columns (
            table_name TEXT NOT NULL,
            column_name TEXT NOT NULL,
            type_oid INTEGER NOT NULL,
            type_mod INTEGER NOT NULL,
            PRIMARY KEY (table_name, column_name)
        )",
    )?;
    Ok(())
}

/// A row of table, column, type oid and type modifier (as `_shardgate_columns` records them)
/// read as the declared type; `None` for an oid this version does not know.
fn declared_column(row: &rusqlite::Row) -> rusqlite::Result<(String, String, Option<TypeWithMod>)> {
    let oid: i64 = row.get(2)?;
    let typmod: i64 = row.get(3)?;
    let ty = PgType::from_oid(oid as u32).map(|pg| TypeWithMod {
        pg,
        typmod: typmod as i32,
    });
    Ok((row.get(0)?, row.get(1)?, ty))
}

/// Converts what a file written by an earlier version stored in a form this one does not
/// read: timestamptz columns held the text a client sent (offset and all), `numeric(p, s)`
/// columns held values not rounded to their scale. Each such column (one without its
/// [`store_triggers`]) gets its triggers, and its values are rewritten into the stored form.
/// It runs on a primary's writer in one transaction, so on a replicated shard the replicas
/// receive it through the log like any other write. Returns how many columns were
/// converted; a value that does not convert (a timestamptz that is not a timestamp) fails
/// the conversion, naming the table and column.
pub fn convert_stored_forms(conn: &super::SqlConn) -> Result<usize, StorageError> {
    use crate::sql::rewrite::quote_identifier;
    use crate::sql::types::{store_trigger_name, store_triggers};
    let columns: Vec<(String, String, TypeWithMod)> = conn.as_internal(|c| {
        let mut stmt = c.prepare(
            "SELECT m.name, p.name, k.type_oid, k.type_mod FROM _shardgate_columns AS k \
             JOIN sqlite_schema AS m ON lower(m.name) = k.table_name AND m.type = 'table' \
             JOIN pragma_table_info(m.name) AS p ON lower(p.name) = k.column_name",
        )?;
        let rows = stmt.query_map([], declared_column)?;
        let mut columns = Vec::new();
        for row in rows {
            let (table, column, ty) = row?;
            let Some(ty) = ty else {
                continue;
            };
            if ty.store_expression("").is_none() {
                continue;
            }
            let trigger = store_trigger_name(&table, &column, "INSERT");
            let converted: bool = c.query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'trigger' AND name = ?1",
                [&trigger],
                |row| row.get(0),
            )?;
            if !converted {
                columns.push((table, column, ty));
            }
        }
        Ok::<_, StorageError>(columns)
    })?;
    if columns.is_empty() {
        return Ok(0);
    }
    let triggers: Vec<Arc<str>> = columns
        .iter()
        .flat_map(|(table, column, ty)| store_triggers(table, column, *ty))
        .map(Arc::from)
        .collect();
    conn.begin()?;
    let converted = conn
        .with_ddl_logged(&triggers, || {
            triggers
                .iter()
                .try_for_each(|sql| Ok::<_, StorageError>(conn.conn.execute_batch(sql)?))
        })
        .and_then(|()| {
            columns.iter().try_for_each(|(table, column, ty)| {
                let (t, c) = (quote_identifier(table), quote_identifier(column));
                let stored = ty.store_expression(&c).unwrap_or_else(|| c.clone());
                conn.conn
                    .execute(
                        &format!("UPDATE {t} SET {c} = {stored} WHERE {c} IS NOT {stored}"),
                        [],
                    )
                    .map(|changed| {
                        tracing::info!(
                            "converted {changed} values of {table}.{column} to the stored form of {}",
                            ty.pg.wire_type().name()
                        )
                    })
                    .map_err(|e| {
                        let e = StorageError::from(e);
                        StorageError::new(
                            e.kind,
                            format!(
                                "cannot convert column {table}.{column} written by an earlier shardgate: {e}"
                            ),
                        )
                    })
            })
        })
        .and_then(|()| conn.commit().map(|_| columns.len()));
    if converted.is_err() {
        conn.rollback();
    }
    converted
}

/// A change to the recorded declared types that goes with a DDL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogChange {
    /// Record the declared types of a (new or altered) table's columns.
    Declare {
        table: String,
        columns: Vec<(String, TypeWithMod)>,
    },
    /// Forget a dropped table.
    Forget { table: String },
    /// A table was renamed.
    Rename { from: String, to: String },
}

pub fn apply_change(conn: &Connection, change: &CatalogChange) -> Result<(), StorageError> {
    match change {
        CatalogChange::Declare { table, columns } => {
            let mut stmt = conn.prepare_cached(
                "INSERT OR REPLACE INTO _shardgate_columns (table_name, column_name, type_oid, type_mod) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (column, ty) in columns {
                stmt.execute(rusqlite::params![
                    table.to_ascii_lowercase(),
                    column.to_ascii_lowercase(),
                    ty.pg.oid(),
                    ty.typmod
                ])?;
            }
        }
        CatalogChange::Forget { table } => {
            conn.execute(
                "DELETE FROM _shardgate_columns WHERE table_name = ?1",
                [table.to_ascii_lowercase()],
            )?;
        }
        CatalogChange::Rename { from, to } => {
            conn.execute(
                "UPDATE _shardgate_columns SET table_name = ?2 WHERE table_name = ?1",
                [from.to_ascii_lowercase(), to.to_ascii_lowercase()],
            )?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: TypeWithMod,
    pub not_null: bool,
    /// Part of the table's declared primary key.
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A snapshot of every user table, keyed by lower-case name.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    tables: HashMap<String, Arc<TableInfo>>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Arc<TableInfo>> {
        let name = name.strip_prefix("public.").unwrap_or(name);
        self.tables.get(&name.to_ascii_lowercase())
    }

    /// The declared type of `table.column`, if both exist.
    pub fn column_type(&self, table: &str, column: &str) -> Option<TypeWithMod> {
        self.table(table)?.column(column).map(|c| c.ty)
    }

    /// Reads the schema of `main`: SQLite's tables and views, with declared types from
    /// `_shardgate_columns` where recorded and from SQLite's declared type text otherwise.
    pub fn load(conn: &Connection) -> Result<Schema, StorageError> {
        let mut declared: HashMap<(String, String), TypeWithMod> = HashMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT table_name, column_name, type_oid, type_mod FROM _shardgate_columns",
            )?;
            let rows = stmt.query_map([], declared_column)?;
            for row in rows {
                if let (table, column, Some(ty)) = row? {
                    declared.insert((table, column), ty);
                }
            }
        }
        let mut names = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite^_%' ESCAPE '^' AND name NOT LIKE '^_shardgate^_%' ESCAPE '^'",
            )?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
            for row in rows {
                names.push(row?);
            }
        }
        let mut tables = HashMap::new();
        for name in names {
            let mut stmt =
                conn.prepare("SELECT name, type, \"notnull\", pk > 0 FROM pragma_table_info(?1)")?;
            let rows = stmt.query_map([&name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            })?;
            let mut columns = Vec::new();
            let lower = name.to_ascii_lowercase();
            for row in rows {
                let (column, decl, not_null, primary_key) = row?;
                let ty = declared
                    .get(&(lower.clone(), column.to_ascii_lowercase()))
                    .copied()
                    .unwrap_or_else(|| declared_type(&decl).ty);
                columns.push(ColumnInfo {
                    name: column,
                    ty,
                    not_null,
                    primary_key,
                });
            }
            tables.insert(lower, Arc::new(TableInfo { name, columns }));
        }
        Ok(Schema { tables })
    }
}
