#![no_main]
//! `auditq_parse::fuzzing::gzip`; crashes go to `fuzz/regressions/gzip/` (a unit test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_parse::fuzzing::gzip(data));
