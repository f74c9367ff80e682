//! The two HTTP exchanges: finding the token endpoint in the issuer's metadata (RFC 8414,
//! then OpenID Connect Discovery) and the client-credentials request (RFC 6749 §4.4).

use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use super::client_auth::{AuthMethod, Authentication};
use super::error::{TokenError, fix_for, is_dpop_error};
use super::private_key::SigningKey;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Larger answers are not a metadata document or a token response.
const MAX_BODY: usize = 256 * 1024;

/// The HTTP client of `halo-gateway token`: no redirects (credentials go to the URL named and
/// nowhere else), proxies from `HTTPS_PROXY`/`NO_PROXY` as command-line tools do.
pub fn http_client() -> Result<reqwest::Client, TokenError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("halo-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TokenError::usage(format!("cannot build the HTTP client: {e}")))
}

/// The `token_endpoint` from `{issuer}/.well-known/oauth-authorization-server`, or from
/// `{issuer}/.well-known/openid-configuration` when the first is missing; the document's
/// `issuer` must be the one asked for (RFC 8414 §3.3).
pub async fn discover_token_endpoint(
    http: &reqwest::Client,
    issuer: &Url,
) -> Result<Url, TokenError> {
    let mut missing = Vec::new();
    for document in ["oauth-authorization-server", "openid-configuration"] {
        let url = format!("{issuer}/.well-known/{document}");
        let (status, body) = get(http, &url).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            missing.push(url);
            continue;
        }
        if status != reqwest::StatusCode::OK {
            return Err(TokenError::unreachable(
                url,
                format!("answered HTTP {status}"),
            ));
        }
        let metadata: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|_| TokenError::unreachable(&url, "the metadata is not a JSON object"))?;
        let named = metadata.get("issuer").and_then(Value::as_str).unwrap_or("");
        if named.trim_end_matches('/') != issuer.as_str() {
            return Err(TokenError::usage(format!(
                "--issuer / OKTA_ISSUER_URI is {issuer} but {url} names issuer '{named}'; use the issuer URL exactly as the authorization server states it"
            )));
        }
        let endpoint = metadata
            .get("token_endpoint")
            .and_then(Value::as_str)
            .and_then(|t| Url::parse(t).ok())
            .ok_or_else(|| {
                TokenError::unreachable(&url, "the metadata has no token_endpoint URL")
            })?;
        return Ok(endpoint);
    }
    Err(TokenError::unreachable(
        missing.join(" and "),
        "answered 404: is the issuer URL right? (an Okta custom authorization server looks like https://ORG.okta.com/oauth2/default)",
    ))
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug)]
pub struct TokenResponse {
    /// The whole response, for `--format json`.
    pub body: Map<String, Value>,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

/// Posts a client-credentials request to `endpoint` with `auth` and `scope`.
pub async fn request_token(
    http: &reqwest::Client,
    endpoint: &Url,
    auth: Authentication,
    method: AuthMethod,
    scope: &str,
    dpop_key: Option<&SigningKey>,
) -> Result<TokenResponse, TokenError> {
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "client_credentials".to_owned()),
        ("scope", scope.to_owned()),
    ];
    form.extend(auth.form);
    let body = form
        .iter()
        .fold(
            url::form_urlencoded::Serializer::new(String::new()),
            |mut s, (k, v)| {
                s.append_pair(k, v);
                s
            },
        )
        .finish();
    let url = endpoint.as_str();
    let mut nonce: Option<String> = None;
    // With a DPoP key: Okta first answers 400 use_dpop_nonce with a DPoP-Nonce (RFC 9449
    // §8); the second request carries that nonce.
    loop {
        let mut request = build_request(http, endpoint, &body, auth.authorization.as_deref())?;
        if let Some(key) = dpop_key {
            let proof = super::dpop::proof(key, "POST", url, None, nonce.as_deref())
                .map_err(|e| TokenError::usage(format!("cannot sign the DPoP proof: {e}")))?;
            request = request.header("dpop", proof);
        }
        let response = request.send().await.map_err(|e| unreachable(url, &e))?;
        let status = response.status();
        let dpop_nonce = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_limited(response)
            .await
            .map_err(|e| unreachable(url, &e))?;
        let json: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let wants_nonce = json
                .as_ref()
                .and_then(|j| j.get("error"))
                .and_then(Value::as_str)
                == Some("use_dpop_nonce");
            if let (Some(_), true, None, Some(fresh)) = (dpop_key, wants_nonce, &nonce, &dpop_nonce)
            {
                nonce = Some(fresh.clone());
                continue;
            }
            if dpop_key.is_some() {
                return Err(refusal(url, status, json, false, method));
            }
            return Err(refusal(url, status, json, dpop_nonce.is_some(), method));
        }
        let Some(body) = json else {
            return Err(TokenError::unreachable(
                url,
                "the token response is not a JSON object",
            ));
        };
        return parse_success(url, body, dpop_key.is_some());
    }
}

/// The POST with the form body and the client's `Authorization`, if any.
fn build_request(
    http: &reqwest::Client,
    endpoint: &Url,
    body: &str,
    authorization: Option<&str>,
) -> Result<reqwest::RequestBuilder, TokenError> {
    let mut request = http
        .post(endpoint.clone())
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body.to_owned());
    if let Some(value) = authorization {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| TokenError::usage("the client id or secret cannot go in a header"))?;
        value.set_sensitive(true);
        request = request.header(AUTHORIZATION, value);
    }
    Ok(request)
}

