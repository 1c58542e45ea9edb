//! The configuration of the Lambda function and the ECS service: one YAML file (`AUDITQ_CONFIG`)
//! whose every field has a default, then `AUDITQ_*` environment variables over it, then
//! validation before anything is built. `deploy/auditq.example.yaml` documents every field and is
//! parsed by a test.
//!
//! AWS settings are not here: credentials, region and `AWS_ENDPOINT_URL` come from the SDK's
//! standard chain, as every AWS tool reads them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditq_ingest::Limits;
use auditq_ingest::aws::FollowMode;
use serde::Deserialize;

use crate::error::DeployError;

/// Everything auditq needs to know in AWS beyond the SDK's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Lake location: `s3://BUCKET/PREFIX` in AWS (a local directory works too).
    /// Environment: `AUDITQ_DATA`.
    pub data: String,
    /// Rules evaluated on every event: `default` (the built-in pack), a YAML file or a folder;
    /// none when absent. Environment: `AUDITQ_RULES`.
    pub rules: Option<String>,
    /// Where alerts go: `sns://TOPIC_ARN`, `stdout`, `file://PATH`. Alerts that cannot be
    /// delivered are kept in the outbox beside the lake and delivered later. Environment:
    /// `AUDITQ_ALERTS` (comma-separated, replaces the list) or `AUDITQ_SNS_TOPIC_ARN` (adds one
    /// topic).
    pub alerts: Vec<String>,
    /// What the ECS service reads.
    pub sources: Sources,
    /// How much is read before it is committed.
    pub batch: Batch,
    /// The ECS service's HTTP endpoint and shutdown.
    pub service: Service,
    /// Lake compaction, run by the Lambda's schedule.
    pub compaction: Compaction,
    /// How sessions without a recording are judged.
    pub sessions: Sessions,
    /// Secret patterns redacted besides the built-in ones, `NAME=REGEX` (the first capture
    /// group is the secret). The key of the tokens is `AUDITQ_REDACTION_KEY`, else
    /// `_auditq/redaction.key` beside the lake.
    pub redact: Vec<String>,
    /// A file holding the Ed25519 key (base64 of a 32-byte seed) that signs every commit's
    /// digest (tamper evidence: README, "Security"). Else `AUDITQ_SIGNING_KEY` (the key itself,
    /// from Secrets Manager under a KMS key: the templates' `SigningKeySecret*` parameters),
    /// else `~/.config/auditq/signing.key` if it exists (none is made in AWS); with none,
    /// digests are unsigned and `auditq verify` says so. Environment: `AUDITQ_SIGNING_KEY_FILE`.
    pub signing_key_file: Option<PathBuf>,
    /// Keys from the environment, never from the file (see [`Secrets`]).
    #[serde(skip)]
    pub secrets: Secrets,
}

/// Keys read from the environment: `AUDITQ_REDACTION_KEY` (the key of redaction tokens) and
/// `AUDITQ_SIGNING_KEY` (the digests' signing key, from Secrets Manager in AWS), and where the
/// default signing key file would be. Printed as `[secret]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// `AUDITQ_REDACTION_KEY`.
    pub redaction_key: Option<String>,
    /// `AUDITQ_SIGNING_KEY`.
    pub signing_key: Option<String>,
    /// The default signing key file (`$AUDITQ_CONFIG_DIR`, `$XDG_CONFIG_HOME`, `$HOME`).
    pub default_signing_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| v.as_ref().map(|_| "[secret]");
        f.debug_struct("Secrets")
            .field("redaction_key", &shown(&self.redaction_key))
            .field("signing_key", &shown(&self.signing_key))
            .field("default_signing_key_file", &self.default_signing_key_file)
            .finish()
    }
}

/// Sessions that left no transcript, stream or host login.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// Minutes after a session ended that its recording may still arrive (S3 transcripts come
    /// at the end); after that it reads `logged = none` and `ssm.session_unlogged` alerts.
    /// Environment: `AUDITQ_UNLOGGED_AFTER_MINUTES`.
    pub unlogged_after_minutes: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            unlogged_after_minutes: auditq_ingest::pipeline::builder::DEFAULT_UNLOGGED_GRACE_MINUTES
                as u64,
        }
    }
}

/// What the ECS service follows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sources {
    /// CloudWatch Logs groups to follow (Session Manager, CloudTrail). Environment:
    /// `AUDITQ_LOG_GROUPS` (comma-separated).
    pub log_groups: Vec<String>,
    /// An SQS queue of S3 event notifications (name or URL) to drain continuously. Environment:
    /// `AUDITQ_SQS_QUEUE_URL`.
    pub sqs_queue: Option<String>,
    /// `live_tail` (StartLiveTail, events within about a second; falls back to polling when
    /// refused) or `poll` (FilterLogEvents every `poll_interval_ms`). Environment:
    /// `AUDITQ_FOLLOW`.
    pub follow: Follow,
    /// Polling interval in milliseconds (at least 200). Environment: `AUDITQ_POLL_INTERVAL_MS`.
    pub poll_interval_ms: u64,
    /// Regions whose Run Command scripts to read from Systems Manager (`ssm:ListCommands`,
    /// which CloudTrail's `SendCommand` hides), every minute. Environment:
    /// `AUDITQ_RUN_COMMAND_REGIONS` (comma-separated).
    pub run_command_regions: Vec<String>,
}

