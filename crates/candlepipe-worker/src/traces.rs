//! One request's trace across processes: the W3C `traceparent` a producer sent (or a new
//! one) is the current trace of the task that serves it; every log line of that work is in
//! a span carrying its `trace_id`, and what the work sends on (the fill job, the `ready`
//! event, an analysis's own candle requests) carries a `traceparent` of the same trace.

use std::future::Future;

use async_nats::HeaderMap;
use candlepipe_core::trace::{TraceParent, TRACEPARENT_HEADER};
use tracing::Instrument;

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
/// `analysis`) carrying the trace id.
pub async fn within<F: Future>(trace: TraceParent, span: tracing::Span, work: F) -> F::Output {
    span.record("trace_id", trace.trace_id.as_str());
    CURRENT.scope(trace, work.instrument(span)).await
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

fn current_child() -> Option<TraceParent> {
    CURRENT.try_with(|t| t.child(rand::random())).ok()
}
