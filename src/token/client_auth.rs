//! Client authentication at the token endpoint, exactly one method per request (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post` (RFC 6749 §2.3.1) and `private_key_jwt`
//! (RFC 7523 §2.2, with the claims Okta requires).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::private_key::SigningKey;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: Okta refuses `exp` more than an hour ahead; five minutes
/// is ample for one request.
const ASSERTION_LIFETIME_SECS: u64 = 300;

/// How far `iat` is set back, so a client clock a little ahead of Okta's does not make the
/// assertion "issued in the future".
const IAT_BACKDATE_SECS: u64 = 5;

/// The `--auth-method` names, as in RFC 8414 `token_endpoint_auth_methods_supported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// A client secret; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What the client proves itself with.
#[derive(Debug)]
pub enum Credential {
    Secret(Secret),
    PrivateKey {
        key: SigningKey,
        key_id: Option<String>,
    },
}

/// The request parts that carry the client's authentication.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Authentication {
    /// `Authorization` header value, for `client_secret_basic`.
    pub authorization: Option<String>,
    /// Form fields added to the token request body.
    pub form: Vec<(&'static str, String)>,
}

/// The `Authorization: Basic` value of RFC 6749 §2.3.1: the client id and the secret are each
/// `application/x-www-form-urlencoded` (Appendix B) before being joined with `:` and
/// base64-encoded, so `+`, `%`, `:` and `/` in either survive.
pub fn basic_authorization(client_id: &str, secret: &Secret) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let joined = format!("{}:{}", encode(client_id), encode(secret.expose()));
    format!("Basic {}", STANDARD.encode(joined))
}

/// The claims of a client assertion (RFC 7523 §3): `iss` = `sub` = client id, `aud` = the
/// token endpoint URL (what Okta requires), a fresh random `jti` (Okta accepts each once).
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

impl AssertionClaims {
    pub fn new(client_id: &str, token_endpoint: &str, now: u64) -> Self {
        Self {
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            aud: token_endpoint.to_owned(),
            iat: now.saturating_sub(IAT_BACKDATE_SECS),
            exp: now + ASSERTION_LIFETIME_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// Signs a client assertion for `token_endpoint` (a JWS, RFC 7515, with `kid` when given).
pub fn client_assertion(
    client_id: &str,
    token_endpoint: &str,
    key: &SigningKey,
    key_id: Option<&str>,
) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = key_id.map(str::to_owned);
    let claims = AssertionClaims::new(client_id, token_endpoint, now);
    jsonwebtoken::encode(&header, &claims, &key.key)
        .map_err(|e| format!("cannot sign the client assertion: {e}"))
}

/// The authentication parts for one token request with `method`.
pub fn authenticate(
    method: AuthMethod,
    client_id: &str,
    credential: &Credential,
    token_endpoint: &str,
) -> Result<Authentication, String> {
    match (method, credential) {
        (AuthMethod::ClientSecretBasic, Credential::Secret(secret)) => Ok(Authentication {
            authorization: Some(basic_authorization(client_id, secret)),
            form: Vec::new(),
        }),
        (AuthMethod::ClientSecretPost, Credential::Secret(secret)) => Ok(Authentication {
            authorization: None,
            form: vec![
                ("client_id", client_id.to_owned()),
                ("client_secret", secret.expose().to_owned()),
            ],
        }),
        (AuthMethod::PrivateKeyJwt, Credential::PrivateKey { key, key_id }) => {
            let assertion = client_assertion(client_id, token_endpoint, key, key_id.as_deref())?;
            Ok(Authentication {
                authorization: None,
                form: vec![
                    ("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()),
                    ("client_assertion", assertion),
                ],
            })
        }
        (method, _) => Err(format!(
            "--auth-method {} does not fit the credential given",
            method.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_form_encodes_id_and_secret_before_base64() {
        let header = basic_authorization("client+id%:/x", &Secret::new("s+e%c:r/et y".into()));
        let encoded = header.strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "client%2Bid%25%3A%2Fx:s%2Be%25c%3Ar%2Fet+y");
    }

    #[test]
    fn plain_ids_and_secrets_are_unchanged_by_the_encoding() {
        let header = basic_authorization("0oa1b2C3", &Secret::new("Ab-_9.x~Z".into()));
        assert_eq!(
            header,
            format!("Basic {}", STANDARD.encode("0oa1b2C3:Ab-_9.x%7EZ"))
        );
    }

    #[test]
    fn assertion_claims_name_the_client_and_the_token_endpoint() {
        let url = "https://org.okta.com/oauth2/default/v1/token";
        let a = AssertionClaims::new("0oa1", url, 1_000_000);
        let b = AssertionClaims::new("0oa1", url, 1_000_000);
        assert_eq!((a.iss.as_str(), a.sub.as_str()), ("0oa1", "0oa1"));
        assert_eq!(a.aud, url);
        assert!(a.iat <= 1_000_000 && a.exp > 1_000_000 && a.exp - 1_000_000 <= 300);
        assert_ne!(a.jti, b.jti, "a fresh jti every time");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let credential = Credential::Secret(Secret::new("hunter2".into()));
        assert!(!format!("{credential:?}").contains("hunter2"));
    }

    #[test]
    fn a_method_that_does_not_fit_the_credential_is_refused() {
        let credential = Credential::Secret(Secret::new("s".into()));
        let error =
            authenticate(AuthMethod::PrivateKeyJwt, "id", &credential, "http://t").unwrap_err();
        assert!(error.contains("private_key_jwt"), "{error}");
    }
}
