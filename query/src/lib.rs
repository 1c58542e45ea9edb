//! The `auditq` command as a library: SQL over the lake, table descriptions, output formats.
//!
//! Everything the binary does is a function here, so tests call the same code a user runs:
//! [`context`] registers every lake table with DataFusion, [`plan_sql`] parses a statement and
//! gives a `FROM`-less `SELECT` the default relation `commands` (on the parsed statement, not by
//! editing the string, so `where` clauses, quotes and comments stay as the user wrote them),
//! [`run_sql`] runs it read-only, and [`write_batches`] prints the result.
//!
//! Errors say whose fault they are: [`QueryError::User`] (bad SQL, unknown table or column)
//! carries the catalogue of tables and columns to show next to the message; anything else is an
//! internal error with its context.

/// The allocator of every program built on this crate (the `auditq` command, its benches and
/// tests). glibc's malloc returns large freed blocks to the kernel, so each batch's decoded
/// Parquet pages were mapped, zero-filled and faulted in again: a quarter of the time of a
/// 1.5M-row answer went to page faults (`perf`, BENCHMARKS.md "Queries: 50M commands").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use auditq_ingest::Lake;
use auditq_model::Table;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;

pub mod coverage;
pub mod evidence;
pub mod filters;
pub mod fit;
pub mod local_reads;
pub mod questions;
pub mod replay;
pub mod report;
pub mod scan;
pub mod shell;
pub use filters::Filters;

/// The relation a statement without `FROM` reads.
pub const DEFAULT_TABLE: Table = Table::Commands;

/// An error of the query layer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement is wrong: bad SQL, an unknown table or column, a write.
    #[error("{message}")]
    User {
        /// What is wrong.
        message: String,
    },
    /// The statement exceeded a limit (rows, memory, time).
    #[error("{message}")]
    Limit {
        /// Which limit, and what to do.
        message: String,
    },
    /// The lake could not be read.
    #[error(transparent)]
    Lake(#[from] auditq_ingest::IngestError),
    /// DataFusion failed while running a valid statement.
    #[error("query failed: {0}")]
    Execution(DataFusionError),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// Output could not be encoded.
    #[error("cannot encode output: {0}")]
    Encode(#[from] arrow::error::ArrowError),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// RFC 4180 CSV with a header.
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (with `-o FILE`): the columns and their types as stored.
    Parquet,
}

/// A DataFusion context with every lake table registered (empty tables for those never
/// written, so any statement over the documented schema plans).
pub async fn context(lake: &Lake) -> Result<SessionContext, QueryError> {
    context_with(lake, &Filters::default()).await
}

/// Bounds on what one statement may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Rows an answer may have (a larger one is refused, not cut short silently).
    pub max_rows: usize,
    /// Memory the statement's operators may hold, in bytes (sorts and joins fail beyond it).
    pub max_memory: usize,
    /// How long it may run.
    pub timeout: std::time::Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_rows: 1_000_000,
            max_memory: 4 << 30,
            timeout: std::time::Duration::from_secs(600),
        }
    }
}

/// [`context`] with every table seen through `filters` (see [`filters`]).
pub async fn context_with(lake: &Lake, filters: &Filters) -> Result<SessionContext, QueryError> {
    context_limited(lake, filters, &QueryLimits::default(), &[]).await
}

/// The DataFusion options a user set as variables, named as DataFusion names them
/// (`DATAFUSION_EXECUTION_TARGET_PARTITIONS=1` for `datafusion.execution.target_partitions`),
/// looked up with `var` (the binary passes the environment's), for [`context_limited`].
pub fn datafusion_settings(var: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    datafusion::config::ConfigOptions::default()
        .entries()
        .into_iter()
        .filter_map(|entry| {
            let value = var(&entry.key.to_uppercase().replace('.', "_"))?;
            Some((entry.key, value))
        })
        .collect()
}

