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
        client: auditq_aws::Aws,
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
    pub fn parse(spec: &str, sns: Option<&auditq_aws::Aws>) -> Result<Sink, String> {
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

    /// Sends alerts; returns, for each (in order), whether it was delivered or why not. SNS
    /// takes them ten at a time (`PublishBatch`, under its 256 KiB a call).
    async fn send_all(&self, notices: &[&AlertNotice]) -> Vec<Result<(), String>> {
        match self {
            Sink::Sns { client, topic_arn } => {
                use futures::{FutureExt, StreamExt};
                // A few calls in flight: a batch of a hundred alerts is out in one round trip
                // or three, not ten.
                let calls: Vec<futures::future::BoxFuture<'_, Vec<Result<(), String>>>> =
                    sns_batches(notices)
                        .into_iter()
                        .map(|chunk| publish_batch(client, topic_arn, chunk).boxed())
                        .collect();
                let answers: Vec<Vec<Result<(), String>>> = futures::stream::iter(calls)
                    .buffered(SNS_CALLS_IN_FLIGHT)
                    .collect()
                    .await;
                answers.into_iter().flatten().collect()
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                notices
                    .iter()
                    .map(|n| writeln!(out, "{}", n.body()).map_err(|e| e.to_string()))
                    .collect()
            }
            Sink::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()));
                let mut file = match file {
                    Ok(file) => std::io::BufWriter::new(file),
                    Err(reason) => return vec![Err(reason); notices.len()],
                };
                let mut results: Vec<Result<(), String>> = notices
                    .iter()
                    .map(|n| {
                        writeln!(file, "{}", n.body())
                            .map_err(|e| format!("{}: {e}", path.display()))
                    })
                    .collect();
                if let Err(e) = file.flush() {
                    results.fill(Err(format!("{}: {e}", path.display())));
                }
                results
            }
        }
    }
}

/// Most alerts a `PublishBatch` call takes, and most bytes of messages it takes.
const SNS_BATCH: usize = 10;
const SNS_BATCH_BYTES: usize = 200 * 1024;
/// `PublishBatch` calls a sink keeps in flight at once.
const SNS_CALLS_IN_FLIGHT: usize = 10;

