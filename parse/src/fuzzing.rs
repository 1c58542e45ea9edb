//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`), here so the regression tests
//! (`parse/tests/fuzz_regressions.rs`) run exactly what the fuzzer ran.
//!
//! Each takes arbitrary bytes, must not panic, and checks what must hold of any input: every
//! reject names its position, decompression never exceeds its cap, every line given is either
//! read or rejected. A broken invariant panics, which the fuzzer reports as a crash.

use auditq_model::Timestamp;
use chrono::TimeZone;
use serde_json::Value;

use crate::decode::{decode_subscription, gunzip_capped, maybe_gunzip};
use crate::parse::{Limits, Object, Parsed, parse_object};
use crate::{cloudtrail, host, redact, ssm, terminal};

/// Decompression cap for fuzzing: small, so a gzip bomb is caught quickly.
const CAP: u64 = 1024 * 1024;

/// A fuzz target: any bytes in; panics only when an invariant breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the file names under `fuzz/fuzz_targets/` and the folders under
/// `fuzz/regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("cloudwatch_envelope", cloudwatch_envelope),
    ("gzip", gzip),
    ("ssm_stream", ssm_stream),
    ("ssm_transcript", ssm_transcript),
    ("cloudtrail", cloudtrail_records),
    ("host_logs", host_logs),
    ("object", object),
    ("redact", redact_text),
];

fn fixed_time() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn limits() -> Limits {
    Limits {
        max_object_bytes: 4 * CAP,
        max_decompressed_bytes: CAP,
        max_line_bytes: 64 * 1024,
        ..Limits::default()
    }
}

fn check_parsed(parsed: &Parsed) {
    for reject in &parsed.rejects {
        assert!(!reject.position.is_empty(), "a reject without a position");
        assert!(!reject.reason.is_empty(), "a reject without a reason");
        assert!(
            reject.excerpt.len() <= 200 * 4,
            "an excerpt over 200 characters"
        );
    }
    for command in &parsed.commands {
        assert!(!command.event_id.is_empty(), "a command without an id");
    }
}

/// Any object as read from a file or S3: gzip or not, JSON, NDJSON, a transcript or host log.
pub fn object(data: &[u8]) {
    let parsed = parse_object(
        data.to_vec(),
        Object {
            origin: "fuzz/object",
            modified: fixed_time(),
        },
        &limits(),
    );
    check_parsed(&parsed);
    let (commands, _) = ssm::assemble_stream(parsed.chunks);
    assert!(commands.iter().all(|c| !c.event_id.is_empty()));
}

/// A CloudWatch Logs subscription: `awslogs.data` (base64 of gzip) when the input reads as
/// base64, else the decoded payload (`{"messageType":...,"logEvents":[...]}`) itself.
pub fn cloudwatch_envelope(data: &[u8]) {
    let payload = match std::str::from_utf8(data) {
        Ok(text) if text.starts_with("H4sI") => match decode_subscription(text, CAP) {
            Ok(payload) => payload,
            Err(reason) => {
                assert!(!reason.is_empty());
                return;
            }
        },
        _ => data.to_vec(),
    };
    object(&payload);
}

/// gzip: decompression stops at its cap, and a truncated stream says so.
pub fn gzip(data: &[u8]) {
    match gunzip_capped(data, CAP) {
        Ok(out) => assert!(out.len() as u64 <= CAP, "gunzip exceeded its cap"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(out) = maybe_gunzip(data.to_vec(), CAP) {
        assert!(out.len() as u64 <= CAP.max(data.len() as u64));
    }
}

/// Session Manager stream chunks, one JSON document per line, assembled into commands.
pub fn ssm_stream(data: &[u8]) {
    let mut chunks = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let Ok(value) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if let Ok(chunk) = ssm::parse_chunk(&value, "fuzz/stream", Some(fixed_time())) {
            chunks.push(chunk);
        }
    }
    let mut rendered = chunks.clone();
    let lines = ssm::render_chunks(&mut rendered);
    assert!(
        lines.iter().all(|l| !l.text.contains('\n')),
        "a rendered line holds a newline"
    );
    let (commands, _) = ssm::assemble_stream(chunks);
    for command in &commands {
        assert!(
            command.session_id.as_deref().is_some_and(|s| !s.is_empty()),
            "a stream command without a session"
        );
    }
}

/// A `script` transcript as Session Manager uploads it.
pub fn ssm_transcript(data: &[u8]) {
    let lines = terminal::render(data);
    assert!(
        lines.iter().all(|l| !l.text.contains('\n')),
        "a rendered line holds a newline"
    );
    match ssm::parse_transcript(data, "alice-0123456789abcdef0", "fuzz/transcript", None) {
        Ok(transcript) => {
            for command in &transcript.commands {
                assert_eq!(
                    command.session_id.as_deref(),
                    Some("alice-0123456789abcdef0")
                );
            }
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
}

/// CloudTrail: one record as text, then the input as a whole delivery.
pub fn cloudtrail_records(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(event) = cloudtrail::parse_record(text, "fuzz/trail")
    {
        assert!(!event.event_id.is_empty());
        let _ = cloudtrail::session_fragment(&event);
    }
    object(data);
}

/// Host log lines (syslog and auditd): every line is read into an event or rejected, or is
/// part of an auditd event, or blank.
pub fn host_logs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<host::HostLineIn<'_>> = text
        .lines()
        .enumerate()
        .map(|(index, text)| host::HostLineIn {
            index,
            text,
            reference: fixed_time(),
        })
        .collect();
    for target in [Some("i-0123456789abcdef0"), None] {
        let parsed = host::parse_host_lines(
            &lines,
            host::HostSource {
                origin: "fuzz/secure",
                target,
            },
        );
        for (index, reason) in &parsed.rejects {
            assert!(*index < lines.len().max(1), "a reject past the last line");
            assert!(!reason.is_empty());
        }
        assert!(
            parsed.events.len() + parsed.rejects.len() <= lines.len(),
            "more results than lines"
        );
    }
}

/// Redaction: what it returns has no match of any pattern left outside its tokens, and says how
/// many it replaced.
pub fn redact_text(data: &[u8]) {
    static REDACTOR: std::sync::LazyLock<redact::Redactor> =
        std::sync::LazyLock::new(|| redact::Redactor::new(b"fuzz".to_vec()));
    let text = String::from_utf8_lossy(data);
    let (out, count) = REDACTOR.redact(&text);
    if count == 0 {
        assert_eq!(out, text, "text changed without a redaction");
    } else {
        assert!(out.contains("[REDACTED:"), "a redaction without a token");
    }
}
