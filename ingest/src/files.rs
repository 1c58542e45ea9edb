//! The local-file source: files and folders given on the command line.

use std::path::{Path, PathBuf};

use auditq_model::Timestamp;
use chrono::{DateTime, Utc};

use crate::error::{IngestError, Result};
use crate::parse::{Limits, Object, Parsed, parse_object, reject};

/// File names a folder walk reads; anything else in a folder (READMEs, scripts) is skipped.
/// A file named explicitly is always read.
const LOG_SUFFIXES: &[&str] = &[
    ".json", ".json.gz", ".gz", ".log", ".ndjson", ".jsonl", ".txt",
];

/// Host logs named as syslog and auditd write them, rotated copies included (`secure`,
/// `secure-20261005`, `auth.log.1`, `audit.log.2`).
fn is_host_log_name(name: &str) -> bool {
    name == "secure"
        || name.starts_with("secure-")
        || name.starts_with("auth.log")
        || name.starts_with("audit.log")
}

/// The files to read under `paths`, sorted, and how many files were skipped.
pub fn collect(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, usize)> {
    let mut files = Vec::new();
    let mut skipped = 0;
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
        if meta.is_dir() {
            walk(path, &mut files, &mut skipped)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok((files, skipped))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut usize) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| io_error(dir, source))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, files, skipped)?;
        } else if LOG_SUFFIXES.iter().any(|s| name.ends_with(s)) || is_host_log_name(&name) {
            files.push(path);
        } else {
            *skipped += 1;
        }
    }
    Ok(())
}

fn io_error(path: &Path, source: std::io::Error) -> IngestError {
    IngestError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Cuts `files` into micro-batches of at most `limits.batch_files` files and about
/// `limits.batch_bytes` bytes once decompressed (a file larger than that is a batch of its
/// own): what a batch holds in memory, not on disk, is what is bounded.
pub fn batches<'f>(files: &'f [PathBuf], limits: &Limits) -> Vec<&'f [PathBuf]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, path) in files.iter().enumerate() {
        bytes += decompressed_size(path);
        if i + 1 - start >= limits.batch_files || bytes >= limits.batch_bytes {
            batches.push(&files[start..=i]);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < files.len() || files.is_empty() {
        batches.push(&files[start..]);
    }
    batches
}

/// About how large a file is once decompressed (see [`crate::decode::decompressed_size`]).
fn decompressed_size(path: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let stored = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let trailer = (|| {
        let mut file = std::fs::File::open(path).ok()?;
        let mut head = [0u8; 2];
        file.read_exact(&mut head).ok()?;
        if head != [0x1f, 0x8b] || stored < 18 {
            return None;
        }
        file.seek(SeekFrom::End(-4)).ok()?;
        let mut trailer = [0u8; 4];
        file.read_exact(&mut trailer).ok()?;
        Some(trailer)
    })();
    crate::decode::decompressed_size(stored, trailer)
}

/// Reads and parses one file. A file too large to read is rejected, not loaded.
pub fn read_file(path: &Path, limits: &Limits) -> Result<Parsed> {
    let meta = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
    let modified: Timestamp = meta
        .modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_default();
    let origin = path.display().to_string();
    let object = Object {
        origin: &origin,
        modified,
    };
    if meta.len() > limits.max_object_bytes {
        let mut parsed = Parsed::default();
        let reason = format!(
            "object of {} bytes exceeds the {}-byte cap",
            meta.len(),
            limits.max_object_bytes
        );
        parsed
            .rejects
            .push(reject(object, "object", "unknown", &reason, &[]));
        return Ok(parsed);
    }
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    Ok(parse_object(bytes, object, limits))
}
