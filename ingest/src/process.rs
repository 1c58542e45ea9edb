//! Process trees: every program auditd saw start on a host, tied to the session that started it.
//!
//! A Session Manager transcript records what the terminal showed, not what ran; auditd records
//! every `execve` with the process id and the parent's. Session Manager shells have no login
//! uid (`auid` is unset), so auditd alone cannot say whose they are, but the agent starts
//! `ssm-session-worker <session id>` for every session and every process of the session descends
//! from it. So each exec walks to its parent (the latest exec of the parent's pid before it, on
//! the same instance), and takes the parent's session:
//!
//! - `ssm-session-worker SESSION` is the root of SESSION; a Run Command invocation's
//!   `ssm-document-worker COMMAND` (or its script, under the agent's orchestration folder) is the
//!   root of the invocation's access on that instance, `COMMAND-INSTANCE`;
//! - an exec whose parent is known takes the parent's session, and the parent's command line;
//! - an exec whose parent never exec'd but whose own process did earlier, with the same parent
//!   (`exec`, a shell replacing itself), keeps that process's session;
//! - else, an exec on a terminal (`$(a | b)`: the substitution's subshell forks both and never
//!   execs) takes the session of the latest attributed exec on that terminal, which one session
//!   holds at a time, when both have the same login session (`ses`: unset for Session Manager,
//!   new for each SSH login, so a login that takes over a freed terminal is not mistaken for the
//!   session that held it);
//! - what is left is attributed by the host correlation ([`crate::correlate`]): an sshd login's
//!   OS user on its instance in its window (SSH through Session Manager, EC2 Instance Connect,
//!   Entra ID SSH), which then passes on to its descendants the next time.
//!
//! A pid is reused once its process exits, which auditd does not record without a rule on
//! `exit`: the latest exec of a pid is taken as the live process, unless its login session or
//! terminal differs from the child's (a child inherits both), and a parent older than
//! [`MAX_PARENT_AGE`] is not followed.

use std::collections::HashMap;

use auditq_model::{Command, HostEvent, Timestamp};
use chrono::Duration;

use crate::correlate::OPEN_SESSION_SPAN;
use crate::ssm::{is_command_id, is_instance_id};

/// How old a parent may be: a session's longest assumed span.
pub const MAX_PARENT_AGE: i64 = OPEN_SESSION_SPAN;

/// The session an exec starts, when it is the root of one ([`session_worker`], or a Run Command
/// invocation's worker or script: [`run_command`]).
pub fn session_root(event: &HostEvent) -> Option<String> {
    let cmd = event.cmd.as_deref()?;
    if let Some(session) = session_worker(cmd) {
        return Some(session.to_string());
    }
    let (command_id, instance) = run_command(cmd)?;
    let instance = event.target.as_deref().or(instance)?;
    Some(format!("{command_id}-{instance}"))
}

/// The Run Command invocation an exec runs, as the SSM agent starts it: `ssm-document-worker
/// <command id>` (the agent's out-of-process executer), or a plugin's script under its
/// orchestration folder, `sh -c /var/lib/amazon/ssm/<instance>/document/orchestration/<command
/// id>/awsrunShellScript/0.awsrunShellScript/_script.sh`. Returns the command id, and the instance
/// id when the path names it. State Manager associations (`<association id>.<run id>`) are not
/// Run Command invocations.
pub fn run_command(cmd: &str) -> Option<(&str, Option<&str>)> {
    let mut words = cmd.split_whitespace();
    let program = words.next()?;
    if program.rsplit('/').next() == Some("ssm-document-worker") {
        let id = words.next()?.trim_matches(['\'', '"']);
        return is_command_id(id).then_some((id, None));
    }
    let (before, after) = cmd.split_once("/document/orchestration/")?;
    let id = after.split('/').next()?;
    let instance = before.rsplit('/').next().filter(|i| is_instance_id(i));
    is_command_id(id).then_some((id, instance))
}

/// The session id `ssm-session-worker` was started for, from its command line.
pub fn session_worker(cmd: &str) -> Option<&str> {
    let mut words = cmd.split_whitespace();
    let program = words.next()?;
    if program.rsplit('/').next() != Some("ssm-session-worker") {
        return None;
    }
    words
        .next()
        .map(|id| id.trim_matches(['\'', '"']))
        .filter(|id| !id.is_empty())
}

/// Whether a host event is a program started (an auditd `execve` that succeeded).
pub fn is_exec(event: &HostEvent) -> bool {
    event.program == "auditd"
        && event.action == "exec"
        && event.pid.is_some()
        && event.outcome.as_deref() != Some("failure")
}

/// A process as the tree knows it.
#[derive(Debug, Clone)]
struct Process {
    time: Timestamp,
    ppid: Option<i64>,
    tty: Option<String>,
    audit_session: Option<i64>,
    session_id: Option<String>,
    cmd: Option<String>,
}

