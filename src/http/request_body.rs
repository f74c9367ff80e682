//! The request body on its way upstream: nothing is buffered, each frame passes straight
//! through.
//!
//! It enforces `Gateway__MaxRequestBodySize` mid-stream (for chunked bodies whose size is not
//! declared) and `Gateway__BodyIdleTimeout` (a client that stops sending is cut off instead of
//! holding an upstream connection), and counts bytes for the access log. One wrapper instead
//! of tower-http's `Limited` + `TimeoutBody`: the upstream client needs an `Unpin` body (so
//! `TimeoutBody` would cost a box), `TimeoutBody` re-arms its timer on every frame, and one
//! pass counts the bytes too.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::exchange::Exchange;
use super::request_error::RequestError;

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

impl BodyError {
    /// The client-side fault this stands for.
    pub fn request_error(&self) -> RequestError {
        match self {
            Self::TooLarge(limit) => RequestError::BodyTooLarge(*limit),
            Self::Idle(_) => RequestError::BodyIdle,
            Self::Client(_) => RequestError::ClientAborted,
        }
    }
}

/// A request body with a size limit, an idle timeout and a byte count.
pub struct RequestBody<B> {
    inner: B,
    limit: Option<u64>,
    seen: u64,
    idle: Duration,
    /// Armed on the first wait, so a request without a body never allocates one.
    timer: Option<Pin<Box<Sleep>>>,
    exchange: Option<Arc<Exchange>>,
}

impl<B> RequestBody<B> {
    pub fn new(
        inner: B,
        limit: Option<u64>,
        idle: Duration,
        exchange: Option<Arc<Exchange>>,
    ) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            idle,
            timer: None,
            exchange,
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
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyError::Idle(idle))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e.into())))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    this.seen += len;
                    if let Some(exchange) = &this.exchange {
                        exchange.add_bytes_in(len);
                    }
                    if let Some(limit) = this.limit
                        && this.seen > limit
                    {
                        return Poll::Ready(Some(Err(BodyError::TooLarge(limit))));
                    }
                }
                if let Some(timer) = &mut this.timer {
                    timer.as_mut().reset(Instant::now() + this.idle);
                }
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
