//! Pull sources. Every outbound request goes through one tower stack
//! ([`HttpClient`]): `Retry` with a policy that retries connection errors,
//! timeouts, 429 and 5xx (waiting the server's `Retry-After`, else backing
//! off exponentially) only while a `TpsBudget` allows, so that a
//! struggling server is not hammered; then `ConcurrencyLimit` and a
//! per-attempt `Timeout` around hyper's HTTP/1 client.
//!
//! - [`alertmanager`]: incidents pushed as alerts, silences read back.
//! - [`jaeger`]: the dependency graph from a Jaeger query service.
//! - [`prometheus`]: instant queries per warden metric against a
//!   Prometheus-compatible server; results become samples.

pub mod alertmanager;
pub mod http;
pub mod jaeger;
pub mod prometheus;

pub use alertmanager::Alertmanager;
pub use http::{HttpClient, HttpError};
pub use jaeger::JaegerPull;
pub use prometheus::{PromPull, PullError, PullReport};
