//! Host logs: sshd, sudo, su, PAM and Entra ID SSH lines from syslog (`/var/log/secure`,
//! `/var/log/auth.log`), and auditd records (`/var/log/audit/audit.log`), read from files or from
//! CloudWatch Logs groups the CloudWatch agent writes (one line per event, stream = instance id).
//!
//! The quirks are those of `formats.md` section 4 and section 7:
//!
//! - Syslog timestamps have no year and no zone (`Feb  9 21:21:02`, day space-padded). The year is
//!   the one that puts the line closest before the reference time (the CloudWatch event timestamp,
//!   or the file's modification time), and the zone is UTC (EC2's default). RFC 3339 and
//!   `2020-03-24 06:07:50.998187-0700` timestamps are read as written.
//! - sudo pads the user on the left, puts `[pid]` after `sudo` in newer versions, may have no
//!   `TTY=`, adds `TSID=`, `GROUP=`, `ENV=`, prefixes failures (`3 incorrect password attempts ;`,
//!   `user NOT in sudoers ;`), keeps `COMMAND=` last although it may contain ` ; `, escapes control
//!   characters as `#012` / `#011` (rsyslog), and splits long commands into `(command continued)`
//!   records, which are joined to the record they continue.
//! - auditd writes one event as several records sharing `msg=audit(epoch:serial)`; they are
//!   grouped by serial (and `node=`). EXECVE arguments are quoted, or hex when they hold spaces or
//!   specials, and long ones are split (`a1_len=`, `a1[0]=`, `a1[1]=`, possibly over several
//!   EXECVE records). PROCTITLE is hex argv separated by NULs. USER_CMD holds sudo's command as
//!   hex inside `msg='...'`. `auid=4294967295` means unset.
//!
//! Every line becomes a `host_events` row (lines of known programs that say nothing about access
//! are kept with action `other`), or a reject with its reason. sudo commands and auditd
//! executions also become `commands` rows (`source` = `sudo` or `auditd`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use auditq_model::{Command, HostEvent, Timestamp, day_of, event_id};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use regex::Regex;

/// One line to parse.
#[derive(Debug, Clone, Copy)]
pub struct HostLineIn<'a> {
    /// Its position where it was read (line or event number, from 0), for ids and rejects.
    pub index: usize,
    /// The line.
    pub text: &'a str,
    /// The time a yearless syslog timestamp is resolved against: the CloudWatch event
    /// timestamp, or the file's modification time.
    pub reference: Timestamp,
}

/// What host lines yield.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostParsed {
    /// One per line (auditd: one per event).
    pub events: Vec<HostEvent>,
    /// sudo commands and auditd executions.
    pub commands: Vec<Command>,
    /// Lines that could not be read: `(index, reason)`.
    pub rejects: Vec<(usize, String)>,
}

/// Whether text reads as a host log: its first non-blank line is a syslog or auditd record.
pub fn looks_like_host_log(text: &str) -> bool {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|line| SYSLOG.is_match(line) || RFC3339.is_match(line) || AUDIT.is_match(line))
}

/// Whether a CloudWatch Logs stream name is an EC2 or managed-instance id (the agent's default
/// `{instance_id}` stream name).
pub fn instance_of_stream(stream: &str) -> Option<&str> {
    static INSTANCE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?:i|mi)-[0-9a-f]{8,17}$").unwrap_or_else(|_| unreachable_regex())
    });
    INSTANCE.is_match(stream).then_some(stream)
}

#[allow(clippy::panic)]
fn unreachable_regex() -> Regex {
    panic!("a constant pattern failed to compile")
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|_| unreachable_regex())
}

static SYSLOG: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d) +(?:(?P<host>\S+) )?(?P<prog>[A-Za-z0-9_./-]+(?:\([^)\s]*\))?)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$",
    )
});
static RFC3339: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s+(?P<host>\S+) (?P<prog>[A-Za-z0-9_./-]+(?:\([^)\s]*\))?)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$",
    )
});
static AUDIT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(?:node=(?P<node>\S+) )?type=(?P<type>\S+) msg=audit\((?P<sec>\d+)\.(?P<ms>\d+):(?P<serial>\d+)\): ?(?P<rest>.*)$",
    )
});

/// A syslog line's header.
struct Syslog<'a> {
    time: Timestamp,
    host: &'a str,
    program: &'a str,
    pid: Option<i64>,
    message: &'a str,
}

fn parse_syslog<'a>(line: &'a str, reference: Timestamp) -> Option<Syslog<'a>> {
    if let Some(c) = SYSLOG.captures(line) {
        let month = month_number(c.name("mon")?.as_str())?;
        let day: u32 = c.name("day")?.as_str().parse().ok()?;
        let hms = NaiveTime::parse_from_str(c.name("hms")?.as_str(), "%H:%M:%S").ok()?;
        let time = resolve_year(month, day, hms, reference)?;
        return Some(Syslog {
            time,
            host: c.name("host").map_or("", |h| h.as_str()),
            program: c.name("prog")?.as_str(),
            pid: c.name("pid").and_then(|p| p.as_str().parse().ok()),
            message: c.name("msg").map_or("", |m| m.as_str()),
        });
    }
    let c = RFC3339.captures(line)?;
    let text = c.name("ts")?.as_str();
    let time = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()?
        .with_timezone(&Utc);
    Some(Syslog {
        time,
        host: c.name("host")?.as_str(),
        program: c.name("prog")?.as_str(),
        pid: c.name("pid").and_then(|p| p.as_str().parse().ok()),
        message: c.name("msg").map_or("", |m| m.as_str()),
    })
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

/// The year that puts a yearless UTC time closest before `reference` (a day of clock skew
/// allowed): a December line read in January belongs to the year before.
fn resolve_year(month: u32, day: u32, time: NaiveTime, reference: Timestamp) -> Option<Timestamp> {
    let at = |year: i32| {
        NaiveDate::from_ymd_opt(year, month, day)
            .map(|d| Utc.from_utc_datetime(&NaiveDateTime::new(d, time)))
    };
    let year = reference.year();
    match at(year) {
        Some(t) if t <= reference + Duration::days(1) => Some(t),
        // Too far ahead: the year before (29 February: the last leap year).
        _ => (1..=8).find_map(|back| at(year - back)),
    }
}

/// Where lines come from, for ids and rows.
#[derive(Debug, Clone, Copy)]
pub struct HostSource<'a> {
    /// File, object or `cwl://group#stream`.
    pub origin: &'a str,
    /// The instance the lines are from, when known (the agent's stream name).
    pub target: Option<&'a str>,
}

