//! From parsed objects to the lake: assemble streams and sessions, fill every command's
//! who/where from its session, and append each table.

use std::collections::{BTreeMap, HashMap};

use auditq_model::{Command, HostEvent, Session, Table, Timestamp, date32};
use auditq_rules::EventView;
use chrono::Duration;
use datafusion::prelude::{Expr, col, lit};
use datafusion::scalar::ScalarValue;

use deltalake::kernel::Transaction;

use crate::alerting::AlertCounts;
use crate::correlate::{self, Link};
use crate::error::Result;
use crate::lake::Lake;
use crate::parse::Parsed;
use crate::session::{SessionFragment, enrich_command, merge};
use crate::ssm::assemble_stream;

/// Rows read and added for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCount {
    /// Rows produced by the input.
    pub read: usize,
    /// Rows new to the lake (the rest were already stored).
    pub added: usize,
    /// Stored rows changed (sessions, and stream commands revised by a later read).
    pub updated: usize,
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Objects read.
    pub objects: usize,
    /// Objects skipped (not a known log file kind in a directory walk).
    pub skipped: usize,
    /// Per table.
    pub tables: BTreeMap<Table, TableCount>,
    /// Rejected records per reason (reasons cut at the first colon, so they group).
    pub reject_reasons: BTreeMap<String, usize>,
    /// Alerts raised, delivered and kept in the outbox (when rules are configured).
    pub alerts: AlertCounts,
    /// The time of the newest command or CloudTrail record read (how far behind an ingest is).
    pub newest_event: Option<Timestamp>,
    /// Secrets replaced by tokens before storing (see [`crate::redact`]).
    pub redactions: usize,
}

impl IngestSummary {
    /// Records rejected in this ingest (stored or not).
    pub fn rejected(&self) -> usize {
        self.reject_reasons.values().sum()
    }

    /// Adds another ingest's counts to these.
    pub fn add(&mut self, other: IngestSummary) {
        self.objects += other.objects;
        self.skipped += other.skipped;
        for (table, count) in other.tables {
            let mine = self.tables.entry(table).or_default();
            mine.read += count.read;
            mine.added += count.added;
            mine.updated += count.updated;
        }
        for (reason, n) in other.reject_reasons {
            *self.reject_reasons.entry(reason).or_default() += n;
        }
        self.alerts.raised += other.alerts.raised;
        self.alerts.delivered += other.alerts.delivered;
        self.alerts.kept += other.alerts.kept;
        self.newest_event = self.newest_event.max(other.newest_event);
        self.redactions += other.redactions;
    }
}

/// Assembles parsed objects and stores them in the lake.
pub async fn store(lake: &Lake, parsed: Parsed) -> Result<IngestSummary> {
    store_at(lake, parsed, &[]).await
}

