//! The auditor's workflow on the sample scenario (`sample-logs/README.md`): named questions,
//! filters on any statement, Parquet export, replay, and the HTML evidence report rendered in
//! headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");

fn run(lake: &Path, args: &[&str]) -> (bool, String, String) {
    auditq_tests::run_auditq(env!("CARGO_BIN_EXE_auditq"), lake, args)
}

fn ok(lake: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(lake, args);
    assert!(success, "auditq {args:?} failed:\n{stderr}");
    stdout
}

fn csv(lake: &Path, args: &[&str]) -> String {
    let mut all = vec!["--format", "csv"];
    all.extend_from_slice(args);
    ok(lake, &all)
}

/// The sample scenario ingested with the default rules into a fresh lake.
fn sample_lake() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let summary = ok(&lake, &["ingest", SAMPLES, "--rules", "default"]);
    assert!(
        summary.contains("alerts          45 read     45 added"),
        "{summary}"
    );
    (dir, lake)
}

/// The evidence report of the samples' October, written to `dir/report.html`: its path and HTML.
fn october_report(dir: &Path, lake: &Path) -> (PathBuf, String) {
    let report = dir.join("report.html");
    let report_arg = report.to_string_lossy().into_owned();
    ok(
        lake,
        &[
            "report",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "-o",
            &report_arg,
        ],
    );
    let html = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}"));
    (report, html)
}

