//! Verification: after an action, watch the signals that were sick and the
//! service-level signals; judge recovered, not recovered, or worse.

use warden_model::{Action, IncidentId, Metric, Receipt, ServiceName, Timestamp};

/// The latest health of one signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalHealth {
    /// Robust z of the latest sample against its baseline.
    pub z: f64,
    /// Whether the latest sample is out of line.
    pub exceeds: bool,
}

/// One verification in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub incident: IncidentId,
    pub receipt: Receipt,
    pub started: Timestamp,
    pub deadline: Timestamp,
    /// No judgement before this (the action needs time to take effect).
    pub settle_until: Timestamp,
    /// Signals watched: (service, metric, z when the action ran).
    pub watch: Vec<(ServiceName, Metric, f64)>,
    /// The root-cause signal, whose worsening triggers an early undo.
    pub primary: (ServiceName, Metric),
    healthy_checks: u32,
}

/// The judgement at one check.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifyOutcome {
    Pending,
    Recovered(String),
    NotRecovered(String),
    Worse(String),
}

impl Verification {
    /// Starts verifying `receipt` at `now` for `window_ms`.
    pub fn start(
        incident: IncidentId,
        receipt: Receipt,
        now: Timestamp,
        window_ms: i64,
        primary: (ServiceName, Metric),
        watch: Vec<(ServiceName, Metric, f64)>,
    ) -> Self {
        Self {
            incident,
            receipt,
            started: now,
            deadline: now.plus_ms(window_ms),
            settle_until: now.plus_ms((window_ms / 3).max(1)),
            watch,
            primary,
            healthy_checks: 0,
        }
    }

    /// The action under verification.
    pub fn action(&self) -> &Action {
        &self.receipt.action
    }

    /// Judges at `now` given each watched signal's health (None: no data).
    /// Recovered after two consecutive healthy checks past the settle time;
    /// worse when the primary signal's z doubled; not recovered at the
    /// deadline.
    pub fn check(
        &mut self,
        now: Timestamp,
        health: impl Fn(&ServiceName, Metric) -> Option<SignalHealth>,
    ) -> VerifyOutcome {
        if now < self.settle_until {
            return VerifyOutcome::Pending;
        }
        let mut sick = Vec::new();
        for (s, m, z0) in &self.watch {
            match health(s, *m) {
                Some(h) if h.exceeds => {
                    if (s, *m) == (&self.primary.0, self.primary.1)
                        && z0.abs() > 0.0
                        && h.z.abs() > 2.0 * z0.abs()
                    {
                        return VerifyOutcome::Worse(format!(
                            "{s} {m} got worse: z {:.1} → {:.1}",
                            z0, h.z
                        ));
                    }
                    sick.push(format!("{s} {m} (z {:.1})", h.z));
                }
                Some(_) => {}
                None => sick.push(format!("{s} {m} (no data)")),
            }
        }
        if sick.is_empty() {
            self.healthy_checks += 1;
            if self.healthy_checks >= 2 || now >= self.deadline {
                return VerifyOutcome::Recovered(format!(
                    "{} watched signals back within baseline {:.0}s after the action",
                    self.watch.len(),
                    now.secs_since(self.started)
                ));
            }
            return VerifyOutcome::Pending;
        }
        self.healthy_checks = 0;
        if now >= self.deadline {
            VerifyOutcome::NotRecovered(format!(
                "still out of line at the deadline: {}",
                sick.join(", ")
            ))
        } else {
            VerifyOutcome::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("name")
    }

    fn v() -> Verification {
        let action = Action::Restart { target: n("a") };
        let receipt = Receipt {
            action,
            executed_at: Timestamp::from_secs(0),
            change: "restarted".into(),
            undo: None,
        };
        Verification::start(
            IncidentId("INC-00000001".into()),
            receipt,
            Timestamp::from_secs(0),
            180_000,
            (n("a"), Metric::ErrorRate),
            vec![
                (n("a"), Metric::ErrorRate, 10.0),
                (n("a"), Metric::RequestLatencyP95, 8.0),
            ],
        )
    }

    #[test]
    fn recovers_after_two_healthy_checks_past_settle() {
        let mut x = v();
        let ok = |_: &ServiceName, _: Metric| {
            Some(SignalHealth {
                z: 0.5,
                exceeds: false,
            })
        };
        assert_eq!(
            x.check(Timestamp::from_secs(30), ok),
            VerifyOutcome::Pending,
            "settling"
        );
        assert_eq!(
            x.check(Timestamp::from_secs(60), ok),
            VerifyOutcome::Pending
        );
        assert!(matches!(
            x.check(Timestamp::from_secs(120), ok),
            VerifyOutcome::Recovered(_)
        ));
    }

    #[test]
    fn not_recovered_at_the_deadline_names_the_sick_signal() {
        let mut x = v();
        let sick = |_: &ServiceName, m: Metric| {
            Some(SignalHealth {
                z: if m == Metric::ErrorRate { 12.0 } else { 0.0 },
                exceeds: m == Metric::ErrorRate,
            })
        };
        assert_eq!(
            x.check(Timestamp::from_secs(120), sick),
            VerifyOutcome::Pending
        );
        match x.check(Timestamp::from_secs(180), sick) {
            VerifyOutcome::NotRecovered(d) => assert!(d.contains("error_rate"), "{d}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_doubling_of_the_primary_signal_is_worse() {
        let mut x = v();
        let worse = |_: &ServiceName, _: Metric| {
            Some(SignalHealth {
                z: 25.0,
                exceeds: true,
            })
        };
        assert!(matches!(
            x.check(Timestamp::from_secs(60), worse),
            VerifyOutcome::Worse(_)
        ));
    }
}
