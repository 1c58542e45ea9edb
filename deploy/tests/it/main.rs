//! The Lambda handler, the ECS service and their configuration.
//!
//! One test binary per crate: each binary links DataFusion, deltalake and the AWS SDK (about
//! 330 MB unstripped in the dev profile), so one per file cost a clean CI build several GB of
//! disk and a link each. Each module is one former test file; `cargo test -p CRATE --test it
//! MODULE::` runs one.

mod common;
mod config;
mod lambda;
mod service;
