//! timestamptz through the wire: every way a value arrives (literal, cast, text and binary
//! parameter, COPY, default, UPDATE) stores one instant in one form, so equality, ranges,
//! ORDER BY, indexes, replicas and shard keys agree with PostgreSQL 15, which the
//! comparison test starts and asks the same statements.

mod common;

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use common::postgres::Postgres;
use futures::{SinkExt, StreamExt};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The text of every row a simple query returns, fields joined by `|`.
async fn rows(client: &Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

const EVENTS: &str = "CREATE TABLE events (id INT PRIMARY KEY, created TIMESTAMPTZ)";

#[tokio::test]
async fn one_instant_written_with_any_offset_is_found_by_any_other() {
    let server = common::start().await;
    let client = server.connect().await;
    client.batch_execute(EVENTS).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO events VALUES (1, '2024-07-01T12:34:56.789012-04:00'::timestamptz);
             INSERT INTO events VALUES (2, '2024-07-01 12:00:00+00');
             INSERT INTO events (id, created) VALUES (3, CAST('2024-07-01 14:00:00.5+02' AS timestamptz))",
        )
        .await
        .unwrap();
    let found = rows(
        &client,
        "SELECT id, created FROM events \
         WHERE created = '2024-07-01T16:34:56.789012+00:00'::timestamptz",
    )
    .await;
    assert_eq!(found, ["1|2024-07-01 16:34:56.789012+00"]);
    // An untyped literal compared with a timestamptz is a timestamptz, as in PostgreSQL.
    let found = rows(
        &client,
        "SELECT id FROM events WHERE created = '2024-07-01 18:34:56.789012+02'",
    )
    .await;
    assert_eq!(found, ["1"]);
    // 11:30 to 12:30 UTC written at +01:00 holds the 12:00 UTC row and the 12:00:00.5 one.
    let found = rows(
        &client,
        "SELECT id FROM events WHERE created BETWEEN '2024-07-01 12:30:00+01:00' \
         AND '2024-07-01 13:30:00+01:00' ORDER BY id",
    )
    .await;
    assert_eq!(found, ["2", "3"]);
    let found = rows(
        &client,
        "SELECT count(*) FROM events WHERE created > '2024-07-01T08:00:00-04'::timestamptz",
    )
    .await;
    assert_eq!(found, ["2"]);
    server.stop().await;
}

#[tokio::test]
async fn order_by_indexes_updates_and_defaults_use_the_instant() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE log (id INT PRIMARY KEY, at TIMESTAMPTZ, seen TIMESTAMPTZ DEFAULT now());
             CREATE INDEX log_at ON log (at);
             INSERT INTO log (id, at) VALUES
               (1, '2024-01-01 10:00:00+05'),
               (2, '2024-01-01 03:00:00-03'),
               (3, '2024-01-01 05:30:00Z'),
               (4, '2024-01-01 04:59:59.999999+00');
             UPDATE log SET at = '2024-01-01 06:00:00+09:30' WHERE id = 4;",
        )
        .await
        .unwrap();
    // 05:00Z, 06:00Z, 05:30Z and 20:30Z of the day before.
    assert_eq!(
        rows(&client, "SELECT id, at FROM log ORDER BY at").await,
        [
            "4|2023-12-31 20:30:00+00",
            "1|2024-01-01 05:00:00+00",
            "3|2024-01-01 05:30:00+00",
            "2|2024-01-01 06:00:00+00",
        ]
    );
    assert_eq!(
        rows(&client, "SELECT max(at), min(at) FROM log").await,
        ["2024-01-01 06:00:00+00|2023-12-31 20:30:00+00"]
    );
    // The index (over the stored form) answers an equality written with another offset.
    assert_eq!(
        rows(
            &client,
            "SELECT id FROM log WHERE at = '2024-01-01 02:00:00-04:00'"
        )
        .await,
        ["2"]
    );
    let plan: String = rusqlite::Connection::open(server.data_dir.join("main/primary.db"))
        .unwrap()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM log WHERE at = '2024-01-01 06:00:00.000000+00'",
            [],
            |row| row.get(3),
        )
        .unwrap_or_else(|e| e.to_string());
    assert!(plan.contains("log_at"), "{plan}");
    // now() and a later literal compare as instants.
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) FROM log WHERE seen > at AND seen < '2999-01-01 00:00:00-12'"
        )
        .await,
        ["4"]
    );
    server.stop().await;
}

