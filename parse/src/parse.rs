//! One object in, typed events and rejects out: format detection and dispatch.
//!
//! The format is told from the content, not the name: a `{"Records":[...]}` CloudTrail delivery,
//! a CloudWatch Logs export (`{"events":[...]}` from `filter-log-events`/`get-log-events`) or a
//! decoded subscription payload (`{"logEvents":[...]}`) whose messages are stream chunks,
//! CloudTrail records or plain-text transcript uploads, NDJSON of any of those, or a `script`
//! transcript. Pure: no I/O, so every format can be tested and fuzzed from bytes.
//!
//! Nothing is dropped silently: a record that cannot be read becomes a [`Reject`] naming the
//! object, the position and the reason, and the rest of the object goes on.

use std::collections::BTreeMap;

use auditq_model::{Command, HostEvent, Reject, Timestamp, TrailEvent, day_of, event_id};
use serde_json::Value;

use crate::cloudtrail;
use crate::decode::{DEFAULT_MAX_DECOMPRESSED, maybe_gunzip};
use crate::host;
use crate::session::SessionFragment;
use crate::ssm::{self, StreamChunk};
use crate::time::from_epoch_millis;

/// Size limits applied to every object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest object read at all, in bytes.
    pub max_object_bytes: u64,
    /// Largest decompressed size of one object.
    pub max_decompressed_bytes: u64,
    /// Largest line of an NDJSON object.
    pub max_line_bytes: usize,
    /// Files read before their rows are committed to the lake.
    pub batch_files: usize,
    /// Input bytes read before their rows are committed to the lake.
    pub batch_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_object_bytes: 1024 * 1024 * 1024,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED,
            // CloudTrail and CloudWatch Logs events are at most 256 KB; leave room for envelopes.
            max_line_bytes: 1024 * 1024,
            batch_files: 256,
            batch_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Everything read from a set of objects, before assembly.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// CloudTrail records.
    pub trail: Vec<TrailEvent>,
    /// Session fragments from CloudTrail and transcripts.
    pub fragments: Vec<SessionFragment>,
    /// Stream chunks (assembled per session once all objects are read).
    pub chunks: Vec<StreamChunk>,
    /// Commands from transcripts.
    pub commands: Vec<Command>,
    /// Host log lines (sshd, sudo, su, PAM, auditd, Entra ID); their commands are in
    /// `commands`.
    pub host: Vec<HostEvent>,
    /// Records that could not be read.
    pub rejects: Vec<Reject>,
}

impl Parsed {
    /// Adds another object's results.
    pub fn extend(&mut self, other: Parsed) {
        self.trail.extend(other.trail);
        self.fragments.extend(other.fragments);
        self.chunks.extend(other.chunks);
        self.commands.extend(other.commands);
        self.host.extend(other.host);
        self.rejects.extend(other.rejects);
    }
}

/// An object to parse.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// Where it came from (path or URI), recorded on every row.
    pub origin: &'a str,
    /// When it was written (file mtime, S3 LastModified): the time of its rejects.
    pub modified: Timestamp,
}

/// Builds a reject. Its id derives from origin and position, so a re-read does not add another.
pub fn reject(
    object: Object<'_>,
    position: &str,
    format: &str,
    reason: &str,
    excerpt: &[u8],
) -> Reject {
    let excerpt = String::from_utf8_lossy(&excerpt[..excerpt.len().min(200)]).into_owned();
    Reject {
        event_id: event_id("reject", &[object.origin, position]),
        time: object.modified,
        date: day_of(&object.modified),
        origin: object.origin.to_string(),
        position: position.to_string(),
        format: format.to_string(),
        reason: reason.to_string(),
        excerpt,
    }
}

