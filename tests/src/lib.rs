//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared corpora beside the repository, when present (`../shared/corpora`).
pub fn corpora() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/corpora");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: ../shared/corpora is absent; corpus conformance checks did not run");
        None
    }
}

/// The scenario's "every sudo command" question; its answer is `fixtures/sample_sudo_commands.csv`.
pub const SUDO_COMMANDS_SQL: &str = include_str!("../fixtures/sample_sudo_commands.sql");