/// [`context_with`] whose statements may hold at most `limits.max_memory`, with the DataFusion
/// options `settings` (key, value) over auditq's defaults.
pub async fn context_limited(
    lake: &Lake,
    filters: &Filters,
    limits: &QueryLimits,
    settings: &[(String, String)],
) -> Result<SessionContext, QueryError> {
    // Filters are evaluated inside the Parquet reader (most selective first, the other columns
    // decoded only for the rows that pass) for statements that look values up: the scan turns
    // it on for those (`scan.rs`), where it pays. `pushdown_filters` set here turns it on for
    // every statement, as DataFusion reads either switch.
    let mut config = SessionConfig::new().with_information_schema(true);
    let parquet = &mut config.options_mut().execution.parquet;
    parquet.reorder_filters = true;
    for (key, value) in settings {
        config
            .options_mut()
            .set(key, value)
            .map_err(QueryError::Execution)?;
    }
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(limits.max_memory, 1.0)
        .build_arc()
        .map_err(QueryError::Execution)?;
    let ctx = SessionContext::new_with_config_rt(config.clone(), runtime);
    let options = config.options();
    let catalog = ctx
        .catalog(&options.catalog.default_catalog)
        .ok_or_else(|| {
            QueryError::Execution(DataFusionError::Internal("no default catalog".into()))
        })?;
    let schema = LakeSchema {
        lake: lake.clone(),
        filters: filters.clone(),
        runtime: ctx.runtime_env(),
        opened: tokio::sync::Mutex::new(std::collections::HashMap::new()),
    };
    catalog
        .register_schema(&options.catalog.default_schema, Arc::new(schema))
        .map_err(QueryError::Execution)?;
    Ok(ctx)
}

/// The lake's tables as a DataFusion schema that opens a table (reads its Delta log) only
/// when a statement names it: a question about `commands` does not pay for the other six.
#[derive(Debug)]
struct LakeSchema {
    lake: Lake,
    filters: Filters,
    /// The query's runtime, where each table's object store is registered.
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    opened: tokio::sync::Mutex<std::collections::HashMap<Table, Arc<dyn TableProvider>>>,
}

impl LakeSchema {
    async fn open(&self, table: Table) -> Result<Arc<dyn TableProvider>, QueryError> {
        let provider: Arc<dyn TableProvider> =
            match scan::LakeTable::provider(&self.lake, table, &self.runtime).await? {
                Some(provider) => provider,
                // Never written: empty, so any statement over the documented schema plans.
                None => Arc::new(
                    MemTable::try_new(scan::sql_schema(table), vec![vec![]])
                        .map_err(QueryError::Execution)?,
                ),
            };
        self.filters.apply(table, provider)
    }
}

#[async_trait::async_trait]
impl datafusion::catalog::SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        Table::ALL.iter().map(|t| t.name().to_string()).collect()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = Table::from_name(name) else {
            return Ok(None);
        };
        let mut opened = self.opened.lock().await;
        if let Some(provider) = opened.get(&table) {
            return Ok(Some(provider.clone()));
        }
        let provider = self
            .open(table)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        opened.insert(table, provider.clone());
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        Table::from_name(name).is_some()
    }
}

/// Parses one statement and gives every `FROM`-less `SELECT` in it the default relation. A query,
/// or `EXPLAIN [ANALYZE]` of one (what a user tuning a question asks; it changes nothing).
pub fn with_default_from(sql: &str) -> Result<DfStatement, QueryError> {
    let mut statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| {
            QueryError::User {
                message: format!("bad SQL: {e}"),
            }
        })?;
    if statements.len() != 1 {
        return Err(QueryError::User {
            message: format!("expected one SQL statement, found {}", statements.len()),
        });
    }
    let only = || QueryError::User {
        message: "only SQL queries, and EXPLAIN [ANALYZE] of one, are supported".to_string(),
    };
    let mut statement = statements.pop_front().ok_or_else(only)?;
    let inner = match &mut statement {
        DfStatement::Explain(explain) => explain.statement.as_mut(),
        other => other,
    };
    match inner {
        DfStatement::Statement(statement) => {
            if let Statement::Query(query) = statement.as_mut() {
                add_default_from_to_query(query)?;
            }
        }
        _ => return Err(only()),
    }
    Ok(statement)
}

fn default_from() -> Result<Vec<datafusion::sql::sqlparser::ast::TableWithJoins>, QueryError> {
    let sql = format!("SELECT * FROM {}", DEFAULT_TABLE.name());
    let parsed = DFParser::parse_sql_with_dialect(&sql, &GenericDialect {})
        .map_err(QueryError::Execution)?;
    match parsed.into_iter().next() {
        Some(DfStatement::Statement(statement)) => match *statement {
            Statement::Query(query) => match *query.body {
                SetExpr::Select(select) => Ok(select.from),
                _ => Ok(Vec::new()),
            },
            _ => Ok(Vec::new()),
        },
        _ => Ok(Vec::new()),
    }
}

fn add_default_from_to_query(
    query: &mut datafusion::sql::sqlparser::ast::Query,
) -> Result<(), QueryError> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            add_default_from_to_query(&mut cte.query)?;
        }
    }
    add_default_from(&mut query.body)
}

