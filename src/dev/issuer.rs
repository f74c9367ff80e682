//! An embedded authorization server that behaves like an Okta custom authorization server,
//! for `halo-gateway dev` and the tests. DEVELOPMENT ONLY: its keys live in memory and its
//! clients are printed at start.
//!
//! Under `{issuer}` = `http://127.0.0.1:PORT/oauth2/default`:
//! - `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server`
//! - `GET /v1/keys`: RSA-2048 JWKS (`kid`, `use: sig`, `alg: RS256`), with `ETag`
//!   (304 on `If-None-Match`) and optional `Cache-Control: max-age`
//! - `POST /v1/token`: client-credentials; the client authenticates with HTTP Basic, form
//!   fields or a `private_key_jwt` assertion (see [`super::client_auth`]); grants the requested
//!   scopes out of [`IssuerOptions::scopes`] into `scp` (an array, as Okta does), adds a
//!   client's `role` and `groups` claims; errors per RFC 6749 §5.2 as Okta words them; with
//!   a `DPoP` proof, Okta's nonce dance (400
//!   `use_dpop_nonce` + `DPoP-Nonce`, then a `token_type: DPoP` token with `cnf.jkt`)
//! - `POST /dev/rotate-keys`: a new signing key (the previous one stays published, as Okta
//!   does, unless `?retire_old=true`)
//!
//! Tests also mint tokens from explicit claims, inject JWKS faults (see [`JwksFault`]) and
//! token-endpoint refusals (see [`TokenFault`]), and read the last token request back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::client_auth::{Authenticated, ClientRegistry, KeyClient};
use super::dpop::ProofOutcome;

/// The scope Halo's API clients ask for.
pub const HALO_SCOPE: &str = "halo.api";
/// A second scope, for trying `RequiredScopes`, per-rule `Scopes` and scope role mappings.
pub const HALO_ADMIN_SCOPE: &str = "halo.admin";
/// The scopes the issuer defines unless told otherwise ([`IssuerOptions::scopes`]).
pub const SUPPORTED_SCOPES: &[&str] = &[HALO_SCOPE, HALO_ADMIN_SCOPE];
/// The groups of the dev client that shows a group mapped to a role.
pub const DEV_GROUPS: &[&str] = &["Halo Admins", "Everyone"];
/// Path of the authorization server under the listener, as Okta's `default` server.
pub const ISSUER_PATH: &str = "/oauth2/default";

/// An OAuth client of the embedded issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClient {
    pub id: String,
    pub secret: String,
    /// Put in the token's `role` claim when set.
    pub role: Option<String>,
    /// Put in the token's `groups` claim when not empty (an Okta groups claim).
    pub groups: Vec<String>,
}

impl DevClient {
    /// A client with a generated id and secret.
    pub fn generate(role: Option<&str>) -> Self {
        Self {
            id: format!("0oa{}", random_token(17)),
            secret: random_token(40),
            role: role.map(str::to_owned),
            groups: Vec::new(),
        }
    }

    /// The same client with a `groups` claim in its tokens.
    pub fn with_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }
}

/// Faults the JWKS endpoint can be told to produce (tests of the key cache).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum JwksFault {
    #[default]
    None,
    /// Answer with this status and a short body.
    Status(u16),
    /// An HTML error page with status 200.
    Html,
    /// A 200 body of this many bytes of JSON-looking padding.
    Oversized(usize),
    /// Redirect to itself forever.
    RedirectLoop,
    /// Redirect to this URL.
    Redirect(String),
    /// `{"keys": []}`.
    EmptySet,
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Answer with this status (429 or 503) and this `Retry-After` value.
    RateLimited { status: u16, retry_after: String },
}

/// Refusals the token endpoint can be told to give after the client authenticated, as Okta
/// gives them for an app set up in a way Halo cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFault {
    #[default]
    None,
    /// The app requires DPoP and the request has no proof: 400 `invalid_dpop_proof`.
    DpopProofMissing,
    /// The app requires DPoP and asks for a nonce: 400 `use_dpop_nonce` with `DPoP-Nonce`.
    DpopNonce,
    /// The app requires DPoP and the token is DPoP-bound: `token_type: DPoP`.
    DpopBoundToken,
    /// The client credentials grant is not enabled on the app: 400 `unauthorized_client`.
    GrantNotEnabled,
    /// No access policy rule lets the client in: 400 `access_denied`.
    PolicyDenied,
}

