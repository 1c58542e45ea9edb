//! Publishing alerts: Amazon SNS, standard output, a file; retries with backoff; an outbox for
//! what still fails.
//!
//! The contract: an alert handed to [`Publisher::publish`] is either delivered to every sink or
//! written to the outbox before `publish` returns; if neither is possible `publish` fails and
//! the caller must not commit the source position. Nothing is dropped silently. Delivery is at
//! least once: a crash between a delivery and the caller's commit repeats it, with the same
//! alert id, which subscribers may use to deduplicate.

use std::collections::BTreeMap;
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
    /// A sink from its name: `sns://TOPIC_ARN` (with the SNS client built once by the caller),
    /// `stdout`, or `file://PATH`.
    pub fn parse(spec: &str, sns: Option<&aws_sdk_sns::Client>) -> Result<Sink, String> {
        if let Some(topic) = spec.strip_prefix("sns://") {
            let client = sns.ok_or_else(|| format!("{spec:?}: no SNS client"))?;
            Ok(Sink::Sns {
                client: client.clone(),
                topic_arn: topic.to_string(),
            })
        } else if spec == "stdout" {
            Ok(Sink::Stdout)
        } else if let Some(path) = spec.strip_prefix("file://") {
            Ok(Sink::File(PathBuf::from(path)))
        } else {
            Err(format!(
                "{spec:?}: use sns://TOPIC_ARN, stdout or file://PATH"
            ))
        }
    }

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
                request
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| crate::error_chain(&e))
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

