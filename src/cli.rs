//! Command-line interface: `serve` (the default), `check-config`, `dev`, `explain`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::dev::DevOptions;

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
}