/// A token request as the issuer received it (tests check what the client sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedTokenRequest {
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

impl RecordedTokenRequest {
    /// The value of form field `name`, if sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the issuer is set up.
#[derive(Debug, Clone)]
pub struct IssuerOptions {
    /// `aud` of issued tokens.
    pub audience: String,
    pub clients: Vec<DevClient>,
    /// Clients that authenticate with `private_key_jwt`.
    pub key_clients: Vec<KeyClient>,
    /// Scopes defined on the authorization server.
    pub scopes: Vec<String>,
    pub token_lifetime: Duration,
    /// `Cache-Control: max-age` on the JWKS.
    pub jwks_max_age: Option<Duration>,
    /// Serve `/.well-known/openid-configuration` (Okta does; off tests the fallback).
    pub openid_configuration: bool,
    /// Advertise this `jwks_uri` instead of `{issuer}/v1/keys` (tests of off-host key sets).
    pub jwks_uri: Option<String>,
}

impl Default for IssuerOptions {
    fn default() -> Self {
        Self {
            audience: "api://halo".into(),
            clients: vec![
                DevClient::generate(Some("Admin")),
                DevClient::generate(None),
            ],
            key_clients: Vec::new(),
            scopes: SUPPORTED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            token_lifetime: Duration::from_secs(3600),
            jwks_max_age: None,
            openid_configuration: true,
            jwks_uri: None,
        }
    }
}

struct SigningKey {
    kid: String,
    pair: KeyPair,
    jwk: Value,
}

impl SigningKey {
    fn generate() -> Result<Self, String> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| "RSA key generation failed".to_owned())?;
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let kid = random_token(22);
        let jwk = json!({
            "kty": "RSA",
            "alg": "RS256",
            "kid": kid,
            "use": "sig",
            "e": URL_SAFE_NO_PAD.encode(&public.e),
            "n": URL_SAFE_NO_PAD.encode(&public.n),
        });
        Ok(Self { kid, pair, jwk })
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        // Signing with a key we just generated cannot fail.
        let _ = self.pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message,
            &mut sig,
        );
        sig
    }
}

struct IssuerState {
    issuer: String,
    options: IssuerOptions,
    /// DPoP proofs at the token endpoint, with Okta's nonce dance.
    dpop: super::dpop::TokenEndpointDpop,
    /// Published keys; the last one signs.
    keys: RwLock<Vec<Arc<SigningKey>>>,
    /// Extra raw JWKs published after the real ones (tests: odd or hostile keys).
    extra_jwks: RwLock<Vec<Value>>,
    fault: RwLock<JwksFault>,
    /// Fault of the metadata documents (only status-like faults and delays apply there).
    metadata_fault: RwLock<JwksFault>,
    metadata_fetches: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_not_modified: AtomicU64,
    tokens_issued: AtomicU64,
    token_requests: AtomicU64,
    token_fault: RwLock<TokenFault>,
    last_token_request: RwLock<Option<RecordedTokenRequest>>,
    /// Assertion `jti`s seen, with their `exp` (forgotten once expired).
    used_jtis: Mutex<HashMap<String, u64>>,
}

