//! Session Manager recordings: streamed JSON chunks (CloudWatch Logs) and `script` transcripts
//! (S3 objects, and CloudWatch's non-streaming upload form).
//!
//! Both are terminal output, so both go through [`crate::terminal`] and [`crate::prompt`]. The
//! stream adds its own quirks (`formats.md` 1a): each chunk is what the agent read in about a
//! second, split on `\n` with the last empty element dropped, so a prompt and the command typed
//! after it often arrive in two chunks, and nothing marks whether a chunk ended with a newline. A
//! chunk whose last line is a prompt, followed by a chunk that does not open with a prompt, is taken
//! to continue that line (a prompt is never followed by a newline until Enter). A command whose
//! output took more than a second to start would be misjoined with its first output line (a known
//! limit of the format).

use std::collections::BTreeMap;

use auditq_model::{Command, Timestamp, day_of, event_id};
use serde_json::Value;

use crate::prompt::{extract_commands, match_prompt};
use crate::session::SessionFragment;
use crate::terminal::{RenderedLine, TerminalRenderer, render};
use crate::time::{parse_rfc3339, parse_script_date};

/// One streamed upload chunk (one CloudWatch log event).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChunk {
    /// Session id (also the log stream name).
    pub session_id: String,
    /// `eventTime`: when the agent uploaded the chunk.
    pub time: Timestamp,
    /// `awsRegion`.
    pub region: Option<String>,
    /// `target.id`.
    pub target: Option<String>,
    /// `userIdentity.arn`.
    pub principal_arn: Option<String>,
    /// `runAsUser`.
    pub run_as: Option<String>,
    /// `sessionData`.
    pub lines: Vec<String>,
    /// Where the chunk was read (for `origin` and `stream_uri`).
    pub origin: String,
}

/// Whether a JSON value is a Session Manager stream chunk.
pub fn looks_like_chunk(value: &Value) -> bool {
    value.get("sessionData").is_some() && value.get("sessionId").is_some()
}

/// Reads one stream chunk; `fallback_time` (the CloudWatch event timestamp) is used when
/// `eventTime` is absent.
pub fn parse_chunk(
    value: &Value,
    origin: &str,
    fallback_time: Option<Timestamp>,
) -> Result<StreamChunk, String> {
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let session_id = text("/sessionId").ok_or("missing sessionId")?;
    let time = text("/eventTime")
        .and_then(|t| parse_rfc3339(&t))
        .or(fallback_time)
        .ok_or("missing or bad eventTime")?;
    let lines = value
        .get("sessionData")
        .and_then(Value::as_array)
        .ok_or("sessionData is not an array")?
        .iter()
        .map(|line| {
            line.as_str()
                .map(str::to_string)
                .ok_or("sessionData holds a non-string")
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StreamChunk {
        session_id,
        time,
        region: text("/awsRegion"),
        target: text("/target/id"),
        principal_arn: text("/userIdentity/arn"),
        run_as: text("/runAsUser"),
        lines,
        origin: origin.to_string(),
    })
}

/// The short name and account of a principal ARN
/// (`arn:aws:sts::111122223333:assumed-role/Role/carol@example.com` -> `carol@example.com`).
pub fn principal_of_arn(arn: &str) -> (Option<String>, Option<String>) {
    let mut parts = arn.splitn(6, ':');
    let account = parts.nth(4).filter(|a| !a.is_empty()).map(str::to_string);
    let resource = parts.next().unwrap_or_default();
    let name = if resource == "root" {
        Some("root".to_string())
    } else {
        resource
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    };
    (name, account)
}

fn command_id(session_id: &str, seq: usize) -> String {
    event_id("cmd", &[session_id, &seq.to_string()])
}

/// The text a line shows once its residual escape sequences are applied.
fn visible(line: &str) -> String {
    render(line.as_bytes())
        .pop()
        .map(|l| l.text)
        .unwrap_or_default()
}

/// Renders one session's chunks, in upload order, into the lines its user saw; each line is
/// tagged with the index (in the sorted `chunks`) of the chunk in which it ended.
///
/// The last line may still be being typed when a live stream is read; it is taken as it
/// stands, and a later read of the grown stream revises it (see `store_at`).
pub fn render_chunks(chunks: &mut [StreamChunk]) -> Vec<RenderedLine> {
    // Stable: chunks with the same upload second keep their log order.
    chunks.sort_by_key(|c| c.time);
    let mut renderer = TerminalRenderer::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            // The line left open so far (it may span several chunks) starts at a prompt.
            let previous_open = match_prompt(&renderer.open_line()).is_some();
            let opens_with_prompt = chunk
                .lines
                .first()
                .map(|l| match_prompt(&visible(l)).is_some())
                .unwrap_or(true);
            if !previous_open || opens_with_prompt {
                renderer.feed(b"\n", i - 1);
            }
        }
        renderer.feed(chunk.lines.join("\n").as_bytes(), i);
    }
    renderer.finish()
}

