//! The sessions Session Manager cannot transcribe, seen from the host.
//!
//! SSH tunnelled through Session Manager (`AWS-StartSSHSession`, or a port forward to port 22)
//! leaves CloudTrail's StartSession (who, from where) and the host's sshd login (which OS user,
//! with which key), but no transcript: the SSH stream is end-to-end encrypted. The login arrives
//! at sshd from the agent, so from a loopback address. This module links the two: a tunnelled
//! login on a session's target within its window belongs to the session, which then reads
//! `logged = host_only` and carries both the IAM principal and the OS user, and the host's sudo
//! and auditd commands by that OS user on that target in that window are attributed to it.
//!
//! A login from any other address (an SSH login that never touched Session Manager, such as
//! Microsoft Entra ID SSH on Azure Arc machines) becomes a session of its own, kind `host_ssh`.
//!
//! A session with no record at all is `pending` until `grace` after it ended (transcripts reach
//! S3 only when a session ends), then `none`, which the default rule `ssm.session_unlogged`
//! alerts on.

use auditq_model::{Command, HostEvent, Session, Timestamp, event_id};
use chrono::Duration;

use crate::session::{HOST_SSH_DOCUMENT, SessionFragment, merge};

/// How long after its start a session without a known end is taken to last, for attributing
/// host commands to it.
pub const OPEN_SESSION_SPAN: i64 = 12 * 3600;

/// How early before StartSession's CloudTrail time an sshd login may appear (clocks differ).
const CLOCK_SLACK_SECONDS: i64 = 60;

/// Whether a login came through a local tunnel (the Session Manager agent).
pub fn is_tunnelled(source_ip: Option<&str>) -> bool {
    match source_ip {
        None => true,
        Some(ip) => {
            ip.starts_with("127.") || ip == "::1" || ip == "localhost" || ip == "::ffff:127.0.0.1"
        }
    }
}

/// Whether a host event is a successful sshd login.
pub fn is_login(event: &HostEvent) -> bool {
    event.program == "sshd"
        && event.action == "login"
        && event.outcome.as_deref() == Some("success")
}

/// The kinds of session an sshd login can belong to: SSH and port forwards through Session
/// Manager (a tunnelled login), EC2 Instance Connect (a direct one).
pub const LOGIN_KINDS: [&str; 3] = ["ssh", "port_forward", "instance_connect"];

/// Whether a session's commands can only be known from the host.
pub fn carries_ssh(session: &Session) -> bool {
    LOGIN_KINDS.contains(&session.kind.as_str())
        && !matches!(session.logged.as_str(), "transcript" | "stream")
}

/// How long a key EC2 Instance Connect pushed is accepted by sshd.
pub const INSTANCE_CONNECT_KEY_SECONDS: i64 = 60;

/// The span in which a session's host activity is attributed to it.
pub fn window(session: &Session) -> Option<(Timestamp, Timestamp)> {
    let start = session.started_at?;
    let end = session
        .ended_at
        .filter(|e| *e >= start)
        .unwrap_or(start + Duration::seconds(OPEN_SESSION_SPAN));
    Some((start - Duration::seconds(CLOCK_SLACK_SECONDS), end))
}

/// The session (among `candidates`) a login belongs to; the latest to start when several fit.
///
/// - A tunnelled login (from loopback: the agent): an SSH or port-forwarding session on the
///   login's target, with the login inside its window.
/// - A direct login: an EC2 Instance Connect key pushed for the login's OS user on its target
///   in the minute before (sshd accepts the key for 60 seconds).
pub fn session_for_login<'s>(login: &HostEvent, candidates: &[&'s Session]) -> Option<&'s Session> {
    let target = login.target.as_deref()?;
    let tunnelled = is_tunnelled(login.source_ip.as_deref());
    candidates
        .iter()
        .copied()
        .filter(|s| s.target.as_deref() == Some(target))
        .filter(|s| {
            if tunnelled {
                matches!(s.kind.as_str(), "ssh" | "port_forward")
                    && window(s).is_some_and(|(from, to)| login.time >= from && login.time <= to)
            } else {
                s.kind == "instance_connect"
                    && s.run_as.is_some()
                    && s.run_as == login.user
                    && s.started_at.is_some_and(|start| {
                        login.time >= start - Duration::seconds(CLOCK_SLACK_SECONDS)
                            && login.time
                                <= start
                                    + Duration::seconds(
                                        INSTANCE_CONNECT_KEY_SECONDS + CLOCK_SLACK_SECONDS,
                                    )
                    })
            }
        })
        .max_by_key(|s| s.started_at)
}

