//! The pipeline: from parsed objects to committed rows and published alerts, one batch at a
//! time.
//!
//! A [`Pipeline`] is built once ([`PipelineBuilder`], used alike by the `auditq` command, the
//! Lambda handler and the ECS service) and owns every stage; the [`Lake`] under it only stores
//! rows. Each batch walks the stages once, in order:
//!
//! | stage | where | I/O |
//! |---|---|---|
//! | assemble streams, redact secrets | [`batch`] | none |
//! | load the stored rows the batch could collide with or update | [`load`] | reads, two concurrent rounds |
//! | decide new rows, changed sessions, correlations, replacements | [`decide`] | none |
//! | rules, shared rule state, publish | [`crate::alerting`] | rule state, sinks |
//! | write: at most one commit per table, positions last | [`Pipeline::store`] | commits |
//!
//! Adding a table or a correlation step means a field in [`decide::Stored`] (and its read in
//! [`load`]), a step in [`decide::decide`] with its unit test, and a commit in
//! [`Pipeline::store`]; the lake does not change.

pub mod batch;
pub mod builder;
pub mod decide;
pub mod load;
pub mod summary;

pub use builder::PipelineBuilder;
pub use summary::{IngestSummary, StageTimes, TableCount};

use std::collections::HashSet;
use std::sync::Arc;

use auditq_model::{Alert, Position, Table, Timestamp};
use deltalake::kernel::Transaction;

use crate::alerting::{AlertCounts, Alerting};
use crate::error::Result;
use crate::lake::{Filter, Lake, Replace};
use crate::parse::Parsed;
use crate::redact::Redactor;
use batch::Batch;

/// How many times a batch is decided and committed when another writer's commit conflicts.
const COMMIT_ATTEMPTS: usize = 6;

/// The write path: redaction, correlation settings, rules and alerting, over one lake.
#[derive(Debug, Clone)]
pub struct Pipeline {
    lake: Lake,
    redactor: Arc<Redactor>,
    unlogged_grace: chrono::Duration,
    alerting: Option<Arc<Alerting>>,
}

impl Pipeline {
    /// The lake it writes.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The alerting stage, when rules are configured.
    pub fn alerting(&self) -> Option<&Alerting> {
        self.alerting.as_deref()
    }

    /// How long after a session ends a missing recording is still awaited.
    pub fn unlogged_grace(&self) -> chrono::Duration {
        self.unlogged_grace
    }

    /// Stores one batch of parsed objects (no source positions to record).
    pub async fn store(&self, parsed: Parsed) -> Result<IngestSummary> {
        self.store_at(parsed, Vec::new()).await
    }

    /// Stores one batch, committing the source `positions` it covers with every table's
    /// commit (Delta application transactions) and in the `positions` table last, once
    /// everything the batch produced is durable.
    pub async fn store_at(
        &self,
        parsed: Parsed,
        positions: Vec<Position>,
    ) -> Result<IngestSummary> {
        let _batch = self.lake.batch_guard().await;
        let now = chrono::Utc::now();
        let mut reject_reasons = std::collections::BTreeMap::new();
        let mut reject_examples = std::collections::BTreeMap::new();
        for reject in &parsed.rejects {
            let kind = summary::reason_kind(&reject.reason);
            *reject_reasons.entry(kind.clone()).or_insert(0) += 1;
            reject_examples
                .entry(kind)
                .or_insert_with(|| reject.reason.clone());
        }
        let prepared = Batch::prepare(parsed, positions, &self.redactor);
        self.store_prepared(prepared, now, &reject_reasons, &reject_examples)
            .await
    }

    /// Stores names looked up from AWS ([`crate::lookup`]): those that change what the
    /// `names` table knows are added to its history.
    pub async fn store_names(&self, names: Vec<auditq_model::Name>) -> Result<IngestSummary> {
        let _batch = self.lake.batch_guard().await;
        let batch = Batch {
            names,
            ..Batch::default()
        };
        let none = (Default::default(), Default::default());
        self.store_prepared(batch, chrono::Utc::now(), &none.0, &none.1)
            .await
    }

