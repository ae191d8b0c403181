//! Starting the server from a configuration: open the backend, bind, serve until a signal.

use std::sync::Arc;

use crate::config::Config;
use crate::frontend::{self, Shared};
use crate::replication::Replication;
use crate::replication::log::Position;
use crate::router::{Router, Shard};
use crate::storage::{Backend, ConnectionSettings, SqliteBackend, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot open {path}: {source}")]
    Storage { path: String, source: StorageError },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A server that is listening; `run` serves until `shutdown` resolves.
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        if config.shards.len() != 1 {
            return Err(StartError::Unsupported(
                "serving more than one shard is not built yet".into(),
            ));
        }
        let shard = &config.shards[0];
        // A primary with replicas logs every write transaction and announces each commit.
        let (committed, committed_rx) = tokio::sync::watch::channel(Position::default());
        let replicated = !shard.replicas.is_empty();
        let settings = ConnectionSettings {
            synchronous: config.storage.synchronous,
            busy_timeout: config.storage.busy_timeout,
            database: config.database.clone(),
            server_version: crate::SERVER_VERSION.to_string(),
            replication_log: replicated.then_some(committed),
            owner: config
                .users
                .first()
                .map(|u| u.name.clone())
                .unwrap_or_default(),
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
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen,
                source,
            })?;
        let primary: Arc<dyn Backend> = Arc::new(backend);
        let replication = replicated.then(|| {
            Replication::start(
                shard,
                &config.replication,
                config.storage.read_connections,
                settings,
                committed_rx,
                primary.clone(),
            )
        });
        let router = Arc::new(Router::new(
            vec![Arc::new(Shard::new(
                shard.name.clone(),
                primary,
                replication,
            ))],
            None,
        ));
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
