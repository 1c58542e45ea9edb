//! Session assembly: one `sessions` row from everything that saw a session.
//!
//! No single source knows a whole session. CloudTrail's StartSession knows who, from where, with
//! which document and on which target, but not what was typed; TerminateSession knows the end;
//! the stream knows the OS user and the commands; an S3 transcript knows only its own name. Each
//! source yields a [`SessionFragment`]; fragments are folded together (with the row already in
//! the lake, if any) by [`merge`], where CloudTrail wins on who/where and times widen to cover
//! every sighting. The fold is order-independent, so ingesting CloudTrail before or after the
//! transcripts gives the same row.

use auditq_model::{Command, Session, Timestamp, day_of};

use crate::cloudtrail::DEFAULT_SHELL_DOCUMENT;

/// What one source says about a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFragment {
    /// The session id.
    pub session_id: String,
    /// Whether this comes from CloudTrail StartSession (authoritative for who/where).
    pub from_trail: bool,
    /// Principal short name.
    pub user: Option<String>,
    /// Principal ARN.
    pub principal_arn: Option<String>,
    /// Source IP.
    pub source_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// StartSession time.
    pub started_at: Option<Timestamp>,
    /// TerminateSession time.
    pub ended_at: Option<Timestamp>,
    /// Earliest time the session was seen in a recording.
    pub first_seen: Option<Timestamp>,
    /// Latest time the session was seen in a recording.
    pub last_seen: Option<Timestamp>,
    /// Where this recording ends (a transcript's `Script done`, a stream's last event); see
    /// `Session::recorded_to`.
    pub recorded_to: Option<Timestamp>,
    /// A stream's longest silence between two of its events, in seconds.
    pub silence: Option<i64>,
    /// Target instance.
    pub target: Option<String>,
    /// Account.
    pub account: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// SSM document.
    pub document: Option<String>,
    /// OS user.
    pub run_as: Option<String>,
    /// Commands found in this source.
    pub commands: Option<i64>,
    /// Transcript location.
    pub transcript_uri: Option<String>,
    /// Stream location.
    pub stream_uri: Option<String>,
    /// StartSession reason.
    pub reason: Option<String>,
    /// StartSession event id.
    pub start_event_id: Option<String>,
    /// Whether the host's own logs (an sshd login) saw it.
    pub host_seen: bool,
    /// The kind of access, when its call says (Run Command, EC2 Instance Connect); else the
    /// document's ([`session_kind`]).
    pub kind: Option<String>,
    /// The names a stored row was labelled with (`auditq_ingest::names` labels rows again
    /// once folded; kept so that folding a row with nothing new returns the row).
    pub labels: [Option<String>; 3],
}

impl SessionFragment {
    /// An empty fragment for `session_id`.
    pub fn new(session_id: String) -> Self {
        Self {
            session_id,
            ..Self::default()
        }
    }

    /// The fragment a stored row stands for (so merging a row with nothing returns the row).
    pub fn from_row(row: &Session) -> Self {
        Self {
            session_id: row.session_id.clone(),
            from_trail: row.start_event_id.is_some(),
            user: row.user.clone(),
            principal_arn: row.principal_arn.clone(),
            source_ip: row.source_ip.clone(),
            user_agent: row.user_agent.clone(),
            started_at: None,
            ended_at: None,
            first_seen: row.started_at,
            last_seen: row.ended_at,
            recorded_to: row.recorded_to,
            silence: row.longest_silence_seconds,
            target: row.target.clone(),
            account: row.account.clone(),
            region: row.region.clone(),
            document: row.document.clone(),
            run_as: row.run_as.clone(),
            commands: Some(row.commands),
            transcript_uri: row.transcript_uri.clone(),
            stream_uri: row.stream_uri.clone(),
            reason: row.reason.clone(),
            start_event_id: row.start_event_id.clone(),
            host_seen: row.logged == "host_only",
            kind: EXPLICIT_KINDS
                .contains(&row.kind.as_str())
                .then(|| row.kind.clone()),
            labels: [
                row.target_name.clone(),
                row.environment.clone(),
                row.account_alias.clone(),
            ],
        }
    }
}

