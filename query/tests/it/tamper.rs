//! Tamper evidence: every commit of the lake has a signed, chained digest, and `auditq verify`
//! finds and names each kind of tampering (a flipped byte, a deleted file, swapped digests, a
//! forged file or commit, an edited digest, another key) on its own.

use std::path::{Path, PathBuf};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");

use auditq_tests::{Run, run_auditq_with};

/// Runs auditq on `lake` with the signing key kept in `config` (not the user's).
pub(crate) fn auditq(config: &Path, lake: &Path, args: &[&str]) -> Run {
    run_auditq_with(
        env!("CARGO_BIN_EXE_auditq"),
        lake,
        args,
        &[("AUDITQ_CONFIG_DIR", config.as_os_str())],
    )
}

/// The public key `auditq key` prints for the signing key kept in `config`.
pub(crate) fn public_key_of(config: &Path, lake: &Path) -> String {
    let key = auditq(config, lake, &["key"]);
    assert!(key.ok, "{}", key.stderr);
    key.stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap_or_else(|| panic!("{}", key.stdout))
        .trim()
        .to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

/// The files in a folder, sorted, without Delta's checksum sidecars.
fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// A data file of `table`, as a path from the lake's root and on disk.
fn data_file(lake: &Path, table: &str) -> (String, PathBuf) {
    let table_dir = lake.join(table);
    for day in files_in(&table_dir, "") {
        if day.is_dir()
            && day
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("date="))
            && let Some(file) = files_in(&day, ".parquet").into_iter().next()
        {
            let rel = file
                .strip_prefix(lake)
                .unwrap_or_else(|e| panic!("{e}"))
                .to_string_lossy()
                .into_owned();
            return (rel, file);
        }
    }
    panic!("no data file in {}", table_dir.display());
}

/// The problem lines of a verify report.
fn problems(report: &str) -> Vec<String> {
    report
        .lines()
        .skip_while(|l| !l.ends_with("problems:"))
        .skip(1)
        .map(|l| l.trim().to_string())
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    lake: PathBuf,
}

impl Fixture {
    /// A lake of the samples, written in several commits per table, compacted (OPTIMIZE and
    /// VACUUM commits too), that verifies.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().to_path_buf();
        let config = root.join("config");
        let lake = root.join("lake");
        let ingest = auditq(&config, &lake, &["ingest", "--batch-files", "4", SAMPLES]);
        assert!(ingest.ok, "{}", ingest.stderr);
        let compact = auditq(&config, &lake, &["compact", "--retention-hours", "0"]);
        assert!(compact.ok, "{}", compact.stderr);
        let more = auditq(&config, &lake, &["ingest", SAMPLES]);
        assert!(more.ok, "{}", more.stderr);
        Fixture {
            _dir: dir,
            root,
            config,
            lake,
        }
    }

    /// A copy of the lake to tamper with.
    fn copy(&self, name: &str) -> PathBuf {
        let copy = self.root.join(name);
        copy_dir(&self.lake, &copy);
        copy
    }

    fn verify(&self, lake: &Path, args: &[&str]) -> Run {
        let mut all = vec!["verify"];
        all.extend_from_slice(args);
        auditq(&self.config, lake, &all)
    }
}

