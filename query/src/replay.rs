//! `auditq replay SESSION_ID`: a session as its user saw it.
//!
//! The lake keeps where each session was recorded (`sessions.stream_uri`, `transcript_uri`), not
//! the recording itself, so replay reads the recording again from there (a local file, an S3
//! object, a CloudWatch Logs stream) and renders it through the same terminal emulator ingest
//! uses: typos erased with backspace, history recall and full-screen editors resolve to what was
//! on the screen. A stream is preferred when there is one, because its chunks carry times and can
//! be played at the pace they were typed; a transcript has one start time and plays at once.

use std::io::Write;
use std::time::Duration;

use auditq_ingest::aws::{AwsSettings, S3Location};
use auditq_ingest::prompt::extract_commands;
use auditq_ingest::ssm::{self, StreamChunk};
use auditq_ingest::terminal::render;
use auditq_ingest::time::parse_rfc3339;
use auditq_ingest::{Lake, Limits};
use auditq_model::Timestamp;
use datafusion::prelude::SessionContext;
use serde_json::Value;

use crate::{QueryError, run_sql, sql_quote};

/// A session's recording, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Where it was read.
    pub source: String,
    /// Whether lines carry their own times (a stream), or all the session start (a transcript).
    pub timed: bool,
    /// Each line the user saw, with the time it was on screen.
    pub lines: Vec<(Timestamp, String)>,
    /// The commands among them, as `(time, run_as, cmd)`.
    pub commands: Vec<(Timestamp, Option<String>, String)>,
}

/// How to play a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Wait between lines as long as the user did, divided by `speed`; `None` prints at once.
    pub speed: Option<f64>,
    /// The longest wait between two lines.
    pub max_wait: Duration,
}

