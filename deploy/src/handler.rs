//! The Lambda function: one handler for every event auditq is sent.
//!
//! | event | what it does |
//! |---|---|
//! | CloudWatch Logs subscription (`awslogs.data`) | CloudTrail records and host log lines (sshd, sudo, su, auditd from the CloudWatch agent) are parsed from the batch itself; a Session Manager stream is read again from its head (its commands are numbered from the session's first chunk, and a batch holds only the newest chunks); `CONTROL_MESSAGE` is acknowledged and ignored |
//! | SQS batch of S3 notifications | each message's objects are ingested; failed messages are reported in `batchItemFailures`, so only they return to the queue |
//! | S3 notification (direct, through SNS, or EventBridge "Object Created") | the objects are ingested |
//! | EventBridge "Scheduled Event" | the lake's small files are merged (every few minutes), and VACUUM runs once a day |
//!
//! Every invocation first delivers what the alert outbox kept. Input the handler cannot read is
//! set aside in `rejects` with its reason (and, for SQS, reported as failed so it reaches the
//! dead-letter queue); an error of the pipeline fails the invocation with nothing of it
//! committed, typed retryable or permanent.

use std::time::Duration;

use auditq_ingest::aws::{AwsClients, AwsSettings, ingest_s3_notification, ingest_streams};
use auditq_ingest::decode::decode_subscription;
use auditq_ingest::parse::{Object, parse_object, reject};
use auditq_ingest::{IngestSummary, Limits, Parsed, Pipeline};
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{DeployError, HandlerError};

/// The handler, built once per container (clients, and the pipeline with its compiled rules).
#[derive(Debug, Clone)]
pub struct Handler {
    pipeline: Pipeline,
    clients: AwsClients,
    limits: Limits,
    retention: Duration,
    vacuum_every: Duration,
}

/// The kinds of event the handler recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    CloudWatchLogs,
    SqsBatch,
    S3Notification,
    Schedule,
}

fn kind_of(event: &Value) -> Option<EventKind> {
    if event.pointer("/awslogs/data").is_some() {
        return Some(EventKind::CloudWatchLogs);
    }
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let source = records.first().and_then(|r| {
            r.get("eventSource")
                .or_else(|| r.get("EventSource"))
                .and_then(Value::as_str)
        });
        return match source {
            Some("aws:sqs") => Some(EventKind::SqsBatch),
            Some("aws:s3") | Some("aws:sns") => Some(EventKind::S3Notification),
            _ => None,
        };
    }
    let source = event.get("source").and_then(Value::as_str);
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    match (source, detail_type) {
        (Some("aws.s3"), Some("Object Created")) => Some(EventKind::S3Notification),
        (Some("aws.events"), Some("Scheduled Event")) => Some(EventKind::Schedule),
        _ => None,
    }
}

impl Handler {
    /// Builds the clients and the pipeline (with its rules and alert sinks) once.
    pub async fn new(config: &Config, aws: &AwsSettings) -> Result<Handler, DeployError> {
        let clients = aws.clients().await;
        let pipeline = crate::pipeline(config, aws, &clients).await?;
        Ok(Handler {
            pipeline,
            clients,
            limits: config.limits(),
            retention: config.vacuum_retention(),
            vacuum_every: Duration::from_secs(config.compaction.vacuum_every_hours * 3600),
        })
    }

