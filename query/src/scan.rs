//! auditq's own read path: a DataFusion Parquet scan over the files of a Delta snapshot.
//!
//! The Delta log says which files make up a table (paths, sizes, the `date` partition of each,
//! row counts and per-column minimum and maximum); DataFusion's Parquet reader does the rest. The
//! table's schema is auditq's fixed one (no inference), so every file reads into the same types.
//! Files are pruned before the plan is made, by their `date` and log statistics. Filters are
//! handed to DataFusion as inexact: it pushes them into the reader (pruning row groups by their
//! statistics and bloom filters, and, when `datafusion.execution.parquet.pushdown_filters` is on,
//! filtering rows while decoding) and still applies them above the scan.
//!
//! deltalake remains the writer. Its own DataFusion provider is not built: it turns on
//! DataFusion's default features and doubles the part of a clean build that runs after DataFusion
//! (BENCHMARKS.md, "First build"). A table using a Delta reader feature this scan does not apply
//! (deletion vectors, column mapping: auditq never writes them, another engine may) is read
//! through the Delta kernel instead ([`Lake::read_through_kernel`]), which applies them; a
//! feature the kernel cannot read either is refused with an error naming it, never read wrongly.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use auditq_ingest::Lake;
use auditq_model::Table;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, DFSchema, ScalarValue, Statistics};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileScanConfigBuilder;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::Expr;

use crate::QueryError;

/// Delta reader features this scan reads correctly: none of them changes which rows a data file
/// holds or what its columns are called.
const READABLE_FEATURES: [&str; 4] = [
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "checkpointProtection",
];

/// One stored table as DataFusion sees it: its files as the Delta log lists them.
#[derive(Debug)]
pub struct LakeTable {
    /// Which table.
    table: Table,
    /// The table's schema, `date` in its place.
    schema: SchemaRef,
    /// The scan's own columns: those stored in the files (the table's without `date`), then
    /// `date` from each file's partition.
    scan_schema: TableSchema,
    /// Where `date` is in [`Self::schema`].
    date_at: usize,
    store: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
}

impl LakeTable {
    /// The table's current snapshot as DataFusion reads it, or `None` if it has never been
    /// written: this scan, or the Delta kernel's reading of every row when the table uses a
    /// reader feature this scan does not apply. The lake's object store is registered with
    /// `runtime` under a URL of its own.
    pub async fn provider(
        lake: &Lake,
        table: Table,
        runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    ) -> Result<Option<Arc<dyn TableProvider>>, QueryError> {
        match Self::open(lake, table, runtime).await {
            Ok(scan) => Ok(scan.map(|scan| Arc::new(scan) as Arc<dyn TableProvider>)),
            Err(OpenError::Feature(feature)) => kernel_table(lake, table, &feature).await.map(Some),
            Err(OpenError::Query(e)) => Err(e),
        }
    }

    /// The table's current snapshot, or `None` if it has never been written.
    async fn open(
        lake: &Lake,
        table: Table,
        runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    ) -> Result<Option<Self>, OpenError> {
        let delta = lake.open(table).await?;
        if delta.version().is_none() {
            return Ok(None);
        }
        let lake_error = |message: String| {
            QueryError::Lake(auditq_ingest::IngestError::Lake {
                table,
                location: lake.location().to_string(),
                source: message.into(),
            })
        };
        let snapshot = delta.snapshot().map_err(|e| lake_error(e.to_string()))?;
        if let Some(feature) = snapshot
            .protocol()
            .reader_features()
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .find(|f| !READABLE_FEATURES.contains(&f.as_str()))
        {
            return Err(OpenError::Feature(feature));
        }
        if let Some(mode) = snapshot
            .metadata()
            .configuration()
            .get("delta.columnMapping.mode")
            .filter(|mode| mode.as_str() != "none")
        {
            return Err(OpenError::Feature(format!("columnMapping (mode {mode})")));
        }

        let (store, root) = lake.object_store()?;
        // A lake on local disk is read in place (`local_reads`), not through tokio's blocking
        // pool.
        let store: Arc<dyn object_store::ObjectStore> = match lake.local_dir() {
            None => store,
            Some(dir) => {
                let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| lake_error(e.to_string()))?;
                Arc::new(crate::local_reads::InPlace::new(local))
            }
        };
        let store_url =
            ObjectStoreUrl::parse("auditq-lake://tables").map_err(QueryError::Execution)?;
        runtime.register_object_store(store_url.as_ref(), store);

