//! `halo-gateway token`'s flags and environment, checked and resolved before any request.
//!
//! Defaults come from the variables Halo's guide exports (`OKTA_ISSUER_URI`, `CLIENT_ID`,
//! `CLIENT_SECRET`); a secret is read from the environment or a file, never from argv (where
//! `ps` shows it).

use std::path::{Path, PathBuf};

use url::Url;

use super::client_auth::{AuthMethod, Credential, Secret};
use super::error::TokenError;
use super::private_key::SigningKey;
use crate::cli::TokenOptions;

/// Where the token cache lives, or that it is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheMode {
    /// `--no-cache`, or no cache directory could be found.
    Off,
    On {
        dir: PathBuf,
        force_refresh: bool,
    },
}

/// Everything one token request needs, checked.
#[derive(Debug)]
pub struct Settings {
    /// The issuer URL without a trailing `/`.
    pub issuer: Url,
    pub client_id: String,
    /// Sorted and without duplicates (the cache key and the request use the same set).
    pub scopes: Vec<String>,
    pub method: AuthMethod,
    pub credential: Credential,
    pub token_endpoint: Option<Url>,
    pub cache: CacheMode,
    pub verbose: bool,
    /// `--dpop-key`: the key DPoP proofs are signed with.
    pub dpop_key: Option<SigningKey>,
}

impl Settings {
    /// Resolves `options`, reading `CLIENT_SECRET` and the cache location through `env`.
    pub fn resolve(
        options: &TokenOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TokenError> {
        let issuer = options.issuer.as_deref().ok_or_else(|| {
            TokenError::usage("no issuer: pass --issuer URL or set OKTA_ISSUER_URI")
        })?;
        let issuer = endpoint_url("--issuer / OKTA_ISSUER_URI", issuer)?;
        let client_id = options
            .client_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                TokenError::usage("no client id: pass --client-id ID or set CLIENT_ID")
            })?;
        let scopes = scopes(&options.scopes)?;
        let (method, credential) = credential(options, env)?;
        let token_endpoint = options
            .token_endpoint
            .as_deref()
            .map(|url| endpoint_url("--token-endpoint", url))
            .transpose()?;
        let cache = if options.no_cache {
            CacheMode::Off
        } else {
            options
                .cache_dir
                .clone()
                .or_else(|| default_cache_dir(env))
                .map_or(CacheMode::Off, |dir| CacheMode::On {
                    dir,
                    force_refresh: options.force_refresh,
                })
        };
        Ok(Self {
            issuer,
            client_id,
            scopes,
            method,
            credential,
            token_endpoint,
            cache,
            verbose: options.verbose,
            dpop_key: options
                .dpop_key
                .as_deref()
                .map(|path| {
                    super::dpop::load_or_create_key(path).map_err(|e| {
                        TokenError::usage(format!("--dpop-key {}: {e}", path.display()))
                    })
                })
                .transpose()?,
        })
    }

    /// The `scope` form value (RFC 6749 §3.3: space-delimited).
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// An `https` URL, or `http` to a loopback host (the `dev` issuer): a client secret must not
/// cross a network in clear text.
fn endpoint_url(name: &str, text: &str) -> Result<Url, TokenError> {
    let url = Url::parse(text.trim_end_matches('/'))
        .map_err(|e| TokenError::usage(format!("{name}: '{text}' is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(TokenError::usage(format!(
                "{name}: '{text}' is plain http; only https is allowed (http only to a loopback address)"
            )));
        }
        _ => {
            return Err(TokenError::usage(format!(
                "{name}: '{text}' is not an http(s) URL"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(TokenError::usage(format!(
            "{name}: '{text}' must not have a query or fragment"
        )));
    }
    Ok(url)
}

/// Splits, checks (RFC 6749 §3.3 `scope-token` characters), sorts and de-duplicates scopes.
fn scopes(given: &[String]) -> Result<Vec<String>, TokenError> {
    let mut scopes: Vec<String> = given
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = scopes.iter().find(|s| {
        !s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    }) {
        return Err(TokenError::usage(format!(
            "--scope: '{bad}' has a character a scope cannot contain (RFC 6749 §3.3)"
        )));
    }
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(TokenError::usage("--scope: at least one scope is needed"));
    }
    Ok(scopes)
}

/// The client credential and the method to present it with: `--private-key` means
/// `private_key_jwt`, a secret means `client_secret_basic`, unless `--auth-method` says otherwise.
fn credential(
    options: &TokenOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(AuthMethod, Credential), TokenError> {
    if let Some(path) = &options.private_key {
        let method = options.auth_method.unwrap_or(AuthMethod::PrivateKeyJwt);
        if method != AuthMethod::PrivateKeyJwt {
            return Err(TokenError::usage(format!(
                "--auth-method {} takes a client secret, not --private-key; drop one of them",
                method.as_str()
            )));
        }
        let key = SigningKey::load(path)
            .map_err(|e| TokenError::usage(format!("--private-key {}: {e}", path.display())))?;
        return Ok((
            method,
            Credential::PrivateKey {
                key,
                key_id: options.key_id.clone(),
            },
        ));
    }
    let method = options.auth_method.unwrap_or(AuthMethod::ClientSecretBasic);
    if method == AuthMethod::PrivateKeyJwt {
        return Err(TokenError::usage(
            "--auth-method private_key_jwt needs --private-key FILE",
        ));
    }
    let secret = match &options.client_secret_file {
        Some(path) => read_secret_file(path)?,
        None => env("CLIENT_SECRET").filter(|s| !s.is_empty()).ok_or_else(|| {
            TokenError::usage(
                "no client credentials: set CLIENT_SECRET, or pass --client-secret-file FILE or --private-key FILE",
            )
        })?,
    };
    Ok((method, Credential::Secret(Secret::new(secret))))
}

/// The secret in `path`, without the line end an editor or `echo` adds.
fn read_secret_file(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        TokenError::usage(format!(
            "--client-secret-file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(TokenError::usage(format!(
            "--client-secret-file {} is empty",
            path.display()
        )));
    }
    Ok(secret.to_owned())
}

