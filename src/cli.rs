//! Command-line interface: `serve` (the default), `check-config`, `dev`, `explain`, `token`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::dev::DevOptions;
use crate::token::OutputFormat;
use crate::token::client_auth::AuthMethod;

/// Reverse-proxy API gateway for Glasswall Halo: validates Okta bearer tokens, enforces Halo's
/// roles, streams requests to the Halo API.
#[derive(Debug, Parser)]
#[command(name = "halo-gateway", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HALO_GATEWAY_GIT_SHA"), ")"))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML configuration file (environment variables override it); used when no subcommand is given.
    #[arg(long, global = true, value_name = "FILE", env = "HALO_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Validate the configuration, print the effective settings, fetch the issuer metadata and
    /// keys once; exit non-zero naming the setting or URL that fails.
    CheckConfig,
    /// Run an embedded Okta-like issuer, a stub Halo API and the gateway on loopback.
    Dev(Box<DevOptions>),
    /// Explain why the gateway would accept or refuse a token (exit 0 only if accepted).
    Explain(ExplainArgs),
    /// Get an OAuth client-credentials token from the Okta authorization server (cached until
    /// near expiry) and print it, or run a command with it in HALO_TOKEN. Exit codes: 2 usage
    /// or missing setting, 1 issuer or token endpoint unreachable, 3 refused by the server.
    Token(Box<TokenArgs>),
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The access token; `-` or absent reads it from standard input.
    pub token: Option<String>,
    /// Also evaluate the route policy for this request, e.g. `--route POST /api/v1/license`.
    #[arg(long, num_args = 2, value_names = ["METHOD", "PATH"])]
    pub route: Option<Vec<String>>,
    /// Print the token's header and claims (never its signature).
    #[arg(long)]
    pub show_claims: bool,
    /// Check this DPoP proof with the token (sent as `Authorization: DPoP`); --route then
    /// takes the full URL the proof is for, e.g. `--route GET https://halo.example.com/api/v1/policies`.
    #[arg(long, value_name = "PROOF", requires = "route")]
    pub dpop: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub exec: Option<TokenSubcommand>,
    #[command(flatten)]
    pub options: TokenOptions,
    /// What to print on stdout: the token, an `Authorization: Bearer` header line, or the
    /// token response as JSON plus `expires_at`.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
    /// With --dpop-key and --format header: the request the DPoP proof is for (METHOD).
    #[arg(long, value_name = "METHOD", requires_all = ["url", "dpop_key"])]
    pub method: Option<String>,
    /// With --dpop-key and --format header: the request's URL (the proof's htu).
    #[arg(long, value_name = "URL", requires_all = ["method", "dpop_key"])]
    pub url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenSubcommand {
    /// Run COMMAND with the token in the environment variable HALO_TOKEN; exit with its code.
    Exec(TokenExecArgs),
}

#[derive(Debug, clap::Args)]
pub struct TokenExecArgs {
    #[command(flatten)]
    pub options: TokenOptions,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Where the token comes from. The client secret is read from CLIENT_SECRET or
/// --client-secret-file, never from the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenOptions {
    /// Okta custom authorization server, e.g. https://ORG.okta.com/oauth2/default.
    #[arg(long, env = "OKTA_ISSUER_URI", value_name = "URL")]
    pub issuer: Option<String>,
    /// OAuth client id of the API client app.
    #[arg(long, env = "CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// Scope to ask for; repeat for several.
    #[arg(long = "scope", value_name = "S", default_value = "halo.api")]
    pub scopes: Vec<String>,
    /// Read the client secret from FILE instead of CLIENT_SECRET.
    #[arg(long, value_name = "FILE", conflicts_with = "private_key")]
    pub client_secret_file: Option<PathBuf>,
    /// Authenticate with a signed JWT (private_key_jwt): PEM RSA or EC P-256 private key.
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// `kid` of the key registered on the Okta app (needed when the app has several).
    #[arg(long, value_name = "KID", requires = "private_key")]
    pub key_id: Option<String>,
    /// Client authentication; default client_secret_basic with a secret, private_key_jwt with
    /// --private-key.
    #[arg(long, value_enum, value_name = "METHOD")]
    pub auth_method: Option<AuthMethod>,
    /// Token endpoint URL; default: `token_endpoint` of the issuer's metadata.
    #[arg(long, value_name = "URL")]
    pub token_endpoint: Option<String>,
    /// Get a DPoP-bound token (RFC 9449) for the PEM EC P-256 or RSA key in FILE, created
    /// (EC P-256, mode 0600) when missing.
    #[arg(long, value_name = "FILE")]
    pub dpop_key: Option<PathBuf>,
    /// Neither read nor write the token cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Fetch a new token even if the cached one is still fresh (and cache it).
    #[arg(long)]
    pub force_refresh: bool,
    /// Token cache directory; default $XDG_CACHE_HOME/halo-gateway, else ~/.cache/halo-gateway.
    #[arg(long, value_name = "DIR", env = "HALO_TOKEN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Say on stderr where the token comes from (never the token itself).
    #[arg(short, long)]
    pub verbose: bool,
}