impl Process {
    fn of(event: &HostEvent, session_id: Option<String>) -> Self {
        Process {
            time: event.time,
            ppid: event.ppid,
            tty: event.tty.clone(),
            audit_session: event.audit_session,
            session_id,
            cmd: event.cmd.clone(),
        }
    }
}

/// Walks the batch's execs (in `host`) to their sessions, with `known` (stored execs on the same
/// instances, attributed or not) as possible ancestors. Sets `session_id` of the execs it ties
/// to a session (those already set keep theirs) and returns, for each exec by index, its
/// parent's command line when the parent's exec is known.
pub fn attribute(host: &mut [HostEvent], known: &[HostEvent]) -> HashMap<usize, Option<String>> {
    let max_age = Duration::seconds(MAX_PARENT_AGE);
    // (instance, pid) -> its execs, oldest first.
    let mut table: HashMap<(String, i64), Vec<Process>> = HashMap::new();
    let place = |e: &HostEvent| e.target.clone().or(e.host.clone()).unwrap_or_default();
    for event in known.iter().filter(|e| is_exec(e)) {
        if let Some(pid) = event.pid {
            table
                .entry((place(event), pid))
                .or_default()
                .push(Process::of(event, event.session_id.clone()));
        }
    }
    for processes in table.values_mut() {
        processes.sort_by_key(|p| p.time);
    }
    let latest = |table: &HashMap<(String, i64), Vec<Process>>, key: &(String, i64), at| {
        table.get(key).and_then(|processes: &Vec<Process>| {
            processes
                .iter()
                .rev()
                .find(|p| p.time <= at && at - p.time <= max_age)
                .cloned()
        })
    };

    // (instance, terminal) -> the latest attributed exec on it: when, its login session, its
    // session.
    type Holder = (Timestamp, Option<i64>, String);
    let mut terminals: HashMap<(String, String), Holder> = HashMap::new();
    let hold = |terminals: &mut HashMap<(String, String), Holder>, event: &HostEvent| {
        if let (Some(tty), Some(session)) = (&event.tty, &event.session_id) {
            let slot = terminals.entry((place(event), tty.clone())).or_insert((
                event.time,
                event.audit_session,
                session.clone(),
            ));
            if event.time >= slot.0 {
                *slot = (event.time, event.audit_session, session.clone());
            }
        }
    };
    for event in known.iter().filter(|e| is_exec(e)) {
        hold(&mut terminals, event);
    }

    let mut order: Vec<usize> = (0..host.len()).filter(|&i| is_exec(&host[i])).collect();
    // Parents before children: by time, then by auditd's serial order as read.
    order.sort_by_key(|&i| (host[i].time, i));
    let mut found = HashMap::new();
    for i in order {
        let event = &host[i];
        let at = event.time;
        let here = place(event);
        let pid = event.pid.unwrap_or_default();
        // A child inherits its parent's login session and terminal: a process that had the
        // parent's pid before and differs in either is a dead one whose pid was reused.
        let parent = event
            .ppid
            .and_then(|ppid| latest(&table, &(here.clone(), ppid), at))
            .filter(|p| {
                p.audit_session == event.audit_session
                    && !matches!((&p.tty, &event.tty), (Some(a), Some(b)) if a != b)
            });
        // The same process exec'ing again keeps its parent; a reused pid has another.
        let itself = latest(&table, &(here.clone(), pid), at).filter(|p| p.ppid == event.ppid);
        let root = session_root(event);
        let on_terminal = event
            .tty
            .as_ref()
            .filter(|_| parent.is_none())
            .and_then(|tty| terminals.get(&(here.clone(), tty.clone())))
            .filter(|(time, ses, _)| at - *time <= max_age && *ses == event.audit_session)
            .map(|(_, _, session)| session.clone());
        let session_id = event
            .session_id
            .clone()
            .or(root)
            .or(parent.as_ref().and_then(|p| p.session_id.clone()))
            .or(itself.as_ref().and_then(|p| p.session_id.clone()))
            .or(on_terminal);

        let processes = table.entry((here, pid)).or_default();
        let position = processes.partition_point(|p| p.time <= at);
        processes.insert(position, Process::of(event, session_id.clone()));
        found.insert(i, parent.and_then(|p| p.cmd));
        host[i].session_id = session_id;
        hold(&mut terminals, &host[i]);
    }
    found
}

/// Whether a command is a line of its session's recording, which execs are compared with: what
/// the terminal showed (a stream or transcript), or the script a Run Command sent
/// (`ssm:ListCommands`).
pub fn is_recording(command: &Command) -> bool {
    matches!(
        command.source.as_str(),
        "stream" | "transcript" | "run_command"
    )
}

