//! `auditq coverage`: is the trail complete? What should exist is reconciled with what does.
//!
//! Each kind of gap is a [`Check`]: a SQL statement over the lake whose rows are the findings
//! (`subject`, `time`, `detail`, and optionally their own `severity`), so an auditor can run the
//! statement again and see the same rows. One kind is decided in Rust from a statement's rows:
//! hours without CloudTrail, which needs the hours that are *not* there.
//!
//! What it reconciles:
//! - every Session Manager session with its CloudTrail `StartSession` and `TerminateSession`,
//!   and with a transcript, stream or host login;
//! - recordings that end before their session did: a transcript without `script`'s closing
//!   `Script done` line, a stream whose last event is longer before the session's end than
//!   Session Manager's idle timeout allows, a stream with a silence longer than that timeout;
//! - recordings that arrived after their session had been settled as unrecorded;
//! - CloudTrail itself: per account and region, the hours in which nothing was delivered;
//! - hosts whose auditd records stopped while their instance had sessions.

use std::collections::BTreeMap;

use auditq_model::Timestamp;
use auditq_rules::notice::AlertNotice;
use auditq_rules::spec::Severity;
use chrono::{Duration, SecondsFormat, Utc};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::Value;

use crate::report::Period;
use crate::{QueryError, rows_as_json, run_sql};

/// How coverage judges a recording.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Session Manager's idle session timeout, in minutes (20 unless the account's session
    /// preferences say otherwise): a session with no input for this long is ended by the service,
    /// so a recording that stops, or falls silent, for longer while its session went on lost
    /// what followed.
    pub idle_timeout_minutes: i64,
    /// The share of an account and region's hours that must have CloudTrail records for an hour
    /// without any to count as a missing delivery (below it, quiet hours cannot be told from
    /// missing ones, and one `cloudtrail_sparse` finding says so).
    pub dense_share: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: 20,
            dense_share: 0.9,
        }
    }
}

/// Allowance for the agent's upload delay on top of the idle timeout.
const SLACK_MINUTES: i64 = 2;

/// One kind of gap, and the statement that finds it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name; the alert rule raised for it is `coverage.KIND`.
    pub kind: &'static str,
    /// `info` to `critical` (a finding may carry its own).
    pub severity: &'static str,
    /// What it means, for the report.
    pub about: &'static str,
    /// The ISO/IEC 27001:2022 Annex A controls it evidences.
    pub controls: &'static [&'static str],
    /// The statement whose rows show it.
    pub sql: String,
}

/// One gap found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The [`Check::kind`].
    pub kind: &'static str,
    /// `info` to `critical`.
    pub severity: String,
    /// What is incomplete: a session id, `ACCOUNT/REGION`, an instance id.
    pub subject: String,
    /// When (RFC 3339), where it has a time.
    pub time: Option<String>,
    /// What is missing, in words.
    pub detail: String,
}

/// What coverage found over a period.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// First instant covered (RFC 3339).
    pub from: String,
    /// First instant after the period.
    pub to: String,
    /// Every check that ran, with its statement.
    pub checks: Vec<Check>,
    /// The gaps, most severe first, then by time.
    pub findings: Vec<Finding>,
    /// Checks that could not run under the filters given (`--account` cannot narrow
    /// host_events), with why.
    pub skipped: Vec<(&'static str, String)>,
    /// What CloudTrail's own digests were read, when they were (`--cloudtrail`).
    pub trail: Option<String>,
}

