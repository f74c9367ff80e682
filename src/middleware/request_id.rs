//! Request ids: the client's `X-Request-Id` is kept when it sent exactly one that is safe to
//! log (1 to 128 visible ASCII bytes); otherwise it is dropped, so tower-http's
//! `SetRequestId` makes a UUID v4 ([`MakeUuid`]). The id is echoed on the response by
//! `PropagateRequestId`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::proxy::headers::X_REQUEST_ID;

/// Longest client-supplied request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Removes every `X-Request-Id` unless there is exactly one safe id (a client must not inject
/// log lines or oversized fields).
pub fn drop_unsafe_request_id<B>(mut request: Request<B>) -> Request<B> {
    if !has_one_safe_id(request.headers()) {
        request.headers_mut().remove(X_REQUEST_ID);
    }
    request
}

/// A UUID v4 per request, as tower-http's `MakeRequestUuid` makes it, written into one
/// shared buffer: the header, the `RequestId` extension, the response's copy and the access
/// log's then share it, where a `String` would be formatted, copied, and copied again on the
/// first clone.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeUuid;

impl MakeRequestId for MakeUuid {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        HeaderValue::from_maybe_shared(Bytes::from_owner(text))
            .ok()
            .map(RequestId::new)
    }
}

fn has_one_safe_id(headers: &HeaderMap) -> bool {
    let mut ids = headers.get_all(X_REQUEST_ID).iter();
    match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => is_safe_request_id(id),
        (Some(_), Some(_)) => false,
    }
}

fn is_safe_request_id(id: &HeaderValue) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.as_bytes().iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(ids: &[&str]) -> Vec<String> {
        let mut request = Request::new(());
        for id in ids {
            request
                .headers_mut()
                .append(X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
        }
        drop_unsafe_request_id(request)
            .headers()
            .get_all(X_REQUEST_ID)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn one_safe_client_id_is_kept() {
        assert_eq!(kept(&["abc-123"]), ["abc-123"]);
        let longest = "x".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(kept(&[longest.as_str()]), [longest]);
    }

    #[test]
    fn made_ids_are_uuid_v4_text() {
        let request = Request::new(());
        let id = MakeUuid.make_request_id(&request).expect("id");
        let text = id.header_value().to_str().expect("ASCII");
        let parsed = uuid::Uuid::parse_str(text).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(
            text,
            parsed.hyphenated().to_string(),
            "lower-case, hyphenated"
        );
        let next = MakeUuid.make_request_id(&request).expect("id");
        assert_ne!(next.header_value(), id.header_value());
    }

    #[test]
    fn unsafe_or_repeated_ids_are_dropped() {
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        for sent in [vec!["a b"], vec![""], vec![long.as_str()], vec!["a", "b"]] {
            assert!(kept(&sent).is_empty(), "{sent:?}");
        }
    }
}
