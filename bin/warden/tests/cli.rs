//! The `warden` binary as a user runs it: exit codes, JSON output, and
//! durability across SIGKILL. Servers bind 127.0.0.1 on a free port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = warden()
        .args(args)
        .env_remove("WARDEN_ADMIN_TOKEN")
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_commands_and_flags_exit_2_naming_the_value() {
    let cases: [(&[&str], &str); 7] = [
        (&["frobnicate"], "frobnicate"),
        (&["demo", "--no-such-flag"], "--no-such-flag"),
        (&["demo", "--scenario", "meteor-strike"], "meteor-strike"),
        (&["demo", "--duration", "soon"], "soon"),
        (&["demo", "--mode", "yolo"], "yolo"),
        (&["demo", "--speed", "-3"], "-3"),
        (&["incident", "show", "INC-zz"], "INC-zz"),
    ];
    for (args, needle) in cases {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run(&[
        "incident",
        "list",
        "--data-dir",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no warden store"), "{err}");
}

#[test]
fn config_check_accepts_the_example_and_names_bad_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, example, _) = run(&["config", "example"]);
    assert_eq!(code, 0);
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, example).expect("write");
    let (code, out, err) = run(&["config", "check", &good.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "services:\n  recovery:\n    mode: auto\n    cooldwn: 5m\n",
    )
    .expect("write");
    let (code, _, err) = run(&["config", "check", &bad.display().to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("cooldwn") && err.contains("bad.yaml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let (code, schema, _) = run(&["config", "schema"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&schema).expect("schema is JSON");
    assert!(v["properties"]["services"].is_object());
}

#[test]
fn demo_json_prints_one_summary_object_and_the_story_is_in_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().display().to_string();
    let (code, out, err) = run(&[
        "demo",
        "--scenario",
        "dependency-outage",
        "--duration",
        "600s",
        "--speed",
        "0",
        "--mode",
        "auto",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--start",
        "2026-01-05T09:00:00Z",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("stdout is one JSON object");
    for k in [
        "scenario",
        "detected",
        "root_cause",
        "root_cause_rank",
        "actions",
        "recovered",
        "time_to_detect_s",
        "time_to_recover_s",
    ] {
        assert!(v.get(k).is_some(), "summary lacks {k}: {v}");
    }
    assert_eq!(v["root_cause"], "database-service");
    assert_eq!(v["root_cause_rank"], 1);
    assert_eq!(v["recovered"], true);
    assert!(
        err.contains("admin token"),
        "the token is printed on stderr"
    );
    let id = v["incident"].as_str().expect("incident id").to_string();
    let (code, list, _) = run(&["incident", "list", "--data-dir", &data]);
    assert_eq!(code, 0);
    assert!(list.contains(&id));
    let (code, story, _) = run(&["incident", "show", &id, "--data-dir", &data]);
    assert_eq!(code, 0);
    for needle in [
        "anomaly",
        "root causes ranked",
        "service fault: database-service",
        "plan by builtin",
        "gate allowlist",
        "executed restart",
        "verification: recovered",
        "incident resolved",
    ] {
        assert!(story.contains(needle), "story lacks {needle:?}:\n{story}");
    }
}

/// A tiny HTTP/1.1 client (one request per connection).
fn http(addr: &str, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
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

/// Kills the server when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_serve(config: &std::path::Path, data: &std::path::Path) -> (Server, String) {
    let mut child = warden()
        .args([
            "serve",
            "--config",
            &config.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("WARDEN_ADMIN_TOKEN", "test-admin-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "serve did not start");
        let line = lines.next().expect("serve printed a line").expect("utf-8");
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Server(child), addr)
}

#[test]
fn every_acknowledged_record_survives_sigkill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("warden.yaml");
    std::fs::write(
        &config,
        "services:\n  monitoring:\n    interval: 1s\nsimulator:\n  enabled: true\n  seed: 3\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let (mut server, addr) = start_serve(&config, &data);
    // Register continuously from another thread and SIGKILL the server while
    // requests are in flight: every 201 received before the kill must survive.
    let writer_addr = addr.clone();
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for i in 0..100_000 {
            let body = format!(
                r#"{{"name": "svc-{i}", "description": "registered before the crash", "dependencies": ["database-service"]}}"#
            );
            let Ok(mut s) = TcpStream::connect(&writer_addr) else {
                break;
            };
            let req = format!(
                "POST /api/discovery/register HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-admin-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut resp = String::new();
            if s.write_all(req.as_bytes()).is_err() || s.read_to_string(&mut resp).is_err() {
                break;
            }
            if !resp.starts_with("HTTP/1.1 201") {
                break;
            }
            let Some((_, json)) = resp.split_once("\r\n\r\n") else {
                break;
            };
            let v: serde_json::Value = serde_json::from_str(json).expect("json");
            acked.push((format!("svc-{i}"), v["journal_seq"].as_u64().expect("seq")));
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(700));
    // Child::kill is SIGKILL on Unix: no shutdown code runs.
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    drop(server);
    let acked = writer.join().expect("writer");
    assert!(
        acked.len() >= 5,
        "only {} registrations before the kill",
        acked.len()
    );

    let (_server, addr) = start_serve(&config, &data);
    let (code, body) = http(&addr, "GET", "/api/services", "test-admin-token", None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let names: Vec<&str> = v["services"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for (name, _) in &acked {
        assert!(names.contains(&name.as_str()), "{name} lost after SIGKILL");
    }
    let (code, body) = http(
        &addr,
        "GET",
        "/api/journal?kind=service_registered&limit=10000",
        "test-admin-token",
        None,
    );
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let seqs: Vec<u64> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    for (name, seq) in &acked {
        assert!(
            seqs.contains(seq),
            "journal record {seq} for {name} lost after SIGKILL"
        );
    }
    let (code, _) = http(&addr, "GET", "/readyz", "", None);
    assert_eq!(code, 200);
}

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rca")
}

#[test]
fn rca_ranks_a_real_case_and_bench_scores_the_labelled_ones() {
    let case = fixtures().join("temporal_traffic1/test/issue_2");
    let (code, out, err) = run(&["rca", "--case", &case.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let ranking: Vec<&str> = v["ranking"]
        .as_array()
        .expect("ranking")
        .iter()
        .filter_map(|c| c["service"].as_str())
        .collect();
    let pos = ranking
        .iter()
        .position(|s| *s == "lambdastatusupdater_AWS::Lambda::Function")
        .expect("ranked");
    assert!(
        pos < 3,
        "the injected delay is in the top 3: {:?}",
        &ranking[..5]
    );
    let (code, text, _) = run(&["rca", "--case", &case.display().to_string()]);
    assert_eq!(code, 0);
    assert!(text.contains("#1") && text.contains("robust z"), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("ranking.jsonl");
    let (code, report, err) = run(&[
        "bench",
        "rca",
        "--cases",
        &fixtures().display().to_string(),
        "--out",
        &out_path.display().to_string(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(report.trim()).expect("report json");
    assert_eq!(r["overall"]["n"], 2, "two labelled cases");
    assert_eq!(
        r["unscored"], 1,
        "the unlabelled case is ranked, not scored"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out_path)
        .expect("out")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["case"], "temporal_traffic1/test/issue_2");
    let names: Vec<&str> = lines[0]["ranking"]
        .as_array()
        .expect("ranking")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "each service once");
}

#[test]
fn synthetic_cases_are_written_ranked_and_scored_deterministically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = dir.path().join("cases");
    let c = cases.display().to_string();
    let (code, out, err) = run(&[
        "bench",
        "synth-rca",
        "--out",
        &c,
        "--count",
        "12",
        "--seed",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("12 cases"), "{out}");
    let rank = |name: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        let p = path.display().to_string();
        let mut args = vec!["bench", "rca", "--cases", &c, "--out", &p, "--json"];
        args.extend_from_slice(extra);
        let (code, report, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(report.trim()).expect("json");
        assert_eq!(r["overall"]["n"], 12, "every case has a truth");
        std::fs::read_to_string(path).expect("rankings")
    };
    let a = rank("a.jsonl", &[]);
    assert_eq!(a, rank("b.jsonl", &[]), "same cases, same rankings");
    assert_eq!(a.lines().count(), 12);
    let _ = rank("c.jsonl", &["--param", "walk_damping=0"]);
    // Bad input is refused with the bad part named, and writes nothing.
    let bad = dir.path().join("bad.jsonl").display().to_string();
    let (code, _, err) = run(&[
        "bench",
        "rca",
        "--cases",
        &c,
        "--out",
        &bad,
        "--param",
        "walk_dampng=0",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown parameter \"walk_dampng\""), "{err}");
    assert!(!std::path::Path::new(&bad).exists(), "nothing written");
    let (code, _, err) = run(&["bench", "synth-rca", "--out", &c, "--count", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--count 0"), "{err}");
}

#[test]
fn rca_refuses_what_is_not_a_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run(&["rca", "--case", &dir.path().display().to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("data.csv"), "{err}");
    std::fs::write(dir.path().join("data.csv"), "time,a_cpu\n1,x\n").expect("write");
    std::fs::write(dir.path().join("inject_time.txt"), "1\n").expect("write");
    let (code, _, err) = run(&["rca", "--case", &dir.path().display().to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("line 2 column 2"), "{err}");
}

/// A two-file NAB-layout corpus: one window in `cat/a.csv`, none in `cat/b.csv`.
fn tiny_nab(root: &std::path::Path, detector: &str, hit: bool) {
    std::fs::create_dir_all(root.join("labels")).expect("dir");
    std::fs::create_dir_all(root.join("config")).expect("dir");
    std::fs::create_dir_all(root.join("results/cat")).expect("dir");
    std::fs::write(
        root.join("config/profiles.json"),
        r#"{"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}}}"#,
    )
    .expect("profiles");
    std::fs::write(
        root.join("labels/combined_windows.json"),
        r#"{"cat/a.csv": [["2020-01-01 01:00:00.000000", "2020-01-01 01:09:00.000000"]], "cat/b.csv": []}"#,
    )
    .expect("labels");
    for (file, anomaly_at) in [
        ("a.csv", if hit { Some(60) } else { None }),
        ("b.csv", None),
    ] {
        let mut csv = String::from("timestamp,value,anomaly_score\n");
        for i in 0..100 {
            let score = if Some(i) == anomaly_at { 0.9 } else { 0.1 };
            csv.push_str(&format!(
                "2020-01-01 {:02}:{:02}:00,1,{score}\n",
                i / 60,
                i % 60
            ));
        }
        std::fs::write(
            root.join("results/cat").join(format!("{detector}_{file}")),
            csv,
        )
        .expect("results");
    }
}

#[test]
fn nab_score_rewards_a_window_hit_at_its_left_edge_and_names_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    tiny_nab(dir.path(), "det", true);
    let root = dir.path().display().to_string();
    let results = dir.path().join("results").display().to_string();
    let (code, out, err) = run(&[
        "bench",
        "nab-score",
        "--data",
        &root,
        "--results",
        &results,
        "--detector",
        "det",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert!(
        (v["standard"]["normalized"].as_f64().expect("score") - 100.0).abs() < 1e-9,
        "{v}"
    );
    let dir2 = tempfile::tempdir().expect("tempdir");
    tiny_nab(dir2.path(), "det", false);
    let (code, out, _) = run(&[
        "bench",
        "nab-score",
        "--data",
        &dir2.path().display().to_string(),
        "--results",
        &dir2.path().join("results").display().to_string(),
        "--detector",
        "det",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert!(
        v["standard"]["normalized"].as_f64().expect("score").abs() < 1e-9,
        "a detector that misses scores like the null one: {v}"
    );
    let (code, _, err) = run(&[
        "bench",
        "nab-score",
        "--data",
        &root,
        "--results",
        &results,
        "--detector",
        "other",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("other_a.csv"), "{err}");
}

#[test]
fn bench_nab_writes_nab_result_files_and_catches_the_jump() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nab");
    let (code, out, err) = run(&[
        "bench",
        "nab",
        "--data",
        &fx.display().to_string(),
        "--out",
        &out_dir.path().display().to_string(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["files"], 2);
    // One window, no false alarm on the noise-only series at the best
    // threshold: the jump is found inside its window.
    let std = v["profiles"]["standard"]["normalized"]
        .as_f64()
        .expect("score");
    assert!(std > 80.0, "{v}");
    let file = out_dir
        .path()
        .join("artificialWithAnomaly/warden_art_daily_jumpsup.csv");
    let text = std::fs::read_to_string(&file).expect("result file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score,label"));
    assert_eq!(lines.count(), 4032);
    // The same files score the same with the stand-alone scorer.
    let (code, again, err) = run(&[
        "bench",
        "nab-score",
        "--data",
        &fx.display().to_string(),
        "--results",
        &out_dir.path().display().to_string(),
        "--detector",
        "warden",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let w: serde_json::Value = serde_json::from_str(again.trim()).expect("json");
    assert_eq!(w["standard"], v["profiles"]["standard"]);
    let (code, _, err) = run(&["bench", "nab", "--data", "/nonexistent", "--out", "/tmp/x"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent"), "{err}");
}

#[test]
fn detect_flags_the_incident_row_and_names_bad_cells() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("metrics.csv");
    let mut csv = String::from("timestamp,cpu_usage,memory_usage,request_latency,error_rate\n");
    for i in 0..600u32 {
        // Deterministic wiggle; one latency incident at row 500.
        let w = f64::from((i * 7919) % 13) / 13.0 - 0.5;
        let lat = if i == 500 { 2400.0 } else { 120.0 + 10.0 * w };
        csv.push_str(&format!(
            "{},{:.3},{:.3},{lat:.1},{:.4}\n",
            1_767_225_600 + 60 * i64::from(i),
            0.4 + 0.02 * w,
            0.55 + 0.01 * w,
            0.01 + 0.002 * w
        ));
    }
    std::fs::write(&input, &csv).expect("write");
    let scores = dir.path().join("scores.csv");
    for method in ["ensemble", "robust", "iforest"] {
        let (code, out, err) = run(&[
            "detect",
            "--input",
            &input.display().to_string(),
            "--method",
            method,
            "--output",
            &scores.display().to_string(),
            "--json",
        ]);
        assert_eq!(code, 0, "{method}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(v["rows"], 600, "{method}");
        let hit = v["anomalies"]
            .as_array()
            .expect("anomalies")
            .iter()
            .find(|a| a["line"] == 502)
            .unwrap_or_else(|| panic!("{method}: row 500 (line 502) not flagged: {v}"));
        assert_eq!(hit["feature"], "request_latency", "{method}");
        let written = std::fs::read_to_string(&scores).expect("scores");
        assert_eq!(written.lines().count(), 601, "{method}");
        assert!(written.starts_with("line,timestamp,score,anomaly,feature"));
    }
    std::fs::write(&input, "timestamp,cpu\n1767225600,0.4\n1767225660,high\n").expect("write");
    let (code, _, err) = run(&["detect", "--input", &input.display().to_string()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("line 3 column 2 (cpu)") && err.contains("high"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "detect",
        "--input",
        &input.display().to_string(),
        "--contamination",
        "0.7",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("0.7"), "{err}");
}

#[test]
fn forecast_finds_when_a_leak_reaches_its_limit_and_names_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("memory.csv");
    // 14 days of 5-minute samples: 40% rising 1 point a day, a daily ripple.
    let mut csv = String::from("timestamp,memory_usage\n");
    for i in 0..14 * 288 {
        let ripple = 0.01 * (std::f64::consts::TAU * f64::from(i % 288) / 288.0).sin();
        let v = 0.40 + 0.01 * f64::from(i) / 288.0 + ripple;
        csv.push_str(&format!("{},{v:.5}\n", 1_767_225_600 + 300 * i64::from(i)));
    }
    std::fs::write(&input, &csv).expect("write");
    let out_csv = dir.path().join("forecast.csv");
    let (code, out, err) = run(&[
        "forecast",
        "--input",
        &input.display().to_string(),
        "--horizon",
        "30d",
        "--limit",
        "0.7",
        "--output",
        &out_csv.display().to_string(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    // 0.54 at the end of the history, +0.01/day: 0.7 about 16 days later.
    let slope = v["slope_per_day"]["slope"].as_f64().expect("slope");
    assert!((slope - 0.01).abs() < 0.001, "{v}");
    let at = v["exhaustion"]["at"].as_str().expect("crossing date");
    let earliest = v["exhaustion"]["earliest"].as_str().expect("earliest");
    assert!(earliest <= at, "{v}");
    assert!(at > "2026-01-25" && at < "2026-02-05", "{at}");
    let rows = std::fs::read_to_string(&out_csv).expect("forecast file");
    assert!(rows.starts_with("timestamp,point,lower80,upper80,lower95,upper95\n"));
    assert!(rows.lines().count() > 100);
    for (args, needle) in [
        (vec!["--horizon", "soon"], "soon"),
        (vec!["--horizon", "30d", "--column", "cpu"], "\"cpu\""),
        (vec!["--horizon", "800d"], "365 days"),
    ] {
        let mut all = vec!["forecast", "--input"];
        let path = input.display().to_string();
        all.push(&path);
        all.extend(args.iter().copied());
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    std::fs::write(&input, "timestamp,m\n1767225600,0.5\n1767225900,0.6\n").expect("write");
    let (code, _, err) = run(&["forecast", "--input", &input.display().to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("2 points"), "{err}");
    let mut dup = String::from("timestamp,m\n");
    for i in [0, 300, 300, 600, 900, 1200, 1500, 1800, 2100, 2400] {
        dup.push_str(&format!("{},0.5\n", 1_767_225_600 + i));
    }
    std::fs::write(&input, dup).expect("write");
    let (code, _, err) = run(&["forecast", "--input", &input.display().to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("line 4") && err.contains("not after"), "{err}");
}

/// Samples sent the way Prometheus remote-writes them (snappy, protobuf,
/// bearer token) reach the running loop: the service they name joins the
/// catalog and the samples are counted at /metrics.
#[test]
fn remote_write_feeds_the_running_loop() {
    use prost::Message;
    use warden_api::ingest::{Label, PromSample, TimeSeries, WriteRequest};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("warden.yaml");
    std::fs::write(&config, "services:\n  monitoring:\n    interval: 1s\n").expect("config");
    let (_server, addr) = start_serve(&config, &dir.path().join("data"));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let series = |metric: &str, v: f64| TimeSeries {
        labels: vec![
            Label {
                name: "__name__".into(),
                value: metric.into(),
            },
            Label {
                name: "service".into(),
                value: "checkout-service".into(),
            },
        ],
        samples: (0..5)
            .map(|i| PromSample {
                value: v,
                timestamp: now_ms - 5_000 + i * 1000,
            })
            .collect(),
    };
    let req = WriteRequest {
        timeseries: vec![series("cpu_usage", 0.4), series("error_rate", 0.01)],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy");
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer test-admin-token\r\nContent-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(&body).expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    // The loop drains the inbox every second.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = http(&addr, "GET", "/api/services", "test-admin-token", None);
        assert_eq!(code, 200);
        if body.contains("checkout-service") {
            break;
        }
        assert!(Instant::now() < deadline, "service never appeared: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, text) = http(&addr, "GET", "/metrics", "test-admin-token", None);
    assert_eq!(code, 200);
    assert!(
        text.contains("warden_ingested_samples_total{source=\"remote_write\"} 10"),
        "{text}"
    );
}
