//! `auditq coverage` on a generated month with planted faults: every fault is found, and
//! nothing else is reported.

use std::collections::BTreeSet;
use std::process::Command;

use auditq_ingest::Lake;
use auditq_tests::month;
use serde_json::Value;

fn coverage(lake: &str, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_auditq"))
        .env_remove("AUDITQ_DATA")
        .args(["--data", lake, "--format", "json", "coverage"])
        .args(["--from", "2026-09-01", "--to", "2026-09-30"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run auditq: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn findings<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .map(|all| all.iter().filter(|f| f["kind"] == kind).collect())
        .unwrap_or_default()
}

fn subjects(report: &Value, kind: &str) -> BTreeSet<String> {
    findings(report, kind)
        .iter()
        .filter_map(|f| f["subject"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_month_with_planted_faults_has_each_found_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("lake").to_string_lossy().into_owned();
    let planted = month::write(&Lake::new(path.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(planted.rows[0], 2000, "sessions written");
    assert_eq!(planted.unrecorded.len(), 5);
    assert_eq!(planted.cut_short.len(), 10);

    let report = coverage(&path, &[]);

    let gaps = findings(&report, "cloudtrail_gap");
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["subject"], planted.missing_trail.0.as_str());
    assert_eq!(
        gaps[0]["time"].as_str(),
        Some(
            planted
                .missing_trail
                .1
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_str()
        )
    );
    assert!(
        gaps[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("(1 hour)")),
        "{gaps:?}"
    );
    assert_eq!(gaps[0]["severity"], "high");

    assert_eq!(
        subjects(&report, "session_unrecorded"),
        planted.unrecorded.iter().cloned().collect()
    );
    assert_eq!(
        subjects(&report, "recording_cut_short"),
        planted.cut_short.iter().cloned().collect()
    );
    let silent = findings(&report, "host_silent");
    assert_eq!(silent.len(), 1, "{silent:?}");
    assert_eq!(silent[0]["subject"], planted.silent_host.0.as_str());
    let first_quiet = silent[0]["time"].as_str().unwrap_or_default();
    assert!(
        first_quiet >= planted.silent_host.1.to_rfc3339().as_str(),
        "the first quiet session, {first_quiet}, is after auditd stopped"
    );

    // Nothing else: 1 + 5 + 10 + 1 findings, each kind only where it was planted.
    let all = report["findings"].as_array().map_or(0, Vec::len);
    assert_eq!(all, 17, "{:#}", report["findings"]);
    // Every kind carries the statement that shows it.
    for check in report["checks"].as_array().into_iter().flatten() {
        assert!(
            check["sql"]
                .as_str()
                .is_some_and(|s| s.starts_with("SELECT") || s.starts_with("WITH"))
        );
        assert!(check["controls"].as_array().is_some_and(|c| !c.is_empty()));
    }

    // Each gap is an alert of rule coverage.KIND, raised once however often it is checked.
    let sink = dir.path().join("alerts.ndjson");
    let sink_arg = format!("file://{}", sink.display());
    coverage(&path, &["--alerts", &sink_arg]);
    let raised = std::fs::read_to_string(&sink).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(raised.lines().count(), 17, "{raised}");
    assert!(raised.contains("coverage.cloudtrail_gap") && raised.contains("coverage.host_silent"));
    coverage(&path, &["--alerts", &sink_arg]);
    let again = std::fs::read_to_string(&sink).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.lines().count(), 17, "raised twice:\n{again}");
    let stored = Command::new(env!("CARGO_BIN_EXE_auditq"))
        .env_remove("AUDITQ_DATA")
        .args(["--data", &path, "--format", "csv"])
        .arg("select rule_id, count(*) as n, min(controls) as controls from alerts group by rule_id order by rule_id")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = String::from_utf8_lossy(&stored.stdout);
    assert!(
        stored.contains("coverage.recording_cut_short,10,A.8.15"),
        "{stored}"
    );
    assert!(
        stored.contains("coverage.session_unrecorded,5,\"A.8.2, A.8.15\""),
        "{stored}"
    );

    // The cut sessions stop 45 to 90 minutes early: an idle timeout of two hours in the
    // accounts' session preferences would explain that, and then they are not reported.
    let patient = coverage(&path, &["--idle-timeout", "120"]);
    assert!(findings(&patient, "recording_cut_short").is_empty());
    assert_eq!(findings(&patient, "cloudtrail_gap").len(), 1);
}
