//! Publishing alerts: Amazon SNS, standard output, a file; retries with backoff; an outbox for
//! what still fails.
//!
//! The contract: an alert handed to [`Publisher::publish`] is either delivered to every sink or
//! written to the outbox before `publish` returns; if neither is possible `publish` fails and
//! the caller must not commit the source position. Nothing is dropped silently. Delivery is at
//! least once: a crash between a delivery and the caller's commit repeats it, with the same
//! alert id, which subscribers may use to deduplicate.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::notice::AlertNotice;

/// Where alerts go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// An SNS topic.
    Sns {
        /// The client (built once).
        client: aws_sdk_sns::Client,
        /// The topic.
        topic_arn: String,
    },
    /// One JSON line per alert on standard output.
    Stdout,
    /// One JSON line per alert appended to a file.
    File(PathBuf),
}

impl Sink {
    fn name(&self) -> String {
        match self {
            Sink::Sns { topic_arn, .. } => format!("sns://{topic_arn}"),
            Sink::Stdout => "stdout".to_string(),
            Sink::File(path) => format!("file://{}", path.display()),
        }
    }

    async fn send(&self, notice: &AlertNotice) -> Result<(), String> {
        match self {
            Sink::Sns { client, topic_arn } => {
                let mut request = client
                    .publish()
                    .topic_arn(topic_arn)
                    .subject(notice.subject())
                    .message(notice.body());
                for (name, value) in notice.attributes() {
                    let value = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| e.to_string())?;
                    request = request.message_attributes(name, value);
                }
                request.send().await.map(|_| ()).map_err(|e| {
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(inner) = source {
                        text.push_str(": ");
                        text.push_str(&inner.to_string());
                        source = inner.source();
                    }
                    text
                })
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", notice.body()).map_err(|e| e.to_string())
            }
            Sink::File(path) => {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                writeln!(file, "{}", notice.body()).map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

/// Retry policy for a sink.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub first_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// An error that keeps alerts from being either delivered or kept.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The outbox could not be written or read.
    #[error("alert outbox {location}: {source}")]
    Outbox {
        /// The outbox location.
        location: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Delivery failed and there is no outbox to keep the alert in.
    #[error("cannot deliver alert {alert_id} to {sink} ({reason}) and no outbox is configured")]
    Undeliverable {
        /// The alert.
        alert_id: String,
        /// The sink.
        sink: String,
        /// Why.
        reason: String,
    },
}

/// A durable place for alerts that could not be delivered: one JSON object per alert, named by
/// alert id, in a local directory or an S3 prefix.
#[derive(Debug, Clone)]
pub struct AlertOutbox {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    location: String,
}

impl AlertOutbox {
    /// An outbox under `prefix` of `store`; `location` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: StorePath, location: String) -> Self {
        Self {
            store,
            prefix,
            location,
        }
    }

    /// Where it is.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn error(&self, source: impl std::error::Error + Send + Sync + 'static) -> PublishError {
        PublishError::Outbox {
            location: self.location.clone(),
            source: Box::new(source),
        }
    }

    fn path(&self, alert_id: &str) -> StorePath {
        self.prefix
            .clone()
            .join(format!("{alert_id}.json").as_str())
    }

    /// Keeps an alert.
    pub async fn put(&self, notice: &AlertNotice) -> Result<(), PublishError> {
        self.store
            .put(
                &self.path(&notice.alert_id),
                notice.body().into_bytes().into(),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The alerts kept, oldest id first. An entry that cannot be read is an error naming it,
    /// never skipped.
    pub async fn pending(&self) -> Result<Vec<AlertNotice>, PublishError> {
        let mut metas: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| self.error(e))?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut notices = Vec::new();
        for meta in metas {
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .map_err(|e| self.error(e))?
                .bytes()
                .await
                .map_err(|e| self.error(e))?;
            let notice: AlertNotice = serde_json::from_slice(&bytes).map_err(|e| {
                self.error(std::io::Error::other(format!("{}: {e}", meta.location)))
            })?;
            notices.push(notice);
        }
        Ok(notices)
    }

    /// Forgets a delivered alert.
    pub async fn remove(&self, alert_id: &str) -> Result<(), PublishError> {
        match self.store.delete(&self.path(alert_id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Alerts delivered to every sink.
    pub delivered: Vec<String>,
    /// Alerts kept in the outbox, with the first failure.
    pub kept: Vec<(String, String)>,
}

/// Publishes alerts to sinks with retries, keeping failures in an outbox.
#[derive(Debug, Clone)]
pub struct Publisher {
    sinks: Vec<Sink>,
    retry: Retry,
    outbox: Option<AlertOutbox>,
}

impl Publisher {
    /// A publisher.
    pub fn new(sinks: Vec<Sink>, retry: Retry, outbox: Option<AlertOutbox>) -> Self {
        Self {
            sinks,
            retry,
            outbox,
        }
    }

    /// Its outbox.
    pub fn outbox(&self) -> Option<&AlertOutbox> {
        self.outbox.as_ref()
    }

    /// Delivers alerts. Once a sink has failed every retry, later alerts of this call go
    /// straight to the outbox instead of waiting out the same outage again.
    pub async fn publish(&self, notices: &[AlertNotice]) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        let mut down: Option<String> = None;
        for notice in notices {
            let failure = match &down {
                Some(reason) => Some(reason.clone()),
                None => self.deliver(notice).await.err(),
            };
            match failure {
                None => report.delivered.push(notice.alert_id.clone()),
                Some(reason) => {
                    let Some(outbox) = &self.outbox else {
                        return Err(PublishError::Undeliverable {
                            alert_id: notice.alert_id.clone(),
                            sink: self
                                .sinks
                                .iter()
                                .map(Sink::name)
                                .collect::<Vec<_>>()
                                .join(", "),
                            reason,
                        });
                    };
                    outbox.put(notice).await?;
                    tracing::warn!(alert_id = %notice.alert_id, %reason, outbox = %outbox.location(), "alert kept in the outbox");
                    report.kept.push((notice.alert_id.clone(), reason.clone()));
                    down = Some(reason);
                }
            }
        }
        Ok(report)
    }

    /// Delivers what the outbox holds, removing each alert once delivered.
    pub async fn flush_outbox(&self) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        let Some(outbox) = &self.outbox else {
            return Ok(report);
        };
        for notice in outbox.pending().await? {
            match self.deliver(&notice).await {
                Ok(()) => {
                    outbox.remove(&notice.alert_id).await?;
                    report.delivered.push(notice.alert_id);
                }
                Err(reason) => {
                    report.kept.push((notice.alert_id, reason));
                    // The sink is still down: leave the rest for the next run.
                    break;
                }
            }
        }
        Ok(report)
    }

    async fn deliver(&self, notice: &AlertNotice) -> Result<(), String> {
        for sink in &self.sinks {
            let mut backoff = self.retry.first_backoff;
            let mut attempt = 1;
            loop {
                match sink.send(notice).await {
                    Ok(()) => break,
                    Err(reason) if attempt >= self.retry.attempts.max(1) => {
                        return Err(format!("{}: {reason}", sink.name()));
                    }
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.retry.max_backoff);
                        attempt += 1;
                    }
                }
            }
        }
        Ok(())
    }
}
