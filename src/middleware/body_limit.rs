//! The request body's size limit and idle timeout, after authentication: a token-less
//! oversize upload gets its 401 first, and no body byte is read before the token is accepted.
//! A declared `Content-Length` over the limit is refused at once (413); an undeclared body is
//! cut off mid-stream when it passes the limit.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, Ready, ready};
use http::{HeaderMap, Request, Response, header};
use tower::{Layer, Service};

use crate::http::exchange::exchange;
use crate::http::request_body::RequestBody;
use crate::http::request_error::RequestError;

/// Applies [`BodyLimit`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    max_body: Option<u64>,
    idle_timeout: Duration,
}

impl BodyLimitLayer {
    /// `max_body`: `Gateway__MaxRequestBodySize` (`None`: unlimited);
    /// `idle_timeout`: `Gateway__BodyIdleTimeout`.
    pub fn new(max_body: Option<u64>, idle_timeout: Duration) -> Self {
        Self {
            max_body,
            idle_timeout,
        }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limits: *self,
        }
    }
}

/// Wraps the request body in [`RequestBody`] after checking its declared length.
#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limits: BodyLimitLayer,
}

impl<S, B, R> Service<Request<B>> for BodyLimit<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<R>, Error = Infallible>,
    R: From<Bytes>,
{
    type Response = Response<R>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<R>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let (Some(limit), Some(declared)) =
            (self.limits.max_body, content_length(request.headers()))
            && declared > limit
        {
            return Either::Left(ready(Ok(RequestError::BodyTooLarge(limit).to_response())));
        }
        let exchange = exchange(&request).cloned();
        let (max_body, idle) = (self.limits.max_body, self.limits.idle_timeout);
        let request = request.map(|body| RequestBody::new(body, max_body, idle, exchange));
        Either::Right(self.inner.call(request))
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
