//! auditq's read path (`query/src/scan.rs`): DataFusion's Parquet scan over the files the Delta
//! log lists, pruned by their `date` and log statistics; a table using a Delta feature it does
//! not apply is read through the Delta kernel.

use auditq_ingest::{Lake, Limits, PipelineBuilder, ingest_paths};
use auditq_tests::repo_root;
use datafusion::arrow::util::pretty::pretty_format_batches;

async fn sample_lake(dir: &std::path::Path) -> Lake {
    let lake = Lake::new(dir.join("lake").display().to_string());
    let pipeline = PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ingest_paths(
        &pipeline,
        &[repo_root().join("sample-logs")],
        &Limits::default(),
        &|_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    lake
}

async fn context(lake: &Lake) -> datafusion::prelude::SessionContext {
    auditq_query::context(lake)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn text(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
    let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches = df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string()
}

/// The data files a plan reads, by day.
fn planned(plan: &str, day: &str) -> usize {
    plan.matches(&format!("date={day}/")).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn files_of_other_days_are_not_read() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ctx = context(&sample_lake(dir.path()).await).await;

    // The samples' commands are on two days, one file each.
    let days = text(&ctx, "select count(distinct date) as days from commands").await;
    assert!(days.contains("| 2    |"), "{days}");

    // By partition: the other day's file is not in the plan.
    let plan = text(
        &ctx,
        "explain select cmd from commands where date = date '2026-10-06'",
    )
    .await;
    assert_eq!(
        (planned(&plan, "2026-10-05"), planned(&plan, "2026-10-06")),
        (0, 1),
        "{plan}"
    );

    // By the time statistics in the Delta log (no `date` in the statement).
    let plan = text(
        &ctx,
        "explain select cmd from commands where time >= timestamp '2026-10-06T00:00:00Z' \
         and time < timestamp '2026-10-06T12:00:00Z'",
    )
    .await;
    assert_eq!(
        (planned(&plan, "2026-10-05"), planned(&plan, "2026-10-06")),
        (0, 1),
        "{plan}"
    );
    // A filter the statistics say nothing about (strings are not used) keeps both.
    let plan = text(&ctx, "explain select cmd from commands where user = 'bob'").await;
    assert_eq!(
        (planned(&plan, "2026-10-05"), planned(&plan, "2026-10-06")),
        (1, 1),
        "{plan}"
    );
    // A bound equal to a file's last time keeps the file.
    let last = ctx
        .sql("select cast(max(time) as varchar) as t from commands where date = date '2026-10-05'")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let last = datafusion::arrow::util::display::array_value_to_string(last[0].column(0), 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = text(
        &ctx,
        &format!("explain select cmd from commands where time >= timestamp '{last}'"),
    )
    .await;
    assert_eq!(planned(&plan, "2026-10-05"), 1, "{last}: {plan}");

    // And the rows are the same as without pruning.
    let pruned = text(
        &ctx,
        "select event_id from commands where time >= timestamp '2026-10-06T00:00:00Z' \
         and time < timestamp '2026-10-06T12:00:00Z' order by event_id",
    )
    .await;
    let all = text(
        &ctx,
        "select event_id from commands where cast(time as varchar) >= '2026-10-06T00' \
         and cast(time as varchar) < '2026-10-06T12' order by event_id",
    )
    .await;
    assert_eq!(pruned, all);
    assert!(pruned.lines().count() > 4, "{pruned}");
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_keep_the_tables_order_and_limits_hold() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ctx = context(&sample_lake(dir.path()).await).await;
    // `date` is stored as the partition, not in the files, yet comes in its documented place.
    let df = ctx
        .sql("select * from commands limit 1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let expected: Vec<String> = auditq_model::Table::Commands
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, expected);
    // deltalake 1.1's provider returned every row here; the lake's scan returns what is asked.
    let one = text(&ctx, "select 2 as x from sessions limit 1").await;
    assert_eq!(
        one.lines().filter(|l| l.contains("| 2 |")).count(),
        1,
        "{one}"
    );
    let some = text(&ctx, "select date, cmd from commands limit 3").await;
    assert_eq!(
        some.lines().filter(|l| l.contains("| 2026-10-")).count(),
        3,
        "{some}"
    );
}

/// Strings are read as views (`Utf8View`) by the scan, and declared so by a table never
/// written: the same statement plans over both, and filters over views answer as over text.
#[tokio::test(flavor = "multi_thread")]
async fn strings_are_read_as_views_written_or_not() {
    use datafusion::arrow::datatypes::DataType;
    let expected: Vec<DataType> = auditq_model::Table::Commands
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => DataType::Utf8View,
            other => other.clone(),
        })
        .collect();
    assert!(expected.contains(&DataType::Utf8View));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let written = context(&sample_lake(dir.path()).await).await;
    let empty_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = context(&Lake::new(empty_dir.path().display().to_string())).await;
    for (ctx, rows) in [(&written, 1), (&empty, 0)] {
        let df = ctx
            .sql("select * from commands limit 1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let declared: Vec<DataType> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(declared, expected);
        let batches = df.collect().await.unwrap_or_else(|e| panic!("{e}"));
        let returned: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(returned, rows);
        // The batches the reader produced, not only the plan's declared schema.
        for batch in &batches {
            let types: Vec<DataType> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            assert_eq!(types, expected);
        }
    }
    let sudo = text(
        &written,
        "select count(*) as n from commands where cmd like 'sudo%' and user <> ''",
    )
    .await;
    assert!(sudo.contains("| 14 |"), "{sudo}");
}

/// The newest commit of a table's log.
fn last_commit(log: &std::path::Path) -> u64 {
    std::fs::read_dir(log)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or_else(|| panic!("no commit in {}", log.display()))
}

/// The live `add` actions of a table's log (adds not removed since), oldest first.
fn live_adds(log: &std::path::Path) -> Vec<serde_json::Value> {
    let mut adds: Vec<serde_json::Value> = Vec::new();
    for version in 0..=last_commit(log) {
        let Ok(text) = std::fs::read_to_string(log.join(format!("{version:020}.json"))) else {
            continue;
        };
        for line in text.lines() {
            let action: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
            if let Some(add) = action.get("add") {
                adds.push(add.clone());
            }
            if let Some(path) = action.pointer("/remove/path") {
                adds.retain(|a| a.get("path") != Some(path));
            }
        }
    }
    adds
}

/// A deletion vector of `rows` stored inline, as the Delta protocol writes one: the portable
/// serialization of a 64-bit roaring bitmap after its magic number, Z85-encoded.
fn inline_deletion_vector(rows: &[u64]) -> serde_json::Value {
    let bitmap: roaring::RoaringTreemap = rows.iter().copied().collect();
    let mut bytes = 1_681_511_377u32.to_le_bytes().to_vec();
    bitmap
        .serialize_into(&mut bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    let size = bytes.len();
    // Z85 encodes whole groups of four bytes; the bitmap reader stops at its own end.
    bytes.resize(size.div_ceil(4) * 4, 0);
    serde_json::json!({
        "storageType": "i",
        "pathOrInlineDv": z85::encode(&bytes),
        "sizeInBytes": size,
        "cardinality": rows.len(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_deletion_vectors_is_read_through_the_delta_kernel() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = sample_lake(dir.path()).await;
    let ctx = context(&Lake::new(lake.location().to_string())).await;
    let before = text(&ctx, "select event_id from commands order by event_id").await;
    let count = |rendered: &str| rendered.lines().filter(|l| l.starts_with("| ")).count() - 1;
    let rows_before = count(&before);

    // Another engine deletes the first two rows of one data file the way Delta does it without
    // rewriting the file: the file is re-added with a deletion vector marking them.
    let table_dir = dir.path().join("lake/commands");
    let log = table_dir.join("_delta_log");
    let mut add = live_adds(&log)
        .into_iter()
        .find(|add| {
            add["stats"]
                .as_str()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|s| s["numRecords"].as_u64())
                .is_some_and(|n| n >= 3)
        })
        .unwrap_or_else(|| panic!("no data file of three rows or more"));
    let path = add["path"].as_str().unwrap_or_default().to_string();
    let file = table_dir.join(
        path.split('/')
            .map(|part| {
                part.replace("%3D", "=")
                    .replace("%2D", "-")
                    .replace("%3A", ":")
            })
            .collect::<Vec<_>>()
            .join("/"),
    );
    let first_two = {
        let file_ctx = datafusion::prelude::SessionContext::new();
        let df = file_ctx
            .read_parquet(
                file.display().to_string(),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let rendered = pretty_format_batches(
            &df.select_columns(&["event_id"])
                .and_then(|df| df.limit(0, Some(2)))
                .unwrap_or_else(|e| panic!("{e}"))
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
        rendered
            .lines()
            .filter(|l| l.starts_with("| ") && !l.contains("event_id"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(first_two.len(), 2, "{first_two:?}");
    let now = 1_796_000_000_000u64;
    let remove = serde_json::json!({"remove": {
        "path": path,
        "deletionTimestamp": now,
        "dataChange": true,
        "extendedFileMetadata": true,
        "partitionValues": add["partitionValues"],
        "size": add["size"],
    }});
    add["deletionVector"] = inline_deletion_vector(&[0, 1]);
    add["dataChange"] = serde_json::Value::Bool(true);
    let protocol = serde_json::json!({"protocol": {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ["deletionVectors"],
        "writerFeatures": ["deletionVectors"],
    }});
    let commit = [protocol, remove, serde_json::json!({ "add": add })]
        .iter()
        .map(|action| format!("{action}\n"))
        .collect::<String>();
    std::fs::write(
        log.join(format!("{:020}.json", last_commit(&log) + 1)),
        commit,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let ctx = context(&Lake::new(lake.location().to_string())).await;
    let after = text(&ctx, "select event_id from commands order by event_id").await;
    assert_eq!(count(&after), rows_before - 2, "{after}");
    for row in &first_two {
        assert!(before.contains(row.as_str()), "{row} was there before");
        assert!(
            !after.contains(row.as_str()),
            "{row} is deleted but still read:\n{after}"
        );
    }
    // Statements over it plan and filter as over any table; the other tables keep the scan.
    let sudo = text(
        &ctx,
        "select count(*) as n from commands where cmd like 'sudo%'",
    )
    .await;
    assert!(sudo.contains("| n "), "{sudo}");
    let sessions = text(&ctx, "select count(*) as n from sessions").await;
    assert!(sessions.contains("| 14 |"), "{sessions}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_feature_the_kernel_cannot_read_either_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = sample_lake(dir.path()).await;
    let log = dir.path().join("lake/commands/_delta_log");
    let protocol = r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["someFutureFeature"],"writerFeatures":["someFutureFeature"]}}"#;
    std::fs::write(
        log.join(format!("{:020}.json", last_commit(&log) + 1)),
        format!("{protocol}\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let ctx = context(&Lake::new(lake.location().to_string())).await;
    let error = match ctx.sql("select count(*) from commands").await {
        Ok(df) => df.collect().await.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
    .unwrap_or_else(|| panic!("a table with an unknown reader feature was read"));
    assert!(error.contains("someFutureFeature"), "{error}");
    assert!(error.contains("commands"), "{error}");
    let sessions = text(&ctx, "select count(*) as n from sessions").await;
    assert!(sessions.contains("| 14 |"), "{sessions}");
}

/// Bounds the Delta log shows every kept file lies within (a day's `time` over that day's file,
/// the `date` partition) are settled by the choice of files: not evaluated again above the scan
/// or inside the reader, and no page index is loaded for them. A bound that cuts a file, and a
/// bound on a column that may be null, are still applied row by row, with the same answers.
#[tokio::test(flavor = "multi_thread")]
async fn bounds_the_log_settles_are_not_applied_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ctx = context(&sample_lake(dir.path()).await).await;
    let physical = |plan: &str| -> String {
        plan.lines()
            .skip_while(|l| !l.contains("physical_plan"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let day =
        "time >= timestamp '2026-10-06T00:00:00Z' and time < timestamp '2026-10-07T00:00:00Z'";

    // A whole day's bounds, with and without `date`: nothing is left to evaluate.
    for bounds in [
        day.to_string(),
        format!("{day} and date = date '2026-10-06'"),
    ] {
        let plan = physical(
            &text(
                &ctx,
                &format!("explain select cmd from commands where {bounds}"),
            )
            .await,
        );
        assert_eq!(planned(&plan, "2026-10-06"), 1, "{plan}");
        assert!(
            !plan.contains("FilterExec") && !plan.contains("predicate="),
            "{bounds}: {plan}"
        );
    }
    // With a lookup beside them, only the lookup is evaluated.
    let plan = physical(
        &text(
            &ctx,
            &format!("explain select cmd from commands where user = 'bob' and {day}"),
        )
        .await,
    );
    assert!(plan.contains("user@") && !plan.contains("time@"), "{plan}");
    // A bound inside the day cuts the file: applied, in the reader and above it.
    let noon = "time >= timestamp '2026-10-06T12:00:00Z'";
    let plan = physical(
        &text(
            &ctx,
            &format!("explain select cmd from commands where {noon}"),
        )
        .await,
    );
    assert!(
        plan.contains("FilterExec") && plan.contains("time@"),
        "{plan}"
    );
    // `started_at` may be null: its bounds are applied even over a whole day.
    let plan = physical(
        &text(
            &ctx,
            "explain select session_id from sessions where started_at >= timestamp \
             '2026-10-01T00:00:00Z' and date >= date '2026-10-01'",
        )
        .await,
    );
    assert!(plan.contains("started_at@"), "{plan}");

    // The page index is loaded for the cutting bound only.
    let analyzed = |sql: String| {
        let ctx = &ctx;
        async move { text(ctx, &format!("explain analyze {sql}")).await }
    };
    let settled = analyzed(format!("select cmd from commands where {day}")).await;
    assert!(
        settled.contains("page_index_pages_pruned=0 total"),
        "{settled}"
    );
    let cut = analyzed(format!("select cmd from commands where {noon}")).await;
    assert!(!cut.contains("page_index_pages_pruned=0 total"), "{cut}");

    // The same rows as a filter the statistics cannot reason about.
    for (bounds, by_text) in [
        (
            day.to_string(),
            "cast(time as varchar) >= '2026-10-06T00' and cast(time as varchar) < '2026-10-07T00'",
        ),
        (noon.to_string(), "cast(time as varchar) >= '2026-10-06T12'"),
        (
            format!("user = 'bob' and {day}"),
            "user = 'bob' and cast(time as varchar) like '2026-10-06T%'",
        ),
    ] {
        let settled = text(
            &ctx,
            &format!("select event_id from commands where {bounds} order by event_id"),
        )
        .await;
        let all = text(
            &ctx,
            &format!("select event_id from commands where {by_text} order by event_id"),
        )
        .await;
        assert_eq!(settled, all, "{bounds}");
        assert!(
            settled.lines().count() > 4 || bounds.contains("bob"),
            "{bounds}: {settled}"
        );
    }
}
