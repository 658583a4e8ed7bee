//! Remediation: gates that decide whether an action may run, executors that
//! run it and record how to undo it, and the verifier that judges whether
//! the service recovered.
//!
//! Gates are small composable stages (like Alertmanager's notify stages):
//! each one looks at one action and the context and says allow, deny (with
//! the reason) or needs-approval. They live here, outside the analyst: no
//! model output can pass a gate that config closes. The mode gate runs last,
//! so that a dry run still shows what every other gate would have said.

pub mod gates;
pub mod verify;

use warden_model::{Action, Receipt, Timestamp};

pub use gates::{ActionRecord, Gate, GateContext, Gates, Outcome, Verdict};
pub use verify::{SignalHealth, Verification, VerifyOutcome};

/// A boxed future, so that executors can be used as trait objects.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Why an executor could not apply an action.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ExecError(pub String);

/// Applies actions to the world (Kubernetes, the simulated mesh, a webhook)
/// and says how to undo each one.
pub trait Executor: Send + Sync {
    /// Short name for the journal.
    fn name(&self) -> &str;

    /// Applies `action`; the receipt says what changed and how to undo it.
    fn execute<'a>(
        &'a self,
        action: &'a Action,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Receipt, ExecError>>;
}