/// Parses one object (compressed or not).
pub fn parse_object(bytes: Vec<u8>, object: Object<'_>, limits: &Limits) -> Parsed {
    let mut parsed = Parsed::default();
    if bytes.len() as u64 > limits.max_object_bytes {
        parsed.rejects.push(reject(
            object,
            "object",
            "unknown",
            &format!(
                "object of {} bytes exceeds the {}-byte cap",
                bytes.len(),
                limits.max_object_bytes
            ),
            &bytes[..bytes.len().min(200)],
        ));
        return parsed;
    }
    let bytes = match maybe_gunzip(bytes, limits.max_decompressed_bytes) {
        Ok(bytes) => bytes,
        Err(e) => {
            parsed
                .rejects
                .push(reject(object, "object", "gzip", &e.to_string(), &[]));
            return parsed;
        }
    };
    // A Run Command invocation's output, named by the agent after the command and instance: what
    // it printed, kept where it is, and the access told where to find it.
    if let Some(output) = ssm::run_command_output(object.origin) {
        parsed.fragments.push(ssm::run_command_fragment(
            &output,
            object.origin,
            false,
            object.modified,
        ));
        return parsed;
    }
    if ssm::looks_like_transcript(&bytes) {
        parse_transcript_object(&bytes, object, None, &mut parsed);
        return parsed;
    }
    // The common case, a CloudTrail delivery, skips building a JSON tree of the whole object.
    if let Ok(delivery) = serde_json::from_slice::<Delivery<'_>>(&bytes) {
        for (n, record) in delivery.records.iter().enumerate() {
            let position = at("", "record", n);
            if record.get().starts_with('{') {
                parse_trail_record(record.get(), object, &position, &mut parsed);
            } else {
                // Not an object: rejected below with the reason every other path gives.
                let value = serde_json::from_str::<Value>(record.get()).unwrap_or(Value::Null);
                parse_record_value(&value, object, &position, &mut parsed, None);
            }
        }
        return parsed;
    }
    if !starts_like_json(&bytes) && host_log_start(&bytes) {
        parse_host_text(&bytes, object, None, &mut parsed);
        return parsed;
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => parse_json(value, object, "", &mut parsed),
        Err(_) if !starts_like_json(&bytes) => {
            let reason = "unrecognised format: not JSON, not a session transcript, not a syslog or auditd log";
            parsed
                .rejects
                .push(reject(object, "object", "unknown", reason, &bytes));
        }
        Err(whole_error) if !first_line_is_json(&bytes) => {
            let reason = format!("malformed JSON: {whole_error}");
            parsed
                .rejects
                .push(reject(object, "object", "json", &reason, &bytes));
        }
        Err(_) => parse_ndjson(&bytes, object, limits, &mut parsed),
    }
    parsed
}

/// Whether the first line of a text object is a syslog or auditd record.
fn host_log_start(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let first = head
        .split(|&b| b == b'\n')
        .find(|line| !line.iter().all(u8::is_ascii_whitespace))
        .unwrap_or_default();
    std::str::from_utf8(first).is_ok_and(host::looks_like_host_log)
}

/// A host log file (`secure`, `auth.log`, `audit.log`): one record per line. Yearless syslog
/// times are resolved against the object's modification time.
fn parse_host_text(bytes: &[u8], object: Object<'_>, target: Option<&str>, parsed: &mut Parsed) {
    let mut lines = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        match std::str::from_utf8(line) {
            Ok(text) => lines.push(host::HostLineIn {
                index: n,
                text,
                reference: object.modified,
            }),
            Err(e) => parsed.rejects.push(reject(
                object,
                &format!("line {}", n + 1),
                "host",
                &format!("invalid UTF-8: {e}"),
                line,
            )),
        }
    }
    let texts: BTreeMap<usize, &str> = lines.iter().map(|l| (l.index, l.text)).collect();
    let found = host::parse_host_lines(
        &lines,
        host::HostSource {
            origin: object.origin,
            target,
        },
    );
    parsed.host.extend(found.events);
    parsed.commands.extend(found.commands);
    for (index, reason) in found.rejects {
        let text = texts.get(&index).copied().unwrap_or_default();
        parsed.rejects.push(reject(
            object,
            &format!("line {}", index + 1),
            "host",
            &reason,
            text.as_bytes(),
        ));
    }
}

/// Whether the object reads as NDJSON: its first non-blank line is a JSON value by itself
/// (a pretty-printed document cut short is not, and is rejected whole rather than per line).
fn first_line_is_json(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'\n')
        .find(|line| !line.iter().all(u8::is_ascii_whitespace))
        .is_some_and(|line| serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok())
}

