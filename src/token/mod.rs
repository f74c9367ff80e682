//! `halo-gateway token`: an OAuth 2.0 client-credentials token (RFC 6749 §4.4) from an Okta
//! custom authorization server, in one command, cached.
//!
//! ```text
//! settings (flags, OKTA_ISSUER_URI, CLIENT_ID, CLIENT_SECRET)      settings.rs
//!   └► lock the cache entry, use it if fresh                       cache.rs
//!      └► token endpoint from the issuer's metadata                endpoint.rs
//!         └► client authentication (basic | post | private_key_jwt)   client_auth.rs, private_key.rs
//!            └► POST grant_type=client_credentials, write the cache, unlock
//!               └► print (token | header | json) or exec COMMAND with HALO_TOKEN   exec.rs
//! ```
//!
//! Only the output goes to stdout; progress (`--verbose`) and errors go to stderr, and the
//! token never does. Exit codes are in [`error`].

pub mod cache;
pub mod client_auth;
pub mod dpop;
pub mod endpoint;
pub mod error;
pub mod exec;
pub mod private_key;
pub mod settings;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use self::cache::{Entry, LockedEntry, TokenCache};
pub use self::error::TokenError;
use self::settings::{CacheMode, Settings};
use crate::cli::{TokenArgs, TokenSubcommand};

/// How long an invocation waits for another one fetching the same token before going on
/// without the cache; longer than one metadata plus one token request at their timeouts.
const LOCK_WAIT: Duration = Duration::from_secs(90);

/// What `--format` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// The access token alone.
    #[default]
    Token,
    /// `Authorization: Bearer <token>`.
    Header,
    /// The token response plus `expires_at` (Unix seconds).
    Json,
}

/// A token and, when it was just fetched, the whole token response.
#[derive(Debug)]
pub struct Obtained {
    pub entry: Entry,
    /// `None` when the token came from the cache.
    pub response: Option<Map<String, Value>>,
}

