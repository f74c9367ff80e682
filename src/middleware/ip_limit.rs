//! The per-IP rate (`Gateway__RateLimit__PerIp`), before any token work: it counts every
//! request, including those later refused, so token spraying from one address is metered
//! before it reaches the validator. The address is the connection's peer, or, when the peer
//! is in `Gateway__TrustedProxies`, the nearest `X-Forwarded-For` entry that is not a trusted
//! proxy (entries are appended by each proxy, so only those right of the first untrusted one
//! are trustworthy).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::{HeaderMap, Request, Response};
use ipnet::IpNet;
use tower::{Layer, Service};

use crate::http::exchange::{PeerAddr, exchange};
use crate::ratelimit::{LimitKind, Limits, headers};

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Applies [`IpLimit`].
#[derive(Debug, Clone)]
pub struct IpLimitLayer {
    limits: Arc<Limits>,
    trusted_proxies: Arc<[IpNet]>,
}

impl IpLimitLayer {
    pub fn new(limits: Arc<Limits>, trusted_proxies: &[IpNet]) -> Self {
        Self {
            limits,
            trusted_proxies: trusted_proxies.into(),
        }
    }
}

impl<S> Layer<S> for IpLimitLayer {
    type Service = IpLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IpLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// Refuses a request over its IP's rate with 429; adds the IP's RateLimit fields otherwise.
#[derive(Debug, Clone)]
pub struct IpLimit<S> {
    inner: S,
    layer: IpLimitLayer,
}

impl<S, B, R> Service<Request<B>> for IpLimit<S>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: From<Bytes> + Send + 'static,
{
    type Response = Response<R>;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<R>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let limits = &self.layer.limits;
        let peer = request.extensions().get::<PeerAddr>().map(|p| p.0);
        let (Some(_), Some(peer)) = (limits.per_ip(), peer) else {
            return Either::Left(self.inner.call(request));
        };
        let ip: Arc<str> = client_ip(peer, request.headers(), &self.layer.trusted_proxies)
            .to_string()
            .into();
        let limits = limits.clone();
        // The clone takes the place of the service that was made ready (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let Some(verdict) = limits.check_ip(&ip).await else {
                return inner.call(request).await;
            };
            if !verdict.is_allowed() {
                if let Some(exchange) = exchange(&request) {
                    exchange.set_limited_by(LimitKind::Ip.label());
                }
                return Ok(headers::rate_limited(&verdict.refused()));
            }
            let mut response = inner.call(request).await?;
            headers::append_fields(response.headers_mut(), &verdict.items);
            Ok(response)
        }))
    }
}

/// The client's address: the peer's, or from `X-Forwarded-For` when the peer is trusted.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.ip().to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let entries = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|value| value.to_str().unwrap_or("").rsplit(','));
    for entry in entries {
        let entry = entry.trim();
        let Some(ip) = entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        else {
            // Unreadable: nothing left of it can be trusted either.
            return client;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(peer: &str, xff: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append(X_FORWARDED_FOR, value.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_ip(peer.parse().unwrap(), &headers, &trusted).to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            ip("203.0.113.9:5000", &["198.51.100.1"], &[]),
            "203.0.113.9"
        );
        assert_eq!(
            ip("203.0.113.9:5000", &["198.51.100.1"], &["10.0.0.0/8"]),
            "203.0.113.9"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_entry_is_the_client() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            ip("10.0.0.5:5000", &["198.51.100.1, 10.1.1.1"], &trusted),
            "198.51.100.1"
        );
        // A client-forged entry left of the real one is ignored.
        assert_eq!(
            ip("10.0.0.5:5000", &["1.1.1.1, 198.51.100.1"], &trusted),
            "198.51.100.1"
        );
        // Several header lines read as one list.
        assert_eq!(
            ip("10.0.0.5:5000", &["1.1.1.1", "198.51.100.1:4711"], &trusted),
            "198.51.100.1"
        );
        // Without the header, or with garbage, the proxy itself is what is known.
        assert_eq!(ip("10.0.0.5:5000", &[], &trusted), "10.0.0.5");
        assert_eq!(ip("10.0.0.5:5000", &["bogus"], &trusted), "10.0.0.5");
        assert_eq!(
            ip("[::ffff:10.0.0.5]:5000", &["2001:db8::7"], &trusted),
            "2001:db8::7"
        );
    }
}
