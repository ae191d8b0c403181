//! Looking at a replicated shard from a test: its files opened directly, and
//! `SHOW shardgate.replicas`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Every user table's schema and rows, read directly from a SQLite file. Rows are ordered by
/// primary key; a table without one is compared with its rowids, which its changes are
/// replicated by (the hidden rowid of a table with a primary key is not data).
pub fn dump(path: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut tables: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' \
             AND name NOT IN ('_shardgate_log', '_shardgate_position') ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.sort();
    let mut out = BTreeMap::new();
    for (name, sql) in tables {
        let key: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{name}') WHERE pk > 0 ORDER BY pk"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let query = if key.is_empty() {
            format!("SELECT rowid, * FROM \"{name}\" ORDER BY rowid")
        } else {
            format!("SELECT * FROM \"{name}\" ORDER BY {}", key.join(", "))
        };
        let mut stmt = conn.prepare(&query).unwrap();
        let width = stmt.column_count();
        let mut rows = vec![sql];
        let mut cursor = stmt.query([]).unwrap();
        while let Some(row) = cursor.next().unwrap() {
            let values: Vec<String> = (0..width)
                .map(|i| format!("{:?}", row.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect();
            rows.push(values.join("|"));
        }
        out.insert(name, rows);
    }
    out
}

pub fn files(data_dir: &Path) -> [PathBuf; 3] {
    ["primary", "replica-1", "replica-2"].map(|f| data_dir.join(format!("main/{f}.db")))
}

pub fn assert_replicas_identical(data_dir: &Path) {
    let [primary, r1, r2] = files(data_dir);
    let expected = dump(&primary);
    assert!(!expected.is_empty());
    for replica in [r1, r2] {
        let got = dump(&replica);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{}",
            replica.display()
        );
        for (table, rows) in &expected {
            assert_eq!(
                &got[table],
                rows,
                "table {table} differs in {}",
                replica.display()
            );
        }
    }
}

/// One row of `SHOW shardgate.replicas`, by column name.
pub struct Status(pub BTreeMap<String, String>);

impl Status {
    pub fn get(&self, column: &str) -> &str {
        self.0.get(column).map(String::as_str).unwrap_or_default()
    }
    pub fn number(&self, column: &str) -> u64 {
        self.get(column).parse().unwrap_or(0)
    }
}

pub async fn status(client: &Client) -> BTreeMap<String, Status> {
    let messages = client
        .simple_query("SHOW shardgate.replicas")
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            let columns: BTreeMap<String, String> = row
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                .collect();
            out.insert(columns["name"].clone(), Status(columns));
        }
    }
    out
}

/// Waits until both replicas are healthy and have applied everything.
pub async fn wait_caught_up(client: &Client, limit: Duration) -> BTreeMap<String, Status> {
    let started = Instant::now();
    loop {
        let rows = status(client).await;
        let ready = ["main-r1", "main-r2"].iter().all(|name| {
            rows.get(*name)
                .is_some_and(|r| r.get("healthy") == "t" && r.number("lag_records") == 0)
        });
        if ready {
            return rows;
        }
        assert!(
            started.elapsed() < limit,
            "replicas did not catch up: {:?}",
            rows.values().map(|r| &r.0).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
