//! Replication through the wire: what clients write through the proxy must appear in every
//! replica file (opened directly, read-only), reads must spread by weight and see the session's
//! own writes, and damaged or deleted replicas must be rebuilt while writes go on.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::replicas::{assert_replicas_identical, dump, files, status, wait_caught_up};
use rusqlite::{Connection, OpenFlags};
use tokio_postgres::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_every_kind_reach_every_replica_file() {
    let server = common::start_config(&common::replicated_config("mode = \"synchronous\"")).await;
    let client = server.connect().await;
    wait_caught_up(&client, Duration::from_secs(20)).await;
    client
        .batch_execute(
            "CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10,2), \
               noise DOUBLE PRECISION DEFAULT random(), at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO items (name, price) VALUES ('a', 1.50), ('b', 2), ('c', 3.25);
             UPDATE items SET price = price * 2 WHERE name = 'b';
             DELETE FROM items WHERE name = 'c';
             INSERT INTO items (name, noise) VALUES ('d', random());
             CREATE TABLE history (account INT, delta INT, noted TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO history (account, delta) VALUES (1, 5), (1, 5), (2, -3);
             DELETE FROM history WHERE delta = -3;
             ALTER TABLE items ADD COLUMN note TEXT;
             UPDATE items SET note = 'altered' WHERE id = 1;
             CREATE INDEX items_name ON items (name);
             CREATE TABLE scratch (x INT PRIMARY KEY);
             INSERT INTO scratch VALUES (1);
             DROP TABLE scratch;
             CREATE TABLE big (n INT PRIMARY KEY, r DOUBLE PRECISION, label TEXT);",
        )
        .await
        .unwrap();
    // A table whose rows the log could not carry is refused, not silently unreplicated.
    let err = client
        .batch_execute("CREATE VIRTUAL TABLE notes USING fts5(body)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err}");
    // A 10,000-row transaction, with updates of its own rows before it commits.
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO big (n, r) SELECT g, random() FROM generate_series(1, 10000) AS g;
             UPDATE big SET label = 'even' WHERE n % 2 = 0;
             COMMIT;",
        )
        .await
        .unwrap();
    let rows = wait_caught_up(&client, Duration::from_secs(30)).await;
    assert_replicas_identical(&server.data_dir);
    let [primary, ..] = files(&server.data_dir);
    let big = dump(&primary)["big"].len() - 1;
    assert_eq!(big, 10_000);
    // One log record per transaction: the multi-statement query ran as one implicit
    // transaction, the 10,000 rows as another.
    assert_eq!(
        rows["main"].number("applied_lsn"),
        2,
        "{:?}",
        rows["main"].0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_mode_acknowledges_only_what_every_replica_applied() {
    let server = common::start_config(&common::replicated_config("mode = \"synchronous\"")).await;
    let client = server.connect().await;
    wait_caught_up(&client, Duration::from_secs(20)).await;
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let [_, r1, r2] = files(&server.data_dir);
    let replicas: Vec<Connection> = [r1, r2]
        .iter()
        .map(|p| Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap())
        .collect();
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, 'x')")
        .await
        .unwrap();
    for id in 1..=40i32 {
        client.execute(&insert, &[&id]).await.unwrap();
        for replica in &replicas {
            let found: i64 = replica
                .query_row("SELECT count(*) FROM t WHERE id = ?1", [id], |r| r.get(0))
                .unwrap();
            assert_eq!(
                found, 1,
                "row {id} was acknowledged before a replica had it"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_spread_over_replicas_by_weight() {
    let server = common::start_config(&common::replicated_config("mode = \"asynchronous\"")).await;
    let writer = server.connect().await;
    writer
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'x')")
        .await
        .unwrap();
    wait_caught_up(&writer, Duration::from_secs(20)).await;
    let reader = server.connect().await;
    let select = reader
        .prepare("SELECT v FROM t WHERE id = $1")
        .await
        .unwrap();
    for _ in 0..3000 {
        let row = reader.query_one(&select, &[&1i32]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "x");
    }
    let rows = status(&writer).await;
    let (r1, r2) = (
        rows["main-r1"].number("reads") as f64,
        rows["main-r2"].number("reads") as f64,
    );
    assert!(r1 + r2 >= 3000.0, "reads went elsewhere: {r1} + {r2}");
    let ratio = r1 / r2;
    assert!(
        (1.9..=2.1).contains(&ratio),
        "weights 2:1 gave {r1}:{r2} (ratio {ratio:.3})"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reads_its_own_writes_from_lagging_replicas() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"asynchronous\"\napply_delay = \"300ms\"",
    ))
    .await;
    let writer = server.connect().await;
    let stale_reader = server.connect().await;
    stale_reader
        .batch_execute("SET shardgate.read_from = 'replica'")
        .await
        .unwrap();
    writer
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    wait_caught_up(&writer, Duration::from_secs(20)).await;
    let mut replica_was_behind = 0;
    for id in 1..=10i32 {
        writer
            .execute("INSERT INTO t VALUES ($1, 'mine')", &[&id])
            .await
            .unwrap();
        let seen: i64 = writer
            .query_one("SELECT count(*) FROM t WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(seen, 1, "the writer did not see its own row {id}");
        let seen_elsewhere: i64 = stale_reader
            .query_one("SELECT count(*) FROM t WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        if seen_elsewhere == 0 {
            replica_was_behind += 1;
        }
    }
    // Without a lagging replica the test would prove nothing.
    assert!(
        replica_was_behind > 0,
        "the replicas never lagged behind the writer"
    );
    // The primary comment and setting force the primary.
    let hinted: i64 = stale_reader
        .query_one("/* shardgate:primary */ SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hinted, 10);
    let err = stale_reader
        .batch_execute("SET shardgate.read_from = 'sideways'")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"));
    wait_caught_up(&writer, Duration::from_secs(20)).await;
    assert_replicas_identical(&server.data_dir);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_or_damaged_replicas_are_rebuilt_while_writes_go_on() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"semi_synchronous\"\nmin_acks = 1\nack_timeout = \"2s\"\nhealth_check_interval = \"200ms\"",
    ))
    .await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v DOUBLE PRECISION)")
        .await
        .unwrap();
    wait_caught_up(&client, Duration::from_secs(20)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let load = {
        let writer = server.connect().await;
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            let insert = writer
                .prepare("INSERT INTO t VALUES ($1, random())")
                .await
                .unwrap();
            let mut id = 0i32;
            while !stop.load(Ordering::Acquire) {
                id += 1;
                writer
                    .execute(&insert, &[&id])
                    .await
                    .expect("a write failed");
                written.store(id as u64, Ordering::Release);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            id
        })
    };
    let [_, r1, r2] = files(&server.data_dir);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Deleted while the server runs.
    for path in [r1.clone()]
        .into_iter()
        .chain(["-wal", "-shm"].map(|s| PathBuf::from(format!("{}{s}", r1.display()))))
    {
        let _ = std::fs::remove_file(path);
    }
    let before = written.load(Ordering::Acquire);
    wait_for_rebuild(&client, "main-r1").await;
    assert!(
        written.load(Ordering::Acquire) > before,
        "writes stalled while a replica was rebuilt"
    );

    // Damaged: its header overwritten.
    {
        use std::io::{Seek, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&r2).unwrap();
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.write_all(&[0xAB; 100]).unwrap();
    }
    let before = written.load(Ordering::Acquire);
    wait_for_rebuild(&client, "main-r2").await;
    assert!(
        written.load(Ordering::Acquire) > before,
        "writes stalled while a replica was rebuilt"
    );

    stop.store(true, Ordering::Release);
    let last_id = load.await.unwrap();
    let rows = wait_caught_up(&client, Duration::from_secs(30)).await;
    let count: i64 = client
        .query_one("/* shardgate:primary */ SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, i64::from(last_id), "acknowledged writes were lost");
    assert!(rows["main-r1"].number("errors") >= 1);
    assert!(rows["main-r2"].number("errors") >= 1);
    assert_replicas_identical(&server.data_dir);
    server.stop().await;
}

/// Waits until `name` has been taken out of rotation (its error count rose) and is healthy
/// and caught up again.
async fn wait_for_rebuild(client: &Client, name: &str) {
    let started = Instant::now();
    let mut left_rotation = false;
    loop {
        let rows = status(client).await;
        let row = &rows[name];
        left_rotation |= row.get("healthy") == "f" || row.number("errors") > 0;
        if left_rotation && row.get("healthy") == "t" && row.number("errors") > 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} was not rebuilt: {:?}",
            row.0
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semi_synchronous_writes_are_acknowledged_after_the_timeout_and_counted_degraded() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"semi_synchronous\"\nmin_acks = 1\nack_timeout = \"200ms\"\napply_delay = \"3s\"",
    ))
    .await;
    let client = server.connect().await;
    wait_caught_up(&client, Duration::from_secs(20)).await;
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let rows = status(&client).await;
    assert_eq!(rows["main"].number("degraded_writes"), 1);
    // Acknowledged although no replica has it yet.
    assert!(rows["main-r1"].number("lag_records") > 0);
    assert!(rows["main-r2"].number("lag_records") > 0);
    wait_caught_up(&client, Duration::from_secs(20)).await;
    client
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    assert_eq!(status(&client).await["main"].number("degraded_writes"), 2);
    server.stop().await;
}

/// Polls `SHOW shardgate.replicas` until `ready` holds for both replicas (at most 20 s).
async fn wait_for_replicas(
    client: &Client,
    what: &str,
    ready: impl Fn(&common::replicas::Status) -> bool,
) {
    let started = Instant::now();
    loop {
        let rows = status(client).await;
        if ["main-r1", "main-r2"]
            .iter()
            .all(|name| ready(&rows[*name]))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "replicas never {what}: {:?}",
            rows.values().map(|r| &r.0).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_replicas_leave_the_rotation_after_ack_timeout_and_rejoin_when_caught_up() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"synchronous\"\nack_timeout = \"300ms\"\napply_delay = \"1500ms\"",
    ))
    .await;
    let client = server.connect().await;
    wait_caught_up(&client, Duration::from_secs(20)).await;
    let rows = status(&client).await;
    for name in ["main-r1", "main-r2"] {
        assert_eq!(rows[name].get("in_rotation"), "t", "{:?}", rows[name].0);
    }

    // Both replicas lag: the write waits ack_timeout for them, then they leave the rotation.
    let started = Instant::now();
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let rows = status(&client).await;
    assert_eq!(rows["main"].number("degraded_writes"), 1);
    for name in ["main-r1", "main-r2"] {
        let row = &rows[name];
        assert_eq!(row.get("in_rotation"), "f", "{:?}", row.0);
        assert_eq!(row.number("left_rotation"), 1, "{:?}", row.0);
        assert!(row.get("status").contains("ack_timeout"), "{:?}", row.0);
    }

    // Out of the rotation, they are not waited for: acknowledged at once, and degraded.
    let started = Instant::now();
    client
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "a write waited for replicas out of the rotation"
    );
    assert_eq!(status(&client).await["main"].number("degraded_writes"), 2);

    // Caught up, they rejoin, and writes wait for them again.
    wait_for_replicas(&client, "rejoined", |r| {
        r.get("in_rotation") == "t" && r.number("rejoined_rotation") == 1
    })
    .await;
    let rows = status(&client).await;
    for name in ["main-r1", "main-r2"] {
        assert_eq!(rows[name].get("status"), "ok", "{:?}", rows[name].0);
        assert_eq!(rows[name].number("lag_records"), 0, "{:?}", rows[name].0);
    }
    let started = Instant::now();
    client
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let rows = status(&client).await;
    assert_eq!(rows["main"].number("degraded_writes"), 3);
    for name in ["main-r1", "main-r2"] {
        assert_eq!(rows[name].number("left_rotation"), 2, "{:?}", rows[name].0);
    }
    server.stop().await;
}
