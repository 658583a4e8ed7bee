//! The executor for the simulated mesh.

use std::sync::{Arc, Mutex};

use warden_model::{Action, Receipt, Timestamp};
use warden_remediate::{BoxFuture, ExecError, Executor};
use warden_sim::Mesh;

/// Applies actions to a shared simulated mesh.
#[derive(Clone)]
pub struct SimExecutor {
    mesh: Arc<Mutex<Mesh>>,
}

impl SimExecutor {
    /// An executor acting on `mesh`.
    pub fn new(mesh: Arc<Mutex<Mesh>>) -> Self {
        Self { mesh }
    }
}

impl Executor for SimExecutor {
    fn name(&self) -> &str {
        "simulator"
    }

    fn execute<'a>(
        &'a self,
        action: &'a Action,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Receipt, ExecError>> {
        Box::pin(async move {
            let mut mesh = self.mesh.lock().unwrap_or_else(|p| p.into_inner());
            let before = mesh.snapshot();
            let change = mesh.apply(action).map_err(|e| ExecError(e.to_string()))?;
            let undo = action.target().and_then(|t| {
                let st = before.services.get(t)?;
                match action {
                    Action::ScaleUp { .. } | Action::ScaleDown { .. } => {
                        Some(if st.replicas > mesh.snapshot().services.get(t)?.replicas {
                            Action::ScaleUp {
                                target: t.clone(),
                                replicas: st.replicas,
                            }
                        } else {
                            Action::ScaleDown {
                                target: t.clone(),
                                replicas: st.replicas,
                            }
                        })
                    }
                    Action::ConfigUpdate { key, .. } => Some(Action::ConfigUpdate {
                        target: t.clone(),
                        key: key.clone(),
                        value: st.config.get(key).cloned().unwrap_or_default(),
                    }),
                    Action::Rollback { .. } => Some(Action::Rollback {
                        target: t.clone(),
                        revision: Some(st.revision),
                    }),
                    Action::Restart { .. } | Action::None { .. } => None,
                }
            });
            Ok(Receipt {
                action: action.clone(),
                executed_at: now,
                change,
                undo,
            })
        })
    }
}
