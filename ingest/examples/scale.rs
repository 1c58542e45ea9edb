//! The scale bench's auditq side (`benches/scale.sh` runs it): one 1 MB CloudTrail batch stored
//! into a lake whose day partition already holds N rows.
//!
//! ```sh
//! cargo run --release -p auditq-ingest --example scale -- build DIR ROWS   # the lake, once
//! cargo run --release -p auditq-ingest --example scale -- batch ROWS OUT.json  # the first batch
//! cargo run --release -p auditq-ingest --example scale -- store DIR ROWS [BATCHES]
//! cargo run --release -p auditq-ingest --example scale -- history DIR DAYS   # the lake, once
//! cargo run --release -p auditq-ingest --example scale -- store DIR 0 [BATCHES]
//! ```
//!
//! `build` writes ROWS CloudTrail records spread over 2026-10-06 (in 10-minute micro-batches
//! of a day's traffic, compacted, as the service leaves a day), `batch` writes a CloudTrail
//! delivery of about 1 MB: records of a five-minute window at 14:00, 5% of them repeating stored
//! ones (a second delivery of the same events). `store` runs BATCHES (11) such batches, one
//! after another for the following five-minute windows, through one pipeline with the default
//! rules (alerts recorded, not published), as a warm Lambda container or the ECS service does,
//! and prints one JSON line: the time of each batch and what its lookups decoded, the peak
//! resident memory after them, and then the time the old design's read of the whole day's ids
//! takes on the same lake.
//!
//! `history` writes DAYS days before 2026-10-06 instead, 1,000 records and one file each (as
//! compaction leaves a day), each its own commit: the table's file count, not the day's rows,
//! is what grows; `store DIR 0` then stores the same batches into its empty 2026-10-06.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use auditq_ingest::lake::Filter;
use auditq_ingest::parse::{Limits, Object, parse_object};
use auditq_ingest::{Lake, PipelineBuilder};
use auditq_model::{Table, Timestamp, TrailEvent};
use chrono::{Duration, TimeZone, Utc};

const EVENTS: [(&str, &str); 8] = [
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("s3.amazonaws.com", "GetObject"),
    ("sts.amazonaws.com", "AssumeRole"),
    ("kms.amazonaws.com", "Decrypt"),
    ("iam.amazonaws.com", "ListRoles"),
    ("ssm.amazonaws.com", "GetParameter"),
    ("logs.amazonaws.com", "PutLogEvents"),
    ("lambda.amazonaws.com", "Invoke"),
];

/// A small deterministic generator (xorshift), so every run builds the same lake.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn day_start() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 10, 6, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The id of the `n`th stored record (what its CloudTrail `eventID` was).
fn stored_id(n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n.wrapping_mul(2_654_435_761) as u32,
        n % 0xffff,
        n % 0xfff,
        (n / 7) % 0xfff,
        n
    )
}

fn record(n: u64, time: Timestamp, random: &mut Random) -> TrailEvent {
    let (source, name) = EVENTS[(random.next() % EVENTS.len() as u64) as usize];
    let user = format!("user{}", random.next() % 500);
    TrailEvent {
        event_id: stored_id(n),
        time,
        date: time.date_naive(),
        principal_arn: Some(format!("arn:aws:iam::111122223333:user/{user}")),
        principal_type: Some("IAMUser".into()),
        user: Some(user),
        access_key_id: Some(format!("AKIA{:016X}", random.next() % 1_000_000)),
        mfa: Some(false),
        account: Some("111122223333".into()),
        region: Some("eu-west-1".into()),
        source_ip: Some(format!("198.51.100.{}", random.next() % 250)),
        user_agent: Some("aws-cli/2.15.0 Python/3.11.6 Linux/6.1".into()),
        event_source: source.into(),
        event_name: name.into(),
        event_type: Some("AwsApiCall".into()),
        error_code: None,
        error_message: None,
        read_only: Some(true),
        session_id: None,
        request: Some(format!(
            r#"{{"bucketName":"data-{}","key":"reports/{}/part-{}.parquet","maxResults":100}}"#,
            random.next() % 50,
            random.next() % 1000,
            random.next() % 100
        )),
        response: None,
        additional: Some(
            r#"{"SignatureVersion":"SigV4","AuthenticationMethod":"AuthHeader"}"#.into(),
        ),
        resources: None,
        origin: "s3://trail/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/10/06/x.json.gz".into(),
    }
}

/// The time of the `n`th of `rows` records spread over the day.
fn time_of(n: u64, rows: u64) -> Timestamp {
    day_start() + Duration::microseconds((n as i128 * 86_400_000_000 / rows as i128) as i64)
}