fn min_time(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_time(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Folds fragments of one session into a row. Returns `None` if there are no fragments or
/// none of them carries a time.
pub fn merge<'a>(fragments: impl IntoIterator<Item = &'a SessionFragment>) -> Option<Session> {
    let mut fragments: Vec<&SessionFragment> = fragments.into_iter().collect();
    // CloudTrail first, so that `or` keeps its who/where over a recording's.
    fragments.sort_by_key(|f| !f.from_trail);
    let first = fragments.first()?;
    let mut acc = SessionFragment::new(first.session_id.clone());
    for f in &fragments {
        macro_rules! keep_first {
            ($($field:ident),*) => { $( if acc.$field.is_none() { acc.$field = f.$field.clone(); } )* };
        }
        keep_first!(
            user,
            principal_arn,
            source_ip,
            user_agent,
            target,
            account,
            region,
            document,
            run_as,
            transcript_uri,
            stream_uri,
            reason,
            start_event_id,
            kind
        );
        acc.started_at = min_time(acc.started_at, min_time(f.started_at, f.first_seen));
        acc.ended_at = max_time(acc.ended_at, max_time(f.ended_at, f.last_seen));
        acc.commands = acc.commands.max(f.commands);
        acc.silence = acc.silence.max(f.silence);
        for (kept, label) in acc.labels.iter_mut().zip(&f.labels) {
            if kept.is_none() {
                kept.clone_from(label);
            }
        }
    }
    // Pieces of one stream read at different times: the silence between one piece's end and
    // the next one's start counts too.
    let mut pieces: Vec<(Timestamp, Option<Timestamp>)> = fragments
        .iter()
        .filter(|f| f.stream_uri.is_some())
        .filter_map(|f| Some((f.first_seen?, f.recorded_to)))
        .collect();
    pieces.sort();
    for pair in pieces.windows(2) {
        if let (Some(end), (next, _)) = (pair[0].1, pair[1])
            && next > end
        {
            acc.silence = acc.silence.max(Some((next - end).num_seconds()));
        }
    }
    acc.recorded_to = fragments.iter().filter_map(|f| f.recorded_to).max();
    let anchor = acc.started_at.or(acc.ended_at)?;
    let kind = acc
        .kind
        .clone()
        .unwrap_or_else(|| session_kind(acc.document.as_deref()).to_string());
    let logged = if kind == "run_command" {
        // Its output is no record of what it ran (CloudTrail hides the commands); auditd's
        // execs are.
        if fragments.iter().any(|f| f.host_seen) {
            "host_only"
        } else if acc.transcript_uri.is_some() || acc.stream_uri.is_some() {
            "output"
        } else {
            "none"
        }
    } else if acc.transcript_uri.is_some() {
        "transcript"
    } else if acc.stream_uri.is_some() {
        "stream"
    } else if fragments.iter().any(|f| f.host_seen) {
        "host_only"
    } else {
        "none"
    };
    Some(Session {
        session_id: acc.session_id,
        date: day_of(&anchor),
        user: acc.user,
        principal_arn: acc.principal_arn,
        source_ip: acc.source_ip,
        user_agent: acc.user_agent,
        started_at: acc.started_at,
        ended_at: acc.ended_at,
        duration_seconds: match (acc.started_at, acc.ended_at) {
            (Some(s), Some(e)) => Some((e - s).num_seconds()),
            _ => None,
        },
        target: acc.target,
        account: acc.account,
        region: acc.region,
        document: acc.document,
        kind,
        run_as: acc.run_as,
        commands: acc.commands.unwrap_or(0),
        logged: logged.to_string(),
        transcript_uri: acc.transcript_uri,
        stream_uri: acc.stream_uri,
        reason: acc.reason,
        start_event_id: acc.start_event_id,
        target_name: acc.labels[0].take(),
        environment: acc.labels[1].take(),
        account_alias: acc.labels[2].take(),
        recorded_to: acc.recorded_to,
        longest_silence_seconds: acc.silence,
    })
}

/// Kinds a session's own call names (its document does not say): Run Command, EC2 Instance
/// Connect and its endpoint's tunnels.
pub const EXPLICIT_KINDS: [&str; 3] = [
    "run_command",
    "instance_connect",
    "instance_connect_endpoint",
];

/// The `document` of a session auditq knows only from an sshd login on the host.
pub const HOST_SSH_DOCUMENT: &str = "sshd";

/// The kind of session a document opens.
pub fn session_kind(document: Option<&str>) -> &'static str {
    match document.unwrap_or(DEFAULT_SHELL_DOCUMENT) {
        "AWS-StartSSHSession" => "ssh",
        // An SSH login no Session Manager session carried (see `crate::correlate`).
        HOST_SSH_DOCUMENT => "host_ssh",
        d if d.starts_with("AWS-StartPortForwardingSession") => "port_forward",
        "AWS-StartInteractiveCommand" | "AWS-StartNonInteractiveCommand" => "command",
        _ => "shell",
    }
}

