//! Integration tests of the `auditq` binary and the query library.
//!
//! One test binary per crate: each binary links DataFusion, deltalake and the AWS SDK (about
//! 330 MB unstripped in the dev profile), so one per file cost a clean CI build several GB of
//! disk and a link each. Each module is one former test file; `cargo test -p CRATE --test it
//! MODULE::` runs one.

mod alerts_emulator;
mod auditor;
mod aws_emulator;
mod cli;
mod coverage;
mod crash;
mod evidence;
mod failures;
mod hostile;
mod redaction;
mod rules_cli;
mod scan;
mod shared_state;
mod tamper;
