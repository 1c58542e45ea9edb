//! What a batch changes, decided from the batch and the stored rows it loaded: pure functions,
//! no I/O, so that every decision of the write path is unit-tested with literals.
//!
//! The steps, in order:
//! 1. sessions: the batch's fragments of each session are folded with its stored row;
//! 2. host correlation ([`crate::correlate`]): sshd logins join the SSH and port-forwarding
//!    sessions they belong to (stored or new), SSH logins no Session Manager session carried
//!    become sessions of their own, the host's sudo and auditd commands are attributed to them
//!    (earlier ones too), and sessions with no record settle to `pending`, then `none`;
//! 3. commands learn who and where from their session;
//! 4. rows already stored are dropped (their ids were loaded), and stored rows that changed are
//!    replaced: a stream command revised by a longer read of its stream, the commands of a
//!    session whose CloudTrail record arrived after them, host commands attributed late.

use std::collections::{BTreeMap, HashMap, HashSet};

use auditq_model::{
    Command, HostEvent, Name, Position, Reject, Row, Session, Table, Timestamp, TrailEvent,
};
use auditq_rules::EventView;
use chrono::{Duration, NaiveDate};

use super::batch::Batch;
use super::summary::TableCount;
use crate::correlate::{self, Link};
use crate::process;
use crate::session::{SessionFragment, enrich_command, merge};
use auditq_parse::host::command_id;

/// The stored rows a batch could collide with or update, loaded once before anything is
/// decided ([`super::load`]). Each set may hold more than the decisions use: they re-apply
/// their own conditions.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Sessions by id: those the batch has fragments of, and those its SSH logins would make.
    pub sessions: HashMap<String, Session>,
    /// SSH and port-forwarding sessions on the targets of the batch's sshd logins.
    pub ssh_sessions: Vec<Session>,
    /// Sessions known only from the host, on the targets of the batch's unattributed host
    /// commands.
    pub host_only: Vec<Session>,
    /// Sessions still waiting for a recording (`logged = pending`).
    pub pending: Vec<Session>,
    /// sshd logins on the targets of the SSH sessions the batch changes.
    pub logins: Vec<HostEvent>,
    /// The stored commands of the sessions whose commands the batch carries, or whose who and
    /// where it learns.
    pub session_commands: Vec<Command>,
    /// Host commands not attributed to a session yet, on the targets the batch links.
    pub unattributed: Vec<Command>,
    /// Stored execs the batch's execs may descend from ([`crate::process`]).
    pub ancestors: Vec<HostEvent>,
    /// Stored auditd events the batch holds more records of (an event a boundary split).
    pub split_host: Vec<HostEvent>,
    /// Stored host lines of sessions an access of the batch claims
    /// ([`correlate::claimed_by`]).
    pub claimed_host: Vec<HostEvent>,
    /// The stored history of every name the batch's rows may carry ([`crate::names`]).
    pub names: Vec<Name>,
    /// Ids of the batch's rows already stored, per table.
    pub ids: HashMap<Table, HashSet<String>>,
    /// Ids of alerts already stored for the batch's events and sessions.
    pub alerts: HashSet<String>,
}

impl Stored {
    pub fn has(&self, table: Table, id: &str) -> bool {
        self.ids.get(&table).is_some_and(|ids| ids.contains(id))
    }
}

/// What the write path does with a batch.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// New CloudTrail records.
    pub trail: Vec<TrailEvent>,
    /// New host log lines.
    pub host: Vec<HostEvent>,
    /// New commands.
    pub commands: Vec<Command>,
    /// New rejects.
    pub rejects: Vec<Reject>,
    /// The batch's source positions.
    pub positions: Vec<Position>,
    /// Sessions whose row is new or changed (each replaces the stored one).
    pub sessions: Vec<Session>,
    /// Stored commands whose row changed, and when the stored version happened (where to find
    /// it).
    pub replaced_commands: Vec<(Command, Timestamp)>,
    /// Of those, the stream commands a longer read revised (rules see their new text).
    pub revised: Vec<Command>,
    /// Stored auditd events joined with more of their records, and stored host lines that
    /// moved to another session (each replaces the stored row).
    pub replaced_host: Vec<HostEvent>,
    /// Stored sessions another one took the place of (a direct login's, which an Instance
    /// Connect access read later explains): removed.
    pub retired_sessions: Vec<String>,
    /// Names changed by the batch.
    pub names: Vec<Name>,
    /// Stored names a change of the batch now follows (their `valid_to` moved).
    pub replaced_names: Vec<Name>,
    /// Rows read and added per table.
    pub counts: BTreeMap<Table, TableCount>,
    /// The time of the newest command or CloudTrail record read.
    pub newest_event: Option<Timestamp>,
    /// Secrets replaced by tokens.
    pub redactions: usize,
}