/// Parses host log lines (any mix of syslog and auditd).
pub fn parse_host_lines(lines: &[HostLineIn<'_>], source: HostSource<'_>) -> HostParsed {
    let mut parsed = HostParsed::default();
    let mut audit: BTreeMap<(String, u64), AuditEvent> = BTreeMap::new();
    // The sudo record a `(command continued)` record continues: (host, pid, user) -> event index.
    let mut open_sudo: BTreeMap<(String, Option<i64>, String), usize> = BTreeMap::new();
    let mut seen: std::collections::HashMap<(String, String), usize> =
        std::collections::HashMap::new();
    for line in lines {
        let text = line.text.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            continue;
        }
        if let Some(c) = AUDIT.captures(text) {
            let node = c.name("node").map_or("", |m| m.as_str()).to_string();
            let serial: u64 = c["serial"].parse().unwrap_or(0);
            let seconds: i64 = c["sec"].parse().unwrap_or(0);
            let millis: i64 = c["ms"].parse().unwrap_or(0);
            let Some(time) =
                DateTime::from_timestamp(seconds, 0).map(|t| t + Duration::milliseconds(millis))
            else {
                parsed
                    .rejects
                    .push((line.index, "auditd record with an impossible time".into()));
                continue;
            };
            let event = audit
                .entry((node.clone(), serial))
                .or_insert_with(|| AuditEvent {
                    node,
                    serial,
                    time,
                    records: Vec::new(),
                });
            event.records.push((
                c["type"].to_string(),
                c["rest"].to_string(),
                text.to_string(),
            ));
            continue;
        }
        if text.starts_with("type=") || text.starts_with("node=") {
            parsed.rejects.push((
                line.index,
                "auditd record without its `msg=audit(seconds.millis:serial)` stamp (cut short?)"
                    .into(),
            ));
            continue;
        }
        let Some(syslog) = parse_syslog(text, line.reference) else {
            parsed.rejects.push((
                line.index,
                "not a syslog or auditd line: expected `Mon DD HH:MM:SS host program[pid]: message`, an RFC 3339 timestamp, or `type=... msg=audit(...)`".into(),
            ));
            continue;
        };
        // The id is what the line says and where, not where it was read: the same line read
        // from a file, a CloudWatch stream or a subscription batch is one row. Identical lines
        // (same second, same text) are told apart by their order.
        let place = source.target.unwrap_or(syslog.host);
        let occurrence = seen
            .entry((place.to_string(), text.to_string()))
            .or_insert(0);
        *occurrence += 1;
        let mut event = HostEvent {
            event_id: event_id("host", &[place, text, &occurrence.to_string()]),
            time: syslog.time,
            date: day_of(&syslog.time),
            user: None,
            run_as: None,
            host: (!syslog.host.is_empty()).then(|| syslog.host.to_string()),
            target: source.target.map(str::to_string),
            source_ip: None,
            program: program_name(syslog.program).to_string(),
            action: "other".to_string(),
            outcome: None,
            cmd: None,
            raw: text.to_string(),
            origin: source.origin.to_string(),
            pid: syslog.pid,
            tty: None,
            cwd: None,
            auth: None,
            key: None,
            reason: None,
            audit_key: None,
            session_id: None,
            ppid: None,
            audit_session: None,
            exe: None,
        };
        let program = syslog.program;
        let message = syslog.message;
        if program.starts_with("sudo") && message.contains("(command continued)") {
            let user = message.split(" : ").next().unwrap_or("").trim().to_string();
            let key = (syslog.host.to_string(), syslog.pid, user);
            let rest = message
                .split_once("(command continued)")
                .map_or("", |(_, r)| r)
                .trim_start();
            if let Some(&at) = open_sudo.get(&key) {
                let previous = &mut parsed.events[at];
                let joined = format!(
                    "{}{}",
                    previous.cmd.clone().unwrap_or_default(),
                    unescape_syslog(rest)
                );
                previous.cmd = Some(joined.clone());
                previous.raw.push('\n');
                previous.raw.push_str(text);
                if let Some(command) = parsed
                    .commands
                    .iter_mut()
                    .rev()
                    .find(|c| c.event_id == command_id(&previous.event_id))
                {
                    command.cmd = joined;
                }
                continue;
            }
            parsed.rejects.push((
                line.index,
                "sudo `(command continued)` record without the record it continues".into(),
            ));
            continue;
        }
        // A line that says nothing about access keeps the action `other`.
        match program_name(program) {
            "sshd" => sshd(message, &mut event),
            "sudo" => sudo(message, &mut event),
            "su" => su(message, &mut event),
            "aad_certhandler" => entra(message, &mut event),
            _ => pam(message, &mut event),
        };
        if event.program == "sudo" && event.action == "sudo" {
            let user = event.user.clone().unwrap_or_default();
            open_sudo.insert(
                (syslog.host.to_string(), syslog.pid, user),
                parsed.events.len(),
            );
        }
        if let Some(command) = command_of(&event, "sudo") {
            parsed.commands.push(command);
        }
        parsed.events.push(event);
    }
    for (_, event) in audit {
        let row = event.into_row(source);
        if let Some(command) = command_of(&row, "auditd") {
            parsed.commands.push(command);
        }
        parsed.events.push(row);
    }
    parsed
}