/// Like [`store`], committing the source positions (`txns`) with the rows in every table
/// commit.
pub async fn store_at(lake: &Lake, parsed: Parsed, txns: &[Transaction]) -> Result<IngestSummary> {
    let _batch = lake.batch_guard().await;
    let mut summary = IngestSummary::default();
    let Parsed {
        mut trail,
        mut fragments,
        chunks,
        mut commands,
        mut host,
        mut rejects,
    } = parsed;
    let (stream_commands, stream_fragments) = assemble_stream(chunks);
    commands.extend(stream_commands);
    fragments.extend(stream_fragments);

    // Secrets out of every free-text field before rules, alerts or the lake see them.
    let redactor = lake.redactor().await?;
    let mut redactions = 0;
    for command in &mut commands {
        redactions += redactor.field(&mut command.cmd);
    }
    for event in &mut host {
        redactions += redactor.optional(&mut event.cmd) + redactor.field(&mut event.raw);
    }
    for event in &mut trail {
        redactions += redactor.optional(&mut event.request)
            + redactor.optional(&mut event.response)
            + redactor.optional(&mut event.additional);
    }
    for reject in &mut rejects {
        redactions += redactor.field(&mut reject.excerpt);
    }
    for fragment in &mut fragments {
        redactions += redactor.optional(&mut fragment.reason);
    }
    summary.redactions = redactions;

    // Sessions: fold new fragments with what the lake already holds.
    let mut by_session: BTreeMap<String, Vec<SessionFragment>> = BTreeMap::new();
    for fragment in fragments {
        by_session
            .entry(fragment.session_id.clone())
            .or_default()
            .push(fragment);
    }
    let ids: Vec<String> = by_session.keys().cloned().collect();
    let stored: HashMap<String, Session> = lake
        .rows_by_key::<Session>("session_id", &ids)
        .await?
        .into_iter()
        .map(|s| (s.session_id.clone(), s))
        .collect();
    let mut sessions = HashMap::new();
    let mut changed = Vec::new();
    let mut count = TableCount::default();
    for (id, mut group) in by_session {
        let old = stored.get(&id);
        if let Some(old) = old {
            group.push(SessionFragment::from_row(old));
        }
        let Some(session) = merge(&group) else {
            continue;
        };
        count.read += 1;
        match old {
            None => count.added += 1,
            Some(old) if *old != session => count.updated += 1,
            Some(_) => {}
        }
        if old != Some(&session) {
            changed.push(session.clone());
        }
        sessions.insert(id, session);
    }
    // Host logs and the sessions Session Manager could not transcribe (see `crate::correlate`).
    let attributed = correlate_hosts(
        lake,
        &mut sessions,
        &mut changed,
        &mut host,
        &mut commands,
        txns,
        chrono::Utc::now(),
    )
    .await?;
    count.read += attributed.host_sessions;
    count.added += attributed.new_sessions;
    summary.tables.insert(Table::Sessions, count);
    summary.newest_event = trail
        .iter()
        .map(|e| e.time)
        .chain(commands.iter().map(|c| c.time))
        .max();

    for command in &mut commands {
        if let Some(session) = command.session_id.as_ref().and_then(|id| sessions.get(id)) {
            enrich_command(command, session);
        }
    }

    // Rules see the batch once commands know who and where; alerts are out (delivered or in
    // the outbox) before anything of the batch is committed.
    let mut alerting = match lake.alerting() {
        Some(alerting) => Some(alerting.lock().await),
        None => None,
    };
    if let Some(alerting) = alerting.as_mut() {
        // Sessions are seen each time they change (a CloudTrail record or a transcript arrived);
        // an alert's id is its rule and the session's id, so a session raises a rule once.
        let mut events: Vec<&(dyn EventView + Sync)> =
            Vec::with_capacity(trail.len() + commands.len() + changed.len() + host.len());
        events.extend(trail.iter().map(|e| e as &(dyn EventView + Sync)));
        events.extend(host.iter().map(|e| e as &(dyn EventView + Sync)));
        events.extend(commands.iter().map(|e| e as &(dyn EventView + Sync)));
        events.extend(changed.iter().map(|e| e as &(dyn EventView + Sync)));
        let (rows, counts) = alerting
            .process(lake, &mut events, chrono::Utc::now())
            .await?;
        let read = rows.len();
        let added = lake.append_at(rows, txns).await?;
        summary.tables.insert(
            Table::Alerts,
            TableCount {
                read,
                added,
                updated: 0,
            },
        );
        summary.alerts = counts;
    }

    // A live stream is read again as it grows: a command stored while still being typed (or
    // a line later abandoned) sits under the id its place in the session has, so the stored
    // stream commands of these sessions are revised to what the grown stream says.
    let revised = revise_stream_commands(lake, &commands, txns).await?;

    // Commands stored before their session's CloudTrail record arrived learn who/where now,
    // before the sessions are committed: a crash in between leaves the session looking new to
    // the next run, which does this again (a crash after would leave them unknown for good).
    let learned: Vec<String> = changed
        .iter()
        .filter(|s| s.start_event_id.is_some())
        .filter(|s| {
            stored
                .get(&s.session_id)
                .is_some_and(|old| old.start_event_id.is_none())
        })
        .map(|s| s.session_id.clone())
        .collect();
    let mut earlier = lake.rows_by_key::<Command>("session_id", &learned).await?;
    if !earlier.is_empty() {
        for command in &mut earlier {
            if let Some(session) = command.session_id.as_ref().and_then(|id| sessions.get(id)) {
                enrich_command(command, session);
            }
        }
        lake.replace_by_key("session_id", &learned, &earlier, txns)
            .await?;
    }

    let changed_ids: Vec<String> = changed.iter().map(|s| s.session_id.clone()).collect();
    lake.replace_by_key("session_id", &changed_ids, &changed, txns)
        .await?;
    for reject in &rejects {
        let reason = reject
            .reason
            .split(':')
            .next()
            .unwrap_or(&reject.reason)
            .to_string();
        *summary.reject_reasons.entry(reason).or_default() += 1;
    }
    let counts = [
        (
            Table::Cloudtrail,
            trail.len(),
            lake.append_at(trail, txns).await?,
        ),
        (
            Table::Commands,
            commands.len(),
            lake.append_at(commands, txns).await?,
        ),
        (
            Table::HostEvents,
            host.len(),
            lake.append_at(host, txns).await?,
        ),
        (
            Table::Rejects,
            rejects.len(),
            lake.append_at(rejects, txns).await?,
        ),
    ];
    for (table, read, added) in counts {
        let updated = if table == Table::Commands { revised } else { 0 };
        summary.tables.insert(
            table,
            TableCount {
                read,
                added,
                updated,
            },
        );
    }
    if let Some(alerting) = alerting.as_mut() {
        alerting.save_state(lake).await?;
    }
    Ok(summary)
}

