//! Data coming in over HTTP: the Prometheus remote-write 1.0 receiver
//! (`POST /api/v1/write`), and warden's own counters in OpenMetrics text at
//! `GET /metrics`.
//!
//! Remote write: the body is a snappy-compressed (block format) protobuf
//! `prometheus.WriteRequest`. Each series whose `__name__` is one of
//! warden's metric names and that carries the configured service label
//! becomes samples for the loop (queued in [`Live::inbox`], drained every
//! second by `demo` and `serve`); other series are counted as dropped, not
//! refused, since Prometheus sends everything it has.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use warden_model::{Metric, Sample, ServiceName, Timestamp};

use warden_config::Role;

use crate::auth::{Principal, require_role};
use crate::routes::error_json;
use crate::{ApiState, Live, read_live, write_live};

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct PromSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.TimeSeries` (exemplars and histograms are skipped).
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<PromSample>,
}

/// `prometheus.WriteRequest` (metadata is skipped).
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("Content-Encoding is {0:?}: remote write 1.0 bodies are snappy-compressed")]
    Encoding(String),
    #[error("body is not snappy (block format): {0}")]
    Snappy(String),
    #[error("decompressed body would be {size} bytes; at most {max}")]
    TooLarge { size: usize, max: usize },
    #[error("body is not a protobuf WriteRequest: {0}")]
    Protobuf(String),
    #[error("{n} series in one request; at most {max}")]
    TooManySeries { n: usize, max: usize },
    #[error(
        "tenant {tenant:?}: {new} new series would make {total} active; at most {max} \
         (integrations.remote_write.max_active_series)"
    )]
    TooManyActiveSeries {
        tenant: String,
        new: usize,
        total: usize,
        max: usize,
    },
    #[error("series {index} ({name}) has {n} labels; at most {max}")]
    TooManyLabels {
        index: usize,
        name: String,
        n: usize,
        max: usize,
    },
}

/// What a write amounted to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub samples: Vec<Sample>,
    /// (reason, count) of samples not taken.
    pub dropped: Vec<(&'static str, u64)>,
}

/// A protobuf wire-format reader for `WriteRequest`, borrowing label text
/// from the body instead of allocating it (prost's derived decoder
/// allocates every label name and value; at a million samples a second
/// that was most of the receiver's time). The prost types above stay the
/// schema, for encoding and for tests.
mod wire {
    pub enum Value<'a> {
        Varint(u64),
        Fixed64(u64),
        Len(&'a [u8]),
        Fixed32,
    }

    pub struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        pub fn new(buf: &'a [u8]) -> Self {
            Self { buf, pos: 0 }
        }

        fn varint(&mut self) -> Result<u64, String> {
            let mut v = 0u64;
            for shift in (0..70).step_by(7) {
                let Some(&b) = self.buf.get(self.pos) else {
                    return Err(format!("truncated varint at byte {}", self.pos));
                };
                self.pos += 1;
                if shift == 63 && b > 1 {
                    return Err(format!("varint overflows 64 bits at byte {}", self.pos));
                }
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return Ok(v);
                }
            }
            Err(format!("varint longer than 10 bytes at byte {}", self.pos))
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .pos
                .checked_add(n)
                .filter(|&e| e <= self.buf.len())
                .ok_or_else(|| {
                    format!(
                        "field of {n} bytes at byte {} runs past the end ({} bytes)",
                        self.pos,
                        self.buf.len()
                    )
                })?;
            let s = &self.buf[self.pos..end];
            self.pos = end;
            Ok(s)
        }

        /// The next field, or None at the end.
        pub fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
            if self.pos >= self.buf.len() {
                return Ok(None);
            }
            let at = self.pos;
            let key = self.varint()?;
            let field = key >> 3;
            if field == 0 {
                return Err(format!("field number 0 at byte {at}"));
            }
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    let b = self.take(8)?;
                    Value::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or_default()))
                }
                2 => {
                    let n = self.varint()?;
                    let n = usize::try_from(n).map_err(|_| format!("length {n} at byte {at}"))?;
                    Value::Len(self.take(n)?)
                }
                5 => {
                    self.take(4)?;
                    Value::Fixed32
                }
                w => return Err(format!("wire type {w} (field {field}) at byte {at}")),
            };
            Ok(Some((field, value)))
        }
    }

    fn wrong(what: &str, field: u64) -> String {
        format!("{what} field {field} has the wrong wire type")
    }

    fn text<'a>(b: &'a [u8], what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(b).map_err(|e| format!("{what} is not valid UTF-8: {e}"))
    }

    /// One `TimeSeries`: labels (1) and samples (2); exemplars and
    /// histograms are skipped.
    pub fn time_series<'a>(
        buf: &'a [u8],
        labels: &mut Vec<(&'a str, &'a str)>,
        samples: &mut Vec<(f64, i64)>,
    ) -> Result<(), String> {
        labels.clear();
        samples.clear();
        let mut r = Reader::new(buf);
        while let Some((field, value)) = r.field()? {
            match (field, value) {
                (1, Value::Len(l)) => {
                    let (mut name, mut value) = ("", "");
                    let mut lr = Reader::new(l);
                    while let Some((f, v)) = lr.field()? {
                        match (f, v) {
                            (1, Value::Len(b)) => name = text(b, "a label name")?,
                            (2, Value::Len(b)) => value = text(b, "a label value")?,
                            (1 | 2, _) => return Err(wrong("Label", f)),
                            _ => {}
                        }
                    }
                    labels.push((name, value));
                }
                (2, Value::Len(sb)) => {
                    let (mut value, mut ts) = (0.0, 0i64);
                    let mut sr = Reader::new(sb);
                    while let Some((f, v)) = sr.field()? {
                        match (f, v) {
                            (1, Value::Fixed64(bits)) => value = f64::from_bits(bits),
                            (2, Value::Varint(t)) => ts = t as i64,
                            (1 | 2, _) => return Err(wrong("Sample", f)),
                            _ => {}
                        }
                    }
                    samples.push((value, ts));
                }
                (1 | 2, _) => return Err(wrong("TimeSeries", field)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Decodes and maps one remote-write body with the limits of `tenant`.
pub fn decode(
    body: &[u8],
    encoding: Option<&str>,
    c: &warden_config::RemoteWriteConfig,
    tenant: &str,
) -> Result<Decoded, WriteError> {
    let (max_series, max_labels, _) = c.limits_for(tenant);
    match encoding {
        Some(e) if e.eq_ignore_ascii_case("snappy") => {}
        other => return Err(WriteError::Encoding(other.unwrap_or("").to_string())),
    }
    let size = snap::raw::decompress_len(body).map_err(|e| WriteError::Snappy(e.to_string()))?;
    if size > c.max_decoded_bytes {
        return Err(WriteError::TooLarge {
            size,
            max: c.max_decoded_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| WriteError::Snappy(e.to_string()))?;
    let mut out = Decoded::default();
    let (mut unknown, mut no_service, mut stale) = (0u64, 0u64, 0u64);
    let mut series = 0usize;
    // A series' labels and samples, borrowed from the body (reused).
    let mut labels: Vec<(&str, &str)> = Vec::new();
    let mut samples: Vec<(f64, i64)> = Vec::new();
    let mut r = wire::Reader::new(&raw);
    while let Some((field, value)) = r.field().map_err(WriteError::Protobuf)? {
        if field != 1 {
            continue;
        }
        let wire::Value::Len(ts) = value else {
            return Err(WriteError::Protobuf(
                "WriteRequest field 1 has the wrong wire type".into(),
            ));
        };
        series += 1;
        if series > max_series {
            // Count them all, for the message, without keeping anything.
            let mut n = series;
            while let Some((f, v)) = r.field().map_err(WriteError::Protobuf)? {
                n += usize::from(f == 1 && matches!(v, wire::Value::Len(_)));
            }
            return Err(WriteError::TooManySeries { n, max: max_series });
        }
        wire::time_series(ts, &mut labels, &mut samples).map_err(WriteError::Protobuf)?;
        let index = series - 1;
        let label = |n: &str| labels.iter().find(|l| l.0 == n).map(|l| l.1);
        let name = label("__name__").unwrap_or("");
        if labels.len() > max_labels {
            return Err(WriteError::TooManyLabels {
                index,
                name: name.to_string(),
                n: labels.len(),
                max: max_labels,
            });
        }
        let n = samples.len() as u64;
        let Some(metric) = Metric::parse(name) else {
            unknown += n;
            continue;
        };
        let Some(service) = label(&c.service_label).and_then(|v| ServiceName::parse(v).ok()) else {
            no_service += n;
            continue;
        };
        for &(value, ts) in &samples {
            // NaN is Prometheus' staleness marker (and no value otherwise).
            if !value.is_finite() {
                stale += 1;
                continue;
            }
            out.samples.push(Sample {
                service: service.clone(),
                metric,
                ts: Timestamp(ts),
                value,
            });
        }
    }
    out.dropped = [
        ("unknown_metric", unknown),
        ("no_service_label", no_service),
        ("not_finite", stale),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    Ok(out)
}

/// One tenant's active series: when each (service, metric) was last
/// written.
#[derive(Debug, Default)]
pub struct TenantSeries {
    by_service: std::collections::HashMap<ServiceName, [Option<Timestamp>; 8]>,
    active: usize,
}

impl TenantSeries {
    /// Series currently counted as active.
    pub fn active(&self) -> usize {
        self.active
    }

    fn is_new(&self, svc: &ServiceName, slot: usize) -> bool {
        self.by_service.get(svc).is_none_or(|a| a[slot].is_none())
    }

    /// Forgets series not written since `now - ttl_ms`.
    fn expire(&mut self, now: Timestamp, ttl_ms: i64) {
        let mut active = 0;
        self.by_service.retain(|_, slots| {
            for s in slots.iter_mut() {
                if s.is_some_and(|t| now.millis() - t.millis() > ttl_ms) {
                    *s = None;
                }
            }
            let n = slots.iter().filter(|s| s.is_some()).count();
            active += n;
            n > 0
        });
        self.active = active;
    }
}

/// Admits the series of `samples` against `tenant`'s active-series limit
/// at `now`: all or nothing. Series not written for `ttl_ms` stop counting.
pub fn admit_series(
    live: &mut Live,
    tenant: &str,
    samples: &[Sample],
    max_active: usize,
    ttl_ms: i64,
    now: Timestamp,
) -> Result<(), WriteError> {
    let t = live.tenant_series.entry(tenant.to_string()).or_default();
    // Samples of one series are contiguous: one lookup per run.
    let runs = || {
        samples.iter().enumerate().filter_map(|(i, s)| {
            let same =
                i > 0 && samples[i - 1].metric == s.metric && samples[i - 1].service == s.service;
            (!same).then_some((&s.service, s.metric.index()))
        })
    };
    let count_new = |t: &TenantSeries| {
        let mut new: Vec<(&ServiceName, usize)> =
            runs().filter(|(svc, m)| t.is_new(svc, *m)).collect();
        new.sort_unstable();
        new.dedup();
        new.len()
    };
    let mut new = count_new(t);
    if new > 0 && t.active + new > max_active {
        t.expire(now, ttl_ms);
        new = count_new(t);
        if t.active + new > max_active {
            return Err(WriteError::TooManyActiveSeries {
                tenant: tenant.to_string(),
                new,
                total: t.active + new,
                max: max_active,
            });
        }
    }
    for (svc, m) in runs() {
        let slots = match t.by_service.get_mut(svc) {
            Some(s) => s,
            None => t.by_service.entry(svc.clone()).or_default(),
        };
        if slots[m].is_none() {
            t.active += 1;
        }
        slots[m] = Some(now);
    }
    Ok(())
}

/// Counts ingested samples of `source` and queues them for the loop,
/// dropping (and counting) what exceeds `max_pending`.
pub fn enqueue(live: &mut Live, source: &str, samples: Vec<Sample>, max_pending: usize) {
    let room = max_pending.saturating_sub(live.inbox.len());
    let n = samples.len();
    let take = n.min(room);
    live.inbox.extend(samples.into_iter().take(take));
    *live.ingested.entry(source.to_string()).or_default() += take as u64;
    if n > take {
        *live.dropped.entry("queue_full".into()).or_default() += (n - take) as u64;
    }
}

/// `POST /api/v1/write`.
pub async fn remote_write(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = require_role(&p, Role::Operator, "write samples") {
        return r;
    }
    let c = &s.config.integrations.remote_write;
    if !c.enabled {
        return error_json(
            StatusCode::NOT_FOUND,
            "the remote-write receiver is disabled (integrations.remote_write.enabled)",
        )
        .into_response();
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    // Backpressure: while the queue holds `max_pending` samples or more,
    // requests are refused with 503 and Retry-After before any decoding;
    // remote-write senders retry those with backoff, so nothing is lost.
    // (One request may take the queue past the mark by its own size.)
    let pending = read_live(&s.live).inbox.len();
    if pending >= c.max_pending {
        *write_live(&s.live)
            .dropped
            .entry("retry_later_requests".into())
            .or_default() += 1;
        let mut r = error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{pending} samples wait for the loop (integrations.remote_write.max_pending {}); retry later",
                c.max_pending
            ),
        )
        .into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return r;
    }
    let (_, _, max_active) = c.limits_for(&p.name);
    let decoded = decode(&body, encoding, c, &p.name);
    let mut live = write_live(&s.live);
    let admitted = decoded.and_then(|d| {
        admit_series(
            &mut live,
            &p.name,
            &d.samples,
            max_active,
            c.active_series_ttl.millis(),
            (s.clock)(),
        )
        .map(|()| d)
    });
    match admitted {
        Ok(d) => {
            for (reason, n) in d.dropped {
                *live.dropped.entry(reason.to_string()).or_default() += n;
            }
            // Admitted past the backpressure check above: taken whole.
            enqueue(&mut live, "remote_write", d.samples, usize::MAX);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e @ WriteError::TooLarge { .. }) => {
            error_json(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()).into_response()
        }
        Err(e) => error_json(StatusCode::BAD_REQUEST, &e.to_string()).into_response(),
    }
}

/// `GET /metrics`: OpenMetrics text.
pub async fn metrics(State(s): State<ApiState>) -> Response {
    let live = read_live(&s.live);
    let mut out = String::new();
    let expired = ("join_expired".to_string(), live.spans_expired);
    for (family, help, label, values) in [
        (
            "warden_ingested_samples",
            "Samples accepted for the loop, by source.",
            "source",
            live.ingested.iter().collect::<Vec<_>>(),
        ),
        (
            "warden_dropped_samples",
            "Samples received but not used, by reason.",
            "reason",
            live.dropped.iter().collect(),
        ),
        (
            "warden_ingested_spans",
            "Spans accepted for the dependency graph, by source.",
            "source",
            live.ingested_spans.iter().collect(),
        ),
        (
            "warden_dropped_spans",
            "Spans received but not used, by reason.",
            "reason",
            live.dropped_spans
                .iter()
                .chain([(&expired.0, &expired.1)])
                .collect(),
        ),
    ] {
        out.push_str(&format!(
            "# TYPE {family} counter\n# HELP {family} {help}\n"
        ));
        for (value, n) in values {
            out.push_str(&format!(
                "{family}_total{{{label}=\"{}\"}} {n}\n",
                escape_label(value)
            ));
        }
    }
    out.push_str("# TYPE warden_pending_spans gauge\n");
    out.push_str(
        "# HELP warden_pending_spans Spans waiting for the loop or for their parent or child.\n",
    );
    out.push_str(&format!(
        "warden_pending_spans {}\n",
        live.span_inbox.len() as u64 + live.spans_pending
    ));
    // The analyst's families: `_total` counters, histograms (a family with
    // `_bucket` series), gauges; one TYPE line each.
    let mut typed = std::collections::BTreeSet::new();
    for (name, v) in &live.analyst_metrics {
        let base = name.split('{').next().unwrap_or(name);
        let histogram = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let family = base.strip_suffix(suffix)?;
            let bucket = format!("{family}_bucket{{");
            live.analyst_metrics
                .iter()
                .any(|(n, _)| n.starts_with(&bucket))
                .then_some(family)
        });
        let (family, kind) = match (histogram, base.strip_suffix("_total")) {
            (Some(f), _) => (f, "histogram"),
            (None, Some(f)) => (f, "counter"),
            (None, None) => (base, "gauge"),
        };
        if typed.insert(family.to_string()) {
            out.push_str(&format!("# TYPE {family} {kind}\n"));
        }
        out.push_str(&format!("{name} {v}\n"));
    }
    out.push_str("# TYPE warden_pending_samples gauge\n");
    out.push_str(&format!("warden_pending_samples {}\n", live.inbox.len()));
    out.push_str("# TYPE warden_active_anomalies gauge\n");
    out.push_str(&format!(
        "warden_active_anomalies {}\n",
        live.anomalies.len()
    ));
    out.push_str("# TYPE warden_services gauge\n");
    out.push_str(&format!("warden_services {}\n", live.services.len()));
    out.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Alertmanager's webhook payload (version 4); fields warden does not use
/// are ignored.
#[derive(Debug, serde::Deserialize)]
pub struct Webhook {
    pub version: String,
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of the payload.
#[derive(Debug, serde::Deserialize)]
pub struct WebhookAlert {
    pub status: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    pub starts_at: String,
}

/// Most alerts accepted in one notification.
pub const MAX_WEBHOOK_ALERTS: usize = 1000;

/// The metric an alert speaks of: its `metric` label when that names one of
/// warden's metrics, else a keyword of its name, else the error rate (what a
/// user feels).
pub fn alert_metric(labels: &std::collections::BTreeMap<String, String>) -> Metric {
    if let Some(m) = labels.get("metric").and_then(|m| Metric::parse(m)) {
        return m;
    }
    let name = labels
        .get("alertname")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let has = |k: &[&str]| k.iter().any(|w| name.contains(w));
    if has(&["latency", "slow", "duration"]) {
        Metric::RequestLatencyP95
    } else if has(&["cpu", "throttl"]) {
        Metric::CpuUsage
    } else if has(&["mem", "oom"]) {
        Metric::MemoryUsage
    } else if has(&["replica", "down", "crash", "unavailable", "pod"]) {
        Metric::Replicas
    } else if has(&["traffic", "requestrate", "request_rate", "qps"]) {
        Metric::RequestRate
    } else {
        Metric::ErrorRate
    }
}

/// Turns a webhook payload into signals; alerts without a (valid) service
/// label are counted, not refused.
pub fn parse_webhook(
    body: &[u8],
    service_label: &str,
) -> Result<(Vec<warden_model::AlertSignal>, u64), String> {
    let w: Webhook = serde_json::from_slice(body)
        .map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
    if w.version != "4" {
        return Err(format!(
            "version {:?}: only version \"4\" is understood",
            w.version
        ));
    }
    if w.alerts.len() > MAX_WEBHOOK_ALERTS {
        return Err(format!(
            "{} alerts in one notification; at most {MAX_WEBHOOK_ALERTS}",
            w.alerts.len()
        ));
    }
    let mut out = Vec::new();
    let mut dropped = 0;
    for (i, a) in w.alerts.iter().enumerate() {
        let firing = match a.status.as_str() {
            "firing" => true,
            "resolved" => false,
            other => {
                return Err(format!(
                    "alerts[{i}].status {other:?}: expected firing or resolved"
                ));
            }
        };
        let Some(service) = a
            .labels
            .get(service_label)
            .and_then(|s| ServiceName::parse(s).ok())
        else {
            dropped += 1;
            continue;
        };
        let starts_at = Timestamp::parse_rfc3339(&a.starts_at)
            .map_err(|e| format!("alerts[{i}].startsAt {:?}: {e}", a.starts_at))?;
        let summary = a
            .annotations
            .get("summary")
            .or_else(|| a.annotations.get("description"))
            .cloned()
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        out.push(warden_model::AlertSignal {
            service,
            metric: alert_metric(&a.labels),
            name: a
                .labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| "alert".into()),
            firing,
            starts_at,
            summary,
        });
    }
    Ok((out, dropped))
}

/// `POST /api/alertmanager/webhook`.
pub async fn alertmanager_webhook(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Response {
    if let Err(r) = require_role(&p, Role::Operator, "send alerts") {
        return r;
    }
    let label = &s.config.integrations.remote_write.service_label;
    match parse_webhook(&body, label) {
        Ok((alerts, dropped)) => {
            let mut live = write_live(&s.live);
            if dropped > 0 {
                *live
                    .dropped
                    .entry("alert_without_service".into())
                    .or_default() += dropped;
            }
            *live.ingested.entry("alertmanager".into()).or_default() += alerts.len() as u64;
            live.alert_inbox.extend(alerts);
            StatusCode::OK.into_response()
        }
        Err(e) => error_json(StatusCode::BAD_REQUEST, &e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .expect("snappy")
    }

    fn series(name: &str, service: &str, samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries {
            labels: [("__name__", name), ("service", service), ("pod", "p-1")]
                .iter()
                .map(|(n, v)| Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(value, timestamp)| PromSample { value, timestamp })
                .collect(),
        }
    }

    #[test]
    fn the_wire_reader_reads_what_prost_writes() {
        let req = WriteRequest {
            timeseries: vec![
                series(
                    "cpu_usage",
                    "a",
                    &[(0.5, 1), (-0.25, -7), (1e300, i64::MAX)],
                ),
                series("error_rate", "b-2", &[(0.0, 0)]),
                series("go_goroutines", "a", &[(3.0, 5)]),
            ],
        };
        let c = warden_config::RemoteWriteConfig::default();
        let d = decode(&body(&req), Some("snappy"), &c, "t").expect("decodes");
        let got: Vec<(String, Metric, i64, f64)> = d
            .samples
            .iter()
            .map(|s| (s.service.to_string(), s.metric, s.ts.0, s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), Metric::CpuUsage, 1, 0.5),
                ("a".into(), Metric::CpuUsage, -7, -0.25),
                ("a".into(), Metric::CpuUsage, i64::MAX, 1e300),
                ("b-2".into(), Metric::ErrorRate, 0, 0.0),
            ]
        );
        assert_eq!(d.dropped, vec![("unknown_metric", 1)]);
        // Unknown fields (metadata = 3, exemplars = 3 inside a series) are
        // skipped, as prost skips them.
        let mut raw = req.encode_to_vec();
        raw.extend_from_slice(&[0x1a, 0x02, 0x08, 0x01]); // field 3, LEN 2
        let z = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("snappy");
        assert_eq!(
            decode(&z, Some("snappy"), &c, "t")
                .expect("decodes")
                .samples,
            d.samples
        );
    }

    #[test]
    fn the_wire_reader_refuses_garbage_without_panicking() {
        let c = warden_config::RemoteWriteConfig::default();
        let valid = WriteRequest {
            timeseries: vec![series("cpu_usage", "a", &[(0.5, 1)])],
        }
        .encode_to_vec();
        let mut rng = warden_model::Rng::new(11);
        let mut refused = 0;
        for i in 0..5000 {
            let mut raw = valid.clone();
            // Flip, truncate or append bytes.
            match i % 3 {
                0 => {
                    let at = rng.below(raw.len());
                    raw[at] ^= 1 << rng.below(8);
                }
                1 => raw.truncate(rng.below(raw.len())),
                _ => raw.extend((0..rng.below(8)).map(|_| rng.next_u64() as u8)),
            }
            let z = snap::raw::Encoder::new()
                .compress_vec(&raw)
                .expect("snappy");
            match decode(&z, Some("snappy"), &c, "t") {
                Ok(_) => {}
                Err(WriteError::Protobuf(m)) => {
                    assert!(!m.is_empty());
                    refused += 1;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
            // prost agrees on what is a valid message (it checks the same
            // wire format, UTF-8 strings included).
            assert_eq!(
                WriteRequest::decode(raw.as_slice()).is_ok(),
                decode(&z, Some("snappy"), &c, "t").is_ok(),
                "case {i}: {raw:?}"
            );
        }
        assert!(refused > 1000, "{refused}");
    }
}
