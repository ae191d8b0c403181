//! Application drivers against the real server: psycopg 3, asyncpg, node-postgres and pgjdbc
//! each run a check script from `tests/clients/` (connect with SCRAM, every common column type
//! in text and binary, parameters, NULLs, transactions, SQLSTATEs, batches, many rows, and each
//! driver's own habits). A script exits non-zero on any failed check and its output is shown.
//!
//! A missing driver skips its test with `SKIPPED: <why>`, except under CI=true where it fails;
//! `.ci/run` installs them all. Checks for known server gaps are listed by the scripts and run
//! only with SHARDGATE_KNOWN_GAPS=1.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Debian's libpostgresql-jdbc-java.
const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";
/// A whole script run; each script also bounds its own checks.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Starts a server, runs `program args... URL` and fails with the script's output unless it
/// exits 0.
async fn run_check(program: PathBuf, args: Vec<String>) {
    let server = common::start().await;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .arg(server.url())
        .current_dir(clients_dir())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let label = format!("{} {}", program.display(), args.join(" "));
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, command.output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("{label} does not start: {e}")),
        Err(_) => panic!("{label} did not finish within {SCRIPT_TIMEOUT:?}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{label} failed ({}):\n{text}",
        output.status
    );
    println!("{text}");
    server.stop().await;
}

fn script(name: &str) -> String {
    clients_dir().join(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg3() {
    let Some(python) = common::python_module("psycopg") else {
        return;
    };
    run_check(python, vec![script("psycopg_check.py")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg() {
    let Some(python) = common::python_module("asyncpg") else {
        return;
    };
    run_check(python, vec![script("asyncpg_check.py")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres() {
    let Some(node) = common::tool("node") else {
        return;
    };
    let installed = clients_dir()
        .join("node/node_modules/pg/package.json")
        .is_file();
    if !common::require(
        installed,
        "tests/clients/node/node_modules has no pg: run `npm ci --prefix tests/clients/node`",
    ) {
        return;
    }
    run_check(node, vec![script("node/node_pg_check.js")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc() {
    let Some(java) = common::tool("java") else {
        return;
    };
    if !common::require(
        Path::new(PGJDBC_JAR).is_file(),
        &format!("{PGJDBC_JAR} is missing: install libpostgresql-jdbc-java"),
    ) {
        return;
    }
    // A JVM zone east of UTC makes setTimestamp send a non-zero offset, which timestamp
    // columns must ignore and timestamptz columns apply.
    run_check(
        java,
        vec![
            "-Duser.timezone=Asia/Kolkata".into(),
            "-cp".into(),
            PGJDBC_JAR.into(),
            script("JdbcCheck.java"),
        ],
    )
    .await;
}