        let schema = sql_schema(table);
        let date = table.partition_column();
        let date_at = schema
            .index_of(date)
            .map_err(|e| lake_error(e.to_string()))?;
        let file_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| f.name() != date)
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let scan_schema = TableSchema::builder(file_schema.clone())
            .with_table_partition_cols(vec![Arc::new(schema.field(date_at).clone())])
            .build();
        let table_root = root.clone().join(table.name());
        let mut files = Vec::new();
        for view in snapshot.log_data().iter() {
            if view.deletion_vector_descriptor().is_some() {
                return Err(OpenError::Feature("deletionVectors".to_string()));
            }
            let relative = view.object_store_path();
            let path = relative
                .parts()
                .fold(table_root.clone(), |path, part| path.join(part));
            let day = view
                .partition_values_map()
                .get(date)
                .cloned()
                .flatten()
                .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
                .map(|d| auditq_model::date32(&d));
            let mut file =
                PartitionedFile::new(path.to_string(), u64::try_from(view.size()).unwrap_or(0));
            file.partition_values = vec![ScalarValue::Date32(day)];
            let stats = file_statistics(&file_schema, view.num_records(), view.stats().as_deref());
            files.push(file.with_statistics(Arc::new(stats)));
        }
        Ok(Some(Self {
            table,
            schema,
            scan_schema,
            date_at,
            store: store_url,
            files,
        }))
    }

    /// The index in the scan's own column order (the files' columns, then `date`) of the table's
    /// column `i`.
    fn scan_index(&self, i: usize) -> usize {
        match i.cmp(&self.date_at) {
            std::cmp::Ordering::Less => i,
            std::cmp::Ordering::Equal => self.scan_schema.file_schema().fields().len(),
            std::cmp::Ordering::Greater => i - 1,
        }
    }

    /// The files that may hold rows `filters` keep, by their `date` and the minimum and maximum
    /// the Delta log gives for each column. DataFusion's own file pruning reads only statistics
    /// it may call exact, which the log's are not (times in milliseconds), so it is done here,
    /// before the plan is made: a pruned file is never opened.
    fn pruned(&self, filters: &[&Expr]) -> DfResult<Vec<PartitionedFile>> {
        let Some(filter) = conjunction(filters.iter().map(|f| (*f).clone())) else {
            return Ok(self.files.clone());
        };
        // An expression the pruning cannot reason about keeps every file.
        let keep = self
            .may_hold(&self.files, filter)?
            .unwrap_or_else(|| vec![true; self.files.len()]);
        Ok(self
            .files
            .iter()
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|(file, _)| file.clone())
            .collect())
    }

    /// Which of `filters` every row of `kept` (the files [`Self::pruned`] keeps for them)
    /// satisfies, as the log's statistics show: a week's bounds on `time` and `date` over the
    /// files of that week. Those are not evaluated again, row by row, above the scan or inside
    /// the reader, and do not make the reader load the files' page indexes (a read and a parse
    /// a file, which prune nothing when every page is inside the bounds).
    ///
    /// A filter holds for a whole file when the statistics rule out any row where it does not
    /// (its negation prunes the file). Only filters over columns that cannot be null are
    /// considered: a null makes a filter and its negation both unknown.
    fn settled(&self, filters: &[&Expr], kept: &[PartitionedFile]) -> DfResult<Vec<bool>> {
        let schema = self.scan_schema.table_schema();
        filters
            .iter()
            .map(|filter| {
                let never_null = filter.column_refs().iter().all(|c| {
                    schema
                        .field_with_name(c.name())
                        .is_ok_and(|f| !f.is_nullable())
                });
                if !never_null || !compares_values(filter) {
                    return Ok(false);
                }
                let negation = Expr::Not(Box::new((*filter).clone()));
                Ok(self
                    .may_hold(kept, negation)?
                    .is_some_and(|may| may.iter().all(|may| !may)))
            })
            .collect()
    }

    /// For each of `files`, whether it may hold rows `filter` keeps, by the log's statistics;
    /// `None` when the pruning cannot reason about `filter`.
    fn may_hold(&self, files: &[PartitionedFile], filter: Expr) -> DfResult<Option<Vec<bool>>> {
        use datafusion::execution::context::ExecutionProps;
        use datafusion::logical_expr::simplify::SimplifyContext;
        use datafusion::optimizer::simplify_expressions::ExprSimplifier;
        let schema = self.scan_schema.table_schema();
        let dfschema = Arc::new(DFSchema::try_from(schema.clone())?);
        // `NOT (time >= t)` as `time < t`, `NOT (date BETWEEN a AND b)` as the two ranges
        // outside: forms the pruning reasons about.
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(dfschema.clone())
                .build(),
        );
        // Columns as the table names them (a statement's may be qualified, `commands.user`).
        let filter = datafusion::logical_expr::expr_rewriter::unnormalize_col(filter);
        let filter = simplifier.simplify(filter)?;
        let props = ExecutionProps::new();
        let predicate = datafusion::physical_expr::create_physical_expr(
            &filter,
            &dfschema,
            &props,
            &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default(
            ),
        )?;
        let Some(pruning) = PruningPredicateBuilder::new()
            .with_file_schema(schema.clone())
            .build(predicate)
        else {
            return Ok(None);
        };
        if pruning.always_true() {
            return Ok(None);
        }
        Ok(Some(pruning.prune(&LogStatistics { files, schema })?))
    }
}

