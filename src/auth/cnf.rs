//! What a `cnf` (confirmation) claim binds a token to (RFC 7800 §3.1), for the message that
//! refuses it: the gateway accepts plain bearer tokens only (RFC 6750), so a caller needs to
//! know which binding its authorization server added in order to turn it off.

use serde_json::Value;

use crate::http::text::quote;

/// Confirmation members and the binding each one names, most specific first.
const METHODS: &[(&str, &str)] = &[
    ("jkt", "a DPoP key (jkt, RFC 9449)"),
    (
        "x5t#S256",
        "a client certificate (x5t#S256, RFC 8705 mutual TLS)",
    ),
    ("jwk", "a proof-of-possession key (jwk, RFC 7800)"),
    (
        "jwe",
        "an encrypted proof-of-possession key (jwe, RFC 7800)",
    ),
    ("jku", "a proof-of-possession key set URL (jku, RFC 7800)"),
    ("kid", "a proof-of-possession key id (kid, RFC 7800)"),
];

/// "sender-constrained token (cnf): bound to ..." naming the binding method found; the DPoP
/// advice only for a DPoP binding.
pub fn refusal(cnf: &Value) -> String {
    let members = cnf.as_object();
    let known = members.and_then(|m| METHODS.iter().find(|(name, _)| m.contains_key(*name)));
    match (known, members.and_then(|m| m.keys().next())) {
        (Some(("jkt", binding)), _) => format!(
            "sender-constrained token (cnf): bound to {binding}; DPoP is not accepted, send a plain Bearer token"
        ),
        (Some((_, binding)), _) => format!(
            "sender-constrained token (cnf): bound to {binding}; only plain Bearer tokens are accepted"
        ),
        (None, Some(other)) => format!(
            "sender-constrained token (cnf): bound by the confirmation method {}; only plain Bearer tokens are accepted",
            quote(other)
        ),
        (None, None) => "sender-constrained token (cnf) without a confirmation method; only plain Bearer tokens are accepted".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_message_names_the_binding_method_found() {
        let cases = [
            (
                json!({ "jkt": "0ZcOCORZNYy" }),
                "a DPoP key (jkt, RFC 9449)",
            ),
            (
                json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
                "a client certificate (x5t#S256, RFC 8705 mutual TLS)",
            ),
            (
                json!({ "jwk": { "kty": "EC" } }),
                "a proof-of-possession key (jwk",
            ),
            (json!({ "osc": "x" }), "confirmation method 'osc'"),
            (json!({}), "without a confirmation method"),
            (json!("jkt"), "without a confirmation method"),
        ];
        for (cnf, named) in cases {
            let message = refusal(&cnf);
            assert!(
                message.starts_with("sender-constrained token (cnf)"),
                "{message}"
            );
            assert!(message.contains(named), "{cnf}: {message}");
            assert_eq!(
                message.contains("DPoP"),
                cnf.get("jkt").is_some(),
                "DPoP text only for jkt: {message}"
            );
        }
    }
}
