//! `halo-gateway dev`: the embedded issuer, the stub Halo API and the gateway in one process on
//! loopback, so the whole Okta + Halo flow runs on a laptop with no accounts.
//!
//! The issuer has three clients: Admin and User (client secrets, printed) and Signer
//! (`private_key_jwt`; its private key is written 0600 to a temporary directory named in the
//! banner and removed at stop). The walkthrough gets tokens with `halo-gateway token`.
//!
//! The gateway is configured through the same code path as `serve` ([`Config::load_with_env`]
//! with ASP.NET-style variables), not a special case. The same issuer and stub are what the
//! integration tests use.

pub mod client_auth;
pub mod dpop;
pub mod issuer;
pub mod upstream;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use self::client_auth::KeyClient;
use self::issuer::{DEV_GROUPS, DevClient, HALO_SCOPE, Issuer, IssuerOptions};
use self::upstream::StubUpstream;
use crate::config::{AspNetEnv, Config};
use crate::server::RunningGateway;

/// Flags of `halo-gateway dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevOptions {
    /// Gateway public listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Gateway admin listener (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Embedded issuer listener.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub issuer_listen: SocketAddr,
    /// Stub Halo API listener.
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub upstream_listen: SocketAddr,
    /// Start only the embedded issuer (for a real Halo with no Okta).
    #[arg(long, conflicts_with = "upstream_only")]
    pub issuer_only: bool,
    /// Start only the stub Halo API (for a real Okta with no Halo).
    #[arg(long)]
    pub upstream_only: bool,
    /// Use this real Halo API instead of the stub.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Audience of issued tokens and the gateway's ValidAudiences__0.
    #[arg(long, default_value = "api://halo")]
    pub audience: String,
    /// Admin client id (generated when absent).
    #[arg(
        long,
        env = "HALO_DEV_ADMIN_CLIENT_ID",
        requires = "admin_client_secret"
    )]
    pub admin_client_id: Option<String>,
    #[arg(long, env = "HALO_DEV_ADMIN_CLIENT_SECRET", hide_env_values = true)]
    pub admin_client_secret: Option<String>,
    /// User client id (no role claim; generated when absent).
    #[arg(long, env = "HALO_DEV_USER_CLIENT_ID", requires = "user_client_secret")]
    pub user_client_id: Option<String>,
    #[arg(long, env = "HALO_DEV_USER_CLIENT_SECRET", hide_env_values = true)]
    pub user_client_secret: Option<String>,
    /// Allow the embedded issuer and stub to bind non-loopback addresses.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Run the gateway with DPoP in `Allowed` mode; the walkthrough adds a DPoP call.
    #[arg(long)]
    pub dpop: bool,
    /// Extra gateway settings (TOML), applied under the dev defaults' environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A running dev stack.
#[derive(Debug)]
pub struct DevStack {
    pub issuer: Option<Issuer>,
    /// The private key of the issuer's `private_key_jwt` client, and the token cache the
    /// walkthrough uses; removed when the stack is dropped.
    pub files: Option<DevFiles>,
    pub upstream: Option<StubUpstream>,
    pub gateway: Option<RunningGateway>,
    pub upstream_url: String,
    /// `--dpop`: the gateway accepts DPoP-bound tokens.
    pub dpop: bool,
}

/// Why `dev` could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(
        "{flag} {addr} is not a loopback address; the embedded issuer and stub are for development only (pass --allow-non-loopback to override)"
    )]
    NotLoopback {
        flag: &'static str,
        addr: SocketAddr,
    },
    #[error("{flag}: cannot listen on {addr}: {source}")]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the private_key_jwt client: {0}")]
    KeyClient(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
}

fn client(id: Option<&String>, secret: Option<&String>, role: Option<&str>) -> DevClient {
    match (id, secret) {
        (Some(id), Some(secret)) => DevClient {
            id: id.clone(),
            secret: secret.clone(),
            role: role.map(str::to_owned),
            groups: Vec::new(),
        },
        _ => DevClient::generate(role),
    }
}

