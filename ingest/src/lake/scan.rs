//! Reading stored rows back: a [`Filter`] says which, and the cost is what survives pruning.
//!
//! A file is skipped by its `date` partition and by the Delta log's statistics of its time
//! column; a row group by its Parquet statistics and by the bloom filters of the key columns the
//! filter asks for; what is left is decoded and filtered row by row. A batch's lookups (its own
//! ids near its own times, the sessions it touches) therefore read the row groups that can hold
//! them, however full the partition is.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Date32Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use auditq_model::{Row, Table, Timestamp, date32};
use chrono::NaiveDate;
use deltalake::DeltaTable;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;

use super::Lake;
use super::files::{FileIndex, TimeBounds};
use crate::error::{IngestError, Result};

/// Which stored rows a read wants: every condition holds (an empty filter selects every row).
///
/// Conditions on key columns ([`Filter::any_of`]) are looked up in the files' bloom filters, and
/// time ranges ([`Filter::between`]) in the log's and the row groups' statistics, so a filter
/// that names both is what keeps a lookup's cost independent of the table's size.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    dates: Option<(NaiveDate, NaiveDate)>,
    times: Option<(&'static str, TimeRanges)>,
    any_of: Vec<(&'static str, Arc<HashSet<String>>)>,
    null: Vec<&'static str>,
}

impl Filter {
    /// Every row.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only the `date` partitions from `from` to `to` (inclusive).
    pub fn dates(mut self, from: NaiveDate, to: NaiveDate) -> Self {
        self.dates = Some(match self.dates {
            Some((a, b)) => (a.max(from), b.min(to)),
            None => (from, to),
        });
        self
    }

    /// Only rows whose time `column` lies in `from..=to`; several calls on one column select
    /// the union of their ranges.
    pub fn between(mut self, column: &'static str, from: Timestamp, to: Timestamp) -> Self {
        let range = (from.timestamp_micros(), to.timestamp_micros());
        match &mut self.times {
            Some((c, ranges)) if *c == column => ranges.add(range),
            _ => self.times = Some((column, TimeRanges::new(vec![range]))),
        }
        self
    }

    /// Only rows whose time `column` is within `slack` of one of `times`: the times are
    /// gathered into ranges (a gap over `slack` starts a new one), so a batch of recent events
    /// with a few late ones reads around each, not everything in between.
    pub fn near(
        mut self,
        column: &'static str,
        times: impl IntoIterator<Item = Timestamp>,
        slack: chrono::Duration,
    ) -> Self {
        let mut times: Vec<Timestamp> = times.into_iter().collect();
        times.sort();
        let mut ranges: Vec<(Timestamp, Timestamp)> = Vec::new();
        for t in times {
            match ranges.last_mut() {
                Some((_, to)) if t - *to <= slack => *to = t,
                _ => ranges.push((t, t)),
            }
        }
        self.times = Some((
            column,
            TimeRanges::new(
                ranges
                    .into_iter()
                    .map(|(a, b)| {
                        (
                            (a - slack).timestamp_micros(),
                            (b + slack).timestamp_micros(),
                        )
                    })
                    .collect(),
            ),
        ));
        self
    }

    /// Only rows whose string `column` is one of `values` (no value: no row).
    pub fn any_of<S: Into<String>>(
        mut self,
        column: &'static str,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let values: HashSet<String> = values.into_iter().map(Into::into).collect();
        self.any_of.push((column, Arc::new(values)));
        self
    }

    /// Only rows where `column` is null.
    pub fn is_null(mut self, column: &'static str) -> Self {
        self.null.push(column);
        self
    }

    /// Whether the filter can select nothing (a key condition with no value, an empty range).
    pub fn selects_nothing(&self) -> bool {
        self.any_of.iter().any(|(_, v)| v.is_empty())
            || self.dates.is_some_and(|(a, b)| a > b)
            || self.times.as_ref().is_some_and(|(_, r)| r.is_empty())
    }

    /// Whether any condition looks at rows (not only at partitions).
    fn has_conditions(&self) -> bool {
        self.times.is_some() || !self.any_of.is_empty() || !self.null.is_empty()
    }

    /// The filter's row conditions one by one, the cheapest to check first.
    fn split(&self) -> Vec<Filter> {
        let mut parts = Vec::new();
        if let Some(times) = &self.times {
            parts.push(Filter {
                times: Some(times.clone()),
                ..Filter::default()
            });
        }
        for column in &self.null {
            parts.push(Filter {
                null: vec![column],
                ..Filter::default()
            });
        }
        for any_of in &self.any_of {
            parts.push(Filter {
                any_of: vec![any_of.clone()],
                ..Filter::default()
            });
        }
        parts
    }

    /// The columns the conditions look at.
    fn columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.times
            .iter()
            .map(|(c, _)| *c)
            .chain(self.any_of.iter().map(|(c, _)| *c))
            .chain(self.null.iter().copied())
    }

    fn keeps_date(&self, date: Option<NaiveDate>) -> bool {
        match (self.dates, date) {
            (Some((from, to)), Some(date)) => date >= from && date <= to,
            _ => true,
        }
    }

    fn overlaps(&self, bounds: TimeBounds) -> bool {
        match (&self.times, bounds) {
            (Some((_, ranges)), Some((min, max))) => ranges.overlaps(min, max),
            _ => true,
        }
    }
}

