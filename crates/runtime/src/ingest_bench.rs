//! `warden bench ingest`: the receivers under load, end to end on
//! 127.0.0.1.
//!
//! One process runs what `warden serve` runs — the API with its
//! receivers, and the loop draining the inbox every second into the engine
//! (detectors, correlation, ticks at the monitoring interval) — while
//! sender tasks in the same process post to it over HTTP like Prometheus'
//! remote-write shards: each sender owns a share of the series, builds
//! `WriteRequest`s of `batch` samples (snappy, protobuf), posts one, waits
//! for the answer, posts the next. Sample timestamps follow the wall clock
//! (one "round" of every series per step, each round a millisecond later
//! than the last at least), so the detectors see in-order data.
//!
//! The OTLP phase does the same with OTLP/HTTP requests of synthetic traces
//! (chains of four services, each span a child of the previous service's
//! span), counting spans accepted and calls the joiner found.
//!
//! Senders and server share the machine's cores, as a co-located
//! Prometheus would; the report says how many there are.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use prost::Message;
use serde::Serialize;
use warden_analyst::Builtin;
use warden_api::{Live, read_live};
use warden_config::Config;
use warden_model::{Metric, Rng};
use warden_store::{SqliteStore, Store};

use crate::serve::NoExecutor;
use crate::{Engine, EngineParts, api_state, start_api, wall_now};

/// What to run.
#[derive(Debug, Clone)]
pub struct IngestBench {
    /// Remote-write phase, milliseconds.
    pub duration_ms: u64,
    /// OTLP phase, milliseconds (0 skips it).
    pub otlp_duration_ms: u64,
    /// Services; each has all eight metrics, so series = 8 × services.
    pub services: usize,
    /// Samples per remote-write request (Prometheus sends up to 2000).
    pub batch: usize,
    /// Concurrent senders (Prometheus' shards).
    pub senders: usize,
    /// Spans per OTLP request.
    pub span_batch: usize,
    pub seed: u64,
}

/// The remote-write phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteWriteFigures {
    pub seconds: f64,
    pub series: usize,
    pub requests: u64,
    /// Refused with 503 (queue full) and sent again.
    pub retried_requests: u64,
    pub failed_requests: u64,
    pub samples_sent: u64,
    /// Accepted by the receiver (queued for the loop).
    pub samples_accepted: u64,
    /// Through the engine's detectors by the end of the phase.
    pub samples_processed: u64,
    pub samples_dropped: u64,
    pub accepted_per_second: f64,
    pub processed_per_second: f64,
    /// Share of the phase the loop spent inside the engine.
    pub engine_busy: f64,
    /// CPU time of the loop's thread per processed sample, microseconds.
    pub engine_cpu_us_per_sample: f64,
    /// CPU time of the whole process (senders, receiver, loop and its
    /// detector threads) per processed sample, microseconds.
    pub process_cpu_us_per_sample: f64,
    pub rss_mib_after_first_round: f64,
    pub rss_mib_end: f64,
    pub peak_rss_mib: f64,
}

/// The OTLP phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct OtlpFigures {
    pub seconds: f64,
    pub requests: u64,
    pub retried_requests: u64,
    pub failed_requests: u64,
    pub spans_sent: u64,
    pub spans_accepted: u64,
    pub spans_processed: u64,
    pub calls_found: u64,
    pub accepted_per_second: f64,
    pub processed_per_second: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub cores: usize,
    pub remote_write: RemoteWriteFigures,
    pub otlp: Option<OtlpFigures>,
}

const TOKEN: &str = "bench-ingest-token";

fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds the calling thread has used (Linux; 0 elsewhere).
fn thread_cpu_seconds() -> f64 {
    cpu_seconds("/proc/thread-self/stat")
}

