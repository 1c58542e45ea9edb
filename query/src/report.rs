//! `auditq report`: a self-contained HTML evidence document for an ISMS / ISO 27001 review.
//!
//! Every table in it is the answer to a SQL statement that is printed beside it, with the period
//! written into the statement, so an auditor can run it again (`auditq "..."`, or in Athena over
//! the same Delta tables) and get the same rows. The page has no script and loads nothing: styles
//! are inline and the timeline is inline SVG, so it opens offline and prints to PDF as it is.
//! Everything taken from logs is HTML-escaped: a command line is attacker-controlled text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arrow::record_batch::RecordBatch;
use auditq_ingest::time::parse_rfc3339;
use auditq_model::Timestamp;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use datafusion::prelude::SessionContext;
use serde_json::Value;

use crate::{QueryError, count_of, rows_as_json, run_sql};

/// The period a report covers: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    /// First instant covered.
    pub from: Timestamp,
    /// First instant after the period.
    pub to: Timestamp,
}

impl Period {
    /// The predicate selecting the period on a time column, with the `date` partition bounds
    /// that let readers skip other days.
    pub fn clause(&self, column: &str) -> String {
        let last_day = (self.to - Duration::microseconds(1)).date_naive();
        format!(
            "{column} >= TIMESTAMP '{}' AND {column} < TIMESTAMP '{}' AND date BETWEEN DATE '{}' AND DATE '{}'",
            rfc3339(self.from),
            rfc3339(self.to),
            self.from.date_naive(),
            last_day
        )
    }
}

fn rfc3339(time: Timestamp) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Commands that exercise privilege: sudo, su, doas, pkexec, or anything run as root.
pub const PRIVILEGED: &str =
    "(regexp_like(cmd, '^(sudo|su|doas|pkexec|runuser)( |$)') OR run_as = 'root')";

/// One section: a heading, why it matters, and the statement behind it.
struct Section {
    id: &'static str,
    title: &'static str,
    about: &'static str,
    sql: String,
}