/// Time ranges (microseconds, inclusive), sorted and merged, so that a batch of many scattered
/// times is looked up by binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TimeRanges(Vec<(i64, i64)>);

impl TimeRanges {
    fn new(mut ranges: Vec<(i64, i64)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for (from, to) in ranges {
            match merged.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        Self(merged)
    }

    fn add(&mut self, range: (i64, i64)) {
        let mut ranges = std::mem::take(&mut self.0);
        ranges.push(range);
        *self = Self::new(ranges);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any range meets `min..=max`.
    fn overlaps(&self, min: i64, max: i64) -> bool {
        let first = self.0.partition_point(|(_, to)| *to < min);
        self.0.get(first).is_some_and(|(from, _)| *from <= max)
    }
}

/// What reads have cost: files considered and opened, row groups read and their rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Data files in the partitions and time ranges read (before their footers are looked at).
    pub files: u64,
    /// Footers read from storage (the rest came from the cache).
    pub footers_read: u64,
    /// Bloom filters read from storage.
    pub blooms_read: u64,
    /// Row groups decoded.
    pub row_groups: u64,
    /// Rows in the row groups read: an upper bound of what is decoded, as only the pages near
    /// the filter's times are, and the columns not in the filter only for the rows it keeps.
    pub rows: u64,
}

impl std::ops::Sub for ScanStats {
    type Output = ScanStats;

