//! The answers of the limits: 429 responses and the `RateLimit-Policy` / `RateLimit` fields of
//! draft-ietf-httpapi-ratelimit-headers (RFC 8941 structured-field lists, one item per limit
//! that applied), and `Retry-After` (RFC 9110 §10.2.3, whole seconds, at least 1, never
//! earlier than the refusing item's `t`). Each layer appends its own field lines; RFC 8941
//! §3.1 lets a list be split across lines of the same name.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use super::RateLimit;
use super::gcra::Outcome;
use crate::http::response::json_error;

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds from microseconds, rounded up.
pub fn ceil_seconds(micros: u64) -> u64 {
    micros.div_ceil(1_000_000)
}

/// An RFC 8941 sf-string of `text`: printable ASCII, `"` and `\` escaped, anything else `?`.
pub fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// `"<name>";q=<requests>;w=<period seconds>`.
pub fn policy_item(limit: &RateLimit) -> String {
    format!(
        "{};q={};w={}",
        limit.policy,
        limit.quota.requests,
        limit.quota.period.as_secs()
    )
}

/// `"<name>";r=<remaining>;t=<seconds>`: until the quota is full again when allowed, until a
/// request is allowed when refused.
pub fn state_item(limit: &RateLimit, outcome: &Outcome) -> String {
    let (remaining, micros) = match *outcome {
        Outcome::Allowed { remaining, reset } => (remaining, reset),
        Outcome::Refused { wait } => (0, wait),
    };
    format!("{};r={remaining};t={}", limit.policy, ceil_seconds(micros))
}

/// Appends one `RateLimit-Policy` and one `RateLimit` line listing `items`.
pub fn append_fields(headers: &mut HeaderMap, items: &[(&RateLimit, Outcome)]) {
    if items.is_empty() {
        return;
    }
    let join = |f: &dyn Fn(&(&RateLimit, Outcome)) -> String| {
        items.iter().map(f).collect::<Vec<_>>().join(", ")
    };
    append(headers, &RATELIMIT_POLICY, join(&|(l, _)| policy_item(l)));
    append(headers, &RATELIMIT, join(&|(l, o)| state_item(l, o)));
}

fn append(headers: &mut HeaderMap, name: &HeaderName, value: String) {
    // Items are built from printable ASCII only, so this always succeeds.
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.append(name.clone(), value);
    }
}

/// 429 `rate_limited` for the refusing `items` (each with `r=0`).
pub fn rate_limited<B: From<Bytes>>(items: &[(&RateLimit, Outcome)]) -> Response<B> {
    let wait = items
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::Refused { wait } => Some(ceil_seconds(*wait)),
            Outcome::Allowed { .. } => None,
        })
        .max()
        .unwrap_or(1)
        .max(1);
    let scope = items.first().map_or("client", |(l, _)| l.kind.describe());
    let mut response = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        &format!("too many requests {scope}; retry after {wait} s"),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    append_fields(headers, items);
    response
}

/// 429 `concurrency_limited`: `max` requests of this client are already in flight.
pub fn concurrency_limited<B: From<Bytes>>(max: u32, scope: &str) -> Response<B> {
    let mut response = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "concurrency_limited",
        &format!("{max} requests {scope} are already in progress; retry when one has finished"),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    append(
        headers,
        &RATELIMIT_POLICY,
        format!("\"concurrency\";q={max};qu=\"concurrent-requests\""),
    );
    append(headers, &RATELIMIT, "\"concurrency\";r=0".to_owned());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_structured_field_strings() {
        assert_eq!(sf_string("rebuild"), "\"rebuild\"");
        assert_eq!(sf_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(sf_string("réb"), "\"r?b\"");
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_seconds(1), 1);
        assert_eq!(ceil_seconds(1_000_000), 1);
        assert_eq!(ceil_seconds(1_000_001), 2);
    }
}
