//! The gates, in the order they run.

use warden_config::{Mode, RecoveryConfig};
use warden_model::{Action, Decision, IncidentId, ServiceName, Timestamp};

/// An action that was executed (for cooldown, rate limit, idempotency).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    pub ts: Timestamp,
    pub incident: Option<IncidentId>,
    pub action: Action,
}

/// What a gate may look at.
#[derive(Debug, Clone, Copy)]
pub struct GateContext<'a> {
    pub now: Timestamp,
    pub incident: Option<&'a IncidentId>,
    /// Executed actions, any order.
    pub history: &'a [ActionRecord],
    /// Current replicas of the action's target, when known.
    pub current_replicas: Option<u32>,
    /// Services warden knows; actions on others are refused.
    pub known_services: &'a [ServiceName],
    /// An operator approved this action.
    pub approved: bool,
}

/// One gate.
pub trait Gate: Send + Sync {
    /// Name in the journal.
    fn name(&self) -> &'static str;
    /// The verdict on one action.
    fn check(&self, action: &Action, ctx: &GateContext<'_>) -> Decision;
}

/// What happens to the action after every gate spoke.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Run it.
    Execute,
    /// Record it; the mode does not execute (dry-run or observe).
    Record { mode: Mode },
    /// Wait for an operator.
    NeedsApproval,
    /// A gate refused it.
    Denied { gate: &'static str, reason: String },
}

/// Every gate's decision and the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decisions: Vec<(&'static str, Decision)>,
    pub outcome: Outcome,
}

/// The gate pipeline built from the `services.recovery` config.
pub struct Gates {
    gates: Vec<Box<dyn Gate>>,
    mode: Mode,
}

impl Gates {
    /// The standard pipeline: enabled, known target, allowlist, blast
    /// radius, idempotency, cooldown, rate limit; then the mode.
    pub fn from_config(c: &RecoveryConfig) -> Self {
        let gates: Vec<Box<dyn Gate>> = vec![
            Box::new(Enabled {
                enabled: c.enabled && c.auto_repair_enabled,
            }),
            Box::new(KnownTarget),
            Box::new(Allowlist {
                rules: c.allow.clone(),
            }),
            Box::new(BlastRadius {
                max_replicas: c.max_replicas,
                max_factor: c.max_scale_factor,
            }),
            Box::new(Idempotency),
            Box::new(Cooldown {
                ms: c.cooldown.millis(),
            }),
            Box::new(RateLimit {
                per_hour: c.max_actions_per_hour,
            }),
        ];
        Self {
            gates,
            mode: c.mode,
        }
    }

    /// Adds a gate before the mode gate (e.g. an Alertmanager silence check).
    pub fn push(&mut self, gate: Box<dyn Gate>) {
        self.gates.push(gate);
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs the gates in order, stopping at the first that does not allow;
    /// then applies the mode.
    pub fn evaluate(&self, action: &Action, ctx: &GateContext<'_>) -> Verdict {
        let mut decisions = Vec::new();
        for g in &self.gates {
            let d = g.check(action, ctx);
            decisions.push((g.name(), d.clone()));
            match d {
                Decision::Allow => {}
                Decision::Deny { reason } | Decision::NeedsApproval { reason } => {
                    return Verdict {
                        decisions,
                        outcome: Outcome::Denied {
                            gate: g.name(),
                            reason,
                        },
                    };
                }
            }
        }
        let (d, outcome) = match self.mode {
            Mode::Auto => (Decision::Allow, Outcome::Execute),
            Mode::Approve if ctx.approved => (Decision::Allow, Outcome::Execute),
            Mode::Approve => (
                Decision::NeedsApproval {
                    reason: "mode is approve: an operator must approve".into(),
                },
                Outcome::NeedsApproval,
            ),
            m @ (Mode::DryRun | Mode::Observe) => (
                Decision::Deny {
                    reason: format!("mode is {}: recorded, not executed", m.as_str()),
                },
                Outcome::Record { mode: m },
            ),
        };
        decisions.push(("mode", d));
        Verdict { decisions, outcome }
    }
}

struct Enabled {
    enabled: bool,
}

impl Gate for Enabled {
    fn name(&self) -> &'static str {
        "enabled"
    }
    fn check(&self, _: &Action, _: &GateContext<'_>) -> Decision {
        if self.enabled {
            Decision::Allow
        } else {
            Decision::Deny {
                reason: "services.recovery.enabled or auto_repair_enabled is false".into(),
            }
        }
    }
}

struct KnownTarget;

impl Gate for KnownTarget {
    fn name(&self) -> &'static str {
        "known_target"
    }
    fn check(&self, a: &Action, ctx: &GateContext<'_>) -> Decision {
        match a.target() {
            Some(t) if !ctx.known_services.contains(t) => Decision::Deny {
                reason: format!("{t} is not a known service"),
            },
            _ => Decision::Allow,
        }
    }
}

struct Allowlist {
    rules: Vec<warden_config::AllowRule>,
}

