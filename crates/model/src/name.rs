//! Service names, parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest accepted service name (a DNS subdomain, as in Kubernetes).
pub const MAX_NAME_LEN: usize = 253;

/// A validated service name: 1–253 characters, ASCII letters, digits, `-`,
/// `.` and `_`, starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ServiceName(pub(crate) String);

/// Why a service name was refused; quotes the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NameError {
    #[error("service name is empty")]
    Empty,
    #[error("service name {0:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
    #[error(
        "service name {0:?} is invalid: use letters, digits, '-', '.', '_', starting and ending with a letter or digit"
    )]
    Invalid(String),
}

impl ServiceName {
    /// Parses `s` into a service name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            let shown: String = s.chars().take(40).collect();
            return Err(NameError::TooLong(format!("{shown}…")));
        }
        let ok_inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        let first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let last = s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
        if !(first && last && s.chars().all(ok_inner)) {
            return Err(NameError::Invalid(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ServiceName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ServiceName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ServiceName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ServiceName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME_LEN,
            "pattern": "^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_style_names() {
        for n in ["user-service", "a", "db.primary", "svc_2", "API-Gateway"] {
            assert_eq!(
                ServiceName::parse(n).map(|s| s.to_string()),
                Ok(n.to_string())
            );
        }
    }

    #[test]
    fn rejects_bad_names_naming_the_value() {
        assert_eq!(ServiceName::parse(""), Err(NameError::Empty));
        for n in ["-lead", "trail-", "has space", "a/b", "ümlaut", "x;drop"] {
            let e = ServiceName::parse(n).expect_err(n);
            assert!(e.to_string().contains(n), "{e}");
        }
        assert!(matches!(
            ServiceName::parse(&"a".repeat(300)),
            Err(NameError::TooLong(_))
        ));
    }
}
