//! The Lambda function (`bootstrap`, runtime `provided.al2023`): builds the handler once per
//! container, then serves invocations until the runtime stops it.

use std::sync::Arc;

use auditq_deploy::{Config, Handler, HandlerError};
use auditq_ingest::aws::AwsSettings;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    auditq_deploy::logging::init();
    let started = std::time::Instant::now();
    let config = Config::from_environment()?;
    let handler = Arc::new(
        Handler::new(
            &config,
            &AwsSettings::from_vars(|name| std::env::var(name).ok()),
        )
        .await?,
    );
    tracing::info!(
        init_ms = started.elapsed().as_millis() as u64,
        lake = handler.pipeline().lake().location(),
        "auditq handler ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { handler.handle(event.payload).await }
    }))
    .await
}

// Keeps the error type the runtime reports in one place (see `HandlerError`).
const _: fn(HandlerError) -> lambda_runtime::Diagnostic = lambda_runtime::Diagnostic::from;