fn rfc3339(time: Timestamp) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Kinds of session Session Manager opens (its CloudTrail calls are `StartSession` and
/// `TerminateSession`).
const SSM_KINDS: &str = "('shell', 'ssh', 'port_forward', 'command')";

/// Every check, with its statement for the period.
pub fn checks(period: &Period, settings: &Settings) -> Vec<Check> {
    let sessions = period.clause_on("", "started_at", 0);
    let s_sessions = period.clause_on("s", "started_at", 0);
    let allowed = settings.idle_timeout_minutes + SLACK_MINUTES;
    let idle = settings.idle_timeout_minutes;
    vec![
        Check {
            kind: "session_unrecorded",
            severity: "high",
            about: "A session that nothing recorded: no transcript, no stream, no login on the host. What was done in it cannot be shown. A port forward is medium: Session Manager never records one, but an SSH login through it would have been seen on the host.",
            controls: &["A.8.2", "A.8.15"],
            sql: format!(
                "SELECT session_id AS subject, started_at AS time, \
                 CASE WHEN kind = 'port_forward' THEN 'medium' ELSE 'high' END AS severity, \
                 concat(kind, ' session of ', coalesce(user, 'an unknown principal'), ' on ', coalesce(target, 'an unknown target'), ': no transcript, stream or host login') AS detail \
                 FROM sessions WHERE {sessions} AND logged = 'none' ORDER BY started_at, session_id"
            ),
        },
        Check {
            kind: "session_without_start",
            severity: "medium",
            about: "A session recorded on the instance with no CloudTrail call that opened it: the trail is missing the record of who opened it and from where.",
            controls: &["A.8.15"],
            sql: format!(
                "SELECT session_id AS subject, started_at AS time, \
                 concat(kind, ' session on ', coalesce(target, 'an unknown target'), ' recorded (', logged, ') with no CloudTrail call that opened it') AS detail \
                 FROM sessions WHERE {sessions} AND start_event_id IS NULL AND kind <> 'host_ssh' ORDER BY started_at, session_id"
            ),
        },
        Check {
            kind: "session_not_terminated",
            severity: "low",
            about: "A Session Manager session whose CloudTrail StartSession has no TerminateSession within a day: its client died, it timed out, or the trail is missing the call.",
            controls: &["A.8.15"],
            sql: format!(
                "SELECT s.session_id AS subject, s.started_at AS time, \
                 concat(s.kind, ' session of ', coalesce(s.user, 'an unknown principal'), ' on ', coalesce(s.target, 'an unknown target'), ': StartSession without TerminateSession') AS detail \
                 FROM sessions s WHERE {s_sessions} AND s.kind IN {SSM_KINDS} AND s.start_event_id IS NOT NULL \
                 AND s.started_at < TIMESTAMP '{latest}' \
                 AND s.session_id NOT IN (SELECT session_id FROM cloudtrail WHERE {trail} AND event_name = 'TerminateSession' AND session_id IS NOT NULL) \
                 ORDER BY s.started_at, s.session_id",
                latest = rfc3339(period.to.min(Utc::now()) - Duration::days(1)),
                trail = period.clause_on("", "time", 1),
            ),
        },
        Check {
            kind: "recording_cut_short",
            severity: "medium",
            about: "A recording that ends before its session did: a transcript without script's closing \"Script done\" line (the agent or the instance stopped first), or a stream whose last event is longer before the session's end than Session Manager's idle timeout allows.",
            controls: &["A.8.15"],
            sql: format!(
                "SELECT session_id AS subject, ended_at AS time, \
                 CASE WHEN recorded_to IS NULL THEN concat('transcript ', coalesce(transcript_uri, ''), ' has no closing \"Script done\" line: the shell had not ended when it was written') \
                 ELSE concat('recording ends at ', CAST(recorded_to AS VARCHAR), ', ', CAST(CAST((to_unixtime(ended_at) - to_unixtime(recorded_to)) / 60 AS BIGINT) AS VARCHAR), ' minutes before the session ended (idle timeout {idle} minutes)') END AS detail \
                 FROM sessions WHERE {sessions} AND logged IN ('transcript', 'stream') \
                 AND (recorded_to IS NULL OR ended_at > recorded_to + INTERVAL '{allowed} minutes') ORDER BY ended_at, session_id"
            ),
        },
        Check {
            kind: "stream_gap",
            severity: "medium",
            about: "A streamed session with a silence longer than Session Manager's idle timeout while it went on: output is missing from the stream.",
            controls: &["A.8.15"],
            sql: format!(
                "SELECT session_id AS subject, started_at AS time, \
                 concat('stream silent for ', CAST(longest_silence_seconds / 60 AS VARCHAR), ' minutes while the session went on (idle timeout {idle} minutes)') AS detail \
                 FROM sessions WHERE {sessions} AND logged = 'stream' AND longest_silence_seconds > {allowed} * 60 ORDER BY started_at, session_id"
            ),
        },
        Check {
            kind: "recording_late",
            severity: "low",
            about: "A recording that arrived after its session had been settled as unrecorded (and alerted on): it is in the lake now, but was not there when it was needed.",
            controls: &["A.8.15", "A.8.16"],
            sql: format!(
                "SELECT s.session_id AS subject, s.started_at AS time, \
                 concat('settled as unrecorded at ', CAST(min(a.detected_at) AS VARCHAR), '; its ', s.logged, ' arrived later') AS detail \
                 FROM sessions s JOIN alerts a ON a.session_id = s.session_id AND a.rule_id = 'ssm.session_unlogged' \
                 WHERE {s_sessions} AND s.logged <> 'none' GROUP BY s.session_id, s.started_at, s.logged ORDER BY s.started_at, s.session_id"
            ),
        },
        Check {
            kind: "cloudtrail_gap",
            severity: "high",
            about: "Hours in which CloudTrail delivered nothing for an account and region that otherwise has records nearly every hour: the trail was stopped, or its files were not delivered or not ingested. (These rows are the hours that do have records; the gaps are the hours missing from them.)",
            controls: &["A.8.15", "A.8.16"],
            sql: format!(
                "SELECT account, region, date_trunc('hour', time) AS hour, count(*) AS records \
                 FROM cloudtrail WHERE {} AND account IS NOT NULL AND region IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                period.clause_on("", "time", 0)
            ),
        },
        Check {
            kind: "host_silent",
            severity: "medium",
            about: "An instance that ships auditd records, with sessions after its first in which commands were run but no host log line was written: its log agent or auditd stopped.",
            controls: &["A.8.15", "A.8.16"],
            sql: format!(
                "WITH shipping AS (SELECT target, count(*) AS lines, min(time) AS first_line, max(time) AS last_line FROM host_events \
                 WHERE {host} AND target IS NOT NULL AND program = 'auditd' GROUP BY target), \
                 quiet AS (SELECT s.target, s.session_id, s.started_at FROM sessions s JOIN shipping h ON s.target = h.target \
                 LEFT JOIN host_events e ON e.target = s.target AND e.time >= s.started_at AND e.time <= coalesce(s.ended_at, s.recorded_to, s.started_at + INTERVAL '1 hour') + INTERVAL '5 minutes' AND {e_host} \
                 WHERE {s_sessions} AND s.commands > 0 AND s.started_at >= h.first_line GROUP BY s.target, s.session_id, s.started_at HAVING count(e.event_id) = 0) \
                 SELECT q.target AS subject, min(q.started_at) AS time, \
                 concat(CAST(count(*) AS VARCHAR), ' sessions with commands from ', CAST(min(q.started_at) AS VARCHAR), ' to ', CAST(max(q.started_at) AS VARCHAR), \
                 ' left no host log line; its last auditd line in the period is at ', CAST(max(h.last_line) AS VARCHAR)) AS detail \
                 FROM quiet q JOIN shipping h ON q.target = h.target GROUP BY q.target ORDER BY 2, 1",
                host = period.clause_on("", "time", 1),
                e_host = period.clause_on("e", "time", 1),
            ),
        },
    ]
}

/// Runs every check over the period.
pub async fn run(
    ctx: &SessionContext,
    period: &Period,
    settings: &Settings,
) -> Result<Coverage, QueryError> {
    let checks = checks(period, settings);
    let mut findings = Vec::new();
    let mut skipped = Vec::new();
    for check in &checks {
        let rows = match run_sql(ctx, &check.sql).await {
            Ok(batches) => rows_as_json(&batches)?,
            Err(QueryError::User { message }) if message.contains("does not apply to table") => {
                skipped.push((check.kind, message));
                continue;
            }
            Err(e) => return Err(e),
        };
        if check.kind == "cloudtrail_gap" {
            findings.extend(trail_gaps(check, &rows, period, settings));
            continue;
        }
        for row in rows {
            let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_string);
            findings.push(Finding {
                kind: check.kind,
                severity: text("severity").unwrap_or_else(|| check.severity.to_string()),
                subject: text("subject").unwrap_or_default(),
                time: text("time").map(|t| normalise_time(&t)),
                detail: text("detail").unwrap_or_default(),
            });
        }
    }
    sort(&mut findings);
    Ok(Coverage {
        from: rfc3339(period.from),
        to: rfc3339(period.to),
        checks,
        findings,
        skipped,
        trail: None,
    })
}

