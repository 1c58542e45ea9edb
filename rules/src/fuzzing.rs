//! The entry point of the rule-compilation fuzz target (`fuzz/fuzz_targets/rule_compile.rs`),
//! here so its regression test (`rules/tests/fuzz_regressions.rs`) runs what the fuzzer ran.

use std::collections::BTreeMap;

use auditq_model::Table;

use crate::engine::{Engine, FieldsEvent};
use crate::spec::parse_file;

/// Rule text in, an engine or errors out, never a panic. When it compiles, the engine is run on
/// an event made of the text's own lines: its quick "could any rule match?" pass must say yes
/// whenever the full "which rules match?" pass finds one.
pub fn rule_compile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = match parse_file("fuzz.yaml", text) {
        Ok(file) => file,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a rule error without a message");
            return;
        }
    };
    let engine = match Engine::compile(&[file]) {
        Ok(engine) => engine,
        Err(errors) => {
            assert!(!errors.is_empty(), "compile failed without saying why");
            return;
        }
    };
    let mut scratch = engine.scratch();
    let mut lines = text.lines();
    for table in [
        Table::Commands,
        Table::HostEvents,
        Table::Cloudtrail,
        Table::Sessions,
    ] {
        let fields: BTreeMap<String, String> = ["cmd", "user", "target", "event_name", "kind"]
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    lines.next().unwrap_or("sudo su -").to_string(),
                )
            })
            .collect();
        let event = FieldsEvent { table, fields };
        let any = engine.any_match(&event, &mut scratch);
        let which = engine.matching(&event, &mut scratch);
        assert!(
            any || which.is_empty(),
            "the quick pass missed a rule the full pass matched"
        );
    }
}
