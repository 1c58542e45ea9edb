//! Reading a lake on local disk in place: a range of a data file is read on the thread that
//! asks for it.
//!
//! object_store's `LocalFileSystem` hands every read to tokio's blocking pool and waits for it,
//! which suits a slow disk but costs a thread hop (two context switches) for each footer, bloom
//! filter and column chunk: a question over a year opens 366 files a table, three to five reads
//! each. A read of a file the page cache holds takes microseconds, so the scan reads it where it
//! is, as DuckDB does; everything else (listing, writing, conditional reads) is the
//! `LocalFileSystem`'s own.

use std::fmt;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// A `LocalFileSystem` whose plain range reads happen in place.
#[derive(Debug)]
pub struct InPlace {
    inner: LocalFileSystem,
}

impl InPlace {
    /// Reads in place from `inner`.
    pub fn new(inner: LocalFileSystem) -> Self {
        InPlace { inner }
    }

    /// The bytes of `ranges` of one file, read on this thread. A range past the end is an
    /// error, or with `cut`, cut at the end (as `get_ranges` and `get_opts` each answer).
    fn read(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
        cut: bool,
    ) -> Result<(Vec<Bytes>, ObjectMeta)> {
        let path = self.inner.path_to_filesystem(location)?;
        let error = |source: std::io::Error| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!("{}: {source}", path.display()).into(),
        };
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => object_store::Error::NotFound {
                path: path.display().to_string(),
                source: e.into(),
            },
            _ => error(e),
        })?;
        let metadata = file.metadata().map_err(error)?;
        let size = metadata.len();
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let range = if cut {
                range.start..range.end.min(size)
            } else {
                range.clone()
            };
            if range.end > size || range.start > range.end {
                return Err(error(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("range {range:?} out of the file's {size} bytes"),
                )));
            }
            let mut buffer = vec![0u8; usize::try_from(range.end - range.start).unwrap_or(0)];
            file.read_exact_at(&mut buffer, range.start)
                .map_err(error)?;
            out.push(Bytes::from(buffer));
        }
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified: metadata
                .modified()
                .map(chrono::DateTime::<chrono::Utc>::from)
                .unwrap_or_default(),
            size,
            e_tag: None,
            version: None,
        };
        Ok((out, meta))
    }
}

impl fmt::Display for InPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InPlace({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for InPlace {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let plain = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none()
            && !options.head;
        let Some(GetRange::Bounded(range)) = options.range.clone().filter(|_| plain) else {
            return self.inner.get_opts(location, options).await;
        };
        let (mut bytes, meta) = self.read(location, std::slice::from_ref(&range), true)?;
        let bytes = bytes.pop().unwrap_or_default();
        let range = range.start..range.start + bytes.len() as u64;
        Ok(GetResult {
            payload: GetResultPayload::Stream(Box::pin(futures::stream::once(
                async move { Ok(bytes) },
            ))),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        Ok(self.read(location, ranges, false)?.0)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn reads_in_place_equal_the_local_file_systems() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::create_dir_all(dir.path().join("t/date=2026-10-05"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("t/date=2026-10-05/part-0.parquet"), &body)
            .unwrap_or_else(|e| panic!("{e}"));
        let local =
            || LocalFileSystem::new_with_prefix(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let (plain, in_place) = (local(), InPlace::new(local()));
        let path = Path::from("t/date=2026-10-05/part-0.parquet");
        let ranges = [0..8, 9_992..10_000, 100..5_000, 9_000..10_000];
        let expected = plain
            .get_ranges(&path, &ranges)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = in_place
            .get_ranges(&path, &ranges)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, expected);
        assert_eq!(got[3].len(), 1_000);
        let one = in_place
            .get_range(&path, 100..5_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one, expected[2]);
        let tail = in_place
            .get_range(&path, 9_000..12_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let plain_tail = plain
            .get_range(&path, 9_000..12_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            tail, plain_tail,
            "get_range cuts a range at the end, as the local store"
        );
        assert_eq!(tail.len(), 1_000);
        let head = in_place.head(&path).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.size, 10_000);
        // A read the scan does not make in place still behaves as the local store's.
        let conditional = GetOptions {
            if_match: Some("\"not-this-one\"".to_string()),
            ..GetOptions::default()
        };
        assert!(in_place.get_opts(&path, conditional).await.is_err());
        let missing = in_place
            .get_ranges(&Path::from("t/none.parquet"), std::slice::from_ref(&(0..8)))
            .await;
        assert!(matches!(missing, Err(object_store::Error::NotFound { .. })));
        for past_the_end in [9_000..12_000, 20_000..20_008] {
            let range = std::slice::from_ref(&past_the_end);
            assert!(plain.get_ranges(&path, range).await.is_err());
            assert!(in_place.get_ranges(&path, range).await.is_err());
        }
    }
}