/// The kinds CloudTrail's own digest files tell (`coverage --cloudtrail`), with their severity
/// and what each means; the statement shows what auditq read of that trail.
const TRAIL_KINDS: &[(&str, &str, &str)] = &[
    (
        "cloudtrail_digest_missing",
        "high",
        "An hour with no CloudTrail digest file (CloudTrail writes one every hour, even with no activity), a digest another links to that is gone, or a chain that starts again: logging or validation was stopped, or digests were deleted.",
    ),
    (
        "cloudtrail_digest_invalid",
        "critical",
        "A digest whose signature does not verify with CloudTrail's public keys, whose link to the previous digest does not match it, or that was moved: the trail's evidence was changed.",
    ),
    (
        "cloudtrail_log_changed",
        "critical",
        "A log file whose content is not what its digest says CloudTrail delivered.",
    ),
    (
        "cloudtrail_log_missing",
        "high",
        "A log file a digest lists that is not in the bucket: deleted or moved.",
    ),
    (
        "cloudtrail_log_unlisted",
        "high",
        "A log file in the bucket no digest lists, delivered while digests were written: not delivered by CloudTrail.",
    ),
    (
        "cloudtrail_log_not_ingested",
        "medium",
        "A log file CloudTrail delivered that auditq has not read.",
    ),
];

