//! PostgreSQL types as shardgate reports them, and how each maps onto SQLite.
//!
//! One table decides, for a declared type name (from a `CREATE TABLE`, a cast, or SQLite's
//! declared column type), which PostgreSQL type clients see, with its OID and type modifier,
//! and which SQLite type a cast to it becomes.

use pgwire::api::Type;

/// The PostgreSQL types shardgate understands. Anything else is reported as `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Varchar,
    Bpchar,
    Name,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Uuid,
    Json,
    Jsonb,
    Oid,
}

impl PgType {
    /// Every variant, for lookups by OID.
    pub(crate) const ALL: [PgType; 20] = [
        PgType::Bool,
        PgType::Int2,
        PgType::Int4,
        PgType::Int8,
        PgType::Float4,
        PgType::Float8,
        PgType::Numeric,
        PgType::Text,
        PgType::Varchar,
        PgType::Bpchar,
        PgType::Name,
        PgType::Bytea,
        PgType::Date,
        PgType::Time,
        PgType::Timestamp,
        PgType::Timestamptz,
        PgType::Uuid,
        PgType::Json,
        PgType::Jsonb,
        PgType::Oid,
    ];
}

/// A column or parameter type: the PostgreSQL type plus its modifier (`atttypmod`, -1 if none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeWithMod {
    pub pg: PgType,
    pub typmod: i32,
}

impl TypeWithMod {
    pub const fn plain(pg: PgType) -> Self {
        TypeWithMod { pg, typmod: -1 }
    }

    /// The declared scale of a `NUMERIC(p, s)`.
    pub fn numeric_scale(self) -> Option<usize> {
        (self.pg == PgType::Numeric && self.typmod >= 4)
            .then(|| ((self.typmod - 4) & 0xffff) as usize)
    }

    /// The declared precision of a `NUMERIC(p[, s])`.
    pub fn numeric_precision(self) -> Option<usize> {
        (self.pg == PgType::Numeric && self.typmod >= 4).then(|| ((self.typmod - 4) >> 16) as usize)
    }
}

impl TypeWithMod {
    /// A numeric whose values have `scale` digits after the point, as PostgreSQL prints the
    /// result of arithmetic and aggregates over numerics of known scale (PostgreSQL's typmod
    /// for it would be -1; the scale is carried here so the result prints as it does there).
    pub fn numeric_of_scale(scale: usize) -> Self {
        TypeWithMod {
            pg: PgType::Numeric,
            typmod: ((NUMERIC_MAX_PRECISION << 16) | scale as i32) + 4,
        }
    }

    /// SQL giving the form in which a value `value` (SQL) of this type is stored, for the
    /// types whose stored form is not whatever SQLite's affinity makes of it: a timestamptz
    /// as fixed-width UTC text, a `numeric(p, s)` rounded to its scale (half away from zero,
    /// as PostgreSQL rounds on assignment).
    pub fn store_expression(self, value: &str) -> Option<String> {
        match self.pg {
            PgType::Timestamptz => crate::storage::checked::cast_function(self.pg)
                .map(|cast| format!("{cast}({value})")),
            PgType::Numeric => self
                .numeric_scale()
                .map(|scale| format!("{}({value}, {scale})", super::numeric::ROUND_FUNCTION)),
            _ => None,
        }
    }
}

/// PostgreSQL's largest numeric precision.
const NUMERIC_MAX_PRECISION: i32 = 1000;

/// The triggers that keep every value a write puts into `table.column` in the stored form of
/// its type ([`TypeWithMod::store_expression`]), whatever expression produced it
/// (`INSERT ... SELECT`, another column, SQLite's `CURRENT_TIMESTAMP`, a literal default).
/// They run after the row is written and only change it when it is not in that form yet.
/// None for a type stored as SQLite makes it.
pub fn store_triggers(table: &str, column: &str, ty: TypeWithMod) -> Vec<String> {
    use super::rewrite::quote_identifier;
    let (t, c) = (quote_identifier(table), quote_identifier(column));
    let Some(stored) = ty.store_expression(&format!("NEW.{c}")) else {
        return Vec::new();
    };
    ["INSERT", "UPDATE"]
        .iter()
        .map(|event| {
            let on = match *event {
                "UPDATE" => format!("UPDATE OF {c}"),
                other => other.to_string(),
            };
            format!(
                "CREATE TRIGGER {} AFTER {on} ON {t} FOR EACH ROW WHEN NEW.{c} IS NOT {stored} \
                 BEGIN UPDATE {t} SET {c} = {stored} WHERE rowid = NEW.rowid; END",
                quote_identifier(&store_trigger_name(table, column, event))
            )
        })
        .collect()
}