/// The files' statistics as DataFusion's `PruningPredicate` asks for them, bounds exact or not.
struct LogStatistics<'a> {
    files: &'a [PartitionedFile],
    schema: &'a Schema,
}

impl LogStatistics<'_> {
    fn column(&self, column: &Column) -> Option<usize> {
        self.schema.index_of(column.name()).ok()
    }

    fn bounds(
        &self,
        column: &Column,
        which: impl Fn(&ColumnStatistics) -> &Precision<ScalarValue>,
    ) -> Option<ArrayRef> {
        let i = self.column(column)?;
        let data_type = self.schema.field(i).data_type();
        let values = self.files.iter().map(|f| {
            f.statistics
                .as_ref()
                .and_then(|s| s.column_statistics.get(i))
                .and_then(|c| which(c).get_value().cloned())
                .unwrap_or(ScalarValue::try_from(data_type).unwrap_or(ScalarValue::Null))
        });
        ScalarValue::iter_to_array(values).ok()
    }
}

impl PruningStatistics for LogStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |c| &c.min_value)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |c| &c.max_value)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, _column: &Column) -> Option<ArrayRef> {
        None
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        None
    }

    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}

/// The columns the lake's files are sorted by (`auditq compact` writes them in time order): a
/// page index prunes pages only on these.
const SORT_KEYS: [&str; 3] = ["time", "started_at", "date"];

/// Whether a filter looks up values (`col = value`, `col IN (...)`) of a column the files carry
/// bloom filters on (`bloomed`: ids, users, targets, many values a file), which rules row groups
/// out and selects few rows. A value of another column (`event_name = 'StartSession'`) is in
/// every file and many rows.
fn asks_for_values(filter: &Expr, bloomed: &[&str]) -> bool {
    use datafusion::logical_expr::{BinaryExpr, Operator, expr::InList};
    let bloomed = |c: &Column| bloomed.contains(&c.name.as_str());
    any_part(filter, |e| match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(..)) | (Expr::Literal(..), Expr::Column(c)) => {
                bloomed(c)
            }
            _ => false,
        },
        Expr::InList(InList {
            expr,
            negated: false,
            ..
        }) => matches!(expr.as_ref(), Expr::Column(c) if bloomed(c)),
        _ => false,
    })
}