/// Assembles the chunks of any number of sessions into commands and session fragments.
pub fn assemble_stream(chunks: Vec<StreamChunk>) -> (Vec<Command>, Vec<SessionFragment>) {
    let mut by_session: BTreeMap<String, Vec<StreamChunk>> = BTreeMap::new();
    for chunk in chunks {
        by_session
            .entry(chunk.session_id.clone())
            .or_default()
            .push(chunk);
    }
    let mut commands = Vec::new();
    let mut fragments = Vec::new();
    for (session_id, mut chunks) in by_session {
        let lines = render_chunks(&mut chunks);
        let first = &chunks[0];
        let default_run_as = chunks.iter().find_map(|c| c.run_as.as_deref());
        let principal_arn = chunks.iter().find_map(|c| c.principal_arn.clone());
        let (user, account) = principal_arn
            .as_deref()
            .map(principal_of_arn)
            .unwrap_or_default();
        let found = extract_commands(&lines, default_run_as);
        for (n, pc) in found.iter().enumerate() {
            let chunk = &chunks[pc.tag.min(chunks.len() - 1)];
            commands.push(Command {
                event_id: command_id(&session_id, n + 1),
                time: chunk.time,
                date: day_of(&chunk.time),
                user: user.clone(),
                principal_arn: principal_arn.clone(),
                run_as: pc.run_as.clone(),
                target: chunk.target.clone(),
                account: account.clone(),
                region: chunk.region.clone(),
                source_ip: None,
                cmd: pc.cmd.clone(),
                cwd: pc.cwd.clone(),
                session_id: Some(session_id.clone()),
                seq: n as i64 + 1,
                source: "stream".to_string(),
                origin: chunk.origin.clone(),
                parent_cmd: None,
                seen_in_transcript: None,
                target_name: None,
                environment: None,
                account_alias: None,
            });
        }
        fragments.push(SessionFragment {
            user,
            principal_arn,
            account,
            first_seen: chunks.iter().map(|c| c.time).min(),
            last_seen: chunks.iter().map(|c| c.time).max(),
            recorded_to: chunks.iter().map(|c| c.time).max(),
            silence: longest_silence(chunks.iter().map(|c| c.time)),
            target: first.target.clone(),
            region: first.region.clone(),
            run_as: default_run_as.map(str::to_string),
            commands: Some(found.len() as i64),
            stream_uri: Some(first.origin.clone()),
            ..SessionFragment::new(session_id)
        });
    }
    (commands, fragments)
}

/// The longest time between two consecutive times, in seconds (`None` for fewer than two).
fn longest_silence(times: impl Iterator<Item = Timestamp>) -> Option<i64> {
    let mut times: Vec<Timestamp> = times.collect();
    times.sort_unstable();
    times
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).num_seconds())
        .max()
}

/// Whether bytes are a `script` transcript.
pub fn looks_like_transcript(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    bytes[start..].starts_with(b"Script started on ")
}