impl DevStack {
    pub async fn start(options: &DevOptions) -> Result<Self, DevError> {
        if !options.allow_non_loopback {
            for (flag, addr) in [
                ("--issuer-listen", options.issuer_listen),
                ("--upstream-listen", options.upstream_listen),
            ] {
                if !addr.ip().is_loopback() {
                    return Err(DevError::NotLoopback { flag, addr });
                }
            }
        }
        let mut files = None;
        let issuer = if options.upstream_only {
            None
        } else {
            let (key_client, private_key) =
                KeyClient::generate(None).map_err(DevError::KeyClient)?;
            files = Some(
                DevFiles::create(&key_client.id, &private_key)
                    .map_err(|e| DevError::KeyClient(e.to_string()))?,
            );
            let issuer_options = IssuerOptions {
                audience: options.audience.clone(),
                clients: vec![
                    client(
                        options.admin_client_id.as_ref(),
                        options.admin_client_secret.as_ref(),
                        Some("Admin"),
                    ),
                    client(
                        options.user_client_id.as_ref(),
                        options.user_client_secret.as_ref(),
                        None,
                    ),
                    // No role claim; RoleMappings__0 maps its group to Admin.
                    DevClient::generate(None).with_groups(DEV_GROUPS),
                ],
                key_clients: vec![key_client],
                ..IssuerOptions::default()
            };
            Some(
                Issuer::start(options.issuer_listen, issuer_options)
                    .await
                    .map_err(|source| DevError::Bind {
                        flag: "--issuer-listen",
                        addr: options.issuer_listen,
                        source,
                    })?,
            )
        };
        let upstream = if options.issuer_only || options.upstream.is_some() {
            None
        } else {
            Some(
                StubUpstream::start(options.upstream_listen)
                    .await
                    .map_err(|source| DevError::Bind {
                        flag: "--upstream-listen",
                        addr: options.upstream_listen,
                        source,
                    })?,
            )
        };
        let upstream_url = options
            .upstream
            .clone()
            .or_else(|| upstream.as_ref().map(StubUpstream::url))
            .unwrap_or_default();
        let gateway = match (&issuer, options.issuer_only || options.upstream_only) {
            (Some(issuer), false) => {
                let config = Config::load_with_env(
                    options.config.as_deref(),
                    dev_environment(options, issuer, &upstream_url),
                )?;
                Some(crate::server::start(&config).await?)
            }
            _ => None,
        };
        Ok(Self {
            issuer,
            files,
            upstream,
            gateway,
            upstream_url,
            dpop: options.dpop,
        })
    }

    /// Stops the gateway gracefully (the issuer and stub stop when dropped).
    pub async fn shutdown(self) {
        if let Some(gateway) = self.gateway {
            gateway.shutdown().await;
        }
    }

