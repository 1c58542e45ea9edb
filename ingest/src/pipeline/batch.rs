//! A batch as the pipeline decides on it: what the parsers produced, with session streams
//! assembled into commands and secrets redacted. Pure: no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use auditq_model::{Command, HostEvent, Name, Position, Reject, TrailEvent};

use crate::host::{command_id, join_audit_event};
use crate::parse::Parsed;
use crate::redact::Redactor;
use crate::session::SessionFragment;
use crate::ssm::assemble_stream;

/// What one batch brought.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// CloudTrail records.
    pub trail: Vec<TrailEvent>,
    /// What the batch says of each session, by session id.
    pub fragments: BTreeMap<String, Vec<SessionFragment>>,
    /// Commands: from transcripts, streams, sudo and auditd.
    pub commands: Vec<Command>,
    /// Host log lines.
    pub host: Vec<HostEvent>,
    /// Records that could not be read.
    pub rejects: Vec<Reject>,
    /// The source positions the batch covers (committed last, with everything it produced).
    pub positions: Vec<Position>,
    /// Secrets replaced by tokens.
    pub redactions: usize,
    /// auditd events joined with the records a stored row of the same event holds (an event a
    /// batch or file boundary split): their stored rows, and their commands', are replaced.
    pub rejoined: HashSet<String>,
    /// Names the batch's CloudTrail records set or remove, and names looked up
    /// ([`crate::names`]).
    pub names: Vec<Name>,
}

impl Batch {
    /// Assembles streams and redacts secrets from every free-text field, before rules, alerts or
    /// the lake see them.
    pub fn prepare(parsed: Parsed, positions: Vec<Position>, redactor: &Redactor) -> Batch {
        let Parsed {
            mut trail,
            fragments,
            chunks,
            mut commands,
            mut host,
            mut rejects,
        } = parsed;
        let (stream_commands, stream_fragments) = assemble_stream(chunks);
        commands.extend(stream_commands);
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
        let mut by_session: BTreeMap<String, Vec<SessionFragment>> = BTreeMap::new();
        for mut fragment in fragments.into_iter().chain(stream_fragments) {
            redactions += redactor.optional(&mut fragment.reason);
            by_session
                .entry(fragment.session_id.clone())
                .or_default()
                .push(fragment);
        }
        let names = crate::names::of_trail(&trail);
        let mut batch = Batch {
            names,
            trail,
            fragments: by_session,
            commands,
            host,
            rejects,
            positions,
            redactions,
            rejoined: HashSet::new(),
        };
        batch.join_split_events(&[], redactor);
        batch
    }

    /// Joins the records of one auditd event read in parts: repeats in this batch (two files,
    /// two pages), and a stored row of the same event (`stored`, an earlier batch). The joined
    /// event takes the batch's place, and so does its command (redacted again: the command is
    /// read anew from the records).
    pub fn join_split_events(&mut self, stored: &[HostEvent], redactor: &Redactor) {
        let stored: HashMap<&str, &HostEvent> =
            stored.iter().map(|e| (e.event_id.as_str(), e)).collect();
        // Each event's first position in the batch, and what its records joined make.
        let mut first_at: HashMap<String, usize> = HashMap::new();
        let mut joined: BTreeMap<usize, (HostEvent, Option<Command>)> = BTreeMap::new();
        let mut gone: HashSet<usize> = HashSet::new();
        for i in 0..self.host.len() {
            if self.host[i].program != "auditd" {
                continue;
            }
            let id = self.host[i].event_id.clone();
            if let Some(&at) = first_at.get(&id) {
                let base = joined.get(&at).map_or(&self.host[at], |(e, _)| e);
                if let Some(whole) = join_audit_event(base, &self.host[i]) {
                    joined.insert(at, whole);
                    gone.insert(i);
                }
                continue;
            }
            first_at.insert(id.clone(), i);
            // Only records the stored row lacks make it change: the same records read again are
            // the stored row (which may also have learned its session since).
            if let Some(old) = stored.get(id.as_str())
                && let Some(whole) = join_audit_event(old, &self.host[i])
                && whole.0.raw != old.raw
            {
                self.rejoined.insert(id);
                joined.insert(i, whole);
            }
        }
        if joined.is_empty() {
            return;
        }
        let mut commands = Vec::new();
        let mut replaced = HashSet::new();
        for (at, (mut event, command)) in joined {
            self.redactions += redactor.optional(&mut event.cmd);
            replaced.insert(command_id(&event.event_id));
            if let Some(mut command) = command {
                self.redactions += redactor.field(&mut command.cmd);
                commands.push(command);
            }
            self.host[at] = event;
        }
        self.commands.retain(|c| !replaced.contains(&c.event_id));
        self.commands.extend(commands);
        let mut index = 0;
        self.host.retain(|_| {
            index += 1;
            !gone.contains(&(index - 1))
        });
    }

    /// Whether the batch holds nothing to store.
    pub fn is_empty(&self) -> bool {
        self.trail.is_empty()
            && self.fragments.is_empty()
            && self.commands.is_empty()
            && self.host.is_empty()
            && self.rejects.is_empty()
            && self.positions.is_empty()
            && self.names.is_empty()
    }
}