impl Gate for Allowlist {
    fn name(&self) -> &'static str {
        "allowlist"
    }
    fn check(&self, a: &Action, _: &GateContext<'_>) -> Decision {
        let Some(t) = a.target() else {
            return Decision::Allow;
        };
        if self.rules.iter().any(|r| r.allows(t, a.kind())) {
            Decision::Allow
        } else {
            Decision::Deny {
                reason: format!(
                    "no services.recovery.allow rule permits {} on {t}",
                    a.kind().as_str()
                ),
            }
        }
    }
}

struct BlastRadius {
    max_replicas: u32,
    max_factor: f64,
}

impl Gate for BlastRadius {
    fn name(&self) -> &'static str {
        "blast_radius"
    }
    fn check(&self, a: &Action, ctx: &GateContext<'_>) -> Decision {
        let deny = |reason: String| Decision::Deny { reason };
        match a {
            Action::ScaleUp { replicas, .. } => {
                if *replicas > self.max_replicas {
                    return deny(format!(
                        "{replicas} replicas exceeds max_replicas {}",
                        self.max_replicas
                    ));
                }
                if let Some(cur) = ctx.current_replicas {
                    if *replicas <= cur {
                        return deny(format!(
                            "scale_up to {replicas} is not above the current {cur}"
                        ));
                    }
                    if f64::from(*replicas) > f64::from(cur.max(1)) * self.max_factor {
                        return deny(format!(
                            "{cur} → {replicas} replicas exceeds max_scale_factor {}",
                            self.max_factor
                        ));
                    }
                }
                Decision::Allow
            }
            Action::ScaleDown { replicas, .. } => match ctx.current_replicas {
                Some(cur) if *replicas >= cur => deny(format!(
                    "scale_down to {replicas} is not below the current {cur}"
                )),
                Some(cur) if f64::from(cur) > f64::from((*replicas).max(1)) * self.max_factor => {
                    deny(format!(
                        "{cur} → {replicas} replicas exceeds max_scale_factor {}",
                        self.max_factor
                    ))
                }
                _ => Decision::Allow,
            },
            _ => Decision::Allow,
        }
    }
}

struct Idempotency;

impl Gate for Idempotency {
    fn name(&self) -> &'static str {
        "idempotency"
    }
    fn check(&self, a: &Action, ctx: &GateContext<'_>) -> Decision {
        let Some(inc) = ctx.incident else {
            return Decision::Allow;
        };
        if ctx
            .history
            .iter()
            .any(|r| r.incident.as_ref() == Some(inc) && &r.action == a)
        {
            Decision::Deny {
                reason: format!("{a} was already executed for {inc}"),
            }
        } else {
            Decision::Allow
        }
    }
}

struct Cooldown {
    ms: i64,
}

impl Gate for Cooldown {
    fn name(&self) -> &'static str {
        "cooldown"
    }
    fn check(&self, a: &Action, ctx: &GateContext<'_>) -> Decision {
        let Some(t) = a.target() else {
            return Decision::Allow;
        };
        let last = ctx
            .history
            .iter()
            .filter(|r| r.action.target() == Some(t))
            .map(|r| r.ts)
            .max();
        match last {
            Some(ts) if ctx.now.millis() - ts.millis() < self.ms => Decision::Deny {
                reason: format!(
                    "{t} was changed at {ts}; cooldown {} ends at {}",
                    warden_model::time::format_duration_ms(self.ms),
                    ts.plus_ms(self.ms)
                ),
            },
            _ => Decision::Allow,
        }
    }
}

struct RateLimit {
    per_hour: u32,
}