impl Decision {
    /// What rules see: every new event, the new text of revised commands, and every new or
    /// changed session.
    pub fn events(&self) -> Vec<&(dyn EventView + Sync)> {
        let mut events: Vec<&(dyn EventView + Sync)> = Vec::with_capacity(
            self.trail.len()
                + self.host.len()
                + self.commands.len()
                + self.revised.len()
                + self.sessions.len(),
        );
        events.extend(self.trail.iter().map(|e| e as &(dyn EventView + Sync)));
        events.extend(self.host.iter().map(|e| e as &(dyn EventView + Sync)));
        events.extend(
            self.commands
                .iter()
                .filter(|c| !process::repeats_an_act(c))
                .map(|e| e as &(dyn EventView + Sync)),
        );
        events.extend(self.revised.iter().map(|e| e as &(dyn EventView + Sync)));
        events.extend(self.sessions.iter().map(|e| e as &(dyn EventView + Sync)));
        events
    }
}

/// The days from the day before `from` to the day of `to`: where rows timed between them are
/// (the day before for clocks that differ across midnight).
pub fn days_around(from: Timestamp, to: Timestamp) -> (NaiveDate, NaiveDate) {
    (
        (from - Duration::days(1)).date_naive(),
        to.date_naive().max((from - Duration::days(1)).date_naive()),
    )
}

fn within(date: NaiveDate, (from, to): (NaiveDate, NaiveDate)) -> bool {
    date >= from && date <= to
}