/// Adds what CloudTrail's digest files under `location` told.
pub fn add_trail(
    coverage: &mut Coverage,
    location: &str,
    found: &auditq_ingest::trail_digest::TrailCheck,
) {
    let sql = format!(
        "SELECT source, time, ingested_at FROM positions WHERE source LIKE {} ORDER BY time",
        crate::sql_quote(&format!("{}%/CloudTrail/%", location.trim_end_matches('/')))
    );
    for (kind, severity, about) in TRAIL_KINDS {
        coverage.checks.push(Check {
            kind,
            severity,
            about,
            controls: &["A.8.15", "A.8.16"],
            sql: sql.clone(),
        });
    }
    for f in &found.findings {
        let Some((kind, severity, _)) = TRAIL_KINDS.iter().find(|(k, _, _)| *k == f.kind) else {
            continue;
        };
        coverage.findings.push(Finding {
            kind,
            severity: severity.to_string(),
            subject: f.subject.clone(),
            time: f.time.map(rfc3339),
            detail: f.detail.clone(),
        });
    }
    sort(&mut coverage.findings);
    coverage.trail = Some(format!(
        "{location}: {} digests read ({} signatures verified), {} log files hashed",
        found.digests, found.signed, found.logs
    ));
}

/// The title of a kind's alert.
fn title(kind: &str) -> &'static str {
    match kind {
        "session_unrecorded" => "Session with no recording",
        "session_without_start" => "Recorded session without its CloudTrail StartSession",
        "session_not_terminated" => "Session without its CloudTrail TerminateSession",
        "recording_cut_short" => "Recording cut short",
        "stream_gap" => "Gap in a session stream",
        "recording_late" => "Recording arrived after its session was settled unrecorded",
        "cloudtrail_gap" => "Hours with no CloudTrail delivery",
        "host_silent" => "Host logs went silent during sessions",
        "cloudtrail_digest_missing" => "CloudTrail digest missing",
        "cloudtrail_digest_invalid" => "CloudTrail digest does not verify",
        "cloudtrail_log_changed" => "CloudTrail log file changed after delivery",
        "cloudtrail_log_missing" => "CloudTrail log file deleted",
        "cloudtrail_log_unlisted" => "CloudTrail log file CloudTrail did not deliver",
        "cloudtrail_log_not_ingested" => "CloudTrail log file not ingested",
        _ => "The trail is incomplete",
    }
}

