#![no_main]
//! `auditq_parse::fuzzing::cloudwatch_envelope`; crashes go to `fuzz/regressions/cloudwatch_envelope/` (a unit test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_parse::fuzzing::cloudwatch_envelope(data));
