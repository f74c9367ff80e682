//! The `htu` check (RFC 9449 §4.3 step 9): the proof's URI against the request's, without
//! query and fragment, after syntax- and scheme-based normalization (RFC 3986 §6.2.2, §6.2.3):
//! scheme and host case-insensitive, default port dropped, empty path = `/`, percent-encoding
//! with upper-case hex and unreserved characters decoded. The path is otherwise exact.
//!
//! Hand-written rather than `url::Url`: the WHATWG parser rewrites paths (dot segments,
//! backslashes) that RFC 3986 compares as written.

use std::net::IpAddr;

use http::{HeaderMap, Uri, header};
use ipnet::IpNet;
use url::Url;

use crate::proxy::headers::{X_FORWARDED_HOST, X_FORWARDED_PROTO};

/// A normalized `scheme://host[:port]` plus path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUri {
    pub origin: String,
    pub path: String,
}

impl TargetUri {
    /// `origin` + `path`, the form hashed into the replay key.
    pub fn joined(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }
}

/// Parses and normalizes a proof's `htu`; query and fragment are dropped.
pub fn parse_htu(htu: &str) -> Result<TargetUri, &'static str> {
    let (scheme, rest) = htu
        .split_once("://")
        .ok_or("htu is not an absolute http(s) URI")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let origin = origin(scheme, authority).ok_or("htu has no valid http(s) scheme and host")?;
    Ok(TargetUri {
        origin,
        path: normalize_path(&rest[..path_end]),
    })
}

/// `scheme://host[:port]` normalized; `None` for another scheme, user-info or a bad port.
pub fn origin(scheme: &str, authority: &str) -> Option<String> {
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // The port follows the last ':' outside an IPv6 literal's brackets.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            let p = p.trim_start_matches('0');
            let p = if p.is_empty() { "0" } else { p };
            (p != default_port).then_some(p)
        }
        Some(_) => return None,
    };
    let host = host.to_ascii_lowercase();
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Percent-encoding normalized (RFC 3986 §6.2.2.1, §6.2.2.2); empty path = `/` (§6.2.3).
pub fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    // A valid request target is ASCII; a non-ASCII htu is kept as written and will not match.
    if !path.is_ascii() {
        return path.to_owned();
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|h| (*h as char).to_digit(16)),
                bytes.get(i + 2).and_then(|l| (*l as char).to_digit(16)),
            )
        {
            let decoded = (hi * 16 + lo) as u8;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.push(decoded as char);
            } else {
                out.push_str(&format!("%{decoded:02X}"));
            }
            i += 3;
            continue;
        }
        out.push(char::from(b));
        i += 1;
    }
    out
}

/// Where the request's public URI comes from.
#[derive(Debug, Clone, Default)]
pub struct PublicOrigins {
    /// `Gateway__PublicOrigins__N`, normalized; empty: derive from the request.
    configured: Vec<String>,
    /// `Gateway__TrustedProxies`: peers whose forwarding headers name the origin.
    trusted_proxies: Vec<IpNet>,
}

impl PublicOrigins {
    pub fn new(configured: &[Url], trusted_proxies: &[IpNet]) -> Self {
        let configured = configured
            .iter()
            .filter_map(|url| {
                let authority = match url.port() {
                    Some(port) => format!("{}:{port}", url.host_str()?),
                    None => url.host_str()?.to_owned(),
                };
                origin(url.scheme(), &authority)
            })
            .collect();
        Self {
            configured,
            trusted_proxies: trusted_proxies.to_vec(),
        }
    }

    /// The origins the request may have been sent to: the configured ones, else the one a
    /// trusted proxy names (`Forwarded`, then `X-Forwarded-Proto/Host`), else `http://` +
    /// `Host` (the listener speaks plain HTTP).
    pub fn for_request(&self, uri: &Uri, headers: &HeaderMap, peer: Option<IpAddr>) -> Vec<String> {
        if !self.configured.is_empty() {
            return self.configured.clone();
        }
        let trusted = peer.is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(&ip)));
        let host = || {
            uri.authority()
                .map(|a| a.as_str().to_owned())
                .or_else(|| first_value(headers, &header::HOST))
        };
        let derived = if trusted {
            let (proto, fwd_host) = forwarded(headers);
            let proto = proto.or_else(|| first_value(headers, &X_FORWARDED_PROTO));
            let fwd_host = fwd_host.or_else(|| first_value(headers, &X_FORWARDED_HOST));
            origin(
                proto.as_deref().unwrap_or("http"),
                &fwd_host.or_else(host).unwrap_or_default(),
            )
        } else {
            origin("http", &host().unwrap_or_default())
        };
        derived.into_iter().collect()
    }
}

/// The first comma-separated element of the first value of `name`, trimmed.
fn first_value(headers: &HeaderMap, name: &header::HeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}

/// `proto` and `host` of the first element of `Forwarded` (RFC 7239 §4).
fn forwarded(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(element) = first_value(headers, &header::FORWARDED) else {
        return (None, None);
    };
    let mut proto = None;
    let mut host = None;
    for pair in element.split(';') {
        if let Some((name, value)) = pair.split_once('=') {
            let value = value.trim().trim_matches('"').to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = Some(value),
                "host" => host = Some(value),
                _ => {}
            }
        }
    }
    (proto, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(htu: &str) -> String {
        parse_htu(htu).map(|t| t.joined()).unwrap_or_default()
    }

    #[test]
    fn normalizes_per_rfc_3986_section_6_2_2_and_6_2_3() {
        assert_eq!(
            norm("HTTPS://Halo.Example.COM:443/api/v1/x?q=1#f"),
            "https://halo.example.com/api/v1/x"
        );
        assert_eq!(norm("http://h:80"), "http://h/");
        assert_eq!(norm("http://h:8080/a"), "http://h:8080/a");
        assert_eq!(norm("http://h/%7euser/%2f%41"), "http://h/~user/%2FA");
        assert_eq!(norm("http://[::1]:443/a"), "http://[::1]:443/a");
        assert_eq!(norm("https://[::1]:443/a"), "https://[::1]/a");
        // The path is otherwise exact: case and dot segments are kept.
        assert_ne!(norm("http://h/API"), norm("http://h/api"));
        assert_eq!(norm("http://h/a/../b"), "http://h/a/../b");
        for bad in [
            "/api",
            "ftp://h/",
            "http://user@h/",
            "http:///x",
            "http://h:x/",
        ] {
            assert!(parse_htu(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_origin_from_configuration_trusted_forwarding_or_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "gw.internal:8080".parse().unwrap());
        headers.insert(X_FORWARDED_PROTO, "https".parse().unwrap());
        headers.insert(X_FORWARDED_HOST, "Halo.Example.com".parse().unwrap());
        let uri: Uri = "/api".parse().unwrap();
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusting = PublicOrigins::new(&[], &["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            trusting.for_request(&uri, &headers, Some(proxy)),
            ["https://halo.example.com"]
        );
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            trusting.for_request(&uri, &headers, Some(other)),
            ["http://gw.internal:8080"]
        );
        headers.insert(
            header::FORWARDED,
            "proto=https;host=\"a.example:443\", proto=http"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trusting.for_request(&uri, &headers, Some(proxy)),
            ["https://a.example"]
        );
        let configured = PublicOrigins::new(
            &[
                "https://x.example".parse().unwrap(),
                "https://y.example:8443".parse().unwrap(),
            ],
            &[],
        );
        assert_eq!(
            configured.for_request(&uri, &headers, None),
            ["https://x.example", "https://y.example:8443"]
        );
    }
}
