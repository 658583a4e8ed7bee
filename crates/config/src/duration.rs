//! Durations in config files, written Prometheus style (`90s`, `5m`, `30d`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use warden_model::time::{format_duration_ms, parse_duration_ms};

/// A non-negative duration, in milliseconds, written like `90s` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(i64);

impl Duration {
    /// From whole seconds.
    pub const fn from_secs(s: i64) -> Self {
        Self(s * 1000)
    }

    /// From milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Fractional seconds.
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Parses `90s`, `5m`, `1h30m`, `30d`, `250ms`.
    pub fn parse(s: &str) -> Result<Self, warden_model::time::DurationError> {
        parse_duration_ms(s).map(Self)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration_ms(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d|w))+$",
            "description": "A duration such as 90s, 5m, 1h30m or 30d."
        })
    }
}
