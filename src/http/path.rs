//! Request-path normalization, done once so the policy and Halo never see different routes.
//!
//! RFC 3986 §6.2.2: percent-encoded unreserved characters are decoded and the remaining
//! escapes upper-cased; §5.2.4: dot-segments are removed; duplicate slashes collapse.
//! Paths whose meaning differs between parsers are refused (400): encoded `/` or `\`, raw
//! `\`, NUL and control characters (raw or encoded), malformed escapes, and `..` that would
//! climb above the root.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use percent_encoding::{percent_decode_str, percent_encode_byte};

/// A normalized, unambiguous request path (always starts with `/`). Shared, so the access log
/// keeps it without a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    path: Arc<str>,
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must start with '/'")]
    NotAbsolute,
    #[error("the request path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("the request path contains a backslash")]
    Backslash,
    #[error("the request path contains a control character")]
    ControlCharacter,
    #[error("the request path contains a malformed percent-escape")]
    BadEscape,
    #[error("the request path climbs above the root with '..'")]
    EscapesRoot,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl NormalizedPath {
    /// Normalizes a raw request path (without the query).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let bytes = raw.as_bytes();
        if bytes.first() != Some(&b'/') {
            return Err(PathError::NotAbsolute);
        }
        if is_already_normal(raw) {
            return Ok(Self { path: raw.into() });
        }
        // Pass 1: decode unreserved escapes, upper-case the others, refuse the ambiguous ones.
        let mut decoded = String::with_capacity(raw.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'%' => {
                    let (hi, lo) = match (
                        bytes.get(i + 1).copied().and_then(hex),
                        bytes.get(i + 2).copied().and_then(hex),
                    ) {
                        (Some(hi), Some(lo)) => (hi, lo),
                        _ => return Err(PathError::BadEscape),
                    };
                    let value = hi << 4 | lo;
                    match value {
                        b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                        0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                        v if is_unreserved(v) => decoded.push(char::from(v)),
                        v => decoded.push_str(percent_encode_byte(v)),
                    }
                    i += 3;
                }
                b'\\' => return Err(PathError::Backslash),
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                0x80.. => {
                    // Raw non-ASCII (http::Uri lets UTF-8 through): percent-encode it, as
                    // RFC 3986 requires, so the forwarded path is ASCII and means the same.
                    decoded.push_str(percent_encode_byte(b));
                    i += 1;
                }
                _ => {
                    decoded.push(char::from(b));
                    i += 1;
                }
            }
        }
        // Pass 2: segments, collapsing empty ones and resolving dot-segments.
        let trailing_slash = decoded.len() > 1
            && (decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/.."));
        let mut segments: Vec<&str> = Vec::new();
        for segment in decoded.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    if segments.pop().is_none() {
                        return Err(PathError::EscapesRoot);
                    }
                }
                s => segments.push(s),
            }
        }
        let mut path = String::with_capacity(decoded.len());
        for s in &segments {
            path.push('/');
            path.push_str(s);
        }
        if path.is_empty() || trailing_slash {
            path.push('/');
        }
        Ok(Self { path: path.into() })
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The path, shared.
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.path)
    }

    /// Segments for route matching: fully percent-decoded (as ASP.NET decodes before routing)
    /// and upper-cased with Unicode case mapping, so `/API/V1/License`, `%6C`-escapes and
    /// case-folding look-alikes such as `ſ` match the same rule Halo would route them to.
    pub fn match_segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match_key(s).into_owned())
            .collect()
    }
}

/// One path segment as routes compare it: fully percent-decoded and Unicode upper-cased. Plain
/// ASCII (the common case) skips the decode, and an already upper-case segment is borrowed.
pub fn match_key(segment: &str) -> Cow<'_, str> {
    if is_plain(segment) {
        if segment.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(segment.to_ascii_uppercase())
        } else {
            Cow::Borrowed(segment)
        }
    } else {
        Cow::Owned(
            percent_decode_str(segment)
                .decode_utf8_lossy()
                .chars()
                .flat_map(char::to_uppercase)
                .collect(),
        )
    }
}

/// What [`NormalizedPath::parse`] returns unchanged (nearly every request): visible ASCII
/// without escapes or backslashes, and no empty (but a last), `.` or `..` segment.
fn is_already_normal(raw: &str) -> bool {
    let plain = raw
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'%' && b != b'\\');
    let mut segments = raw[1..].split('/').peekable();
    plain
        && std::iter::from_fn(|| segments.next().map(|s| (s, segments.peek().is_none()))).all(
            |(segment, last)| match segment {
                "" => last,
                "." | ".." => false,
                _ => true,
            },
        )
}

/// ASCII without escapes: its [`match_key`] is its ASCII upper-case.
fn is_plain(segment: &str) -> bool {
    segment.bytes().all(|b| b.is_ascii() && b != b'%')
}

/// A request path segment ready to compare with route literals (each the [`match_key`] of a
/// pattern segment). A plain ASCII segment, nearly every one, is compared in place, ignoring
/// ASCII case, instead of being upper-cased into a new string per request.
#[derive(Debug)]
pub enum SegmentKey<'a> {
    Plain(&'a str),
    Folded(String),
}