/// Renders a session's recording from the lake's pointer to it.
pub async fn load(
    ctx: &SessionContext,
    lake: &Lake,
    aws: &AwsSettings,
    session_id: &str,
) -> anyhow::Result<Replay> {
    let sql = format!(
        "select stream_uri, transcript_uri, logged, started_at, run_as, kind from sessions where session_id = {}",
        sql_quote(session_id)
    );
    let batches = run_sql(ctx, &sql).await?;
    let row = crate::rows_as_json(&batches)?.into_iter().next();
    let Some(row) = row else {
        anyhow::bail!(
            "no session {session_id:?} in {} (auditq sessions lists them)",
            lake.location()
        );
    };
    let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_string);
    let started = text("started_at").and_then(|t| parse_rfc3339(&t));
    let run_as = text("run_as");
    if text("kind").as_deref() == Some("run_command")
        && let Some(uri) = text("stream_uri").or(text("transcript_uri"))
    {
        // What a Run Command printed (its standard output), line by line: no terminal, no
        // prompts; what it ran is in `auditq commands` when auditd saw it.
        let (place, stream) = split_stream(&uri);
        let lines: Vec<(Timestamp, String)> = match stream {
            Some(stream) => read_events(aws, place, stream)
                .await?
                .into_iter()
                .map(|(time, line)| (time.or(started).unwrap_or_default(), line))
                .collect(),
            None => {
                let bytes = read_bytes(aws, place).await?;
                let time = started.unwrap_or_default();
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|l| (time, l.to_string()))
                    .collect()
            }
        };
        let timed = stream.is_some();
        return Ok(Replay {
            source: uri,
            timed,
            lines,
            commands: Vec::new(),
        });
    }
    if let Some(uri) = text("stream_uri") {
        let (place, stream) = split_stream(&uri);
        let events = read_events(aws, place, stream.unwrap_or(session_id)).await?;
        let mut chunks: Vec<StreamChunk> = events
            .iter()
            .filter_map(|(time, message)| {
                let value: Value = serde_json::from_str(message).ok()?;
                let chunk = ssm::parse_chunk(&value, &uri, *time).ok()?;
                (chunk.session_id == session_id).then_some(chunk)
            })
            .collect();
        if chunks.is_empty() {
            anyhow::bail!("{uri}: no stream chunks of session {session_id} are there any more");
        }
        let lines = ssm::render_chunks(&mut chunks);
        let commands = extract_commands(&lines, run_as.as_deref())
            .into_iter()
            .map(|c| (chunks[c.tag.min(chunks.len() - 1)].time, c.run_as, c.cmd))
            .collect();
        let lines = lines
            .into_iter()
            .map(|l| (chunks[l.tag.min(chunks.len() - 1)].time, l.text))
            .collect();
        return Ok(Replay {
            source: uri,
            timed: true,
            lines,
            commands,
        });
    }
    if let Some(uri) = text("transcript_uri") {
        let bytes = match split_stream(&uri) {
            // The CloudWatch plain-text upload form: the stream's messages are the transcript.
            (place, Some(stream)) => read_events(aws, place, stream)
                .await?
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
            (place, None) => read_bytes(aws, place).await?,
        };
        let bytes =
            auditq_ingest::decode::maybe_gunzip(bytes, Limits::default().max_decompressed_bytes)
                .map_err(|e| anyhow::anyhow!("{uri}: {e}"))?;
        let transcript = ssm::parse_transcript(&bytes, session_id, &uri, started)
            .map_err(|e| anyhow::anyhow!("{uri}: {e}"))?;
        let time = transcript
            .fragment
            .first_seen
            .or(started)
            .unwrap_or_default();
        let lines = render(&bytes)
            .into_iter()
            .filter(|l| {
                !l.text.starts_with("Script started on ") && !l.text.starts_with("Script done on ")
            })
            .map(|l| (time, l.text))
            .collect();
        let commands = transcript
            .commands
            .into_iter()
            .map(|c| (c.time, c.run_as.or_else(|| run_as.clone()), c.cmd))
            .collect();
        return Ok(Replay {
            source: uri,
            timed: false,
            lines,
            commands,
        });
    }
    let logged = text("logged").unwrap_or_default();
    if logged == "host_only" {
        anyhow::bail!(
            "session {session_id} has no recording to replay (logged = host_only): only the host's \
             own logs saw it; `auditq commands {session_id}` lists what sudo and auditd recorded"
        );
    }
    anyhow::bail!(
        "session {session_id} has no recording to replay (logged = {logged}): Session Manager \
         transcribes shells only, so SSH and port-forwarding sessions leave none"
    )
}

/// `place#stream` (a CloudWatch export file or `cwl://group`, and a stream in it) or a plain
/// location.
fn split_stream(uri: &str) -> (&str, Option<&str>) {
    match uri.rsplit_once('#') {
        Some((place, stream)) if !stream.is_empty() => (place, Some(stream)),
        _ => (uri, None),
    }
}

/// The `(time, message)` events of one stream: read from CloudWatch Logs (`cwl://group`), or
/// from an export file of `{"events": [...]}`.
async fn read_events(
    aws: &AwsSettings,
    place: &str,
    stream: &str,
) -> anyhow::Result<Vec<(Option<Timestamp>, String)>> {
    if let Some(group) = place.strip_prefix("cwl://") {
        let cwl = aws.clients().await.cwl;
        let group = format!("/{group}");
        let events = match cwl.read_stream(&group, stream).await {
            Ok(events) => events,
            // Groups need not start with `/`; the uri drops a leading one.
            Err(_) => cwl.read_stream(&group[1..], stream).await?,
        };
        return Ok(events
            .events
            .into_iter()
            .map(|(ms, m)| (chrono::DateTime::from_timestamp_millis(ms), m))
            .collect());
    }
    let bytes = read_bytes(aws, place).await?;
    let bytes =
        auditq_ingest::decode::maybe_gunzip(bytes, Limits::default().max_decompressed_bytes)
            .map_err(|e| anyhow::anyhow!("{place}: {e}"))?;
    // Any of the forms ingest reads; only this stream's events are kept.
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{place}: not a CloudWatch export: {e}"))?;
    let events = value
        .get("events")
        .or_else(|| value.get("logEvents"))
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow::anyhow!("{place}: not a CloudWatch export (no events)"))?;
    let default_stream = value.get("logStream").and_then(Value::as_str);
    Ok(events
        .iter()
        .filter(|e| {
            e.get("logStreamName")
                .and_then(Value::as_str)
                .or(default_stream)
                == Some(stream)
        })
        .filter_map(|e| {
            let message = e.get("message")?.as_str()?.to_string();
            let time = e
                .get("timestamp")
                .and_then(Value::as_i64)
                .and_then(chrono::DateTime::from_timestamp_millis);
            Some((time, message))
        })
        .collect())
}

