//! The evidence bundle: `auditq evidence` writes one file, and `auditq verify FILE` checks it
//! on a machine that has never seen the lake, naming a flipped byte, a removed row file, a
//! swapped digest, an added file and another key.

use std::path::{Path, PathBuf};
use std::process::Command;

use auditq_tests::Run;

use crate::tamper::{auditq, public_key_of};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");

/// The auditor's machine: no lake, no key, a fresh configuration folder.
fn verify_elsewhere(bundle: &Path, public_key: &str) -> (Run, PathBuf) {
    let away = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")).keep();
    let copy = away.join("bundle.tar");
    std::fs::copy(bundle, &copy).unwrap_or_else(|e| panic!("{e}"));
    let run = auditq(
        &away.join("config"),
        &away.join("no-lake"),
        &[
            "verify",
            &copy.to_string_lossy(),
            "--public-key",
            public_key,
        ],
    );
    assert!(
        !away.join("no-lake").exists(),
        "verifying a bundle made a lake"
    );
    assert!(
        !away.join("config").exists(),
        "verifying a bundle made a key"
    );
    (run, away)
}

/// Where a member's bytes start in a tar archive.
fn member_offset(tar: &[u8], name: &str) -> usize {
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        let end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let size_text = String::from_utf8_lossy(&header[124..135])
            .trim_matches('\0')
            .to_string();
        let size = usize::from_str_radix(size_text.trim(), 8).unwrap_or(0);
        let prefix_end = header[345..500].iter().position(|b| *b == 0).unwrap_or(155);
        let prefix = String::from_utf8_lossy(&header[345..345 + prefix_end]);
        let short = String::from_utf8_lossy(&header[..end]);
        let full = if prefix.is_empty() {
            short.to_string()
        } else {
            format!("{prefix}/{short}")
        };
        if full == name {
            return at + 512;
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    panic!("{name} is not in the archive");
}

fn tar(dir: &Path, args: &[&str]) {
    let out = Command::new("tar")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn members(bundle: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(bundle)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_bundle_verifies_offline_and_each_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("config");
    let lake = dir.path().join("lake");
    let ingest = auditq(&config, &lake, &["ingest", SAMPLES, "--rules", "default"]);
    assert!(ingest.ok, "{}", ingest.stderr);
    let public_key = public_key_of(&config, &lake);

    let bundle = dir.path().join("evidence.tar");
    let made = auditq(
        &config,
        &lake,
        &[
            "evidence",
            "--from",
            "2026-10-05",
            "--to",
            "2026-10-06",
            "-o",
            &bundle.to_string_lossy(),
        ],
    );
    assert!(made.ok, "{}", made.stderr);
    let names = members(&bundle);
    for expected in [
        "evidence/MANIFEST.json",
        "evidence/MANIFEST.sig",
        "evidence/report.html",
        "evidence/coverage.json",
        "evidence/README.txt",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    // The period's days only (names: all of its history).
    let data: Vec<&String> = names.iter().filter(|n| n.ends_with(".parquet")).collect();
    assert!(
        data.iter()
            .any(|n| n.starts_with("evidence/lake/commands/date=2026-10-05/"))
    );
    assert!(
        data.iter()
            .any(|n| n.starts_with("evidence/lake/alerts/date=2026-10-06/"))
    );
    assert!(
        !data
            .iter()
            .any(|n| n.contains("date=2026-10-04") && !n.contains("/names/")),
        "{data:?}"
    );
    // No partial file is left beside it.
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    let (run, _) = verify_elsewhere(&bundle, &public_key);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("OK: the manifest is signed"),
        "{}",
        run.stdout
    );

    // Without --public-key it says whose key it trusted.
    let away = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let own = auditq(
        &away.path().join("c"),
        &away.path().join("l"),
        &["verify", &bundle.to_string_lossy()],
    );
    assert!(own.ok, "{}", own.stdout);
    assert!(
        own.stdout.contains("compare it with the key id"),
        "{}",
        own.stdout
    );

    let bytes = std::fs::read(&bundle).unwrap_or_else(|e| panic!("{e}"));
    let row_file = (*data
        .iter()
        .find(|n| n.contains("/commands/"))
        .unwrap_or_else(|| panic!("{data:?}")))
    .clone();

    // 1. A flipped byte in a row file.
    let flipped = dir.path().join("flipped.tar");
    let mut changed = bytes.clone();
    let at = member_offset(&changed, &row_file) + 100;
    changed[at] ^= 0x01;
    std::fs::write(&flipped, &changed).unwrap_or_else(|e| panic!("{e}"));
    let (run, _) = verify_elsewhere(&flipped, &public_key);
    assert!(!run.ok);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("CHANGED") && l.contains(&row_file)),
        "{}",
        run.stdout
    );

    // 2. A removed row file.
    let removed = dir.path().join("removed.tar");
    std::fs::copy(&bundle, &removed).unwrap_or_else(|e| panic!("{e}"));
    tar(dir.path(), &["--delete", "-f", "removed.tar", &row_file]);
    let (run, _) = verify_elsewhere(&removed, &public_key);
    assert!(!run.ok);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("REMOVED") && l.contains(&row_file)),
        "{}",
        run.stdout
    );

    // 3. Two digests swapped, the manifest rewritten to match them and signed by another key:
    //    the chain and the signature both give it away.
    let work = dir.path().join("swap");
    std::fs::create_dir_all(&work).unwrap_or_else(|e| panic!("{e}"));
    tar(&work, &["-xf", &bundle.to_string_lossy()]);
    let digests = work.join("evidence/lake/_auditq/digests");
    let commands = digests.join("commands/00000000000000000000.json");
    let sessions = digests.join("sessions/00000000000000000000.json");
    let (a, b) = (
        std::fs::read(&commands).unwrap_or_else(|e| panic!("{e}")),
        std::fs::read(&sessions).unwrap_or_else(|e| panic!("{e}")),
    );
    std::fs::write(&commands, &b).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&sessions, &a).unwrap_or_else(|e| panic!("{e}"));
    let swapped = dir.path().join("swapped.tar");
    tar(&work, &["-cf", &swapped.to_string_lossy(), "evidence"]);
    let (run, _) = verify_elsewhere(&swapped, &public_key);
    assert!(!run.ok);
    assert!(
        run.stdout.lines().any(|l| l.contains("REORDERED")
            && l.contains("digests/commands/00000000000000000000.json")
            && l.contains("holds the digest of sessions")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("CHANGED") && l.contains("digests/commands/")),
        "the manifest's hash of the digest no longer matches:\n{}",
        run.stdout
    );

    // 4. A file added to the archive.
    let added = dir.path().join("added.tar");
    std::fs::copy(&bundle, &added).unwrap_or_else(|e| panic!("{e}"));
    let extra_dir = dir
        .path()
        .join("extra/evidence/lake/commands/date=2026-10-05");
    std::fs::create_dir_all(&extra_dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        extra_dir.join("part-forged.parquet"),
        b"PAR1 forged rows PAR1",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    tar(
        &dir.path().join("extra"),
        &[
            "-rf",
            &added.to_string_lossy(),
            "evidence/lake/commands/date=2026-10-05/part-forged.parquet",
        ],
    );
    let (run, _) = verify_elsewhere(&added, &public_key);
    assert!(!run.ok);
    let forged = "evidence/lake/commands/date=2026-10-05/part-forged.parquet";
    assert!(
        run.stdout.lines().any(|l| l.contains("ADDED")
            && l.contains(forged)
            && l.contains("not in the manifest")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("ADDED") && l.contains(forged) && l.contains("no digest")),
        "{}",
        run.stdout
    );

    // 5. Another key than the one published.
    let other_key = public_key_of(&dir.path().join("other"), &dir.path().join("other-lake"));
    let (run, _) = verify_elsewhere(&bundle, &other_key);
    assert!(!run.ok);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("SIGNATURE") && l.contains("MANIFEST.json")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("SIGNATURE") && l.contains("signed by another key")),
        "{}",
        run.stdout
    );
}

