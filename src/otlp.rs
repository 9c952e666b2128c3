//! Optional OpenTelemetry export of the traces (OTLP over HTTP/protobuf), off unless the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//! The spans are the `tracing` spans the workers open per request, job and analysis
//! (`candlepipe_worker::traces`), parented on the producer's `traceparent`. Requests go out
//! through the process's own HTTP client (reqwest on the tokio runtime).

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Whether the environment asks for export.
pub fn wanted() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
}

/// The exporting tracer provider (to shut down, flushing, at exit).
pub fn provider(handle: tokio::runtime::Handle) -> Result<SdkTracerProvider, String> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime {
            client: reqwest::Client::new(),
            handle,
        })
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("candlepipe").build())
        .build())
}

/// The tracer the `tracing` layer records with.
pub fn tracer(provider: &SdkTracerProvider) -> opentelemetry_sdk::trace::Tracer {
    provider.tracer("candlepipe")
}

/// Sends the exporter's requests with reqwest on the tokio runtime: the batch exporter runs
/// on a thread of its own, outside the runtime, so each request is spawned onto it and its
/// answer awaited through a channel.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self
            .client
            .request(parts.method.as_str().parse()?, parts.uri.to_string())
            .timeout(std::time::Duration::from_secs(10))
            .body(body);
        for (name, value) in &parts.headers {
            req = req.header(name.as_str(), value.as_bytes());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let answer = async {
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                let body = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            }
            .await;
            let _ = tx.send(answer);
        });
        let (status, body) = rx.await??;
        Ok(Response::builder().status(status).body(body)?)
    }
}
