//! End-to-end tests of ingestion: samples, corpora, bad input and the AWS emulator.
//!
//! One test binary per crate: each binary links DataFusion, deltalake and the AWS SDK (about
//! 330 MB unstripped in the dev profile), so one per file cost a clean CI build several GB of
//! disk and a link each. Each module is one former test file; `cargo test -p CRATE --test it
//! MODULE::` runs one.

mod aws_cwl;
mod aws_follow;
mod aws_lake;
mod aws_names;
mod aws_trail_digest;
mod bad_input;
mod corpora;
mod live_stream;
mod sample_scenario;
