//! The lake: one Delta table per [`Table`], partitioned by `date`, under one location.
//!
//! Why Delta rather than a folder of Parquet files: an append is one atomic commit, so a reader
//! never sees half a batch and a crash leaves no half-written rows; compaction and retention
//! (OPTIMIZE, VACUUM) are standard operations; Athena, Spark and Trino read the same tables.
//!
//! Appends are idempotent: rows whose id is already stored in the partitions they fall in (or
//! that repeat within the batch, as CloudTrail duplicates do) are not written again. Sessions are
//! the one table whose rows change as more sources arrive; they are replaced by id in a single
//! commit (`replaceWhere session_id IN (...)`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use auditq_model::{Row, Table, date32};
use chrono::NaiveDate;
use datafusion::catalog::TableProvider;
use datafusion::prelude::{SessionContext, col, lit};
use datafusion::scalar::ScalarValue;
use deltalake::kernel::Transaction;
use deltalake::kernel::schema::partitions::{FilterOp, FilterValue};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::optimize::OptimizeType;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, ensure_table_uri};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::alerting::Alerting;
use crate::error::{IngestError, Result};

/// A lake location: a local directory or `s3://bucket/prefix`.
///
/// On S3, commits use S3 conditional writes (`If-None-Match`), which AWS S3 and the emulator both
/// honour, so concurrent writers cannot overwrite each other's commit without a lock table.
#[derive(Debug, Clone)]
pub struct Lake {
    location: String,
    storage_options: HashMap<String, String>,
    alerting: Option<Arc<tokio::sync::Mutex<Alerting>>>,
    /// The last snapshot of each table this process loaded or wrote, shared by clones: opening
    /// a table again reads only the commits since (a long-running follower opens each table
    /// several times per batch; from scratch, each open lists and reads the log anew).
    snapshots: Arc<std::sync::Mutex<HashMap<Table, DeltaTable>>>,
    /// Batches of this process share it; compaction takes it alone, so OPTIMIZE never removes a
    /// file a batch's `replaceWhere` is also replacing (Delta would fail one of the two commits).
    batches: Arc<tokio::sync::RwLock<()>>,
    /// How long after a session ends a missing recording is still awaited (`pending`), before
    /// the session reads `logged = none` (see [`crate::correlate`]).
    unlogged_grace: chrono::Duration,
    /// Patterns added to the built-in secret patterns (`NAME=REGEX`).
    redaction_patterns: Vec<String>,
    /// The redactor, made on first use (its key may have to be read or created).
    redactor: Arc<tokio::sync::OnceCell<Arc<crate::redact::Redactor>>>,
    /// The key every commit's digest is signed with ([`crate::digest`]); unsigned without.
    signing_key: Option<Arc<crate::digest::SigningKey>>,
    /// The digests' store, made on first commit and kept, so commits share its connections.
    digests: Arc<std::sync::OnceLock<crate::digest::Digests>>,
}

/// The default of [`Lake::with_unlogged_grace`]: transcripts reach S3 within minutes of a
/// session's end.
pub const DEFAULT_UNLOGGED_GRACE_MINUTES: i64 = 15;

