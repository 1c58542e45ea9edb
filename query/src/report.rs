//! `auditq report`: a self-contained HTML evidence document for an ISMS / ISO 27001 review.
//!
//! Every table in it is the answer to a SQL statement that is printed beside it, with the period
//! written into the statement, so an auditor can run it again (`auditq "..."`, or in Athena over
//! the same Delta tables) and get the same rows. The page loads nothing: styles are inline and
//! the timeline is inline SVG, so it opens offline and prints to PDF as it is. It has no script
//! unless it carries replays (`--replays`, and every evidence bundle's report): then a small
//! inline player replays each recorded session in the browser.
//! Everything taken from logs is HTML-escaped: a command line is attacker-controlled text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use arrow::record_batch::RecordBatch;
use auditq_ingest::time::parse_rfc3339;
use auditq_model::Timestamp;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use datafusion::prelude::SessionContext;
use serde_json::Value;

use crate::coverage::{self, Coverage, Finding};
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
        self.clause_on("", column, 0)
    }

    /// [`Self::clause`] on `column` of the table named `alias` in a join (none when empty), its
    /// end widened by `days_after` for rows that follow what began in the period (a
    /// `TerminateSession`).
    pub fn clause_on(&self, alias: &str, column: &str, days_after: i64) -> String {
        let to = self.to + Duration::days(days_after);
        let last_day = (to - Duration::microseconds(1)).date_naive();
        let p = if alias.is_empty() {
            String::new()
        } else {
            format!("{alias}.")
        };
        format!(
            "{p}{column} >= TIMESTAMP '{}' AND {p}{column} < TIMESTAMP '{}' AND {p}date BETWEEN DATE '{}' AND DATE '{}'",
            rfc3339(self.from),
            rfc3339(to),
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

/// The controls the session timeline evidences.
const TIMELINE_CONTROLS: &[&str] = &["A.8.15"];

/// The controls the completeness section evidences.
const COVERAGE_CONTROLS: &[&str] = &["A.8.15", "A.8.16"];

/// One section: a heading, why it matters, and the statement behind it.
struct Section {
    id: &'static str,
    title: &'static str,
    about: &'static str,
    /// The ISO/IEC 27001:2022 Annex A controls it evidences.
    controls: &'static [&'static str],
    sql: String,
}

fn sections(period: &Period, control: Option<&str>) -> Vec<Section> {
    let sessions = period.clause("started_at");
    let time = period.clause("time");
    // Alerts carry their rule's controls (`A.8.2, A.8.16`): one control, not its prefix.
    let alert_control = control
        .map(|c| {
            format!(
                " AND regexp_like(controls, '(^|, ){}(,|$)')",
                c.replace('.', "\\.")
            )
        })
        .unwrap_or_default();
    vec![
        Section {
            id: "per-user",
            title: "Access per user",
            about: "Each principal that opened a session in the period: how many, on how many instances, how many commands, first and last access.",
            controls: &["A.5.15", "A.5.18"],
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
            controls: &["A.5.9", "A.5.15"],
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
            controls: &["A.5.15", "A.8.15"],
            sql: format!(
                "SELECT started_at, ended_at, duration_seconds, user, source_ip, target, target_name, environment, account, kind, run_as, logged, commands, session_id \
                 FROM sessions WHERE {sessions} ORDER BY started_at"
            ),
        },
        Section {
            id: "privileged",
            title: "Privileged commands",
            about: "Commands run through sudo, su, doas, pkexec or runuser, or as root, with the session they belong to.",
            controls: &["A.8.2"],
            sql: format!(
                "SELECT time, user, target, target_name, run_as, cmd, session_id FROM commands WHERE {time} AND {PRIVILEGED} ORDER BY time, session_id, seq"
            ),
        },
        Section {
            id: "alerts",
            title: "Alerts and their handling",
            about: "Every rule match in the period. Delivered: published to the alert topic (subscribers were told at detection time). Not delivered: recorded only (no alert sink configured), or kept in the outbox until the topic accepted it.",
            controls: &["A.8.16"],
            sql: format!(
                "SELECT time, detected_at, severity, rule_id, user, target, target_name, coalesce(cmd, event_name) AS what, \
                 CASE WHEN published THEN 'delivered' ELSE 'not delivered' END AS handling, controls, session_id \
                 FROM alerts WHERE {time}{alert_control} ORDER BY time, rule_id"
            ),
        },
        Section {
            id: "alerts-by-rule",
            title: "Alerts by rule",
            about: "How often each rule fired, and how many of its alerts reached subscribers.",
            controls: &["A.8.16"],
            sql: format!(
                "SELECT rule_id, severity, controls, count(*) AS alerts, sum(CASE WHEN published THEN 1 ELSE 0 END) AS delivered \
                 FROM alerts WHERE {time}{alert_control} GROUP BY rule_id, severity, controls ORDER BY alerts DESC, rule_id"
            ),
        },
        Section {
            id: "unrecorded",
            title: "Sessions without a transcript",
            about: "Sessions whose commands no transcript or stream recorded. host_only: SSH through Session Manager or straight to a host, known from the host's own logs (its sudo and auditd commands are among the privileged commands above); pending: a recording may still arrive; none: no record at all (port forwarding, a host whose logs are not shipped, or logging that failed), so what was done in them is unknown.",
            controls: &["A.8.15"],
            sql: format!(
                "SELECT started_at, user, source_ip, target, kind, document, logged, session_id \
                 FROM sessions WHERE {sessions} AND logged NOT IN ('transcript', 'stream') ORDER BY started_at"
            ),
        },
        Section {
            id: "console-no-mfa",
            title: "Console logins without MFA",
            about: "AWS console sign-ins (CloudTrail ConsoleLogin) that did not use multi-factor authentication, successful or not.",
            controls: &["A.8.5"],
            sql: format!(
                "SELECT time, user, principal_type, account, source_ip, CASE WHEN response LIKE '%\"ConsoleLogin\":\"Success\"%' THEN 'Success' ELSE coalesce(error_message, 'Failure') END AS outcome \
                 FROM cloudtrail WHERE {time} AND event_name = 'ConsoleLogin' AND NOT coalesce(mfa, false) ORDER BY time"
            ),
        },
        Section {
            id: "names",
            title: "Names in force",
            about: "What each instance and account was called during the period (EC2 Name and Environment tags, account aliases, IAM Identity Center users), from the CloudTrail calls that set them and from look-ups (auditq names): each row holds from valid_from until valid_to. The tables above show the names in force at each event's time.",
            controls: &["A.5.9"],
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
            controls: &["A.8.15"],
            sql: format!(
                "SELECT reason, format, count(*) AS records, min(time) AS first, max(time) AS last FROM rejects WHERE {time} GROUP BY reason, format ORDER BY records DESC"
            ),
        },
    ]
}

/// A session's recording, for the report's player.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recording {
    /// Who.
    pub user: Option<String>,
    /// Where.
    pub target: Option<String>,
    /// When it began (RFC 3339).
    pub started: String,
    /// Whether its lines carry their own times (a stream); a transcript's all show at once.
    pub timed: bool,
    /// Each line, with its milliseconds from the first.
    pub lines: Vec<(i64, String)>,
}

