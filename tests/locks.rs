//! Writer leases through the wire: sessions writing on several shards in opposite orders never
//! deadlock; a wait for a writer another transaction holds ends with `55P03` after
//! `lock_timeout`, with `57014` on a CancelRequest and with `57P01` at shutdown; a session
//! idle in a transaction is closed with `25P03` and its writer freed; a READ COMMITTED
//! transaction takes its shard's writer at its first write, REPEATABLE READ at BEGIN.

mod common;

use std::time::{Duration, Instant};

use futures::SinkExt;
use shardgate::router::placement::{Placement, ShardKey};
use tokio_postgres::{Client, NoTls};

/// Everything a test waits for is bounded by this: the old code hung here.
const HANG: Duration = Duration::from_secs(60);

fn two_shards() -> String {
    common::config_text(
        "scram-sha-256",
        "app",
        "[sharding]\nstrategy = \"hash\"\ntables = [{ name = \"t\", key = \"id\" }]\n\
         [[shards]]\nname = \"s1\"\nprimary = \"s1/primary.db\"\n\
         [[shards]]\nname = \"s2\"\nprimary = \"s2/primary.db\"\n",
    )
}

fn one_shard(storage: &str) -> String {
    common::config_text(
        "scram-sha-256",
        "app",
        &format!("{storage}\n[[shards]]\nname = \"main\"\nprimary = \"main/primary.db\"\n"),
    )
}

/// `count` keys of each of the two hash shards, in key order.
fn keys_by_shard(count: usize) -> [Vec<i64>; 2] {
    let placement = Placement::Hash { shards: 2 };
    let mut keys = [Vec::new(), Vec::new()];
    let mut key = 0;
    while keys.iter().any(|k| k.len() < count) {
        key += 1;
        let shard = placement.shard_for(&ShardKey::Int(key)).unwrap();
        if keys[shard].len() < count {
            keys[shard].push(key);
        }
    }
    keys
}

fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| err.to_string())
}

async fn count(client: &Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0)
}

async fn show(client: &Client, setting: &str) -> String {
    let row = client
        .simple_query(&format!("SHOW {setting}"))
        .await
        .unwrap()
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        });
    row.unwrap()
}

/// Two split multi-row INSERTs, two multi-statement queries and two COPYs, each pair writing
/// the same two shards in opposite row orders, many times at once: every one completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_shard_orders_never_deadlock() {
    const ROUNDS: usize = 60;
    let server = common::start_config(&two_shards()).await;
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    let keys = keys_by_shard(ROUNDS * 6);
    let mut tasks = Vec::new();
    for writer in 0..6 {
        let client = server.connect().await;
        // No lock_timeout: only the order the writers are taken in keeps these apart.
        client.batch_execute("SET lock_timeout = 0").await.unwrap();
        let (first, second) = if writer % 2 == 0 { (0, 1) } else { (1, 0) };
        let mine: Vec<(i64, i64)> = (0..ROUNDS)
            .map(|round| {
                let at = writer * ROUNDS + round;
                (keys[first][at], keys[second][at])
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            for (a, b) in mine {
                match writer / 2 {
                    0 => {
                        client
                            .execute(&format!("INSERT INTO t VALUES ({a}, 1), ({b}, 1)"), &[])
                            .await
                            .unwrap();
                    }
                    1 => client
                        .batch_execute(&format!(
                            "INSERT INTO t VALUES ({a}, 2); INSERT INTO t VALUES ({b}, 2)"
                        ))
                        .await
                        .unwrap(),
                    _ => {
                        let sink = client.copy_in("COPY t (id, v) FROM STDIN").await.unwrap();
                        futures::pin_mut!(sink);
                        sink.send(bytes::Bytes::from(format!("{a}\t3\n{b}\t3\n")))
                            .await
                            .unwrap();
                        assert_eq!(sink.finish().await.unwrap(), 2);
                    }
                }
            }
        }));
    }
    let all = futures::future::join_all(tasks);
    let finished = tokio::time::timeout(HANG, all)
        .await
        .expect("writers on opposite shard orders deadlocked");
    for task in finished {
        task.unwrap();
    }
    assert_eq!(count(&setup).await, (ROUNDS * 6 * 2) as i64);
}

