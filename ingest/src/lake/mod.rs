//! The lake: storage, and nothing else. One Delta table per [`Table`], partitioned by `date`,
//! under one location (a directory or `s3://bucket/prefix`).
//!
//! Why Delta rather than a folder of Parquet files: a commit is atomic, so a reader never sees
//! half a batch and a crash leaves no half-written rows; the source positions a batch came from
//! are committed in the same transaction as its rows (`txn`); retention (VACUUM) is a standard
//! operation; Athena, Spark, Trino and DuckDB read the same tables.
//!
//! What the lake offers is rows, not meaning: [`Lake::rows`] and [`Lake::ids`] read the rows a
//! [`Filter`] selects ([`Lake::ids_near`]: keys each near its own time, a day at a time),
//! [`Lake::commit`] appends rows and replaces the rows stored under some keys in one commit per
//! table, [`Lake::merge_small_files`] (every few minutes) and [`Lake::vacuum_if_due`] (daily)
//! keep the file count down, and every commit of the lake's own gets a signed digest
//! ([`crate::digest`]). Deciding which rows are new, which sessions
//! changed or which alerts to raise is the pipeline's; the lake knows
//! nothing of rules, redaction or correlation.
//!
//! Why it reads and writes Parquet itself rather than through DataFusion: a batch's reads are
//! lookups of a few keys (the batch's own ids, the sessions it touches), and their cost must not
//! grow with the table. Every data file carries Parquet bloom filters on its key columns and is
//! sorted by time ([`cluster_column`]); a lookup prunes files by the partition and the Delta
//! log's statistics, row groups by their statistics and bloom filters, and decodes only what is
//! left. Footers and bloom filters of the immutable data files are kept in memory
//! (`files::FileCache`), so a long-running writer reads each file's index once. Writing goes
//! through deltalake's own Parquet writer and commit API (no DataFusion), which keeps the
//! Lambda package small.

mod compact;
mod files;
mod scan;
mod write;

pub use compact::{Compaction, cluster_column};
pub use scan::{Filter, ScanStats};
pub use write::{Committed, Replace, bloom_columns};

use std::collections::HashMap;
use std::sync::Arc;

use auditq_model::Table;
use deltalake::{DeltaTable, ensure_table_uri};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{IngestError, Result};

/// A lake location: a local directory or `s3://bucket/prefix`.
///
/// On S3, commits use S3 conditional writes (`If-None-Match`), which AWS S3 and the emulator both
/// honour, so concurrent writers cannot overwrite each other's commit without a lock table.
#[derive(Debug, Clone)]
pub struct Lake {
    location: String,
    storage_options: HashMap<String, String>,
    /// The last snapshot of each table this process loaded or wrote, and when it was last
    /// brought up to date, shared by clones: opening a table again reads only the commits since,
    /// and not at all within [`FRESH_FOR`].
    snapshots: Arc<std::sync::Mutex<HashMap<Table, (DeltaTable, std::time::Instant)>>>,
    /// Batches of this process share it; compaction takes it alone, so a compaction never
    /// removes a file a batch's replacement is also removing (Delta would fail one of the two).
    batches: Arc<tokio::sync::RwLock<()>>,
    /// The key every commit's digest is signed with ([`crate::digest`]); unsigned without.
    signing_key: Option<Arc<crate::digest::SigningKey>>,
    /// The digests' store, made on first commit and kept, so commits share its connections.
    digests: Arc<std::sync::OnceLock<crate::digest::Digests>>,
    /// Footers, bloom filters and log statistics of data files already looked at.
    files: Arc<files::FileCache>,
    /// What reads have cost so far (for tests and benchmarks).
    stats: Arc<scan::ScanCounters>,
    /// Rows per row group of the files written.
    row_group_rows: usize,
}

/// How long a table's snapshot is used without asking storage for newer commits: the reads of
/// one batch (a dozen lookups, spread over a few tables) list each table's log once, not once a
/// lookup. A commit of another writer within this window is seen by the next batch; a commit of
/// this process is seen at once (it updates the snapshot).
const FRESH_FOR: std::time::Duration = std::time::Duration::from_millis(100);

impl Lake {
    /// A lake at `location` (created on first write).
    pub fn new(location: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            storage_options: HashMap::new(),
            snapshots: Arc::default(),
            batches: Arc::default(),
            signing_key: None,
            digests: Arc::default(),
            files: Arc::new(files::FileCache::new(files::DEFAULT_CACHE_BYTES)),
            stats: Arc::default(),
            row_group_rows: write::ROW_GROUP_ROWS,
        }
    }

    /// Rows per row group of the files this lake writes (64Ki by default: small enough that
    /// statistics and bloom filters skip most of a large file, large enough to scan fast).
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    /// Object-store options (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_REGION`, retries); the
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

    /// How many bytes of file footers and bloom filters are kept in memory (64 MiB by default).
    pub fn with_file_cache_bytes(mut self, bytes: usize) -> Self {
        self.files = Arc::new(files::FileCache::new(bytes));
        self
    }

    /// The bytes of a file of the lake, by its path from the lake's root.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let (store, root) = self.object_store()?;
        let location = if root.as_ref().is_empty() {
            StorePath::from(path)
        } else {
            StorePath::from(format!("{}/{path}", root.as_ref()))
        };
        let error = |e: object_store::Error| IngestError::Object {
            location: format!("{}/{path}", self.location),
            source: Box::new(e),
        };
        let found = store.get(&location).await.map_err(error)?;
        Ok(found.bytes().await.map_err(error)?.to_vec())
    }

    /// Where the lake is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The folder of a lake on local disk (any location not in S3, as [`Lake::object_store`]
    /// takes it); `None` for a lake in S3.
    pub fn local_dir(&self) -> Option<&str> {
        (!self.location.starts_with("s3://")).then_some(self.location.as_str())
    }

    /// What the reads of this lake (and its clones) have cost so far.
    pub fn scan_stats(&self) -> ScanStats {
        self.stats.snapshot()
    }

    /// The object store holding the lake and the path of its root, for auditq's own objects
    /// beside the tables (`_auditq/`: digests, keys, rule state, the alert outbox).
    pub fn object_store(&self) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
        let error = |e: object_store::Error| IngestError::Object {
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

    /// An object beside the tables (`_auditq/NAME`), made with `make` if it does not exist yet.
    /// When two writers make it at once, the first one stored wins and both return it.
    pub async fn object_or_create(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let (store, root) = self.object_store()?;
        let path = name
            .split('/')
            .fold(root.clone().join("_auditq"), |path, part| path.join(part));
        let error = |e: object_store::Error| IngestError::Object {
            location: format!("{}/_auditq/{name}", self.location.trim_end_matches('/')),
            source: Box::new(e),
        };
        match store.get(&path).await {
            Ok(found) => return Ok(found.bytes().await.map_err(error)?.to_vec()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(error(e)),
        }
        let made = make()?;
        let create = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match store.put_opts(&path, made.clone().into(), create).await {
            Ok(_) => Ok(made),
            // Another writer made it first: theirs is the one.
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
        if from > after {
            return Ok(());
        }
        self.digests()?.record(table, from, after).await
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
            Some((delta, at)) if at.elapsed() < FRESH_FOR => return Ok(delta),
            Some((mut delta, _)) => {
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
            snapshots.insert(table, (delta.clone(), std::time::Instant::now()));
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
}
