//! The pure part of auditq's ingest: bytes in, typed rows and [`auditq_model::Reject`]s out.
//!
//! Nothing here does I/O or awaits, so every decoder and parser can be fuzzed on its own, without
//! the lake, the AWS SDK or DataFusion (`fuzz/` beside the workspace; [`fuzzing`] holds the entry
//! points the fuzz targets and their regression tests share). `auditq-ingest` re-exports every
//! module, so `auditq_ingest::ssm` and `auditq_parse::ssm` are one module.
//!
//! - [`decode`], [`terminal`], [`prompt`], [`cloudtrail`], [`ssm`], [`host`] and [`parse`]: a
//!   malformed record becomes a reject with its position and reason; it never stops the rest of
//!   its object.
//! - [`session`] folds what every source knows about a session into one row, independent of the
//!   order sources arrive in.
//! - [`redact`] replaces secrets with keyed tokens before anything is stored.

pub mod cloudtrail;
pub mod decode;
pub mod fuzzing;
pub mod host;
pub mod names;
pub mod parse;
pub mod prompt;
pub mod redact;
pub mod session;
pub mod ssm;
pub mod terminal;
pub mod time;

pub use parse::{Limits, Parsed};
