//! `auth::extract`: the bearer token from `Authorization` headers, and the refusal of tokens
//! in the query string / urlencoded form.
//!
//! Input: the bytes split on `\n` (which no header value may hold) are the `Authorization`
//! header values, in order; values `HeaderValue` refuses are skipped, as hyper would never
//! deliver them. The whole input is also the query string / form body.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use halo_gateway::auth::DenyReason;
use halo_gateway::auth::extract::{bearer_token, carries_token_parameter, check_query};
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

const MAX_HEADERS: usize = 8;

fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn headers(values: &[Vec<u8>]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.append(header::ACCEPT, HeaderValue::from_static("application/json"));
    for v in values {
        map.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).expect("filtered"));
    }
    map
}

/// The bytes after the scheme: what a token, if any, was made of.
fn credentials(value: &[u8]) -> &[u8] {
    value.iter().position(|b| *b == b' ').map_or(&[][..], |i| &value[i + 1..])
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

fn check_headers(values: &[Vec<u8>]) {
    let map = headers(values);
    let result = bearer_token(&map);
    match (&result, values.len()) {
        (Ok(None), 0) => {}
        (_, 0) => panic!("no Authorization header yet {result:?}"),
        (Err(e), n) if n > 1 => assert_eq!(e.reason, DenyReason::InvalidRequest, "two headers: {e:?}"),
        (_, n) if n > 1 => panic!("{n} Authorization headers accepted: {result:?}"),
        _ => {}
    }
    match &result {
        Ok(Some(token)) => {
            let value = &values[0];
            assert!(!token.is_empty(), "empty token returned");
            assert!(token.bytes().all(is_b64token_char), "token {token:?} has non-b64token characters");
            assert!(value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer "), "token from a non-Bearer value {value:?}");
            assert!(value.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t'), "token from a non-visible-ASCII value");
            assert_eq!(token.as_bytes(), trim_spaces(credentials(value)), "token is not the whole credential");
        }
        Ok(None) => {
            if let [value] = values {
                // Only a value whose scheme is not "Bearer" carries no bearer token.
                let scheme = value.split(|b| *b == b' ').next().unwrap_or_default();
                assert!(!scheme.eq_ignore_ascii_case(b"bearer"), "Bearer value {value:?} ignored");
            }
        }
        Err(e) => {
            common::check_error(e);
            // The description must not echo the credential: the same input with the
            // credential's letters and digits rotated must not echo the rotated credential.
            if let [value] = values {
                let token = trim_spaces(credentials(value));
                if token.len() >= 4 && e.description.as_bytes().windows(token.len()).any(|w| w == token) {
                    let scheme_len = value.len() - credentials(value).len();
                    let mut rotated = value[..scheme_len].to_vec();
                    rotated.extend(common::rotate(credentials(value)));
                    let rotated_token = trim_spaces(credentials(&rotated)).to_vec();
                    if let Err(e2) = bearer_token(&headers(&[rotated])) {
                        assert!(
                            !e2.description.as_bytes().windows(rotated_token.len()).any(|w| w == rotated_token),
                            "the description echoes the token: {:?}",
                            e2.description
                        );
                    }
                }
            }
        }
    }
}

fn check_form(data: &[u8]) {
    let carries = carries_token_parameter(data);
    // A parameter named access_token (any case, no escapes) is always found ...
    let plain = data.split(|b| *b == b'&').any(|pair| {
        let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
        name.eq_ignore_ascii_case(b"access_token")
    });
    assert!(!plain || carries, "access_token parameter not found in {data:?}");
    // ... and adding other parameters around it never hides it.
    if carries {
        let mut wrapped = b"a=1&".to_vec();
        wrapped.extend_from_slice(data);
        wrapped.extend_from_slice(b"&b=2");
        assert!(carries_token_parameter(&wrapped), "surrounding parameters hid access_token");
    }
    if let Ok(query) = std::str::from_utf8(data) {
        match check_query(Some(query)) {
            Ok(()) => assert!(!carries, "query with access_token accepted"),
            Err(e) => {
                assert!(carries, "query refused without access_token: {e:?}");
                assert_eq!(e.reason, DenyReason::InvalidRequest);
                common::check_error(&e);
                assert!(query.len() < 8 || !e.description.contains(query), "description echoes the query");
            }
        }
    }
    assert!(check_query(None).is_ok());
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<Vec<u8>> = data
        .split(|b| *b == b'\n')
        .take(MAX_HEADERS)
        .filter(|v| HeaderValue::from_bytes(v).is_ok())
        .map(<[u8]>::to_vec)
        .collect();
    check_headers(&values);
    // Each value alone, too: the single-header rules get every input.
    if values.len() > 1 {
        for v in &values {
            check_headers(std::slice::from_ref(v));
        }
    }
    check_form(data);
});