/// The name of one of [`store_triggers`]: `event` is `INSERT` or `UPDATE`.
pub fn store_trigger_name(table: &str, column: &str, event: &str) -> String {
    format!(
        "{}store_{}_{}_{}",
        crate::storage::schema::INTERNAL_PREFIX,
        table.to_ascii_lowercase(),
        column.to_ascii_lowercase(),
        event.to_ascii_lowercase()
    )
}

impl PgType {
    pub fn oid(self) -> u32 {
        self.wire_type().oid()
    }

    pub fn wire_type(self) -> Type {
        match self {
            PgType::Bool => Type::BOOL,
            PgType::Int2 => Type::INT2,
            PgType::Int4 => Type::INT4,
            PgType::Int8 => Type::INT8,
            PgType::Float4 => Type::FLOAT4,
            PgType::Float8 => Type::FLOAT8,
            PgType::Numeric => Type::NUMERIC,
            PgType::Text => Type::TEXT,
            PgType::Varchar => Type::VARCHAR,
            PgType::Bpchar => Type::BPCHAR,
            PgType::Name => Type::NAME,
            PgType::Bytea => Type::BYTEA,
            PgType::Date => Type::DATE,
            PgType::Time => Type::TIME,
            PgType::Timestamp => Type::TIMESTAMP,
            PgType::Timestamptz => Type::TIMESTAMPTZ,
            PgType::Uuid => Type::UUID,
            PgType::Json => Type::JSON,
            PgType::Jsonb => Type::JSONB,
            PgType::Oid => Type::OID,
        }
    }

    pub fn from_oid(oid: u32) -> Option<PgType> {
        PgType::ALL.into_iter().find(|t| t.oid() == oid)
    }

    /// `pg_type.typlen`: the fixed width in bytes, or -1 for variable width.
    pub fn type_size(self) -> i16 {
        match self {
            PgType::Bool => 1,
            PgType::Int2 => 2,
            PgType::Int4 | PgType::Float4 | PgType::Date | PgType::Oid => 4,
            PgType::Int8
            | PgType::Float8
            | PgType::Time
            | PgType::Timestamp
            | PgType::Timestamptz => 8,
            PgType::Uuid => 16,
            PgType::Name => 64,
            _ => -1,
        }
    }

    /// The SQLite type a PostgreSQL cast to this type becomes.
    pub fn sqlite_cast_type(self) -> &'static str {
        match self {
            PgType::Bool | PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => "INTEGER",
            PgType::Float4 | PgType::Float8 => "REAL",
            PgType::Numeric => "NUMERIC",
            PgType::Bytea => "BLOB",
            _ => "TEXT",
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(self, PgType::Int2 | PgType::Int4 | PgType::Int8)
    }

    /// The inclusive range a value of an integer type must fit, as PostgreSQL enforces it.
    pub fn integer_range(self) -> Option<(i64, i64)> {
        match self {
            PgType::Int2 => Some((i16::MIN as i64, i16::MAX as i64)),
            PgType::Int4 => Some((i32::MIN as i64, i32::MAX as i64)),
            _ => None,
        }
    }
}

/// What a declared type name means: the reported type, and whether it is a serial
/// (auto-assigned integer key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredType {
    pub ty: TypeWithMod,
    pub serial: bool,
}

