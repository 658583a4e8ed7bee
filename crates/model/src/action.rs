//! The closed set of remediation actions, the plan-step shape the analyst
//! speaks (the seed's `{action, target, params}`), gate decisions and
//! execution receipts. Anything that does not parse into `Action` is refused.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ServiceName, Timestamp};

/// Most replicas a scale action may ask for (gates may allow fewer).
pub const MAX_REPLICAS: u32 = 1000;

/// A remediation action. Closed: a model or a runbook can only ever produce
/// one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Raise the replica count to `replicas`.
    ScaleUp { target: ServiceName, replicas: u32 },
    /// Lower the replica count to `replicas`.
    ScaleDown { target: ServiceName, replicas: u32 },
    /// Restart every replica (rolling).
    Restart { target: ServiceName },
    /// Set configuration `key` to `value`.
    ConfigUpdate {
        target: ServiceName,
        key: String,
        value: String,
    },
    /// Roll back to `revision` (the previous one when absent).
    Rollback {
        target: ServiceName,
        revision: Option<u64>,
    },
    /// Do nothing, with the reason.
    None { reason: String },
}

/// The kind of an action, without its parameters (for allowlists).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    ScaleUp,
    ScaleDown,
    Restart,
    ConfigUpdate,
    Rollback,
    None,
}

impl ActionKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ScaleUp => "scale_up",
            ActionKind::ScaleDown => "scale_down",
            ActionKind::Restart => "restart",
            ActionKind::ConfigUpdate => "config_update",
            ActionKind::Rollback => "rollback",
            ActionKind::None => "none",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ActionKind::ScaleUp,
            ActionKind::ScaleDown,
            ActionKind::Restart,
            ActionKind::ConfigUpdate,
            ActionKind::Rollback,
            ActionKind::None,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl Action {
    /// The kind of this action.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::ScaleUp { .. } => ActionKind::ScaleUp,
            Action::ScaleDown { .. } => ActionKind::ScaleDown,
            Action::Restart { .. } => ActionKind::Restart,
            Action::ConfigUpdate { .. } => ActionKind::ConfigUpdate,
            Action::Rollback { .. } => ActionKind::Rollback,
            Action::None { .. } => ActionKind::None,
        }
    }

    /// The service the action changes (none for `None`).
    pub fn target(&self) -> Option<&ServiceName> {
        match self {
            Action::ScaleUp { target, .. }
            | Action::ScaleDown { target, .. }
            | Action::Restart { target }
            | Action::ConfigUpdate { target, .. }
            | Action::Rollback { target, .. } => Some(target),
            Action::None { .. } => None,
        }
    }

    /// The seed's plan-step shape.
    pub fn to_step(&self) -> PlanStep {
        let mut params = Map::new();
        match self {
            Action::ScaleUp { replicas, .. } | Action::ScaleDown { replicas, .. } => {
                params.insert("replicas".into(), Value::from(*replicas));
            }
            Action::ConfigUpdate { key, value, .. } => {
                params.insert("key".into(), Value::from(key.as_str()));
                params.insert("value".into(), Value::from(value.as_str()));
            }
            Action::Rollback {
                revision: Some(r), ..
            } => {
                params.insert("revision".into(), Value::from(*r));
            }
            Action::None { reason } => {
                params.insert("reason".into(), Value::from(reason.as_str()));
            }
            Action::Restart { .. } | Action::Rollback { revision: None, .. } => {}
        }
        PlanStep {
            action: self.kind().as_str().to_string(),
            target: self.target().map(|t| t.to_string()).unwrap_or_default(),
            params,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::ScaleUp { target, replicas } => {
                write!(f, "scale_up {target} to {replicas} replicas")
            }
            Action::ScaleDown { target, replicas } => {
                write!(f, "scale_down {target} to {replicas} replicas")
            }
            Action::Restart { target } => write!(f, "restart {target}"),
            Action::ConfigUpdate { target, key, value } => {
                write!(f, "config_update {target} {key}={value}")
            }
            Action::Rollback {
                target,
                revision: Some(r),
            } => {
                write!(f, "rollback {target} to revision {r}")
            }
            Action::Rollback {
                target,
                revision: None,
            } => {
                write!(f, "rollback {target} to the previous revision")
            }
            Action::None { reason } => write!(f, "none ({reason})"),
        }
    }
}