/// One auditd event read again from the records of two reads of it (an event whose records a
/// batch or file boundary split): the records of both, each once, in their order. Also gives
/// the command it makes, if any. `None` when the two are not records of one auditd event.
pub fn join_audit_event(
    first: &HostEvent,
    more: &HostEvent,
) -> Option<(HostEvent, Option<Command>)> {
    if first.program != "auditd" || more.program != "auditd" || first.event_id != more.event_id {
        return None;
    }
    let mut lines: Vec<&str> = first.raw.lines().collect();
    for line in more.raw.lines() {
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    let input: Vec<HostLineIn<'_>> = lines
        .iter()
        .enumerate()
        .map(|(index, text)| HostLineIn {
            index,
            text,
            reference: first.time,
        })
        .collect();
    let parsed = parse_host_lines(
        &input,
        HostSource {
            origin: &first.origin,
            target: first.target.as_deref(),
        },
    );
    let event = parsed.events.into_iter().next()?;
    (event.event_id == first.event_id).then(|| (event, parsed.commands.into_iter().next()))
}

/// `sshd(pam_unix)` -> `sshd`.
fn program_name(program: &str) -> &str {
    program.split('(').next().unwrap_or(program)
}

/// The id of the `commands` row a host event (a sudo line, an auditd exec) makes.
pub fn command_id(host_event_id: &str) -> String {
    event_id("hostcmd", &[host_event_id])
}

/// The command a successful sudo or an auditd execution ran.
fn command_of(event: &HostEvent, source: &str) -> Option<Command> {
    let wanted = match source {
        "sudo" => event.program == "sudo" && event.action == "sudo",
        _ => event.program == "auditd" && matches!(event.action.as_str(), "exec" | "sudo"),
    };
    if !wanted || event.outcome.as_deref() == Some("failure") {
        return None;
    }
    Some(Command {
        event_id: command_id(&event.event_id),
        time: event.time,
        date: event.date,
        user: event.user.clone(),
        principal_arn: None,
        run_as: event.run_as.clone(),
        // Where: the instance, or the host's name when the log does not say (a file from a
        // machine outside EC2).
        target: event.target.clone().or(event.host.clone()),
        account: None,
        region: None,
        source_ip: None,
        cmd: event.cmd.clone()?,
        cwd: event.cwd.clone(),
        session_id: None,
        seq: 0,
        source: source.to_string(),
        origin: event.origin.clone(),
        parent_cmd: None,
        seen_in_transcript: None,
        target_name: None,
        environment: None,
        account_alias: None,
    })
}

static SSHD_ACCEPTED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<ip>\S+) port \d+(?: \S+)?(?:: (?P<key>.+))?$",
    )
});
static SSHD_FAILED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>\S+) from (?P<ip>\S+) port \d+",
    )
});
static SSHD_INVALID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Invalid user (?P<user>.*?) from (?P<ip>\S+)(?: port \d+)?$"));
static PAM_SESSION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^pam_unix\((?P<service>[^:]+):session\): session (?P<what>opened|closed) for user (?P<user>\S+)(?: by (?P<by>\S*?)(?:\(uid=(?P<uid>\d+)\))?)?$",
    )
});
static PAM_AUTH_FAILURE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"authentication failure;(?P<rest>.*)$"));
static SESSION_OPENED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^session (?P<what>opened|closed) for user (?P<user>\S+)(?: by (?P<by>\S*?)(?:\(uid=(?P<uid>\d+)\))?)?$",
    )
});

fn sshd(message: &str, event: &mut HostEvent) -> bool {
    if let Some(c) = SSHD_ACCEPTED.captures(message) {
        event.action = "login".into();
        event.outcome = Some("success".into());
        event.user = Some(c["user"].to_string());
        event.source_ip = Some(c["ip"].to_string());
        // "Accepted publicly" is a typo in Microsoft's documentation of Entra ID SSH logs.
        let method = match &c["method"] {
            "publicly" => "publickey",
            other => other,
        };
        event.auth = Some(method.to_string());
        event.key = c.name("key").map(|k| k.as_str().to_string());
        return true;
    }
    if let Some(c) = SSHD_FAILED.captures(message) {
        event.action = "login_failed".into();
        event.outcome = Some("failure".into());
        event.user = Some(c["user"].to_string());
        event.source_ip = Some(c["ip"].to_string());
        event.auth = Some(c["method"].to_string());
        event.reason = Some(
            if c.name("invalid").is_some() {
                "invalid user"
            } else {
                "bad credentials"
            }
            .into(),
        );
        return true;
    }
    if let Some(c) = SSHD_INVALID.captures(message) {
        event.action = "login_failed".into();
        event.outcome = Some("failure".into());
        event.user = Some(c["user"].to_string());
        event.source_ip = Some(c["ip"].to_string());
        event.reason = Some("invalid user".into());
        return true;
    }
    pam(message, event)
}

/// PAM lines of any program: sessions opened and closed, authentication failures.
fn pam(message: &str, event: &mut HostEvent) -> bool {
    if let Some(c) = PAM_SESSION
        .captures(message)
        .or_else(|| SESSION_OPENED.captures(message))
    {
        event.action = format!(
            "session_{}",
            if &c["what"] == "opened" {
                "open"
            } else {
                "close"
            }
        );
        event.outcome = Some("success".into());
        // The user the session is for; `by` is who opened it (su, sudo) when given.
        match c.name("by").map(|b| b.as_str()).filter(|b| !b.is_empty()) {
            Some(by) => {
                event.user = Some(by.to_string());
                event.run_as = Some(c["user"].to_string());
            }
            None => event.user = Some(c["user"].to_string()),
        }
        return true;
    }
    if let Some(c) = PAM_AUTH_FAILURE.captures(message) {
        let fields = pam_fields(&c["rest"]);
        event.action = "auth_failed".into();
        event.outcome = Some("failure".into());
        event.user = fields
            .get("user")
            .or_else(|| fields.get("ruser"))
            .or_else(|| fields.get("logname"))
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string());
        event.source_ip = fields
            .get("rhost")
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string());
        event.tty = fields
            .get("tty")
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string());
        event.reason = Some("authentication failure".into());
        return true;
    }
    false
}

/// `logname= uid=0 euid=0 tty=/dev/pts/1 ruser=tsg rhost=  user=tsg` (values may be empty).
fn pam_fields(text: &str) -> BTreeMap<&str, &str> {
    text.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// rsyslog's escapes of control characters: `#012` (LF), `#011` (TAB), any `#ooo`.
pub fn unescape_syslog(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = (digits[0] - b'0') as u32 * 64
                    + (digits[1] - b'0') as u32 * 8
                    + (digits[2] - b'0') as u32;
                if value < 32 || value == 127 {
                    out.push(value as u8);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `<user> : [<error> ; ]TTY=<tty> ; PWD=<cwd> ; USER=<runas> [; GROUP=..] [; TSID=..] [; ENV=..] ; COMMAND=<cmd>`
fn sudo(message: &str, event: &mut HostEvent) -> bool {
    let Some((user, rest)) = message.split_once(" : ") else {
        return pam(message, event);
    };
    let user = user.trim();
    if user.is_empty() || user.contains(' ') {
        return pam(message, event);
    }
    // COMMAND is last and may itself contain " ; ".
    let (fields, command) = match rest.find("COMMAND=") {
        Some(at) => (&rest[..at], Some(&rest[at + "COMMAND=".len()..])),
        None => (rest, None),
    };
    let mut error = None;
    for part in fields.split(" ; ").map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("TTY", v)) => event.tty = Some(v.to_string()),
            Some(("PWD", v)) => event.cwd = Some(v.to_string()),
            Some(("USER", v)) => event.run_as = Some(v.to_string()),
            Some(("GROUP" | "TSID" | "ENV", _)) => {}
            Some(_) => {}
            None => error = Some(part.trim_end_matches(';').trim().to_string()),
        }
    }
    if command.is_none() && event.run_as.is_none() {
        return pam(message, event);
    }
    event.user = Some(user.to_string());
    event.action = "sudo".into();
    event.cmd = command.map(|c| unescape_syslog(c.trim_end()));
    event.outcome = Some(
        if error.is_some() {
            "failure"
        } else {
            "success"
        }
        .into(),
    );
    event.reason = error;
    true
}

