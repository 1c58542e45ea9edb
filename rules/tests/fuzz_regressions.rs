//! Every input the rule-compilation fuzz target crashed on (`fuzz/regressions/rule_compile/`),
//! run again, and the default pack through the same entry point.

use std::path::Path;

use auditq_rules::fuzzing::rule_compile;

#[test]
fn every_kept_rule_compile_crash_now_passes_and_the_default_pack_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    for dir in ["../fuzz/regressions/rule_compile", "packs/default"] {
        let dir = root.join(dir);
        assert!(dir.is_dir(), "{} is missing", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.file_name().is_some_and(|n| n != ".gitkeep") {
                inputs.push(path);
            }
        }
    }
    assert!(inputs.len() >= 3, "{inputs:?}");
    for path in inputs {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| rule_compile(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
    }
}
