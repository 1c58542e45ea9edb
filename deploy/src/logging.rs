//! Structured logs: one JSON object per line on standard output, which CloudWatch Logs (Lambda,
//! or ECS with the awslogs driver) stores as is and Logs Insights queries by field. The level
//! comes from `RUST_LOG` (`info` when unset).

/// Installs the JSON subscriber; a second call does nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .try_init();
}