impl Lake {
    /// A lake at `location` (created on first write).
    pub fn new(location: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            storage_options: HashMap::new(),
            alerting: None,
            snapshots: Arc::default(),
            batches: Arc::default(),
            unlogged_grace: chrono::Duration::minutes(DEFAULT_UNLOGGED_GRACE_MINUTES),
            redaction_patterns: Vec::new(),
            redactor: Arc::default(),
            signing_key: None,
            digests: Arc::default(),
        }
    }

    /// Adds secret patterns (`NAME=REGEX`) to the built-in ones (see [`crate::redact`]).
    pub fn with_redaction_patterns(mut self, patterns: Vec<String>) -> Self {
        self.redaction_patterns = patterns;
        self.redactor = Arc::default();
        self
    }

    /// The redactor of this lake. Its key is `AUDITQ_REDACTION_KEY`, else
    /// `_auditq/redaction.key` beside the lake, created (32 random bytes, written only if absent)
    /// on first use so that every writer of the lake makes the same tokens.
    pub async fn redactor(&self) -> Result<Arc<crate::redact::Redactor>> {
        self.redactor
            .get_or_try_init(|| async {
                let key = match std::env::var("AUDITQ_REDACTION_KEY")
                    .ok()
                    .filter(|k| !k.is_empty())
                {
                    Some(key) => key.into_bytes(),
                    None => self.redaction_key().await?,
                };
                let mut redactor = crate::redact::Redactor::new(key);
                for spec in &self.redaction_patterns {
                    redactor =
                        redactor
                            .with_pattern(spec)
                            .map_err(|message| IngestError::Alerting {
                                location: self.location.clone(),
                                source: message.into(),
                            })?;
                }
                Ok(Arc::new(redactor))
            })
            .await
            .cloned()
    }

    async fn redaction_key(&self) -> Result<Vec<u8>> {
        let (store, root) = self.object_store()?;
        let path = root.clone().join("_auditq").join("redaction.key");
        let error = |e: object_store::Error| IngestError::Alerting {
            location: format!("{}/_auditq/redaction.key", self.location),
            source: Box::new(e),
        };
        match store.get(&path).await {
            Ok(found) => return Ok(found.bytes().await.map_err(error)?.to_vec()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(error(e)),
        }
        let mut key = vec![0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(|source| IngestError::Io {
                path: "/dev/urandom".into(),
                source,
            })?,
            &mut key,
        )
        .map_err(|source| IngestError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
        let create = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match store.put_opts(&path, key.clone().into(), create).await {
            Ok(_) => Ok(key),
            // Another writer made it first: theirs is the key.
            Err(object_store::Error::AlreadyExists { .. }) => Ok(store
                .get(&path)
                .await
                .map_err(error)?
                .bytes()
                .await
                .map_err(error)?
                .to_vec()),
            Err(e) => Err(error(e)),
        }
    }

    /// How long after a session ends its recording may still arrive.
    pub fn with_unlogged_grace(mut self, grace: chrono::Duration) -> Self {
        self.unlogged_grace = grace;
        self
    }

    /// See [`Lake::with_unlogged_grace`].
    pub fn unlogged_grace(&self) -> chrono::Duration {
        self.unlogged_grace
    }

    /// Runs every batch stored in this lake through rules first (see [`crate::alerting`]):
    /// whatever path rows arrive by (files, S3, CloudWatch Logs, following), alerts are
    /// published before the rows and their source positions are committed.
    pub fn with_alerting(mut self, alerting: Alerting) -> Self {
        self.alerting = Some(Arc::new(tokio::sync::Mutex::new(alerting)));
        self
    }

    /// The alerting stage, when rules are configured.
    pub fn alerting(&self) -> Option<&Arc<tokio::sync::Mutex<Alerting>>> {
        self.alerting.as_ref()
    }

    /// The object store holding the lake and the path of its root, for auditq's own objects
    /// beside the tables (rule state, alert outbox).
    pub fn object_store(&self) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
        let error = |e: object_store::Error| IngestError::Alerting {
            location: self.location.clone(),
            source: Box::new(e),
        };
        if let Some(rest) = self.location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (key, value) in &self.storage_options {
                if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
            if self
                .storage_options
                .get("AWS_ALLOW_HTTP")
                .is_some_and(|v| v == "true")
            {
                builder = builder.with_allow_http(true);
            }
            let mut retry = object_store::RetryConfig::default();
            if let Some(n) = self.storage_options.get("max_retries") {
                retry.max_retries = n.parse().unwrap_or(retry.max_retries);
            }
            if let Some(seconds) = self
                .storage_options
                .get("retry_timeout")
                .and_then(|t| t.trim_end_matches('s').parse().ok())
            {
                retry.retry_timeout = std::time::Duration::from_secs(seconds);
            }
            builder = builder.with_retry(retry);
            let store = builder.build().map_err(error)?;
            return Ok((
                Arc::new(store),
                StorePath::from(prefix.trim_end_matches('/')),
            ));
        }
        std::fs::create_dir_all(&self.location).map_err(|source| IngestError::Io {
            path: self.location.clone(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(&self.location).map_err(error)?;
        Ok((Arc::new(store), StorePath::default()))
    }

    /// Object-store options (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_REGION`, ...); the
    /// standard AWS environment is read by the store itself.
    pub fn with_storage_options(mut self, options: HashMap<String, String>) -> Self {
        self.storage_options = options;
        self.digests = Arc::default();
        self
    }

    /// Signs the digest of every commit with `key` ([`crate::digest`]).
    pub fn with_signing_key(mut self, key: Option<Arc<crate::digest::SigningKey>>) -> Self {
        self.signing_key = key;
        self.digests = Arc::default();
        self
    }

    /// The digests of this lake's commits (one store for all of them, made on first use).
    pub fn digests(&self) -> Result<&crate::digest::Digests> {
        if let Some(digests) = self.digests.get() {
            return Ok(digests);
        }
        let (store, root) = self.object_store()?;
        let made =
            crate::digest::Digests::new(store, root, &self.location, self.signing_key.clone());
        Ok(self.digests.get_or_init(|| made))
    }

    /// Records the digests of the table's commits after `before` up to `after` (the versions
    /// an operation of ours made).
    async fn record_digests(
        &self,
        table: Table,
        before: Option<u64>,
        after: Option<u64>,
    ) -> Result<()> {
        let Some(after) = after else {
            return Ok(());
        };
        let from = before.map_or(0, |v| v + 1);
        self.digests()?.record(table, from, after).await
    }

    /// Where the lake is.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn table_location(&self, table: Table) -> String {
        format!("{}/{}", self.location.trim_end_matches('/'), table.name())
    }

    fn lake_error(
        &self,
        table: Table,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> IngestError {
        IngestError::Lake {
            table,
            location: self.location.clone(),
            source: Box::new(source),
        }
    }

    /// Held while a batch is stored: batches run side by side, compaction waits for them (and
    /// they for it).
    pub async fn batch_guard(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.batches.read().await
    }

    /// Opens a table at its newest version; an uninitialised one has no version.
    pub async fn open(&self, table: Table) -> Result<DeltaTable> {
        let cached = self
            .snapshots
            .lock()
            .ok()
            .and_then(|snapshots| snapshots.get(&table).cloned());
        let delta = match cached {
            Some(mut delta) => {
                if let Err(e) = delta.update_incremental(None).await {
                    return Err(self
                        .damaged_log(table)
                        .await
                        .unwrap_or_else(|| self.lake_error(table, e)));
                }
                delta
            }
            None => {
                let url = ensure_table_uri(self.table_location(table))
                    .map_err(|e| self.lake_error(table, e))?;
                match DeltaTable::try_from_url_with_storage_options(
                    url,
                    self.storage_options.clone(),
                )
                .await
                {
                    Ok(delta) => delta,
                    Err(e) => {
                        return Err(self
                            .damaged_log(table)
                            .await
                            .unwrap_or_else(|| self.lake_error(table, e)));
                    }
                }
            }
        };
        self.remember(table, &delta);
        Ok(delta)
    }

    /// The first commit of a table's log that is not valid JSON, as an error naming it.
    async fn damaged_log(&self, table: Table) -> Option<IngestError> {
        let (store, root) = self.object_store().ok()?;
        let log = root.clone().join(table.name()).join("_delta_log");
        let mut files: Vec<_> = futures::StreamExt::collect::<Vec<_>>(store.list(Some(&log)))
            .await
            .into_iter()
            .filter_map(|meta| meta.ok())
            .filter(|meta| meta.location.as_ref().ends_with(".json"))
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        for meta in files {
            let bytes = store.get(&meta.location).await.ok()?.bytes().await.ok()?;
            for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(line) {
                    return Some(IngestError::DamagedLog {
                        table,
                        location: self.location.clone(),
                        file: format!(
                            "{}/{}",
                            self.location.trim_end_matches('/'),
                            meta.location
                                .as_ref()
                                .trim_start_matches(root.as_ref())
                                .trim_start_matches('/')
                        ),
                        reason: format!("line {}: {e}", n + 1),
                    });
                }
            }
        }
        None
    }

    /// Keeps a table's snapshot for the next [`Lake::open`] (tables not created yet are not
    /// kept: their first write creates them).
    fn remember(&self, table: Table, delta: &DeltaTable) {
        if delta.version().is_some()
            && let Ok(mut snapshots) = self.snapshots.lock()
        {
            snapshots.insert(table, delta.clone());
        }
    }

    /// Whether no table holds data yet.
    pub async fn is_empty(&self) -> Result<bool> {
        for table in Table::ALL {
            if self.open(table).await?.version().is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A DataFusion provider for a stored table, or `None` if it has never been written.
    pub async fn provider(
        &self,
        ctx: &SessionContext,
        table: Table,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let delta = self.open(table).await?;
        if delta.version().is_none() {
            return Ok(None);
        }
        delta
            .update_datafusion_session(&ctx.state())
            .map_err(|e| self.lake_error(table, e))?;
        let provider = delta
            .table_provider()
            .await
            .map_err(|e| self.lake_error(table, e))?;
        Ok(Some(Arc::new(LimitInDataFusion(provider))))
    }

    async fn select(
        &self,
        table: Table,
        filter: datafusion::prelude::Expr,
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        let ctx = SessionContext::new();
        let Some(provider) = self.provider(&ctx, table).await? else {
            return Ok(Vec::new());
        };
        let df = ctx
            .read_table(provider)
            .and_then(|df| df.filter(filter))
            .and_then(|df| {
                if columns.is_empty() {
                    Ok(df)
                } else {
                    df.select_columns(columns)
                }
            })
            .map_err(|e| self.lake_error(table, e))?;
        df.collect().await.map_err(|e| self.lake_error(table, e))
    }

    /// The ids stored in the given partitions of a table.
    pub async fn existing_ids(
        &self,
        table: Table,
        dates: &BTreeSet<NaiveDate>,
    ) -> Result<HashSet<String>> {
        if dates.is_empty() {
            return Ok(HashSet::new());
        }
        let in_dates = col(table.partition_column()).in_list(
            dates
                .iter()
                .map(|d| lit(ScalarValue::Date32(Some(date32(d)))))
                .collect(),
            false,
        );
        let batches = self.select(table, in_dates, &[table.id_column()]).await?;
        let mut ids = HashSet::new();
        for batch in batches {
            let column = cast(batch.column(0), &DataType::Utf8)
                .map_err(|source| IngestError::Arrow { table, source })?;
            let strings = column.as_string::<i32>();
            ids.extend(
                (0..strings.len())
                    .filter(|&i| strings.is_valid(i))
                    .map(|i| strings.value(i).to_string()),
            );
        }
        Ok(ids)
    }

    /// Appends the rows whose ids are not stored yet; returns how many were written.
    pub async fn append<R: Row>(&self, rows: Vec<R>) -> Result<usize> {
        self.append_at(rows, &[]).await
    }

    /// Like [`Lake::append`], committing the source positions the rows came from in the same
    /// Delta transaction (as application transactions, `txn`), so the table itself records
    /// which positions its rows cover.
    pub async fn append_at<R: Row>(&self, rows: Vec<R>, txns: &[Transaction]) -> Result<usize> {
        let table = R::TABLE;
        let dates: BTreeSet<NaiveDate> = rows.iter().map(Row::date).collect();
        let mut seen = self.existing_ids(table, &dates).await?;
        let fresh: Vec<R> = rows
            .into_iter()
            .filter(|r| seen.insert(r.id().to_string()))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        self.write(table, &fresh, SaveMode::Append, None, txns)
            .await?;
        Ok(fresh.len())
    }

    async fn write<R: Row>(
        &self,
        table: Table,
        rows: &[R],
        mode: SaveMode,
        replace_where: Option<datafusion::prelude::Expr>,
        txns: &[Transaction],
    ) -> Result<()> {
        let batch = R::to_batch(rows).map_err(|source| IngestError::Arrow { table, source })?;
        let delta = self.open(table).await?;
        let before = delta.version();
        let mut builder = delta
            .write(vec![batch])
            .with_save_mode(mode)
            .with_partition_columns([table.partition_column()])
            .with_table_name(table.name())
            .with_description(table.description())
            // Every micro-batch is a commit; a checkpoint every 10 (Delta's default is 100)
            // keeps opening a table to one checkpoint and at most 9 commit files, which a
            // long-running follower does before every batch.
            .with_configuration([("delta.checkpointInterval", Some("10"))]);
        if let Some(predicate) = replace_where {
            builder = builder.with_replace_where(predicate);
        }
        if !txns.is_empty() {
            builder = builder.with_commit_properties(
                CommitProperties::default().with_application_transactions(txns.to_vec()),
            );
        }
        let written = builder.await.map_err(|e| self.lake_error(table, e))?;
        self.remember(table, &written);
        self.record_digests(table, before, written.version()).await
    }

    /// The stored rows matching a filter.
    pub async fn rows_matching<R: Row>(
        &self,
        table: Table,
        filter: datafusion::prelude::Expr,
    ) -> Result<Vec<R>> {
        let mut rows = Vec::new();
        for batch in self.select(table, filter, &[]).await? {
            rows.extend(
                R::from_batch(&batch).map_err(|source| IngestError::Arrow { table, source })?,
            );
        }
        Ok(rows)
    }

    /// The stored rows whose `key` column is one of `keys`.
    pub async fn rows_by_key<R: Row>(&self, key: &str, keys: &[String]) -> Result<Vec<R>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let table = R::TABLE;
        let filter = col(key).in_list(keys.iter().map(|k| lit(k.as_str())).collect(), false);
        let mut rows = Vec::new();
        for batch in self.select(table, filter, &[]).await? {
            rows.extend(
                R::from_batch(&batch).map_err(|source| IngestError::Arrow { table, source })?,
            );
        }
        Ok(rows)
    }

    /// Replaces every stored row whose `key` column is one of `keys` with `rows`, in one commit.
    /// Every row in `rows` must have one of those keys.
    pub async fn replace_by_key<R: Row>(
        &self,
        key: &str,
        keys: &[String],
        rows: &[R],
        txns: &[Transaction],
    ) -> Result<()> {
        let table = R::TABLE;
        if keys.is_empty() {
            return Ok(());
        }
        if self.open(table).await?.version().is_none() {
            if rows.is_empty() {
                return Ok(());
            }
            return self.write(table, rows, SaveMode::Append, None, txns).await;
        }
        let predicate = col(key).in_list(keys.iter().map(|k| lit(k.as_str())).collect(), false);
        self.write(table, rows, SaveMode::Overwrite, Some(predicate), txns)
            .await
    }
}

/// Delta's table provider (deltalake 1.1) accepts a pushed-down `LIMIT` and still returns every
/// row when no `ORDER BY` follows (`select 1 from commands limit 2` returned all 35 rows of the
/// samples), and DataFusion, told the scan applies it, drops its own limit. This wrapper never
/// takes the limit, so DataFusion keeps applying it; filters and projections still go down.
#[derive(Debug)]
struct LimitInDataFusion(Arc<dyn TableProvider>);

#[async_trait::async_trait]
impl TableProvider for LimitInDataFusion {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.0.table_type()
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::prelude::Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.0.scan(state, projection, filters, None).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::prelude::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }
}

/// What a compaction did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// The table.
    pub table: &'static str,
    /// Small files replaced by OPTIMIZE.
    pub files_removed: u64,
    /// Larger files written in their place.
    pub files_added: u64,
    /// Files VACUUM deleted (no version within the retention window reads them).
    pub files_vacuumed: usize,
}

/// The columns a table's files are clustered on (Z-order) when compacted: the filters audits
/// use most, so that a user, target or time filter skips files and row groups by their
/// statistics. Tables not listed are only bin-packed.
pub fn sort_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::Commands | Table::Alerts | Table::HostEvents => &["user", "target", "time"],
        Table::Sessions => &["user", "target", "started_at"],
        Table::Cloudtrail => &["user", "event_name", "time"],
        Table::Rejects | Table::Positions => &[],
    }
}

