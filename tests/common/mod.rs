//! Starts a real shardgate server on an ephemeral port for a test.
#![allow(dead_code)]

pub mod postgres;
pub mod process;
pub mod replicas;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use shardgate::config::{Config, Overrides};
use shardgate::server::Server;

pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shardgate-test-{}-{}-{}",
        label,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub async fn start_with(auth: &str, password: &str) -> TestServer {
    start_config(&config_text(
        auth,
        password,
        "[[shards]]\nname = \"main\"\nprimary = \"main/primary.db\"\n",
    ))
    .await
}

/// A config listening on an ephemeral port, with user app and the given further sections
/// (shards, replication).
pub fn config_text(auth: &str, password: &str, sections: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
database = "app"
auth = "{auth}"
shutdown_timeout = "2s"
[[users]]
name = "app"
password = "{password}"
{sections}"#
    )
}

/// One primary and two replicas (weights 2 and 1) with the given `[replication]` settings.
pub fn replicated_config(replication: &str) -> String {
    replicated_config_with_auth("scram-sha-256", replication)
}

/// [`replicated_config`] with another `auth` method (`trust` logs in without SCRAM's cost).
pub fn replicated_config_with_auth(auth: &str, replication: &str) -> String {
    config_text(
        auth,
        "app",
        &format!(
            r#"[replication]
{replication}
[[shards]]
name = "main"
primary = "main/primary.db"
replicas = [
  {{ name = "main-r1", path = "main/replica-1.db", weight = 2 }},
  {{ name = "main-r2", path = "main/replica-2.db", weight = 1 }},
]
"#
        ),
    )
}

/// Starts a server in-process from config `text` (its data directory is a fresh one).
pub async fn start_config(text: &str) -> TestServer {
    start_config_in(text, temp_dir("server")).await
}

/// Starts a server in-process from config `text` on the files in `data_dir` (removed when
/// the server is dropped).
pub async fn start_config_in(text: &str, data_dir: PathBuf) -> TestServer {
    let config = Config::parse(
        text,
        &Overrides {
            listen: None,
            data_dir: Some(data_dir.clone()),
        },
    )
    .expect("test config is valid");
    let server = Server::bind(config).await.expect("server starts");
    let addr = server.local_addr().expect("bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = server
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    TestServer {
        addr,
        data_dir,
        stop: Some(stop),
        handle: Some(handle),
    }
}

pub async fn start() -> TestServer {
    start_with("scram-sha-256", "app").await
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("postgres://app:app@127.0.0.1:{}/app", self.addr.port())
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connects");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Stops the server and keeps its files (the next server may open them).
    pub async fn stop_keeping_files(mut self) -> PathBuf {
        let data_dir = std::mem::take(&mut self.data_dir);
        self.stop().await;
        data_dir
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Decides on a test's external prerequisite: without it the test is skipped (it prints
/// `SKIPPED: <why>`), except under CI=true where a missing prerequisite is a failure.
pub fn require(available: bool, why_missing: &str) -> bool {
    if !available {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("required under CI=true: {why_missing}");
        }
        eprintln!("SKIPPED: {why_missing}");
    }
    available
}

/// Finds an external tool; without it the test is skipped, except under CI=true where a
/// missing tool is a failure.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if require(found.is_some(), &format!("{name} is not installed")) {
        found
    } else {
        None
    }
}

/// `python3`, if it can import `module`; otherwise skipped (or failed under CI=true) like
/// [`tool`].
pub fn python_module(module: &str) -> Option<PathBuf> {
    let python = tool("python3")?;
    let imports = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    require(imports, &format!("python3 cannot import {module}")).then_some(python)
}

/// The rows of a simple-protocol answer as text (`None` for NULL), in order.
pub fn text_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}
