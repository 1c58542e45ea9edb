//! Two writers at once (two Lambda containers, two ECS tasks: here two `auditq ingest`
//! processes on one lake) share the rule state: a suppressed alert passes once in all, and a
//! threshold counts the events of both.

use std::path::Path;
use std::process::{Command, Stdio};

const RULES: &str = "rules:
  - id: t.logging_stopped
    title: CloudTrail logging stopped
    severity: high
    table: cloudtrail
    match: { field: event_name, equals: StopLogging }
    suppress: { by: [account], for: 1h }
  - id: t.many_denials
    title: many denied calls
    severity: medium
    table: cloudtrail
    match: { field: error_code, equals: AccessDenied }
    threshold: { count: 30, within: 1h, by: [account] }
";

/// One delivery file per event, so that each process commits one batch per event and the two
/// race on the state all along.
fn deliveries(dir: &Path, writer: &str, n: usize) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        // Both writers' events share the hour; each file holds one of each kind.
        let second = i * 2 + usize::from(writer == "b");
        let time = format!("2026-10-06T12:{:02}:{:02}Z", second / 60, second % 60);
        let record = |id: String, name: &str, error: &str| {
            format!(
                r#"{{"eventVersion":"1.09","eventTime":"{time}","eventSource":"cloudtrail.amazonaws.com","eventName":"{name}","eventID":"{id}","recipientAccountId":"111122223333","awsRegion":"eu-west-1","userIdentity":{{"type":"IAMUser","userName":"mallory","arn":"arn:aws:iam::111122223333:user/mallory"}}{error}}}"#
            )
        };
        let body = format!(
            r#"{{"Records":[{},{}]}}"#,
            record(format!("{writer}-stop-{i}"), "StopLogging", ""),
            record(
                format!("{writer}-denied-{i}"),
                "GetObject",
                r#","errorCode":"AccessDenied""#
            ),
        );
        let path = dir.join(format!("{writer}-{i:03}.json"));
        std::fs::write(&path, body).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn two_processes_at_once_let_a_suppressed_alert_through_once_and_share_a_threshold() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap_or_else(|e| panic!("{e}"));
    let sink = dir.path().join("alerts.ndjson");
    let per_writer = 20;
    for writer in ["a", "b"] {
        deliveries(&dir.path().join(writer), writer, per_writer);
    }
    let spawn = |writer: &str| {
        Command::new(env!("CARGO_BIN_EXE_auditq"))
            .env_remove("AUDITQ_DATA")
            .env_remove("AUDITQ_REDACTION_KEY")
            .env("AUDITQ_CONFIG_DIR", dir.path().join("config"))
            .arg("--data")
            .arg(&lake)
            .args(["ingest", "--batch-files", "1", "--rules"])
            .arg(&rules)
            .arg("--alerts")
            .arg(format!("file://{}", sink.display()))
            .arg(dir.path().join(writer))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run auditq: {e}"))
    };
    let (a, b) = (spawn("a"), spawn("b"));
    for (name, child) in [("a", a), ("b", b)] {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let published = std::fs::read_to_string(&sink).unwrap_or_default();
    let rule_ids: Vec<String> = published
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    v.get("rule_id")
                        .and_then(|r| r.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| panic!("not an alert: {line}"))
        })
        .collect();
    let count = |id: &str| rule_ids.iter().filter(|r| *r == id).count();
    // 40 StopLogging in one hour of one account: one alert, whichever process saw the first.
    assert_eq!(count("t.logging_stopped"), 1, "{published}");
    // 40 denials, 20 per process: the threshold of 30 is reached only by counting both.
    assert_eq!(count("t.many_denials"), 1, "{published}");

    let (ok, stdout, stderr) = auditq_tests::run_auditq(
        env!("CARGO_BIN_EXE_auditq"),
        &lake,
        &[
            "--format",
            "csv",
            "select rule_id, count(*) n from alerts group by rule_id order by rule_id",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout, "rule_id,n\nt.logging_stopped,1\nt.many_denials,1\n",
        "{stderr}"
    );
    let (ok, stdout, stderr) = auditq_tests::run_auditq(
        env!("CARGO_BIN_EXE_auditq"),
        &lake,
        &[
            "--format",
            "csv",
            "select count(*) n, count(distinct event_id) d from cloudtrail",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "n,d\n80,80\n");
}

/// Two processes ingesting two accounts' CloudTrail into one new lake, one file a batch: they
/// race to create each table, and each batch rewrites session files the other may rewrite too.
/// Both finish, and the lake holds what one process reading both would store.
#[test]
fn two_processes_creating_and_rewriting_the_same_tables_both_finish() {
    let samples = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sample-logs/s3/cloudtrail/AWSLogs"
    );
    let count = |lake: &Path| {
        let (ok, stdout, stderr) = auditq_tests::run_auditq(
            env!("CARGO_BIN_EXE_auditq"),
            lake,
            &[
                "--format",
                "csv",
                "select (select count(distinct event_id) from cloudtrail) t, \
                 (select count(*) from cloudtrail) n, (select count(*) from sessions) s, \
                 (select count(distinct session_id) from sessions) ds",
            ],
        );
        assert!(ok, "{stderr}");
        stdout
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let solo = dir.path().join("solo");
    let (ok, _, stderr) =
        auditq_tests::run_auditq(env!("CARGO_BIN_EXE_auditq"), &solo, &["ingest", samples]);
    assert!(ok, "{stderr}");
    for round in 0..3 {
        let lake = dir.path().join(format!("lake-{round}"));
        let spawn = |account: &str| {
            Command::new(env!("CARGO_BIN_EXE_auditq"))
                .env_remove("AUDITQ_DATA")
                .env("AUDITQ_CONFIG_DIR", dir.path().join("config"))
                .arg("--data")
                .arg(&lake)
                .args(["ingest", "--batch-files", "1"])
                .arg(Path::new(samples).join(account))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run auditq: {e}"))
        };
        let (a, b) = (spawn("111122223333"), spawn("444455556666"));
        for child in [a, b] {
            let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(count(&lake), count(&solo), "round {round}");
    }
}
