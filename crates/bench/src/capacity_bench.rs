//! `warden bench capacity`: one capacity pass of the live loop over many
//! services — each with `days` of 5-minute cpu and memory history (a daily
//! and weekly cycle, a slow trend, noise; seeded) — timed on all cores.

use std::time::Instant;

use serde::Serialize;
use warden_forecast::{PlanParams, build_plan};
use warden_model::{Rng, ServiceName, Timestamp};

/// The measurement.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    pub services: usize,
    pub points_per_series: usize,
    pub cores: usize,
    pub seconds: f64,
    pub plans: usize,
    pub exhaustions: usize,
}

fn history(seed: u64, n: usize, t0: i64) -> (Vec<i64>, Vec<f64>, Vec<f64>) {
    let mut r = Rng::new(seed);
    let level = r.range(0.2, 0.5);
    let growth = r.range(-0.002, 0.01); // per day
    let (mut ts, mut cpu, mut mem) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t = t0 + i as i64 * 300_000;
        let day = (i % 288) as f64 / 288.0;
        let week = (i % 2016) as f64 / 2016.0;
        let days = i as f64 / 288.0;
        let c = level
            + 0.1 * (std::f64::consts::TAU * day).sin()
            + 0.03 * (std::f64::consts::TAU * week).sin()
            + 0.02 * r.normal();
        let m = level + 0.15 + growth * days + 0.01 * r.normal();
        ts.push(t);
        cpu.push(c.clamp(0.0, 1.0));
        mem.push(m.clamp(0.0, 1.0));
    }
    (ts, cpu, mem)
}

/// Plans `services` services with `days` of history each.
pub fn run(services: usize, days: usize, progress: &(dyn Fn(usize) + Sync)) -> CapacityReport {
    let n = days * 288;
    let t0 = 1_767_225_600_000;
    let now = Timestamp(t0 + n as i64 * 300_000);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let params = PlanParams {
        horizon_ms: 30 * 86_400_000,
        cpu_limit: 0.9,
        memory_limit: 0.9,
        headroom: 0.2,
        target_utilization: 0.6,
        max_replicas: 20,
    };
    // Histories are generated before the clock starts.
    let data: Vec<(Vec<i64>, Vec<f64>, Vec<f64>)> =
        (0..services).map(|i| history(i as u64, n, t0)).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    let chunk = services.div_ceil(cores).max(1);
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                let (params, done) = (&params, &done);
                s.spawn(move || {
                    let mut plans = 0;
                    let mut exhausted = 0;
                    for (j, (ts, cpu, mem)) in part.iter().enumerate() {
                        let name = ServiceName::parse(&format!("svc-{}", k * chunk + j))
                            .expect("valid name");
                        if let Some(p) =
                            build_plan(&name, now, (ts, cpu), (ts, mem), Some(3), params)
                        {
                            plans += 1;
                            exhausted += usize::from(p.soonest().is_some());
                        }
                        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                    }
                    (plans, exhausted)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    CapacityReport {
        services,
        points_per_series: n,
        cores,
        seconds: start.elapsed().as_secs_f64(),
        plans: results.iter().map(|r| r.0).sum(),
        exhaustions: results.iter().map(|r| r.1).sum(),
    }
}
