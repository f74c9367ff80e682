//! An upstream that answers before it has read the whole upload: Kestrel (Halo) sends 413 as
//! soon as a declared `Content-Length` is over its limit, or 401/400 early, then stops reading.
//!
//! What hyper's client does on its own: its HTTP/1 dispatcher keeps reading while it writes the
//! body and hands a response head over as soon as it is parsed. But an upstream that closes its
//! socket with upload data unread makes its kernel answer with RST; our next body write then
//! fails (EPIPE/ECONNRESET), and hyper fails the whole exchange with that error even when the
//! response already sits in our receive buffer: the client got 502 "error writing a body to
//! connection" instead of Halo's 413.
//!
//! What this module adds, in three parts:
//! 1. [`UpstreamIo`] wraps each upstream connection. A write that fails because the peer is
//!    gone is held back (it stays pending) instead of failing the exchange. Linux keeps data
//!    received before an RST readable, so hyper's next read still parses the response and hands
//!    it over; the read side then reports the end of the connection (EOF or reset), which ends
//!    the exchange as before. A held write never hangs: after a reset the read side ends at
//!    once, and `Gateway__UpstreamTimeout` bounds the wait for a head.
//! 2. [`track_upload`] marks whether the request body was sent in full. An error response
//!    (not 2xx) that arrives before that is an early answer: writes on its connection stop at
//!    once (the rest of the upload is not forwarded), the response goes to the client with
//!    `Connection: close`, and once its body has been relayed, or dropped, the upstream
//!    connection is aborted. A 2xx head during the upload is a full-duplex stream (a rebuild
//!    that streams its output while reading its input) and both directions go on.
//! 3. The client's unread upload is then read and discarded for at most [`DRAIN_TIME`] (like
//!    nginx's lingering close) before the client connection closes: closing a socket with
//!    unread data sends an RST, which can destroy the response on its way to a client that is
//!    still writing its upload.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::Uri;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};

/// Longest time the rest of a client's upload is read and discarded after an early answer.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Wraps a connector so that every connection it makes is an [`UpstreamIo`].
#[derive(Debug, Clone)]
pub struct Connector<C> {
    inner: C,
}

impl<C> Connector<C> {
    pub fn new(inner: C) -> Self {
        Self { inner }
    }
}

impl<C> tower::Service<Uri> for Connector<C>
where
    C: tower::Service<Uri>,
    C::Future: Unpin,
{
    type Response = UpstreamIo<C::Response>;
    type Error = C::Error;
    type Future = Connecting<C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Connecting(self.inner.call(uri))
    }
}

/// A connection being made by [`Connector`].
#[derive(Debug)]
pub struct Connecting<F>(F);

impl<F, T, E> Future for Connecting<F>
where
    F: Future<Output = Result<T, E>> + Unpin,
{
    type Output = Result<UpstreamIo<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_ok(UpstreamIo::new)
    }
}

/// Stops one upstream connection's writes, or the whole connection. hyper-util copies it into
/// every response that connection carries.
#[derive(Debug, Clone, Default)]
pub struct ConnectionControl(Arc<ControlState>);

#[derive(Debug, Default)]
struct ControlState {
    writes_paused: AtomicBool,
    aborted: AtomicBool,
    /// The connection task, woken to notice an abort.
    task: AtomicWaker,
}

impl ConnectionControl {
    /// Nothing more is written: the rest of the upload stays where it is.
    pub fn pause_writes(&self) {
        self.0.writes_paused.store(true, Ordering::SeqCst);
    }

    /// Every further read and write fails, which ends the connection.
    pub fn abort(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        self.0.task.wake();
    }

    fn is_aborted(&self) -> bool {
        self.0.aborted.load(Ordering::SeqCst)
    }
}

/// An upstream connection that holds back write errors from a peer that has gone away, so a
/// response it sent first is still read (module docs, part 1).
#[derive(Debug)]
pub struct UpstreamIo<T> {
    inner: T,
    control: ConnectionControl,
    /// A write failed because the peer is gone; writes stay pending from then on.
    write_failed: bool,
}

impl<T> UpstreamIo<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            control: ConnectionControl::default(),
            write_failed: false,
        }
    }

    /// Why a write may not go ahead: aborted (an error), paused or held (pending).
    fn write_blocked<R>(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<R>>> {
        self.control.0.task.register(cx.waker());
        if self.control.is_aborted() {
            return Some(Poll::Ready(Err(aborted())));
        }
        if self.write_failed || self.control.0.writes_paused.load(Ordering::SeqCst) {
            return Some(Poll::Pending);
        }
        None
    }

    fn hold<R>(&mut self, result: io::Result<R>) -> Poll<io::Result<R>> {
        match result {
            Err(e) if peer_gone(&e) => {
                tracing::debug!(error = %e, "upstream write failed; reading its answer first");
                self.write_failed = true;
                Poll::Pending
            }
            other => Poll::Ready(other),
        }
    }
}

