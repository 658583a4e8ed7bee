//! Alertmanager out (API v2): warden's incidents pushed as alerts, and the
//! active silences read back as a gate.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use warden_config::AlertmanagerConfig;
use warden_model::{Incident, IncidentStatus, Timestamp};

use crate::http::{HttpClient, HttpError};

/// The alertname of warden's incidents.
pub const ALERTNAME: &str = "WardenIncident";

#[derive(Debug, Clone, Deserialize)]
struct Matcher {
    name: String,
    value: String,
    #[serde(rename = "isRegex", default)]
    is_regex: bool,
    #[serde(rename = "isEqual", default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
struct SilenceStatus {
    state: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Silence {
    id: String,
    #[serde(default)]
    comment: String,
    #[serde(rename = "createdBy", default)]
    created_by: String,
    matchers: Vec<Matcher>,
    status: SilenceStatus,
}

impl Matcher {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        let hit = if self.is_regex {
            // Alertmanager anchors its regular expressions.
            regex::Regex::new(&format!("^(?:{})$", self.value))
                .map(|r| r.is_match(v))
                .unwrap_or(false)
        } else {
            v == self.value
        };
        hit == self.is_equal
    }
}

/// The labels of an incident's alert.
pub fn incident_labels(inc: &Incident) -> BTreeMap<String, String> {
    let service = inc
        .root_cause()
        .map(|c| c.service.clone())
        .or_else(|| inc.services.first().map(|s| s.to_string()))
        .unwrap_or_default();
    [
        ("alertname", ALERTNAME.to_string()),
        ("incident", inc.id.as_str().to_string()),
        ("service", service),
        ("severity", "warning".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The Alertmanager client.
pub struct Alertmanager {
    cfg: AlertmanagerConfig,
    client: HttpClient,
}

impl Alertmanager {
    pub fn new(cfg: AlertmanagerConfig) -> Self {
        let client = HttpClient::new(
            Duration::from_millis(cfg.timeout.millis().max(1) as u64),
            4,
            2,
            None,
        );
        Self { cfg, client }
    }

    pub fn config(&self) -> &AlertmanagerConfig {
        &self.cfg
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.endpoint.trim_end_matches('/'))
    }

    /// Pushes incidents as alerts: open ones end an hour from `now` (and are
    /// pushed again each tick), resolved ones end when they were resolved.
    pub async fn push(&self, incidents: &[Incident], now: Timestamp) -> Result<(), HttpError> {
        if incidents.is_empty() {
            return Ok(());
        }
        let alerts: Vec<serde_json::Value> = incidents
            .iter()
            .map(|inc| {
                let ends = match (inc.status, inc.resolved_at) {
                    (IncidentStatus::Resolved, Some(t)) => t,
                    _ => now.plus_ms(3_600_000),
                };
                let root = inc
                    .root_cause()
                    .map(|c| format!("{} ({}, score {:.2})", c.service, c.metric, c.score))
                    .unwrap_or_else(|| "not ranked yet".into());
                let mut annotations = json!({
                    "summary": inc.title,
                    "root_cause": root,
                    "status": inc.status.as_str(),
                    "warden_url": format!(
                        "{}/incidents/{}",
                        self.cfg.warden_url.trim_end_matches('/'),
                        inc.id.as_str()
                    ),
                });
                if let Some(r) = &self.cfg.runbook_url {
                    annotations["runbook_url"] = json!(r);
                }
                json!({
                    "labels": incident_labels(inc),
                    "annotations": annotations,
                    "startsAt": inc.opened_at.rfc3339(),
                    "endsAt": ends.rfc3339(),
                    "generatorURL": format!(
                        "{}/incidents/{}",
                        self.cfg.warden_url.trim_end_matches('/'),
                        inc.id.as_str()
                    ),
                })
            })
            .collect();
        let body = serde_json::to_vec(&alerts).unwrap_or_default();
        self.client
            .post_json(&self.url("/api/v2/alerts"), body)
            .await
            .map(|_| ())
    }

    /// The first active silence matching `labels`, described.
    pub async fn silenced(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<String>, HttpError> {
        let body = self.client.get(&self.url("/api/v2/silences")).await?;
        let silences: Vec<Silence> =
            serde_json::from_slice(&body).map_err(|e| HttpError::Transport {
                url: self.url("/api/v2/silences"),
                message: format!("not a silence list: {e}"),
            })?;
        Ok(silences
            .into_iter()
            .filter(|s| s.status.state == "active")
            .find(|s| !s.matchers.is_empty() && s.matchers.iter().all(|m| m.matches(labels)))
            .map(|s| format!("silence {} by {}: {}", s.id, s.created_by, s.comment)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        [
            ("alertname", ALERTNAME),
            ("service", "payment-service"),
            ("incident", "INC-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn m(name: &str, value: &str, is_regex: bool, is_equal: bool) -> Matcher {
        Matcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    #[test]
    fn matchers_follow_alertmanager_semantics() {
        let l = labels();
        assert!(m("service", "payment-service", false, true).matches(&l));
        assert!(!m("service", "payment", false, true).matches(&l));
        assert!(m("service", "pay.*", true, true).matches(&l));
        assert!(!m("service", "pay", true, true).matches(&l), "anchored");
        assert!(m("service", "auth-service", false, false).matches(&l));
        assert!(
            !m("team", "x", false, true).matches(&l),
            "missing label is empty"
        );
        assert!(m("team", "", false, true).matches(&l));
    }
}