#[test]
fn named_questions_and_filters_answer_the_scenario() {
    let (dir, lake) = sample_lake();

    // Who accessed prod-web-1: alice and carol on Monday, bob on Tuesday (a shell, then his Run
    // Command), from their own IPs.
    let who = csv(&lake, &["who", "i-0a1b2c3d4e5f60711"]);
    let rows: Vec<Vec<&str>> = who
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let people: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[2], r[4])).collect();
    assert_eq!(
        people,
        [
            ("2026-10-05T09:12:03Z", "alice", "203.0.113.10"),
            ("2026-10-05T14:05:44Z", "carol@example.com", "192.0.2.77"),
            ("2026-10-06T09:30:00Z", "bob", "198.51.100.23"),
            ("2026-10-06T12:30:00Z", "bob", "198.51.100.23"),
        ],
        "{who}"
    );
    // --show-sql prints the statement, which answers the same when run as SQL.
    let (_, _, shown) = run(
        &lake,
        &[
            "--show-sql",
            "--format",
            "csv",
            "who",
            "i-0a1b2c3d4e5f60711",
        ],
    );
    let statement = shown.trim().trim_end_matches(';');
    assert!(statement.starts_with("select started_at"), "{shown}");
    assert_eq!(csv(&lake, &[statement]), who);

    // dave's sessions: two shells on staging and the port forward, which nothing recorded.
    let dave = csv(&lake, &["sessions", "--user", "dave"]);
    let kinds: Vec<String> = dave
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{} {} {} {}", f[4], f[6], f[10], f[11])
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "i-0c3d4e5f607182933 staging shell stream",
            "i-0c3d4e5f607182933 staging shell stream",
            "i-0c3d4e5f607182933 staging port_forward none"
        ],
        "{dave}"
    );
    // --since/--until by day: alice on Tuesday is the vim session on prod-db-1 (renamed
    // prod-db-primary that morning) and her Instance Connect login to the bastion.
    let tuesday = csv(
        &lake,
        &[
            "sessions",
            "--user",
            "alice",
            "--since",
            "2026-10-06",
            "--until",
            "2026-10-06",
        ],
    );
    assert_eq!(tuesday.lines().count(), 3, "{tuesday}");
    assert!(
        tuesday.contains("i-0b2c3d4e5f6071822,prod-db-primary,production,111122223333,acme-prod,")
            && tuesday.contains("alice-0e1f2a3b4c5d6e7f8"),
        "{tuesday}"
    );
    assert!(
        tuesday.contains(",instance_connect,host_only,1,eic-"),
        "{tuesday}"
    );
    let monday = csv(
        &lake,
        &["sessions", "--user", "alice", "--until", "2026-10-05"],
    );
    assert!(
        monday.contains("alice-0a7f3c9e1b2d4f601") && !monday.contains("alice-0e1f"),
        "{monday}"
    );

    // The commands of that session, as she finally ran them.
    let commands = csv(&lake, &["commands", "alice-0e1f2a3b4c5d6e7f8"]);
    let cmds: Vec<&str> = commands
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap_or(""))
        .collect();
    assert_eq!(
        cmds,
        [
            "systemctl status ssh",
            "sudo vim /etc/ssh/sshd_config",
            "sudo systemctl restart ssh",
            "systemctl status ssh",
            "exit"
        ]
    );

    // Filters apply to any statement and every table in it, joins included.
    let sudo = "select c.user, c.cmd from commands c join sessions s on c.session_id = s.session_id \
                where c.cmd like 'sudo%' order by c.time";
    let all = csv(&lake, &[sudo]);
    let bob = csv(&lake, &["--user", "bob", sudo]);
    assert_eq!(all.lines().count(), 15, "{all}");
    // bob's SSH session through Session Manager has no recording: what he ran with sudo there
    // is known from auditd alone.
    assert_eq!(
        bob,
        "user,cmd\nbob,sudo -u postgres psql -c 'select count(*) from pg_stat_activity;'\n\
         bob,sudo tail -n 5 /var/log/nginx/error.log\nbob,sudo visudo\nbob,sudo cat /etc/shadow\n"
    );
    let staging = csv(
        &lake,
        &[
            "--account",
            "444455556666",
            "select distinct user from commands order by user",
        ],
    );
    assert_eq!(staging, "user\ncarol@example.com\ndave\n");
    let trail = csv(
        &lake,
        &[
            "--target",
            "i-0d4e5f60718293a44",
            "select user, event_name from cloudtrail order by time",
        ],
    );
    // Its tags set, alice's Instance Connect key, bob's SSH session.
    assert_eq!(
        trail,
        "user,event_name\ncarol@example.com,CreateTags\ncarol@example.com,CreateTags\n\
         alice,SendSSHPublicKey\nbob,StartSession\n"
    );
    let wildcard = csv(
        &lake,
        &["--target", "i-0c3d%", "select count(*) n from sessions"],
    );
    assert_eq!(wildcard, "n\n4\n");
    let alerts = csv(
        &lake,
        &[
            "--since",
            "2026-10-06T18:00:00Z",
            "select rule_id, user from alerts order by time",
        ],
    );
    assert!(alerts.contains("aws.cloudtrail_tampering,dave"), "{alerts}");
    assert!(!alerts.contains("linux.sudo_root_shell"), "{alerts}");

    // A filter a table cannot take is refused, not ignored.
    let (success, _, stderr) = run(&lake, &["--user", "bob", "select count(*) from rejects"]);
    assert!(!success);
    assert!(
        stderr.contains("--user does not apply to table rejects"),
        "{stderr}"
    );
    let (success, _, stderr) = run(&lake, &["--since", "yesterday", "sessions"]);
    assert!(!success);
    assert!(stderr.contains("is not a time"), "{stderr}");

    // Parquet export of an answer, read back with the parquet reader.
    let file = dir.path().join("sudo.parquet");
    let file_arg = file.to_string_lossy().into_owned();
    ok(
        &lake,
        &[
            "--format",
            "parquet",
            "-o",
            &file_arg,
            "--user",
            "dave",
            "select time, cmd where cmd like 'sudo%'",
        ],
    );
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap_or_else(|e| panic!("{e}")),
    )
    .and_then(|b| b.build())
    .unwrap_or_else(|e| panic!("{e}"));
    let batches: Vec<_> = reader
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    let schema = batches[0].schema();
    assert_eq!(schema.field(0).name(), "time");
    assert!(matches!(
        schema.field(0).data_type(),
        arrow::datatypes::DataType::Timestamp(_, Some(_))
    ));
    let (success, _, stderr) = run(&lake, &["--format", "parquet", "select 1"]);
    assert!(!success && stderr.contains("-o FILE"), "{stderr}");
}

