//! Pulling the dependency graph from a Jaeger query service:
//! `GET /api/dependencies?endTs=<ms>&lookback=<ms>` answers
//! `{"data": [{"parent": "a", "child": "b", "callCount": n}, …]}`.

use std::time::Duration;

use serde::Deserialize;
use warden_config::JaegerConfig;
use warden_model::{ServiceName, Timestamp};

use crate::http::HttpClient;
use crate::prometheus::PullError;

#[derive(Deserialize)]
struct Answer {
    data: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    parent: String,
    child: String,
    #[serde(rename = "callCount")]
    call_count: u64,
}

/// A dependency edge: caller, callee, calls over the lookback.
pub type Link3 = (ServiceName, ServiceName, u64);

/// The edges of an answer, and how many links had names that are not valid
/// service names (counted, skipped).
pub fn parse_dependencies(body: &[u8]) -> Result<(Vec<Link3>, u64), String> {
    let a: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("not a Jaeger dependencies answer: {e}"))?;
    let mut out = Vec::new();
    let mut skipped = 0;
    for l in a.data {
        match (ServiceName::parse(&l.parent), ServiceName::parse(&l.child)) {
            (Ok(p), Ok(c)) if p != c => out.push((p, c, l.call_count)),
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// The Jaeger source.
pub struct JaegerPull {
    cfg: JaegerConfig,
    client: HttpClient,
}

impl JaegerPull {
    pub fn new(cfg: JaegerConfig) -> Self {
        let client = HttpClient::new(
            Duration::from_millis(cfg.timeout.millis().max(1) as u64),
            2,
            2,
            None,
        );
        Self { cfg, client }
    }

    /// The dependency links over the lookback window ending at `at`.
    pub async fn pull(&self, at: Timestamp) -> Result<(Vec<Link3>, u64), PullError> {
        let url = format!(
            "{}/api/dependencies?endTs={}&lookback={}",
            self.cfg.endpoint.trim_end_matches('/'),
            at.millis(),
            self.cfg.lookback.millis()
        );
        let body = self.client.get(&url).await?;
        parse_dependencies(&body).map_err(|message| PullError::Answer {
            metric: "dependencies".into(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_edges_and_bad_names_are_counted() {
        let (edges, skipped) = parse_dependencies(
            br#"{"data":[{"parent":"frontend","child":"cart","callCount":42},
                {"parent":"frontend","child":"frontend","callCount":3},
                {"parent":"bad name!","child":"cart","callCount":1}],"total":3,"limit":0,"offset":0,"errors":null}"#,
        )
        .expect("parses");
        assert_eq!(edges.len(), 1);
        assert_eq!(
            (edges[0].0.as_str(), edges[0].1.as_str(), edges[0].2),
            ("frontend", "cart", 42)
        );
        assert_eq!(skipped, 2);
        assert!(
            parse_dependencies(b"{}")
                .expect_err("no data")
                .contains("dependencies")
        );
    }
}
