//! Pull sources. Every outbound request goes through one client stack
//! ([`HttpClient`]): a tower `ConcurrencyLimit` and `Timeout` around hyper's
//! HTTP/1 client, and retries of failed requests (connection errors,
//! timeouts, 5xx) with exponential backoff, each retry allowed only while a
//! retry budget holds (at most one retry per ten recent requests, plus a
//! floor of a few per second) so that a struggling server is not hammered.
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