fn starts_like_json(bytes: &[u8]) -> bool {
    matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// A transcript; its session id is `session_id` (a log stream's name) or comes from the
/// object's name (`<sessionId>.log`).
fn parse_transcript_object(
    bytes: &[u8],
    object: Object<'_>,
    session_id: Option<&str>,
    parsed: &mut Parsed,
) {
    let named = session_id
        .map(str::to_string)
        .or_else(|| ssm::session_id_of_key(object.origin));
    let Some(session_id) = named else {
        parsed.rejects.push(reject(
            object,
            "object",
            "transcript",
            "no session id in the name",
            &[],
        ));
        return;
    };
    match ssm::parse_transcript(bytes, &session_id, object.origin, Some(object.modified)) {
        Ok(t) => {
            parsed.commands.extend(t.commands);
            parsed.fragments.push(t.fragment);
        }
        Err(reason) => parsed
            .rejects
            .push(reject(object, "object", "transcript", &reason, bytes)),
    }
}

fn parse_ndjson(bytes: &[u8], object: Object<'_>, limits: &Limits, parsed: &mut Parsed) {
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let position = format!("line {}", n + 1);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() > limits.max_line_bytes {
            let reason = format!(
                "line of {} bytes exceeds the {}-byte cap",
                line.len(),
                limits.max_line_bytes
            );
            parsed
                .rejects
                .push(reject(object, &position, "ndjson", &reason, line));
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(value) => parse_json(value, object, &position, parsed),
            Err(e) => {
                let reason = format!("malformed JSON: {e}");
                parsed
                    .rejects
                    .push(reject(object, &position, "ndjson", &reason, line));
            }
        }
    }
}

/// Plain-text events by stream: time, text, and position (for rejects).
type Uploads = BTreeMap<String, Vec<(Option<Timestamp>, String, String)>>;

/// A CloudWatch Logs event, however it was obtained (an export file, the API, a subscription).
#[derive(Debug, Clone, Copy)]
pub struct LogEventIn<'v> {
    /// Its position (from 0) in what it was read from, for rejects.
    pub index: usize,
    /// The log stream it belongs to.
    pub stream: Option<&'v str>,
    /// Its timestamp.
    pub timestamp: Option<Timestamp>,
    /// The message as logged.
    pub message: &'v str,
}

