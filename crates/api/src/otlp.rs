//! OpenTelemetry trace receivers: OTLP/HTTP (`POST /v1/traces`,
//! binary protobuf, optionally gzip) and OTLP/gRPC
//! (`opentelemetry.proto.collector.trace.v1.TraceService/Export`, unary,
//! optionally gzip), on the API's port and on their own listeners (4318 and
//! 4317 by OTLP's convention; see `integrations.otlp`).
//!
//! Only what the dependency graph needs is decoded: each resource's
//! `service.name`, and per span its trace, span and parent ids, start, end
//! and status. Everything else in the messages is skipped unread. Spans
//! that cannot be used (bad ids, end before start, no valid service name)
//! are rejected one by one and reported as OTLP's partial success; a body
//! that is not OTLP at all is refused whole. Accepted spans queue in
//! [`crate::Live::span_inbox`] for the loop, which joins them with their parents.

use std::convert::Infallible;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use prost::Message;
use warden_config::{OtlpConfig, Role};
use warden_model::{ServiceName, Span, Timestamp};

use crate::auth::Principal;
use crate::{ApiState, write_live};

/// The gRPC method path of OTLP trace export.
pub const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `ResourceSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

/// `Resource`.
#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`, of which only the string variant is read.
#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
}

/// `ScopeSpans` (the scope itself is skipped).
#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<OtlpSpan>,
}

/// `Span`, the fields warden reads.
#[derive(Clone, PartialEq, Message)]
pub struct OtlpSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    /// SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Status`: code 2 is an error.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `ExportTraceServiceResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

/// `ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, Message)]
pub struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Why a request was refused whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OtlpError {
    #[error("body is {size} bytes or more; at most {max}")]
    TooLarge { size: usize, max: usize },
    #[error("compression {0:?} is not supported; use gzip or none")]
    Encoding(String),
    #[error("body is not valid gzip: {0}")]
    Gzip(String),
    #[error("body is not a protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(String),
    #[error("{n} spans in one request; at most {max}")]
    TooManySpans { n: usize, max: usize },
    #[error("gRPC framing: {0}")]
    Framing(String),
}

/// What a request amounted to.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub spans: Vec<Span>,
    pub rejected: u64,
    /// The first rejection's reason, for the partial-success message.
    pub reason: Option<String>,
}

/// Undoes gzip, reading at most `max` bytes of output.
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, OtlpError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| OtlpError::Gzip(e.to_string()))?;
    if out.len() > max {
        return Err(OtlpError::TooLarge {
            size: out.len(),
            max,
        });
    }
    Ok(out)
}

fn id64(b: &[u8]) -> Option<u64> {
    let a: [u8; 8] = b.try_into().ok()?;
    let v = u64::from_be_bytes(a);
    (v != 0).then_some(v)
}

/// A 16-byte trace id folded to 64 bits (enough to tell apart the traces
/// inside a join window).
fn trace64(b: &[u8]) -> Option<u64> {
    let a: [u8; 16] = b.try_into().ok()?;
    let v = u128::from_be_bytes(a);
    (v != 0).then_some(((v >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ v as u64)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decodes an uncompressed `ExportTraceServiceRequest` into spans.
pub fn decode(raw: &[u8], max_spans: usize) -> Result<Decoded, OtlpError> {
    let req =
        ExportTraceServiceRequest::decode(raw).map_err(|e| OtlpError::Protobuf(e.to_string()))?;
    let n: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if n > max_spans {
        return Err(OtlpError::TooManySpans { n, max: max_spans });
    }
    let mut out = Decoded {
        spans: Vec::with_capacity(n),
        ..Default::default()
    };
    let reject = |out: &mut Decoded, k: u64, why: String| {
        out.rejected += k;
        out.reason.get_or_insert(why);
    };
    for rs in &req.resource_spans {
        let count: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        let name = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.string_value.as_deref());
        let service = match name.map(ServiceName::parse) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                reject(
                    &mut out,
                    count as u64,
                    format!("resource service.name: {e}"),
                );
                continue;
            }
            None => {
                reject(
                    &mut out,
                    count as u64,
                    "resource has no string attribute service.name".into(),
                );
                continue;
            }
        };
        for sp in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            let (Some(trace_id), Some(span_id)) = (trace64(&sp.trace_id), id64(&sp.span_id)) else {
                reject(
                    &mut out,
                    1,
                    format!(
                        "span {:?}: trace_id {:?} / span_id {:?} must be 16 / 8 non-zero bytes",
                        sp.name,
                        hex(&sp.trace_id),
                        hex(&sp.span_id)
                    ),
                );
                continue;
            };
            let parent_span_id = match sp.parent_span_id.len() {
                0 => None,
                _ => match id64(&sp.parent_span_id) {
                    Some(p) => Some(p),
                    None => {
                        reject(
                            &mut out,
                            1,
                            format!(
                                "span {:?}: parent_span_id {:?} must be empty or 8 non-zero bytes",
                                sp.name,
                                hex(&sp.parent_span_id)
                            ),
                        );
                        continue;
                    }
                },
            };
            if sp.end_time_unix_nano < sp.start_time_unix_nano || sp.start_time_unix_nano == 0 {
                reject(
                    &mut out,
                    1,
                    format!(
                        "span {:?}: start {} / end {} (ns) must be set with end ≥ start",
                        sp.name, sp.start_time_unix_nano, sp.end_time_unix_nano
                    ),
                );
                continue;
            }
            out.spans.push(Span {
                trace_id,
                span_id,
                parent_span_id,
                service: service.clone(),
                operation: sp.name.chars().take(200).collect(),
                start: Timestamp((sp.start_time_unix_nano / 1_000_000) as i64),
                duration_ms: (sp.end_time_unix_nano - sp.start_time_unix_nano) as f64 / 1e6,
                error: sp.status.as_ref().is_some_and(|s| s.code == 2),
            });
        }
    }
    Ok(out)
}

