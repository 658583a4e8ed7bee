//! Dependency risk analysis (the seed's service_dependency_analysis:
//! `{dependencies, risks, suggestions}`): single points of failure, high
//! fan-in, cycles, deep synchronous chains, and disagreements between the
//! declared and the observed graph. Pure: a graph in, risks out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::reaches;

/// One edge of the graph to analyse.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeInfo {
    pub caller: String,
    pub callee: String,
    /// Declared by registration or config.
    pub declared: bool,
    /// Seen in traces.
    pub observed: bool,
}

impl EdgeInfo {
    /// The edges of a live dependency graph.
    pub fn of(graph: &warden_model::Graph) -> Vec<EdgeInfo> {
        graph
            .edges()
            .map(|(a, b, e)| EdgeInfo {
                caller: a.to_string(),
                callee: b.to_string(),
                declared: e.declared,
                observed: e.observed(),
            })
            .collect()
    }
}

/// Thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskParams {
    /// A service that this share of the other services depends on
    /// (transitively) is a single point of failure.
    pub spof_share: f64,
    /// Callers at or above which fan-in is high.
    pub fan_in: usize,
    /// Synchronous call chains at least this many calls deep are risky.
    pub max_depth: usize,
}

impl Default for RiskParams {
    fn default() -> Self {
        Self {
            spof_share: 0.5,
            fan_in: 3,
            max_depth: 4,
        }
    }
}

/// The kind of a risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskKind {
    SinglePointOfFailure,
    HighFanIn,
    Cycle,
    DeepSyncChain,
    DeclaredNotObserved,
    ObservedNotDeclared,
}

impl RiskKind {
    /// The kind's name, as it is serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::SinglePointOfFailure => "single_point_of_failure",
            RiskKind::HighFanIn => "high_fan_in",
            RiskKind::Cycle => "cycle",
            RiskKind::DeepSyncChain => "deep_sync_chain",
            RiskKind::DeclaredNotObserved => "declared_not_observed",
            RiskKind::ObservedNotDeclared => "observed_not_declared",
        }
    }
}

/// One risk with the services involved and a suggestion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    pub kind: RiskKind,
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
    pub services: Vec<String>,
    pub detail: String,
    pub suggestion: String,
}

