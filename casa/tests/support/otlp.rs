//! A real OTLP/HTTP receiver on loopback: it decodes each request by its path —
//! `ExportTraceServiceRequest` on `/v1/traces`, `ExportLogsServiceRequest` on `/v1/logs`,
//! `ExportMetricsServiceRequest` on `/v1/metrics` (protobuf, with `opentelemetry-proto`) — or,
//! in stall mode, accepts and never answers.

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    logs::v1::LogRecord,
    metrics::v1::Metric,
    resource::v1::Resource,
    trace::v1::Span,
};
use prost::Message;

pub struct Receiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    pub logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    pub metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    /// Requests to a path other than the three, or that did not decode.
    pub rejected: Arc<Mutex<Vec<String>>>,
}

/// One request: its path and body.
fn read_request(stream: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((path, buf[header_end..header_end + len].to_vec()))
}

impl Receiver {
    /// Start a receiver; with `stall`, connections are accepted and never answered.
    pub fn start(stall: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let metrics = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let store = (
            requests.clone(),
            logs.clone(),
            metrics.clone(),
            rejected.clone(),
        );
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if stall {
                    held.push(stream);
                    continue;
                }
                let store = store.clone();
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    while let Some((path, body)) = read_request(&mut stream) {
                        let ok = match path.as_str() {
                            "/v1/traces" => ExportTraceServiceRequest::decode(body.as_slice())
                                .map(|r| store.0.lock().unwrap().push(r))
                                .is_ok(),
                            "/v1/logs" => ExportLogsServiceRequest::decode(body.as_slice())
                                .map(|r| store.1.lock().unwrap().push(r))
                                .is_ok(),
                            "/v1/metrics" => ExportMetricsServiceRequest::decode(body.as_slice())
                                .map(|r| store.2.lock().unwrap().push(r))
                                .is_ok(),
                            _ => false,
                        };
                        if !ok {
                            store.3.lock().unwrap().push(path);
                        }
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                        );
                    }
                });
            }
        });
        Self {
            port,
            requests,
            logs,
            metrics,
            rejected,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// Every span received, with its resource's `service.name`.
    pub fn spans(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for req in self.requests.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| a.value.as_ref())
                    .map(|v| format!("{:?}", v.value))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push((service.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }
}

impl Receiver {
    /// Every log record received, with its resource.
    pub fn log_records(&self) -> Vec<(Resource, LogRecord)> {
        let mut out = Vec::new();
        for req in self.logs.lock().unwrap().iter() {
            for rl in &req.resource_logs {
                let resource = rl.resource.clone().unwrap_or_default();
                for sl in &rl.scope_logs {
                    for r in &sl.log_records {
                        out.push((resource.clone(), r.clone()));
                    }
                }
            }
        }
        out
    }

    /// The metrics of every request received, in order, with the request's resource.
    pub fn metric_exports(&self) -> Vec<(Resource, Vec<Metric>)> {
        self.metrics
            .lock()
            .unwrap()
            .iter()
            .flat_map(|req| req.resource_metrics.iter())
            .map(|rm| {
                (
                    rm.resource.clone().unwrap_or_default(),
                    rm.scope_metrics
                        .iter()
                        .flat_map(|sm| sm.metrics.iter().cloned())
                        .collect(),
                )
            })
            .collect()
    }
}

/// The integer value of a sum or gauge metric's data point whose attributes include
/// `label` (`None`: the point without attributes).
pub fn metric_value(metrics: &[Metric], name: &str, label: Option<(&str, &str)>) -> Option<i64> {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let m = metrics.iter().find(|m| m.name == name)?;
    let points = match m.data.as_ref()? {
        Data::Sum(s) => &s.data_points,
        Data::Gauge(g) => &g.data_points,
        _ => return None,
    };
    let p = points.iter().find(|p| match label {
        None => p.attributes.is_empty(),
        Some((k, v)) => attr(&p.attributes, k).as_deref() == Some(v),
    })?;
    match p.value? {
        Value::AsInt(i) => Some(i),
        Value::AsDouble(d) => Some(d as i64),
    }
}

/// An attribute's value as a string, int or bool (for assertions).
pub fn attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let v = attrs
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