/// A link between a session and the OS user who logged in for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The session.
    pub session_id: String,
    /// The instance.
    pub target: String,
    /// The OS user of the sshd login.
    pub os_user: Option<String>,
    /// The window host activity is attributed in.
    pub from: Timestamp,
    /// End of that window.
    pub to: Timestamp,
}

impl Link {
    /// Whether a host command belongs to the linked session: same target, inside the window,
    /// run by the OS user who logged in (when both are known).
    pub fn owns(&self, target: Option<&str>, time: Timestamp, os_user: Option<&str>) -> bool {
        target == Some(self.target.as_str())
            && time >= self.from
            && time <= self.to
            && match (self.os_user.as_deref(), os_user) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
    }
}

/// When the sshd session of `login` closed: its `session closed` line, same process on the same
/// machine, after it (among `events`).
pub fn login_closed(login: &HostEvent, events: &[HostEvent]) -> Option<Timestamp> {
    events
        .iter()
        .filter(|e| e.program == "sshd" && e.action == "session_close")
        .filter(|e| e.pid.is_some() && e.pid == login.pid)
        .filter(|e| e.target == login.target && e.host == login.host && e.time >= login.time)
        .map(|e| e.time)
        .min()
}

/// The session of its own a direct login was given (kind `host_ssh`) when it arrived before the
/// access that explains it (an EC2 Instance Connect key pushed for it, read later): the access
/// claims it, with its commands and host lines. `None` when the login is not claimed.
pub fn claimed_by<'s>(
    login: &HostEvent,
    accesses: &[&'s Session],
) -> Option<(String, &'s Session)> {
    if is_tunnelled(login.source_ip.as_deref()) {
        return None;
    }
    let access = session_for_login(login, accesses)?;
    Some((host_session(login)?.session_id, access))
}

/// The session row after an sshd login for it was seen.
pub fn with_login(session: &Session, login: &HostEvent) -> Option<Session> {
    seen_on_host(session, login.user.clone())
}

/// The session row once the host showed it (a login for it, or what it ran): `host_only` when
/// nothing recorded it otherwise, run as `run_as` when that is not known yet.
pub fn seen_on_host(session: &Session, run_as: Option<String>) -> Option<Session> {
    let mut fragment = SessionFragment::from_row(session);
    let seen = SessionFragment {
        host_seen: true,
        run_as: run_as.clone(),
        ..SessionFragment::new(session.session_id.clone())
    };
    fragment.run_as = fragment.run_as.or(run_as);
    merge([&fragment, &seen])
}

/// A session of its own for an SSH login no Session Manager session carried.
pub fn host_session(login: &HostEvent) -> Option<Session> {
    let place = login
        .target
        .as_deref()
        .or(login.host.as_deref())
        .unwrap_or("host");
    let session_id = format!(
        "ssh-{place}-{}",
        &event_id("hostssh", &[place, &login.event_id])[..12]
    );
    let fragment = SessionFragment {
        user: login.user.clone(),
        source_ip: login.source_ip.clone(),
        started_at: Some(login.time),
        target: login.target.clone().or(login.host.clone()),
        document: Some(HOST_SSH_DOCUMENT.to_string()),
        run_as: login.user.clone(),
        reason: login
            .key
            .clone()
            .map(|k| format!("{} {k}", login.auth.clone().unwrap_or_default())),
        host_seen: true,
        ..SessionFragment::new(session_id)
    };
    merge([&fragment])
}

/// `none` while a record may still come: `pending` until `grace` after the session ended (or
/// started, when its end is unknown).
pub fn settle_logged(session: &mut Session, now: Timestamp, grace: Duration) {
    if !matches!(session.logged.as_str(), "none" | "pending") {
        return;
    }
    let deadline = session.ended_at.or(session.started_at).map(|t| t + grace);
    session.logged = match deadline {
        Some(deadline) if now < deadline => "pending",
        _ => "none",
    }
    .to_string();
}

/// Attributes commands to links (and their who/where from the session). Of two logins of one OS
/// user whose windows both hold a command, the later one owns it: the earlier one's end may not
/// be known (a login with no CloudTrail end lasts until its sshd session closes).
pub fn attribute_commands(commands: &mut [Command], links: &[(Link, Session)]) -> usize {
    // Links by target and OS user, so each command looks only at its own candidates.
    let mut by_owner: std::collections::HashMap<(&str, &str), Vec<&(Link, Session)>> =
        std::collections::HashMap::new();
    for entry in links {
        if let Some(user) = entry.0.os_user.as_deref() {
            by_owner
                .entry((entry.0.target.as_str(), user))
                .or_default()
                .push(entry);
        }
    }
    let mut changed = 0;
    for command in commands.iter_mut() {
        if command.session_id.is_some() || !matches!(command.source.as_str(), "sudo" | "auditd") {
            continue;
        }
        let (Some(target), Some(user)) = (command.target.as_deref(), command.user.as_deref())
        else {
            continue;
        };
        let owner = by_owner.get(&(target, user)).and_then(|candidates| {
            candidates
                .iter()
                .filter(|(link, _)| link.owns(Some(target), command.time, Some(user)))
                .max_by_key(|(link, _)| link.from)
                .copied()
        });
        if let Some((_, session)) = owner {
            give_to(command, session);
            changed += 1;
        }
    }
    changed
}