    fn sub(self, before: ScanStats) -> ScanStats {
        ScanStats {
            files: self.files - before.files,
            footers_read: self.footers_read - before.footers_read,
            blooms_read: self.blooms_read - before.blooms_read,
            row_groups: self.row_groups - before.row_groups,
            rows: self.rows - before.rows,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ScanCounters {
    files: AtomicU64,
    footers_read: AtomicU64,
    blooms_read: AtomicU64,
    row_groups: AtomicU64,
    rows: AtomicU64,
}

impl ScanCounters {
    pub fn snapshot(&self) -> ScanStats {
        ScanStats {
            files: self.files.load(Ordering::Relaxed),
            footers_read: self.footers_read.load(Ordering::Relaxed),
            blooms_read: self.blooms_read.load(Ordering::Relaxed),
            row_groups: self.row_groups.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
        }
    }
}

/// A data file that may hold rows a filter selects.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Its path, relative to the table.
    pub path: object_store::path::Path,
    /// Its `date` partition.
    pub date: Option<NaiveDate>,
    /// The action that removes it from the table.
    pub remove: deltalake::kernel::Remove,
    /// Its footer and bloom filters.
    pub index: Arc<FileIndex>,
    /// The row groups that may hold selected rows.
    pub row_groups: Vec<usize>,
    /// Its size in bytes.
    pub size: u64,
    /// Minimum and maximum of the table's time column, when the log has them.
    pub bounds: TimeBounds,
}

/// How many files are looked at at once.
const CONCURRENT_FILES: usize = 16;

/// Days looked up at once by [`Lake::ids_near`].
const CONCURRENT_DAYS: usize = 4;

impl Lake {
    /// The stored rows of `R`'s table that `filter` selects.
    pub async fn rows<R: Row>(&self, filter: Filter) -> Result<Vec<R>> {
        let table = R::TABLE;
        let mut rows = Vec::new();
        for batch in self.select(table, &filter, None).await? {
            // Files an earlier version wrote lack the columns added since: read as null.
            let batch = super::write::conform(&batch, table)?;
            rows.extend(
                R::from_batch(&batch).map_err(|source| IngestError::Arrow { table, source })?,
            );
        }
        Ok(rows)
    }

    /// The ids of the stored rows `filter` selects.
    pub async fn ids(&self, table: Table, filter: Filter) -> Result<HashSet<String>> {
        let id = table.id_column();
        let mut ids = HashSet::new();
        for batch in self.select(table, &filter, Some(vec![id])).await? {
            let column = strings(batch.column(0), table)?;
            let column = column.as_string::<i32>();
            ids.extend(
                (0..column.len())
                    .filter(|&i| column.is_valid(i))
                    .map(|i| column.value(i).to_string()),
            );
        }
        Ok(ids)
    }

    /// The ids of the stored rows whose `key` column holds one of `keys`' values, each within
    /// `slack` of its own time (the table's time column): a duplicate carries its original's
    /// time. Keys are looked up a day at a time, so each file is checked for the keys of its own
    /// day only: a backfill's batch, whose records span weeks, costs its keys times the files of
    /// their day, not times every file of every day it touches.
    pub async fn ids_near(
        &self,
        table: Table,
        key: &'static str,
        keys: impl IntoIterator<Item = (String, Timestamp)>,
        slack: chrono::Duration,
    ) -> Result<HashSet<String>> {
        let mut days: BTreeMap<NaiveDate, Vec<(String, Timestamp)>> = BTreeMap::new();
        for (value, time) in keys {
            days.entry(time.date_naive())
                .or_default()
                .push((value, time));
        }
        let time = super::cluster_column(table);
        let lookups = days.into_values().map(|keys| {
            let filter = Filter::all()
                .near(time, keys.iter().map(|(_, t)| *t), slack)
                .any_of(key, keys.into_iter().map(|(value, _)| value));
            self.ids(table, filter)
        });
        let mut found = HashSet::new();
        let mut days = futures::stream::iter(lookups).buffer_unordered(CONCURRENT_DAYS);
        while let Some(ids) = days.try_next().await? {
            found.extend(ids);
        }
        Ok(found)
    }

    /// The selected rows, with the given columns (all of the table's, `date` included, when
    /// `None`).
    async fn select(
        &self,
        table: Table,
        filter: &Filter,
        columns: Option<Vec<&'static str>>,
    ) -> Result<Vec<RecordBatch>> {
        if filter.selects_nothing() {
            return Ok(Vec::new());
        }
        let delta = self.open(table).await?;
        if delta.version().is_none() {
            return Ok(Vec::new());
        }
        let candidates = self.candidates(table, &delta, filter).await?;
        let delta = &delta;
        let columns = columns.as_deref();
        let reads: Vec<BoxFuture<'_, Result<Vec<RecordBatch>>>> = candidates
            .iter()
            .map(|c| {
                async move {
                    let batches = self
                        .read(table, delta, c, &c.row_groups, columns, filter)
                        .await?;
                    let mut out = Vec::with_capacity(batches.len());
                    for batch in batches {
                        if batch.num_rows() > 0 {
                            out.push(project(&batch, columns, table)?);
                        }
                    }
                    Ok::<_, IngestError>(out)
                }
                .boxed()
            })
            .collect();
        let parts: Vec<Vec<RecordBatch>> = futures::stream::iter(reads)
            .buffer_unordered(CONCURRENT_FILES)
            .try_collect()
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// The files of a table in the partitions and time ranges `filter` selects, as the log
    /// describes them (no footer read yet).
    pub(crate) fn listed(
        &self,
        table: Table,
        delta: &DeltaTable,
        filter: &Filter,
    ) -> Result<Vec<Candidate>> {
        let snapshot = delta.snapshot().map_err(|e| self.lake_error(table, e))?;
        let time_column = filter
            .times
            .as_ref()
            .map(|(c, _)| *c)
            .unwrap_or(super::cluster_column(table));
        let placeholder = Arc::new(FileIndex::new(empty_metadata()?));
        let mut files = Vec::new();
        for view in snapshot.log_data().iter() {
            let date = view
                .partition_values_map()
                .get(table.partition_column())
                .cloned()
                .flatten()
                .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
            if !filter.keeps_date(date) {
                continue;
            }
            let path = view.object_store_path();
            let bounds = self
                .files
                .bounds(&format!("{table}/{path}"), time_column, || {
                    log_bounds(view.stats().as_deref(), time_column)
                });
            if !filter.overlaps(bounds) {
                continue;
            }
            files.push(Candidate {
                path,
                date,
                remove: view.remove_action(true),
                index: placeholder.clone(),
                row_groups: Vec::new(),
                size: u64::try_from(view.size()).unwrap_or(0),
                bounds,
            });
        }
        self.stats
            .files
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        Ok(files)
    }

    /// The files (with their row groups) of a table that may hold rows `filter` selects.
    pub(crate) async fn candidates(
        &self,
        table: Table,
        delta: &DeltaTable,
        filter: &Filter,
    ) -> Result<Vec<Candidate>> {
        let files = self.listed(table, delta, filter)?;
        let pruned: Vec<BoxFuture<'_, Result<Candidate>>> = files
            .into_iter()
            .map(|mut candidate| {
                async move {
                    candidate.index = self.index(table, delta, &candidate).await?;
                    candidate.row_groups =
                        self.row_groups(table, delta, &candidate, filter).await?;
                    Ok::<_, IngestError>(candidate)
                }
                .boxed()
            })
            .collect();
        let candidates: Vec<Candidate> = futures::stream::iter(pruned)
            .buffer_unordered(CONCURRENT_FILES)
            .try_collect()
            .await?;
        let mut candidates: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| !c.row_groups.is_empty())
            .collect();
        candidates.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(candidates)
    }

    /// A file's footer, from the cache or from storage.
    pub(crate) async fn index(
        &self,
        table: Table,
        delta: &DeltaTable,
        candidate: &Candidate,
    ) -> Result<Arc<FileIndex>> {
        let key = format!("{table}/{}", candidate.path);
        if let Some(index) = self.files.get(&key) {
            return Ok(index);
        }
        let mut reader = self.reader(delta, candidate);
        let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| self.file_error(table, candidate, e))?;
        // Read with the table's types, whatever writer wrote the file (string views, say).
        let coerced = coerce(metadata.schema(), table);
        let metadata = ArrowReaderMetadata::try_new(
            metadata.metadata().clone(),
            ArrowReaderOptions::new().with_schema(coerced),
        )
        .map_err(|e| self.file_error(table, candidate, e))?;
        self.stats.footers_read.fetch_add(1, Ordering::Relaxed);
        let bytes = metadata.metadata().memory_size();
        let index = Arc::new(FileIndex::new(metadata));
        self.files.insert(&key, index.clone(), bytes);
        Ok(index)
    }

    fn reader(&self, delta: &DeltaTable, candidate: &Candidate) -> StoreReader {
        StoreReader {
            store: delta.object_store(),
            path: candidate.path.clone(),
            size: candidate.size,
        }
    }

    fn file_error(
        &self,
        table: Table,
        candidate: &Candidate,
        e: impl std::fmt::Display,
    ) -> IngestError {
        self.lake_error(
            table,
            std::io::Error::other(format!("{}: {e}", candidate.path)),
        )
    }

    /// The row groups of a file that may hold selected rows.
    async fn row_groups(
        &self,
        table: Table,
        delta: &DeltaTable,
        candidate: &Candidate,
        filter: &Filter,
    ) -> Result<Vec<usize>> {
        let metadata = candidate.index.metadata.metadata().clone();
        let columns = metadata.file_metadata().schema_descr().columns().to_vec();
        let position = |name: &str| columns.iter().position(|c| c.name() == name);
        let mut kept = Vec::new();
        for (rg, group) in metadata.row_groups().iter().enumerate() {
            if let Some((column, ranges)) = &filter.times
                && let Some(i) = position(column)
                && let Some(Statistics::Int64(s)) = group.column(i).statistics()
                && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
                && !ranges.overlaps(*min, *max)
            {
                continue;
            }
            if filter.null.iter().any(|column| {
                position(column).is_some_and(|i| {
                    group
                        .column(i)
                        .statistics()
                        .and_then(Statistics::null_count_opt)
                        == Some(0)
                })
            }) {
                continue;
            }
            let mut possible = true;
            for (column, values) in &filter.any_of {
                let Some(i) = position(column) else {
                    continue;
                };
                let in_range: Vec<&String> = match group.column(i).statistics() {
                    Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
                        (Some(min), Some(max)) => values
                            .iter()
                            .filter(|v| v.as_bytes() >= min.data() && v.as_bytes() <= max.data())
                            .collect(),
                        _ => values.iter().collect(),
                    },
                    _ => values.iter().collect(),
                };
                if in_range.is_empty() {
                    possible = false;
                    break;
                }
                if let Some(bloom) = self.bloom(table, delta, candidate, rg, i).await?
                    && !in_range.iter().any(|v| bloom.check(v.as_str()))
                {
                    possible = false;
                    break;
                }
            }
            if possible {
                kept.push(rg);
            }
        }
        Ok(kept)
    }