impl Gate for RateLimit {
    fn name(&self) -> &'static str {
        "rate_limit"
    }
    fn check(&self, a: &Action, ctx: &GateContext<'_>) -> Decision {
        if matches!(a, Action::None { .. }) {
            return Decision::Allow;
        }
        let recent = ctx
            .history
            .iter()
            .filter(|r| ctx.now.millis() - r.ts.millis() < 3_600_000)
            .count();
        if recent as u32 >= self.per_hour {
            Decision::Deny {
                reason: format!(
                    "{recent} actions in the last hour; max_actions_per_hour is {}",
                    self.per_hour
                ),
            }
        } else {
            Decision::Allow
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_config::{AllowRule, Duration};
    use warden_model::ActionKind;

    fn n(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("name")
    }

    fn cfg(mode: Mode) -> RecoveryConfig {
        RecoveryConfig {
            mode,
            allow: vec![AllowRule {
                service: "*".into(),
                actions: vec![ActionKind::Restart, ActionKind::ScaleUp],
            }],
            cooldown: Duration::from_secs(600),
            max_actions_per_hour: 2,
            max_replicas: 10,
            ..RecoveryConfig::default()
        }
    }

    fn ctx<'a>(
        history: &'a [ActionRecord],
        known: &'a [ServiceName],
        inc: Option<&'a IncidentId>,
    ) -> GateContext<'a> {
        GateContext {
            now: Timestamp::from_secs(10_000),
            incident: inc,
            history,
            current_replicas: Some(2),
            known_services: known,
            approved: false,
        }
    }

    fn restart(s: &str) -> Action {
        Action::Restart { target: n(s) }
    }

    #[test]
    fn dry_run_is_the_default_and_records_without_executing() {
        let g = Gates::from_config(&RecoveryConfig {
            allow: cfg(Mode::Auto).allow,
            ..RecoveryConfig::default()
        });
        let known = [n("a")];
        let v = g.evaluate(&restart("a"), &ctx(&[], &known, None));
        assert_eq!(v.outcome, Outcome::Record { mode: Mode::DryRun });
        assert!(
            v.decisions[..v.decisions.len() - 1]
                .iter()
                .all(|(_, d)| d.is_allow())
        );
    }

    #[test]
    fn auto_executes_and_approve_waits_for_an_operator() {
        let known = [n("a")];
        assert_eq!(
            Gates::from_config(&cfg(Mode::Auto))
                .evaluate(&restart("a"), &ctx(&[], &known, None))
                .outcome,
            Outcome::Execute
        );
        let g = Gates::from_config(&cfg(Mode::Approve));
        assert_eq!(
            g.evaluate(&restart("a"), &ctx(&[], &known, None)).outcome,
            Outcome::NeedsApproval
        );
        let approved = GateContext {
            approved: true,
            ..ctx(&[], &known, None)
        };
        assert_eq!(
            g.evaluate(&restart("a"), &approved).outcome,
            Outcome::Execute
        );
    }

    #[test]
    fn allowlist_refuses_kinds_and_unknown_targets() {
        let g = Gates::from_config(&cfg(Mode::Auto));
        let known = [n("a")];
        let v = g.evaluate(
            &Action::Rollback {
                target: n("a"),
                revision: None,
            },
            &ctx(&[], &known, None),
        );
        assert!(
            matches!(
                v.outcome,
                Outcome::Denied {
                    gate: "allowlist",
                    ..
                }
            ),
            "{v:?}"
        );
        let v = g.evaluate(&restart("ghost"), &ctx(&[], &known, None));
        assert!(
            matches!(
                v.outcome,
                Outcome::Denied {
                    gate: "known_target",
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn restart_is_refused_during_cooldown_and_past_the_hourly_limit() {
        let g = Gates::from_config(&cfg(Mode::Auto));
        let known = [n("a"), n("b"), n("c")];
        let h = [ActionRecord {
            ts: Timestamp::from_secs(9_700),
            incident: None,
            action: restart("a"),
        }];
        let v = g.evaluate(&restart("a"), &ctx(&h, &known, None));
        assert!(
            matches!(&v.outcome, Outcome::Denied { gate: "cooldown", reason } if reason.contains("cooldown")),
            "{v:?}"
        );
        let h2 = [
            ActionRecord {
                ts: Timestamp::from_secs(7_000),
                incident: None,
                action: restart("a"),
            },
            ActionRecord {
                ts: Timestamp::from_secs(8_000),
                incident: None,
                action: restart("b"),
            },
        ];
        let v = g.evaluate(&restart("c"), &ctx(&h2, &known, None));
        assert!(
            matches!(
                v.outcome,
                Outcome::Denied {
                    gate: "rate_limit",
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn scale_beyond_blast_radius_or_max_replicas_is_refused() {
        let g = Gates::from_config(&cfg(Mode::Auto));
        let known = [n("a")];
        let up = |r| Action::ScaleUp {
            target: n("a"),
            replicas: r,
        };
        assert_eq!(
            g.evaluate(&up(6), &ctx(&[], &known, None)).outcome,
            Outcome::Execute
        );
        for r in [2, 9, 11] {
            let v = g.evaluate(&up(r), &ctx(&[], &known, None));
            assert!(
                matches!(
                    v.outcome,
                    Outcome::Denied {
                        gate: "blast_radius",
                        ..
                    }
                ),
                "{r}: {v:?}"
            );
        }
    }

    #[test]
    fn the_same_action_is_not_taken_twice_for_one_incident() {
        let g = Gates::from_config(&RecoveryConfig {
            cooldown: Duration::from_secs(0),
            ..cfg(Mode::Auto)
        });
        let known = [n("a")];
        let inc = IncidentId("INC-00000001".into());
        let h = [ActionRecord {
            ts: Timestamp::from_secs(1),
            incident: Some(inc.clone()),
            action: restart("a"),
        }];
        let v = g.evaluate(&restart("a"), &ctx(&h, &known, Some(&inc)));
        assert!(
            matches!(
                v.outcome,
                Outcome::Denied {
                    gate: "idempotency",
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn disabled_recovery_denies_everything() {
        let g = Gates::from_config(&RecoveryConfig {
            auto_repair_enabled: false,
            ..cfg(Mode::Auto)
        });
        let known = [n("a")];
        let v = g.evaluate(&restart("a"), &ctx(&[], &known, None));
        assert!(matches!(
            v.outcome,
            Outcome::Denied {
                gate: "enabled",
                ..
            }
        ));
    }
}
