//! Writing: one commit per table per batch, appending rows and, in the same commit, replacing
//! the stored rows of some keys (a session whose row changed, a command revised).
//!
//! Files are written with deltalake's Parquet writer and committed with its commit API; no
//! query engine is involved. Each file is sorted by the table's time column
//! ([`super::cluster_column`]) and carries bloom filters on its key columns
//! ([`bloom_columns`]), which is what lets [`super::Filter`] lookups skip what they do not need.
//! A replacement rewrites only the files that hold one of its keys (copy on write).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{
    SortColumn, cast, concat_batches, filter_record_batch, lexsort_to_indices, not,
    take_record_batch,
};
use auditq_model::{Row, Table};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Metadata, MetadataExt, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, TableProperty, ensure_table_uri};

use super::scan::{Filter, matching};
use super::{Lake, cluster_column};
use crate::error::{IngestError, Result};

/// Stored rows a commit takes out as it adds the new ones.
#[derive(Debug, Clone)]
pub struct Replace {
    /// The key column.
    pub column: &'static str,
    /// Stored rows whose key is one of these are removed.
    pub keys: BTreeSet<String>,
    /// Where such rows can be (partitions, time ranges): narrows the files looked at.
    pub within: Filter,
}

impl Replace {
    /// Replaces the rows stored under `keys` of `column`, wherever they are.
    pub fn keys(column: &'static str, keys: impl IntoIterator<Item = String>) -> Self {
        Self {
            column,
            keys: keys.into_iter().collect(),
            within: Filter::all(),
        }
    }

    /// Only looks for them where `within` selects.
    pub fn within(mut self, within: Filter) -> Self {
        self.within = within;
        self
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// The table's version after it (`None`: nothing was committed).
    pub version: Option<u64>,
    /// Rows added.
    pub added: usize,
    /// Stored rows removed by the replacement.
    pub removed: usize,
    /// Files rewritten by the replacement.
    pub rewritten: usize,
}

/// Rows per row group: small enough that statistics and bloom filters skip most of a large
/// file, large enough to scan fast.
pub(crate) const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows per data page (at most).
const PAGE_ROWS: usize = 4096;

/// The columns each table's files carry bloom filters on, with the most distinct values a row
/// group is expected to hold in each (`None`: as many as it has rows): the keys batches look
/// rows up by, and `user` and `target`, which audit questions filter on (DataFusion skips row
/// groups by them too).
pub fn bloom_columns(table: Table) -> &'static [(&'static str, Option<u64>)] {
    match table {
        Table::Commands => &[
            ("event_id", None),
            ("session_id", None),
            ("target", Some(4096)),
            ("user", Some(4096)),
        ],
        Table::Sessions => &[
            ("session_id", None),
            ("target", Some(4096)),
            ("user", Some(4096)),
            ("logged", Some(16)),
        ],
        Table::Alerts => &[("alert_id", None), ("event_id", None)],
        Table::Positions => &[("source", None)],
        Table::HostEvents => &[
            ("event_id", None),
            ("target", Some(4096)),
            ("user", Some(4096)),
        ],
        Table::Cloudtrail => &[("event_id", None), ("user", Some(4096))],
        Table::Rejects => &[("event_id", None)],
        Table::Names => &[("event_id", None), ("key", Some(4096))],
        Table::AccessLog => &[("event_id", None)],
    }
}

/// How files of `table` holding about `rows` rows are written.
pub(crate) fn writer_properties(table: Table, rows: usize, group: usize) -> WriterProperties {
    // Filters sized for what a row group will hold, then folded down to what it holds: 1% false
    // positives costs about 1.2 bytes per distinct value.
    let rows = rows.clamp(1, group) as u64;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(group))
        // Pages of a few thousand rows: with the page index, a lookup near a batch's times
        // reads a page or two of a row group, not all of it.
        .set_data_page_row_count_limit(PAGE_ROWS);
    // Ids and times are (nearly) unique: a dictionary of them is a page as large as the data,
    // read whole whenever one value of its column chunk is.
    for column in [
        table.id_column(),
        "time",
        "started_at",
        "ended_at",
        "detected_at",
        "ingested_at",
    ] {
        if table.schema().field_with_name(column).is_ok() {
            builder = builder.set_column_dictionary_enabled(column.into(), false);
        }
    }
    for (column, distinct) in bloom_columns(table) {
        let ndv = distinct.map_or(rows, |d| d.min(rows));
        let path = deltalake::parquet::schema::types::ColumnPath::from(*column);
        // Session ids are looked up without a time (a session may last days), in every day's
        // file: one in a thousand row groups answers wrongly instead of one in a hundred.
        let fpp = if *column == "session_id" { 0.001 } else { 0.01 };
        builder = builder
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_max_ndv(path.clone(), ndv)
            .set_column_bloom_filter_fpp(path, fpp);
    }
    builder.build()
}

