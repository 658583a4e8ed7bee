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
    let req =
        WriteRequest::decode(raw.as_slice()).map_err(|e| WriteError::Protobuf(e.to_string()))?;
    if req.timeseries.len() > max_series {
        return Err(WriteError::TooManySeries {
            n: req.timeseries.len(),
            max: max_series,
        });
    }
    let mut out = Decoded::default();
    let (mut unknown, mut no_service, mut stale) = (0u64, 0u64, 0u64);
    for (index, ts) in req.timeseries.iter().enumerate() {
        let label = |n: &str| {
            ts.labels
                .iter()
                .find(|l| l.name == n)
                .map(|l| l.value.as_str())
        };
        let name = label("__name__").unwrap_or("");
        if ts.labels.len() > max_labels {
            return Err(WriteError::TooManyLabels {
                index,
                name: name.to_string(),
                n: ts.labels.len(),
                max: max_labels,
            });
        }
        let n = ts.samples.len() as u64;
        let Some(metric) = Metric::parse(name) else {
            unknown += n;
            continue;
        };
        let Some(service) = label(&c.service_label).and_then(|v| ServiceName::parse(v).ok()) else {
            no_service += n;
            continue;
        };
        for s in &ts.samples {
            // NaN is Prometheus' staleness marker (and no value otherwise).
            if !s.value.is_finite() {
                stale += 1;
                continue;
            }
            out.samples.push(Sample {
                service: service.clone(),
                metric,
                ts: Timestamp(s.timestamp),
                value: s.value,
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
    // Samples of one series are contiguous: one lookup per run.
    let mut keys: Vec<(ServiceName, Metric)> = Vec::new();
    for s in samples {
        if keys
            .last()
            .is_none_or(|(svc, m)| *m != s.metric || *svc != s.service)
        {
            keys.push((s.service.clone(), s.metric));
        }
    }
    let active = live.tenant_series.entry(tenant.to_string()).or_default();
    let count_new = |active: &std::collections::HashMap<_, _>| {
        let mut new: Vec<&(ServiceName, Metric)> =
            keys.iter().filter(|k| !active.contains_key(*k)).collect();
        new.sort();
        new.dedup();
        new.len()
    };
    let mut new = count_new(active);
    if new > 0 && active.len() + new > max_active {
        active.retain(|_, last| now.millis() - last.millis() <= ttl_ms);
        new = count_new(active);
        if active.len() + new > max_active {
            return Err(WriteError::TooManyActiveSeries {
                tenant: tenant.to_string(),
                new,
                total: active.len() + new,
                max: max_active,
            });
        }
    }
    for k in keys {
        active.insert(k, now);
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
            enqueue(&mut live, "remote_write", d.samples, c.max_pending);
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
    out.push_str("# TYPE warden_ingested_samples counter\n");
    out.push_str("# HELP warden_ingested_samples Samples accepted for the loop, by source.\n");
    for (source, n) in &live.ingested {
        out.push_str(&format!(
            "warden_ingested_samples_total{{source=\"{}\"}} {n}\n",
            escape_label(source)
        ));
    }
    out.push_str("# TYPE warden_dropped_samples counter\n");
    out.push_str("# HELP warden_dropped_samples Samples received but not used, by reason.\n");
    for (reason, n) in &live.dropped {
        out.push_str(&format!(
            "warden_dropped_samples_total{{reason=\"{}\"}} {n}\n",
            escape_label(reason)
        ));
    }
    out.push_str("# TYPE warden_ingested_spans counter\n");
    out.push_str(
        "# HELP warden_ingested_spans Spans accepted for the dependency graph, by source.\n",
    );
    for (source, n) in &live.ingested_spans {
        out.push_str(&format!(
            "warden_ingested_spans_total{{source=\"{}\"}} {n}\n",
            escape_label(source)
        ));
    }
    out.push_str("# TYPE warden_dropped_spans counter\n");
    out.push_str("# HELP warden_dropped_spans Spans received but not used, by reason.\n");
    for (reason, n) in live
        .dropped_spans
        .iter()
        .chain([(&"join_expired".to_string(), &live.spans_expired)])
    {
        out.push_str(&format!(
            "warden_dropped_spans_total{{reason=\"{}\"}} {n}\n",
            escape_label(reason)
        ));
    }
    out.push_str("# TYPE warden_pending_spans gauge\n");
    out.push_str(
        "# HELP warden_pending_spans Spans waiting for the loop or for their parent or child.\n",
    );
    out.push_str(&format!(
        "warden_pending_spans {}\n",
        live.span_inbox.len() as u64 + live.spans_pending
    ));
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