    /// The banner and copy-paste walkthrough printed at start.
    pub fn walkthrough(&self) -> String {
        let mut out = String::new();
        out.push_str("halo-gateway dev: DEVELOPMENT ONLY. The embedded issuer's keys live in memory and its\n");
        out.push_str("client secrets are printed below. Never point production clients at it.\n\n");
        if let Some(issuer) = &self.issuer {
            out.push_str(&format!("  embedded Okta-like issuer : {}\n", issuer.url()));
        }
        if let Some(upstream) = &self.upstream {
            out.push_str(&format!(
                "  stub Halo API             : {}\n",
                upstream.url()
            ));
        } else if !self.upstream_url.is_empty() {
            out.push_str(&format!(
                "  Halo API                  : {}\n",
                self.upstream_url
            ));
        }
        if let Some(gateway) = &self.gateway {
            out.push_str(&format!(
                "  halo-gateway              : http://{}\n",
                gateway.public_addr
            ));
            out.push_str(&format!(
                "  admin (healthz/readyz/metrics): http://{}\n",
                gateway.admin_addr
            ));
        }
        let Some(issuer) = &self.issuer else {
            return out;
        };
        let admin = &issuer.clients()[0];
        let user = &issuer.clients()[1];
        let group = &issuer.clients()[2];
        let halo = self.gateway.as_ref().map_or_else(
            || self.upstream_url.clone(),
            |g| format!("http://{}", g.public_addr),
        );
        let (signer_id, key_file, cache_dir) = match (issuer.key_clients().first(), &self.files) {
            (Some(client), Some(files)) => (
                client.id.as_str(),
                sh_quote(&files.private_key.display().to_string()),
                sh_quote(&files.token_cache.display().to_string()),
            ),
            _ => ("", String::new(), String::new()),
        };
        // `halo-gateway token` below is this very binary.
        let path_line = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.display().to_string()))
            .map(|dir| format!("export PATH={}:\"$PATH\"\n", sh_quote(&dir)))
            .unwrap_or_default();
        out.push_str(&format!(
            r#"
Clients:  Admin  (role claim "Admin")        id {admin_id}  secret {admin_secret}
          User   (no role claim)             id {user_id}  secret {user_secret}
          Groups (groups ["Halo Admins", "Everyone"], no role claim)
                                             id {group_id}  secret {group_secret}
          Signer (no role, private_key_jwt)  id {signer_id}  key {key_file} (0600; removed when dev stops)

Gateway:  RequiredScopes__0=halo.api (every route but /api/health needs it)
          RoleMappings__0: claim groups containing "Halo Admins" -> role Admin

Walkthrough (Halo's "Verify authentication" guide; paste into another terminal):

export OKTA_ISSUER_URI='{issuer_url}'
export HALO_API_URL='{halo}'
export CLIENT_ID='{user_id}'
export CLIENT_SECRET='{user_secret}'
export ADMIN_CLIENT_ID='{admin_id}'
export ADMIN_CLIENT_SECRET='{admin_secret}'
export GROUP_CLIENT_ID='{group_id}'
export GROUP_CLIENT_SECRET='{group_secret}'
export SIGNER_CLIENT_ID='{signer_id}'
export SIGNER_PRIVATE_KEY={key_file}
export HALO_TOKEN_CACHE_DIR={cache_dir}
{path_line}
# 1. No token: 401 with WWW-Authenticate: Bearer
curl -i "$HALO_API_URL/api/v1/policies"

# 2. A token the way Halo's guide gets one (client credentials, scope halo.api), then the API: 200
TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d scope=halo.api \
  "$OKTA_ISSUER_URI/v1/token" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -i -H "Authorization: Bearer $TOKEN" "$HALO_API_URL/api/v1/policies"

# 3. The same with halo-gateway token (reads the exports above; cached until near expiry)
TOKEN=$(halo-gateway token)
curl -i -H "$(halo-gateway token --format header)" "$HALO_API_URL/api/v1/policies"

# 4. Rebuild a file, the token handed over in HALO_TOKEN: the bytes come back
echo 'hello halo' > sample.txt
halo-gateway token exec -- sh -c 'curl -s -H "Authorization: Bearer $HALO_TOKEN" -F file=@sample.txt "$HALO_API_URL/api/v1/rebuild/file"'

# 5. License upload with the User client: 403 AdminRoleMissing
curl -i -X POST -H "Authorization: Bearer $TOKEN" -F file=@sample.txt "$HALO_API_URL/api/v1/license"

# 6. The same with the Admin client (client_secret_post this time): 201
ADMIN_TOKEN=$(CLIENT_ID="$ADMIN_CLIENT_ID" CLIENT_SECRET="$ADMIN_CLIENT_SECRET" halo-gateway token --auth-method client_secret_post)
curl -i -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -F file=@sample.txt "$HALO_API_URL/api/v1/license"

# 7. The Groups client has no role claim; its group "Halo Admins" is mapped to Admin: 201
GROUP_TOKEN=$(CLIENT_ID="$GROUP_CLIENT_ID" CLIENT_SECRET="$GROUP_CLIENT_SECRET" halo-gateway token)
curl -i -X POST -H "Authorization: Bearer $GROUP_TOKEN" -F file=@sample.txt "$HALO_API_URL/api/v1/license"

# 8. A token granted only halo.admin (scp ["halo.admin"]) lacks the required halo.api:
#    403 insufficient_scope, WWW-Authenticate: Bearer error="insufficient_scope", scope="halo.api"
NARROW_TOKEN=$(halo-gateway token --scope halo.admin)
curl -i -H "Authorization: Bearer $NARROW_TOKEN" "$HALO_API_URL/api/v1/policies"

# 9. A private_key_jwt client: a signed assertion instead of a secret: 200
SIGNER_TOKEN=$(halo-gateway token --client-id "$SIGNER_CLIENT_ID" --private-key "$SIGNER_PRIVATE_KEY")
curl -i -H "Authorization: Bearer $SIGNER_TOKEN" "$HALO_API_URL/api/v1/policies"

# 10. Rotate the issuer's signing key and watch the gateway follow (new token, still 200)
curl -s -X POST "$OKTA_ISSUER_URI/dev/rotate-keys"
TOKEN=$(halo-gateway token --force-refresh)
curl -i -H "Authorization: Bearer $TOKEN" "$HALO_API_URL/api/v1/policies"
{dpop_step}
Press Ctrl-C to stop.
"#,
            dpop_step = if self.dpop { DPOP_STEP } else { "" },
            admin_id = admin.id,
            admin_secret = admin.secret,
            user_id = user.id,
            user_secret = user.secret,
            group_id = group.id,
            group_secret = group.secret,
            issuer_url = issuer.url(),
        ));
        out
    }
}

