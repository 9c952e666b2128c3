//! One request's trace across processes: the W3C `traceparent` a producer sent (or a new
//! one) is the current trace of the task that serves it; every log line of that work is in
//! a span carrying its `trace_id`, and what the work sends on (the fill job, the `ready`
//! event, an analysis's own candle requests) carries a `traceparent` of the same trace.

use std::future::Future;

use async_nats::HeaderMap;
use candlepipe_core::trace::{TraceParent, TRACEPARENT_HEADER};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The trace `headers` carry, if any.
pub fn from_headers(headers: Option<&HeaderMap>) -> Option<TraceParent> {
    headers
        .and_then(|h| h.get(TRACEPARENT_HEADER))
        .and_then(|v| TraceParent::parse(v.as_str()))
}

/// The trace `headers` carry, or a new one.
pub fn from_headers_or_start(headers: Option<&HeaderMap>) -> TraceParent {
    from_headers(headers).unwrap_or_else(|| TraceParent::start(rand::random()))
}

/// Runs `work` as the current trace, in a span named `span` (ingest `request`, `fill`,
/// `analysis`) carrying the trace id. Not an `async fn`: that would hold `work` twice (as
/// its argument and inside the scope it awaits), doubling the task of every traced request.
pub fn within<F: Future>(
    trace: TraceParent,
    span: tracing::Span,
    work: F,
) -> impl Future<Output = F::Output> {
    span.record("trace_id", trace.trace_id.as_str());
    // For the OTLP export, when on (`OTEL_EXPORTER_OTLP_ENDPOINT`): the span's parent is
    // the sender's. Without the export layer this does nothing.
    if let (Ok(trace_id), Ok(span_id)) = (
        TraceId::from_hex(&trace.trace_id),
        SpanId::from_hex(&trace.span_id),
    ) {
        let parent = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(trace.flags),
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    CURRENT.scope(trace, work.instrument(span))
}

/// Adds the current trace to `headers` (as a span of this process), if there is one.
pub fn inject(headers: &mut HeaderMap) {
    if let Some(child) = current_child() {
        headers.insert(TRACEPARENT_HEADER, child.header().as_str());
    }
}

/// Adds the current trace to `headers`, or a new one (work that starts a trace: a fill
/// job nobody sent a `traceparent` for); returns its id.
pub fn inject_or_start(headers: &mut HeaderMap) -> String {
    let trace = current_child().unwrap_or_else(|| TraceParent::start(rand::random()));
    headers.insert(TRACEPARENT_HEADER, trace.header().as_str());
    trace.trace_id
}

/// The current trace, from this process's span: the exported span's id when spans are
/// exported (so the receiver's span is its child), else a new one.
fn current_child() -> Option<TraceParent> {
    let exported = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .clone();
    CURRENT
        .try_with(|t| {
            if exported.is_valid() && exported.trace_id().to_string() == t.trace_id {
                TraceParent {
                    trace_id: t.trace_id.clone(),
                    span_id: exported.span_id().to_string(),
                    flags: t.flags,
                }
            } else {
                t.child(rand::random())
            }
        })
        .ok()
}
