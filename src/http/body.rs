//! The public stack's response body: Halo's streamed body or one the gateway wrote itself.
//!
//! A two-variant enum instead of `axum::body::Body` so no response body is boxed on the way
//! out; `From<Bytes>` lets every layer answer a refusal with the same type.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::proxy::early::RelayedBody;

/// A response body on the public listener.
#[derive(Debug)]
pub enum ResponseBody {
    /// Halo's body, streamed through untouched.
    Upstream(RelayedBody),
    /// A body the gateway produced (an error document).
    Local(Full<Bytes>),
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        Self::Local(Full::new(bytes))
    }
}

impl From<Incoming> for ResponseBody {
    fn from(body: Incoming) -> Self {
        Self::Upstream(RelayedBody::new(body, None))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Upstream(body) => Pin::new(body).poll_frame(cx),
            Self::Local(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never: Infallible| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(body) => body.is_end_stream(),
            Self::Local(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(body) => body.size_hint(),
            Self::Local(body) => body.size_hint(),
        }
    }
}
