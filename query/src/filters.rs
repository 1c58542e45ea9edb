//! `--since`, `--until`, `--user`, `--target`, `--account`: filters that apply to any statement.
//!
//! They are not spliced into the SQL. Each lake table is registered as a view of itself with the
//! filters it can take, so `select ... from sessions s join commands c ...` is filtered on both
//! sides, in subqueries and CTEs alike, and the statement stays as the user wrote it. A time
//! filter also bounds the `date` partition column, so whole days are skipped without opening
//! their files; the other filters reach the Parquet reader as predicates, where row-group
//! statistics skip the rest.
//!
//! Which column each filter reads, per table:
//!
//! | table | time | user | target | account |
//! |---|---|---|---|---|
//! | commands, alerts | `time` | `user` | `target` | `account` |
//! | sessions | `started_at` | `user` | `target` | `account` |
//! | cloudtrail | `time` | `user` | `request` or `resources` naming it | `account` |
//! | host_events | `time` | `user` | `target` or `host` | (none: refused) |
//! | rejects, positions | `time` | (none: refused) | (none: refused) | (none: refused) |
//!
//! A filter a table cannot take makes a statement that reads that table fail with a message
//! that says so, rather than answer unfiltered.

use std::sync::Arc;

use auditq_model::{Table, Timestamp};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit};

use crate::QueryError;

/// The filters of one command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Rows at or after this time.
    pub since: Option<Timestamp>,
    /// Rows before this time.
    pub until: Option<Timestamp>,
    /// The principal's short name (`alice`, `carol@example.com`); `%` is a wildcard.
    pub user: Option<String>,
    /// Instance or managed-node id; `%` is a wildcard.
    pub target: Option<String>,
    /// AWS account id.
    pub account: Option<String>,
}

impl Filters {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// The filter expression for a table, or an error naming the filter it cannot take.
    pub fn expr_for(&self, table: Table) -> Result<Option<Expr>, String> {
        let mut parts = Vec::new();
        let time_column = match table {
            Table::Sessions => "started_at",
            _ => "time",
        };
        if let Some(since) = self.since {
            parts.push(col(time_column).gt_eq(timestamp(since)));
            parts.push(col("date").gt_eq(date(since.date_naive())));
        }
        if let Some(until) = self.until {
            parts.push(col(time_column).lt(timestamp(until)));
            // `until` is exclusive: a midnight bound excludes its whole day.
            let last_day = (until - Duration::microseconds(1)).date_naive();
            parts.push(col("date").lt_eq(date(last_day)));
        }
        let refuse = |filter: &str| {
            Err(format!(
                "--{filter} does not apply to table {}",
                table.name()
            ))
        };
        if let Some(user) = &self.user {
            match table {
                Table::Rejects | Table::Positions | Table::Names | Table::AccessLog => {
                    return refuse("user");
                }
                _ => parts.push(matches("user", user)),
            }
        }
        if let Some(target) = &self.target {
            match table {
                Table::Commands | Table::Sessions | Table::Alerts => {
                    parts.push(matches("target", target))
                }
                Table::HostEvents => {
                    parts.push(matches("target", target).or(matches("host", target)))
                }
                Table::Cloudtrail => {
                    let quoted = format!("%\"{target}\"%");
                    parts.push(
                        col("request")
                            .like(lit(quoted.clone()))
                            .or(col("resources").like(lit(quoted))),
                    )
                }
                Table::Names => parts.push(matches("key", target)),
                Table::Rejects | Table::Positions | Table::AccessLog => return refuse("target"),
            }
        }
        if let Some(account) = &self.account {
            match table {
                Table::HostEvents | Table::Rejects | Table::Positions | Table::AccessLog => {
                    return refuse("account");
                }
                _ => parts.push(matches("account", account)),
            }
        }
        Ok(parts.into_iter().reduce(Expr::and))
    }

    /// Wraps a table's provider in a view with this table's filters.
    pub fn apply(
        &self,
        table: Table,
        provider: Arc<dyn TableProvider>,
    ) -> Result<Arc<dyn TableProvider>, QueryError> {
        let filter = match self.expr_for(table) {
            Ok(Some(filter)) => filter,
            Ok(None) => return Ok(provider),
            // Fails when (and only when) a statement reads the table.
            Err(message) => {
                return Ok(Arc::new(Refused {
                    message,
                    schema: crate::scan::sql_schema(table),
                }));
            }
        };
        let plan = LogicalPlanBuilder::scan(table.name(), provider_as_source(provider), None)
            .and_then(|b| b.filter(filter))
            .and_then(|b| b.build())
            .map_err(QueryError::Execution)?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

fn matches(column: &str, value: &str) -> Expr {
    if value.contains('%') {
        col(column).like(lit(value.to_string()))
    } else {
        col(column).eq(lit(value.to_string()))
    }
}

fn timestamp(time: Timestamp) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(time.timestamp_micros()),
        Some("UTC".into()),
    ))
}

