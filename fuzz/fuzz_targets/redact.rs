#![no_main]
//! `auditq_parse::fuzzing::redact_text`; crashes go to `fuzz/regressions/redact/` (a unit test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_parse::fuzzing::redact_text(data));