impl<'a> SegmentKey<'a> {
    pub fn new(segment: &'a str) -> Self {
        if is_plain(segment) {
            Self::Plain(segment)
        } else {
            Self::Folded(match_key(segment).into_owned())
        }
    }

    /// Whether [`match_key`] of the segment equals `literal`, itself a [`match_key`] (so it
    /// holds no ASCII lower-case letter, and ignoring ASCII case is the same comparison).
    pub fn matches(&self, literal: &str) -> bool {
        match self {
            Self::Plain(segment) => segment.eq_ignore_ascii_case(literal),
            Self::Folded(key) => key == literal,
        }
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        NormalizedPath::parse(p).map(|n| n.as_str().to_owned())
    }

    #[test]
    fn decodes_unreserved_and_uppercases_other_escapes() {
        assert_eq!(norm("/api/v1/%6Cicense").as_deref(), Ok("/api/v1/license"));
        assert_eq!(
            norm("/api/v1/policies/a%2bb").as_deref(),
            Ok("/api/v1/policies/a%2Bb")
        );
        assert_eq!(
            norm("/api/v1/policies/caf%c3%a9").as_deref(),
            Ok("/api/v1/policies/caf%C3%A9")
        );
    }

    #[test]
    fn resolves_dot_segments_and_duplicate_slashes() {
        assert_eq!(
            norm("/api/v1/../v1/license").as_deref(),
            Ok("/api/v1/license")
        );
        assert_eq!(norm("/api/./v1//license").as_deref(), Ok("/api/v1/license"));
        assert_eq!(
            norm("//api///v1/license/").as_deref(),
            Ok("/api/v1/license/")
        );
        assert_eq!(
            norm("/api/v1/%2E%2E/v1/license").as_deref(),
            Ok("/api/v1/license")
        );
        assert_eq!(norm("/api/v1/x/..").as_deref(), Ok("/api/v1/"));
        assert_eq!(norm("/").as_deref(), Ok("/"));
    }

    #[test]
    fn refuses_ambiguous_paths() {
        assert_eq!(norm("/api/v1%2flicense"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/api/v1%5Clicense"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/api\\v1"), Err(PathError::Backslash));
        assert_eq!(norm("/api/%00"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/api/%0a"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/api/%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("/api/%4"), Err(PathError::BadEscape));
        assert_eq!(norm("/../etc"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/api/../../x"), Err(PathError::EscapesRoot));
        assert_eq!(norm("api"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn raw_non_ascii_is_percent_encoded_and_normalizing_is_idempotent() {
        assert_eq!(
            norm("/api/v1/caf\u{e9}").as_deref(),
            Ok("/api/v1/caf%C3%A9")
        );
        assert_eq!(
            norm("/api/v1/caf%C3%A9").as_deref(),
            Ok("/api/v1/caf%C3%A9")
        );
        for raw in [
            "/caf\u{e9}",
            "/api\u{451}0?celnse",
            "/api/v1/licen\u{17f}e",
            "/a/%41/../b//",
        ] {
            let once = norm(raw).expect("valid");
            assert_eq!(norm(&once).as_deref(), Ok(once.as_str()), "{raw}");
        }
        let long_s = NormalizedPath::parse("/api/v1/licen\u{17f}e").expect("valid");
        assert_eq!(long_s.match_segments(), ["API", "V1", "LICENSE"]);
    }

    #[test]
    fn already_normal_paths_are_kept_as_they_are() {
        for raw in [
            "/",
            "/api/v1/policies",
            "/api/v1/policies/",
            "/a.b/..c/.d",
            "/a b",
        ] {
            assert!(is_already_normal(raw), "{raw}");
            assert_eq!(norm(raw).as_deref(), Ok(raw));
        }
        for raw in [
            "//",
            "/a//b",
            "/./a",
            "/a/.",
            "/a/..",
            "/a/%41",
            "/caf\u{e9}",
            "/a\\b",
            "/a\u{7f}",
        ] {
            assert!(!is_already_normal(raw), "{raw}");
        }
    }

    #[test]
    fn segment_keys_compare_as_their_match_keys_do() {
        let segments = [
            "api",
            "API",
            "Api",
            "v1",
            "license",
            "licen%C5%BFe",
            "licen\u{17f}e",
            "caf%C3%A9",
            "CAF%C3%89",
            "%6Cicense",
            "",
            "a-b_c.d~",
            "STRASSE",
            "stra%C3%9Fe",
            "x%2Dy",
        ];
        for literal in segments {
            let literal = match_key(literal);
            for segment in segments {
                assert_eq!(
                    SegmentKey::new(segment).matches(&literal),
                    match_key(segment) == literal,
                    "{segment} against {literal}"
                );
            }
        }
        assert!(SegmentKey::new("license").matches("LICENSE"));
        assert!(SegmentKey::new("licen%C5%BFe").matches("LICENSE"));
        assert!(!SegmentKey::new("licence").matches("LICENSE"));
    }

    #[test]
    fn match_segments_fold_case_and_decode() {
        let p = NormalizedPath::parse("/API/v1/licen%C5%BFe").expect("valid");
        assert_eq!(p.match_segments(), ["API", "V1", "LICENSE"]);
    }
}
