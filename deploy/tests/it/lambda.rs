//! The Lambda handler called in-process with real-shaped events, against the AWS API emulator
//! (moto, started by ./scripts/test.sh): the lake on the emulator's S3, alerts through its SNS
//! into an SQS queue.

use std::io::Write;
use std::time::Duration;

use crate::common::{Emulator, connect, s3_lake, scalar, strings};
use auditq_deploy::{Config, Handler};
use auditq_ingest::aws::AwsSettings;
use auditq_tests::repo_root;
use base64::Engine as _;
use serde_json::{Value, json};

async fn handler(lake_bucket: &str, topic: Option<&str>) -> Handler {
    let config = Config {
        data: format!("s3://{lake_bucket}/lake"),
        rules: Some("default".to_string()),
        alerts: topic.map(|t| format!("sns://{t}")).into_iter().collect(),
        ..Config::default()
    };
    config.validate().unwrap_or_else(|e| panic!("{e}"));
    Handler::new(
        &config,
        &AwsSettings::from_vars(|name| std::env::var(name).ok()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// An event envelope of the corpus (`../shared/corpora/lambda-envelopes`).
fn envelope(name: &str) -> Value {
    let path = repo_root()
        .join("../shared/corpora/lambda-envelopes")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the corpora are beside the repository)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A CloudWatch Logs subscription event as Lambda receives it.
fn subscription(message_type: &str, group: &str, stream: &str, events: &[(i64, String)]) -> Value {
    let log_events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(n, (ts, message))| json!({"id": format!("{ts}{n:04}"), "timestamp": ts, "message": message}))
        .collect();
    let payload = json!({
        "messageType": message_type,
        "owner": "111122223333",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["auditq"],
        "logEvents": log_events,
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(payload.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap_or_default());
    json!({ "awslogs": { "data": data } })
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_batch_of_a_session_stream_alerts_through_sns_and_fills_the_lake() {
    let aws: Emulator = connect().await;
    let lake_bucket = aws.bucket("auditq-lambda-lake").await;
    let (topic, queue) = aws.topic_with_queue("auditq-lambda-alerts").await;
    let handler = handler(&lake_bucket, Some(&topic)).await;
    let session = "alice-0a7f3c9e1b2d4f601";
    let (group, events) = aws.session_stream(session).await;

    // A subscription batch holds only the newest chunks; the handler reads the stream whole.
    let newest = &events[events.len() - 3..];
    let answer = handler
        .handle(subscription("DATA_MESSAGE", &group, session, newest))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer["rejected"], 0, "{answer}");

    let alerts = aws.alerts(&queue, 2, Duration::from_secs(5)).await;
    let root_shell = alerts
        .iter()
        .find(|a| a["rule_id"] == "linux.sudo_root_shell")
        .unwrap_or_else(|| panic!("no linux.sudo_root_shell alert in {alerts:?}"));
    assert_eq!(root_shell["cmd"], "sudo su -", "{root_shell}");
    assert_eq!(root_shell["user"], "alice", "{root_shell}");
    assert_eq!(root_shell["target"], "i-0a1b2c3d4e5f60711", "{root_shell}");

    let lake = s3_lake(&lake_bucket);
    let commands = strings(
        &lake,
        &format!("select cmd from commands where session_id = '{session}' order by seq"),
    )
    .await;
    assert_eq!(
        commands,
        [
            "whoami",
            "sudo systemctl restart nginx",
            "sudo su -",
            "tail -n 20 /var/log/secure",
            "/usr/local/sbin/rotate-logs.sh",
            "stty -echo",
            "exit",
            "exit"
        ],
        "every command of the stream, not only the batch's"
    );
    let stored_alerts = scalar(&lake, "select count(*) from alerts where published").await;
    assert_eq!(stored_alerts as usize, alerts.len(), "{alerts:?}");

    // The same batch again (Lambda retries): no new row, no second alert.
    let again = handler
        .handle(subscription("DATA_MESSAGE", &group, session, newest))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again["tables"]["commands"]["added"], 0, "{again}");
    let repeated = aws.alerts(&queue, 1, Duration::from_secs(1)).await;
    assert!(repeated.is_empty(), "alerted twice: {repeated:?}");

    // A control message is acknowledged and stores nothing.
    let control = handler
        .handle(subscription(
            "CONTROL_MESSAGE",
            "",
            "",
            &[(
                0,
                "CWL CONTROL MESSAGE: Checking health of destination".to_string(),
            )],
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(control, json!({"ignored": "CONTROL_MESSAGE"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_batch_of_cloudtrail_records_is_stored_from_the_batch() {
    let aws = connect().await;
    let lake_bucket = aws.bucket("auditq-lambda-trail").await;
    let handler = handler(&lake_bucket, None).await;
    // The corpus's real CloudTrail records, as CloudTrail writes them to CloudWatch Logs.
    // Their eventIDs are all zeros in the fixtures; a trail gives each its own, and delivers
    // one twice now and then (the copy must not add a row).
    let mut events = Vec::new();
    for (n, name) in [
        "example-cloudwatch-cloudtrail-assumed-role.json",
        "example-cloudwatch-cloudtrail-unknown-federate.json",
        "example-cloudwatch-cloudtrail-unknown-user-auth.json",
    ]
    .into_iter()
    .enumerate()
    {
        let mut record = envelope(name);
        record["eventID"] = json!(format!("00000000-0000-0000-0000-00000000000{n}"));
        events.push((1_700_000_000_000, record.to_string()));
    }
    events.push(events[0].clone());
    events.push((
        1_700_000_000_000,
        "{\"eventVersion\": \"1.08\", truncated".to_string(),
    ));
    let envelope = subscription(
        "DATA_MESSAGE",
        "aws-cloudtrail-logs-123456789000",
        "123456789000_CloudTrail_eu-west-1",
        &events,
    );
    let answer = handler
        .handle(envelope)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer["tables"]["cloudtrail"]["read"], 4, "{answer}");
    assert_eq!(answer["tables"]["cloudtrail"]["added"], 3, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    let lake = s3_lake(&lake_bucket);
    let users = strings(&lake, "select user from cloudtrail order by user").await;
    assert!(users.iter().any(|u| u == "me@dev.com"), "{users:?}");
    assert_eq!(scalar(&lake, "select count(*) from rejects").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_batch_reports_exactly_the_poisoned_message_as_failed() {
    let aws = connect().await;
    let source = aws.bucket("auditq-lambda-src").await;
    let lake_bucket = aws.bucket("auditq-lambda-sqs").await;
    let handler = handler(&lake_bucket, None).await;

    let transcript = "alice-0e1f2a3b4c5d6e7f8";
    let transcript_key = format!("session-logs/{transcript}.log");
    aws.put(
        &source,
        &transcript_key,
        std::fs::read(repo_root().join(format!(
            "sample-logs/s3/ssm-session-logs/session-logs/{transcript}.log"
        )))
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let trail_key = "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/10/05/111122223333_CloudTrail_eu-west-1_20261005T0920Z_DDA0BD572E1A034F.json.gz";
    aws.put(
        &source,
        trail_key,
        std::fs::read(repo_root().join(format!("sample-logs/s3/cloudtrail/{trail_key}")))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let s3_event = |key: &str| {
        json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": source}, "object": {"key": key.replace(' ', "+")}}
        }]})
    };
    let through_sns = json!({
        "Type": "Notification",
        "TopicArn": "arn:aws:sns:us-east-1:111122223333:cloudtrail",
        "Message": s3_event(trail_key).to_string(),
    });
    // The corpus's SQS event, with our three bodies.
    let corpus: Value = envelope("example-sqs-event.json");
    let template = corpus["Records"][0].clone();
    let poisoned = template["body"].as_str().unwrap_or_default().to_string();
    let records: Vec<Value> = [
        ("m-transcript", s3_event(&transcript_key).to_string()),
        ("m-poisoned", poisoned),
        ("m-trail", through_sns.to_string()),
    ]
    .into_iter()
    .map(|(id, body)| {
        let mut record = template.clone();
        record["messageId"] = json!(id);
        record["body"] = json!(body);
        record
    })
    .collect();
    let answer = handler
        .handle(json!({ "Records": records }))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        answer["batchItemFailures"],
        json!([{"itemIdentifier": "m-poisoned"}]),
        "{answer}"
    );
    let lake = s3_lake(&lake_bucket);
    assert!(
        scalar(
            &lake,
            &format!("select count(*) from commands where session_id = '{transcript}'")
        )
        .await
            > 0
    );
    assert!(scalar(&lake, "select count(*) from cloudtrail").await > 0);
    let reasons = strings(&lake, "select reason from rejects").await;
    assert!(
        reasons.len() == 1 && reasons[0].contains("malformed JSON"),
        "{reasons:?}"
    );

    // EventBridge "Object Created" for an object already ingested adds nothing; the schedule
    // then compacts the small files of these commits without changing a row.
    let bridge: Value = envelope("example-eventbridge-event-obj.json");
    let mut bridge = bridge;
    bridge["source"] = json!("aws.s3");
    bridge["detail-type"] = json!("Object Created");
    bridge["detail"] = json!({"bucket": {"name": source}, "object": {"key": transcript_key}});
    let again = handler
        .handle(bridge)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again["tables"]["commands"]["added"], 0, "{again}");

    let before = scalar(&lake, "select count(*) from commands").await;
    let schedule = json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "111122223333", "time": "2026-11-24T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/auditq-compaction"], "detail": {}
    });
    let compacted = handler
        .handle(schedule)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tables = compacted["compacted"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        tables.iter().any(|t| t["files_removed"].as_u64() > Some(1)),
        "nothing compacted: {compacted}"
    );
    assert_eq!(scalar(&lake, "select count(*) from commands").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_it_does_not_handle_fails_as_permanent() {
    let aws = connect().await;
    let lake_bucket = aws.bucket("auditq-lambda-unknown").await;
    let handler = handler(&lake_bucket, None).await;
    let ec2: Value = envelope("example-eventbridge-event-obj.json");
    let error = handler.handle(ec2).await.err();
    assert!(
        error
            .as_ref()
            .is_some_and(|e| !e.retryable && e.message.contains("not an event")),
        "{error:?}"
    );
    let garbage = json!({"awslogs": {"data": "H4sI-not-really"}});
    let answer = handler
        .handle(garbage)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer["rejected"], 1, "set aside, not retried: {answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_text_log_events_are_set_aside_not_dropped() {
    let aws = connect().await;
    let lake_bucket = aws.bucket("auditq-lambda-plain").await;
    let handler = handler(&lake_bucket, None).await;
    // The corpus's subscription event: two "[ERROR] ..." lines of an application log group.
    let corpus: Value = envelope("example-cloudwatch_logs-event.json");
    let answer = handler
        .handle(corpus)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        answer["reject_reasons"],
        json!({"unrecognised plain-text event": 2}),
        "{answer}"
    );
    let lake = s3_lake(&lake_bucket);
    let kept = strings(&lake, "select excerpt from rejects order by excerpt").await;
    assert_eq!(
        kept,
        ["[ERROR] First test message", "[ERROR] Second test message"],
        "the lines themselves are kept"
    );
}

/// A subscription batch of a host log group (the CloudWatch agent's `/var/log/secure`, stream
/// = instance id) is stored from the batch: sshd and sudo into host_events, sudo's commands into
/// commands, and the failed-login burst alerted. Nothing is read back from CloudWatch.
#[tokio::test(flavor = "multi_thread")]
async fn subscription_batch_of_host_logs_is_stored_from_the_batch() {
    let aws = connect().await;
    let lake_bucket = aws.bucket("auditq-lambda-host").await;
    let handler = handler(&lake_bucket, None).await;
    let path = repo_root().join("sample-logs/cloudwatch/host-logs/i-0d4e5f60718293a44-secure.json");
    let export: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<(i64, String)> = export["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events"))
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_i64().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // The group was never created in the emulator: a read of the stream would fail.
    let envelope = subscription(
        "DATA_MESSAGE",
        "/ec2/var/log/secure",
        "i-0d4e5f60718293a44",
        &events,
    );
    let answer = handler
        .handle(envelope)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer["tables"]["host_events"]["added"], 17, "{answer}");
    assert_eq!(answer["rejected"], 0, "{answer}");
    let lake = s3_lake(&lake_bucket);
    assert_eq!(
        strings(
            &lake,
            "select cmd from commands where source = 'sudo' order by time"
        )
        .await,
        [
            "/usr/bin/systemctl status sshd",
            "/usr/sbin/visudo",
            "/bin/cat /etc/shadow"
        ]
    );
    assert_eq!(
        strings(&lake, "select distinct target from host_events").await,
        ["i-0d4e5f60718293a44"]
    );
    assert_eq!(
        strings(
            &lake,
            "select rule_id from alerts where rule_id like 'host.%' order by rule_id"
        )
        .await,
        ["host.ssh_failed_login_burst"]
    );
}