/// Whether a name has the form of a Session Manager session id: the caller's name, a dash, and
/// a random suffix (17 hex digits, `alice-0a7f3c9e1b2d4f601`, or 26 lowercase letters and digits
/// in newer ids). EC2 and managed-instance ids (`i-...`, `mi-...`), which the CloudWatch agent
/// names host-log streams after, have the same shape and are not sessions.
pub fn is_session_id(name: &str) -> bool {
    let Some((user, suffix)) = name.rsplit_once('-') else {
        return false;
    };
    !user.is_empty()
        && user != "i"
        && user != "mi"
        && (17..=32).contains(&suffix.len())
        && suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The session id a transcript's object name carries (`<prefix>/<sessionId>.log`).
pub fn session_id_of_key(key: &str) -> Option<String> {
    let name = key.rsplit('/').next()?;
    let id = name.strip_suffix(".log").unwrap_or(name);
    (!id.is_empty()).then(|| id.to_string())
}

/// Where a Run Command invocation's output is, as the SSM agent names it: an S3 key
/// `<prefix>/<command id>/<instance id>/awsrunShellScript/0.awsrunShellScript/stdout` (or
/// `stderr`), or a CloudWatch Logs stream `<command id>/<instance id>/aws-runShellScript/stdout`
/// (in the group `/aws/ssm/<document>`, or the one the command named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommandOutput<'a> {
    /// The command id.
    pub command_id: &'a str,
    /// The instance it ran on.
    pub instance: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
}

impl RunCommandOutput<'_> {
    /// The access it belongs to: `<command id>-<instance id>`, the Run Command session.
    pub fn session_id(&self) -> String {
        format!("{}-{}", self.command_id, self.instance)
    }
}

/// The Run Command invocation an S3 key or log stream name holds the output of.
pub fn run_command_output(name: &str) -> Option<RunCommandOutput<'_>> {
    let parts: Vec<&str> = name.split(['/', '#']).collect();
    let stream = *parts.last()?;
    if !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    // The command id and instance, then at least the plugin, then the file.
    parts
        .windows(2)
        .enumerate()
        .find(|(i, pair)| is_command_id(pair[0]) && is_instance_id(pair[1]) && i + 3 < parts.len())
        .map(|(_, pair)| RunCommandOutput {
            command_id: pair[0],
            instance: pair[1],
            stream,
        })
}

/// A Run Command id (a UUID).
pub fn is_command_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An EC2 instance or hybrid managed-node id (`i-...`, `mi-...`).
pub fn is_instance_id(id: &str) -> bool {
    id.starts_with("i-") || id.starts_with("mi-")
}

/// What an output object (`logged: false`: an S3 object or file) or log stream (`true`) says of
/// its Run Command access: its instance, where its output is (`stdout` is the recording an
/// auditor opens; `stderr` adds only its time), and when it was written.
pub fn run_command_fragment(
    output: &RunCommandOutput<'_>,
    uri: &str,
    in_log_stream: bool,
    time: Timestamp,
) -> SessionFragment {
    let stdout = output.stream == "stdout";
    SessionFragment {
        target: Some(output.instance.to_string()),
        kind: Some("run_command".to_string()),
        document: None,
        last_seen: Some(time),
        transcript_uri: (stdout && !in_log_stream).then(|| uri.to_string()),
        stream_uri: (stdout && in_log_stream).then(|| uri.to_string()),
        ..SessionFragment::new(output.session_id())
    }
}

/// A Run Command invocation as `ssm:ListCommands` returns it: CloudTrail hides its parameters,
/// Systems Manager keeps them (for 30 days).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedCommand {
    /// The command id.
    pub command_id: String,
    /// The document it ran (`AWS-RunShellScript`).
    pub document: Option<String>,
    /// Its comment.
    pub comment: Option<String>,
    /// The `commands` parameter: the script's lines.
    pub commands: Vec<String>,
    /// The instances it ran on.
    pub instances: Vec<String>,
    /// When it was sent.
    pub requested: Timestamp,
    /// The region it was sent in.
    pub region: String,
}