/// What a report holds besides its tables.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    /// What `auditq coverage` found over the period: a section of its own.
    pub coverage: Option<&'a Coverage>,
    /// Only the sections, alerts and findings that evidence this Annex A control.
    pub control: Option<String>,
    /// Sessions whose recordings the page can replay, by session id (or why it cannot).
    pub recordings: BTreeMap<String, Result<Recording, String>>,
    /// The access log's statement, when the lake has one: a "Who looked" section.
    pub access_sql: Option<String>,
}

/// Builds the report for a period over a lake's tables.
pub async fn build(
    ctx: &SessionContext,
    period: &Period,
    lake: &str,
    scope: &str,
    generated: DateTime<Utc>,
    extras: &Extras<'_>,
) -> Result<String, QueryError> {
    let control = extras.control.as_deref();
    let keep = |controls: &[&str]| control.is_none_or(|c| controls.contains(&c));
    let mut answers = Vec::new();
    let mut all = sections(period, control);
    if let Some(sql) = &extras.access_sql {
        all.push(Section {
            id: "access",
            title: "Who looked",
            about: "Every query, replay, report and evidence export of this lake in the period: who by operating-system user and host (and AWS principal where known), what, and how many rows. Access to audit logs is itself a control: these rows are under the same signed digests as the rest.",
            controls: &["A.8.15", "A.5.15"],
            sql: sql.clone(),
        });
    }
    for section in all.into_iter().filter(|s| keep(s.controls)) {
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
    let playable: BTreeSet<&str> = extras
        .recordings
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id.as_str())
        .collect();

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
    if let Some(control) = control {
        let _ = writeln!(
            html,
            "<p class=\"meta\"><b>Filtered to ISO/IEC 27001:2022 control {}</b>{}: only the sections, alerts and findings that evidence it.</p>",
            escape(control),
            auditq_rules::controls::name(control)
                .map(|n| format!(" ({})", escape(n)))
                .unwrap_or_default()
        );
    }
    html.push_str("<section id=\"summary\"><h2>Summary</h2><dl class=\"figures\">");
    for (name, value) in figures {
        let _ = write!(html, "<div><dt>{}</dt><dd>{value}</dd></div>", escape(name));
    }
    let findings: Vec<&Finding> = extras
        .coverage
        .map(|c| {
            c.findings
                .iter()
                .filter(|f| {
                    control.is_none_or(|ctl| {
                        c.checks
                            .iter()
                            .find(|k| {
                                k.kind == f.kind
                                    || (f.kind == "cloudtrail_sparse" && k.kind == "cloudtrail_gap")
                            })
                            .is_some_and(|k| k.controls.contains(&ctl))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if extras.coverage.is_some() {
        let serious = findings
            .iter()
            .filter(|f| coverage::rank(&f.severity) >= 2)
            .count();
        let _ = write!(
            html,
            "<div><dt>coverage findings (medium or higher)</dt><dd>{serious}</dd></div>"
        );
    }
    html.push_str("</dl></section>\n<nav><b>Contents:</b> ");
    let timeline_shown = keep(TIMELINE_CONTROLS);
    let coverage_shown = extras.coverage.filter(|_| keep(COVERAGE_CONTROLS));
    if timeline_shown {
        html.push_str("<a href=\"#timeline\">Session timeline</a>");
    }
    if coverage_shown.is_some() {
        html.push_str(" · <a href=\"#coverage\">Completeness of the trail</a>");
    }
    for (section, _) in &answers {
        let _ = write!(
            html,
            " · <a href=\"#{}\">{}</a>",
            section.id,
            escape(section.title)
        );
    }
    if !extras.recordings.is_empty() {
        html.push_str(" · <a href=\"#player\">Replays</a>");
    }
    html.push_str(" · <a href=\"#controls\">ISO 27001 controls</a> · <a href=\"#queries\">Queries</a></nav>\n");

    if timeline_shown {
        let _ = writeln!(
            html,
            "<section id=\"timeline\"><h2>Session timeline {}</h2><p>One row per user; each bar is a session, from start to end, coloured by what recorded it.</p>",
            badges(TIMELINE_CONTROLS)
        );
        html.push_str(&timeline_svg(&timeline_rows, period));
        let _ = writeln!(
            html,
            "<details><summary>Query</summary><pre>{}</pre></details></section>",
            escape(&timeline_sql)
        );
    }
    if let Some(coverage) = coverage_shown {
        html.push_str(&coverage_html(coverage, &findings));
    }

    for (section, answer) in &answers {
        let body = match answer {
            Ok(batches) => html_table(batches, &playable)?,
            Err(message) => format!(
                "<p class=\"empty\">Not shown: {} (run without the filters for this section).</p>\n",
                escape(message.trim_start_matches("Error during planning: "))
            ),
        };
        let _ = writeln!(
            html,
            "<section id=\"{}\"><h2>{} {}</h2><p>{}</p>\n{body}<details><summary>Query</summary><pre>{}</pre></details></section>",
            section.id,
            escape(section.title),
            badges(section.controls),
            escape(section.about),
            escape(&section.sql)
        );
    }
    if !extras.recordings.is_empty() {
        html.push_str(&player_html(&extras.recordings));
    }
    html.push_str(&controls_html(
        &answers,
        coverage_shown.is_some(),
        timeline_shown,
    ));
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

/// The access log's rows of the period: who looked at the lake, and at what.
pub fn access_sql(period: &Period) -> String {
    format!(
        "SELECT time, os_user, host, principal_arn, action, what, rows, outcome FROM access_log WHERE {} ORDER BY time",
        period.clause("time")
    )
}

/// A control as the report names it: `a.8.2`, `8.2` and `A.8.2` are `A.8.2`.
pub fn control_name(text: &str) -> String {
    let text = text.trim();
    let bare = text
        .strip_prefix("A.")
        .or_else(|| text.strip_prefix("a."))
        .unwrap_or(text);
    format!("A.{bare}")
}

fn badges(controls: &[&str]) -> String {
    controls
        .iter()
        .map(|c| format!("<span class=\"ctl\">{}</span>", escape(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The coverage section: each finding, and the statement behind each kind.
fn coverage_html(coverage: &Coverage, findings: &[&Finding]) -> String {
    let mut html = format!(
        "<section id=\"coverage\"><h2>Completeness of the trail {}</h2>\
         <p>What should exist reconciled with what does (<code>auditq coverage</code>): sessions without their CloudTrail calls or recording, recordings cut short or with gaps or that arrived late, hours with no CloudTrail delivery, hosts whose logs went silent.</p>\n",
        badges(COVERAGE_CONTROLS)
    );
    for (kind, why) in &coverage.skipped {
        let _ = writeln!(
            html,
            "<p class=\"empty\">Not checked under these filters: {} ({}).</p>",
            escape(kind),
            escape(why.trim_start_matches("Error during planning: "))
        );
    }
    if findings.is_empty() {
        html.push_str("<p class=\"empty\">Nothing missing in this period.</p>\n");
    } else {
        html.push_str("<div class=\"wide\"><table><thead><tr><th>severity</th><th>kind</th><th>time</th><th>subject</th><th>detail</th></tr></thead><tbody>\n");
        for f in findings {
            let _ = writeln!(
                html,
                "<tr class=\"sev-{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"c\">{}</td><td>{}</td></tr>",
                escape(&f.severity),
                escape(&f.severity),
                escape(f.kind),
                escape(f.time.as_deref().unwrap_or("")),
                escape(&f.subject),
                escape(&f.detail)
            );
        }
        html.push_str("</tbody></table></div>\n");
    }
    html.push_str("<details><summary>How each kind is found</summary><dl>");
    for check in &coverage.checks {
        let _ = write!(
            html,
            "<dt><b>{}</b> ({}) {}</dt><dd><p>{}</p><pre>{}</pre></dd>",
            escape(check.kind),
            escape(check.severity),
            badges(check.controls),
            escape(check.about),
            escape(&check.sql)
        );
    }
    html.push_str("</dl></details></section>\n");
    html
}

/// The Annex A controls, each with the sections that evidence it.
fn controls_html(
    answers: &[(Section, Result<Vec<RecordBatch>, String>)],
    coverage: bool,
    timeline: bool,
) -> String {
    // Annex A order -> (control, [(section id, title)]).
    type Evidenced = (String, Vec<(String, String)>);
    let mut by_control: BTreeMap<(u32, u32), Evidenced> = BTreeMap::new();
    let mut add = |control: &str, id: &str, title: &str| {
        by_control
            .entry(auditq_rules::controls::order(control))
            .or_insert_with(|| (control.to_string(), Vec::new()))
            .1
            .push((id.to_string(), title.to_string()));
    };
    if timeline {
        for control in TIMELINE_CONTROLS {
            add(control, "timeline", "Session timeline");
        }
    }
    if coverage {
        for control in COVERAGE_CONTROLS {
            add(control, "coverage", "Completeness of the trail");
        }
    }
    for (section, _) in answers {
        for control in section.controls {
            add(control, section.id, section.title);
        }
    }
    let mut html = String::from(
        "<section id=\"controls\"><h2>ISO/IEC 27001:2022 controls</h2><p>The Annex A controls this report evidences, and where. Alerts carry their rule's controls (a rule's <code>iso27001.</code> tags, else its ATT&amp;CK tags; every rule evidences A.8.16). <code>auditq report --control A.8.2</code> keeps one.</p><div class=\"wide\"><table><thead><tr><th>control</th><th>name</th><th>evidenced by</th></tr></thead><tbody>\n",
    );
    for (control, sections) in by_control.values() {
        let links: Vec<String> = sections
            .iter()
            .map(|(id, title)| format!("<a href=\"#{id}\">{}</a>", escape(title)))
            .collect();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(control),
            escape(auditq_rules::controls::name(control).unwrap_or("")),
            links.join(", ")
        );
    }
    html.push_str("</tbody></table></div></section>\n");
    html
}

/// The replay player: the recordings as JSON, and a small script that plays one at its
/// recorded pace (pauses longer than 3 seconds shortened to 3), with pause and speed. Nothing is
/// fetched: the page plays offline. Without script the rest of the page reads as before.
fn player_html(recordings: &BTreeMap<String, Result<Recording, String>>) -> String {
    let playable: BTreeMap<&String, &Recording> = recordings
        .iter()
        .filter_map(|(id, r)| r.as_ref().ok().map(|r| (id, r)))
        .collect();
    // JSON inside a script element: `</` would end it.
    let data = serde_json::to_string(&playable)
        .unwrap_or_else(|_| "{}".to_string())
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--");
    let mut html = String::from(
        "<section id=\"player\"><h2>Replays <span class=\"ctl\">A.8.15</span></h2>\
         <p>Each recorded session as its user saw it, played at the recorded pace (pauses longer than 3 seconds shortened to 3; a transcript carries no times and shows at once). Choose one here, or follow a session id's link in the tables above.</p>\n\
         <div class=\"controls\"><select id=\"player-pick\" aria-label=\"session\">",
    );
    for (id, recording) in &playable {
        let _ = write!(
            html,
            "<option value=\"{}\">{} · {} on {}</option>",
            escape(id),
            escape(&recording.started),
            escape(recording.user.as_deref().unwrap_or("?")),
            escape(recording.target.as_deref().unwrap_or("?"))
        );
    }
    html.push_str(
        "</select> <button id=\"player-play\" type=\"button\">Play</button> <button id=\"player-restart\" type=\"button\">Restart</button> \
         <label>speed <select id=\"player-speed\"><option>1</option><option>2</option><option>5</option><option>10</option><option>50</option></select>×</label> \
         <span id=\"player-clock\">0:00</span></div>\n<pre id=\"screen\" class=\"screen\" data-state=\"idle\"></pre>\n",
    );
    let missing: Vec<(&String, &String)> = recordings
        .iter()
        .filter_map(|(id, r)| r.as_ref().err().map(|e| (id, e)))
        .collect();
    if !missing.is_empty() {
        html.push_str("<details><summary>Recordings that could not be read when this report was made</summary><ul>");
        for (id, why) in missing {
            let _ = write!(
                html,
                "<li><code>{}</code>: {}</li>",
                escape(id),
                escape(why)
            );
        }
        html.push_str("</ul></details>");
    }
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"replay-data\">{data}</script>\n<script>{PLAYER}</script></section>\n"
    );
    html
}

const PLAYER: &str = r#"(function () {
  var data = JSON.parse(document.getElementById('replay-data').textContent);
  var screen = document.getElementById('screen'), pick = document.getElementById('player-pick');
  var playButton = document.getElementById('player-play'), speedPick = document.getElementById('player-speed');
  var clock = document.getElementById('player-clock');
  var MAX_WAIT = 3000, current = null, index = 0, timer = null, playing = false;
  function time(ms) { var s = Math.floor(ms / 1000); return Math.floor(s / 60) + ':' + ('0' + (s % 60)).slice(-2); }
  function stop(state) { clearTimeout(timer); playing = false; playButton.textContent = 'Play'; screen.setAttribute('data-state', state || 'paused'); }
  function load(id) {
    stop('idle'); current = data[id] || null; index = 0; screen.textContent = ''; clock.textContent = '0:00';
    if (current) { pick.value = id; screen.setAttribute('data-session', id); }
  }
  function step() {
    if (!current || index >= current.lines.length) { stop('ended'); return; }
    var line = current.lines[index];
    screen.textContent += line[1] + '\n';
    screen.scrollTop = screen.scrollHeight;
    clock.textContent = time(line[0]);
    index += 1;
    if (index >= current.lines.length) { stop('ended'); return; }
    var speed = parseFloat(speedPick.value) || 1;
    var wait = Math.min(Math.max(current.lines[index][0] - line[0], 0), MAX_WAIT) / speed;
    timer = setTimeout(step, wait);
  }
  function play() {
    if (!current) { load(pick.value); }
    if (!current) { return; }
    if (index >= current.lines.length) { index = 0; screen.textContent = ''; }
    playing = true; playButton.textContent = 'Pause'; screen.setAttribute('data-state', 'playing'); step();
  }
  playButton.addEventListener('click', function () { if (playing) { stop(); } else { play(); } });
  document.getElementById('player-restart').addEventListener('click', function () { load(pick.value); play(); });
  pick.addEventListener('change', function () { load(pick.value); });
  function fromHash() {
    var m = location.hash.match(/^#replay=([^&]+)(.*)$/);
    if (!m) { return; }
    var id = decodeURIComponent(m[1]);
    if (!data[id]) { return; }
    var speed = m[2].match(/speed=([0-9.]+)/);
    if (speed) {
      var option = document.createElement('option'); option.textContent = speed[1];
      speedPick.appendChild(option); speedPick.value = speed[1];
    }
    load(id);
    document.getElementById('player').scrollIntoView();
    if (/play/.test(m[2])) { play(); }
  }
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();"#;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1b1f24}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:12px;margin:.5em 0}th,td{border:1px solid #ccd;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#eef1f5}td.n{text-align:right}code,pre,td.c{font-family:ui-monospace,monospace}pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.5em}\
.wide{overflow-x:auto;max-width:100%}svg{max-width:100%;height:auto}.meta{color:#444}.figures{display:flex;flex-wrap:wrap;gap:1em}.figures div{border:1px solid #ccd;padding:.5em 1em;min-width:9em}\
dt{font-size:12px;color:#555}dd{margin:0;font-size:1.6em;font-weight:600}.empty{color:#666;font-style:italic}\
.ctl{font-size:11px;font-weight:normal;background:#eef1f5;border:1px solid #ccd;border-radius:3px;padding:0 4px;vertical-align:middle}.sev-high td:first-child,.sev-critical td:first-child{color:#a00;font-weight:600}.sev-medium td:first-child{color:#a60}.screen{background:#111;color:#ddd;min-height:12em;max-height:32em;overflow:auto;white-space:pre-wrap}.controls{margin:.5em 0}@media print{details{display:block}section{break-inside:avoid-page}.wide{overflow:visible}}";

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
fn html_table(batches: &[RecordBatch], playable: &BTreeSet<&str>) -> Result<String, QueryError> {
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
            if field.name() == "session_id" && playable.contains(value.as_str()) {
                let _ = write!(
                    html,
                    "<td><a href=\"#replay={}\">{}</a></td>",
                    escape(value),
                    escape(value)
                );
                continue;
            }
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
