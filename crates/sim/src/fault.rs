//! The six fault scenarios and how each one is cleared.

use std::fmt;

use warden_model::{ActionKind, Rng, ServiceName};

/// A fault scenario of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// A runaway CPU consumer saturates the target's replicas; more replicas
    /// absorb it.
    CpuHog,
    /// The target leaks memory until restarted.
    MemoryLeak,
    /// A configuration change makes every request slower; reverting the key
    /// clears it.
    LatencyInjection,
    /// A new release fails a share of requests; rolling back clears it.
    ErrorBurst,
    /// A new release crashes on start; rolling back clears it.
    CrashLoop,
    /// database-service degrades (connection pool exhaustion); symptoms show
    /// upstream. A restart clears it.
    DependencyOutage,
}

/// An unknown scenario name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "unknown scenario {0:?}: expected one of cpu-hog, memory-leak, latency-injection, error-burst, crash-loop, dependency-outage"
)]
pub struct ScenarioError(pub String);

impl Scenario {
    /// All scenarios in a fixed order.
    pub const ALL: [Scenario; 6] = [
        Scenario::CpuHog,
        Scenario::MemoryLeak,
        Scenario::LatencyInjection,
        Scenario::ErrorBurst,
        Scenario::CrashLoop,
        Scenario::DependencyOutage,
    ];

    /// kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::CpuHog => "cpu-hog",
            Scenario::MemoryLeak => "memory-leak",
            Scenario::LatencyInjection => "latency-injection",
            Scenario::ErrorBurst => "error-burst",
            Scenario::CrashLoop => "crash-loop",
            Scenario::DependencyOutage => "dependency-outage",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Result<Scenario, ScenarioError> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| ScenarioError(s.to_string()))
    }

    /// The target, chosen deterministically from `seed` among `services`
    /// (dependency-outage always hits database-service).
    pub fn pick_target(self, seed: u64, services: &[ServiceName]) -> ServiceName {
        if self == Scenario::DependencyOutage
            && let Some(db) = services.iter().find(|s| s.as_str() == "database-service")
        {
            return db.clone();
        }
        let mut rng = Rng::new(seed).fork(self as u64 + 1);
        services[rng.below(services.len())].clone()
    }

    /// The kind of action that clears this fault on its target.
    pub fn fix(self) -> ActionKind {
        match self {
            Scenario::CpuHog => ActionKind::ScaleUp,
            Scenario::MemoryLeak | Scenario::DependencyOutage => ActionKind::Restart,
            Scenario::LatencyInjection => ActionKind::ConfigUpdate,
            Scenario::ErrorBurst | Scenario::CrashLoop => ActionKind::Rollback,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault active in the mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub scenario: Scenario,
    pub target: ServiceName,
    /// Simulated seconds since the epoch when it began.
    pub started_at_s: f64,
}