fn add_default_from(body: &mut SetExpr) -> Result<(), QueryError> {
    match body {
        SetExpr::Select(select) if select.from.is_empty() => select.from = default_from()?,
        SetExpr::SetOperation { left, right, .. } => {
            add_default_from(left)?;
            add_default_from(right)?;
        }
        SetExpr::Query(query) => add_default_from_to_query(query)?,
        _ => {}
    }
    Ok(())
}

fn is_user_error(error: &DataFusionError) -> bool {
    matches!(
        error.find_root(),
        DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::SQL(..)
            | DataFusionError::NotImplemented(_)
    )
}

/// A DataFusion error as the user's fault (bad SQL, unknown column, a filter a table cannot
/// take) or an internal one.
pub fn classify(error: DataFusionError) -> QueryError {
    if is_user_error(&error) {
        QueryError::User {
            message: error.find_root().to_string(),
        }
    } else {
        QueryError::Execution(error)
    }
}

/// Plans a statement (read-only: no DDL, DML or `SET`).
pub async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::logical_expr::LogicalPlan, QueryError> {
    let statement = with_default_from(sql)?;
    let plan = ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(classify)?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| QueryError::User {
            message: format!("the lake is read-only here: {e}"),
        })?;
    Ok(plan)
}

/// Runs a planned statement within `limits`, handing each batch of the answer to `each` as it
/// comes: more rows than `max_rows`, more memory than `max_memory`, or more time than `timeout`
/// is refused with a message saying which (the batch that would pass `max_rows` is not handed
/// on). Returns the rows handed on.
pub async fn stream_limited(
    ctx: &SessionContext,
    plan: datafusion::logical_expr::LogicalPlan,
    limits: &QueryLimits,
    mut each: impl FnMut(RecordBatch) -> Result<(), QueryError>,
) -> Result<usize, QueryError> {
    use futures::StreamExt;
    let run = async {
        let df = ctx.execute_logical_plan(plan).await.map_err(classify)?;
        let mut stream = df.execute_stream().await.map_err(classify)?;
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(limit_error)?;
            rows += batch.num_rows();
            if rows > limits.max_rows {
                return Err(QueryError::Limit {
                    message: format!(
                        "the answer has more than {} rows: add LIMIT, narrow it (--since, --user, ...), or raise --max-rows",
                        limits.max_rows
                    ),
                });
            }
            each(batch)?;
        }
        Ok(rows)
    };
    match tokio::time::timeout(limits.timeout, run).await {
        Ok(answer) => answer,
        Err(_) => Err(QueryError::Limit {
            message: format!(
                "the statement ran longer than {} s and was stopped (--timeout)",
                limits.timeout.as_secs()
            ),
        }),
    }
}

/// Runs a planned statement within `limits` ([`stream_limited`]) and keeps the answer.
pub async fn collect_limited(
    ctx: &SessionContext,
    plan: datafusion::logical_expr::LogicalPlan,
    limits: &QueryLimits,
) -> Result<Vec<RecordBatch>, QueryError> {
    let mut batches = Vec::new();
    stream_limited(ctx, plan, limits, |batch| {
        batches.push(batch);
        Ok(())
    })
    .await?;
    Ok(batches)
}

/// An answer written as it arrives, batch by batch, in a format that needs nothing of the rows
/// still to come (the table format sizes its columns on every row: it is written whole, by
/// [`write_batches`]).
pub enum Encoder<W: Write + Send> {
    /// CSV with a header (written before the first row, or alone for no rows).
    Csv(Box<arrow::csv::Writer<W>>, bool),
    /// One JSON array.
    Json(arrow::json::ArrayWriter<W>, bool),
    /// A JSON object per line.
    Ndjson(arrow::json::LineDelimitedWriter<W>),
    /// A Parquet file (Snappy).
    Parquet(Box<parquet::arrow::ArrowWriter<W>>),
}

impl<W: Write + Send> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Csv(..) => "Encoder::Csv",
            Encoder::Json(..) => "Encoder::Json",
            Encoder::Ndjson(_) => "Encoder::Ndjson",
            Encoder::Parquet(_) => "Encoder::Parquet",
        })
    }
}