    /// The pipeline this handler runs.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Handles one invocation; the answer is a JSON summary (for SQS, with
    /// `batchItemFailures`).
    pub async fn handle(&self, event: Value) -> Result<Value, HandlerError> {
        let kind = kind_of(&event).ok_or_else(|| {
            let head: String = event.to_string().chars().take(200).collect();
            HandlerError::permanent(format!(
                "not an event auditq handles (CloudWatch Logs subscription, SQS, S3, \
                 EventBridge Object Created or Scheduled Event): {head}"
            ))
        })?;
        let started = std::time::Instant::now();
        let (delivered, kept) = self.pipeline.flush_outbox().await?;
        if delivered > 0 {
            tracing::info!(delivered, kept, "alert outbox flushed");
        }
        let result = match kind {
            EventKind::CloudWatchLogs => self.cloudwatch_logs(&event).await,
            EventKind::SqsBatch => self.sqs_batch(&event).await,
            EventKind::S3Notification => {
                let summary =
                    ingest_s3_notification(&self.pipeline, &self.clients.s3, &event, &self.limits)
                        .await?;
                Ok(summary_json(&summary))
            }
            EventKind::Schedule => self.compact().await,
        };
        match &result {
            Ok(answer) => tracing::info!(
                event = ?kind,
                elapsed_ms = started.elapsed().as_millis() as u64,
                answer = %answer,
                "invocation done"
            ),
            Err(e) => tracing::error!(
                event = ?kind,
                retryable = e.retryable,
                error = %e.message,
                "invocation failed; nothing of it was committed"
            ),
        }
        result
    }

    async fn cloudwatch_logs(&self, event: &Value) -> Result<Value, HandlerError> {
        let data = event
            .pointer("/awslogs/data")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let payload = match decode_subscription(data, self.limits.max_decompressed_bytes) {
            Ok(payload) => payload,
            Err(reason) => {
                // Kept with its reason (and the start of what was sent) rather than retried: the
                // same bytes will never decode.
                let summary = self
                    .set_aside("lambda://cloudwatch-logs", "awslogs.data", &reason, data)
                    .await?;
                return Ok(summary_json(&summary));
            }
        };
        let value: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        if value.get("messageType").and_then(Value::as_str) == Some("CONTROL_MESSAGE") {
            return Ok(json!({ "ignored": "CONTROL_MESSAGE" }));
        }
        let group = value
            .get("logGroup")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let stream = value
            .get("logStream")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let origin = format!("cwl://{}/{stream}", group.trim_start_matches('/'));
        let at = Object {
            origin: &origin,
            modified: chrono::Utc::now(),
        };
        let parsed = parse_object(payload, at, &self.limits);
        // Session recordings (stream chunks, plain-text transcript uploads) need their whole
        // stream; CloudTrail records and host log lines stand alone and are stored from the
        // batch.
        let recording =
            !parsed.chunks.is_empty() || parsed.commands.iter().any(|c| c.source == "transcript");
        let summary = if recording && !group.is_empty() {
            // A session's commands are numbered from its first chunk: read the stream whole.
            ingest_streams(
                &self.pipeline,
                &self.clients.cwl,
                &group,
                std::slice::from_ref(&stream),
                &|_| {},
            )
            .await?
        } else {
            self.pipeline.store(parsed).await?
        };
        Ok(summary_json(&summary))
    }

