//! The `shardgate` binary itself: `check-config`, and `serve` with the shipped default config,
//! including a graceful SIGTERM shutdown.

mod common;

use common::process;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn shardgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shardgate"))
}

/// Writes `text` to a config file in a fresh directory and runs `check-config` on it.
fn check_config(text: &str) -> (bool, String, String) {
    let dir = common::temp_dir("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let output = shardgate()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const VALID_SHARD: &str = "[[shards]]\nname = \"main\"\nprimary = \"main/primary.db\"\n";

#[test]
fn check_config_names_the_key_of_every_kind_of_mistake() {
    let cases = [
        (
            format!("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n{VALID_SHARD}"),
            "listne",
        ),
        (
            format!("[server]\nshutdown_timeout = \"ten seconds\"\n{VALID_SHARD}"),
            "shutdown_timeout",
        ),
        (
            format!(
                "[server]\n[[users]]\nname = \"app\"\npassword = \"a\"\n[[users]]\nname = \"app\"\npassword = \"b\"\n{VALID_SHARD}"
            ),
            "users",
        ),
        (
            "[server]\n[[shards]]\nname = \"main\"\nprimary = \"\"\n".to_string(),
            "primary",
        ),
        (
            format!("[server]\nlisten = \"not an address\"\n{VALID_SHARD}"),
            "listen",
        ),
        (
            "[server]\n[[shards]]\nname = \"main\"\n".to_string(),
            "primary",
        ),
        ("[server\n".to_string(), "invalid"),
    ];
    for (text, key) in cases {
        let (ok, _, stderr) = check_config(&text);
        assert!(!ok, "check-config accepted:\n{text}");
        assert!(
            stderr.contains(key),
            "message for\n{text}\ndoes not name {key}: {stderr}"
        );
    }
    let missing = shardgate()
        .args(["check-config", "--config", "/nonexistent/shardgate.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/shardgate.toml"));
}

#[test]
fn check_config_prints_the_shipped_topology() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/shardgate.toml");
    let output = shardgate()
        .args(["check-config", "--config"])
        .arg(&shipped)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("127.0.0.1:6432"), "{stdout}");
    assert!(stdout.contains("main"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_embedded_default_then_sigterm_lets_running_statement_finish() {
    let cwd: PathBuf = common::temp_dir("serve");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut served = process::serve(&cwd, &[]);
    let url = format!("postgres://app:app@127.0.0.1:{}/app", served.port);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("the embedded default config accepts app/app on database app");
    tokio::spawn(connection);
    assert!(cwd.join("data/main/primary.db").is_file());
    client
        .batch_execute("CREATE TABLE kept (id INT PRIMARY KEY); INSERT INTO kept VALUES (1), (2);")
        .await
        .unwrap();

    // A statement that runs for a while; SIGTERM arrives while it runs.
    let slow = tokio::spawn(async move {
        let row = client
            .query_one(
                "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 10000000) \
                 SELECT count(*) FROM c",
                &[],
            )
            .await;
        row.map(|r| r.get::<_, i64>(0))
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    served.signal(libc::SIGTERM);
    let sent_at = Instant::now();
    assert!(!slow.is_finished(), "the statement ended before SIGTERM");
    let counted = slow.await.unwrap().expect("the running statement finishes");
    assert_eq!(counted, 10_000_000);
    eprintln!("statement finished {:?} after SIGTERM", sent_at.elapsed());
    let status = served.wait_for_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    // Checkpointed at close: the WAL holds nothing the main file lacks.
    let wal = cwd.join("data/main/primary.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL not checkpointed"
    );
    drop(served);

    // A new connection after the restart sees the data.
    let mut served = process::serve(&cwd, &[]);
    let url = format!("postgres://app:app@127.0.0.1:{}/app", served.port);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let n: i64 = client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    served.signal(libc::SIGTERM);
    let status = served.wait_for_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_hold_shutdown() {
    let cwd: PathBuf = common::temp_dir("serve-idle");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut served = process::serve(&cwd, &[]);
    let url = format!("postgres://app:app@127.0.0.1:{}/app", served.port);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute("SELECT 1").await.unwrap();
    let started = Instant::now();
    served.signal(libc::SIGTERM);
    let status = served.wait_for_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    // The shipped shutdown_timeout is longer than this: an idle session must not be waited for.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for an idle connection",
        started.elapsed()
    );
    assert!(client.batch_execute("SELECT 1").await.is_err());
    let _ = connection.await;
    let _ = std::fs::remove_dir_all(&cwd);
}
