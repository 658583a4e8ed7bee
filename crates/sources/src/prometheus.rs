//! Pulling warden's metrics from a Prometheus-compatible server: one
//! instant query (`GET /api/v1/query?query=…&time=…`) per configured metric;
//! each result series with the service label becomes one sample.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use warden_config::PrometheusConfig;
use warden_model::{Metric, Sample, ServiceName, Timestamp};

use crate::http::{HttpClient, HttpError};

/// Why one query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("query for {metric}: {message}")]
    Answer { metric: String, message: String },
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<VectorItem>,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// One pull's outcome.
#[derive(Debug, Default)]
pub struct PullReport {
    pub samples: Vec<Sample>,
    /// Result series without the service label, or with an unusable value.
    pub dropped: u64,
    pub errors: Vec<PullError>,
}

/// The Prometheus source.
pub struct PromPull {
    cfg: PrometheusConfig,
    client: HttpClient,
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Parses one instant-query answer into samples of `metric`.
pub fn parse_answer(
    body: &[u8],
    metric: Metric,
    service_label: &str,
) -> Result<(Vec<Sample>, u64), String> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| format!("not a query answer: {e}"))?;
    if a.status != "success" {
        return Err(a.error.unwrap_or_else(|| format!("status {}", a.status)));
    }
    let data = a.data.ok_or("no data")?;
    if data.result_type != "vector" {
        return Err(format!(
            "result type {:?}; an instant vector is expected",
            data.result_type
        ));
    }
    let mut out = Vec::new();
    let mut dropped = 0;
    for item in data.result {
        let service = item
            .metric
            .get(service_label)
            .and_then(|s| ServiceName::parse(s).ok());
        let value = item.value.1.parse::<f64>().ok().filter(|v| v.is_finite());
        match (service, value) {
            (Some(service), Some(value)) => out.push(Sample {
                service,
                metric,
                ts: Timestamp((item.value.0 * 1000.0).round() as i64),
                value,
            }),
            _ => dropped += 1,
        }
    }
    Ok((out, dropped))
}

impl PromPull {
    pub fn new(cfg: PrometheusConfig) -> Self {
        let bearer = cfg
            .bearer_token_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok());
        let client = HttpClient::new(
            Duration::from_millis(cfg.timeout.millis().max(1) as u64),
            cfg.max_concurrency,
            cfg.retries,
            bearer,
        );
        Self { cfg, client }
    }

    /// Runs every configured query at `at`, concurrently (bounded by the
    /// client's limit).
    pub async fn pull(&self, at: Timestamp) -> PullReport {
        let base = self.cfg.endpoint.trim_end_matches('/');
        let time = format!("{:.3}", at.millis() as f64 / 1000.0);
        let jobs = self.cfg.queries.iter().filter_map(|(m, q)| {
            let metric = Metric::parse(m)?;
            let url = format!("{base}/api/v1/query?query={}&time={time}", encode(q));
            Some(async move { (metric, self.client.get(&url).await) })
        });
        let mut report = PullReport::default();
        let results = futures_join_all(jobs).await;
        for (metric, r) in results {
            match r {
                Ok(body) => match parse_answer(&body, metric, &self.cfg.service_label) {
                    Ok((s, d)) => {
                        report.samples.extend(s);
                        report.dropped += d;
                    }
                    Err(message) => report.errors.push(PullError::Answer {
                        metric: metric.as_str().into(),
                        message,
                    }),
                },
                Err(e) => report.errors.push(e.into()),
            }
        }
        report
    }
}

/// Awaits every future, polling them together so that they run
/// concurrently (the client's concurrency limit bounds the requests in
/// flight); results in the order of `jobs`.
async fn futures_join_all<F, T>(jobs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = jobs.map(Box::pin).collect();
    let mut done: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_samples_and_odd_series_are_counted() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"service":"checkout"},"value":[1700000000.5,"0.25"]},
            {"metric":{"job":"x"},"value":[1700000000.5,"1"]},
            {"metric":{"service":"cart"},"value":[1700000000.5,"NaN"]}]}}"#;
        let (s, dropped) = parse_answer(body, Metric::CpuUsage, "service").expect("parses");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].service.as_str(), "checkout");
        assert_eq!(s[0].ts, Timestamp(1_700_000_000_500));
        assert_eq!(s[0].value, 0.25);
        assert_eq!(dropped, 2);
        let err = parse_answer(
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
            Metric::CpuUsage,
            "service",
        )
        .expect_err("error answer");
        assert!(err.contains("parse error"), "{err}");
        let err = parse_answer(
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            Metric::CpuUsage,
            "service",
        )
        .expect_err("matrix");
        assert!(err.contains("matrix"), "{err}");
    }

    #[test]
    fn query_parameters_are_percent_encoded() {
        assert_eq!(
            encode("rate(x{a=\"b c\"}[1m])"),
            "rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29"
        );
    }
}
