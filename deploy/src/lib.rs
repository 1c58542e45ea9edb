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

use auditq_ingest::aws::{AwsClients, AwsSettings};
use auditq_ingest::digest::{KeySources, SigningKey, load_signing_key};
use auditq_ingest::{Lake, Pipeline, PipelineBuilder};
use auditq_rules::Sink;

/// The key that signs the lake's digests, as configured (see [`Config::signing_key_file`]). In
/// AWS none is made: a key made inside a task or function would be lost with it, and every
/// restart would sign with another.
pub fn signing_key(config: &Config) -> Result<Option<Arc<SigningKey>>, DeployError> {
    let sources = KeySources {
        file: config.signing_key_file.clone(),
        inline: config.secrets.signing_key.clone(),
        default_file: config.secrets.default_signing_key_file.clone(),
    };
    let key = load_signing_key(&sources, false)?;
    match &key {
        Some((key, source)) => {
            tracing::info!(key_id = %key.key_id(), from = %source, "digests are signed")
        }
        None => tracing::warn!("no signing key: commit digests are written unsigned"),
    }
    Ok(key.map(|(key, _)| Arc::new(key)))
}

/// The pipeline of a configuration (its lake, redaction, rules and sinks), built once; what the
/// outbox kept from earlier runs is delivered first.
pub async fn pipeline(
    config: &Config,
    aws: &AwsSettings,
    clients: &AwsClients,
) -> Result<Pipeline, DeployError> {
    let lake = Lake::new(config.data.clone()).with_storage_options(aws.storage_options());
    let mut builder = PipelineBuilder::new(lake)
        .unlogged_grace(chrono::Duration::minutes(
            i64::try_from(config.sessions.unlogged_after_minutes).unwrap_or(i64::MAX / 60_000),
        ))
        .redaction_key(config.secrets.redaction_key.clone().map(String::into_bytes))
        .redaction_patterns(config.redact.clone())
        .signing_key(signing_key(config)?);
    if let Some(rules) = &config.rules {
        let engine = Arc::new(auditq_rules::compile_source(rules)?);
        let sinks = config
            .alerts
            .iter()
            .map(|spec| Sink::parse(spec, Some(&clients.aws)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| DeployError::Config {
                field: "alerts".to_string(),
                message,
            })?;
        builder = builder.rules(engine, sinks);
    }
    let pipeline = builder.build().await?;
    let (delivered, kept) = pipeline.flush_outbox().await?;
    if delivered > 0 || kept > 0 {
        tracing::info!(delivered, kept, "alert outbox flushed");
    }
    Ok(pipeline)
}
