//! Opens COUNT authenticated connections to a PostgreSQL-protocol server and holds them idle,
//! so a benchmark can measure the server's memory per idle connection (bench/run.sh).
//!
//!     idle_connections HOST PORT USER PASSWORD DBNAME COUNT
//!
//! Connects in concurrent batches of 200 (a server sees at most 200 start-ups at once), runs
//! `SELECT 1` on each connection so every one has completed start-up and authentication, prints
//! `ready COUNT` on stdout, then sleeps until stdin closes or the process is killed. Any failed
//! connection exits with status 1 and the error.

use std::io::Write;
use std::process::exit;

use tokio::io::AsyncReadExt;
use tokio_postgres::{Client, Config, NoTls};

const BATCH: usize = 200;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: idle_connections HOST PORT USER PASSWORD DBNAME COUNT");
        exit(2);
    }
    let port: u16 = args[2].parse().unwrap_or_else(|_| {
        eprintln!("bad port {:?}", args[2]);
        exit(2)
    });
    let count: usize = args[6].parse().unwrap_or_else(|_| {
        eprintln!("bad count {:?}", args[6]);
        exit(2)
    });
    let mut config = Config::new();
    config
        .host(&args[1])
        .port(port)
        .user(&args[3])
        .password(&args[4])
        .dbname(&args[5])
        .application_name("idle_connections");

    let mut clients: Vec<Client> = Vec::with_capacity(count);
    while clients.len() < count {
        let n = BATCH.min(count - clients.len());
        let batch = (0..n).map(|_| connect(&config));
        for result in futures::future::join_all(batch).await {
            match result {
                Ok(client) => clients.push(client),
                Err(e) => {
                    let reason = match e.as_db_error() {
                        Some(db) => {
                            format!("{}: {} ({})", db.severity(), db.message(), db.code().code())
                        }
                        None => e.to_string(),
                    };
                    eprintln!(
                        "connection {} of {count} failed: {reason}",
                        clients.len() + 1
                    );
                    exit(1);
                }
            }
        }
    }
    println!("ready {}", clients.len());
    std::io::stdout().flush().ok();

    // Hold the connections until stdin reaches end of file (or the process is killed).
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(clients);
}

async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server closes the connection.
        let _ = connection.await;
    });
    client.simple_query("SELECT 1").await?;
    Ok(client)
}
