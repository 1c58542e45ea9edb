//! Ingest for auditq: decoders, parsers, session assembly and the Delta lake writer.
//!
//! The crate is layered so that the part most exposed to hostile input is the easiest to test:
//!
//! - [`decode`], [`terminal`], [`prompt`], [`cloudtrail`], [`ssm`], [`host`] and [`parse`] are pure:
//!   bytes in, typed rows and [`auditq_model::Reject`]s out, no I/O and no async. They live in
//!   `auditq-parse` (re-exported here) so they can be fuzzed without the rest. A malformed record
//!   becomes a reject with its position and reason; it never stops the rest of its object.
//! - [`session`] folds what every source knows about a session into one row, independent of the
//!   order sources arrive in.
//! - [`pipeline`] owns the write path: it loads what a batch needs, decides in pure code
//!   ([`pipeline::decide`]), runs the rules ([`alerting`]) and commits once per table.
//! - [`lake`] stores rows in Delta tables and reads them back by key; it knows nothing of what
//!   the rows mean.
//! - [`files`] and [`aws`] are sources: they read objects and hand batches to the pipeline with
//!   the positions they cover.
//!
//! Transcripts are replayed through a terminal emulator ([`terminal`], built on `vte`) rather
//! than stripped with regexes, so backspaces, history recall and full-screen editors resolve to
//! the command the user actually ran.

pub use auditq_parse::{
    cloudtrail, decode, host, parse, prompt, redact, session, ssm, terminal, time,
};

/// Names as CloudTrail records them (`auditq_parse::names`), and their history
/// ([`names_history`]).
pub mod names {
    pub use crate::names_history::*;
    pub use auditq_parse::names::*;
}

pub mod alerting;
pub mod aws;
pub mod correlate;
pub mod digest;
pub mod error;
pub mod files;
pub mod lake;
pub mod lookup;
pub mod names_history;
pub mod notify;
pub mod pipeline;
pub mod process;
pub mod trail_digest;

pub use error::{IngestError, Result};
pub use lake::Lake;
pub use parse::{Limits, Parsed};
pub use pipeline::{IngestSummary, Pipeline, PipelineBuilder, TableCount};

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
///
/// Files go in micro-batches (bounded by [`Limits::batch_files`] and [`Limits::batch_bytes`]):
/// each batch is parsed on every core while the previous one is committed, so memory stays
/// bounded (two batches at most), each commit is a unit of progress, and parsing and writing
/// overlap.
pub async fn ingest_paths(
    pipeline: &Pipeline,
    paths: &[PathBuf],
    limits: &Limits,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<IngestSummary> {
    let (files, skipped) = files::collect(paths)?;
    let mut summary = IngestSummary::default();
    let mut batches = files::batches(&files, limits)
        .into_iter()
        .map(<[PathBuf]>::to_vec);
    let parse = |batch: Vec<PathBuf>| {
        let limits = *limits;
        tokio::task::spawn_blocking(move || {
            let parsed = parse_files(&batch, &limits);
            (batch.len(), parsed)
        })
    };
    let mut pending = batches.next().map(parse);
    let mut done = 0;
    while let Some(handle) = pending.take() {
        let (count, parsed) = match handle.await {
            Ok(result) => result,
            // A parser panic is a bug: surface it as the single-threaded code would.
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        pending = batches.next().map(parse);
        let current = files.get(done).map(|p| p.display().to_string());
        progress(Progress {
            done,
            total: files.len(),
            current: current.as_deref().unwrap_or(""),
        });
        summary.add(pipeline.store(parsed?).await?);
        done += count;
    }
    progress(Progress {
        done: files.len(),
        total: files.len(),
        current: "",
    });
    summary.objects = files.len();
    summary.skipped = skipped;
    Ok(summary)
}

/// Parses files on every available core; the result keeps the files' order.
fn parse_files(files: &[PathBuf], limits: &Limits) -> Result<Parsed> {
    let workers = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(files.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Vec<(usize, Result<Parsed>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else {
                            break;
                        };
                        mine.push((i, files::read_file(path, limits)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            // A parser panic is a bug: surface it as the single-threaded code would.
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut ordered: Vec<(usize, Result<Parsed>)> = results.into_iter().flatten().collect();
    ordered.sort_by_key(|(i, _)| *i);
    let mut parsed = Parsed::default();
    for (_, part) in ordered {
        parsed.extend(part?);
    }
    Ok(parsed)
}
