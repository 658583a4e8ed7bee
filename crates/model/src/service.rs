//! Catalog entries: services warden knows, from discovery or registration.

use serde::{Deserialize, Serialize};

use crate::{ServiceName, Timestamp};

/// Longest description accepted, bytes.
pub const MAX_DESCRIPTION: usize = 4096;
/// Most endpoints or dependencies per service.
pub const MAX_LIST: usize = 256;
/// Longest endpoint path, bytes.
pub const MAX_ENDPOINT: usize = 512;

/// One service in the catalog (the seed's registration shape plus where it
/// came from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: ServiceName,
    pub description: String,
    pub endpoints: Vec<String>,
    pub dependencies: Vec<ServiceName>,
    /// `registration`, `config`, `simulator`, `traces`, `kubernetes`, …
    pub source: String,
    pub registered_at: Timestamp,
}

/// A registration as received (the seed's `service_info`), before checks.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// Why a registration was refused; names the field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RegistrationError {
    pub field: String,
    pub message: String,
}

impl Registration {
    /// Checks every field and builds the catalog entry.
    pub fn validate(self, source: &str, now: Timestamp) -> Result<Service, RegistrationError> {
        let err = |field: &str, message: String| RegistrationError {
            field: field.into(),
            message,
        };
        let name = ServiceName::parse(&self.name).map_err(|e| err("name", e.to_string()))?;
        if self.description.len() > MAX_DESCRIPTION {
            return Err(err(
                "description",
                format!(
                    "{} bytes; at most {MAX_DESCRIPTION} accepted",
                    self.description.len()
                ),
            ));
        }
        if self
            .description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(err("description", "contains control characters".into()));
        }
        if self.endpoints.len() > MAX_LIST {
            return Err(err(
                "endpoints",
                format!(
                    "{} entries; at most {MAX_LIST} accepted",
                    self.endpoints.len()
                ),
            ));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let ok = e.starts_with('/')
                && e.len() <= MAX_ENDPOINT
                && e.chars().all(|c| c.is_ascii_graphic());
            if !ok {
                let shown: String = e.chars().take(80).collect();
                return Err(err(
                    &format!("endpoints[{i}]"),
                    format!(
                        "{shown:?} is not a path (expected /…, printable ASCII, at most {MAX_ENDPOINT} bytes)"
                    ),
                ));
            }
        }
        if self.dependencies.len() > MAX_LIST {
            return Err(err(
                "dependencies",
                format!(
                    "{} entries; at most {MAX_LIST} accepted",
                    self.dependencies.len()
                ),
            ));
        }
        let mut dependencies = Vec::with_capacity(self.dependencies.len());
        for (i, d) in self.dependencies.iter().enumerate() {
            let dep = ServiceName::parse(d)
                .map_err(|e| err(&format!("dependencies[{i}]"), e.to_string()))?;
            if dep == name {
                return Err(err(
                    &format!("dependencies[{i}]"),
                    format!("{d:?} is the service itself"),
                ));
            }
            if !dependencies.contains(&dep) {
                dependencies.push(dep);
            }
        }
        Ok(Service {
            name,
            description: self.description,
            endpoints: self.endpoints,
            dependencies,
            source: source.into(),
            registered_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(v: serde_json::Value) -> Result<Service, RegistrationError> {
        serde_json::from_value::<Registration>(v)
            .expect("shape")
            .validate("registration", Timestamp::from_secs(0))
    }

    #[test]
    fn the_seed_example_registers() {
        let s = reg(serde_json::json!({
            "name": "user-service",
            "description": "用户管理服务",
            "endpoints": ["/api/users", "/api/profile"],
            "dependencies": ["auth-service", "database-service"]
        }))
        .expect("valid");
        assert_eq!(s.dependencies.len(), 2);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (serde_json::json!({"name": "bad name"}), "name"),
            (
                serde_json::json!({"name": "a", "endpoints": ["users"]}),
                "endpoints[0]",
            ),
            (
                serde_json::json!({"name": "a", "dependencies": ["ok", "x y"]}),
                "dependencies[1]",
            ),
            (
                serde_json::json!({"name": "a", "dependencies": ["a"]}),
                "dependencies[0]",
            ),
            (
                serde_json::json!({"name": "a", "description": "x".repeat(5000)}),
                "description",
            ),
        ];
        for (v, field) in cases {
            let e = reg(v).expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
    }
}
