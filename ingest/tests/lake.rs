//! The lake's reads and writes on a real Delta table in a temporary directory: what a lookup
//! costs as the partition fills, and what a replacement rewrites.

use std::collections::BTreeSet;

use auditq_ingest::Lake;
use auditq_ingest::lake::{Filter, Replace};
use auditq_ingest::parse::{Limits, Object, parse_object};
use auditq_model::{Table, Timestamp, TrailEvent};

fn at(text: &str) -> Timestamp {
    auditq_ingest::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
}

/// `n` CloudTrail records `prefix-0..n`, one a second from `start`.
fn records(prefix: &str, start: &str, n: usize) -> Vec<TrailEvent> {
    let start = at(start);
    let records: Vec<String> = (0..n)
        .map(|i| {
            let time = (start + chrono::Duration::seconds(i as i64))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            format!(
                r#"{{"eventTime":"{time}","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"{prefix}-{i}"}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
    let object = Object {
        origin: prefix,
        modified: start,
    };
    let trail = parse_object(body.into_bytes(), object, &Limits::default()).trail;
    assert_eq!(trail.len(), n);
    trail
}

/// The ids of `batch` already stored, looked up as the pipeline does.
async fn known(lake: &Lake, batch: &[TrailEvent]) -> BTreeSet<String> {
    let filter = Filter::all()
        .near(
            "time",
            batch.iter().map(|e| e.time),
            chrono::Duration::seconds(1),
        )
        .any_of("event_id", batch.iter().map(|e| e.event_id.clone()));
    lake.ids(Table::Cloudtrail, filter)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect()
}

/// Fills the day with batches of 600 records (ten minutes each), as real-time ingest does,
/// and compacts.
async fn fill(lake: &Lake, from_hour: u32, hours: u32) {
    for hour in from_hour..from_hour + hours {
        for part in 0..6 {
            let start = format!("2026-10-06T{hour:02}:{:02}:00Z", part * 10);
            let rows = records(&format!("h{hour}-{part}"), &start, 600);
            lake.append(&rows).await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    lake.compact(std::time::Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn looking_up_a_batch_s_ids_costs_the_same_however_full_the_partition() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Small row groups stand in for the 64Ki rows of a real day.
    let lake = Lake::new(dir.path().join("lake").display().to_string()).with_row_group_rows(1_000);
    fill(&lake, 0, 4).await;

    // A batch of the next hour: 5 of its records repeat stored ones (a second delivery of the
    // 03:50 file), the rest are new.
    let mut batch = records("h3-5", "2026-10-06T03:50:00Z", 5);
    batch.extend(records("new", "2026-10-06T03:52:00Z", 100));
    let before = lake.scan_stats();
    let found = known(&lake, &batch).await;
    let small = lake.scan_stats() - before;
    let expected: BTreeSet<String> = (0..5).map(|i| format!("h3-5-{i}")).collect();
    assert_eq!(found, expected);

    // Five times as many hours stored: the same lookup decodes the same rows.
    fill(&lake, 4, 16).await;
    let before = lake.scan_stats();
    assert_eq!(known(&lake, &batch).await, expected);
    let large = lake.scan_stats() - before;
    assert!(
        small.rows > 0 && small.rows <= 3_000,
        "{small:?}: a few row groups near 03:50, not the day"
    );
    assert_eq!(
        (large.rows, large.row_groups),
        (small.rows, small.row_groups),
        "{small:?} then {large:?}"
    );

    // Ids that are not stored are ruled out by the bloom filters without decoding a row.
    let absent = records("absent", "2026-10-06T03:50:00Z", 50);
    let before = lake.scan_stats();
    assert!(known(&lake, &absent).await.is_empty());
    let cost = lake.scan_stats() - before;
    assert!(cost.rows <= 1_000, "{cost:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replacement_rewrites_only_the_files_holding_its_keys_in_one_commit() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let morning = records("m", "2026-10-06T08:00:00Z", 10);
    let evening = records("e", "2026-10-06T20:00:00Z", 10);
    lake.append(&morning)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = lake
        .append(&evening)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut changed = morning[3].clone();
    changed.user = Some("changed".into());
    let replace = Replace::keys("event_id", [changed.event_id.clone()]);
    let done = lake
        .commit(std::slice::from_ref(&changed), Some(&replace), &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (done.added, done.removed, done.rewritten),
        (1, 1, 1),
        "{done:?}"
    );
    assert_eq!(done.version.map(|v| v - 1), second.version, "one commit");

    let rows: Vec<TrailEvent> = lake
        .rows(Filter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 20);
    let users: Vec<Option<&str>> = rows
        .iter()
        .filter(|r| r.event_id == changed.event_id)
        .map(|r| r.user.as_deref())
        .collect();
    assert_eq!(users, [Some("changed")]);
    // The evening file was not touched: still one file of its own.
    let delta = lake
        .open(Table::Cloudtrail)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<String> = delta
        .get_file_uris()
        .unwrap_or_else(|e| panic!("{e}"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frequent_compaction_merges_every_time_and_vacuums_once_per_period() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    let day = std::time::Duration::from_secs(24 * 3600);
    for part in 0..3 {
        let start = format!("2026-10-06T08:{:02}:00Z", part * 10);
        let rows = records(&format!("p{part}"), &start, 10);
        lake.append(&rows).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let files = |lake: &Lake| {
        let lake = lake.clone();
        async move {
            lake.open(Table::Cloudtrail)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .get_file_uris()
                .unwrap_or_else(|e| panic!("{e}"))
                .count()
        }
    };
    assert_eq!(files(&lake).await, 3);

    let merged = lake
        .merge_small_files()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let trail = merged
        .iter()
        .find(|c| c.table == "cloudtrail")
        .unwrap_or_else(|| panic!("{merged:?}"));
    assert_eq!(
        (trail.files_removed, trail.files_added),
        (3, 1),
        "{merged:?}"
    );
    assert_eq!(files(&lake).await, 1);

    // The first run vacuums (none recorded), the next within the period does not, and a run
    // with a zero period does again.
    let first = lake.vacuum_if_due(week, day).await;
    assert!(matches!(first, Ok(Some(_))), "{first:?}");
    assert!(dir.path().join("lake/_auditq/vacuumed-at").is_file());
    let second = lake.vacuum_if_due(week, day).await;
    assert!(matches!(second, Ok(None)), "{second:?}");
    let third = lake.vacuum_if_due(week, std::time::Duration::ZERO).await;
    assert!(matches!(third, Ok(Some(_))), "{third:?}");

    // Merging lost no row.
    let rows: Vec<TrailEvent> = lake
        .rows(Filter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_spanning_days_are_each_found_near_their_own_time() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let monday = records("mon", "2026-10-05T08:00:00Z", 10);
    let tuesday = records("tue", "2026-10-06T08:00:00Z", 10);
    lake.append(&monday).await.unwrap_or_else(|e| panic!("{e}"));
    lake.append(&tuesday)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // A backfill's batch: half of each day repeated with its own time; a Tuesday id carrying
    // a Monday time (not a copy of the stored record, though a new key of the batch sits at its
    // stored time); ids never stored.
    let mut keys: Vec<(String, Timestamp)> = monday[..5]
        .iter()
        .chain(&tuesday[..5])
        .map(|e| (e.event_id.clone(), e.time))
        .collect();
    keys.push((tuesday[7].event_id.clone(), monday[7].time));
    keys.extend(
        records("new", "2026-10-06T08:00:07Z", 5)
            .into_iter()
            .map(|e| (e.event_id, e.time)),
    );
    let found: BTreeSet<String> = lake
        .ids_near(
            Table::Cloudtrail,
            "event_id",
            keys,
            chrono::Duration::seconds(1),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = monday[..5]
        .iter()
        .chain(&tuesday[..5])
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(found, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_an_earlier_version_wrote_gains_the_columns_added_since() {
    use std::sync::Arc;

    use arrow::datatypes::Schema;
    use auditq_model::{HostEvent, Row};
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    use deltalake::kernel::{Action, StructType};
    use deltalake::operations::create::CreateBuilder;
    use deltalake::writer::{DeltaWriter, RecordBatchWriter};

    let audit = [
        r#"type=SYSCALL msg=audit(1791191523.101:20101): arch=c000003e syscall=59 success=yes exit=0 ppid=1850 pid=3100 auid=4294967295 uid=0 tty=(none) ses=4294967295 comm="ssm-session-wor" exe="/usr/bin/ssm-session-worker" key="exec""#,
        r#"type=EXECVE msg=audit(1791191523.101:20101): argc=2 a0="/usr/bin/ssm-session-worker" a1="alice-0a7f3c9e1b2d4f601""#,
        r#"type=SYSCALL msg=audit(1791191524.102:20102): arch=c000003e syscall=59 success=yes exit=0 ppid=3100 pid=3101 auid=4294967295 uid=1000 tty=pts0 ses=4294967295 comm="sh" exe="/usr/bin/bash" key="exec""#,
        r#"type=EXECVE msg=audit(1791191524.102:20102): argc=1 a0="sh""#,
    ]
    .join("\n");
    let object = Object {
        origin: "audit.log",
        modified: at("2026-10-05T09:13:00Z"),
    };
    let mut events = parse_object(audit.into_bytes(), object, &Limits::default()).host;
    events.sort_by_key(|e| e.time);
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[1].ppid,
            events[1].audit_session,
            events[1].exe.as_deref()
        ),
        (Some(3100), None, Some("/usr/bin/bash"))
    );

    // The first event written as an earlier auditq did: host_events without the new columns.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let location = dir.path().to_string_lossy().to_string();
    let full = HostEvent::to_batch(&events[..1]).unwrap_or_else(|e| panic!("{e}"));
    let added_since = ["ppid", "audit_session", "exe"];
    let kept: Vec<usize> = (0..full.num_columns())
        .filter(|&i| !added_since.contains(&full.schema().field(i).name().as_str()))
        .collect();
    let old = full.project(&kept).unwrap_or_else(|e| panic!("{e}"));
    let old_schema: Arc<Schema> = old.schema();
    let url = deltalake::ensure_table_uri(format!("{location}/host_events"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut writer = RecordBatchWriter::try_new(
        url.clone(),
        old_schema.clone(),
        Some(vec!["date".to_string()]),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    writer.write(old).await.unwrap_or_else(|e| panic!("{e}"));
    let adds = writer.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let columns: StructType = old_schema
        .as_ref()
        .try_into_kernel()
        .unwrap_or_else(|e| panic!("{e}"));
    CreateBuilder::new()
        .with_location(url.to_string())
        .with_columns(columns.fields().cloned())
        .with_partition_columns(["date"])
        .with_actions(adds.into_iter().map(Action::Add))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // This version appends the second: the table gains the columns, the old file reads them
    // as null.
    let lake = Lake::new(location.clone());
    lake.append(&events[1..])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let table = deltalake::open_table(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let schema = table.snapshot().unwrap_or_else(|e| panic!("{e}")).schema();
    for column in added_since {
        assert!(schema.field(column).is_some(), "{column} not added");
    }
    let mut rows = lake
        .rows::<HostEvent>(Filter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.sort_by_key(|r| r.time);
    let read: Vec<(Option<i64>, Option<&str>)> =
        rows.iter().map(|r| (r.ppid, r.exe.as_deref())).collect();
    assert_eq!(read, [(None, None), (Some(3100), Some("/usr/bin/bash"))]);
}
