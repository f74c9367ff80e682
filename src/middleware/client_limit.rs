//! Per-client limits after authentication: the concurrency slots (`Gateway__ConcurrencyLimit`
//! and the rule's) and the rates (`Gateway__RateLimit`, a client override, the rule's), keyed
//! on the verified token's client. Requests the auth layer refused never get here, so 401 and
//! 403 never count against a client. A refused request takes nothing from any limit; a passing
//! one carries its RateLimit fields, and its response body holds its concurrency slots until
//! it has been sent in full or the client has gone. Anonymous routes have no client: only the
//! per-IP rate applies to them.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::TryFutureExt;
use futures_util::future::{BoxFuture, Either, MapOk};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::auth::policy::MatchedRoute;
use crate::auth::validate::VerifiedToken;
use crate::http::exchange::exchange;
use crate::ratelimit::concurrency::SlotBody;
use crate::ratelimit::{Limits, client_key, headers};

/// Applies [`ClientLimit`].
#[derive(Debug, Clone)]
pub struct ClientLimitLayer {
    limits: Arc<Limits>,
}

impl ClientLimitLayer {
    pub fn new(limits: Arc<Limits>) -> Self {
        Self { limits }
    }
}

impl<S> Layer<S> for ClientLimitLayer {
    type Service = ClientLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientLimit {
            inner,
            limits: self.limits.clone(),
        }
    }
}

/// Refuses a client over a limit with 429; see the module doc.
#[derive(Debug, Clone)]
pub struct ClientLimit<S> {
    inner: S,
    limits: Arc<Limits>,
}

type Unlimited<R> = fn(Response<R>) -> Response<SlotBody<R>>;

fn unlimited<R>(response: Response<R>) -> Response<SlotBody<R>> {
    response.map(|body| SlotBody::new(body, Vec::new()))
}

impl<S, B, R> Service<Request<B>> for ClientLimit<S>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: From<Bytes> + Send + 'static,
{
    type Response = Response<SlotBody<R>>;
    type Error = Infallible;
    type Future = Either<
        MapOk<S::Future, Unlimited<R>>,
        BoxFuture<'static, Result<Response<SlotBody<R>>, Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let token = request.extensions().get::<Arc<VerifiedToken>>();
        let (true, Some(token)) = (self.limits.has_client_limits(), token) else {
            return Either::Left(self.inner.call(request).map_ok(unlimited as Unlimited<R>));
        };
        let client: Arc<str> = client_key(token).into();
        let rule = request
            .extensions()
            .get::<MatchedRoute>()
            .and_then(|route| route.index);
        let limits = self.limits.clone();
        // The clone takes the place of the service that was made ready (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            match limits.admit(&client, rule).await {
                Err(refusal) => {
                    if let Some(exchange) = exchange(&request) {
                        exchange.set_limited_by(refusal.kind().label());
                    }
                    Ok(refusal.to_response())
                }
                Ok((slots, verdict)) => {
                    let response = inner.call(request).await?;
                    let (mut parts, body) = response.into_parts();
                    headers::append_fields(&mut parts.headers, &verdict.items);
                    Ok(Response::from_parts(parts, SlotBody::new(body, slots)))
                }
            }
        }))
    }
}
