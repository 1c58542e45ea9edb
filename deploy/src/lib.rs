//! auditq in AWS: the Lambda handler, the long-running ECS service, and the configuration both
//! read.
//!
//! Both run the same pipeline as the `auditq` command (parse, rules, publish, append to the
//! lake; see `auditq_ingest`), so what is tested locally is what runs in AWS. They differ only in
//! how input arrives:
//!
//! - [`handler`]: AWS invokes the function with an event (a CloudWatch Logs subscription batch,
//!   S3 notifications directly, through SQS or EventBridge, or the compaction schedule). The
//!   handler is a library type built once per container and called from tests with real-shaped
//!   events.
//! - [`service`]: a process follows log groups (live tail, polling as fallback) and drains an SQS
//!   queue of S3 notifications, serves `/healthz` and Prometheus `/metrics`, and on SIGTERM stops
//!   taking input, finishes the batch in hand, flushes the alert outbox and exits.
//!
//! Configuration ([`config`]) is one YAML file plus `AUDITQ_*` environment overrides, read in one
//! place; AWS settings follow the SDK's conventions (credential chain, region,
//! `AWS_ENDPOINT_URL`).

pub mod config;
pub mod error;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod service;

pub use config::Config;
pub use error::{DeployError, HandlerError};
pub use handler::Handler;

use std::sync::Arc;

use auditq_ingest::Lake;
use auditq_ingest::alerting::Alerting;
use auditq_ingest::aws::{AwsClients, AwsSettings};
use auditq_ingest::digest::{SigningKey, load_signing_key};
use auditq_rules::Sink;

/// The key that signs the lake's digests, as configured (see [`Config::signing_key_file`]). In
/// AWS none is made: a key made inside a task or function would be lost with it, and every
/// restart would sign with another.
pub fn signing_key(config: &Config) -> Result<Option<Arc<SigningKey>>, DeployError> {
    let key = load_signing_key(config.signing_key_file.as_deref(), false)?;
    match &key {
        Some((key, source)) => {
            tracing::info!(key_id = %key.key_id(), from = %source, "digests are signed")
        }
        None => tracing::warn!("no signing key: commit digests are written unsigned"),
    }
    Ok(key.map(|(key, _)| Arc::new(key)))
}

/// The lake of a configuration, with its alerting stage when rules are configured; what the
/// outbox kept from earlier runs is delivered first.
pub async fn open_lake(
    config: &Config,
    aws: &AwsSettings,
    clients: &AwsClients,
) -> Result<Lake, DeployError> {
    let lake = Lake::new(config.data.clone())
        .with_storage_options(aws.storage_options())
        .with_unlogged_grace(chrono::Duration::minutes(
            i64::try_from(config.sessions.unlogged_after_minutes).unwrap_or(i64::MAX / 60_000),
        ))
        .with_redaction_patterns(config.redact.clone())
        .with_signing_key(signing_key(config)?);
    let Some(rules) = &config.rules else {
        return Ok(lake);
    };
    let engine = Arc::new(auditq_rules::compile_source(rules)?);
    let sinks = config
        .alerts
        .iter()
        .map(|spec| Sink::parse(spec, Some(&clients.sns)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| DeployError::Config {
            field: "alerts".to_string(),
            message,
        })?;
    let (lake, delivered, kept) = Alerting::attach(lake, engine, sinks).await?;
    if delivered > 0 || kept > 0 {
        tracing::info!(delivered, kept, "alert outbox flushed");
    }
    Ok(lake)
}

/// Delivers what the outbox kept; a lake without alerting has nothing to do.
pub async fn flush_outbox(lake: &Lake) -> Result<(usize, usize), DeployError> {
    let Some(alerting) = lake.alerting() else {
        return Ok((0, 0));
    };
    Ok(alerting.lock().await.flush_outbox(lake).await?)
}
