//! Loading what a batch needs from the lake, once, before anything is decided.
//!
//! Every read names the batch's own keys (ids, session ids, instance ids) and, where rows have
//! a time, the batch's own times, so the lake reads the row groups that can hold them and its
//! cost follows the batch, not the table ([`crate::lake::Filter`]). The reads come in two
//! rounds, each run concurrently: the first needs only the batch; the second needs the stored
//! sessions of the first (which SSH sessions now wait for a login, which sessions learn their
//! CloudTrail record). Nothing is read after a decision, and nothing the batch writes is read
//! back.

use std::collections::{HashMap, HashSet};

use auditq_model::{Alert, Command, HostEvent, Name, Session, Table, Timestamp};
use chrono::Duration;

use super::batch::Batch;
use super::decide::{Stored, days_around, host_session_ids, learning_sessions, merge_sessions};
use crate::correlate;
use crate::error::Result;
use crate::lake::{Filter, Lake};
use crate::process;

/// How far apart two copies of one record's time may be: none (a duplicate carries the same
/// time), plus a second for clocks rounded differently by two routes of one record.
const SAME_TIME: i64 = 1;

/// Loads the stored rows `batch` could collide with or update (and, when `alerting`, the
/// alerts already raised for its events).
pub async fn load(lake: &Lake, batch: &Batch, now: Timestamp, alerting: bool) -> Result<Stored> {
    let span = Duration::seconds(correlate::OPEN_SESSION_SPAN);

    // Round 1: from the batch alone.
    let mut session_ids: Vec<String> = batch.fragments.keys().cloned().collect();
    session_ids.extend(host_session_ids(&batch.host));
    let sessions = lake.rows::<Session>(Filter::all().any_of("session_id", session_ids));

    let logins: Vec<&HostEvent> = batch
        .host
        .iter()
        .filter(|e| correlate::is_login(e))
        .collect();
    let ssh_sessions = async {
        let targets: Vec<&str> = logins.iter().filter_map(|l| l.target.as_deref()).collect();
        let (Some(first), Some(last)) = (
            logins.iter().map(|l| l.time).min(),
            logins.iter().map(|l| l.time).max(),
        ) else {
            return Ok(Vec::new());
        };
        let (from, to) = days_around(first - span, last);
        lake.rows::<Session>(
            Filter::all()
                .dates(from, to)
                .any_of("target", targets)
                .any_of("kind", correlate::LOGIN_KINDS),
        )
        .await
    };

    let unowned: Vec<&Command> = batch
        .commands
        .iter()
        .filter(|c| c.session_id.is_none() && matches!(c.source.as_str(), "sudo" | "auditd"))
        .collect();
    let host_only = async {
        let targets: Vec<&str> = unowned.iter().filter_map(|c| c.target.as_deref()).collect();
        let (Some(first), Some(last)) = (
            unowned.iter().map(|c| c.time).min(),
            unowned.iter().map(|c| c.time).max(),
        ) else {
            return Ok(Vec::new());
        };
        let (from, to) = days_around(first - span, last);
        lake.rows::<Session>(
            Filter::all()
                .dates(from, to)
                .any_of("target", targets)
                .any_of("logged", ["host_only"]),
        )
        .await
    };

    let (from, to) = days_around(now - Duration::days(30), now + Duration::days(1));
    let pending = lake.rows::<Session>(Filter::all().dates(from, to).any_of("logged", ["pending"]));

    // Commands of the batch's sessions: a stream is read again from its head, a transcript may
    // be uploaded again, so its commands are looked for by session, wherever they are.
    let recorded: HashSet<String> = batch
        .commands
        .iter()
        .filter(|c| process::is_recording(c))
        .filter_map(|c| c.session_id.clone())
        .collect();
    let session_commands = lake.rows::<Command>(Filter::all().any_of("session_id", recorded));

    // Everything else is looked up by its own id near its own time: a duplicate (CloudTrail's
    // repeated deliveries, a host log read twice) carries the same time.
    let same = Duration::seconds(SAME_TIME);
    let trail_ids = lake.ids_near(
        Table::Cloudtrail,
        "event_id",
        batch.trail.iter().map(|e| (e.event_id.clone(), e.time)),
        same,
    );
    let host_ids = lake.ids_near(
        Table::HostEvents,
        "event_id",
        batch.host.iter().map(|e| (e.event_id.clone(), e.time)),
        same,
    );
    let loose: Vec<&Command> = batch
        .commands
        .iter()
        .filter(|c| !process::is_recording(c))
        .collect();
    let command_ids = lake.ids_near(
        Table::Commands,
        "event_id",
        loose.iter().map(|c| (c.event_id.clone(), c.time)),
        same,
    );
    // A reject's time is when it was set aside, which a retry changes: looked up by id alone
    // (rejects are few).
    let reject_ids = lake.ids(
        Table::Rejects,
        Filter::all().any_of("event_id", batch.rejects.iter().map(|r| r.event_id.clone())),
    );

    // Execs already stored that the batch's execs may descend from: on the same instances,
    // with the pid of one's parent (or its own, for an exec replacing its process), not older
    // than a parent is followed ([`process::MAX_PARENT_AGE`]).
    let execs: Vec<&HostEvent> = batch.host.iter().filter(|e| process::is_exec(e)).collect();
    let ancestors = async {
        let (Some(first), Some(last)) = (
            execs.iter().map(|e| e.time).min(),
            execs.iter().map(|e| e.time).max(),
        ) else {
            return Ok(Vec::new());
        };
        let from = first - Duration::seconds(process::MAX_PARENT_AGE);
        let (days_from, days_to) = days_around(from, last);
        let pids: HashSet<String> = execs
            .iter()
            .flat_map(|e| [e.pid, e.ppid])
            .flatten()
            .map(|pid| pid.to_string())
            .collect();
        lake.rows::<HostEvent>(
            Filter::all()
                .dates(days_from, days_to)
                .between("time", from, last)
                .any_of("target", execs.iter().filter_map(|e| e.target.clone()))
                .any_of("program", ["auditd"])
                .any_of("action", ["exec"])
                .any_of("pid", pids),
        )
        .await
    };

    let (sessions, ssh_sessions, host_only, pending, session_commands, ancestors) = futures::try_join!(
        sessions,
        ssh_sessions,
        host_only,
        pending,
        session_commands,
        ancestors
    )?;
    let (trail_ids, host_ids, command_ids, reject_ids) =
        futures::try_join!(trail_ids, host_ids, command_ids, reject_ids)?;
    let mut stored = Stored {
        sessions: sessions
            .into_iter()
            .map(|s| (s.session_id.clone(), s))
            .collect(),
        ssh_sessions,
        host_only,
        pending,
        session_commands,
        ancestors,
        ids: HashMap::from([
            (Table::Cloudtrail, trail_ids),
            (Table::HostEvents, host_ids),
            (Table::Commands, command_ids),
            (Table::Rejects, reject_ids),
        ]),
        ..Stored::default()
    };

    // Round 2: what the stored sessions make necessary.

    // auditd events of the batch already stored: a part of them was read before (a boundary
    // split their records), or the same records are read again.
    let split: Vec<&HostEvent> = batch
        .host
        .iter()
        .filter(|e| e.program == "auditd" && stored.has(Table::HostEvents, &e.event_id))
        .collect();
    let split_host = lake.rows::<HostEvent>(
        Filter::all()
            .near("time", split.iter().map(|e| e.time), same)
            .any_of("event_id", split.iter().map(|e| e.event_id.clone())),
    );
    let (_, changed, _) = merge_sessions(&batch.fragments, &stored.sessions);
    let learned = learning_sessions(&changed, &stored.sessions);
    let learned_commands = lake.rows::<Command>(Filter::all().any_of("session_id", learned));

    // The history of every name the batch's rows may be labelled with: their instances and
    // accounts, and what the batch names (the table is small: read by key, whatever the time).
    let mut named: HashSet<String> = batch.names.iter().map(|n| n.key.clone()).collect();
    let places = batch
        .commands
        .iter()
        .flat_map(|c| [&c.target, &c.account])
        .chain(batch.host.iter().map(|e| &e.target))
        .chain(batch.trail.iter().map(|e| &e.account))
        .chain(
            changed
                .iter()
                .chain(stored.sessions.values())
                .flat_map(|s| [&s.target, &s.account]),
        )
        .flatten();
    named.extend(places.cloned());
    let names = lake.rows::<Name>(Filter::all().any_of("key", named));

    // SSH sessions that may now meet a stored login (a superset: decisions narrow it).
    let waiting: Vec<&Session> = changed
        .iter()
        .chain(&stored.ssh_sessions)
        .filter(|s| correlate::carries_ssh(s) && s.target.is_some())
        .collect();
    let windows: Vec<(Timestamp, Timestamp)> = waiting
        .iter()
        .filter_map(|s| correlate::window(s))
        .collect();
    let stored_logins = async {
        let (Some(first), Some(last)) = (
            windows.iter().map(|w| w.0).min(),
            windows.iter().map(|w| w.1).max(),
        ) else {
            return Ok(Vec::new());
        };
        let (from, to) = days_around(first, last);
        lake.rows::<HostEvent>(
            Filter::all()
                .dates(from, to)
                .any_of("target", waiting.iter().filter_map(|s| s.target.clone()))
                .any_of("program", ["sshd"])
                .any_of("action", ["login"]),
        )
        .await
    };

    // Host commands not attributed yet, on every target a session may be linked on now.
    let mut spans: Vec<(String, Timestamp, Timestamp)> = Vec::new();
    for login in &logins {
        if let Some(target) = &login.target {
            spans.push((target.clone(), login.time - span, login.time + span));
        }
    }
    for session in waiting.iter().copied().chain(&stored.host_only) {
        if let (Some((from, to)), Some(target)) = (correlate::window(session), &session.target) {
            spans.push((target.clone(), from, to));
        }
    }
    let unattributed = async {
        let (Some(first), Some(last)) = (
            spans.iter().map(|s| s.1).min(),
            spans.iter().map(|s| s.2).max(),
        ) else {
            return Ok(Vec::new());
        };
        let (from, to) = days_around(first, last);
        lake.rows::<Command>(
            Filter::all()
                .dates(from, to)
                .any_of("target", spans.iter().map(|s| s.0.clone()))
                .any_of("source", ["sudo", "auditd"])
                .is_null("session_id"),
        )
        .await
    };

    // Alerts already raised for the batch's events and sessions (a batch replayed after a
    // crash raises nothing twice), looked up near the time each alert carries: its event's
    // time, or its session's start (which an earlier record of the session may still move: a
    // day of slack).
    let mut events: Vec<(String, Timestamp)> = Vec::new();
    let mut sessions: Vec<(String, Timestamp)> = Vec::new();
    if alerting {
        events.extend(batch.trail.iter().map(|e| (e.event_id.clone(), e.time)));
        events.extend(batch.host.iter().map(|e| (e.event_id.clone(), e.time)));
        events.extend(batch.commands.iter().map(|c| (c.event_id.clone(), c.time)));
        // Stored execs the batch's recordings may show rules again (seen or not, now known).
        events.extend(
            stored
                .session_commands
                .iter()
                .filter(|c| c.source == "auditd")
                .map(|c| (c.event_id.clone(), c.time)),
        );
        let (batch_sessions, _, _) = merge_sessions(&batch.fragments, &stored.sessions);
        sessions.extend(
            batch_sessions
                .values()
                .chain(&stored.ssh_sessions)
                .chain(&stored.host_only)
                .chain(&stored.pending)
                .chain(stored.sessions.values())
                .filter_map(|s| Some((s.session_id.clone(), s.started_at.or(s.ended_at)?))),
        );
        sessions.extend(
            batch
                .host
                .iter()
                .filter(|e| correlate::is_login(e))
                .filter_map(|e| Some((correlate::host_session(e)?.session_id, e.time))),
        );
    }
    let alerts_of = |keys: Vec<(String, Timestamp)>, slack: Duration| {
        lake.ids_near(Table::Alerts, "event_id", keys, slack)
    };
    let alerts = async {
        let (mut by_event, by_session) = futures::try_join!(
            alerts_of(events, Duration::seconds(SAME_TIME)),
            alerts_of(sessions, Duration::days(1)),
        )?;
        by_event.extend(by_session);
        Ok::<_, crate::error::IngestError>(by_event)
    };

    // The sessions the batch's execs may belong to (a session worker's, an ancestor's), with
    // what their recordings show (whether an exec shows in it).
    let mut process_sessions: HashSet<String> = execs
        .iter()
        .filter_map(|e| process::session_root(e))
        .collect();
    process_sessions.extend(stored.ancestors.iter().filter_map(|e| e.session_id.clone()));
    // Sessions known only from the host count their commands: every stored one of those the
    // batch may attribute commands to.
    process_sessions.extend(host_session_ids(&batch.host));
    process_sessions.extend(
        stored
            .ssh_sessions
            .iter()
            .chain(&stored.host_only)
            .chain(waiting.iter().copied())
            .map(|s| s.session_id.clone()),
    );
    let unknown: Vec<String> = process_sessions
        .iter()
        .filter(|id| !stored.sessions.contains_key(*id))
        .cloned()
        .collect();
    let process_sessions_rows = lake.rows::<Session>(Filter::all().any_of("session_id", unknown));
    let process_commands =
        lake.rows::<Command>(Filter::all().any_of("session_id", process_sessions));

    let (
        learned_commands,
        logins,
        unattributed,
        alerts,
        process_sessions_rows,
        process_commands,
        split_host,
        names,
    ) = futures::try_join!(
        learned_commands,
        stored_logins,
        unattributed,
        alerts,
        process_sessions_rows,
        process_commands,
        split_host,
        names
    )?;
    stored.split_host = split_host;
    stored.names = names;
    for session in process_sessions_rows {
        stored.sessions.insert(session.session_id.clone(), session);
    }
    let mut known: HashSet<String> = stored
        .session_commands
        .iter()
        .map(|c| c.event_id.clone())
        .collect();
    for command in learned_commands.into_iter().chain(process_commands) {
        if known.insert(command.event_id.clone()) {
            stored.session_commands.push(command);
        }
    }
    stored.logins = logins;
    stored.unattributed = unattributed;

    // Round 3, rare: direct logins stored as sessions of their own that an Instance Connect
    // access of the batch explains ([`correlate::claimed_by`]); their rows move to the access.
    let accesses: Vec<&Session> = changed
        .iter()
        .filter(|s| s.kind == "instance_connect")
        .collect();
    let claimed: Vec<String> = stored
        .logins
        .iter()
        .filter_map(|l| correlate::claimed_by(l, &accesses).map(|(id, _)| id))
        .collect();
    if !claimed.is_empty() {
        let (sessions, commands, host) = futures::try_join!(
            lake.rows::<Session>(Filter::all().any_of("session_id", claimed.clone())),
            lake.rows::<Command>(Filter::all().any_of("session_id", claimed.clone())),
            lake.rows::<HostEvent>(Filter::all().any_of("session_id", claimed)),
        )?;
        for session in sessions {
            stored.sessions.insert(session.session_id.clone(), session);
        }
        for command in commands {
            if known.insert(command.event_id.clone()) {
                stored.session_commands.push(command);
            }
        }
        stored.claimed_host = host;
    }
    stored.alerts = alerts;
    Ok(stored)
}

/// Stored alerts by id (to mark those the outbox delivered as published).
pub async fn alerts_by_id(lake: &Lake, ids: &[String]) -> Result<Vec<Alert>> {
    lake.rows::<Alert>(Filter::all().any_of("alert_id", ids.iter().cloned()))
        .await
}
