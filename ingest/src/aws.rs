//! Sources in AWS: S3 prefixes (transcripts, CloudTrail deliveries) and CloudWatch Logs groups
//! (Session Manager streams, CloudTrail-to-CloudWatch).
//!
//! Each source has the same skeleton: a location parsed from a URI, a client built once by the
//! caller ([`auditq_aws::Aws`]: the standard credential chain and region, `AWS_ENDPOINT_URL`),
//! a listing step that yields positions, and a read step that turns one position
//! into [`Parsed`] rows, stored by the [`Pipeline`] with the positions they cover. Reading is
//! idempotent: rows carry provenance ids, so a position read twice stores nothing new.

use auditq_aws::Aws;
use serde_json::json;

use std::collections::HashMap;

use auditq_model::{Position, Timestamp};
use chrono::DateTime;

use crate::Progress;
use crate::error::{IngestError, Result};
use crate::lake::{Filter, Lake};
use crate::parse::{Limits, LogEventIn, Object, Parsed, parse_log_events, parse_object, reject};
use crate::pipeline::{IngestSummary, Pipeline, position_key};

/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (may be empty).
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// An object found under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// ETag, the object's version for exactly-once reading.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modified.
    pub modified: Timestamp,
}

impl S3Object {
    /// `s3://bucket/key`, the origin recorded on its rows.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

fn aws_error(error: auditq_aws::Error) -> IngestError {
    IngestError::Aws {
        operation: error.operation.clone(),
        resource: error.resource.clone(),
        message: error.detail(),
    }
}

/// An S3 error on one object: a 4xx (other than throttling) concerns that object only and is
/// [`IngestError::ObjectRefused`]; anything else (5xx, the network after the retries) stops
/// the run before anything of it is committed.
fn s3_object_error(error: auditq_aws::Error) -> IngestError {
    match error.status {
        Some(status) if error.is_refusal() => IngestError::ObjectRefused {
            // The status is in the refusal's own words ("refused (404)").
            message: match (error.code.as_str(), error.message.as_str()) {
                ("", message) | (message, "") => message.to_string(),
                (code, message) => format!("{code}: {message}"),
            },
            operation: error.operation,
            uri: error.resource,
            status,
        },
        _ => aws_error(error),
    }
}

/// The reject of an object S3 refused (see [`IngestError::ObjectRefused`]); `None` for any
/// other error.
fn refused_object(error: &IngestError, modified: Timestamp) -> Option<auditq_model::Reject> {
    let IngestError::ObjectRefused {
        operation,
        uri,
        status,
        message,
    } = error
    else {
        return None;
    };
    let at = Object {
        origin: uri,
        modified,
    };
    let reason = format!("{operation} refused ({status}): {message}");
    Some(reject(at, "object", "unknown", &reason, &[]))
}

impl S3Object {
    fn from_listed(bucket: &str, object: auditq_aws::s3::Object) -> Self {
        S3Object {
            bucket: bucket.to_string(),
            key: object.key,
            etag: object.etag,
            size: object.size,
            modified: object.modified,
        }
    }
}

/// Reads objects from S3.
#[derive(Debug, Clone)]
pub struct S3Source {
    aws: Aws,
}

impl S3Source {
    /// A source using `aws`.
    pub fn new(aws: Aws) -> Self {
        Self { aws }
    }

    /// Every object under the location, in key order (CloudTrail keys sort by time).
    pub async fn list(&self, location: &S3Location) -> Result<Vec<S3Object>> {
        let listed = self
            .aws
            .s3_list(&location.bucket, &location.prefix)
            .await
            .map_err(aws_error)?;
        Ok(listed
            .into_iter()
            .map(|object| S3Object::from_listed(&location.bucket, object))
            .collect())
    }

    /// The current version of one object.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<S3Object> {
        let object = self
            .aws
            .s3_head(bucket, key)
            .await
            .map_err(s3_object_error)?;
        Ok(S3Object::from_listed(bucket, object))
    }

    /// Reads and parses one object; one larger than the cap is rejected without downloading.
    /// Also returns about how many bytes it held once decompressed.
    pub async fn read(&self, object: &S3Object, limits: &Limits) -> Result<(Parsed, u64)> {
        let uri = object.uri();
        let at = Object {
            origin: &uri,
            modified: object.modified,
        };
        if object.size > limits.max_object_bytes {
            let mut parsed = Parsed::default();
            let reason = format!(
                "object of {} bytes exceeds the {}-byte cap",
                object.size, limits.max_object_bytes
            );
            parsed
                .rejects
                .push(reject(at, "object", "unknown", &reason, &[]));
            return Ok((parsed, 0));
        }
        let bytes = self.fetch(object).await?;
        let size = crate::decode::decompressed_size(
            bytes.len() as u64,
            crate::decode::gzip_trailer(&bytes),
        );
        Ok((parse_object(bytes, at, limits), size))
    }