/// Makes a host command the session's, with its who and where. The principal now owns it; the OS
/// user who ran it stays in `host_events` (and in `run_as` for what ran as another).
pub fn give_to(command: &mut Command, session: &Session) {
    command.session_id = Some(session.session_id.clone());
    command.user = session.user.clone().or(command.user.take());
    command.principal_arn = session.principal_arn.clone();
    command.account = session.account.clone();
    command.region = session.region.clone();
    command.source_ip = session.source_ip.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        crate::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    fn session(id: &str, kind_document: &str, start: &str, end: Option<&str>) -> Session {
        let fragment = SessionFragment {
            from_trail: true,
            user: Some("bob".into()),
            principal_arn: Some("arn:aws:iam::111122223333:user/bob".into()),
            started_at: Some(at(start)),
            ended_at: end.map(at),
            target: Some("i-0d4e5f60718293a44".into()),
            document: Some(kind_document.into()),
            start_event_id: Some("e".into()),
            ..SessionFragment::new(id.into())
        };
        merge([&fragment]).unwrap_or_else(|| panic!("no session"))
    }

    fn login(time: &str, ip: &str, user: &str) -> HostEvent {
        HostEvent {
            event_id: format!("login-{time}"),
            time: at(time),
            date: at(time).date_naive(),
            user: Some(user.into()),
            run_as: None,
            host: Some("ip-10-0-0-44".into()),
            target: Some("i-0d4e5f60718293a44".into()),
            source_ip: Some(ip.into()),
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
            key: Some("ED25519 SHA256:abc".into()),
            reason: None,
            audit_key: None,
            session_id: None,
            ppid: None,
            audit_session: None,
            exe: None,
        }
    }

    #[test]
    fn a_tunnelled_login_joins_the_session_open_on_its_target() {
        let early = session(
            "bob-1",
            "AWS-StartSSHSession",
            "2026-10-06T10:00:00Z",
            Some("2026-10-06T10:30:00Z"),
        );
        let late = session(
            "bob-2",
            "AWS-StartSSHSession",
            "2026-10-06T16:00:12Z",
            Some("2026-10-06T16:45:50Z"),
        );
        let shell = session(
            "bob-3",
            "SSM-SessionManagerRunShell",
            "2026-10-06T16:00:00Z",
            None,
        );
        let candidates = [&early, &late, &shell];
        let l = login("2026-10-06T16:00:14Z", "127.0.0.1", "ec2-user");
        assert!(is_tunnelled(l.source_ip.as_deref()));
        let found = session_for_login(&l, &candidates).map(|s| s.session_id.as_str());
        assert_eq!(found, Some("bob-2"));
        let after = login("2026-10-06T17:00:00Z", "127.0.0.1", "ec2-user");
        assert_eq!(session_for_login(&after, &candidates), None);

        let linked = with_login(&late, &l).unwrap_or_else(|| panic!("no merge"));
        assert_eq!(
            (linked.logged.as_str(), linked.kind.as_str()),
            ("host_only", "ssh")
        );
        assert_eq!(
            (linked.user.as_deref(), linked.run_as.as_deref()),
            (Some("bob"), Some("ec2-user"))
        );
    }

    #[test]
    fn a_login_with_a_key_instance_connect_pushed_joins_that_access() {
        let mut pushed = session("eic-e2", "SendSSHPublicKey", "2026-10-06T14:00:00Z", None);
        pushed.kind = "instance_connect".into();
        pushed.run_as = Some("ec2-user".into());
        let candidates = [&pushed];
        let found = |time: &str, user: &str| {
            session_for_login(&login(time, "203.0.113.10", user), &candidates)
                .map(|s| s.session_id.clone())
        };
        assert_eq!(
            found("2026-10-06T14:00:20Z", "ec2-user").as_deref(),
            Some("eic-e2")
        );
        // Another OS user, or after the key expired: not this access.
        assert_eq!(found("2026-10-06T14:00:20Z", "root"), None);
        assert_eq!(found("2026-10-06T14:05:00Z", "ec2-user"), None);
        let linked = with_login(
            &pushed,
            &login("2026-10-06T14:00:20Z", "203.0.113.10", "ec2-user"),
        )
        .unwrap_or_else(|| panic!("no merge"));
        assert_eq!(
            (linked.kind.as_str(), linked.logged.as_str()),
            ("instance_connect", "host_only")
        );
    }

    #[test]
    fn an_instance_connect_access_claims_the_session_its_login_was_given_and_closes() {
        let mut pushed = session("eic-e2", "SendSSHPublicKey", "2026-10-06T14:00:00Z", None);
        pushed.kind = "instance_connect".into();
        pushed.run_as = Some("ec2-user".into());
        let mut l = login("2026-10-06T14:00:20Z", "203.0.113.10", "ec2-user");
        l.pid = Some(1874);
        let own = host_session(&l).unwrap_or_else(|| panic!("no session"));
        let (claimed, access) = claimed_by(&l, &[&pushed]).unwrap_or_else(|| panic!("not claimed"));
        assert_eq!(
            (claimed.as_str(), access.session_id.as_str()),
            (own.session_id.as_str(), "eic-e2")
        );
        // A tunnelled login is never a session of its own, so there is nothing to claim.
        assert!(
            claimed_by(
                &login("2026-10-06T14:00:20Z", "127.0.0.1", "ec2-user"),
                &[&pushed]
            )
            .is_none()
        );

        let close = |pid: i64, time: &str| HostEvent {
            action: "session_close".into(),
            pid: Some(pid),
            ..login(time, "203.0.113.10", "ec2-user")
        };
        let events = [
            close(2211, "2026-10-06T14:03:00Z"),
            close(1874, "2026-10-06T14:04:40Z"),
        ];
        assert_eq!(login_closed(&l, &events), Some(at("2026-10-06T14:04:40Z")));
        assert_eq!(login_closed(&l, &events[..1]), None);
    }

    #[test]
    fn a_direct_login_is_a_host_session_and_unrecorded_sessions_settle() {
        assert!(!is_tunnelled(Some("198.51.100.7")));
        let direct = host_session(&login(
            "2026-10-06T19:20:00Z",
            "198.51.100.7",
            "carol@example.com",
        ))
        .unwrap_or_else(|| panic!("no session"));
        assert_eq!(
            (direct.kind.as_str(), direct.logged.as_str()),
            ("host_ssh", "host_only")
        );
        assert!(
            direct.session_id.starts_with("ssh-i-0d4e5f60718293a44-"),
            "{}",
            direct.session_id
        );
        assert_eq!(direct.user.as_deref(), Some("carol@example.com"));

        let mut forward = session(
            "dave-1",
            "AWS-StartPortForwardingSession",
            "2026-10-06T17:10:00Z",
            Some("2026-10-06T17:55:30Z"),
        );
        assert_eq!(forward.logged, "none");
        let grace = Duration::minutes(15);
        settle_logged(&mut forward, at("2026-10-06T18:00:00Z"), grace);
        assert_eq!(forward.logged, "pending");
        settle_logged(&mut forward, at("2026-10-06T18:10:31Z"), grace);
        assert_eq!(forward.logged, "none");
    }

    #[test]
    fn host_commands_belong_to_the_login_user_in_the_window() {
        let s = session(
            "bob-2",
            "AWS-StartSSHSession",
            "2026-10-06T16:00:12Z",
            Some("2026-10-06T16:45:50Z"),
        );
        let link = Link {
            session_id: s.session_id.clone(),
            target: "i-0d4e5f60718293a44".into(),
            os_user: Some("ec2-user".into()),
            from: at("2026-10-06T16:00:00Z"),
            to: at("2026-10-06T16:45:50Z"),
        };
        let command = |time: &str, user: &str| Command {
            event_id: time.into(),
            time: at(time),
            date: at(time).date_naive(),
            user: Some(user.into()),
            principal_arn: None,
            run_as: Some("root".into()),
            target: Some("i-0d4e5f60718293a44".into()),
            account: None,
            region: None,
            source_ip: None,
            cmd: "/usr/bin/id".into(),
            cwd: None,
            session_id: None,
            seq: 0,
            source: "sudo".into(),
            origin: "secure".into(),
            parent_cmd: None,
            seen_in_transcript: None,
            target_name: None,
            environment: None,
            account_alias: None,
        };
        let mut commands = vec![
            command("2026-10-06T16:05:00Z", "ec2-user"),
            command("2026-10-06T16:06:00Z", "backup"),
            command("2026-10-06T17:05:00Z", "ec2-user"),
        ];
        assert_eq!(attribute_commands(&mut commands, &[(link, s)]), 1);
        assert_eq!(commands[0].session_id.as_deref(), Some("bob-2"));
        assert_eq!(commands[0].user.as_deref(), Some("bob"));
        assert_eq!(commands[1].session_id, None);
        assert_eq!(commands[2].session_id, None);
    }
}