/// Alerts in groups SNS takes in one `PublishBatch` call.
fn sns_batches<'a>(notices: &'a [&'a AlertNotice]) -> Vec<&'a [&'a AlertNotice]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, notice) in notices.iter().enumerate() {
        let size = notice.body().len() + notice.subject().len();
        if i > start && (i - start == SNS_BATCH || bytes + size > SNS_BATCH_BYTES) {
            batches.push(&notices[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < notices.len() {
        batches.push(&notices[start..]);
    }
    batches
}

async fn publish_batch(
    client: &auditq_aws::Aws,
    topic_arn: &str,
    notices: &[&AlertNotice],
) -> Vec<Result<(), String>> {
    let entries: Vec<auditq_aws::sns::Entry> = notices
        .iter()
        .enumerate()
        .map(|(i, notice)| auditq_aws::sns::Entry {
            id: format!("a{i}"),
            subject: notice.subject().to_string(),
            message: notice.body().to_string(),
            attributes: notice
                .attributes()
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        })
        .collect();
    match client.sns_publish_batch(topic_arn, &entries).await {
        Err(e) => vec![Err(e.to_string()); notices.len()],
        Ok(answer) => {
            let mut results = vec![Ok(()); notices.len()];
            for (id, code, message) in &answer.failed {
                let index = id.strip_prefix('a').and_then(|i| i.parse::<usize>().ok());
                if let Some(result) = index.and_then(|i| results.get_mut(i)) {
                    let message = if message.is_empty() {
                        "rejected"
                    } else {
                        message
                    };
                    *result = Err(format!("{code}: {message}"));
                }
            }
            // An entry the answer names neither way was not taken.
            let answered: std::collections::HashSet<&str> = answer
                .successful
                .iter()
                .map(String::as_str)
                .chain(answer.failed.iter().map(|(id, ..)| id.as_str()))
                .collect();
            for (i, result) in results.iter_mut().enumerate() {
                if !answered.contains(format!("a{i}").as_str()) {
                    *result = Err("not in the PublishBatch answer".to_string());
                }
            }
            results
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

    /// Delivers alerts to every sink, all sinks at once. What a sink cannot take after every
    /// retry goes to the outbox, owed by that sink only.
    ///
    /// With no sinks (rules given without `--alerts`) nothing is delivered or kept: the alerts
    /// are recorded unpublished.
    pub async fn publish(&self, notices: &[AlertNotice]) -> Result<PublishReport, PublishError> {
        let owed: Vec<(&AlertNotice, Vec<String>)> = notices
            .iter()
            .map(|n| (n, self.sinks.iter().map(Sink::name).collect()))
            .collect();
        self.deliver(owed, false).await
    }

    /// Delivers what the outbox holds to the sinks that still owe it, removing each alert once
    /// every one has it. An alert owed by a sink this publisher does not have stays kept.
    pub async fn flush_outbox(&self) -> Result<PublishReport, PublishError> {
        // Without a sink there is nowhere to deliver: what is kept stays kept.
        let Some(outbox) = self.outbox.as_ref().filter(|_| !self.sinks.is_empty()) else {
            return Ok(PublishReport::default());
        };
        let pending = outbox.pending().await?;
        let owed: Vec<(&AlertNotice, Vec<String>)> =
            pending.iter().map(|(n, o)| (n, o.clone())).collect();
        self.deliver(owed, true).await
    }

    /// Sends each alert to the sinks it is owed by (every sink at once, each sink all its alerts
    /// in as few calls as it takes), then settles each alert: delivered everywhere (and, when
    /// `from_outbox`, removed from it), or kept for the sinks that still owe it.
    async fn deliver(
        &self,
        owed: Vec<(&AlertNotice, Vec<String>)>,
        from_outbox: bool,
    ) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        if self.sinks.is_empty() || owed.is_empty() {
            return Ok(report);
        }
        let attempts = self.sinks.iter().map(|sink| {
            let name = sink.name();
            let mine: Vec<usize> = owed
                .iter()
                .enumerate()
                .filter(|(_, (_, sinks))| sinks.contains(&name))
                .map(|(i, _)| i)
                .collect();
            let notices: Vec<&AlertNotice> = mine.iter().map(|&i| owed[i].0).collect();
            async move {
                let results = self.send_with_retry(sink, &notices).await;
                (name, mine, results)
            }
        });
        let mut failures: Vec<Vec<(String, String)>> = vec![Vec::new(); owed.len()];
        let mut reached: Vec<Vec<String>> = vec![Vec::new(); owed.len()];
        for (name, mine, results) in futures::future::join_all(attempts).await {
            for (i, result) in mine.into_iter().zip(results) {
                match result {
                    Ok(()) => reached[i].push(name.clone()),
                    Err(reason) => failures[i].push((name.clone(), reason)),
                }
            }
        }
        for (i, (notice, sinks)) in owed.iter().enumerate() {
            // Sinks named in the outbox that this run does not have keep the alert too.
            for name in sinks {
                if !self.sinks.iter().any(|s| s.name() == *name) {
                    failures[i].push((name.clone(), format!("{name}: not a sink of this run")));
                }
            }
            let still: Vec<String> = failures[i].iter().map(|(n, _)| n.clone()).collect();
            let Some((_, reason)) = failures[i].first().cloned() else {
                if from_outbox && let Some(outbox) = &self.outbox {
                    outbox.remove(&notice.alert_id).await?;
                }
                report.delivered.push(notice.alert_id.clone());
                continue;
            };
            let Some(outbox) = &self.outbox else {
                return Err(PublishError::Undeliverable {
                    alert_id: notice.alert_id.clone(),
                    sink: still.join(", "),
                    reason,
                });
            };
            if !from_outbox || still != *sinks {
                outbox.put(notice, &still).await?;
            }
            if !from_outbox {
                tracing::warn!(alert_id = %notice.alert_id, %reason, outbox = %outbox.location(), "alert kept in the outbox");
            }
            report.kept.push((notice.alert_id.clone(), reason));
        }
        Ok(report)
    }

    /// Sends alerts to one sink, retrying those it refused with backoff; returns, for each,
    /// whether it got through.
    async fn send_with_retry(
        &self,
        sink: &Sink,
        notices: &[&AlertNotice],
    ) -> Vec<Result<(), String>> {
        let mut results: Vec<Result<(), String>> = vec![Err("not sent".to_string()); notices.len()];
        let mut todo: Vec<usize> = (0..notices.len()).collect();
        let mut backoff = self.retry.first_backoff;
        for attempt in 1..=self.retry.attempts.max(1) {
            if todo.is_empty() {
                break;
            }
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
            }
            let batch: Vec<&AlertNotice> = todo.iter().map(|&i| notices[i]).collect();
            let answers = sink.send_all(&batch).await;
            let mut again = Vec::new();
            for (i, answer) in todo.iter().copied().zip(answers) {
                match answer {
                    Ok(()) => results[i] = Ok(()),
                    Err(reason) => {
                        results[i] = Err(format!("{}: {reason}", sink.name()));
                        again.push(i);
                    }
                }
            }
            todo = again;
        }
        results
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