    /// The bytes of one object and its `signature` metadata (`x-amz-meta-signature`: what
    /// CloudTrail signs its digest files with).
    pub async fn fetch_with_signature(
        &self,
        object: &S3Object,
    ) -> Result<(Vec<u8>, Option<String>)> {
        self.get(object, false).await
    }

    /// The bytes of one object as listed (refused if it changed since: `If-Match` its ETag).
    pub async fn fetch(&self, object: &S3Object) -> Result<Vec<u8>> {
        Ok(self.get(object, true).await?.0)
    }

    async fn get(&self, object: &S3Object, as_listed: bool) -> Result<(Vec<u8>, Option<String>)> {
        let if_match = as_listed.then_some(object.etag.as_str());
        let got = self
            .aws
            .s3_get(&object.bucket, &object.key, if_match)
            .await
            .map_err(s3_object_error)?;
        let signature = got
            .metadata
            .into_iter()
            .find(|(name, _)| name == "signature")
            .map(|(_, value)| value);
        Ok((got.body, signature))
    }
}

/// `cwl://LOG_GROUP[/STREAM_PREFIX]`. Log group names contain `/`, so the group is resolved
/// against the account's groups: the longest group name the path starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwlLocation {
    /// Log group name.
    pub group: String,
    /// Stream name prefix (may be empty).
    pub stream_prefix: String,
}

/// A log stream and the events read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogStreamEvents {
    /// Log group.
    pub group: String,
    /// Log stream.
    pub stream: String,
    /// `(timestamp ms, message)` in stream order.
    pub events: Vec<(i64, String)>,
    /// Events of the stream before these (read by an earlier run).
    pub offset: usize,
    /// The forward token after the last event, to resume from.
    pub next_token: Option<String>,
}

impl LogStreamEvents {
    /// `cwl://group/stream`, the origin recorded on its rows.
    pub fn uri(&self) -> String {
        format!(
            "cwl://{}/{}",
            self.group.trim_start_matches('/'),
            self.stream
        )
    }

    /// Parses the events.
    pub fn parse(&self, modified: Timestamp) -> Parsed {
        let uri = format!("cwl://{}", self.group.trim_start_matches('/'));
        let events: Vec<LogEventIn<'_>> = self
            .events
            .iter()
            .enumerate()
            .map(|(index, (ts, message))| LogEventIn {
                index: self.offset + index,
                stream: Some(&self.stream),
                timestamp: DateTime::from_timestamp_millis(*ts),
                message,
            })
            .collect();
        let mut parsed = Parsed::default();
        parse_log_events(
            &events,
            Object {
                origin: &uri,
                modified,
            },
            &self.stream,
            &mut parsed,
        );
        parsed
    }
}

/// Reads CloudWatch Logs with the polling API (GetLogEvents from the head of each stream).
#[derive(Debug, Clone)]
pub struct CwlSource {
    aws: Aws,
}

/// The JSON target prefix of CloudWatch Logs' operations.
const LOGS: &str = "Logs_20140328";

impl CwlSource {
    /// A source using `aws`.
    pub fn new(aws: Aws) -> Self {
        Self { aws }
    }

    /// One CloudWatch Logs call in the configured region.
    async fn call(
        &self,
        operation: &str,
        request: serde_json::Value,
        resource: &str,
    ) -> Result<serde_json::Value> {
        let region = self
            .aws
            .need_region(operation, resource)
            .map_err(aws_error)?;
        self.aws
            .json(
                "logs",
                &region,
                auditq_aws::JSON_1_1,
                &format!("{LOGS}.{operation}"),
                &request,
                resource,
            )
            .await
            .map_err(aws_error)
    }

