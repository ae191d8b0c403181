//! One client connection: refusing TLS, the message loop, and when replies reach the socket.
//!
//! pgwire's handlers flush after every message they send, so a prepared point select was
//! answered with four `sendto` calls (BindComplete, DataRow + CommandComplete, ReadyForQuery)
//! where PostgreSQL makes one. Here replies gather in [`Coalescing`] and are written when the
//! loop has no complete client message left to process, the moment PostgreSQL flushes too;
//! a large result is written as it grows past [`Coalescing::HIGH_WATER`], so it streams.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::ClientInfo;
use pgwire::api::PgWireConnectionState;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::Handlers;
use crate::error::{Error, SessionError};
use crate::storage::HangUp;

/// How long a client may take from connecting to finishing authentication (PostgreSQL's
/// `authentication_timeout` is a minute too).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves one client until it disconnects, fails fatally or the task is aborted.
pub async fn serve(tcp: TcpStream, handlers: Arc<Handlers>) -> io::Result<()> {
    let peer = PeerSocket(tcp.as_raw_fd());
    let startup_deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_deadline);
    let negotiated = tokio::select! {
        _ = &mut startup_deadline => return Ok(()),
        negotiated = negotiate_tls(tcp, None) => negotiated?,
    };
    // `None`: the client opened with a TLS handshake, which this server does not offer.
    let Some(plain) = negotiated else {
        return Ok(());
    };
    let old = plain.into_parts();
    let (read_buf, write_buf) = (
        small_buffer_with(&old.read_buf),
        small_buffer_with(&old.write_buf),
    );
    let mut parts = FramedParts::new(Coalescing::new(old.io), old.codec);
    // Handing over the old buffers tells the frame reader that bytes may already be waiting
    // (the start-up message usually is); their 8 KiB capacity is replaced right after.
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);
    *socket.read_buffer_mut() = read_buf;
    *socket.write_buffer_mut() = write_buf;
    socket.session_extensions().insert(peer);

    loop {
        let next = match socket.next().now_or_never() {
            Some(buffered) => buffered,
            None => {
                write_out(&mut socket).await?;
                release_big_buffers(&mut socket);
                if awaiting_startup(&socket) {
                    tokio::select! {
                        _ = &mut startup_deadline => None,
                        next = socket.next() => next,
                    }
                } else {
                    match idle_in_transaction_limit(&socket) {
                        None => socket.next().await,
                        Some(limit) => match tokio::time::timeout(limit, socket.next()).await {
                            Ok(next) => next,
                            Err(_) => {
                                // Closing the connection rolls the transaction back and
                                // frees the writer it holds.
                                let fatal = Error::from(SessionError::IdleInTransactionTimeout);
                                socket
                                    .send(PgWireBackendMessage::ErrorResponse(
                                        fatal.to_error_info().into(),
                                    ))
                                    .await?;
                                None
                            }
                        },
                    }
                }
            }
        };
        let Some(Ok(message)) = next else {
            break;
        };
        // A Terminate means the client is leaving; some (asyncpg) wait for the server to close.
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(is_extended_query) => is_extended_query,
            _ => message.is_extended_query(),
        };
        // A CancelRequest arrives on a connection of its own, which ends after it.
        let is_cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        if let Err(error) = process_message(
            message,
            &mut socket,
            handlers.startup.clone(),
            handlers.query.clone(),
            handlers.query.clone(),
            handlers.copy.clone(),
            handlers.cancel.clone(),
        )
        .await
        {
            let is_fatal = error.is_fatal();
            process_error(&mut socket, error, is_extended_query).await?;
            if is_fatal {
                write_out(&mut socket).await?;
                break;
            }
        }
        if is_cancel_request {
            break;
        }
    }
    write_out(&mut socket).await
}

/// Buffers start this small: an idle connection holds two of them, and pgwire's default
/// (8 KiB each, plus the same again for replies) made 10,000 idle clients cost 340 MB.
/// They grow as messages need.
const IDLE_BUFFER: usize = 1024;
/// Between messages, a buffer this much bigger than [`IDLE_BUFFER`] that a large message or
/// result left behind is given back.
const RELEASE_ABOVE: usize = 64 * 1024;

fn small_buffer_with(contents: &[u8]) -> BytesMut {
    let mut buffer = BytesMut::with_capacity(IDLE_BUFFER.max(contents.len()));
    buffer.extend_from_slice(contents);
    buffer
}

fn release_big_buffers<IO, C>(socket: &mut Framed<Coalescing<IO>, C>) {
    fn release(buffer: &mut BytesMut) {
        if buffer.is_empty() && buffer.capacity() > RELEASE_ABOVE {
            *buffer = BytesMut::with_capacity(IDLE_BUFFER);
        }
    }
    release(socket.read_buffer_mut());
    release(socket.write_buffer_mut());
    release(&mut socket.get_mut().pending);
}

/// The client's TCP socket, watched for the client closing it while a statement of its
/// session waits for a writer (the message loop reads nothing until the statement ends).
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerSocket(RawFd);

impl PeerSocket {
    pub(super) fn hang_up(self) -> HangUp {
        Arc::new(move || {
            Box::pin(async move {
                if peer_closed(self.0).await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
        })
    }
}

/// Resolves once the peer of socket `fd` has shut down its side; the client's further
/// messages waiting to be read do not count.
async fn peer_closed(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is the socket of the connection whose statement waits: the connection's
    // task owns it and is inside that statement, so it stays open while this runs. The
    // duplicate is this function's own and is closed when it returns.
    let socket = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    loop {
        if stream.ready(Interest::READABLE).await?.is_read_closed() {
            return Ok(());
        }
        // Readable with data only: clear that and wait for the next event.
        let _ = stream.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

/// How long the client may now take to send its next message: a session inside a
/// transaction has its `idle_in_transaction_session_timeout`.
fn idle_in_transaction_limit<C: ClientInfo>(client: &C) -> Option<Duration> {
    let session = super::query::session_of(client).ok()?;
    // Locked only while a statement of this same connection runs, which is not now.
    let state = session.state.try_lock().ok()?;
    state.idle_limit()
}

fn awaiting_startup<T: 'static, S>(
    socket: &Framed<T, pgwire::tokio::server::PgWireMessageServerCodec<S>>,
) -> bool {
    matches!(
        socket.state(),
        PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
    )
}

/// Writes every gathered reply to the client.
async fn write_out<IO, C>(socket: &mut Framed<Coalescing<IO>, C>) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
    Framed<Coalescing<IO>, C>:
        futures::Sink<pgwire::messages::PgWireBackendMessage, Error = io::Error>,
{
    socket.get_mut().flush_requested = true;
    let flushed = SinkExt::<pgwire::messages::PgWireBackendMessage>::flush(socket).await;
    socket.get_mut().flush_requested = false;
    flushed
}

/// A stream whose writes gather in memory until a flush is requested or they outgrow
/// [`Coalescing::HIGH_WATER`]; the flushes pgwire's handlers ask for in between are no-ops.
pub struct Coalescing<IO> {
    inner: IO,
    pending: BytesMut,
    flush_requested: bool,
}

impl<IO> Coalescing<IO> {
    /// Above this many gathered bytes, writes go out without waiting for a flush.
    const HIGH_WATER: usize = 64 * 1024;

    fn new(inner: IO) -> Self {
        Coalescing {
            inner,
            pending: BytesMut::new(),
            flush_requested: false,
        }
    }
}

impl<IO: AsyncWrite + Unpin> Coalescing<IO> {
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Coalescing<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalescing<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= Self::HIGH_WATER {
            ready!(this.poll_write_pending(cx))?;
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.flush_requested {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