/// The bytes of a local file or an S3 object.
async fn read_bytes(aws: &AwsSettings, place: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(location) = S3Location::parse(place) {
        let s3 = aws.clients().await.s3;
        let object = s3.head(&location.bucket, &location.prefix).await?;
        return Ok(s3.fetch(&object).await?);
    }
    std::fs::read(place).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the recording {place}: {e} (local paths are as given to `auditq ingest`, \
             relative to where it ran)"
        )
    })
}

/// Writes the replay's lines, waiting between them as `pace` says.
pub async fn play(replay: &Replay, pace: Pace, out: &mut dyn Write) -> Result<(), QueryError> {
    let mut previous: Option<Timestamp> = None;
    for (time, line) in &replay.lines {
        if let (Some(speed), Some(before)) = (pace.speed, previous) {
            let gap = (*time - before).to_std().unwrap_or_default();
            let wait = gap.div_f64(speed.max(0.001)).min(pace.max_wait);
            if !wait.is_zero() {
                out.flush()?;
                tokio::time::sleep(wait).await;
            }
        }
        previous = Some(*time);
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Writes the commands with their times.
pub fn write_commands(replay: &Replay, out: &mut dyn Write) -> Result<(), QueryError> {
    for (time, run_as, cmd) in &replay.commands {
        let time = time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let run_as = run_as.as_deref().unwrap_or("-");
        writeln!(out, "{time}  {run_as:<10} {cmd}")?;
    }
    out.flush()?;
    Ok(())
}

/// The recordings of the period's recorded sessions (at most `most`, oldest first), for the
/// report's player: each rendered as `auditq replay` renders it, or why it could not be read.
pub async fn recordings(
    ctx: &SessionContext,
    lake: &Lake,
    aws: &AwsSettings,
    period: &crate::report::Period,
    most: usize,
) -> Result<std::collections::BTreeMap<String, Result<crate::report::Recording, String>>, QueryError>
{
    let sql = format!(
        "select session_id, user, target, started_at from sessions where {} and logged in ('transcript', 'stream', 'output') order by started_at, session_id limit {}",
        period.clause("started_at"),
        most.min(i64::MAX as usize)
    );
    let rows = crate::rows_as_json(&run_sql(ctx, &sql).await?)?;
    let mut out = std::collections::BTreeMap::new();
    for row in rows {
        let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_string);
        let Some(id) = text("session_id") else {
            continue;
        };
        let recording = match load(ctx, lake, aws, &id).await {
            Ok(replay) => {
                let first = replay.lines.first().map(|(t, _)| *t);
                Ok(crate::report::Recording {
                    user: text("user"),
                    target: text("target"),
                    started: text("started_at").unwrap_or_default(),
                    timed: replay.timed,
                    lines: replay
                        .lines
                        .into_iter()
                        .map(|(t, line)| {
                            let offset = first.map_or(0, |f| (t - f).num_milliseconds().max(0));
                            (offset, line)
                        })
                        .collect(),
                })
            }
            Err(e) => Err(format!("{e:#}")),
        };
        out.insert(id, recording);
    }
    Ok(out)
}