    async fn bloom(
        &self,
        table: Table,
        delta: &DeltaTable,
        candidate: &Candidate,
        row_group: usize,
        column: usize,
    ) -> Result<Option<Arc<parquet::bloom_filter::Sbbf>>> {
        if let Some(known) = candidate.index.bloom(row_group, column) {
            return Ok(known);
        }
        let has = candidate
            .index
            .metadata
            .metadata()
            .row_group(row_group)
            .column(column)
            .bloom_filter_offset()
            .is_some();
        let bloom = if has {
            let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
                self.reader(delta, candidate),
                candidate.index.metadata.clone(),
            );
            let bloom = builder
                .get_row_group_column_bloom_filter(row_group, column)
                .await
                .map_err(|e| self.file_error(table, candidate, e))?
                .map(Arc::new);
            self.stats.blooms_read.fetch_add(1, Ordering::Relaxed);
            bloom
        } else {
            None
        };
        let bytes = candidate
            .index
            .metadata
            .metadata()
            .row_group(row_group)
            .column(column)
            .bloom_filter_length()
            .map_or(0, |n| usize::try_from(n).unwrap_or(0));
        candidate.index.keep_bloom(row_group, column, bloom.clone());
        self.files
            .grow(&format!("{table}/{}", candidate.path), bytes);
        Ok(bloom)
    }

