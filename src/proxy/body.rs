//! Streaming body wrappers: nothing here buffers; each frame passes straight through.
//!
//! [`RequestBody`] enforces `Gateway__MaxRequestBodySize` mid-stream (for chunked bodies whose
//! size is not declared) and `Gateway__BodyIdleTimeout` (a client that stops sending is cut
//! off instead of holding an upstream connection), and counts bytes.
//! [`ResponseBody`] counts bytes and runs a callback when the exchange ends, whether the body
//! finished or the client went away (the access log is written there).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the gateway stopped reading a request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds {0} bytes")]
    TooLarge(u64),
    #[error("the client sent no body data for {0:?}")]
    Idle(Duration),
    #[error("the client connection failed while sending the body: {0}")]
    Client(BoxError),
}

/// A request body on its way upstream.
pub struct RequestBody<B> {
    inner: B,
    limit: Option<u64>,
    seen: u64,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    counter: Arc<AtomicU64>,
}

impl<B> RequestBody<B> {
    pub fn new(inner: B, limit: Option<u64>, idle: Duration, counter: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            counter,
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyError::Idle(this.idle))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e.into())))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if let Some(limit) = this.limit
                        && this.seen > limit
                    {
                        return Poll::Ready(Some(Err(BodyError::TooLarge(limit))));
                    }
                }
                let deadline = Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body on its way to the client; `on_end` runs once, when it is dropped.
pub struct ResponseBody<B, F: FnOnce(u64)> {
    inner: B,
    sent: u64,
    on_end: Option<F>,
}

impl<B, F: FnOnce(u64)> ResponseBody<B, F> {
    pub fn new(inner: B, on_end: F) -> Self {
        Self {
            inner,
            sent: 0,
            on_end: Some(on_end),
        }
    }
}

impl<B, F: FnOnce(u64)> Drop for ResponseBody<B, F> {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}

impl<B, F> Body for ResponseBody<B, F>
where
    B: Body<Data = Bytes> + Unpin,
    F: FnOnce(u64) + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.sent += data.len() as u64;
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