/// A running embedded issuer.
pub struct Issuer {
    state: Arc<IssuerState>,
    addr: SocketAddr,
    server: RwLock<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Binds `addr` (port 0 picks one) and serves.
    pub async fn start(addr: SocketAddr, options: IssuerOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let key = SigningKey::generate().map_err(std::io::Error::other)?;
        let state = Arc::new(IssuerState {
            issuer: format!("http://{addr}{ISSUER_PATH}"),
            options,
            keys: RwLock::new(vec![Arc::new(key)]),
            extra_jwks: RwLock::new(Vec::new()),
            fault: RwLock::new(JwksFault::None),
            metadata_fault: RwLock::new(JwksFault::None),
            metadata_fetches: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            jwks_not_modified: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            token_fault: RwLock::new(TokenFault::None),
            dpop: super::dpop::TokenEndpointDpop::new(),
            last_token_request: RwLock::new(None),
            used_jtis: Mutex::new(HashMap::new()),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(Self {
            state,
            addr,
            server: RwLock::new(Some(server)),
        })
    }

    /// The issuer URL (`iss`, and the gateway's Authority).
    pub fn url(&self) -> &str {
        &self.state.issuer
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn audience(&self) -> &str {
        &self.state.options.audience
    }

    pub fn clients(&self) -> &[DevClient] {
        &self.state.options.clients
    }

    /// Metadata documents served so far.
    pub fn metadata_fetches(&self) -> u64 {
        self.state.metadata_fetches.load(Ordering::SeqCst)
    }

    /// JWKS requests served so far (including 304s and faults).
    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// JWKS requests answered `304 Not Modified`.
    pub fn jwks_not_modified(&self) -> u64 {
        self.state.jwks_not_modified.load(Ordering::SeqCst)
    }

    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/token` so far, answered or refused.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The most recent request to `/v1/token`.
    pub fn last_token_request(&self) -> Option<RecordedTokenRequest> {
        read(&self.state.last_token_request).clone()
    }

    /// The token endpoint URL (`aud` of client assertions).
    pub fn token_endpoint(&self) -> String {
        format!("{}/v1/token", self.state.issuer)
    }

    pub fn key_clients(&self) -> &[KeyClient] {
        &self.state.options.key_clients
    }

    pub fn set_token_fault(&self, fault: TokenFault) {
        *write(&self.state.token_fault) = fault;
    }

    /// The current signing key's id.
    pub fn current_kid(&self) -> String {
        read(&self.state.keys)
            .last()
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// Publishes a new signing key; `retire_old` removes the previous ones from the JWKS.
    pub fn rotate(&self, retire_old: bool) -> String {
        rotate(&self.state, retire_old)
    }

    /// Adds raw JWKs to the published set.
    pub fn publish_extra_jwks(&self, jwks: Vec<Value>) {
        *write(&self.state.extra_jwks) = jwks;
    }

    pub fn set_fault(&self, fault: JwksFault) {
        *write(&self.state.fault) = fault;
    }

    /// Makes the metadata documents fail (`Status`, `RateLimited`, `Delay`; other faults are
    /// JWKS-only and ignored here).
    pub fn set_metadata_fault(&self, fault: JwksFault) {
        *write(&self.state.metadata_fault) = fault;
    }

    /// Stops answering: the port is closed (connections refused) until [`Issuer::resume`].
    pub fn stop(&self) {
        if let Some(server) = write(&self.server).take() {
            server.abort();
        }
    }

    /// Starts answering again on the same port.
    pub async fn resume(&self) -> std::io::Result<()> {
        self.stop();
        let listener = TcpListener::bind(self.addr).await?;
        *write(&self.server) = Some(tokio::spawn(serve(listener, self.state.clone())));
        Ok(())
    }

    /// Signs `claims` with the current key and the header Okta uses (`alg: RS256`, `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        let kid = self.current_kid();
        self.sign_with_header(&json!({ "alg": "RS256", "kid": kid }), claims)
    }

    /// Signs arbitrary header and claims JSON with the current key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Signs raw header and payload bytes (tests of duplicate members and odd JSON).
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let key = read(&self.state.keys).last().cloned();
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = key.map(|k| k.sign(message.as_bytes())).unwrap_or_default();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The claims Okta puts in a client-credentials access token.
    pub fn claims_for(&self, client: &DevClient, scopes: &[&str]) -> Value {
        let client = Authenticated {
            id: client.id.clone(),
            role: client.role.clone(),
            groups: client.groups.clone(),
        };
        okta_claims(&self.state, &client, scopes)
    }

    /// A valid access token for `client`, as `/v1/token` would issue it.
    pub fn token_for(&self, client: &DevClient) -> String {
        self.sign(&self.claims_for(client, &[HALO_SCOPE]))
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn rotate(state: &IssuerState, retire_old: bool) -> String {
    let key = match SigningKey::generate() {
        Ok(key) => Arc::new(key),
        Err(_) => return String::new(),
    };
    let kid = key.kid.clone();
    let mut keys = write(&state.keys);
    if retire_old {
        keys.clear();
    }
    keys.push(key);
    // Okta publishes at most the current and the next/previous key.
    while keys.len() > 2 {
        keys.remove(0);
    }
    kid
}

async fn serve(listener: TcpListener, state: Arc<IssuerState>) {
    let issuer_routes = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/v1/keys", get(keys))
        .route("/v1/token", post(token))
        .route("/dev/rotate-keys", post(rotate_keys));
    let app = Router::new()
        .nest(ISSUER_PATH, issuer_routes)
        .with_state(state);
    let _ = axum::serve(listener, app).await;
}

async fn openid_configuration(State(state): State<Arc<IssuerState>>) -> Response {
    if !state.options.openid_configuration {
        state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "errorCode": "E0000007", "errorSummary": "Not found" })),
        )
            .into_response();
    }
    metadata(State(state)).await.into_response()
}