/// How log groups are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Follow {
    /// StartLiveTail.
    LiveTail,
    /// FilterLogEvents polling.
    Poll,
}

/// Micro-batch bounds: a batch is committed when either is reached (and, when following, at
/// least once per live-tail update or poll).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batch {
    /// S3 objects per commit.
    pub max_files: usize,
    /// Input bytes per commit.
    pub max_bytes: u64,
    /// Largest object read at all; larger ones are set aside as rejects.
    pub max_object_bytes: u64,
    /// Largest decompressed size of one object or subscription batch (gzip bombs stop here).
    pub max_decompressed_bytes: u64,
}

/// The ECS service's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// Address of `/healthz` and `/metrics`. Environment: `AUDITQ_LISTEN`.
    pub listen: String,
    /// After SIGTERM, how long the batch in hand may take to commit before the service gives up
    /// (uncommitted input is read again on restart). Keep it below the ECS task's `stopTimeout`.
    pub stop_timeout_seconds: u64,
}

/// Lake compaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compaction {
    /// VACUUM deletes files no version younger than this reads. Environment:
    /// `AUDITQ_VACUUM_RETENTION_HOURS`.
    pub vacuum_retention_hours: u64,
    /// VACUUM runs at most this often (it lists every file of each table); merging small files
    /// runs at every compaction. Environment: `AUDITQ_VACUUM_EVERY_HOURS`.
    pub vacuum_every_hours: u64,
    /// The ECS service compacts the lake this often (0: never, when the Lambda's schedule
    /// does it). Environment: `AUDITQ_COMPACT_EVERY_HOURS`.
    pub every_hours: u64,
    /// ... and merges small files after this many batches (0: only by time). Every batch
    /// commits a small file to each table it touches, and every commit's bookkeeping grows with
    /// the files a table has. Environment: `AUDITQ_COMPACT_EVERY_BATCHES`.
    pub every_batches: u64,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            log_groups: Vec::new(),
            sqs_queue: None,
            follow: Follow::LiveTail,
            poll_interval_ms: 5000,
            run_command_regions: Vec::new(),
        }
    }
}

impl Default for Batch {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_files: limits.batch_files,
            max_bytes: limits.batch_bytes,
            max_object_bytes: limits.max_object_bytes,
            max_decompressed_bytes: limits.max_decompressed_bytes,
        }
    }
}

impl Default for Service {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9090".to_string(),
            stop_timeout_seconds: 25,
        }
    }
}

impl Default for Compaction {
    fn default() -> Self {
        Self {
            vacuum_retention_hours: 168,
            vacuum_every_hours: 24,
            every_hours: 24,
            every_batches: 20,
        }
    }
}