/// A write waiting for the writer an open transaction holds: 55P03 after lock_timeout, 57014
/// on a CancelRequest, and it goes through once the transaction ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeout_and_cancel_end_a_wait_for_the_writer() {
    let server = common::start_config(&one_shard("")).await;
    let holder = server.connect().await;
    let waiter = server.connect().await;
    holder
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    waiter
        .batch_execute("SET lock_timeout = '100ms'")
        .await
        .unwrap();
    assert_eq!(show(&waiter, "lock_timeout").await, "100ms");
    let started = Instant::now();
    let err = tokio::time::timeout(HANG, waiter.execute("INSERT INTO t VALUES (2)", &[]))
        .await
        .expect("the wait for the writer is not bounded")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03", "{err:?}");
    let db = err.as_db_error().unwrap();
    assert_eq!(db.message(), "canceling statement due to lock timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );

    // 0: no limit, but a CancelRequest still ends the wait.
    waiter.batch_execute("SET lock_timeout = 0").await.unwrap();
    assert_eq!(show(&waiter, "lock_timeout").await, "0");
    let token = waiter.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let err = tokio::time::timeout(HANG, waiter.execute("INSERT INTO t VALUES (3)", &[]))
        .await
        .expect("a CancelRequest did not end the wait for the writer")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    canceller.await.unwrap();

    // Values as PostgreSQL takes them, and what it refuses.
    waiter
        .batch_execute("SET lock_timeout = 1500")
        .await
        .unwrap();
    assert_eq!(show(&waiter, "lock_timeout").await, "1500ms");
    let err = waiter
        .batch_execute("SET lock_timeout = 'soon'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err:?}");
    // The shipped default bounds every wait.
    waiter.batch_execute("RESET lock_timeout").await.unwrap();
    assert_eq!(show(&waiter, "lock_timeout").await, "30s");

    // Once the holder ends its transaction, the writer is free again.
    let insert = tokio::spawn(async move {
        waiter.execute("INSERT INTO t VALUES (4)", &[]).await?;
        Ok::<_, tokio_postgres::Error>(waiter)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    let waiter = tokio::time::timeout(HANG, insert)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(count(&waiter).await, 2);
}

/// `[storage]` sets each session's default lock_timeout and
/// idle_in_transaction_session_timeout.
#[tokio::test]
async fn configured_timeouts_are_session_defaults() {
    let server = common::start_config(&one_shard(
        "[storage]\nlock_timeout = \"1500ms\"\nidle_in_transaction_session_timeout = \"2min\"",
    ))
    .await;
    let client = server.connect().await;
    assert_eq!(show(&client, "lock_timeout").await, "1500ms");
    assert_eq!(
        show(&client, "idle_in_transaction_session_timeout").await,
        "2min"
    );
    let shipped = common::start_config(&one_shard("")).await;
    let client = shipped.connect().await;
    assert_eq!(show(&client, "lock_timeout").await, "30s");
    assert_eq!(
        show(&client, "idle_in_transaction_session_timeout").await,
        "0"
    );
}

/// Shutdown ends a wait for a writer at once with 57P01 instead of letting it run out the
/// shutdown timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_wait_for_the_writer() {
    let server = common::start_config(&one_shard("")).await;
    let holder = server.connect().await;
    let waiter = server.connect().await;
    holder
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY); BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    waiter.batch_execute("SET lock_timeout = 0").await.unwrap();
    let wait = tokio::spawn(async move {
        let result = waiter.execute("INSERT INTO t VALUES (2)", &[]).await;
        (result, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    let stop = tokio::spawn(server.stop());
    let (result, ended) = tokio::time::timeout(HANG, wait).await.unwrap().unwrap();
    let err = result.unwrap_err();
    assert_eq!(sqlstate(&err), "57P01", "{err:?}");
    // The test config's shutdown_timeout is 2s: the wait ended well before it.
    assert!(
        ended.duration_since(stopping) < Duration::from_millis(1500),
        "the wait ended {:?} after shutdown began",
        ended.duration_since(stopping)
    );
    drop(holder);
    tokio::time::timeout(HANG, stop).await.unwrap().unwrap();
}

/// A client that goes away while its statement waits for a writer: the wait ends, and the
/// statement never runs once the writer is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_stops_waiting_for_the_writer() {
    let server = common::start_config(&one_shard("")).await;
    let holder = server.connect().await;
    holder
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY); BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let (waiter, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    waiter.batch_execute("SET lock_timeout = 0").await.unwrap();
    let insert = tokio::spawn(async move { waiter.execute("INSERT INTO t VALUES (2)", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Dropping the connection's future closes the client's socket.
    connection.abort();
    assert!(
        tokio::time::timeout(HANG, insert)
            .await
            .unwrap()
            .unwrap()
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&holder).await,
        1,
        "the statement of a client that went away ran"
    );
}

/// A session idle inside a transaction longer than idle_in_transaction_session_timeout gets
/// FATAL 25P03, its connection closes, its transaction is rolled back and the writer it held
/// is free; a session idle outside a transaction is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_in_transaction_timeout_closes_the_session_and_frees_the_writer() {
    let server = common::start_config(&one_shard("")).await;
    let other = server.connect().await;
    other
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();

    let (idler, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    idler
        .batch_execute("SET idle_in_transaction_session_timeout = '300ms'")
        .await
        .unwrap();
    // Idle outside a transaction: nothing happens.
    tokio::time::sleep(Duration::from_millis(600)).await;
    idler.batch_execute("SELECT 1").await.unwrap();
    idler
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    let ended = tokio::time::timeout(HANG, connection)
        .await
        .expect("the idle transaction was not ended")
        .unwrap();
    let err = ended.expect_err("the server closed the connection without an error");
    assert_eq!(sqlstate(&err), "25P03", "{err:?}");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "terminating connection due to idle-in-transaction timeout"
    );
    assert!(idler.is_closed() || idler.batch_execute("SELECT 1").await.is_err());

    // The writer is free and the idle transaction's row is gone.
    other
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap();
    assert_eq!(count(&other).await, 1);
}

/// READ COMMITTED (the default) takes the shard's writer at the first write, so a transaction
/// that only reads does not block writers and sees their commits; after its first write it
/// reads its own writes and holds the writer; SELECT ... FOR UPDATE counts as a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_takes_the_writer_at_its_first_write() {
    let server = common::start_config(&one_shard("")).await;
    let reader = server.connect().await;
    let writer = server.connect().await;
    writer
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    reader.batch_execute("BEGIN").await.unwrap();
    assert_eq!(count(&reader).await, 1);
    // The open transaction only read: an autocommit write goes through at once.
    tokio::time::timeout(
        Duration::from_secs(3),
        writer.execute("INSERT INTO t VALUES (2)", &[]),
    )
    .await
    .expect("a transaction that only read blocked a writer")
    .unwrap();
    // Each statement has its own snapshot: the commit is visible.
    assert_eq!(count(&reader).await, 2);

    // After its first write, the transaction reads its own writes and holds the writer.
    reader
        .execute("INSERT INTO t VALUES (3)", &[])
        .await
        .unwrap();
    assert_eq!(count(&reader).await, 3);
    assert_eq!(count(&writer).await, 2);
    writer
        .batch_execute("SET lock_timeout = '100ms'")
        .await
        .unwrap();
    let err = writer
        .execute("INSERT INTO t VALUES (4)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03", "{err:?}");
    assert_eq!(
        show(&reader, "transaction_isolation").await,
        "read committed"
    );
    reader.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&writer).await, 3);
    assert_eq!(
        show(&reader, "transaction_isolation").await,
        "read committed"
    );

    // A locking read is a write.
    reader
        .batch_execute("BEGIN; SELECT * FROM t WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let err = writer
        .execute("INSERT INTO t VALUES (5)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P03", "{err:?}");
    reader.batch_execute("ROLLBACK").await.unwrap();

    // A savepoint set before the first write still rolls back what follows it.
    reader
        .batch_execute(
            "BEGIN; SAVEPOINT a; INSERT INTO t VALUES (6); ROLLBACK TO SAVEPOINT a; INSERT INTO t VALUES (7); COMMIT",
        )
        .await
        .unwrap();
    let ids: Vec<i32> = writer
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 7]);
}

