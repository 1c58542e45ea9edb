//! Against the AWS API emulator (moto, started by ./scripts/test.sh): S3 notifications in every
//! envelope, bad objects in S3, and two writers committing to one S3 lake table at once.

use std::collections::HashMap;

use auditq_ingest::aws::{S3Location, S3Source, ingest_s3, ingest_s3_notification};
use auditq_ingest::parse::{Object, parse_object};
use auditq_ingest::{Lake, Limits};
use auditq_model::{Table, TrailEvent};
use auditq_tests::{emulator, repo_root, run_id};
use aws_config::BehaviorVersion;
use aws_sdk_s3::primitives::ByteStream;

async fn s3() -> aws_sdk_s3::Client {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    aws_sdk_s3::Client::new(&config)
}

async fn bucket(client: &aws_sdk_s3::Client, name: &str) {
    client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"));
}

fn s3_lake(bucket: &str) -> Lake {
    let endpoint = emulator();
    let options = HashMap::from([
        ("AWS_ENDPOINT_URL".to_string(), endpoint),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
    ]);
    Lake::new(format!("s3://{bucket}/lake")).with_storage_options(options)
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_in_every_envelope_ingest_each_object_once() {
    let _ = emulator();
    let client = s3().await;
    let source_bucket = run_id("auditq-notify-src");
    let lake_bucket = run_id("auditq-notify-lake");
    bucket(&client, &source_bucket).await;
    bucket(&client, &lake_bucket).await;
    let sid = "carol@example.com-q3ksx7n2pd5m4hbf6gtyr8wzla";
    let key = format!("session logs/{sid}.log");
    let path = repo_root().join(format!(
        "sample-logs/s3/ssm-session-logs/session-logs/{sid}.log"
    ));
    put(
        &client,
        &source_bucket,
        &key,
        std::fs::read(path).unwrap_or_else(|e| panic!("{e}")),
    )
    .await;

    let source = S3Source::new(auditq_tests::aws_calls().await);
    let lake = s3_lake(&lake_bucket);
    let pipeline = pipeline(&lake).await;
    let encoded = format!("session+logs/{}.log", sid.replace('@', "%40"));
    let direct = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": source_bucket}, "object": {"key": encoded}}
    }]});
    let via_sqs =
        serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": direct.to_string()}]});
    let via_eventbridge = serde_json::json!({
        "version": "0", "detail-type": "Object Created", "source": "aws.s3",
        "detail": {"bucket": {"name": source_bucket}, "object": {"key": key}}
    });
    let test_event = serde_json::json!({"Service": "Amazon S3", "Event": "s3:TestEvent"});

    let limits = Limits::default();
    let first = ingest_s3_notification(&pipeline, &source, &direct, &limits)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.objects, 1);
    assert_eq!(first.tables[&Table::Commands].added, 4, "{first:?}");
    // The object's position was committed with its rows, in the commands table's own log.
    let commands = lake
        .open(Table::Commands)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let state = commands.snapshot().unwrap_or_else(|e| panic!("{e}"));
    let head = client
        .head_object()
        .bucket(&source_bucket)
        .key(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    let app_id = format!("s3://{source_bucket}/{key}@{etag}");
    let version = state
        .transaction_version(commands.log_store().as_ref(), &app_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(version, Some(1), "{app_id}");
    for again in [&via_sqs, &via_eventbridge, &test_event] {
        let summary = ingest_s3_notification(&pipeline, &source, again, &limits)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.objects, 0, "{again}");
    }
    let garbage =
        serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{truncated"}]});
    let error = ingest_s3_notification(&pipeline, &source, &garbage, &limits).await;
    assert!(error.is_err_and(|e| e.to_string().contains("malformed JSON")));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_objects_in_s3_are_rejected_with_reasons_and_large_ones_not_downloaded() {
    let _ = emulator();
    let client = s3().await;
    let source_bucket = run_id("auditq-bad-src");
    let lake_bucket = run_id("auditq-bad-lake");
    bucket(&client, &source_bucket).await;
    bucket(&client, &lake_bucket).await;
    let good = r#"{"Records":[{"eventTime":"2026-10-06T18:02:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"s3-good-1"}]}"#;
    put(
        &client,
        &source_bucket,
        "a/good.json",
        good.as_bytes().to_vec(),
    )
    .await;
    put(
        &client,
        &source_bucket,
        "a/truncated.json.gz",
        vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
    )
    .await;
    put(&client, &source_bucket, "a/huge.json", vec![b' '; 300_000]).await;
    put(
        &client,
        &source_bucket,
        "a/latin1.json",
        b"{\"eventName\":\"caf\xe9\"}".to_vec(),
    )
    .await;

    let pipeline = pipeline(&s3_lake(&lake_bucket)).await;
    // A cap of 256 KiB stands in for an object of several GB: it must not be downloaded.
    let limits = Limits {
        max_object_bytes: 256 * 1024,
        ..Limits::default()
    };
    let location =
        S3Location::parse(&format!("s3://{source_bucket}/a/")).unwrap_or_else(|| panic!("uri"));
    let summary = ingest_s3(
        &pipeline,
        &S3Source::new(auditq_tests::aws_calls().await),
        &location,
        &limits,
        &|_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.objects, 4);
    assert_eq!(summary.tables[&Table::Cloudtrail].added, 1);
    assert_eq!(summary.tables[&Table::Rejects].added, 3, "{summary:?}");
    let reasons: Vec<&str> = summary.reject_reasons.keys().map(String::as_str).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("object of N bytes exceeds")),
        "{reasons:?}"
    );
    assert!(
        summary
            .reject_examples
            .values()
            .any(|r| r.starts_with("object of 300000 bytes exceeds")),
        "{summary:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("truncated gzip")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("malformed JSON")),
        "{reasons:?}"
    );
}

