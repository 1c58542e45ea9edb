//! Conformance over the real public corpora in `../shared/corpora` (read only when present).

use auditq_ingest::parse::{Object, parse_object};
use auditq_ingest::{Limits, time::parse_rfc3339};
use auditq_tests::corpora;

fn object(origin: &str) -> Object<'_> {
    Object {
        origin,
        modified: parse_rfc3339("2026-01-01T00:00:00Z").unwrap_or_default(),
    }
}

#[test]
fn every_stratus_cloudtrail_record_parses() {
    let Some(corpora) = corpora() else { return };
    let dir = corpora.join("cloudtrail-stratus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "expected the Stratus corpus, found {} files",
        files.len()
    );
    let (mut records, mut starts, mut terminates) = (0, Vec::new(), Vec::new());
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
        let expected = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or_else(|| panic!("{} is not a JSON array", path.display()));
        let origin = path.display().to_string();
        let parsed = parse_object(bytes, object(&origin), &Limits::default());
        assert!(parsed.rejects.is_empty(), "{origin}: {:?}", parsed.rejects);
        assert_eq!(parsed.trail.len(), expected, "{origin}");
        records += expected;
        for event in &parsed.trail {
            match event.event_name.as_str() {
                "StartSession" => starts.push(event.clone()),
                "TerminateSession" => terminates.push(event.clone()),
                _ => {}
            }
        }
        for fragment in &parsed.fragments {
            if fragment.from_trail {
                assert!(
                    fragment.target.is_some(),
                    "{origin}: StartSession without target"
                );
                assert!(fragment.started_at.is_some());
            }
        }
    }
    assert_eq!(records, 310);
    assert_eq!(starts.len(), 3);
    assert_eq!(terminates.len(), 3);
    for event in starts.iter().chain(&terminates) {
        let id = event
            .session_id
            .as_deref()
            .unwrap_or_else(|| panic!("no session id: {event:?}"));
        assert!(id.starts_with("christophe-"), "{id}");
        assert_eq!(event.user.as_deref(), Some("christophe"));
    }
}

#[test]
fn managedkube_session_manager_samples() {
    let Some(corpora) = corpora() else { return };
    let dir = corpora.join("ssm");
    let read = |name: &str| {
        let path = dir.join(name);
        let origin = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{origin}: {e}"));
        parse_object(bytes, object(&origin), &Limits::default())
    };
    let trail = read("managedkube_cloudtrail_startsession_2020.json");
    assert_eq!(trail.trail.len(), 1);
    let start = &trail.fragments[0];
    assert_eq!(start.session_id, "garland.kan.temp-0e34861185201706f");
    assert_eq!(start.target.as_deref(), Some("i-02311671588e96626"));
    assert_eq!(start.document.as_deref(), Some("SSM-sudo"));
    assert_eq!(start.source_ip.as_deref(), Some("38.30.8.138"));
    assert_eq!(start.user.as_deref(), Some("garland.kan.temp"));

    let transcript = read("managedkube_s3_session_log_excerpt_2020.log");
    assert!(transcript.rejects.is_empty(), "{:?}", transcript.rejects);
    let cmds: Vec<_> = transcript.commands.iter().map(|c| c.cmd.as_str()).collect();
    assert!(cmds.contains(&"ls /"), "{cmds:?}");
    assert_eq!(cmds.last(), Some(&"exit"), "{cmds:?}");
    let fragment = &transcript.fragments[0];
    assert_eq!(
        fragment.first_seen.map(|t| t.to_rfc3339()).as_deref(),
        Some("2020-05-27T23:00:48+00:00")
    );

    // Agent error lines are not a format auditq reads: one reject for the file, with a reason.
    let errors = read("managedkube_ssm_agent_errors_excerpt.log");
    assert_eq!(errors.rejects.len(), 1);
    assert!(errors.rejects[0].reason.starts_with("unrecognised format"));
}

