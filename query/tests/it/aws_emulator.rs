//! Against the AWS API emulator (moto, started by ./scripts/test.sh): Session Manager streams in
//! CloudWatch Logs and transcripts and CloudTrail deliveries in S3, ingested by `auditq` into a
//! Delta lake on S3, answer exactly as the local sample-logs do.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_s3::primitives::ByteStream;

use auditq_tests::{emulator, run_id};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");
use auditq_tests::files_under;

const SUDO_SQL: &str = include_str!("../../../tests/fixtures/sample_sudo_commands.sql");
const COUNTS_SQL: &str = "select s.n sessions, c.n commands, t.n trail \
    from (select count(*) n from sessions) s, (select count(*) n from commands) c, \
    (select count(*) n from cloudtrail) t";
const SUDO_CSV: &str = include_str!("../../../tests/fixtures/sample_sudo_commands.csv");

fn auditq(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_auditq"))
        .current_dir(cwd)
        .env_remove("AUDITQ_DATA")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run auditq: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "auditq {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn load_samples_into_aws(run: &str) -> (String, String) {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = aws_sdk_s3::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);

    let bucket = format!("auditq-src-{run}");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let root = PathBuf::from(SAMPLES).join("s3");
    for path in files_under(&root) {
        let key = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    }

    // CloudWatch Logs accepts events of the last 14 days only: keep each chunk's order and
    // spacing but move the ingestion timestamps to the last hour (the chunks keep their own
    // `eventTime`, which is what auditq reports).
    let group = format!("/aws/ssm/sessions-{run}");
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let now = chrono::Utc::now().timestamp_millis();
    for path in files_under(&PathBuf::from(SAMPLES).join("cloudwatch/aws-ssm-sessions")) {
        let export: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        let events = export["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events"));
        let stream = events[0]["logStreamName"].as_str().unwrap_or_default();
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(stream)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let first = events[0]["timestamp"].as_i64().unwrap_or(0);
        let shift = now - 3_600_000 - first;
        let batch: Vec<InputLogEvent> = events
            .iter()
            .map(|e| {
                InputLogEvent::builder()
                    .timestamp(e["timestamp"].as_i64().unwrap_or(0) + shift)
                    .message(e["message"].as_str().unwrap_or_default())
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let response = logs
            .put_log_events()
            .log_group_name(&group)
            .log_stream_name(stream)
            .set_log_events(Some(batch))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            response.rejected_log_events_info().is_none(),
            "{response:?}"
        );
    }
    (bucket, group)
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_from_aws_into_an_s3_lake_answers_like_the_local_samples() {
    let _ = emulator();
    let run = run_id("q");
    let (bucket, group) = load_samples_into_aws(&run).await;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let lake_bucket = format!("auditq-lake-{run}");
    aws_sdk_s3::Client::new(&config)
        .create_bucket()
        .bucket(&lake_bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = format!("s3://{lake_bucket}/audit");
    let s3_source = format!("s3://{bucket}/");
    let cwl_source = format!("cwl://{group}");
    let summary = auditq(
        dir.path(),
        &["--data", &lake, "ingest", &s3_source, &cwl_source],
    );
    assert!(summary.contains("read 39 sources"), "{summary}");
    assert!(
        summary.contains("commands        37 read     37 added"),
        "{summary}"
    );
    assert!(
        summary.contains("cloudtrail      38 read     37 added"),
        "{summary}"
    );

    // The host logs are not uploaded here: the local answer without its auditd rows.
    let csv = auditq(dir.path(), &["--data", &lake, "--format", "csv", SUDO_SQL]);
    let without_host: String = SUDO_CSV
        .lines()
        .filter(|l| !l.contains(",auditd,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(csv, without_host);
    let counts = auditq(
        dir.path(),
        &["--data", &lake, "--format", "csv", COUNTS_SQL],
    );
    assert_eq!(counts, "sessions,commands,trail\n13,37,37\n");
    let origins = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "--format",
            "csv",
            "select distinct source, split_part(origin, '/', 1) o from commands order by 1",
        ],
    );
    assert_eq!(origins, "source,o\nstream,cwl:\ntranscript,s3:\n");

    // The auditor's commands work on the S3 lake, and replay reads the recordings where the
    // lake says they are: the transcript in S3, the stream in CloudWatch Logs.
    let who = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "--format",
            "csv",
            "who",
            "i-0b2c3d4e5f6071822",
        ],
    );
    assert!(
        who.contains(",alice,") && who.contains("alice-0e1f2a3b4c5d6e7f8"),
        "{who}"
    );
    let replayed = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "replay",
            "alice-0e1f2a3b4c5d6e7f8",
            "--commands",
        ],
    );
    assert!(
        replayed.contains("2026-10-06T11:00:06Z  ubuntu     sudo vim /etc/ssh/sshd_config\n"),
        "{replayed}"
    );
    let screen = auditq(
        dir.path(),
        &["--data", &lake, "replay", "bob-02c3d4e5f6a7b8c91"],
    );
    assert!(
        screen.contains("sh-4.2$ sudo tail -n 5 /var/log/nginx/error.log"),
        "{screen}"
    );
    let streamed = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "replay",
            "bob-02c3d4e5f6a7b8c91",
            "--commands",
        ],
    );
    assert!(
        streamed.starts_with("2026-10-06T09:30:40Z  ssm-user   sudo tail"),
        "{streamed}"
    );
    let report = dir.path().join("report.html");
    auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "report",
            "--from",
            "2026-10-05",
            "--to",
            "2026-10-06",
            "-o",
            &report.to_string_lossy(),
        ],
    );
    let html = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}"));
    assert!(html.contains("<td>carol@example.com</td>") && html.contains("sudo su -"));

    // Read again: every object and stream is recognised as done and nothing is added.
    let again = auditq(
        dir.path(),
        &["--data", &lake, "ingest", &s3_source, &cwl_source],
    );
    assert!(again.contains("read 0 sources (39 skipped"), "{again}");
    let counts_again = auditq(
        dir.path(),
        &["--data", &lake, "--format", "csv", COUNTS_SQL],
    );
    assert_eq!(counts_again, counts);

    // The S3 lake's digests (written with conditional puts) check out, and a data object
    // deleted behind auditq's back is named.
    let verified = auditq(dir.path(), &["--data", &lake, "verify"]);
    assert!(
        verified.contains("OK: every commit has a signed digest"),
        "{verified}"
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::new(&config);
    let listed = s3
        .list_objects_v2()
        .bucket(&lake_bucket)
        .prefix("audit/commands/date=")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let victim = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .find(|k| k.ends_with(".parquet"))
        .unwrap_or_else(|| panic!("no commands data object"))
        .to_string();
    s3.delete_object()
        .bucket(&lake_bucket)
        .key(&victim)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let out = Command::new(env!("CARGO_BIN_EXE_auditq"))
        .env_remove("AUDITQ_DATA")
        .args(["--data", &lake, "verify"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    let rel = victim.trim_start_matches("audit/");
    assert!(
        report.contains(&format!("REMOVED   {rel}: listed by the digest")),
        "{report}"
    );
}

/// `auditq ingest sqs://QUEUE` drains a queue of S3 event notifications in every envelope: the
/// objects are ingested (an organisation trail's `o-...` key and a URL-encoded transcript key),
/// a test event is ignored, a message that is no notification and one naming a deleted object
/// are set aside in rejects, and the queue is left empty.
#[tokio::test(flavor = "multi_thread")]
async fn s3_notifications_from_an_sqs_queue() {
    let _ = emulator();
    let run = run_id("sqs");
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = aws_sdk_s3::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bucket = format!("auditq-events-{run}");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let trail_file = "111122223333_CloudTrail_eu-west-1_20261005T0920Z_DDA0BD572E1A034F.json.gz";
    let trail_key =
        format!("AWSLogs/o-aa111bb222/111122223333/CloudTrail/eu-west-1/2026/10/05/{trail_file}");
    let trail_path = format!(
        "{SAMPLES}/s3/cloudtrail/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/10/05/{trail_file}"
    );
    let session = "carol@example.com-q3ksx7n2pd5m4hbf6gtyr8wzla";
    let transcript_key = format!("session logs/{session}.log");
    let transcript_path = format!("{SAMPLES}/s3/ssm-session-logs/session-logs/{session}.log");
    for (key, path) in [
        (&trail_key, &trail_path),
        (&transcript_key, &transcript_path),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key.as_str())
            .body(ByteStream::from(
                std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}")),
            ))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    let queue = format!("auditq-s3-events-{run}");
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let notification = |key: &str| {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key}}
        }]})
        .to_string()
    };
    let encoded = format!("session+logs/{}.log", session.replace('@', "%40"));
    let through_sns = serde_json::json!({
        "Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:s3-events",
        "Message": notification(&trail_key)
    })
    .to_string();
    let messages = [
        through_sns,
        notification(&encoded),
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#.to_string(),
        "{not json".to_string(),
        notification("AWSLogs/deleted-since.json.gz"),
    ];
    for body in messages {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
    }

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake").display().to_string();
    let summary = auditq(
        dir.path(),
        &["--data", &lake, "ingest", &format!("sqs://{queue}")],
    );
    assert!(summary.contains("rejected 2 records"), "{summary}");
    let csv = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "--format",
            "csv",
            "select \
          (select count(*) from cloudtrail) trail, \
          (select count(distinct session_id) from commands) sessions, \
          (select count(*) from rejects where reason like 'malformed JSON%') bad, \
          (select count(*) from rejects where reason like 'HeadObject refused (404)%') gone \
          from (select 1 as one) o",
        ],
    );
    let expected_trail = auditq(
        dir.path(),
        &["--data", &format!("{lake}-local"), "ingest", &trail_path],
    );
    assert!(expected_trail.contains("cloudtrail"), "{expected_trail}");
    let local = auditq(
        dir.path(),
        &[
            "--data",
            &format!("{lake}-local"),
            "--format",
            "csv",
            "select count(*) n from cloudtrail",
        ],
    );
    let trail_rows = local.lines().nth(1).unwrap_or_default();
    assert_eq!(
        csv,
        format!("trail,sessions,bad,gone\n{trail_rows},1,1,1\n")
    );

    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        "0"
    );
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        "0"
    );
}