#[test]
fn replay_renders_what_the_user_saw() {
    let (_dir, lake) = sample_lake();
    // alice's S3 transcript: a typo erased with backspaces, vim on the alternate screen, and a
    // history recall redrawn over the line.
    let screen = ok(&lake, &["replay", "alice-0e1f2a3b4c5d6e7f8"]);
    let prompts: Vec<&str> = screen
        .lines()
        .filter(|l| l.starts_with("ubuntu@ip-10-0-2-12:~$ "))
        .collect();
    assert_eq!(
        prompts,
        [
            "ubuntu@ip-10-0-2-12:~$ systemctl status ssh",
            "ubuntu@ip-10-0-2-12:~$ sudo vim /etc/ssh/sshd_config",
            "ubuntu@ip-10-0-2-12:~$ sudo systemctl restart ssh",
            "ubuntu@ip-10-0-2-12:~$ systemctl status ssh",
            "ubuntu@ip-10-0-2-12:~$ exit",
        ],
        "{screen}"
    );
    assert!(screen.contains("Active: active (running)"), "{screen}");
    assert!(
        !screen.contains("stauts") && !screen.contains("\u{1b}["),
        "{screen}"
    );
    assert!(
        !screen.contains("-- INSERT --"),
        "the editor's screen is gone: {screen}"
    );

    let commands = ok(&lake, &["replay", "alice-0e1f2a3b4c5d6e7f8", "--commands"]);
    assert_eq!(
        commands,
        "2026-10-06T11:00:06Z  ubuntu     systemctl status ssh\n\
         2026-10-06T11:00:06Z  ubuntu     sudo vim /etc/ssh/sshd_config\n\
         2026-10-06T11:00:06Z  ubuntu     sudo systemctl restart ssh\n\
         2026-10-06T11:00:06Z  ubuntu     systemctl status ssh\n\
         2026-10-06T11:00:06Z  ubuntu     exit\n"
    );

    // A stream carries a time per chunk: commands get theirs, and it plays at (sped-up) pace.
    let stream = ok(&lake, &["replay", "dave-0d9a5b1e3f4a6c823", "--commands"]);
    let stored = csv(
        &lake,
        &[
            "select time, cmd from commands where session_id = 'dave-0d9a5b1e3f4a6c823' order by seq",
        ],
    );
    let from_lake: Vec<String> = stored
        .lines()
        .skip(1)
        .map(|l| l.replacen(',', " ", 1))
        .collect();
    let replayed: Vec<String> = stream
        .lines()
        .map(|l| {
            let (time, rest) = l.split_once("  ").unwrap_or_default();
            format!(
                "{time} {}",
                rest.trim_start()
                    .split_once(' ')
                    .map(|(_, c)| c.trim_start())
                    .unwrap_or("")
            )
        })
        .collect();
    assert_eq!(replayed, from_lake, "{stream}");
    let started = std::time::Instant::now();
    let played = ok(
        &lake,
        &[
            "replay",
            "dave-0d9a5b1e3f4a6c823",
            "--real-time",
            "--speed",
            "1000",
            "--max-wait",
            "0.05",
        ],
    );
    assert!(played.contains("sudo -i"), "{played}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // A port forward leaves nothing to replay, and auditq says why; SSH through Session
    // Manager is known from the host's logs only, and replay points there.
    let (success, _, stderr) = run(&lake, &["replay", "bob-0f1a2b3c4d5e6f701"]);
    assert!(!success);
    assert!(
        stderr.contains("(logged = host_only)")
            && stderr.contains("auditq commands bob-0f1a2b3c4d5e6f701"),
        "{stderr}"
    );
    let (success, _, stderr) = run(&lake, &["replay", "dave-01b2c3d4e5f6a7b80"]);
    assert!(!success);
    assert!(
        stderr.contains("no recording to replay (logged = none)"),
        "{stderr}"
    );
    let (success, _, stderr) = run(&lake, &["replay", "nobody-00000000000000000"]);
    assert!(!success && stderr.contains("no session"), "{stderr}");
}

/// Debian's Chromium, installed by ./scripts/test.sh.
fn chromium() -> PathBuf {
    let path = std::env::var_os("AUDITQ_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "this test renders the report in headless Chromium, which is not at {}: run \
         ./scripts/test.sh, which installs Debian's chromium package (or set AUDITQ_CHROMIUM)",
        path.display()
    );
    path
}

fn headless(dir: &Path, args: &[&str], page: &Path) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            // Nothing may be fetched: the report must be whole by itself.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run chromium: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn the_evidence_report_renders_in_headless_chromium() {
    let (dir, lake) = sample_lake();
    let (report, html) = october_report(dir.path(), &lake);

    // Self-contained: no script, nothing loaded from anywhere.
    for external in ["<script", "src=", "<link", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the report loads or runs {external}"
        );
    }
    // Every table's statement is in it, and each answers the same when run again.
    let per_user = html
        .split("<pre>")
        .map(|p| p.split("</pre>").next().unwrap_or(""))
        .find(|q| q.starts_with("SELECT user, count(*) AS sessions"))
        .unwrap_or_else(|| panic!("no per-user query"))
        .replace("&#39;", "'")
        .replace("&gt;", ">")
        .replace("&lt;", "<");
    let again = csv(&lake, &[&per_user]);
    assert!(
        again.starts_with("user,sessions,instances,commands,unrecorded"),
        "{again}"
    );
    // bob: three shells, the SSH session, and the Run Command on two instances (one of which
    // left no record).
    assert!(again.contains("\nbob,5,3,18,1,"), "{again}");
    assert!(again.contains("\ndave,3,1,9,1,"), "{again}");

    let pdf = dir.path().join("report.pdf");
    let (_, stderr) = headless(
        dir.path(),
        &[&format!("--print-to-pdf={}", pdf.display())],
        &report,
    );
    let bytes = std::fs::read(&pdf).unwrap_or_else(|e| panic!("no PDF ({e}): {stderr}"));
    assert!(
        bytes.starts_with(b"%PDF-") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
    assert!(
        !stderr.contains("Uncaught") && !stderr.contains("CONSOLE"),
        "{stderr}"
    );

    // The DOM Chromium built from it holds the scenario's people, machines and privileged acts.
    let (dom, _) = headless(dir.path(), &["--dump-dom"], &report);
    assert!(
        dom.contains("<svg") && dom.contains("<rect"),
        "no timeline chart"
    );
    for user in ["alice", "bob", "carol@example.com", "dave"] {
        assert!(dom.contains(&format!("<td>{user}</td>")), "{user} missing");
    }
    for instance in [
        "i-0a1b2c3d4e5f60711",
        "i-0b2c3d4e5f6071822",
        "i-0c3d4e5f607182933",
        "i-0d4e5f60718293a44",
    ] {
        assert!(
            dom.contains(&format!("<td>{instance}</td>")),
            "{instance} missing"
        );
    }
    for command in [
        "sudo su -",
        "sudo vim /etc/ssh/sshd_config",
        "sudo -i",
        "cat /root/.aws/credentials",
    ] {
        assert!(
            dom.contains(&format!("<td class=\"c\">{command}</td>")),
            "{command} missing"
        );
    }
    // The SSH and port-forward sessions are listed as unrecorded; bob's console login without MFA.
    let unrecorded = section(&dom, "unrecorded");
    assert!(
        unrecorded.contains("bob-0f1a2b3c4d5e6f701")
            && unrecorded.contains("dave-01b2c3d4e5f6a7b80")
    );
    let no_mfa = section(&dom, "console-no-mfa");
    assert!(
        no_mfa.contains("<td>bob</td>") && !no_mfa.contains("<td>dave</td>"),
        "{no_mfa}"
    );
    // A report narrowed by the filters says so, and holds only what they select.
    let staging = dir.path().join("staging.html");
    ok(
        &lake,
        &[
            "--account",
            "444455556666",
            "report",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "-o",
            &staging.to_string_lossy(),
        ],
    );
    let staging = std::fs::read_to_string(&staging).unwrap_or_else(|e| panic!("{e}"));
    assert!(staging.contains("<b>Narrowed to</b> <code>--account &#39;444455556666&#39;</code>"));
    assert!(section(&staging, "sessions").contains("dave-01b2c3d4e5f6a7b80"));
    assert!(
        !staging.contains("i-0a1b2c3d4e5f60711"),
        "a prod instance in the staging report"
    );
    assert!(
        section(&staging, "completeness")
            .contains("Not shown: --account does not apply to table rejects"),
        "{staging}"
    );
    let alerts = section(&dom, "alerts");
    assert!(
        alerts.contains("linux.sudo_root_shell") && alerts.contains("not delivered"),
        "{alerts}"
    );
}

fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() && !path.ends_with("_delta_log") {
            found.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    found
}

#[test]
fn compaction_leaves_one_clustered_file_per_day_and_the_same_answers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    // One commit per file: many small files per day, as a live follower leaves them.
    ok(&lake, &["ingest", SAMPLES, "--batch-files", "1"]);
    let question = "select c.user, c.target, count(*) n, min(c.cmd) first from commands c \
                    join sessions s using (session_id) group by c.user, c.target order by 1, 2";
    let before = csv(&lake, &[question]);
    let dave_before = csv(
        &lake,
        &[
            "--user",
            "dave",
            "--since",
            "2026-10-06",
            "select cmd from commands order by time, seq",
        ],
    );
    let days = |table: &str| {
        let files = parquet_files(&lake.join(table));
        let mut days: Vec<String> = files
            .iter()
            .filter_map(|f| f.parent()?.file_name()?.to_str().map(str::to_string))
            .collect();
        let all = days.len();
        days.sort();
        days.dedup();
        (all, days.len())
    };
    let (files, distinct) = days("commands");
    assert!(
        files > distinct,
        "{files} files over {distinct} days: nothing to compact"
    );

    let summary = ok(&lake, &["compact", "--retention-hours", "0"]);
    assert!(summary.contains("commands"), "{summary}");
    for table in ["commands", "sessions", "cloudtrail"] {
        let (files, distinct) = days(table);
        assert_eq!(
            files, distinct,
            "{table}: one file per day after compaction"
        );
    }
    assert_eq!(csv(&lake, &[question]), before);
    assert_eq!(
        csv(
            &lake,
            &[
                "--user",
                "dave",
                "--since",
                "2026-10-06",
                "select cmd from commands order by time, seq"
            ]
        ),
        dave_before
    );
    assert!(dave_before.contains("sudo -i"), "{dave_before}");
}

