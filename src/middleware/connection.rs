//! How a worker's one stack serves many connections.
//!
//! hyper keeps, for a connection's whole life, its service and a slot sized for the service's
//! future. So a connection holds an `Arc` to its worker's stack (not a copy), and each request
//! clones the stack (a handful of `Arc`s, no allocation) and boxes its whole future once: an
//! idle keep-alive connection then costs a pointer here, not the stack's or a request's size.
//! This adapter replaces hyper-util's `TowerToHyperService` + tower-http's `AddExtension`,
//! whose future holds the request inline (hundreds of bytes per idle connection, measured in
//! docs/performance.md).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::Request;
use tower::{Service, ServiceExt};

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

/// The hyper service of one accepted connection: the shared stack, and the peer address that
/// goes into every request's extensions (for `X-Forwarded-For` and trusted-proxy checks).
pub struct ConnectionService<S> {
    stack: SharedStack<S>,
    peer: PeerAddr,
}

pub fn connection_service<S>(stack: SharedStack<S>, peer: SocketAddr) -> ConnectionService<S> {
    ConnectionService {
        stack,
        peer: PeerAddr(peer),
    }
}

impl<S, B> hyper::service::Service<Request<B>> for ConnectionService<S>
where
    S: Service<Request<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        Box::pin(S::clone(&self.stack.0).oneshot(request))
    }
}