/// What a listed Run Command invocation says: on each instance, an access of its own (who sent
/// it comes from CloudTrail's `SendCommand`), and the lines of its script as that access's
/// commands (`source = run_command`), numbered from 1.
pub fn listed_command_rows(
    listed: &ListedCommand,
    origin: &str,
) -> (Vec<SessionFragment>, Vec<Command>) {
    let mut fragments = Vec::new();
    let mut commands = Vec::new();
    for instance in &listed.instances {
        let session_id = format!("{}-{instance}", listed.command_id);
        fragments.push(SessionFragment {
            target: Some(instance.clone()),
            region: Some(listed.region.clone()),
            document: listed.document.clone(),
            reason: listed.comment.clone().filter(|c| !c.is_empty()),
            kind: Some("run_command".to_string()),
            first_seen: Some(listed.requested),
            ..SessionFragment::new(session_id.clone())
        });
        let lines = listed
            .commands
            .iter()
            .flat_map(|c| c.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        for (n, line) in lines.enumerate() {
            let seq = n as i64 + 1;
            commands.push(Command {
                event_id: event_id("run_command", &[&session_id, &seq.to_string()]),
                time: listed.requested,
                date: day_of(&listed.requested),
                user: None,
                principal_arn: None,
                run_as: None,
                target: Some(instance.clone()),
                account: None,
                region: Some(listed.region.clone()),
                source_ip: None,
                cmd: line.to_string(),
                cwd: None,
                session_id: Some(session_id.clone()),
                seq,
                source: "run_command".to_string(),
                origin: origin.to_string(),
                parent_cmd: None,
                seen_in_transcript: None,
                target_name: None,
                environment: None,
                account_alias: None,
            });
        }
    }
    (fragments, commands)
}

/// A transcript's commands and what it says about its session.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Commands in order; times are the transcript start (transcripts carry no per-line times).
    pub commands: Vec<Command>,
    /// The session fragment.
    pub fragment: SessionFragment,
}

