//! Every input a fuzz target ever crashed on (`fuzz/regressions/TARGET/`), run again through the
//! same entry point (`auditq_parse::fuzzing`), and the bundled sample logs through every target,
//! so the fuzz harnesses themselves stay in step with the parsers.

use std::path::{Path, PathBuf};

use auditq_parse::fuzzing::TARGETS;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.file_name().is_some_and(|n| n != ".gitkeep") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_kept_fuzz_crash_now_passes() {
    let dir = repo().join("fuzz/regressions");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    let mut ran = 0;
    for (name, target) in TARGETS {
        for file in files_under(&dir.join(name)) {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} still fails", file.display());
            ran += 1;
        }
    }
    eprintln!("{ran} kept fuzz inputs ran");
}

#[test]
fn every_target_reads_the_sample_logs_without_breaking_an_invariant() {
    let files = files_under(&repo().join("sample-logs"));
    assert!(files.len() > 30, "the sample logs are missing");
    for (name, target) in TARGETS {
        for file in &files {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} on {}", file.display());
        }
    }
}
