//! Correlation: turns a stream of signals (anomalies, alerts) into
//! incidents, the way Alertmanager groups alerts: a new group waits
//! `group_wait` for more signals before it is handed on; a signal joins an
//! open group active within `group_interval` when its service is the same
//! or close in the dependency graph (storm suppression); a repeated signal
//! (same fingerprint) is deduplicated; a group with no active signal for
//! `resolve_timeout` goes quiet.
//!
//! Incident identity derives from the first signal's fingerprint and its
//! time bucket, so the same fault gives the same id. Pure: time is passed in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use warden_model::{Graph, IncidentId, ServiceName, Timestamp};

/// Grouping parameters, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelateParams {
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
    pub resolve_timeout_ms: i64,
    /// A signal joins a group when its service is within this many hops of
    /// one of the group's services (ignoring edge direction).
    pub max_hops: usize,
}

impl Default for CorrelateParams {
    fn default() -> Self {
        Self {
            group_wait_ms: 30_000,
            group_interval_ms: 300_000,
            resolve_timeout_ms: 300_000,
            max_hops: 3,
        }
    }
}

impl CorrelateParams {
    /// From the `correlation` config section.
    pub fn from_config(c: &warden_config::CorrelationConfig) -> Self {
        Self {
            group_wait_ms: c.group_wait.millis(),
            group_interval_ms: c.group_interval.millis(),
            resolve_timeout_ms: c.resolve_timeout.millis(),
            ..Self::default()
        }
    }
}

/// One signal: a service, a fingerprint (`service/metric` or
/// `service/alertname`) and when it began.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub service: ServiceName,
    pub fingerprint: String,
    pub onset: Timestamp,
}

/// What changed in the incident picture.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentChange {
    /// A new incident, opened by this signal.
    Opened { id: IncidentId, signal: Signal },
    /// A new signal joined an open incident.
    Grouped { id: IncidentId, signal: Signal },
    /// `group_wait` is over: diagnose now.
    Ready { id: IncidentId },
    /// No signal was active for `resolve_timeout`.
    Quiet { id: IncidentId },
}

#[derive(Debug, Clone)]
struct Group {
    id: IncidentId,
    opened_at: Timestamp,
    last_active: Timestamp,
    services: BTreeSet<ServiceName>,
    fingerprints: BTreeMap<String, Timestamp>,
    ready: bool,
}

/// The correlator's state: open groups and recently used ids.
#[derive(Debug, Default)]
pub struct Correlator {
    params: CorrelateParams,
    groups: Vec<Group>,
    used_ids: VecDeque<IncidentId>,
}

impl Correlator {
    /// An empty correlator.
    pub fn new(params: CorrelateParams) -> Self {
        Self {
            params,
            groups: Vec::new(),
            used_ids: VecDeque::new(),
        }
    }

    /// Open incidents' ids.
    pub fn open_ids(&self) -> Vec<IncidentId> {
        self.groups.iter().map(|g| g.id.clone()).collect()
    }

    /// Re-registers an incident that was open before a restart, so that its
    /// signals keep grouping into it.
    pub fn restore(
        &mut self,
        id: IncidentId,
        opened_at: Timestamp,
        services: &[ServiceName],
        signals: &[String],
        now: Timestamp,
    ) {
        if self.groups.iter().any(|g| g.id == id) {
            return;
        }
        self.groups.push(Group {
            id,
            opened_at,
            last_active: now,
            services: services.iter().cloned().collect(),
            fingerprints: signals.iter().map(|s| (s.clone(), now)).collect(),
            ready: true,
        });
    }

    /// Takes one signal (new or still active) seen at `now`.
    pub fn ingest(&mut self, signal: Signal, graph: &Graph, now: Timestamp) -> Vec<IncidentChange> {
        // Already known: refresh it.
        if let Some(g) = self
            .groups
            .iter_mut()
            .find(|g| g.fingerprints.contains_key(&signal.fingerprint))
        {
            g.fingerprints.insert(signal.fingerprint.clone(), now);
            g.last_active = now;
            return vec![];
        }
        let p = &self.params;
        let joins = self
            .groups
            .iter_mut()
            .filter(|g| now.millis() - g.last_active.millis() <= p.group_interval_ms)
            .filter(|g| {
                g.services
                    .iter()
                    .any(|s| within_hops(graph, s, &signal.service, p.max_hops))
            })
            .max_by_key(|g| g.last_active);
        if let Some(g) = joins {
            g.services.insert(signal.service.clone());
            g.fingerprints.insert(signal.fingerprint.clone(), now);
            g.last_active = now;
            return vec![IncidentChange::Grouped {
                id: g.id.clone(),
                signal,
            }];
        }
        let bucket = signal.onset.millis().div_euclid(p.group_interval_ms.max(1));
        let mut id = IncidentId::derive(&signal.fingerprint, bucket);
        let mut n = 2;
        while self.used_ids.contains(&id) {
            id = IncidentId::derive(&format!("{}#{n}", signal.fingerprint), bucket);
            n += 1;
        }
        self.used_ids.push_back(id.clone());
        if self.used_ids.len() > 10_000 {
            self.used_ids.pop_front();
        }
        self.groups.push(Group {
            id: id.clone(),
            opened_at: now,
            last_active: now,
            services: BTreeSet::from([signal.service.clone()]),
            fingerprints: BTreeMap::from([(signal.fingerprint.clone(), now)]),
            ready: false,
        });
        vec![IncidentChange::Opened { id, signal }]
    }

