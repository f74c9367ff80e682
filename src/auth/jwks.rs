//! Issuer discovery and JWKS fetching: one reused HTTP client with every fetch bounded
//! (connect 5 s, total 10 s, 1 MB body, same-origin redirects only, at most 5), TLS
//! verification always on, no system proxy unless `Gateway__HttpsProxy` is set.
//!
//! Metadata comes from `MetadataAddress`, else `{Authority}/.well-known/openid-configuration`
//! with a fallback to `/.well-known/oauth-authorization-server`. Its `issuer` must equal
//! `ValidIssuer` and its `jwks_uri` must be https (unless `RequireHttpsMetadata=false`) and on
//! the issuer's host (unless listed in `AllowedJwksHosts`).
//!
//! A 429 or 503 carrying `Retry-After` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date;
//! RFC 6585 §4) becomes [`FetchError::RateLimited`] with the requested wait, so the key store
//! can hold every further fetch back until then.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use url::Url;

use super::keyset::{ParsedKeySet, parse_jwks};
use crate::config::AuthConfig;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_BODY: usize = 1024 * 1024;
pub const MAX_REDIRECTS: usize = 5;

/// Why a metadata or key fetch failed. The message names the URL, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("issuer unreachable: {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered HTTP {status} and asked to wait {} s (Retry-After)", wait.as_secs())]
    RateLimited {
        url: String,
        status: u16,
        wait: Duration,
    },
    #[error("{url}: the response body exceeds {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("bad metadata from {url}: {reason}")]
    BadMetadata { url: String, reason: String },
    #[error(
        "issuer mismatch: the metadata at {url} names issuer '{found}', but ValidIssuer is '{expected}'"
    )]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error("bad key set from {url}: {reason}")]
    BadKeySet { url: String, reason: String },
}

impl FetchError {
    /// Bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Status { .. } => "http_status",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooLarge { .. } => "too_large",
            Self::BadMetadata { .. } => "bad_metadata",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::BadKeySet { .. } => "bad_key_set",
        }
    }

    /// How long the issuer asked us to wait before fetching again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    /// A non-success answer: rate limiting when the issuer said how long to wait, else a
    /// plain status error.
    fn from_status(url: &Url, status: StatusCode, headers: &HeaderMap) -> Self {
        let url = url.to_string();
        let status = status.as_u16();
        match (status, retry_after(headers, SystemTime::now())) {
            (429 | 503, Some(wait)) => Self::RateLimited { url, status, wait },
            _ => Self::Status { url, status },
        }
    }
}

/// What a JWKS fetch returned.
#[derive(Debug)]
pub enum JwksResponse {
    /// `304 Not Modified` for our `If-None-Match`.
    NotModified { max_age: Option<Duration> },
    Keys {
        set: ParsedKeySet,
        etag: Option<String>,
        max_age: Option<Duration>,
    },
}

/// Fetches metadata and key sets for one issuer.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    metadata_urls: Vec<Url>,
    expected_issuer: String,
    require_https: bool,
    allowed_hosts: Vec<String>,
}