/// A session with no record yet is `pending` while its recording may still come, and becomes
/// `none` (alerted as ssm.session_unlogged) once `--unlogged-after` minutes have passed since
/// it ended; a later batch settles it without the session's own records being read again.
#[test]
fn an_unrecorded_session_waits_out_the_grace_then_alerts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let now = chrono::Utc::now();
    let at = |minutes_ago: i64| {
        (now - chrono::Duration::minutes(minutes_ago))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let record = |name: &str, when: String, id: &str, request: serde_json::Value| {
        serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/erin", "accountId": "111122223333", "userName": "erin"},
            "eventTime": when, "eventSource": "ssm.amazonaws.com", "eventName": name,
            "awsRegion": "eu-west-1", "sourceIPAddress": "198.51.100.50",
            "requestParameters": request, "responseElements": {"sessionId": "erin-0123456789abcdef0"},
            "eventID": id, "recipientAccountId": "111122223333"
        })
    };
    let trail = serde_json::json!({"Records": [
        record("StartSession", at(10), "00000000-0000-4000-a000-000000000001",
               serde_json::json!({"target": "i-0feedfacecafe0001", "documentName": "AWS-StartPortForwardingSession"})),
        record("TerminateSession", at(5), "00000000-0000-4000-a000-000000000002",
               serde_json::json!({"sessionId": "erin-0123456789abcdef0"})),
    ]});
    let file = dir.path().join("trail.json");
    std::fs::write(&file, trail.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let file = file.to_string_lossy().into_owned();
    let state = "select logged, (select count(*) from alerts where rule_id = 'ssm.session_unlogged') alerts \
                 from sessions where session_id = 'erin-0123456789abcdef0'";

    // Ended 5 minutes ago: within the default 15, pending, no alert.
    ok(&lake, &["ingest", &file, "--rules", "default"]);
    assert_eq!(csv(&lake, &[state]), "logged,alerts\npending,0\n");
    // Another batch (anything) after the grace: settled to none, alerted once.
    let other = dir.path().join("other.log");
    std::fs::write(
        &other,
        "Oct  6 16:30:00 host sshd[1]: Connection closed by 10.0.0.9 port 22\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let other = other.to_string_lossy().into_owned();
    ok(
        &lake,
        &[
            "--unlogged-after",
            "2",
            "ingest",
            &other,
            "--rules",
            "default",
        ],
    );
    assert_eq!(csv(&lake, &[state]), "logged,alerts\nnone,1\n");
    ok(
        &lake,
        &[
            "--unlogged-after",
            "2",
            "ingest",
            &other,
            &file,
            "--rules",
            "default",
        ],
    );
    assert_eq!(csv(&lake, &[state]), "logged,alerts\nnone,1\n");
}

/// The report at 1280 and 800 px: the page itself never scrolls sideways; a table wider than
/// the window scrolls inside its own section.
#[test]
fn the_report_fits_the_window_at_1280_and_800_px() {
    let (dir, lake) = sample_lake();
    let (_, html) = october_report(dir.path(), &lake);
    // A copy that measures itself once laid out (the report itself runs no script).
    let probe = "<script>\
        const wide = Array.from(document.querySelectorAll('.wide'));\
        document.body.setAttribute('data-fit', [\
          document.documentElement.scrollWidth, window.innerWidth,\
          wide.filter(w => w.scrollWidth > w.clientWidth).length,\
          document.querySelectorAll('table').length - wide.length].join(' '));\
        </script></body>";
    let measured = dir.path().join("measured.html");
    std::fs::write(&measured, html.replace("</body>", probe)).unwrap_or_else(|e| panic!("{e}"));
    let mut scrolled = Vec::new();
    for width in [1280, 800] {
        let (dom, stderr) = headless(
            dir.path(),
            &["--dump-dom", &format!("--window-size={width},900")],
            &measured,
        );
        let fit: Vec<i64> = dom
            .split("data-fit=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no measurement at {width} px: {stderr}"))
            .split(' ')
            .map(|n| n.parse().unwrap_or_else(|e| panic!("{n}: {e}")))
            .collect();
        let [page, window, scrolling, bare] = fit[..] else {
            panic!("{fit:?}");
        };
        assert_eq!(window, width, "the window is {window} px");
        assert!(page <= window, "at {width} px the page is {page} px wide");
        assert_eq!(bare, 0, "every table is in a scrolling section");
        scrolled.push(scrolling);
    }
    // The sessions table is wider than 800 px: it scrolls in its section there.
    assert!(scrolled[1] >= 1, "{scrolled:?}");
    assert!(scrolled[1] >= scrolled[0], "{scrolled:?}");
}

