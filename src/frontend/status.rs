//! The proxy's own status statements: `SHOW shardgate.replicas` (every database of every
//! shard, its replication state and counters) and `SHOW shardgate.shards` (every shard's
//! placement, rows, size and health).

use rusqlite::types::Value;

use super::Shared;
use super::query::{Outcome, ResultColumn};
use super::session::Session;
use crate::error::Error;
use crate::sql::types::{PgType, TypeWithMod};
use crate::storage::{ExecRequest, Intent};

/// `SHOW` of this name reports the databases of every shard and their replication state.
pub const REPLICAS_STATUS: &str = "shardgate.replicas";
/// `SHOW` of this name reports every shard: its key range, rows, size and health.
pub const SHARDS_STATUS: &str = "shardgate.shards";

fn columns(spec: &[(&str, PgType)]) -> Vec<ResultColumn> {
    spec.iter()
        .map(|(name, pg)| ResultColumn {
            name: (*name).into(),
            ty: TypeWithMod::plain(*pg),
        })
        .collect()
}

fn count(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Shared {
    /// `SHOW shardgate.replicas`: one row per database of every shard.
    pub(super) fn replicas_status(&self) -> Outcome {
        let columns = columns(&[
            ("name", PgType::Text),
            ("role", PgType::Text),
            ("healthy", PgType::Bool),
            ("weight", PgType::Int4),
            ("applied_lsn", PgType::Int8),
            ("lag_records", PgType::Int8),
            ("lag_seconds", PgType::Float8),
            ("reads", PgType::Int8),
            ("writes", PgType::Int8),
            ("errors", PgType::Int8),
            ("degraded_writes", PgType::Int8),
            ("apply_p50_ms", PgType::Float8),
            ("apply_p99_ms", PgType::Float8),
            ("status", PgType::Text),
        ]);
        let rows = self
            .router
            .shards
            .iter()
            .flat_map(|shard| shard.status())
            .map(|db| {
                vec![
                    Value::Text(db.name),
                    Value::Text(db.role.into()),
                    Value::Integer(i64::from(db.healthy)),
                    Value::Integer(i64::from(db.weight)),
                    count(db.applied_lsn),
                    count(db.lag_records),
                    Value::Real(db.lag_seconds),
                    count(db.reads),
                    count(db.writes),
                    count(db.errors),
                    count(db.degraded_writes),
                    db.apply_delay_ms
                        .map_or(Value::Null, |(p50, _)| Value::Real(p50)),
                    db.apply_delay_ms
                        .map_or(Value::Null, |(_, p99)| Value::Real(p99)),
                    Value::Text(db.problem.unwrap_or_else(|| "ok".into())),
                ]
            })
            .collect();
        Outcome::Rows {
            columns,
            rows,
            tag: "SHOW".into(),
        }
    }

    /// `SHOW shardgate.shards`: one row per shard with its placement, the rows of the sharded
    /// tables it holds, the size of its primary file and whether the primary answers.
    pub(super) async fn shards_status(&self, session: &Session) -> Result<Outcome, Error> {
        let columns = columns(&[
            ("name", PgType::Text),
            ("strategy", PgType::Text),
            ("min_key", PgType::Int8),
            ("max_key", PgType::Int8),
            ("rows", PgType::Int8),
            ("bytes", PgType::Int8),
            ("healthy", PgType::Bool),
        ]);
        let schema = self.backend.schema();
        let sharded: Vec<String> = self
            .router
            .sharding
            .as_ref()
            .map(|s| {
                s.sharded_tables()
                    .filter(|t| schema.table(t).is_some())
                    .map(|t| format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\"")))
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = Vec::new();
        for (shard, config) in self.router.shards.iter().zip(&self.config.shards) {
            let mut rows_held = 0i64;
            let mut healthy = true;
            for sql in &sharded {
                let counted = async {
                    let mut connection = shard
                        .primary
                        .session(Intent::Read, &session.canceller)
                        .await?;
                    connection
                        .execute(ExecRequest::sql(sql.as_str()), &session.canceller)
                        .await
                }
                .await;
                match counted {
                    Ok(output) => {
                        if let Some(Value::Integer(n)) = output.rows.first().and_then(|r| r.first())
                        {
                            rows_held += n;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("shard {} did not answer: {e}", shard.name);
                        healthy = false;
                    }
                }
            }
            let bytes: u64 = std::iter::once(config.primary.clone())
                .chain(crate::replication::snapshot::wal_companions(
                    &config.primary,
                ))
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            let (min_key, max_key) = config
                .key_range
                .map_or((Value::Null, Value::Null), |(min, max)| {
                    (Value::Integer(min), Value::Integer(max))
                });
            let strategy = self
                .config
                .sharding
                .as_ref()
                .map_or("none".to_string(), |s| s.strategy.to_string());
            rows.push(vec![
                Value::Text(shard.name.clone()),
                Value::Text(strategy),
                min_key,
                max_key,
                Value::Integer(rows_held),
                count(bytes),
                Value::Integer(i64::from(healthy)),
            ]);
        }
        Ok(Outcome::Rows {
            columns,
            rows,
            tag: "SHOW".into(),
        })
    }
}
