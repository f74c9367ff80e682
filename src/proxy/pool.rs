//! One worker's keep-alive connections to the upstream: hyper's HTTP/1 client connections
//! (`hyper::client::conn::http1`), kept in a list that only the worker's own thread touches.
//!
//! hyper-util's pooled client does the same job for any number of hosts and threads: a shared
//! pool keyed by scheme and authority, and a task spawned per request to put the connection
//! back once its response has been read. The gateway has one upstream and a pool per worker,
//! so a connection goes back to the list as soon as its response head is handed over, and a
//! request takes the first one that is idle again (its previous exchange finished).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt as _;

use super::ProxyError;
use super::early::{ConnectionControl, Connector, UploadBody};

/// The connector every upstream connection is made with (TLS when the upstream is https).
pub type UpstreamConnector = Connector<HttpsConnector<HttpConnector>>;

/// Idle connections a worker keeps at most; more are closed when they come back.
const MAX_IDLE: usize = 1024;

/// A worker's connections to the upstream, shared by the clones of its stack.
pub struct ConnectionPool<B> {
    connector: UpstreamConnector,
    /// `scheme://authority` of the upstream, what a connection is made to.
    origin: Uri,
    /// `Host` for requests that carry none.
    host: HeaderValue,
    idle_timeout: Duration,
    connections: Arc<Mutex<Vec<PooledConnection<B>>>>,
}

impl<B> Clone for ConnectionPool<B> {
    fn clone(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            origin: self.origin.clone(),
            host: self.host.clone(),
            idle_timeout: self.idle_timeout,
            connections: Arc::clone(&self.connections),
        }
    }
}

impl<B> std::fmt::Debug for ConnectionPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

struct PooledConnection<B> {
    sender: SendRequest<UploadBody<B>>,
    control: ConnectionControl,
    returned: Instant,
}

impl<B> ConnectionPool<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub fn new(
        connector: UpstreamConnector,
        scheme: Scheme,
        authority: Authority,
        idle_timeout: Duration,
    ) -> Result<Self, String> {
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        let origin = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            connector,
            origin,
            host,
            idle_timeout,
            connections: Arc::default(),
        })
    }

    /// Sends `request` on an idle connection, or on a new one, and returns the response head
    /// with the connection's control. A request that an idle connection could not take
    /// (closed just before it was written) goes on a new one.
    pub async fn send(
        &self,
        mut request: Request<UploadBody<B>>,
    ) -> Result<(Response<Incoming>, ConnectionControl), ProxyError> {
        self.to_origin_form(&mut request);
        loop {
            let (mut connection, reused) = match self.checkout() {
                Some(connection) => (connection, true),
                None => (self.connect().await?, false),
            };
            match connection.sender.try_send_request(request).await {
                Ok(response) => {
                    let control = connection.control.clone();
                    self.checkin(connection);
                    return Ok((response, control));
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(ProxyError::from_exchange_error(&failed.into_error())),
                },
            }
        }
    }

    /// An HTTP/1.1 request line carries the origin form (RFC 9112 §3.2.1): the path and query
    /// of the absolute URI the proxy built; `Host` is added when the request has none.
    fn to_origin_form(&self, request: &mut Request<UploadBody<B>>) {
        let path_and_query = std::mem::take(request.uri_mut())
            .into_parts()
            .path_and_query;
        if let Some(path_and_query) = path_and_query {
            *request.uri_mut() = Uri::from(path_and_query);
        }
        if !request.headers().contains_key(header::HOST) {
            request
                .headers_mut()
                .insert(header::HOST, self.host.clone());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PooledConnection<B>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently returned connection that is ready for a request; closed ones and
    /// those idle past the timeout are dropped on the way.
    fn checkout(&self) -> Option<PooledConnection<B>> {
        let mut connections = self.lock();
        let now = Instant::now();
        let idle_timeout = self.idle_timeout;
        connections.retain(|c| {
            !c.sender.is_closed() && (!c.sender.is_ready() || now - c.returned < idle_timeout)
        });
        let ready = connections.iter().rposition(|c| c.sender.is_ready())?;
        Some(connections.swap_remove(ready))
    }

    /// Puts a connection back; it is taken again once its exchange has finished.
    fn checkin(&self, mut connection: PooledConnection<B>) {
        let mut connections = self.lock();
        if connections.len() < MAX_IDLE {
            connection.returned = Instant::now();
            connections.push(connection);
        }
    }

    async fn connect(&self) -> Result<PooledConnection<B>, ProxyError> {
        let io = self
            .connector
            .clone()
            .oneshot(self.origin.clone())
            .await
            .map_err(|e| ProxyError::Connect(crate::error::error_chain(&*e)))?;
        let control = io.control();
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| ProxyError::Connect(crate::error::error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(PooledConnection {
            sender,
            control,
            returned: Instant::now(),
        })
    }
}
