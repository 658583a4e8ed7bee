//! The `warden` command line. Thin: parses arguments, calls the library
//! crates, maps errors to exit codes (0 ok, 1 runtime failure, 2 bad input).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use warden_config::{Config, Mode};
use warden_model::{IncidentId, JournalEvent, Timestamp};
use warden_runtime::{DemoOptions, ServeOptions, admin_token, run_demo, run_serve};
use warden_sim::Scenario;
use warden_store::{DecideError, JournalQuery, SqliteStore, Store};

/// Writes a line to stdout, ignoring a closed pipe (`warden … | head`).
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// AI-assisted governance and operations for microservices.
#[derive(Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the simulated mesh, fault injection, the loop and the API in one process.
    Demo(DemoArgs),
    /// Run the loop and the API from a config file.
    Serve {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Overrides store.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overrides api.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        llm: LlmArgs,
    },
    /// Incidents in the store.
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Approve the action an incident is waiting for.
    Approve(DecideArgs),
    /// Reject the action an incident is waiting for.
    Reject(DecideArgs),
    /// Check, print the schema of, or print an example of warden.yaml.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Score a metrics table (timestamp + numeric columns) and print the anomalies with reasons.
    Detect {
        /// The CSV: a header, an optional timestamp column, numeric feature columns.
        #[arg(long)]
        input: PathBuf,
        /// iforest (batch, as the seed), robust (rolling median/MAD) or ensemble (default).
        #[arg(long, default_value = "ensemble", value_parser = parse_method)]
        method: warden_detect::table::Method,
        /// Isolation Forest contamination, (0, 0.5].
        #[arg(long, default_value_t = 0.1)]
        contamination: f64,
        /// Write every row's score here (CSV).
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Forecast a series: trend, forecast with 80/95% intervals, and when it crosses a limit.
    Forecast {
        /// CSV with a timestamp column and one numeric column (or name it with --column).
        #[arg(long)]
        input: PathBuf,
        /// How far ahead, e.g. 30d, 12h.
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        horizon: i64,
        /// The column to forecast when the file has several.
        #[arg(long)]
        column: Option<String>,
        /// A capacity limit: report when the forecast crosses it.
        #[arg(long)]
        limit: Option<f64>,
        /// Write the forecast here (timestamp, point, lower80, upper80, lower95, upper95).
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Rank the root cause of one offline case (shared/data/rca/FORMAT.md layout).
    Rca {
        /// The case directory (data.csv and inject_time.txt at least).
        #[arg(long)]
        case: PathBuf,
        #[arg(long)]
        json: bool,
        /// Set a ranking parameter, NAME=VALUE (repeatable; see docs/DESIGN.md, "Root cause").
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Offline benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time one capacity pass: forecast and plan cpu and memory of many services with 5-minute history.
    Capacity {
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// Days of 5-minute history per series.
        #[arg(long, default_value_t = 30)]
        days: usize,
        #[arg(long)]
        json: bool,
    },
    /// Receivers under load on 127.0.0.1: remote-write samples/s sustained with detection running, peak memory; OTLP spans/s.
    Ingest {
        /// Length of the remote-write phase.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: i64,
        /// Length of the OTLP phase ("0s" is not allowed; use --no-otlp).
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        otlp_duration: i64,
        #[arg(long)]
        no_otlp: bool,
        /// Services, each with warden's eight metrics.
        #[arg(long, default_value_t = 2000)]
        services: usize,
        /// Samples per remote-write request.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Concurrent senders.
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Spans per OTLP request.
        #[arg(long, default_value_t = 1000)]
        span_batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Forecast the 414 M4 hourly series (horizon 48); print sMAPE, MASE, OWA vs Naive2 and interval coverage.
    M4 {
        /// The directory with Hourly-train.csv and Hourly-test.csv.
        #[arg(long)]
        data: PathBuf,
        /// Write one row per series: id, then the 48 forecasts.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Detection performance: Isolation Forest vs scikit-learn, ensemble throughput, a tick over many series.
    Detect {
        /// Rows (× 4 features) for the Isolation Forest fit + score.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Series in the detection tick.
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Points streamed through one ensemble for the throughput figure.
        #[arg(long, default_value_t = 2_000_000)]
        points: usize,
        /// Runs per figure; the best is reported.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// A Python with scikit-learn (e.g. target/py/bin/python after .ci/run) to compare against.
        #[arg(long)]
        python: Option<PathBuf>,
        /// The scikit-learn driver script.
        #[arg(long, default_value = "scripts/sklearn_iforest.py")]
        sklearn_script: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run the default streaming detector over all NAB series, write NAB result files, score them.
    Nab {
        /// The NAB root (data/, labels/, config/).
        #[arg(long)]
        data: PathBuf,
        /// Results root: <out>/<category>/warden_<file>.csv.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Score existing NAB result files (NAB's layout) with warden's NAB scorer.
    NabScore {
        /// The NAB data root (with labels/ and config/).
        #[arg(long)]
        data: PathBuf,
        /// Results root: <results>/<category>/<detector>_<file>.csv.
        #[arg(long)]
        results: PathBuf,
        /// The detector name prefixing the result files.
        #[arg(long)]
        detector: String,
        #[arg(long)]
        json: bool,
    },
    /// Rank every case below DIR; write one JSON line per case; print AC@1/3/5 and Avg@5.
    Rca {
        /// Root of the cases.
        #[arg(long)]
        cases: PathBuf,
        /// Where the rankings go (JSON Lines).
        #[arg(long)]
        out: PathBuf,
        /// Also print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Set a ranking parameter, NAME=VALUE (repeatable; for ablations).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Write synthetic RCA cases on random topologies (10-40 services, one fault each) in the case layout, to score with `bench rca`.
    SynthRca {
        /// Directory to write the cases into (<fault>/case_<seed>/).
        #[arg(long)]
        out: PathBuf,
        /// How many cases (1-10000).
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Seed of the first case; case k has seed SEED + k.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Inject this fault: cpu-hog, memory-leak, latency-injection, error-burst, crash-loop, dependency-outage.
    /// Without it the demo rotates through all six, one every 15 simulated minutes.
    #[arg(long, value_parser = parse_scenario)]
    scenario: Option<Scenario>,
    /// Stop after this much simulated time (e.g. 600s, 10m) and print a summary.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<i64>,
    /// Simulated seconds per wall second; 0 runs as fast as possible.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    speed: f64,
    /// observe | dry-run | approve | auto.
    #[arg(long, default_value = "dry-run", value_parser = parse_mode)]
    mode: Mode,
    /// Seed of the simulation and of the fault's target.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Address of the API and dashboard.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the embedded store lives.
    #[arg(long, default_value = "./warden-data")]
    data_dir: PathBuf,
    /// Print the summary as one JSON object on stdout (the timeline goes to stderr).
    #[arg(long)]
    json: bool,
    /// Base configuration (the demo sets the mode and allows every action on its services).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Simulated start time (RFC 3339); default now. Pin it for repeatable runs.
    #[arg(long, value_parser = parse_time)]
    start: Option<Timestamp>,
    /// Simulated history before the start that trains the baselines.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    warmup: i64,
    #[command(flatten)]
    llm: LlmArgs,
}

/// A language model as the analyst, without a config file.
#[derive(clap::Args, Clone)]
struct LlmArgs {
    /// An OpenAI-compatible server's /v1 base URL (key from WARDEN_LLM_API_KEY); sets analyst.provider openai.
    #[arg(long)]
    llm_endpoint: Option<String>,
    /// The model name to ask for (analyst.model_name).
    #[arg(long)]
    llm_model: Option<String>,
}

impl LlmArgs {
    /// Applies the flags to `c` and checks the result.
    fn apply(&self, c: &mut Config) -> Result<(), Failure> {
        if let Some(e) = &self.llm_endpoint {
            c.analyst.provider = warden_config::Provider::Openai;
            c.analyst.endpoint = e.clone();
            c.analyst.api_key_env = Some("WARDEN_LLM_API_KEY".into());
            c.analyst.api_key_file = None;
        }
        if let Some(m) = &self.llm_model {
            if self.llm_endpoint.is_none() && c.analyst.provider == warden_config::Provider::Builtin
            {
                return Err(Failure::Input(
                    "--llm-model needs --llm-endpoint (or a model provider in the config)".into(),
                ));
            }
            c.analyst.model_name = m.clone();
        }
        c.validate("--llm-endpoint/--llm-model")
            .map_err(|e| Failure::Input(e.to_string()))
    }
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// Incidents, newest first.
    List {
        #[arg(long, default_value = "./warden-data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One incident and its whole journal.
    Show {
        id: String,
        #[arg(long, default_value = "./warden-data")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct DecideArgs {
    /// The incident id (INC-xxxxxxxx).
    id: String,
    #[arg(long, default_value = "./warden-data")]
    data_dir: PathBuf,
    /// Who decides (recorded in the journal).
    #[arg(long)]
    by: Option<String>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a file; exit 2 with the key and value on the first problem.
    Check { file: PathBuf },
    /// Print the JSON schema of warden.yaml.
    Schema,
    /// Print a complete commented example.
    Example,
}

fn parse_duration(s: &str) -> Result<i64, String> {
    match warden_model::time::parse_duration_ms(s) {
        Ok(ms) if ms > 0 => Ok(ms),
        Ok(_) => Err(format!("duration {s:?} must be positive")),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    Scenario::parse(s).map_err(|e| e.to_string())
}

fn parse_method(s: &str) -> Result<warden_detect::table::Method, String> {
    warden_detect::table::Method::parse(s)
        .ok_or_else(|| format!("{s:?} is not a method: iforest, robust or ensemble"))
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s)
        .ok_or_else(|| format!("unknown mode {s:?}: expected observe, dry-run, approve or auto"))
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1_000_000.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "speed {s:?}: expected a number from 0 (unpaced) to 1000000"
        )),
    }
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| e.to_string())
}

/// A failure with its exit code.
enum Failure {
    /// Bad input: exit 2.
    Input(String),
    /// Runtime failure: exit 1.
    Runtime(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Runtime(e.to_string())
    }
}

fn load_config(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::Input(e.to_string()))
}

fn open_store(dir: &Path) -> Result<SqliteStore, Failure> {
    if !dir.join("warden.db").exists() {
        return Err(Failure::Input(format!(
            "no warden store in {} (run warden demo or serve first, or pass --data-dir)",
            dir.display()
        )));
    }
    Ok(SqliteStore::open_dir(dir)?)
}

fn parse_incident_id(id: &str) -> Result<IncidentId, Failure> {
    IncidentId::parse(id).ok_or_else(|| {
        Failure::Input(format!(
            "invalid incident id {id:?}: expected INC- and 8 hex digits"
        ))
    })
}

fn wall_minute() -> Timestamp {
    let now = warden_runtime::wall_now();
    Timestamp(now.millis() / 60_000 * 60_000)
}

async fn demo(a: DemoArgs) -> Result<(), Failure> {
    let mut config = match &a.config {
        Some(p) => load_config(p)?,
        None => Config::default(),
    };
    a.llm.apply(&mut config)?;
    let (token, generated) = admin_token();
    let mut opts = DemoOptions::new(a.data_dir.clone(), a.start.unwrap_or_else(wall_minute));
    opts.scenario = a.scenario;
    opts.duration_ms = a.duration;
    opts.speed = a.speed;
    opts.mode = a.mode;
    opts.seed = a.seed;
    opts.warmup_ms = a.warmup;
    opts.listen = Some(a.listen);
    opts.config = config;
    opts.admin_token = Some(token.clone());
    let json = a.json;
    let mut out = move |line: &str| {
        // A closed pipe must not kill the run: the store has the story.
        if json {
            let _ = writeln!(std::io::stderr(), "{line}");
        } else {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
    };
    if generated {
        out(&format!(
            "admin token (set WARDEN_ADMIN_TOKEN to choose your own): {token}"
        ));
    } else {
        out("admin token: from WARDEN_ADMIN_TOKEN");
    }
    let summary = run_demo(opts, &mut out).await?;
    if let Some(s) = summary {
        if json {
            out!("{}", serde_json::to_string(&s)?);
        } else {
            out!();
            out!("scenario {} on {} ({} mode)", s.scenario, s.target, s.mode);
            out!(
                "  detected:        {} ({})",
                s.detected,
                s.time_to_detect_s
                    .map_or("-".into(), |t| format!("{t:.0}s after the fault"))
            );
            out!(
                "  root cause:      {} (true cause ranked {})",
                s.root_cause.as_deref().unwrap_or("-"),
                s.root_cause_rank.map_or("-".into(), |r| format!("#{r}"))
            );
            for act in &s.actions {
                out!(
                    "  action:          {} {} {} [{}]",
                    act.action,
                    act.target,
                    serde_json::Value::Object(act.params.clone()),
                    act.status
                );
            }
            out!(
                "  recovered:       {} ({})",
                s.recovered,
                s.time_to_recover_s
                    .map_or("-".into(), |t| format!("{t:.0}s after the fault"))
            );
            if let Some(i) = &s.incident {
                out!(
                    "  the whole story: warden incident show {i} --data-dir {}",
                    a.data_dir.display()
                );
            }
        }
    }
    Ok(())
}

async fn serve(
    config: PathBuf,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    llm: LlmArgs,
) -> Result<(), Failure> {
    let mut cfg = load_config(&config)?;
    llm.apply(&mut cfg)?;
    let listen = match listen {
        Some(l) => l,
        None => cfg.api.listen.parse().map_err(|_| {
            Failure::Input(format!("api.listen {:?} is not host:port", cfg.api.listen))
        })?,
    };
    let (token, _) = admin_token();
    let env_token = std::env::var("WARDEN_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    if env_token.is_none() && cfg.api.tokens.is_empty() && !cfg.api.anonymous {
        eprintln!(
            "no api.tokens configured and WARDEN_ADMIN_TOKEN unset; generated admin token: {token}"
        );
    }
    let opts = ServeOptions {
        data_dir: data_dir.unwrap_or_else(|| cfg.store.data_dir.clone()),
        config: cfg,
        admin_token: Some(token),
        listen,
    };
    let mut out = |line: &str| {
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    run_serve(opts, &mut out).await?;
    Ok(())
}

fn incident(cmd: IncidentCommand) -> Result<(), Failure> {
    match cmd {
        IncidentCommand::List {
            data_dir,
            limit,
            json,
        } => {
            let store = open_store(&data_dir)?;
            let list = store.incidents(limit.clamp(1, 10_000))?;
            if json {
                out!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            out!(
                "{:<13} {:<18} {:<21} {:<24} TITLE",
                "ID",
                "STATUS",
                "OPENED",
                "ROOT CAUSE"
            );
            for i in list {
                let rc = i
                    .root_cause()
                    .map(|c| c.service.clone())
                    .unwrap_or_else(|| "-".into());
                out!(
                    "{:<13} {:<18} {:<21} {:<24} {}",
                    i.id,
                    i.status.as_str(),
                    i.opened_at.to_string(),
                    rc,
                    i.title
                );
            }
            Ok(())
        }
        IncidentCommand::Show { id, data_dir, json } => {
            let id = parse_incident_id(&id)?;
            let store = open_store(&data_dir)?;
            let inc = store.incident(&id)?.ok_or_else(|| {
                Failure::Input(format!("no incident {id} in {}", data_dir.display()))
            })?;
            let journal = store.journal(&JournalQuery {
                incident: Some(id),
                limit: 100_000,
                ..Default::default()
            })?;
            if json {
                out!(
                    "{}",
                    serde_json::json!({ "incident": inc, "journal": journal })
                );
                return Ok(());
            }
            out!("{} — {}", inc.id, inc.title);
            out!(
                "status {}, opened {}{}",
                inc.status.as_str(),
                inc.opened_at,
                inc.resolved_at
                    .map(|r| format!(", resolved {r}"))
                    .unwrap_or_default()
            );
            out!(
                "services: {}",
                inc.services
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            out!("\nroot-cause ranking:");
            for (k, c) in inc.ranking.iter().enumerate().take(5) {
                out!(
                    "  #{} {} ({}, score {:.2})",
                    k + 1,
                    c.service,
                    c.metric,
                    c.score
                );
                for e in &c.evidence {
                    out!("       {e}");
                }
            }
            out!("\njournal:");
            for e in &journal {
                out!("  {} #{:<6} {}", e.ts, e.seq, e.event.summary());
                match &e.event {
                    JournalEvent::Analysis { body, .. } => {
                        for r in body
                            .get("recommendations")
                            .and_then(|r| r.as_array())
                            .into_iter()
                            .flatten()
                        {
                            out!(
                                "           recommendation: {}",
                                r.as_str().unwrap_or_default()
                            );
                        }
                        if let Some(r) = body.get("rationale").and_then(|r| r.as_str()) {
                            out!("           rationale: {r}");
                        }
                    }
                    JournalEvent::ActionExecuted { receipt } => {
                        if let Some(u) = &receipt.undo {
                            out!("           undo with: {u}");
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

fn decide(a: DecideArgs, approve: bool) -> Result<(), Failure> {
    let id = parse_incident_id(&a.id)?;
    let store = open_store(&a.data_dir)?;
    if store.incident(&id)?.is_none() {
        return Err(Failure::Input(format!(
            "no incident {id} in {}",
            a.data_dir.display()
        )));
    }
    let by = a.by.unwrap_or_else(|| {
        format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )
    });
    match store.decide_approval(&id, approve, &by, warden_runtime::wall_now()) {
        Ok(ap) => {
            out!(
                "{} {} for {id}: {}",
                if approve { "approved" } else { "rejected" },
                ap.action,
                by
            );
            Ok(())
        }
        Err(DecideError::NotPending(_)) => Err(Failure::Input(format!(
            "incident {id} has no action awaiting approval"
        ))),
        Err(DecideError::Store(e)) => Err(Failure::Runtime(e.to_string())),
    }
}

fn config(cmd: ConfigCommand) -> Result<(), Failure> {
    match cmd {
        ConfigCommand::Check { file } => {
            let c = load_config(&file)?;
            out!(
                "{}: ok (mode {}, {} allow rules, {} tokens, {} static services)",
                file.display(),
                c.services.recovery.mode.as_str(),
                c.services.recovery.allow.len(),
                c.api.tokens.len(),
                c.static_services.len()
            );
            Ok(())
        }
        ConfigCommand::Schema => {
            out!("{}", serde_json::to_string_pretty(&Config::json_schema())?);
            Ok(())
        }
        ConfigCommand::Example => {
            let _ = write!(std::io::stdout(), "{}", warden_config::EXAMPLE_YAML);
            Ok(())
        }
    }
}

fn detect(
    input: &Path,
    method: warden_detect::table::Method,
    contamination: f64,
    output: Option<PathBuf>,
    json: bool,
) -> Result<(), Failure> {
    if !(contamination > 0.0 && contamination <= 0.5) {
        return Err(Failure::Input(format!(
            "--contamination {contamination}: must be in (0, 0.5]"
        )));
    }
    let t = warden_bench::metrics_table::read_metrics_table(input)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let scores = warden_detect::table::score_table(&t.ts_ms, &t.rows, method, contamination)
        .map_err(|e| Failure::Input(format!("{}: {e}", input.display())))?;
    if let Some(path) = &output {
        let mut w = csv::Writer::from_path(path)
            .map_err(|e| Failure::Input(format!("--output {}: {e}", path.display())))?;
        let io = |e: csv::Error| Failure::Input(format!("--output {}: {e}", path.display()));
        w.write_record([
            "line",
            "timestamp",
            "score",
            "anomaly",
            "feature",
            "value",
            "baseline",
            "z",
            "detector",
        ])
        .map_err(io)?;
        for (i, s) in scores.iter().enumerate() {
            w.write_record([
                t.lines[i].to_string(),
                t.time_text[i].clone(),
                format!("{:.6}", s.score),
                s.anomaly.to_string(),
                t.columns[s.feature].clone(),
                s.value.to_string(),
                format!("{:.6}", s.baseline),
                format!("{:.3}", s.z),
                s.detector.to_string(),
            ])
            .map_err(io)?;
        }
        w.flush()?;
    }
    let anomalies: Vec<usize> = (0..scores.len()).filter(|i| scores[*i].anomaly).collect();
    if json {
        let rows: Vec<serde_json::Value> = anomalies
            .iter()
            .map(|i| {
                let s = &scores[*i];
                serde_json::json!({
                    "line": t.lines[*i],
                    "timestamp": t.time_text[*i],
                    "score": s.score,
                    "feature": t.columns[s.feature],
                    "value": s.value,
                    "baseline": s.baseline,
                    "z": s.z,
                    "detector": s.detector,
                })
            })
            .collect();
        out!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "rows": scores.len(),
                "method": method,
                "anomalies": rows,
            }))?
        );
        return Ok(());
    }
    out!(
        "{} rows, {} anomalies ({:?})",
        scores.len(),
        anomalies.len(),
        method
    );
    for i in anomalies {
        let s = &scores[i];
        let when = if t.time_text[i].is_empty() {
            format!("line {}", t.lines[i])
        } else {
            format!("line {} ({})", t.lines[i], t.time_text[i])
        };
        out!(
            "{when}: score {:.3}: {} = {} vs baseline {:.4} (z {:+.1}, {})",
            s.score,
            t.columns[s.feature],
            s.value,
            s.baseline,
            s.z,
            s.detector
        );
    }
    Ok(())
}

struct ForecastArgs {
    input: PathBuf,
    horizon: i64,
    column: Option<String>,
    limit: Option<f64>,
    output: Option<PathBuf>,
    json: bool,
}

fn forecast(a: ForecastArgs) -> Result<(), Failure> {
    if let Some(l) = a.limit
        && !l.is_finite()
    {
        return Err(Failure::Input(format!(
            "--limit {l}: must be a finite number"
        )));
    }
    let t = warden_bench::metrics_table::read_metrics_table(&a.input)
        .map_err(|e| Failure::Input(e.to_string()))?;
    if t.time_text.iter().all(String::is_empty) {
        return Err(Failure::Input(format!(
            "{}: no timestamp column (expected a column named timestamp or time)",
            a.input.display()
        )));
    }
    let col = match (&a.column, t.columns.len()) {
        (Some(name), _) => t.columns.iter().position(|c| c == name).ok_or_else(|| {
            Failure::Input(format!(
                "--column {name:?}: not in {} (columns: {})",
                a.input.display(),
                t.columns.join(", ")
            ))
        })?,
        (None, 1) => 0,
        (None, _) => {
            return Err(Failure::Input(format!(
                "{} has {} columns ({}): name one with --column",
                a.input.display(),
                t.columns.len(),
                t.columns.join(", ")
            )));
        }
    };
    let values: Vec<f64> = t.rows.iter().map(|r| r[col]).collect();
    let r = warden_forecast::analyze(&t.ts_ms, &values, a.horizon, a.limit).map_err(|e| {
        // Name the CSV line where the series has one.
        let line = match &e {
            warden_forecast::SeriesError::Order { index, .. } => t.lines.get(*index),
            warden_forecast::SeriesError::Forecast(warden_forecast::ForecastError::NotFinite {
                index,
                ..
            }) => t.lines.get(*index),
            _ => None,
        };
        match line {
            Some(l) => Failure::Input(format!("{} line {l}: {e}", a.input.display())),
            None => Failure::Input(format!("{}: {e}", a.input.display())),
        }
    })?;
    let iso = |ms: i64| warden_model::Timestamp(ms).rfc3339();
    if let Some(path) = &a.output {
        let mut w = csv::Writer::from_path(path)
            .map_err(|e| Failure::Input(format!("--output {}: {e}", path.display())))?;
        let io = |e: csv::Error| Failure::Input(format!("--output {}: {e}", path.display()));
        w.write_record([
            "timestamp",
            "point",
            "lower80",
            "upper80",
            "lower95",
            "upper95",
        ])
        .map_err(io)?;
        let f = &r.forecast;
        for i in 0..f.point.len() {
            w.write_record([
                iso(r.at(i)),
                f.point[i].to_string(),
                f.lower80[i].to_string(),
                f.upper80[i].to_string(),
                f.lower95[i].to_string(),
                f.upper95[i].to_string(),
            ])
            .map_err(io)?;
        }
        w.flush()?;
    }
    let f = &r.forecast;
    let last = f.point.len() - 1;
    let cross = |step: Option<usize>| step.map(|s| iso(r.at(s - 1)));
    if a.json {
        out!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "column": t.columns[col],
                "step_s": r.step_ms / 1000,
                "trend": r.trend,
                "slope_per_day": r.slope_per_day,
                "method": f.method,
                "periods_steps": f.periods,
                "end": {
                    "timestamp": iso(r.at(last)),
                    "point": f.point[last],
                    "lower80": f.lower80[last], "upper80": f.upper80[last],
                    "lower95": f.lower95[last], "upper95": f.upper95[last],
                },
                "max_point": f.point.iter().copied().fold(f64::MIN, f64::max),
                "max_upper95": f.upper95.iter().copied().fold(f64::MIN, f64::max),
                "exhaustion": r.exhaustion.map(|e| serde_json::json!({
                    "limit": e.limit,
                    "at": cross(e.point_step),
                    "earliest": cross(e.upper95_step),
                    "probability": e.probability,
                })),
            }))?
        );
        return Ok(());
    }
    out!(
        "{}: {} points, forecast every {} for {} steps ({:?}{})",
        t.columns[col],
        values.len(),
        warden_model::time::format_duration_ms(r.step_ms),
        f.point.len(),
        f.method,
        if f.periods.is_empty() {
            String::new()
        } else {
            format!(
                ", seasonal periods {}",
                f.periods
                    .iter()
                    .map(|p| warden_model::time::format_duration_ms(*p as i64 * r.step_ms))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        }
    );
    match r.slope_per_day {
        Some(s) => out!(
            "trend: {} (seed rule); {:+.4}/day [{:+.4}, {:+.4}] (Theil-Sen, 95%)",
            r.trend.as_str(),
            s.slope,
            s.lower,
            s.upper
        ),
        None => out!("trend: {} (seed rule)", r.trend.as_str()),
    }
    out!(
        "at {}: {:.4} (80% {:.4} .. {:.4}; 95% {:.4} .. {:.4})",
        iso(r.at(last)),
        f.point[last],
        f.lower80[last],
        f.upper80[last],
        f.lower95[last],
        f.upper95[last]
    );
    if let Some(e) = r.exhaustion {
        match (cross(e.point_step), cross(e.upper95_step)) {
            (Some(at), Some(early)) => out!(
                "limit {}: reached {at} (earliest {early}); probability within the horizon {:.0}%",
                e.limit,
                100.0 * e.probability
            ),
            (None, Some(early)) => out!(
                "limit {}: not reached by the forecast; the 95% bound reaches it {early}; probability {:.0}%",
                e.limit,
                100.0 * e.probability
            ),
            _ => out!(
                "limit {}: not reached within the horizon (probability {:.1}%)",
                e.limit,
                100.0 * e.probability
            ),
        }
    }
    Ok(())
}

/// Ranking parameters: the defaults with each NAME=VALUE applied.
fn rank_params(assignments: &[String]) -> Result<warden_rca::RankParams, Failure> {
    let mut p = warden_rca::RankParams::default();
    for a in assignments {
        p.set(a)
            .map_err(|e| Failure::Input(format!("--param {e}")))?;
    }
    Ok(p)
}

fn rca(case: PathBuf, json: bool, params: &[String]) -> Result<(), Failure> {
    let params = rank_params(params)?;
    if !case.join("data.csv").is_file() || !case.join("inject_time.txt").is_file() {
        return Err(Failure::Input(format!(
            "{} is not a case: it needs data.csv and inject_time.txt",
            case.display()
        )));
    }
    let root = case
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .unwrap_or(&case)
        .to_path_buf();
    let c = warden_bench::load_case(&case, &root).map_err(|e| Failure::Input(e.to_string()))?;
    let ranking = warden_bench::rank_case(&c, &params);
    if json {
        out!(
            "{}",
            serde_json::json!({ "case": case.display().to_string(), "ranking": ranking })
        );
        return Ok(());
    }
    out!(
        "root-cause ranking for {} ({} services, onset {}):",
        case.display(),
        ranking.len(),
        Timestamp::from_secs_f64(c.inject_time)
    );
    for (k, cand) in ranking
        .iter()
        .enumerate()
        .filter(|(_, c)| c.score > 0.0)
        .take(10)
    {
        out!(
            "  #{:<2} {} ({}, score {:.2})",
            k + 1,
            cand.service,
            cand.metric,
            cand.score
        );
        for e in &cand.evidence {
            out!("        {e}");
        }
    }
    let quiet = ranking.iter().filter(|c| c.score <= 0.0).count();
    if quiet > 0 {
        out!("  ({quiet} services show no significant change)");
    }
    Ok(())
}

fn print_nab_scores(
    scores: &std::collections::BTreeMap<String, warden_bench::nab::ProfileScore>,
) -> Result<(), Failure> {
    out!(
        "{:<20} {:>10} {:>10} {:>10}",
        "profile",
        "score",
        "threshold",
        "raw"
    );
    for (name, s) in scores {
        out!(
            "{name:<20} {:>10.2} {:>10.4} {:>10.3}",
            s.normalized,
            s.threshold,
            s.raw
        );
    }
    Ok(())
}

fn progress_bar(unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} {{elapsed}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn bench(cmd: BenchCommand) -> Result<(), Failure> {
    match cmd {
        BenchCommand::Capacity {
            services,
            days,
            json,
        } => {
            if services == 0 || !(1..=365).contains(&days) {
                return Err(Failure::Input(format!(
                    "--services {services} --days {days}: need at least 1 service and 1..=365 days"
                )));
            }
            let bar = progress_bar("services");
            bar.set_length(services as u64);
            let r =
                warden_bench::capacity_bench::run(services, days, &|d| bar.set_position(d as u64));
            bar.finish_and_clear();
            if json {
                out!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            out!(
                "{} services × 2 resources, {} points each: {:.1} s on {} cores ({} plans, {} with a predicted exhaustion)",
                r.services,
                r.points_per_series,
                r.seconds,
                r.cores,
                r.plans,
                r.exhaustions
            );
            Ok(())
        }
        BenchCommand::M4 { data, out, json } => {
            let series =
                warden_bench::m4::read_m4(&data).map_err(|e| Failure::Input(e.to_string()))?;
            let bar = progress_bar("series");
            bar.set_length(series.len() as u64);
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            let results =
                warden_bench::m4::run(&series, cores, &|done, _| bar.set_position(done as u64));
            bar.finish_and_clear();
            if let Some(path) = &out {
                let mut w = csv::Writer::from_path(path)
                    .map_err(|e| Failure::Input(format!("--out {}: {e}", path.display())))?;
                let io = |e: csv::Error| Failure::Input(format!("--out {}: {e}", path.display()));
                let mut header = vec!["id".to_string()];
                header.extend((1..=warden_bench::m4::HORIZON).map(|i| format!("F{i}")));
                w.write_record(&header).map_err(io)?;
                for r in &results {
                    let mut row = vec![r.id.clone()];
                    row.extend(r.forecast.iter().map(|v| v.to_string()));
                    w.write_record(&row).map_err(io)?;
                }
                w.flush()?;
            }
            let rep = warden_bench::m4::report(&results);
            if json {
                out!("{}", serde_json::to_string(&rep)?);
                return Ok(());
            }
            out!(
                "{} series, horizon {}",
                rep.series,
                warden_bench::m4::HORIZON
            );
            out!("{:<10} {:>8} {:>8} {:>8}", "", "sMAPE", "MASE", "OWA");
            out!(
                "{:<10} {:>8.3} {:>8.3} {:>8.3}",
                "warden",
                rep.smape,
                rep.mase,
                rep.owa
            );
            out!(
                "{:<10} {:>8.3} {:>8.3} {:>8.3}",
                "Naive2",
                rep.naive2_smape,
                rep.naive2_mase,
                1.0
            );
            out!(
                "interval coverage: 95% covers {:.1}% of test points, 80% covers {:.1}%",
                100.0 * rep.coverage95,
                100.0 * rep.coverage80
            );
            Ok(())
        }
        BenchCommand::Ingest {
            duration,
            otlp_duration,
            no_otlp,
            services,
            batch,
            senders,
            span_batch,
            json,
        } => {
            for (flag, v, max) in [
                ("--services", services, 1_000_000),
                ("--batch", batch, 100_000),
                ("--senders", senders, 256),
                ("--span-batch", span_batch, 100_000),
            ] {
                if v == 0 || v > max {
                    return Err(Failure::Input(format!("{flag} {v}: expected 1..={max}")));
                }
            }
            let spec = warden_runtime::IngestBench {
                duration_ms: duration as u64,
                otlp_duration_ms: if no_otlp { 0 } else { otlp_duration as u64 },
                services,
                batch,
                senders,
                span_batch,
                seed: 7,
            };
            let bar = indicatif::ProgressBar::new_spinner();
            let r = runtime()?.block_on(warden_runtime::run_ingest_bench(&spec, &mut |m| {
                bar.set_message(m.to_string())
            }))?;
            bar.finish_and_clear();
            if json {
                out!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            let w = &r.remote_write;
            out!("cores: {}", r.cores);
            out!(
                "remote write: {} series, {:.0} s, {} requests ({} answered 503 and retried, {} failed)",
                w.series,
                w.seconds,
                w.requests,
                w.retried_requests,
                w.failed_requests
            );
            out!(
                "  accepted {:.0} samples/s, through the detectors {:.0} samples/s; {} dropped",
                w.accepted_per_second,
                w.processed_per_second,
                w.samples_dropped
            );
            out!(
                "  CPU per sample: {:.2} µs in all (senders included), {:.2} µs on the loop's thread (busy {:.0}%)",
                w.process_cpu_us_per_sample,
                w.engine_cpu_us_per_sample,
                100.0 * w.engine_busy
            );
            out!(
                "  memory: {:.0} MiB after the first round, {:.0} MiB at the end, peak {:.0} MiB",
                w.rss_mib_after_first_round,
                w.rss_mib_end,
                w.peak_rss_mib
            );
            if let Some(o) = &r.otlp {
                out!(
                    "otlp/http: {:.0} s, {} requests ({} answered 503 and retried, {} failed): accepted {:.0} spans/s, joined {:.0} spans/s, {} calls found",
                    o.seconds,
                    o.requests,
                    o.retried_requests,
                    o.failed_requests,
                    o.accepted_per_second,
                    o.processed_per_second,
                    o.calls_found
                );
            }
            Ok(())
        }
        BenchCommand::Detect {
            rows,
            series,
            points,
            repeats,
            python,
            sklearn_script,
            json,
        } => {
            for (flag, v) in [
                ("--rows", rows),
                ("--series", series),
                ("--points", points),
                ("--repeats", repeats),
            ] {
                if v == 0 {
                    return Err(Failure::Input(format!("{flag} {v}: must be at least 1")));
                }
            }
            if rows < 2 {
                return Err(Failure::Input(format!("--rows {rows}: must be at least 2")));
            }
            if python.is_some() && !sklearn_script.is_file() {
                return Err(Failure::Input(format!(
                    "--sklearn-script {}: no such file (run from the repository root or pass the path)",
                    sklearn_script.display()
                )));
            }
            let spec = warden_bench::detect_bench::DetectBench {
                rows,
                series,
                stream_points: points,
                repeats,
                python: python.map(|p| (p, sklearn_script)),
            };
            let bar = indicatif::ProgressBar::new_spinner();
            let r =
                warden_bench::detect_bench::run(&spec, |stage| bar.set_message(stage.to_string()))
                    .map_err(Failure::Input)?;
            bar.finish_and_clear();
            if json {
                out!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            out!("cores: {}", r.cores);
            out!(
                "isolation forest fit+score {} x 4: warden {:.3} s",
                r.iforest_rows,
                r.iforest_seconds
            );
            for s in &r.sklearn {
                out!(
                    "  scikit-learn {} n_jobs={}: {:.3} s (warden {:.1}x faster)",
                    s.version,
                    s.n_jobs,
                    s.seconds,
                    s.ratio
                );
            }
            out!(
                "ensemble: {:.2} M points/s on one core",
                r.ensemble_points_per_second / 1e6
            );
            out!(
                "tick over {} series: {:.3} s; {} bytes per series",
                r.tick_series,
                r.tick_seconds,
                r.bytes_per_series
            );
            Ok(())
        }
        BenchCommand::Nab { data, out, json } => {
            if !data.join("labels/combined_windows.json").is_file() {
                return Err(Failure::Input(format!(
                    "--data {}: no labels/combined_windows.json (expected NAB's layout)",
                    data.display()
                )));
            }
            let bar = progress_bar("series");
            let report = warden_bench::nab::run_bench(&data, &out, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .map_err(|e| Failure::Input(e.to_string()))?;
            bar.finish_and_clear();
            if json {
                out!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            out!(
                "{} series, {} points; results in {}",
                report.files,
                report.points,
                out.display()
            );
            print_nab_scores(&report.profiles)
        }
        BenchCommand::NabScore {
            data,
            results,
            detector,
            json,
        } => {
            let scores = warden_bench::nab::score_results(&data, &results, &detector)
                .map_err(|e| Failure::Input(e.to_string()))?;
            if json {
                out!("{}", serde_json::to_string(&scores)?);
                return Ok(());
            }
            print_nab_scores(&scores)
        }
        BenchCommand::SynthRca { out, count, seed } => {
            if !(1..=10_000).contains(&count) {
                return Err(Failure::Input(format!(
                    "--count {count} is out of range (1-10000)"
                )));
            }
            warden_bench::synth::write_cases(&out, count, seed)
                .map_err(|e| Failure::Input(e.to_string()))?;
            out!("{count} cases written below {}", out.display());
            Ok(())
        }
        BenchCommand::Rca {
            cases,
            out,
            json,
            params,
        } => {
            let params = rank_params(&params)?;
            if !cases.is_dir() {
                return Err(Failure::Input(format!(
                    "--cases {} is not a directory",
                    cases.display()
                )));
            }
            let file = std::fs::File::create(&out)
                .map_err(|e| Failure::Input(format!("--out {}: {e}", out.display())))?;
            let mut w = std::io::BufWriter::new(file);
            let bar = progress_bar("cases");
            let report =
                warden_bench::run_rca_bench(&cases, &params, &mut w, &mut |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .map_err(|e| Failure::Input(e.to_string()))?;
            bar.finish_and_clear();
            w.flush()?;
            if json {
                out!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            let line = |name: &str, s: &warden_bench::Score| {
                out!(
                    "{name:<28} {:>4} {:>6.3} {:>6.3} {:>6.3} {:>6.3}",
                    s.n,
                    s.ac[0],
                    s.ac[2],
                    s.ac[4],
                    s.avg5
                );
            };
            out!(
                "{:<28} {:>4} {:>6} {:>6} {:>6} {:>6}",
                "",
                "n",
                "AC@1",
                "AC@3",
                "AC@5",
                "Avg@5"
            );
            line("all", &report.overall);
            for (k, s) in &report.by_folder {
                line(&format!("folder {k}"), s);
            }
            for (k, s) in &report.by_fault {
                line(&format!("fault {k}"), s);
            }
            if report.unscored > 0 {
                out!(
                    "{} cases without truth.json were ranked but not scored",
                    report.unscored
                );
            }
            out!("rankings written to {}", out.display());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Incident { command } => incident(command),
        Command::Approve(a) => decide(a, true),
        Command::Reject(a) => decide(a, false),
        Command::Config { command } => config(command),
        Command::Rca { case, json, params } => rca(case, json, &params),
        Command::Forecast {
            input,
            horizon,
            column,
            limit,
            output,
            json,
        } => forecast(ForecastArgs {
            input,
            horizon,
            column,
            limit,
            output,
            json,
        }),
        Command::Detect {
            input,
            method,
            contamination,
            output,
            json,
        } => detect(&input, method, contamination, output, json),
        Command::Bench { command } => bench(command),
        Command::Demo(a) => runtime().and_then(|rt| rt.block_on(demo(a))),
        Command::Serve {
            config,
            data_dir,
            listen,
            llm,
        } => runtime().and_then(|rt| rt.block_on(serve(config, data_dir, listen, llm))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(m)) => {
            eprintln!("warden: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("warden: {m}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
