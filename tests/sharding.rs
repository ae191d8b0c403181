//! Sharding through the wire: rows land on the shard the placement definition predicts (each
//! shard file opened directly), single-key statements touch one shard, and what cannot be done
//! correctly across shards is refused.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use shardgate::router::placement::{Placement, ShardKey};
use tokio_postgres::{Client, SimpleQueryMessage};

const SHARDS: [&str; 4] = ["shard-1", "shard-2", "shard-3", "shard-4"];

fn sharded_config(strategy: &str) -> String {
    let mut sections = format!(
        "[sharding]\nstrategy = \"{strategy}\"\n\
         tables = [{{ name = \"users\", key = \"id\" }}, {{ name = \"orders\", key = \"user_id\" }}, {{ name = \"tags\", key = \"label\" }}]\n\
         reference_tables = [\"countries\"]\n"
    );
    for (i, name) in SHARDS.iter().enumerate() {
        sections.push_str(&format!(
            "[[shards]]\nname = \"{name}\"\nprimary = \"{name}/primary.db\"\n"
        ));
        if strategy == "range" {
            let low = i as i64 * 2500 + 1;
            sections.push_str(&format!("min_key = {low}\nmax_key = {}\n", low + 2499));
        }
    }
    common::config_text("scram-sha-256", "app", &sections)
}

fn placement(strategy: &str) -> Placement {
    let names: Vec<String> = SHARDS.iter().map(|s| s.to_string()).collect();
    match strategy {
        "hash" => Placement::Hash { shards: 4 },
        "consistent_hash" => Placement::consistent_hash(&names, 150),
        _ => Placement::Range {
            ranges: (0..4).map(|i| (i * 2500 + 1, i * 2500 + 2500)).collect(),
        },
    }
}