/// Parses CloudWatch Logs events: stream chunks, CloudTrail records, or plain-text transcript
/// uploads (joined per stream). `position` prefixes the position of each event in rejects.
pub fn parse_log_events(
    events: &[LogEventIn<'_>],
    object: Object<'_>,
    position: &str,
    parsed: &mut Parsed,
) {
    let mut uploads: Uploads = BTreeMap::new();
    for event in events {
        parse_log_event(
            event,
            object,
            &at(position, "event", event.index),
            parsed,
            &mut uploads,
        );
    }
    for (stream, parts) in uploads {
        if let Some(output) = ssm::run_command_output(&stream) {
            let origin = format!("{}#{stream}", object.origin);
            let last = parts.iter().filter_map(|(t, _, _)| *t).max();
            parsed.fragments.push(ssm::run_command_fragment(
                &output,
                &origin,
                true,
                last.unwrap_or(object.modified),
            ));
            continue;
        }
        let text: String = parts
            .iter()
            .map(|(_, t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let is_host_log = !ssm::is_session_id(&stream)
            && parts
                .first()
                .is_some_and(|(_, message, _)| host::looks_like_host_log(message));
        if is_host_log {
            // A log group the CloudWatch agent writes: one host log line per event, the stream
            // named after the instance.
            parse_host_events(&stream, &parts, object, parsed);
            continue;
        }
        if !ssm::is_session_id(&stream) && !ssm::looks_like_transcript(text.as_bytes()) {
            // Not a session's upload (an application or host log group): kept, with why, rather
            // than read as a transcript of a session that does not exist.
            let reason = format!(
                "unrecognised plain-text event: stream {stream:?} is not named after a Session \
                 Manager session and the text is not a transcript, stream chunk or CloudTrail record"
            );
            for (_, message, position) in &parts {
                parsed.rejects.push(reject(
                    object,
                    position,
                    "cloudwatch",
                    &reason,
                    message.as_bytes(),
                ));
            }
            continue;
        }
        let origin = format!("{}#{stream}", object.origin);
        let fallback = parts
            .iter()
            .find_map(|(t, _, _)| *t)
            .unwrap_or(object.modified);
        let inner = Object {
            origin: &origin,
            modified: fallback,
        };
        parse_transcript_object(text.as_bytes(), inner, Some(&stream), parsed);
    }
}

/// Host log lines shipped as CloudWatch events; yearless syslog times resolve against each
/// event's timestamp.
fn parse_host_events(
    stream: &str,
    parts: &[(Option<Timestamp>, String, String)],
    object: Object<'_>,
    parsed: &mut Parsed,
) {
    let origin = format!("{}#{stream}", object.origin);
    let lines: Vec<host::HostLineIn<'_>> = parts
        .iter()
        .enumerate()
        .map(|(n, (time, message, _))| host::HostLineIn {
            index: n,
            text: message,
            reference: time.unwrap_or(object.modified),
        })
        .collect();
    let found = host::parse_host_lines(
        &lines,
        host::HostSource {
            origin: &origin,
            target: host::instance_of_stream(stream),
        },
    );
    parsed.host.extend(found.events);
    parsed.commands.extend(found.commands);
    for (index, reason) in found.rejects {
        let (_, message, position) = &parts[index];
        parsed.rejects.push(reject(
            object,
            position,
            "host",
            &reason,
            message.as_bytes(),
        ));
    }
}

fn parse_json(value: Value, object: Object<'_>, position: &str, parsed: &mut Parsed) {
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        for (n, record) in records.iter().enumerate() {
            parse_record_value(record, object, &at(position, "record", n), parsed, None);
        }
        return;
    }
    let events = value
        .get("events")
        .or_else(|| value.get("logEvents"))
        .and_then(Value::as_array);
    if let Some(events) = events {
        let default_stream = value.get("logStream").and_then(Value::as_str);
        let mut readable = Vec::with_capacity(events.len());
        for (n, event) in events.iter().enumerate() {
            match event.get("message").and_then(Value::as_str) {
                Some(message) => readable.push(LogEventIn {
                    index: n,
                    stream: event
                        .get("logStreamName")
                        .and_then(Value::as_str)
                        .or(default_stream),
                    timestamp: event
                        .get("timestamp")
                        .and_then(Value::as_i64)
                        .and_then(from_epoch_millis),
                    message,
                }),
                None => parsed.rejects.push(reject(
                    object,
                    &at(position, "event", n),
                    "cloudwatch",
                    "log event has no message",
                    event.to_string().as_bytes(),
                )),
            }
        }
        parse_log_events(&readable, object, position, parsed);
        return;
    }
    if let Some(items) = value.as_array() {
        for (n, item) in items.iter().enumerate() {
            parse_record_value(item, object, &at(position, "item", n), parsed, None);
        }
        return;
    }
    let position = if position.is_empty() {
        "object"
    } else {
        position
    };
    parse_record_value(&value, object, position, parsed, None);
}

/// A position inside a position: `line 3, record 2`.
fn at(outer: &str, what: &str, index: usize) -> String {
    if outer.is_empty() {
        format!("{what} {}", index + 1)
    } else {
        format!("{outer}, {what} {}", index + 1)
    }
}

fn parse_log_event(
    event: &LogEventIn<'_>,
    object: Object<'_>,
    position: &str,
    parsed: &mut Parsed,
    uploads: &mut Uploads,
) {
    let trimmed = event.message.trim_start();
    // Output a Run Command printed is text, whatever it looks like.
    let output = event
        .stream
        .is_some_and(|s| ssm::run_command_output(s).is_some());
    if trimmed.starts_with('{') && !output {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(value) => {
                let origin = match event.stream {
                    Some(stream) => format!("{}#{stream}", object.origin),
                    None => object.origin.to_string(),
                };
                let inner = Object {
                    origin: &origin,
                    modified: object.modified,
                };
                parse_record_value(&value, inner, position, parsed, event.timestamp);
            }
            Err(e) => parsed.rejects.push(reject(
                object,
                position,
                "cloudwatch",
                &format!("malformed JSON message: {e}"),
                event.message.as_bytes(),
            )),
        }
    } else if let Some(stream) = event.stream {
        // The non-streaming upload form: plain-text transcript pieces in a stream named after
        // the session.
        uploads.entry(stream.to_string()).or_default().push((
            event.timestamp,
            event.message.to_string(),
            position.to_string(),
        ));
    } else {
        parsed.rejects.push(reject(
            object,
            position,
            "cloudwatch",
            "plain-text log event without a log stream name",
            event.message.as_bytes(),
        ));
    }
}

fn parse_trail_record(record: &str, object: Object<'_>, position: &str, parsed: &mut Parsed) {
    match cloudtrail::parse_record(record, object.origin) {
        Ok(event) => {
            if let Some(fragment) = cloudtrail::session_fragment(&event) {
                parsed.fragments.push(fragment);
            }
            parsed
                .fragments
                .extend(cloudtrail::access_fragments(&event));
            parsed.trail.push(event);
        }
        Err(reason) => parsed.rejects.push(reject(
            object,
            position,
            "cloudtrail",
            &reason,
            record.as_bytes(),
        )),
    }
}

/// A CloudTrail delivery, `{"Records":[...]}`, with each record left as text.
#[derive(serde::Deserialize)]
struct Delivery<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a serde_json::value::RawValue>,
}

