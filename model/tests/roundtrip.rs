//! Property tests of every table's event <-> Arrow conversion.
//!
//! Batches are generated from each table's own schema (any text, any integers, nulls where the
//! column allows them, times and dates across chrono's whole range and, now and then, past it).
//! Reading a batch into rows and writing the rows back gives the same batch, and reading that
//! again gives the same rows: nothing is lost, reordered or altered either way. A value chrono
//! cannot hold is refused with an error naming its column, never a panic or a wrong row.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, TimeUnit};
use auditq_model::{Alert, Command, HostEvent, Position, Reject, Row, Session, TrailEvent};
use chrono::{DateTime, NaiveDate};
use proptest::prelude::*;

/// Earliest and latest microsecond chrono holds (years -262143 and 262142).
fn micros() -> BoxedStrategy<i64> {
    let min = DateTime::<chrono::Utc>::MIN_UTC.timestamp_micros();
    let max = DateTime::<chrono::Utc>::MAX_UTC.timestamp_micros();
    prop_oneof![
        8 => 0i64..4_102_444_800_000_000,
        2 => min..=max,
        1 => any::<i64>(),
    ]
    .boxed()
}

fn days() -> BoxedStrategy<i32> {
    prop_oneof![
        8 => 0i32..47_482,
        2 => -95_000_000i32..95_000_000,
        1 => any::<i32>(),
    ]
    .boxed()
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    values: BoxedStrategy<T>,
    nullable: bool,
) -> BoxedStrategy<Option<T>> {
    if nullable {
        proptest::option::weighted(0.8, values).boxed()
    } else {
        values.prop_map(Some).boxed()
    }
}

fn column(field: &Field, rows: usize) -> BoxedStrategy<ArrayRef> {
    let nullable = field.is_nullable();
    let n = rows..=rows;
    match field.data_type() {
        DataType::Utf8 => proptest::collection::vec(maybe(any::<String>().boxed(), nullable), n)
            .prop_map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
            .boxed(),
        DataType::Int64 => proptest::collection::vec(maybe(any::<i64>().boxed(), nullable), n)
            .prop_map(|v| Arc::new(Int64Array::from(v)) as ArrayRef)
            .boxed(),
        DataType::Boolean => proptest::collection::vec(maybe(any::<bool>().boxed(), nullable), n)
            .prop_map(|v| Arc::new(BooleanArray::from(v)) as ArrayRef)
            .boxed(),
        DataType::Date32 => proptest::collection::vec(maybe(days(), nullable), n)
            .prop_map(|v| Arc::new(Date32Array::from(v)) as ArrayRef)
            .boxed(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) => {
            let zone = zone.clone();
            proptest::collection::vec(maybe(micros(), nullable), n)
                .prop_map(move |v| {
                    Arc::new(TimestampMicrosecondArray::from(v).with_timezone(zone.clone()))
                        as ArrayRef
                })
                .boxed()
        }
        other => panic!("no generator for column {} of type {other}", field.name()),
    }
}

fn batch_of<R: Row>() -> BoxedStrategy<RecordBatch> {
    let schema = R::schema();
    (0usize..6)
        .prop_flat_map(move |rows| {
            let schema = schema.clone();
            let columns: Vec<BoxedStrategy<ArrayRef>> =
                schema.fields().iter().map(|f| column(f, rows)).collect();
            columns.prop_map(move |columns| {
                RecordBatch::try_new(schema.clone(), columns)
                    .unwrap_or_else(|e| panic!("generated batch: {e}"))
            })
        })
        .boxed()
}

/// Whether every time and date in the batch is one chrono can hold.
fn representable(batch: &RecordBatch) -> bool {
    batch.columns().iter().all(|column| {
        if let Some(times) = column.as_any().downcast_ref::<TimestampMicrosecondArray>() {
            times
                .iter()
                .flatten()
                .all(|m| DateTime::from_timestamp_micros(m).is_some())
        } else if let Some(dates) = column.as_any().downcast_ref::<Date32Array>() {
            dates.iter().flatten().all(|d| {
                d.checked_add(719_163)
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .is_some()
            })
        } else {
            true
        }
    })
}

fn round_trip<R: Row + PartialEq + std::fmt::Debug>(batch: &RecordBatch) {
    match R::from_batch(batch) {
        Ok(rows) => {
            assert!(representable(batch), "read a value chrono cannot hold");
            assert_eq!(rows.len(), batch.num_rows());
            let again = R::to_batch(&rows).unwrap_or_else(|e| panic!("to_batch: {e}"));
            assert_eq!(&again, batch, "rows -> Arrow changed the batch");
            let rows_again = R::from_batch(&again).unwrap_or_else(|e| panic!("from_batch: {e}"));
            assert_eq!(rows_again, rows, "Arrow -> rows changed the rows");
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(row.date(), rows_again[i].date());
                for name in R::FIELDS {
                    assert_eq!(row.field(name), rows_again[i].field(name), "{name}");
                }
            }
        }
        Err(e) => {
            assert!(!representable(batch), "a valid batch was refused: {e}");
            let text = e.to_string();
            assert!(
                text.contains(R::TABLE.name()) && text.contains("column"),
                "{text}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn commands_round_trip(batch in batch_of::<Command>()) { round_trip::<Command>(&batch); }

    #[test]
    fn sessions_round_trip(batch in batch_of::<Session>()) { round_trip::<Session>(&batch); }

    #[test]
    fn cloudtrail_round_trips(batch in batch_of::<TrailEvent>()) {
        round_trip::<TrailEvent>(&batch);
    }

    #[test]
    fn host_events_round_trip(batch in batch_of::<HostEvent>()) {
        round_trip::<HostEvent>(&batch);
    }

    #[test]
    fn alerts_round_trip(batch in batch_of::<Alert>()) { round_trip::<Alert>(&batch); }

    #[test]
    fn rejects_round_trip(batch in batch_of::<Reject>()) { round_trip::<Reject>(&batch); }

    #[test]
    fn positions_round_trip(batch in batch_of::<Position>()) {
        round_trip::<Position>(&batch);
    }
}

/// Found by `sessions_round_trip`: a nullable time chrono cannot hold was read as null, so the
/// value vanished without a word. It is now refused, naming the column.
#[test]
fn an_unrepresentable_optional_time_is_refused_not_read_as_null() {
    let schema = Session::schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            match (field.name().as_str(), field.data_type()) {
                ("started_at", _) => Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(i64::MAX)]).with_timezone("UTC"),
                ),
                (_, DataType::Utf8) => Arc::new(StringArray::from(vec![Some("x")])),
                (_, DataType::Int64) => Arc::new(Int64Array::from(vec![Some(1)])),
                (_, DataType::Date32) => Arc::new(Date32Array::from(vec![Some(20_000)])),
                (_, DataType::Timestamp(_, _)) => Arc::new(
                    TimestampMicrosecondArray::from(vec![None::<i64>]).with_timezone("UTC"),
                ),
                (_, other) => panic!("{other}"),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema, columns).unwrap_or_else(|e| panic!("{e}"));
    let error = Session::from_batch(&batch).map(|rows| rows[0].started_at);
    assert!(
        error
            .as_ref()
            .is_err_and(|e| e.to_string().contains("started_at")),
        "{error:?}"
    );
}
