//! CloudWatch Logs against the AWS API emulator (moto, started by ./scripts/test.sh): CloudTrail
//! delivered to a log group, read page by page and resumed from its forward token; a 256 KB
//! malformed event set aside; Session Manager's plain-text upload form.

use auditq_ingest::aws::{CwlSource, ingest_cwl};
use auditq_ingest::lake::Filter;
use auditq_ingest::parse::{Object, parse_object};
use auditq_ingest::{Lake, Limits, PipelineBuilder};
use auditq_model::{Command, Position, Reject, Table, TrailEvent};
use auditq_tests::{emulator, repo_root, run_id};
use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

async fn logs() -> aws_sdk_cloudwatchlogs::Client {
    let _ = emulator();
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    aws_sdk_cloudwatchlogs::Client::new(&config)
}

async fn put(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    messages: &[String],
) {
    let now = chrono::Utc::now().timestamp_millis();
    // PutLogEvents takes at most 10,000 events a call.
    for (n, part) in messages.chunks(5_000).enumerate() {
        let events: Vec<InputLogEvent> = part
            .iter()
            .map(|m| {
                InputLogEvent::builder()
                    .timestamp(now - 60_000 + n as i64)
                    .message(m)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        logs.put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
}

async fn group_with_stream(logs: &aws_sdk_cloudwatchlogs::Client, group: &str, stream: &str) {
    logs.create_log_group()
        .log_group_name(group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}

/// A CloudTrail record as CloudTrail writes it to CloudWatch Logs: one record per event.
fn record(id: &str) -> String {
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": "111122223333",
                         "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice"},
        "eventTime": "2026-10-05T09:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.17.5",
        "requestParameters": null,
        "responseElements": null,
        "requestID": format!("req-{id}"),
        "eventID": id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "111122223333",
    })
    .to_string()
}

async fn positions(lake: &Lake, source: &str) -> Vec<Position> {
    let mut rows: Vec<Position> = lake
        .rows(Filter::all().any_of("source", [source]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.sort_by_key(|p| p.version);
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudtrail_stream_is_paged_then_resumed_from_its_token() {
    let logs = logs().await;
    let group = format!("/auditq/{}", run_id("trail"));
    let stream = "111122223333_CloudTrail_eu-west-1";
    group_with_stream(&logs, &group, stream).await;
    // More than one GetLogEvents page (10,000 events at most).
    let first: Vec<String> = (0..10_050).map(|n| record(&format!("ev-{n:05}"))).collect();
    put(&logs, &group, stream, &first).await;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let pipeline = PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let source = CwlSource::new(auditq_tests::aws_calls().await);
    let uri = format!("cwl://{group}");
    let summary = ingest_cwl(&pipeline, &source, &uri, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.tables[&Table::Cloudtrail].added, 10_050);
    let origin = format!("cwl://{}/{stream}", group.trim_start_matches('/'));
    let stored = positions(&lake, &origin).await;
    let last = stored
        .last()
        .unwrap_or_else(|| panic!("no position for {origin}"));
    assert_eq!(last.version, 10_050);
    assert!(
        last.detail.starts_with("token:") && last.detail.len() > 6,
        "{last:?}"
    );

    // New events: one new record, one CloudTrail delivered twice, and a 256 KB event that is
    // not JSON. Only these are read; the duplicate is stored once; the bad one is set aside.
    let broken = format!(
        "{{\"eventVersion\":\"1.09\",\"eventName\":\"{}",
        "x".repeat(256_000)
    );
    put(
        &logs,
        &group,
        stream,
        &[record("ev-new"), record("ev-00007"), broken],
    )
    .await;
    let summary = ingest_cwl(&pipeline, &source, &uri, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.tables[&Table::Cloudtrail].read, 2, "{summary:?}");
    assert_eq!(summary.tables[&Table::Cloudtrail].added, 1, "{summary:?}");
    assert_eq!(summary.rejected(), 1, "{summary:?}");
    let rejects: Vec<Reject> = lake
        .rows(Filter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rejects.len(), 1);
    assert!(rejects[0].origin.contains(&group[1..]), "{:?}", rejects[0]);
    assert!(rejects[0].position.contains(stream), "{:?}", rejects[0]);
    // The position counts from the head of the stream: the bad event is the 10,053rd.
    assert!(
        rejects[0].position.contains("event 10053"),
        "{}",
        rejects[0].position
    );
    assert!(rejects[0].excerpt.len() < 2_000, "the excerpt is bounded");
    assert_eq!(
        positions(&lake, &origin).await.last().map(|p| p.version),
        Some(10_053)
    );

    // Nothing new: nothing read.
    let summary = ingest_cwl(&pipeline, &source, &uri, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((summary.objects, summary.skipped), (0, 1), "{summary:?}");

    let trail: Vec<TrailEvent> = lake
        .rows(Filter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trail.len(), 10_051);
    let mut ids: Vec<&str> = trail.iter().map(|t| t.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_051, "every eventID once");
}

/// With streaming off, the agent uploads the session's transcript to its stream as plain-text
/// events at the end: the commands are those of the same transcript read from S3.
#[tokio::test(flavor = "multi_thread")]
async fn upload_form_stream_reads_like_the_s3_transcript() {
    let logs = logs().await;
    let group = format!("/aws/ssm/{}", run_id("upload"));
    let session = "alice-0e1f2a3b4c5d6e7f8";
    group_with_stream(&logs, &group, session).await;
    let path = repo_root().join(format!(
        "sample-logs/s3/ssm-session-logs/session-logs/{session}.log"
    ));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The agent sends `\r\n` as `\n` and cuts the text into events; cut it at a line end.
    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
    let middle = text[..text.len() / 2]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let (head, tail) = text.split_at(middle);
    put(
        &logs,
        &group,
        session,
        &[head.to_string(), tail.to_string()],
    )
    .await;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let pipeline = PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let summary = ingest_cwl(
        &pipeline,
        &CwlSource::new(auditq_tests::aws_calls().await),
        &format!("cwl://{group}"),
        &|_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.rejected(), 0, "{summary:?}");
    let mut stored: Vec<Command> = lake
        .rows(Filter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stored.sort_by_key(|c| c.seq);
    let from_cwl: Vec<&str> = stored.iter().map(|c| c.cmd.as_str()).collect();

    let parsed = parse_object(
        bytes,
        Object {
            origin: &path.display().to_string(),
            modified: chrono::Utc::now(),
        },
        &Limits::default(),
    );
    let from_s3: Vec<&str> = parsed.commands.iter().map(|c| c.cmd.as_str()).collect();
    assert!(!from_s3.is_empty());
    assert_eq!(from_cwl, from_s3);
    assert!(
        stored
            .iter()
            .all(|c| c.session_id.as_deref() == Some(session))
    );
}
