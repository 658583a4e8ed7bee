//! Trace spans, as far as warden needs them: who called whom, how long it
//! took, whether it failed.

use serde::{Deserialize, Serialize};

use crate::{ServiceName, Timestamp};

/// A finished span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: u64,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub service: ServiceName,
    pub operation: String,
    pub start: Timestamp,
    pub duration_ms: f64,
    pub error: bool,
}
