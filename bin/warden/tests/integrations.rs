//! warden against real servers (Debian's `prometheus`,
//! `prometheus-alertmanager` and `victoria-metrics`, and the OpenTelemetry
//! Python SDK's exporters, installed by `.ci/run`), all on 127.0.0.1. A
//! real Prometheus: Prometheus evaluates recording rules that
//! produce series named like warden's metrics and remote-writes them, with a
//! bearer token, to a running `warden serve`, which also pulls another
//! series from it with an instant query. The services both name must join
//! warden's catalog, both sources' samples must be counted at /metrics, and
//! /readyz must report the pull source healthy.
//!
//! The second test runs a real Alertmanager that routes an alert to
//! warden's webhook.
//!
//! Without a binary a test says so and passes, unless
//! `WARDEN_REQUIRE_SERVERS=1` (as in `.ci/run`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Kill, free_port};

fn binary(name: &str) -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p.display().to_string()),
        None => {
            assert!(
                std::env::var("WARDEN_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "WARDEN_REQUIRE_SERVERS=1 but {name} is not installed"
            );
            eprintln!("{name} is not installed: skipping");
            None
        }
    }
}

fn get(addr: &str, path: &str, token: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn start_warden(dir: &std::path::Path, extra: &str) -> (Kill, String) {
    let config = dir.join("warden.yaml");
    std::fs::write(
        &config,
        format!("services:\n  monitoring:\n    interval: 1s\n{extra}"),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config", &config.display().to_string()])
        .args(["--data-dir", &dir.join("data").display().to_string()])
        .args(["--listen", "127.0.0.1:0"])
        .env("WARDEN_ADMIN_TOKEN", "prom-test-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "serve did not start");
        let line = lines.next().expect("a line").expect("utf-8");
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Kill(child), addr)
}

/// Writes `config` as prometheus.yml in `dir` and starts Prometheus on
/// 127.0.0.1:`port`, its log in dir/prometheus.log.
fn start_prometheus<S: AsRef<str>>(
    bin: &str,
    dir: &std::path::Path,
    port: u16,
    config: &[S],
) -> Kill {
    let text: Vec<&str> = config.iter().map(|l| l.as_ref()).collect();
    std::fs::write(dir.join("prometheus.yml"), text.join("\n") + "\n").expect("prometheus.yml");
    Kill(
        Command::new(bin)
            .current_dir(dir)
            .args(["--config.file=prometheus.yml", "--storage.tsdb.path=tsdb"])
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("prometheus.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("spawn prometheus"),
    )
}

/// Writes `config` as am.yml in `dir` and starts a lone Alertmanager on
/// `addr`.
fn start_alertmanager(bin: &str, dir: &std::path::Path, addr: &str, config: &[&str]) -> Kill {
    std::fs::write(dir.join("am.yml"), config.join("\n") + "\n").expect("am.yml");
    Kill(
        Command::new(bin)
            .current_dir(dir)
            .args([
                "--config.file=am.yml",
                "--storage.path=am-data",
                "--cluster.listen-address=",
            ])
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn alertmanager"),
    )
}

#[test]
fn prometheus_remote_write_and_pull_reach_the_loop() {
    let Some(prometheus) = binary("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // warden also pulls from the same Prometheus: an instant query per
    // metric, results labelled with the service.
    let pull = format!(
        "integrations:\n  prometheus:\n    enabled: true\n    endpoint: http://127.0.0.1:{port}\n    interval: 1s\n    queries:\n      cpu_usage: pulled_cpu\n"
    );
    let (_warden, addr) = start_warden(dir.path(), &pull);
    let rules = [
        "groups:",
        "- name: warden",
        "  interval: 1s",
        "  rules:",
        "  - record: cpu_usage",
        "    expr: vector(0.42)",
        "    labels:",
        "      service: prom-checkout",
        "  - record: error_rate",
        "    expr: vector(0.01)",
        "    labels:",
        "      service: prom-checkout",
        "  - record: pulled_cpu",
        "    expr: vector(0.33)",
        "    labels:",
        "      service: pulled-service",
    ];
    std::fs::write(dir.path().join("rules.yml"), rules.join("\n") + "\n").expect("rules");
    let url = format!("- url: http://{addr}/api/v1/write");
    let config = [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "rule_files: [rules.yml]",
        "remote_write:",
        &url,
        "  authorization:",
        "    credentials: prom-test-token",
        "  queue_config:",
        "    batch_send_deadline: 1s",
        "    min_backoff: 100ms",
        "    max_backoff: 1s",
    ];
    let _prom = start_prometheus(&prometheus, dir.path(), port, &config);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, services) = get(&addr, "/api/services", "prom-test-token");
        let (_, metrics) = get(&addr, "/metrics", "prom-test-token");
        let counted = |source: &str| {
            metrics
                .lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "warden_ingested_samples_total{{source=\"{source}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (code, ready) = get(&addr, "/readyz", "");
        if services.contains("prom-checkout")
            && services.contains("pulled-service")
            && counted("remote_write") >= 2
            && counted("prometheus") >= 1
            && code == 200
        {
            assert!(ready.contains("\"prometheus\":true"), "{ready}");
            break;
        }
        if Instant::now() >= deadline {
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "no remote-written samples after 60 s:\n{services}\n{metrics}\nprometheus log (newest first):\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn send(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, resp)
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) routes an alert
/// to warden's webhook with a bearer token: the alert becomes a signal and
/// an incident on its service; when the alert is resolved, the signal
/// clears.
#[test]
fn alertmanager_notifications_open_and_clear_signals() {
    let Some(am) = binary("prometheus-alertmanager") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_warden, addr) = start_warden(dir.path(), "");
    let url = format!("  - url: http://{addr}/api/alertmanager/webhook");
    let config = [
        "route:",
        "  receiver: warden",
        "  group_by: [alertname, service]",
        "  group_wait: 1s",
        "  group_interval: 1s",
        "  repeat_interval: 1h",
        "receivers:",
        "- name: warden",
        "  webhook_configs:",
        &url,
        "    send_resolved: true",
        "    http_config:",
        "      authorization:",
        "        credentials: prom-test-token",
    ];
    let port = free_port();
    let am_addr = format!("127.0.0.1:{port}");
    let _am = start_alertmanager(&am, dir.path(), &am_addr, &config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let iso = |secs: u64| {
        let t = warden_model::Timestamp::from_secs(secs as i64);
        t.rfc3339()
    };
    let alert = |ends: Option<u64>| {
        let ends = ends
            .map(|e| format!(", \"endsAt\": \"{}\"", iso(e)))
            .unwrap_or_default();
        format!(
            "[{{\"labels\": {{\"alertname\": \"CheckoutLatencyHigh\", \"service\": \"am-checkout\"}}, \"annotations\": {{\"summary\": \"p95 above 2 s\"}}, \"startsAt\": \"{}\"{ends}}}]",
            iso(now - 5)
        )
    };
    // Alertmanager may need a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, resp) = send(&am_addr, "POST", "/api/v2/alerts", "", &alert(None));
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager refused the alert: {resp}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, anomalies) = get(&addr, "/api/monitoring/anomalies", "prom-test-token");
        let (_, incidents) = get(&addr, "/api/incidents", "prom-test-token");
        if anomalies.contains("alertmanager:CheckoutLatencyHigh")
            && incidents.contains("am-checkout")
        {
            assert!(anomalies.contains("p95 above 2 s"), "{anomalies}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no signal from alertmanager:\n{anomalies}\n{incidents}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Resolve it: Alertmanager sends the resolved notification.
    let (code, resp) = send(
        &am_addr,
        "POST",
        "/api/v2/alerts",
        "",
        &alert(Some(now - 1)),
    );
    assert_eq!(code, 200, "{resp}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, anomalies) = get(&addr, "/api/monitoring/anomalies", "prom-test-token");
        if !anomalies.contains("CheckoutLatencyHigh") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resolved alert never cleared: {anomalies}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Alertmanager out, with a real Alertmanager: an incident warden opens (from
/// an alert routed in) is pushed back as a `WardenIncident` alert, and an
/// active silence matching it closes the gate of the incident's action.
#[test]
fn incidents_are_pushed_to_alertmanager_and_its_silences_close_the_gate() {
    let Some(am) = binary("prometheus-alertmanager") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let am_addr = format!("127.0.0.1:{port}");
    let out = format!(
        "integrations:\n  alertmanager:\n    enabled: true\n    endpoint: http://{am_addr}\n    warden_url: http://warden.example\n"
    );
    let (_warden, addr) = start_warden(dir.path(), &out);
    let url = format!("  - url: http://{addr}/api/alertmanager/webhook");
    // warden's own alerts go to a receiver that does nothing (not back to
    // warden), the others to warden.
    let config = [
        "route:",
        "  receiver: warden",
        "  group_by: [alertname, service]",
        "  group_wait: 1s",
        "  group_interval: 1s",
        "  repeat_interval: 1h",
        "  routes:",
        "  - matchers: ['alertname=\"WardenIncident\"']",
        "    receiver: none",
        "receivers:",
        "- name: none",
        "- name: warden",
        "  webhook_configs:",
        &url,
        "    http_config:",
        "      authorization:",
        "        credentials: prom-test-token",
    ];
    let _am = start_alertmanager(&am, dir.path(), &am_addr, &config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let iso = |secs: i64| warden_model::Timestamp::from_secs(secs).rfc3339();
    let silence = format!(
        "{{\"matchers\": [{{\"name\": \"alertname\", \"value\": \"WardenIncident\", \"isRegex\": false, \"isEqual\": true}}, {{\"name\": \"service\", \"value\": \"am-payments\", \"isRegex\": false, \"isEqual\": true}}], \"startsAt\": \"{}\", \"endsAt\": \"{}\", \"createdBy\": \"oncall\", \"comment\": \"planned maintenance\"}}",
        iso(now - 10),
        iso(now + 3600)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, resp) = send(&am_addr, "POST", "/api/v2/silences", "", &silence);
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager refused the silence: {resp}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let alert = format!(
        "[{{\"labels\": {{\"alertname\": \"PaymentsErrors\", \"service\": \"am-payments\"}}, \"annotations\": {{\"summary\": \"5xx above 5%\"}}, \"startsAt\": \"{}\"}}]",
        iso(now - 5)
    );
    let (code, resp) = send(&am_addr, "POST", "/api/v2/alerts", "", &alert);
    assert_eq!(code, 200, "{resp}");
    // warden opens an incident and pushes it back.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, alerts) = send(
            &am_addr,
            "GET",
            "/api/v2/alerts?filter=alertname%3D%22WardenIncident%22",
            "",
            "",
        );
        if alerts.contains("\"incident\":\"INC-") && alerts.contains("am-payments") {
            assert!(
                alerts.contains("http://warden.example/incidents/INC-"),
                "{alerts}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "warden's incident never reached alertmanager:\n{alerts}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The incident's action met the silence.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, journal) = get(
            &addr,
            "/api/journal?kind=gate_decision&limit=50",
            "prom-test-token",
        );
        if journal.contains("alertmanager_silence") {
            assert!(journal.contains("planned maintenance"), "{journal}");
            break;
        }
        if Instant::now() >= deadline {
            let (_, all) = get(&addr, "/api/journal?limit=100", "prom-test-token");
            panic!("no silence gate decision:\n{all}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Jaeger as a graph source. Jaeger is not packaged for Debian, so this test
/// serves a fake query service on 127.0.0.1 that answers
/// `GET /api/dependencies` exactly as Jaeger's query API does (the `data`
/// array of `parent`, `child`, `callCount`, with `endTs` and `lookback` in
/// milliseconds): warden pulls it, both services join the catalog, and the
/// edge appears in `/api/graph` with its call count.
#[test]
fn jaeger_dependencies_join_the_graph() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let jaeger_addr = listener.local_addr().expect("addr").to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_by_fake = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = req.lines().next().unwrap_or_default().to_string();
            seen_by_fake.lock().expect("lock").push(line.clone());
            let body = if line.starts_with("GET /api/dependencies?endTs=")
                && line.contains("&lookback=3600000")
            {
                r#"{"data":[{"parent":"jg-frontend","child":"jg-cart","callCount":42}],"total":1,"limit":0,"offset":0,"errors":null}"#
            } else {
                r#"{"data":null,"errors":[{"code":404,"msg":"not found"}]}"#
            };
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "integrations:\n  jaeger:\n    enabled: true\n    endpoint: http://{jaeger_addr}\n    interval: 1s\n    lookback: 1h\n"
    );
    let (_warden, addr) = start_warden(dir.path(), &cfg);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, graph) = get(&addr, "/api/graph", "prom-test-token");
        let (_, services) = get(&addr, "/api/services", "prom-test-token");
        if graph.contains("jg-cart") && services.contains("jg-frontend") {
            assert!(graph.contains("\"backend_calls\":42"), "{graph}");
            break;
        }
        if Instant::now() >= deadline {
            let (_, metrics) = get(&addr, "/metrics", "prom-test-token");
            let (_, ready) = get(&addr, "/readyz", "");
            let n = seen.lock().expect("lock").len();
            panic!("no jaeger edge after {n} requests:\n{graph}\n{services}\n{metrics}\n{ready}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, ready) = get(&addr, "/readyz", "");
    assert_eq!(code, 200, "{ready}");
    assert!(ready.contains("\"jaeger\":true"), "{ready}");
}

/// OpenTelemetry traces from the real OpenTelemetry Python SDK and its OTLP
/// exporters (PyPI `opentelemetry-exporter-otlp-proto-grpc` and `-http`,
/// installed by `.ci/run` into `target/py`; `WARDEN_PYTHON` names the
/// interpreter): `scripts/otlp_send.py` exports five traces of a
/// four-service call tree, one service per request, callees first, over
/// gRPC and HTTP with and without gzip. The graph must be exactly the call
/// tree, with the failing callee's error rate, and a wrong token must be
/// refused on both protocols.
#[test]
fn otlp_exporters_build_the_call_graph() {
    let Some(python) = std::env::var_os("WARDEN_PYTHON") else {
        assert!(
            std::env::var("WARDEN_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "WARDEN_REQUIRE_PYTHON=1 but WARDEN_PYTHON is not set"
        );
        eprintln!("WARDEN_PYTHON is not set: skipping the OTLP exporter test");
        return;
    };
    let (grpc, http) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "integrations:\n  otlp:\n    enabled: true\n    grpc_listen: 127.0.0.1:{grpc}\n    http_listen: 127.0.0.1:{http}\n"
    );
    let (_warden, addr) = start_warden(dir.path(), &cfg);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/otlp_send.py");
    let deadline = Instant::now() + Duration::from_secs(30);
    // The receivers start right after the API; retry until they answer.
    let out = loop {
        let out = Command::new(&python)
            .args([script, "--grpc", &format!("127.0.0.1:{grpc}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--token", "prom-test-token", "--traces", "5"])
            .output()
            .expect("run python");
        if out.status.success() || Instant::now() >= deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let edges = loop {
        let (_, graph) = get(&addr, "/api/graph", "prom-test-token");
        let v: serde_json::Value = serde_json::from_str(&graph).unwrap_or_default();
        let edges: Vec<(String, String, u64, f64)> = v["edges"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["caller"].as_str().unwrap_or_default().to_string(),
                            e["callee"].as_str().unwrap_or_default().to_string(),
                            e["calls"].as_u64().unwrap_or(0),
                            e["error_rate"].as_f64().unwrap_or(-1.0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if edges.iter().map(|e| e.2).sum::<u64>() >= 15 || Instant::now() >= deadline {
            break edges;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let e = |a: &str, b: &str, calls: u64, err: f64| (a.to_string(), b.to_string(), calls, err);
    assert_eq!(
        edges,
        vec![
            e("checkout", "inventory", 5, 0.0),
            e("checkout", "payment", 5, 1.0),
            e("frontend", "checkout", 5, 0.0),
        ],
        "{log}"
    );
    let (_, metrics) = get(&addr, "/metrics", "prom-test-token");
    for needle in [
        "warden_ingested_spans_total{source=\"otlp_grpc\"} 15",
        "warden_ingested_spans_total{source=\"otlp_http\"} 20",
    ] {
        assert!(metrics.contains(needle), "{needle}\n{metrics}");
    }
}

fn post_text(addr: &str, path: &str, body: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// VictoriaMetrics (Debian's `victoria-metrics`, installed by `.ci/run`),
/// the other common Prometheus-compatible server: warden pulls from a
/// single-node VictoriaMetrics with PromQL instant queries, and vmagent
/// remote-writes to warden with a bearer token (VictoriaMetrics' own
/// remote-write client, not Prometheus'). Samples are pushed into both with
/// their text import API.
#[test]
fn victoriametrics_pull_and_vmagent_remote_write_reach_the_loop() {
    let (Some(vm), Some(vmagent)) = (binary("victoria-metrics"), binary("vmagent")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (vm_port, agent_port) = (free_port(), free_port());
    let log = |name: &str| {
        std::fs::File::create(dir.path().join(name))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    let _vm = Kill(
        Command::new(vm)
            .arg(format!("-httpListenAddr=127.0.0.1:{vm_port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            // Instant queries see data as soon as it is written.
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(log("vm.log"))
            .spawn()
            .expect("spawn victoria-metrics"),
    );
    let pull = format!(
        "integrations:\n  prometheus:\n    enabled: true\n    endpoint: http://127.0.0.1:{vm_port}\n    interval: 1s\n    queries:\n      cpu_usage: vm_cpu\n"
    );
    let (_warden, addr) = start_warden(dir.path(), &pull);
    let _agent = Kill(
        Command::new(vmagent)
            .arg(format!("-httpListenAddr=127.0.0.1:{agent_port}"))
            .arg(format!("-remoteWrite.url=http://{addr}/api/v1/write"))
            .arg("-remoteWrite.bearerToken=prom-test-token")
            .arg("-remoteWrite.flushInterval=1s")
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("vmagent").display()
            ))
            .stdout(Stdio::null())
            .stderr(log("vmagent.log"))
            .spawn()
            .expect("spawn vmagent"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Fresh samples every round (the pull asks for the latest value).
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        post_text(
            &format!("127.0.0.1:{vm_port}"),
            "/api/v1/import/prometheus",
            &format!("vm_cpu{{service=\"vm-pulled\"}} 0.31 {ms}\n"),
        );
        post_text(
            &format!("127.0.0.1:{agent_port}"),
            "/api/v1/import/prometheus",
            &format!("cpu_usage{{service=\"vmagent-pushed\"}} 0.27 {ms}\n"),
        );
        let (_, services) = get(&addr, "/api/services", "prom-test-token");
        let (_, metrics) = get(&addr, "/metrics", "prom-test-token");
        if services.contains("vm-pulled") && services.contains("vmagent-pushed") {
            assert!(
                metrics.contains("warden_ingested_samples_total{source=\"prometheus\"}")
                    && metrics.contains("warden_ingested_samples_total{source=\"remote_write\"}"),
                "{metrics}"
            );
            break;
        }
        if Instant::now() >= deadline {
            let tail = |f: &str| {
                let l = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
                l.lines().rev().take(10).collect::<Vec<_>>().join("\n")
            };
            panic!(
                "not both services after 60 s:\n{services}\n{metrics}\nvm log:\n{}\nvmagent log:\n{}",
                tail("vm.log"),
                tail("vmagent.log")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The simulated mesh as a real scrape target, end to end through a real
/// Prometheus: warden A runs the mesh with `simulator.export_metrics` (its
/// metrics are served at `/sim/metrics`, not fed to its loop) and a CPU hog
/// scheduled 40 s in; Prometheus scrapes A every second and remote-writes
/// to A; warden B knows nothing of the mesh and pulls the same series from
/// Prometheus with PromQL. Both must detect the fault on the hogged
/// service: A through remote write, B through the pull.
#[test]
fn a_fault_in_the_scraped_mesh_is_detected_through_remote_write_and_pull() {
    let Some(prometheus) = binary("prometheus") else {
        return;
    };
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let (_a, addr_a) = start_warden(
        dir_a.path(),
        "simulator:\n  enabled: true\n  seed: 3\n  export_metrics: true\n  fault: cpu-hog\n  fault_after: 40s\n",
    );
    let queries: String = [
        "cpu_usage",
        "memory_usage",
        "error_rate",
        "request_latency_p95",
        "request_rate",
    ]
    .iter()
    .map(|m| format!("      {m}: {m}\n"))
    .collect();
    let (_b, addr_b) = start_warden(
        dir_b.path(),
        &format!(
            "integrations:\n  prometheus:\n    enabled: true\n    endpoint: http://127.0.0.1:{prom_port}\n    interval: 1s\n    queries:\n{queries}"
        ),
    );
    let config = [
        "global:".to_string(),
        "  scrape_interval: 1s".into(),
        "scrape_configs:".into(),
        "- job_name: warden-sim".into(),
        "  metrics_path: /sim/metrics".into(),
        "  authorization:".into(),
        "    credentials: prom-test-token".into(),
        "  static_configs:".into(),
        format!("  - targets: ['{addr_a}']"),
        "remote_write:".into(),
        format!("- url: http://{addr_a}/api/v1/write"),
        "  authorization:".into(),
        "    credentials: prom-test-token".into(),
        "  queue_config:".into(),
        "    batch_send_deadline: 1s".into(),
        "    min_backoff: 100ms".into(),
        "    max_backoff: 1s".into(),
    ];
    let _prom = start_prometheus(&prometheus, dir_a.path(), prom_port, &config);
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut target = None;
    let (mut seen_a, mut seen_b) = (false, false);
    while !(seen_a && seen_b) {
        if target.is_none() {
            let (_, j) = get(
                &addr_a,
                "/api/journal?kind=fault_injected",
                "prom-test-token",
            );
            let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
            target = v["entries"][0]["target"].as_str().map(str::to_string);
        }
        if let Some(t) = &target {
            let hit = |addr: &str| {
                let (_, a) = get(addr, "/api/monitoring/anomalies", "prom-test-token");
                let v: serde_json::Value = serde_json::from_str(&a).unwrap_or_default();
                v["anomalies"].as_array().is_some_and(|list| {
                    list.iter()
                        .any(|x| x["service"] == t.as_str() && x["metric"] == "cpu_usage")
                })
            };
            seen_a |= hit(&addr_a);
            seen_b |= hit(&addr_b);
        }
        if Instant::now() >= deadline {
            let (_, metrics_a) = get(&addr_a, "/metrics", "prom-test-token");
            let (_, metrics_b) = get(&addr_b, "/metrics", "prom-test-token");
            let log =
                std::fs::read_to_string(dir_a.path().join("prometheus.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            panic!(
                "fault on {target:?}: seen through remote write {seen_a}, through pull {seen_b}\nA:\n{metrics_a}\nB:\n{metrics_b}\nprometheus (newest first):\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // A's loop got the mesh's metrics only through Prometheus.
    let (_, metrics_a) = get(&addr_a, "/metrics", "prom-test-token");
    assert!(
        metrics_a.contains("warden_ingested_samples_total{source=\"remote_write\"}"),
        "{metrics_a}"
    );
}
