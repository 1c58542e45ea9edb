//! auditq's read path (`query/src/scan.rs`): DataFusion's Parquet scan over the files the Delta
//! log lists, pruned by their `date` and log statistics, refusing Delta features it does not apply.

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

#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_deletion_vectors_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = sample_lake(dir.path()).await;
    // Another tool turned deletion vectors on: rows it deletes would stay in the data files,
    // marked only in the vectors, which this reader does not apply.
    let log = dir.path().join("lake/commands/_delta_log");
    let last = std::fs::read_dir(&log)
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
        .unwrap_or_else(|| panic!("no commit in {}", log.display()));
    let protocol = r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}"#;
    std::fs::write(
        log.join(format!("{:020}.json", last + 1)),
        format!("{protocol}\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let ctx = context(&Lake::new(lake.location().to_string())).await;
    let error = match ctx.sql("select count(*) from commands").await {
        Ok(df) => df.collect().await.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
    .unwrap_or_else(|| panic!("a table with deletion vectors was read"));
    assert!(error.contains("deletionVectors"), "{error}");
    assert!(error.contains("commands"), "{error}");
    // The other tables are still read.
    let sessions = text(&ctx, "select count(*) as n from sessions").await;
    assert!(sessions.contains("| 14 |"), "{sessions}");
}