/// The player's screen element in a page's DOM, its attributes and text.
fn player_screen(dom: &str) -> &str {
    dom.split("<pre id=\"screen\"")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no player screen in:\n{dom}"))
}

#[test]
fn the_bundle_report_replays_a_session_in_the_browser_offline() {
    let (dir, lake) = sample_lake();
    let bundle = dir.path().join("evidence.tar");
    let made = run(
        &lake,
        &[
            "evidence",
            "--from",
            "2026-10-04",
            "--to",
            "2026-10-06",
            "-o",
            &bundle.to_string_lossy(),
        ],
    );
    assert!(made.0, "{}", made.2);
    let opened = dir.path().join("opened");
    std::fs::create_dir_all(&opened).unwrap_or_else(|e| panic!("{e}"));
    let untar = Command::new("tar")
        .current_dir(&opened)
        .arg("-xf")
        .arg(&bundle)
        .status()
        .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
    assert!(untar.success());
    let report = opened.join("evidence/report.html");
    let html = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}"));
    // It loads nothing from anywhere; its only script is the inline player.
    for external in ["src=", "<link", "@import", "url("] {
        assert!(!html.contains(external), "the report loads {external}");
    }
    assert!(section(&html, "coverage").contains("session_unrecorded"));
    assert!(section(&html, "controls").contains("A.8.2"));
    // Bob's Monday shell: its last lines are his `exit`.
    let session = "bob-02c3d4e5f6a7b8c91";
    assert!(
        html.contains(&format!("href=\"#replay={session}\"")),
        "no replay link"
    );
    let page = format!("{}#replay={session}&speed=50&play", report.display());
    let (dom, _) = headless(
        dir.path(),
        &["--virtual-time-budget=60000", "--dump-dom"],
        Path::new(&page),
    );
    let screen = player_screen(&dom);
    assert!(screen.contains("data-state=\"ended\""), "{screen}");
    assert!(
        screen.contains(&format!("data-session=\"{session}\"")),
        "{screen}"
    );
    assert!(screen.contains("sh-4.2$ uname -a"), "{screen}");
    assert!(screen.trim_end().ends_with("exit"), "{screen}");
    // Paused at once, it shows no more than its first line.
    let page = format!("{}#replay={session}&speed=1", report.display());
    let (dom, _) = headless(
        dir.path(),
        &["--virtual-time-budget=5000", "--dump-dom"],
        Path::new(&page),
    );
    let screen = player_screen(&dom);
    assert!(screen.contains("data-state=\"idle\""), "{screen}");
    assert!(!screen.contains("uname"), "{screen}");
}