/// Why a caller may not send spans at all (each protocol answers in its
/// own status vocabulary).
enum Refusal {
    Forbidden(String),
    Disabled(&'static str),
}

fn refusal(s: &ApiState, p: &Principal) -> Option<Refusal> {
    if p.role < Role::Operator {
        return Some(Refusal::Forbidden(format!(
            "token {:?} may not send spans (needs operator)",
            p.name
        )));
    }
    (!s.config.integrations.otlp.enabled).then_some(Refusal::Disabled(
        "the OTLP receiver is disabled (integrations.otlp.enabled)",
    ))
}

/// Whether the span queue is full: requests are then refused before
/// decoding, with a status OTLP exporters retry with backoff (HTTP 503 with
/// Retry-After, gRPC UNAVAILABLE). One request may take the queue past the
/// mark by its own size.
fn queue_full(s: &ApiState) -> Option<String> {
    let max = s.config.integrations.otlp.max_pending_spans;
    let pending = crate::read_live(&s.live).span_inbox.len();
    (pending >= max).then(|| {
        format!(
            "{pending} spans wait for the loop (integrations.otlp.max_pending_spans {max}); retry later"
        )
    })
}

/// Queues an admitted request's spans whole (past `queue_full`), counts
/// them and the rejected ones, and answers with the partial success.
fn accept(s: &ApiState, source: &str, d: Decoded) -> ExportTraceServiceResponse {
    {
        let mut live = write_live(&s.live);
        *live.ingested_spans.entry(source.to_string()).or_default() += d.spans.len() as u64;
        if d.rejected > 0 {
            *live.dropped_spans.entry("invalid".into()).or_default() += d.rejected;
        }
        live.span_inbox.extend(d.spans);
    }
    ExportTraceServiceResponse {
        partial_success: (d.rejected > 0).then(|| PartialSuccess {
            rejected_spans: d.rejected as i64,
            error_message: d.reason.unwrap_or_default(),
        }),
    }
}

async fn read_limited(body: Body, max: usize) -> Result<Bytes, OtlpError> {
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| OtlpError::TooLarge { size: max + 1, max })
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Undoes the request's compression (none, identity or gzip).
fn uncompress<'a>(
    body: &'a [u8],
    encoding: &str,
    c: &OtlpConfig,
) -> Result<std::borrow::Cow<'a, [u8]>, OtlpError> {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => {
            if body.len() > c.max_decoded_bytes {
                return Err(OtlpError::TooLarge {
                    size: body.len(),
                    max: c.max_decoded_bytes,
                });
            }
            Ok(body.into())
        }
        "gzip" => Ok(gunzip(body, c.max_decoded_bytes)?.into()),
        other => Err(OtlpError::Encoding(other.to_string())),
    }
}

// ---- OTLP/HTTP -------------------------------------------------------------

fn http_status_body(code: StatusCode, message: &str) -> Response {
    // OTLP/HTTP: a google.rpc.Status in the request's encoding.
    let body = RpcStatus {
        code: if code == StatusCode::UNAUTHORIZED {
            16
        } else {
            3
        },
        message: message.to_string(),
    }
    .encode_to_vec();
    (
        code,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body,
    )
        .into_response()
}

