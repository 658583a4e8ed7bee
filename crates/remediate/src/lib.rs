//! Planner, gates, executors and verification.
