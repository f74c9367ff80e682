//! Request ids: the client's `X-Request-Id` is kept when it sent exactly one that is safe to
//! log (1 to 128 visible ASCII bytes); otherwise it is dropped, so tower-http's
//! `SetRequestId` makes a UUID v4. The id is echoed on the response by `PropagateRequestId`.

use http::{HeaderMap, HeaderValue, Request};

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
    fn unsafe_or_repeated_ids_are_dropped() {
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        for sent in [vec!["a b"], vec![""], vec![long.as_str()], vec!["a", "b"]] {
            assert!(kept(&sent).is_empty(), "{sent:?}");
        }
    }
}
