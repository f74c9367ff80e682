//! How the embedded issuer authenticates a client at `/v1/token`, as Okta does: exactly one
//! method per request (RFC 6749 §2.3), `client_secret_basic` with form-urlencoded id and secret
//! (§2.3.1), `client_secret_post`, or `private_key_jwt` (RFC 7523 §3) checked the way Okta's
//! "Build a JWT for client authentication" guide states: signature by the key registered for
//! the client, `iss` = `sub` = client id, `aud` = the token endpoint URL, `exp` in the future
//! but not more than one hour ahead, each `jti` accepted once.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::issuer::{DevClient, random_token};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Okta refuses assertions that expire more than this far ahead.
const MAX_ASSERTION_AHEAD_SECS: u64 = 3600;
/// Leeway for an `iat` a little ahead of the issuer's clock.
const IAT_LEEWAY_SECS: u64 = 60;

/// A client that authenticates with `private_key_jwt`: the issuer holds its public key only.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyClient {
    pub id: String,
    /// Put in the token's `role` claim when set.
    pub role: Option<String>,
    /// The registered public key as a JWK, with its `kid`.
    pub jwk: Value,
}

impl KeyClient {
    /// A client with a new EC P-256 key; returns it and the private key (PKCS#8 PEM).
    pub fn generate(role: Option<&str>) -> Result<(Self, String), String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "EC key generation failed".to_owned())?;
        // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
        let (x, y) = pair
            .public_key()
            .as_ref()
            .get(1..65)
            .ok_or_else(|| "unexpected EC public key encoding".to_owned())?
            .split_at(32);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": random_token(16),
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        });
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| "EC key encoding failed".to_owned())?;
        Ok((Self::new(jwk, role), pem("PRIVATE KEY", pkcs8.as_ref())))
    }

    /// A client with a new RSA-2048 key; returns it and the private key (PKCS#8 PEM).
    pub fn generate_rsa(role: Option<&str>) -> Result<(Self, String), String> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| "RSA key generation failed".to_owned())?;
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwk = json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": random_token(16),
            "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
        });
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .map_err(|_| "RSA key encoding failed".to_owned())?;
        Ok((Self::new(jwk, role), pem("PRIVATE KEY", pkcs8.as_ref())))
    }

    fn new(jwk: Value, role: Option<&str>) -> Self {
        Self {
            id: format!("0oa{}", random_token(17)),
            role: role.map(str::to_owned),
            jwk,
        }
    }

    /// The `kid` of the registered key.
    pub fn kid(&self) -> &str {
        self.jwk["kid"].as_str().unwrap_or_default()
    }
}

fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

/// Who a token request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub id: String,
    pub role: Option<String>,
    /// Put in the token's `groups` claim when not empty.
    pub groups: Vec<String>,
}

/// A refused authentication: status, OAuth `error`, `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

fn invalid_client(description: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: description.into(),
    }
}

/// What the issuer needs to check a token request's client.
pub struct ClientRegistry<'a> {
    pub secret_clients: &'a [DevClient],
    pub key_clients: &'a [KeyClient],
    /// The token endpoint URL, the only `aud` Okta accepts in an assertion.
    pub token_endpoint: &'a str,
    pub used_jtis: &'a Mutex<HashMap<String, u64>>,
    pub now: u64,
}