impl<W: Write + Send> Encoder<W> {
    /// An encoder of `format` into `out`; `None` for the table format.
    pub fn new(
        format: OutputFormat,
        schema: SchemaRef,
        out: W,
    ) -> Result<Option<Self>, QueryError> {
        Ok(Some(match format {
            OutputFormat::Table => return Ok(None),
            OutputFormat::Csv => Encoder::Csv(
                Box::new(
                    arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(out),
                ),
                false,
            ),
            OutputFormat::Json => Encoder::Json(arrow::json::ArrayWriter::new(out), false),
            OutputFormat::Ndjson => Encoder::Ndjson(arrow::json::LineDelimitedWriter::new(out)),
            OutputFormat::Parquet => {
                let properties = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                Encoder::Parquet(Box::new(
                    parquet::arrow::ArrowWriter::try_new(out, schema, Some(properties))
                        .map_err(parquet_error)?,
                ))
            }
        }))
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        match self {
            Encoder::Csv(writer, wrote) => {
                writer.write(batch)?;
                *wrote = true;
            }
            Encoder::Json(writer, rows) => {
                writer.write(batch)?;
                *rows |= batch.num_rows() > 0;
            }
            Encoder::Ndjson(writer) => writer.write(batch)?,
            Encoder::Parquet(writer) => writer.write(batch).map_err(parquet_error)?,
        }
        Ok(())
    }

    /// Ends the answer (a header alone, `[]`, the Parquet footer) and flushes it; `schema` is
    /// the answer's, for a CSV header with no rows.
    pub fn finish(self, schema: SchemaRef) -> Result<(), QueryError> {
        match self {
            Encoder::Csv(mut writer, wrote) => {
                if !wrote {
                    writer.write(&RecordBatch::new_empty(schema))?;
                }
                writer.into_inner().flush()?;
            }
            Encoder::Json(mut writer, rows) => {
                writer.finish()?;
                let mut out = writer.into_inner();
                if !rows {
                    write!(out, "[]")?;
                }
                writeln!(out)?;
                out.flush()?;
            }
            Encoder::Ndjson(mut writer) => {
                writer.finish()?;
                writer.into_inner().flush()?;
            }
            Encoder::Parquet(writer) => {
                writer.close().map_err(parquet_error)?;
            }
        }
        Ok(())
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> QueryError {
    QueryError::Encode(arrow::error::ArrowError::ExternalError(Box::new(e)))
}

fn limit_error(error: DataFusionError) -> QueryError {
    if matches!(error.find_root(), DataFusionError::ResourcesExhausted(_)) {
        QueryError::Limit {
            message: format!(
                "the statement needs more memory than --max-memory allows: {}",
                error.find_root()
            ),
        }
    } else {
        classify(error)
    }
}

/// Runs a statement and collects the result.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let plan = plan_sql(ctx, sql).await?;
    let df = ctx.execute_logical_plan(plan).await.map_err(classify)?;
    df.collect().await.map_err(classify)
}

/// Every cell of `batches` as text, a row at a time (`null` for nulls): what the terminal table
/// and the report show.
pub(crate) fn text_rows(
    batches: &[RecordBatch],
    null: &str,
) -> Result<Vec<Vec<String>>, QueryError> {
    let options = arrow::util::display::FormatOptions::default().with_null(null);
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).try_to_string())
                    .collect::<Result<_, _>>()?,
            );
        }
    }
    Ok(rows)
}

/// Writes batches in a format.
pub fn write_batches(
    batches: &[RecordBatch],
    schema: SchemaRef,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    match format {
        OutputFormat::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "(no rows; columns: {})", names.join(", "))?;
            } else {
                writeln!(
                    out,
                    "{}",
                    arrow::util::pretty::pretty_format_batches(batches)?
                )?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
        OutputFormat::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        OutputFormat::Parquet => {
            return Err(QueryError::User {
                message: "--format parquet writes a file: give -o FILE".to_string(),
            });
        }
    }
    out.flush()?;
    Ok(())
}

/// A SQL string literal of `text` (quotes doubled).
pub fn sql_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Rows as JSON objects (times as RFC 3339), for code that reads a few values of a result.
pub fn rows_as_json(
    batches: &[RecordBatch],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, QueryError> {
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut buffer);
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    if buffer.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buffer)
        .map_err(|e| QueryError::Encode(arrow::error::ArrowError::JsonError(e.to_string())))
}

/// The value of a `select count(*) ...` result (0 when it has no row).
pub fn count_of(batches: &[RecordBatch]) -> i64 {
    batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
        })
        .filter(|a| !a.is_empty())
        .map(|a| a.value(0))
        .unwrap_or(0)
}

/// The tables, one line each, with their row counts.
pub async fn describe_tables(ctx: &SessionContext) -> Result<String, QueryError> {
    let mut text = String::new();
    for table in Table::ALL {
        let rows = match run_sql(ctx, &format!("SELECT count(*) FROM {}", table.name())).await {
            Ok(batches) => count_of(&batches).to_string(),
            // A filter this table cannot take (`--user` on rejects).
            Err(QueryError::User { .. }) => "-".to_string(),
            Err(e) => return Err(e),
        };
        text.push_str(&format!(
            "{:<12} {:>9} rows  {}\n",
            table.name(),
            rows,
            table.description()
        ));
    }
    Ok(text)
}

