//! The shardgate command line: `serve` and `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shardgate::config::{Config, ConfigError, Overrides};
use shardgate::server::Server;

#[derive(Parser)]
#[command(
    name = "shardgate",
    version,
    about = "A PostgreSQL wire-protocol SQL router over SQLite"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Config file (default: config/shardgate.toml, or the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding [server] listen.
        #[arg(long)]
        listen: Option<String>,
        /// Data directory, overriding [server] data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Validate a config file and print the resolved topology.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<PathBuf>, overrides: Overrides) -> Result<Config, ExitCode> {
    Config::load(config.as_deref(), &overrides).map_err(|e| {
        match e {
            ConfigError::Invalid(problems) => {
                eprintln!("invalid configuration:");
                for p in problems {
                    eprintln!("  {p}");
                }
            }
            other => eprintln!("{other}"),
        }
        ExitCode::from(2)
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::CheckConfig { config } => match load(config, Overrides::default()) {
            Ok(config) => {
                print!("{}", config.describe());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let config = match load(config, Overrides { listen, data_dir }) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let server = match Server::bind(config).await {
                    Ok(server) => server,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                };
                if let Ok(addr) = server.local_addr() {
                    tracing::info!("shardgate listening on {addr}");
                }
                match server.run(shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