#[test]
fn a_report_filtered_to_one_control_keeps_what_evidences_it() {
    let (dir, lake) = sample_lake();
    let out = dir.path().join("a82.html");
    ok(
        &lake,
        &[
            "report",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--control",
            "a.8.2",
            "-o",
            &out.to_string_lossy(),
        ],
    );
    let html = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        html.contains("Filtered to ISO/IEC 27001:2022 control A.8.2"),
        "{html}"
    );
    assert!(html.contains("id=\"privileged\""));
    for gone in [
        "id=\"alerts\"",
        "id=\"console-no-mfa\"",
        "id=\"coverage\"",
        "id=\"timeline\"",
    ] {
        assert!(!html.contains(gone), "{gone} is not evidence of A.8.2");
    }
    // Alerts carry their rule's controls: sudo rules evidence A.8.2, a console login without MFA A.8.5.
    let csv = csv(
        &lake,
        &[
            "select rule_id, controls from alerts where rule_id in ('linux.sudo_root_shell', 'aws.console_login_without_mfa') group by 1, 2 order by 1",
        ],
    );
    assert!(
        csv.contains("linux.sudo_root_shell,\"A.8.2, A.8.16\""),
        "{csv}"
    );
    assert!(
        csv.contains("aws.console_login_without_mfa,\"A.5.15, A.8.5, A.8.16\""),
        "{csv}"
    );
    // Alerts evidence A.8.16: a report filtered to it has them, and the coverage.
    let monitoring = dir.path().join("a816.html");
    ok(
        &lake,
        &[
            "report",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--control",
            "A.8.16",
            "-o",
            &monitoring.to_string_lossy(),
        ],
    );
    let html = std::fs::read_to_string(&monitoring).unwrap_or_else(|e| panic!("{e}"));
    assert!(html.contains("id=\"alerts\""));
    assert!(html.contains("id=\"coverage\""));
    assert!(section(&html, "alerts").contains("linux.sudo_root_shell"));
}