    /// Stores a prepared batch, deciding it again when another writer's commit conflicts.
    async fn store_prepared(
        &self,
        prepared: Batch,
        now: chrono::DateTime<chrono::Utc>,
        reject_reasons: &std::collections::BTreeMap<String, usize>,
        reject_examples: &std::collections::BTreeMap<String, String>,
    ) -> Result<IngestSummary> {
        let mut attempt = 1;
        loop {
            match self
                .store_batch(prepared.clone(), now, reject_reasons, reject_examples)
                .await
            {
                // Another writer (a second Lambda container, ECS task or process) committed to
                // a file this batch rewrites: the batch is loaded and decided again. What was
                // committed of the first attempt is found stored and not written twice, and its
                // alerts are not published again.
                Err(error) if attempt < COMMIT_ATTEMPTS && error.is_commit_conflict() => {
                    tracing::info!(attempt, %error, "a concurrent commit: deciding the batch again");
                    // Apart, so that two writers do not meet again at once: 50 to 300 ms,
                    // spread by the clock's nanoseconds.
                    let spread = u64::from(chrono::Utc::now().timestamp_subsec_nanos() % 250);
                    tokio::time::sleep(std::time::Duration::from_millis(
                        50 * attempt as u64 + spread,
                    ))
                    .await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Loads, decides, alerts on and commits one prepared batch.
    async fn store_batch(
        &self,
        mut batch: Batch,
        now: chrono::DateTime<chrono::Utc>,
        reject_reasons: &std::collections::BTreeMap<String, usize>,
        reject_examples: &std::collections::BTreeMap<String, String>,
    ) -> Result<IngestSummary> {
        let mut stages = StageTimes::default();
        let clock = std::time::Instant::now();
        let stored = load::load(&self.lake, &batch, now, self.alerting.is_some()).await?;
        batch.join_split_events(&stored.split_host, &self.redactor);
        stages.load = clock.elapsed();
        let clock = std::time::Instant::now();
        let decision = decide::decide(batch, &stored, self.unlogged_grace, now);
        stages.decide = clock.elapsed();
        let clock = std::time::Instant::now();

        // Alerts are out (delivered or in the outbox) before anything of the batch is committed.
        let mut alerts = Vec::new();
        let mut counts = AlertCounts::default();
        if let Some(alerting) = &self.alerting {
            let mut events = decision.events();
            let mut notices = alerting.detect(&mut events, now).await?;
            counts.raised = notices.len();
            let mut seen = HashSet::new();
            notices.retain(|n| {
                !stored.alerts.contains(&n.alert_id) && seen.insert(n.alert_id.clone())
            });
            let report = alerting.publish(&notices).await?;
            counts.delivered = report.delivered.len();
            counts.kept = report.kept.len();
            let delivered: HashSet<&String> = report.delivered.iter().collect();
            alerts = notices
                .iter()
                .map(|n| n.to_row(delivered.contains(&n.alert_id)))
                .collect::<Vec<Alert>>();
        }

        stages.alerts = clock.elapsed();
        let clock = std::time::Instant::now();
        let txns = transactions(&decision.positions);
        let mut summary = IngestSummary {
            tables: decision.counts.clone(),
            reject_reasons: reject_reasons.clone(),
            reject_examples: reject_examples.clone(),
            newest_event: decision.newest_event,
            redactions: decision.redactions,
            ..IngestSummary::default()
        };
        if self.alerting.is_some() {
            let added = self.lake.commit(&alerts, None, &txns).await?.added;
            summary.tables.insert(
                Table::Alerts,
                TableCount {
                    read: counts.raised,
                    added,
                    updated: 0,
                },
            );
            summary.alerts = counts;
        }

        // Commands before sessions: a crash in between leaves a session that learned its
        // CloudTrail record looking unchanged-from-before to the next run, which does this
        // again (a crash after would leave its commands without who/where for good).
        let commands_and_sessions = async {
            let replaced = &decision.replaced_commands;
            let replace = replacing(
                "event_id",
                replaced.iter().map(|(c, at)| (c.event_id.clone(), *at)),
            );
            let rows = with_replacements(
                &decision.commands,
                replaced.iter().map(|(c, _)| c.clone()).collect(),
            );
            self.lake.commit(&rows, Some(&replace), &txns).await?;
            let sessions = Replace::keys(
                "session_id",
                decision
                    .sessions
                    .iter()
                    .map(|s| s.session_id.clone())
                    .chain(decision.retired_sessions.iter().cloned()),
            );
            self.lake
                .commit(&decision.sessions, Some(&sessions), &txns)
                .await
        };
        // Every commit runs to its end before an error is returned: none is dropped half-way
        // (deltalake's kernel may be working on it in a blocking task, which must not outlive
        // the process's runtime).
        let names = async {
            let replaced = &decision.replaced_names;
            let replace = replacing(
                "event_id",
                replaced.iter().map(|n| (n.event_id.clone(), n.time)),
            );
            let rows = with_replacements(&decision.names, replaced.clone());
            self.lake.commit(&rows, Some(&replace), &txns).await
        };
        let (sessions, trail, host, rejects, names) = futures::join!(
            commands_and_sessions,
            self.lake.commit(&decision.trail, None, &txns),
            async {
                let replaced = &decision.replaced_host;
                let replace = replacing(
                    "event_id",
                    replaced.iter().map(|e| (e.event_id.clone(), e.time)),
                );
                let rows = with_replacements(&decision.host, replaced.clone());
                self.lake.commit(&rows, Some(&replace), &txns).await
            },
            self.lake.commit(&decision.rejects, None, &txns),
            names,
        );
        sessions?;
        trail?;
        host?;
        rejects?;
        names?;
        // Positions last: they say everything above is durable.
        self.lake.commit(&decision.positions, None, &txns).await?;
        stages.write = clock.elapsed();
        summary.stages = stages;
        Ok(summary)
    }

    /// Delivers what earlier runs kept in the outbox and marks those alerts published.
    /// Returns how many were delivered and how many are still kept.
    pub async fn flush_outbox(&self) -> Result<(usize, usize)> {
        let Some(alerting) = &self.alerting else {
            return Ok((0, 0));
        };
        let report = alerting.flush_outbox().await?;
        if !report.delivered.is_empty() {
            let _batch = self.lake.batch_guard().await;
            let mut rows = load::alerts_by_id(&self.lake, &report.delivered).await?;
            for row in &mut rows {
                row.published = true;
            }
            let replace = replacing(
                "alert_id",
                rows.iter().map(|r| (r.alert_id.clone(), r.time)),
            );
            self.lake.commit(&rows, Some(&replace), &[]).await?;
        }
        Ok((report.delivered.len(), alerting.kept().await?))
    }
}

/// Stored rows whose `column` is one of `keys`, looked for within a second of each key's time.
fn replacing(column: &'static str, keys: impl Iterator<Item = (String, Timestamp)>) -> Replace {
    let (keys, times): (Vec<String>, Vec<Timestamp>) = keys.unzip();
    Replace::keys(column, keys).within(Filter::all().near(
        "time",
        times,
        chrono::Duration::seconds(1),
    ))
}

/// A commit's rows: the new ones and those replacing stored rows (the new ones as they are
/// when nothing is replaced, as in most batches).
fn with_replacements<R: Clone>(new: &[R], replacing: Vec<R>) -> std::borrow::Cow<'_, [R]> {
    if replacing.is_empty() {
        return std::borrow::Cow::Borrowed(new);
    }
    let mut rows = new.to_vec();
    rows.extend(replacing);
    std::borrow::Cow::Owned(rows)
}

/// The key of a position's Delta application transaction: S3 positions are per object and
/// ETag; stream positions per stream.
pub fn position_key(position: &Position) -> String {
    let detail = if position.source.starts_with("s3://") {
        position.detail.as_str()
    } else {
        ""
    };
    format!("{}@{detail}", position.source)
}

/// Delta application transactions for positions: app id [`position_key`], version.
fn transactions(positions: &[Position]) -> Vec<Transaction> {
    positions
        .iter()
        .map(|p| Transaction::new(position_key(p), p.version))
        .collect()
}
