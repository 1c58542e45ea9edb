//! Alerts through SNS on the AWS API emulator (moto, started by ./scripts/test.sh): two SQS
//! queues subscribed with different filter policies through `auditq alerts subscribe` each
//! receive exactly the alerts their policy selects, once; and when SNS goes down partway through
//! a run, the alerts it could not take wait in the outbox and the next run delivers each exactly
//! once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use aws_config::BehaviorVersion;

use auditq_tests::{emulator, run_id};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");

fn run_with(cwd: &Path, endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditq"))
        .current_dir(cwd)
        .env_remove("AUDITQ_DATA")
        .env("AWS_ENDPOINT_URL", endpoint)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run auditq: {e}"))
}

fn auditq(cwd: &Path, args: &[&str]) -> String {
    let out = run_with(cwd, &emulator(), args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "auditq {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `alert_id,rule_id,severity,published` rows of the lake's alerts table.
fn stored_alerts(cwd: &Path, lake: &str) -> BTreeMap<String, (String, String, bool)> {
    let csv = auditq(
        cwd,
        &[
            "--data",
            lake,
            "--format",
            "csv",
            "select alert_id, rule_id, severity, published from alerts order by alert_id",
        ],
    );
    csv.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            (
                cols[0].to_string(),
                (cols[1].to_string(), cols[2].to_string(), cols[3] == "true"),
            )
        })
        .collect()
}

struct Aws {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Aws {
    async fn new() -> Aws {
        let _ = emulator();
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Aws {
            sns: aws_sdk_sns::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
        }
    }

    async fn topic(&self, name: &str) -> String {
        let topic = self.sns.create_topic().name(name).send().await;
        let topic = topic.unwrap_or_else(|e| panic!("{e:?}"));
        topic.topic_arn().unwrap_or_default().to_string()
    }

    /// A queue: its URL and ARN.
    async fn queue(&self, name: &str) -> (String, String) {
        let created = self.sqs.create_queue().queue_name(name).send().await;
        let url = created
            .unwrap_or_else(|e| panic!("{e:?}"))
            .queue_url()
            .unwrap_or_default()
            .to_string();
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        (url, arn)
    }

    /// Every SNS notification in a queue, read until it stays empty.
    async fn drain(&self, url: &str) -> Vec<serde_json::Value> {
        let mut messages = Vec::new();
        let mut empty = 0;
        while empty < 2 {
            let got = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            if got.messages().is_empty() {
                empty += 1;
            }
            for message in got.messages() {
                let body: serde_json::Value =
                    serde_json::from_str(message.body().unwrap_or_default())
                        .unwrap_or_else(|e| panic!("not an SNS envelope: {e}"));
                messages.push(body);
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e:?}"));
            }
        }
        messages
    }
}

