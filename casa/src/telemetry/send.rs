//! OTLP/HTTP transport of log records and metrics: a bounded queue and one thread that POSTs
//! protobuf requests.
//!
//! The edge of the logs/metrics branch of telemetry. The pipeline thread hands log records
//! over with [`Sender::log`] and the daemon its latest metrics with [`Sender::metrics`]; both
//! only take a lock and push, so a slow or dead endpoint never blocks the pipeline. Log
//! records beyond the queue's capacity are dropped and counted; metrics are cumulative, so a
//! newer request replaces one not yet sent. The thread sends log records in batches (up to
//! [`BATCH`] per request, waiting at most [`BATCH_DELAY`] for a batch to fill) and counts
//! every failed request (logged at most once a minute per signal). [`Sender::flush`] waits a
//! bounded time for the queue to drain (shutdown, end of a replay). Plain HTTP only, as for
//! spans ([`super::TelemetryConfig::problem`]).

use std::{
    collections::VecDeque,
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest},
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
};
use prost::Message;
use tracing::warn;

/// Log records per request at most.
pub const BATCH: usize = 512;
/// How long a partial batch waits for more records.
pub const BATCH_DELAY: Duration = Duration::from_millis(500);

/// Errors of one export request.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The endpoint is not an `http://host[:port]/path` URL.
    #[error("OTLP endpoint {0}: not an http://host[:port]/path URL")]
    Url(String),
    #[error("OTLP endpoint {url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// The receiver answered with a status other than 2xx.
    #[error("OTLP endpoint {url}: HTTP {status}")]
    Status { url: String, status: String },
}

/// An OTLP/HTTP endpoint: where to connect and what to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    /// `host:port` (port 80 when the URL has none).
    authority: String,
    path: String,
}

impl Endpoint {
    /// Parse `http://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Self, SendError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| SendError::Url(url.to_owned()))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(SendError::Url(url.to_owned()));
        }
        // A port after the host (an IPv6 literal is bracketed: `[::1]:4318`).
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()));
        let authority = if has_port {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        Ok(Self {
            url: url.to_owned(),
            authority,
            path: path.to_owned(),
        })
    }

    /// POST `body` (protobuf) and require a 2xx answer, each step within `timeout`.
    pub fn post(&self, body: &[u8], timeout: Duration) -> Result<(), SendError> {
        let io = |source| SendError::Io {
            url: self.url.clone(),
            source,
        };
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        let mut conn = None;
        for addr in self.authority.to_socket_addrs().map_err(io)? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut conn = conn.ok_or(last).map_err(io)?;
        conn.set_read_timeout(Some(timeout)).map_err(io)?;
        conn.set_write_timeout(Some(timeout)).map_err(io)?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        );
        conn.write_all(head.as_bytes()).map_err(io)?;
        conn.write_all(body).map_err(io)?;
        // The status line is all that matters.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 512];
        while !answer.contains(&b'\n') && answer.len() < 4096 {
            match conn.read(&mut chunk).map_err(io)? {
                0 => break,
                n => answer.extend_from_slice(&chunk[..n]),
            }
        }
        let line = String::from_utf8_lossy(&answer);
        let status = line
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("(no answer)")
            .to_owned();
        if status.starts_with('2') && status.len() == 3 {
            Ok(())
        } else {
            Err(SendError::Status {
                url: self.url.clone(),
                status,
            })
        }
    }
}

/// Counters of one signal (log records or metrics), shared with whoever reports them.
#[derive(Debug, Default)]
pub struct SignalStats {
    /// Items handed to the sender (log records, metric exports).
    pub handed_over: AtomicU64,
    pub exported: AtomicU64,
    /// Items dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Requests that failed.
    pub export_failures: AtomicU64,
    /// Items in the requests that failed.
    pub failed: AtomicU64,
}