    /// Decodes the rows `filter` selects in row groups of a file: `columns` and the ones
    /// `filter` looks at, or every column (`None`), with the `date` column added from the
    /// partition.
    pub(crate) async fn read(
        &self,
        table: Table,
        delta: &DeltaTable,
        candidate: &Candidate,
        row_groups: &[usize],
        columns: Option<&[&str]>,
        filter: &Filter,
    ) -> Result<Vec<RecordBatch>> {
        if row_groups.is_empty() {
            return Ok(Vec::new());
        }
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader(delta, candidate),
            candidate.index.metadata.clone(),
        );
        let mask = match columns {
            None => ProjectionMask::all(),
            Some(columns) => {
                let schema = candidate
                    .index
                    .metadata
                    .metadata()
                    .file_metadata()
                    .schema_descr();
                let mut wanted: HashSet<String> = columns.iter().map(|c| c.to_string()).collect();
                wanted.extend(filter.columns().map(str::to_string));
                let roots: Vec<usize> = schema
                    .root_schema()
                    .get_fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| wanted.contains(f.name()))
                    .map(|(i, _)| i)
                    .collect();
                ProjectionMask::roots(schema, roots)
            }
        };
        let mut builder = builder
            .with_row_groups(row_groups.to_vec())
            .with_projection(mask)
            .with_batch_size(8192);
        if let Some(selection) = time_pages(candidate, row_groups, filter) {
            builder = builder.with_row_selection(selection);
        }
        if filter.has_conditions() {
            // One predicate a condition, cheapest first (time, then nulls, then keys): each
            // decodes its column only for the rows the ones before kept, and the other columns
            // are decoded only for the rows all of them keep.
            let schema = candidate
                .index
                .metadata
                .metadata()
                .file_metadata()
                .schema_descr();
            let mut predicates: Vec<Box<dyn parquet::arrow::arrow_reader::ArrowPredicate>> =
                Vec::new();
            for condition in filter.split() {
                let wanted: HashSet<&str> = condition.columns().collect();
                let roots: Vec<usize> = schema
                    .root_schema()
                    .get_fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| wanted.contains(f.name()))
                    .map(|(i, _)| i)
                    .collect();
                predicates.push(Box::new(ArrowPredicateFn::new(
                    ProjectionMask::roots(schema, roots),
                    move |batch: RecordBatch| {
                        matching(&batch, &condition, table)
                            .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))
                    },
                )));
            }
            builder = builder.with_row_filter(RowFilter::new(predicates));
        }
        let stream = builder
            .build()
            .map_err(|e| self.file_error(table, candidate, e))?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| self.file_error(table, candidate, e))?;
        self.stats
            .row_groups
            .fetch_add(row_groups.len() as u64, Ordering::Relaxed);
        let metadata = candidate.index.metadata.metadata();
        let rows: i64 = row_groups
            .iter()
            .map(|&rg| metadata.row_group(rg).num_rows())
            .sum();
        self.stats
            .rows
            .fetch_add(u64::try_from(rows).unwrap_or(0), Ordering::Relaxed);
        batches
            .into_iter()
            .map(|batch| with_date(batch, candidate.date, table))
            .collect()
    }
}