/// Host logs the CloudWatch agent ships (stream = instance id) are read from their log groups,
/// joined to the SSH session CloudTrail saw, and read on from the stored token next time.
#[tokio::test(flavor = "multi_thread")]
async fn host_log_groups_complete_the_ssh_session() {
    let _ = emulator();
    let run = run_id("h");
    let (bucket, group) = load_samples_into_aws(&run).await;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let host_group = format!("/ec2/var/log/secure-{run}");
    let stream = "i-0d4e5f60718293a44";
    logs.create_log_group()
        .log_group_name(&host_group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    logs.create_log_stream()
        .log_group_name(&host_group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    // The agent's events as exported, with their timestamps: the syslog lines carry no year,
    // which comes from them. CloudWatch Logs refuses events older than 14 days, so they are
    // moved to now, keeping their order; the lines keep their own (2026-10-06) times.
    let export: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(SAMPLES).join(format!("cloudwatch/host-logs/{stream}-secure.json")),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let events = export["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events"));
    let now = chrono::Utc::now().timestamp_millis();
    let put = |messages: Vec<String>, first: i64| {
        let logs = logs.clone();
        let host_group = host_group.clone();
        async move {
            let batch: Vec<InputLogEvent> = messages
                .into_iter()
                .enumerate()
                .map(|(n, m)| {
                    InputLogEvent::builder()
                        .timestamp(first + n as i64)
                        .message(m)
                        .build()
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            logs.put_log_events()
                .log_group_name(&host_group)
                .log_stream_name(stream)
                .set_log_events(Some(batch))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
    };
    let lines: Vec<String> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    put(lines, now - 60_000).await;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake").display().to_string();
    let summary = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "ingest",
            &format!("s3://{bucket}/"),
            &format!("cwl://{group}"),
            &format!("cwl://{host_group}"),
        ],
    );
    assert!(
        summary.contains("host_events     17 read     17 added"),
        "{summary}"
    );
    let csv = |sql: &str| auditq(dir.path(), &["--data", &lake, "--format", "csv", sql]);
    assert_eq!(
        csv("select kind, logged, run_as from sessions where session_id = 'bob-0f1a2b3c4d5e6f701'"),
        "kind,logged,run_as\nssh,host_only,ec2-user\n"
    );
    assert_eq!(
        csv(
            "select user, cmd, target from commands where session_id = 'bob-0f1a2b3c4d5e6f701' order by time"
        ),
        "user,cmd,target\nbob,/usr/sbin/visudo,i-0d4e5f60718293a44\nbob,/bin/cat /etc/shadow,i-0d4e5f60718293a44\n"
    );
    assert_eq!(
        csv("select distinct origin from host_events"),
        format!(
            "origin\ncwl://{}#{stream}\n",
            host_group.trim_start_matches('/')
        )
    );

    // A new line later: the stream is read on from its stored token, the line is the only new
    // row, and it is bob's too (still inside his session).
    put(
        vec!["Oct  6 16:30:00 ip-10-0-0-44 sudo: ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; COMMAND=/usr/bin/systemctl restart sshd".to_string()],
        now,
    )
    .await;
    let again = auditq(
        dir.path(),
        &["--data", &lake, "ingest", &format!("cwl://{host_group}")],
    );
    assert!(
        again.contains("host_events      1 read      1 added"),
        "{again}"
    );
    assert_eq!(
        csv("select cmd from commands where session_id = 'bob-0f1a2b3c4d5e6f701' order by time"),
        "cmd\n/usr/sbin/visudo\n/usr/bin/systemctl restart sshd\n/bin/cat /etc/shadow\n".replace(
            "/usr/bin/systemctl restart sshd\n/bin/cat /etc/shadow",
            "/bin/cat /etc/shadow\n/usr/bin/systemctl restart sshd"
        )
    );
}

/// A Run Command invocation's output, as the SSM agent writes it to S3 (`OutputS3BucketName`)
/// and to CloudWatch Logs (`CloudWatchOutputConfig`, group `/aws/ssm/<document>`): each is found
/// by its name, becomes the record of its invocation's access (`logged = output`), and
/// `auditq replay` prints it from where it is.
#[tokio::test(flavor = "multi_thread")]
async fn run_command_output_in_s3_and_log_groups_is_the_record_of_its_access() {
    let _ = emulator();
    let run = run_id("rc");
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = aws_sdk_s3::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let bucket = format!("auditq-rc-{run}");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let id = "3f1c2b7a-9d4e-4c1b-8a2f-6e5d4c3b2a10";
    let (web, db) = ("i-0123456789abcdef0", "i-0fedcba9876543210");
    let sent = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let record = format!(
        r#"{{"Records":[{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/bob","userName":"bob"}},
        "eventTime":"{sent}","eventSource":"ssm.amazonaws.com","eventName":"SendCommand","awsRegion":"eu-west-1",
        "sourceIPAddress":"198.51.100.23","requestParameters":{{"instanceIds":["{web}","{db}"],"documentName":"AWS-RunShellScript",
        "comment":"CHG-2041","parameters":"HIDDEN_DUE_TO_SECURITY_REASONS"}},
        "responseElements":{{"command":{{"commandId":"{id}","documentName":"AWS-RunShellScript","instanceIds":["{web}","{db}"]}}}},
        "eventID":"send-{id}","recipientAccountId":"111122223333"}}]}}"#
    );
    let stdout_key = format!("run-output/{id}/{web}/awsrunShellScript/0.awsrunShellScript/stdout");
    for (key, body) in [
        (
            "AWSLogs/111122223333/CloudTrail/eu-west-1/send.json".to_string(),
            record,
        ),
        (
            stdout_key.clone(),
            "Upgraded:\n  openssl-3.0.8-1\nComplete!\n".to_string(),
        ),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    }
    let group = format!("/aws/ssm/AWS-RunShellScript-{run}");
    let stream = format!("{id}/{db}/aws-runShellScript/stdout");
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(&stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<InputLogEvent> = ["{\"openssl\": \"3.0.8-1\"}", "Complete!"]
        .iter()
        .enumerate()
        .map(|(n, m)| {
            InputLogEvent::builder()
                .timestamp(now - 5_000 + n as i64)
                .message(*m)
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name(&stream)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake").display().to_string();
    let summary = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "ingest",
            &format!("s3://{bucket}/"),
            &format!("cwl://{group}"),
        ],
    );
    assert!(summary.contains("rejects          0 read"), "{summary}");
    let sessions = auditq(
        dir.path(),
        &[
            "--data",
            &lake,
            "--format",
            "csv",
            "select session_id, user, kind, logged, reason, transcript_uri, stream_uri from sessions order by target",
        ],
    );
    assert_eq!(
        sessions,
        format!(
            "session_id,user,kind,logged,reason,transcript_uri,stream_uri\n\
             {id}-{web},bob,run_command,output,CHG-2041,s3://{bucket}/{stdout_key},\n\
             {id}-{db},bob,run_command,output,CHG-2041,,cwl://{}#{stream}\n",
            group.trim_start_matches('/')
        )
    );
    for (instance, expected) in [(web, "openssl-3.0.8-1"), (db, "\"openssl\": \"3.0.8-1\"")] {
        let replay = auditq(
            dir.path(),
            &["--data", &lake, "replay", &format!("{id}-{instance}")],
        );
        assert!(
            replay.contains(expected) && replay.contains("Complete!"),
            "{instance}: {replay}"
        );
    }
}

