//! Structured logs: one JSON object per line on standard output, which CloudWatch Logs (Lambda,
//! or ECS with the awslogs driver) stores as is and Logs Insights queries by field. The levels
//! come from `RUST_LOG` (see [`DEFAULT_FILTER`] when unset).

/// auditq's own events at `info`, its libraries' (Delta, the AWS SDK) only from `warn`: their
/// `info` is a line per table snapshot, which in CloudWatch Logs costs more than it tells. The
/// Delta kernel logs an ERROR for every table not written yet ("No files in log segment"),
/// which is how an empty lake looks; its real errors reach auditq as errors and are logged there.
pub const DEFAULT_FILTER: &str = "warn,buoyant_kernel::snapshot::builder=off,auditq_deploy=info,auditq_ingest=info,auditq_rules=info,auditq_service=info,bootstrap=info";

/// Installs the JSON subscriber; a second call does nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .try_init();
}