#[test]
fn every_kind_of_tampering_is_found_and_named() {
    let fixture = Fixture::new();

    // Untouched: every table has a signed digest per commit, and all checks.
    let clean = fixture.verify(&fixture.lake, &[]);
    assert!(clean.ok, "{}\n{}", clean.stdout, clean.stderr);
    assert!(
        clean
            .stdout
            .contains("OK: every commit has a signed digest"),
        "{}",
        clean.stdout
    );
    assert!(
        clean.stdout.contains("from the signing key"),
        "{}",
        clean.stdout
    );
    let digests = files_in(&fixture.lake.join("_auditq/digests/commands"), ".json");
    let commits = files_in(&fixture.lake.join("commands/_delta_log"), ".json");
    assert!(digests.len() >= 5, "{digests:?}");
    assert_eq!(digests.len(), commits.len(), "one digest per commit");
    let public_key = public_key_of(&fixture.config, &fixture.lake);
    assert!(clean.stdout.contains(&public_key), "{}", clean.stdout);

    // A flipped byte in a data file: its SHA-256 no longer matches (the size does).
    let flipped = fixture.copy("flipped");
    let (rel, file) = data_file(&flipped, "commands");
    let mut bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    bytes[100] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let found = fixture.verify(&flipped, &[]);
    assert!(!found.ok);
    assert_eq!(problems(&found.stdout).len(), 1, "{}", found.stdout);
    assert!(
        problems(&found.stdout)[0].starts_with(&format!("CHANGED   {rel}: SHA-256")),
        "{}",
        found.stdout
    );
    // --quick compares sizes only, and says it hashed nothing.
    let quick = fixture.verify(&flipped, &["--quick"]);
    assert!(
        quick.ok && quick.stdout.contains("(0 hashed)"),
        "{}",
        quick.stdout
    );

    // A deleted data file.
    let deleted = fixture.copy("deleted");
    let (rel, file) = data_file(&deleted, "host_events");
    std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
    let found = fixture.verify(&deleted, &[]);
    assert!(!found.ok);
    let lines = problems(&found.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("REMOVED   {rel}: listed by the digest"))),
        "{}",
        found.stdout
    );
    assert!(lines.iter().all(|l| l.contains(&rel)), "{}", found.stdout);

    // Two digests swapped.
    let swapped = fixture.copy("swapped");
    let dir = swapped.join("_auditq/digests/cloudtrail");
    let names = files_in(&dir, ".json");
    let (a, b) = (&names[1], &names[2]);
    let (text_a, text_b) = (
        std::fs::read(a).unwrap_or_else(|e| panic!("{e}")),
        std::fs::read(b).unwrap_or_else(|e| panic!("{e}")),
    );
    std::fs::write(a, &text_b).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(b, &text_a).unwrap_or_else(|e| panic!("{e}"));
    let found = fixture.verify(&swapped, &[]);
    assert!(!found.ok);
    let lines = problems(&found.stdout);
    assert_eq!(lines.len(), 2, "{}", found.stdout);
    assert!(
        lines[0].starts_with("REORDERED _auditq/digests/cloudtrail/00000000000000000001.json: this file holds the digest of cloudtrail version 2"),
        "{}",
        found.stdout
    );
    assert!(
        lines[1].starts_with("REORDERED _auditq/digests/cloudtrail/00000000000000000002.json: this file holds the digest of cloudtrail version 1"),
        "{}",
        found.stdout
    );

    // A forged data file appended, then a forged commit that makes Delta read it.
    let forged = fixture.copy("forged");
    let (_, original) = data_file(&forged, "sessions");
    let forged_file = original.with_file_name("part-00000-forged-c000.snappy.parquet");
    std::fs::copy(&original, &forged_file).unwrap_or_else(|e| panic!("{e}"));
    let rel = forged_file
        .strip_prefix(&forged)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string_lossy()
        .into_owned();
    // No commit references it, so no reader sees it: named, not a problem.
    let found = fixture.verify(&forged, &[]);
    assert!(found.ok, "{}", found.stdout);
    assert!(
        found
            .stdout
            .contains(&format!("1 files no commit references (a write that failed before its commit leaves them; no reader sees them; VACUUM deletes them):\n  {rel}\n")),
        "{}",
        found.stdout
    );
    let log = forged.join("sessions/_delta_log");
    let next = files_in(&log, ".json").len();
    let size = std::fs::metadata(&forged_file)
        .map(|m| m.len())
        .unwrap_or(0);
    let in_table = rel.strip_prefix("sessions/").unwrap_or(&rel);
    std::fs::write(
        log.join(format!("{next:020}.json")),
        format!(
            "{{\"add\":{{\"path\":\"{in_table}\",\"partitionValues\":{{\"date\":\"{}\"}},\"size\":{size},\"modificationTime\":0,\"dataChange\":true}}}}\n{{\"commitInfo\":{{\"operation\":\"WRITE\"}}}}\n",
            &in_table[5..15]
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let found = fixture.verify(&forged, &[]);
    assert!(!found.ok);
    let lines = problems(&found.stdout);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "ADDED     sessions/_delta_log/{next:020}.json: commit version {next} has no digest"
        ))),
        "{}",
        found.stdout
    );
    assert!(
        lines.contains(&format!(
            "ADDED     {rel}: the Delta log reads a data file no digest lists"
        )),
        "{}",
        found.stdout
    );

    // A digest edited after signing (a file's hash replaced to cover a changed file).
    let edited = fixture.copy("edited");
    let dir = edited.join("_auditq/digests/commands");
    let first = &files_in(&dir, ".json")[0];
    let text = std::fs::read_to_string(first).unwrap_or_else(|e| panic!("{e}"));
    let at = text
        .find("\"sha256\":\"")
        .unwrap_or_else(|| panic!("{text}"))
        + 10;
    let flipped_char = if &text[at..=at] == "0" { "1" } else { "0" };
    let text = format!("{}{flipped_char}{}", &text[..at], &text[at + 1..]);
    std::fs::write(first, text).unwrap_or_else(|e| panic!("{e}"));
    let found = fixture.verify(&edited, &[]);
    assert!(!found.ok);
    let lines = problems(&found.stdout);
    assert!(
        lines.iter().any(|l| l.starts_with("SIGNATURE _auditq/digests/commands/00000000000000000000.json: the signature does not match")),
        "{}",
        found.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "REORDERED _auditq/digests/commands/00000000000000000001.json: chains to version 0"
        )),
        "{}",
        found.stdout
    );

    // A digest deleted.
    let gone = fixture.copy("gone");
    std::fs::remove_file(gone.join("_auditq/digests/sessions/00000000000000000001.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let found = fixture.verify(&gone, &[]);
    assert!(!found.ok);
    let lines = problems(&found.stdout);
    assert!(
        lines.iter().any(|l| l.starts_with("ADDED     sessions/_delta_log/00000000000000000001.json: commit version 1 has no digest")),
        "{}",
        found.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("REMOVED   _auditq/digests/sessions/00000000000000000001.json: the digest version 2 chains to is gone")),
        "{}",
        found.stdout
    );

    // A lake whose digests someone else signed (their own key, their own chain): checked
    // against the real public key, every digest is by another key.
    let other = fixture.root.join("other-config");
    let resigned = fixture.root.join("resigned");
    let theirs = auditq(&other, &resigned, &["ingest", SAMPLES]);
    assert!(theirs.ok, "{}", theirs.stderr);
    let found = fixture.verify(&resigned, &["--public-key", &public_key]);
    assert!(!found.ok);
    let lines = problems(&found.stdout);
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("SIGNATURE") && l.contains("signed by another key")),
        "{}",
        found.stdout
    );

    // While a key is rotated, both are given and both are good.
    let theirs_public = public_key_of(&other, &resigned);
    let both = fixture.verify(
        &resigned,
        &["--public-key", &public_key, "--public-key", &theirs_public],
    );
    assert!(both.ok, "{}", both.stdout);
    assert!(both.stdout.contains("from --public-key"), "{}", both.stdout);

    // JSON for machines: the same findings, with their kind.
    let json = fixture.verify(&flipped, &["--format", "json"]);
    assert!(!json.ok);
    let value: serde_json::Value =
        serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.stdout));
    assert_eq!(value["problems"][0]["finding"], "changed", "{value}");
}

#[test]
fn verify_without_digests_or_key_says_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("config");
    let lake = dir.path().join("lake");
    let ingest = auditq(&config, &lake, &["ingest", SAMPLES]);
    assert!(ingest.ok, "{}", ingest.stderr);
    // Someone removes every digest: each commit is then one no digest covers.
    std::fs::remove_dir_all(lake.join("_auditq/digests")).unwrap_or_else(|e| panic!("{e}"));
    let found = auditq(&config, &lake, &["verify"]);
    assert!(!found.ok);
    let lines = problems(&found.stdout);
    assert!(
        lines.iter().any(|l| l.contains(
            "commands/_delta_log/00000000000000000000.json: commit version 0 has no digest"
        )),
        "{}",
        found.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("a data file no digest lists")),
        "{}",
        found.stdout
    );
}
