#![no_main]
//! `auditq_parse::fuzzing::object`; crashes go to `fuzz/regressions/object/` (a unit test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_parse::fuzzing::object(data));
