//! How a worker's one stack serves many connections.
//!
//! hyper keeps, for a connection's whole life, the service and a slot for its future. Each
//! connection therefore holds an `Arc` to the stack (not a copy of it), and each request clones
//! the stack — a handful of `Arc`s, no allocation — and boxes its future once, so an idle
//! keep-alive connection costs a few bytes here, not the stack's size.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use hyper_util::service::TowerToHyperService;
use tower::{Service, ServiceExt};
use tower_http::add_extension::AddExtension;

use crate::http::exchange::PeerAddr;

/// A stack shared by every connection of a worker (see the module docs).
pub struct SharedStack<S>(Arc<S>);

impl<S> SharedStack<S> {
    pub fn new(stack: S) -> Self {
        Self(Arc::new(stack))
    }
}

impl<S> Clone for SharedStack<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S, B> Service<Request<B>> for SharedStack<S>
where
    S: Service<Request<B>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Infallible>> + Send>>;

    /// Always ready: readiness is the per-request clone's, awaited inside the future.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Box::pin(S::clone(&self.0).oneshot(request))
    }
}

/// The service for one accepted connection: its peer address goes into every request's
/// extensions (for `X-Forwarded-For` and trusted-proxy checks).
pub fn connection_service<S>(
    stack: SharedStack<S>,
    peer: SocketAddr,
) -> TowerToHyperService<AddExtension<SharedStack<S>, PeerAddr>> {
    TowerToHyperService::new(AddExtension::new(stack, PeerAddr(peer)))
}