/// `halo-gateway token [exec]`: resolves the settings, gets the token, prints it or runs the
/// command; returns the exit code.
pub async fn run(args: TokenArgs) -> ExitCode {
    let (options, command) = match args.exec {
        Some(TokenSubcommand::Exec(exec)) => (exec.options, Some(exec.command)),
        None => (args.options, None),
    };
    let result = async {
        let settings = Settings::resolve(&options, &|name| std::env::var(name).ok())?;
        let obtained = obtain(&settings).await?;
        match command {
            Some(command) => exec::run(&command, &obtained.entry.access_token).await,
            None => {
                let text = match (&settings.dpop_key, &args.method, &args.url) {
                    (Some(key), Some(method), Some(url)) if args.format == OutputFormat::Header => {
                        dpop_header_lines(key, method, url, &obtained.entry)?
                    }
                    _ => render(args.format, &obtained, now()),
                };
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|e| TokenError::usage(format!("cannot write to stdout: {e}")))?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
    .await;
    result.unwrap_or_else(|error| {
        eprint!("{}", error.report());
        error.exit_code()
    })
}

/// The token for `settings`: from the cache while fresh, else from the token endpoint (holding
/// the entry's lock meanwhile, so parallel invocations share one request).
pub async fn obtain(settings: &Settings) -> Result<Obtained, TokenError> {
    let mut locked = None;
    if let CacheMode::On { dir, force_refresh } = &settings.cache {
        locked = lock_entry(dir, settings).await;
        if let Some(entry) = &locked
            && !force_refresh
            && let Some(cached) = entry.read()
            && cached.is_fresh(now())
        {
            progress(settings, || {
                format!(
                    "using the cached token from {} (expires in {} s)",
                    entry.path().display(),
                    cached.expires_at.saturating_sub(now())
                )
            });
            return Ok(Obtained {
                entry: cached,
                response: None,
            });
        }
    }
    let http = endpoint::http_client()?;
    let token_endpoint = match &settings.token_endpoint {
        Some(url) => url.clone(),
        None => {
            progress(settings, || {
                format!("reading the metadata of {}", settings.issuer)
            });
            endpoint::discover_token_endpoint(&http, &settings.issuer).await?
        }
    };
    progress(settings, || {
        format!(
            "requesting a token from {token_endpoint} ({}, scope {})",
            settings.method.as_str(),
            settings.scope()
        )
    });
    let auth = client_auth::authenticate(
        settings.method,
        &settings.client_id,
        &settings.credential,
        token_endpoint.as_str(),
    )
    .map_err(TokenError::usage)?;
    let response = endpoint::request_token(
        &http,
        &token_endpoint,
        auth,
        settings.method,
        &settings.scope(),
        settings.dpop_key.as_ref(),
    )
    .await?;
    let issued_at = now();
    let entry = Entry {
        access_token: response.access_token,
        token_type: response.token_type,
        scope: response.scope,
        issued_at,
        expires_at: issued_at + response.expires_in.unwrap_or(0),
    };
    // A token without `expires_in` has no known expiry and is not cached.
    if let (Some(locked), Some(_)) = (&locked, response.expires_in) {
        match locked.write(&entry) {
            Ok(()) => progress(settings, || {
                format!("cached in {}", locked.path().display())
            }),
            Err(e) => warn(&format!(
                "cannot write the token cache {}: {e}",
                locked.path().display()
            )),
        }
    }
    let mut body = response.body;
    if response.expires_in.is_some() {
        body.insert("expires_at".into(), json!(entry.expires_at));
    }
    Ok(Obtained {
        entry,
        response: Some(body),
    })
}

/// The locked cache entry, or `None` (with a warning) when the cache cannot be used.
async fn lock_entry(dir: &std::path::Path, settings: &Settings) -> Option<LockedEntry> {
    let cache = match TokenCache::open(dir) {
        Ok(cache) => cache,
        Err(e) => {
            warn(&format!(
                "cannot use the token cache directory {}: {e}; going on without the cache",
                dir.display()
            ));
            return None;
        }
    };
    match cache.lock(&cache::key(settings), LOCK_WAIT).await {
        Ok(Some(locked)) => Some(locked),
        Ok(None) => {
            warn(&format!(
                "another halo-gateway token has held the cache lock in {} for {} s; going on without the cache",
                dir.display(),
                LOCK_WAIT.as_secs()
            ));
            None
        }
        Err(e) => {
            warn(&format!(
                "cannot lock the token cache in {}: {e}; going on without the cache",
                dir.display()
            ));
            None
        }
    }
}

/// `Authorization: DPoP <token>` and `DPoP: <fresh proof>` for one request (`curl -H`).
fn dpop_header_lines(
    key: &private_key::SigningKey,
    method: &str,
    url: &str,
    entry: &Entry,
) -> Result<String, TokenError> {
    let method = method.to_ascii_uppercase();
    let proof = dpop::proof(key, &method, url, Some(&entry.access_token), None)
        .map_err(|e| TokenError::usage(format!("cannot sign the DPoP proof: {e}")))?;
    Ok(format!(
        "Authorization: {} {}\nDPoP: {proof}\n",
        entry.token_type, entry.access_token
    ))
}

/// The stdout text for `format`.
pub fn render(format: OutputFormat, obtained: &Obtained, now: u64) -> String {
    let entry = &obtained.entry;
    match format {
        OutputFormat::Token => format!("{}\n", entry.access_token),
        OutputFormat::Header => format!("Authorization: Bearer {}\n", entry.access_token),
        OutputFormat::Json => {
            let body = obtained.response.clone().unwrap_or_else(|| {
                // From the cache: what is known, with the lifetime that remains.
                let mut body = Map::new();
                body.insert("access_token".into(), json!(entry.access_token));
                body.insert("token_type".into(), json!(entry.token_type));
                body.insert(
                    "expires_in".into(),
                    json!(entry.expires_at.saturating_sub(now)),
                );
                if let Some(scope) = &entry.scope {
                    body.insert("scope".into(), json!(scope));
                }
                body.insert("expires_at".into(), json!(entry.expires_at));
                body
            });
            format!("{}\n", Value::Object(body))
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn progress(settings: &Settings, message: impl FnOnce() -> String) {
    if settings.verbose {
        eprintln!("halo-gateway token: {}", message());
    }
}

fn warn(message: &str) {
    eprintln!("halo-gateway token: warning: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached() -> Obtained {
        Obtained {
            entry: Entry {
                access_token: "abc.def.ghi".into(),
                token_type: "Bearer".into(),
                scope: Some("halo.api".into()),
                issued_at: 1000,
                expires_at: 4600,
            },
            response: None,
        }
    }

    #[test]
    fn each_format_prints_the_token_its_way() {
        let obtained = cached();
        assert_eq!(
            render(OutputFormat::Token, &obtained, 2000),
            "abc.def.ghi\n"
        );
        assert_eq!(
            render(OutputFormat::Header, &obtained, 2000),
            "Authorization: Bearer abc.def.ghi\n"
        );
        let json: Value =
            serde_json::from_str(&render(OutputFormat::Json, &obtained, 2000)).unwrap();
        assert_eq!(
            json,
            json!({"access_token": "abc.def.ghi", "token_type": "Bearer", "expires_in": 2600, "scope": "halo.api", "expires_at": 4600})
        );
    }

    #[test]
    fn json_of_a_fresh_token_is_the_response_plus_expires_at() {
        let mut obtained = cached();
        let mut body = Map::new();
        body.insert("access_token".into(), json!("abc.def.ghi"));
        body.insert("extra".into(), json!(1));
        body.insert("expires_at".into(), json!(4600));
        obtained.response = Some(body.clone());
        let json: Value =
            serde_json::from_str(&render(OutputFormat::Json, &obtained, 2000)).unwrap();
        assert_eq!(json, Value::Object(body));
    }
}