#[test]
fn every_look_is_in_the_access_log_under_the_digests() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("config");
    let lake = dir.path().join("lake");
    let ingest = auditq(&config, &lake, &["ingest", SAMPLES]);
    assert!(ingest.ok, "{}", ingest.stderr);
    // Ingesting is not looking.
    let none = auditq(
        &config,
        &lake,
        &["--format", "csv", "select count(*) as n from access_log"],
    );
    assert!(none.ok, "{}", none.stderr);
    assert!(none.stdout.contains("n\n0"), "{}", none.stdout);

    let looks: [&[&str]; 4] = [
        &["select user, cmd from commands where cmd like 'sudo%'"],
        &["replay", "bob-02c3d4e5f6a7b8c91"],
        &["coverage", "--from", "2026-10-04", "--to", "2026-10-06"],
        &[
            "report",
            "--from",
            "2026-10-04",
            "--to",
            "2026-10-06",
            "-o",
            "/dev/null",
        ],
    ];
    for args in looks {
        let run = auditq(&config, &lake, args);
        assert!(run.ok, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("not recorded"), "{}", run.stderr);
    }
    let refused = auditq(&config, &lake, &["drop table commands"]);
    assert!(!refused.ok);
    let log = auditq(
        &config,
        &lake,
        &[
            "--format",
            "csv",
            "select action, what, rows, outcome, os_user is not null as who from access_log order by time",
        ],
    );
    assert!(log.ok, "{}", log.stderr);
    let lines: Vec<&str> = log.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 6, "{}", log.stdout);
    assert_eq!(
        lines[0],
        "query,select count(*) as n from access_log,1,ok,true"
    );
    assert_eq!(
        lines[1],
        "query,\"select user, cmd from commands where cmd like 'sudo%'\",14,ok,true"
    );
    assert!(
        lines[2].starts_with("replay,bob-02c3d4e5f6a7b8c91,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("coverage,2026-10-04T00:00:00Z to 2026-10-07T00:00:00Z,"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("report,2026-10-04T00:00:00Z to 2026-10-07T00:00:00Z,,ok"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].starts_with("query,drop table commands,,"),
        "{}",
        lines[5]
    );
    assert!(
        !lines[5].contains(",ok,"),
        "a refused statement is recorded as refused: {}",
        lines[5]
    );

    // The access log is under the signed digests like every other table.
    let verified = auditq(&config, &lake, &["verify"]);
    assert!(verified.ok, "{}", verified.stdout);
    assert!(
        verified.stdout.contains("access_log"),
        "{}",
        verified.stdout
    );
}

#[test]
fn a_lake_that_cannot_be_written_still_answers_and_says_it_did_not_record() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("config");
    let lake = dir.path().join("lake");
    let ingest = auditq(&config, &lake, &["ingest", SAMPLES]);
    assert!(ingest.ok, "{}", ingest.stderr);
    // Where the access log's table would be, something that is not a folder: its first commit
    // cannot be written (as on a read-only lake, which root's tests cannot make by chmod).
    std::fs::write(lake.join("access_log"), b"not a table").unwrap_or_else(|e| panic!("{e}"));
    let run = auditq(
        &config,
        &lake,
        &["--format", "csv", "select count(*) as n from sessions"],
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout, "n\n14\n");
    assert!(
        run.stderr
            .contains("this query is not recorded in the access log: the lake cannot be written"),
        "{}",
        run.stderr
    );
}