/// Finds every risk in the graph. `nodes` may list services without edges.
pub fn analyze(nodes: &[String], edges: &[EdgeInfo], p: &RiskParams) -> Vec<Risk> {
    let mut all: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
    let mut callees: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut callers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        all.insert(&e.caller);
        all.insert(&e.callee);
        callees.entry(&e.caller).or_default().insert(&e.callee);
        callers.entry(&e.callee).or_default().insert(&e.caller);
    }
    let mut out = Vec::new();
    let n = all.len();
    // Single points of failure: services many others depend on.
    for s in &all {
        let dependents = all
            .iter()
            .filter(|o| *o != s && reaches(&callees, o, s))
            .count();
        if n > 2 && dependents as f64 >= p.spof_share * (n - 1) as f64 && dependents >= 2 {
            out.push(Risk {
                kind: RiskKind::SinglePointOfFailure,
                severity: "high",
                services: vec![s.to_string()],
                detail: format!("{dependents} of {} other services depend on {s}, directly or through others", n - 1),
                suggestion: format!(
                    "Run {s} with several replicas across zones, give its callers timeouts, retries with budgets and circuit breakers, and a degraded mode when it is down."
                ),
            });
        }
    }
    for (s, cs) in &callers {
        if cs.len() >= p.fan_in {
            let list: Vec<&str> = cs.iter().copied().collect();
            out.push(Risk {
                kind: RiskKind::HighFanIn,
                severity: "medium",
                services: vec![s.to_string()],
                detail: format!("{} services call {s}: {}", cs.len(), list.join(", ")),
                suggestion: format!("Protect {s} with per-caller rate limits and load shedding, and watch its saturation; a slowdown here spreads to {} callers.", cs.len()),
            });
        }
    }
    for cycle in cycles(&all, &callees) {
        out.push(Risk {
            kind: RiskKind::Cycle,
            severity: "high",
            services: cycle.clone(),
            detail: format!("call cycle: {} → {}", cycle.join(" → "), cycle[0]),
            suggestion: "Break the cycle (an event or a queue in one direction, or merge the services); cycles turn a slowdown into a retry storm and make deploy order fragile.".into(),
        });
    }
    let on_cycle: BTreeSet<String> = out
        .iter()
        .filter(|r| r.kind == RiskKind::Cycle)
        .flat_map(|r| r.services.clone())
        .collect();
    if let Some(chain) = longest_chain(&all, &callers, &callees, &on_cycle)
        && chain.len() > p.max_depth
    {
        out.push(Risk {
                kind: RiskKind::DeepSyncChain,
                severity: "medium",
                services: chain.clone(),
                detail: format!("{} calls deep: {}", chain.len() - 1, chain.join(" → ")),
                suggestion: "Shorten the chain: cache or precompute at the edge, call in parallel where possible, or make the tail asynchronous; latency and failure probabilities add up along it.".into(),
            });
    }
    let any_observed = edges.iter().any(|e| e.observed);
    for e in edges {
        if e.declared && !e.observed && any_observed {
            out.push(Risk {
                kind: RiskKind::DeclaredNotObserved,
                severity: "low",
                services: vec![e.caller.clone(), e.callee.clone()],
                detail: format!("{} declares a dependency on {} that traces never showed", e.caller, e.callee),
                suggestion: format!("Remove the stale declaration, or check that {} is traced; stale dependencies mislead impact analysis.", e.caller),
            });
        }
        let caller_declares = edges.iter().any(|x| x.caller == e.caller && x.declared);
        if e.observed && !e.declared && caller_declares {
            out.push(Risk {
                kind: RiskKind::ObservedNotDeclared,
                severity: "medium",
                services: vec![e.caller.clone(), e.callee.clone()],
                detail: format!("{} calls {} but does not declare it", e.caller, e.callee),
                suggestion: format!("Declare {} as a dependency of {} so that change reviews and incident ranking see it.", e.callee, e.caller),
            });
        }
    }
    out.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.services.cmp(&b.services)));
    out
}

