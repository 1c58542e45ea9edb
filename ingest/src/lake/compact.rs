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
        let mut done = self.merge_small_files().await?;
        for (table, vacuumed) in self.vacuum(retention).await? {
            if let Some(entry) = done.iter_mut().find(|c| c.table == table) {
                entry.files_vacuumed = vacuumed;
            }
        }
        Ok(done)
    }

    /// Merges the small files of every stored table (see the module): cheap, as it rewrites
    /// only files under 128 MiB (`TARGET_FILE_BYTES`), so it can run every few minutes and keep
    /// the number of files (which every commit's bookkeeping grows with) small.
    pub async fn merge_small_files(&self) -> Result<Vec<Compaction>> {
        let mut done = Vec::new();
        for table in Table::ALL {
            if self.open(table).await?.version().is_none() {
                continue;
            }
            // One table at a time holds batches back, so a follower waits for one table's merge
            // at most, not the whole lake's.
            let _alone = self.batches.write().await;
            let before = self.open(table).await?.version();
            let (removed, added) = self.merge_table(table).await?;
            let after = self.open(table).await?.version();
            self.record_digests(table, before, after).await?;
            done.push(Compaction {
                table: table.name(),
                files_removed: removed,
                files_added: added,
                files_vacuumed: 0,
            });
        }
        Ok(done)
    }

    /// [`Lake::vacuum`] if the last one (recorded in `_auditq/vacuumed-at` beside the tables) is
    /// older than `every`, or none is recorded; `None` when it was not due. So a compaction that
    /// runs every few minutes vacuums once a day.
    pub async fn vacuum_if_due(
        &self,
        retention: Duration,
        every: Duration,
    ) -> Result<Option<Vec<(&'static str, usize)>>> {
        use object_store::ObjectStoreExt;
        let (store, root) = self.object_store()?;
        let marker = root.join("_auditq").join("vacuumed-at");
        let error = |e: object_store::Error| crate::error::IngestError::Object {
            location: format!("{}/_auditq/vacuumed-at", self.location()),
            source: Box::new(e),
        };
        let last = match store.get(&marker).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(error)?;
                crate::time::parse_rfc3339(String::from_utf8_lossy(&bytes).trim())
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(error(e)),
        };
        let now = chrono::Utc::now();
        let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
        if last.is_some_and(|last| now - last < every) {
            return Ok(None);
        }
        let done = self.vacuum(retention).await?;
        store
            .put(&marker, now.to_rfc3339().into_bytes().into())
            .await
            .map_err(error)?;
        Ok(Some(done))
    }

    /// VACUUM of every stored table: deletes the files no version younger than `retention`
    /// reads. It lists every file of each table, so it belongs in a daily job, not after every
    /// merge. Returns how many files each table lost. It needs no lock: a file a version within
    /// the retention reads is never deleted.
    pub async fn vacuum(&self, retention: Duration) -> Result<Vec<(&'static str, usize)>> {
        let retention = chrono::Duration::from_std(retention)
            .map_err(|e| self.lake_error(Table::Commands, e))?;
        let mut done = Vec::new();
        for table in Table::ALL {
            let delta = self.open(table).await?;
            if delta.version().is_none() {
                continue;
            }
            let before = delta.version();
            let (delta, vacuumed) = delta
                .vacuum()
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .await
                .map_err(|e| self.lake_error(table, e))?;
            self.remember(table, &delta);
            self.record_digests(table, before, delta.version()).await?;
            done.push((table.name(), vacuumed.files_deleted.len()));
        }
        Ok(done)
    }

    /// Merges each day's small files into one commit; returns how many files went and came.
    async fn merge_table(&self, table: Table) -> Result<(u64, u64)> {
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
        // Log files past the table's log retention (30 days) are deleted here, not after every
        // batch's commit.
        let commit =
            CommitBuilder::from(CommitProperties::default().with_cleanup_expired_logs(Some(true)))
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
