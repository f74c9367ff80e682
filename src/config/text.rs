//! Typed leaves that operators write as text: URLs, socket addresses, CIDRs, durations, HTTP
//! methods, the log format. Environment variables are always text and a TOML file may write
//! `300` or `"00:05:00"` for the same duration, so these leaves accept a string, a number or a
//! boolean and parse its text. A parse error becomes figment's error for the setting, so the
//! message names it (`Gateway__Listen: 'x' is not a socket address ...`).
//!
//! Numbers and booleans are not here: figment's lossy extraction already reads `"300"` and
//! `"true"` from text. Use these with `#[serde(with = "text::one")]` (or `option`, `list`).

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::Method;
use ipnet::IpNet;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use url::Url;

use super::LogFormat;
use super::duration::parse_duration;

/// A setting value read from, and written back as, text.
pub trait Text: Sized {
    /// Parses trimmed, non-empty text; the error is the reason printed after the setting name.
    fn from_text(text: &str) -> Result<Self, String>;
    /// The text that [`Text::from_text`] reads back to the same value.
    fn to_text(&self) -> String;
}

impl Text for String {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
    fn to_text(&self) -> String {
        self.clone()
    }
}

impl Text for Duration {
    fn from_text(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }
    fn to_text(&self) -> String {
        format!("{}s", self.as_secs_f64())
    }
}

impl Text for SocketAddr {
    fn from_text(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| format!("'{text}' is not a socket address such as 0.0.0.0:8080"))
    }
    fn to_text(&self) -> String {
        self.to_string()
    }
}

impl Text for super::settings::DPoPMode {
    fn from_text(text: &str) -> Result<Self, String> {
        use super::settings::DPoPMode;
        [DPoPMode::Disabled, DPoPMode::Allowed, DPoPMode::Required]
            .into_iter()
            .find(|mode| mode.to_text().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!("'{text}' is not supported; accepted values: Disabled, Allowed, Required")
            })
    }
    fn to_text(&self) -> String {
        format!("{self:?}")
    }
}

/// A CIDR, or a single address meaning a /32 (/128).
impl Text for IpNet {
    fn from_text(text: &str) -> Result<Self, String> {
        text.parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
            .ok_or_else(|| format!("'{text}' is not an IP address or CIDR such as 10.0.0.0/8"))
    }
    fn to_text(&self) -> String {
        self.to_string()
    }
}

/// An `http://` or `https://` URL with a host. Whether `http://` is allowed depends on other
/// settings, so that is checked when the configuration is validated.
impl Text for Url {
    fn from_text(text: &str) -> Result<Self, String> {
        let url =
            Url::parse(text).map_err(|e| format!("'{}' is not a URL: {e}", redact_text(text)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme '{}' is not supported; use http:// or https://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        Ok(url)
    }
    fn to_text(&self) -> String {
        self.to_string()
    }
}

/// `redis://` or `rediss://` with a host; the redis crate must accept it too.
impl Text for super::settings::RedisUrl {
    fn from_text(text: &str) -> Result<Self, String> {
        let shown = redact_text(text);
        let url = Url::parse(text).map_err(|e| format!("'{shown}' is not a URL: {e}"))?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(format!(
                "scheme '{}' is not supported; use redis:// or rediss:// (TLS)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        ::redis::IntoConnectionInfo::into_connection_info(url.clone()).map_err(|e| {
            format!(
                "'{}' is not a Redis URL: {}",
                super::redact(&url),
                e.detail().unwrap_or("invalid")
            )
        })?;
        Ok(Self(url))
    }
    fn to_text(&self) -> String {
        self.0.to_string()
    }
}

/// A method name, upper-cased; `*` stands for every method.
impl Text for Method {
    fn from_text(text: &str) -> Result<Self, String> {
        Method::from_bytes(text.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("'{text}' is not an HTTP method"))
    }
    fn to_text(&self) -> String {
        self.as_str().to_owned()
    }
}

impl Text for LogFormat {
    fn from_text(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("json") {
            Ok(Self::Json)
        } else if text.eq_ignore_ascii_case("pretty") || text.eq_ignore_ascii_case("text") {
            Ok(Self::Pretty)
        } else {
            Err(format!(
                "'{text}' is not supported; accepted values: json, pretty"
            ))
        }
    }
    fn to_text(&self) -> String {
        match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
        }
        .to_owned()
    }
}

/// A URL's text with any user-info hidden, for error messages about unparsable URLs.
fn redact_text(text: &str) -> String {
    match text.rsplit_once('@') {
        Some((_, rest)) if text.contains("://") => format!("***@{rest}"),
        _ => text.to_owned(),
    }
}

/// Reads one scalar's text and parses it as `T`.
struct TextVisitor<T>(PhantomData<T>);

impl<T: Text> TextVisitor<T> {
    fn parse<E: de::Error>(text: &str) -> Result<T, E> {
        T::from_text(text.trim()).map_err(E::custom)
    }
}

impl<T: Text> Visitor<'_> for TextVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Self::parse(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Self::parse(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Self::parse(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Self::parse(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Self::parse(&v.to_string())
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<T, E> {
        Self::parse(&v.to_string())
    }
}

/// One list element, deserialized through the sequence so figment adds its index to errors.
struct TextSeed<T>(PhantomData<T>);

impl<'de, T: Text> DeserializeSeed<'de> for TextSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(TextVisitor(PhantomData))
    }
}

/// A required leaf: `#[serde(with = "text::one")]`.
pub mod one {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>, T: Text>(d: D) -> Result<T, D::Error> {
        d.deserialize_any(TextVisitor(PhantomData))
    }

    pub fn serialize<S: Serializer, T: Text>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_text())
    }
}

/// An optional leaf: `#[serde(with = "text::option")]`.
pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>, T: Text>(d: D) -> Result<Option<T>, D::Error> {
        struct OptionVisitor<T>(PhantomData<T>);
        impl<'de, T: Text> Visitor<'de> for OptionVisitor<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                one::deserialize(d).map(Some)
            }
        }
        d.deserialize_option(OptionVisitor(PhantomData))
    }

    pub fn serialize<S: Serializer, T: Text>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => s.serialize_some(&value.to_text()),
            None => s.serialize_none(),
        }
    }
}

/// A list: a real list (TOML, or `__0`, `__1` variables) or a single value, which is a list
/// of one. `#[serde(with = "text::list")]`.
pub mod list {
    use serde::ser::SerializeSeq;

    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>, T: Text>(d: D) -> Result<Vec<T>, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Text> Visitor<'de> for ListVisitor<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of values or a single value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element_seed(TextSeed(PhantomData))? {
                    items.push(item);
                }
                Ok(items)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
                TextVisitor(PhantomData).visit_str(v).map(|one| vec![one])
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<T>, E> {
                TextVisitor(PhantomData).visit_bool(v).map(|one| vec![one])
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
                TextVisitor(PhantomData).visit_i64(v).map(|one| vec![one])
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
                TextVisitor(PhantomData).visit_u64(v).map(|one| vec![one])
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<T>, E> {
                TextVisitor(PhantomData).visit_f64(v).map(|one| vec![one])
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<Vec<T>, A::Error> {
                Err(de::Error::custom("expected a list, found a table"))
            }
        }
        d.deserialize_any(ListVisitor(PhantomData))
    }

    pub fn serialize<S: Serializer, T: Text>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for value in values {
            seq.serialize_element(&value.to_text())?;
        }
        seq.end()
    }
}