/// The columns of one table, with their types and whether they may be null.
pub fn describe_schema(name: &str) -> Result<String, QueryError> {
    let table = Table::from_name(name).ok_or_else(|| QueryError::User {
        message: format!("no table {name:?}"),
    })?;
    let mut text = format!("{}: {}\n", table.name(), table.description());
    for field in table.schema().fields() {
        let null = if field.is_nullable() { "" } else { " not null" };
        let partition = if field.name() == table.partition_column() {
            " (partition)"
        } else {
            ""
        };
        text.push_str(&format!(
            "  {:<18} {}{null}{partition}\n",
            field.name(),
            field.data_type()
        ));
    }
    Ok(text)
}

/// Every table and its columns, to print next to a user error.
pub fn catalogue() -> String {
    let mut text = String::from("tables and columns:\n");
    for table in Table::ALL {
        let names: Vec<_> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        text.push_str(&format!("  {}: {}\n", table.name(), names.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datafusion_options_come_from_the_variables_the_binary_passes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let lake = Lake::new(dir.path().display().to_string());
        let set = datafusion_settings(|name| match name {
            "DATAFUSION_EXECUTION_TARGET_PARTITIONS" => Some("3".into()),
            "DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS" => Some("true".into()),
            _ => None,
        });
        let mut sorted = set.clone();
        sorted.sort();
        let expected: Vec<(String, String)> = vec![
            (
                "datafusion.execution.parquet.pushdown_filters".into(),
                "true".into(),
            ),
            ("datafusion.execution.target_partitions".into(), "3".into()),
        ];
        assert_eq!(sorted, expected);
        let ctx = context_limited(&lake, &Filters::default(), &QueryLimits::default(), &set)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let options = ctx.state().config().options().clone();
        assert_eq!(options.execution.target_partitions, 3);
        assert!(options.execution.parquet.pushdown_filters);

        // Nothing set: auditq's defaults, whatever this process's environment holds.
        let ctx = context_limited(&lake, &Filters::default(), &QueryLimits::default(), &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let options = ctx.state().config().options().clone();
        assert!(!options.execution.parquet.pushdown_filters);
        assert!(options.execution.parquet.reorder_filters);

        // A value DataFusion refuses is an error, not ignored.
        let bad = [(
            "datafusion.execution.target_partitions".to_string(),
            "many".to_string(),
        )];
        assert!(
            context_limited(&lake, &Filters::default(), &QueryLimits::default(), &bad)
                .await
                .is_err()
        );
    }

    #[test]
    fn default_from_is_added_on_the_parsed_statement() {
        let statement =
            with_default_from("select * where cmd like 'sudo%'").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            statement.to_string(),
            "SELECT * FROM commands WHERE cmd LIKE 'sudo%'"
        );
        let statement =
            with_default_from("select user from sessions").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(statement.to_string(), "SELECT user FROM sessions");
        let statement = with_default_from("select 'where x from y' as s union select cmd")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            statement.to_string(),
            "SELECT 'where x from y' AS s FROM commands UNION SELECT cmd FROM commands"
        );
        let statement = with_default_from("with s as (select cmd where seq = 1) select * from s")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            statement.to_string(),
            "WITH s AS (SELECT cmd FROM commands WHERE seq = 1) SELECT * FROM s"
        );
    }

    #[test]
    fn explain_is_allowed_of_a_query_and_gets_the_default_from_too() {
        let statement = with_default_from("explain analyze select count(*) where cmd like 'sudo%'")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            statement
                .to_string()
                .ends_with("SELECT count(*) FROM commands WHERE cmd LIKE 'sudo%'"),
            "{statement}"
        );
        assert!(matches!(
            with_default_from("explain copy commands to '/tmp/x' stored as csv"),
            Err(QueryError::User { .. })
        ));
    }

    #[test]
    fn bad_sql_is_a_user_error() {
        assert!(matches!(
            with_default_from("selec * frm"),
            Err(QueryError::User { .. })
        ));
        assert!(matches!(
            with_default_from("select 1; select 2"),
            Err(QueryError::User { .. })
        ));
    }

    #[test]
    fn schema_descriptions() {
        let text = describe_schema("commands").unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("cmd"), "{text}");
        assert!(
            text.contains("date               Date32 not null (partition)"),
            "{text}"
        );
        assert!(matches!(
            describe_schema("nope"),
            Err(QueryError::User { .. })
        ));
    }
}