/// One step of a recovery plan in the seed's shape:
/// `{"action": "scale_up", "target": "user-service", "params": {"replicas": 4}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    pub action: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// Why a plan step does not parse into an `Action`; quotes the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    #[error(
        "unknown action {0:?}: expected one of scale_up, scale_down, restart, config_update, rollback, none"
    )]
    UnknownAction(String),
    #[error("invalid target: {0}")]
    Target(#[from] crate::NameError),
    #[error("action {action}: missing parameter {param:?}")]
    Missing { action: String, param: &'static str },
    #[error("action {action}: parameter {param:?} = {value} is invalid: {expected}")]
    Invalid {
        action: String,
        param: String,
        value: String,
        expected: &'static str,
    },
    #[error("action {action}: unknown parameter {param:?}")]
    UnknownParam { action: String, param: String },
}

impl PlanStep {
    /// Parses the step into the closed `Action` enum, checking every
    /// parameter's type and range.
    pub fn parse(&self) -> Result<Action, ActionError> {
        let kind = ActionKind::parse(&self.action)
            .ok_or_else(|| ActionError::UnknownAction(self.action.clone()))?;
        let act = kind.as_str().to_string();
        let allowed: &[&str] = match kind {
            ActionKind::ScaleUp | ActionKind::ScaleDown => &["replicas"],
            ActionKind::Restart => &[],
            ActionKind::ConfigUpdate => &["key", "value"],
            ActionKind::Rollback => &["revision"],
            ActionKind::None => &["reason"],
        };
        if let Some(p) = self.params.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ActionError::UnknownParam {
                action: act,
                param: p.clone(),
            });
        }
        if kind == ActionKind::None {
            let reason = match self.params.get("reason") {
                Some(Value::String(s)) => s.chars().take(500).collect(),
                _ => String::new(),
            };
            return Ok(Action::None { reason });
        }
        let target = ServiceName::parse(&self.target)?;
        let invalid = |param: &str, v: &Value, expected| ActionError::Invalid {
            action: act.clone(),
            param: param.to_string(),
            value: v.to_string(),
            expected,
        };
        Ok(match kind {
            ActionKind::ScaleUp | ActionKind::ScaleDown => {
                let v = self.params.get("replicas").ok_or(ActionError::Missing {
                    action: act.clone(),
                    param: "replicas",
                })?;
                let replicas = v
                    .as_u64()
                    .filter(|r| (1..=u64::from(MAX_REPLICAS)).contains(r))
                    .ok_or_else(|| invalid("replicas", v, "an integer from 1 to 1000"))?
                    as u32;
                if kind == ActionKind::ScaleUp {
                    Action::ScaleUp { target, replicas }
                } else {
                    Action::ScaleDown { target, replicas }
                }
            }
            ActionKind::Restart => Action::Restart { target },
            ActionKind::ConfigUpdate => {
                let get = |param: &'static str| {
                    self.params.get(param).ok_or(ActionError::Missing {
                        action: act.clone(),
                        param,
                    })
                };
                let kv = get("key")?;
                let key = kv
                    .as_str()
                    .filter(|k| is_config_key(k))
                    .ok_or_else(|| {
                        invalid(
                            "key",
                            kv,
                            "a config key of 1-128 letters, digits, '.', '_', '-'",
                        )
                    })?
                    .to_string();
                let vv = get("value")?;
                let value = match vv {
                    Value::String(s) if s.len() <= 1024 => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(invalid(
                            "value",
                            vv,
                            "a string of at most 1024 bytes, a number or a boolean",
                        ));
                    }
                };
                Action::ConfigUpdate { target, key, value }
            }
            ActionKind::Rollback => {
                let revision = match self.params.get("revision") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or_else(|| invalid("revision", v, "a non-negative integer"))?,
                    ),
                };
                Action::Rollback { target, revision }
            }
            ActionKind::None => unreachable!("handled above"),
        })
    }
}

/// Whether `k` is an acceptable configuration key.
pub fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A gate's verdict on one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny { reason: String },
    NeedsApproval { reason: String },
}

impl Decision {
    /// Whether the action may proceed.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// What an executor did, and the action that undoes it (if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub action: Action,
    pub executed_at: Timestamp,
    /// Human-readable description of the change (before → after).
    pub change: String,
    /// The action that reverts this one; `None` when nothing can be undone
    /// (a restart).
    pub undo: Option<Action>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(v: Value) -> PlanStep {
        serde_json::from_value(v).expect("step shape")
    }

    #[test]
    fn seed_shaped_steps_parse_into_actions() {
        let a = step(
            json!({"action": "scale_up", "target": "user-service", "params": {"replicas": 4}}),
        );
        assert_eq!(
            a.parse(),
            Ok(Action::ScaleUp {
                target: ServiceName::parse("user-service").expect("name"),
                replicas: 4
            })
        );
        let c = step(
            json!({"action": "config_update", "target": "x", "params": {"key": "pool.size", "value": 50}}),
        );
        assert!(matches!(c.parse(), Ok(Action::ConfigUpdate { value, .. }) if value == "50"));
        for a in [
            Action::Restart {
                target: ServiceName::parse("x").expect("name"),
            },
            Action::Rollback {
                target: ServiceName::parse("x").expect("name"),
                revision: Some(3),
            },
            Action::None {
                reason: "healthy".into(),
            },
        ] {
            assert_eq!(a.to_step().parse(), Ok(a));
        }
    }

    #[test]
    fn hostile_or_malformed_steps_are_refused_with_the_value() {
        let cases = [
            (
                json!({"action": "delete_namespace", "target": "x"}),
                "delete_namespace",
            ),
            (
                json!({"action": "scale_up", "target": "x", "params": {"replicas": 0}}),
                "replicas",
            ),
            (
                json!({"action": "scale_up", "target": "x", "params": {"replicas": "4"}}),
                "\"4\"",
            ),
            (
                json!({"action": "scale_up", "target": "x", "params": {"replicas": 99999}}),
                "99999",
            ),
            (
                json!({"action": "restart", "target": "x; rm -rf /"}),
                "rm -rf",
            ),
            (
                json!({"action": "restart", "target": "x", "params": {"force": true}}),
                "force",
            ),
            (
                json!({"action": "config_update", "target": "x", "params": {"key": "a b", "value": 1}}),
                "a b",
            ),
        ];
        for (v, needle) in cases {
            let err = step(v.clone()).parse().expect_err(&v.to_string());
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
        }
    }
}