/// CPU seconds of `/proc/.../stat` (utime + stime).
fn cpu_seconds(stat: &str) -> f64 {
    std::fs::read_to_string(stat)
        .ok()
        .and_then(|s| {
            // Fields after the command name: utime and stime are the 12th
            // and 13th (clock ticks, 100 per second on Linux).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    retried: AtomicU64,
    rounds: AtomicU64,
}

fn service_name(i: usize) -> String {
    format!("svc-{i:05}")
}

/// Posts one request of `n` items, retrying a 503 after a pause as
/// Prometheus and the OTLP exporters do; false when the run stopped while
/// it waited.
async fn send(
    client: &warden_sources::HttpClient,
    url: &str,
    body: Bytes,
    headers: &[(&str, &str)],
    n: u64,
    stop: &AtomicBool,
    counters: &Counters,
) -> bool {
    loop {
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match client.post(url, body.clone(), headers).await {
            Ok(_) => {
                counters.sent.fetch_add(n, Ordering::Relaxed);
            }
            Err(warden_sources::HttpError::Status { status: 503, .. }) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                counters.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => {
                if counters.failed.fetch_add(1, Ordering::Relaxed) < 3 {
                    tracing::warn!("bench sender: {e}");
                }
            }
        }
        return true;
    }
}

/// One sender's requests: its services' eight metrics each round.
async fn remote_write_sender(
    client: Arc<warden_sources::HttpClient>,
    url: String,
    services: Vec<usize>,
    batch: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    use warden_api::ingest::{Label, PromSample, TimeSeries, WriteRequest};
    let mut rng = Rng::new(seed);
    let mut last_ts = 0i64;
    let per_request = (batch / Metric::ALL.len()).max(1);
    // Label sets are built once; only values and timestamps change.
    let mut series: Vec<TimeSeries> = services
        .iter()
        .flat_map(|&i| {
            Metric::ALL.iter().map(move |m| TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: m.as_str().into(),
                    },
                    Label {
                        name: "service".into(),
                        value: service_name(i),
                    },
                ],
                samples: vec![PromSample {
                    value: 0.0,
                    timestamp: 0,
                }],
            })
        })
        .collect();
    let headers = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ];
    while !stop.load(Ordering::Relaxed) {
        let ts = wall_now().millis().max(last_ts + 1);
        last_ts = ts;
        for chunk in series.chunks_mut(per_request * Metric::ALL.len()) {
            for s in chunk.iter_mut() {
                // A level per metric with noise: values the detectors must
                // actually score.
                let base = match s.labels[0].value.as_str() {
                    "replicas" => 3.0,
                    "request_rate" => 100.0,
                    v if v.starts_with("request_latency") => 80.0,
                    "error_rate" => 0.01,
                    _ => 0.4,
                };
                s.samples[0] = PromSample {
                    value: base * (1.0 + 0.05 * rng.normal()),
                    timestamp: ts,
                };
            }
            // Lend the series to the request and take them back after
            // encoding (no copies of the labels).
            let req = WriteRequest {
                timeseries: chunk.iter_mut().map(std::mem::take).collect(),
            };
            let body = snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .unwrap_or_default();
            for (slot, s) in chunk.iter_mut().zip(req.timeseries) {
                *slot = s;
            }
            let n = chunk.len() as u64;
            let body = Bytes::from(body);
            if !send(&client, &url, body, &headers, n, &stop, &counters).await {
                return;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
        counters.rounds.fetch_add(1, Ordering::Relaxed);
    }
}

/// One sender's OTLP requests: traces that chain four services.
async fn otlp_sender(
    client: Arc<warden_sources::HttpClient>,
    url: String,
    services: usize,
    span_batch: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    use warden_api::otlp::*;
    let mut rng = Rng::new(seed);
    let headers = [("content-type", "application/x-protobuf")];
    let mut next_id = seed << 40;
    while !stop.load(Ordering::Relaxed) {
        let now_ns = wall_now().millis() as u64 * 1_000_000;
        // Per service the spans of this request, as an exporter groups them.
        let mut by_service: std::collections::BTreeMap<usize, Vec<OtlpSpan>> = Default::default();
        let mut n = 0;
        while n < span_batch {
            let trace = {
                let mut t = [0u8; 16];
                t[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
                t[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
                t
            };
            let mut parent: Option<u64> = None;
            let mut svc = rng.below(services);
            for depth in 0..4 {
                next_id += 1;
                let dur = 1_000_000 * (4 - depth as u64) + rng.below(1_000_000) as u64;
                by_service.entry(svc).or_default().push(OtlpSpan {
                    trace_id: trace.to_vec(),
                    span_id: next_id.to_be_bytes().to_vec(),
                    parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
                    name: "call".into(),
                    kind: 2,
                    start_time_unix_nano: now_ns,
                    end_time_unix_nano: now_ns + dur,
                    status: None,
                });
                parent = Some(next_id);
                // Callees: a fixed fan-out per service, so the graph is a
                // realistic few edges per node.
                svc = (svc * 7 + 1 + rng.below(3)) % services;
                n += 1;
            }
        }
        let req = ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .map(|(svc, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(AnyValue {
                                string_value: Some(service_name(svc)),
                            }),
                        }],
                    }),
                    scope_spans: vec![ScopeSpans { spans }],
                })
                .collect(),
        };
        let body = Bytes::from(req.encode_to_vec());
        if !send(&client, &url, body, &headers, n as u64, &stop, &counters).await {
            return;
        }
    }
}

