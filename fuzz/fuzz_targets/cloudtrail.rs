#![no_main]
//! `auditq_parse::fuzzing::cloudtrail_records`; crashes go to `fuzz/regressions/cloudtrail/` (a unit test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_parse::fuzzing::cloudtrail_records(data));