fn date(day: NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(auditq_model::date32(&day))))
}

/// A table that refuses to be read, saying why.
#[derive(Debug)]
struct Refused {
    message: String,
    schema: arrow::datatypes::SchemaRef,
}

#[async_trait::async_trait]
impl TableProvider for Refused {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::View
    }
    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Err(datafusion::error::DataFusionError::Plan(
            self.message.clone(),
        ))
    }
}

/// Reads a `--since`/`--until` value: a duration back from `now` (`30m`, `12h`, `7d`, `2w`), a
/// date (`2026-10-01`, midnight UTC), or an RFC 3339 time. `end_of_day` makes a plain date mean
/// the midnight after it, so `--until 2026-10-31` includes the 31st.
pub fn parse_time(text: &str, now: DateTime<Utc>, end_of_day: bool) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        return Ok(day.and_time(NaiveTime::MIN).and_utc());
    }
    if let Some(time) = auditq_ingest::time::parse_rfc3339(text) {
        return Ok(time);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad_time(text))?;
    let span = match unit {
        "m" | "min" => Duration::try_minutes(number),
        "h" => Duration::try_hours(number),
        "d" => Duration::try_days(number),
        "w" => Duration::try_weeks(number),
        _ => None,
    }
    .ok_or_else(|| bad_time(text))?;
    now.checked_sub_signed(span).ok_or_else(|| bad_time(text))
}

fn bad_time(text: &str) -> String {
    format!("{text:?} is not a time: give 30m, 12h, 7d, 2w, a date (2026-10-01) or RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        auditq_ingest::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn times_relative_absolute_and_dates() {
        let now = at("2026-11-24T12:00:00Z");
        assert_eq!(parse_time("7d", now, false), Ok(at("2026-11-17T12:00:00Z")));
        assert_eq!(
            parse_time("12h", now, false),
            Ok(at("2026-11-24T00:00:00Z"))
        );
        assert_eq!(parse_time("2w", now, false), Ok(at("2026-11-10T12:00:00Z")));
        assert_eq!(
            parse_time("30m", now, false),
            Ok(at("2026-11-24T11:30:00Z"))
        );
        assert_eq!(
            parse_time("2026-10-01", now, false),
            Ok(at("2026-10-01T00:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-10-31", now, true),
            Ok(at("2026-11-01T00:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-10-05T09:12:00+02:00", now, true),
            Ok(at("2026-10-05T07:12:00Z"))
        );
        for bad in ["", "7", "7y", "d", "yesterday", "99999999999999d"] {
            assert!(parse_time(bad, now, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_table_takes_time_and_refuses_what_it_cannot_filter() {
        let filters = Filters {
            since: Some(at("2026-10-06T00:00:00Z")),
            until: Some(at("2026-10-07T00:00:00Z")),
            ..Filters::default()
        };
        for table in Table::ALL {
            let expr = filters.expr_for(table).unwrap_or_else(|e| panic!("{e}"));
            let text = expr.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains("date >= Date32(\"2026-10-06\")"), "{text}");
            // The exclusive midnight bound keeps the 6th and not the 7th.
            assert!(text.contains("date <= Date32(\"2026-10-06\")"), "{text}");
        }
        let user = Filters {
            user: Some("alice".into()),
            account: Some("111122223333".into()),
            ..Filters::default()
        };
        assert!(user.expr_for(Table::Sessions).is_ok());
        assert_eq!(
            user.expr_for(Table::Rejects).err().as_deref(),
            Some("--user does not apply to table rejects")
        );
        assert_eq!(
            user.expr_for(Table::HostEvents).err().as_deref(),
            Some("--account does not apply to table host_events")
        );
        let wildcard = Filters {
            target: Some("i-0a%".into()),
            ..Filters::default()
        };
        let text = wildcard
            .expr_for(Table::Commands)
            .ok()
            .flatten()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.contains("LIKE"), "{text}");
    }
}
