//! Thin entry point: parse the CLI, load and validate configuration before binding anything,
//! start logging, run. Exit codes: 0 ok, 1 runtime failure (issuer/ports), 2 configuration;
//! `token` adds 3 (the authorization server refused) and `token exec` passes on COMMAND's.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use clap::Parser;
use halo_gateway::auth::jwks::{Fetcher, JwksResponse};
use halo_gateway::auth::policy::{Policy, halo_default_rules};
use halo_gateway::cli::{Cli, Command, ExplainArgs};
use halo_gateway::config::Config;
use halo_gateway::dev::DevStack;
use halo_gateway::telemetry::OtlpSettings;

/// jemalloc keeps less resident per idle connection than glibc malloc (docs/performance.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(cli.config).await,
            Command::CheckConfig => check_config(cli.config).await,
            Command::Dev(options) => dev(*options).await,
            Command::Explain(args) => explain(cli.config, args).await,
            Command::Token(args) => halo_gateway::token::run(*args).await,
        }
    })
}

/// Loads and validates the configuration, route rules included (compiled by the auth policy,
/// since config holds them as plain data): any mistake is one line and exit code 2.
fn load(file: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    let invalid = |e: &dyn std::fmt::Display| {
        eprintln!("error: invalid configuration: {e}");
        ExitCode::from(2)
    };
    let config = Config::load(file).map_err(|e| invalid(&e))?;
    Policy::from_config(&config).map_err(|e| invalid(&e))?;
    Ok(config)
}

async fn serve(file: Option<std::path::PathBuf>) -> ExitCode {
    let config = match load(file.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let traces = match OtlpSettings::from_env(|name| std::env::var(name).ok()) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = match halo_gateway::telemetry::init(
        config.gateway.log_format,
        config.gateway.log_level.as_deref(),
        traces.as_ref(),
    ) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: cannot start the OTLP trace exporter: {e}");
            return ExitCode::FAILURE;
        }
    };
    match halo_gateway::start(&config).await {
        Ok(gateway) => {
            gateway.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check_config(file: Option<std::path::PathBuf>) -> ExitCode {
    let config = match load(file.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut settings = config.settings();
    println!("# effective settings (secrets redacted)");
    if settings.gateway.rules.is_none() {
        println!("# Gateway__Rules not set: Halo's default table");
        settings.gateway.rules = Some(halo_default_rules());
    }
    let bearer = &settings.authentication.schemes.bearer;
    if bearer.scope_claim.is_none() {
        println!("# Authentication__Schemes__Bearer__ScopeClaim not set: scp, else scope");
    }
    if bearer.client_id_claim.is_none() {
        println!("# Authentication__Schemes__Bearer__ClientIdClaim not set: cid, else client_id");
    }
    if bearer.allowed_clients.is_empty() {
        println!("# Authentication__Schemes__Bearer__AllowedClients not set: any client");
    }
    for line in settings.redacted_lines() {
        println!("{line}");
    }
    match OtlpSettings::from_env(|name| std::env::var(name).ok()) {
        Ok(Some(traces)) => println!(
            "# traces: OTLP {} to {} = {}, sampler {}",
            traces.protocol, traces.endpoint.0, traces.endpoint.1, traces.sampler_text
        ),
        Ok(None) => println!("# traces: off (no OTEL_EXPORTER_OTLP_ENDPOINT)"),
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    }
    let fetcher = match Fetcher::new(&config.auth, config.gateway.https_proxy.as_ref()) {
        Ok(fetcher) => fetcher,
        Err(e) => {
            eprintln!("error: cannot build the issuer client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let jwks_uri = match fetcher.discover().await {
        Ok(uri) => uri,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("# issuer metadata ok: jwks_uri = {jwks_uri}");
    match fetcher.fetch_keys(&jwks_uri, None).await {
        Ok(JwksResponse::Keys { set, .. }) => {
            for key in &set.keys {
                println!("# key ok: kid = {} ({:?})", key.kid, key.algorithms);
            }
            for skipped in &set.skipped {
                println!("# warning: {skipped}");
            }
            println!("configuration ok");
            ExitCode::SUCCESS
        }
        Ok(JwksResponse::NotModified { .. }) => {
            eprintln!("error: {jwks_uri} answered 304 to an unconditional request");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dev(options: halo_gateway::dev::DevOptions) -> ExitCode {
    let _log = halo_gateway::telemetry::init(None, None, None).unwrap_or_default();
    let stack = match DevStack::start(&options).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A closed stdout (piped to `head`, a test that stopped reading) must not kill the stack.
    let _ = writeln!(std::io::stdout(), "{}", stack.walkthrough());
    halo_gateway::server::shutdown_signal().await;
    let _ = writeln!(std::io::stdout(), "stopping");
    stack.shutdown().await;
    ExitCode::SUCCESS
}

async fn explain(file: Option<std::path::PathBuf>, args: ExplainArgs) -> ExitCode {
    let config = match load(file.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let token = match args.token.filter(|t| t != "-") {
        Some(token) => token,
        None => {
            let mut text = String::new();
            if std::io::stdin()
                .take(1 << 20)
                .read_to_string(&mut text)
                .is_err()
            {
                eprintln!("error: cannot read the token from standard input");
                return ExitCode::from(2);
            }
            text
        }
    };
    let route = match args.route.as_deref() {
        Some([method, path]) => {
            match http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
                Ok(method) => Some((method, path.clone())),
                Err(_) => {
                    eprintln!("error: --route: '{method}' is not an HTTP method");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let request = halo_gateway::explain::ExplainRequest {
        token,
        route,
        show_claims: args.show_claims,
        dpop: args.dpop,
    };
    let explanation = halo_gateway::explain::explain(&config, &request).await;
    print!("{}", explanation.report);
    if explanation.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
