#![no_main]
//! `auditq_parse::fuzzing::ssm_stream`; crashes go to `fuzz/regressions/ssm_stream/` (a unit test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_parse::fuzzing::ssm_stream(data));