/// One JSON value: a CloudTrail record or a stream chunk (`fallback_time`, the CloudWatch event
/// timestamp, stands in for a chunk without `eventTime`).
fn parse_record_value(
    value: &Value,
    object: Object<'_>,
    position: &str,
    parsed: &mut Parsed,
    fallback_time: Option<Timestamp>,
) {
    if cloudtrail::looks_like_record(value) {
        parse_trail_record(&value.to_string(), object, position, parsed);
    } else if ssm::looks_like_chunk(value) {
        match ssm::parse_chunk(value, object.origin, fallback_time) {
            Ok(chunk) => parsed.chunks.push(chunk),
            Err(reason) => parsed.rejects.push(reject(
                object,
                position,
                "ssm-stream",
                &reason,
                value.to_string().as_bytes(),
            )),
        }
    } else {
        parsed.rejects.push(reject(
            object,
            position,
            "json",
            "not a CloudTrail record, Session Manager chunk or CloudWatch Logs export",
            value.to_string().as_bytes(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn object(origin: &str) -> Object<'_> {
        Object {
            origin,
            modified: parse_rfc3339("2026-10-07T00:00:00Z").unwrap_or_default(),
        }
    }

    const RECORD: &str = r#"{"eventTime":"2026-10-06T18:02:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","eventID":"e1"}"#;

    #[test]
    fn records_file_and_ndjson_with_bad_lines() {
        let file = format!(r#"{{"Records":[{RECORD},{{"eventSource":"x","eventName":"y"}}]}}"#);
        let parsed = parse_object(file.into_bytes(), object("a.json"), &Limits::default());
        assert_eq!(parsed.trail.len(), 1);
        assert_eq!(parsed.rejects.len(), 1);
        assert_eq!(parsed.rejects[0].position, "record 2");
        assert_eq!(parsed.rejects[0].reason, "missing eventTime");

        let mut ndjson = format!("{RECORD}\n{{not json\n").into_bytes();
        ndjson.extend_from_slice(b"{\"eventSource\":\"\xff\xfe\"}\n");
        ndjson.extend_from_slice(format!("\"{}\"\n", "x".repeat(2 * 1024 * 1024)).as_bytes());
        ndjson.extend_from_slice(RECORD.replace("e1", "e2").as_bytes());
        let parsed = parse_object(ndjson, object("b.ndjson"), &Limits::default());
        assert_eq!(parsed.trail.len(), 2);
        let reasons: Vec<_> = parsed
            .rejects
            .iter()
            .map(|r| (r.position.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].1.starts_with("malformed JSON"), "{reasons:?}");
        assert!(reasons[1].1.starts_with("malformed JSON"), "{reasons:?}");
        assert_eq!(reasons[2].0, "line 4");
        assert!(reasons[2].1.contains("exceeds"), "{reasons:?}");
    }

    #[test]
    fn truncated_gzip_and_garbage_are_rejected_whole() {
        let parsed = parse_object(
            vec![0x1f, 0x8b, 8, 0, 0, 0],
            object("c.json.gz"),
            &Limits::default(),
        );
        assert_eq!(parsed.rejects.len(), 1);
        assert!(
            parsed.rejects[0].reason.contains("gzip"),
            "{:?}",
            parsed.rejects
        );
        let parsed = parse_object(b"hello world".to_vec(), object("d.txt"), &Limits::default());
        assert_eq!(parsed.rejects[0].format, "unknown");
        let again = parse_object(b"hello world".to_vec(), object("d.txt"), &Limits::default());
        assert_eq!(parsed.rejects[0].event_id, again.rejects[0].event_id);
    }

    #[test]
    fn cloudwatch_export_of_stream_chunks() {
        let message = serde_json::json!({
            "eventVersion": "1.0", "eventTime": "2026-10-05T09:12:10Z", "awsRegion": "eu-west-1",
            "target": {"id": "i-1"}, "userIdentity": {"arn": "arn:aws:iam::1:user/alice"},
            "runAsUser": "ec2-user", "sessionId": "alice-1", "sessionData": ["sh-4.2$ id", "uid=1"]
        });
        let export = serde_json::json!({"events": [
            {"logStreamName": "alice-1", "timestamp": 1, "message": message.to_string(), "eventId": "1"},
            {"logStreamName": "alice-1", "timestamp": 2, "message": "{broken"},
        ]});
        let parsed = parse_object(
            export.to_string().into_bytes(),
            object("e.json"),
            &Limits::default(),
        );
        assert_eq!(parsed.chunks.len(), 1);
        assert_eq!(parsed.chunks[0].origin, "e.json#alice-1");
        assert_eq!(parsed.rejects.len(), 1);
        assert_eq!(parsed.rejects[0].position, "event 2");
    }

    #[test]
    fn run_command_output_points_its_access_at_it_and_is_not_parsed() {
        let id = "b58c980c-87be-4119-ab51-8a14cec6e65a";
        // S3 (OutputS3BucketName): the output of what a script printed, JSON or not.
        let key = format!(
            "s3://out/run/{id}/i-0a1b2c3d4e5f60711/awsrunShellScript/0.awsrunShellScript/stdout"
        );
        let parsed = parse_object(
            br#"{"eventSource": "not a record", "x": 1}"#.to_vec(),
            object(&key),
            &Limits::default(),
        );
        assert!(
            parsed.rejects.is_empty() && parsed.trail.is_empty(),
            "{parsed:?}"
        );
        let fragment = &parsed.fragments[0];
        assert_eq!(fragment.session_id, format!("{id}-i-0a1b2c3d4e5f60711"));
        assert_eq!(fragment.transcript_uri.as_deref(), Some(key.as_str()));
        let session = crate::session::merge([fragment]).unwrap_or_else(|| panic!("no row"));
        assert_eq!(
            (session.kind.as_str(), session.logged.as_str()),
            ("run_command", "output")
        );

        // CloudWatch Logs (CloudWatchOutputConfig): a stream per instance and plugin.
        let stream = format!("{id}/i-0a1b2c3d4e5f60711/aws-runShellScript/stdout");
        let events = [
            LogEventIn {
                index: 0,
                stream: Some(&stream),
                timestamp: None,
                message: "{\"upgraded\": [\"openssl\"]}",
            },
            LogEventIn {
                index: 1,
                stream: Some(&stream),
                timestamp: None,
                message: "Complete!",
            },
        ];
        let mut parsed = Parsed::default();
        parse_log_events(
            &events,
            object("cwl:///aws/ssm/AWS-RunShellScript"),
            "",
            &mut parsed,
        );
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        assert_eq!(parsed.fragments.len(), 1);
        assert_eq!(
            parsed.fragments[0].stream_uri,
            Some(format!("cwl:///aws/ssm/AWS-RunShellScript#{stream}"))
        );
        // Not output: no plugin folder between instance and file, or no command id.
        assert!(ssm::run_command_output(&format!("{id}/i-1/stdout")).is_none());
        assert!(ssm::run_command_output("x/not-a-uuid/i-1/aws-runShellScript/stdout").is_none());
    }

    #[test]
    fn cloudwatch_upload_form_and_trail_records_in_log_events() {
        // Streaming off: the agent uploads the transcript as plain-text events at session end.
        let part1 = "Script started on 2026-10-06 11:00:06+00:00\nsh-4.2$ id\nuid=1001(ssm-user)\n";
        let part2 = "sh-4.2$ exit\nexit\n\nScript done on 2026-10-06 11:01:00+00:00";
        let events = [
            LogEventIn {
                index: 0,
                stream: Some("bob-1"),
                timestamp: None,
                message: part1,
            },
            LogEventIn {
                index: 1,
                stream: Some("bob-1"),
                timestamp: None,
                message: part2,
            },
            LogEventIn {
                index: 2,
                stream: Some("111122223333_CloudTrail_eu-west-1"),
                timestamp: None,
                message: RECORD,
            },
        ];
        let mut parsed = Parsed::default();
        parse_log_events(&events, object("cwl://g"), "", &mut parsed);
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        let cmds: Vec<_> = parsed.commands.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["id", "exit"]);
        assert_eq!(parsed.commands[0].session_id.as_deref(), Some("bob-1"));
        assert_eq!(
            parsed.fragments[0].transcript_uri.as_deref(),
            Some("cwl://g#bob-1")
        );
        assert_eq!(parsed.trail.len(), 1);
        assert_eq!(parsed.trail[0].event_name, "StopLogging");
    }
}