/// Every line of the linux-auth corpus becomes a host event or a reject with its reason;
/// sudo commands and users are read exactly.
#[test]
fn linux_auth_host_logs() {
    let Some(corpora) = corpora() else { return };
    let dir = corpora.join("linux-auth");
    let mut totals = (0, 0, 0);
    for name in [
        "test-auth.log",
        "test-auth-ubuntu1204.log",
        "test-sudo-no-tty.log",
        "test-auditd-raw.log",
    ] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count();
        let parsed = parse_object(bytes, object(name), &Limits::default());
        let raw_lines: usize = parsed.host.iter().map(|e| e.raw.lines().count()).sum();
        for reject in &parsed.rejects {
            assert!(!reject.reason.is_empty(), "{reject:?}");
        }
        // Each line is in exactly one host event (auditd events hold all their records), or
        // rejected.
        assert_eq!(
            raw_lines + parsed.rejects.len(),
            lines,
            "{name}: {} lines in events, {} rejected, of {lines}: {:?}",
            raw_lines,
            parsed.rejects.len(),
            parsed.rejects
        );
        assert!(
            parsed.trail.is_empty() && parsed.chunks.is_empty(),
            "{name}"
        );
        if name == "test-auditd-raw.log" {
            // Every event with its SYSCALL record keeps what ties it to its process tree (the
            // file also holds an EXECVE record without its SYSCALL: an exec with no pid).
            let with_syscall: Vec<_> = parsed
                .host
                .iter()
                .filter(|e| e.raw.contains("type=SYSCALL"))
                .collect();
            assert!(!with_syscall.is_empty(), "{name}: no SYSCALL record");
            for exec in with_syscall {
                assert!(
                    exec.pid.is_some() && exec.ppid.is_some() && exec.exe.is_some(),
                    "{name}: {exec:?}"
                );
            }
        }
        totals.0 += lines;
        totals.1 += parsed.host.len();
        totals.2 += parsed.rejects.len();
        if name == "test-auth.log" {
            type Sudo<'a> = (
                Option<&'a str>,
                Option<&'a str>,
                Option<&'a str>,
                Option<&'a str>,
            );
            let sudo: Vec<Sudo<'_>> = parsed
                .host
                .iter()
                .filter(|e| e.program == "sudo" && e.action == "sudo")
                .map(|e| {
                    (
                        e.user.as_deref(),
                        e.run_as.as_deref(),
                        e.cmd.as_deref(),
                        e.outcome.as_deref(),
                    )
                })
                .collect();
            assert_eq!(
                sudo,
                [
                    (
                        Some("vagrant"),
                        Some("root"),
                        Some("/bin/ls"),
                        Some("success")
                    ),
                    (
                        Some("vagrant"),
                        Some("root"),
                        Some("/bin/cat /var/log/secure"),
                        Some("success")
                    ),
                    (Some("tsg"), Some("root"), Some("/bin/ls"), Some("failure")),
                ]
            );
            let commands: Vec<&str> = parsed.commands.iter().map(|c| c.cmd.as_str()).collect();
            assert_eq!(commands, ["/bin/ls", "/bin/cat /var/log/secure"]);
            let logins: Vec<(&str, Option<&str>)> = parsed
                .host
                .iter()
                .filter(|e| e.program == "sshd" && e.action.starts_with("login"))
                .map(|e| (e.action.as_str(), e.user.as_deref()))
                .collect();
            assert_eq!(
                logins,
                [
                    ("login", Some("vagrant")),
                    ("login", Some("vagrant")),
                    ("login_failed", Some("test")),
                    ("login_failed", Some("root")),
                ]
            );
        }
        if name == "test-sudo-no-tty.log" {
            assert_eq!(parsed.commands.len(), 1);
            assert_eq!(parsed.commands[0].cmd, "/usr/bin/id");
            assert_eq!(parsed.commands[0].user.as_deref(), Some("alice"));
        }
        if name == "test-auth-ubuntu1204.log" {
            // The Ansible commands with `#012` escapes are whole, with real newlines.
            let joined = parsed
                .host
                .iter()
                .filter_map(|e| e.cmd.as_deref())
                .find(|c| c.contains("metricbeat.yml") && c.contains("hashlib"))
                .unwrap_or_else(|| panic!("no escaped sudo command"));
            assert!(joined.contains("\nafile = open("), "{joined}");
            assert!(!joined.contains("#012"), "{joined}");
        }
    }
    eprintln!(
        "linux-auth: {} lines, {} host events, {} rejected",
        totals.0, totals.1, totals.2
    );
}