/// Fills a command's who/where from its session where the recording did not say.
pub fn enrich_command(command: &mut Command, session: &Session) {
    macro_rules! fill {
        ($($field:ident),*) => { $( if command.$field.is_none() { command.$field = session.$field.clone(); } )* };
    }
    // CloudTrail's principal is authoritative over the stream's (which may be a role session).
    if session.start_event_id.is_some() {
        command.user = session.user.clone().or(command.user.take());
        command.principal_arn = session
            .principal_arn
            .clone()
            .or(command.principal_arn.take());
        command.account = session.account.clone().or(command.account.take());
    }
    fill!(
        user,
        principal_arn,
        target,
        account,
        region,
        source_ip,
        run_as
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn t(s: &str) -> Option<Timestamp> {
        parse_rfc3339(s)
    }

    fn trail_start() -> SessionFragment {
        SessionFragment {
            from_trail: true,
            user: Some("alice".into()),
            source_ip: Some("203.0.113.10".into()),
            target: Some("i-1".into()),
            started_at: t("2026-10-06T11:00:05Z"),
            start_event_id: Some("ev".into()),
            ..SessionFragment::new("s".into())
        }
    }

    fn transcript() -> SessionFragment {
        SessionFragment {
            first_seen: t("2026-10-06T11:00:06Z"),
            last_seen: t("2026-10-06T11:07:31Z"),
            transcript_uri: Some("s3://b/s.log".into()),
            commands: Some(5),
            user: Some("guess".into()),
            ..SessionFragment::new("s".into())
        }
    }

    #[test]
    fn merge_is_order_independent_and_trail_wins() {
        let end = SessionFragment {
            ended_at: t("2026-10-06T11:07:30Z"),
            ..SessionFragment::new("s".into())
        };
        let a = merge([&trail_start(), &transcript(), &end]);
        let b = merge([&end, &transcript(), &trail_start()]);
        assert_eq!(a, b);
        let s = a.unwrap_or_else(|| panic!("no session"));
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.started_at, t("2026-10-06T11:00:05Z"));
        assert_eq!(s.ended_at, t("2026-10-06T11:07:31Z"));
        assert_eq!(s.duration_seconds, Some(446));
        assert_eq!(s.logged, "transcript");
        assert_eq!(s.kind, "shell");
        assert_eq!(s.commands, 5);
    }

    #[test]
    fn merging_a_stored_row_again_changes_nothing() {
        let row = merge([&trail_start(), &transcript()]).unwrap_or_else(|| panic!("no session"));
        let again = merge([
            &SessionFragment::from_row(&row),
            &trail_start(),
            &transcript(),
        ]);
        assert_eq!(again.as_ref(), Some(&row));
    }

    #[test]
    fn kinds() {
        assert_eq!(session_kind(Some("AWS-StartSSHSession")), "ssh");
        assert_eq!(
            session_kind(Some("AWS-StartPortForwardingSessionToRemoteHost")),
            "port_forward"
        );
        assert_eq!(session_kind(None), "shell");
    }
}
