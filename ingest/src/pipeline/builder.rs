//! The one way a [`Pipeline`] is made: the `auditq` command, the Lambda handler and the ECS
//! service each read their configuration (flags, the YAML file, the environment) and hand the
//! values to this builder; nothing below it reads the environment.

use std::sync::Arc;

use auditq_rules::{AlertOutbox, Engine, Publisher, Retry, Sink};

use super::Pipeline;
use crate::alerting::{Alerting, RuleStateStore};
use crate::digest::SigningKey;
use crate::error::{IngestError, Result};
use crate::lake::Lake;
use crate::redact::Redactor;

/// The default of [`PipelineBuilder::unlogged_grace`]: transcripts reach S3 within minutes of
/// a session's end.
pub const DEFAULT_UNLOGGED_GRACE_MINUTES: i64 = 15;

/// Builds a [`Pipeline`] over a lake.
#[derive(Debug)]
pub struct PipelineBuilder {
    lake: Lake,
    unlogged_grace: chrono::Duration,
    redaction_key: Option<Vec<u8>>,
    redaction_patterns: Vec<String>,
    signing_key: Option<Arc<SigningKey>>,
    rules: Option<(Arc<Engine>, Vec<Sink>)>,
    retry: Retry,
}

impl PipelineBuilder {
    /// A pipeline writing `lake`, with no rules, the built-in secret patterns, and the
    /// redaction key kept beside the lake.
    pub fn new(lake: Lake) -> Self {
        Self {
            lake,
            unlogged_grace: chrono::Duration::minutes(DEFAULT_UNLOGGED_GRACE_MINUTES),
            redaction_key: None,
            redaction_patterns: Vec::new(),
            signing_key: None,
            rules: None,
            retry: Retry::default(),
        }
    }

    /// How long after a session ends its recording may still arrive (`pending` until then,
    /// `none` after).
    pub fn unlogged_grace(mut self, grace: chrono::Duration) -> Self {
        self.unlogged_grace = grace;
        self
    }

    /// The key redaction tokens are made with (`AUDITQ_REDACTION_KEY`, read by the binary).
    /// Without one, `_auditq/redaction.key` beside the lake is used, made (32 random bytes) on
    /// first use so that every writer of the lake makes the same tokens.
    pub fn redaction_key(mut self, key: Option<Vec<u8>>) -> Self {
        self.redaction_key = key.filter(|k| !k.is_empty());
        self
    }

    /// Secret patterns (`NAME=REGEX`) besides the built-in ones.
    pub fn redaction_patterns(mut self, patterns: Vec<String>) -> Self {
        self.redaction_patterns = patterns;
        self
    }

    /// The key every commit's digest is signed with (else the lake's own, if it has one).
    pub fn signing_key(mut self, key: Option<Arc<SigningKey>>) -> Self {
        self.signing_key = key;
        self
    }

    /// Runs `engine`'s rules over every batch and publishes what they raise to `sinks` (none:
    /// alerts are recorded, not published), keeping what cannot be delivered in the outbox
    /// beside the lake.
    pub fn rules(mut self, engine: Arc<Engine>, sinks: Vec<Sink>) -> Self {
        self.rules = Some((engine, sinks));
        self
    }

    /// How publishing retries a sink.
    pub fn publish_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The pipeline. Reads (or makes) the redaction key beside the lake.
    pub async fn build(self) -> Result<Pipeline> {
        let lake = match self.signing_key {
            Some(key) => self.lake.with_signing_key(Some(key)),
            None => self.lake,
        };
        let key = match self.redaction_key {
            Some(key) => key,
            None => lake.object_or_create("redaction.key", random_key).await?,
        };
        let mut redactor = Redactor::new(key);
        for spec in &self.redaction_patterns {
            redactor = redactor
                .with_pattern(spec)
                .map_err(|message| IngestError::Config {
                    setting: "redact".to_string(),
                    message,
                })?;
        }
        let alerting = match self.rules {
            None => None,
            Some((engine, sinks)) => {
                let (store, root) = lake.object_store()?;
                let outbox = AlertOutbox::new(
                    store.clone(),
                    root.clone().join("_auditq").join("outbox"),
                    format!("{}/_auditq/outbox", lake.location().trim_end_matches('/')),
                );
                let publisher = Publisher::new(sinks, self.retry, Some(outbox));
                let state = RuleStateStore::new(store, &root, lake.location());
                Some(Arc::new(Alerting::new(engine, publisher, state)))
            }
        };
        Ok(Pipeline {
            lake,
            redactor: Arc::new(redactor),
            unlogged_grace: self.unlogged_grace,
            alerting,
        })
    }
}

fn random_key() -> Result<Vec<u8>> {
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).map_err(|_| {
        IngestError::Config {
            setting: "redaction key".to_string(),
            message: "the system's random number generator failed".to_string(),
        }
    })?;
    Ok(key)
}
