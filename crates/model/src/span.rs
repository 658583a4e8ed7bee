//! Trace spans, as far as warden needs them: who called whom, how long it
//! took, whether it failed.

use serde::{Deserialize, Serialize};

use crate::{ServiceName, Timestamp};

/// A finished span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: u64,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub service: ServiceName,
    pub operation: String,
    pub start: Timestamp,
    pub duration_ms: f64,
    pub error: bool,
}

/// One call between services found by joining a span with its parent.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub caller: ServiceName,
    pub callee: ServiceName,
    /// The child span's duration and status (the callee's view, or the
    /// client's when the callee is not instrumented).
    pub latency_ms: f64,
    pub error: bool,
    pub ts: Timestamp,
}

type Key = (u64, u64);

struct Seen {
    service: ServiceName,
    /// Set while the span waits for its parent.
    waiting_for: Option<u64>,
}

/// Joins spans with their parents across requests, with bounded memory:
/// a span whose parent belongs to another service is a call from that
/// service. Either half may arrive first (services export their own spans,
/// children usually before parents); each span is remembered for
/// `window_ms` of arrival time, at most `max_pending` of them, oldest
/// forgotten first. Every parent/child pair is reported once, when its
/// second half arrives.
pub struct SpanJoiner {
    window_ms: i64,
    max_pending: usize,
    seen: std::collections::HashMap<Key, Seen>,
    /// Children (their own keys, with what their call needs) waiting for a
    /// parent key.
    orphans: std::collections::HashMap<Key, Vec<(Key, f64, bool, Timestamp)>>,
    order: std::collections::VecDeque<(Timestamp, Key)>,
    /// Spans forgotten before being joined (no parent arrived in time).
    pub expired: u64,
}

impl SpanJoiner {
    pub fn new(window_ms: i64, max_pending: usize) -> Self {
        Self {
            window_ms: window_ms.max(0),
            max_pending: max_pending.max(1),
            seen: Default::default(),
            orphans: Default::default(),
            order: Default::default(),
            expired: 0,
        }
    }

    /// Spans currently remembered.
    pub fn pending(&self) -> usize {
        self.seen.len()
    }

    /// Adds spans that arrived at `now`; returns the calls they complete.
    pub fn push(&mut self, spans: &[Span], now: Timestamp) -> Vec<Call> {
        self.evict(now);
        let mut calls = Vec::new();
        for s in spans {
            let key = (s.trace_id, s.span_id);
            if self.seen.contains_key(&key) {
                continue; // a retried export
            }
            let mut waiting_for = None;
            if let Some(p) = s.parent_span_id {
                match self.seen.get(&(s.trace_id, p)) {
                    Some(parent) => {
                        if parent.service != s.service {
                            calls.push(Call {
                                caller: parent.service.clone(),
                                callee: s.service.clone(),
                                latency_ms: s.duration_ms,
                                error: s.error,
                                ts: s.start,
                            });
                        }
                    }
                    None => {
                        waiting_for = Some(p);
                        self.orphans.entry((s.trace_id, p)).or_default().push((
                            key,
                            s.duration_ms,
                            s.error,
                            s.start,
                        ));
                    }
                }
            }
            if let Some(children) = self.orphans.remove(&key) {
                for (child, latency_ms, error, ts) in children {
                    if let Some(c) = self.seen.get_mut(&child) {
                        c.waiting_for = None;
                        if c.service != s.service {
                            calls.push(Call {
                                caller: s.service.clone(),
                                callee: c.service.clone(),
                                latency_ms,
                                error,
                                ts,
                            });
                        }
                    }
                }
            }
            self.seen.insert(
                key,
                Seen {
                    service: s.service.clone(),
                    waiting_for,
                },
            );
            self.order.push_back((now, key));
        }
        self.evict(now);
        calls
    }

    fn evict(&mut self, now: Timestamp) {
        while let Some(&(t, key)) = self.order.front() {
            if self.order.len() <= self.max_pending && now.millis() - t.millis() <= self.window_ms {
                break;
            }
            self.order.pop_front();
            if let Some(s) = self.seen.remove(&key)
                && let Some(p) = s.waiting_for
            {
                self.expired += 1;
                let pk = (key.0, p);
                if let Some(list) = self.orphans.get_mut(&pk) {
                    list.retain(|(k, ..)| *k != key);
                    if list.is_empty() {
                        self.orphans.remove(&pk);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: u64, id: u64, parent: Option<u64>, svc: &str, ms: f64) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            service: ServiceName::parse(svc).expect("valid"),
            operation: "op".into(),
            start: Timestamp::from_secs(1),
            duration_ms: ms,
            error: false,
        }
    }

    fn pairs(calls: &[Call]) -> Vec<(String, String)> {
        calls
            .iter()
            .map(|c| (c.caller.to_string(), c.callee.to_string()))
            .collect()
    }

    #[test]
    fn joins_in_either_order_and_across_pushes() {
        let t = Timestamp::from_secs(10);
        let mut j = SpanJoiner::new(30_000, 100);
        // The callee's spans arrive first, the caller's later.
        let c1 = j.push(&[span(1, 3, Some(2), "payment", 5.0)], t);
        assert!(c1.is_empty());
        let c2 = j.push(
            &[
                span(1, 1, None, "checkout", 20.0),
                span(1, 2, Some(1), "checkout", 8.0), // client span, same service
            ],
            t,
        );
        assert_eq!(pairs(&c2), vec![("checkout".into(), "payment".into())]);
        assert_eq!(c2[0].latency_ms, 5.0);
        // Parent first: reported when the child comes.
        let c3 = j.push(&[span(1, 4, Some(1), "inventory", 3.0)], t);
        assert_eq!(pairs(&c3), vec![("checkout".into(), "inventory".into())]);
        // A retried export reports nothing twice.
        assert!(
            j.push(&[span(1, 4, Some(1), "inventory", 3.0)], t)
                .is_empty()
        );
        // Same span id in another trace is another span.
        assert!(j.push(&[span(2, 3, Some(2), "payment", 5.0)], t).is_empty());
    }

    #[test]
    fn memory_is_bounded_and_late_halves_are_forgotten() {
        let t = Timestamp::from_secs(10);
        let mut j = SpanJoiner::new(1_000, 1_000);
        for i in 0..10_000 {
            j.push(&[span(i, 2, Some(1), "b", 1.0)], t);
        }
        assert_eq!(j.pending(), 1_000);
        assert_eq!(j.expired, 9_000);
        assert!(j.orphans.len() <= 1_000);
        // Past the window the child is gone: its parent finds nothing.
        let later = t.plus_secs(5);
        assert!(j.push(&[span(9_999, 1, None, "a", 1.0)], later).is_empty());
        assert_eq!(j.pending(), 1);
        assert!(j.orphans.is_empty());
    }
}