    /// The log groups whose names start with `prefix`, one page: (name, ARN) and the next
    /// page's token.
    async fn groups(
        &self,
        prefix: &str,
        token: Option<String>,
        resource: &str,
    ) -> Result<(Vec<(String, String)>, Option<String>)> {
        let mut request = json!({ "logGroupNamePrefix": prefix });
        if let Some(token) = token {
            request["nextToken"] = token.into();
        }
        let page = self.call("DescribeLogGroups", request, resource).await?;
        let groups = page["logGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| {
                let name = g["logGroupName"].as_str()?.to_string();
                let arn = g["logGroupArn"]
                    .as_str()
                    .or(g["arn"].as_str())
                    .unwrap_or_default();
                Some((name, arn.trim_end_matches(":*").to_string()))
            })
            .collect();
        Ok((groups, next_token(&page, "nextToken")))
    }

    /// Resolves `cwl://path` to a log group and stream prefix.
    pub async fn resolve(&self, uri: &str) -> Result<CwlLocation> {
        let path = uri.strip_prefix("cwl://").unwrap_or(uri);
        let candidates = [path.to_string(), format!("/{path}")];
        let mut best: Option<String> = None;
        for candidate in candidates {
            let first = candidate
                .split('/')
                .find(|p| !p.is_empty())
                .unwrap_or_default();
            let prefix = if candidate.starts_with('/') {
                format!("/{first}")
            } else {
                first.to_string()
            };
            let mut token = None;
            loop {
                let (groups, next) = self.groups(&prefix, token, uri).await?;
                for (name, _) in groups {
                    let fits = candidate == name || candidate.starts_with(&format!("{name}/"));
                    if fits && best.as_ref().is_none_or(|b| name.len() > b.len()) {
                        best = Some(name);
                    }
                }
                token = next;
                if token.is_none() {
                    break;
                }
            }
            if let Some(group) = &best {
                let rest = candidate[group.len()..].trim_start_matches('/');
                return Ok(CwlLocation {
                    group: group.clone(),
                    stream_prefix: rest.to_string(),
                });
            }
        }
        Err(IngestError::Aws {
            operation: "DescribeLogGroups".to_string(),
            resource: uri.to_string(),
            message: "no log group matches".to_string(),
        })
    }

    /// The streams of a group whose names start with the prefix.
    pub async fn streams(&self, location: &CwlLocation) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let mut request = json!({ "logGroupName": location.group });
            if !location.stream_prefix.is_empty() {
                request["logStreamNamePrefix"] = location.stream_prefix.clone().into();
            }
            if let Some(token) = token {
                request["nextToken"] = serde_json::Value::String(token);
            }
            let page = self
                .call("DescribeLogStreams", request, &location.group)
                .await?;
            names.extend(
                page["logStreams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["logStreamName"].as_str().map(str::to_string)),
            );
            token = next_token(&page, "nextToken");
            if token.is_none() {
                break;
            }
        }
        names.sort();
        Ok(names)
    }

    /// Every event of a stream from its head, paging with forward tokens until the token repeats.
    pub async fn read_stream(&self, group: &str, stream: &str) -> Result<LogStreamEvents> {
        self.read_stream_from(group, stream, None, 0).await
    }

    /// The events of a stream after the forward token `from` (from its head without one);
    /// `offset` is how many events came before it.
    pub async fn read_stream_from(
        &self,
        group: &str,
        stream: &str,
        from: Option<&str>,
        offset: usize,
    ) -> Result<LogStreamEvents> {
        let mut events = Vec::new();
        let mut token: Option<String> = from.map(str::to_string);
        let resource = format!("{group}/{stream}");
        loop {
            let mut request = json!({
                "logGroupName": group,
                "logStreamName": stream,
                "startFromHead": true,
            });
            if let Some(token) = &token {
                request["nextToken"] = token.clone().into();
            }
            let page = self.call("GetLogEvents", request, &resource).await?;
            let page_events = page["events"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for event in page_events {
                if let Some(message) = event["message"].as_str() {
                    events.push((
                        event["timestamp"].as_i64().unwrap_or(0),
                        message.to_string(),
                    ));
                }
            }
            let next = next_token(&page, "nextForwardToken");
            let done = page_events.is_empty() || next.is_none() || next == token;
            if next.is_some() {
                token = next;
            }
            if done {
                break;
            }
        }
        Ok(LogStreamEvents {
            group: group.to_string(),
            stream: stream.to_string(),
            events,
            offset,
            next_token: token,
        })
    }
}

