//! What the deployment tests share: clients for the emulator, a topic delivering to a queue, and
//! counting rows of an S3 lake.

#![allow(dead_code)]

use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::Value;

use auditq_ingest::Lake;
use auditq_ingest::aws::AwsSettings;
use auditq_tests::{emulator, repo_root, run_id};

/// Clients of the emulator.
pub struct Emulator {
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

pub async fn connect() -> Emulator {
    let _ = emulator();
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    Emulator {
        s3: aws_sdk_s3::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
        logs: aws_sdk_cloudwatchlogs::Client::new(&config),
    }
}

impl Emulator {
    pub async fn bucket(&self, name: &str) -> String {
        let name = run_id(name);
        self.s3
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        name
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    }

    /// An SNS topic and a queue subscribed to it: (topic ARN, queue URL).
    pub async fn topic_with_queue(&self, name: &str) -> (String, String) {
        let name = run_id(name);
        let topic = self
            .sns
            .create_topic()
            .name(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .topic_arn()
            .unwrap_or_default()
            .to_string();
        let queue = self.queue(&name).await;
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        self.sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        (topic, queue)
    }

    pub async fn queue(&self, name: &str) -> String {
        self.sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .queue_url()
            .unwrap_or_default()
            .to_string()
    }

    /// The alerts delivered to a queue subscribed to the topic (SNS envelopes unwrapped), read
    /// until `want` arrived or `wait` passed.
    pub async fn alerts(&self, queue: &str, want: usize, wait: std::time::Duration) -> Vec<Value> {
        let deadline = std::time::Instant::now() + wait;
        let mut alerts = Vec::new();
        while alerts.len() < want && std::time::Instant::now() < deadline {
            let page = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            for message in page.messages() {
                let envelope: Value =
                    serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
                let alert: Value = serde_json::from_str(envelope["Message"].as_str().unwrap_or(""))
                    .unwrap_or_default();
                alerts.push(alert);
                if let Some(handle) = message.receipt_handle() {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(queue)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
            if page.messages().is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        alerts
    }

    /// A log group holding one sample Session Manager stream, its events shifted to a minute
    /// ago; returns the group and the events as put.
    pub async fn session_stream(&self, session: &str) -> (String, Vec<(i64, String)>) {
        let group = self.log_group("sessions").await;
        let events = self.put_session(&group, session, 60_000).await;
        (group, events)
    }

    /// A new log group `/aws/ssm/<name>-<run id>`.
    pub async fn log_group(&self, name: &str) -> String {
        let group = format!("/aws/ssm/{}", run_id(name));
        self.logs
            .create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        group
    }

    /// Puts a sample session's stream into a group, its events shifted to `ago_ms` ago.
    pub async fn put_session(&self, group: &str, session: &str, ago_ms: i64) -> Vec<(i64, String)> {
        let events = sample_stream(session, ago_ms);
        self.put_events(group, session, &events).await;
        events
    }

    /// Every object in a bucket, as text (lossy), one after another.
    pub async fn all_objects(&self, bucket: &str) -> String {
        let mut text = String::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            for key in page.contents().iter().filter_map(|o| o.key()) {
                let body = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{key}: {e:?}"))
                    .body
                    .collect()
                    .await
                    .unwrap_or_else(|e| panic!("{key}: {e:?}"))
                    .into_bytes();
                text.push_str(&String::from_utf8_lossy(&body));
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return text;
            }
        }
    }

    /// Writes events (timestamp, message) to a new stream of `group`.
    pub async fn put_events(&self, group: &str, stream: &str, events: &[(i64, String)]) {
        self.logs
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let batch: Vec<InputLogEvent> = events
            .iter()
            .map(|(ts, message)| {
                InputLogEvent::builder()
                    .timestamp(*ts)
                    .message(message)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        self.logs
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(batch))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
}

/// A sample session's stream events, shifted so that the first is `ago_ms` before now.
pub fn sample_stream(session: &str, ago_ms: i64) -> Vec<(i64, String)> {
    let path = repo_root().join(format!(
        "sample-logs/cloudwatch/aws-ssm-sessions/{session}.json"
    ));
    let export: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let events = export["events"].as_array().cloned().unwrap_or_default();
    let first = events[0]["timestamp"].as_i64().unwrap_or(0);
    let now = chrono::Utc::now().timestamp_millis();
    events
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_i64().unwrap_or(0) - first + now - ago_ms,
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A lake on the emulator's S3, as the handler and the service open it.
pub fn s3_lake(bucket: &str) -> Lake {
    Lake::new(format!("s3://{bucket}/lake")).with_storage_options(
        AwsSettings::from_vars(|name| std::env::var(name).ok()).storage_options(),
    )
}

/// The count a `select count(*) ...` over a lake answers.
pub async fn scalar(lake: &Lake, sql: &str) -> i64 {
    let ctx = auditq_query::context(lake)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batches = auditq_query::run_sql(&ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    auditq_query::count_of(&batches)
}

/// The string values of a one-column query.
pub async fn strings(lake: &Lake, sql: &str) -> Vec<String> {
    let ctx = auditq_query::context(lake)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batches = auditq_query::run_sql(&ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for batch in batches {
        let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(values) = column.as_any().downcast_ref::<arrow::array::StringArray>() {
            out.extend(values.iter().map(|v| v.unwrap_or_default().to_string()));
        }
    }
    out
}
