//! A batch as the pipeline decides on it: what the parsers produced, with session streams
//! assembled into commands and secrets redacted. Pure: no I/O.

use std::collections::BTreeMap;

use auditq_model::{Command, HostEvent, Position, Reject, TrailEvent};

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
        Batch {
            trail,
            fragments: by_session,
            commands,
            host,
            rejects,
            positions,
            redactions,
        }
    }

    /// Whether the batch holds nothing to store.
    pub fn is_empty(&self) -> bool {
        self.trail.is_empty()
            && self.fragments.is_empty()
            && self.commands.is_empty()
            && self.host.is_empty()
            && self.rejects.is_empty()
            && self.positions.is_empty()
    }
}
