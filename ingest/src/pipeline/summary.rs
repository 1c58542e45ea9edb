//! What an ingest did, counted per batch and added up across batches.

use std::collections::BTreeMap;

use auditq_model::{Table, Timestamp};

use crate::alerting::AlertCounts;

/// Rows read and added for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCount {
    /// Rows produced by the input.
    pub read: usize,
    /// Rows new to the lake (the rest were already stored).
    pub added: usize,
    /// Stored rows changed (sessions, and stream commands revised by a later read).
    pub updated: usize,
}

/// Where a batch's time went, by stage (summed over batches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Loading the stored rows the batch needs.
    pub load: std::time::Duration,
    /// Deciding (pure).
    pub decide: std::time::Duration,
    /// Rules, the shared rule state, publishing.
    pub alerts: std::time::Duration,
    /// Committing every table.
    pub write: std::time::Duration,
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Objects read.
    pub objects: usize,
    /// Objects skipped (not a known log file kind in a directory walk).
    pub skipped: usize,
    /// Per table.
    pub tables: BTreeMap<Table, TableCount>,
    /// Rejected records per reason (reasons cut at the first colon, so they group).
    pub reject_reasons: BTreeMap<String, usize>,
    /// Alerts raised, delivered and kept in the outbox (when rules are configured).
    pub alerts: AlertCounts,
    /// The time of the newest command or CloudTrail record read (how far behind an ingest is).
    pub newest_event: Option<Timestamp>,
    /// Secrets replaced by tokens before storing (see [`crate::redact`]).
    pub redactions: usize,
    /// Where the time went.
    pub stages: StageTimes,
}

impl IngestSummary {
    /// Records rejected in this ingest (stored or not).
    pub fn rejected(&self) -> usize {
        self.reject_reasons.values().sum()
    }

    /// Adds another ingest's counts to these.
    pub fn add(&mut self, other: IngestSummary) {
        self.objects += other.objects;
        self.skipped += other.skipped;
        for (table, count) in other.tables {
            let mine = self.tables.entry(table).or_default();
            mine.read += count.read;
            mine.added += count.added;
            mine.updated += count.updated;
        }
        for (reason, n) in other.reject_reasons {
            *self.reject_reasons.entry(reason).or_default() += n;
        }
        self.alerts.raised += other.alerts.raised;
        self.alerts.delivered += other.alerts.delivered;
        self.alerts.kept += other.alerts.kept;
        self.newest_event = self.newest_event.max(other.newest_event);
        self.redactions += other.redactions;
        self.stages.load += other.stages.load;
        self.stages.decide += other.stages.decide;
        self.stages.alerts += other.stages.alerts;
        self.stages.write += other.stages.write;
    }
}
