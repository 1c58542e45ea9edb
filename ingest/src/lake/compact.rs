//! Compaction: the small files real-time ingest leaves (one per table per batch) become large
//! ones, and VACUUM deletes what no recent version reads.
//!
//! Small files of one day are merged in the order of their earliest time, and each was written
//! sorted by time, so the merged file's row groups cover short spans of time: a lookup near a
//! batch's times, or an audit question over an afternoon, reads a few row groups of it. Files
//! already as large as [`TARGET_FILE_BYTES`] are left alone, so a compaction costs the new small
//! files, not the day.

use std::collections::BTreeMap;
use std::time::Duration;

use auditq_model::Table;
use chrono::NaiveDate;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::Lake;
use super::scan::{Candidate, Filter};
use super::write::writer_properties;
use crate::error::Result;

/// Files at least this large are not merged again.
pub const TARGET_FILE_BYTES: u64 = 128 << 20;

/// The column each table's files are sorted by: the time of the row.
pub fn cluster_column(table: Table) -> &'static str {
    match table {
        Table::Sessions => "started_at",
        _ => "time",
    }
}

/// What a compaction did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// The table.
    pub table: &'static str,
    /// Small files merged.
    pub files_removed: u64,
    /// Larger files written in their place.
    pub files_added: u64,
    /// Files VACUUM deleted (no version within the retention window reads them).
    pub files_vacuumed: usize,
}

impl Lake {
    /// Compacts every stored table: the small files of each day are merged into large ones
    /// (see the module), then VACUUM deletes files that no version younger than `retention`
    /// reads. Readers of a version older than `retention` may then find files gone, so
    /// `retention` must exceed the longest query and time-travel anyone needs (Delta's default,
    /// and ours, is 7 days). Tables never written are skipped.
    pub async fn compact(&self, retention: Duration) -> Result<Vec<Compaction>> {
        let retention = chrono::Duration::from_std(retention)
            .map_err(|e| self.lake_error(Table::Commands, e))?;
        let mut done = Vec::new();
        for table in Table::ALL {
            if self.open(table).await?.version().is_none() {
                continue;
            }
            // One table at a time holds batches back, so a follower waits for one table's merge
            // at most, not the whole lake's. VACUUM only deletes files no version within the
            // retention reads, so it needs no lock.
            let (before, removed, added) = {
                let _alone = self.batches.write().await;
                let delta = self.open(table).await?;
                let before = delta.version();
                let (removed, added) = self.merge_small_files(table).await?;
                (before, removed, added)
            };
            let delta = self.open(table).await?;
            let (delta, vacuumed) = delta
                .vacuum()
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .await
                .map_err(|e| self.lake_error(table, e))?;
            self.remember(table, &delta);
            self.record_digests(table, before, delta.version()).await?;
            done.push(Compaction {
                table: table.name(),
                files_removed: removed,
                files_added: added,
                files_vacuumed: vacuumed.files_deleted.len(),
            });
        }
        Ok(done)
    }

    /// Merges each day's small files into one commit; returns how many files went and came.
    async fn merge_small_files(&self, table: Table) -> Result<(u64, u64)> {
        let mut delta = self.open(table).await?;
        let mut days: BTreeMap<Option<NaiveDate>, Vec<Candidate>> = BTreeMap::new();
        for file in self.listed(table, &delta, &Filter::all())? {
            if file.size < TARGET_FILE_BYTES {
                days.entry(file.date).or_default().push(file);
            }
        }
        days.retain(|_, files| files.len() > 1);
        if days.is_empty() {
            return Ok((0, 0));
        }
        let mut actions = Vec::new();
        let mut removed = 0;
        for files in days.values_mut() {
            files.sort_by(|a, b| {
                let start = |c: &Candidate| c.bounds.map(|(min, _)| min);
                start(a).cmp(&start(b)).then(a.path.cmp(&b.path))
            });
            let mut rows = 0;
            for file in files.iter_mut() {
                file.index = self.index(table, &delta, file).await?;
                rows += usize::try_from(file.index.metadata.metadata().file_metadata().num_rows())
                    .unwrap_or(0);
            }
            let mut writer = RecordBatchWriter::for_table(&delta)
                .map_err(|e| self.lake_error(table, e))?
                .with_writer_properties(writer_properties(table, rows, self.row_group_rows))
                .with_target_file_size(TARGET_FILE_BYTES);
            for file in files.iter() {
                let groups: Vec<usize> =
                    (0..file.index.metadata.metadata().num_row_groups()).collect();
                for batch in self
                    .read(table, &delta, file, &groups, None, &Filter::all())
                    .await?
                {
                    writer
                        .write(super::write::conform(&batch, table)?)
                        .await
                        .map_err(|e| self.lake_error(table, e))?;
                }
                actions.push(Action::Remove(file.remove.clone()));
                removed += 1;
            }
            let adds = writer
                .flush()
                .await
                .map_err(|e| self.lake_error(table, e))?;
            actions.extend(adds.into_iter().map(Action::Add));
        }
        let added = actions
            .iter()
            .filter(|a| matches!(a, Action::Add(_)))
            .count() as u64;
        let commit = CommitBuilder::from(CommitProperties::default())
            .with_actions(actions)
            .build(
                Some(delta.snapshot().map_err(|e| self.lake_error(table, e))?),
                delta.log_store(),
                DeltaOperation::Optimize {
                    predicate: None,
                    target_size: TARGET_FILE_BYTES as i64,
                },
            )
            .await
            .map_err(|e| self.lake_error(table, e))?;
        delta.state = Some(commit.snapshot());
        self.remember(table, &delta);
        Ok((removed, added))
    }
}
