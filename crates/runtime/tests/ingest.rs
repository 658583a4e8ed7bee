//! Large sample batches have their detectors run on all cores: the result
//! must be the same as feeding the same samples in small batches on one
//! thread (series are independent and each is fed in time order).

use std::sync::{Arc, RwLock};

use warden_analyst::Builtin;
use warden_api::{Live, read_live};
use warden_config::Config;
use warden_model::{Action, Metric, Receipt, Rng, Sample, ServiceName, Timestamp};
use warden_remediate::{BoxFuture, ExecError, Executor};
use warden_runtime::{Engine, EngineParts};
use warden_store::SqliteStore;

struct Refuse;

impl Executor for Refuse {
    fn name(&self) -> &str {
        "refuse"
    }
    fn execute<'a>(
        &'a self,
        _: &'a Action,
        _: Timestamp,
    ) -> BoxFuture<'a, Result<Receipt, ExecError>> {
        Box::pin(async { Err(ExecError("not in this test".into())) })
    }
}

fn engine() -> (Engine, Arc<RwLock<Live>>) {
    let mut config = Config::default();
    config.capacity.enabled = false;
    let live = Arc::new(RwLock::new(Live::default()));
    let e = Engine::new(EngineParts {
        config: Arc::new(config),
        store: Arc::new(SqliteStore::in_memory().expect("store")),
        live: live.clone(),
        analyst: Arc::new(Builtin),
        executor: Arc::new(Refuse),
    })
    .expect("engine");
    (e, live)
}

/// 300 services × 8 metrics × 60 rounds 15 s apart; one service's CPU
/// jumps for the last 10 rounds.
fn rounds() -> Vec<Vec<Sample>> {
    let t0 = Timestamp::parse_rfc3339("2026-01-05T09:00:00Z").expect("time");
    let mut rng = Rng::new(5);
    (0..60)
        .map(|r| {
            let ts = t0.plus_secs(15 * r);
            let mut round = Vec::new();
            for i in 0..300 {
                let service = ServiceName::parse(&format!("svc-{i:03}")).expect("name");
                for m in Metric::ALL {
                    let mut value = 0.4 * (1.0 + 0.02 * rng.normal());
                    if i == 17 && m == Metric::CpuUsage && r >= 50 {
                        value = 0.95;
                    }
                    round.push(Sample {
                        service: service.clone(),
                        metric: m,
                        ts,
                        value,
                    });
                }
            }
            round
        })
        .collect()
}

fn anomalies(live: &Arc<RwLock<Live>>) -> Vec<(String, Metric, i64, String)> {
    let mut a: Vec<_> = read_live(live)
        .anomalies
        .iter()
        .map(|a| (a.service.to_string(), a.metric, a.onset.0, a.reason.clone()))
        .collect();
    a.sort();
    a
}

#[tokio::test]
async fn one_large_batch_on_all_cores_equals_small_batches_on_one() {
    let rounds = rounds();
    let all: Vec<Sample> = rounds.iter().flatten().cloned().collect();
    assert!(all.len() >= 20_000, "large enough for the parallel path");
    let end = all.last().expect("samples").ts;

    let (mut big, big_live) = engine();
    big.ingest_samples(&all);
    big.tick(end).await.expect("tick");

    let (mut small, small_live) = engine();
    for r in &rounds {
        small.ingest_samples(r);
    }
    small.tick(end).await.expect("tick");

    let a = anomalies(&big_live);
    assert_eq!(a, anomalies(&small_live));
    assert!(
        a.iter()
            .any(|(s, m, ..)| s == "svc-017" && *m == Metric::CpuUsage),
        "{a:?}"
    );
}