/// Rewrites stored stream commands whose text, time, user or directory a new read of their
/// stream changed; returns how many. Commands from transcripts are left as stored.
async fn revise_stream_commands(
    lake: &Lake,
    commands: &[Command],
    txns: &[Transaction],
) -> Result<usize> {
    let from_streams: HashMap<&str, &Command> = commands
        .iter()
        .filter(|c| c.source == "stream")
        .map(|c| (c.event_id.as_str(), c))
        .collect();
    let mut sessions: Vec<String> = from_streams
        .values()
        .filter_map(|c| c.session_id.clone())
        .collect();
    sessions.sort();
    sessions.dedup();
    let stored = lake.rows_by_key::<Command>("session_id", &sessions).await?;
    let changed: Vec<Command> = stored
        .iter()
        .filter_map(|old| {
            let new = from_streams.get(old.event_id.as_str())?;
            let differs = old.source == new.source
                && (old.cmd != new.cmd
                    || old.time != new.time
                    || old.run_as != new.run_as
                    || old.cwd != new.cwd);
            differs.then(|| (*new).clone())
        })
        .collect();
    let ids: Vec<String> = changed.iter().map(|c| c.event_id.clone()).collect();
    lake.replace_by_key("event_id", &ids, &changed, txns)
        .await?;
    Ok(changed.len())
}

/// What correlating host logs changed.
#[derive(Debug, Default)]
struct Correlated {
    /// Sessions of SSH logins no Session Manager session carried.
    host_sessions: usize,
    /// Those of them new to the lake.
    new_sessions: usize,
}

fn in_list(column: &str, values: &[String]) -> Expr {
    col(column).in_list(values.iter().map(|v| lit(v.as_str())).collect(), false)
}

/// `date` between the days of two times (a day of slack before), for partition pruning.
fn days_between(from: Timestamp, to: Timestamp) -> Expr {
    let day = |t: Timestamp| lit(ScalarValue::Date32(Some(date32(&t.date_naive()))));
    col("date")
        .gt_eq(day(from - Duration::days(1)))
        .and(col("date").lt_eq(day(to)))
}

fn upsert(changed: &mut Vec<Session>, session: Session) {
    match changed
        .iter_mut()
        .find(|s| s.session_id == session.session_id)
    {
        Some(existing) => *existing = session,
        None => changed.push(session),
    }
}

