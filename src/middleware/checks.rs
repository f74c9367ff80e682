//! Request checks, before any token work: a method the gateway forwards (TRACE, CONNECT and
//! non-standard methods: 405), exactly one `Host` (400), and a path that means the same to
//! every parser (400). The path is normalized here once and handed on in the request's
//! extensions, so the route policy and Halo never see different routes.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{Either, Ready, ready};
use http::{HeaderMap, Method, Request, Response, header};
use tower::{Layer, Service};

use crate::http::exchange::exchange;
use crate::http::path::NormalizedPath;
use crate::http::request_error::RequestError;
use crate::http::text::sanitize;

/// Applies [`RequestChecks`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestChecksLayer;

impl<S> Layer<S> for RequestChecksLayer {
    type Service = RequestChecks<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestChecks { inner }
    }
}

/// Refuses requests the gateway cannot forward unambiguously.
#[derive(Debug, Clone)]
pub struct RequestChecks<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RequestChecks<S>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
    R: From<Bytes>,
{
    type Response = Response<R>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<R>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match check(&request) {
            Ok(path) => {
                if let Some(exchange) = exchange(&request) {
                    exchange.set_path(path.shared());
                }
                request.extensions_mut().insert(path);
                Either::Right(self.inner.call(request))
            }
            Err(e) => Either::Left(ready(Ok(e.to_response()))),
        }
    }
}

/// The request's normalized path, or why it cannot be forwarded.
pub fn check<B>(request: &Request<B>) -> Result<NormalizedPath, RequestError> {
    check_method(request.method())?;
    check_host(request.headers(), request.uri().authority().is_some())?;
    NormalizedPath::parse(request.uri().path()).map_err(|e| RequestError::BadRequest(e.to_string()))
}

fn check_method(method: &Method) -> Result<(), RequestError> {
    match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => Ok(()),
        _ => Err(RequestError::MethodNotAllowed(sanitize(method.as_str()))),
    }
}

fn check_host(headers: &HeaderMap, has_authority: bool) -> Result<(), RequestError> {
    match headers.get_all(header::HOST).iter().count() {
        0 if !has_authority => Err(RequestError::BadRequest(
            "the request has no Host header".into(),
        )),
        0 | 1 => Ok(()),
        _ => Err(RequestError::BadRequest(
            "the request has more than one Host header".into(),
        )),
    }
}