#[tokio::test]
async fn binary_and_text_parameters_and_copy_store_the_same_instant() {
    let server = common::start().await;
    let client = server.connect().await;
    client.batch_execute(EVENTS).await.unwrap();
    let offset = FixedOffset::west_opt(4 * 3600).unwrap();
    let local: DateTime<FixedOffset> = offset
        .with_ymd_and_hms(2024, 7, 1, 12, 34, 56)
        .unwrap()
        .checked_add_signed(chrono::Duration::microseconds(789_012))
        .unwrap();
    let utc: DateTime<Utc> = local.with_timezone(&Utc);
    client
        .execute("INSERT INTO events VALUES ($1, $2)", &[&1i32, &local])
        .await
        .unwrap();
    // Text parameters, as node-postgres and psycopg send them: a parameter cast from text.
    client
        .execute(
            "INSERT INTO events VALUES ($1, $2::text::timestamptz)",
            &[&2i32, &"2024-07-01T18:34:56.789012+02:00"],
        )
        .await
        .unwrap();
    let sink = client
        .copy_in("COPY events (id, created) FROM STDIN")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(
        b"3\t2024-07-01 23:34:56.789012+07\n4\t2024-07-01 16:34:56.789012\n",
    ))
    .await
    .unwrap();
    sink.as_mut().finish().await.unwrap();
    let ids: Vec<i32> = client
        .query(
            "SELECT id FROM events WHERE created = $1 ORDER BY id",
            &[&utc],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    let back: DateTime<Utc> = client
        .query_one("SELECT created FROM events WHERE id = 3", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(back, utc);
    let out = client
        .copy_out("COPY (SELECT id, created FROM events ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.map(Result::unwrap).collect().await;
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(
        text,
        (1..=4)
            .map(|i| format!("{i}\t2024-07-01 16:34:56.789012+00\n"))
            .collect::<String>()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_hold_and_answer_the_same_instants() {
    let server = common::start_config(&common::replicated_config("mode = \"synchronous\"")).await;
    let client = server.connect().await;
    common::replicas::wait_caught_up(&client, Duration::from_secs(20)).await;
    client.batch_execute(EVENTS).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO events VALUES (1, '2024-07-01T12:34:56.789012-04:00'), \
             (2, '2024-07-01 16:34:56.789013+00');",
        )
        .await
        .unwrap();
    common::replicas::wait_caught_up(&client, Duration::from_secs(20)).await;
    common::replicas::assert_replicas_identical(&server.data_dir);
    client
        .batch_execute("SET shardgate.read_from = 'replica'")
        .await
        .unwrap();
    assert_eq!(
        rows(
            &client,
            "SELECT id FROM events WHERE created = '2024-07-01 16:34:56.789012Z' ORDER BY id"
        )
        .await,
        ["1"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_timestamptz_shard_key_routes_by_its_instant() {
    let mut sections = String::from(
        "[sharding]\nstrategy = \"hash\"\ntables = [{ name = \"events\", key = \"created\" }]\n",
    );
    for name in ["s1", "s2", "s3", "s4"] {
        sections.push_str(&format!(
            "[[shards]]\nname = \"{name}\"\nprimary = \"{name}/primary.db\"\n"
        ));
    }
    let server =
        common::start_config(&common::config_text("scram-sha-256", "app", &sections)).await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE events (created TIMESTAMPTZ PRIMARY KEY, id INT)")
        .await
        .unwrap();
    for hour in 0..16 {
        client
            .batch_execute(&format!(
                "INSERT INTO events VALUES ('2024-07-01 {hour:02}:00:00-04:00', {hour})"
            ))
            .await
            .unwrap();
    }
    for hour in 0..16 {
        let utc = format!("2024-07-01 {:02}:00:00+00", hour + 4);
        assert_eq!(
            rows(
                &client,
                &format!("SELECT id FROM events WHERE created = '{utc}'")
            )
            .await,
            [hour.to_string()],
            "{utc}"
        );
        let at = Utc.with_ymd_and_hms(2024, 7, 1, hour + 4, 0, 0).unwrap();
        let row = client
            .query_one("SELECT id FROM events WHERE created = $1", &[&at])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), hour as i32);
    }
    server.stop().await;
}

/// Statements run on shardgate and on PostgreSQL 15, whose text answers must agree.
const AGREES_WITH_POSTGRES: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY, at TIMESTAMPTZ)",
    "INSERT INTO t VALUES (1, '2024-07-01T12:34:56.789012-04:00'), (2, '2024-07-01 16:34:56+00'), \
     (3, '2024-07-01 16:34:56.5+00:30'), (4, '2024-02-29 23:59:59.999999-11'), (5, NULL), \
     (6, '2024-07-01 16:34:56.100'), (7, '2024-07-01T16:34:56Z')",
    "SELECT id, at FROM t ORDER BY at, id",
    "SELECT id FROM t WHERE at = '2024-07-01 16:34:56.789012+00'::timestamptz",
    "SELECT id FROM t WHERE at BETWEEN '2024-07-01 17:00:00+01:00' AND '2024-07-01 17:34:56.5+01:00' ORDER BY id",
    "SELECT id FROM t WHERE at IN ('2024-07-01 12:34:56-04', '2024-03-01 10:59:59.999999Z') ORDER BY id",
    "SELECT count(*), min(at), max(at) FROM t",
    "UPDATE t SET at = '2024-12-31 23:00:00-01:00' WHERE id = 2",
    "SELECT id, at FROM t WHERE at >= '2025-01-01' ORDER BY id",
    "SELECT '2024-07-01 12:00:00-07'::timestamptz",
];

#[tokio::test]
async fn timestamptz_answers_agree_with_postgres() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    let server = common::start().await;
    let ours = server.connect().await;
    let theirs = postgres.connect().await;
    for sql in AGREES_WITH_POSTGRES {
        assert_eq!(rows(&ours, sql).await, rows(&theirs, sql).await, "{sql}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_earlier_versions_are_converted_on_open_and_replicated() {
    let config = common::replicated_config("mode = \"synchronous\"");
    let server = common::start_config(&config).await;
    let client = server.connect().await;
    common::replicas::wait_caught_up(&client, Duration::from_secs(20)).await;
    client
        .batch_execute(&format!(
            "{EVENTS}; INSERT INTO events VALUES (1, '2024-07-01 16:34:56.789012+00'), (2, NULL)"
        ))
        .await
        .unwrap();
    common::replicas::wait_caught_up(&client, Duration::from_secs(20)).await;
    drop(client);
    let data_dir = server.stop_keeping_files().await;
    // What an earlier version left: no triggers, the text the client sent. Every file of the
    // shard holds the same (the replicas had applied it).
    for file in common::replicas::files(&data_dir) {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(
            "DROP TRIGGER \"_shardgate_store_events_created_insert\";
             DROP TRIGGER \"_shardgate_store_events_created_update\";
             UPDATE events SET created = '2024-07-01T12:34:56.789012-04:00' WHERE id = 1;",
        )
        .unwrap();
    }
    let server = common::start_config_in(&config, data_dir).await;
    let client = server.connect().await;
    common::replicas::wait_caught_up(&client, Duration::from_secs(20)).await;
    common::replicas::assert_replicas_identical(&server.data_dir);
    for read_from in ["primary", "replica"] {
        client
            .batch_execute(&format!("SET shardgate.read_from = '{read_from}'"))
            .await
            .unwrap();
        assert_eq!(
            rows(
                &client,
                "SELECT id, created FROM events WHERE created = '2024-07-01 16:34:56.789012+00'"
            )
            .await,
            ["1|2024-07-01 16:34:56.789012+00"],
            "{read_from}"
        );
    }
    // Converted values keep their form on later writes.
    client
        .batch_execute("INSERT INTO events SELECT 3, '2024-07-01 10:00:00-02:00'")
        .await
        .unwrap();
    client
        .batch_execute("SET shardgate.read_from = 'primary'")
        .await
        .unwrap();
    assert_eq!(
        rows(
            &client,
            "SELECT id FROM events WHERE created = '2024-07-01 12:00:00Z'"
        )
        .await,
        ["3"]
    );
    server.stop().await;
}

#[tokio::test]
async fn what_is_not_a_storable_timestamptz_is_an_error() {
    let server = common::start().await;
    let client = server.connect().await;
    client.batch_execute(EVENTS).await.unwrap();
    let code = |e: tokio_postgres::Error| e.code().map(|c| c.code().to_string());
    for (sql, expected) in [
        ("SELECT 'garbage'::timestamptz", "22007"),
        ("INSERT INTO events VALUES (1, 'garbage')", "22007"),
        ("SELECT id FROM events WHERE created < 'soon'", "22007"),
        ("INSERT INTO events SELECT 2, 'not a time'", "22007"),
        ("INSERT INTO events VALUES (3, 'infinity')", "0A000"),
    ] {
        let Err(err) = client.batch_execute(sql).await else {
            panic!("{sql} succeeded");
        };
        assert_eq!(code(err).as_deref(), Some(expected), "{sql}");
    }
    assert_eq!(rows(&client, "SELECT count(*) FROM events").await, ["0"]);
    server.stop().await;
}

#[tokio::test]
async fn numeric_arithmetic_comparison_and_sums_are_exact() {
    let server = common::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE product (id INT PRIMARY KEY, price NUMERIC(10,2), qty INT);
             INSERT INTO product VALUES (1, 0.10, 3), (2, 0.20, 1);
             UPDATE product SET price = price + 0.20 WHERE id = 1;",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(&client, "SELECT id, price FROM product WHERE price = 0.30").await,
        ["1|0.30"]
    );
    assert_eq!(
        rows(&client, "SELECT 0.1::numeric + 0.2::numeric = 0.3::numeric").await,
        ["t"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT sum(price) FROM product WHERE id = 2 OR id = 1"
        )
        .await,
        ["0.50"]
    );
    // Stored values are rounded to the declared scale, half away from zero.
    client
        .batch_execute(
            "INSERT INTO product VALUES (3, 2.675, 1), (4, -0.125, 1);
             INSERT INTO product SELECT 5, 1.005, 2;",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(
            &client,
            "SELECT id, price FROM product WHERE id > 2 ORDER BY id"
        )
        .await,
        ["3|2.68", "4|-0.13", "5|1.01"]
    );
    assert_eq!(
        rows(&client, "SELECT id FROM product WHERE price * qty = 2.02").await,
        ["5"]
    );
    server.stop().await;
}

/// numeric statements whose text answers must agree with PostgreSQL 15's.
const NUMERIC_AGREES_WITH_POSTGRES: &[&str] = &[
    "CREATE TABLE p (id INT PRIMARY KEY, price NUMERIC(10,2), qty INT)",
    "INSERT INTO p VALUES (1, 0.10, 3), (2, 0.20, 1), (3, 2.675, 2), (4, -2.675, 1), (5, 7, 4)",
    "UPDATE p SET price = price + 0.20 WHERE id = 1",
    "SELECT id, price FROM p WHERE price = 0.30",
    "SELECT sum(price), min(price), max(price) FROM p",
    "SELECT id, price * qty, price + 1, price - 0.005 FROM p ORDER BY id",
    "SELECT id FROM p WHERE price * qty > 1 ORDER BY id",
    "SELECT 0.1::numeric + 0.2::numeric = 0.3::numeric, 0.1 + 0.2, 1.5 * 2.25, 0.10, 3 * 0.1",
    "SELECT sum(price * qty) FROM p",
];

#[tokio::test]
async fn numeric_answers_agree_with_postgres() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    let server = common::start().await;
    let ours = server.connect().await;
    let theirs = postgres.connect().await;
    for sql in NUMERIC_AGREES_WITH_POSTGRES {
        assert_eq!(rows(&ours, sql).await, rows(&theirs, sql).await, "{sql}");
    }
    server.stop().await;
}

