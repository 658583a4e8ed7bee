//! Reading a model's answer: the JSON object is found (models wrap it in
//! code fences or prose), parsed into the analysis type with unknown fields
//! refused, and checked for ranges and sizes. Anything that fails is an
//! [`AnswerError`] naming the problem, which goes back to the model once as
//! a repair request; plan steps are parsed into the closed `Action` enum
//! later, by the loop, which drops and journals what does not parse or
//! names an unknown service.

use crate::{AnomalyAnalysis, Answer, CapacityAdvice, DependencyAnalysis, RecoveryPlan};

/// Most items in any list of an answer.
pub const MAX_ITEMS: usize = 50;
/// Longest string in an answer, in characters.
pub const MAX_TEXT: usize = 4000;

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("no JSON object in the answer")]
    NoJson,
    #[error("the JSON does not match the schema: {0}")]
    Schema(String),
    #[error("{field} is {value}: {expected}")]
    Range {
        field: String,
        value: String,
        expected: String,
    },
}

/// The outermost `{…}` of `text` (after any code fence).
pub fn extract_json(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (end > start).then(|| &text[start..=end])
}

fn range(field: &str, value: impl std::fmt::Display, expected: &str) -> AnswerError {
    AnswerError::Range {
        field: field.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

fn check_text(field: &str, s: &str) -> Result<(), AnswerError> {
    let n = s.chars().count();
    if n > MAX_TEXT {
        return Err(range(field, format!("{n} characters long"), "at most 4000"));
    }
    Ok(())
}

fn check_len(field: &str, n: usize) -> Result<(), AnswerError> {
    if n > MAX_ITEMS {
        return Err(range(field, format!("{n} items"), "at most 50"));
    }
    Ok(())
}

fn check_texts(field: &str, list: &[String]) -> Result<(), AnswerError> {
    check_len(field, list.len())?;
    for (i, s) in list.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), s)?;
    }
    Ok(())
}

/// Parses and checks the answer to `kind` (`anomaly_analysis`,
/// `recovery_plan`, `capacity_plan` or `dependency_analysis`).
pub fn parse(kind: &str, text: &str) -> Result<Answer, AnswerError> {
    let json = extract_json(text).ok_or(AnswerError::NoJson)?;
    let schema = |e: serde_json::Error| AnswerError::Schema(e.to_string());
    match kind {
        "capacity_plan" => {
            let c: CapacityAdvice = serde_json::from_str(json).map_err(schema)?;
            check_texts("warning_signals", &c.warning_signals)?;
            check_text("scale_timing", &c.scale_timing)?;
            check_texts("optimizations", &c.optimizations)?;
            Ok(Answer::CapacityPlan(c))
        }
        "dependency_analysis" => {
            let d: DependencyAnalysis = serde_json::from_str(json).map_err(schema)?;
            check_texts("dependencies", &d.dependencies)?;
            check_texts("risks", &d.risks)?;
            check_texts("suggestions", &d.suggestions)?;
            Ok(Answer::DependencyAnalysis(d))
        }
        "recovery_plan" => {
            let p: RecoveryPlan = serde_json::from_str(json).map_err(schema)?;
            check_len("steps", p.steps.len())?;
            check_text("rationale", &p.rationale)?;
            for (i, s) in p.steps.iter().enumerate() {
                check_text(&format!("steps[{i}].action"), &s.action)?;
                check_text(&format!("steps[{i}].target"), &s.target)?;
                let params = serde_json::to_string(&s.params).unwrap_or_default();
                check_text(&format!("steps[{i}].params"), &params)?;
            }
            Ok(Answer::RecoveryPlan(p))
        }
        _ => {
            let a: AnomalyAnalysis = serde_json::from_str(json).map_err(schema)?;
            if !matches!(a.status.as_str(), "critical" | "warning" | "ok") {
                return Err(range(
                    "status",
                    format!("{:?}", a.status),
                    "one of critical, warning, ok",
                ));
            }
            check_len("anomalies", a.anomalies.len())?;
            check_len("root_causes", a.root_causes.len())?;
            check_texts("recommendations", &a.recommendations)?;
            for (i, r) in a.root_causes.iter().enumerate() {
                if !(0.0..=1.0).contains(&r.confidence) {
                    return Err(range(
                        &format!("root_causes[{i}].confidence"),
                        r.confidence,
                        "a number in [0, 1]",
                    ));
                }
                check_texts(&format!("root_causes[{i}].evidence"), &r.evidence)?;
            }
            for x in &a.anomalies {
                check_text("anomalies[].description", &x.description)?;
            }
            Ok(Answer::AnomalyAnalysis(a))
        }
    }
}

/// The answer to `kind` in `text`, the answer to an item of `item_kind`
/// ([`crate::prompt::Item`]): a `combined` item's answer holds one object
/// per analysis of the incident.
pub fn part(text: &str, item_kind: &str, kind: &str) -> Result<Answer, AnswerError> {
    if item_kind != "combined" {
        return parse(kind, text);
    }
    let v: serde_json::Value = extract_json(text)
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or(AnswerError::NoJson)?;
    match v.get(kind) {
        Some(x) => parse(kind, &x.to_string()),
        None => Err(AnswerError::Schema(format!(
            "no \"{kind}\" object in the answer"
        ))),
    }
}

/// What is wrong with the answer to an item of `item_kind`, every part
/// checked (empty when it is accepted).
pub fn problems(text: &str, item_kind: &str) -> Vec<String> {
    let kinds: &[&str] = match item_kind {
        "combined" => &["anomaly_analysis", "recovery_plan"],
        k => &[k][..],
    };
    kinds
        .iter()
        .filter_map(|k| part(text, item_kind, k).err().map(|e| format!("{k}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_and_wrapped_answers_are_read() {
        let text = "Sure! Here is the plan:\n```json\n{\"steps\":[{\"action\":\"restart\",\"target\":\"payment-service\",\"params\":{}}],\"rationale\":\"leak\"}\n```";
        let Answer::RecoveryPlan(p) = parse("recovery_plan", text).expect("parses") else {
            panic!("a plan");
        };
        assert_eq!(p.steps[0].action, "restart");
    }

    #[test]
    fn bad_answers_name_the_problem() {
        for (kind, text, needle) in [
            ("recovery_plan", "I cannot help with that.", "no JSON"),
            (
                "recovery_plan",
                "{\"steps\": 3, \"rationale\": \"x\"}",
                "schema",
            ),
            (
                "recovery_plan",
                "{\"steps\": [], \"rationale\": \"x\", \"execute_now\": true}",
                "execute_now",
            ),
            (
                "anomaly_analysis",
                "{\"status\":\"on fire\",\"anomalies\":[],\"root_causes\":[],\"recommendations\":[]}",
                "on fire",
            ),
            (
                "anomaly_analysis",
                "{\"status\":\"critical\",\"anomalies\":[],\"root_causes\":[{\"service\":\"a\",\"metric\":\"cpu_usage\",\"confidence\":7,\"evidence\":[]}],\"recommendations\":[]}",
                "confidence",
            ),
        ] {
            let e = parse(kind, text).expect_err(text).to_string();
            assert!(e.contains(needle), "{e} should name {needle}");
        }
        let many = format!(
            "{{\"steps\":[{}],\"rationale\":\"x\"}}",
            vec!["{\"action\":\"none\"}"; 51].join(",")
        );
        assert!(parse("recovery_plan", &many).is_err());
    }
}