impl ClientRegistry<'_> {
    /// Authenticates the client of a token request (`form` is its body, in order).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        form: &[(String, String)],
    ) -> Result<Authenticated, Refusal> {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let basic = basic_credentials(headers);
        let methods = [
            basic.is_some(),
            field("client_secret").is_some(),
            field("client_assertion").is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                error: "invalid_request",
                description: "Cannot supply multiple client credentials. Use one of the following: credentials in the Authorization header, credentials in the post body, or a client_assertion in the post body.".into(),
            });
        }
        if let Some(assertion) = field("client_assertion") {
            if field("client_assertion_type") != Some(JWT_BEARER) {
                return Err(invalid_client(format!(
                    "The client_assertion_type must be '{JWT_BEARER}'."
                )));
            }
            return self.check_assertion(assertion, field("client_id"));
        }
        let (id, secret) = basic
            .or_else(|| Some((field("client_id")?.to_owned(), field("client_secret")?.to_owned())))
            .ok_or_else(|| invalid_client("Client authentication failed. Either the client or the client credentials are invalid."))?;
        self.secret_clients
            .iter()
            .find(|c| c.id == id && constant_time_eq(c.secret.as_bytes(), secret.as_bytes()))
            .map(|c| Authenticated {
                id: c.id.clone(),
                role: c.role.clone(),
                groups: c.groups.clone(),
            })
            .ok_or_else(|| invalid_client("Client authentication failed. Either the client or the client credentials are invalid."))
    }

    fn check_assertion(
        &self,
        assertion: &str,
        client_id: Option<&str>,
    ) -> Result<Authenticated, Refusal> {
        let malformed = || invalid_client("The client_assertion is not a valid JWT.");
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
        let unverified: Value =
            jsonwebtoken::dangerous::insecure_decode_claims(assertion).map_err(|_| malformed())?;
        let iss = unverified["iss"].as_str().unwrap_or_default();
        let client = self
            .key_clients
            .iter()
            .find(|c| c.id == iss)
            .ok_or_else(|| invalid_client("The client_assertion token's 'iss' claim does not name a client that uses private_key_jwt."))?;
        if client_id.is_some_and(|id| id != client.id) {
            return Err(invalid_client(
                "The client_id does not match the client_assertion's 'iss' claim.",
            ));
        }
        if header.kid.as_deref().is_some_and(|kid| kid != client.kid()) {
            return Err(invalid_client("The client_assertion JWT kid is invalid."));
        }
        let allowed = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::ES256,
            Algorithm::ES384,
        ];
        if !allowed.contains(&header.alg) {
            return Err(invalid_client(
                "The client_assertion signature algorithm is not allowed.",
            ));
        }
        let key = serde_json::from_value(client.jwk.clone())
            .ok()
            .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok())
            .ok_or_else(|| invalid_client("The client's registered key is unusable."))?;
        // Signature only here; each claim is checked below with Okta's own wording.
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|_| invalid_client("The client_assertion signature is invalid."))?
            .claims;
        if claims["sub"].as_str() != Some(client.id.as_str()) {
            return Err(invalid_client(
                "The client_assertion token's 'sub' claim must be the client_id.",
            ));
        }
        let aud_ok = match &claims["aud"] {
            Value::String(aud) => aud == self.token_endpoint,
            Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(self.token_endpoint)),
            _ => false,
        };
        if !aud_ok {
            return Err(invalid_client(format!(
                "The audience [aud] claim must be the token endpoint: {}.",
                self.token_endpoint
            )));
        }
        let exp = claims["exp"].as_u64().ok_or_else(|| {
            invalid_client("The client_assertion token must contain an 'exp' claim.")
        })?;
        if exp <= self.now {
            return Err(invalid_client("The client_assertion token is expired."));
        }
        if exp > self.now + MAX_ASSERTION_AHEAD_SECS {
            return Err(invalid_client(
                "The client_assertion token has an expiration too far into the future.",
            ));
        }
        if claims["iat"]
            .as_u64()
            .is_some_and(|iat| iat > self.now + IAT_LEEWAY_SECS)
        {
            return Err(invalid_client(
                "The client_assertion token was issued in the future.",
            ));
        }
        if let Some(jti) = claims["jti"].as_str() {
            let mut used = self
                .used_jtis
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            used.retain(|_, expires| *expires > self.now);
            if used.contains_key(jti) {
                return Err(invalid_client(
                    "The client_assertion token has already been used.",
                ));
            }
            used.insert(jti.to_owned(), exp);
        }
        Ok(Authenticated {
            id: client.id.clone(),
            role: client.role.clone(),
            groups: Vec::new(),
        })
    }
}

/// The client id and secret of an `Authorization: Basic` header, each form-urldecoded as
/// RFC 6749 §2.3.1 requires.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