/// The alert ids in SNS notifications, asserting each appears once.
fn alert_ids(messages: &[serde_json::Value]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for message in messages {
        let body: serde_json::Value =
            serde_json::from_str(message["Message"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("alert body is not JSON: {e}"));
        let id = body["alert_id"].as_str().unwrap_or_default().to_string();
        assert!(ids.insert(id.clone()), "alert {id} delivered twice");
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn each_queue_receives_exactly_the_alerts_its_filter_selects() {
    let aws = Aws::new().await;
    let run = run_id("q");
    let topic = aws.topic(&format!("auditq-alerts-{run}")).await;
    let (high_url, high_arn) = aws.queue(&format!("high-{run}")).await;
    let (linux_url, linux_arn) = aws.queue(&format!("linux-{run}")).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cwd = dir.path();
    let subscribed = auditq(
        cwd,
        &[
            "alerts",
            "subscribe",
            "--topic",
            &topic,
            "--sqs",
            &high_arn,
            "--min-severity",
            "high",
        ],
    );
    assert!(
        subscribed.contains(r#""severity":["high","critical"]"#),
        "{subscribed}"
    );
    let linux_subscription = auditq(
        cwd,
        &[
            "alerts",
            "subscribe",
            "--topic",
            &topic,
            "--sqs",
            &linux_arn,
            "--rule",
            "linux.*",
        ],
    )
    .lines()
    .next()
    .unwrap_or_default()
    .to_string();
    assert!(
        linux_subscription.starts_with("arn:aws:sns:"),
        "{linux_subscription}"
    );
    let listed = auditq(cwd, &["alerts", "subscriptions", "--topic", &topic]);
    assert!(
        listed.contains(&high_arn) && listed.contains(&linux_arn),
        "{listed}"
    );
    assert!(listed.contains(r#"{"prefix":"linux."}"#), "{listed}");

    let lake = cwd.join("lake").display().to_string();
    let sink = format!("sns://{topic}");
    let summary = auditq(
        cwd,
        &[
            "--data", &lake, "ingest", SAMPLES, "--rules", "default", "--alerts", &sink,
        ],
    );
    assert!(summary.contains(" 0 kept in the outbox"), "{summary}");
    let stored = stored_alerts(cwd, &lake);
    assert!(
        stored.values().all(|(_, _, published)| *published),
        "{stored:?}"
    );
    let expect = |keep: &dyn Fn(&str, &str) -> bool| -> BTreeSet<String> {
        stored
            .iter()
            .filter(|(_, (rule, severity, _))| keep(rule, severity))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let want_high = expect(&|_, s| s == "high" || s == "critical");
    let want_linux = expect(&|r, _| r.starts_with("linux."));
    // The scenario's named facts are among them.
    let rules: BTreeSet<&str> = stored.values().map(|(r, _, _)| r.as_str()).collect();
    for rule in [
        "linux.sudo_root_shell",
        "linux.history_tampering",
        "linux.aws_credentials_access",
        "aws.console_login_without_mfa",
        "aws.cloudtrail_tampering",
        "aws.ssm_ssh_session",
        "aws.ssm_port_forwarding",
    ] {
        assert!(rules.contains(rule), "no {rule} alert in {rules:?}");
    }
    assert!(want_high.len() >= 6 && want_linux.len() >= 6);
    assert_ne!(want_high, want_linux);

    let high = aws.drain(&high_url).await;
    let linux = aws.drain(&linux_url).await;
    assert_eq!(alert_ids(&high), want_high);
    assert_eq!(alert_ids(&linux), want_linux);

    // Who, when, where and what, in the subject, attributes and body.
    let root_shell = high
        .iter()
        .find(|m| {
            m["Subject"]
                .as_str()
                .unwrap_or_default()
                .contains("linux.sudo_root_shell: alice")
        })
        .unwrap_or_else(|| panic!("no root-shell alert for alice in {high:#?}"));
    assert_eq!(
        root_shell["Subject"],
        "[high] linux.sudo_root_shell: alice ran \"sudo su -\" on prod-web-1 (i-0a1b2c3d4e5f60711)"
    );
    let attributes = &root_shell["MessageAttributes"];
    assert_eq!(attributes["severity"]["Value"], "high");
    assert_eq!(attributes["rule_id"]["Value"], "linux.sudo_root_shell");
    assert_eq!(attributes["table"]["Value"], "commands");
    assert_eq!(attributes["account"]["Value"], "111122223333");
    assert_eq!(attributes["target"]["Value"], "i-0a1b2c3d4e5f60711");
    assert_eq!(attributes["user"]["Value"], "alice");
    let body: serde_json::Value =
        serde_json::from_str(root_shell["Message"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["cmd"], "sudo su -");
    assert_eq!(body["session_id"], "alice-0a7f3c9e1b2d4f601");
    assert_eq!(body["source_ip"], "203.0.113.10");
    assert!(
        body["time"]
            .as_str()
            .unwrap_or_default()
            .starts_with("2026-10-05T09:1")
    );

    // A second run over the same logs publishes nothing again.
    let again = auditq(
        cwd,
        &[
            "--data", &lake, "ingest", SAMPLES, "--rules", "default", "--alerts", &sink,
        ],
    );
    // The events are stored already: rules do not see them again, nothing is raised.
    let alerts_line = again
        .lines()
        .find(|l| l.trim_start().starts_with("alerts "))
        .unwrap_or_else(|| panic!("{again}"));
    assert!(alerts_line.ends_with(" 0 added"), "{again}");
    assert!(!again.contains("new delivered") || again.contains(" 0 new delivered"));
    assert!(aws.drain(&high_url).await.is_empty());

    // Unsubscribed, the linux queue is no longer listed.
    let removed = auditq(cwd, &["alerts", "unsubscribe", &linux_subscription]);
    assert!(removed.contains(&linux_subscription), "{removed}");
    let listed = auditq(cwd, &["alerts", "subscriptions", "--topic", &topic]);
    assert!(!listed.contains(&linux_subscription), "{listed}");
    assert!(!listed.contains(&linux_arn), "{listed}");
    assert!(listed.contains(&high_arn), "{listed}");
}

/// A TCP proxy on 127.0.0.1 in front of the emulator that forwards the first `allowed` SNS
/// `Publish` calls and then goes down: the connection carrying the next one is cut before it is
/// forwarded, and every later connection is closed at once. Returns its endpoint.
async fn sns_outage_after(allowed: usize) -> String {
    // `allowed` counts PublishBatch calls (up to ten alerts each).
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let target = emulator()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let published = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            if down.load(Ordering::SeqCst) {
                continue; // dropped: the connection closes at once
            }
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (published, down) = (published.clone(), down.clone());
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let back = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let pattern = b"Action=PublishBatch&";
                let mut tail: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut seen = tail.clone();
                    seen.extend_from_slice(&buf[..n]);
                    let calls = seen.windows(pattern.len()).filter(|w| w == pattern).count();
                    if calls > 0
                        && (down.load(Ordering::SeqCst)
                            || published.fetch_add(calls, Ordering::SeqCst) + calls > allowed)
                    {
                        down.store(true, Ordering::SeqCst);
                        break;
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    tail = seen[seen.len().saturating_sub(pattern.len() - 1)..].to_vec();
                }
                back.abort();
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_wait_in_the_outbox_while_sns_is_down_and_are_delivered_once() {
    let aws = Aws::new().await;
    let run = run_id("q");
    let topic = aws.topic(&format!("auditq-outbox-{run}")).await;
    let (url, arn) = aws.queue(&format!("all-{run}")).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cwd = dir.path();
    auditq(
        cwd,
        &["alerts", "subscribe", "--topic", &topic, "--sqs", &arn],
    );
    let lake = cwd.join("lake").display().to_string();
    let sink = format!("sns://{topic}");
    let args = [
        "--data", &lake, "ingest", SAMPLES, "--rules", "default", "--alerts", &sink,
    ];

    // SNS goes down after one PublishBatch call: its alerts (up to ten) are delivered, the
    // rest wait in the outbox.
    let outage = sns_outage_after(1).await;
    let first = run_with(cwd, &outage, &args);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stored = stored_alerts(cwd, &lake);
    assert!(stored.len() > 10, "{stored:?}");
    let published: BTreeSet<String> = stored
        .iter()
        .filter(|(_, (_, _, published))| *published)
        .map(|(id, _)| id.clone())
        .collect();
    // Calls go out several at once, so the one that got through may be the batch's last,
    // shorter one: between 1 and 10 alerts.
    assert!((1..=10).contains(&published.len()), "{stored:?}");
    assert!(
        stdout.contains(&format!(
            "{} new delivered, {} kept in the outbox",
            published.len(),
            stored.len() - published.len()
        )),
        "{stdout}"
    );
    let outbox: BTreeSet<String> = std::fs::read_dir(cwd.join("lake/_auditq/outbox"))
        .unwrap_or_else(|e| panic!("no outbox: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    let unpublished: BTreeSet<String> = stored
        .keys()
        .filter(|id| !published.contains(*id))
        .cloned()
        .collect();
    assert_eq!(outbox, unpublished);
    let before = alert_ids(&aws.drain(&url).await);
    assert_eq!(before, published);

    // SNS back: the outbox is delivered, each alert once, and nothing is raised twice.
    let back = run_with(cwd, &emulator(), &args);
    let stderr = String::from_utf8_lossy(&back.stderr);
    assert!(back.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "outbox: {} alerts delivered from earlier runs, 0 still kept",
            unpublished.len()
        )),
        "{stderr}"
    );
    let after_outage = alert_ids(&aws.drain(&url).await);
    assert_eq!(after_outage, unpublished);
    let after = stored_alerts(cwd, &lake);
    assert_eq!(after.len(), stored.len());
    assert!(after.values().all(|(_, _, published)| *published));
    let left = std::fs::read_dir(cwd.join("lake/_auditq/outbox")).map(|d| d.count());
    assert_eq!(left.unwrap_or(0), 0);
}