/// The rows of `row_groups` whose pages of the filter's time column can hold its times, from the
/// page index: files are sorted by time, so a lookup near a batch's times decodes a page or two
/// of each column, not the row group.
fn time_pages(
    candidate: &Candidate,
    row_groups: &[usize],
    filter: &Filter,
) -> Option<RowSelection> {
    use parquet::file::page_index::column_index::ColumnIndexMetaData;
    let (column, ranges) = filter.times.as_ref()?;
    let metadata = candidate.index.metadata.metadata();
    let (column_index, offset_index) = (metadata.column_index()?, metadata.offset_index()?);
    let position = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == *column)?;
    let mut selectors = Vec::new();
    for &rg in row_groups {
        let rows = usize::try_from(metadata.row_group(rg).num_rows()).ok()?;
        let pages = offset_index.get(rg)?.get(position)?.page_locations();
        let index = match column_index.get(rg)?.get(position)? {
            ColumnIndexMetaData::INT64(index) if !pages.is_empty() => index,
            _ => {
                selectors.push(RowSelector::select(rows));
                continue;
            }
        };
        for (p, page) in pages.iter().enumerate() {
            let first = usize::try_from(page.first_row_index).ok()?;
            let end = match pages.get(p + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => rows,
            };
            let keep = match (index.min_value(p), index.max_value(p)) {
                (Some(min), Some(max)) => ranges.overlaps(*min, *max),
                _ => true,
            };
            selectors.push(if keep {
                RowSelector::select(end - first)
            } else {
                RowSelector::skip(end - first)
            });
        }
    }
    Some(RowSelection::from(selectors))
}

/// Reads a data file's byte ranges from the table's object store.
struct StoreReader {
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    size: u64,
}

fn parquet_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        use object_store::ObjectStoreExt;
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_error)
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        Box::pin(async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_error)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            // One read takes the footer of most files written here.
            // The page index too: pages whose rows a lookup's conditions all rule out are not
            // even read.
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

/// A placeholder footer, replaced before use.
fn empty_metadata() -> Result<ArrowReaderMetadata> {
    use parquet::file::metadata::{FileMetaData, ParquetMetaData};
    use parquet::schema::types::{SchemaDescriptor, Type};
    let root = Type::group_type_builder("empty")
        .build()
        .map_err(|e| IngestError::Object {
            location: "parquet".into(),
            source: Box::new(e),
        })?;
    let descr = Arc::new(SchemaDescriptor::new(Arc::new(root)));
    let file = FileMetaData::new(1, 0, None, None, descr, None);
    ArrowReaderMetadata::try_new(
        Arc::new(ParquetMetaData::new(file, Vec::new())),
        ArrowReaderOptions::new(),
    )
    .map_err(|e| IngestError::Object {
        location: "parquet".into(),
        source: Box::new(e),
    })
}

