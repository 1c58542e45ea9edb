//! Secrets typed into sessions and logged by sudo are replaced by keyed tokens before anything is
//! stored or published: none reaches the lake's tables or files, the alerts, or auditq's output,
//! and the same secret gives the same token wherever it appears.

use std::path::Path;

const SECRETS: &[&str] = &[
    "S3cretPass",
    "hunter2x",
    "correct-horse-battery",
    "ghp_abcdefghijklmnop1234",
    "eyJhbGciOi.payload.sig",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "pa55word",
    "b3BlbnNzaC1rZXktdjEAAAAA",
];

fn run(lake: &Path, args: &[&str]) -> (bool, String, String) {
    auditq_tests::run_auditq(env!("CARGO_BIN_EXE_auditq"), lake, args)
}

fn all_bytes(dir: &Path, into: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            all_bytes(&path, into);
        } else {
            into.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
}

#[test]
fn planted_secrets_never_reach_the_lake_the_alerts_or_the_output() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("{e}"));
    // A Session Manager stream where the user types secrets.
    let sid = "erin-0a1b2c3d4e5f60789";
    let typed = [
        "mysql -u root -pS3cretPass -e 'select 1'",
        "sshpass -p hunter2x ssh admin@10.0.0.5",
        "DB_PASSWORD=correct-horse-battery ./migrate.sh",
        "curl -H 'Authorization: Bearer eyJhbGciOi.payload.sig' https://api.internal/",
        "aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE",
        "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "sudo psql postgres://app:pa55word@db:5432/app",
    ];
    let events: Vec<serde_json::Value> = typed
        .iter()
        .enumerate()
        .map(|(n, cmd)| {
            let message = serde_json::json!({
                "eventVersion": "1.0", "eventTime": format!("2026-10-07T10:00:{:02}Z", n * 5),
                "awsRegion": "eu-west-1", "target": {"id": "i-0a1b2c3d4e5f60711"},
                "userIdentity": {"arn": "arn:aws:iam::111122223333:user/erin"},
                "runAsUser": "ssm-user", "sessionId": sid,
                "sessionData": [format!("sh-4.2$ {cmd}"), "ok".to_string()],
            });
            serde_json::json!({"logStreamName": sid, "timestamp": 1_791_367_200_000i64 + n as i64 * 5000, "message": message.to_string()})
        })
        .collect();
    std::fs::write(
        logs.join(format!("{sid}.json")),
        serde_json::json!({ "events": events }).to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The host's sudo log with the same password, a token and a pasted private key (`#012`).
    std::fs::write(
        logs.join("secure"),
        "2026-10-07T10:01:00+00:00 web sudo: erin : TTY=pts/0 ; PWD=/home/erin ; USER=root ; COMMAND=/usr/bin/mysql -u root -pS3cretPass\n\
         2026-10-07T10:01:05+00:00 web sudo: erin : TTY=pts/0 ; PWD=/home/erin ; USER=root ; COMMAND=/usr/bin/env GITHUB_TOKEN=ghp_abcdefghijklmnop1234 ./release.sh\n\
         2026-10-07T10:01:09+00:00 web sudo: erin : TTY=pts/0 ; PWD=/home/erin ; USER=root ; COMMAND=/bin/sh -c echo '-----BEGIN OPENSSH PRIVATE KEY-----#012b3BlbnNzaC1rZXktdjEAAAAA#012-----END OPENSSH PRIVATE KEY-----' > /root/.ssh/id\n\
         not a log line, but it holds mysql -pS3cretPass all the same\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let lake = dir.path().join("lake");
    let alerts = dir.path().join("alerts.ndjson");
    let sink = format!("file://{}", alerts.display());
    let (ok, stdout, stderr) = run(
        &lake,
        &[
            "ingest",
            &logs.to_string_lossy(),
            "--rules",
            "default",
            "--alerts",
            &sink,
        ],
    );
    assert!(ok, "{stderr}");
    // Counted per field: 7 typed commands; sudo's 3 in `commands`, again in `host_events.cmd`
    // and again in its raw lines; 1 in the rejected line.
    assert!(stdout.contains("redacted 17 secrets"), "{stdout}");

    let mut seen = stdout + &stderr;
    for table in [
        "commands",
        "host_events",
        "sessions",
        "rejects",
        "alerts",
        "cloudtrail",
    ] {
        let (ok, out, err) = run(
            &lake,
            &["--format", "csv", &format!("select * from {table}")],
        );
        assert!(ok, "{err}");
        seen.push_str(&out);
    }
    seen.push_str(&std::fs::read_to_string(&alerts).unwrap_or_default());
    let mut files = Vec::new();
    all_bytes(&lake, &mut files);
    let files = String::from_utf8_lossy(&files);
    for secret in SECRETS {
        assert!(
            !seen.contains(secret),
            "{secret} reached the output, a table or an alert"
        );
        assert!(!files.contains(secret), "{secret} is in a lake file");
    }
    assert!(
        std::fs::read_to_string(&alerts).is_ok_and(|a| a.contains("[REDACTED:")),
        "the alerts carry the tokens"
    );

    // The same password typed in the session and logged by sudo has one token.
    let (_, tokens, _) = run(
        &lake,
        &[
            "--format",
            "csv",
            "select distinct regexp_match(cmd, 'REDACTED:password-flag:([0-9a-f]+)')[1] t from commands where cmd like '%mysql%'",
        ],
    );
    let tokens: Vec<&str> = tokens.lines().skip(1).collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].len(), 12);
    // The key is kept beside the lake, so a later run makes the same tokens.
    assert!(lake.join("_auditq/redaction.key").is_file());

    // A pattern of one's own, and a bad one named.
    std::fs::write(
        logs.join("secure"),
        "2026-10-07T10:02:00+00:00 web sudo: erin : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/vault login s.Zq8vaultTOKEN1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, stderr) = run(
        &lake,
        &[
            "--redact",
            r"vault=vault login (\S+)",
            "ingest",
            &logs.join("secure").to_string_lossy(),
        ],
    );
    assert!(ok, "{stderr}");
    let (_, vault, _) = run(
        &lake,
        &[
            "--format",
            "csv",
            "select cmd from commands where cmd like '%vault%'",
        ],
    );
    assert!(
        vault.contains("[REDACTED:vault:") && !vault.contains("s.Zq8vaultTOKEN1"),
        "{vault}"
    );
    let (ok, _, stderr) = run(
        &lake,
        &[
            "--redact",
            "broken=(",
            "ingest",
            &logs.join("secure").to_string_lossy(),
        ],
    );
    assert!(!ok && stderr.contains("broken"), "{stderr}");
}
