//! Offline inputs and benchmark runners. This crate does the file IO that
//! the pure crates must not: it reads RCA case directories (the layout of
//! `shared/data/rca/FORMAT.md`, which is RCAEval's metric layout), runs the
//! same ranker as the live loop, and scores rankings.

pub mod capacity_bench;
pub mod detect_bench;
pub mod m4;
pub mod metrics_table;
pub mod nab;
pub mod rca_bench;
pub mod rca_case;
pub mod synth;

pub use rca_bench::{RcaReport, Score, run as run_rca_bench, score_rankings};
pub use rca_case::{CaseError, LoadedCase, Table, find_cases, load_case, rank_case};