/// Whether a filter only compares columns with values (`=`, `<`, `BETWEEN`, `IN`, joined by
/// `AND`, `OR`, `NOT`): it is null only where a column is, which [`LakeTable::settled`] needs.
/// A function or a cast may be null where its input is not (`try_cast`, `nullif`).
fn compares_values(filter: &Expr) -> bool {
    use datafusion::logical_expr::Operator;
    !any_part(filter, |e| match e {
        Expr::Column(_) | Expr::Literal(..) | Expr::Between(_) | Expr::InList(_) | Expr::Not(_) => {
            false
        }
        Expr::BinaryExpr(b) => !matches!(
            b.op,
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::And
                | Operator::Or
        ),
        _ => true,
    })
}

/// Whether a filter compares a sort key ([`SORT_KEYS`]), which a page index can prune on.
fn bounds_sort_key(filter: &Expr) -> bool {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    any_part(filter, |e| {
        matches!(e, Expr::BinaryExpr(BinaryExpr { left, op, right })
        if matches!(
            op,
            Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        ) && [left, right].iter().any(|side| {
            matches!(side.as_ref(), Expr::Column(c) if SORT_KEYS.contains(&c.name.as_str()))
        }))
    })
}

/// Whether any part of `filter` (itself included) is one `is` picks.
fn any_part(filter: &Expr, is: impl Fn(&Expr) -> bool) -> bool {
    use datafusion::common::tree_node::TreeNode;
    filter.exists(|e| Ok(is(e))).unwrap_or(false)
}

/// Why [`LakeTable::open`] did not open a table: a reader feature this scan does not apply, or
/// anything else.
enum OpenError {
    Feature(String),
    Query(QueryError),
}

impl<E: Into<QueryError>> From<E> for OpenError {
    fn from(e: E) -> Self {
        OpenError::Query(e.into())
    }
}