/// REPEATABLE READ and SERIALIZABLE (by BEGIN, SET TRANSACTION or
/// default_transaction_isolation) take the writer at BEGIN: a concurrent write waits for the
/// transaction, which keeps seeing its snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeatable_read_keeps_its_snapshot() {
    let server = common::start_config(&one_shard("")).await;
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let begins = [
        ("BEGIN ISOLATION LEVEL REPEATABLE READ", "repeatable read"),
        (
            "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "serializable",
        ),
        (
            "SET default_transaction_isolation = 'repeatable read'; BEGIN",
            "repeatable read",
        ),
    ];
    for (id, (begin, level)) in begins.into_iter().enumerate() {
        let snapshot = server.connect().await;
        let writer = server.connect().await;
        writer.batch_execute("SET lock_timeout = 0").await.unwrap();
        snapshot.batch_execute(begin).await.unwrap();
        assert_eq!(show(&snapshot, "transaction_isolation").await, level);
        let before = count(&snapshot).await;
        let write = tokio::spawn(async move {
            writer
                .execute(&format!("INSERT INTO t VALUES ({id})"), &[])
                .await
                .map(|_| Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count(&snapshot).await, before, "{begin}: snapshot moved");
        let committing = Instant::now();
        snapshot.batch_execute("COMMIT").await.unwrap();
        let written = tokio::time::timeout(HANG, write)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(written >= committing, "{begin}: the write did not wait");
        assert_eq!(count(&snapshot).await, before + 1);
    }
    // Only before the transaction's first statement.
    let client = server.connect().await;
    let err = client
        .batch_execute("BEGIN; SELECT 1; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "25001", "{err:?}");
}