impl Fetcher {
    pub fn new(config: &AuthConfig, https_proxy: Option<&Url>) -> Result<Self, String> {
        let require_https = config.require_https_metadata;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if !same_origin {
                attempt.error("redirect to another origin refused")
            } else if require_https && attempt.url().scheme() != "https" {
                attempt.error("redirect to http:// refused")
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(policy)
            .no_proxy()
            .user_agent(concat!("halo-gateway/", env!("CARGO_PKG_VERSION")))
            .https_only(require_https);
        if let Some(proxy) = https_proxy {
            builder =
                builder.proxy(reqwest::Proxy::all(proxy.as_str()).map_err(|e| e.to_string())?);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let metadata_urls = match &config.metadata_address {
            Some(url) => vec![url.clone()],
            None => ["openid-configuration", "oauth-authorization-server"]
                .iter()
                .filter_map(|doc| {
                    let base = config.authority.as_str().trim_end_matches('/');
                    Url::parse(&format!("{base}/.well-known/{doc}")).ok()
                })
                .collect(),
        };
        Ok(Self {
            client,
            metadata_urls,
            expected_issuer: config.valid_issuers[0].clone(),
            require_https,
            allowed_hosts: config.allowed_jwks_hosts.clone(),
        })
    }

    /// The metadata URLs tried in order.
    pub fn metadata_urls(&self) -> &[Url] {
        &self.metadata_urls
    }

    /// Reads the metadata and returns the validated `jwks_uri`.
    pub async fn discover(&self) -> Result<Url, FetchError> {
        let mut last_error = None;
        for url in &self.metadata_urls {
            match self.get(url, None).await {
                Ok((StatusCode::OK, _, body)) => return self.jwks_uri_from(url, &body),
                // A missing document falls through to the next one; anything else is final.
                Ok((status, headers, _))
                    if status == StatusCode::NOT_FOUND
                        && url != self.metadata_urls.last().unwrap_or(url) =>
                {
                    last_error = Some(FetchError::from_status(url, status, &headers));
                }
                Ok((status, headers, _)) => {
                    return Err(FetchError::from_status(url, status, &headers));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| FetchError::BadMetadata {
            url: String::new(),
            reason: "no metadata URL".into(),
        }))
    }

    fn jwks_uri_from(&self, url: &Url, body: &[u8]) -> Result<Url, FetchError> {
        let bad = |reason: String| FetchError::BadMetadata {
            url: url.to_string(),
            reason,
        };
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("not JSON ({e})")))?;
        let issuer = doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no \"issuer\"".into()))?;
        if issuer != self.expected_issuer {
            return Err(FetchError::IssuerMismatch {
                url: url.to_string(),
                found: issuer.to_owned(),
                expected: self.expected_issuer.clone(),
            });
        }
        let jwks = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("no \"jwks_uri\"".into()))?;
        let jwks =
            Url::parse(jwks).map_err(|e| bad(format!("jwks_uri '{jwks}' is not a URL ({e})")))?;
        if self.require_https && jwks.scheme() != "https" {
            return Err(bad(format!(
                "jwks_uri {jwks} is not https (RequireHttpsMetadata is true)"
            )));
        }
        let issuer_host = Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        let jwks_host = jwks.host_str().unwrap_or_default();
        if issuer_host.as_deref() != Some(jwks_host)
            && !self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(jwks_host))
        {
            return Err(bad(format!(
                "jwks_uri host '{jwks_host}' is not the issuer's host; list it in AllowedJwksHosts to allow it"
            )));
        }
        Ok(jwks)
    }

    /// Fetches the key set, conditionally when `etag` is known.
    pub async fn fetch_keys(
        &self,
        jwks_uri: &Url,
        etag: Option<&str>,
    ) -> Result<JwksResponse, FetchError> {
        let (status, headers, body) = self.get(jwks_uri, etag).await?;
        let max_age = max_age(&headers);
        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(JwksResponse::NotModified { max_age });
        }
        if status != StatusCode::OK {
            return Err(FetchError::from_status(jwks_uri, status, &headers));
        }
        let bad = |reason: String| FetchError::BadKeySet {
            url: jwks_uri.to_string(),
            reason,
        };
        let set = parse_jwks(&body).map_err(bad)?;
        if set.keys.is_empty() {
            return Err(bad(format!(
                "no usable signing key ({})",
                if set.skipped.is_empty() {
                    "the set is empty".to_owned()
                } else {
                    set.skipped.join("; ")
                }
            )));
        }
        let etag = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(JwksResponse::Keys { set, etag, max_age })
    }

    async fn get(
        &self,
        url: &Url,
        etag: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), FetchError> {
        let unreachable = |e: reqwest::Error| FetchError::Unreachable {
            url: url.to_string(),
            reason: crate::error::error_chain(&e),
        };
        let mut request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(unreachable)?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
            });
        }
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body.freeze()))
    }
}

/// `Retry-After` as a wait from `now` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date
/// (a date in the past is no wait). `None` when absent or unparseable.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit is still "a very long time"; the caller caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Cache-Control: max-age` of a response, if any.
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse().ok())
                .flatten()
        })
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry_after(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn retry_after_accepts_delay_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        let cases = [
            ("6", Some(Duration::from_secs(6))),
            (" 120 ", Some(Duration::from_secs(120))),
            ("0", Some(Duration::ZERO)),
            (
                "Sun, 06 Nov 1994 08:50:07 GMT",
                Some(Duration::from_secs(30)),
            ),
            // An obsolete RFC 850 date is still an HTTP-date (RFC 9110 §5.6.7).
            (
                "Sunday, 06-Nov-94 08:49:47 GMT",
                Some(Duration::from_secs(10)),
            ),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                retry_after(&with_retry_after(value), now),
                expected,
                "{value:?}"
            );
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn only_429_and_503_with_retry_after_are_rate_limiting() {
        let url = Url::parse("https://issuer.example/v1/keys").expect("url");
        let wait = with_retry_after("6");
        for (status, headers, kind) in [
            (429, &wait, "rate_limited"),
            (503, &wait, "rate_limited"),
            (500, &wait, "http_status"),
            (429, &HeaderMap::new(), "http_status"),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            let error = FetchError::from_status(&url, status, headers);
            assert_eq!(error.kind(), kind, "{status}");
        }
        let error = FetchError::from_status(&url, StatusCode::TOO_MANY_REQUESTS, &wait);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(6)));
        assert_eq!(
            error.to_string(),
            "https://issuer.example/v1/keys answered HTTP 429 and asked to wait 6 s (Retry-After)"
        );
    }
}