/// Maps a declared type name as PostgreSQL accepts it (`varchar(20)`, `DOUBLE PRECISION`,
/// `timestamp with time zone`, `int8`, `serial`, ...) to the type PostgreSQL reports.
/// Unknown names map to `text`, as SQLite would store them.
pub fn declared_type(name: &str) -> DeclaredType {
    let lower = name.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("pg_catalog.").unwrap_or(&lower);
    let (base, args) = match lower.find('(') {
        Some(open) => {
            let close = lower.rfind(')').unwrap_or(lower.len());
            let args: Vec<i32> = lower[open + 1..close.max(open + 1)]
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect();
            let rest = lower[close.min(lower.len())..].trim_start_matches(')');
            (format!("{}{}", lower[..open].trim(), rest), args)
        }
        None => (lower.to_string(), Vec::new()),
    };
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    let plain = |pg| DeclaredType {
        ty: TypeWithMod::plain(pg),
        serial: false,
    };
    let serial = |pg| DeclaredType {
        ty: TypeWithMod::plain(pg),
        serial: true,
    };
    let with_length = |pg, args: &[i32]| DeclaredType {
        ty: TypeWithMod {
            pg,
            typmod: args.first().map(|n| n + 4).unwrap_or(-1),
        },
        serial: false,
    };
    match base.as_str() {
        "bool" | "boolean" => plain(PgType::Bool),
        "int2" | "smallint" => plain(PgType::Int2),
        "int" | "int4" | "integer" | "mediumint" => plain(PgType::Int4),
        "int8" | "bigint" => plain(PgType::Int8),
        "smallserial" | "serial2" => serial(PgType::Int2),
        "serial" | "serial4" => serial(PgType::Int4),
        "bigserial" | "serial8" => serial(PgType::Int8),
        "real" | "float4" => plain(PgType::Float4),
        "float" | "float8" | "double" | "double precision" => plain(PgType::Float8),
        "numeric" | "decimal" | "dec" => DeclaredType {
            ty: TypeWithMod {
                pg: PgType::Numeric,
                typmod: match args.as_slice() {
                    [p] => (p << 16) + 4,
                    [p, s] => ((p << 16) | (s & 0xffff)) + 4,
                    _ => -1,
                },
            },
            serial: false,
        },
        "text" | "clob" | "string" | "" => plain(PgType::Text),
        "varchar" | "character varying" | "char varying" | "nvarchar" => {
            with_length(PgType::Varchar, &args)
        }
        "char" | "character" | "bpchar" | "nchar" => DeclaredType {
            ty: TypeWithMod {
                pg: PgType::Bpchar,
                typmod: args.first().map(|n| n + 4).unwrap_or(5),
            },
            serial: false,
        },
        "name" => plain(PgType::Name),
        "bytea" | "blob" => plain(PgType::Bytea),
        "date" => plain(PgType::Date),
        "time" | "time without time zone" => plain(PgType::Time),
        "timestamp" | "timestamp without time zone" | "datetime" => plain(PgType::Timestamp),
        "timestamptz" | "timestamp with time zone" => plain(PgType::Timestamptz),
        "uuid" => plain(PgType::Uuid),
        "json" => plain(PgType::Json),
        "jsonb" => plain(PgType::Jsonb),
        "oid" | "regclass" | "regtype" | "regproc" => plain(PgType::Oid),
        _ => plain(PgType::Text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_names_map_as_postgres_reports_them() {
        assert_eq!(declared_type("INTEGER").ty.pg, PgType::Int4);
        assert_eq!(declared_type("int").ty.pg, PgType::Int4);
        assert_eq!(declared_type("BIGINT").ty.pg, PgType::Int8);
        assert!(declared_type("bigserial").serial);
        assert_eq!(declared_type("bigserial").ty.pg, PgType::Int8);
        assert_eq!(declared_type("SERIAL").ty.pg, PgType::Int4);
        assert_eq!(declared_type("DOUBLE PRECISION").ty.pg, PgType::Float8);
        assert_eq!(declared_type("REAL").ty.pg, PgType::Float4);
        assert_eq!(
            declared_type("VARCHAR(20)").ty,
            TypeWithMod {
                pg: PgType::Varchar,
                typmod: 24
            }
        );
        assert_eq!(
            declared_type("NUMERIC(10,2)").ty,
            TypeWithMod {
                pg: PgType::Numeric,
                typmod: (10 << 16 | 2) + 4
            }
        );
        assert_eq!(
            declared_type("timestamp with time zone").ty.pg,
            PgType::Timestamptz
        );
        assert_eq!(declared_type("TIMESTAMP(3)").ty.pg, PgType::Timestamp);
        assert_eq!(declared_type("character(10)").ty.pg, PgType::Bpchar);
        assert_eq!(declared_type("something_odd").ty.pg, PgType::Text);
    }

    #[test]
    fn oids_round_trip() {
        for oid in [
            16, 20, 21, 23, 25, 700, 701, 1043, 1082, 1114, 1184, 1700, 2950, 114,
        ] {
            assert_eq!(PgType::from_oid(oid).map(PgType::oid), Some(oid));
        }
    }
}