/// Whether rules already saw what an exec did as another row: a line the session's recording
/// shows (the typed line was seen), or the program `sudo`, `su -c`, `env` or `timeout` ran for
/// its parent (`cat /etc/shadow` below `sudo cat /etc/shadow`). One act, one alert: the live
/// pipeline and `auditq rules scan` both leave such rows out of what rules see.
pub fn repeats_an_act(command: &Command) -> bool {
    command.source == "auditd"
        && (command.seen_in_transcript == Some(true)
            || command
                .parent_cmd
                .as_deref()
                .and_then(|parent| parent.strip_suffix(command.cmd.as_str()))
                .is_some_and(|program| program.ends_with(' ')))
}

/// Whether a command line the kernel ran shows in what the session's terminal recorded: its
/// program (for an interpreter running a script, the script) is a word of some recorded line.
///
/// Lenient on purpose: a shell expands variables, globs and aliases before the kernel sees the
/// arguments, so only the program's name is compared. A program that never shows in the
/// recording was typed with echo off, came out of a decoded payload, or ran from a script.
pub fn seen_in(cmd: &str, recorded: &[impl AsRef<str>]) -> bool {
    let words: Vec<&str> = cmd.split_whitespace().map(unquoted).collect();
    let Some(first) = words.first() else {
        return true;
    };
    let mut names = vec![base(first)];
    if is_interpreter(base(first))
        && let Some(script) = words.iter().skip(1).find(|w| !w.starts_with('-'))
    {
        names.push(base(script));
    }
    recorded.iter().any(|line| {
        line.as_ref()
            .split(|c: char| c.is_whitespace() || "|;&()`$<>".contains(c))
            .map(unquoted)
            .any(|word| names.contains(&base(word)))
    })
}

fn unquoted(word: &str) -> &str {
    word.trim_matches(['\'', '"'])
}

fn base(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_start_matches('-')
}

