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