static SU_SUCCESS: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Successful su for (?P<to>\S+) by (?P<by>\S+)$"));
static SU_FAILED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^FAILED su for (?P<to>\S+) by (?P<by>\S+)$"));
static SU_TTY: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?P<sign>[+-]) (?P<tty>\S+) (?P<by>[^:\s]+):(?P<to>\S+)$"));
static SU_LEGACY: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?P<bad>BAD SU )?(?P<by>\S+) to (?P<to>\S+) on (?P<tty>\S+)$"));
static SU_CHANGING: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^failed: (?P<tty>\S+) changing from (?P<by>\S+) to (?P<to>\S+)$"));

fn su(message: &str, event: &mut HostEvent) -> bool {
    let set = |event: &mut HostEvent, by: &str, to: &str, ok: bool, tty: Option<&str>| {
        event.action = "su".into();
        event.user = Some(by.to_string());
        event.run_as = Some(to.to_string());
        event.outcome = Some(if ok { "success" } else { "failure" }.into());
        event.tty = tty.map(str::to_string);
        if !ok {
            event.reason = Some("su refused".into());
        }
    };
    if let Some(c) = SU_SUCCESS.captures(message) {
        set(event, &c["by"], &c["to"], true, None);
    } else if let Some(c) = SU_FAILED.captures(message) {
        set(event, &c["by"], &c["to"], false, None);
    } else if let Some(c) = SU_TTY.captures(message) {
        set(
            event,
            &c["by"],
            &c["to"],
            &c["sign"] == "+",
            Some(&c["tty"]),
        );
    } else if let Some(c) = SU_CHANGING.captures(message) {
        set(event, &c["by"], &c["to"], false, Some(&c["tty"]));
    } else if let Some(c) = SU_LEGACY.captures(message) {
        set(
            event,
            &c["by"],
            &c["to"],
            c.name("bad").is_none(),
            Some(&c["tty"]),
        );
    } else {
        return pam(message, event);
    }
    true
}

static ENTRA_VERSION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Version: (?P<version>[^;]+); user: (?P<user>\S+)$"));
static ENTRA_NOT_USER: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^User '(?P<user>[^']+)' is not a (?:Microsoft Entra|AAD|Azure AD) user")
});

/// `aad_certhandler`: the Entra ID SSH key lookup sshd runs for every login attempt.
fn entra(message: &str, event: &mut HostEvent) -> bool {
    if let Some(c) = ENTRA_VERSION.captures(message) {
        event.action = "entra_lookup".into();
        event.user = Some(c["user"].to_string());
        return true;
    }
    if let Some(c) = ENTRA_NOT_USER.captures(message) {
        event.action = "entra_lookup".into();
        event.outcome = Some("failure".into());
        event.user = Some(c["user"].to_string());
        event.reason = Some("not an Entra ID user".into());
        return true;
    }
    false
}

/// The records of one auditd event.
struct AuditEvent {
    node: String,
    serial: u64,
    time: Timestamp,
    /// `(type, fields, raw line)`.
    records: Vec<(String, String, String)>,
}