    /// Advances timers: groups whose wait is over become ready; groups with
    /// no active signal for `resolve_timeout` go quiet and are dropped.
    pub fn tick(&mut self, now: Timestamp) -> Vec<IncidentChange> {
        let p = self.params.clone();
        let mut out = Vec::new();
        for g in &mut self.groups {
            if !g.ready && now.millis() - g.opened_at.millis() >= p.group_wait_ms {
                g.ready = true;
                out.push(IncidentChange::Ready { id: g.id.clone() });
            }
        }
        self.groups.retain(|g| {
            let quiet = now.millis() - g.last_active.millis() >= p.resolve_timeout_ms;
            if quiet {
                out.push(IncidentChange::Quiet { id: g.id.clone() });
            }
            !quiet
        });
        out
    }

    /// Forgets an incident (resolved by other means).
    pub fn close(&mut self, id: &IncidentId) {
        self.groups.retain(|g| &g.id != id);
    }
}

/// Whether `a` and `b` are within `max` hops, ignoring direction.
fn within_hops(g: &Graph, a: &ServiceName, b: &ServiceName, max: usize) -> bool {
    if a == b {
        return true;
    }
    let mut seen = BTreeSet::from([a.clone()]);
    let mut frontier = vec![a.clone()];
    for _ in 0..max {
        let mut next = Vec::new();
        for x in &frontier {
            for n in g.neighbours(x) {
                if &n == b {
                    return true;
                }
                if seen.insert(n.clone()) {
                    next.push(n);
                }
            }
        }
        frontier = next;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("name")
    }

    fn sig(s: &str, m: &str, t: i64) -> Signal {
        Signal {
            service: n(s),
            fingerprint: format!("{s}/{m}"),
            onset: Timestamp::from_secs(t),
        }
    }

    fn graph() -> Graph {
        let mut g = Graph::default();
        g.declare(&n("gw"), &n("user"));
        g.declare(&n("user"), &n("db"));
        g.add_node(&n("island"));
        g
    }

    #[test]
    fn a_storm_along_the_graph_becomes_one_incident() {
        let g = graph();
        let mut c = Correlator::new(CorrelateParams::default());
        let t = Timestamp::from_secs(1000);
        let first = c.ingest(sig("db", "error_rate", 1000), &g, t);
        let IncidentChange::Opened { id, .. } = &first[0] else {
            panic!("{first:?}")
        };
        let more = c.ingest(sig("user", "error_rate", 1010), &g, t.plus_secs(10));
        assert_eq!(
            more,
            vec![IncidentChange::Grouped {
                id: id.clone(),
                signal: sig("user", "error_rate", 1010)
            }]
        );
        c.ingest(sig("gw", "latency", 1015), &g, t.plus_secs(15));
        // Duplicate: nothing new.
        assert!(
            c.ingest(sig("db", "error_rate", 1000), &g, t.plus_secs(20))
                .is_empty()
        );
        assert_eq!(c.open_ids().len(), 1);
        // Unconnected service: its own incident.
        let other = c.ingest(sig("island", "cpu", 1020), &g, t.plus_secs(20));
        assert!(matches!(other[0], IncidentChange::Opened { .. }));
        assert_eq!(c.open_ids().len(), 2);
    }

    #[test]
    fn group_wait_then_ready_then_quiet() {
        let g = graph();
        let mut c = Correlator::new(CorrelateParams::default());
        let t = Timestamp::from_secs(0);
        c.ingest(sig("db", "cpu", 0), &g, t);
        assert!(c.tick(t.plus_secs(10)).is_empty());
        assert!(matches!(
            c.tick(t.plus_secs(30))[..],
            [IncidentChange::Ready { .. }]
        ));
        assert!(c.tick(t.plus_secs(200)).is_empty());
        assert!(matches!(
            c.tick(t.plus_secs(300))[..],
            [IncidentChange::Quiet { .. }]
        ));
        assert!(c.open_ids().is_empty());
    }

    #[test]
    fn the_same_fault_gets_the_same_id_and_a_repeat_gets_a_new_one() {
        let g = graph();
        let id_of = |c: &mut Correlator, t: i64| match &c.ingest(
            sig("db", "cpu", t),
            &g,
            Timestamp::from_secs(t),
        )[..]
        {
            [IncidentChange::Opened { id, .. }] => id.clone(),
            other => panic!("{other:?}"),
        };
        let mut a = Correlator::new(CorrelateParams::default());
        let mut b = Correlator::new(CorrelateParams::default());
        let first = id_of(&mut a, 1000);
        assert_eq!(first, id_of(&mut b, 1000));
        a.close(&first);
        let again = id_of(&mut a, 1010);
        assert_ne!(
            first, again,
            "a recurrence in the same bucket is a new incident"
        );
    }
}