fn peer_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "upstream connection closed after an early answer",
    )
}

impl<T: Connection> Connection for UpstreamIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.control.clone())
    }
}

impl<T: Read + Unpin> Read for UpstreamIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.control.is_aborted() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for UpstreamIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(blocked) = this.write_blocked(cx) {
            return blocked;
        }
        let result = ready!(Pin::new(&mut this.inner).poll_write(cx, buf));
        this.hold(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(blocked) = this.write_blocked(cx) {
            return blocked;
        }
        let result = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
        this.hold(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(blocked) = this.write_blocked(cx) {
            return blocked;
        }
        let result = ready!(Pin::new(&mut this.inner).poll_flush(cx));
        this.hold(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_failed || this.control.is_aborted() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Whether a request body was sent in full, for telling an early answer apart.
pub struct Upload<B>(Arc<UploadState<B>>);

struct UploadState<B> {
    finished: AtomicBool,
    /// Whichever comes second starts the drain: the early answer reaching [`Upload`], or the
    /// connection task dropping the unfinished body (it can end first, right after handing
    /// the response over).
    early: Mutex<EarlyState<B>>,
}

struct EarlyState<B> {
    answered_early: bool,
    /// The unsent rest of the upload, parked until we know whether to drain it.
    leftover: Option<B>,
}

impl<B> UploadState<B> {
    fn early(&self) -> MutexGuard<'_, EarlyState<B>> {
        self.early.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wraps a request body to watch for its end; no [`Upload`] for a request without a body.
pub fn track_upload<B>(body: B) -> (UploadBody<B>, Option<Upload<B>>)
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
{
    let state = (!body.is_end_stream()).then(|| {
        Arc::new(UploadState {
            finished: AtomicBool::new(false),
            early: Mutex::new(EarlyState {
                answered_early: false,
                leftover: None,
            }),
        })
    });
    let upload = state.clone().map(Upload);
    let body = UploadBody {
        inner: Some(body),
        state,
        drain: spawn_drain::<B>,
    };
    (body, upload)
}

impl<B> Upload<B>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
{
    /// Called with the response head: whether it came before the body was sent in full. If
    /// so, the body's remainder is drained (bounded) instead of forwarded.
    pub fn answered_early(&self) -> bool {
        if self.0.finished.load(Ordering::SeqCst) {
            return false;
        }
        let mut early = self.0.early();
        early.answered_early = true;
        if let Some(leftover) = early.leftover.take() {
            spawn_drain(leftover);
        }
        true
    }
}

/// A request body on its way upstream that records its end (see [`track_upload`]).
pub struct UploadBody<B> {
    /// Taken by `drop` to drain it.
    inner: Option<B>,
    /// `None` for a body that was empty from the start.
    state: Option<Arc<UploadState<B>>>,
    /// [`spawn_drain`] for `B`, so `drop` needs no bounds on `B`.
    drain: fn(B),
}

impl<B> HttpBody for UploadBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(&mut *inner).poll_frame(cx));
        if let Some(state) = &this.state
            && (frame.is_none() || inner.is_end_stream())
        {
            state.finished.store(true, Ordering::SeqCst);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl<B> Drop for UploadBody<B> {
    fn drop(&mut self) {
        let Some(state) = &self.state else {
            return;
        };
        if state.finished.load(Ordering::SeqCst) {
            return;
        }
        let Some(body) = self.inner.take() else {
            return;
        };
        let mut early = state.early();
        if early.answered_early {
            (self.drain)(body);
        } else {
            // Dropped with the state unless an early answer claims it.
            early.leftover = Some(body);
        }
    }
}

fn spawn_drain<B>(body: B)
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
{
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(drain(body));
    }
}

/// Reads and discards the rest of an upload, for at most [`DRAIN_TIME`]; dropping the body
/// afterwards lets hyper close the client connection.
async fn drain<B>(mut body: B)
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    let discard = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

/// An upstream response body; after an early answer, its end (or drop) aborts the upstream
/// connection, which still holds the unsent rest of the upload.
#[derive(Debug)]
pub struct RelayedBody {
    inner: Incoming,
    abort_at_end: Option<ConnectionControl>,
}

impl RelayedBody {
    pub fn new(inner: Incoming, abort_at_end: Option<ConnectionControl>) -> Self {
        Self {
            inner,
            abort_at_end,
        }
    }

    fn end(&mut self) {
        if let Some(control) = self.abort_at_end.take() {
            control.abort();
        }
    }
}

impl HttpBody for RelayedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) || self.inner.is_end_stream() {
            self.end();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RelayedBody {
    fn drop(&mut self) {
        self.end();
    }
}