/// The token response; a `DPoP` token is an error unless a DPoP key was used.
fn parse_success(
    url: &str,
    body: Map<String, Value>,
    dpop: bool,
) -> Result<TokenResponse, TokenError> {
    let token_type = body
        .get("token_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let is_dpop = token_type.eq_ignore_ascii_case("DPoP");
    if is_dpop && !dpop {
        return Err(TokenError::DpopRequired {
            url: url.to_owned(),
            evidence: "it issued a DPoP-bound token (token_type DPoP)".into(),
        });
    }
    if !is_dpop && !token_type.eq_ignore_ascii_case("Bearer") {
        return Err(TokenError::unreachable(
            url,
            format!("the token_type is '{token_type}', not Bearer"),
        ));
    }
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // RFC 6750 §2.1 b64token: the only characters a bearer token can have.
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if access_token.is_empty() || !access_token.bytes().all(b64token) {
        return Err(TokenError::unreachable(
            url,
            "the response has no usable access_token",
        ));
    }
    let expires_in = body.get("expires_in").and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    });
    let scope = body.get("scope").and_then(Value::as_str).map(str::to_owned);
    Ok(TokenResponse {
        access_token,
        token_type: if is_dpop { "DPoP" } else { "Bearer" }.into(),
        expires_in,
        scope,
        body,
    })
}

/// An error answer: an OAuth error (RFC 6749 §5.2) is a refusal (exit 3), DPoP demands
/// (RFC 9449 §5, §8) get their own explanation, anything else means the endpoint is wrong or
/// down (exit 1).
fn refusal(
    url: &str,
    status: reqwest::StatusCode,
    json: Option<Map<String, Value>>,
    dpop_nonce: bool,
    method: AuthMethod,
) -> TokenError {
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let Some(error) = field("error") else {
        return TokenError::unreachable(
            url,
            format!("answered HTTP {status} without an OAuth error"),
        );
    };
    let description = field("error_description");
    if is_dpop_error(&error) || dpop_nonce {
        let evidence = match &description {
            Some(d) => format!("{error}: {d}"),
            None => error,
        };
        return TokenError::DpopRequired {
            url: url.to_owned(),
            evidence,
        };
    }
    TokenError::Refused {
        url: url.to_owned(),
        fix: fix_for(
            &error,
            description.as_deref(),
            method == AuthMethod::PrivateKeyJwt,
        ),
        error,
        description,
    }
}

async fn get(
    http: &reqwest::Client,
    url: &str,
) -> Result<(reqwest::StatusCode, Vec<u8>), TokenError> {
    let response = http
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(url, &e))?;
    let status = response.status();
    let body = read_limited(response)
        .await
        .map_err(|e| unreachable(url, &e))?;
    Ok((status, body))
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error(transparent)]
    Read(reqwest::Error),
    #[error("the answer is larger than {MAX_BODY} bytes")]
    TooLarge,
}

fn unreachable(url: &str, error: &dyn std::error::Error) -> TokenError {
    TokenError::unreachable(
        url,
        format!("cannot be reached: {}", crate::error::error_chain(error)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Option<Map<String, Value>> {
        value.as_object().cloned()
    }

    #[test]
    fn each_dpop_demand_is_recognised() {
        let cases = [
            (
                json!({"error": "invalid_dpop_proof", "error_description": "The DPoP proof JWT header is missing."}),
                false,
            ),
            (
                json!({"error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof."}),
                true,
            ),
        ];
        for (body, nonce) in cases {
            let error = refusal(
                "http://t",
                reqwest::StatusCode::BAD_REQUEST,
                map(body),
                nonce,
                AuthMethod::ClientSecretBasic,
            );
            assert!(
                matches!(error, TokenError::DpopRequired { .. }),
                "{error:?}"
            );
            assert_eq!(error.code(), 3);
        }
        let issued = parse_success(
            "http://t",
            map(json!({"token_type": "DPoP", "access_token": "abc", "expires_in": 3600})).unwrap(),
            false,
        )
        .unwrap_err();
        assert!(
            matches!(issued, TokenError::DpopRequired { .. }),
            "{issued:?}"
        );
    }

    #[test]
    fn an_error_without_oauth_fields_means_the_endpoint_is_wrong() {
        let error = refusal(
            "http://t/v1/token",
            reqwest::StatusCode::NOT_FOUND,
            None,
            false,
            AuthMethod::ClientSecretBasic,
        );
        assert_eq!(error.code(), 1);
        assert!(error.to_string().contains("http://t/v1/token"), "{error}");
    }

    #[test]
    fn a_response_without_a_proper_bearer_token_is_unusable() {
        for body in [
            json!({"token_type": "Bearer"}),
            json!({"token_type": "Bearer", "access_token": "a b"}),
            json!({"token_type": "mac", "access_token": "abc"}),
        ] {
            let error = parse_success("http://t", map(body.clone()).unwrap(), false).unwrap_err();
            assert_eq!(error.code(), 1, "{body}");
        }
        let ok = parse_success(
            "http://t",
            map(json!({"token_type": "bearer", "access_token": "a.b-c_d", "expires_in": "3600"}))
                .unwrap(),
            false,
        )
        .unwrap();
        assert_eq!(ok.expires_in, Some(3600));
    }
}