impl AuditEvent {
    fn into_row(self, source: HostSource<'_>) -> HostEvent {
        let serial = self.serial.to_string();
        let mut row = HostEvent {
            event_id: event_id(
                "auditd",
                &[
                    source.target.unwrap_or(&self.node),
                    &serial,
                    &self.time.timestamp_millis().to_string(),
                ],
            ),
            time: self.time,
            date: day_of(&self.time),
            user: None,
            run_as: None,
            host: (!self.node.is_empty()).then(|| self.node.clone()),
            target: source.target.map(str::to_string),
            source_ip: None,
            program: "auditd".into(),
            action: String::new(),
            outcome: None,
            cmd: None,
            raw: self
                .records
                .iter()
                .map(|(_, _, raw)| raw.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            origin: source.origin.to_string(),
            pid: None,
            tty: None,
            cwd: None,
            auth: None,
            key: None,
            reason: None,
            audit_key: None,
            session_id: None,
            ppid: None,
            audit_session: None,
            exe: None,
        };
        let mut argv: BTreeMap<usize, String> = BTreeMap::new();
        let mut split: BTreeMap<usize, BTreeMap<usize, String>> = BTreeMap::new();
        let mut argc = None;
        let mut proctitle = None;
        let mut paths = Vec::new();
        let mut types = Vec::new();
        for (kind, fields, _) in &self.records {
            let fields = audit_fields(fields);
            types.push(kind.as_str());
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            match kind.as_str() {
                "SYSCALL" => {
                    row.outcome = get("success")
                        .map(|s| if s == "yes" { "success" } else { "failure" }.to_string());
                    row.pid = get("pid").and_then(|p| p.parse().ok());
                    row.tty = get("tty").filter(|t| *t != "(none)").map(str::to_string);
                    row.audit_key = get("key").filter(|k| *k != "(null)").map(unquote_or_hex);
                    row.ppid = get("ppid").and_then(|p| p.parse().ok());
                    row.audit_session = get("ses")
                        .filter(|s| !matches!(*s, "4294967295" | "-1" | "unset"))
                        .and_then(|s| s.parse().ok());
                    row.exe = get("exe").filter(|e| *e != "(null)").map(unquote_or_hex);
                    fill_ids(&mut row, &fields);
                }
                "EXECVE" => {
                    for (name, value) in &fields {
                        if name == "argc" {
                            argc = value.parse::<usize>().ok();
                        } else if let Some(n) = name.strip_prefix('a') {
                            if let Some((index, part)) = n.split_once('[') {
                                let (Ok(index), Ok(part)) = (
                                    index.parse::<usize>(),
                                    part.trim_end_matches(']').parse::<usize>(),
                                ) else {
                                    continue;
                                };
                                split.entry(index).or_default().insert(part, value.clone());
                            } else if let Ok(index) = n.parse::<usize>() {
                                argv.insert(index, unquote_or_hex(value));
                            }
                        }
                    }
                }
                "PROCTITLE" => {
                    proctitle = get("proctitle").map(|p| {
                        let raw = decode_hex(p)
                            .unwrap_or_else(|| p.trim_matches('"').as_bytes().to_vec());
                        raw.split(|b| *b == 0)
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect::<Vec<_>>()
                            .join(" ")
                    });
                }
                "CWD" => row.cwd = get("cwd").map(unquote_or_hex),
                "PATH" => {
                    if let Some(name) = get("name").filter(|n| *n != "(null)") {
                        paths.push(unquote_or_hex(name));
                    }
                }
                "USER_CMD" => {
                    row.action = "sudo".into();
                    fill_ids(&mut row, &fields);
                    let inner = get("msg")
                        .map(|m| audit_fields(m.trim_matches('\'')))
                        .unwrap_or_default();
                    let inner_get =
                        |k: &str| inner.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                    row.cmd = inner_get("cmd").map(unquote_or_hex);
                    row.cwd = inner_get("cwd").map(unquote_or_hex);
                    row.outcome = inner_get("res")
                        .map(|r| if r == "success" { "success" } else { "failure" }.to_string());
                    row.tty = inner_get("terminal")
                        .filter(|t| *t != "?")
                        .map(str::to_string);
                }
                other
                    if other.starts_with("USER_")
                        || other.starts_with("CRED_")
                        || other == "LOGIN" =>
                {
                    fill_ids(&mut row, &fields);
                    let inner = get("msg")
                        .map(|m| audit_fields(m.trim_matches('\'')))
                        .unwrap_or_default();
                    let inner_get =
                        |k: &str| inner.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                    if let Some(acct) = inner_get("acct") {
                        row.run_as = Some(unquote_or_hex(acct));
                    }
                    row.source_ip = inner_get("addr").filter(|a| *a != "?").map(str::to_string);
                    row.outcome = inner_get("res")
                        .map(|r| if r == "success" { "success" } else { "failure" }.to_string());
                    row.tty = inner_get("terminal")
                        .filter(|t| *t != "?")
                        .map(str::to_string);
                    if inner_get("op")
                        .is_some_and(|op| op.contains("sudoers") || op.contains("PAM:"))
                    {
                        row.reason = inner_get("op").map(|o| o.trim_matches('"').to_string());
                    }
                }
                _ => {}
            }
        }
        for (index, parts) in split {
            argv.insert(
                index,
                parts
                    .values()
                    .map(|p| {
                        decode_hex(p)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_else(|| p.clone())
                    })
                    .collect(),
            );
        }
        let has_execve = types.contains(&"EXECVE");
        if has_execve {
            row.action = "exec".into();
            let count = argc.unwrap_or(argv.len());
            let args: Vec<String> = (0..count)
                .filter_map(|i| argv.get(&i))
                .map(|a| shell_quote(a))
                .collect();
            row.cmd = Some(args.join(" "))
                .filter(|c| !c.is_empty())
                .or(proctitle.clone());
        } else if row.action.is_empty() {
            let primary = types
                .iter()
                .find(|t| !matches!(**t, "PROCTITLE" | "CWD" | "PATH" | "SYSCALL" | "EOE"))
                .or(types.first())
                .copied()
                .unwrap_or("UNKNOWN");
            row.action = primary.to_ascii_lowercase();
            if row.cmd.is_none() {
                row.cmd = proctitle;
            }
        }
        if !paths.is_empty() && row.reason.is_none() {
            row.reason = Some(format!("paths: {}", paths.join(", ")));
        }
        row
    }
}

/// auid/uid (with the enriched format's names after `\x1d` when present).
fn fill_ids(row: &mut HostEvent, fields: &[(String, String)]) {
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let name = |upper: &str, numeric: Option<&str>| {
        get(upper)
            .map(|v| v.trim_matches('"').to_string())
            // The enriched format names an unset login uid `unset`.
            .filter(|v| v != "unset")
            .or_else(|| {
                numeric
                    .filter(|v| *v != "4294967295" && *v != "-1")
                    .map(|v| format!("uid {v}"))
            })
    };
    if row.user.is_none() {
        row.user = name("AUID", get("auid"));
    }
    if row.run_as.is_none() {
        row.run_as = name("UID", get("uid"));
    }
    if row.pid.is_none() {
        row.pid = get("pid").and_then(|p| p.parse().ok());
    }
}

/// The values of `key` in the auditd records of one event, as [`HostEvent::raw`] holds them
/// (one record a line), decoded as auditd's own tools show them: quoted strings without their
/// quotes, hex-encoded strings (`EXECVE` arguments, `name`, `comm`, `exe`, `proctitle`, `cmd`,
/// ...) decoded. The `msg='...'` of user-space records is read too. Numbers stay as written
/// (`SYSCALL`'s `a0` is a hex number, not text).
///
/// [`HostEvent::raw`]: auditq_model::HostEvent::raw
pub fn auditd_values(raw: &str, key: &str) -> Vec<String> {
    let mut values = Vec::new();
    for line in raw.lines() {
        let fields = audit_fields(line);
        let kind = fields
            .iter()
            .find(|(k, _)| k == "type")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let text_valued = |k: &str| {
            matches!(
                k,
                "name" | "comm" | "exe" | "proctitle" | "cmd" | "cwd" | "data" | "acct" | "key"
            ) || (kind == "EXECVE"
                && k.starts_with('a')
                && k[1..].starts_with(|c: char| c.is_ascii_digit()))
        };
        let mut take = |k: &str, v: &str| {
            if k != key {
                return;
            }
            let value = if v.starts_with('\'') {
                v.trim_matches('\'').to_string()
            } else if text_valued(k) {
                let decoded = unquote_or_hex(v);
                if k == "proctitle" {
                    decoded.replace('\0', " ")
                } else {
                    decoded
                }
            } else {
                v.trim_matches('"').to_string()
            };
            values.push(value);
        };
        for (k, v) in &fields {
            if k == "msg" && v.starts_with('\'') {
                for (k, v) in audit_fields(v.trim_matches('\'')) {
                    take(&k, &v);
                }
            }
            take(k, v);
        }
    }
    values
}

/// `k=v` pairs; values may be `"quoted"` or `'quoted'` (kept with their quotes, so the caller
/// tells a quoted string from hex). The enriched format's `\x1d` separator starts more pairs.
fn audit_fields(text: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == 0x1d) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b' ' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            // A word without a value (`user` in `user pid=...`): skipped.
            continue;
        }
        let key = &text[start..i];
        i += 1;
        let value_start = i;
        if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
            let quote = bytes[i];
            i += 1;
            while i < bytes.len() && bytes[i] != quote {
                i += 1;
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && bytes[i] != b' ' && bytes[i] != 0x1d {
                i += 1;
            }
        }
        fields.push((key.to_string(), text[value_start..i].to_string()));
    }
    fields
}

