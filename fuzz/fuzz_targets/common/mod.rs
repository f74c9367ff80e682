//! Checks shared by the targets.

#![allow(dead_code)]

use std::sync::OnceLock;

use axum::response::IntoResponse;
use halo_gateway::auth::{AuthError, DenyReason};
use http::{HeaderValue, header};

/// `HALO_FUZZ_SKIP_KNOWN=1` steps around the known, reported bugs listed in
/// `fuzz/regressions/README.md` so a long run keeps exploring instead of stopping on them.
/// Off by default: CI must fail while a known bug is still in `src/`.
pub fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("HALO_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

/// Every `AuthError` becomes a `WWW-Authenticate` `error_description` and a JSON body:
/// it must be a non-empty, bounded header value of RFC 6750 §3 characters
/// (`%x20-21 / %x23-5B / %x5D-7E`), and the response must carry its challenge.
pub fn check_error(e: &AuthError) {
    let d = &e.description;
    assert!(!d.is_empty(), "empty description for {:?}", e.reason);
    assert!(d.len() <= 203, "description longer than 200 chars + '...': {} bytes", d.len());
    assert!(
        d.chars().all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'),
        "description has a character outside RFC 6750 error_description: {d:?}"
    );
    assert!(HeaderValue::from_str(d).is_ok(), "description is not a header value: {d:?}");
    if let Some(role) = &e.required_role {
        assert_eq!(e.reason, DenyReason::RoleMissing, "required_role set on {:?}", e.reason);
        assert!(!role.is_empty());
    }
    let status = e.status();
    let response = e.clone().into_response();
    assert_eq!(response.status(), status);
    let challenge = response.headers().get(header::WWW_AUTHENTICATE);
    match e.reason {
        DenyReason::KeysUnavailable => {
            assert!(challenge.is_none());
            assert!(response.headers().contains_key(header::RETRY_AFTER));
        }
        DenyReason::MissingToken => assert_eq!(challenge.map(HeaderValue::as_bytes), Some(&b"Bearer"[..])),
        _ => {
            let challenge = challenge.unwrap_or_else(|| panic!("no WWW-Authenticate for {:?}: {d:?}", e.reason));
            let text = challenge.to_str().unwrap_or_else(|_| panic!("challenge not ASCII"));
            assert!(text.ends_with(&format!("error_description=\"{d}\"")), "challenge {text:?} lost the description");
        }
    }
}

/// ROT13 on ASCII letters, ROT5 on digits: keeps every byte's class (b64token, visible ASCII,
/// separators, length), so the same input rule fires but any echoed token text changes.
pub fn rotate(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' => b'a' + (b - b'a' + 13) % 26,
            b'A'..=b'Z' => b'A' + (b - b'A' + 13) % 26,
            b'0'..=b'9' => b'0' + (b - b'0' + 5) % 10,
            other => other,
        })
        .collect()
}