/// The scripts Run Command sent, which CloudTrail hides (`"parameters":
/// "HIDDEN_DUE_TO_SECURITY_REASONS"`), read from Systems Manager (`ListCommands`) as the
/// commands of each instance's access; read again from the stored position, nothing doubles.
#[tokio::test(flavor = "multi_thread")]
async fn run_command_scripts_come_from_systems_manager() {
    let lookup = auditq_ingest::lookup::Lookup::new(auditq_tests::aws_calls().await);
    let region = "eu-north-1";
    let (web, db) = ("i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2");
    let sent = lookup
        .json_call(
            "ssm",
            region,
            "AmazonSSM.SendCommand",
            &serde_json::json!({
                "InstanceIds": [web, db],
                "DocumentName": "AWS-RunShellScript",
                "Comment": "CHG-2042 rotate keys",
                "Parameters": {"commands": ["# rotate", "cd /etc/ssh", "ssh-keygen -A\nsystemctl restart sshd"]},
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = sent["Command"]["CommandId"]
        .as_str()
        .unwrap_or_else(|| panic!("no command id in {sent}"))
        .to_string();

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = dir.path().join("lake").display().to_string();
    let source = format!("ssm-commands://{region}");
    let summary = auditq(dir.path(), &["--data", &lake, "ingest", &source]);
    assert!(summary.contains("rejects          0 read"), "{summary}");
    let csv = |sql: &str| auditq(dir.path(), &["--data", &lake, "--format", "csv", sql]);
    assert_eq!(
        csv(&format!(
            "select session_id, seq, source, cmd from commands where session_id like '{id}%' order by session_id, seq"
        )),
        format!(
            "session_id,seq,source,cmd\n\
             {id}-{web},1,run_command,cd /etc/ssh\n{id}-{web},2,run_command,ssh-keygen -A\n\
             {id}-{web},3,run_command,systemctl restart sshd\n\
             {id}-{db},1,run_command,cd /etc/ssh\n{id}-{db},2,run_command,ssh-keygen -A\n\
             {id}-{db},3,run_command,systemctl restart sshd\n"
        )
    );
    assert_eq!(
        csv(&format!(
            "select kind, document, reason, target, region from sessions where session_id = '{id}-{web}'"
        )),
        format!(
            "kind,document,reason,target,region\nrun_command,AWS-RunShellScript,CHG-2042 rotate keys,{web},{region}\n"
        )
    );
    let count = "select count(*) n from commands";
    let before = csv(count);
    let again = auditq(dir.path(), &["--data", &lake, "ingest", &source]);
    assert!(again.contains("read 0 sources"), "{again}");
    assert_eq!(csv(count), before);
}