/// Links sshd logins to the SSH and port-forwarding sessions they belong to (either may be in
/// this batch or already stored), makes sessions of SSH logins no Session Manager session
/// carried, attributes the host's sudo and auditd commands to them, and settles `logged` of
/// sessions without any record (`pending`, then `none` after the grace).
async fn correlate_hosts(
    lake: &Lake,
    sessions: &mut HashMap<String, Session>,
    changed: &mut Vec<Session>,
    host: &mut [HostEvent],
    commands: &mut [Command],
    txns: &[Transaction],
    now: Timestamp,
) -> Result<Correlated> {
    let mut result = Correlated::default();
    let mut linked: Vec<(Session, HostEvent)> = Vec::new();

    // 1. Logins in this batch, against sessions in this batch or stored.
    let logins: Vec<usize> = (0..host.len())
        .filter(|&i| correlate::is_login(&host[i]))
        .collect();
    if !logins.is_empty() {
        let targets: Vec<String> = logins
            .iter()
            .filter_map(|&i| host[i].target.clone())
            .collect();
        // (Logins from files with no instance id name only their host: they can only be
        // sessions of their own, below.)
        let first = logins.iter().map(|&i| host[i].time).min().unwrap_or(now);
        let last = logins.iter().map(|&i| host[i].time).max().unwrap_or(now);
        let filter = in_list("target", &targets)
            .and(in_list(
                "kind",
                &["ssh".to_string(), "port_forward".to_string()],
            ))
            .and(days_between(
                first - Duration::seconds(correlate::OPEN_SESSION_SPAN),
                last,
            ));
        let mut candidates: HashMap<String, Session> = lake
            .rows_matching::<Session>(Table::Sessions, filter)
            .await?
            .into_iter()
            .map(|s| (s.session_id.clone(), s))
            .collect();
        for session in sessions.values() {
            candidates.insert(session.session_id.clone(), session.clone());
        }
        let candidates: Vec<&Session> = candidates.values().collect();
        let mut direct = Vec::new();
        for &i in &logins {
            let login = &host[i];
            if correlate::is_tunnelled(login.source_ip.as_deref()) {
                if let Some(session) = correlate::session_for_login(login, &candidates) {
                    linked.push((session.clone(), login.clone()));
                }
            } else if let Some(session) = correlate::host_session(login) {
                direct.push((session, login.clone()));
            }
        }
        let ids: Vec<String> = direct.iter().map(|(s, _)| s.session_id.clone()).collect();
        let known: HashMap<String, Session> = lake
            .rows_by_key::<Session>("session_id", &ids)
            .await?
            .into_iter()
            .map(|s| (s.session_id.clone(), s))
            .collect();
        result.host_sessions = direct.len();
        for (session, login) in direct {
            if known.get(&session.session_id) != Some(&session) {
                if !known.contains_key(&session.session_id) {
                    result.new_sessions += 1;
                }
                upsert(changed, session.clone());
                sessions.insert(session.session_id.clone(), session.clone());
            }
            linked.push((session, login));
        }
    }

    // 2. SSH sessions of this batch against logins already stored.
    let already: std::collections::HashSet<&str> =
        linked.iter().map(|(l, _)| l.session_id.as_str()).collect();
    let waiting: Vec<Session> = changed
        .iter()
        .filter(|s| correlate::carries_ssh(s) && s.target.is_some())
        .filter(|s| !already.contains(s.session_id.as_str()))
        .cloned()
        .collect();
    if !waiting.is_empty() {
        let targets: Vec<String> = waiting.iter().filter_map(|s| s.target.clone()).collect();
        let windows: Vec<(Timestamp, Timestamp)> =
            waiting.iter().filter_map(correlate::window).collect();
        let first = windows.iter().map(|w| w.0).min().unwrap_or(now);
        let last = windows.iter().map(|w| w.1).max().unwrap_or(now);
        let filter = in_list("target", &targets)
            .and(col("program").eq(lit("sshd")))
            .and(col("action").eq(lit("login")))
            .and(days_between(first, last));
        let stored_logins = lake
            .rows_matching::<HostEvent>(Table::HostEvents, filter)
            .await?;
        let candidates: Vec<&Session> = waiting.iter().collect();
        let mut linked_ids: std::collections::HashSet<String> =
            linked.iter().map(|(s, _)| s.session_id.clone()).collect();
        for login in stored_logins
            .iter()
            .filter(|l| correlate::is_tunnelled(l.source_ip.as_deref()))
        {
            if let Some(session) = correlate::session_for_login(login, &candidates)
                && linked_ids.insert(session.session_id.clone())
            {
                linked.push((session.clone(), login.clone()));
            }
        }
    }

    // 3. Each linked session reads host_only with the OS user; the login names its session.
    let host_index: HashMap<String, usize> = host
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.clone(), i))
        .collect();
    let mut links: Vec<(Link, Session)> = Vec::new();
    for (session, login) in &linked {
        let current = sessions
            .get(&session.session_id)
            .cloned()
            .unwrap_or_else(|| session.clone());
        let Some(updated) = correlate::with_login(&current, login) else {
            continue;
        };
        if updated != current || !sessions.contains_key(&updated.session_id) {
            upsert(changed, updated.clone());
        }
        sessions.insert(updated.session_id.clone(), updated.clone());
        if let Some(&at) = host_index.get(login.event_id.as_str()) {
            host[at].session_id = Some(updated.session_id.clone());
        }
        if let (Some((from, to)), Some(target)) =
            (correlate::window(&updated), updated.target.clone())
        {
            let from = from.min(login.time);
            links.push((
                Link {
                    session_id: updated.session_id.clone(),
                    target,
                    os_user: login.user.clone(),
                    from,
                    to: to.max(from),
                },
                updated,
            ));
        }
    }

    // Host lines that arrive after their session was linked (a later read of the same
    // stream): the sessions already known from the host on those machines.
    let unowned: Vec<&Command> = commands
        .iter()
        .filter(|c| c.session_id.is_none() && matches!(c.source.as_str(), "sudo" | "auditd"))
        .collect();
    if !unowned.is_empty() {
        let targets: Vec<String> = unowned.iter().filter_map(|c| c.target.clone()).collect();
        let first = unowned.iter().map(|c| c.time).min().unwrap_or(now);
        let last = unowned.iter().map(|c| c.time).max().unwrap_or(now);
        let filter = in_list("target", &targets)
            .and(col("logged").eq(lit("host_only")))
            .and(days_between(
                first - Duration::seconds(correlate::OPEN_SESSION_SPAN),
                last,
            ));
        let linked_sessions: std::collections::HashSet<String> =
            links.iter().map(|(l, _)| l.session_id.clone()).collect();
        for session in lake
            .rows_matching::<Session>(Table::Sessions, filter)
            .await?
        {
            if linked_sessions.contains(&session.session_id) {
                continue;
            }
            if let (Some((from, to)), Some(target)) =
                (correlate::window(&session), session.target.clone())
            {
                links.push((
                    Link {
                        session_id: session.session_id.clone(),
                        target,
                        os_user: session.run_as.clone(),
                        from,
                        to,
                    },
                    session,
                ));
            }
        }
    }

    // 4. The host's own events and commands in those windows, by that OS user.
    for event in host.iter_mut().filter(|e| e.session_id.is_none()) {
        if let Some((link, _)) = links.iter().find(|(l, _)| {
            l.owns(
                event.target.as_deref().or(event.host.as_deref()),
                event.time,
                event.user.as_deref(),
            )
        }) {
            event.session_id = Some(link.session_id.clone());
        }
    }
    correlate::attribute_commands(commands, &links);
    if !links.is_empty() {
        let targets: Vec<String> = links.iter().map(|(l, _)| l.target.clone()).collect();
        let first = links.iter().map(|(l, _)| l.from).min().unwrap_or(now);
        let last = links.iter().map(|(l, _)| l.to).max().unwrap_or(now);
        let filter = in_list("target", &targets)
            .and(in_list(
                "source",
                &["sudo".to_string(), "auditd".to_string()],
            ))
            .and(col("session_id").is_null())
            .and(days_between(first, last));
        let mut earlier = lake
            .rows_matching::<Command>(Table::Commands, filter)
            .await?;
        let batch_ids: std::collections::HashSet<&str> =
            commands.iter().map(|c| c.event_id.as_str()).collect();
        earlier.retain(|c| !batch_ids.contains(c.event_id.as_str()));
        if correlate::attribute_commands(&mut earlier, &links) > 0 {
            earlier.retain(|c| c.session_id.is_some());
            let ids: Vec<String> = earlier.iter().map(|c| c.event_id.clone()).collect();
            lake.replace_by_key("event_id", &ids, &earlier, txns)
                .await?;
        }
    }

    // 5. Sessions with no record: pending within the grace, then none.
    let grace = lake.unlogged_grace();
    for session in changed.iter_mut() {
        correlate::settle_logged(session, now, grace);
        sessions.insert(session.session_id.clone(), session.clone());
    }
    // Only recent days are looked at (a session stays pending for minutes, and any batch
    // settles it), so this costs a few days' files, not the table.
    let pending = lake
        .rows_matching::<Session>(
            Table::Sessions,
            col("logged").eq(lit("pending")).and(days_between(
                now - Duration::days(30),
                now + Duration::days(1),
            )),
        )
        .await?;
    for mut session in pending {
        if changed.iter().any(|s| s.session_id == session.session_id) {
            continue;
        }
        correlate::settle_logged(&mut session, now, grace);
        if session.logged != "pending" {
            sessions.insert(session.session_id.clone(), session.clone());
            changed.push(session);
        }
    }
    Ok(result)
}
