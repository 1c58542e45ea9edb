//! The alerting stage of the pipeline: rules, the state every writer shares, and where alerts
//! go.
//!
//! Order within a batch, and why:
//! 1. rules run over the batch's new events in time order (windows are in event time), from
//!    the newest saved rule state;
//! 2. the new state is saved with a conditional write ([`RuleStateStore`]): if another writer
//!    (a second Lambda container, another ECS task) saved one since, the batch is evaluated
//!    again from theirs, so two writers never both let a suppressed alert through;
//! 3. alerts already stored are dropped, the rest are published (or kept in the outbox);
//! 4. the alert rows, then the other tables, are committed with the batch's source positions.
//!
//! The state is saved before the alerts are published and the rows committed, so a crash in
//! between replays the batch against a state that already holds its decisions. The state
//! remembers which alert each window let through and which events each threshold counted, so the
//! replay lets the same alerts through again (same ids: delivery is at least once, and
//! subscribers may deduplicate by id) and counts nothing twice.

use std::sync::Arc;
use std::time::Duration;

use auditq_model::Timestamp;
use auditq_rules::{
    AlertNotice, AlertOutbox, Detector, Engine, EventView, PublishReport, Publisher, RuleState,
};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

use crate::error::{IngestError, Result};

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

/// Rules, the shared rule state, and the publisher.
#[derive(Debug)]
pub struct Alerting {
    engine: Arc<Engine>,
    publisher: Publisher,
    state: RuleStateStore,
}

/// How many times a batch is evaluated again when other writers keep saving the state first.
const STATE_ATTEMPTS: usize = 50;

impl Alerting {
    /// The stage: `engine`'s rules, `publisher`'s sinks and outbox, the state in `state`.
    pub fn new(engine: Arc<Engine>, publisher: Publisher, state: RuleStateStore) -> Self {
        Self {
            engine,
            publisher,
            state,
        }
    }

    /// The outbox, if alerts are kept somewhere.
    pub fn outbox(&self) -> Option<&AlertOutbox> {
        self.publisher.outbox()
    }

    /// Runs the rules over `events` (sorted here by time) from the newest shared state, and
    /// saves the state those decisions leave. Returns the alerts the rules let through.
    pub async fn detect(
        &self,
        events: &mut [&(dyn EventView + Sync)],
        detected_at: Timestamp,
    ) -> Result<Vec<AlertNotice>> {
        events.sort_by_key(|e| e.time());
        let mut pause = Duration::from_millis(5);
        for _ in 0..STATE_ATTEMPTS {
            let (version, saved) = self.state.latest().await?;
            let mut detector = Detector::new(self.engine.clone(), saved.clone());
            let mut notices = Vec::new();
            for event in events.iter() {
                notices.extend(detector.detect(*event, detected_at));
            }
            let state = detector.state();
            if *state == saved {
                return Ok(notices);
            }
            if self.state.save(version + 1, state).await? {
                return Ok(notices);
            }
            // Another writer saved first: decide again from theirs.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        Err(IngestError::Alerting {
            location: self.state.location.clone(),
            source: format!(
                "the rule state was saved by other writers {STATE_ATTEMPTS} times in a row"
            )
            .into(),
        })
    }

    /// Publishes alerts (what cannot be delivered goes to the outbox).
    pub async fn publish(&self, notices: &[AlertNotice]) -> Result<PublishReport> {
        self.publisher
            .publish(notices)
            .await
            .map_err(|e| self.publish_error(e))
    }

    /// Delivers what earlier runs kept in the outbox.
    pub async fn flush_outbox(&self) -> Result<PublishReport> {
        self.publisher
            .flush_outbox()
            .await
            .map_err(|e| self.publish_error(e))
    }

    /// How many alerts the outbox holds.
    pub async fn kept(&self) -> Result<usize> {
        match self.publisher.outbox() {
            Some(outbox) => Ok(outbox
                .pending()
                .await
                .map_err(|e| self.publish_error(e))?
                .len()),
            None => Ok(0),
        }
    }

    fn publish_error(&self, e: auditq_rules::PublishError) -> IngestError {
        IngestError::Alerting {
            location: self
                .publisher
                .outbox()
                .map_or_else(|| "alert sinks".to_string(), |o| o.location().to_string()),
            source: Box::new(e),
        }
    }
}

/// The rule state every writer of a lake shares: versioned objects under
/// `_auditq/rule-state/`, each written only if that version does not exist yet (S3
/// `If-None-Match`, an exclusive create on a file system). The newest wins; a writer that finds
/// its version taken reads the newer one and decides again. Old versions are deleted, a few kept.
#[derive(Debug, Clone)]
pub struct RuleStateStore {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    legacy: StorePath,
    location: String,
}

/// Versions kept behind the newest (for a writer still reading one).
const STATE_VERSIONS_KEPT: u64 = 8;

impl RuleStateStore {
    /// The store under `root` of `store` (a lake's root); `location` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, root: &StorePath, location: &str) -> Self {
        Self {
            store,
            prefix: root.clone().join("_auditq").join("rule-state"),
            legacy: root.clone().join("_auditq").join("rule-state.json"),
            location: format!("{}/_auditq/rule-state", location.trim_end_matches('/')),
        }
    }

    fn error(&self, e: impl std::error::Error + Send + Sync + 'static) -> IngestError {
        IngestError::Alerting {
            location: self.location.clone(),
            source: Box::new(e),
        }
    }

    fn path(&self, version: u64) -> StorePath {
        self.prefix.clone().join(format!("{version:020}.json"))
    }

    /// The newest state and its version (0: none saved yet; the single state object of
    /// earlier releases is read as version 0).
    pub async fn latest(&self) -> Result<(u64, RuleState)> {
        let versions: Vec<u64> = self
            .store
            .list(Some(&self.prefix))
            .map_ok(|meta| {
                meta.location
                    .filename()
                    .and_then(|name| name.strip_suffix(".json"))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| self.error(e))?
            .into_iter()
            .flatten()
            .collect();
        let (version, path) = match versions.iter().max() {
            Some(&v) => (v, self.path(v)),
            None => (0, self.legacy.clone()),
        };
        match self.store.get(&path).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(|e| self.error(e))?;
                let state = RuleState::from_json(&bytes)
                    .map_err(|e| self.error(std::io::Error::other(format!("{path}: {e}"))))?;
                Ok((version, state))
            }
            Err(object_store::Error::NotFound { .. }) if version == 0 => {
                Ok((0, RuleState::default()))
            }
            // Deleted behind us by a writer pruning old versions: a newer one exists.
            Err(object_store::Error::NotFound { .. }) => Box::pin(self.latest()).await,
            Err(e) => Err(self.error(e)),
        }
    }

    /// Saves `state` as `version` unless another writer saved that version first (`false`).
    pub async fn save(&self, version: u64, state: &RuleState) -> Result<bool> {
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&self.path(version), state.to_json().into(), create)
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
            Err(e) => return Err(self.error(e)),
        }
        if version > STATE_VERSIONS_KEPT {
            // Best effort: a leftover old version costs a list entry, nothing else.
            let _ = self
                .store
                .delete(&self.path(version - STATE_VERSIONS_KEPT - 1))
                .await;
        }
        Ok(true)
    }
}