impl Config {
    /// The configuration of this process: the file named by `AUDITQ_CONFIG` (if set), then the
    /// `AUDITQ_*` variables, validated. The one place environment variables are read.
    pub fn from_environment() -> Result<Config, DeployError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let path = var("AUDITQ_CONFIG");
        Config::load(path.as_deref().map(Path::new), &var)
    }

    /// Reads `path` (if any), applies overrides looked up by `var`, and validates.
    pub fn load(
        path: Option<&Path>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, DeployError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| DeployError::Config {
                    field: path.display().to_string(),
                    message: e.to_string(),
                })?;
                Config::parse(&text).map_err(|message| DeployError::Config {
                    field: path.display().to_string(),
                    message,
                })?
            }
            None => Config::default(),
        };
        config.apply_overrides(var)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML; an unknown field is an error naming it.
    pub fn parse(text: &str) -> Result<Config, String> {
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }

    fn apply_overrides(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<(), DeployError> {
        let list = |text: String| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let number = |name: &str, text: String| -> Result<u64, DeployError> {
            text.trim().parse().map_err(|e| DeployError::Config {
                field: name.to_string(),
                message: format!("{text:?} is not a whole number: {e}"),
            })
        };
        if let Some(data) = var("AUDITQ_DATA") {
            self.data = data;
        }
        if let Some(rules) = var("AUDITQ_RULES") {
            self.rules = Some(rules);
        }
        if let Some(alerts) = var("AUDITQ_ALERTS") {
            self.alerts = list(alerts);
        }
        if let Some(topic) = var("AUDITQ_SNS_TOPIC_ARN") {
            let sink = format!("sns://{topic}");
            if !self.alerts.contains(&sink) {
                self.alerts.push(sink);
            }
        }
        if let Some(groups) = var("AUDITQ_LOG_GROUPS") {
            self.sources.log_groups = list(groups);
        }
        if let Some(queue) = var("AUDITQ_SQS_QUEUE_URL") {
            self.sources.sqs_queue = Some(queue);
        }
        if let Some(regions) = var("AUDITQ_RUN_COMMAND_REGIONS") {
            self.sources.run_command_regions = list(regions);
        }
        if let Some(follow) = var("AUDITQ_FOLLOW") {
            self.sources.follow = match follow.as_str() {
                "live_tail" => Follow::LiveTail,
                "poll" => Follow::Poll,
                other => {
                    return Err(DeployError::Config {
                        field: "AUDITQ_FOLLOW".to_string(),
                        message: format!("{other:?}: use live_tail or poll"),
                    });
                }
            };
        }
        if let Some(ms) = var("AUDITQ_POLL_INTERVAL_MS") {
            self.sources.poll_interval_ms = number("AUDITQ_POLL_INTERVAL_MS", ms)?;
        }
        if let Some(listen) = var("AUDITQ_LISTEN") {
            self.service.listen = listen;
        }
        if let Some(path) = var("AUDITQ_SIGNING_KEY_FILE") {
            self.signing_key_file = Some(PathBuf::from(path));
        }
        self.secrets = Secrets {
            redaction_key: var("AUDITQ_REDACTION_KEY"),
            signing_key: var(auditq_ingest::digest::KEY_VARIABLE),
            default_signing_key_file: auditq_ingest::digest::default_key_file(var),
        };
        if let Some(minutes) = var("AUDITQ_UNLOGGED_AFTER_MINUTES") {
            self.sessions.unlogged_after_minutes =
                number("AUDITQ_UNLOGGED_AFTER_MINUTES", minutes)?;
        }
        if let Some(hours) = var("AUDITQ_VACUUM_RETENTION_HOURS") {
            self.compaction.vacuum_retention_hours =
                number("AUDITQ_VACUUM_RETENTION_HOURS", hours)?;
        }
        if let Some(hours) = var("AUDITQ_VACUUM_EVERY_HOURS") {
            self.compaction.vacuum_every_hours = number("AUDITQ_VACUUM_EVERY_HOURS", hours)?;
        }
        if let Some(batches) = var("AUDITQ_COMPACT_EVERY_BATCHES") {
            self.compaction.every_batches = number("AUDITQ_COMPACT_EVERY_BATCHES", batches)?;
        }
        if let Some(hours) = var("AUDITQ_COMPACT_EVERY_HOURS") {
            self.compaction.every_hours = number("AUDITQ_COMPACT_EVERY_HOURS", hours)?;
        }
        Ok(())
    }

    /// Checks what can be checked before anything is built.
    pub fn validate(&self) -> Result<(), DeployError> {
        let problem = |field: &str, message: String| {
            Err(DeployError::Config {
                field: field.to_string(),
                message,
            })
        };
        if self.data.trim().is_empty() {
            return problem(
                "data",
                "no lake location: set `data` or AUDITQ_DATA (s3://BUCKET/PREFIX)".to_string(),
            );
        }
        if !self.alerts.is_empty() && self.rules.is_none() {
            return problem(
                "alerts",
                "alert sinks without rules: set `rules` (e.g. `default`) or AUDITQ_RULES"
                    .to_string(),
            );
        }
        for spec in &self.alerts {
            let known =
                spec.starts_with("sns://arn:") || spec == "stdout" || spec.starts_with("file://");
            if !known {
                return problem(
                    "alerts",
                    format!("{spec:?}: use sns://TOPIC_ARN, stdout or file://PATH"),
                );
            }
        }
        if let Some(rules) = &self.rules {
            auditq_rules::compile_source(rules)?;
        }
        if self.service.listen.parse::<SocketAddr>().is_err() {
            return problem(
                "service.listen",
                format!(
                    "{:?} is not an address and port (0.0.0.0:9090)",
                    self.service.listen
                ),
            );
        }
        if self.sources.poll_interval_ms < 200 {
            return problem(
                "sources.poll_interval_ms",
                format!("{} is below 200", self.sources.poll_interval_ms),
            );
        }
        if self.batch.max_files == 0 || self.batch.max_bytes == 0 {
            return problem(
                "batch",
                "max_files and max_bytes must be above 0".to_string(),
            );
        }
        if self.compaction.vacuum_retention_hours == 0 {
            return problem(
                "compaction.vacuum_retention_hours",
                "0 would delete files a running query may still read".to_string(),
            );
        }
        Ok(())
    }

    /// The ingest limits of this configuration.
    pub fn limits(&self) -> Limits {
        Limits {
            batch_files: self.batch.max_files,
            batch_bytes: self.batch.max_bytes,
            max_object_bytes: self.batch.max_object_bytes,
            max_decompressed_bytes: self.batch.max_decompressed_bytes,
            ..Limits::default()
        }
    }

    /// How log groups are followed.
    pub fn follow_mode(&self) -> FollowMode {
        match self.sources.follow {
            Follow::LiveTail => FollowMode::LiveTail,
            Follow::Poll => FollowMode::Poll(Duration::from_millis(self.sources.poll_interval_ms)),
        }
    }

    /// VACUUM's retention window.
    pub fn vacuum_retention(&self) -> Duration {
        Duration::from_secs(self.compaction.vacuum_retention_hours.saturating_mul(3600))
    }
}
