//! Ingest for auditq: decoders, parsers, session assembly and the Delta lake writer.
//!
//! The crate is layered so that the part most exposed to hostile input is the easiest to test:
//!
//! - [`decode`], [`terminal`], [`prompt`], [`cloudtrail`], [`ssm`] and [`parse`] are pure: bytes
//!   in, typed rows and [`auditq_model::Reject`]s out, no I/O and no async. A malformed record
//!   becomes a reject with its position and reason; it never stops the rest of its object.
//! - [`session`] folds what every source knows about a session into one row, independent of the
//!   order sources arrive in.
//! - [`lake`] stores rows in Delta tables, idempotently (ids derive from provenance).
//! - [`files`] and [`pipeline`] wire a source to the lake.
//!
//! Transcripts are replayed through a terminal emulator ([`terminal`], built on `vte`) rather
//! than stripped with regexes, so backspaces, history recall and full-screen editors resolve to
//! the command the user actually ran.

pub mod aws;
pub mod cloudtrail;
pub mod decode;
pub mod error;
pub mod files;
pub mod lake;
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod prompt;
pub mod session;
pub mod ssm;
pub mod terminal;
pub mod time;

pub use error::{IngestError, Result};
pub use lake::Lake;
pub use parse::{Limits, Parsed};
pub use pipeline::{IngestSummary, TableCount, store};

use std::path::PathBuf;

/// Progress of an ingest, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Files read so far.
    pub done: usize,
    /// Files in all.
    pub total: usize,
    /// The file being read.
    pub current: &'a str,
}

/// Ingests files and folders into the lake.
pub async fn ingest_paths(
    lake: &Lake,
    paths: &[PathBuf],
    limits: &Limits,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<IngestSummary> {
    let (files, skipped) = files::collect(paths)?;
    let mut summary = IngestSummary::default();
    let mut parsed = Parsed::default();
    let (mut batch_files, mut batch_bytes) = (0usize, 0u64);
    for (done, path) in files.iter().enumerate() {
        let current = path.display().to_string();
        progress(Progress {
            done,
            total: files.len(),
            current: &current,
        });
        parsed.extend(files::read_file(path, limits)?);
        batch_files += 1;
        batch_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        // Micro-batches bound memory and make each commit a unit of progress.
        if batch_files >= limits.batch_files || batch_bytes >= limits.batch_bytes {
            summary.add(store(lake, std::mem::take(&mut parsed)).await?);
            (batch_files, batch_bytes) = (0, 0);
        }
    }
    progress(Progress {
        done: files.len(),
        total: files.len(),
        current: "",
    });
    summary.add(store(lake, parsed).await?);
    summary.objects = files.len();
    summary.skipped = skipped;
    Ok(summary)
}