/// Row groups of at most 64Ki rows: small enough that a clustered file's statistics skip most
/// of it for one user or target, large enough to scan fast.
fn sorted_file_properties() -> deltalake::parquet::file::properties::WriterProperties {
    deltalake::parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(64 * 1024))
        .set_compression(deltalake::parquet::basic::Compression::SNAPPY)
        .build()
}

/// The `date` partitions (as `YYYY-MM-DD`) that hold more than one file.
fn days_with_several_files(delta: &DeltaTable) -> deltalake::DeltaResult<Vec<String>> {
    let mut files: HashMap<String, usize> = HashMap::new();
    for uri in delta.get_file_uris()? {
        if let Some(day) = uri.split('/').find_map(|part| part.strip_prefix("date=")) {
            *files.entry(day.to_string()).or_default() += 1;
        }
    }
    let mut days: Vec<String> = files
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(d, _)| d)
        .collect();
    days.sort();
    Ok(days)
}

impl Lake {
    /// Compacts every stored table: OPTIMIZE rewrites the files of each day that has several
    /// (each micro-batch commit writes its own) into large ones clustered on
    /// [`sort_columns`] (Z-order), then VACUUM deletes files that no version younger than
    /// `retention` reads. Readers of a version older than `retention` may then find files gone,
    /// so `retention` must exceed the longest query and time-travel anyone needs (Delta's
    /// default, and ours, is 7 days). Tables never written are skipped.
    pub async fn compact(&self, retention: std::time::Duration) -> Result<Vec<Compaction>> {
        let retention = chrono::Duration::from_std(retention)
            .map_err(|e| self.lake_error(Table::Commands, e))?;
        let mut done = Vec::new();
        for table in Table::ALL {
            let delta = self.open(table).await?;
            if delta.version().is_none() {
                continue;
            }
            // One table at a time holds batches back, so a follower waits for one table's
            // OPTIMIZE at most, not the whole lake's. VACUUM only deletes files no version
            // within the retention reads, so it needs no lock.
            let (delta, optimized, before) = {
                let _alone = self.batches.write().await;
                let delta = self.open(table).await?;
                let before = delta.version();
                let days =
                    days_with_several_files(&delta).map_err(|e| self.lake_error(table, e))?;
                let order = sort_columns(table);
                if order.is_empty() || days.is_empty() {
                    delta.optimize().await
                } else {
                    // Only days that gained files since they were last sorted are rewritten.
                    let days: Vec<&str> = days.iter().map(String::as_str).collect();
                    let filter = [("date", FilterOp::In, FilterValue::Set(days))];
                    delta
                        .optimize()
                        .with_type(OptimizeType::ZOrder(
                            order.iter().map(|c| c.to_string()).collect(),
                        ))
                        .with_filters(&filter)
                        .with_writer_properties(sorted_file_properties())
                        .await
                }
                .map_err(|e| self.lake_error(table, e))
                .map(|(delta, optimized)| (delta, optimized, before))?
            };
            self.remember(table, &delta);
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
                files_removed: optimized.num_files_removed,
                files_added: optimized.num_files_added,
                files_vacuumed: vacuumed.files_deleted.len(),
            });
        }
        Ok(done)
    }
}