    async fn sqs_batch(&self, event: &Value) -> Result<Value, HandlerError> {
        let records = event
            .get("Records")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut summary = IngestSummary::default();
        let mut failed: Vec<Value> = Vec::new();
        for record in records {
            let id = record
                .get("messageId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let body = record
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let queue = record
                .get("eventSourceARN")
                .and_then(Value::as_str)
                .unwrap_or("sqs");
            let notification = serde_json::from_str::<Value>(body)
                .map_err(|e| format!("malformed JSON: {e}"))
                .and_then(|value| {
                    auditq_ingest::notify::created_objects(&value)
                        .map(|_| value)
                        .map_err(|reason| format!("not an S3 event notification: {reason}"))
                });
            let outcome = match notification {
                Ok(value) => {
                    ingest_s3_notification(&self.pipeline, &self.clients.s3, &value, &self.limits)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(reason) => {
                    // Recorded with its reason, and failed so that the queue's redrive policy
                    // moves it to the dead-letter queue rather than it being deleted.
                    let origin = format!("sqs://{queue}");
                    let position = format!("message {id}");
                    summary.add(self.set_aside(&origin, &position, &reason, body).await?);
                    Err(reason)
                }
            };
            match outcome {
                Ok(part) => summary.add(part),
                Err(error) => {
                    tracing::warn!(message_id = id, %error, "SQS message failed; it returns to the queue");
                    failed.push(json!({ "itemIdentifier": id }));
                }
            }
        }
        let mut answer = summary_json(&summary);
        answer["batchItemFailures"] = Value::Array(failed);
        Ok(answer)
    }

    /// The schedule: small files merged every time (it runs every few minutes), VACUUM when the
    /// last one is older than `compaction.vacuum_every_hours`.
    async fn compact(&self) -> Result<Value, HandlerError> {
        let lake = self.pipeline.lake();
        let merged = lake.merge_small_files().await?;
        let vacuumed = lake
            .vacuum_if_due(self.retention, self.vacuum_every)
            .await?;
        let tables: Vec<Value> = merged
            .iter()
            .map(|c| {
                json!({
                    "table": c.table,
                    "files_removed": c.files_removed,
                    "files_added": c.files_added,
                    "files_vacuumed": vacuumed
                        .iter()
                        .flatten()
                        .find(|(t, _)| *t == c.table)
                        .map_or(0, |(_, n)| *n),
                })
            })
            .collect();
        Ok(json!({ "compacted": tables, "vacuumed": vacuumed.is_some() }))
    }

    /// Stores a reject for input that cannot be read at all.
    async fn set_aside(
        &self,
        origin: &str,
        position: &str,
        reason: &str,
        raw: &str,
    ) -> Result<IngestSummary, HandlerError> {
        let at = Object {
            origin,
            modified: chrono::Utc::now(),
        };
        let parsed = Parsed {
            rejects: vec![reject(at, position, "lambda-event", reason, raw.as_bytes())],
            ..Parsed::default()
        };
        Ok(self.pipeline.store(parsed).await?)
    }
}

/// The summary of an invocation, as its answer and in its log line.
pub fn summary_json(summary: &IngestSummary) -> Value {
    let tables: serde_json::Map<String, Value> = summary
        .tables
        .iter()
        .map(|(table, count)| {
            (
                table.name().to_string(),
                json!({ "read": count.read, "added": count.added, "updated": count.updated }),
            )
        })
        .collect();
    json!({
        "objects": summary.objects,
        "tables": tables,
        "rejected": summary.rejected(),
        "redacted": summary.redactions,
        "reject_reasons": summary.reject_reasons,
        "alerts": {
            "raised": summary.alerts.raised,
            "delivered": summary.alerts.delivered,
            "kept": summary.alerts.kept,
        },
        "stages_ms": {
            "load": summary.stages.load.as_millis() as u64,
            "decide": summary.stages.decide.as_millis() as u64,
            "alerts": summary.stages.alerts.as_millis() as u64,
            "write": summary.stages.write.as_millis() as u64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_envelope_of_the_corpus_it_handles() {
        let cases = [
            (
                json!({"awslogs": {"data": "x"}}),
                Some(EventKind::CloudWatchLogs),
            ),
            (
                json!({"Records": [{"eventSource": "aws:sqs"}]}),
                Some(EventKind::SqsBatch),
            ),
            (
                json!({"Records": [{"eventSource": "aws:s3"}]}),
                Some(EventKind::S3Notification),
            ),
            (
                json!({"Records": [{"EventSource": "aws:sns"}]}),
                Some(EventKind::S3Notification),
            ),
            (
                json!({"source": "aws.s3", "detail-type": "Object Created"}),
                Some(EventKind::S3Notification),
            ),
            (
                json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
                Some(EventKind::Schedule),
            ),
            (
                json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}),
                None,
            ),
            (json!({"Records": [{"eventSource": "aws:kinesis"}]}), None),
            (json!("hello"), None),
        ];
        for (event, expected) in cases {
            assert_eq!(kind_of(&event), expected, "{event}");
        }
    }
}