impl Lake {
    /// Appends rows (no lookup: the caller decided they are new).
    pub async fn append<R: Row>(&self, rows: &[R]) -> Result<Committed> {
        self.commit(rows, None, &[]).await
    }

    /// Appends `rows` and removes the stored rows `replace` names, in one commit that also
    /// records the source positions `txns` (Delta application transactions). Nothing is
    /// committed when there is nothing to add or remove.
    pub async fn commit<R: Row>(
        &self,
        rows: &[R],
        replace: Option<&Replace>,
        txns: &[Transaction],
    ) -> Result<Committed> {
        let table = R::TABLE;
        let new = R::to_batch(rows).map_err(|source| IngestError::Arrow { table, source })?;
        self.commit_batch(table, new, replace, txns).await
    }

    pub(crate) async fn commit_batch(
        &self,
        table: Table,
        new: RecordBatch,
        replace: Option<&Replace>,
        txns: &[Transaction],
    ) -> Result<Committed> {
        let started = std::time::Instant::now();
        let mut delta = self.open(table).await?;
        let before = delta.version();
        if before.is_none() && new.num_rows() == 0 {
            return Ok(Committed::default());
        }

        let mut removes = Vec::new();
        let mut kept = Vec::new();
        let mut removed = 0;
        if let Some(replace) = replace.filter(|r| !r.keys.is_empty() && before.is_some()) {
            let keys = Filter::all().any_of(replace.column, replace.keys.iter().cloned());
            let within = replace
                .within
                .clone()
                .any_of(replace.column, replace.keys.iter().cloned());
            for candidate in self.candidates(table, &delta, &within).await? {
                let groups: Vec<usize> =
                    (0..candidate.index.metadata.metadata().num_row_groups()).collect();
                let batches = self
                    .read(table, &delta, &candidate, &groups, None, &Filter::all())
                    .await?;
                let mut hits = 0;
                let mut rest = Vec::new();
                for batch in batches {
                    let hit = matching(&batch, &keys, table)?;
                    hits += hit.true_count();
                    let others =
                        not(&hit).map_err(|source| IngestError::Arrow { table, source })?;
                    rest.push(
                        filter_record_batch(&batch, &others)
                            .map_err(|source| IngestError::Arrow { table, source })?,
                    );
                }
                if hits > 0 {
                    removed += hits;
                    removes.push(Action::Remove(candidate.remove.clone()));
                    kept.extend(rest);
                }
            }
        }
        if new.num_rows() == 0 && removes.is_empty() {
            return Ok(Committed {
                version: before,
                ..Committed::default()
            });
        }

        let schema = table.schema();
        let mut parts = Vec::with_capacity(kept.len() + 1);
        for batch in kept {
            parts.push(conform(&batch, table)?);
        }
        parts.push(conform(&new, table)?);
        let added = new.num_rows();
        // Only the sorted copy lives on while it is written: the batch as built and the
        // parts it was put together from go now.
        drop(new);
        let all = concat_batches(&schema, &parts)
            .map_err(|source| IngestError::Arrow { table, source })?;
        drop(parts);
        let all = sorted(all, table)?;
        let rows = all.num_rows();

        let mut actions = Vec::new();
        // A table an earlier auditq wrote lacks the columns added since: this commit adds them
        // to its schema (nullable, so the files already written read them as null).
        let evolved = match before {
            Some(_) => self.evolved_metadata(table, &delta)?,
            None => None,
        };
        if rows > 0 {
            let writer = match before {
                Some(_) if evolved.is_none() => RecordBatchWriter::for_table(&delta),
                _ => RecordBatchWriter::try_new(
                    ensure_table_uri(self.table_location(table))
                        .map_err(|e| self.lake_error(table, e))?,
                    schema.clone(),
                    Some(vec![table.partition_column().to_string()]),
                    Some(self.storage_options.clone()),
                ),
            };
            let mut writer = writer
                .map_err(|e| self.lake_error(table, e))?
                .with_writer_properties(writer_properties(table, rows, self.row_group_rows));
            writer
                .write(all)
                .await
                .map_err(|e| self.lake_error(table, e))?;
            let adds = writer
                .flush()
                .await
                .map_err(|e| self.lake_error(table, e))?;
            actions.extend(adds.into_iter().map(Action::Add));
        }
        if before.is_none() {
            // The table's first commit holds its schema and its first rows.
            match self.create(table, actions.clone(), txns).await {
                Ok(created) => {
                    return Ok(Committed {
                        version: created.version(),
                        added,
                        removed: 0,
                        rewritten: 0,
                    });
                }
                // Another writer created it meanwhile: append to theirs.
                Err(e) => {
                    delta = self.open(table).await?;
                    if delta.version().is_none() {
                        return Err(e);
                    }
                }
            }
        }
        let before = delta.version();
        let rewritten = removes.len();
        actions.extend(removes);
        if let Some(metadata) = evolved {
            tracing::info!(%table, "adding the columns this version of auditq writes to the table's schema");
            actions.push(Action::Metadata(metadata));
        }
        let operation = DeltaOperation::Write {
            mode: if rewritten > 0 {
                SaveMode::Overwrite
            } else {
                SaveMode::Append
            },
            partition_by: Some(vec![table.partition_column().to_string()]),
            predicate: replace.map(|r| format!("{} IN ({} keys)", r.column, r.keys.len())),
        };
        let commit = CommitBuilder::from(batch_commit(txns))
            .with_actions(actions)
            .build(
                Some(delta.snapshot().map_err(|e| self.lake_error(table, e))?),
                delta.log_store(),
                operation,
            )
            .await
            .map_err(|e| self.lake_error(table, e))?;
        let version = commit.version();
        let committed = started.elapsed();
        delta.state = Some(commit.snapshot());
        self.remember(table, &delta);
        self.record_digests(table, before, Some(version)).await?;
        tracing::debug!(
            %table,
            version,
            rows,
            files_rewritten = rewritten,
            committed_ms = committed.as_millis() as u64,
            with_digest_ms = started.elapsed().as_millis() as u64,
            "committed"
        );
        Ok(Committed {
            version: Some(version),
            added,
            removed,
            rewritten,
        })
    }

