//! Making untrusted text safe to print: in a header value, a JSON description or a log line.
//! Tokens, claims and paths come from clients, so nothing of theirs is echoed unbounded or
//! with bytes a header or terminal would interpret.

/// Longest description kept by [`sanitize`].
const MAX_DESCRIPTION: usize = 200;
/// Longest claim value kept by [`quote`].
const MAX_QUOTED: usize = 80;
/// Longest text kept by [`printable`].
const MAX_PRINTABLE: usize = 64;

/// Printable ASCII without `"` or `\` (RFC 6750 §3: error_description is `%x20-21 / %x23-5B
/// / %x5D-7E`), at most 200 characters.
pub fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                c
            } else if c == '"' {
                '\''
            } else {
                '?'
            }
        })
        .take(MAX_DESCRIPTION)
        .collect();
    if text.chars().count() > MAX_DESCRIPTION {
        out.push_str("...");
    }
    out
}

/// A claim value quoted for a description: bounded and printable.
pub fn quote(value: &str) -> String {
    let short: String = value.chars().take(MAX_QUOTED).collect();
    format!("'{}'", sanitize(&short))
}

/// A number of seconds for a description, bounded like [`quote`]: whole seconds, or
/// scientific notation beyond 15 digits (a claim such as `exp: 1e300` must not echo 300
/// digits).
pub fn seconds(value: f64) -> String {
    if value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.3e}")
    }
}

/// Text safe to log (a `kid`, a `kty`): printable ASCII only, bounded.
pub fn printable(text: &str) -> String {
    text.chars()
        .take(MAX_PRINTABLE)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_numbers_stay_short() {
        assert_eq!(seconds(42.4), "42");
        assert_eq!(seconds(-3600.0), "-3600");
        assert_eq!(seconds(1e300), "1.000e300");
        assert_eq!(seconds(-1.5e20), "-1.500e20");
        assert!(seconds(f64::MAX).len() < 20);
    }

    #[test]
    fn sanitize_keeps_rfc6750_description_characters_only() {
        assert_eq!(sanitize("a \"b\" \\c\u{e9}\n"), "a 'b' ?c??");
        let long = "x".repeat(MAX_DESCRIPTION + 1);
        assert_eq!(
            sanitize(&long),
            format!("{}...", "x".repeat(MAX_DESCRIPTION))
        );
    }

    #[test]
    fn quote_bounds_and_quotes_a_claim() {
        assert_eq!(quote("api://halo"), "'api://halo'");
        assert_eq!(quote(&"y".repeat(100)).len(), MAX_QUOTED + 2);
    }

    #[test]
    fn printable_replaces_control_and_non_ascii() {
        assert_eq!(printable("k\u{1b}[31mid\u{e9}"), "k?[31mid?");
        assert_eq!(printable(&"z".repeat(100)).len(), MAX_PRINTABLE);
    }
}