async fn metadata(State(state): State<Arc<IssuerState>>) -> Response {
    state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = metadata_fault(&state).await {
        return response;
    }
    let issuer = &state.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "jwks_uri": state.options.jwks_uri.clone().unwrap_or_else(|| format!("{issuer}/v1/keys")),
        "response_types_supported": ["code", "token"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": state.options.scopes,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"],
        "claims_supported": ["ver", "jti", "iss", "aud", "iat", "exp", "cid", "scp", "sub", "role", "groups"],
        "code_challenge_methods_supported": ["S256"],
        "halo_gateway_dev": "embedded development issuer; not for production",
    }))
    .into_response()
}

/// The injected metadata fault's answer, if it replaces the document.
async fn metadata_fault(state: &IssuerState) -> Option<Response> {
    let fault = read(&state.metadata_fault).clone();
    match fault {
        JwksFault::Status(_) | JwksFault::RateLimited { .. } => status_fault(&fault),
        JwksFault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        _ => None,
    }
}

/// The answer for a status-like fault.
fn status_fault(fault: &JwksFault) -> Option<Response> {
    let status =
        |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match fault {
        JwksFault::Status(code) => Some((status(*code), "injected failure").into_response()),
        JwksFault::RateLimited {
            status: code,
            retry_after,
        } => Some(
            (
                status(*code),
                [(header::RETRY_AFTER, retry_after.clone())],
                Json(json!({ "errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests." })),
            )
                .into_response(),
        ),
        _ => None,
    }
}

fn jwks_document(state: &IssuerState) -> Value {
    let mut keys: Vec<Value> = read(&state.keys).iter().map(|k| k.jwk.clone()).collect();
    keys.extend(read(&state.extra_jwks).iter().cloned());
    json!({ "keys": keys })
}