/// Each finding of low severity or more as an alert of rule `coverage.KIND`, with the same id
/// whenever the same gap is found again (so checking a period twice raises nothing twice).
pub fn notices(coverage: &Coverage, detected_at: Timestamp) -> Vec<AlertNotice> {
    coverage
        .findings
        .iter()
        .filter(|f| rank(&f.severity) >= 1)
        .map(|f| {
            let check = coverage.checks.iter().find(|c| c.kind == f.kind);
            let rule_id = format!("coverage.{}", f.kind);
            let event_id = auditq_model::event_id(
                "coverage",
                &[f.kind, &f.subject, f.time.as_deref().unwrap_or("")],
            );
            let is_session = f.kind.starts_with("session")
                || f.kind.starts_with("recording")
                || f.kind == "stream_gap";
            let (account, region) = match f.kind {
                "cloudtrail_gap" => match f.subject.split_once('/') {
                    Some((a, r)) => (Some(a.to_string()), Some(r.to_string())),
                    None => (None, None),
                },
                _ => (None, None),
            };
            let time = f
                .time
                .as_deref()
                .and_then(|t| crate::filters::parse_time(t, detected_at, false).ok())
                .unwrap_or(detected_at);
            AlertNotice {
                alert_id: auditq_rules::detect::alert_id(&rule_id, &event_id),
                rule_id,
                severity: Severity::from_name(&f.severity).unwrap_or(Severity::Medium),
                title: title(f.kind).to_string(),
                description: Some(f.detail.clone()),
                tags: Vec::new(),
                controls: {
                    let mut controls: Vec<String> = check
                        .map(|c| c.controls.iter().map(|c| c.to_string()).collect())
                        .unwrap_or_default();
                    controls.sort_by_key(|c| auditq_rules::controls::order(c));
                    controls
                },
                time,
                detected_at,
                user: None,
                target: (f.kind == "host_silent").then(|| f.subject.clone()),
                account,
                region,
                target_name: None,
                environment: None,
                account_alias: None,
                source_ip: None,
                cmd: None,
                event_name: None,
                session_id: is_session.then(|| f.subject.clone()),
                table: "coverage".to_string(),
                event_id,
                event: [
                    ("kind".to_string(), f.kind.to_string()),
                    ("subject".to_string(), f.subject.clone()),
                    ("detail".to_string(), f.detail.clone()),
                ]
                .into_iter()
                .collect(),
            }
        })
        .collect()
}

/// Most severe first, then by time, kind and subject.
fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (rank(&b.severity), &a.time, a.kind, &a.subject).cmp(&(
            rank(&a.severity),
            &b.time,
            b.kind,
            &b.subject,
        ))
    });
}

/// The order of severities, `info` lowest.
pub fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// JSON times (`2026-10-05T09:20:00` from Arrow, no zone) as RFC 3339 UTC.
fn normalise_time(text: &str) -> String {
    match crate::filters::parse_time(text, Utc::now(), false) {
        Ok(time) => rfc3339(time),
        Err(_) => text.to_string(),
    }
}

