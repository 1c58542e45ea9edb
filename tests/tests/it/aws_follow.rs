//! Against the AWS API emulator (moto, started by ./scripts/test.sh): a follower in live-tail
//! mode stores a Session Manager stream's commands within 2 s of the events arriving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditq_ingest::aws::{CwlSource, FollowMode, follow_cwl};
use auditq_ingest::{Lake, PipelineBuilder};
use auditq_tests::{emulator, repo_root};
use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

async fn commands_of(lake: &Lake, session: &str) -> usize {
    let Ok(ctx) = auditq_query::context(lake).await else {
        return 0;
    };
    let sql = format!("select count(*) n from commands where session_id = '{session}'");
    let Ok(batches) = auditq_query::run_sql(&ctx, &sql).await else {
        return 0;
    };
    auditq_query::count_of(&batches) as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn live_tail_follower_stores_new_commands_within_two_seconds() {
    follower_stores_new_commands_within(FollowMode::LiveTail, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_follower_finds_new_streams_with_filter_log_events() {
    follower_stores_new_commands_within(
        FollowMode::Poll(Duration::from_secs(1)),
        Duration::from_secs(6),
    )
    .await;
}

async fn follower_stores_new_commands_within(mode: FollowMode, limit: Duration) {
    let _ = emulator();
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let group = format!("/aws/ssm/follow-{}-{nanos}", std::process::id());
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let pipeline = PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (pipeline, stop, source, uri) = (
            pipeline.clone(),
            stop.clone(),
            CwlSource::new(auditq_tests::aws_calls().await),
            format!("cwl://{group}"),
        );
        tokio::spawn(
            async move { follow_cwl(&pipeline, &source, &uri, mode, &stop, &|_| {}).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !follower.is_finished(),
        "the follower stopped early: {:?}",
        follower.await
    );

    let session = "dave-03d4e5f6a7b8c9da2";
    let export: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_root().join(format!(
            "sample-logs/cloudwatch/aws-ssm-sessions/{session}.json"
        )))
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let events = export["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events"));
    let now = chrono::Utc::now().timestamp_millis();
    let first = events[0]["timestamp"].as_i64().unwrap_or(0);
    let batch: Vec<InputLogEvent> = events
        .iter()
        .map(|e| {
            InputLogEvent::builder()
                .timestamp(e["timestamp"].as_i64().unwrap_or(0) - first + now - 60_000)
                .message(e["message"].as_str().unwrap_or_default())
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(session)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let sent = Instant::now();
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name(session)
        .set_log_events(Some(batch))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let mut stored = 0;
    while sent.elapsed() < limit + Duration::from_secs(3) {
        stored = commands_of(&lake, session).await;
        if stored == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let latency = sent.elapsed();
    stop.store(true, Ordering::Relaxed);
    let result = tokio::time::timeout(Duration::from_secs(10), follower).await;
    assert_eq!(stored, 3, "commands stored after {latency:?}");
    assert!(latency < limit, "{mode:?}: picked up after {latency:?}");
    eprintln!("{mode:?}: new session stored {latency:?} after PutLogEvents");
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "follower ended with {result:?}"
    );
}
