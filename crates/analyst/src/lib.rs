//! The Analyst trait and the built-in deterministic analyst.