async fn pipeline(lake: &Lake) -> auditq_ingest::Pipeline {
    auditq_ingest::PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn trail_rows(prefix: &str, n: usize) -> Vec<TrailEvent> {
    let records: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"eventTime":"2026-10-06T12:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"{prefix}-{i}"}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
    let object = Object {
        origin: prefix,
        modified: chrono::Utc::now(),
    };
    parse_object(body.into_bytes(), object, &Limits::default()).trail
}

#[tokio::test(flavor = "multi_thread")]
async fn two_writers_appending_at_once_lose_no_commit() {
    let _ = emulator();
    let client = s3().await;
    let lake_bucket = run_id("auditq-concurrent");
    bucket(&client, &lake_bucket).await;
    let lake = s3_lake(&lake_bucket);
    // Create the table first so both writers race on commits, not on creation.
    lake.append(&trail_rows("seed", 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rounds = 5;
    let writer = |name: &'static str, lake: Lake| async move {
        for round in 0..rounds {
            lake.append(&trail_rows(&format!("{name}-{round}"), 10))
                .await
                .unwrap_or_else(|e| panic!("{name} round {round}: {e}"));
        }
    };
    // Two writers as two processes would be: each its own lake handle, one signing key.
    let key = std::sync::Arc::new(
        auditq_ingest::digest::SigningKey::parse("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let signed = || s3_lake(&lake_bucket).with_signing_key(Some(key.clone()));
    let a = tokio::spawn(writer("a", signed()));
    let b = tokio::spawn(writer("b", signed()));
    a.await.unwrap_or_else(|e| panic!("{e}"));
    b.await.unwrap_or_else(|e| panic!("{e}"));

    let ctx = auditq_query::context(&lake)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batches = auditq_query::run_sql(
        &ctx,
        "select count(*) n, count(distinct event_id) d from cloudtrail",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .map(|t| t.to_string())
        .unwrap_or_default();
    assert!(text.contains("| 101 | 101 |"), "{text}");
    let delta = lake
        .open(Table::Cloudtrail)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        delta.version(),
        Some(2 * rounds as u64),
        "one commit per append, none lost (the seed's created the table)"
    );
    // Racing writers still leave one digest per commit, in one unbroken chain: the seed commit
    // (unsigned: written without a key) is the only finding.
    let verified = auditq_ingest::digest::verify(&lake, &[key.public_key()], "test", true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cloudtrail = verified
        .tables
        .iter()
        .find(|t| t.table == "cloudtrail")
        .unwrap_or_else(|| panic!("{verified:?}"));
    assert_eq!(cloudtrail.digests, 2 * rounds + 1, "{verified:?}");
    assert_eq!(cloudtrail.signed, 2 * rounds, "{verified:?}");
    assert_eq!(verified.problems.len(), 1, "{:#?}", verified.problems);
    assert!(
        verified.problems[0]
            .path
            .ends_with("cloudtrail/00000000000000000000.json")
            && verified.problems[0].detail == "not signed",
        "{:#?}",
        verified.problems
    );
}

/// An object S3 refuses to hand over (here archived to Glacier: 403 InvalidObjectState) is set
/// aside with the reason; the other objects are ingested, and the refused one is tried again by
/// the next run instead of being marked done.
#[tokio::test(flavor = "multi_thread")]
async fn an_object_s3_refuses_is_set_aside_and_tried_again() {
    let _ = emulator();
    let client = s3().await;
    let source_bucket = run_id("auditq-refused-src");
    bucket(&client, &source_bucket).await;
    let record = |id: &str| {
        format!(
            r#"{{"Records":[{{"eventTime":"2026-10-06T18:02:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"{id}"}}]}}"#
        )
        .into_bytes()
    };
    put(&client, &source_bucket, "t/1.json", record("refused-a")).await;
    client
        .put_object()
        .bucket(&source_bucket)
        .key("t/2.json")
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .body(ByteStream::from(record("refused-b")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    put(&client, &source_bucket, "t/3.json", record("refused-c")).await;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pipeline = pipeline(&Lake::new(dir.path().join("lake").display().to_string())).await;
    let source = S3Source::new(auditq_tests::aws_calls().await);
    let location =
        S3Location::parse(&format!("s3://{source_bucket}/t/")).unwrap_or_else(|| panic!("uri"));
    let limits = Limits::default();
    let summary = ingest_s3(&pipeline, &source, &location, &limits, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.tables[&Table::Cloudtrail].added, 2, "{summary:?}");
    assert_eq!(summary.rejected(), 1, "{summary:?}");
    let reason = summary
        .reject_examples
        .values()
        .next()
        .cloned()
        .unwrap_or_default();
    assert!(reason.starts_with("GetObject refused (403)"), "{reason}");

    // The next run reads only the refused object again; its reject is not stored twice.
    let again = ingest_s3(&pipeline, &source, &location, &limits, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.objects, again.skipped), (1, 2), "{again:?}");
    assert_eq!(again.tables[&Table::Rejects].added, 0, "{again:?}");
}
