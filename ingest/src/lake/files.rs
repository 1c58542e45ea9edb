//! What the lake remembers of its data files.
//!
//! Data files never change once written (a Delta commit adds and removes whole files), so
//! their footers, bloom filters and log statistics can be kept for as long as memory allows: a
//! long-running writer (an ECS task, a warm Lambda container) reads each file's index once,
//! and a lookup afterwards costs the row groups it actually decodes. Entries are evicted
//! oldest first once the cache holds more than its budget.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::bloom_filter::Sbbf;

/// The default budget: 64 MiB, about the bloom filters of 50 million ids.
pub(crate) const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Bloom filters of a file by (row group, column); `None` for a column chunk that has none.
type Blooms = HashMap<(usize, usize), Option<Arc<Sbbf>>>;

/// What is known of one data file.
#[derive(Debug)]
pub(crate) struct FileIndex {
    /// Its footer, as the Parquet reader wants it.
    pub metadata: ArrowReaderMetadata,
    /// Bloom filters read so far, by (row group, column); `None` when the file has none.
    blooms: Mutex<Blooms>,
}

impl FileIndex {
    pub fn new(metadata: ArrowReaderMetadata) -> Self {
        Self {
            metadata,
            blooms: Mutex::default(),
        }
    }

    /// The bloom filter of a column chunk, if it was read before.
    pub fn bloom(&self, row_group: usize, column: usize) -> Option<Option<Arc<Sbbf>>> {
        self.blooms
            .lock()
            .ok()
            .and_then(|b| b.get(&(row_group, column)).cloned())
    }

    pub fn keep_bloom(&self, row_group: usize, column: usize, bloom: Option<Arc<Sbbf>>) {
        if let Ok(mut blooms) = self.blooms.lock() {
            blooms.insert((row_group, column), bloom);
        }
    }
}

/// Minimum and maximum of a file's time column, from the Delta log's statistics (microseconds).
pub(crate) type TimeBounds = Option<(i64, i64)>;

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, (Arc<FileIndex>, usize)>,
    order: VecDeque<String>,
    bytes: usize,
    bounds: HashMap<(String, &'static str), TimeBounds>,
}

/// Footers, bloom filters and log statistics by data file.
#[derive(Debug)]
pub(crate) struct FileCache {
    inner: Mutex<Inner>,
    budget: usize,
}

impl FileCache {
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::default(),
            budget,
        }
    }

    /// The index of a file, if kept.
    pub fn get(&self, path: &str) -> Option<Arc<FileIndex>> {
        let inner = self.inner.lock().ok()?;
        inner.entries.get(path).map(|(index, _)| index.clone())
    }

    /// Keeps a file's index, counting `bytes` against the budget.
    pub fn insert(&self, path: &str, index: Arc<FileIndex>, bytes: usize) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner
            .entries
            .insert(path.to_string(), (index, bytes))
            .is_none()
        {
            inner.order.push_back(path.to_string());
        }
        inner.bytes += bytes;
        self.evict(&mut inner);
    }

    /// Counts bytes added to a kept file's index (a bloom filter read later).
    pub fn grow(&self, path: &str, bytes: usize) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(entry) = inner.entries.get_mut(path) {
            entry.1 += bytes;
            inner.bytes += bytes;
        }
        self.evict(&mut inner);
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.bytes > self.budget {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, bytes)) = inner.entries.remove(&oldest) {
                inner.bytes = inner.bytes.saturating_sub(bytes);
            }
        }
        // Log statistics are small; past a million files, start again.
        if inner.bounds.len() > 1_000_000 {
            inner.bounds.clear();
        }
    }

    /// The time bounds of a file's column, computing them with `read` the first time.
    pub fn bounds(
        &self,
        path: &str,
        column: &'static str,
        read: impl FnOnce() -> TimeBounds,
    ) -> TimeBounds {
        let key = (path.to_string(), column);
        if let Some(found) = self
            .inner
            .lock()
            .ok()
            .and_then(|inner| inner.bounds.get(&key).copied())
        {
            return found;
        }
        let bounds = read();
        if let Ok(mut inner) = self.inner.lock() {
            inner.bounds.insert(key, bounds);
        }
        bounds
    }
}
