//! Micro-benchmarks of the per-statement hot paths: planning a statement (first time and from
//! the plan cache), shard placement per key for each strategy, and encoding a 100-row result.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::types::Value;
use shardgate::frontend::values::encode_field;
use shardgate::router::placement::{Placement, ShardKey};
use shardgate::sql::plan::{PlanCache, plan_text};
use shardgate::sql::types::{PgType, TypeWithMod};
use shardgate::storage::Schema;

const POINT_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

fn planning(c: &mut Criterion) {
    let schema = Schema::default();
    c.bench_function(
        "plan point select, first time (parse + classify + rewrite)",
        |b| b.iter(|| black_box(plan_text(black_box(POINT_SELECT), &schema))),
    );
    let cache = PlanCache::default();
    cache.plan(POINT_SELECT, &schema);
    c.bench_function("plan point select, cached", |b| {
        b.iter(|| black_box(cache.plan(black_box(POINT_SELECT), &schema)))
    });
}

fn placement(c: &mut Criterion) {
    let names: Vec<String> = (1..=4).map(|i| format!("shard-{i}")).collect();
    let strategies = [
        ("hash", Placement::Hash { shards: 4 }),
        ("consistent_hash", Placement::consistent_hash(&names, 150)),
        (
            "range",
            Placement::Range {
                ranges: (0..4)
                    .map(|i| (i * 250_000 + 1, (i + 1) * 250_000))
                    .collect(),
            },
        ),
    ];
    for (name, placement) in strategies {
        let mut key = 0i64;
        c.bench_function(&format!("placement per key, {name}"), |b| {
            b.iter(|| {
                key = key % 1_000_000 + 1;
                black_box(placement.shard_for(&ShardKey::Int(black_box(key))))
            })
        });
    }
}

fn encoding(c: &mut Criterion) {
    let columns = [
        TypeWithMod::plain(PgType::Int4),
        TypeWithMod::plain(PgType::Text),
        TypeWithMod::plain(PgType::Float8),
        TypeWithMod::plain(PgType::Timestamptz),
    ];
    let rows: Vec<Vec<Value>> = (0..100)
        .map(|i| {
            vec![
                Value::Integer(i),
                Value::Text(format!("row number {i}")),
                Value::Real(i as f64 * 1.5),
                Value::Text("2026-11-26 08:00:00.123456+00".into()),
            ]
        })
        .collect();
    for (label, binary) in [("text", false), ("binary", true)] {
        c.bench_function(&format!("encode 100 rows x 4 columns, {label}"), |b| {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            b.iter(|| {
                buf.clear();
                for row in &rows {
                    for (value, ty) in row.iter().zip(columns) {
                        let _ = encode_field(&mut buf, value, ty, binary);
                    }
                }
                black_box(buf.len())
            })
        });
    }
}

criterion_group!(benches, planning, placement, encoding);
criterion_main!(benches);
