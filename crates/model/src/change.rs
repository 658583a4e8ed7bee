//! Changes to a service reported by its deployment system (a rollout, a
//! config edit, a scale, a restart), with who made them. The analyst uses
//! recent changes as evidence ("errors began three minutes after revision
//! 42 rolled out").

use serde::{Deserialize, Serialize};

use crate::{ServiceName, Timestamp};

/// One change to one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub ts: Timestamp,
    pub service: ServiceName,
    /// Who made it: `warden` for warden's own actions, otherwise the
    /// reporting system (e.g. `deploy-pipeline`).
    pub actor: String,
    #[serde(flatten)]
    pub kind: ChangeKind,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    Deploy {
        from_revision: u64,
        to_revision: u64,
    },
    Config {
        key: String,
        old: String,
        new: String,
    },
    Scale {
        from: u32,
        to: u32,
    },
    Restart,
}

impl Change {
    /// Whether warden itself made this change.
    pub fn by_warden(&self) -> bool {
        self.actor == "warden"
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        match &self.kind {
            ChangeKind::Deploy {
                from_revision,
                to_revision,
            } => {
                format!(
                    "{} rolled out revision {to_revision} (was {from_revision}) at {} by {}",
                    self.service, self.ts, self.actor
                )
            }
            ChangeKind::Config { key, old, new } => {
                format!(
                    "{} config {key} changed {old:?} → {new:?} at {} by {}",
                    self.service, self.ts, self.actor
                )
            }
            ChangeKind::Scale { from, to } => format!(
                "{} scaled {from} → {to} at {} by {}",
                self.service, self.ts, self.actor
            ),
            ChangeKind::Restart => format!(
                "{} restarted at {} by {}",
                self.service, self.ts, self.actor
            ),
        }
    }
}
