//! Starting the server from a configuration: open the backend, bind, serve until a signal.

use std::sync::Arc;

use crate::config::{Config, ShardConfig};
use crate::frontend::{self, Shared};
use crate::replication::Replication;
use crate::replication::log::Position;
use crate::router::sharding::Sharding;
use crate::router::{Router, Shard};
use crate::storage::{Backend, ConnectionSettings, SqliteBackend, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open {path}: {source}")]
    Storage { path: String, source: StorageError },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A shard's primary, opened.
struct OpenedShard {
    primary: Arc<dyn Backend>,
    settings: ConnectionSettings,
    /// With replicas: the primary's committed log positions.
    committed: Option<tokio::sync::watch::Receiver<Position>>,
}

async fn open_shard(config: &Config, shard: &ShardConfig) -> Result<OpenedShard, StartError> {
    // A primary with replicas logs every write transaction and announces each commit.
    let (committed, committed_rx) = tokio::sync::watch::channel(Position::default());
    let replicated = !shard.replicas.is_empty();
    let settings = ConnectionSettings {
        replication_log: replicated.then_some(committed),
        ..ConnectionSettings::new(config)
    };
    let storage_error = |source| StartError::Storage {
        path: shard.primary.display().to_string(),
        source,
    };
    let backend = SqliteBackend::open(
        shard.primary.clone(),
        config.storage.read_connections,
        settings.clone(),
    )
    .await
    .map_err(storage_error)?;
    backend.load_schema().await.map_err(storage_error)?;
    Ok(OpenedShard {
        primary: Arc::new(backend),
        settings,
        committed: replicated.then_some(committed_rx),
    })
}

/// A server that is listening; `run` serves until `shutdown` resolves.
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let mut opened = Vec::with_capacity(config.shards.len());
        for shard in &config.shards {
            opened.push(open_shard(&config, shard).await?);
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen,
                source,
            })?;
        // Replication starts once the server is sure to run.
        let shards = opened
            .into_iter()
            .zip(&config.shards)
            .map(|(opened, shard)| {
                let replication = opened.committed.map(|committed| {
                    Replication::start(
                        shard,
                        &config.replication,
                        config.storage.read_connections,
                        opened.settings.clone(),
                        committed,
                        opened.primary.clone(),
                    )
                });
                Arc::new(Shard::new(shard.name.clone(), opened.primary, replication))
            })
            .collect();
        let sharding = config
            .sharding
            .as_ref()
            .map(|sharding| Sharding::new(sharding, &config.shards));
        let router = Arc::new(Router::new(shards, sharding));
        let shared = Shared::new(config, router);
        Ok(Server { listener, shared })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        frontend::serve(self.listener, self.shared, shutdown).await
    }
}