/// `$XDG_CACHE_HOME/halo-gateway`, else `~/.cache/halo-gateway` (XDG Base Directory spec:
/// a relative `XDG_CACHE_HOME` is ignored).
pub fn default_cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let xdg = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        env("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|home| home.join(".cache"))
    })?;
    Some(base.join("halo-gateway"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        options: TokenOptions,
    }

    fn resolve(args: &[&str], vars: &[(&str, &str)]) -> Result<Settings, TokenError> {
        let mut argv = vec!["token"];
        argv.extend_from_slice(args);
        let args = Args::try_parse_from(argv).map_err(|e| TokenError::usage(e.to_string()))?;
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::resolve(&args.options, &|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    const BASE: &[&str] = &[
        "--issuer",
        "https://org.okta.com/oauth2/default/",
        "--client-id",
        "0oa1",
    ];

    #[test]
    fn a_secret_from_the_environment_means_client_secret_basic_and_scope_halo_api() {
        let settings = resolve(BASE, &[("CLIENT_SECRET", "s"), ("HOME", "/home/u")]).unwrap();
        assert_eq!(settings.method, AuthMethod::ClientSecretBasic);
        assert_eq!(settings.scopes, ["halo.api"]);
        assert_eq!(
            settings.issuer.as_str(),
            "https://org.okta.com/oauth2/default"
        );
        assert_eq!(
            settings.cache,
            CacheMode::On {
                dir: PathBuf::from("/home/u/.cache/halo-gateway"),
                force_refresh: false
            }
        );
    }

    #[test]
    fn scopes_are_split_sorted_and_deduplicated() {
        let mut args = BASE.to_vec();
        args.extend(["--scope", "b a", "--scope", "a", "--no-cache"]);
        let settings = resolve(&args, &[("CLIENT_SECRET", "s")]).unwrap();
        assert_eq!(settings.scopes, ["a", "b"]);
        assert_eq!(settings.cache, CacheMode::Off);
    }

    #[test]
    fn xdg_cache_home_wins_over_home_when_absolute() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            default_cache_dir(&env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/halo-gateway"))
        );
        assert_eq!(
            default_cache_dir(&env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/halo-gateway"))
        );
        assert_eq!(default_cache_dir(&env(&[])), None);
    }

    #[test]
    fn missing_and_wrong_settings_name_the_flag_or_variable() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (&[], &[("CLIENT_SECRET", "s")], "OKTA_ISSUER_URI"),
            (
                &["--issuer", "https://o/oauth2/default"],
                &[("CLIENT_SECRET", "s")],
                "CLIENT_ID",
            ),
            (BASE, &[], "CLIENT_SECRET"),
            (
                &[
                    "--issuer",
                    "http://okta.example/oauth2/default",
                    "--client-id",
                    "a",
                ],
                &[("CLIENT_SECRET", "s")],
                "plain http",
            ),
            (
                &["--issuer", "not a url", "--client-id", "a"],
                &[("CLIENT_SECRET", "s")],
                "--issuer",
            ),
            (
                &[
                    "--issuer",
                    "https://o/x",
                    "--client-id",
                    "a",
                    "--auth-method",
                    "private_key_jwt",
                ],
                &[("CLIENT_SECRET", "s")],
                "needs --private-key",
            ),
            (
                &[
                    "--issuer",
                    "https://o/x",
                    "--client-id",
                    "a",
                    "--private-key",
                    "/nonexistent/key.pem",
                ],
                &[],
                "--private-key /nonexistent/key.pem",
            ),
            (
                &[
                    "--issuer",
                    "https://o/x",
                    "--client-id",
                    "a",
                    "--client-secret-file",
                    "/nonexistent/s",
                ],
                &[],
                "--client-secret-file /nonexistent/s",
            ),
            (
                &[
                    "--issuer",
                    "https://o/x",
                    "--client-id",
                    "a",
                    "--scope",
                    "a\"b",
                ],
                &[("CLIENT_SECRET", "s")],
                "--scope",
            ),
            (
                &[
                    "--issuer",
                    "https://o/x",
                    "--client-id",
                    "a",
                    "--token-endpoint",
                    "ftp://o/t",
                ],
                &[("CLIENT_SECRET", "s")],
                "--token-endpoint",
            ),
        ];
        for (args, vars, phrase) in cases {
            let error = resolve(args, vars).unwrap_err();
            assert_eq!(error.code(), 2, "{args:?}");
            assert!(error.to_string().contains(phrase), "{args:?}: {error}");
        }
    }

    #[test]
    fn http_is_allowed_to_loopback_only() {
        for issuer in [
            "http://127.0.0.1:8081/oauth2/default",
            "http://localhost/x",
            "http://[::1]:1/x",
        ] {
            let args = ["--issuer", issuer, "--client-id", "a"];
            assert!(
                resolve(&args, &[("CLIENT_SECRET", "s")]).is_ok(),
                "{issuer}"
            );
        }
    }

    #[test]
    fn the_secret_file_loses_its_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "top+secret\r\n").unwrap();
        let mut args = BASE.to_vec();
        let path_text = path.to_string_lossy().into_owned();
        args.extend([
            "--client-secret-file",
            &path_text,
            "--auth-method",
            "client_secret_post",
        ]);
        let settings = resolve(&args, &[("CLIENT_SECRET", "from-env")]).unwrap();
        assert_eq!(settings.method, AuthMethod::ClientSecretPost);
        match settings.credential {
            Credential::Secret(secret) => assert_eq!(secret.expose(), "top+secret"),
            Credential::PrivateKey { .. } => panic!("a secret was given"),
        }
    }
}
