//! The `auditq` binary as a user runs it.

use std::io::Read;
use std::process::{Command, Stdio};

fn auditq(cwd: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auditq"));
    command.current_dir(cwd).env_remove("AUDITQ_DATA");
    command
}

fn output(command: &mut Command) -> (bool, String, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run auditq: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary directory with the samples ingested into its `lake`: the directory, and the
/// lake's path for `--data`.
fn sample_lake() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");
    let lake = dir.path().join("lake").to_string_lossy().into_owned();
    let (ok, _, stderr) = output(auditq(dir.path()).args(["--data", &lake, "ingest", samples]));
    assert!(ok, "{stderr}");
    (dir, lake)
}

#[test]
fn first_run_loads_the_samples_and_answers_the_readme_query() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sql = "select user, target, cmd where cmd like 'sudo%' order by time";
    let (ok, stdout, stderr) = output(auditq(dir.path()).arg(sql));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("ingesting the bundled sample logs"),
        "{stderr}"
    );
    assert!(stdout.contains("sudo su -"), "{stdout}");
    assert!(stdout.contains("i-0a1b2c3d4e5f60711"), "{stdout}");
    assert!(dir.path().join("auditq-data/commands/_delta_log").is_dir());

    // The second run reads the lake it made and says nothing about samples.
    let (ok, again, stderr) = output(auditq(dir.path()).arg(sql));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("sample"), "{stderr}");
    assert_eq!(again, stdout);

    // Ingesting the samples again adds nothing.
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");
    let (ok, summary, stderr) = output(auditq(dir.path()).args(["ingest", samples]));
    assert!(ok, "{stderr}");
    for line in summary.lines().filter(|l| l.contains(" read ")) {
        assert!(line.contains("     0 added"), "{summary}");
    }
}

#[test]
fn output_formats_and_explicit_lake() {
    let (dir, lake) = sample_lake();
    let sql = "select session_id, kind from sessions where kind in ('ssh', 'port_forward') order by session_id";
    let (ok, csv, stderr) =
        output(auditq(dir.path()).args(["--data", &lake, "--format", "csv", sql]));
    assert!(ok, "{stderr}");
    assert_eq!(
        csv,
        "session_id,kind\nbob-0f1a2b3c4d5e6f701,ssh\ndave-01b2c3d4e5f6a7b80,port_forward\n"
    );
    let (ok, json, _) = output(auditq(dir.path()).args(["--data", &lake, "--format", "json", sql]));
    assert!(ok);
    let value: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(value[1]["kind"], "port_forward");
    let (ok, ndjson, _) =
        output(auditq(dir.path()).args(["--data", &lake, "--format", "ndjson", sql]));
    assert!(ok);
    assert_eq!(ndjson.lines().count(), 2);
    // An explicit, empty lake is not filled with samples.
    let empty = dir.path().join("empty");
    let (ok, table, stderr) =
        output(auditq(dir.path()).args(["--data", &empty.to_string_lossy(), "select cmd"]));
    assert!(ok, "{stderr}");
    assert!(table.starts_with("(no rows; columns: cmd)"), "{table}");
    assert!(!stderr.contains("sample"), "{stderr}");

    // LIMIT holds with and without ORDER BY, and without FROM.
    for sql in [
        "select cmd from commands limit 2",
        "select cmd limit 2",
        "select cmd from commands order by time limit 2",
        "select count(*) n from commands group by session_id limit 2",
    ] {
        let (ok, csv, stderr) =
            output(auditq(dir.path()).args(["--data", &lake, "--format", "csv", sql]));
        assert!(ok, "{sql}: {stderr}");
        assert_eq!(csv.lines().count(), 3, "{sql}:\n{csv}");
    }

    let (ok, tables, _) = output(auditq(dir.path()).args(["--data", &lake, "tables"]));
    assert!(ok);
    assert!(
        tables
            .lines()
            .any(|l| l.starts_with("cloudtrail") && l.contains(" 37 rows")),
        "{tables}"
    );
    let (ok, schema, _) = output(auditq(dir.path()).args(["schema", "sessions"]));
    assert!(ok);
    assert!(schema.contains("source_ip"), "{schema}");
}