#[tokio::test]
async fn numerics_that_cannot_be_kept_exact_are_refused() {
    let server = common::start().await;
    let client = server.connect().await;
    for sql in [
        "CREATE TABLE wide (n NUMERIC(20, 2))",
        "CREATE TABLE loose (n NUMERIC)",
        "CREATE TABLE ok (id INT PRIMARY KEY)",
        "ALTER TABLE ok ADD COLUMN n DECIMAL",
    ] {
        let result = client.batch_execute(sql).await;
        if sql.contains("ok (id") {
            result.unwrap();
            continue;
        }
        let Err(err) = result else {
            panic!("{sql} succeeded");
        };
        assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{sql}: {err}");
    }
    // Casts round to the scale they name; sums of numerics compare as decimals.
    client
        .batch_execute(
            "CREATE TABLE m (id INT PRIMARY KEY, v NUMERIC(6,3));
             INSERT INTO m VALUES (1, 0.1), (2, 0.2), (3, 1.0049);",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(&client, "SELECT 2.675::numeric(5,2), v FROM m WHERE id = 3").await,
        ["2.68|1.005"]
    );
    assert_eq!(
        rows(&client, "SELECT count(*) FROM m HAVING sum(v) = 1.305").await,
        ["3"]
    );
    server.stop().await;
}
