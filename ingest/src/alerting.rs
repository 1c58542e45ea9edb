//! The alerting stage of the pipeline: every event of a batch goes through the rules before the
//! batch is committed; new alerts are published (or kept in the outbox) before their rows and the
//! source position are committed.
//!
//! Order within a batch, and why:
//! 1. rules run over the batch's events in time order (suppression windows are in event time);
//! 2. alerts already in the `alerts` table are dropped, so a replayed batch publishes nothing
//!    twice;
//! 3. the rest are published; what cannot be delivered goes to the outbox (`publish` fails only
//!    if even that is impossible, and then nothing is committed);
//! 4. alert rows, then the other tables, are appended with the batch's source positions;
//! 5. the suppression/threshold state is saved beside the lake.
//!
//! A crash between 3 and 4 re-publishes those alerts on restart, with the same ids: delivery is
//! at least once, and the alert id lets subscribers deduplicate. A crash between 4 and 5 leaves
//! the state of the batch before: the batch is not read again, so a suppression it started is
//! forgotten and a later match may alert once more. Saving before the commit would be worse: a
//! replayed batch would find its own matches already counted and suppress alerts never stored.

use std::collections::HashSet;
use std::sync::Arc;

use auditq_model::{Alert, Timestamp};
use auditq_rules::{
    AlertNotice, AlertOutbox, Detector, Engine, EventView, Publisher, Retry, RuleState, Sink,
};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{IngestError, Result};
use crate::lake::Lake;

/// Rules, their state, and where alerts go.
#[derive(Debug)]
pub struct Alerting {
    detector: Detector,
    publisher: Publisher,
    state: StateObject,
}

/// Alerts raised by one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// Raised by rules (including ones already stored by an earlier run).
    pub raised: usize,
    /// New, and delivered to every sink.
    pub delivered: usize,
    /// New, and kept in the outbox for a later run.
    pub kept: usize,
}

/// Where the rule state lives: `<lake>/_auditq/rule-state.json`, local or on S3.
#[derive(Debug, Clone)]
struct StateObject {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
}

impl Alerting {
    /// The alerting stage for a lake, its state loaded from beside the lake.
    pub async fn new(lake: &Lake, engine: Arc<Engine>, publisher: Publisher) -> Result<Alerting> {
        let (store, root) = lake.object_store()?;
        let state = StateObject {
            store,
            path: root.join("_auditq").join("rule-state.json"),
        };
        let saved = match state.store.get(&state.path).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| state_error(lake, e))?;
                RuleState::from_json(&bytes).map_err(|e| state_error(lake, e))?
            }
            Err(object_store::Error::NotFound { .. }) => RuleState::default(),
            Err(e) => return Err(state_error(lake, e)),
        };
        Ok(Alerting {
            detector: Detector::new(engine, saved),
            publisher,
            state,
        })
    }

    /// The lake with an alerting stage: `engine`'s rules, alerts to `sinks`, and what cannot
    /// be delivered kept in the outbox beside the lake. What earlier runs kept is delivered
    /// first; returns the lake, and how many alerts that delivered and how many are still kept.
    pub async fn attach(
        lake: Lake,
        engine: Arc<Engine>,
        sinks: Vec<Sink>,
    ) -> Result<(Lake, usize, usize)> {
        let outbox = Alerting::outbox(&lake)?;
        let publisher = Publisher::new(sinks, Retry::default(), Some(outbox));
        let alerting = Alerting::new(&lake, engine, publisher).await?;
        let (delivered, still) = alerting.flush_outbox(&lake).await?;
        Ok((lake.with_alerting(alerting), delivered, still))
    }

    /// The outbox of the publisher, under the lake unless configured elsewhere.
    pub fn outbox(lake: &Lake) -> Result<AlertOutbox> {
        let (store, root) = lake.object_store()?;
        let prefix = root.join("_auditq").join("outbox");
        let location = format!("{}/_auditq/outbox", lake.location().trim_end_matches('/'));
        Ok(AlertOutbox::new(store, prefix, location))
    }

    /// Delivers what earlier runs kept in the outbox, and marks those alerts published in the
    /// lake. Returns how many were delivered and how many are still kept.
    pub async fn flush_outbox(&self, lake: &Lake) -> Result<(usize, usize)> {
        let report = self
            .publisher
            .flush_outbox()
            .await
            .map_err(|e| publish_error(lake, e))?;
        if !report.delivered.is_empty() {
            let mut rows: Vec<Alert> = lake.rows_by_key("alert_id", &report.delivered).await?;
            for row in &mut rows {
                row.published = true;
            }
            let ids: Vec<String> = rows.iter().map(|r| r.alert_id.clone()).collect();
            lake.replace_by_key("alert_id", &ids, &rows, &[]).await?;
        }
        let still = match self.publisher.outbox() {
            Some(outbox) => outbox
                .pending()
                .await
                .map_err(|e| publish_error(lake, e))?
                .len(),
            None => 0,
        };
        Ok((report.delivered.len(), still))
    }

    /// Runs the rules over a batch's events, publishes new alerts, and returns their rows.
    pub async fn process(
        &mut self,
        lake: &Lake,
        events: &mut [&(dyn EventView + Sync)],
        detected_at: Timestamp,
    ) -> Result<(Vec<Alert>, AlertCounts)> {
        events.sort_by_key(|e| e.time());
        let mut notices: Vec<AlertNotice> = Vec::new();
        for event in events.iter() {
            notices.extend(self.detector.detect(*event, detected_at));
        }
        let mut counts = AlertCounts {
            raised: notices.len(),
            ..AlertCounts::default()
        };
        let ids: Vec<String> = notices.iter().map(|n| n.alert_id.clone()).collect();
        let stored: HashSet<String> = lake
            .rows_by_key::<Alert>("alert_id", &ids)
            .await?
            .into_iter()
            .map(|a| a.alert_id)
            .collect();
        let mut seen = HashSet::new();
        notices.retain(|n| !stored.contains(&n.alert_id) && seen.insert(n.alert_id.clone()));
        let report = self
            .publisher
            .publish(&notices)
            .await
            .map_err(|e| publish_error(lake, e))?;
        counts.delivered = report.delivered.len();
        counts.kept = report.kept.len();
        let delivered: HashSet<&String> = report.delivered.iter().collect();
        let rows = notices
            .iter()
            .map(|n| n.to_row(delivered.contains(&n.alert_id)))
            .collect();
        Ok((rows, counts))
    }

    /// Saves the suppression and threshold state beside the lake.
    pub async fn save_state(&mut self, lake: &Lake) -> Result<()> {
        let bytes = self.detector.state().to_json();
        self.state
            .store
            .put(&self.state.path, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| state_error(lake, e))
    }
}

fn state_error(lake: &Lake, e: impl std::error::Error + Send + Sync + 'static) -> IngestError {
    IngestError::Alerting {
        location: format!("{}/_auditq/rule-state.json", lake.location()),
        source: Box::new(e),
    }
}

fn publish_error(lake: &Lake, e: auditq_rules::PublishError) -> IngestError {
    IngestError::Alerting {
        location: lake.location().to_string(),
        source: Box::new(e),
    }
}