#[test]
fn user_errors_list_the_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("lake");
    let empty = empty.to_string_lossy();
    for sql in [
        "select nope",
        "select * from nowhere",
        "selec cmd",
        "delete from commands",
    ] {
        let (ok, _, stderr) = output(auditq(dir.path()).args(["--data", &empty, sql]));
        assert!(!ok, "{sql} should fail");
        assert!(stderr.starts_with("auditq: "), "{stderr}");
        assert!(stderr.contains("tables and columns:"), "{sql}: {stderr}");
        assert!(
            stderr.contains("  sessions: session_id, date, user"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_closed_pipe_is_a_success() {
    let (dir, lake) = sample_lake();
    // Far more output than a pipe buffer holds.
    let sql = "select a.cmd, b.cmd, c.cmd from commands a, commands b, commands c";
    let mut child = auditq(dir.path())
        .args(["--data", &lake, sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut first = [0u8; 256];
    let n = stdout.read(&mut first).unwrap_or_else(|e| panic!("{e}"));
    assert!(n > 0);
    drop(stdout);
    let status = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        status.status.success(),
        "exit {:?}: {stderr}",
        status.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// CloudTrail as other tools re-export it: times without a zone are UTC; times no format
/// reads are rejected, and the summary says so on one line, with a count and an example.
#[test]
fn re_exported_cloudtrail_times_are_read_and_bad_ones_grouped() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let record = |time: String, id: usize| {
        format!(
            r#"{{"eventTime":"{time}","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"ev-{id}","awsRegion":"eu-west-1"}}"#
        )
    };
    let mut records: Vec<String> = (0..40)
        .map(|i| record(format!("2024-01-01 08:{:02}:{:02}.000", i / 60, i % 60), i))
        .collect();
    records.extend((0..30).map(|i| record(format!("01/02/2024 10:{i:02}:00"), 100 + i)));
    let file = dir.path().join("export.json");
    std::fs::write(&file, format!(r#"{{"Records":[{}]}}"#, records.join(",")))
        .unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake");
    let lake = lake.to_string_lossy();
    let (ok, stdout, stderr) =
        output(auditq(dir.path()).args(["--data", &lake, "ingest", &file.to_string_lossy()]));
    assert!(ok, "{stderr}");
    let summary = format!("{stdout}{stderr}");
    assert!(summary.contains("rejected 30 records"), "{summary}");
    let lines: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains("bad eventTime"))
        .collect();
    assert_eq!(lines.len(), 1, "{summary}");
    assert!(
        lines[0]
            .trim_start()
            .starts_with("30  bad eventTime \"…\", e.g. bad eventTime \"01/02/2024 10:"),
        "{summary}"
    );

    let (ok, answer, stderr) = output(auditq(dir.path()).args([
        "--data",
        &lake,
        "--format",
        "csv",
        "select count(*) n, min(time) first from cloudtrail",
    ]));
    assert!(ok, "{stderr}");
    assert_eq!(answer, "n,first\n40,2024-01-01T08:00:00Z\n", "{answer}");
}

/// Runs `auditq ARGS` in a pseudo-terminal of `columns` columns (util-linux `script`), as a
/// user at a terminal does; returns what the terminal showed.
fn in_terminal(cwd: &std::path::Path, columns: u16, args: &[&str]) -> String {
    typed_in_terminal(cwd, columns, args, "")
}

/// [`in_terminal`], with `input` typed in a line at a time, each once the line editor waits
/// for it (it starts each prompt by turning on bracketed paste, `ESC [?2004h`; what is typed
/// before that is dropped, as a terminal's line editor drops it).
fn typed_in_terminal(cwd: &std::path::Path, columns: u16, args: &[&str], input: &str) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_auditq"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let script = std::path::Path::new("/usr/bin/script");
    assert!(
        script.is_file(),
        "this test drives auditq through a pseudo-terminal with util-linux `script`, not at {}",
        script.display()
    );
    let mut child = Command::new(script)
        .current_dir(cwd)
        .env_remove("AUDITQ_DATA")
        .env_remove("COLUMNS")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", cwd)
        .args([
            "-qec",
            &format!("stty cols {columns} rows 50; {}", quoted.join(" ")),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run script: {e}"));
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let reader = {
        let shown = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        })
    };
    let prompts = || {
        let shown = shown.lock().unwrap_or_else(|e| e.into_inner());
        shown.windows(8).filter(|w| w == b"\x1b[?2004h").count()
    };
    let mut stdin = child.stdin.take();
    for (i, line) in input.split_inclusive('\n').enumerate() {
        let waited = std::time::Instant::now();
        while prompts() <= i {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(60),
                "no prompt for line {}: {}",
                i + 1,
                String::from_utf8_lossy(&shown.lock().unwrap_or_else(|e| e.into_inner()))
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Some(stdin) = stdin.as_mut() {
            use std::io::Write;
            stdin
                .write_all(line.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            stdin.flush().unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    drop(stdin);
    let _ = reader.join();
    let text = String::from_utf8_lossy(&shown.lock().unwrap_or_else(|e| e.into_inner()))
        .replace("\r\n", "\n");
    assert!(status.success(), "{text}");
    text
}

/// In a terminal the table fits the window; piped, or with --wide, every column is in full.
#[test]
fn the_table_fits_the_terminal_and_pipes_get_it_whole() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sql = "select * where cmd like 'sudo%' order by time";
    let (ok, piped, stderr) = output(auditq(dir.path()).arg(sql));
    assert!(ok, "{stderr}");
    let widest = piped.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest > 200, "piped: the whole table ({widest} wide)");
    assert!(
        piped.contains("session_id") && piped.contains("origin"),
        "{piped}"
    );

    let shown = in_terminal(dir.path(), 100, &[sql]);
    let table: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with(['┌', '│', '├', '└']))
        .collect();
    assert!(table.len() > 4, "{shown}");
    for line in &table {
        assert!(
            line.chars().count() <= 100,
            "{} wide: {line}",
            line.chars().count()
        );
    }
    assert!(table[1].contains(" … │"), "{shown}");
    let footer = shown
        .lines()
        .find(|l| l.contains(" rows · "))
        .unwrap_or_else(|| panic!("no footer: {shown}"));
    assert!(
        footer.contains(" columns (") && footer.contains("left out: --wide shows all)"),
        "{footer}"
    );
    assert!(footer.trim_end().ends_with(" s"), "{footer}");

    let wide = in_terminal(dir.path(), 100, &["--wide", sql]);
    let widest = wide.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest > 200, "--wide: the whole table ({widest} wide)");
}

/// `auditq` alone in a terminal is a shell: statements over several lines, dot commands, and
/// a history file.
#[test]
fn alone_in_a_terminal_it_is_a_shell_with_history() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, stderr) = output(auditq(dir.path()).arg("select 1"));
    assert!(ok, "{stderr}");
    let shown = typed_in_terminal(
        dir.path(),
        100,
        &[],
        "select user, count(*) as sessions\n  from sessions group by user\n  order by user;\n.format csv\nselect count(*) as n from sessions;\n.schema nope\n.quit\n",
    );
    assert!(shown.contains("statements end with ';'"), "{shown}");
    assert!(shown.contains("   ...> "), "a continuation prompt: {shown}");
    assert!(shown.contains("│ alice "), "{shown}");
    assert!(shown.contains("n\n14\n"), ".format csv: {shown}");
    assert!(shown.contains("no table \"nope\""), "{shown}");
    let history = std::fs::read_to_string(dir.path().join(".local/share/auditq/history"))
        .unwrap_or_else(|e| panic!("no history: {e}"));
    assert!(
        history.contains("select count(*) as n from sessions;"),
        "{history}"
    );

    // The next run starts with it: three times Up is that statement again (after `.quit` and
    // `.schema nope`), and Enter runs it.
    let again = typed_in_terminal(dir.path(), 100, &[], "\x1b[A\x1b[A\x1b[A\n.quit\n");
    let answer = again
        .split("select count(*) as n from sessions;")
        .nth(1)
        .unwrap_or_else(|| panic!("not recalled: {again}"));
    assert!(answer.contains("│ 14 "), "recalled and run: {again}");
}

/// Statements piped in run one after another, dot commands too; one that fails is reported,
/// the rest still run, and the exit status says one failed.
#[test]
fn piped_statements_run_in_turn() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |input: &str| {
        let mut child = auditq(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(
        ".format csv\nselect user, count(*) c from sessions\n group by user order by user;\nselect count(*) n from sessions -- the last one needs no ;\n",
    );
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("user,c\nalice,3\nbob,5\n"), "{stdout}");
    assert!(stdout.ends_with("n\n14\n"), "{stdout}");

    let (ok, stdout, stderr) = run(
        ".format csv\nselect nothing from sessions;\ndelete from sessions;\nselect count(*) n from sessions;\n",
    );
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("nothing"), "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(stdout.contains("n\n14\n"), "{stdout}");
}

/// `EXPLAIN` and `EXPLAIN ANALYZE` of a question print its plans (with what each step did, for
/// ANALYZE) and change nothing; the default `FROM commands` applies inside them too.
#[test]
fn explain_and_explain_analyze_show_the_plan() {
    let (dir, lake) = sample_lake();
    let (ok, plan, stderr) = output(auditq(dir.path()).args([
        "--data",
        &lake,
        "--format",
        "csv",
        "explain select count(*) n where cmd like 'sudo%'",
    ]));
    assert!(ok, "{stderr}");
    assert!(plan.starts_with("plan_type,plan\n"), "{plan}");
    assert!(
        plan.contains("logical_plan") && plan.contains("physical_plan"),
        "{plan}"
    );
    assert!(plan.contains("commands"), "{plan}");
    let (ok, analyzed, stderr) = output(auditq(dir.path()).args([
        "--data",
        &lake,
        "--format",
        "csv",
        "explain analyze select count(*) n where cmd like 'sudo%'",
    ]));
    assert!(ok, "{stderr}");
    assert!(
        analyzed.contains("Plan with Metrics") && analyzed.contains("output_rows"),
        "{analyzed}"
    );
}

/// Answers are written as they arrive; one refused half-way (more rows than `--max-rows`) ends
/// with the message naming the option and a failure, and `-o FILE` then leaves no file behind
/// (an existing one as it was); a whole answer takes the file's name.
#[test]
fn a_streamed_answer_refused_half_way_leaves_nothing_behind() {
    let (dir, lake) = sample_lake();
    // A batch per day's file: the answer comes in several batches.
    let sql = "select date, cmd from commands";
    for format in ["csv", "json", "ndjson", "parquet"] {
        let file = dir.path().join(format!("answer.{format}"));
        let ask = || {
            output(auditq(dir.path()).args([
                "--data",
                &lake,
                "--format",
                format,
                "--max-rows",
                "40",
                "-o",
                &file.to_string_lossy(),
                sql,
            ]))
        };
        let (ok, _, stderr) = ask();
        assert!(!ok, "{format}: more than 40 rows were accepted");
        assert!(stderr.contains("--max-rows"), "{format}: {stderr}");
        assert!(!file.exists(), "{format}: a partial answer was left");
        std::fs::write(&file, b"kept").unwrap_or_else(|e| panic!("{e}"));
        let (ok, _, _) = ask();
        assert!(!ok);
        assert_eq!(
            std::fs::read(&file).unwrap_or_default(),
            b"kept",
            "{format}"
        );
        // Within the limit the whole answer replaces it.
        let (ok, _, stderr) = output(auditq(dir.path()).args([
            "--data",
            &lake,
            "--format",
            format,
            "-o",
            &file.to_string_lossy(),
            sql,
        ]));
        assert!(ok, "{format}: {stderr}");
        let written = std::fs::read(&file).unwrap_or_default();
        assert!(written.len() > 1000, "{format}: {} bytes", written.len());
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // To standard output, what came before the refusal was written, and the exit says so.
    let (ok, stdout, stderr) = output(auditq(dir.path()).args([
        "--data",
        &lake,
        "--format",
        "csv",
        "--max-rows",
        "40",
        sql,
    ]));
    assert!(!ok && stderr.contains("--max-rows"), "{stderr}");
    assert!(stdout.lines().count() <= 41, "{stdout}");
}
