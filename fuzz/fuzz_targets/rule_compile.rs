#![no_main]
//! `auditq_rules::fuzzing::rule_compile`; crashes go to `fuzz/regressions/rule_compile/` (a unit
//! test).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditq_rules::fuzzing::rule_compile(data));
