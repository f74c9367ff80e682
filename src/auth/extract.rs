//! Finding the bearer token in a request (RFC 6750 §2).
//!
//! Only the `Authorization` header is accepted: `Bearer` (any case), one or more spaces, the
//! token, optional trailing spaces, as ASP.NET's JwtBearer handler reads it. A TAB is not a
//! separator. A token in the query string (§2.3) or form body (§2.2), two `Authorization`
//! headers, or an empty token is an `invalid_request`.

use http::{HeaderMap, header};

use super::error::{AuthError, DenyReason};

/// The query/form parameter names that would carry a token.
pub const TOKEN_PARAMETERS: &[&str] = &["access_token"];

/// How the access token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer(&'a str),
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1).
    DPoP(&'a str),
}

/// The bearer token, `Ok(None)` when the request carries none (a `DPoP` credential counts as
/// none: an unsupported scheme).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    Ok(match credentials(headers, false)? {
        Some(Credentials::Bearer(token)) => Some(token),
        _ => None,
    })
}

/// The access token and its scheme; the `DPoP` scheme only when `accept_dpop`, otherwise it
/// is an unsupported scheme like any other (`Ok(None)`).
pub fn credentials(
    headers: &HeaderMap,
    accept_dpop: bool,
) -> Result<Option<Credentials<'_>>, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::new(
            DenyReason::InvalidRequest,
            "the request has more than one Authorization header",
        ));
    }
    let value = value.to_str().map_err(|_| {
        AuthError::new(
            DenyReason::InvalidRequest,
            "the Authorization header is not visible ASCII",
        )
    })?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let dpop = accept_dpop && scheme.eq_ignore_ascii_case("dpop");
    if !dpop && !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, DPoP when off, ...) is no token: challenge for one.
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::new(
            DenyReason::InvalidRequest,
            "the access token is empty",
        ));
    }
    let body = token.trim_end_matches('=');
    // `fold` rather than `all`: no early exit, so the check over a ~1 KB token vectorizes.
    if body.is_empty() || !body.bytes().fold(true, |ok, b| ok & is_b64token_char(b)) {
        return Err(AuthError::new(
            DenyReason::Malformed,
            "the access token contains characters outside the b64token syntax",
        ));
    }
    Ok(Some(if dpop {
        Credentials::DPoP(token)
    } else {
        Credentials::Bearer(token)
    }))
}

/// RFC 6750 §2.1 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`:
/// this is the class before the trailing `=` padding.
fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether a query string or urlencoded form carries a token parameter.
pub fn carries_token_parameter(urlencoded: &[u8]) -> bool {
    url::form_urlencoded::parse(urlencoded).any(|(name, _)| {
        TOKEN_PARAMETERS
            .iter()
            .any(|p| name.trim().eq_ignore_ascii_case(p))
    })
}

/// Refuses a token passed in the query string.
pub fn check_query(query: Option<&str>) -> Result<(), AuthError> {
    match query {
        Some(q) if carries_token_parameter(q.as_bytes()) => Err(AuthError::new(
            DenyReason::InvalidRequest,
            "access tokens are accepted only in the Authorization header, not in the query string",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("header"),
            );
        }
        map
    }

    #[test]
    fn reads_bearer_like_aspnet() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"]))
                .ok()
                .flatten(),
            Some("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(&headers(&["bearer abc"])).ok().flatten(),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&headers(&["BEARER    abc  "])).ok().flatten(),
            Some("abc")
        );
        assert_eq!(bearer_token(&headers(&[])).ok().flatten(), None);
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"]))
                .ok()
                .flatten(),
            None
        );
        // A TAB is not a separator: this is no bearer credential at all.
        assert_eq!(
            bearer_token(&headers(&["Bearer\tabc"])).ok().flatten(),
            None
        );
    }

    #[test]
    fn refuses_ambiguous_or_empty_tokens() {
        let reason = |v: &[&str]| bearer_token(&headers(v)).err().map(|e| e.reason);
        assert_eq!(
            reason(&["Bearer a", "Bearer b"]),
            Some(DenyReason::InvalidRequest)
        );
        assert_eq!(reason(&["Bearer "]), Some(DenyReason::InvalidRequest));
        assert_eq!(reason(&["Bearer"]), Some(DenyReason::InvalidRequest));
        assert_eq!(reason(&["Bearer a b"]), Some(DenyReason::Malformed));
        assert_eq!(
            reason(&["Bearer a=b"]),
            Some(DenyReason::Malformed),
            "'=' only as trailing padding"
        );
        assert_eq!(reason(&["Bearer ="]), Some(DenyReason::Malformed));
        assert_eq!(
            bearer_token(&headers(&["Bearer ab=="])).ok().flatten(),
            Some("ab==")
        );
        let dpop_header = headers(&["dpop  abc "]);
        let dpop = |accept| credentials(&dpop_header, accept).ok().flatten();
        assert_eq!(dpop(true), Some(Credentials::DPoP("abc")));
        assert_eq!(dpop(false), None, "an unsupported scheme while DPoP is off");
        assert!(check_query(Some("x=1&access_token=abc")).is_err());
        assert!(check_query(Some("x=1&Access_Token=abc")).is_err());
        assert!(check_query(Some("x=1")).is_ok());
    }
}
