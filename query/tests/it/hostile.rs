//! The query surface is read-only and bounded: statements that would write, change settings,
//! read files or URLs outside the lake, or run unbounded are refused with a message that says
//! why, and the lake is unchanged afterwards.

use std::path::{Path, PathBuf};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");

fn run(lake: &Path, args: &[&str]) -> (bool, String, String) {
    auditq_tests::run_auditq(env!("CARGO_BIN_EXE_auditq"), lake, args)
}

/// Every file under the lake with its size, to show nothing was written.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            found.extend(listing(&path));
        } else {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            found.push((path, size));
        }
    }
    found.sort();
    found
}

/// The files of a lake but its access log's (which records every look, refused ones too).
fn besides_the_access_log(files: Vec<(PathBuf, u64)>) -> Vec<(PathBuf, u64)> {
    files
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("access_log"))
        .collect()
}

#[test]
fn hostile_statements_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let (ok, _, stderr) = run(&lake, &["ingest", SAMPLES]);
    assert!(ok, "{stderr}");
    let before = listing(&lake);
    let outside = dir.path().join("written.csv");
    let outside = outside.to_string_lossy();
    let copy = format!("copy (select * from commands) to '{outside}'");
    let copy_csv = format!("copy commands to '{outside}' stored as csv");
    let explain_copy = format!("explain analyze copy commands to '{outside}' stored as csv");
    let external = format!("create external table t stored as csv location '{outside}'");
    // (statement, what the refusal must say)
    let hostile: Vec<(&str, &str)> = vec![
        ("drop table commands", "read-only"),
        ("create table x as select * from commands", "read-only"),
        ("create view v as select 1", "read-only"),
        ("create schema s", "read-only"),
        ("drop schema public cascade", "read-only"),
        ("insert into commands (cmd) values ('forged')", "read-only"),
        ("delete from commands", "read-only"),
        ("update commands set cmd = 'forged'", "read-only"),
        ("truncate commands", "read-only"),
        ("alter table commands add column x int", "not implemented"),
        (&copy, "only SQL queries"),
        (&copy_csv, "only SQL queries"),
        (&external, "only SQL queries"),
        (
            "create external table p stored as parquet location 's3://other-bucket/data/'",
            "only SQL queries",
        ),
        (
            "set datafusion.execution.target_partitions = 1",
            "read-only",
        ),
        (
            "set datafusion.catalog.information_schema = false",
            "read-only",
        ),
        ("prepare p as select * from commands", "read-only"),
        ("create function f() returns int return 1", "read-only"),
        ("select * from '/etc/passwd'", "not found"),
        ("select * from 'file:///etc/passwd'", "not found"),
        (
            "select * from 'https://example.com/data.parquet'",
            "not found",
        ),
        ("select * from read_csv('/etc/passwd')", "not found"),
        ("select 1; drop table commands", "one SQL statement"),
        // EXPLAIN is allowed of queries only: ANALYZE runs what it explains.
        ("explain analyze delete from commands", "read-only"),
        (
            "explain analyze insert into commands (cmd) values ('forged')",
            "read-only",
        ),
        ("explain drop table commands", "read-only"),
        (&explain_copy, "only SQL queries"),
        (
            "select cmd from commands; delete from commands",
            "one SQL statement",
        ),
    ];
    assert!(hostile.len() >= 20);
    for (statement, says) in &hostile {
        let (ok, stdout, stderr) = run(&lake, &[statement]);
        assert!(!ok, "{statement:?} was run: {stdout}");
        assert!(
            stderr.contains(says),
            "{statement:?}: expected {says:?} in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{statement:?}: {stderr}");
    }
    assert!(
        !Path::new(outside.as_ref()).exists(),
        "a statement wrote outside the lake"
    );
    // What they change is the access log: each refusal is recorded there, as refused.
    assert_eq!(
        besides_the_access_log(listing(&lake)),
        besides_the_access_log(before.clone()),
        "a refused statement changed the lake"
    );
    let (ok, recorded, stderr) = run(
        &lake,
        &[
            "--format",
            "csv",
            "select count(*) as refused from access_log where action = 'query' and outcome <> 'ok'",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(recorded, format!("refused\n{}\n", hostile.len()));

    // Unbounded work is stopped by the limits, with a message naming the option.
    let (ok, _, stderr) = run(
        &lake,
        &["--timeout", "2", "select count(*) from range(100000000000)"],
    );
    assert!(!ok && stderr.contains("ran longer than 2 s"), "{stderr}");
    let (ok, _, stderr) = run(&lake, &["--max-rows", "10", "select cmd from commands"]);
    assert!(!ok && stderr.contains("more than 10 rows"), "{stderr}");
    let (ok, _, stderr) = run(
        &lake,
        &[
            "--max-memory",
            "1",
            "select a.cmd, b.cmd, c.cmd from commands a, commands b, commands c order by 1, 2, 3",
        ],
    );
    assert!(
        !ok && stderr.contains("more memory than --max-memory"),
        "{stderr}"
    );
    // Within the limits the same kinds of statement answer.
    let (ok, stdout, stderr) = run(
        &lake,
        &[
            "--max-rows",
            "68",
            "--format",
            "csv",
            "select count(*) n from commands",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "n\n68\n");
    assert_eq!(
        besides_the_access_log(listing(&lake)),
        besides_the_access_log(before)
    );
}

/// A damaged commit in a table's Delta log stops queries and ingests with an error naming the
/// file; nothing is answered from the rest, and nothing is written.
#[test]
fn a_damaged_delta_log_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let (ok, _, stderr) = run(&lake, &["ingest", SAMPLES, "--batch-files", "5"]);
    assert!(ok, "{stderr}");
    let commit = lake.join("commands/_delta_log/00000000000000000002.json");
    assert!(commit.is_file());
    std::fs::write(&commit, "{\"add\": {\"path\": truncated").unwrap_or_else(|e| panic!("{e}"));
    let before = listing(&lake);
    let (ok, stdout, stderr) = run(&lake, &["select count(*) from commands"]);
    assert!(!ok, "answered from a damaged log: {stdout}");
    assert!(
        stderr.contains("the Delta log is damaged")
            && stderr.contains("commands/_delta_log/00000000000000000002.json"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&lake, &["ingest", SAMPLES]);
    assert!(!ok);
    assert!(stderr.contains("00000000000000000002.json"), "{stderr}");
    // The failed look is in the access log; nothing else is written.
    assert_eq!(
        besides_the_access_log(listing(&lake)),
        besides_the_access_log(before),
        "something was written to a damaged lake"
    );
    // The other tables still answer.
    let (ok, stdout, stderr) = run(
        &lake,
        &["--format", "csv", "select count(*) n from sessions"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "n\n14\n");
}