/// What the outbox keeps of an alert: the alert, and the sinks that have not had it yet, so a
/// later run does not send it again to a sink that already got it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OutboxEntry {
    owed: Vec<String>,
    alert: AlertNotice,
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

    /// Keeps an alert for the sinks named in `owed` (those it could not reach).
    pub async fn put(&self, notice: &AlertNotice, owed: &[String]) -> Result<(), PublishError> {
        let entry = OutboxEntry {
            owed: owed.to_vec(),
            alert: notice.clone(),
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| self.error(e))?;
        self.store
            .put(&self.path(&notice.alert_id), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The alerts kept, oldest id first, each with the sinks that still owe it. An entry that
    /// cannot be read is an error naming it, never skipped.
    pub async fn pending(&self) -> Result<Vec<(AlertNotice, Vec<String>)>, PublishError> {
        let mut metas: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| self.error(e))?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut entries = Vec::new();
        for meta in metas {
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .map_err(|e| self.error(e))?
                .bytes()
                .await
                .map_err(|e| self.error(e))?;
            let entry: OutboxEntry = serde_json::from_slice(&bytes).map_err(|e| {
                self.error(std::io::Error::other(format!("{}: {e}", meta.location)))
            })?;
            entries.push((entry.alert, entry.owed));
        }
        Ok(entries)
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

    /// Delivers alerts to every sink. What a sink cannot take after every retry goes to the
    /// outbox, owed by that sink only; once a sink has failed, later alerts of this call skip it
    /// (straight to the outbox) instead of waiting out the same outage again.
    ///
    /// With no sinks (rules given without `--alerts`) nothing is delivered or kept: the alerts
    /// are recorded unpublished.
    pub async fn publish(&self, notices: &[AlertNotice]) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        if self.sinks.is_empty() {
            return Ok(report);
        }
        let names: Vec<String> = self.sinks.iter().map(Sink::name).collect();
        let mut down: BTreeMap<String, String> = BTreeMap::new();
        for notice in notices {
            let (owed, first_failure) = self.send_to(notice, &names, &mut down).await;
            let Some(reason) = first_failure else {
                report.delivered.push(notice.alert_id.clone());
                continue;
            };
            let Some(outbox) = &self.outbox else {
                return Err(PublishError::Undeliverable {
                    alert_id: notice.alert_id.clone(),
                    sink: owed.join(", "),
                    reason,
                });
            };
            outbox.put(notice, &owed).await?;
            tracing::warn!(alert_id = %notice.alert_id, %reason, outbox = %outbox.location(), "alert kept in the outbox");
            report.kept.push((notice.alert_id.clone(), reason));
        }
        Ok(report)
    }

    /// Delivers what the outbox holds to the sinks that still owe it, removing each alert once
    /// every one has it. An alert owed by a sink this publisher does not have stays kept.
    pub async fn flush_outbox(&self) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        // Without a sink there is nowhere to deliver: what is kept stays kept.
        let Some(outbox) = self.outbox.as_ref().filter(|_| !self.sinks.is_empty()) else {
            return Ok(report);
        };
        // A sink that fails here is not tried again for the rest of the outbox.
        let mut down: BTreeMap<String, String> = BTreeMap::new();
        for (notice, owed) in outbox.pending().await? {
            let (still, failure) = self.send_to(&notice, &owed, &mut down).await;
            match failure {
                None => {
                    outbox.remove(&notice.alert_id).await?;
                    report.delivered.push(notice.alert_id);
                }
                Some(reason) => {
                    if still != owed {
                        outbox.put(&notice, &still).await?;
                    }
                    report.kept.push((notice.alert_id, reason));
                }
            }
        }
        Ok(report)
    }

    /// Sends `notice` to the sinks named in `names`. A sink already in `down` is not tried again
    /// (same outage), one that fails every retry joins `down`, and a name this publisher has no
    /// sink for fails. Returns the names that still owe the alert and the first failure.
    async fn send_to(
        &self,
        notice: &AlertNotice,
        names: &[String],
        down: &mut BTreeMap<String, String>,
    ) -> (Vec<String>, Option<String>) {
        let mut owed = Vec::new();
        let mut first_failure = None;
        for name in names {
            let result = match (
                down.get(name),
                self.sinks.iter().find(|s| s.name() == *name),
            ) {
                (Some(reason), _) => Err(reason.clone()),
                (None, None) => Err(format!("{name}: not a sink of this run")),
                (None, Some(sink)) => self.send_with_retry(sink, notice).await,
            };
            if let Err(reason) = result {
                down.entry(name.clone()).or_insert_with(|| reason.clone());
                first_failure.get_or_insert(reason);
                owed.push(name.clone());
            }
        }
        (owed, first_failure)
    }

    async fn send_with_retry(&self, sink: &Sink, notice: &AlertNotice) -> Result<(), String> {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            match sink.send(notice).await {
                Ok(()) => return Ok(()),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, FieldsEvent};
    use crate::spec::parse_file;
    use auditq_model::{Table, Timestamp};
    use object_store::memory::InMemory;

    fn notices(cmds: &[&str]) -> Vec<AlertNotice> {
        let text = "rules:\n  - id: linux.sudo\n    title: sudo\n    severity: high\n    table: commands\n    match: { field: cmd, prefix: sudo }\n";
        let engine = Engine::compile(&[parse_file("t", text).unwrap_or_else(|e| panic!("{e}"))])
            .unwrap_or_else(|e| panic!("{e:?}"));
        cmds.iter()
            .enumerate()
            .map(|(n, cmd)| {
                let event = FieldsEvent {
                    table: Table::Commands,
                    fields: [("event_id", format!("e{n}")), ("cmd", cmd.to_string())]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                };
                AlertNotice::new(
                    &engine.rules()[0],
                    &event,
                    Timestamp::default(),
                    Timestamp::default(),
                )
            })
            .collect()
    }

    fn quick() -> Retry {
        Retry {
            attempts: 2,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        }
    }

    fn outbox() -> AlertOutbox {
        AlertOutbox::new(
            Arc::new(InMemory::new()),
            StorePath::from("outbox"),
            "memory://outbox".to_string(),
        )
    }

    fn ids_in(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<AlertNotice>(l)
                    .unwrap_or_else(|e| panic!("{e}: {l}"))
                    .alert_id
            })
            .collect()
    }

    #[tokio::test]
    async fn a_failed_sink_is_owed_the_alert_and_the_others_are_not_sent_it_again() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let good = dir.path().join("good.ndjson");
        let flaky = dir.path().join("missing-dir").join("flaky.ndjson");
        let sinks = vec![Sink::File(good.clone()), Sink::File(flaky.clone())];
        let outbox = outbox();
        let alerts = notices(&["sudo su -", "sudo -i"]);
        let publisher = Publisher::new(sinks.clone(), quick(), Some(outbox.clone()));

        let report = publisher
            .publish(&alerts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.delivered.is_empty());
        assert_eq!(report.kept.len(), 2, "{report:?}");
        let pending = outbox.pending().await.unwrap_or_else(|e| panic!("{e}"));
        let flaky_name = Sink::File(flaky.clone()).name();
        assert!(
            pending
                .iter()
                .all(|(_, owed)| owed == &vec![flaky_name.clone()]),
            "{pending:?}"
        );
        assert_eq!(ids_in(&good).len(), 2);

        // The flaky sink comes back: each alert reaches it once, and the good sink no second time.
        std::fs::create_dir_all(dir.path().join("missing-dir")).unwrap_or_else(|e| panic!("{e}"));
        let report = publisher
            .flush_outbox()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut expected: Vec<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
        expected.sort();
        let mut delivered = report.delivered.clone();
        delivered.sort();
        assert_eq!(delivered, expected);
        assert!(
            outbox
                .pending()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
        assert_eq!(ids_in(&good).len(), 2, "the good sink got an alert twice");
        let mut flaky_ids = ids_in(&flaky);
        flaky_ids.sort();
        assert_eq!(flaky_ids, expected);
        // Flushing again sends nothing.
        let again = publisher
            .flush_outbox()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.delivered.is_empty() && again.kept.is_empty());
        assert_eq!(ids_in(&flaky).len(), 2);
    }

    #[tokio::test]
    async fn without_sinks_nothing_is_published_and_the_outbox_is_kept() {
        let outbox = outbox();
        let alerts = notices(&["sudo su -"]);
        outbox
            .put(
                &alerts[0],
                &["sns://arn:aws:sns:eu-west-1:111122223333:t".to_string()],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let publisher = Publisher::new(Vec::new(), quick(), Some(outbox.clone()));
        let report = publisher
            .publish(&alerts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report, PublishReport::default());
        let flushed = publisher
            .flush_outbox()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flushed, PublishReport::default());
        assert_eq!(
            outbox
                .pending()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn an_alert_owed_by_a_sink_not_configured_now_stays_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let outbox = outbox();
        let alerts = notices(&["sudo su -"]);
        outbox
            .put(
                &alerts[0],
                &["sns://arn:aws:sns:eu-west-1:111122223333:t".to_string()],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("alerts.ndjson");
        let publisher = Publisher::new(
            vec![Sink::File(file.clone())],
            quick(),
            Some(outbox.clone()),
        );
        let report = publisher
            .flush_outbox()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.delivered.is_empty());
        assert_eq!(report.kept.len(), 1);
        assert!(
            report.kept[0].1.contains("not a sink of this run"),
            "{report:?}"
        );
        assert!(ids_in(&file).is_empty());
        assert_eq!(
            outbox
                .pending()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .len(),
            1
        );
    }
}