fn is_interpreter(name: &str) -> bool {
    matches!(
        name,
        "sh" | "bash"
            | "dash"
            | "zsh"
            | "ksh"
            | "fish"
            | "python"
            | "python3"
            | "perl"
            | "ruby"
            | "node"
            | "php"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        crate::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    fn exec(time: &str, pid: i64, ppid: i64, cmd: &str) -> HostEvent {
        HostEvent {
            event_id: format!("{time}-{pid}"),
            time: at(time),
            date: at(time).date_naive(),
            user: None,
            run_as: None,
            host: Some("ip-10-0-1-11".into()),
            target: Some("i-0a1b2c3d4e5f60711".into()),
            source_ip: None,
            program: "auditd".into(),
            action: "exec".into(),
            outcome: Some("success".into()),
            cmd: Some(cmd.into()),
            raw: String::new(),
            origin: "audit.log".into(),
            pid: Some(pid),
            ppid: Some(ppid),
            audit_session: None,
            exe: None,
            tty: None,
            cwd: None,
            auth: None,
            key: None,
            reason: None,
            audit_key: None,
            session_id: None,
        }
    }

    #[test]
    fn every_descendant_of_a_session_worker_is_the_session_s() {
        let mut host = vec![
            exec(
                "2026-10-05T09:12:03Z",
                3100,
                1850,
                "/usr/bin/ssm-session-worker alice-0a7f 'i-0a1b'",
            ),
            exec("2026-10-05T09:12:04Z", 3101, 3100, "bash"),
            exec("2026-10-05T09:13:02Z", 3130, 3101, "sudo su -"),
            exec("2026-10-05T09:13:02Z", 3131, 3130, "su -"),
            exec("2026-10-05T09:13:02Z", 3132, 3131, "-bash"),
            exec(
                "2026-10-05T09:13:40Z",
                3140,
                3132,
                "tail -n 20 /var/log/secure",
            ),
            // A daemon's exec on the same host at the same time: no session.
            exec(
                "2026-10-05T09:13:41Z",
                3141,
                1,
                "/usr/sbin/logrotate /etc/logrotate.conf",
            ),
        ];
        let lineage = attribute(&mut host, &[]);
        let sessions: Vec<Option<&str>> = host.iter().map(|e| e.session_id.as_deref()).collect();
        assert_eq!(
            sessions,
            [Some("alice-0a7f"); 6]
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
        assert_eq!(lineage[&5].as_deref(), Some("-bash"));
        assert_eq!(lineage[&0], None);
    }

    #[test]
    fn parents_stored_by_an_earlier_batch_count_and_a_reused_pid_is_the_latest_process() {
        let mut stored = vec![
            exec(
                "2026-10-05T09:12:03Z",
                3100,
                1850,
                "ssm-session-worker alice-0a7f",
            ),
            exec("2026-10-05T09:12:04Z", 3101, 8888, "bash"),
            // pid 3101 reused later by another session's shell.
            exec("2026-10-05T11:00:04Z", 3101, 4100, "bash"),
        ];
        stored[0].session_id = Some("alice-0a7f".into());
        stored[1].session_id = Some("alice-0a7f".into());
        stored[2].session_id = Some("bob-1234".into());
        let mut host = vec![
            exec("2026-10-05T09:20:00Z", 3200, 3101, "id"),
            exec("2026-10-05T11:05:00Z", 3300, 3101, "id"),
            // `exec id` replaces the shell: the same pid and parent (the parent's own pid 8888
            // never exec'd, so only the process itself ties it to its session).
            exec("2026-10-05T09:21:00Z", 3101, 8888, "id"),
            // A reused pid: another parent, not the shell's session.
            exec("2026-10-05T09:22:00Z", 3101, 9999, "id"),
        ];
        attribute(&mut host, &stored);
        let sessions: Vec<Option<&str>> = host.iter().map(|e| e.session_id.as_deref()).collect();
        assert_eq!(
            sessions,
            [
                Some("alice-0a7f"),
                Some("bob-1234"),
                Some("alice-0a7f"),
                None
            ]
        );

        // Too old a parent is not followed.
        let mut late = vec![exec("2026-10-06T09:20:00Z", 3201, 3100, "id")];
        attribute(&mut late, &stored);
        assert_eq!(late[0].session_id, None);
    }

    #[test]
    fn a_subshell_s_children_follow_their_terminal_but_not_into_another_login() {
        let on = |mut e: HostEvent, tty: &str, ses: Option<i64>| {
            e.tty = Some(tty.into());
            e.audit_session = ses;
            e
        };
        let mut host = vec![
            exec(
                "2026-10-05T09:12:03Z",
                3100,
                1850,
                "ssm-session-worker alice-0a7f",
            ),
            on(exec("2026-10-05T09:12:04Z", 3101, 3100, "sh"), "pts1", None),
            // $(ps | grep x): the substitution's subshell (pid 3110) never execs.
            on(exec("2026-10-05T09:13:00Z", 3111, 3110, "ps"), "pts1", None),
            on(
                exec("2026-10-05T09:13:00Z", 3112, 3110, "grep x"),
                "pts1",
                None,
            ),
            // An SSH login's shell on the same terminal later: sshd's child never execs, and
            // the login has a login session of its own.
            on(
                exec("2026-10-05T10:00:00Z", 4001, 4000, "-bash"),
                "pts1",
                Some(7),
            ),
        ];
        attribute(&mut host, &[]);
        let sessions: Vec<Option<&str>> = host.iter().map(|e| e.session_id.as_deref()).collect();
        assert_eq!(
            sessions,
            [
                Some("alice-0a7f"),
                Some("alice-0a7f"),
                Some("alice-0a7f"),
                Some("alice-0a7f"),
                None
            ]
        );
    }

    #[test]
    fn session_worker_command_lines() {
        assert_eq!(
            session_worker("/usr/bin/ssm-session-worker alice-0a7f3c9e1b2d4f601 i-0a1b"),
            Some("alice-0a7f3c9e1b2d4f601")
        );
        assert_eq!(session_worker("ssm-session-worker"), None);
        assert_eq!(session_worker("/usr/bin/ssm-agent-worker"), None);
        assert_eq!(session_worker("grep ssm-session-worker x"), None);
        let id = "b58c980c-87be-4119-ab51-8a14cec6e65a";
        assert_eq!(
            run_command(&format!("/usr/bin/ssm-document-worker {id}")),
            Some((id, None))
        );
        assert_eq!(
            run_command(&format!(
                "sh -c /var/lib/amazon/ssm/i-0a1b/document/orchestration/{id}/awsrunShellScript/0.awsrunShellScript/_script.sh"
            )),
            Some((id, Some("i-0a1b")))
        );
        // A State Manager association, and a path that only looks alike.
        assert_eq!(
            run_command("/usr/bin/ssm-document-worker 4b1a2c3d-1111-2222-3333-444455556666.7f8e"),
            None
        );
        assert_eq!(run_command("cat /tmp/document/orchestration/x/y"), None);
    }

    #[test]
    fn what_the_recording_shows() {
        let typed = [
            "sudo su -",
            "tail -n 20 /var/log/secure",
            "./deploy.sh --fast",
        ];
        assert!(seen_in("sudo su -", &typed));
        assert!(seen_in("su -", &typed));
        assert!(seen_in("/usr/bin/tail -n 20 /var/log/secure", &typed));
        // An interpreter the kernel started for a script that was typed.
        assert!(seen_in("/bin/bash ./deploy.sh --fast", &typed));
        // What the script ran, and what was typed blind.
        assert!(!seen_in("curl -s http://198.51.100.250/i.sh", &typed));
        assert!(!seen_in("bash", &typed));
        assert!(!seen_in("tail", &[] as &[&str]));
    }
}
