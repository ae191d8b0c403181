//! `read_consistency` through the wire: one connection drops, creates and fills a table in
//! autocommit while another, already open, counts its rows right after each acknowledgement,
//! as a pooled application's next request would. `strong` (the default) never misses a write
//! acknowledged before the read; `eventual` does, behind a lagging replica; `session` keeps
//! read-your-writes only.

mod common;

use std::time::Duration;

use common::replicas::{status, wait_caught_up};
use tokio_postgres::Client;

/// Replaces table `t` with `rows` rows, one autocommit statement at a time.
async fn refill(writer: &Client, rows: i64) {
    writer
        .batch_execute("DROP TABLE IF EXISTS t")
        .await
        .unwrap();
    writer
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    writer
        .batch_execute(&format!(
            "INSERT INTO t SELECT g FROM generate_series(1, {rows}) AS g"
        ))
        .await
        .unwrap();
}

/// Refills `t` `rounds` times from `writer`, `pause` apart; after each, `reader` counts the
/// rows. Returns how many counts differed from what was just acknowledged. The pause lets a
/// lagging replica apply the previous round, so that it holds an older table rather than
/// none (a replica that lacks the table sends the read to the primary).
async fn stale_reads(writer: &Client, reader: &Client, rounds: i64, pause: Duration) -> usize {
    let mut misses = 0;
    for round in 1..=rounds {
        tokio::time::sleep(pause).await;
        refill(writer, round).await;
        let seen: i64 = reader
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        if seen != round {
            misses += 1;
        }
    }
    misses
}

/// The session's `SHOW shardgate.read_consistency`.
async fn shown(client: &Client) -> String {
    let row = client
        .query_one("SHOW shardgate.read_consistency", &[])
        .await
        .unwrap();
    row.get(0)
}

/// Reads of one level answered by the primary and by the replicas together.
async fn reads_of(client: &Client, level: &str) -> (u64, u64) {
    let rows = status(client).await;
    let column = format!("{level}_reads");
    let replicas = rows["main-r1"].number(&column) + rows["main-r2"].number(&column);
    (rows["main"].number(&column), replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_reads_see_every_acknowledged_write_of_other_connections() {
    // The shipped replication settings, and an asynchronous shard whose replicas lag.
    for replication in [
        "mode = \"semi_synchronous\"\nmin_acks = 1",
        "mode = \"asynchronous\"\napply_delay = \"40ms\"",
    ] {
        let server = common::start_config(&common::replicated_config(replication)).await;
        let writer = server.connect().await;
        let reader = server.connect().await;
        wait_caught_up(&writer, Duration::from_secs(20)).await;
        let misses = stale_reads(&writer, &reader, 40, Duration::from_millis(60)).await;
        assert_eq!(misses, 0, "{replication}: {misses} of 40 reads were stale");
        assert_eq!(shown(&reader).await, "strong", "the default");
        // Once the replicas have everything, strong reads go to them.
        wait_caught_up(&writer, Duration::from_secs(20)).await;
        let (_, before) = reads_of(&writer, "strong").await;
        for _ in 0..20 {
            reader
                .query_one("SELECT count(*) FROM t", &[])
                .await
                .unwrap();
        }
        let (_, after) = reads_of(&writer, "strong").await;
        assert_eq!(
            after - before,
            20,
            "{replication}: replicas served no reads"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_reads_wait_for_a_replica_up_to_read_wait() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"asynchronous\"\napply_delay = \"30ms\"\nread_wait = \"5s\"",
    ))
    .await;
    let writer = server.connect().await;
    let reader = server.connect().await;
    wait_caught_up(&writer, Duration::from_secs(20)).await;
    let misses = stale_reads(&writer, &reader, 15, Duration::from_millis(50)).await;
    assert_eq!(misses, 0);
    // Every read waited for a replica instead of going to the primary.
    let (primary, replicas) = reads_of(&writer, "strong").await;
    assert_eq!((primary, replicas), (0, 15));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_reads_behind_a_lagging_replica_are_stale() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"asynchronous\"\napply_delay = \"100ms\"\nread_consistency = \"eventual\"",
    ))
    .await;
    let writer = server.connect().await;
    let reader = server.connect().await;
    wait_caught_up(&writer, Duration::from_secs(20)).await;
    let misses = stale_reads(&writer, &reader, 10, Duration::from_millis(150)).await;
    assert!(
        misses > 0,
        "eventual reads never lagged: the test proves nothing"
    );
    let (_, replicas) = reads_of(&writer, "eventual").await;
    assert!(replicas > 0, "no eventual read reached a replica");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reads_see_the_sessions_own_writes_only() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"asynchronous\"\napply_delay = \"100ms\"",
    ))
    .await;
    let writer = server.connect().await;
    let reader = server.connect().await;
    for client in [&writer, &reader] {
        client
            .batch_execute("SET shardgate.read_consistency = 'session'")
            .await
            .unwrap();
    }
    wait_caught_up(&writer, Duration::from_secs(20)).await;
    // The writer reads its own writes every time.
    let own_misses = stale_reads(&writer, &writer, 10, Duration::from_millis(150)).await;
    assert_eq!(own_misses, 0);
    // Another session has no such promise.
    let misses = stale_reads(&writer, &reader, 10, Duration::from_millis(150)).await;
    assert!(
        misses > 0,
        "session reads of another connection never lagged"
    );
    let (primary, replicas) = reads_of(&writer, "session").await;
    assert_eq!(primary + replicas, 20);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_consistency_is_set_and_shown_per_session() {
    let server = common::start_config(&common::replicated_config(
        "mode = \"asynchronous\"\nread_consistency = \"session\"",
    ))
    .await;
    let client = server.connect().await;
    // The configured default.
    assert_eq!(shown(&client).await, "session");
    client
        .batch_execute("SET shardgate.read_consistency = 'EVENTUAL'")
        .await
        .unwrap();
    assert_eq!(shown(&client).await, "eventual");
    client
        .batch_execute("SET shardgate.read_consistency = 'strong'")
        .await
        .unwrap();
    assert_eq!(shown(&client).await, "strong");
    let err = client
        .batch_execute("SET shardgate.read_consistency = 'linearizable'")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err}");
    assert_eq!(shown(&client).await, "strong");
    client
        .batch_execute("RESET shardgate.read_consistency")
        .await
        .unwrap();
    assert_eq!(shown(&client).await, "session");
    // Another session still has the default.
    let other = server.connect().await;
    assert_eq!(shown(&other).await, "session");
    server.stop().await;
}