impl SignalStats {
    /// One line for the shutdown report, e.g. `log records handed over 3, exported 3, ...`.
    pub fn describe(&self, what: &str) -> String {
        format!(
            "{what} handed over {}, exported {}, dropped {}, failed exports {} ({} {what})",
            self.handed_over.load(Ordering::Relaxed),
            self.exported.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.export_failures.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Export failures and dropped items together (the `exports failed` figure).
    pub fn lost(&self) -> (u64, u64) {
        (
            self.export_failures.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed),
        )
    }
}

#[derive(Default)]
struct Queue {
    logs: VecDeque<LogRecord>,
    metrics: Option<ExportMetricsServiceRequest>,
    flush_asked: u64,
    flushed: u64,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    capacity: usize,
    logs: Option<Endpoint>,
    metrics: Option<Endpoint>,
    resource: Resource,
    timeout: Duration,
    log_stats: Arc<SignalStats>,
    metric_stats: Arc<SignalStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The resource of every export, from `(key, value)` pairs.
pub fn resource(attrs: &[(&'static str, String)]) -> Resource {
    Resource {
        attributes: attrs
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(v.clone())),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// casa's instrumentation scope.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "casa".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// Hands log records and metrics to the sending thread. Cheap to clone (one queue, one
/// thread); the thread ends at [`Sender::close`].
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
}

/// What [`Sender::new`] needs.
pub struct SenderConfig {
    pub logs: Option<String>,
    pub metrics: Option<String>,
    pub resource: Vec<(&'static str, String)>,
    pub timeout: Duration,
    /// Log records waiting at most (more are dropped and counted).
    pub capacity: usize,
}

impl Sender {
    /// Start the sending thread.
    pub fn new(cfg: SenderConfig) -> Result<Self, SendError> {
        let parse = |u: Option<String>| u.as_deref().map(Endpoint::parse).transpose();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            capacity: cfg.capacity.max(1),
            logs: parse(cfg.logs)?,
            metrics: parse(cfg.metrics)?,
            resource: resource(&cfg.resource),
            timeout: cfg.timeout,
            log_stats: Arc::default(),
            metric_stats: Arc::default(),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("casa-otlp".into())
            .spawn(move || run(&worker))
            .map_err(|source| SendError::Io {
                url: "(thread)".into(),
                source,
            })?;
        Ok(Self { shared })
    }

    /// Counters of the log records.
    pub fn log_stats(&self) -> Arc<SignalStats> {
        Arc::clone(&self.shared.log_stats)
    }

    /// Counters of the metric exports.
    pub fn metric_stats(&self) -> Arc<SignalStats> {
        Arc::clone(&self.shared.metric_stats)
    }

    /// Whether log records have an endpoint.
    pub fn has_logs(&self) -> bool {
        self.shared.logs.is_some()
    }

    /// Whether metrics have an endpoint.
    pub fn has_metrics(&self) -> bool {
        self.shared.metrics.is_some()
    }

    /// Queue one log record (dropped and counted when the queue is full). Never blocks on
    /// the network.
    pub fn log(&self, record: LogRecord) {
        if self.shared.logs.is_none() {
            return;
        }
        let stats = &self.shared.log_stats;
        stats.handed_over.fetch_add(1, Ordering::Relaxed);
        let mut q = self.shared.lock();
        if q.logs.len() >= self.shared.capacity {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.logs.push_back(record);
        drop(q);
        self.shared.wake.notify_all();
    }

    /// Queue the latest metrics (replacing any not sent yet: they are cumulative).
    pub fn metrics(&self, request: ExportMetricsServiceRequest) {
        if self.shared.metrics.is_none() {
            return;
        }
        self.shared
            .metric_stats
            .handed_over
            .fetch_add(1, Ordering::Relaxed);
        self.shared.lock().metrics = Some(request);
        self.shared.wake.notify_all();
    }

    /// Wait until everything queued so far was sent (or failed), at most `limit`. Returns
    /// whether the queue drained in time.
    pub fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut q = self.shared.lock();
        q.flush_asked += 1;
        let target = q.flush_asked;
        self.shared.wake.notify_all();
        while q.flushed < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self
                .shared
                .wake
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Stop the thread once the queue is empty (or now, if it is stuck on a request).
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

/// The sending thread.
fn run(s: &Shared) {
    let mut last_warn: [Option<Instant>; 2] = [None, None];
    loop {
        let mut q = s.lock();
        // Wait for something to do.
        while q.logs.is_empty() && q.metrics.is_none() && q.flushed == q.flush_asked {
            if q.closed {
                return;
            }
            q = s.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        // Let a partial batch fill, unless someone waits for the queue to drain.
        let since = Instant::now();
        while q.logs.len() < BATCH
            && q.metrics.is_none()
            && q.flushed == q.flush_asked
            && !q.closed
            && since.elapsed() < BATCH_DELAY
        {
            let left = BATCH_DELAY.saturating_sub(since.elapsed());
            q = s
                .wake
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let n = q.logs.len().min(BATCH);
        let batch: Vec<LogRecord> = q.logs.drain(..n).collect();
        let metrics = q.metrics.take();
        drop(q);

        if let (false, Some(ep)) = (batch.is_empty(), &s.logs) {
            let n = batch.len() as u64;
            let request = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(s.resource.clone()),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope()),
                        log_records: batch,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            let r = ep.post(&request.encode_to_vec(), s.timeout);
            account(&s.log_stats, n, r, &mut last_warn[0], "log records");
        }
        if let (Some(mut request), Some(ep)) = (metrics, &s.metrics) {
            for rm in &mut request.resource_metrics {
                rm.resource = Some(s.resource.clone());
            }
            let r = ep.post(&request.encode_to_vec(), s.timeout);
            account(&s.metric_stats, 1, r, &mut last_warn[1], "metrics");
        }

        let mut q = s.lock();
        if q.logs.is_empty() && q.metrics.is_none() {
            // Everything queued before any flush asked so far is sent (or failed).
            q.flushed = q.flush_asked;
            s.wake.notify_all();
        }
    }
}

fn account(
    stats: &SignalStats,
    n: u64,
    r: Result<(), SendError>,
    last_warn: &mut Option<Instant>,
    what: &str,
) {
    match r {
        Ok(()) => {
            stats.exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            let failures = stats.export_failures.fetch_add(1, Ordering::Relaxed) + 1;
            stats.failed.fetch_add(n, Ordering::Relaxed);
            if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                warn!("telemetry: exporting {what} ({failures} failed so far): {e}");
                *last_warn = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_and_without_port_and_path() {
        let e = Endpoint::parse("http://h:4318/v1/logs").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("h:4318", "/v1/logs")
        );
        let e = Endpoint::parse("http://collector").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("collector:80", "/")
        );
        let e = Endpoint::parse("http://[::1]:9/x").unwrap();
        assert_eq!(e.authority, "[::1]:9");
        let e = Endpoint::parse("http://[::1]/x").unwrap();
        assert_eq!(e.authority, "[::1]:80");
        assert!(Endpoint::parse("https://h/v1/logs").is_err());
        assert!(Endpoint::parse("http:///v1/logs").is_err());
    }

    /// (path, body) of each request received.
    type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    /// A one-request-per-connection receiver answering `status`, keeping the bodies.
    fn receiver(status: &'static str) -> (String, Received) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&got);
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = c.read(&mut chunk).unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = c.read(&mut chunk).unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let line = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let path = line.split_whitespace().nth(1).unwrap().to_owned();
                store
                    .lock()
                    .unwrap()
                    .push((path, buf[head_end..head_end + len].to_vec()));
                let _ = c.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        (format!("http://127.0.0.1:{port}"), got)
    }

    fn record(body: &str) -> LogRecord {
        LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body.into())),
            }),
            ..Default::default()
        }
    }

    fn sender(base: &str, capacity: usize) -> Sender {
        Sender::new(SenderConfig {
            logs: Some(format!("{base}/v1/logs")),
            metrics: Some(format!("{base}/v1/metrics")),
            resource: vec![("service.name", "casa".into()), ("host.name", "h".into())],
            timeout: Duration::from_secs(2),
            capacity,
        })
        .unwrap()
    }

    #[test]
    fn records_and_metrics_arrive_in_order_with_the_resource() {
        let (base, got) = receiver("200 OK");
        let s = sender(&base, 100);
        for i in 0..3 {
            s.log(record(&format!("r{i}")));
        }
        s.metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![Default::default()],
        });
        assert!(s.flush(Duration::from_secs(10)), "flush timed out");
        s.close();
        let got = got.lock().unwrap();
        let logs: Vec<LogRecord> = got
            .iter()
            .filter(|(p, _)| p == "/v1/logs")
            .flat_map(|(_, b)| {
                let req = ExportLogsServiceRequest::decode(b.as_slice()).unwrap();
                let rl = &req.resource_logs[0];
                let host = rl.resource.as_ref().unwrap().attributes[1].clone();
                assert_eq!(host.key, "host.name");
                rl.scope_logs[0].log_records.clone()
            })
            .collect();
        assert_eq!(logs, vec![record("r0"), record("r1"), record("r2")]);
        let metrics: Vec<_> = got.iter().filter(|(p, _)| p == "/v1/metrics").collect();
        assert_eq!(metrics.len(), 1);
        let m = ExportMetricsServiceRequest::decode(metrics[0].1.as_slice()).unwrap();
        assert!(
            m.resource_metrics[0].resource.is_some(),
            "resource filled in"
        );
        assert_eq!(s.log_stats().exported.load(Ordering::Relaxed), 3);
        assert_eq!(s.metric_stats().exported.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn failures_and_a_full_queue_are_counted() {
        let (base, _got) = receiver("503 Service Unavailable");
        let s = sender(&base, 100);
        s.log(record("x"));
        assert!(s.flush(Duration::from_secs(10)));
        let st = s.log_stats();
        assert_eq!(st.export_failures.load(Ordering::Relaxed), 1);
        assert_eq!(st.failed.load(Ordering::Relaxed), 1);
        assert!(st.describe("log records").contains("failed exports 1"));
        s.close();

        // Nobody listens: every request fails, and beyond the capacity records are dropped.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let s = sender(&format!("http://127.0.0.1:{closed}"), 2);
        for i in 0..50 {
            s.log(record(&i.to_string()));
        }
        assert!(s.flush(Duration::from_secs(10)));
        let st = s.log_stats();
        assert_eq!(st.handed_over.load(Ordering::Relaxed), 50);
        let (dropped, failed) = (
            st.dropped.load(Ordering::Relaxed),
            st.failed.load(Ordering::Relaxed),
        );
        assert!(dropped > 0, "a queue of 2 took 50 records");
        assert_eq!(
            dropped + failed,
            50,
            "every record exported, dropped or failed"
        );
        assert_eq!(st.lost().1, 50);
        s.close();
    }
}
