//! Configuration sources that speak ASP.NET Core's naming: `Section__Key__0` environment
//! variables, matched case-insensitively, with `__N` indices turned into real lists.
//!
//! figment's own `Env` provider neither folds case into our `PascalCase` tree nor turns `__0`,
//! `__1` children into arrays, so [`AspNetEnv`] builds the tree itself and [`Canonical`] gives
//! a TOML file the same case-insensitive treatment.
//!
//! Both trim values and drop empty ones: an empty value counts as not set (Helm charts often
//! render unset values as `""`), so the next source down, or the built-in default, applies.
//! The exception is an item of a scope or client-id list (`RequiredScopes__0=""`): an empty
//! scope or client id is a mistake that validation names, not a missing setting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use figment::value::{Dict, Map, Tag, Value};
use figment::{Error, Metadata, Profile, Provider};

use super::settings::{ClientQuotaSettings, RoleMapping, RuleConfig, Settings};

/// Every key the settings tree knows, in its canonical spelling, read from the serialized
/// defaults (with one route rule and one role mapping, since their lists are empty by default). A key given in
/// any case is rewritten to this spelling; an unknown key is kept as written, so serde can name
/// it in an "unknown setting" error. Deriving the list means a new field needs no entry here;
/// `tests::every_struct_field_is_a_known_key` checks the derivation sees every field.
pub(super) static KNOWN_KEYS: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    let mut keys = BTreeSet::new();
    collect_keys(&SPECIMEN, &mut keys);
    keys
});

/// The top-level names (`AuthenticationScheme`, `Authentication`, `Gateway`): environment
/// variables under other roots are not ours and are ignored.
static ROOTS: LazyLock<Vec<String>> = LazyLock::new(|| match &*SPECIMEN {
    Value::Dict(_, dict) => dict.keys().cloned().collect(),
    _ => Vec::new(),
});

static SPECIMEN: LazyLock<Value> = LazyLock::new(|| {
    let mut specimen = Settings::default();
    specimen.gateway.rules = Some(vec![RuleConfig::default()]);
    specimen.authentication.schemes.bearer.role_mappings = vec![RoleMapping::default()];
    specimen.gateway.rate_limit.clients = vec![ClientQuotaSettings::default()];
    Value::serialize(&specimen).unwrap_or_else(|_| Value::from(Dict::new()))
});

fn collect_keys(value: &Value, keys: &mut BTreeSet<String>) {
    match value {
        Value::Dict(_, dict) => {
            for (key, child) in dict {
                keys.insert(key.clone());
                collect_keys(child, keys);
            }
        }
        Value::Array(_, items) => items.iter().for_each(|item| collect_keys(item, keys)),
        _ => {}
    }
}

fn canonical_key(key: &str) -> String {
    KNOWN_KEYS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(key))
        .map_or_else(|| key.to_owned(), Clone::clone)
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
            let value = value.trim();
            if path.iter().any(String::is_empty) || (value.is_empty() && !keeps_empty_items(&path))
            {
                continue;
            }
            root.insert(&path, value.to_owned());
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

/// Lists whose empty items are kept for validation to refuse (see the module doc).
const LISTS_WITHOUT_EMPTY_ITEMS: &[&str] =
    &["RequiredScopes", "AllowedClients", "Scopes", "Clients"];

/// `…__RequiredScopes__N` and the like: an item of a list that may not hold an empty value.
fn keeps_empty_items(path: &[String]) -> bool {
    match path {
        [.., list, index] => {
            index.bytes().all(|b| b.is_ascii_digit())
                && LISTS_WITHOUT_EMPTY_ITEMS.contains(&list.as_str())
        }
        _ => false,
    }
}

/// Canonical key spelling, trimmed strings, and no empty strings (see the module doc).
fn canonicalize(value: Value) -> Option<Value> {
    match value {
        Value::Dict(tag, dict) => Some(Value::Dict(tag, canonicalize_dict(dict))),
        Value::Array(tag, items) => Some(Value::Array(
            tag,
            items.into_iter().filter_map(canonicalize).collect(),
        )),
        Value::String(tag, text) => {
            let text = text.trim();
            (!text.is_empty()).then(|| Value::String(tag, text.to_owned()))
        }
        other => Some(other),
    }
}

fn canonicalize_dict(dict: Dict) -> Dict {
    dict.into_iter()
        .filter_map(|(k, v)| {
            let key = canonical_key(&k);
            let value = match v {
                Value::Array(tag, items) if LISTS_WITHOUT_EMPTY_ITEMS.contains(&key.as_str()) => {
                    Value::Array(tag, items.into_iter().map(trim_string).collect())
                }
                other => canonicalize(other)?,
            };
            Some((key, value))
        })
        .collect()
}

fn trim_string(value: Value) -> Value {
    match value {
        Value::String(tag, text) => Value::String(tag, text.trim().to_owned()),
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
            .map(|(profile, dict)| (profile, canonicalize_dict(dict)))
            .collect())
    }
}
