//! Crash safety: the server process is killed (SIGKILL) at random points under a write load,
//! again and again. Every write it acknowledged must be on the primary after a restart, and
//! every replica must converge to the primary's exact content.

mod common;

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{self, Served};
use common::replicas::{assert_replicas_identical, wait_caught_up};

const WRITERS: i32 = 3;
const KILLS: usize = 10;

/// Runs one writer until the server dies: each transaction inserts a row and bumps the
/// writer's total; its id is recorded only once COMMIT was acknowledged.
async fn write_until_killed(
    url: String,
    writer: i32,
    next: Arc<AtomicI32>,
    acked: Arc<Mutex<Vec<i32>>>,
) {
    let Ok((mut client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    else {
        return;
    };
    tokio::spawn(connection);
    loop {
        let id = next.fetch_add(1, Ordering::Relaxed);
        let Ok(txn) = client.transaction().await else {
            return;
        };
        let inserted = txn
            .execute(
                "INSERT INTO acked (id, writer, noise) VALUES ($1, $2, random())",
                &[&id, &writer],
            )
            .await;
        let bumped = txn
            .execute("UPDATE totals SET n = n + 1 WHERE writer = $1", &[&writer])
            .await;
        if inserted.is_err() || bumped.is_err() {
            return;
        }
        if txn.commit().await.is_err() {
            return;
        }
        if let Ok(mut acked) = acked.lock() {
            acked.push(id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_replicas_converge() {
    let dir = common::temp_dir("crash");
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("shardgate.toml");
    std::fs::write(
        &config,
        common::replicated_config("mode = \"semi_synchronous\"\nhealth_check_interval = \"200ms\""),
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    let start = || process::serve(&dir, &args);

    let served = start();
    let client = served.connect().await;
    let mut schema = String::from(
        "CREATE TABLE acked (id INT PRIMARY KEY, writer INT NOT NULL, noise DOUBLE PRECISION);
         CREATE TABLE totals (writer INT PRIMARY KEY, n INT NOT NULL);",
    );
    for writer in 0..WRITERS {
        schema.push_str(&format!("INSERT INTO totals VALUES ({writer}, 0);"));
    }
    client.batch_execute(&schema).await.unwrap();
    drop(client);
    drop(served);

    let next = Arc::new(AtomicI32::new(1));
    let acked = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..KILLS {
        let mut served: Served = start();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                tokio::spawn(write_until_killed(
                    served.url(),
                    writer,
                    next.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        let pause = rand::random_range(150..700);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        served.signal(libc::SIGKILL);
        served.wait_for_exit(Duration::from_secs(10));
        for writer in writers {
            writer.await.unwrap();
        }
    }

    let served = start();
    let client = served.connect().await;
    wait_caught_up(&client, Duration::from_secs(60)).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > KILLS,
        "the load wrote almost nothing: {}",
        acked.len()
    );
    let stored: std::collections::HashSet<i32> = client
        .query("/* shardgate:primary */ SELECT id FROM acked", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<&i32> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    // Each transaction's two writes committed together or not at all.
    let total: i64 = client
        .query_one("/* shardgate:primary */ SELECT sum(n) FROM totals", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total as usize, stored.len());
    assert_replicas_identical(&data_dir);
    eprintln!(
        "{} acknowledged transactions over {KILLS} kills, {} rows stored",
        acked.len(),
        stored.len()
    );
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

const SYNC_WRITERS: i32 = 8;
const SYNC_KILLS: usize = 6;

/// Whether the row `id` of `acked` is in the replica file at `path`, read directly; `None`
/// when the file could not be read at that moment.
fn replica_holds(path: &std::path::Path, id: i32) -> Option<bool> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT count(*) FROM acked WHERE id = ?1", [id], |r| {
        r.get::<_, i64>(0)
    })
    .ok()
    .map(|n| n == 1)
}

/// What the synchronous writers saw: acknowledged ids, acknowledgements a replica file did
/// not hold, and checks that could not read a file.
#[derive(Default)]
struct SyncSamples {
    acked: Vec<i32>,
    missing: Vec<(i32, std::path::PathBuf)>,
    unreadable: usize,
}

/// Inserts rows in autocommit until the server dies; after each acknowledgement, opens every
/// replica file and checks that it holds the row. `connected` counts writers ready to write.
async fn write_and_check_replicas(
    url: String,
    writer: i32,
    connected: Arc<std::sync::atomic::AtomicUsize>,
    next: Arc<AtomicI32>,
    replicas: Arc<Vec<std::path::PathBuf>>,
    samples: Arc<Mutex<SyncSamples>>,
) {
    let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    else {
        return;
    };
    tokio::spawn(connection);
    let Ok(insert) = client
        .prepare("INSERT INTO acked (id, writer, noise) VALUES ($1, $2, random())")
        .await
    else {
        return;
    };
    connected.fetch_add(1, Ordering::AcqRel);
    loop {
        let id = next.fetch_add(1, Ordering::Relaxed);
        if client.execute(&insert, &[&id, &writer]).await.is_err() {
            return;
        }
        let paths = replicas.clone();
        let held = tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|p| (p.clone(), replica_holds(p, id)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let mut seen = samples.lock().unwrap();
        seen.acked.push(id);
        for (path, held) in held {
            match held {
                Some(true) => {}
                Some(false) => seen.missing.push((id, path)),
                None => seen.unreadable += 1,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_acknowledgements_are_on_every_replica_across_sigkills() {
    let dir = common::temp_dir("sync-crash");
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("shardgate.toml");
    // An ack_timeout far beyond a restart's catch-up: no replica may leave the rotation, so
    // every acknowledgement must be on both replicas. `trust` lets the writers log in and
    // write at once, while the replicas are still opening after the restart.
    std::fs::write(
        &config,
        common::replicated_config_with_auth(
            "trust",
            "mode = \"synchronous\"\nack_timeout = \"30s\"\nhealth_check_interval = \"200ms\"",
        ),
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    let start = || process::serve(&dir, &args);
    {
        let served = start();
        let client = served.connect().await;
        client
            .batch_execute(
                "CREATE TABLE acked (id INT PRIMARY KEY, writer INT NOT NULL, noise DOUBLE PRECISION)",
            )
            .await
            .unwrap();
    }
    let [_, r1, r2] = common::replicas::files(&data_dir);
    let replicas = Arc::new(vec![r1, r2]);
    let next = Arc::new(AtomicI32::new(1));
    let samples = Arc::new(Mutex::new(SyncSamples::default()));
    // Per run: (degraded writes, times a replica left the rotation).
    let mut degraded = Vec::new();
    for _ in 0..SYNC_KILLS {
        let mut served: Served = start();
        let observer = served.connect().await;
        let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writers: Vec<_> = (0..SYNC_WRITERS)
            .map(|writer| {
                tokio::spawn(write_and_check_replicas(
                    served.url(),
                    writer,
                    connected.clone(),
                    next.clone(),
                    replicas.clone(),
                    samples.clone(),
                ))
            })
            .collect();
        // The kill comes a random time after every writer is writing, not while they are
        // still logging in (slow on a loaded machine).
        let connecting = std::time::Instant::now();
        while connected.load(Ordering::Acquire) < SYNC_WRITERS as usize {
            assert!(
                connecting.elapsed() < Duration::from_secs(30),
                "the writers did not connect"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pause = rand::random_range(300..900);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // Read before the kill; checked after the replica files, which say more.
        let rows = common::replicas::status(&observer).await;
        degraded.push((
            rows["main"].number("degraded_writes"),
            rows["main-r1"].number("left_rotation") + rows["main-r2"].number("left_rotation"),
        ));
        served.signal(libc::SIGKILL);
        served.wait_for_exit(Duration::from_secs(10));
        for writer in writers {
            writer.await.unwrap();
        }
    }
    let samples = samples.lock().unwrap();
    eprintln!(
        "{} synchronous acknowledgements over {SYNC_KILLS} kills, {} replica checks unreadable",
        samples.acked.len(),
        samples.unreadable
    );
    assert!(
        samples.acked.len() > 10 * SYNC_KILLS,
        "the load wrote almost nothing: {}",
        samples.acked.len()
    );
    assert!(
        samples.unreadable * 10 < samples.acked.len(),
        "too few acknowledgements could be checked: {} unreadable",
        samples.unreadable
    );
    assert!(
        samples.missing.is_empty(),
        "{} of {} acknowledgements were sent while a replica lacked the row: {:?}",
        samples.missing.len(),
        samples.acked.len(),
        &samples.missing[..samples.missing.len().min(10)]
    );
    assert!(
        degraded
            .iter()
            .all(|&(writes, left)| writes == 0 && left == 0),
        "writes were acknowledged without every replica (degraded writes, rotation leaves per run): {degraded:?}"
    );
    drop(samples);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the binary on `dir` with a replicated config, runs each of `transactions`, lets
/// two health-check periods pass, and stops it cleanly.
async fn run_once(dir: &std::path::Path, transactions: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("shardgate.toml");
    std::fs::write(
        &config,
        common::replicated_config("mode = \"synchronous\"\nhealth_check_interval = \"200ms\""),
    )
    .unwrap();
    let data_dir = dir.join("data");
    let mut served = process::serve(
        dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
    );
    let client = served.connect().await;
    wait_caught_up(&client, Duration::from_secs(30)).await;
    for sql in transactions {
        client.batch_execute(sql).await.unwrap();
    }
    wait_caught_up(&client, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(client);
    served.signal(libc::SIGTERM);
    assert!(served.wait_for_exit(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_cannot_follow_are_rebuilt_at_start_and_the_log_is_truncated() {
    let base = common::temp_dir("rebuild");
    let (a, b) = (base.join("a"), base.join("b"));
    run_once(
        &a,
        &["CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a')".into()],
    )
    .await;
    run_once(
        &b,
        &["CREATE TABLE u (id INT PRIMARY KEY); INSERT INTO u VALUES (7)".into()],
    )
    .await;
    let replica = |dir: &std::path::Path, n: u8| dir.join(format!("data/main/replica-{n}.db"));
    // Replica 1 now belongs to another primary; replica 2 claims to be ahead of its primary.
    std::fs::copy(replica(&b, 1), replica(&a, 1)).unwrap();
    rusqlite::Connection::open(replica(&a, 2))
        .unwrap()
        .execute("UPDATE _shardgate_position SET lsn = lsn + 100", [])
        .unwrap();

    let inserts: Vec<String> = (2..=21)
        .map(|id| format!("INSERT INTO t VALUES ({id}, 'b')"))
        .collect();
    run_once(&a, &inserts).await;
    let data_dir = a.join("data");
    common::replicas::assert_replicas_identical(&data_dir);
    let tables = common::replicas::dump(&replica(&a, 1));
    assert!(
        !tables.contains_key("u"),
        "the foreign replica was not replaced"
    );
    assert_eq!(tables["t"].len(), 22, "{:?}", tables["t"]);

    // Everything was applied everywhere: truncation keeps only the newest record.
    let primary = rusqlite::Connection::open_with_flags(
        data_dir.join("main/primary.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let kept: i64 = primary
        .query_row("SELECT count(*) FROM _shardgate_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 1, "log records kept after every replica applied them");
    let _ = std::fs::remove_dir_all(&base);
}
