//! What the ECS service counts, and its HTTP endpoint: `GET /healthz` and `GET /metrics`
//! (Prometheus text format 0.0.4).
//!
//! Counts are kept per batch (an [`IngestSummary`] added to the totals), never per event.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use auditq_ingest::IngestSummary;
use auditq_model::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Totals since the service started.
#[derive(Debug, Default)]
pub struct Metrics {
    totals: Mutex<Totals>,
    stopping: AtomicBool,
}

#[derive(Debug, Default)]
struct Totals {
    summary: IngestSummary,
    batches: u64,
    errors: BTreeMap<String, u64>,
    lag_seconds: Option<f64>,
    last_batch: Option<Timestamp>,
}

impl Metrics {
    /// Adds a committed batch. Lag is how far the newest event of the batch was behind the
    /// clock when it was committed.
    pub fn record_batch(&self, summary: &IngestSummary, committed_at: Timestamp) {
        let Ok(mut totals) = self.totals.lock() else {
            return;
        };
        totals.summary.add(summary.clone());
        totals.batches += 1;
        totals.last_batch = Some(committed_at);
        if let Some(newest) = summary.newest_event {
            let lag = (committed_at - newest).num_milliseconds().max(0) as f64 / 1000.0;
            totals.lag_seconds = Some(lag);
        }
    }

    /// Batches committed so far.
    pub fn batches(&self) -> u64 {
        self.totals.lock().map(|t| t.batches).unwrap_or(0)
    }

    /// Counts an error of a source (the source retries after a pause).
    pub fn record_error(&self, source: &str) {
        if let Ok(mut totals) = self.totals.lock() {
            *totals.errors.entry(source.to_string()).or_default() += 1;
        }
    }

    /// Marks the service as draining: `/healthz` answers 503 from now on.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the service is draining.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// The Prometheus exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(totals) = self.totals.lock() else {
            return out;
        };
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let by_table = |pick: &dyn Fn(&auditq_ingest::TableCount) -> usize| -> Vec<(String, f64)> {
            totals
                .summary
                .tables
                .iter()
                .map(|(table, count)| {
                    (
                        format!("{{table=\"{}\"}}", table.name()),
                        pick(count) as f64,
                    )
                })
                .collect()
        };
        metric(
            "auditq_rows_read_total",
            "counter",
            "Rows read from the sources, per table.",
            &by_table(&|c| c.read),
        );
        metric(
            "auditq_rows_added_total",
            "counter",
            "Rows new to the lake, per table.",
            &by_table(&|c| c.added),
        );
        metric(
            "auditq_rejects_total",
            "counter",
            "Records set aside in the rejects table.",
            &[(String::new(), totals.summary.rejected() as f64)],
        );
        let alerts = &totals.summary.alerts;
        metric(
            "auditq_alerts_total",
            "counter",
            "Alerts raised by rules, new ones delivered, and new ones kept in the outbox.",
            &[
                ("{outcome=\"raised\"}".to_string(), alerts.raised as f64),
                (
                    "{outcome=\"delivered\"}".to_string(),
                    alerts.delivered as f64,
                ),
                ("{outcome=\"kept\"}".to_string(), alerts.kept as f64),
            ],
        );
        metric(
            "auditq_batches_total",
            "counter",
            "Batches committed to the lake.",
            &[(String::new(), totals.batches as f64)],
        );
        let errors: Vec<(String, f64)> = totals
            .errors
            .iter()
            .map(|(source, n)| (format!("{{source=\"{}\"}}", escape(source)), *n as f64))
            .collect();
        metric(
            "auditq_source_errors_total",
            "counter",
            "Errors reading a source (retried after a pause).",
            &errors,
        );
        if let Some(lag) = totals.lag_seconds {
            metric(
                "auditq_lag_seconds",
                "gauge",
                "Age of the newest event of the last batch when it was committed.",
                &[(String::new(), lag)],
            );
        }
        if let Some(last) = totals.last_batch {
            metric(
                "auditq_last_batch_timestamp_seconds",
                "gauge",
                "When the last batch was committed (Unix time).",
                &[(String::new(), last.timestamp_millis() as f64 / 1000.0)],
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Answers one HTTP/1.1 request on `stream` and closes it.
pub async fn answer(mut stream: tokio::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // The request line and headers; bodies are not expected. A slow or huge request is dropped.
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/healthz") if metrics.stopping() => (
            "503 Service Unavailable",
            "text/plain",
            "stopping\n".to_string(),
        ),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /healthz and GET /metrics\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// `GET /healthz` against a running service: whether it answered 200. For the container's
/// health check (`auditq-service --health-check`), in images without curl.
pub async fn check_health(address: std::net::SocketAddr) -> Result<(), String> {
    let mut stream = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .map_err(|_| format!("{address}: no answer within 3 s"))?
    .map_err(|e| format!("{address}: {e}"))?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(3),
        stream.read_to_end(&mut answer),
    )
    .await
    .map_err(|_| format!("{address}: no answer within 3 s"))?
    .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{address}: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditq_ingest::TableCount;
    use auditq_model::Table;

    #[test]
    fn exposition_has_the_batch_counts_and_lag() {
        let metrics = Metrics::default();
        let mut summary = IngestSummary::default();
        summary.tables.insert(
            Table::Commands,
            TableCount {
                read: 5,
                added: 3,
                updated: 0,
            },
        );
        summary.reject_reasons.insert("malformed JSON".into(), 2);
        summary.alerts.raised = 1;
        summary.alerts.delivered = 1;
        let now = chrono::Utc::now();
        summary.newest_event = Some(now - chrono::Duration::milliseconds(1500));
        metrics.record_batch(&summary, now);
        metrics.record_batch(&summary, now);
        metrics.record_error("cwl://a\"b");
        let text = metrics.render();
        for line in [
            "auditq_rows_read_total{table=\"commands\"} 10",
            "auditq_rows_added_total{table=\"commands\"} 6",
            "auditq_rejects_total 4",
            "auditq_alerts_total{outcome=\"delivered\"} 2",
            "auditq_batches_total 2",
            "auditq_source_errors_total{source=\"cwl://a\\\"b\"} 1",
            "auditq_lag_seconds 1.5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
