#![no_main]
//! `auditq_parse::fuzzing::host_logs`; crashes go to `fuzz/regressions/host_logs/` (a unit test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_parse::fuzzing::host_logs(data));
