//! OTLP/HTTP (protobuf) export of session spans through the OpenTelemetry SDK.
//!
//! The pipeline hands a finished [`SessionSpan`] over at session close; it is turned into an
//! SDK span with its own timestamps and ids and queued to the SDK's batch processor, which
//! exports from its own thread: a slow or dead endpoint never blocks the pipeline. When the
//! queue is full the span is dropped by the SDK and counted here; every failed export is
//! counted and logged (at most once a minute). Shutdown flushes within a bounded time.

use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use opentelemetry::{
    KeyValue, StringValue,
    trace::{Span as _, SpanId, TraceId, Tracer as _, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, SdkTracerProvider,
        SpanData, SpanExporter,
    },
};
use tracing::warn;

use super::{
    TelemetryConfig,
    span::{MAX_EVENTS_PER_SPAN, SessionSpan, SpanSink, Value},
};

/// Counters of the exporter, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub spans_handed_over: AtomicU64,
    pub spans_exported: AtomicU64,
    pub export_failures: AtomicU64,
    pub spans_failed: AtomicU64,
}

impl ExportStats {
    pub fn describe(&self) -> String {
        format!(
            "spans handed over {}, exported {}, failed exports {} ({} spans)",
            self.spans_handed_over.load(Ordering::Relaxed),
            self.spans_exported.load(Ordering::Relaxed),
            self.export_failures.load(Ordering::Relaxed),
            self.spans_failed.load(Ordering::Relaxed)
        )
    }
}

/// Ids for the next span built on this provider (the SDK has no per-span id option).
#[derive(Debug, Default)]
struct PresetIds {
    next: Mutex<Option<([u8; 16], [u8; 8])>>,
    random: RandomIdGenerator,
}

#[derive(Debug, Clone)]
struct SharedIds(Arc<PresetIds>);

impl IdGenerator for SharedIds {
    fn new_trace_id(&self) -> TraceId {
        match *self.0.next.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((t, _)) => TraceId::from_bytes(t),
            None => self.0.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        match *self.0.next.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((_, s)) => SpanId::from_bytes(s),
            None => self.0.random.new_span_id(),
        }
    }
}

/// Wraps the OTLP exporter to count outcomes and rate-limit error logs.
struct CountingExporter<E> {
    inner: E,
    stats: Arc<ExportStats>,
    last_log: Mutex<Option<Instant>>,
}

impl<E> fmt::Debug for CountingExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CountingExporter")
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let r = self.inner.export(batch).await;
        match &r {
            Ok(()) => {
                self.stats.spans_exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                let failures = self.stats.export_failures.fetch_add(1, Ordering::Relaxed) + 1;
                self.stats.spans_failed.fetch_add(n, Ordering::Relaxed);
                let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warn!("telemetry exporter error ({failures} so far): {e}");
                    *last = Some(Instant::now());
                }
            }
        }
        r
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Exports session spans over OTLP/HTTP.
pub struct OtlpSpans {
    provider: SdkTracerProvider,
    ids: Arc<PresetIds>,
    pub stats: Arc<ExportStats>,
    shut_down: bool,
}

fn time(unix_ns: i128) -> SystemTime {
    if unix_ns <= 0 {
        UNIX_EPOCH
    } else {
        UNIX_EPOCH + Duration::from_nanos(unix_ns as u64)
    }
}

fn key_value(key: &'static str, v: &Value) -> KeyValue {
    match v {
        Value::Str(s) => KeyValue::new(key, s.clone()),
        Value::I64(i) => KeyValue::new(key, *i),
        Value::Bool(b) => KeyValue::new(key, *b),
        Value::StrArray(a) => KeyValue::new(
            key,
            opentelemetry::Value::Array(opentelemetry::Array::String(
                a.iter().map(|s| StringValue::from(s.clone())).collect(),
            )),
        ),
    }
}

impl OtlpSpans {
    /// Build the exporter. Must not be called from inside an async runtime (the HTTP client is
    /// blocking): the daemon calls it through `spawn_blocking`.
    pub fn new(cfg: &TelemetryConfig) -> Result<Self, String> {
        let endpoint = cfg.endpoint.clone().ok_or("no OTLP endpoint configured")?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
        let stats = Arc::new(ExportStats::default());
        let exporter = CountingExporter {
            inner: exporter,
            stats: stats.clone(),
            last_log: Mutex::new(None),
        };
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(cfg.queue)
                    .with_scheduled_delay(Duration::from_millis(500))
                    .build(),
            )
            .build();
        let ids = Arc::new(PresetIds::default());
        let provider = SdkTracerProvider::builder()
            .with_id_generator(SharedIds(ids.clone()))
            .with_max_events_per_span(MAX_EVENTS_PER_SPAN)
            .with_max_attributes_per_event(64)
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .with_attributes(
                        cfg.resource()
                            .into_iter()
                            .filter(|(k, _)| *k != "service.name")
                            .map(|(k, v)| KeyValue::new(k, v)),
                    )
                    .build(),
            )
            .with_span_processor(batch)
            .build();
        Ok(Self {
            provider,
            ids,
            stats,
            shut_down: false,
        })
    }
}

impl SpanSink for OtlpSpans {
    fn export(&mut self, span: SessionSpan) {
        self.stats.spans_handed_over.fetch_add(1, Ordering::Relaxed);
        let tracer = self.provider.tracer("casa");
        *self.ids.next.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((span.trace_id, span.span_id));
        let events = span
            .events
            .iter()
            .map(|e| {
                opentelemetry::trace::Event::new(
                    e.name.clone(),
                    time(e.unix_ns),
                    e.attrs.iter().map(|(k, v)| key_value(k, v)).collect(),
                    0,
                )
            })
            .collect();
        let mut s = tracer
            .span_builder(span.name.clone())
            .with_kind(opentelemetry::trace::SpanKind::Internal)
            .with_start_time(time(span.start_unix_ns))
            .with_attributes(span.attrs.iter().map(|(k, v)| key_value(k, v)))
            .with_events(events)
            .start(&tracer);
        *self.ids.next.lock().unwrap_or_else(|e| e.into_inner()) = None;
        s.end_with_timestamp(time(span.end_unix_ns));
    }

    fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            warn!("telemetry shutdown: {e}");
        }
    }
}

impl Drop for OtlpSpans {
    fn drop(&mut self) {
        self.shutdown();
    }
}