/// Strongly connected components with more than one service (or a
/// self-call), each rotated to start at its smallest name (Tarjan).
fn cycles(all: &BTreeSet<&str>, callees: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<Vec<String>> {
    struct T<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        on: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, BTreeSet<&'a str>>, t: &mut T<'a>) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in g.get(v).into_iter().flatten().copied() {
            if !t.index.contains_key(w) {
                visit(w, g, t);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            let self_loop = g.get(v).is_some_and(|c| c.contains(v));
            if comp.len() > 1 || self_loop {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: vec![],
        next: 0,
        out: vec![],
    };
    for v in all {
        if !t.index.contains_key(v) {
            visit(v, callees, &mut t);
        }
    }
    t.out.sort();
    t.out
}

/// The longest call chain from an entry service (no callers), ignoring
/// services on cycles.
fn longest_chain(
    all: &BTreeSet<&str>,
    callers: &BTreeMap<&str, BTreeSet<&str>>,
    callees: &BTreeMap<&str, BTreeSet<&str>>,
    skip: &BTreeSet<String>,
) -> Option<Vec<String>> {
    fn depth<'a>(
        v: &'a str,
        callees: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        skip: &BTreeSet<String>,
        memo: &mut BTreeMap<&'a str, Vec<String>>,
    ) -> Vec<String> {
        if let Some(m) = memo.get(v) {
            return m.clone();
        }
        let mut best: Vec<String> = Vec::new();
        for w in callees.get(v).into_iter().flatten().copied() {
            if skip.contains(w) {
                continue;
            }
            let c = depth(w, callees, skip, memo);
            if c.len() > best.len() {
                best = c;
            }
        }
        let mut chain = vec![v.to_string()];
        chain.extend(best);
        memo.insert(v, chain.clone());
        chain
    }
    let mut memo = BTreeMap::new();
    all.iter()
        .filter(|v| callers.get(*v).is_none_or(|c| c.is_empty()) && !skip.contains(**v))
        .map(|v| depth(v, callees, skip, &mut memo))
        .max_by_key(|c| c.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: &str, b: &str) -> EdgeInfo {
        EdgeInfo {
            caller: a.into(),
            callee: b.into(),
            declared: true,
            observed: true,
        }
    }

    fn kinds(r: &[Risk], k: RiskKind) -> Vec<Vec<String>> {
        r.iter()
            .filter(|x| x.kind == k)
            .map(|x| x.services.clone())
            .collect()
    }

    #[test]
    fn the_shared_database_is_a_single_point_of_failure_with_high_fan_in() {
        // The demo's topology.
        let edges = [
            e("gw", "user"),
            e("gw", "order"),
            e("gw", "inventory"),
            e("user", "auth"),
            e("user", "db"),
            e("order", "payment"),
            e("order", "inventory"),
            e("order", "db"),
            e("order", "notify"),
            e("payment", "db"),
            e("inventory", "db"),
        ];
        let r = analyze(&[], &edges, &RiskParams::default());
        assert_eq!(
            kinds(&r, RiskKind::SinglePointOfFailure),
            vec![vec!["db".to_string()]]
        );
        assert_eq!(kinds(&r, RiskKind::HighFanIn), vec![vec!["db".to_string()]]);
        assert!(kinds(&r, RiskKind::Cycle).is_empty());
        assert!(r.iter().all(|x| !x.suggestion.is_empty()));
    }

    #[test]
    fn cycles_are_found_and_named() {
        let edges = [
            e("a", "b"),
            e("b", "c"),
            e("c", "a"),
            e("c", "d"),
            e("x", "x"),
        ];
        let r = analyze(&[], &edges, &RiskParams::default());
        assert_eq!(
            kinds(&r, RiskKind::Cycle),
            vec![
                vec!["a".to_string(), "b".to_string(), "c".to_string()],
                vec!["x".to_string()]
            ]
        );
    }

    #[test]
    fn a_deep_chain_is_reported_with_its_path() {
        let edges = [
            e("a", "b"),
            e("b", "c"),
            e("c", "d"),
            e("d", "e"),
            e("e", "f"),
            e("a", "z"),
        ];
        let r = analyze(&[], &edges, &RiskParams::default());
        let chains = kinds(&r, RiskKind::DeepSyncChain);
        assert_eq!(
            chains,
            vec![["a", "b", "c", "d", "e", "f"].map(String::from).to_vec()]
        );
        let short = analyze(&[], &[e("a", "b"), e("b", "c")], &RiskParams::default());
        assert!(kinds(&short, RiskKind::DeepSyncChain).is_empty());
    }

    #[test]
    fn declared_and_observed_graphs_are_compared() {
        let edges = [
            EdgeInfo {
                caller: "a".into(),
                callee: "b".into(),
                declared: true,
                observed: true,
            },
            EdgeInfo {
                caller: "a".into(),
                callee: "stale".into(),
                declared: true,
                observed: false,
            },
            EdgeInfo {
                caller: "a".into(),
                callee: "hidden".into(),
                declared: false,
                observed: true,
            },
            // c declares nothing: its observed calls are not "undeclared".
            EdgeInfo {
                caller: "c".into(),
                callee: "b".into(),
                declared: false,
                observed: true,
            },
        ];
        let r = analyze(&[], &edges, &RiskParams::default());
        assert_eq!(
            kinds(&r, RiskKind::DeclaredNotObserved),
            vec![vec!["a".to_string(), "stale".to_string()]]
        );
        assert_eq!(
            kinds(&r, RiskKind::ObservedNotDeclared),
            vec![vec!["a".to_string(), "hidden".to_string()]]
        );
    }

    #[test]
    fn kind_names_are_their_serialised_names() {
        for k in [
            RiskKind::SinglePointOfFailure,
            RiskKind::HighFanIn,
            RiskKind::Cycle,
            RiskKind::DeepSyncChain,
            RiskKind::DeclaredNotObserved,
            RiskKind::ObservedNotDeclared,
        ] {
            assert_eq!(serde_json::to_value(k).expect("json"), k.as_str());
        }
    }
}