fn shard_file(data_dir: &Path, shard: &str) -> Connection {
    Connection::open_with_flags(
        data_dir.join(format!("{shard}/primary.db")),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

async fn create_schema(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE users (id INT PRIMARY KEY, name TEXT, age INT);
             CREATE TABLE orders (id INT, user_id INT, total INT);
             CREATE TABLE tags (label TEXT PRIMARY KEY, n INT);
             CREATE TABLE countries (code TEXT PRIMARY KEY, name TEXT);",
        )
        .await
        .unwrap();
}

fn sqlstate(err: &tokio_postgres::Error) -> &str {
    err.code().map(|c| c.code()).unwrap_or("")
}

/// Per primary: (reads, writes) from SHOW shardgate.replicas.
async fn counters(client: &Client) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for message in client
        .simple_query("SHOW shardgate.replicas")
        .await
        .unwrap()
    {
        if let SimpleQueryMessage::Row(row) = message {
            let number = |c: &str| row.get(c).unwrap_or("0").parse::<u64>().unwrap_or(0);
            out.insert(
                row.get("name").unwrap_or("").to_string(),
                (number("reads"), number("writes")),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_land_where_each_strategy_says() {
    for strategy in ["hash", "consistent_hash", "range"] {
        let server = common::start_config(&sharded_config(strategy)).await;
        let client = server.connect().await;
        create_schema(&client).await;
        // Multi-row INSERTs are split across shards; the rest goes one prepared row at a time.
        for chunk in (1..=9_500i64).collect::<Vec<_>>().chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|k| format!("({k}, 'user {k}', {})", k % 90))
                .collect();
            client
                .batch_execute(&format!("INSERT INTO users VALUES {}", values.join(", ")))
                .await
                .unwrap();
        }
        let insert = client
            .prepare("INSERT INTO users (id, name) VALUES ($1, $2)")
            .await
            .unwrap();
        for key in 9_501..=10_000i32 {
            client
                .execute(&insert, &[&key, &format!("user {key}")])
                .await
                .unwrap();
        }
        let expected = placement(strategy);
        let mut seen = HashSet::new();
        for (index, shard) in SHARDS.iter().enumerate() {
            let file = shard_file(&server.data_dir, shard);
            let keys: Vec<i64> = file
                .prepare("SELECT id FROM users")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(!keys.is_empty(), "{strategy}: {shard} got no rows");
            for key in keys {
                assert_eq!(
                    expected.shard_for(&ShardKey::Int(key)).unwrap(),
                    index,
                    "{strategy}: key {key} is on {shard}"
                );
                assert!(seen.insert(key), "{strategy}: key {key} stored twice");
            }
        }
        assert_eq!(seen.len(), 10_000, "{strategy}");
        let total: i64 = client
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(total, 10_000, "{strategy}");

        if strategy != "range" {
            // Text keys hash their UTF-8 bytes.
            for label in ["alice", "bob", "ключ", "名前", ""] {
                client
                    .execute("INSERT INTO tags VALUES ($1, 1)", &[&label])
                    .await
                    .unwrap();
                let shard = expected.shard_for(&ShardKey::Text(label.into())).unwrap();
                let found: i64 = shard_file(&server.data_dir, SHARDS[shard])
                    .query_row("SELECT count(*) FROM tags WHERE label = ?1", [label], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(
                    found, 1,
                    "{strategy}: tag {label:?} not on {}",
                    SHARDS[shard]
                );
            }
        } else {
            // A key outside every range is refused, never placed by guess.
            let err = client
                .batch_execute("INSERT INTO users VALUES (10001, 'x', 1)")
                .await
                .unwrap_err();
            assert_eq!(sqlstate(&err), "0A000", "{err}");
            // A range query only reaches the shards whose ranges overlap it.
            let before = counters(&client).await;
            let n: i64 = client
                .query_one(
                    "/* shardgate:primary */ SELECT count(*) FROM users WHERE id BETWEEN 2400 AND 2600",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 201);
            let after = counters(&client).await;
            let touched: Vec<&String> = after
                .iter()
                .filter(|(name, (reads, _))| before.get(*name).is_none_or(|(r, _)| r != reads))
                .map(|(name, _)| name)
                .collect();
            assert_eq!(touched, ["shard-1", "shard-2"]);
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_key_statements_touch_one_shard_and_cross_shard_writes_are_refused() {
    let server = common::start_config(&sharded_config("hash")).await;
    let mut client = server.connect().await;
    create_schema(&client).await;
    client
        .batch_execute(
            "INSERT INTO users VALUES (1, 'one', 10), (2, 'two', 20), (42, 'answer', 42);
             INSERT INTO countries VALUES ('fr', 'France');",
        )
        .await
        .unwrap();
    // The golden vectors: 1 → shard-4, 2 → shard-1, 42 → shard-3.
    let before = counters(&client).await;
    let select = client
        .prepare("SELECT name FROM users WHERE id = $1")
        .await
        .unwrap();
    for _ in 0..50 {
        let row = client.query_one(&select, &[&42i32]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "answer");
    }
    client
        .execute("UPDATE users SET age = age + 1 WHERE id = $1", &[&42i32])
        .await
        .unwrap();
    let after = counters(&client).await;
    for shard in SHARDS {
        let (reads, writes) = (
            after[shard].0 - before[shard].0,
            after[shard].1 - before[shard].1,
        );
        if shard == "shard-3" {
            assert_eq!((reads, writes), (50, 1), "{shard}");
        } else {
            assert_eq!((reads, writes), (0, 0), "{shard} was touched");
        }
    }

    // A transaction may write on one shard only.
    let txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO users VALUES (1001, 'a', 1)", &[])
        .await
        .unwrap();
    let first_shard = placement("hash").shard_for(&ShardKey::Int(1001)).unwrap();
    let other = (1002..)
        .find(|k| placement("hash").shard_for(&ShardKey::Int(*k)).unwrap() != first_shard)
        .unwrap();
    let err = txn
        .execute(&format!("INSERT INTO users VALUES ({other}, 'b', 1)"), &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "0A000");
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(message.contains(SHARDS[first_shard]), "{message}");
    drop(txn);
    let kept: i64 = client
        .query_one("SELECT count(*) FROM users WHERE id = 1001", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 0, "a refused transaction left a row behind");

    // Reads and writes of one shard in one transaction, seeing its own writes.
    let txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO users VALUES (1001, 'a', 1)", &[])
        .await
        .unwrap();
    let name: String = txn
        .query_one("SELECT name FROM users WHERE id = 1001", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "a");
    let everyone: i64 = txn
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(everyone, 4);
    txn.commit().await.unwrap();

    // The shard key may change only within its shard.
    let same_shard = (5000..)
        .find(|k| placement("hash").shard_for(&ShardKey::Int(*k)).unwrap() == 3)
        .unwrap();
    let err = client
        .batch_execute("UPDATE users SET id = 2 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "0A000");
    client
        .batch_execute(&format!("UPDATE users SET id = {same_shard} WHERE id = 1"))
        .await
        .unwrap();

    // Writes over every shard, outside a transaction, count every shard's rows.
    let updated = client
        .execute("UPDATE users SET age = 0 WHERE age IS NOT NULL", &[])
        .await
        .unwrap();
    assert_eq!(updated, 4);
    // A reference-table write reaches every shard and counts once.
    let inserted = client
        .execute("INSERT INTO countries VALUES ('de', 'Germany')", &[])
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    for shard in SHARDS {
        let n: i64 = shard_file(&server.data_dir, shard)
            .query_row("SELECT count(*) FROM countries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "{shard}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_hints_and_shard_statistics() {
    let server = common::start_config(&sharded_config("consistent_hash")).await;
    let client = server.connect().await;
    create_schema(&client).await;
    let rows: String = (1..=1000)
        .map(|k| format!("{k}\tcopied {k}\t{}\n", k % 7))
        .collect();
    let sink = client
        .copy_in("COPY users (id, name, age) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    use futures::SinkExt;
    sink.send(bytes::Bytes::from(rows)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1000);
    let expected = placement("consistent_hash");
    let mut per_shard = [0i64; 4];
    for k in 1..=1000 {
        per_shard[expected.shard_for(&ShardKey::Int(k)).unwrap()] += 1;
    }
    for (index, shard) in SHARDS.iter().enumerate() {
        let n: i64 = shard_file(&server.data_dir, shard)
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, per_shard[index], "{shard}");
        // The comment hint and the session setting read one shard only.
        let hinted: i64 = client
            .query_one(
                &format!("/* shardgate:shard={shard} */ SELECT count(*) FROM users"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(hinted, per_shard[index]);
        client
            .batch_execute(&format!("SET shardgate.shard = '{shard}'"))
            .await
            .unwrap();
        let set: i64 = client
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(set, per_shard[index]);
    }
    client.batch_execute("RESET shardgate.shard").await.unwrap();
    let err = client
        .batch_execute("SET shardgate.shard = 'shard-9'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22P02");

    // shardgate's SQL functions exist where shard results are merged, too.
    let row = client
        .query_one(
            "SELECT count(*), version(), current_database() FROM users",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1000);
    assert!(row.get::<_, String>(1).contains("shardgate"));
    assert_eq!(row.get::<_, String>(2), "app");

    let messages = client.simple_query("SHOW shardgate.shards").await.unwrap();
    let rows: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 4);
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row.get("name"), Some(SHARDS[index]));
        assert_eq!(row.get("strategy"), Some("consistent_hash"));
        assert_eq!(row.get("rows"), Some(per_shard[index].to_string().as_str()));
        assert_eq!(row.get("healthy"), Some("t"));
        assert!(row.get("bytes").unwrap().parse::<u64>().unwrap() > 0);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shard_replicates_to_its_own_replicas_with_read_your_writes() {
    let mut sections = String::from(
        "[replication]\nmode = \"asynchronous\"\napply_delay = \"300ms\"\n\
         [sharding]\nstrategy = \"hash\"\ntables = [{ name = \"users\", key = \"id\" }]\n",
    );
    for name in ["shard-1", "shard-2"] {
        sections.push_str(&format!(
            "[[shards]]\nname = \"{name}\"\nprimary = \"{name}/primary.db\"\n\
             replicas = [{{ name = \"{name}-r1\", path = \"{name}/replica-1.db\", weight = 1 }}]\n"
        ));
    }
    let server =
        common::start_config(&common::config_text("scram-sha-256", "app", &sections)).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE users (id INT PRIMARY KEY, name TEXT)")
        .await
        .unwrap();
    let two = Placement::Hash { shards: 2 };
    for key in 1..=20i32 {
        client
            .execute("INSERT INTO users VALUES ($1, 'x')", &[&key])
            .await
            .unwrap();
        // Read-your-writes per shard, although the replicas apply 300 ms late.
        let seen: i64 = client
            .query_one("SELECT count(*) FROM users WHERE id = $1", &[&key])
            .await
            .unwrap()
            .get(0);
        assert_eq!(seen, 1, "key {key} not visible to its writer");
    }
    // pgbench -i runs this: statistics are gathered on every shard and every replica.
    client.batch_execute("VACUUM ANALYZE users").await.unwrap();
    // Each replica file ends up with exactly its shard's rows, and statistics.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for (index, name) in ["shard-1", "shard-2"].iter().enumerate() {
        let expected: Vec<i64> = (1..=20)
            .filter(|k| two.shard_for(&ShardKey::Int(*k)).unwrap() == index)
            .collect();
        loop {
            let replica = Connection::open_with_flags(
                server.data_dir.join(format!("{name}/replica-1.db")),
                OpenFlags::SQLITE_OPEN_READ_ONLY,
            );
            let (got, analyzed) = replica
                .ok()
                .and_then(|r| {
                    let mut stmt = r.prepare("SELECT id FROM users ORDER BY id").ok()?;
                    let rows = stmt.query_map([], |row| row.get(0)).ok()?;
                    let ids = rows.collect::<Result<Vec<i64>, _>>().ok()?;
                    let analyzed: i64 = r
                        .query_row(
                            "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'users'",
                            [],
                            |row| row.get(0),
                        )
                        .ok()?;
                    Some((ids, analyzed > 0))
                })
                .unwrap_or_default();
            if got == expected && analyzed {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: {got:?} != {expected:?} or no statistics ({analyzed})"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shard_fails_the_whole_query_naming_it() {
    let server = common::start_config(&sharded_config("hash")).await;
    let client = server.connect().await;
    create_schema(&client).await;
    client
        .batch_execute("INSERT INTO users VALUES (1, 'one', 10), (2, 'two', 20), (42, 'x', 1)")
        .await
        .unwrap();
    // Shard 2 loses its copy of the table behind the proxy's back.
    Connection::open(server.data_dir.join("shard-2/primary.db"))
        .unwrap()
        .execute_batch("DROP TABLE users")
        .unwrap();
    for sql in [
        "SELECT * FROM users",
        "SELECT count(*) FROM users",
        "SELECT name FROM users ORDER BY name LIMIT 2",
    ] {
        let err = client.simple_query(sql).await.unwrap_err();
        let message = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(message.contains("shard-2"), "{sql}: {message}");
        assert_eq!(sqlstate(&err), "42P01", "{sql}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_a_name_that_is_both_column_and_alias_means_the_column() {
    let server = common::start_config(&sharded_config("hash")).await;
    let client = server.connect().await;
    create_schema(&client).await;
    client
        .batch_execute("INSERT INTO users VALUES (1, 'a', 10), (2, 'a', 10), (42, 'b', 10)")
        .await
        .unwrap();
    // PostgreSQL groups by the input column `name`, not by the output alias `name`.
    let rows = client
        .query(
            "SELECT age AS name, count(*) FROM users GROUP BY name, age ORDER BY 2",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [(10, 1), (10, 2)]);
    server.stop().await;
}

/// `t(a, b)` sharded on `a`, `u(id, v)` sharded on `id`, `ref(code)` a reference table, over
/// `shards` hash shards, with the issue's rows.
async fn issue_cluster(shards: usize) -> (common::TestServer, Client) {
    let mut sections = "[sharding]\nstrategy = \"hash\"\n\
         tables = [{ name = \"t\", key = \"a\" }, { name = \"u\", key = \"id\" }]\n\
         reference_tables = [\"ref\"]\n"
        .to_string();
    for i in 1..=shards {
        sections.push_str(&format!(
            "[[shards]]\nname = \"s{i}\"\nprimary = \"s{i}/primary.db\"\n"
        ));
    }
    let server = common::start_config(&common::config_text("trust", "app", &sections)).await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (a INT PRIMARY KEY, b INT);
             CREATE TABLE u (id INT PRIMARY KEY, v INT);
             CREATE TABLE ref (code INT PRIMARY KEY);
             INSERT INTO t VALUES (1, 10), (2, 20), (3, 10), (4, NULL), (5, 30);
             INSERT INTO u VALUES (1, 1), (2, 7), (3, 8), (4, 9);
             INSERT INTO ref VALUES (1), (2);",
        )
        .await
        .expect("schema and rows");
    (server, client)
}

async fn text_rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("{}: {e}", sqlstate(&e)))?;
    Ok(common::text_rows(&messages))
}

/// Issue 10, item 2: each of these was answered differently (or failed differently) on four
/// shards than on one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_gather_answers_as_one_database_would_or_refuses() {
    for shards in [1, 4] {
        let (server, client) = issue_cluster(shards).await;
        let all = text_rows(&client, "SELECT ALL b*0 FROM t").await.unwrap();
        assert_eq!(
            all.len(),
            5,
            "{shards} shard(s): SELECT ALL keeps duplicates"
        );
        let distinct = text_rows(&client, "SELECT DISTINCT b*0 FROM t ORDER BY 1")
            .await
            .unwrap();
        assert_eq!(distinct.len(), 2, "{shards} shard(s): {distinct:?}");
        for (sql, want) in [
            ("SELECT count(DISTINCT 5) FROM t", "1"),
            ("SELECT max(DISTINCT 3) FROM t", "3"),
            ("SELECT count(DISTINCT b), sum(DISTINCT 2) FROM t", "3"),
            ("SELECT 7, count(*) FROM t GROUP BY 1", "7"),
        ] {
            let rows = text_rows(&client, sql).await.unwrap_or_else(|e| {
                panic!("{shards} shard(s): {sql}: {e}");
            });
            assert_eq!(rows.len(), 1, "{shards} shard(s): {sql}: {rows:?}");
            assert_eq!(
                rows[0][0].as_deref(),
                Some(want),
                "{shards} shard(s): {sql}"
            );
        }
        for sql in [
            "SELECT COALESCE(59, a) FROM t GROUP BY b",
            "SELECT a, count(*) FROM t",
            "SELECT b FROM t GROUP BY b HAVING a > 1",
            "SELECT b, count(*) FROM t GROUP BY b ORDER BY a",
            "SELECT * FROM t GROUP BY b",
        ] {
            let error = text_rows(&client, sql).await.expect_err(sql);
            assert!(
                error.starts_with("42803: "),
                "{shards} shard(s): {sql}: {error}"
            );
        }
        // Grouped by the primary key, the table's other columns are determined.
        let by_key = text_rows(&client, "SELECT a, b FROM t GROUP BY a ORDER BY a")
            .await
            .unwrap();
        assert_eq!(by_key.len(), 5, "{shards} shard(s)");
        if shards > 1 {
            for sql in [
                "SELECT r.code, u.v FROM ref r LEFT JOIN u ON u.v = r.code",
                "SELECT r.code, u.v FROM u RIGHT JOIN ref r ON u.v = r.code",
                "SELECT r.code, u.v FROM u FULL JOIN ref r ON u.v = r.code",
                "SELECT count(*), (SELECT count(*) FROM ref) FROM t",
            ] {
                let error = text_rows(&client, sql).await.expect_err(sql);
                assert!(error.starts_with("0A000: "), "{sql}: {error}");
            }
        } else {
            let rows = text_rows(
                &client,
                "SELECT r.code, u.v FROM ref r LEFT JOIN u ON u.v = r.code ORDER BY 1",
            )
            .await
            .unwrap();
            assert_eq!(rows.len(), 2, "{rows:?}");
        }
        // The sharded side preserved: every row is on exactly one shard.
        let rows = text_rows(
            &client,
            "SELECT u.id, r.code FROM u LEFT JOIN ref r ON u.v = r.code ORDER BY u.id",
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 4, "{shards} shard(s): {rows:?}");
        drop(client);
        server.stop().await;
    }
    // Without [sharding] too, SQLite's bare columns do not answer for PostgreSQL.
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (a INT PRIMARY KEY, b INT); INSERT INTO t VALUES (1, 10), (2, 20)",
        )
        .await
        .expect("schema");
    let error = text_rows(&client, "SELECT COALESCE(59, a) FROM t GROUP BY b")
        .await
        .expect_err("ungrouped column");
    assert!(error.starts_with("42803: "), "{error}");
    let rows = text_rows(&client, "SELECT a, b FROM t GROUP BY a ORDER BY a")
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for sql in ["SELECT * FROM t GROUP BY b", "SELECT t.* FROM t GROUP BY b"] {
        let error = text_rows(&client, sql).await.expect_err(sql);
        assert!(error.starts_with("42803: "), "{sql}: {error}");
    }
    let rows = text_rows(&client, "SELECT * FROM t GROUP BY a")
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    drop(client);
    server.stop().await;
}

/// Issue 10, item 3: every key type is normalized by one rule, whether a row is placed
/// (INSERT, split multi-row INSERT, COPY, binary parameters, UPDATE of the key) or a
/// statement is routed (literals in any spelling, casts, text and binary parameters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_type_places_and_routes_its_values_alike() {
    use futures::SinkExt;
    use tokio_postgres::types::{ToSql, Type};
    // (table, declared key type, canonical stored key, spellings that mean the same key).
    let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let kinds: [(&str, &str, &str, &[&str]); 7] = [
        (
            "k_int8",
            "BIGINT",
            "42",
            &[
                "42",
                "'042'",
                "42.0",
                "'42.0'",
                "4.2e1",
                "CAST('042' AS BIGINT)",
                "'42'::int8",
            ],
        ),
        ("k_int4", "INT", "42", &["'042'", "42.0", "'42'::int4"]),
        ("k_int2", "SMALLINT", "42", &["'042'", "42.00"]),
        (
            "k_numeric",
            "NUMERIC(10, 0)",
            "42",
            &["'042'", "42.0", "'42'::numeric"],
        ),
        ("k_text", "TEXT", "'042'", &["'042'", "'042'::text"]),
        (
            "k_varchar",
            "VARCHAR(10)",
            "'042'",
            &["'042'", "CAST('042' AS VARCHAR)"],
        ),
        (
            "k_uuid",
            "UUID",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            // Other spellings route to the same shard (the unit test in router/sharding.rs),
            // but SQLite compares uuid literals as the text written (a known limit).
            &[
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
            ],
        ),
    ];
    let tables: Vec<String> = kinds
        .iter()
        .map(|(t, ..)| format!("{{ name = \"{t}\", key = \"k\" }}"))
        .collect();
    let mut sections = format!(
        "[sharding]\nstrategy = \"hash\"\ntables = [{}]\n",
        tables.join(", ")
    );
    for name in SHARDS {
        sections.push_str(&format!(
            "[[shards]]\nname = \"{name}\"\nprimary = \"{name}/primary.db\"\n"
        ));
    }
    let server = common::start_config(&common::config_text("trust", "app", &sections)).await;
    let client = server.connect().await;
    let expected = Placement::Hash { shards: 4 };
    for (table, ty, stored, spellings) in kinds {
        client
            .batch_execute(&format!("CREATE TABLE {table} (k {ty} PRIMARY KEY, v INT)"))
            .await
            .unwrap();
        // A multi-row INSERT split over the shards, with the key spelled as the first spelling.
        let others: Vec<String> = (1..=12)
            .map(|i| match ty {
                "UUID" => format!("('00000000-0000-0000-0000-{i:012}', {i})"),
                _ => format!("('{}', {i})", 100 + i),
            })
            .collect();
        client
            .batch_execute(&format!(
                "INSERT INTO {table} VALUES ({}, 0), {}",
                spellings[0],
                others.join(", ")
            ))
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        let key = match ty {
            "UUID" => ShardKey::Text(uuid.into()),
            _ if stored.starts_with('\'') => ShardKey::Text("042".into()),
            _ => ShardKey::Int(42),
        };
        let home = SHARDS[expected.shard_for(&key).unwrap()];
        let on_home: i64 = client
            .query_one(
                &format!(
                    "/* shardgate:shard={home} */ SELECT count(*) FROM {table} WHERE k = {stored}"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(on_home, 1, "{table}: the row is on {home}");
        for spelling in spellings {
            let rows = text_rows(
                &client,
                &format!("SELECT v FROM {table} WHERE k = {spelling}"),
            )
            .await
            .unwrap();
            assert_eq!(rows, [[Some("0".to_string())]], "{table}: k = {spelling}");
            let rows = text_rows(
                &client,
                &format!("SELECT v FROM {table} WHERE k IN ({spelling}, {spelling})"),
            )
            .await
            .unwrap();
            assert_eq!(rows.len(), 1, "{table}: k IN ({spelling})");
        }
        // A text parameter.
        let text_key = match ty {
            "UUID" => uuid,
            _ => "042",
        };
        let statement = client
            .prepare_typed(
                &format!("SELECT v FROM {table} WHERE k = $1"),
                &[Type::TEXT],
            )
            .await
            .unwrap();
        let rows = client.query(&statement, &[&text_key]).await.unwrap();
        assert_eq!(rows.len(), 1, "{table}: text parameter {text_key}");
        // Changing the key to another spelling of itself stays on its shard.
        client
            .batch_execute(&format!(
                "UPDATE {table} SET k = {}, v = 1 WHERE k = {stored}",
                spellings[spellings.len() - 1]
            ))
            .await
            .unwrap_or_else(|e| panic!("{table}: UPDATE of the key: {e}"));
        // COPY places the same key on the same shard (the row exists there already).
        let copy_key = match ty {
            "UUID" => "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "TEXT" | "VARCHAR(10)" => "042",
            _ => "42",
        };
        let sink = client
            .copy_in(&format!("COPY {table} (k, v) FROM STDIN"))
            .await
            .unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(format!("{copy_key}\t2\n")))
            .await
            .unwrap();
        let error = sink
            .finish()
            .await
            .expect_err("the key exists on its shard");
        assert_eq!(
            sqlstate(&error),
            "23505",
            "{table}: COPY {copy_key}: {error}"
        );
    }
    // Binary parameters: an int8 and a uuid, placed and found.
    let big: i64 = 9_000_000_000;
    let id = uuid::Uuid::parse_str("C0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12").unwrap();
    client
        .execute("INSERT INTO k_int8 VALUES ($1, 7)", &[&big])
        .await
        .unwrap();
    client
        .execute("INSERT INTO k_uuid VALUES ($1, 7)", &[&id])
        .await
        .unwrap();
    for (sql, param) in [
        (format!("SELECT v FROM k_int8 WHERE k = {big}.0"), None),
        (
            "SELECT v FROM k_int8 WHERE k = $1".to_string(),
            Some(&big as &(dyn ToSql + Sync)),
        ),
        (format!("SELECT v FROM k_uuid WHERE k = '{id}'"), None),
        (
            "SELECT v FROM k_uuid WHERE k = $1".to_string(),
            Some(&id as &(dyn ToSql + Sync)),
        ),
    ] {
        let params: Vec<&(dyn ToSql + Sync)> = param.into_iter().collect();
        let rows = client.query(&sql, &params).await.unwrap();
        assert_eq!(rows.len(), 1, "{sql}");
    }
    drop(client);
    server.stop().await;
}

/// Issue 10, item 10: a read over four shards runs them at once. Each shard's part sleeps a
/// known time (`pg_sleep` once per row, one row of `t` per shard), so the test measures
/// waiting, not CPU: four shards one after another take four times as long, at once about
/// as long as one. Best of three rounds against the serial sum measured in the same round.
/// A cancel interrupts every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_gather_reads_run_their_shards_at_once() {
    let (server, client) = issue_cluster(4).await;
    let placement = Placement::Hash { shards: 4 };
    let mut keys = [None; 4];
    for key in 100..1000 {
        let shard = placement.shard_for(&ShardKey::Int(key)).unwrap();
        keys[shard].get_or_insert(key);
    }
    client.batch_execute("DELETE FROM t").await.unwrap();
    for key in keys {
        let key = key.expect("a key for every shard");
        client
            .execute("INSERT INTO t VALUES ($1, 1)", &[&(key as i32)])
            .await
            .unwrap();
    }
    let slow = "SELECT count(*) FROM t WHERE pg_sleep(0.3) IS NULL";
    let mut best = f64::MAX;
    for round in 0..3 {
        let mut serial = std::time::Duration::ZERO;
        for shard in 1..=4 {
            let started = std::time::Instant::now();
            let rows = text_rows(&client, &format!("/* shardgate:shard=s{shard} */ {slow}"))
                .await
                .unwrap();
            serial += started.elapsed();
            assert_eq!(rows, [[Some("1".to_string())]]);
        }
        let started = std::time::Instant::now();
        let rows = text_rows(&client, slow).await.unwrap();
        let scatter = started.elapsed();
        assert_eq!(rows, [[Some("4".to_string())]]);
        let ratio = scatter.as_secs_f64() / serial.as_secs_f64();
        eprintln!(
            "round {round}: four shards one after another {serial:?}, at once {scatter:?} ({ratio:.2})"
        );
        best = best.min(ratio);
    }
    // At once: about 0.25 of the serial sum; one after another: 1.
    assert!(
        best < 0.6,
        "the scatter took {best:.2} of the serial sum: its shards did not run at once"
    );
    // A cancel interrupts the statement on every shard, not only the last one started.
    let cancel = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await
    });
    let started = std::time::Instant::now();
    let error = text_rows(&client, "SELECT count(*) FROM t WHERE pg_sleep(30) IS NULL")
        .await
        .expect_err("cancelled");
    assert!(error.starts_with("57014: "), "{error}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the cancel took {:?}",
        started.elapsed()
    );
    canceller.await.unwrap().unwrap();
    // Every shard's connection is free again: the next read answers at once.
    let rows = text_rows(&client, "SELECT count(*) FROM t").await.unwrap();
    assert_eq!(rows, [[Some("4".to_string())]]);
    drop(client);
    server.stop().await;
}