fn sections(period: &Period) -> Vec<Section> {
    let sessions = period.clause("started_at");
    let time = period.clause("time");
    vec![
        Section {
            id: "per-user",
            title: "Access per user",
            about: "Each principal that opened a session in the period: how many, on how many instances, how many commands, first and last access.",
            sql: format!(
                "SELECT user, count(*) AS sessions, count(DISTINCT target) AS instances, sum(commands) AS commands, \
                 sum(CASE WHEN logged = 'none' THEN 1 ELSE 0 END) AS unrecorded, min(started_at) AS first_access, max(started_at) AS last_access \
                 FROM sessions WHERE {sessions} GROUP BY user ORDER BY sessions DESC, user"
            ),
        },
        Section {
            id: "per-instance",
            title: "Access per instance",
            about: "Each instance or managed node that was accessed: by how many people, in how many sessions, and through which kinds of session.",
            sql: format!(
                "SELECT target, array_to_string(array_sort(array_agg(DISTINCT target_name)), ', ') AS names, \
                 array_to_string(array_sort(array_agg(DISTINCT environment)), ', ') AS environment, account, region, count(DISTINCT user) AS users, count(*) AS sessions, sum(commands) AS commands, \
                 array_to_string(array_sort(array_agg(DISTINCT kind)), ', ') AS kinds, max(started_at) AS last_access \
                 FROM sessions WHERE {sessions} GROUP BY target, account, region ORDER BY sessions DESC, target"
            ),
        },
        Section {
            id: "sessions",
            title: "Sessions",
            about: "Every session: who opened it, from where, on which instance, for how long, and what recorded it.",
            sql: format!(
                "SELECT started_at, ended_at, duration_seconds, user, source_ip, target, target_name, environment, account, kind, run_as, logged, commands, session_id \
                 FROM sessions WHERE {sessions} ORDER BY started_at"
            ),
        },
        Section {
            id: "privileged",
            title: "Privileged commands",
            about: "Commands run through sudo, su, doas, pkexec or runuser, or as root, with the session they belong to.",
            sql: format!(
                "SELECT time, user, target, target_name, run_as, cmd, session_id FROM commands WHERE {time} AND {PRIVILEGED} ORDER BY time, session_id, seq"
            ),
        },
        Section {
            id: "alerts",
            title: "Alerts and their handling",
            about: "Every rule match in the period. Delivered: published to the alert topic (subscribers were told at detection time). Not delivered: recorded only (no alert sink configured), or kept in the outbox until the topic accepted it.",
            sql: format!(
                "SELECT time, detected_at, severity, rule_id, user, target, target_name, coalesce(cmd, event_name) AS what, \
                 CASE WHEN published THEN 'delivered' ELSE 'not delivered' END AS handling, session_id \
                 FROM alerts WHERE {time} ORDER BY time, rule_id"
            ),
        },
        Section {
            id: "alerts-by-rule",
            title: "Alerts by rule",
            about: "How often each rule fired, and how many of its alerts reached subscribers.",
            sql: format!(
                "SELECT rule_id, severity, count(*) AS alerts, sum(CASE WHEN published THEN 1 ELSE 0 END) AS delivered \
                 FROM alerts WHERE {time} GROUP BY rule_id, severity ORDER BY alerts DESC, rule_id"
            ),
        },
        Section {
            id: "unrecorded",
            title: "Sessions without a transcript",
            about: "Sessions whose commands no transcript or stream recorded. host_only: SSH through Session Manager or straight to a host, known from the host's own logs (its sudo and auditd commands are among the privileged commands above); pending: a recording may still arrive; none: no record at all (port forwarding, a host whose logs are not shipped, or logging that failed), so what was done in them is unknown.",
            sql: format!(
                "SELECT started_at, user, source_ip, target, kind, document, logged, session_id \
                 FROM sessions WHERE {sessions} AND logged NOT IN ('transcript', 'stream') ORDER BY started_at"
            ),
        },
        Section {
            id: "console-no-mfa",
            title: "Console logins without MFA",
            about: "AWS console sign-ins (CloudTrail ConsoleLogin) that did not use multi-factor authentication, successful or not.",
            sql: format!(
                "SELECT time, user, principal_type, account, source_ip, CASE WHEN response LIKE '%\"ConsoleLogin\":\"Success\"%' THEN 'Success' ELSE coalesce(error_message, 'Failure') END AS outcome \
                 FROM cloudtrail WHERE {time} AND event_name = 'ConsoleLogin' AND NOT coalesce(mfa, false) ORDER BY time"
            ),
        },
        Section {
            id: "names",
            title: "Names in force",
            about: "What each instance and account was called during the period (EC2 Name and Environment tags, account aliases, IAM Identity Center users), from the CloudTrail calls that set them and from look-ups (auditq names): each row holds from valid_from until valid_to. The tables above show the names in force at each event's time.",
            sql: format!(
                "SELECT kind, key, attribute, value, time AS valid_from, valid_to, source FROM names \
                 WHERE time < TIMESTAMP '{to}' AND (valid_to IS NULL OR valid_to > TIMESTAMP '{from}') ORDER BY kind, key, attribute, time",
                from = rfc3339(period.from),
                to = rfc3339(period.to),
            ),
        },
        Section {
            id: "completeness",
            title: "Records that could not be read",
            about: "Input auditq set aside in the period, by reason. Nothing is dropped silently: a record here is kept whole in the rejects table.",
            sql: format!(
                "SELECT reason, format, count(*) AS records, min(time) AS first, max(time) AS last FROM rejects WHERE {time} GROUP BY reason, format ORDER BY records DESC"
            ),
        },
    ]
}

