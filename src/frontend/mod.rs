//! The PostgreSQL frontend: the listener, the pgwire handlers, and shutdown.

mod auth;
mod connection;
mod copy;
mod execute;
mod merge;
pub mod query;
pub mod session;
mod status;
pub mod values;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::SessionError;
use crate::router::Router;
use crate::sql::plan::PlanCache;
use crate::storage::Backend;
use session::SessionRegistry;

/// What every connection shares.
pub struct Shared {
    pub config: Config,
    /// The primary.
    pub backend: Arc<dyn Backend>,
    pub router: Arc<Router>,
    pub plans: PlanCache,
    pub registry: Arc<SessionRegistry>,
    pub drain: Drain,
    pub users: Arc<auth::ConfiguredUsers>,
    pub session_defaults: Arc<session::ConfiguredDefaults>,
    connections: AtomicUsize,
}

impl Shared {
    pub fn new(config: Config, router: Arc<Router>) -> Arc<Shared> {
        Arc::new(Shared {
            users: Arc::new(auth::ConfiguredUsers::new(&config)),
            session_defaults: Arc::new(session::ConfiguredDefaults::new(&config)),
            config,
            backend: router.home().primary.clone(),
            router,
            plans: PlanCache::default(),
            registry: Arc::new(SessionRegistry::default()),
            drain: Drain::default(),
            connections: AtomicUsize::new(0),
        })
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Shutdown's view of the sessions: once shutdown starts no statement may begin, and the
/// server waits for the running ones before closing connections.
#[derive(Default)]
pub struct Drain {
    shutting_down: AtomicBool,
    running: AtomicUsize,
    all_finished: tokio::sync::Notify,
}

/// Held while a statement runs.
pub struct RunningStatement<'a>(&'a Drain);

impl Drop for RunningStatement<'_> {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_finished.notify_waiters();
        }
    }
}

impl Drain {
    /// Registers a statement about to run, or refuses it once shutdown has begun.
    pub fn start_statement(&self) -> Result<RunningStatement<'_>, SessionError> {
        self.running.fetch_add(1, Ordering::AcqRel);
        let guard = RunningStatement(self);
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(SessionError::ShuttingDown);
        }
        Ok(guard)
    }

    /// Refuses new statements and waits until none is running.
    async fn finish_running(&self) {
        self.shutting_down.store(true, Ordering::Release);
        loop {
            let finished = self.all_finished.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            finished.await;
        }
    }
}

struct Cancel(Arc<SessionRegistry>);

#[async_trait]
impl CancelHandler for Cancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.0.cancel(request.pid, &request.secret_key.to_bytes());
    }
}

/// The pgwire handlers every connection's message loop dispatches to.
struct Handlers {
    startup: Arc<auth::Startup>,
    query: Arc<query::QueryHandler>,
    copy: Arc<copy::CopyIn>,
    cancel: Arc<Cancel>,
}

/// Counts a connection for `max_connections` while it lives.
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections until `shutdown` resolves, then lets running statements finish (up to
/// the configured timeout), closes every connection (rolling back open transactions) and
/// closes the backend, which checkpoints.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let handlers = Arc::new(Handlers {
        startup: Arc::new(auth::Startup::new(shared.clone())),
        query: Arc::new(query::QueryHandler::new(shared.clone())),
        copy: Arc::new(copy::CopyIn {
            shared: shared.clone(),
        }),
        cancel: Arc::new(Cancel(shared.registry.clone())),
    });
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let slot = ConnectionSlot(shared.clone());
                let handlers = handlers.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    if let Err(e) = connection::serve(socket, handlers).await {
                        tracing::debug!("connection from {peer} ended: {e}");
                    }
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        "shutting down: {} connection(s) open, waiting for running statements",
        tasks.len()
    );
    // A statement waiting for a writer that an idle transaction holds would wait the whole
    // shutdown_timeout for nothing.
    shared.registry.terminate_waits();
    if tokio::time::timeout(
        shared.config.shutdown_timeout,
        shared.drain.finish_running(),
    )
    .await
    .is_err()
    {
        tracing::warn!("shutdown timeout reached; interrupting running statements");
        shared.registry.cancel_all();
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    shared.router.close().await;
    Ok(())
}