    /// The table's metadata with auditq's schema, when the stored schema lacks some of its
    /// columns (a table an earlier version wrote); `None` when nothing is missing.
    fn evolved_metadata(&self, table: Table, delta: &DeltaTable) -> Result<Option<Metadata>> {
        let snapshot = delta.snapshot().map_err(|e| self.lake_error(table, e))?;
        let stored = snapshot.schema();
        let wanted: StructType = table
            .schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| self.lake_error(table, e))?;
        if wanted.fields().all(|f| stored.field(f.name()).is_some()) {
            return Ok(None);
        }
        snapshot
            .metadata()
            .clone()
            .with_schema(&wanted)
            .map(Some)
            .map_err(|e| self.lake_error(table, e))
    }

    /// Creates a table with `actions` (its first files) in its first commit. Fails if another
    /// writer created it first.
    async fn create(
        &self,
        table: Table,
        actions: Vec<Action>,
        txns: &[Transaction],
    ) -> Result<DeltaTable> {
        let url =
            ensure_table_uri(self.table_location(table)).map_err(|e| self.lake_error(table, e))?;
        let schema: StructType = table
            .schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| self.lake_error(table, e))?;
        let delta = CreateBuilder::new()
            .with_location(url.to_string())
            .with_storage_options(self.storage_options.clone())
            .with_columns(schema.fields().cloned())
            .with_partition_columns([table.partition_column()])
            .with_table_name(table.name())
            .with_comment(table.description())
            // A checkpoint every 10 commits (Delta's default is 100) keeps opening a table to one
            // checkpoint and at most 9 commit files.
            .with_configuration_property(TableProperty::CheckpointInterval, Some("10"))
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_actions(actions)
            // Version 0 or nothing: deltalake would otherwise retry a create that lost to
            // another writer's at the next version, as a second CREATE TABLE (a new table id and
            // metadata) that fails every commit read before it ("Metadata changed").
            .with_commit_properties(batch_commit(txns).with_max_retries(0))
            .await
            .map_err(|e| self.lake_error(table, e))?;
        self.remember(table, &delta);
        self.record_digests(table, None, delta.version()).await?;
        Ok(delta)
    }
}

/// How a batch's commit is made: with its source positions, and without looking for expired log
/// files (Delta does that after every commit by default, listing the whole `_delta_log` each
/// time, a cost that grows with every commit; compaction does it instead).
fn batch_commit(txns: &[Transaction]) -> CommitProperties {
    CommitProperties::default()
        .with_application_transactions(txns.to_vec())
        .with_cleanup_expired_logs(Some(false))
}

/// A batch with exactly the table's columns, in its order and types.
pub(super) fn conform(batch: &RecordBatch, table: Table) -> Result<RecordBatch> {
    let schema = table.schema();
    if batch.schema().as_ref() == schema.as_ref() {
        return Ok(batch.clone());
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => cast(column, field.data_type())
                .map_err(|source| IngestError::Arrow { table, source })?,
            None => arrow::array::new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema, columns).map_err(|source| IngestError::Arrow { table, source })
}

/// The rows ordered by partition, then by the table's time column.
fn sorted(batch: RecordBatch, table: Table) -> Result<RecordBatch> {
    if batch.num_rows() < 2 {
        return Ok(batch);
    }
    let keys: Vec<SortColumn> = [table.partition_column(), cluster_column(table)]
        .iter()
        .filter_map(|name| batch.column_by_name(name))
        .map(|values| SortColumn {
            values: Arc::clone(values),
            options: None,
        })
        .collect();
    let order =
        lexsort_to_indices(&keys, None).map_err(|source| IngestError::Arrow { table, source })?;
    take_record_batch(&batch, &order).map_err(|source| IngestError::Arrow { table, source })
}