/// Runs the benchmark; `progress` gets a line per second.
pub async fn run_ingest_bench(
    spec: &IngestBench,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<IngestReport, crate::DemoError> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.integrations.otlp.enabled = true;
    config.integrations.otlp.grpc_listen.clear();
    config.integrations.otlp.http_listen.clear();
    config.integrations.remote_write.max_series = spec.batch.max(1);
    config.integrations.remote_write.max_active_series = spec.services * Metric::ALL.len() + 1;
    config.services.discovery.max_services = spec.services + 10;
    // Capacity planning is its own benchmark (`warden bench capacity`).
    config.capacity.enabled = false;
    let config = Arc::new(config);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(dir.path())?);
    let live = Arc::new(RwLock::new(Live::default()));
    let mut engine = Engine::new(EngineParts {
        config: config.clone(),
        store: store.clone(),
        live: live.clone(),
        analyst: Arc::new(Builtin),
        executor: Arc::new(NoExecutor),
    })?;
    let clock = Arc::new(std::sync::atomic::AtomicI64::new(wall_now().millis()));
    let state = api_state(
        config.clone(),
        store,
        live.clone(),
        Some(TOKEN),
        clock.clone(),
    );
    let server = start_api(state, "127.0.0.1:0".parse().expect("address")).await?;
    let base = format!("http://{}", server.addr);
    let client = Arc::new(warden_sources::HttpClient::new(
        Duration::from_secs(30),
        spec.senders.max(1),
        0,
        Some(TOKEN.into()),
    ));

    // ---- remote write
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let senders = spec.senders.max(1);
    let tasks: Vec<_> = (0..senders)
        .map(|k| {
            let mine: Vec<usize> = (0..spec.services).filter(|i| i % senders == k).collect();
            tokio::spawn(remote_write_sender(
                client.clone(),
                format!("{base}/api/v1/write"),
                mine,
                spec.batch,
                spec.seed.wrapping_add(k as u64),
                stop.clone(),
                counters.clone(),
            ))
        })
        .collect();
    let interval = config.services.monitoring.interval.millis().max(1000);
    let started = Instant::now();
    let cpu0 = thread_cpu_seconds();
    let proc0 = cpu_seconds("/proc/self/stat");
    let mut processed = 0u64;
    let mut busy = Duration::ZERO;
    let mut rss_first = 0.0;
    let mut next_tick = wall_now().plus_ms(interval);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = Duration::from_millis(spec.duration_ms);
    while started.elapsed() < deadline {
        second.tick().await;
        let t = wall_now();
        clock.store(t.millis(), Ordering::Relaxed);
        let t0 = Instant::now();
        let pending = crate::drain_inbox(&live, &mut engine, t) as u64;
        if t >= next_tick {
            engine.tick(t).await?;
            next_tick = t.plus_ms(interval);
        }
        busy += t0.elapsed();
        processed += pending;
        if rss_first == 0.0 && counters.rounds.load(Ordering::Relaxed) >= senders as u64 {
            rss_first = rss_mib("VmRSS:");
        }
        progress(&format!(
            "remote write {:>3.0} s: {} samples sent, {} processed",
            started.elapsed().as_secs_f64(),
            counters.sent.load(Ordering::Relaxed),
            processed
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let engine_cpu = thread_cpu_seconds() - cpu0;
    let process_cpu = cpu_seconds("/proc/self/stat") - proc0;
    for t in tasks {
        let _ = t.await;
    }
    let (accepted, dropped) = {
        let l = read_live(&live);
        (
            l.ingested.get("remote_write").copied().unwrap_or(0),
            l.dropped.get("queue_full").copied().unwrap_or(0),
        )
    };
    let rw = RemoteWriteFigures {
        seconds,
        series: spec.services * Metric::ALL.len(),
        requests: counters.requests.load(Ordering::Relaxed),
        retried_requests: counters.retried.load(Ordering::Relaxed),
        failed_requests: counters.failed.load(Ordering::Relaxed),
        samples_sent: counters.sent.load(Ordering::Relaxed),
        samples_accepted: accepted,
        samples_processed: processed,
        samples_dropped: dropped,
        accepted_per_second: accepted as f64 / seconds,
        processed_per_second: processed as f64 / seconds,
        engine_busy: busy.as_secs_f64() / seconds,
        engine_cpu_us_per_sample: 1e6 * engine_cpu / processed.max(1) as f64,
        process_cpu_us_per_sample: 1e6 * process_cpu / processed.max(1) as f64,
        rss_mib_after_first_round: rss_first,
        rss_mib_end: rss_mib("VmRSS:"),
        peak_rss_mib: rss_mib("VmHWM:"),
    };
    // What is still queued is not part of the figures.
    crate::drain_inbox(&live, &mut engine, wall_now());

    // ---- OTLP
    let otlp = if spec.otlp_duration_ms > 0 {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let tasks: Vec<_> = (0..senders)
            .map(|k| {
                tokio::spawn(otlp_sender(
                    client.clone(),
                    format!("{base}/v1/traces"),
                    spec.services,
                    spec.span_batch.max(4),
                    spec.seed.wrapping_add(1000 + k as u64),
                    stop.clone(),
                    counters.clone(),
                ))
            })
            .collect();
        let started = Instant::now();
        let mut processed = 0u64;
        let mut calls = 0u64;
        let deadline = Duration::from_millis(spec.otlp_duration_ms);
        while started.elapsed() < deadline {
            second.tick().await;
            let t = wall_now();
            let spans = std::mem::take(&mut warden_api::write_live(&live).span_inbox);
            processed += spans.len() as u64;
            calls += engine.ingest_spans(&spans, t) as u64;
            progress(&format!(
                "otlp {:>3.0} s: {} spans sent, {} processed",
                started.elapsed().as_secs_f64(),
                counters.sent.load(Ordering::Relaxed),
                processed
            ));
        }
        stop.store(true, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        for t in tasks {
            let _ = t.await;
        }
        let accepted = read_live(&live)
            .ingested_spans
            .get("otlp_http")
            .copied()
            .unwrap_or(0);
        Some(OtlpFigures {
            seconds,
            requests: counters.requests.load(Ordering::Relaxed),
            retried_requests: counters.retried.load(Ordering::Relaxed),
            failed_requests: counters.failed.load(Ordering::Relaxed),
            spans_sent: counters.sent.load(Ordering::Relaxed),
            spans_accepted: accepted,
            spans_processed: processed,
            calls_found: calls,
            accepted_per_second: accepted as f64 / seconds,
            processed_per_second: processed as f64 / seconds,
        })
    } else {
        None
    };
    server.stop().await;
    Ok(IngestReport {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        remote_write: rw,
        otlp,
    })
}