/// Reads a `script` transcript. `fallback_time` stands in for a missing header date.
pub fn parse_transcript(
    bytes: &[u8],
    session_id: &str,
    origin: &str,
    fallback_time: Option<Timestamp>,
) -> Result<Transcript, String> {
    let lines = render(bytes);
    let mut started = None;
    let mut ended = None;
    let mut body = Vec::with_capacity(lines.len());
    // PowerShell's `Start-Transcript` (Windows): `Start time: 20200125091923` in its header,
    // `End time: ...` after `Windows PowerShell transcript end`; EC2's Windows clock is UTC.
    let powershell_time = |text: &str| {
        chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y%m%d%H%M%S")
            .ok()
            .map(|t| t.and_utc())
    };
    let mut powershell_ending = false;
    for line in lines {
        if let Some(rest) = line.text.strip_prefix("Script started on ") {
            started = parse_script_date(rest.split(" [").next().unwrap_or(rest));
        } else if let Some(rest) = line.text.strip_prefix("Script done on ") {
            ended = parse_script_date(rest.split(" [").next().unwrap_or(rest));
        } else if line.text.trim_end() == "Windows PowerShell transcript end" {
            powershell_ending = true;
        } else if let Some(rest) = line.text.strip_prefix("End time: ")
            && powershell_ending
        {
            ended = powershell_time(rest);
        } else if let Some(rest) = line.text.strip_prefix("Start time: ")
            && started.is_none()
        {
            started = powershell_time(rest);
            body.push(line);
        } else {
            body.push(line);
        }
    }
    let time = started
        .or(fallback_time)
        .ok_or("transcript has no start date")?;
    let found = extract_commands(&body, None);
    let commands = found
        .iter()
        .enumerate()
        .map(|(n, pc)| Command {
            event_id: command_id(session_id, n + 1),
            time,
            date: day_of(&time),
            user: None,
            principal_arn: None,
            run_as: pc.run_as.clone(),
            target: None,
            account: None,
            region: None,
            source_ip: None,
            cmd: pc.cmd.clone(),
            cwd: pc.cwd.clone(),
            session_id: Some(session_id.to_string()),
            seq: n as i64 + 1,
            source: "transcript".to_string(),
            origin: origin.to_string(),
            parent_cmd: None,
            seen_in_transcript: None,
            target_name: None,
            environment: None,
            account_alias: None,
        })
        .collect();
    Ok(Transcript {
        commands,
        fragment: SessionFragment {
            first_seen: started,
            last_seen: ended.or(started),
            // No `Script done`: the shell did not end before the transcript was written.
            recorded_to: ended,
            commands: Some(found.len() as i64),
            transcript_uri: Some(origin.to_string()),
            ..SessionFragment::new(session_id.to_string())
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(time: &str, lines: &[&str]) -> StreamChunk {
        StreamChunk {
            session_id: "bob-1".into(),
            time: parse_rfc3339(time).unwrap_or_default(),
            region: Some("eu-west-1".into()),
            target: Some("i-1".into()),
            principal_arn: Some("arn:aws:iam::111122223333:user/bob".into()),
            run_as: Some("ssm-user".into()),
            lines: lines.iter().map(|s| s.to_string()).collect(),
            origin: "stream".into(),
        }
    }

    #[test]
    fn session_ids_are_told_from_other_stream_names() {
        for id in [
            "alice-0a7f3c9e1b2d4f601",
            "carol@example.com-wzleysigzmbd6fmkefjqvt5w4u",
            "garland.kan.temp-0e34861185201706f",
        ] {
            assert!(is_session_id(id), "{id}");
        }
        for name in [
            "testLogStream",
            "i-0a1b2c3d4e5f60711",
            "mi-0123456789abcdef0",
            "2026/11/24/[$LATEST]0123456789abcdef",
            "-0a7f3c9e1b2d4f601",
            "alice-0A7F3C9E1B2D4F601",
            "111122223333_CloudTrail_eu-west-1",
        ] {
            assert!(!is_session_id(name), "{name}");
        }
    }

    #[test]
    fn split_command_is_joined_and_timed_at_enter() {
        let chunks = vec![
            chunk(
                "2026-10-05T10:30:20Z",
                &[
                    "$ df -h",
                    "Filesystem Size",
                    "$ tail -n 50 /var/log/postgres",
                ],
            ),
            chunk("2026-10-05T10:30:21Z", &["ql/main.log", "line", "$ "]),
        ];
        let (commands, fragments) = assemble_stream(chunks);
        let cmds: Vec<_> = commands.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["df -h", "tail -n 50 /var/log/postgresql/main.log"]);
        assert_eq!(commands[1].time.to_rfc3339(), "2026-10-05T10:30:21+00:00");
        assert_eq!(commands[1].user.as_deref(), Some("bob"));
        assert_eq!(commands[1].account.as_deref(), Some("111122223333"));
        assert_eq!(fragments[0].commands, Some(2));
    }

    #[test]
    fn a_command_typed_across_three_chunks_is_one_command_with_a_stable_id() {
        let first = vec![
            chunk("2026-10-05T10:30:17Z", &["$ id", "uid=1001", "$ "]),
            chunk("2026-10-05T10:30:18Z", &["sudo sys"]),
        ];
        let (early, _) = assemble_stream(first.clone());
        let cmds: Vec<_> = early.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["id", "sudo sys"]);

        let mut grown = first;
        grown.push(chunk(
            "2026-10-05T10:30:19Z",
            &["temctl restart nginx", "active", "$ "],
        ));
        let (later, _) = assemble_stream(grown);
        let cmds: Vec<_> = later.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["id", "sudo systemctl restart nginx"]);
        // Same place in the session, same id: the stored cut-off command is revised in place.
        assert_eq!(later[1].event_id, early[1].event_id);
    }

    #[test]
    fn typing_after_a_prompt_at_the_end_of_a_chunk_continues_its_line() {
        let chunks = vec![
            chunk("2026-10-05T10:30:17Z", &["$ "]),
            chunk("2026-10-05T10:30:22Z", &["whoami", "ssm-user", "$ "]),
        ];
        let (commands, _) = assemble_stream(chunks);
        let cmds: Vec<_> = commands
            .iter()
            .map(|c| (c.cmd.as_str(), c.time.to_rfc3339()))
            .collect();
        assert_eq!(cmds, [("whoami", "2026-10-05T10:30:22+00:00".to_string())]);
    }

    #[test]
    fn chunk_ending_in_a_bare_prompt_is_not_joined_to_a_new_prompt() {
        let chunks = vec![
            chunk("2026-10-05T10:30:20Z", &["$ ls", "a b", "$ "]),
            chunk("2026-10-05T10:30:25Z", &["$ id", "uid=1001"]),
        ];
        let (commands, _) = assemble_stream(chunks);
        let cmds: Vec<_> = commands.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["ls", "id"]);
    }

    #[test]
    fn arn_names() {
        assert_eq!(
            principal_of_arn(
                "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_A_1/carol@example.com"
            ),
            (
                Some("carol@example.com".into()),
                Some("111122223333".into())
            )
        );
        assert_eq!(
            principal_of_arn("arn:aws:iam::1:root"),
            (Some("root".into()), Some("1".into()))
        );
    }

    #[test]
    fn transcript_header_footer_and_editing() {
        let bytes = b"Script started on 2026-10-06 11:00:06+00:00 [COMMAND=\"cat x\" <not executed on terminal>]\r\n\
sh-5.2$ rm -rf /tmp/x^C\r\nsh-5.2$ lx\x08\x1b[Ks /\r\nbin\r\nsh-5.2$ exit\r\nexit\r\n\r\nScript done on 2026-10-06 11:07:31+00:00 [COMMAND_EXIT_CODE=\"0\"]\r\n";
        let t = parse_transcript(bytes, "s-1", "s3://b/s-1.log", None)
            .unwrap_or_else(|e| panic!("{e}"));
        let cmds: Vec<_> = t.commands.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["ls /", "exit"]);
        assert_eq!(
            t.fragment.first_seen.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-10-06T11:00:06+00:00")
        );
        assert_eq!(
            t.fragment.last_seen.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-10-06T11:07:31+00:00")
        );
        assert_eq!(
            session_id_of_key("session-logs/s-1.log").as_deref(),
            Some("s-1")
        );
        assert_eq!(t.fragment.recorded_to, t.fragment.last_seen);
    }

    #[test]
    fn a_transcript_without_script_done_was_cut_short() {
        let bytes =
            b"Script started on 2026-10-06 11:00:06+00:00\r\nsh-5.2$ ls /\r\nbin\r\nsh-5.2$ ";
        let t = parse_transcript(bytes, "s-1", "s3://b/s-1.log", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.commands.len(), 1);
        assert_eq!(t.fragment.recorded_to, None);
    }

    #[test]
    fn a_powershell_transcript_ends_at_its_end_time() {
        let bytes = b"**********************\r\nWindows PowerShell transcript start\r\nStart time: 20261006110006\r\n\
**********************\r\nPS C:\\Users\\Administrator> whoami\r\nec2amaz\\administrator\r\n\
**********************\r\nWindows PowerShell transcript end\r\nEnd time: 20261006110731\r\n**********************\r\n";
        let t = parse_transcript(bytes, "s-1", "s3://b/s-1.log", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.fragment.first_seen.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-10-06T11:00:06+00:00")
        );
        assert_eq!(
            t.fragment.recorded_to.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-10-06T11:07:31+00:00")
        );
    }

    #[test]
    fn a_stream_knows_its_last_event_and_longest_silence() {
        let first = vec![
            chunk("2026-10-05T10:00:00Z", &["$ ls"]),
            chunk("2026-10-05T10:01:00Z", &["a", "$ "]),
            chunk("2026-10-05T10:40:00Z", &["$ df"]),
        ];
        let (_, fragments) = assemble_stream(first);
        assert_eq!(fragments[0].silence, Some(39 * 60));
        assert_eq!(
            fragments[0].recorded_to.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-10-05T10:40:00+00:00")
        );
        // A later piece of the same stream: the silence between the pieces counts.
        let (_, later) = assemble_stream(vec![chunk("2026-10-05T12:00:00Z", &["$ uptime"])]);
        let row = crate::session::merge(fragments.iter().chain(&later))
            .unwrap_or_else(|| panic!("no row"));
        assert_eq!(row.longest_silence_seconds, Some(80 * 60));
        assert_eq!(
            row.recorded_to.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-10-05T12:00:00+00:00")
        );
        // Folding the stored row with nothing new keeps both.
        let again = crate::session::merge([&crate::session::SessionFragment::from_row(&row)])
            .unwrap_or_else(|| panic!("no row"));
        assert_eq!(again.longest_silence_seconds, row.longest_silence_seconds);
        assert_eq!(again.recorded_to, row.recorded_to);
    }
}