async fn keys(State(state): State<Arc<IssuerState>>, headers: HeaderMap) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let fault = read(&state.fault).clone();
    match fault {
        JwksFault::None => {}
        JwksFault::Status(_) | JwksFault::RateLimited { .. } => {
            if let Some(response) = status_fault(&fault) {
                return response;
            }
        }
        JwksFault::Html => {
            return (
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>Service Unavailable</h1></body></html>",
            )
                .into_response();
        }
        JwksFault::Oversized(size) => {
            let mut body = String::with_capacity(size);
            body.push_str("{\"keys\":[],\"padding\":\"");
            body.extend(std::iter::repeat_n('x', size.saturating_sub(30)));
            body.push_str("\"}");
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        JwksFault::RedirectLoop => {
            let location = format!("{}/v1/keys", state.issuer);
            return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
        }
        JwksFault::Redirect(location) => {
            return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
        }
        JwksFault::EmptySet => return Json(json!({ "keys": [] })).into_response(),
        JwksFault::Delay(delay) => tokio::time::sleep(delay).await,
    }
    let body = jwks_document(&state).to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]));
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        state.jwks_not_modified.fetch_add(1, Ordering::SeqCst);
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if let Some(age) = state.options.jwks_max_age
        && let Ok(value) =
            HeaderValue::from_str(&format!("max-age={}, must-revalidate", age.as_secs()))
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"halo-gateway dev issuer\""),
        );
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn token(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    *write(&state.last_token_request) = Some(RecordedTokenRequest {
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form: form.clone(),
    });
    // RFC 6749 §3.2: parameters must not be repeated.
    if let Some((name, _)) = form
        .iter()
        .find(|(name, _)| form.iter().filter(|(n, _)| n == name).count() > 1)
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("The '{name}' parameter was provided more than once."),
        );
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let registry = ClientRegistry {
        secret_clients: &state.options.clients,
        key_clients: &state.options.key_clients,
        token_endpoint: &format!("{}/v1/token", state.issuer),
        used_jtis: &state.used_jtis,
        now: unix_now(),
    };
    let client = match registry.authenticate(&headers, &form) {
        Ok(client) => client,
        Err(refusal) => return oauth_error(refusal.status, refusal.error, &refusal.description),
    };
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The 'grant_type' parameter is required.",
            );
        }
    }
    let mut requested: Vec<&str> = Vec::new();
    for scope in field("scope").unwrap_or("").split(' ') {
        if !scope.is_empty() && !requested.contains(&scope) {
            requested.push(scope);
        }
    }
    if requested.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        );
    }
    if let Some(bad) = requested.iter().find(|s| {
        [
            "openid",
            "profile",
            "email",
            "address",
            "phone",
            "offline_access",
        ]
        .contains(s)
    }) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!(
                "The following scopes are not allowed for the client credentials flow: '{bad}'."
            ),
        );
    }
    if let Some(unknown) = requested
        .iter()
        .find(|s| !state.options.scopes.iter().any(|known| known == *s))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!(
                "One or more scopes are not configured for the authorization server resource: '{unknown}'."
            ),
        );
    }
    let fault = *read(&state.token_fault);
    if let Some(refusal) = fault_refusal(fault) {
        return refusal;
    }
    let bound_to = match state
        .dpop
        .check(&headers, &format!("{}/v1/token", state.issuer))
    {
        ProofOutcome::None => None,
        ProofOutcome::Bound(jkt) => Some(jkt),
        ProofOutcome::NeedsNonce(nonce) => {
            let mut response = oauth_error(
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof.",
            );
            if let Ok(value) = HeaderValue::from_str(&nonce) {
                response.headers_mut().insert("dpop-nonce", value);
            }
            return response;
        }
        ProofOutcome::Invalid(description) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", &description);
        }
    };
    state.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let mut claims = okta_claims(&state, &client, &requested);
    if let Some(jkt) = &bound_to {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    let key = read(&state.keys).last().cloned();
    let Some(key) = key else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "no signing key",
        );
    };
    let header = json!({ "kid": key.kid, "alg": "RS256" });
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let access_token = format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()))
    );
    let token_type = if fault == TokenFault::DpopBoundToken || bound_to.is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    let mut response = Json(json!({
        "token_type": token_type,
        "expires_in": state.options.token_lifetime.as_secs(),
        "access_token": access_token,
        "scope": requested.join(" "),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The answer Okta gives for `fault`, if it refuses.
fn fault_refusal(fault: TokenFault) -> Option<Response> {
    let (error, description) = match fault {
        TokenFault::None | TokenFault::DpopBoundToken => return None,
        TokenFault::DpopProofMissing => (
            "invalid_dpop_proof",
            "The DPoP proof JWT header is missing.",
        ),
        TokenFault::DpopNonce => (
            "use_dpop_nonce",
            "Authorization server requires nonce in DPoP proof.",
        ),
        TokenFault::GrantNotEnabled => (
            "unauthorized_client",
            "The client is not authorized to use the provided grant type. Configured grant types: [authorization_code].",
        ),
        TokenFault::PolicyDenied => (
            "access_denied",
            "Policy evaluation failed for this request, please check the policy configurations.",
        ),
    };
    let mut response = oauth_error(StatusCode::BAD_REQUEST, error, description);
    if fault == TokenFault::DpopNonce {
        response.headers_mut().insert(
            "dpop-nonce",
            HeaderValue::from_static("dev-nonce-not-for-use"),
        );
    }
    Some(response)
}

#[derive(Debug, Deserialize)]
struct RotateQuery {
    #[serde(default)]
    retire_old: bool,
}

async fn rotate_keys(
    State(state): State<Arc<IssuerState>>,
    Query(query): Query<RotateQuery>,
) -> Json<Value> {
    let kid = rotate(&state, query.retire_old);
    let published: Vec<String> = read(&state.keys).iter().map(|k| k.kid.clone()).collect();
    Json(
        json!({ "signing_kid": kid, "published_kids": published, "retired_old": query.retire_old }),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn okta_claims(state: &IssuerState, client: &Authenticated, scopes: &[&str]) -> Value {
    let now = unix_now();
    let mut claims = json!({
        "ver": 1,
        "jti": format!("AT.{}", random_token(43)),
        "iss": state.issuer,
        "aud": state.options.audience,
        "iat": now,
        "exp": now + state.options.token_lifetime.as_secs(),
        "cid": client.id,
        "scp": scopes,
        "sub": client.id,
    });
    if let Some(map) = claims.as_object_mut() {
        if let Some(role) = &client.role {
            map.insert("role".into(), Value::String(role.clone()));
        }
        if !client.groups.is_empty() {
            map.insert("groups".into(), json!(client.groups));
        }
    }
    claims
}

/// URL-safe random text of `len` characters.
pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
