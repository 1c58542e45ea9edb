//! `auditq rules check|test|scan` and `ingest --rules --alerts file://` as a user runs them.

use std::path::Path;
use std::process::Command;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");

fn auditq(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_auditq"))
        .current_dir(cwd)
        .env_remove("AUDITQ_DATA")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run auditq: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `auditq ingest LOGS --rules RULES --alerts file://...` into `dir/lake`: the lake's path and
/// what was published.
fn ingest_publishing_to_a_file(dir: &Path, logs: &str, rules: &str) -> (String, String) {
    let lake = dir.join("lake").to_string_lossy().into_owned();
    let alerts = dir.join("alerts.ndjson");
    let sink = format!("file://{}", alerts.display());
    let (ok, _, stderr) = auditq(
        dir,
        &[
            "--data", &lake, "ingest", logs, "--rules", rules, "--alerts", &sink,
        ],
    );
    assert!(ok, "{stderr}");
    (lake, std::fs::read_to_string(&alerts).unwrap_or_default())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn check_names_the_rule_and_line_of_each_problem() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("bad.yaml");
    write(
        &file,
        "rules:\n\
         \x20 - id: acme.fine\n\
         \x20   title: fine\n\
         \x20   severity: low\n\
         \x20   table: commands\n\
         \x20   match: { field: cmd, prefix: ls }\n\
         \x20 - id: acme.broken\n\
         \x20   title: broken\n\
         \x20   severity: high\n\
         \x20   table: commands\n\
         \x20   match: { field: cmd, regex: 'sudo (' }\n\
         \x20 - id: acme.typo\n\
         \x20   title: typo\n\
         \x20   severity: high\n\
         \x20   table: commands\n\
         \x20   match: { field: command, contains: x }\n",
    );
    let (ok, stdout, _) = auditq(dir.path(), &["rules", "check", &file.to_string_lossy()]);
    assert!(!ok, "{stdout}");
    let broken = stdout
        .lines()
        .find(|l| l.contains("acme.broken"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(broken.contains(":7"), "line of the rule: {broken}");
    assert!(broken.contains("bad pattern"), "{broken}");
    let typo = stdout
        .lines()
        .find(|l| l.contains("acme.typo"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(typo.contains(":12"), "line of the rule: {typo}");
    assert!(typo.contains("command"), "{typo}");
    assert!(!stdout.contains("acme.fine"), "{stdout}");

    let (ok, stdout, stderr) = auditq(dir.path(), &["rules", "check", "default"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}

#[test]
fn test_shows_which_rules_match_and_why() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ok, stdout, stderr) = auditq(
        dir.path(),
        &["rules", "test", "default", "--cmd", "sudo su -"],
    );
    assert!(ok, "{stderr}");
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("MATCH") && l.contains("linux.sudo_root_shell"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(verdict.contains("[high]"), "{verdict}");
    assert!(stdout.contains("yes cmd =~ /"), "{stdout}");

    let (ok, stdout, stderr) = auditq(dir.path(), &["rules", "test", "default", "--cmd", "ls -la"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 of "), "{stdout}");

    let event = r#"{"event_name":"StopLogging","event_source":"cloudtrail.amazonaws.com"}"#;
    let (ok, stdout, stderr) = auditq(dir.path(), &["rules", "test", "default", "--event", event]);
    assert!(ok, "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("MATCH") && l.contains("aws.")),
        "{stdout}"
    );
}

/// The backtest raises what a live ingest with the same rules raises, and publishes nothing.
#[test]
fn scan_counts_what_ingest_would_raise() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ok, scan, stderr) = auditq(dir.path(), &["rules", "scan", "default", "--over", SAMPLES]);
    assert!(ok, "{stderr}");
    let total: usize = scan
        .lines()
        .find_map(|l| {
            l.split(": ")
                .nth(1)?
                .strip_suffix(" alerts would be raised")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{scan}"));
    assert!(total > 0, "{scan}");
    assert!(scan.contains("linux.sudo_root_shell"), "{scan}");

    let (lake, published) = ingest_publishing_to_a_file(dir.path(), SAMPLES, "default");
    assert_eq!(published.lines().count(), total, "{published}");
    let (ok, count, stderr) = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "--format",
            "csv",
            "select count(*) n from alerts where published",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(count, format!("n\n{total}\n"));
    // The backtest over the lake agrees with the one over the files.
    let (ok, again, stderr) = auditq(dir.path(), &["--data", &lake, "rules", "scan", "default"]);
    assert!(ok, "{stderr}");
    assert!(
        again.contains(&format!(": {total} alerts would be raised")),
        "{again}"
    );
}

/// One Session Manager stream chunk with a command, as `aws logs filter-log-events` exports it.
fn stream_file(session: &str, time: &str, millis: i64, cmd: &str) -> String {
    let prompt = "[ec2-user@ip-10-0-1-11 ~]$ ";
    let message = serde_json::json!({
        "eventVersion": "1.0",
        "eventTime": time,
        "awsRegion": "eu-west-1",
        "target": {"id": "i-0a1b2c3d4e5f60711"},
        "userIdentity": {"arn": "arn:aws:iam::111122223333:user/alice"},
        "runAsUser": "ec2-user",
        "sessionId": session,
        "sessionData": [format!("{prompt}{cmd}"), "ok", prompt],
    });
    serde_json::json!({
        "events": [{
            "logStreamName": session,
            "timestamp": millis,
            "message": message.to_string(),
            "ingestionTime": millis + 200,
            "eventId": format!("{millis}0000000000000000000000000000000000000000000"),
        }]
    })
    .to_string()
}

/// Suppression and threshold state is kept beside the lake: a second process decides as one
/// process reading both files would have.
#[test]
fn suppression_and_thresholds_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rules = dir.path().join("rules.yaml");
    write(
        &rules,
        "rules:\n\
         \x20 - id: acme.sudo_once\n\
         \x20   title: sudo, once per user per 10 minutes\n\
         \x20   severity: medium\n\
         \x20   table: commands\n\
         \x20   match: { field: cmd, prefix: 'sudo ' }\n\
         \x20   suppress: { by: [user], for: 10m }\n\
         \x20 - id: acme.sudo_twice\n\
         \x20   title: second sudo of a user within 10 minutes\n\
         \x20   severity: high\n\
         \x20   table: commands\n\
         \x20   match: { field: cmd, prefix: 'sudo ' }\n\
         \x20   threshold: { count: 2, within: 10m, by: [user] }\n",
    );
    let first = dir.path().join("first.json");
    let second = dir.path().join("second.json");
    write(
        &first,
        &stream_file(
            "alice-0000000000000000a",
            "2026-10-05T09:00:00Z",
            1_791_190_800_000,
            "sudo ls /root",
        ),
    );
    write(
        &second,
        &stream_file(
            "alice-0000000000000000b",
            "2026-10-05T09:02:00Z",
            1_791_190_920_000,
            "sudo id",
        ),
    );
    let rules = rules.to_string_lossy();
    let run = |lake: &str, file: &Path, sink_path: &Path| {
        let sink = format!("file://{}", sink_path.display());
        let (ok, stdout, stderr) = auditq(
            dir.path(),
            &[
                "--data",
                lake,
                "ingest",
                &file.to_string_lossy(),
                "--rules",
                &rules,
                "--alerts",
                &sink,
            ],
        );
        assert!(ok, "{stdout}{stderr}");
        let text = std::fs::read_to_string(sink_path).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                format!(
                    "{} {}",
                    v["rule_id"].as_str().unwrap_or("?"),
                    v["cmd"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
    };

    let lake = dir.path().join("lake").to_string_lossy().into_owned();
    let sink = dir.path().join("alerts.ndjson");
    assert_eq!(run(&lake, &first, &sink), ["acme.sudo_once sudo ls /root"]);
    // A new process: the first sudo is remembered, so no second `once` alert, and the second
    // sudo within 10 minutes crosses the threshold.
    assert_eq!(
        run(&lake, &second, &sink),
        ["acme.sudo_once sudo ls /root", "acme.sudo_twice sudo id"]
    );

    // Control: without the first run's state, the second file alone raises the `once` alert
    // and no threshold alert.
    let fresh = dir.path().join("fresh").to_string_lossy().into_owned();
    let fresh_sink = dir.path().join("fresh.ndjson");
    assert_eq!(
        run(&fresh, &second, &fresh_sink),
        ["acme.sudo_once sudo id"]
    );
}

/// `--rules` without `--alerts` records alerts unpublished and leaves the outbox alone.
#[test]
fn rules_without_sinks_record_unpublished_alerts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let lake = lake.to_string_lossy();
    let (ok, _, stderr) = auditq(
        dir.path(),
        &["--data", &lake, "ingest", SAMPLES, "--rules", "default"],
    );
    assert!(ok, "{stderr}");
    let (ok, csv, stderr) = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "--format",
            "csv",
            "select count(*) n, sum(cast(published as int)) p from alerts",
        ],
    );
    assert!(ok, "{stderr}");
    let row = csv.lines().nth(1).unwrap_or_else(|| panic!("{csv}"));
    let (n, p) = row.split_once(',').unwrap_or_else(|| panic!("{csv}"));
    assert!(n.parse::<usize>().unwrap_or(0) > 0, "{csv}");
    assert_eq!(p, "0", "{csv}");
}

/// `--alerts` alone evaluates the default pack, and says so.
#[test]
fn alerts_without_rules_use_the_default_pack_and_say_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let lake = lake.to_string_lossy();
    let alerts = dir.path().join("alerts.ndjson");
    let sink = format!("file://{}", alerts.display());
    let (ok, _, stderr) = auditq(
        dir.path(),
        &["--data", &lake, "ingest", SAMPLES, "--alerts", &sink],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("--alerts without --rules: evaluating the default rule pack"),
        "{stderr}"
    );
    let published = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert!(published.contains("linux.sudo_root_shell"), "{published}");
    // Without either, nothing is said and nothing evaluated.
    let (ok, _, stderr) = auditq(
        dir.path(),
        &["--data", &format!("{lake}-2"), "ingest", SAMPLES],
    );
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("default rule pack"), "{stderr}");
}

/// One Sigma rule, loaded beside auditq's own format: the alerts a live ingest publishes are
/// the alerts `rules scan` finds over the same files, and `rules test` agrees on one event.
#[test]
fn a_sigma_rule_raises_the_same_alerts_live_and_in_a_backtest() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rules = dir.path().join("sigma");
    std::fs::create_dir_all(&rules).unwrap_or_else(|e| panic!("{e}"));
    write(
        &rules.join("chmod_tmp.yml"),
        "title: Executable bit set on a file in a temporary folder\n\
         id: 0c1d0000-0000-4000-8000-000000000001\n\
         status: test\n\
         logsource:\n\
         \x20   product: linux\n\
         \x20   category: process_creation\n\
         detection:\n\
         \x20   selection:\n\
         \x20       Image|endswith: '/chmod'\n\
         \x20       CommandLine|contains|all:\n\
         \x20           - '+x'\n\
         \x20           - '/tmp/'\n\
         \x20   filter_main:\n\
         \x20       CommandLine|contains: '/tmp/build-*/'\n\
         \x20   condition: selection and not 1 of filter_main*\n\
         level: high\n",
    );
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("{e}"));
    let commands = [
        ("alice-0000000000000000a", "cd /tmp; CHMOD +X /TMP/x"),
        ("alice-0000000000000000b", "chmod +x /tmp/build-1/run.sh"),
        (
            "alice-0000000000000000c",
            "sudo chmod +x /tmp/.x && /tmp/.x",
        ),
        ("alice-0000000000000000d", "chmod 644 /tmp/notes"),
    ];
    for (n, (session, cmd)) in commands.iter().enumerate() {
        let n = n as i64;
        write(
            &logs.join(format!("{n}.json")),
            &stream_file(
                session,
                &format!("2026-10-05T09:0{n}:00Z"),
                1_791_190_800_000 + n * 60_000,
                cmd,
            ),
        );
    }
    let rules = rules.to_string_lossy();
    let logs = logs.to_string_lossy();
    let (ok, scan, stderr) = auditq(
        dir.path(),
        &["rules", "scan", &rules, "--over", &logs, "--list"],
    );
    assert!(ok, "{stderr}");
    assert!(
        scan.contains(": 2 alerts would be raised"),
        "case-insensitive match, the filter's wildcard, and sudo's child: {scan}"
    );
    let (lake, published) = ingest_publishing_to_a_file(dir.path(), &logs, &rules);
    let published: Vec<serde_json::Value> = published
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(published.len(), 2, "{published:?}");
    for alert in &published {
        let rule = alert["rule_id"].as_str().unwrap_or_default();
        let cmd = alert["cmd"].as_str().unwrap_or_default();
        assert_eq!(rule, "sigma.chmod_tmp");
        assert_eq!(alert["severity"], "high");
        assert!(
            scan.lines().any(|l| l.contains(rule) && l.contains(cmd)),
            "published {cmd:?}, not in the backtest: {scan}"
        );
    }
    // The backtest over the lake the live run wrote agrees too.
    let (ok, again, stderr) = auditq(dir.path(), &["--data", &lake, "rules", "scan", &rules]);
    assert!(ok, "{stderr}");
    assert!(again.contains(": 2 alerts would be raised"), "{again}");
    // And `rules test` on one event, with why.
    let (ok, test, stderr) = auditq(
        dir.path(),
        &["rules", "test", &rules, "--cmd", "chmod +x /tmp/x"],
    );
    assert!(ok, "{stderr}");
    assert!(
        test.starts_with("MATCH    sigma.chmod_tmp [high]"),
        "{test}"
    );
}

/// `rules check` on a folder of Sigma rules reports what loads per log source and refuses, by
/// rule and reason, what auditq cannot honour.
#[test]
fn check_reports_sigma_rules_loaded_and_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rule = |title: &str, logsource: &str, detection: &str| {
        format!("title: {title}\nlogsource:\n{logsource}\ndetection:\n{detection}\nlevel: medium\n")
    };
    write(
        &dir.path().join("ok.yml"),
        &rule(
            "Trail stopped",
            "    product: aws\n    service: cloudtrail",
            "    selection:\n        eventName: StopLogging\n        requestParameters.name|endswith: '-trail'\n    condition: selection",
        ),
    );
    write(
        &dir.path().join("windows.yml"),
        &rule(
            "A Windows rule",
            "    product: windows\n    category: process_creation",
            "    selection:\n        Image|endswith: '\\cmd.exe'\n    condition: selection",
        ),
    );
    write(
        &dir.path().join("lookbehind.yml"),
        &rule(
            "A regex Rust lacks",
            "    product: linux\n    category: process_creation",
            "    selection:\n        CommandLine|re: '(?<!foo)bar'\n    condition: selection",
        ),
    );
    let (ok, out, _) = auditq(dir.path(), &["rules", "check", "."]);
    assert!(!ok, "refusals make check fail: {out}");
    assert!(out.contains("Sigma: 1 of 3 rules load"), "{out}");
    assert!(
        out.contains(
            "rule sigma.windows: log source \"windows/process_creation\" is not one auditq reads"
        ),
        "{out}"
    );
    assert!(out.contains("rule sigma.lookbehind: "), "{out}");
}
