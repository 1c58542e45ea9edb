//! auditq's side of the query benchmark, in-process (`benches/query_vs_duckdb.sh`): each
//! question of a questions file asked RUNS times of a lake, as the `auditq` command asks it
//! (a fresh session over the lake's current version, the statement planned, the answer streamed
//! as CSV into /dev/null), and the median; the row count from one more, untimed run.
//!
//!   cargo run --release --example query_bench -- LAKE QUESTIONS.json [RUNS]
//!
//! The questions file is a JSON list of `{"name", "auditq", "duckdb"}`; this reads `auditq`.
//! Prints one JSON object per question: name, rows, median seconds, every run's seconds.

use std::time::Instant;

use auditq_ingest::Lake;
use auditq_query::{Encoder, Filters, OutputFormat, QueryLimits};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(lake), Some(questions)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: query_bench LAKE QUESTIONS.json [RUNS]");
    };
    let runs: usize = args.get(2).map(|r| r.parse()).transpose()?.unwrap_or(3);
    let questions: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(questions)?)?;
    let lake = Lake::new(lake.clone());
    // DataFusion options as the `auditq` command takes them (`DATAFUSION_*` variables).
    let settings = auditq_query::datafusion_settings(|name| std::env::var(name).ok());
    let limits = QueryLimits {
        max_rows: usize::MAX,
        ..QueryLimits::default()
    };
    for question in &questions {
        let name = question["name"].as_str().unwrap_or("?");
        let Some(sql) = question["auditq"].as_str() else {
            anyhow::bail!("{name}: no auditq statement");
        };
        let ask = |timed: bool| {
            let lake = &lake;
            let limits = &limits;
            let settings = &settings;
            async move {
                let started = Instant::now();
                let ctx =
                    auditq_query::context_limited(lake, &Filters::default(), limits, settings)
                        .await?;
                let plan = auditq_query::plan_sql(&ctx, sql).await?;
                let schema = std::sync::Arc::new(plan.schema().as_arrow().clone());
                let sink = std::io::BufWriter::new(std::fs::File::create("/dev/null")?);
                let mut rows = 0usize;
                if timed {
                    let Some(mut encoder) = Encoder::new(OutputFormat::Csv, schema.clone(), sink)?
                    else {
                        anyhow::bail!("no CSV encoder");
                    };
                    auditq_query::stream_limited(&ctx, plan, limits, |batch| encoder.write(&batch))
                        .await?;
                    encoder.finish(schema)?;
                } else {
                    rows = auditq_query::stream_limited(&ctx, plan, limits, |_| Ok(())).await?;
                }
                Ok::<_, anyhow::Error>((started.elapsed().as_secs_f64(), rows))
            }
        };
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(ask(true).await?.0);
        }
        let (_, rows) = ask(false).await?;
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "{}",
            serde_json::json!({"name": name, "rows": rows, "median_s": median, "runs_s": times})
        );
    }
    Ok(())
}
