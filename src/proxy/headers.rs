//! Header rewriting between client and upstream.
//!
//! - Hop-by-hop headers are removed both ways (RFC 9110 §7.6.1): `Connection` and every name
//!   it lists, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`,
//!   `Proxy-Authorization`, plus `HTTP2-Settings` (RFC 7540 §3.2.1). From responses also
//!   `Proxy-Authenticate` (RFC 9110 §11.7.1) and `Proxy-Authentication-Info` (§11.7.3): they
//!   concern only the next hop, and a client must not read Halo's as the gateway asking it for
//!   proxy credentials.
//! - `X-HTTP-Method-Override` and its variants are dropped, so a verb the policy never saw
//!   cannot reach Halo. `Expect` is dropped: the body is already flowing when we forward.
//! - `X-Forwarded-For/Proto/Host` and `Forwarded` are replaced with what the gateway saw,
//!   unless the peer is a trusted proxy (then `X-Forwarded-For` is appended to). `Via` is
//!   added (RFC 9110 §7.6.3). `Host` becomes the upstream's authority (set by the client).

use std::io::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

// Pre-built names: removing by `&str` would parse and hash each name on every request.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("http2-settings"),
    header::TRAILER,
];

/// Response fields for the next hop only (RFC 9110 §11.7.1, §11.7.3).
static PROXY_AUTHENTICATION: [HeaderName; 2] = [
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authentication-info"),
];

static METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Forwarding headers a client may only set through a trusted proxy.
static FORWARDING: [HeaderName; 7] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-real-ip"),
    header::FORWARDED,
];

const VIA_VALUE: &str = "1.1 halo-gateway";

/// Removes hop-by-hop headers, including those named by `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Without a `Connection` header this collects nothing and allocates nothing.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in &listed {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// What the gateway knows about the client connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    pub peer: IpAddr,
    /// The peer is listed in `Gateway__TrustedProxies`.
    pub trusted: bool,
}

/// Rewrites a client's request headers for the upstream.
pub fn rewrite_request(headers: &mut HeaderMap, client: ClientInfo, forward_authorization: bool) {
    strip_hop_by_hop(headers);
    for name in &METHOD_OVERRIDES {
        headers.remove(name);
    }
    headers.remove(header::EXPECT);
    if !forward_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    let host = headers.remove(header::HOST);
    // Written on the stack: the header value is then the only copy.
    let mut peer_text = [0u8; MAX_IP_TEXT];
    let peer = ip_text(client.peer, &mut peer_text);
    // X-Forwarded-Proto, X-Forwarded-Host and Via may be new: grow the map once.
    headers.reserve(4);
    if client.trusted {
        let chain = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .chain(std::iter::once(peer))
            .collect::<Vec<_>>()
            .join(", ");
        set(headers, X_FORWARDED_FOR, &chain);
        if !headers.contains_key(X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if !headers.contains_key(X_FORWARDED_HOST)
            && let Some(host) = host
        {
            headers.insert(X_FORWARDED_HOST, host);
        }
    } else {
        for name in &FORWARDING {
            headers.remove(name);
        }
        set(headers, X_FORWARDED_FOR, peer);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        if let Some(host) = host {
            headers.insert(X_FORWARDED_HOST, host);
        }
    }
    append_via(headers);
}

/// Rewrites an upstream response's headers for the client.
pub fn rewrite_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    for name in &PROXY_AUTHENTICATION {
        headers.remove(name);
    }
}

/// Longest text of an IP address (an IPv6 address with an embedded IPv4 one).
const MAX_IP_TEXT: usize = 45;

fn ip_text(ip: IpAddr, buffer: &mut [u8; MAX_IP_TEXT]) -> &str {
    let mut rest = &mut buffer[..];
    // Every address fits; on the impossible failure the value is empty and not set.
    let written = match write!(rest, "{ip}") {
        Ok(()) => MAX_IP_TEXT - rest.len(),
        Err(_) => 0,
    };
    std::str::from_utf8(&buffer[..written]).unwrap_or_default()
}

fn append_via(headers: &mut HeaderMap) {
    headers.append(header::VIA, HeaderValue::from_static(VIA_VALUE));
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if !value.is_empty()
        && let Ok(value) = HeaderValue::from_str(value)
    {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("x-http-method-override", "DELETE"),
            ("content-type", "application/json"),
        ]);
        let untrusted = ClientInfo {
            peer: "10.1.2.3".parse().expect("ip"),
            trusted: false,
        };
        rewrite_request(&mut h, untrusted, true);
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
            "proxy-connection",
            "x-http-method-override",
        ] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn proxy_authentication_fields_are_removed_from_responses() {
        let mut h = map(&[
            ("proxy-authenticate", "Basic realm=\"halo\""),
            ("proxy-authentication-info", "nextnonce=\"abc\""),
            ("www-authenticate", "Bearer"),
            ("content-type", "application/json"),
        ]);
        rewrite_response(&mut h);
        assert!(!h.contains_key("proxy-authenticate"));
        assert!(!h.contains_key("proxy-authentication-info"));
        assert_eq!(h["www-authenticate"], "Bearer", "end-to-end challenge kept");
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn ip_text_is_the_address_as_displayed() {
        for ip in [
            "10.1.2.3",
            "255.255.255.255",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "0:0:0:0:0:ffff:192.168.100.200",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            let mut buffer = [0u8; MAX_IP_TEXT];
            assert_eq!(ip_text(ip, &mut buffer), ip.to_string());
        }
    }

    #[test]
    fn forwarding_headers_are_replaced_unless_trusted() {
        let base = [
            ("host", "gw.example"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ];
        let mut h = map(&base);
        rewrite_request(
            &mut h,
            ClientInfo {
                peer: "10.1.2.3".parse().expect("ip"),
                trusted: false,
            },
            true,
        );
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert!(!h.contains_key("forwarded") && !h.contains_key("host"));
        assert_eq!(h["via"], "1.1 halo-gateway");

        let mut h = map(&base);
        rewrite_request(
            &mut h,
            ClientInfo {
                peer: "10.1.2.3".parse().expect("ip"),
                trusted: true,
            },
            true,
        );
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