async fn build(dir: &Path, rows: u64) -> anyhow::Result<()> {
    let lake = Lake::new(dir.display().to_string());
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    // Ten-minute micro-batches of a day's traffic, compacted every 50 as the service does.
    let batches = 144u64;
    let started = Instant::now();
    for b in 0..batches {
        let from = rows * b / batches;
        let to = rows * (b + 1) / batches;
        let chunk: Vec<TrailEvent> = (from..to)
            .map(|n| record(n, time_of(n, rows), &mut random))
            .collect();
        lake.append(&chunk).await?;
        if b % 50 == 49 {
            lake.compact(std::time::Duration::ZERO).await?;
        }
    }
    lake.compact(std::time::Duration::ZERO).await?;
    eprintln!("built {rows} rows in {:.1?}", started.elapsed());
    Ok(())
}

/// `days` days before [`day_start`], 1,000 records and one file a day, one commit a day.
async fn history(dir: &Path, days: u64) -> anyhow::Result<()> {
    let lake = Lake::new(dir.display().to_string());
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    for day in (1..=days).rev() {
        let start = day_start() - Duration::days(day as i64);
        let chunk: Vec<TrailEvent> = (0..1_000u64)
            .map(|n| {
                let mut event = record(n, start + Duration::seconds(n as i64 * 86), &mut random);
                event.event_id = format!("d{day}-{}", event.event_id);
                event
            })
            .collect();
        lake.append(&chunk).await?;
    }
    eprintln!("built {days} days in {:.1?}", started.elapsed());
    Ok(())
}

/// The batch of five minutes from `start`: about 1 MB of CloudTrail JSON, 5% of its records
/// repeating stored ones (same eventID and eventTime).
fn batch(rows: u64, start: Timestamp, tag: &str) -> Vec<u8> {
    let mut random = Random(0x2545_f491_4f6c_dd1d ^ start.timestamp() as u64);
    let mut records = Vec::new();
    let mut size = 0;
    let mut n = 0u64;
    while size < 1_000_000 {
        let time = start + Duration::milliseconds((n * 300_000 / 770) as i64);
        let (id, time) = if n.is_multiple_of(20) && rows > 0 {
            // The stored record nearest this time, delivered again.
            let stored = (time - day_start()).num_microseconds().unwrap_or(0) as u128
                * rows as u128
                / 86_400_000_000u128;
            let stored = stored as u64;
            (stored_id(stored), time_of(stored, rows))
        } else {
            (format!("{tag}-{n:06}-{:016x}", random.next()), time)
        };
        let (source, name) = EVENTS[(random.next() % EVENTS.len() as u64) as usize];
        let user = format!("user{}", random.next() % 500);
        let text = format!(
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","principalId":"AIDA{:016X}","arn":"arn:aws:iam::111122223333:user/{user}","accountId":"111122223333","accessKeyId":"AKIA{:016X}","userName":"{user}"}},"eventTime":"{}","eventSource":"{source}","eventName":"{name}","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.{}","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1","requestParameters":{{"bucketName":"data-{}","key":"reports/{}/part-{}.parquet","maxResults":100}},"responseElements":null,"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"{:032x}"}},"requestID":"{:032x}","eventID":"{id}","readOnly":true,"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333","eventCategory":"Data","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"data.s3.eu-west-1.amazonaws.com"}}}}"#,
            random.next(),
            random.next() % 1_000_000,
            time.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            random.next() % 250,
            random.next() % 50,
            random.next() % 1000,
            random.next() % 100,
            random.next() as u128 * random.next() as u128,
            random.next() as u128 * random.next() as u128,
        );
        size += text.len() + 1;
        records.push(text);
        n += 1;
    }
    format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Stores `batches` batches of five minutes each from 14:00; returns one JSON object a batch.
async fn store_batches(
    lake: &Lake,
    rows: u64,
    batches: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let engine = Arc::new(auditq_rules::compile_source("default")?);
    let pipeline = PipelineBuilder::new(lake.clone())
        .redaction_key(Some(b"scale bench".to_vec()))
        .rules(engine, Vec::new())
        .build()
        .await?;
    let mut runs = Vec::new();
    for i in 0..batches {
        let start = day_start() + Duration::hours(14) + Duration::minutes(5 * i as i64);
        let bytes = batch(rows, start, &format!("batch{i}"));
        let size = bytes.len();
        let at = Object {
            origin: "cwl://aws/cloudtrail/111122223333_CloudTrail_eu-west-1",
            modified: start,
        };
        let parsed = parse_object(bytes, at, &Limits::default());
        let records = parsed.trail.len();
        let before = lake.scan_stats();
        let started = Instant::now();
        let summary = pipeline.store(parsed).await?;
        let elapsed = started.elapsed();
        let cost = lake.scan_stats() - before;
        let trail = summary.tables[&Table::Cloudtrail];
        runs.push(serde_json::json!({
            "bytes": size,
            "records": records,
            "added": trail.added,
            "duplicates": trail.read - trail.added,
            "ms": elapsed.as_secs_f64() * 1000.0,
            "load_ms": summary.stages.load.as_secs_f64() * 1000.0,
            "decide_ms": summary.stages.decide.as_secs_f64() * 1000.0,
            "alerts_ms": summary.stages.alerts.as_secs_f64() * 1000.0,
            "write_ms": summary.stages.write.as_secs_f64() * 1000.0,
            "files_considered": cost.files,
            "footers_read": cost.footers_read,
            "blooms_read": cost.blooms_read,
            "row_groups_decoded": cost.row_groups,
            "rows_decoded": cost.rows,
        }));
    }
    Ok(runs)
}