/// A page's token, if it names one.
fn next_token(page: &serde_json::Value, key: &str) -> Option<String> {
    page[key]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Whether a stream's records stand alone, so it is read on from where the last run stopped:
/// CloudTrail delivered to CloudWatch Logs (`<account>_CloudTrail_<region>`), and host logs the
/// CloudWatch agent ships under the instance id (`i-...`). Session Manager streams are read from
/// their head, since a session's commands are numbered from its start (and so are host streams
/// named otherwise, which costs time, not rows: ids are the lines').
fn reads_on(stream: &str) -> bool {
    let trail = stream
        .split_once("_CloudTrail_")
        .is_some_and(|(account, region)| {
            account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !region.is_empty()
        });
    trail || crate::host::instance_of_stream(stream).is_some()
}

/// The newest position stored for each of `sources`, by [`position_key`]. The lookup names
/// the sources, which the files' bloom filters find without reading the others.
async fn stored_positions(lake: &Lake, sources: &[String]) -> Result<HashMap<String, Position>> {
    let rows: Vec<Position> = lake
        .rows(Filter::all().any_of("source", sources.iter().cloned()))
        .await?;
    let mut newest: HashMap<String, Position> = HashMap::new();
    for row in rows {
        let key = position_key(&row);
        if newest.get(&key).is_none_or(|p| p.version < row.version) {
            newest.insert(key, row);
        }
    }
    Ok(newest)
}

fn position(source: String, version: i64, detail: String, time: Timestamp) -> Position {
    Position {
        event_id: auditq_model::event_id("position", &[&source, &version.to_string(), &detail]),
        time,
        date: auditq_model::day_of(&time),
        source,
        version,
        detail,
        ingested_at: chrono::Utc::now(),
    }
}

/// Ingests the Run Command invocations of a region sent since the last time
/// (`ssm-commands://REGION`): each instance's access, and the lines of the script it was sent
/// (which CloudTrail's `SendCommand` hides) as its commands. Systems Manager keeps 30 days.
pub async fn ingest_run_commands(
    pipeline: &Pipeline,
    lookup: &crate::lookup::Lookup,
    region: &str,
) -> Result<IngestSummary> {
    let source = format!("ssm-commands://{region}");
    let stored = stored_positions(pipeline.lake(), std::slice::from_ref(&source)).await?;
    let last = stored.values().next();
    let after = last.map(|p| p.time);
    let listed = lookup.run_commands(region, after).await?;
    let Some(newest) = listed.last().map(|c| c.requested) else {
        return Ok(IngestSummary::default());
    };
    let mut parsed = Parsed::default();
    for command in &listed {
        let origin = format!("{source}/{}", command.command_id);
        let (fragments, commands) = crate::ssm::listed_command_rows(command, &origin);
        parsed.fragments.extend(fragments);
        parsed.commands.extend(commands);
    }
    let version = last.map_or(0, |p| p.version) + 1;
    let at = position(source, version, newest.to_rfc3339(), newest);
    let mut summary = pipeline.store_at(parsed, vec![at]).await?;
    summary.objects = listed.len();
    Ok(summary)
}

/// Ingests every object under an S3 prefix not ingested before (same key and ETag).
pub async fn ingest_s3(
    pipeline: &Pipeline,
    source: &S3Source,
    location: &S3Location,
    limits: &Limits,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<IngestSummary> {
    let objects = source.list(location).await?;
    ingest_objects(pipeline, source, &objects, limits, progress).await
}

/// Ingests the objects an S3 event notification names (direct, through SQS or SNS, or
/// EventBridge), unless already ingested with the same ETag. A malformed envelope is an error
/// of the caller's message, reported with its reason.
pub async fn ingest_s3_notification(
    pipeline: &Pipeline,
    source: &S3Source,
    body: &serde_json::Value,
    limits: &Limits,
) -> Result<IngestSummary> {
    let refs = crate::notify::created_objects(body).map_err(|message| IngestError::Aws {
        operation: "S3 event notification".to_string(),
        resource: "message".to_string(),
        message,
    })?;
    let mut summary = IngestSummary::default();
    for object in refs {
        let object = match source.head(&object.bucket, &object.key).await {
            Ok(object) => object,
            // Gone since the notification (or not ours to read): set aside, the rest goes on.
            Err(e) => match refused_object(&e, chrono::Utc::now()) {
                Some(refused) => {
                    let refused = Parsed {
                        rejects: vec![refused],
                        ..Parsed::default()
                    };
                    summary.add(pipeline.store(refused).await?);
                    continue;
                }
                None => return Err(e),
            },
        };
        summary.add(ingest_objects(pipeline, source, &[object], limits, &|_| {}).await?);
    }
    Ok(summary)
}

/// Drains an SQS queue of S3 event notifications (from S3 directly, through SNS, or from
/// EventBridge): each message's objects are ingested, then the message is deleted, so a crash
/// leaves it to be received again (and re-reading adds no row). A message that is not a
/// notification is set aside in `rejects` with its reason and deleted; any other error stops
/// the run with the message still in the queue.
pub async fn ingest_sqs(
    pipeline: &Pipeline,
    source: &S3Source,
    aws: &Aws,
    queue_url: &str,
    limits: &Limits,
) -> Result<IngestSummary> {
    let mut summary = IngestSummary::default();
    loop {
        let page = aws.sqs_receive(queue_url, 10, 1).await.map_err(aws_error)?;
        if page.is_empty() {
            break;
        }
        for message in &page {
            let body = message.body.as_str();
            let id = message.id.as_str();
            let not_a_notification = match serde_json::from_str::<serde_json::Value>(body) {
                Err(e) => Some(format!("malformed JSON: {e}")),
                Ok(value) => match crate::notify::created_objects(&value) {
                    Err(reason) => Some(format!("not an S3 event notification: {reason}")),
                    Ok(_) => {
                        summary
                            .add(ingest_s3_notification(pipeline, source, &value, limits).await?);
                        None
                    }
                },
            };
            if let Some(reason) = not_a_notification {
                let origin = format!("sqs://{queue_url}");
                let at = Object {
                    origin: &origin,
                    modified: chrono::Utc::now(),
                };
                let position = format!("message {id}");
                let bad = Parsed {
                    rejects: vec![reject(
                        at,
                        &position,
                        "s3-notification",
                        &reason,
                        body.as_bytes(),
                    )],
                    ..Parsed::default()
                };
                summary.add(pipeline.store(bad).await?);
            }
            aws.sqs_delete(queue_url, &message.receipt_handle)
                .await
                .map_err(aws_error)?;
        }
    }
    Ok(summary)
}

async fn ingest_objects(
    pipeline: &Pipeline,
    source: &S3Source,
    objects: &[S3Object],
    limits: &Limits,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<IngestSummary> {
    let uris: Vec<String> = objects.iter().map(S3Object::uri).collect();
    let done = stored_positions(pipeline.lake(), &uris).await?;
    let todo: Vec<&S3Object> = objects
        .iter()
        .filter(|o| !done.contains_key(&format!("{}@{}", o.uri(), o.etag)))
        .collect();
    let mut summary = IngestSummary::default();
    let mut parsed = Parsed::default();
    let mut positions = Vec::new();
    let mut batch_bytes = 0;
    for (n, object) in todo.iter().enumerate() {
        progress(Progress {
            done: n,
            total: todo.len(),
            current: &object.key,
        });
        match source.read(object, limits).await {
            Ok((read, size)) => {
                parsed.extend(read);
                batch_bytes += size;
                positions.push(position(
                    object.uri(),
                    1,
                    object.etag.clone(),
                    object.modified,
                ));
            }
            // Set aside with its reason, and no position: the next run tries it again.
            Err(e) => match refused_object(&e, object.modified) {
                Some(refused) => parsed.rejects.push(refused),
                None => return Err(e),
            },
        }
        // Rows first, then the positions that say they are durable (in one batch).
        if positions.len() >= limits.batch_files || batch_bytes >= limits.batch_bytes {
            summary.add(
                pipeline
                    .store_at(std::mem::take(&mut parsed), std::mem::take(&mut positions))
                    .await?,
            );
            batch_bytes = 0;
        }
    }
    summary.add(pipeline.store_at(parsed, positions).await?);
    summary.objects = todo.len();
    summary.skipped = objects.len() - todo.len();
    Ok(summary)
}

/// Ingests the streams of a log group that have events not ingested before.
///
/// A Session Manager stream is read from its head each time it has changed (one session each,
/// whose commands are numbered from its first chunk); a CloudTrail stream goes on from the
/// forward token stored with its position.
pub async fn ingest_cwl(
    pipeline: &Pipeline,
    source: &CwlSource,
    uri: &str,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<IngestSummary> {
    let location = source.resolve(uri).await?;
    let streams = source.streams(&location).await?;
    ingest_streams(pipeline, source, &location.group, &streams, progress).await
}

/// Ingests the named streams of a group that have grown since they were last ingested.
pub async fn ingest_streams(
    pipeline: &Pipeline,
    source: &CwlSource,
    group: &str,
    streams: &[String],
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<IngestSummary> {
    let group_uri = format!("cwl://{}/", group.trim_start_matches('/'));
    let uris: Vec<String> = streams.iter().map(|s| format!("{group_uri}{s}")).collect();
    let done = stored_positions(pipeline.lake(), &uris).await?;
    let mut parsed = Parsed::default();
    let mut positions = Vec::new();
    let mut read = 0;
    for (n, stream) in streams.iter().enumerate() {
        progress(Progress {
            done: n,
            total: streams.len(),
            current: stream,
        });
        let key = format!("cwl://{}/{stream}@", group.trim_start_matches('/'));
        let stored = done.get(&key);
        let resumable = reads_on(stream);
        let resume = stored
            .filter(|_| resumable)
            .and_then(|p| Some((p.detail.strip_prefix("token:")?, p.version)));
        let events = match resume {
            Some((token, version)) => {
                let offset = usize::try_from(version).unwrap_or(0);
                match source
                    .read_stream_from(group, stream, Some(token), offset)
                    .await
                {
                    Ok(events) => events,
                    // Tokens expire (a day on AWS): read from the head; ids keep what was
                    // stored from being stored twice.
                    Err(e) => {
                        tracing::warn!(%stream, error = %e, "cannot resume from the stored token; reading the stream from its head");
                        source.read_stream(group, stream).await?
                    }
                }
            }
            None => source.read_stream(group, stream).await?,
        };
        let last = events.events.last().map(|(ts, _)| *ts).unwrap_or(0);
        let version = (events.offset + events.events.len()) as i64;
        let (changed, detail) = if resumable {
            let detail = format!("token:{}", events.next_token.as_deref().unwrap_or_default());
            (stored.is_none() || !events.events.is_empty(), detail)
        } else {
            // Grown, or changed some other way (retention removed old events while new ones
            // came): the count and the newest event time together tell.
            let detail = last.to_string();
            let same = stored.is_some_and(|p| p.version == version && p.detail == detail);
            (!same, detail)
        };
        if !changed {
            continue;
        }
        read += 1;
        let time = DateTime::from_timestamp_millis(last).unwrap_or_default();
        parsed.extend(events.parse(time));
        positions.push(position(events.uri(), version, detail, time));
    }
    let mut summary = pipeline.store_at(parsed, positions).await?;
    summary.objects = read;
    summary.skipped = streams.len() - read;
    Ok(summary)
}

/// How a follower learns that a log group has new events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowMode {
    /// StartLiveTail: events are pushed within about a second.
    LiveTail,
    /// Poll the group's streams every interval.
    Poll(std::time::Duration),
}

impl CwlSource {
    /// The ARN of a log group (StartLiveTail names groups by ARN).
    pub async fn group_arn(&self, group: &str) -> Result<String> {
        let (groups, _) = self.groups(group, None, group).await?;
        groups
            .into_iter()
            .find(|(name, arn)| name == group && !arn.is_empty())
            .map(|(_, arn)| arn)
            .ok_or_else(|| IngestError::Aws {
                operation: "DescribeLogGroups".to_string(),
                resource: group.to_string(),
                message: "log group not found".to_string(),
            })
    }

    /// The streams with events at or after `since_ms` (FilterLogEvents over the group), and
    /// the newest event time seen.
    pub async fn streams_with_events_since(
        &self,
        group: &str,
        since_ms: i64,
    ) -> Result<(Vec<String>, i64)> {
        let mut streams: Vec<String> = Vec::new();
        let mut newest = since_ms;
        let mut token = None;
        loop {
            let mut request = json!({ "logGroupName": group, "startTime": since_ms });
            if let Some(token) = token {
                request["nextToken"] = serde_json::Value::String(token);
            }
            let page = self.call("FilterLogEvents", request, group).await?;
            for event in page["events"].as_array().into_iter().flatten() {
                newest = newest.max(event["timestamp"].as_i64().unwrap_or(0));
                if let Some(name) = event["logStreamName"].as_str()
                    && !streams.iter().any(|s| s == name)
                {
                    streams.push(name.to_string());
                }
            }
            token = next_token(&page, "nextToken");
            if token.is_none() {
                break;
            }
        }
        Ok((streams, newest))
    }

    /// Waits for one live-tail session and returns the streams that had events, in order of
    /// first appearance, each with the newest ingestion time seen for it. The session ends
    /// when the service closes it (AWS after hours, the emulator after its snapshot) or after
    /// `max_wait`.
    ///
    /// StartLiveTail answers on its own host (`stream-logs.REGION.amazonaws.com`; an emulator's
    /// endpoint as it is) with an event stream of `sessionStart` and `sessionUpdate` messages.
    pub async fn live_tail_streams(
        &self,
        group_arn: &str,
        max_wait: std::time::Duration,
    ) -> Result<Vec<(String, i64)>> {
        let region = auditq_aws::arn_region(group_arn)
            .map(str::to_string)
            .map_or_else(|| self.aws.need_region("StartLiveTail", group_arn), Ok)
            .map_err(aws_error)?;
        let request = json!({ "logGroupIdentifiers": [group_arn] });
        let mut stream = self
            .aws
            .json_stream(
                self.aws.endpoint("stream-logs", &region),
                "logs",
                &region,
                &format!("{LOGS}.StartLiveTail"),
                &request,
                group_arn,
            )
            .await
            .map_err(aws_error)?;
        let mut changed: Vec<(String, i64)> = Vec::new();
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            let (kind, message) = match next {
                Err(_) | Ok(Ok(None)) => break,
                Ok(Ok(Some(event))) => event,
                Ok(Err(e)) => return Err(aws_error(e)),
            };
            if kind != "sessionUpdate" {
                continue;
            }
            let update: serde_json::Value =
                serde_json::from_slice(&message.payload).map_err(|e| IngestError::Aws {
                    operation: "StartLiveTail".to_string(),
                    resource: group_arn.to_string(),
                    message: format!("a session update that is not JSON: {e}"),
                })?;
            for result in update["sessionResults"].as_array().into_iter().flatten() {
                let Some(name) = result["logStreamName"].as_str() else {
                    continue;
                };
                let ingested = result["ingestionTime"]
                    .as_i64()
                    .or(result["timestamp"].as_i64())
                    .unwrap_or(0);
                match changed.iter_mut().find(|(c, _)| c == name) {
                    Some((_, newest)) => *newest = (*newest).max(ingested),
                    None => changed.push((name.to_string(), ingested)),
                }
            }
            if !changed.is_empty() {
                break;
            }
        }
        Ok(changed)
    }
}

/// Follows a log group until `stop` is set: each time streams have new events they are read
/// from their head and stored (a Session Manager stream is one session, numbered from its
/// first chunk). Live tail falls back to polling if the service refuses it.
pub async fn follow_cwl(
    pipeline: &Pipeline,
    source: &CwlSource,
    uri: &str,
    mode: FollowMode,
    stop: &std::sync::atomic::AtomicBool,
    on_batch: &(dyn Fn(&IngestSummary) + Sync),
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let location = source.resolve(uri).await?;
    let group_uri = format!("cwl://{}", location.group);
    // Catch up on what is there before following.
    on_batch(&ingest_cwl(pipeline, source, &group_uri, &|_| {}).await?);
    let mut since = chrono::Utc::now().timestamp_millis() - POLL_MARGIN_MS;
    let mut mode = mode;
    let arn = match mode {
        FollowMode::LiveTail => Some(source.group_arn(&location.group).await?),
        FollowMode::Poll(_) => None,
    };
    // The newest ingestion time live tail has shown for each stream: a session that repeats
    // events already seen (the emulator's snapshot, a reconnect) moves nothing.
    let mut seen: HashMap<String, i64> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        match (mode, &arn) {
            (FollowMode::LiveTail, Some(arn)) => {
                match source
                    .live_tail_streams(arn, std::time::Duration::from_secs(1))
                    .await
                {
                    Ok(updates) => {
                        let streams: Vec<String> = updates
                            .into_iter()
                            .filter(|(stream, newest)| {
                                let moved = seen.get(stream).is_none_or(|old| newest > old);
                                if moved {
                                    seen.insert(stream.clone(), *newest);
                                }
                                moved
                            })
                            .map(|(stream, _)| stream)
                            .collect();
                        if !streams.is_empty() {
                            let summary = ingest_streams(
                                pipeline,
                                source,
                                &location.group,
                                &streams,
                                &|_| {},
                            )
                            .await?;
                            on_batch(&summary);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live tail refused; polling every 5 s instead");
                        mode = FollowMode::Poll(FALLBACK_POLL);
                    }
                }
                // A session that ends at once (the emulator's snapshot) must not spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => {
                let interval = match mode {
                    FollowMode::Poll(interval) => interval,
                    FollowMode::LiveTail => FALLBACK_POLL,
                };
                tokio::time::sleep(interval).await;
                // FilterLogEvents over the whole group finds the streams that moved (new ones
                // included); a margin re-reads late arrivals, which positions make harmless.
                let (streams, newest) = source
                    .streams_with_events_since(&location.group, since)
                    .await?;
                since = since.max(newest - POLL_MARGIN_MS);
                if !streams.is_empty() {
                    on_batch(
                        &ingest_streams(pipeline, source, &location.group, &streams, &|_| {})
                            .await?,
                    );
                }
            }
        }
    }
    Ok(())
}

/// How far back each poll looks before the newest event it has seen.
const POLL_MARGIN_MS: i64 = 5 * 60 * 1000;

/// How often a follower polls when live tail is refused.
const FALLBACK_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// The AWS settings auditq takes from the environment, by the SDK's conventions: the SDK reads
/// the standard chain itself (credentials, region, `AWS_ENDPOINT_URL`); the lake's object store
/// is told about an emulator endpoint and the region explicitly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// `AWS_ENDPOINT_URL`: an emulator or a VPC endpoint.
    pub endpoint_url: Option<String>,
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// `AUDITQ_LAKE_MAX_RETRIES`: retries of a failed request to an S3 lake (object_store's
    /// default, 10, when unset), with exponential backoff.
    pub lake_max_retries: Option<usize>,
    /// `AUDITQ_LAKE_RETRY_TIMEOUT_SECONDS`: how long a request to an S3 lake is retried at most
    /// (object_store's default, 180, when unset).
    pub lake_retry_timeout_seconds: Option<u64>,
}

/// The AWS clients auditq uses, built once from one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// S3 objects (transcripts, CloudTrail deliveries).
    pub s3: S3Source,
    /// CloudWatch Logs groups.
    pub cwl: CwlSource,
    /// Every call, signed: SNS (alerts, subscriptions) and SQS (queues of S3 notifications).
    pub aws: Aws,
}

impl AwsSettings {
    /// The settings from environment variables, as `var` looks them up (the binaries pass
    /// `std::env::var`; libraries never read the environment themselves).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        Self {
            endpoint_url: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            lake_max_retries: var("AUDITQ_LAKE_MAX_RETRIES").and_then(|v| v.parse().ok()),
            lake_retry_timeout_seconds: var("AUDITQ_LAKE_RETRY_TIMEOUT_SECONDS")
                .and_then(|v| v.parse().ok()),
        }
    }

    /// Storage options for a lake on S3.
    pub fn storage_options(&self) -> HashMap<String, String> {
        let mut options = HashMap::new();
        if let Some(url) = &self.endpoint_url {
            options.insert("AWS_ENDPOINT_URL".to_string(), url.clone());
            if url.starts_with("http://") {
                options.insert("AWS_ALLOW_HTTP".to_string(), "true".to_string());
            }
        }
        if let Some(region) = &self.region {
            options.insert("AWS_REGION".to_string(), region.clone());
        }
        // Read by deltalake for its own requests, and by `Lake::object_store` for ours.
        if let Some(retries) = self.lake_max_retries {
            options.insert("max_retries".to_string(), retries.to_string());
        }
        if let Some(seconds) = self.lake_retry_timeout_seconds {
            options.insert("retry_timeout".to_string(), format!("{seconds}s"));
        }
        options
    }

    /// Every client, from the standard chain (no network call until one is used).
    pub async fn clients(&self) -> AwsClients {
        let aws = Aws::from_env(self.endpoint_url.clone()).await;
        AwsClients {
            s3: S3Source::new(aws.clone()),
            cwl: CwlSource::new(aws.clone()),
            aws,
        }
    }

    /// The client of the names look-up ([`crate::lookup`]), from the standard chain.
    pub async fn lookup(&self) -> crate::lookup::Lookup {
        crate::lookup::Lookup::new(Aws::from_env(self.endpoint_url.clone()).await)
    }
}

/// A queue's URL, given its name (`auditq-s3-events`) or its URL.
pub async fn queue_url(aws: &Aws, queue: &str) -> Result<String> {
    if queue.starts_with("https://") || queue.starts_with("http://") {
        return Ok(queue.to_string());
    }
    aws.sqs_queue_url(queue).await.map_err(aws_error)
}
