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
    /// Rejected records per kind of reason ([`reason_kind`]: the reason without its values, so
    /// the rejects of one cause count on one line; the values are in the `rejects` rows).
    pub reject_reasons: BTreeMap<String, usize>,
    /// The first whole reason seen of each kind, as an example.
    pub reject_examples: BTreeMap<String, String>,
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
        for (kind, example) in other.reject_examples {
            self.reject_examples.entry(kind).or_insert(example);
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

/// A reject reason without its values, so that the rejects of one cause group: quoted values
/// become `"…"`, numbers `N`, and what follows the first colon outside quotes (a parser's
/// detail) goes. `bad eventTime "2024-01-01 00:00:00.000"` is `bad eventTime "…"`; `object of
/// 7340032 bytes exceeds the 5242880-byte cap` is `object of N bytes exceeds the N-byte cap`.
pub fn reason_kind(reason: &str) -> String {
    let mut kind = String::with_capacity(reason.len());
    let mut chars = reason.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '"' => {
                // To the closing quote, past escaped ones.
                let mut escaped = false;
                for inner in chars.by_ref() {
                    match inner {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
                kind.push_str("\"…\"");
            }
            '0'..='9' if !previous.is_some_and(char::is_alphanumeric) => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_digit() || *n == '.' || *n == ',')
                {
                    chars.next();
                }
                kind.push('N');
            }
            _ => kind.push(c),
        }
        previous = Some(c);
    }
    kind.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::reason_kind;

    #[test]
    fn reasons_of_one_cause_are_one_kind() {
        for (reason, kind) in [
            (
                r#"bad eventTime "2024-01-01 00:00:00.000""#,
                r#"bad eventTime "…""#,
            ),
            (
                r#"bad eventTime "2024-01-02 13:14:15.999""#,
                r#"bad eventTime "…""#,
            ),
            (
                r#"bad eventTime "a \"quoted\" : value""#,
                r#"bad eventTime "…""#,
            ),
            (
                "object of 7340032 bytes exceeds the 5242880-byte cap",
                "object of N bytes exceeds the N-byte cap",
            ),
            (
                "malformed JSON: expected value at line 1 column 5",
                "malformed JSON",
            ),
            ("missing eventTime", "missing eventTime"),
            ("not IPv4 or IPv6", "not IPv4 or IPv6"),
        ] {
            assert_eq!(reason_kind(reason), kind, "{reason}");
        }
    }
}