async fn store(dir: &Path, rows: u64, batches: usize) -> anyhow::Result<()> {
    let lake = Lake::new(dir.display().to_string());
    let runs = store_batches(&lake, rows, batches).await?;
    let peak = peak_rss_kib();
    let mut warm: Vec<f64> = runs[1..].iter().filter_map(|r| r["ms"].as_f64()).collect();
    warm.sort_by(f64::total_cmp);
    let median = warm.get(warm.len() / 2).copied().unwrap_or(0.0);
    let p90 = warm
        .get((warm.len() * 9 / 10).min(warm.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    // The old design read every id stored for the batch's day before each batch.
    let day = day_start().date_naive();
    let started = Instant::now();
    let ids = lake
        .ids(Table::Cloudtrail, Filter::all().dates(day, day))
        .await?;
    let old_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "first": runs[0],
            "warm_median_ms": median,
            "warm_p90_ms": p90,
            "warm_batches": warm.len(),
            "batches": runs,
            "day_ids": ids.len(),
            "read_day_ids_ms": old_ms,
            "peak_rss_mib": peak as f64 / 1024.0,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: scale build DIR ROWS | history DIR DAYS | batch ROWS OUT | store DIR ROWS [BATCHES] | ids DIR";
    match args.get(1).map(String::as_str) {
        Some("build") => {
            let (Some(dir), Some(rows)) = (args.get(2), args.get(3)) else {
                anyhow::bail!(usage);
            };
            build(Path::new(dir), rows.parse()?).await
        }
        Some("history") => {
            let (Some(dir), Some(days)) = (args.get(2), args.get(3)) else {
                anyhow::bail!(usage);
            };
            history(Path::new(dir), days.parse()?).await
        }
        Some("batch") => {
            let (Some(rows), Some(out)) = (args.get(2), args.get(3)) else {
                anyhow::bail!(usage);
            };
            let start = day_start() + Duration::hours(14);
            std::fs::write(out, batch(rows.parse()?, start, "batch0"))?;
            Ok(())
        }
        Some("lookup") => {
            // The first batch's id lookup, again and again (warm), for profiling.
            let (Some(dir), Some(rows)) = (args.get(2), args.get(3)) else {
                anyhow::bail!(usage);
            };
            let rows: u64 = rows.parse()?;
            let lake = Lake::new(dir.clone());
            let start = day_start() + Duration::hours(14);
            let parsed = parse_object(
                batch(rows, start, "batch0"),
                Object {
                    origin: "x",
                    modified: start,
                },
                &Limits::default(),
            );
            let filter = Filter::all()
                .near(
                    "time",
                    parsed.trail.iter().map(|e| e.time),
                    Duration::seconds(1),
                )
                .any_of("event_id", parsed.trail.iter().map(|e| e.event_id.clone()));
            for round in 0..50 {
                let started = Instant::now();
                let before = lake.scan_stats();
                let found = lake.ids(Table::Cloudtrail, filter.clone()).await?;
                if round % 10 == 0 {
                    println!(
                        "{} found in {:.1?} ({:?})",
                        found.len(),
                        started.elapsed(),
                        lake.scan_stats() - before
                    );
                }
            }
            Ok(())
        }
        Some("ids") => {
            let Some(dir) = args.get(2) else {
                anyhow::bail!(usage);
            };
            let lake = Lake::new(dir.clone());
            let day = day_start().date_naive();
            let started = Instant::now();
            let ids = lake
                .ids(Table::Cloudtrail, Filter::all().dates(day, day))
                .await?;
            println!(
                "{} ids in {:.1?} ({:?})",
                ids.len(),
                started.elapsed(),
                lake.scan_stats()
            );
            Ok(())
        }
        Some("store") => {
            let (Some(dir), Some(rows)) = (args.get(2), args.get(3)) else {
                anyhow::bail!(usage);
            };
            let batches = args.get(4).map_or(Ok(11), |n| n.parse())?;
            store(Path::new(dir), rows.parse()?, batches.max(2)).await
        }
        _ => anyhow::bail!(usage),
    }
}
