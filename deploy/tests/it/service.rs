//! The ECS service as a subprocess against the AWS API emulator (moto, started by
//! ./scripts/test.sh): a session streamed into a followed log group raises its alert in an SQS
//! queue subscribed to the topic within 2 s; SIGTERM ends it with exit 0 and everything
//! committed; a restart picks up what arrived while it was down (a stream, and a transcript
//! announced in the queue of S3 notifications), with no row lost or doubled, while the lake is
//! compacted under it; secrets typed in a followed session reach the alerts, the lake and the
//! service's log only as redaction tokens.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Emulator, connect, s3_lake, scalar};

/// Secrets typed in a session the service follows.
const PLANTED: [&str; 2] = ["PlantedHunter2xyz", "ghp_PlantedToken0123456789abcdefABCD"];

struct Service {
    child: Child,
    listen: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Service {
    /// Starts the service; `compact_every_batches` 1 compacts the lake after every batch.
    fn start(
        lake_bucket: &str,
        topic: &str,
        group: &str,
        queue: &str,
        log: &std::path::Path,
        compact_every_batches: u32,
    ) -> Service {
        let listen = {
            let probe =
                std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            probe.local_addr().unwrap_or_else(|e| panic!("{e}"))
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_auditq-service"))
            .env("AUDITQ_DATA", format!("s3://{lake_bucket}/lake"))
            .env("AUDITQ_RULES", "default")
            .env("AUDITQ_SNS_TOPIC_ARN", topic)
            .env("AUDITQ_LOG_GROUPS", group)
            .env("AUDITQ_SQS_QUEUE_URL", queue)
            .env("AUDITQ_LISTEN", listen.to_string())
            .env("AUDITQ_COMPACT_EVERY_HOURS", "0")
            .env(
                "AUDITQ_COMPACT_EVERY_BATCHES",
                compact_every_batches.to_string(),
            )
            .env_remove("RUST_LOG")
            .env_remove("AUDITQ_CONFIG")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start auditq-service: {e}"));
        Service {
            child,
            listen,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if auditq_deploy::metrics::check_health(self.listen)
                .await
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the service exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "not healthy in 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.listen)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text).await;
        text
    }

    /// SIGTERM, then the exit status within `limit`.
    async fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(sent.success());
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running {limit:?} after SIGTERM:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn distinct_ids_hold(lake: &auditq_ingest::Lake, table: &str, key: &str) {
    let all = scalar(lake, &format!("select count(*) from {table}")).await;
    let distinct = scalar(lake, &format!("select count(distinct {key}) from {table}")).await;
    assert_eq!(all, distinct, "{table}: {all} rows, {distinct} ids");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_alerts_within_two_seconds_stops_cleanly_and_resumes_without_loss_or_duplicates() {
    let aws: Emulator = connect().await;
    let lake_bucket = aws.bucket("auditq-service-lake").await;
    let (topic, queue) = aws.topic_with_queue("auditq-service-alerts").await;
    let group = aws.log_group("service").await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("service.log");
    let lake = s3_lake(&lake_bucket);

    // S3 notifications come through a queue the service drains.
    let notifications = aws.queue(&auditq_tests::run_id("auditq-service-s3")).await;
    let source = aws.bucket("auditq-service-src").await;
    let mut service = Service::start(&lake_bucket, &topic, &group, &notifications, &log, 0);
    service.wait_healthy().await;
    // Let the followers finish their catch-up and start tailing.
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let sent = Instant::now();
    aws.put_session(&group, "alice-0a7f3c9e1b2d4f601", 60_000)
        .await;
    let alerts = aws.alerts(&queue, 2, Duration::from_secs(10)).await;
    let latency = sent.elapsed();
    let root_shell = alerts
        .iter()
        .find(|a| a["rule_id"] == "linux.sudo_root_shell")
        .unwrap_or_else(|| panic!("no root-shell alert in {alerts:?}:\n{}", service.log()));
    assert_eq!(root_shell["user"], "alice");
    assert!(
        latency < Duration::from_secs(2),
        "alert arrived {latency:?} after PutLogEvents"
    );
    eprintln!("event to alert in the queue: {latency:?}");

    // Alerts go out before their batch commits; the counts follow the commit.
    let mut metrics = service.metrics().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics.contains("auditq_rows_added_total{table=\"commands\"} 8")
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = service.metrics().await;
    }
    assert!(
        metrics.contains("auditq_rows_added_total{table=\"commands\"} 8"),
        "{metrics}"
    );
    assert!(metrics.contains("auditq_lag_seconds"), "{metrics}");

    let status = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status} after SIGTERM");
    let alice = "select count(*) from commands where session_id = 'alice-0a7f3c9e1b2d4f601'";
    assert_eq!(scalar(&lake, alice).await, 8, "committed before exit");

    // Arrives while the service is down; read when it is back.
    aws.put_session(&group, "bob-02c3d4e5f6a7b8c91", 30_000)
        .await;
    let transcript = "carol@example.com-q3ksx7n2pd5m4hbf6gtyr8wzla";
    let key = format!("session-logs/{transcript}.log");
    aws.put(
        &source,
        &key,
        std::fs::read(auditq_tests::repo_root().join(format!(
            "sample-logs/s3/ssm-session-logs/session-logs/{transcript}.log"
        )))
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let notification = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": source}, "object": {"key": key.replace('@', "%40")}}
    }]});
    aws.sqs
        .send_message()
        .queue_url(&notifications)
        .message_body(notification.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    // This time the lake is compacted after every batch, while the service follows.
    let mut service = Service::start(&lake_bucket, &topic, &group, &notifications, &log, 1);
    service.wait_healthy().await;
    let bob = "select count(*) from commands where session_id = 'bob-02c3d4e5f6a7b8c91'";
    let carol = format!("select count(*) from commands where session_id = '{transcript}'");
    let deadline = Instant::now() + Duration::from_secs(20);
    while (scalar(&lake, bob).await == 0 || scalar(&lake, &carol).await == 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(scalar(&lake, bob).await > 0, "{}", service.log());
    assert!(
        scalar(&lake, &carol).await > 0,
        "the queued transcript: {}",
        service.log()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !service.log().contains("lake compacted") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        service.log().contains("lake compacted"),
        "no compaction ran:\n{}",
        service.log()
    );
    // Secrets typed in a session: stored and alerted on as tokens only.
    let planted_id = "erin-0123456789abcdef0";
    let planted: Vec<(i64, String)> =
        crate::common::sample_stream("alice-0a7f3c9e1b2d4f601", 5_000)
            .into_iter()
            .map(|(ts, message)| {
                let message = message
                    .replace("alice-0a7f3c9e1b2d4f601", planted_id)
                    .replace("user/alice", "user/erin")
                    .replace(
                        "sudo systemctl restart nginx",
                        &format!("sudo mysql -uroot -p{} -e 'select 1'", PLANTED[0]),
                    )
                    .replace(
                        "\"whoami\"",
                        &format!("\"export GITHUB_TOKEN={}\"", PLANTED[1]),
                    );
                (ts, message)
            })
            .collect();
    aws.put_events(&group, planted_id, &planted).await;
    let planted_rows = format!("select count(*) from commands where session_id = '{planted_id}'");
    let deadline = Instant::now() + Duration::from_secs(20);
    while scalar(&lake, &planted_rows).await < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(scalar(&lake, &planted_rows).await >= 2, "{}", service.log());

    let status = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit {status} after SIGTERM");

    let planted_alerts = aws.alerts(&queue, 10, Duration::from_secs(2)).await;
    let planted_alert = planted_alerts
        .iter()
        .find(|a| a["session_id"] == planted_id)
        .unwrap_or_else(|| panic!("no alert for the planted session: {planted_alerts:?}"));
    assert!(
        planted_alert["cmd"]
            .as_str()
            .is_some_and(|c| c.contains("[REDACTED:password-flag:")),
        "{planted_alert}"
    );
    let mut seen = serde_json::to_string(&planted_alerts).unwrap_or_default();
    seen.push_str(&std::fs::read_to_string(&log).unwrap_or_default());
    seen.push_str(&aws.all_objects(&lake_bucket).await);
    for sql in [
        "select cmd from commands",
        "select coalesce(cmd, '') from alerts",
        "select excerpt from rejects",
    ] {
        seen.push_str(&crate::common::strings(&lake, sql).await.join("\n"));
    }
    for secret in PLANTED {
        assert!(
            !seen.contains(secret),
            "{secret} reached an alert, the log or the lake"
        );
    }

    assert_eq!(
        scalar(&lake, alice).await,
        8,
        "alice's rows after the restart"
    );
    distinct_ids_hold(&lake, "commands", "event_id").await;
    distinct_ids_hold(&lake, "alerts", "alert_id").await;
    let mut again = aws.alerts(&queue, 10, Duration::from_secs(1)).await;
    again.extend(planted_alerts);
    assert!(
        !again
            .iter()
            .any(|a| a["rule_id"] == "linux.sudo_root_shell" && a["user"] == "alice"),
        "alice's alert sent again after the restart: {again:?}"
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every log line is a JSON object:\n{log}"
    );
}