/// The sessions the batch's fragments make, folded with their stored rows; which of them are
/// new or changed; and their counts.
pub fn merge_sessions(
    fragments: &BTreeMap<String, Vec<SessionFragment>>,
    stored: &HashMap<String, Session>,
) -> (HashMap<String, Session>, Vec<Session>, TableCount) {
    let mut sessions = HashMap::new();
    let mut changed = Vec::new();
    let mut count = TableCount::default();
    for (id, group) in fragments {
        let old = stored.get(id);
        let mut group: Vec<&SessionFragment> = group.iter().collect();
        let from_row = old.map(SessionFragment::from_row);
        group.extend(from_row.as_ref());
        let Some(session) = merge(group) else {
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
        sessions.insert(id.clone(), session);
    }
    (sessions, changed, count)
}

/// The sessions the batch's direct SSH logins would make, by id.
pub fn host_session_ids(host: &[HostEvent]) -> Vec<String> {
    host.iter()
        .filter(|e| correlate::is_login(e) && !correlate::is_tunnelled(e.source_ip.as_deref()))
        .filter_map(correlate::host_session)
        .map(|s| s.session_id)
        .collect()
}

/// The sessions whose CloudTrail record the batch brings after their commands may have been
/// stored (a stream or transcript read first, or auditd's execs below the session's worker,
/// which come before any row of the session): their stored commands learn who and where.
pub fn learning_sessions(changed: &[Session], stored: &HashMap<String, Session>) -> Vec<String> {
    changed
        .iter()
        .filter(|s| match stored.get(&s.session_id) {
            None => true,
            Some(old) => s.start_event_id.is_some() && old.start_event_id.is_none(),
        })
        .map(|s| s.session_id.clone())
        .collect()
}

/// Decides what a batch changes.
pub fn decide(batch: Batch, stored: &Stored, grace: Duration, now: Timestamp) -> Decision {
    let Batch {
        trail,
        fragments,
        mut commands,
        mut host,
        rejects,
        positions,
        redactions,
        rejoined,
        names,
    } = batch;
    let mut decision = Decision {
        positions,
        redactions,
        ..Decision::default()
    };

    // 1. Sessions, and the names in force.
    let (mut sessions, mut changed, mut count) = merge_sessions(&fragments, &stored.sessions);
    let read = names.len();
    let named = crate::names::merge(&stored.names, names);
    decision.counts.insert(
        Table::Names,
        TableCount {
            read,
            added: named.added.len(),
            updated: named.replaced.len(),
        },
    );

    // 2. Host correlation: process trees first (an exec below a session worker or a stored
    // ancestor is that session's, whatever its user), then logins, then the trees again (the
    // descendants of what a login's user ran).
    let parents = process::attribute(&mut host, &stored.ancestors);
    follow_execs(&host, &parents, &mut commands);
    let correlated = correlate_hosts(
        &mut sessions,
        &mut changed,
        &mut host,
        &mut commands,
        stored,
        grace,
        now,
    );
    let parents = process::attribute(&mut host, &stored.ancestors);
    follow_execs(&host, &parents, &mut commands);
    count.read += correlated.host_sessions;
    count.added += correlated.new_sessions;
    decision.counts.insert(Table::Sessions, count);
    decision.newest_event = trail
        .iter()
        .map(|e| e.time)
        .chain(commands.iter().map(|c| c.time))
        .max();

    // 3. Commands learn who and where, and execs whether their session's recording shows them.
    // (Their session may be known only from the lake: the execs below a stored session's worker.)
    let session_of = |command: &Command| {
        let id = command.session_id.as_ref()?;
        sessions.get(id).or(stored.sessions.get(id))
    };
    for command in &mut commands {
        if let Some(session) = session_of(command) {
            enrich_command(command, session);
        }
        named.names.label_command(command);
    }
    let recorded = recordings(&commands, &stored.session_commands);
    for command in commands.iter_mut().filter(|c| c.source == "auditd") {
        command.seen_in_transcript = seen(command, &recorded);
    }

    // 4. New rows, and stored rows that changed.
    let stored_commands: HashMap<&str, &Command> = stored
        .session_commands
        .iter()
        .map(|c| (c.event_id.as_str(), c))
        .collect();
    let mut replaced: BTreeMap<String, (Command, Timestamp)> = BTreeMap::new();
    // A live stream is read again as it grows: a command stored while still being typed (or a
    // line later abandoned) is revised to what the grown stream says.
    for new in commands.iter().filter(|c| c.source == "stream") {
        if let Some(old) = stored_commands.get(new.event_id.as_str())
            && old.source == new.source
            && (old.cmd != new.cmd
                || old.time != new.time
                || old.run_as != new.run_as
                || old.cwd != new.cwd)
        {
            decision.revised.push(new.clone());
            replaced.insert(new.event_id.clone(), (new.clone(), old.time));
        }
    }
    // Commands stored before their session's CloudTrail record arrived learn who/where now.
    let learned: HashSet<String> = learning_sessions(&changed, &stored.sessions)
        .into_iter()
        .collect();
    for old in stored
        .session_commands
        .iter()
        .filter(|c| c.session_id.as_ref().is_some_and(|s| learned.contains(s)))
    {
        let mut command = replaced
            .get(&old.event_id)
            .map_or_else(|| old.clone(), |(c, _)| c.clone());
        if let Some(session) = command.session_id.as_ref().and_then(|id| sessions.get(id)) {
            enrich_command(&mut command, session);
        }
        if command != *old {
            replaced.insert(old.event_id.clone(), (command, old.time));
        }
    }
    // Each command the batch attributes, by session: what host-only sessions count.
    let mut counted: Vec<(String, String)> = commands
        .iter()
        .chain(&correlated.attributed)
        .filter_map(|c| Some((c.session_id.clone()?, c.event_id.clone())))
        .collect();
    let moved: HashSet<&str> = correlated
        .attributed
        .iter()
        .map(|c| c.event_id.as_str())
        .collect();
    counted.extend(
        stored
            .session_commands
            .iter()
            .filter(|c| !moved.contains(c.event_id.as_str()))
            .filter_map(|c| Some((c.session_id.clone()?, c.event_id.clone()))),
    );
    decision.retired_sessions = correlated.retired.clone();
    decision
        .replaced_host
        .extend(correlated.moved_host.iter().cloned());
    changed.retain(|s| !correlated.retired.contains(&s.session_id));
    for command in correlated.attributed {
        let time = command.time;
        replaced
            .entry(command.event_id.clone())
            .or_insert((command, time));
    }
    // Stored execs of sessions whose recording the batch brings: shown in it or not, now.
    for old in stored
        .session_commands
        .iter()
        .filter(|c| c.source == "auditd")
    {
        let current = replaced
            .get(&old.event_id)
            .map_or(old.seen_in_transcript, |(c, _)| c.seen_in_transcript);
        let now_seen = seen(old, &recorded);
        if now_seen.is_none() || now_seen == current {
            continue;
        }
        let mut command = replaced
            .get(&old.event_id)
            .map_or_else(|| old.clone(), |(c, _)| c.clone());
        command.seen_in_transcript = now_seen;
        if let Some(session) = session_of(&command) {
            enrich_command(&mut command, session);
        }
        if now_seen == Some(false) {
            // Rules see an exec once it is known not to show in the recording.
            decision.revised.push(command.clone());
        }
        replaced.insert(old.event_id.clone(), (command, old.time));
    }
    // The commands of auditd events joined with a stored part replace what that part made.
    let rejoined_commands: HashSet<String> = rejoined.iter().map(|id| command_id(id)).collect();
    for command in commands
        .iter()
        .filter(|c| rejoined_commands.contains(&c.event_id))
    {
        if stored.has(Table::Commands, &command.event_id)
            || stored_commands.contains_key(command.event_id.as_str())
        {
            replaced.insert(command.event_id.clone(), (command.clone(), command.time));
        }
    }
    decision.replaced_commands = replaced
        .into_values()
        .map(|(mut command, at)| {
            named.names.label_command(&mut command);
            (command, at)
        })
        .collect();

    let read = commands.len();
    decision.commands = fresh(commands, |c| {
        stored.has(Table::Commands, &c.event_id)
            || stored_commands.contains_key(c.event_id.as_str())
    });
    count_host_commands(&mut changed, &counted, &sessions, stored);
    decision.counts.insert(
        Table::Commands,
        TableCount {
            read,
            added: decision.commands.len(),
            updated: decision.revised.len(),
        },
    );
    let read = trail.len();
    decision.trail = fresh(trail, |e| stored.has(Table::Cloudtrail, &e.event_id));
    decision.counts.insert(
        Table::Cloudtrail,
        TableCount::new(read, decision.trail.len()),
    );
    let read = host.len();
    let (rejoined_host, host): (Vec<HostEvent>, Vec<HostEvent>) = host
        .into_iter()
        .partition(|e| rejoined.contains(&e.event_id));
    decision.replaced_host.extend(rejoined_host);
    decision.host = fresh(host, |e| stored.has(Table::HostEvents, &e.event_id));
    decision.counts.insert(
        Table::HostEvents,
        TableCount {
            read,
            added: decision.host.len(),
            updated: decision.replaced_host.len(),
        },
    );
    let read = rejects.len();
    decision.rejects = fresh(rejects, |r| stored.has(Table::Rejects, &r.event_id));
    decision.counts.insert(
        Table::Rejects,
        TableCount::new(read, decision.rejects.len()),
    );
    for session in &mut changed {
        named.names.label_session(session);
    }
    decision.sessions = changed;
    decision.names = named.added;
    decision.replaced_names = named.replaced;
    decision
}

/// Gives each exec's command its session (when its exec found one and the command has none)
/// and its parent's command line.
fn follow_execs(
    host: &[HostEvent],
    parents: &HashMap<usize, Option<String>>,
    commands: &mut [Command],
) {
    let by_command: HashMap<String, usize> = parents
        .keys()
        .map(|&i| (command_id(&host[i].event_id), i))
        .collect();
    for command in commands.iter_mut().filter(|c| c.source == "auditd") {
        let Some(&i) = by_command.get(&command.event_id) else {
            continue;
        };
        if command.session_id.is_none() {
            command.session_id = host[i].session_id.clone();
        }
        if let Some(parent) = &parents[&i] {
            command.parent_cmd = Some(parent.clone());
        }
    }
}

/// What each session's recording (stream or transcript) shows, from the batch and the stored
/// commands loaded for it.
fn recordings(batch: &[Command], stored: &[Command]) -> HashMap<String, Vec<String>> {
    let mut seen_ids = HashSet::new();
    let mut recorded: HashMap<String, Vec<String>> = HashMap::new();
    for command in batch.iter().chain(stored) {
        if !process::is_recording(command) || !seen_ids.insert(command.event_id.as_str()) {
            continue;
        }
        if let Some(session) = &command.session_id {
            recorded
                .entry(session.clone())
                .or_default()
                .push(command.cmd.clone());
        }
    }
    recorded
}

/// Whether an exec shows in its session's recording; `None` when no recording is known.
fn seen(command: &Command, recorded: &HashMap<String, Vec<String>>) -> Option<bool> {
    let lines = recorded.get(command.session_id.as_deref()?)?;
    Some(process::seen_in(&command.cmd, lines))
}

/// A session known only from the host (and a Run Command invocation auditd saw run) counts the
/// commands attributed to it: `commands` holds
/// `(session, command id)` of the batch's and of every stored command of the sessions the batch
/// touches, so the count is what the commands table holds, however often a batch is retried.
fn count_host_commands(
    changed: &mut Vec<Session>,
    commands: &[(String, String)],
    sessions: &HashMap<String, Session>,
    stored: &Stored,
) {
    let mut ids: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (session, command) in commands {
        ids.entry(session.as_str())
            .or_default()
            .insert(command.as_str());
    }
    for (id, commands) in ids {
        let n = commands.len() as i64;
        let current = changed
            .iter()
            .find(|s| s.session_id == id)
            .or_else(|| sessions.get(id))
            .or_else(|| stored.sessions.get(id))
            .or_else(|| stored.host_only.iter().find(|s| s.session_id == id))
            .cloned();
        let Some(mut session) = current else {
            continue;
        };
        // A Run Command invocation whose execs auditd saw is known from the host.
        if session.kind == "run_command"
            && let Some(seen) = correlate::seen_on_host(&session, None)
        {
            session = seen;
        }
        if session.logged != "host_only" || session.commands == n {
            continue;
        }
        session.commands = n;
        upsert(changed, session);
    }
}

/// The rows not stored yet, each id once (the first of repeats, as CloudTrail's duplicate
/// deliveries within a batch).
fn fresh<R: Row>(rows: Vec<R>, stored: impl Fn(&R) -> bool) -> Vec<R> {
    let mut seen = HashSet::new();
    rows.into_iter()
        .filter(|r| !stored(r) && seen.insert(r.id().to_string()))
        .collect()
}

impl TableCount {
    fn new(read: usize, added: usize) -> Self {
        TableCount {
            read,
            added,
            updated: 0,
        }
    }
}

/// What correlating host logs changed.
#[derive(Debug, Default)]
struct Correlated {
    /// Sessions of SSH logins no Session Manager session carried.
    host_sessions: usize,
    /// Those of them new to the lake.
    new_sessions: usize,
    /// Stored host commands attributed to a session now.
    attributed: Vec<Command>,
    /// Stored sessions claimed by an access of the batch, and their host lines, moved to it.
    retired: Vec<String>,
    moved_host: Vec<HostEvent>,
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
/// this batch or stored), makes sessions of SSH logins no Session Manager session carried,
/// attributes the host's sudo and auditd commands to them, and settles `logged` of sessions
/// without any record (`pending`, then `none` after the grace).
fn correlate_hosts(
    sessions: &mut HashMap<String, Session>,
    changed: &mut Vec<Session>,
    host: &mut [HostEvent],
    commands: &mut [Command],
    stored: &Stored,
    grace: Duration,
    now: Timestamp,
) -> Correlated {
    let span = Duration::seconds(correlate::OPEN_SESSION_SPAN);
    let mut result = Correlated::default();
    let mut linked: Vec<(Session, HostEvent)> = Vec::new();

    // 1. Logins in this batch, against sessions in this batch or stored.
    let logins: Vec<usize> = (0..host.len())
        .filter(|&i| correlate::is_login(&host[i]))
        .collect();
    if !logins.is_empty() {
        let targets: HashSet<&str> = logins
            .iter()
            .filter_map(|&i| host[i].target.as_deref())
            .collect();
        // (Logins from files with no instance id name only their host: they can only be
        // sessions of their own, below.)
        let first = logins.iter().map(|&i| host[i].time).min().unwrap_or(now);
        let last = logins.iter().map(|&i| host[i].time).max().unwrap_or(now);
        let days = days_around(first - span, last);
        let mut candidates: HashMap<String, Session> = stored
            .ssh_sessions
            .iter()
            .filter(|s| s.target.as_deref().is_some_and(|t| targets.contains(t)))
            .filter(|s| correlate::LOGIN_KINDS.contains(&s.kind.as_str()))
            .filter(|s| within(s.date, days))
            .map(|s| (s.session_id.clone(), s.clone()))
            .collect();
        for session in sessions.values() {
            candidates.insert(session.session_id.clone(), session.clone());
        }
        let candidates: Vec<&Session> = candidates.values().collect();
        let mut direct = Vec::new();
        for &i in &logins {
            let login = &host[i];
            if let Some(session) = correlate::session_for_login(login, &candidates) {
                linked.push((session.clone(), login.clone()));
            } else if !correlate::is_tunnelled(login.source_ip.as_deref())
                && let Some(session) = correlate::host_session(login)
            {
                direct.push((session, login.clone()));
            }
        }
        result.host_sessions = direct.len();
        for (session, login) in direct {
            let known = stored.sessions.get(&session.session_id);
            if known != Some(&session) {
                if known.is_none() {
                    result.new_sessions += 1;
                }
                upsert(changed, session.clone());
                sessions.insert(session.session_id.clone(), session.clone());
            }
            linked.push((session, login));
        }
    }

    // 2. SSH sessions of this batch against logins already stored.
    let already: HashSet<&str> = linked.iter().map(|(l, _)| l.session_id.as_str()).collect();
    let waiting: Vec<Session> = changed
        .iter()
        .filter(|s| correlate::carries_ssh(s) && s.target.is_some())
        .filter(|s| !already.contains(s.session_id.as_str()))
        .cloned()
        .collect();
    if !waiting.is_empty() {
        let targets: HashSet<&str> = waiting.iter().filter_map(|s| s.target.as_deref()).collect();
        let windows: Vec<(Timestamp, Timestamp)> =
            waiting.iter().filter_map(correlate::window).collect();
        let first = windows.iter().map(|w| w.0).min().unwrap_or(now);
        let last = windows.iter().map(|w| w.1).max().unwrap_or(now);
        let days = days_around(first, last);
        let candidates: Vec<&Session> = waiting.iter().collect();
        let mut linked_ids: HashSet<String> =
            linked.iter().map(|(s, _)| s.session_id.clone()).collect();
        for login in stored
            .logins
            .iter()
            .filter(|l| l.target.as_deref().is_some_and(|t| targets.contains(t)))
            .filter(|l| l.program == "sshd" && l.action == "login" && within(l.date, days))
        {
            if let Some(session) = correlate::session_for_login(login, &candidates)
                && linked_ids.insert(session.session_id.clone())
            {
                linked.push((session.clone(), login.clone()));
            }
        }
        // A direct login read before the Instance Connect record that explains it became a
        // session of its own: the access takes its place, its commands and its host lines.
        for login in &stored.logins {
            let Some((claimed, access)) = correlate::claimed_by(login, &candidates) else {
                continue;
            };
            if stored
                .sessions
                .get(&claimed)
                .is_none_or(|s| s.kind != "host_ssh")
            {
                continue;
            }
            result.retired.push(claimed.clone());
            for command in stored
                .session_commands
                .iter()
                .filter(|c| c.session_id.as_deref() == Some(claimed.as_str()))
            {
                let mut command = command.clone();
                correlate::give_to(&mut command, access);
                result.attributed.push(command);
            }
            for event in stored
                .claimed_host
                .iter()
                .chain(std::iter::once(login))
                .filter(|e| e.session_id.as_deref() == Some(claimed.as_str()))
            {
                let mut event = event.clone();
                event.session_id = Some(access.session_id.clone());
                if !result
                    .moved_host
                    .iter()
                    .any(|e| e.event_id == event.event_id)
                {
                    result.moved_host.push(event);
                }
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
        let Some(mut updated) = correlate::with_login(&current, login) else {
            continue;
        };
        // A login no CloudTrail call ends (a direct SSH login, Instance Connect) ends when its
        // sshd session closes.
        if updated.ended_at.is_none()
            && let Some(closed) = correlate::login_closed(login, host)
                .or_else(|| correlate::login_closed(login, &stored.claimed_host))
        {
            updated.ended_at = Some(closed);
            updated.duration_seconds = updated
                .started_at
                .map(|start| (closed - start).num_seconds().max(0));
        }
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
        let targets: HashSet<&str> = unowned.iter().filter_map(|c| c.target.as_deref()).collect();
        let first = unowned.iter().map(|c| c.time).min().unwrap_or(now);
        let last = unowned.iter().map(|c| c.time).max().unwrap_or(now);
        let days = days_around(first - span, last);
        let linked_sessions: HashSet<String> =
            links.iter().map(|(l, _)| l.session_id.clone()).collect();
        for session in stored
            .host_only
            .iter()
            .filter(|s| s.target.as_deref().is_some_and(|t| targets.contains(t)))
            .filter(|s| s.logged == "host_only" && within(s.date, days))
        {
            if linked_sessions.contains(&session.session_id) {
                continue;
            }
            if let (Some((from, to)), Some(target)) =
                (correlate::window(session), session.target.clone())
            {
                links.push((
                    Link {
                        session_id: session.session_id.clone(),
                        target,
                        os_user: session.run_as.clone(),
                        from,
                        to,
                    },
                    session.clone(),
                ));
            }
        }
    }

    // 4. The host's own events and commands in those windows, by that OS user.
    for event in host.iter_mut().filter(|e| e.session_id.is_none()) {
        if let Some((link, _)) = links
            .iter()
            .filter(|(l, _)| {
                l.owns(
                    event.target.as_deref().or(event.host.as_deref()),
                    event.time,
                    event.user.as_deref(),
                )
            })
            .max_by_key(|(l, _)| l.from)
        {
            event.session_id = Some(link.session_id.clone());
        }
    }
    correlate::attribute_commands(commands, &links);
    if !links.is_empty() {
        let targets: HashSet<&str> = links.iter().map(|(l, _)| l.target.as_str()).collect();
        let first = links.iter().map(|(l, _)| l.from).min().unwrap_or(now);
        let last = links.iter().map(|(l, _)| l.to).max().unwrap_or(now);
        let days = days_around(first, last);
        let batch_ids: HashSet<&str> = commands.iter().map(|c| c.event_id.as_str()).collect();
        let mut earlier: Vec<Command> = stored
            .unattributed
            .iter()
            .filter(|c| c.target.as_deref().is_some_and(|t| targets.contains(t)))
            .filter(|c| matches!(c.source.as_str(), "sudo" | "auditd"))
            .filter(|c| c.session_id.is_none() && within(c.date, days))
            .filter(|c| !batch_ids.contains(c.event_id.as_str()))
            .cloned()
            .collect();
        if correlate::attribute_commands(&mut earlier, &links) > 0 {
            earlier.retain(|c| c.session_id.is_some());
            result.attributed.extend(earlier);
        }
    }

    // 5. Sessions with no record: pending within the grace, then none.
    for session in changed.iter_mut() {
        correlate::settle_logged(session, now, grace);
        sessions.insert(session.session_id.clone(), session.clone());
    }
    let recent = days_around(now - Duration::days(30), now + Duration::days(1));
    for session in stored
        .pending
        .iter()
        .filter(|s| s.logged == "pending" && within(s.date, recent))
    {
        if changed.iter().any(|s| s.session_id == session.session_id) {
            continue;
        }
        let mut session = session.clone();
        correlate::settle_logged(&mut session, now, grace);
        if session.logged != "pending" {
            sessions.insert(session.session_id.clone(), session.clone());
            changed.push(session);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Limits, Object, parse_object};

    fn at(text: &str) -> Timestamp {
        crate::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    const TARGET: &str = "i-0d4e5f60718293a44";

    fn trail(ids: &[&str]) -> Vec<TrailEvent> {
        let records: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    r#"{{"eventTime":"2026-10-06T12:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"{id}"}}"#
                )
            })
            .collect();
        let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        let object = Object {
            origin: "test",
            modified: at("2026-10-06T12:05:00Z"),
        };
        parse_object(body.into_bytes(), object, &Limits::default()).trail
    }

    fn ssh_session(id: &str, start: &str, end: &str) -> Session {
        let fragment = SessionFragment {
            from_trail: true,
            user: Some("bob".into()),
            principal_arn: Some("arn:aws:iam::111122223333:user/bob".into()),
            started_at: Some(at(start)),
            ended_at: Some(at(end)),
            target: Some(TARGET.into()),
            document: Some("AWS-StartSSHSession".into()),
            start_event_id: Some(format!("start-{id}")),
            ..SessionFragment::new(id.into())
        };
        merge([&fragment]).unwrap_or_else(|| panic!("no session"))
    }

    fn login(time: &str) -> HostEvent {
        HostEvent {
            event_id: format!("login-{time}"),
            time: at(time),
            date: at(time).date_naive(),
            user: Some("ec2-user".into()),
            run_as: None,
            host: Some("ip-10-0-0-44".into()),
            target: Some(TARGET.into()),
            source_ip: Some("127.0.0.1".into()),
            program: "sshd".into(),
            action: "login".into(),
            outcome: Some("success".into()),
            cmd: None,
            raw: String::new(),
            origin: "secure".into(),
            pid: Some(1),
            tty: None,
            cwd: None,
            auth: Some("publickey".into()),
            key: None,
            reason: None,
            audit_key: None,
            session_id: None,
            ppid: None,
            audit_session: None,
            exe: None,
        }
    }

    fn command(id: &str, time: &str, source: &str, user: Option<&str>) -> Command {
        Command {
            event_id: id.into(),
            time: at(time),
            date: at(time).date_naive(),
            user: user.map(str::to_string),
            principal_arn: None,
            run_as: Some("root".into()),
            target: Some(TARGET.into()),
            account: None,
            region: None,
            source_ip: None,
            cmd: "/usr/sbin/visudo".into(),
            cwd: None,
            session_id: None,
            seq: 0,
            source: source.into(),
            origin: "secure".into(),
            parent_cmd: None,
            seen_in_transcript: None,
            target_name: None,
            environment: None,
            account_alias: None,
        }
    }

    fn grace() -> Duration {
        Duration::minutes(15)
    }

    #[test]
    fn records_already_stored_or_repeated_in_the_batch_are_not_new() {
        let batch = Batch {
            trail: trail(&["e1", "e2", "e2", "e3"]),
            ..Batch::default()
        };
        let stored = Stored {
            ids: HashMap::from([(Table::Cloudtrail, HashSet::from(["e1".to_string()]))]),
            ..Stored::default()
        };
        let decision = decide(batch, &stored, grace(), at("2026-10-06T12:10:00Z"));
        let ids: Vec<&str> = decision.trail.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["e2", "e3"]);
        assert_eq!(decision.counts[&Table::Cloudtrail], TableCount::new(4, 2));
        assert_eq!(decision.events().len(), 2, "rules see only the new records");
    }

    #[test]
    fn a_login_joins_a_stored_ssh_session_and_its_user_s_earlier_sudo_commands_follow() {
        let session = ssh_session("bob-2", "2026-10-06T16:00:12Z", "2026-10-06T16:45:50Z");
        let batch = Batch {
            host: vec![login("2026-10-06T16:00:14Z")],
            ..Batch::default()
        };
        let stored = Stored {
            ssh_sessions: vec![session.clone()],
            unattributed: vec![
                command("sudo-1", "2026-10-06T16:02:40Z", "sudo", Some("ec2-user")),
                command("sudo-other", "2026-10-06T16:03:00Z", "sudo", Some("backup")),
                command(
                    "sudo-late",
                    "2026-10-06T17:30:00Z",
                    "sudo",
                    Some("ec2-user"),
                ),
            ],
            ..Stored::default()
        };
        let decision = decide(batch, &stored, grace(), at("2026-10-06T18:00:00Z"));
        let changed: Vec<(&str, &str, Option<&str>)> = decision
            .sessions
            .iter()
            .map(|s| {
                (
                    s.session_id.as_str(),
                    s.logged.as_str(),
                    s.run_as.as_deref(),
                )
            })
            .collect();
        assert_eq!(changed, [("bob-2", "host_only", Some("ec2-user"))]);
        assert_eq!(decision.host[0].session_id.as_deref(), Some("bob-2"));
        let attributed: Vec<(&str, Option<&str>, Option<&str>)> = decision
            .replaced_commands
            .iter()
            .map(|(c, _)| {
                (
                    c.event_id.as_str(),
                    c.session_id.as_deref(),
                    c.user.as_deref(),
                )
            })
            .collect();
        assert_eq!(attributed, [("sudo-1", Some("bob-2"), Some("bob"))]);
    }

    #[test]
    fn commands_stored_before_their_session_s_cloudtrail_record_learn_who_and_where() {
        let recorded = SessionFragment {
            first_seen: Some(at("2026-10-05T09:12:05Z")),
            last_seen: Some(at("2026-10-05T09:20:00Z")),
            stream_uri: Some("cwl://aws/ssm/sessions/alice-1".into()),
            target: Some(TARGET.into()),
            ..SessionFragment::new("alice-1".into())
        };
        let before = merge([&recorded]).unwrap_or_else(|| panic!("no session"));
        let mut earlier = command("cmd-1", "2026-10-05T09:13:00Z", "stream", None);
        earlier.session_id = Some("alice-1".into());
        let start = SessionFragment {
            from_trail: true,
            user: Some("alice".into()),
            source_ip: Some("203.0.113.10".into()),
            account: Some("111122223333".into()),
            started_at: Some(at("2026-10-05T09:12:03Z")),
            target: Some(TARGET.into()),
            start_event_id: Some("start".into()),
            ..SessionFragment::new("alice-1".into())
        };
        let batch = Batch {
            fragments: BTreeMap::from([("alice-1".to_string(), vec![start])]),
            ..Batch::default()
        };
        let stored = Stored {
            sessions: HashMap::from([("alice-1".to_string(), before)]),
            session_commands: vec![earlier],
            ..Stored::default()
        };
        assert_eq!(
            learning_sessions(
                &merge_sessions(&batch.fragments, &stored.sessions).1,
                &stored.sessions
            ),
            ["alice-1"]
        );
        let decision = decide(batch, &stored, grace(), at("2026-10-05T10:00:00Z"));
        assert_eq!(decision.sessions.len(), 1);
        assert_eq!(decision.sessions[0].user.as_deref(), Some("alice"));
        let learned: Vec<(&str, Option<&str>, Option<&str>)> = decision
            .replaced_commands
            .iter()
            .map(|(c, _)| {
                (
                    c.event_id.as_str(),
                    c.user.as_deref(),
                    c.source_ip.as_deref(),
                )
            })
            .collect();
        assert_eq!(learned, [("cmd-1", Some("alice"), Some("203.0.113.10"))]);
        assert_eq!(
            decision.counts[&Table::Sessions],
            TableCount {
                read: 1,
                added: 0,
                updated: 1
            }
        );
    }

    #[test]
    fn a_stored_pending_session_settles_to_none_once_its_grace_has_passed() {
        let mut forward = ssh_session("dave-1", "2026-10-06T17:10:00Z", "2026-10-06T17:55:30Z");
        forward.document = Some("AWS-StartPortForwardingSession".into());
        forward.kind = "port_forward".into();
        forward.logged = "pending".into();
        let stored = Stored {
            pending: vec![forward],
            ..Stored::default()
        };
        let early = decide(
            Batch::default(),
            &stored,
            grace(),
            at("2026-10-06T18:00:00Z"),
        );
        assert!(early.sessions.is_empty(), "still within the grace");
        let late = decide(
            Batch::default(),
            &stored,
            grace(),
            at("2026-10-06T18:10:31Z"),
        );
        let settled: Vec<(&str, &str)> = late
            .sessions
            .iter()
            .map(|s| (s.session_id.as_str(), s.logged.as_str()))
            .collect();
        assert_eq!(settled, [("dave-1", "none")]);
        assert_eq!(late.events().len(), 1, "rules see the settled session");
    }
}