/// Builds the report for a period over a lake's tables.
pub async fn build(
    ctx: &SessionContext,
    period: &Period,
    lake: &str,
    scope: &str,
    generated: DateTime<Utc>,
) -> Result<String, QueryError> {
    let mut answers = Vec::new();
    for section in sections(period) {
        let answer = match run_sql(ctx, &section.sql).await {
            Ok(batches) => Ok(batches),
            // A table the filters cannot narrow (`--account` on rejects): said in its place.
            Err(QueryError::User { message }) if message.contains("does not apply to table") => {
                Err(message)
            }
            Err(e) => {
                return Err(QueryError::User {
                    message: format!("report section {:?}: {e}", section.title),
                });
            }
        };
        answers.push((section, answer));
    }
    let count = |sql: String| async move { run_sql(ctx, &sql).await.map(|b| count_of(&b)) };
    let sessions = period.clause("started_at");
    let time = period.clause("time");
    let figures = [
        ("sessions", count(format!("SELECT count(*) FROM sessions WHERE {sessions}")).await?),
        ("users", count(format!("SELECT count(DISTINCT user) FROM sessions WHERE {sessions}")).await?),
        ("instances", count(format!("SELECT count(DISTINCT target) FROM sessions WHERE {sessions}")).await?),
        ("commands", count(format!("SELECT count(*) FROM commands WHERE {time}")).await?),
        ("privileged commands", count(format!("SELECT count(*) FROM commands WHERE {time} AND {PRIVILEGED}")).await?),
        ("alerts", count(format!("SELECT count(*) FROM alerts WHERE {time}")).await?),
        (
            "sessions without a transcript",
            count(format!("SELECT count(*) FROM sessions WHERE {sessions} AND logged NOT IN ('transcript', 'stream')")).await?,
        ),
        (
            "console logins without MFA",
            count(format!("SELECT count(*) FROM cloudtrail WHERE {time} AND event_name = 'ConsoleLogin' AND NOT coalesce(mfa, false)")).await?,
        ),
    ];
    let timeline_sql = format!(
        "SELECT user, target, started_at, ended_at, kind, logged, session_id FROM sessions WHERE {sessions} ORDER BY user, started_at"
    );
    let timeline_rows = rows_as_json(&run_sql(ctx, &timeline_sql).await?)?;

    let mut html = String::with_capacity(64 * 1024);
    let title = format!(
        "Privileged access evidence, {} to {}",
        period.from.date_naive(),
        (period.to - Duration::microseconds(1)).date_naive()
    );
    let _ = writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(
        html,
        "<h1>{}</h1>\n<p class=\"meta\">Period: <b>{}</b> to <b>{}</b> (UTC, end exclusive). Lake: <code>{}</code>. \
         Generated {} by auditq {}. Each table below is the answer to the SQL statement printed with it; \
         run it with <code>auditq --data {} {}\"STATEMENT\"</code> to reproduce it.</p>\n",
        escape(&title),
        rfc3339(period.from),
        rfc3339(period.to),
        escape(lake),
        rfc3339(generated),
        env!("CARGO_PKG_VERSION"),
        escape(lake),
        escape(scope),
    );
    if !scope.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"meta\"><b>Narrowed to</b> <code>{}</code>: every table below is seen through these filters.</p>",
            escape(scope.trim())
        );
    }
    html.push_str("<section id=\"summary\"><h2>Summary</h2><dl class=\"figures\">");
    for (name, value) in figures {
        let _ = write!(html, "<div><dt>{}</dt><dd>{value}</dd></div>", escape(name));
    }
    html.push_str(
        "</dl></section>\n<nav><b>Contents:</b> <a href=\"#timeline\">Session timeline</a>",
    );
    for (section, _) in &answers {
        let _ = write!(
            html,
            " · <a href=\"#{}\">{}</a>",
            section.id,
            escape(section.title)
        );
    }
    html.push_str(" · <a href=\"#queries\">Queries</a></nav>\n");

    html.push_str("<section id=\"timeline\"><h2>Session timeline</h2><p>One row per user; each bar is a session, from start to end, coloured by what recorded it.</p>\n");
    html.push_str(&timeline_svg(&timeline_rows, period));
    let _ = writeln!(
        html,
        "<details><summary>Query</summary><pre>{}</pre></details></section>",
        escape(&timeline_sql)
    );

    for (section, answer) in &answers {
        let body = match answer {
            Ok(batches) => html_table(batches)?,
            Err(message) => format!(
                "<p class=\"empty\">Not shown: {} (run without the filters for this section).</p>\n",
                escape(message.trim_start_matches("Error during planning: "))
            ),
        };
        let _ = writeln!(
            html,
            "<section id=\"{}\"><h2>{}</h2><p>{}</p>\n{body}<details><summary>Query</summary><pre>{}</pre></details></section>",
            section.id,
            escape(section.title),
            escape(section.about),
            escape(&section.sql)
        );
    }
    html.push_str("<section id=\"queries\"><h2>Queries</h2><p>Every statement behind this report, in order.</p><ol>");
    let _ = write!(html, "<li><pre>{}</pre></li>", escape(&timeline_sql));
    for (section, _) in &answers {
        let _ = write!(
            html,
            "<li><b>{}</b><pre>{}</pre></li>",
            escape(section.title),
            escape(&section.sql)
        );
    }
    html.push_str("</ol></section>\n</body></html>\n");
    Ok(html)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1b1f24}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:12px;margin:.5em 0}th,td{border:1px solid #ccd;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#eef1f5}td.n{text-align:right}code,pre,td.c{font-family:ui-monospace,monospace}pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.5em}\
.wide{overflow-x:auto;max-width:100%}svg{max-width:100%;height:auto}.meta{color:#444}.figures{display:flex;flex-wrap:wrap;gap:1em}.figures div{border:1px solid #ccd;padding:.5em 1em;min-width:9em}\
dt{font-size:12px;color:#555}dd{margin:0;font-size:1.6em;font-weight:600}.empty{color:#666;font-style:italic}\
@media print{details{display:block}section{break-inside:avoid-page}.wide{overflow:visible}}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A result as an HTML table (times as RFC 3339, numbers right-aligned).
fn html_table(batches: &[RecordBatch]) -> Result<String, QueryError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok("<p class=\"empty\">None in this period.</p>\n".to_string());
    }
    // A table wider than the page scrolls inside its section, not the page.
    let mut html = String::from("<div class=\"wide\"><table><thead><tr>");
    let schema = batches[0].schema();
    for field in schema.fields() {
        let _ = write!(html, "<th>{}</th>", escape(field.name()));
    }
    html.push_str("</tr></thead><tbody>\n");
    for row in crate::text_rows(batches, "")? {
        html.push_str("<tr>");
        for (value, field) in row.iter().zip(schema.fields()) {
            let class = if field.data_type().is_numeric() {
                " class=\"n\""
            } else if matches!(field.name().as_str(), "cmd" | "what") {
                " class=\"c\""
            } else {
                ""
            };
            let _ = write!(html, "<td{class}>{}</td>", escape(value));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table></div>\n");
    Ok(html)
}

/// The sessions as bars on a time axis, one row per user.
fn timeline_svg(rows: &[serde_json::Map<String, Value>], period: &Period) -> String {
    const LABEL: f64 = 190.0;
    const WIDTH: f64 = 1000.0;
    const ROW: f64 = 22.0;
    const AXIS: f64 = 28.0;
    let time = |row: &serde_json::Map<String, Value>, key: &str| {
        row.get(key).and_then(Value::as_str).and_then(parse_rfc3339)
    };
    let mut by_user: BTreeMap<String, Vec<&serde_json::Map<String, Value>>> = BTreeMap::new();
    for row in rows {
        let user = row
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("(unknown)");
        by_user.entry(user.to_string()).or_default().push(row);
    }
    if by_user.is_empty() {
        return "<p class=\"empty\">No sessions in this period.</p>\n".to_string();
    }
    let span = (period.to - period.from).num_seconds().max(1) as f64;
    let x = |t: Timestamp| {
        LABEL
            + (t - period.from).num_seconds().clamp(0, span as i64) as f64 / span
                * (WIDTH - LABEL - 10.0)
    };
    let height = AXIS + ROW * by_user.len() as f64 + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"Session timeline\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    // Day ticks: at most about 12 labels.
    let days = (period.to - period.from).num_days().max(1);
    let step = (days as f64 / 12.0).ceil().max(1.0) as i64;
    let mut day = period.from;
    while day < period.to {
        let px = x(day);
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{AXIS}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{px:.1}\" y=\"{:.1}\" fill=\"#555\">{}</text>",
            height - 30.0,
            AXIS - 8.0,
            day.format("%m-%d")
        );
        day += Duration::days(step);
    }
    for (i, (user, sessions)) in by_user.iter().enumerate() {
        let y = AXIS + ROW * i as f64;
        let _ = writeln!(
            svg,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + ROW * 0.65,
            escape(user)
        );
        for row in sessions {
            let Some(start) = time(row, "started_at") else {
                continue;
            };
            let end = time(row, "ended_at").unwrap_or(start);
            let (x0, x1) = (x(start), x(end));
            let logged = row.get("logged").and_then(Value::as_str).unwrap_or("none");
            let colour = match logged {
                "transcript" | "stream" => "#2f6fbd",
                "host_only" => "#d08a00",
                _ => "#c62828",
            };
            let text = |key: &str| row.get(key).and_then(Value::as_str).unwrap_or("");
            let _ = writeln!(
                svg,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} on {} ({}, {}) {} to {}</title></rect>",
                y + 4.0,
                (x1 - x0).max(3.0),
                ROW - 8.0,
                escape(text("session_id")),
                escape(text("target")),
                escape(text("kind")),
                escape(logged),
                rfc3339(start),
                rfc3339(end)
            );
        }
    }
    let legend_y = height - 12.0;
    for (n, (label, colour)) in [
        ("recorded (transcript or stream)", "#2f6fbd"),
        ("host logs only", "#d08a00"),
        ("not recorded", "#c62828"),
    ]
    .iter()
    .enumerate()
    {
        let lx = LABEL + n as f64 * 230.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{lx}\" y=\"{:.1}\" width=\"12\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{legend_y}\">{label}</text>",
            legend_y - 9.0,
            lx + 16.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_attributes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("a\u{1b}[31mb"), "a\u{fffd}[31mb");
    }

    #[test]
    fn period_clause_bounds_time_and_partitions() {
        let at = |t: &str| parse_rfc3339(t).unwrap_or_else(|| panic!("{t}"));
        let period = Period {
            from: at("2026-10-01T00:00:00Z"),
            to: at("2026-11-01T00:00:00Z"),
        };
        assert_eq!(
            period.clause("time"),
            "time >= TIMESTAMP '2026-10-01T00:00:00Z' AND time < TIMESTAMP '2026-11-01T00:00:00Z' \
             AND date BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'"
        );
    }
}
