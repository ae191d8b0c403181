//! A throwaway PostgreSQL 15 for differential tests.
//!
//! [`Postgres::start`] runs `initdb` in a fresh temporary directory (as the `postgres` user
//! when the test runs as root, since initdb refuses root), starts the server on a free
//! loopback port with its unix socket in the same directory, `fsync=off`, `TimeZone=UTC` and
//! a UTF-8 `C` locale, and [`Postgres::connect`] gives a tokio-postgres client (user
//! `postgres`, database `postgres`, trust authentication). Dropping it stops the server
//! (`pg_ctl stop -m immediate`) and removes the directory. Without the PostgreSQL 15 server
//! binaries `start` prints `SKIPPED` and returns `None`, except under `CI=true`, where it
//! fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian's `postgresql-15` package puts the server binaries.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How long `pg_ctl` may wait for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

pub struct Postgres {
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl Postgres {
    /// Starts a fresh server, or `None` (after `SKIPPED: ...`) without the binaries.
    pub fn start() -> Option<Postgres> {
        let available = Path::new(BIN_DIR).join("postgres").is_file();
        if !super::require(
            available,
            &format!("PostgreSQL 15 is not installed ({BIN_DIR}/postgres is missing)"),
        ) {
            return None;
        }
        let dir = super::temp_dir("postgres");
        std::fs::create_dir_all(&dir).expect("creates the PostgreSQL directory");
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres_user = unsafe { libc::geteuid() } == 0;
        let server = Postgres {
            port: free_port(),
            dir,
            as_postgres_user,
        };
        if as_postgres_user {
            server.check(
                "chown",
                Command::new("chown").arg("postgres:").arg(&server.dir),
            );
        }
        let data = server.data_dir();
        server.check(
            "initdb",
            server
                .pg_command("initdb")
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
                .args(["--locale", "C.UTF-8", "-D"])
                .arg(&data),
        );
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off -c TimeZone=UTC",
            server.port,
            server.dir.display()
        );
        server.check(
            "pg_ctl start",
            server
                .pg_command("pg_ctl")
                .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
                .arg(&data)
                .arg("-l")
                .arg(server.dir.join("server.log"))
                .args(["-o", &options, "start"]),
        );
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connects to PostgreSQL");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A PostgreSQL program, run as the `postgres` user when the test runs as root.
    fn pg_command(&self, program: &str) -> Command {
        let path = Path::new(BIN_DIR).join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn check(&self, what: &str, command: &mut Command) -> Output {
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("{what} cannot run: {e}"));
        assert!(
            output.status.success(),
            "{what} failed: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
        output
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .pg_command("pg_ctl")
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-m", "immediate", "-D"])
            .arg(self.data_dir())
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binds an ephemeral port")
}