/// `POST /v1/traces`.
pub async fn http_traces(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match refusal(&s, &p) {
        Some(Refusal::Forbidden(m)) => return http_status_body(StatusCode::FORBIDDEN, &m),
        Some(Refusal::Disabled(m)) => return http_status_body(StatusCode::NOT_FOUND, m),
        None => {}
    }
    let c = &s.config.integrations.otlp;
    let ctype = header_str(&headers, "content-type");
    if !ctype.starts_with("application/x-protobuf") {
        return http_status_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Content-Type {ctype:?}: send application/x-protobuf (OTLP/JSON is not supported)"
            ),
        );
    }
    if let Some(m) = queue_full(&s) {
        let mut r = http_status_body(StatusCode::SERVICE_UNAVAILABLE, &m);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let raw = match read_limited(body, c.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return http_status_body(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
    };
    let result = uncompress(&raw, header_str(&headers, "content-encoding"), c)
        .and_then(|b| decode(&b, c.max_spans));
    match result {
        Ok(d) => {
            let answer = accept(&s, "otlp_http", d);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                answer.encode_to_vec(),
            )
                .into_response()
        }
        Err(e @ OtlpError::TooLarge { .. }) => {
            http_status_body(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        }
        Err(e @ OtlpError::Encoding(_)) => {
            http_status_body(StatusCode::UNSUPPORTED_MEDIA_TYPE, &e.to_string())
        }
        Err(e) => http_status_body(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

// ---- OTLP/gRPC -------------------------------------------------------------

/// gRPC status codes used here.
pub mod grpc_code {
    pub const OK: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const NOT_FOUND: u32 = 5;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const UNAVAILABLE: u32 = 14;
}

/// A unary gRPC response body: one message, then the trailers.
struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// Percent-encodes a grpc-message value (gRPC over HTTP/2 spec).
fn grpc_message(m: &str) -> HeaderValue {
    let mut out = String::with_capacity(m.len());
    for b in m.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("error"))
}

/// A Trailers-Only error response.
fn grpc_error(code: u32, message: &str) -> Response {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    h.insert("grpc-message", grpc_message(message));
    r
}

/// The single message of a unary request: 1 byte compressed flag, 4 bytes
/// big-endian length, the message.
fn unframe(body: &[u8]) -> Result<(bool, &[u8]), OtlpError> {
    if body.len() < 5 {
        return Err(OtlpError::Framing(format!(
            "{} bytes; a message needs a 5-byte prefix",
            body.len()
        )));
    }
    let compressed = match body[0] {
        0 => false,
        1 => true,
        f => {
            return Err(OtlpError::Framing(format!(
                "compressed flag {f}; expected 0 or 1"
            )));
        }
    };
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if len != body.len() - 5 {
        return Err(OtlpError::Framing(format!(
            "message length {len} but {} bytes follow (one message per unary call)",
            body.len() - 5
        )));
    }
    Ok((compressed, &body[5..]))
}

/// `POST /opentelemetry.proto.collector.trace.v1.TraceService/Export`.
pub async fn grpc_export(
    State(s): State<ApiState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match refusal(&s, &p) {
        Some(Refusal::Forbidden(m)) => return grpc_error(grpc_code::PERMISSION_DENIED, &m),
        Some(Refusal::Disabled(m)) => return grpc_error(grpc_code::NOT_FOUND, m),
        None => {}
    }
    let c = &s.config.integrations.otlp;
    let ctype = header_str(&headers, "content-type");
    if !ctype.starts_with("application/grpc") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {ctype:?}: expected application/grpc"),
        )
            .into_response();
    }
    if let Some(m) = queue_full(&s) {
        return grpc_error(grpc_code::UNAVAILABLE, &m);
    }
    let raw = match read_limited(body, c.max_body_bytes + 5).await {
        Ok(b) => b,
        Err(e) => return grpc_error(grpc_code::RESOURCE_EXHAUSTED, &e.to_string()),
    };
    let result = unframe(&raw).and_then(|(compressed, msg)| {
        let encoding = if compressed {
            match header_str(&headers, "grpc-encoding") {
                "" | "identity" => {
                    return Err(OtlpError::Framing(
                        "compressed flag set without grpc-encoding".into(),
                    ));
                }
                e => e,
            }
        } else {
            ""
        };
        uncompress(msg, encoding, c).and_then(|b| decode(&b, c.max_spans))
    });
    let d = match result {
        Ok(d) => d,
        Err(e @ OtlpError::TooLarge { .. }) => {
            return grpc_error(grpc_code::RESOURCE_EXHAUSTED, &e.to_string());
        }
        Err(e @ OtlpError::Encoding(_)) => {
            return grpc_error(grpc_code::UNIMPLEMENTED, &e.to_string());
        }
        Err(e) => return grpc_error(grpc_code::INVALID_ARGUMENT, &e.to_string()),
    };
    let msg = accept(&s, "otlp_grpc", d).encode_to_vec();
    let mut framed = Vec::with_capacity(msg.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(grpc_code::OK));
    let mut r = Response::new(Body::new(GrpcBody {
        data: Some(framed.into()),
        trailers: Some(trailers),
    }));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    r.headers_mut().insert(
        "grpc-accept-encoding",
        HeaderValue::from_static("gzip,identity"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                string_value: Some(v.into()),
            }),
        }
    }

    pub(crate) fn request(service: &str, spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("host.name", "h1"), kv("service.name", service)],
                }),
                scope_spans: vec![ScopeSpans { spans }],
            }],
        }
    }

    fn span(trace: u8, id: u8, parent: Option<u8>, error: bool) -> OtlpSpan {
        OtlpSpan {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: "GET /pay".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_025_000_000,
            status: Some(Status {
                message: String::new(),
                code: if error { 2 } else { 1 },
            }),
        }
    }

    #[test]
    fn decodes_spans_with_their_service_and_timing() {
        let raw = request(
            "payment",
            vec![span(1, 2, Some(1), true), span(1, 3, None, false)],
        )
        .encode_to_vec();
        let d = decode(&raw, 100).expect("decodes");
        assert_eq!(d.rejected, 0);
        assert_eq!(d.spans.len(), 2);
        let s = &d.spans[0];
        assert_eq!(s.service.as_str(), "payment");
        assert_eq!(s.span_id, 0x0202_0202_0202_0202);
        assert_eq!(s.parent_span_id, Some(0x0101_0101_0101_0101));
        assert_eq!(s.duration_ms, 25.0);
        assert_eq!(s.start, Timestamp(1_700_000_000_000));
        assert!(s.error);
        assert_eq!(d.spans[1].parent_span_id, None);
        assert_eq!(d.spans[0].trace_id, d.spans[1].trace_id);
        assert_ne!(d.spans[0].trace_id, 0);
    }

    #[test]
    fn bad_spans_are_rejected_one_by_one_with_a_reason() {
        let mut short = span(1, 2, None, false);
        short.span_id = vec![1, 2, 3];
        let mut backwards = span(1, 4, None, false);
        backwards.end_time_unix_nano = 1;
        let raw =
            request("payment", vec![short, backwards, span(1, 5, None, false)]).encode_to_vec();
        let d = decode(&raw, 100).expect("decodes");
        assert_eq!((d.spans.len(), d.rejected), (1, 2));
        assert!(d.reason.expect("reason").contains("\"010203\""));
        // A resource without a usable service name loses all its spans.
        let raw = request("unknown_service:python", vec![span(1, 2, None, false)]).encode_to_vec();
        let d = decode(&raw, 100).expect("decodes");
        assert_eq!((d.spans.len(), d.rejected), (0, 1));
        assert!(d.reason.expect("reason").contains("unknown_service:python"));
    }

    #[test]
    fn whole_requests_are_refused_with_the_bad_value() {
        assert!(matches!(
            decode(b"\xff\xff\xff garbage", 10),
            Err(OtlpError::Protobuf(_))
        ));
        let raw =
            request("a", (0..11).map(|i| span(1, i + 1, None, false)).collect()).encode_to_vec();
        assert_eq!(
            decode(&raw, 10),
            Err(OtlpError::TooManySpans { n: 11, max: 10 })
        );
        // A span name that is not UTF-8 fails the protobuf string check.
        let mut raw = request("a", vec![span(1, 2, None, false)]).encode_to_vec();
        let at = raw.windows(8).position(|w| w == b"GET /pay").expect("name");
        raw[at] = 0xff;
        assert!(matches!(decode(&raw, 10), Err(OtlpError::Protobuf(_))));
        assert!(matches!(gunzip(b"not gzip", 100), Err(OtlpError::Gzip(_))));
        assert!(unframe(&[0, 0, 0, 0, 9, 1]).is_err());
        assert!(unframe(&[7, 0, 0, 0, 0]).is_err());
        assert_eq!(unframe(&[1, 0, 0, 0, 1, 42]), Ok((true, &[42u8][..])));
    }

    #[test]
    fn gzip_is_bounded_by_the_decoded_limit() {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&vec![0u8; 1 << 20]).expect("write");
        let bomb = z.finish().expect("gzip");
        assert!(bomb.len() < 10_000);
        assert_eq!(
            gunzip(&bomb, 4096),
            Err(OtlpError::TooLarge {
                size: 4097,
                max: 4096
            })
        );
        assert_eq!(gunzip(&bomb, 2 << 20).expect("fits").len(), 1 << 20);
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_message("a 100% ok"), "a 100%25 ok");
        assert_eq!(grpc_message("é\n"), "%C3%A9%0A");
    }
}