/// A table read through the Delta kernel (deletion vectors applied, mapped columns named as
/// the table's), its rows in memory in the table's own columns and types.
async fn kernel_table(
    lake: &Lake,
    table: Table,
    feature: &str,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let batches = lake.read_through_kernel(table).await.map_err(|e| QueryError::User {
        message: format!(
            "table {table} uses the Delta feature {feature}, which auditq's scan does not apply, \
             and the Delta kernel could not read it either (it was written by another tool; \
             auditq never writes it): {e}"
        ),
    })?;
    let schema = sql_schema(table);
    let conformed = batches
        .iter()
        .map(|batch| {
            let columns = schema
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
                    Some(column) => arrow::compute::cast(column, field.data_type()),
                    None => Ok(arrow::array::new_null_array(
                        field.data_type(),
                        batch.num_rows(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            arrow::record_batch::RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let provider = datafusion::datasource::MemTable::try_new(schema, vec![conformed])
        .map_err(QueryError::Execution)?;
    Ok(Arc::new(provider))
}

/// A table's columns as SQL sees them: every string column a view (`Utf8View`).
///
/// The Parquet reader then decodes strings as views into the pages it read (a dictionary page's
/// values are not copied once per row), and filters, joins and groups work on views: a
/// `like 'sudo%'` over `cmd` compares the four bytes each view holds inline. Measured on the
/// query bench at 10M commands, 25% off the sudo question and 20% off the sessions-commands
/// join (BENCHMARKS.md, "Queries"). DataFusion's own Parquet tables read strings the same way.
pub(crate) fn sql_schema(table: Table) -> SchemaRef {
    let schema = table.schema();
    let fields: Vec<arrow::datatypes::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A file's statistics from its Delta log entry: the row count, and the minimum, maximum and
/// null count of its time and number columns. Strings are left out: writers may cut their
/// minimum and maximum short, which would prune files that hold matching rows. Times are stored
/// in milliseconds, so a maximum is widened by one.
fn file_statistics(schema: &Schema, rows: Option<usize>, json: Option<&str>) -> Statistics {
    let mut stats = Statistics::new_unknown(schema);
    if let Some(rows) = rows {
        stats.num_rows = Precision::Exact(rows);
    }
    let Some(json) = json.and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()) else {
        return stats;
    };
    let value = |kind: &str, column: &str| json.get(kind).and_then(|v| v.get(column)).cloned();
    for (field, column) in schema.fields().iter().zip(&mut stats.column_statistics) {
        let name = field.name();
        if let Some(nulls) = value("nullCount", name).and_then(|v| v.as_u64()) {
            column.null_count = Precision::Inexact(usize::try_from(nulls).unwrap_or(usize::MAX));
        }
        let bound = |kind: &str, widen: i64| -> Option<ScalarValue> {
            let v = value(kind, name)?;
            match field.data_type() {
                DataType::Timestamp(TimeUnit::Microsecond, zone) => {
                    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
                    Some(ScalarValue::TimestampMicrosecond(
                        Some(t.timestamp_micros().checked_add(widen)?),
                        zone.clone(),
                    ))
                }
                DataType::Int64 => Some(ScalarValue::Int64(Some(v.as_i64()?))),
                _ => None,
            }
        };
        if let Some(min) = bound("minValues", 0) {
            column.min_value = Precision::Inexact(min);
        }
        if let Some(max) = bound("maxValues", 999) {
            column.max_value = Precision::Inexact(max);
        }
    }
    stats
}

#[async_trait::async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let filters: Vec<&Expr> = filters.iter().collect();
        let files = self.pruned(&filters)?;
        if files.is_empty() {
            let schema = Arc::new(self.schema.project(&wanted)?);
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let mut global = state.config_options().execution.parquet.clone();
        // What the reader reads besides the data is chosen per statement: a bloom filter only
        // answers `=` and `IN`, and a page index only prunes on the column the files are sorted
        // by. Read for statements that cannot use them, they cost a file's opening twice over
        // (BENCHMARKS.md, "Queries"). A setting the user turned off stays off.
        let bloomed: Vec<&str> = auditq_ingest::lake::bloom_columns(self.table)
            .iter()
            .map(|(column, _)| *column)
            .collect();
        let looks_up = filters.iter().any(|f| asks_for_values(f, &bloomed));
        global.bloom_filter_on_read &= looks_up;
        let settled = self.settled(&filters, &files)?;
        global.enable_page_index &= filters
            .iter()
            .zip(&settled)
            .any(|(f, settled)| !settled && bounds_sort_key(f));
        // Filtering rows inside the reader pays for a lookup of values (one user among
        // hundreds), where most of the other columns' pages need never be decoded. For the rest
        // (`like`, `not in`, ranges), decoding the columns as views and filtering after is
        // faster: the sudo question and both joins by 7% to 15% (BENCHMARKS.md, "Queries").
        // The session's own switch, when a user sets it, turns it on everywhere.
        global.pushdown_filters |= looks_up;
        let options = TableParquetOptions {
            global,
            ..Default::default()
        };
        let format = ParquetFormat::default().with_options(options);
        let source = format.file_source(self.scan_schema.clone());
        // As many groups as DataFusion runs partitions, files dealt round the groups in the
        // log's order.
        let groups = state.config().target_partitions().max(1).min(files.len());
        let mut grouped = vec![Vec::new(); groups];
        for (i, file) in files.into_iter().enumerate() {
            grouped[i % groups].push(file);
        }
        let config = FileScanConfigBuilder::new(self.store.clone(), source)
            .with_file_groups(grouped.into_iter().map(Into::into).collect())
            .with_projection_indices(Some(wanted.iter().map(|&i| self.scan_index(i)).collect()))?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }

    /// A filter the log's statistics show every kept row satisfies ([`Self::settled`]) is
    /// exact: the scan's choice of files applies it. The others are inexact: DataFusion pushes
    /// them into the reader and applies them again above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(self
            .settled(filters, &self.pruned(filters)?)?
            .into_iter()
            .map(|settled| {
                if settled {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("exit_code", DataType::Int64, true),
        ])
    }

    #[test]
    fn bloom_filters_and_page_indexes_are_read_only_for_filters_that_use_them() {
        use datafusion::prelude::{col, lit};
        let equal = col("user").eq(lit("alice"));
        let listed = col("session_id").in_list(vec![lit("a"), lit("b")], false);
        let unequal = col("logged").not_eq(lit("stream"));
        let like = col("cmd").like(lit("sudo%"));
        let time = col("time").gt_eq(lit("2026-10-01"));
        let bloomed = ["user", "session_id"];
        let asks = |f: &Expr| asks_for_values(f, &bloomed);
        assert!(asks(&equal) && asks(&listed));
        assert!(asks(&like.clone().and(equal.clone())));
        assert!(!asks(&unequal) && !asks(&like) && !asks(&time));
        // A value of a column without bloom filters is not a lookup.
        assert!(!asks(&col("event_name").eq(lit("StartSession"))));
        assert!(bounds_sort_key(&time) && bounds_sort_key(&like.clone().and(time.clone())));
        assert!(!bounds_sort_key(&equal) && !bounds_sort_key(&like));
    }

    #[test]
    fn statistics_come_from_the_log_entry() {
        let json = r#"{"numRecords":3,
            "minValues":{"event_id":"a","time":"2026-10-05T09:12:31.123Z","exit_code":-1},
            "maxValues":{"event_id":"zz","time":"2026-10-05T10:00:00.456Z","exit_code":127},
            "nullCount":{"event_id":0,"time":0,"exit_code":2}}"#;
        let stats = file_statistics(&schema(), Some(3), Some(json));
        assert_eq!(stats.num_rows, Precision::Exact(3));
        let [id, time, code] = &stats.column_statistics[..] else {
            panic!("three columns");
        };
        // Strings may be cut short by a writer: never used to prune.
        assert_eq!(id.min_value, Precision::Absent);
        assert_eq!(id.max_value, Precision::Absent);
        assert_eq!(id.null_count, Precision::Inexact(0));
        let utc = Some("UTC".into());
        let micros = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_micros())
                .ok()
        };
        assert_eq!(
            time.min_value,
            Precision::Inexact(ScalarValue::TimestampMicrosecond(
                micros("2026-10-05T09:12:31.123Z"),
                utc.clone()
            ))
        );
        // Milliseconds in the log: the maximum covers the rest of its millisecond.
        assert_eq!(
            time.max_value,
            Precision::Inexact(ScalarValue::TimestampMicrosecond(
                micros("2026-10-05T10:00:00.456999Z"),
                utc
            ))
        );
        assert_eq!(
            code.min_value,
            Precision::Inexact(ScalarValue::Int64(Some(-1)))
        );
        assert_eq!(
            code.max_value,
            Precision::Inexact(ScalarValue::Int64(Some(127)))
        );
        assert_eq!(code.null_count, Precision::Inexact(2));
    }

    #[test]
    fn missing_or_bad_statistics_leave_the_file_unpruned() {
        for json in [None, Some("not json"), Some(r#"{"numRecords":1}"#)] {
            let stats = file_statistics(&schema(), None, json);
            assert_eq!(stats.num_rows, Precision::Absent);
            assert!(
                stats
                    .column_statistics
                    .iter()
                    .all(|c| c.min_value == Precision::Absent && c.max_value == Precision::Absent),
                "{json:?}"
            );
        }
    }
}
