//! Why `halo-gateway token` failed, its exit code, and the fix to print.
//!
//! Exit codes: 2 usage or a missing/bad setting (the message names the flag or variable), 1 the
//! issuer or token endpoint cannot be reached or answers something unusable (the message names
//! the URL), 3 the authorization server refused (its `error` and `error_description`, then the
//! fix from Halo's Okta troubleshooting table).

use std::process::ExitCode;

/// The Okta application setting that makes a client-credentials app demand DPoP proofs.
pub const OKTA_DPOP_SETTING: &str =
    "Require Demonstrating Proof of Possession (DPoP) header in token requests";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A flag, variable or local file is missing or wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The issuer or token endpoint could not be reached or gave an unusable answer (exit 1).
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The authorization server answered with an OAuth error (RFC 6749 §5.2) (exit 3).
    #[error("the authorization server at {url} refused the token request: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        url: String,
        error: String,
        description: Option<String>,
        fix: Option<String>,
    },
    /// The Okta app requires DPoP-bound tokens, which Halo's API cannot use (exit 3).
    #[error("the authorization server at {url} wants DPoP: {evidence}")]
    DpopRequired { url: String, evidence: String },
    /// `exec` could not start the command.
    #[error("cannot run {program}: {source}")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl TokenError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub fn unreachable(url: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Unreachable {
            url: url.into(),
            reason: reason.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    pub fn code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Unreachable { .. } => 1,
            Self::Refused { .. } | Self::DpopRequired { .. } => 3,
            // As shells do: 127 the command was not found, 126 it could not be executed.
            Self::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            Self::Exec { .. } => 126,
        }
    }

    /// The lines printed on stderr: `error: ...` and, where one is known, `fix: ...`.
    pub fn report(&self) -> String {
        let mut text = format!("error: {self}\n");
        match self {
            Self::Refused { fix: Some(fix), .. } => text.push_str(&format!("fix: {fix}\n")),
            Self::DpopRequired { .. } => text.push_str(&format!(
                "fix: the Okta app requires DPoP-bound tokens, which Halo's API does not accept; in the Okta Admin Console open Applications > (this app) > General > Client Credentials, clear \"{OKTA_DPOP_SETTING}\", and save\n"
            )),
            _ => {}
        }
        text
    }
}

/// The fix for an OAuth `error` code, after Halo's Okta troubleshooting table.
pub fn fix_for(error: &str, description: Option<&str>, private_key_jwt: bool) -> Option<String> {
    let description = description.unwrap_or_default();
    let fix = match error {
        "invalid_client" if private_key_jwt && description.contains("kid") => {
            "the app has several public keys: pass --key-id with the kid of the key registered for this private key"
        }
        "invalid_client" if private_key_jwt => {
            "check CLIENT_ID / --client-id, that the app's Client authentication is \"Public key / Private key\", and that the public half of --private-key is registered on the app (with --key-id naming its kid when there are several)"
        }
        "invalid_client" => {
            "wrong client secret or client id: check CLIENT_ID and CLIENT_SECRET (or --client-secret-file) against the app's Client Credentials in Okta; a rotated secret must be replaced"
        }
        "invalid_scope" => {
            "the scope is not defined on the authorization server: add it (e.g. halo.api) under Security > API > Authorization Servers > (server) > Scopes, or ask for a defined one with --scope; openid, profile and email are not allowed for client credentials"
        }
        "unauthorized_client" => {
            "the grant type is not enabled on the app: tick Client Credentials under Applications > (app) > General > Grant type, and allow it in an access policy rule of the authorization server"
        }
        "access_denied" => {
            "no access policy of the authorization server lets this client in: add a policy for the app with a rule for the Client Credentials grant and the scope (Security > API > Authorization Servers > (server) > Access Policies)"
        }
        "unsupported_grant_type" => {
            "the authorization server does not offer client credentials: use a custom authorization server (issuer https://ORG.okta.com/oauth2/default or /oauth2/ID) and enable Client Credentials on the app"
        }
        "invalid_request" if description.contains("multiple client credentials") => {
            "send one client authentication only: pick --auth-method to match the app's Client authentication setting"
        }
        _ => return None,
    };
    Some(fix.to_owned())
}

/// Whether an OAuth error means the app requires DPoP (RFC 9449 §5, §8): Okta answers a
/// request without a proof `invalid_dpop_proof`, and asks for a nonce with `use_dpop_nonce`.
pub fn is_dpop_error(error: &str) -> bool {
    matches!(error, "invalid_dpop_proof" | "use_dpop_nonce")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_whose_fault_it_was() {
        assert_eq!(TokenError::usage("x").code(), 2);
        assert_eq!(TokenError::unreachable("http://a", "refused").code(), 1);
        let refused = TokenError::Refused {
            url: "http://a".into(),
            error: "invalid_client".into(),
            description: None,
            fix: None,
        };
        assert_eq!(refused.code(), 3);
        let dpop = TokenError::DpopRequired {
            url: "http://a".into(),
            evidence: "use_dpop_nonce".into(),
        };
        assert_eq!(dpop.code(), 3);
        assert!(dpop.report().contains(OKTA_DPOP_SETTING));
    }

    #[test]
    fn each_oauth_error_has_its_fix() {
        let cases = [
            ("invalid_client", false, "wrong client secret"),
            ("invalid_client", true, "Public key / Private key"),
            (
                "invalid_scope",
                false,
                "not defined on the authorization server",
            ),
            ("unauthorized_client", false, "grant type is not enabled"),
            ("access_denied", false, "access policy"),
        ];
        for (error, jwt, phrase) in cases {
            let fix = fix_for(error, None, jwt).unwrap_or_default();
            assert!(fix.contains(phrase), "{error}: {fix}");
        }
        assert!(
            fix_for(
                "invalid_client",
                Some("The client_assertion JWT kid is invalid."),
                true
            )
            .is_some_and(|f| f.contains("--key-id"))
        );
        assert_eq!(fix_for("server_error", None, false), None);
    }
}
