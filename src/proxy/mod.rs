//! Forwarding to the Halo upstream: one pooled hyper client built at start-up, bodies streamed
//! both ways (a multi-GB upload uses constant memory), status/headers/bytes from Halo passed
//! back untouched except for hop-by-hop headers.
//!
//! The upstream URL comes from configuration only; an absolute-form request target never
//! chooses it. An upstream `101 Switching Protocols` or a response with both
//! `Transfer-Encoding` and `Content-Length` (RFC 9112 §6.3: smuggling risk) becomes 502.
//!
//! An error response that arrives before the upload was sent in full is relayed, the rest of
//! the upload is not forwarded, and the client connection closes after it ([`early`]).

pub mod early;
pub(crate) mod error;
pub mod headers;
mod service;

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use self::early::{ConnectionControl, Connector, RelayedBody, UploadBody};
pub use self::error::ProxyError;
pub use self::service::{ForwardingOptions, ProxyService};
use crate::http::path::NormalizedPath;
use crate::http::request_error::RequestError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The Halo API behind the gateway, for request bodies of type `B`.
#[derive(Debug)]
pub struct Upstream<B> {
    client: Client<Connector<HttpsConnector<HttpConnector>>, UploadBody<B>>,
    scheme: Scheme,
    authority: Authority,
    /// `Host` of every forwarded request: the authority, built once (hyper-util would
    /// format it for each request).
    host: HeaderValue,
    /// Path prefix of the upstream base URL, without a trailing slash.
    base_path: String,
    timeout: Duration,
}

impl<B> Upstream<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A client for `base` whose responses must start within `timeout`, keeping at most
    /// `max_idle` idle connections (`None`: no cap).
    pub fn new(base: &Url, timeout: Duration, max_idle: Option<usize>) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_keepalive(Some(Duration::from_secs(30)));
        let tls = hyper_rustls::HttpsConnectorBuilder::new();
        let tls = match tls.with_native_roots() {
            Ok(builder) => builder,
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
        };
        let connector = tls.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(max_idle.unwrap_or(usize::MAX))
            .build(Connector::new(connector));
        let scheme = Scheme::try_from(base.scheme()).map_err(|e| e.to_string())?;
        let host = base.host_str().ok_or("the upstream URL has no host")?;
        let authority = match base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authority = Authority::try_from(authority.as_str()).map_err(|e| e.to_string())?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            scheme,
            authority,
            host,
            base_path: base.path().trim_end_matches('/').to_owned(),
            timeout,
        })
    }

    /// The upstream URI for a normalized path and the query of the client's request target.
    pub fn target(&self, path: &NormalizedPath, original: &Uri) -> Result<Uri, ProxyError> {
        let path_and_query = match original.path_and_query() {
            // Nearly always (no base path, a path that was already normal): the client's
            // path and query as they are, sharing hyper's buffer instead of a copy.
            Some(sent) if self.base_path.is_empty() && sent.path() == path.as_str() => sent.clone(),
            _ => self
                .joined_path_and_query(path, original.query())
                .parse()
                .map_err(unforwardable)?,
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(unforwardable)
    }

    fn joined_path_and_query(&self, path: &NormalizedPath, query: Option<&str>) -> String {
        let mut path_and_query = String::with_capacity(
            self.base_path.len() + path.as_str().len() + query.map_or(0, |q| q.len() + 1),
        );
        path_and_query.push_str(&self.base_path);
        path_and_query.push_str(path.as_str());
        if let Some(q) = query {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        path_and_query
    }

    /// Sends a prepared request (headers already rewritten) and returns Halo's response head
    /// with its body still streaming.
    pub async fn send(&self, request: Request<B>) -> Result<Response<RelayedBody>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        parts.version = Version::HTTP_11;
        parts.headers.insert(header::HOST, self.host.clone());
        let (body, upload) = early::track_upload(body);
        let request = Request::from_parts(parts, body);
        let response = match tokio::time::timeout(self.timeout, self.client.request(request)).await
        {
            Err(_) => return Err(ProxyError::Timeout(self.timeout)),
            Ok(Err(e)) => return Err(ProxyError::from_client_error(&e)),
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        // An error answer before the upload is complete refuses the rest of it (Kestrel's
        // early 413); a success answer while the upload goes on is a full-duplex stream (a
        // rebuild streaming its output back) and is left alone.
        let answered_early =
            !parts.status.is_success() && upload.is_some_and(|upload| upload.answered_early());
        let control = parts.extensions.remove::<ConnectionControl>();
        let abort_at_end = control.filter(|_| answered_early);
        if let Some(control) = &abort_at_end {
            control.pause_writes();
        }
        // From here on, dropping `body` also ends an early answer's upstream connection.
        let body = RelayedBody::new(body, abort_at_end);
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(ProxyError::BadResponse(
                "the upstream switched protocols; upgrades are not proxied".into(),
            ));
        }
        let h = &parts.headers;
        if h.contains_key(header::TRANSFER_ENCODING) && h.contains_key(header::CONTENT_LENGTH) {
            return Err(ProxyError::BadResponse(
                "the response has both Transfer-Encoding and Content-Length".into(),
            ));
        }
        headers::rewrite_response(&mut parts.headers);
        if answered_early {
            tracing::debug!(
                status = parts.status.as_u16(),
                "the upstream answered before the upload finished; the rest is not forwarded"
            );
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(Response::from_parts(parts, body))
    }
}

fn unforwardable(e: impl std::fmt::Display) -> ProxyError {
    RequestError::BadRequest(format!("the request target cannot be forwarded: {e}")).into()
}