/// The file's schema with the table's types for the table's columns (and the file's
/// nullability), so that every file reads into the same Arrow types.
fn coerce(file: &SchemaRef, table: Table) -> SchemaRef {
    let wanted = table.schema();
    let fields: Vec<Field> = file
        .fields()
        .iter()
        .map(|f| match wanted.field_with_name(f.name()) {
            Ok(w) if w.data_type() != f.data_type() => {
                Field::new(f.name(), w.data_type().clone(), f.is_nullable())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Minimum and maximum of a time column in a file's Delta statistics (JSON), in microseconds.
/// Statistics hold milliseconds, so the maximum is rounded up to the next one.
fn log_bounds(stats: Option<&str>, column: &str) -> TimeBounds {
    let stats: serde_json::Value = serde_json::from_str(stats?).ok()?;
    let time = |which: &str| {
        let text = stats.get(which)?.get(column)?.as_str()?;
        crate::time::parse_rfc3339(text).map(|t| t.timestamp_micros())
    };
    Some((time("minValues")?, time("maxValues")? + 1000))
}

/// A column as UTF-8 strings, whatever string type it was read as.
fn strings(column: &ArrayRef, table: Table) -> Result<ArrayRef> {
    match column.data_type() {
        DataType::Utf8 => Ok(column.clone()),
        _ => cast(column, &DataType::Utf8).map_err(|source| IngestError::Arrow { table, source }),
    }
}

/// Which rows of a batch the filter selects (the partition is already checked).
pub(super) fn matching(batch: &RecordBatch, filter: &Filter, table: Table) -> Result<BooleanArray> {
    let rows = batch.num_rows();
    let mut keep = vec![true; rows];
    let column = |name: &str| batch.column_by_name(name);
    if let Some((name, ranges)) = &filter.times {
        match column(name) {
            Some(values) => {
                let micros = cast(values, &DataType::Int64)
                    .map_err(|source| IngestError::Arrow { table, source })?;
                let micros = micros.as_primitive::<Int64Type>();
                for (i, keep) in keep.iter_mut().enumerate() {
                    *keep &= micros.is_valid(i) && {
                        let t = micros.value(i);
                        ranges.overlaps(t, t)
                    };
                }
            }
            None => keep.fill(false),
        }
    }
    for (name, values) in &filter.any_of {
        match column(name) {
            Some(array) => {
                let text = strings(array, table)?;
                let text = text.as_string::<i32>();
                for (i, keep) in keep.iter_mut().enumerate() {
                    *keep &= text.is_valid(i) && values.contains(text.value(i));
                }
            }
            None => keep.fill(false),
        }
    }
    for name in &filter.null {
        if let Some(array) = column(name) {
            for (i, keep) in keep.iter_mut().enumerate() {
                *keep &= array.is_null(i);
            }
        }
    }
    Ok(BooleanArray::from(keep))
}

/// Adds the `date` column (from the partition) in the table's place for it.
fn with_date(batch: RecordBatch, date: Option<NaiveDate>, table: Table) -> Result<RecordBatch> {
    let schema = table.schema();
    let name = table.partition_column();
    if batch.column_by_name(name).is_some() {
        return Ok(batch);
    }
    let dates: ArrayRef = Arc::new(Date32Array::from(vec![
        date.map(|d| date32(&d));
        batch.num_rows()
    ]));
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let at = schema
        .index_of(name)
        .map_or(fields.len(), |i| i.min(fields.len()));
    let field = schema
        .field_with_name(name)
        .map(|f| Arc::new(f.clone().with_nullable(true)))
        .unwrap_or_else(|_| Arc::new(Field::new(name, DataType::Date32, true)));
    fields.insert(at, field);
    columns.insert(at, dates);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|source| IngestError::Arrow { table, source })
}

/// The batch with only `columns` (all when `None`).
fn project(batch: &RecordBatch, columns: Option<&[&str]>, table: Table) -> Result<RecordBatch> {
    let Some(columns) = columns else {
        return Ok(batch.clone());
    };
    let schema = batch.schema();
    let indices = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| IngestError::Arrow { table, source })?;
    batch
        .project(&indices)
        .map_err(|source| IngestError::Arrow { table, source })
}

impl Lake {
    /// Every row of a table as the Delta kernel reads it: with deletion vectors applied and
    /// physical column names mapped back to the table's. The query's own scan reads the data
    /// files directly and so cannot honour either; a table another engine wrote with them is
    /// read through here instead (slower: one thread, the whole table in memory).
    pub async fn read_through_kernel(
        &self,
        table: Table,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        use deltalake::kernel::engine::arrow_data::ArrowEngineData;

        let delta = self.open(table).await?;
        let log_store = delta.log_store();
        let snapshot = deltalake::kernel::Snapshot::try_new(log_store.as_ref(), delta.version())
            .await
            .map_err(|e| self.lake_error(table, e))?;
        let scan = snapshot
            .scan_builder()
            .build()
            .map_err(|e| self.lake_error(table, e))?;
        let kernel_snapshot = scan.snapshot().clone();
        let engine = log_store.engine(None);
        // The kernel's reads are blocking calls driven by its own executor.
        let read = tokio::task::spawn_blocking(move || {
            let scan = kernel_snapshot
                .scan_builder()
                .build()
                .map_err(|e| e.to_string())?;
            scan.execute(engine)
                .map_err(|e| e.to_string())?
                .map(|data| {
                    let data = data.and_then(ArrowEngineData::try_from_engine_data);
                    Ok(data.map_err(|e| e.to_string())?.record_batch().clone())
                })
                .collect::<std::result::Result<Vec<_>, String>>()
        })
        .await;
        match read {
            Ok(Ok(batches)) => Ok(batches),
            Ok(Err(message)) => Err(self.lake_error(table, std::io::Error::other(message))),
            Err(e) => Err(self.lake_error(table, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        crate::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn near_gathers_times_into_ranges_split_at_gaps() {
        let filter = Filter::all().near(
            "time",
            [
                at("2026-10-05T10:00:00Z"),
                at("2026-10-05T10:00:30Z"),
                at("2026-10-05T13:00:00Z"),
            ],
            chrono::Duration::minutes(1),
        );
        let Some((column, ranges)) = &filter.times else {
            panic!("no ranges");
        };
        assert_eq!(*column, "time");
        assert_eq!(
            ranges.0,
            vec![
                (
                    at("2026-10-05T09:59:00Z").timestamp_micros(),
                    at("2026-10-05T10:01:30Z").timestamp_micros()
                ),
                (
                    at("2026-10-05T12:59:00Z").timestamp_micros(),
                    at("2026-10-05T13:01:00Z").timestamp_micros()
                ),
            ]
        );
        assert!(filter.overlaps(Some((
            at("2026-10-05T10:01:00Z").timestamp_micros(),
            at("2026-10-05T11:00:00Z").timestamp_micros()
        ))));
        assert!(!filter.overlaps(Some((
            at("2026-10-05T11:00:00Z").timestamp_micros(),
            at("2026-10-05T12:00:00Z").timestamp_micros()
        ))));
        assert!(
            Filter::all()
                .any_of::<String>("event_id", [])
                .selects_nothing()
        );
    }

    #[test]
    fn log_bounds_round_the_maximum_up_to_the_next_millisecond() {
        let stats = r#"{"numRecords":2,"minValues":{"time":"2026-10-05T09:12:31.000Z"},"maxValues":{"time":"2026-10-05T09:13:02.123Z"}}"#;
        assert_eq!(
            log_bounds(Some(stats), "time"),
            Some((
                at("2026-10-05T09:12:31Z").timestamp_micros(),
                at("2026-10-05T09:13:02.124Z").timestamp_micros()
            ))
        );
        assert_eq!(log_bounds(Some(stats), "started_at"), None);
        assert_eq!(log_bounds(None, "time"), None);
    }
}
