//! Configuration sources that speak ASP.NET Core's naming: `Section__Key__0` environment
//! variables, matched case-insensitively, with `__N` indices turned into real lists.
//!
//! figment's own `Env` provider neither folds case into our `PascalCase` tree nor turns `__0`,
//! `__1` children into arrays, so [`AspNetEnv`] builds the tree itself and [`Canonical`] gives
//! a TOML file the same case-insensitive treatment.

use std::collections::BTreeMap;

use figment::value::{Dict, Map, Tag, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Every key the configuration tree knows, in its canonical spelling. A key given in any
/// case is rewritten to this spelling; an unknown key is kept as written, so serde can name it
/// in an "unknown setting" error.
const KNOWN_KEYS: &[&str] = &[
    "AuthenticationScheme",
    "Authentication",
    "Schemes",
    "Bearer",
    "Authority",
    "MetadataAddress",
    "ValidIssuer",
    "ValidIssuers",
    "ValidAudience",
    "ValidAudiences",
    "ClockSkew",
    "RequireHttpsMetadata",
    "RoleClaim",
    "DefaultRole",
    "KeyRefetchCooldown",
    "KeyRefreshInterval",
    "KeyGracePeriod",
    "KeyRetryMaxBackoff",
    "MaxTokenLifetime",
    "MaxTokenLength",
    "TokenCacheSize",
    "AllowedJwksHosts",
    "Gateway",
    "Listen",
    "AdminListen",
    "Upstream",
    "UpstreamTimeout",
    "ForwardAuthorization",
    "ShutdownTimeout",
    "LogFormat",
    "LogLevel",
    "MaxRequestBodySize",
    "TrustedProxies",
    "HttpsProxy",
    "HeaderReadTimeout",
    "BodyIdleTimeout",
    "MaxConnections",
    "Workers",
    "MaxHeaderCount",
    "MaxHeaderBytes",
    "Rules",
    "Name",
    "Methods",
    "Path",
    "Role",
];

/// Environment variable prefixes (case-insensitive) that belong to us; everything else in the
/// environment is ignored.
const ROOTS: &[&str] = &["AuthenticationScheme", "Authentication", "Gateway"];

fn canonical_key(key: &str) -> String {
    KNOWN_KEYS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(key))
        .map_or_else(|| key.to_owned(), |known| (*known).to_owned())
}

/// Reads `AuthenticationScheme`, `Authentication__...` and `Gateway__...` variables.
#[derive(Debug, Clone)]
pub struct AspNetEnv {
    vars: Vec<(String, String)>,
}

impl AspNetEnv {
    /// Snapshot of the process environment.
    pub fn from_process() -> Self {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An explicit set of variables (used by `dev` and tests).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars = vars
            .into_iter()
            .filter(|(name, _)| {
                let root = name.split("__").next().unwrap_or_default();
                ROOTS.iter().any(|r| r.eq_ignore_ascii_case(root))
            })
            .collect();
        Self { vars }
    }
}

/// An intermediate tree, so that list detection can look at all siblings at once.
#[derive(Debug, Default)]
enum Node {
    #[default]
    Empty,
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

impl Node {
    fn insert(&mut self, path: &[String], value: String) {
        match path.split_first() {
            None => *self = Node::Leaf(value),
            Some((head, rest)) => {
                if !matches!(self, Node::Branch(_)) {
                    *self = Node::Branch(BTreeMap::new());
                }
                if let Node::Branch(children) = self {
                    children
                        .entry(head.clone())
                        .or_default()
                        .insert(rest, value);
                }
            }
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Empty => Value::from(Dict::new()),
            Node::Leaf(s) => Value::from(s),
            Node::Branch(children) => {
                let indexed: Option<Vec<(u64, &Node)>> = children
                    .iter()
                    .map(|(k, v)| k.parse::<u64>().ok().map(|i| (i, v)))
                    .collect();
                if indexed.is_some() && !children.is_empty() {
                    // ASP.NET binds `__0`, `__2` as a two-element list in index order.
                    let mut items: Vec<(u64, Node)> = children
                        .into_iter()
                        .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v)))
                        .collect();
                    items.sort_by_key(|(i, _)| *i);
                    Value::Array(
                        Tag::Default,
                        items.into_iter().map(|(_, v)| v.into_value()).collect(),
                    )
                } else {
                    let dict: Dict = children
                        .into_iter()
                        .map(|(k, v)| (k, v.into_value()))
                        .collect();
                    Value::Dict(Tag::Default, dict)
                }
            }
        }
    }
}

impl Provider for AspNetEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable").interpolater(|_, keys| keys.join("__"))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut root = Node::Branch(BTreeMap::new());
        for (name, value) in &self.vars {
            let path: Vec<String> = name.split("__").map(canonical_key).collect();
            if path.iter().any(String::is_empty) {
                continue;
            }
            root.insert(&path, value.clone());
        }
        let dict = match root.into_value() {
            Value::Dict(_, dict) => dict,
            _ => Dict::new(),
        };
        Ok(Profile::Default.collect(dict))
    }
}

/// Wraps a provider (the TOML file) so its keys are matched case-insensitively too.
pub struct Canonical<P>(pub P);

fn canonicalize(value: Value) -> Value {
    match value {
        Value::Dict(tag, dict) => Value::Dict(
            tag,
            dict.into_iter()
                .map(|(k, v)| (canonical_key(&k), canonicalize(v)))
                .collect(),
        ),
        Value::Array(tag, items) => {
            Value::Array(tag, items.into_iter().map(canonicalize).collect())
        }
        other => other,
    }
}

impl<P: Provider> Provider for Canonical<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        Ok(self
            .0
            .data()?
            .into_iter()
            .map(|(profile, dict)| {
                let dict = dict
                    .into_iter()
                    .map(|(k, v)| (canonical_key(&k), canonicalize(v)))
                    .collect();
                (profile, dict)
            })
            .collect())
    }
}