/// Files of a dev run in a private temporary directory (0700): the `private_key_jwt` client's
/// key (0600) and the walkthrough's token cache, so tokens of an earlier run (signed by keys
/// that died with it) are never reused.
#[derive(Debug)]
pub struct DevFiles {
    _dir: tempfile::TempDir,
    pub private_key: PathBuf,
    pub token_cache: PathBuf,
}

impl DevFiles {
    fn create(client_id: &str, private_key_pem: &str) -> std::io::Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("halo-gateway-dev-");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder.tempdir()?;
        let private_key = dir.path().join(format!("{client_id}.pem"));
        write_private(&private_key, private_key_pem.as_bytes())?;
        Ok(Self {
            token_cache: dir.path().join("token-cache"),
            private_key,
            _dir: dir,
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The walkthrough's DPoP call (`dev --dpop`).
const DPOP_STEP: &str = r#"
# 9. DPoP (RFC 9449; dev --dpop runs the gateway in Allowed mode): a token bound to a key of
#    your own, through Okta's nonce dance, and one fresh proof per request: 200, and Halo sees a
#    plain Bearer request. The same two lines again: 401 invalid_dpop_proof (a proof is used once)
halo-gateway token --dpop-key "$HALO_TOKEN_CACHE_DIR/dpop.pem" --format header   --method GET --url "$HALO_API_URL/api/v1/policies" > dpop-headers.txt
curl -i -H @dpop-headers.txt "$HALO_API_URL/api/v1/policies"
curl -i -H @dpop-headers.txt "$HALO_API_URL/api/v1/policies"
"#;

/// `text` as one single-quoted shell word.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The ASP.NET-style variables `serve` would read, pointing at the embedded parts.
fn dev_environment(options: &DevOptions, issuer: &Issuer, upstream_url: &str) -> AspNetEnv {
    AspNetEnv::from_vars([
        ("AuthenticationScheme".to_owned(), "Bearer".to_owned()),
        (
            "Authentication__Schemes__Bearer__Authority".to_owned(),
            issuer.url().to_owned(),
        ),
        (
            "Authentication__Schemes__Bearer__ValidIssuer".to_owned(),
            issuer.url().to_owned(),
        ),
        (
            "Authentication__Schemes__Bearer__ValidAudiences__0".to_owned(),
            options.audience.clone(),
        ),
        // The embedded issuer speaks plain http on loopback.
        (
            "Authentication__Schemes__Bearer__RequireHttpsMetadata".to_owned(),
            "false".to_owned(),
        ),
        // Shows the scope check and a group mapped to a role (walkthrough steps 7 and 8).
        (
            "Authentication__Schemes__Bearer__RequiredScopes__0".to_owned(),
            HALO_SCOPE.to_owned(),
        ),
        (
            "Authentication__Schemes__Bearer__RoleMappings__0__Claim".to_owned(),
            "groups".to_owned(),
        ),
        (
            "Authentication__Schemes__Bearer__RoleMappings__0__Value".to_owned(),
            DEV_GROUPS[0].to_owned(),
        ),
        (
            "Authentication__Schemes__Bearer__RoleMappings__0__Role".to_owned(),
            "Admin".to_owned(),
        ),
        ("Gateway__Upstream".to_owned(), upstream_url.to_owned()),
        (
            "Authentication__Schemes__Bearer__DPoP__Mode".to_owned(),
            if options.dpop { "Allowed" } else { "Disabled" }.to_owned(),
        ),
        ("Gateway__Listen".to_owned(), options.listen.to_string()),
        (
            "Gateway__AdminListen".to_owned(),
            options.admin_listen.to_string(),
        ),
    ])
}
