//! The effective settings as `check-config` prints them: serialized from the typed tree, one
//! line per value in environment spelling (`Gateway__TrustedProxies__0 = 10.0.0.0/8`), so a
//! new setting is printed without anyone listing it here.

use serde_json::Value;
use url::Url;

use super::{Settings, redact};

/// Name fragments that mark a setting's whole value as secret.
const SECRET_NAMES: &[&str] = &["secret", "password", "credential", "apikey", "privatekey"];

pub(super) fn redacted_lines(settings: &Settings) -> Vec<String> {
    let mut lines = Vec::new();
    if let Ok(value) = serde_json::to_value(settings) {
        walk("", &value, false, &mut lines);
    }
    lines
}

pub(super) fn walk(path: &str, value: &Value, secret: bool, lines: &mut Vec<String>) {
    let child = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}__{key}")
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, value) in map {
                let lower = key.to_ascii_lowercase();
                let secret = secret || SECRET_NAMES.iter().any(|s| lower.contains(s));
                walk(&child(key), value, secret, lines);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(&child(&i.to_string()), item, secret, lines);
            }
        }
        _ if secret => lines.push(format!("{path} = ***")),
        Value::String(text) => {
            let shown = match Url::parse(text) {
                Ok(url) if url.password().is_some() => redact(&url),
                _ => text.clone(),
            };
            lines.push(format!("{path} = {shown}"));
        }
        other => lines.push(format!("{path} = {other}")),
    }
}