/// The hours of each account and region with no record, between its first hour in the period
/// and the last hour anything was delivered (the hour after the latest record of any account:
/// hours after it are not yet delivered, not missing), when the rest of its hours are dense
/// enough for a missing hour to mean something; consecutive hours are one finding.
fn trail_gaps(
    check: &Check,
    rows: &[serde_json::Map<String, Value>],
    period: &Period,
    settings: &Settings,
) -> Vec<Finding> {
    let mut hours: BTreeMap<(String, String), Vec<Timestamp>> = BTreeMap::new();
    for row in rows {
        let text = |name: &str| row.get(name).and_then(Value::as_str);
        let (Some(account), Some(region), Some(hour)) =
            (text("account"), text("region"), text("hour"))
        else {
            continue;
        };
        let Ok(hour) = crate::filters::parse_time(hour, Utc::now(), false) else {
            continue;
        };
        hours
            .entry((account.to_string(), region.to_string()))
            .or_default()
            .push(hour);
    }
    let Some(latest) = hours
        .values()
        .flatten()
        .max()
        .map(|h| *h + Duration::hours(1))
    else {
        return Vec::new();
    };
    let end = latest.min(period.to);
    let mut findings = Vec::new();
    for ((account, region), mut seen) in hours {
        seen.sort_unstable();
        seen.dedup();
        let first = seen[0];
        let span = ((end - first).num_hours()).max(1);
        let share = seen.len() as f64 / span as f64;
        let subject = format!("{account}/{region}");
        if share < settings.dense_share {
            findings.push(Finding {
                kind: "cloudtrail_sparse",
                severity: "info".to_string(),
                subject,
                time: Some(rfc3339(first)),
                detail: format!(
                    "records in {} of {span} hours since its first: a quiet hour cannot be told from a missing delivery here (CloudTrail's digest files, delivered hourly, can)",
                    seen.len()
                ),
            });
            continue;
        }
        let mut expected = first;
        let mut next = seen.iter().copied().peekable();
        while expected < end {
            if next.peek() == Some(&expected) {
                next.next();
                expected += Duration::hours(1);
                continue;
            }
            let gap_start = expected;
            while expected < end && next.peek() != Some(&expected) {
                expected += Duration::hours(1);
            }
            let missing = (expected - gap_start).num_hours();
            findings.push(Finding {
                kind: check.kind,
                severity: check.severity.to_string(),
                subject: subject.clone(),
                time: Some(rfc3339(gap_start)),
                detail: format!(
                    "no CloudTrail record from {} to {} ({missing} hour{}), in an account and region with records in {} of {span} hours",
                    rfc3339(gap_start),
                    rfc3339(expected),
                    if missing == 1 { "" } else { "s" },
                    seen.len()
                ),
            });
        }
    }
    findings
}

/// The findings as text: a line each, then the statement behind each kind.
pub fn write_text(coverage: &Coverage, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut by_severity: BTreeMap<u8, (String, usize)> = BTreeMap::new();
    for f in &coverage.findings {
        by_severity
            .entry(rank(&f.severity))
            .or_insert_with(|| (f.severity.clone(), 0))
            .1 += 1;
    }
    let counts: Vec<String> = by_severity
        .values()
        .rev()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    writeln!(
        out,
        "coverage from {} to {}: {} finding{}{}",
        coverage.from,
        coverage.to,
        coverage.findings.len(),
        if coverage.findings.len() == 1 {
            ""
        } else {
            "s"
        },
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        }
    )?;
    if let Some(trail) = &coverage.trail {
        writeln!(out, "  CloudTrail digests: {trail}")?;
    }
    for (kind, why) in &coverage.skipped {
        writeln!(out, "  not checked: {kind}: {why}")?;
    }
    for f in &coverage.findings {
        writeln!(
            out,
            "  {:<8} {:<22} {:<20} {}  {}",
            f.severity,
            f.kind,
            f.time.as_deref().unwrap_or("-"),
            f.subject,
            f.detail
        )?;
    }
    let found: std::collections::BTreeSet<&str> =
        coverage.findings.iter().map(|f| f.kind).collect();
    if !found.is_empty() {
        writeln!(out, "\nThe statement behind each kind (auditq \"...\"):")?;
        for check in coverage.checks.iter().filter(|c| {
            found.contains(c.kind)
                || (c.kind == "cloudtrail_gap" && found.contains("cloudtrail_sparse"))
        }) {
            writeln!(
                out,
                "  {} ({}):\n    {}",
                check.kind,
                check.controls.join(", "),
                check.sql
            )?;
        }
    }
    Ok(())
}