/// A quoted auditd value as written, an unquoted one as hex when it is hex.
fn unquote_or_hex(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        return value[1..value.len() - 1].to_string();
    }
    decode_hex(value)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|| value.to_string())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty()
        || !text.len().is_multiple_of(2)
        || !text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// An argument as a shell would need it written (single-quoted when it holds anything special).
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        crate::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
    }

    fn parse(text: &str) -> HostParsed {
        let lines: Vec<HostLineIn<'_>> = text
            .lines()
            .enumerate()
            .map(|(index, text)| HostLineIn {
                index,
                text,
                reference: at("2026-10-06T12:00:00Z"),
            })
            .collect();
        parse_host_lines(
            &lines,
            HostSource {
                origin: "secure",
                target: Some("i-0d4e5f60718293a44"),
            },
        )
    }

    fn one(text: &str) -> HostEvent {
        let parsed = parse(text);
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        assert_eq!(parsed.events.len(), 1, "{:?}", parsed.events);
        parsed.events[0].clone()
    }

    #[test]
    fn sshd_logins_failures_keys_and_certificates() {
        let e = one(
            "Feb 21 21:54:44 localhost sshd[3402]: Accepted publickey for vagrant from 10.0.2.2 port 63673 ssh2: RSA 39:33:99:e9:a0:dc:f2:33:a3:e5:72:3b:7c:3a:56:84",
        );
        assert_eq!(
            (e.action.as_str(), e.user.as_deref(), e.source_ip.as_deref()),
            ("login", Some("vagrant"), Some("10.0.2.2"))
        );
        assert_eq!(
            (e.auth.as_deref(), e.key.as_deref()),
            (
                Some("publickey"),
                Some("RSA 39:33:99:e9:a0:dc:f2:33:a3:e5:72:3b:7c:3a:56:84")
            )
        );
        assert_eq!(
            (e.pid, e.host.as_deref(), e.target.as_deref()),
            (Some(3402), Some("localhost"), Some("i-0d4e5f60718293a44"))
        );
        assert_eq!(e.time, at("2026-02-21T21:54:44Z"));
        let cert = one(
            "Oct  6 16:00:14 ip-10-0-0-44 sshd[2211]: Accepted publickey for ec2-user from 127.0.0.1 port 40112 ssh2: ED25519-CERT SHA256:Qm9iIGNlcnQ ID bob@example.com (serial 7) CA ED25519 SHA256:Q0Ega2V5",
        );
        assert_eq!(
            cert.key.as_deref(),
            Some(
                "ED25519-CERT SHA256:Qm9iIGNlcnQ ID bob@example.com (serial 7) CA ED25519 SHA256:Q0Ega2V5"
            )
        );
        let failed = one(
            "Feb 20 08:35:22 slave22 sshd[5774]: Failed password for root from 89.160.20.156 port 29160 ssh2",
        );
        assert_eq!(
            (
                failed.action.as_str(),
                failed.outcome.as_deref(),
                failed.user.as_deref()
            ),
            ("login_failed", Some("failure"), Some("root"))
        );
        let invalid = one("Feb 21 21:56:12 localhost sshd[3430]: Invalid user test from 10.0.2.2");
        assert_eq!(
            (invalid.action.as_str(), invalid.reason.as_deref()),
            ("login_failed", Some("invalid user"))
        );
        let failed_invalid = one(
            "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
        );
        assert_eq!(
            (
                failed_invalid.user.as_deref(),
                failed_invalid.reason.as_deref()
            ),
            (Some("webmaster"), Some("invalid user"))
        );
        let opened = one(
            "Feb 22 10:49:54 precise32 sshd[3007]: pam_unix(sshd:session): session opened for user vagrant by (uid=0)",
        );
        assert_eq!(
            (opened.action.as_str(), opened.user.as_deref()),
            ("session_open", Some("vagrant"))
        );
        let legacy = one(
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
        );
        assert_eq!(
            (
                legacy.program.as_str(),
                legacy.action.as_str(),
                legacy.source_ip.as_deref()
            ),
            ("sshd", "auth_failed", Some("218.188.2.4"))
        );
        let other = one(
            "Feb 19 15:30:04 slave22 sshd[18406]: Did not receive identification string from 89.160.20.156",
        );
        assert_eq!(other.action, "other");
    }

    #[test]
    fn sudo_variants_from_formats_4c() {
        let padded = one(
            "Apr 27 15:22:23 niban sudo:     dcid : TTY=pts/4 ; PWD=/home/dcid ; USER=root ; COMMAND=/usr/bin/tail /var/log/snort/alert.fast",
        );
        assert_eq!(padded.user.as_deref(), Some("dcid"));
        assert_eq!(
            padded.cmd.as_deref(),
            Some("/usr/bin/tail /var/log/snort/alert.fast")
        );
        assert_eq!(
            (
                padded.tty.as_deref(),
                padded.cwd.as_deref(),
                padded.run_as.as_deref()
            ),
            (Some("pts/4"), Some("/home/dcid"), Some("root"))
        );
        let no_tty = one(
            "Aug  6 19:42:10 server01 sudo[18432]: alice : PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
        );
        assert_eq!(
            (
                no_tty.user.as_deref(),
                no_tty.tty,
                no_tty.pid,
                no_tty.cmd.as_deref()
            ),
            (Some("alice"), None, Some(18432), Some("/usr/bin/id"))
        );
        let tsid = one(
            "Dec 30 19:36:11 rheltest sudo: cplummer : TTY=pts/2 ; PWD=/home/cplummer1 ; USER=root ; TSID=0000UM ; COMMAND=/bin/bash",
        );
        assert_eq!(tsid.cmd.as_deref(), Some("/bin/bash"));
        let semicolons = one(
            "Oct  6 16:05:00 ip-10-0-0-44 sudo: ec2-user : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh -c echo a ; echo b",
        );
        assert_eq!(
            semicolons.cmd.as_deref(),
            Some("/bin/sh -c echo a ; echo b")
        );
        let attempts = one(
            "Feb 24 00:12:42 precise32 sudo:      tsg : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls",
        );
        assert_eq!(
            (attempts.outcome.as_deref(), attempts.reason.as_deref()),
            (Some("failure"), Some("3 incorrect password attempts"))
        );
        let refused = parse(
            "Feb 24 00:13:02 precise32 sudo:      tsg : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls",
        );
        assert_eq!(
            refused.events[0].reason.as_deref(),
            Some("user NOT in sudoers")
        );
        assert!(refused.commands.is_empty(), "a refused sudo ran nothing");
        let auth = one(
            "Feb 24 00:12:20 precise32 sudo: pam_unix(sudo:auth): authentication failure; logname=vagrant uid=1001 euid=0 tty=/dev/pts/1 ruser=tsg rhost=  user=tsg",
        );
        assert_eq!(
            (auth.action.as_str(), auth.user.as_deref()),
            ("auth_failed", Some("tsg"))
        );
        let session = one(
            "Feb 24 00:11:26 precise32 sudo: pam_unix(sudo:session): session opened for user root by vagrant(uid=1000)",
        );
        assert_eq!(
            (session.user.as_deref(), session.run_as.as_deref()),
            (Some("vagrant"), Some("root"))
        );

        // `#012` escapes and a `(command continued)` record, joined into one command.
        let long = parse(concat!(
            "Feb  9 21:21:02 precise32 sudo:  vagrant : TTY=pts/0 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/sh -c python -c 'a = 1;#012b = 2#012#011print(a)' || (echo '0\n",
            "Feb  9 21:21:02 precise32 sudo:  vagrant : (command continued) '/etc/metricbeat/metricbeat.yml)\n",
        ));
        assert!(long.rejects.is_empty(), "{:?}", long.rejects);
        assert_eq!(long.events.len(), 1);
        let cmd = "/bin/sh -c python -c 'a = 1;\nb = 2\n\tprint(a)' || (echo '0'/etc/metricbeat/metricbeat.yml)";
        assert_eq!(long.events[0].cmd.as_deref(), Some(cmd));
        assert_eq!(long.commands.len(), 1);
        assert_eq!(long.commands[0].cmd, cmd);
        assert_eq!(long.commands[0].source, "sudo");
        assert_eq!(long.commands[0].user.as_deref(), Some("vagrant"));
        assert_eq!(long.commands[0].run_as.as_deref(), Some("root"));
        assert_eq!(
            long.commands[0].target.as_deref(),
            Some("i-0d4e5f60718293a44")
        );
        let orphan = parse("Feb  9 21:21:02 precise32 sudo:  vagrant : (command continued) rest");
        assert_eq!(orphan.rejects.len(), 1);
    }

    #[test]
    fn su_variants() {
        let cases = [
            (
                "Feb  9 21:20:01 precise32 su[4496]: Successful su for tsg by root",
                "root",
                "tsg",
                "success",
            ),
            (
                "Feb  9 21:20:01 precise32 su[4496]: + /dev/pts/1 root:tsg",
                "root",
                "tsg",
                "success",
            ),
            (
                "Feb  9 21:20:01 precise32 su[4496]: FAILED su for root by tsg",
                "tsg",
                "root",
                "failure",
            ),
            (
                "Feb  9 21:20:01 precise32 su[4496]: - /dev/pts/1 tsg:root",
                "tsg",
                "root",
                "failure",
            ),
            (
                "Feb  9 21:20:01 niban su[234]: BAD SU ger to fwmaster on /dev/ttyp0",
                "ger",
                "fwmaster",
                "failure",
            ),
            (
                "Feb  9 21:20:01 niban su: dcid to root on /dev/ttyp1",
                "dcid",
                "root",
                "success",
            ),
            (
                "Feb  9 21:20:01 niban su[2921936]: failed: ttyq4 changing from ldap to root",
                "ldap",
                "root",
                "failure",
            ),
        ];
        for (line, by, to, outcome) in cases {
            let e = one(line);
            assert_eq!(
                (
                    e.action.as_str(),
                    e.user.as_deref(),
                    e.run_as.as_deref(),
                    e.outcome.as_deref()
                ),
                ("su", Some(by), Some(to), Some(outcome)),
                "{line}"
            );
        }
        let pam = one(
            "Oct  6 08:03:15 ip-10-1-2-33 su: pam_unix(su-l:session): session opened for user root by ec2-user(uid=1000)",
        );
        assert_eq!(
            (
                pam.action.as_str(),
                pam.user.as_deref(),
                pam.run_as.as_deref()
            ),
            ("session_open", Some("ec2-user"), Some("root"))
        );
    }

    #[test]
    fn entra_id_ssh() {
        let parsed = parse(concat!(
            "May 9 23:49:39 ubuntu1804 aad_certhandler[3915]: Version: 1.0.015570001; user: localusertest01\n",
            "May 9 23:49:39 ubuntu1804 aad_certhandler[3915]: User 'localusertest01' is not a Microsoft Entra user; returning empty result.\n",
            "May 9 23:49:43 ubuntu1804 sshd[3909]: Accepted publicly for localusertest01 from 192.168.0.15 port 53582 ssh2: RSA SHA256:MiROf6f9u1w8J+46AXR1WmPjDhNWJEoXp4HMm9lvJAQ\n",
        ));
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        let actions: Vec<(&str, Option<&str>)> = parsed
            .events
            .iter()
            .map(|e| (e.action.as_str(), e.outcome.as_deref()))
            .collect();
        assert_eq!(
            actions,
            [
                ("entra_lookup", None),
                ("entra_lookup", Some("failure")),
                ("login", Some("success"))
            ]
        );
        assert_eq!(parsed.events[2].auth.as_deref(), Some("publickey"));
    }

    #[test]
    fn an_auditd_event_split_in_two_reads_is_joined() {
        let records = [
            "type=SYSCALL msg=audit(1791191524.102:20102): arch=c000003e syscall=59 success=yes exit=0 ppid=3100 pid=3101 auid=4294967295 uid=1000 tty=pts0 ses=4294967295 comm=\"useradd\" exe=\"/usr/sbin/useradd\" key=\"exec\"",
            "type=EXECVE msg=audit(1791191524.102:20102): argc=3 a0=\"useradd\" a1=\"-m\" a2=\"support\"",
            "type=CWD msg=audit(1791191524.102:20102): cwd=\"/root\"",
            "type=EOE msg=audit(1791191524.102:20102):",
        ];
        let first = parse(&records[..1].join("\n"));
        let second = parse(&records[1..].join("\n"));
        assert_eq!(first.events[0].event_id, second.events[0].event_id);
        assert_eq!(first.events[0].cmd, None);
        assert!(first.commands.is_empty());
        let (joined, command) = join_audit_event(&first.events[0], &second.events[0])
            .unwrap_or_else(|| panic!("not joined"));
        let whole = parse(&records.join("\n"));
        assert_eq!(joined, whole.events[0]);
        assert_eq!(command.as_ref(), whole.commands.first());
        assert_eq!(
            (joined.cmd.as_deref(), joined.ppid, joined.cwd.as_deref()),
            (Some("useradd -m support"), Some(3100), Some("/root"))
        );
        // Read again, a record already held is not doubled.
        let again = join_audit_event(&joined, &second.events[0]).map(|(e, _)| e);
        assert_eq!(again.as_ref(), Some(&joined));
    }

    #[test]
    fn auditd_execs_keep_their_parent_login_session_and_executable() {
        let parsed = parse(concat!(
            "type=SYSCALL msg=audit(1791191524.102:20102): arch=c000003e syscall=59 success=yes exit=0 ppid=3100 pid=3101 auid=4294967295 uid=1000 tty=pts0 ses=4294967295 comm=\"sh\" exe=\"/usr/bin/bash\" key=\"exec\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"unset\" UID=\"ec2-user\"\n",
            "type=EXECVE msg=audit(1791191524.102:20102): argc=1 a0=\"sh\"\n",
            "type=EOE msg=audit(1791191524.102:20102):\n",
            "type=SYSCALL msg=audit(1791302561.311:8812): arch=c000003e syscall=59 success=yes exit=0 ppid=2290 pid=2291 auid=1000 uid=0 tty=pts0 ses=4 comm=\"visudo\" exe=2F7573722F7362696E2F76697375646F key=\"sudoers\"\n",
            "type=EXECVE msg=audit(1791302561.311:8812): argc=1 a0=\"/usr/sbin/visudo\"\n",
        ));
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        let mut events = parsed.events.clone();
        events.sort_by_key(|e| e.time);
        let ids: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.pid,
                    e.ppid,
                    e.audit_session,
                    e.exe.as_deref(),
                    e.user.as_deref(),
                    e.run_as.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                // A Session Manager shell: no login uid, no login session.
                (
                    Some(3101),
                    Some(3100),
                    None,
                    Some("/usr/bin/bash"),
                    None,
                    Some("ec2-user")
                ),
                (
                    Some(2291),
                    Some(2290),
                    Some(4),
                    Some("/usr/sbin/visudo"),
                    Some("uid 1000"),
                    Some("uid 0")
                ),
            ]
        );
    }

    #[test]
    fn auditd_events_are_grouped_by_serial_and_arguments_decoded() {
        let parsed = parse(concat!(
            "type=SYSCALL msg=audit(1791310000.123:501): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=4242 auid=1001 uid=0 tty=pts0 comm=\"vim\" exe=\"/usr/bin/vim\" key=\"sudoers\"\n",
            "type=EXECVE msg=audit(1791310000.123:501): argc=3 a0=\"vim\" a1=2F6574632F7375646F657273202862616B29 a2_len=10\n",
            "type=SYSCALL msg=audit(1791310001.000:502): arch=c000003e syscall=59 success=no exit=-13 pid=4243 auid=4294967295 uid=0 comm=\"cat\" key=(null)\n",
            "type=EXECVE msg=audit(1791310000.123:501): a2[0]=68656C6C6F a2[1]=20776F726C64\n",
            "type=CWD msg=audit(1791310000.123:501): cwd=\"/root\"\n",
            "type=PATH msg=audit(1791310000.123:501): item=0 name=\"/etc/sudoers\" inode=1 nametype=NORMAL\n",
            "type=PROCTITLE msg=audit(1791310000.123:501): proctitle=76696D002F6574632F7375646F657273\n",
            "type=USER_CMD msg=audit(1489519256.192:19600329): user pid=4151 uid=497 auid=700 ses=11988 msg='cwd=\"/\" cmd=2F7573722F62696E2F6964 terminal=? res=success'\n",
            "node=web-1 type=EXECVE msg=audit(1581371984.206:579393): argc=1 a0=top\n",
        ));
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        assert_eq!(parsed.events.len(), 4, "{:?}", parsed.events);
        let vim = parsed
            .events
            .iter()
            .find(|e| e.pid == Some(4242))
            .unwrap_or_else(|| panic!("no vim"));
        assert_eq!(vim.action, "exec");
        assert_eq!(
            vim.cmd.as_deref(),
            Some("vim '/etc/sudoers (bak)' 'hello world'")
        );
        assert_eq!(
            (vim.user.as_deref(), vim.run_as.as_deref()),
            (Some("uid 1001"), Some("uid 0"))
        );
        assert_eq!(
            (vim.cwd.as_deref(), vim.audit_key.as_deref()),
            (Some("/root"), Some("sudoers"))
        );
        assert_eq!(vim.reason.as_deref(), Some("paths: /etc/sudoers"));
        assert_eq!(vim.time, at("2026-10-06T18:06:40.123Z"));
        assert_eq!(vim.raw.lines().count(), 6);
        let failed = parsed
            .events
            .iter()
            .find(|e| e.pid == Some(4243))
            .unwrap_or_else(|| panic!("no cat"));
        assert_eq!(
            (
                failed.user.as_deref(),
                failed.outcome.as_deref(),
                failed.audit_key.as_deref()
            ),
            (None, Some("failure"), None)
        );
        let sudo = parsed
            .events
            .iter()
            .find(|e| e.action == "sudo")
            .unwrap_or_else(|| panic!("no USER_CMD"));
        assert_eq!(
            (
                sudo.cmd.as_deref(),
                sudo.cwd.as_deref(),
                sudo.user.as_deref()
            ),
            (Some("/usr/bin/id"), Some("/"), Some("uid 700"))
        );
        let top = parsed
            .events
            .iter()
            .find(|e| e.host.as_deref() == Some("web-1"))
            .unwrap_or_else(|| panic!("no node"));
        assert_eq!(top.cmd.as_deref(), Some("top"));
        let sources: Vec<(&str, &str)> = parsed
            .commands
            .iter()
            .map(|c| (c.source.as_str(), c.cmd.as_str()))
            .collect();
        assert!(
            sources.contains(&("auditd", "/usr/bin/id")) && sources.contains(&("auditd", "top")),
            "{sources:?}"
        );
        assert!(
            !sources.iter().any(|(_, c)| c.starts_with("cat")),
            "a failed exec is no command"
        );
    }

    #[test]
    fn yearless_times_resolve_against_the_reference() {
        let reference = at("2027-01-02T00:10:00Z");
        let december = resolve_year(12, 31, NaiveTime::MIN, reference);
        assert_eq!(december, Some(at("2026-12-31T00:00:00Z")));
        let today = resolve_year(1, 2, NaiveTime::MIN, reference);
        assert_eq!(today, Some(at("2027-01-02T00:00:00Z")));
        let leap = resolve_year(2, 29, NaiveTime::MIN, reference);
        assert_eq!(leap, Some(at("2024-02-29T00:00:00Z")));
        let rfc = one(
            "2024-05-01T12:34:56.123456+02:00 host sshd[1]: Accepted password for a from 10.0.0.1 port 1 ssh2",
        );
        assert_eq!(rfc.time, at("2024-05-01T10:34:56.123456Z"));
        let macos = one(
            "2020-03-24 06:07:50.998187-0700  localhost sshd[201]: Accepted publickey for user from 10.0.2.2 port 55468 ssh2: RSA SHA256:loremipsum",
        );
        assert_eq!(macos.time, at("2020-03-24T13:07:50.998187Z"));
        let garbage = parse("this is not a log line");
        assert_eq!(garbage.rejects.len(), 1);
    }

    #[test]
    fn instance_streams() {
        assert_eq!(
            instance_of_stream("i-0d4e5f60718293a44"),
            Some("i-0d4e5f60718293a44")
        );
        assert_eq!(
            instance_of_stream("mi-0123456789abcdef0"),
            Some("mi-0123456789abcdef0")
        );
        assert_eq!(instance_of_stream("ip-10-0-0-44"), None);
    }
}
