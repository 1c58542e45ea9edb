//! The typed events of auditq and the Arrow schemas of the lake tables.
//!
//! Every table row is a plain Rust struct declared once with [`table_row!`]: the same
//! declaration yields the struct, its Arrow schema, the conversion of a slice of rows to a
//! `RecordBatch`, and the way back. The schemas therefore cannot drift from the types the
//! parsers fill in, and adding a column is a one-line change.
//!
//! Why ids are derived from provenance: an audit trail must not count the same command twice
//! because a file was read twice, a Lambda retried, or CloudTrail delivered a record twice.
//! Each row's `event_id` is a hash of *where it came from* (CloudTrail `eventID`, session id and
//! sequence number, host/stream/offset), never of when it was read, so re-reading is harmless:
//! the lake writer keeps one row per id.
//!
//! All times are UTC with microsecond precision; every table is partitioned by `date`, the UTC
//! day of its main time column.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Date32Type, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

/// A UTC timestamp as stored in the lake (microsecond precision).
pub type Timestamp = DateTime<Utc>;

/// Derives a deterministic id from the parts that say where a record came from.
///
/// Parts are length-prefixed before hashing so that `("ab", "c")` and `("a", "bc")` differ.
/// The result is 32 hex characters (128 bits of SHA-256): collisions are not a practical concern
/// at audit-log volumes, and the id stays short enough to read in a terminal.
pub fn event_id(kind: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in std::iter::once(kind).chain(parts.iter().copied()) {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex(&hasher.finalize()[..16])
}

/// Bytes as lowercase hex (ids, digests, tokens).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The UTC calendar day of a timestamp: the partition value of every table.
pub fn day_of(time: &Timestamp) -> NaiveDate {
    time.date_naive()
}

/// A Rust type that maps to one Arrow column.
pub trait ColumnValue: Sized {
    /// The Arrow type of the column.
    fn data_type() -> DataType;
    /// Whether the column may hold nulls.
    const NULLABLE: bool;
    /// Builds the column from one value per row.
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;
    /// Reads the value of one row back, or `None` if the column has another type or a null
    /// where the type has none.
    fn read(array: &dyn Array, row: usize) -> Option<Self>;
    /// The value as text, as rules see it (`None` for null). Times are RFC 3339 in UTC.
    fn text(&self) -> Option<Cow<'_, str>>;
}

fn utc_timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn timestamp_from_micros(micros: i64) -> Option<Timestamp> {
    DateTime::from_timestamp_micros(micros)
}

fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// Days from the common era to 1970-01-01: Arrow's Date32 counts from the Unix epoch.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A date as Arrow's Date32 value (days since 1970-01-01).
pub fn date32(date: &NaiveDate) -> i32 {
    days_of(date)
}

fn days_of(date: &NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(date) - UNIX_EPOCH_DAYS_FROM_CE
}

impl ColumnValue for String {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    const NULLABLE: bool = false;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(|v| Some(v.as_str())).collect::<StringArray>())
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        Option::<String>::read(array, row).flatten()
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ColumnValue for Option<String> {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    const NULLABLE: bool = true;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(|v| v.as_deref()).collect::<StringArray>())
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        if array.is_null(row) {
            return Some(None);
        }
        match array.data_type() {
            DataType::Utf8 => Some(Some(array.as_string::<i32>().value(row).to_string())),
            DataType::LargeUtf8 => Some(Some(array.as_string::<i64>().value(row).to_string())),
            DataType::Utf8View => Some(Some(array.as_string_view().value(row).to_string())),
            _ => None,
        }
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        self.as_deref().map(Cow::Borrowed)
    }
}

impl ColumnValue for Timestamp {
    fn data_type() -> DataType {
        utc_timestamp_type()
    }
    const NULLABLE: bool = false;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let array: TimestampMicrosecondArray = values.map(|v| Some(v.timestamp_micros())).collect();
        Arc::new(array.with_timezone("UTC"))
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        Option::<Timestamp>::read(array, row).flatten()
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(
            self.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ))
    }
}

impl ColumnValue for Option<Timestamp> {
    fn data_type() -> DataType {
        utc_timestamp_type()
    }
    const NULLABLE: bool = true;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let array: TimestampMicrosecondArray =
            values.map(|v| v.map(|t| t.timestamp_micros())).collect();
        Arc::new(array.with_timezone("UTC"))
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        if array.is_null(row) {
            return Some(None);
        }
        let micros = array
            .as_primitive_opt::<TimestampMicrosecondType>()?
            .value(row);
        // A time chrono cannot hold is an error (None), not a null: it must not vanish.
        timestamp_from_micros(micros).map(Some)
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        self.as_ref()
            .and_then(ColumnValue::text)
            .map(|t| Cow::Owned(t.into_owned()))
    }
}

impl ColumnValue for NaiveDate {
    fn data_type() -> DataType {
        DataType::Date32
    }
    const NULLABLE: bool = false;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(|v| Some(days_of(v))).collect::<Date32Array>())
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        if array.is_null(row) {
            return None;
        }
        date_from_days(array.as_primitive_opt::<Date32Type>()?.value(row))
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.to_string()))
    }
}

impl ColumnValue for i64 {
    fn data_type() -> DataType {
        DataType::Int64
    }
    const NULLABLE: bool = false;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(|v| Some(*v)).collect::<Int64Array>())
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        Option::<i64>::read(array, row).flatten()
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.to_string()))
    }
}

impl ColumnValue for Option<i64> {
    fn data_type() -> DataType {
        DataType::Int64
    }
    const NULLABLE: bool = true;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.copied().collect::<Int64Array>())
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        if array.is_null(row) {
            return Some(None);
        }
        Some(Some(array.as_primitive_opt::<Int64Type>()?.value(row)))
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        self.map(|v| Cow::Owned(v.to_string()))
    }
}

impl ColumnValue for bool {
    fn data_type() -> DataType {
        DataType::Boolean
    }
    const NULLABLE: bool = false;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(|v| Some(*v)).collect::<BooleanArray>())
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        Option::<bool>::read(array, row).flatten()
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(if *self { "true" } else { "false" }))
    }
}

impl ColumnValue for Option<bool> {
    fn data_type() -> DataType {
        DataType::Boolean
    }
    const NULLABLE: bool = true;
    fn to_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.copied().collect::<BooleanArray>())
    }
    fn read(array: &dyn Array, row: usize) -> Option<Self> {
        if array.is_null(row) {
            return Some(None);
        }
        Some(Some(array.as_boolean_opt()?.value(row)))
    }
    fn text(&self) -> Option<Cow<'_, str>> {
        self.map(|v| Cow::Borrowed(if v { "true" } else { "false" }))
    }
}

/// A row of one lake table.
pub trait Row: Sized {
    /// The table this row belongs to.
    const TABLE: Table;
    /// The Arrow schema of the table.
    fn schema() -> SchemaRef;
    /// The rows as one record batch with [`Row::schema`].
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError>;
    /// Reads rows back from a batch whose columns carry this table's names and types (extra
    /// columns are ignored). Fails naming the first column that is missing or mistyped.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError>;
    /// The row's deterministic id (its key in the table).
    fn id(&self) -> &str;
    /// The row's partition value.
    fn date(&self) -> NaiveDate;
    /// The names of the columns, in order.
    const FIELDS: &'static [&'static str];
    /// The value of a column as text (`None` for null or for no such column).
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// Declares a table row: the struct, its schema, and conversions to and from Arrow.
macro_rules! table_row {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $table:expr, id $id:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Row for $name {
            const TABLE: Table = $table;

            fn schema() -> SchemaRef {
                Arc::new(Schema::new(vec![
                    $( Field::new(stringify!($field), <$ty as ColumnValue>::data_type(),
                                  <$ty as ColumnValue>::NULLABLE), )*
                ]))
            }

            fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
                RecordBatch::try_new(Self::schema(), vec![
                    $( <$ty as ColumnValue>::to_array(rows.iter().map(|r| &r.$field)), )*
                ])
            }

            fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
                $(
                    let $field = batch.column_by_name(stringify!($field)).ok_or_else(|| {
                        ArrowError::SchemaError(format!(
                            "table {} has no column {}", $table.name(), stringify!($field)))
                    })?;
                )*
                (0..batch.num_rows()).map(|row| {
                    Ok($name {
                        $( $field: <$ty as ColumnValue>::read($field.as_ref(), row).ok_or_else(|| {
                            ArrowError::SchemaError(format!(
                                "table {} column {} row {row}: unexpected type {} or null",
                                $table.name(), stringify!($field), $field.data_type()))
                        })?, )*
                    })
                }).collect()
            }

            fn id(&self) -> &str {
                &self.$id
            }

            fn date(&self) -> NaiveDate {
                self.date
            }

            const FIELDS: &'static [&'static str] = &[ $( stringify!($field), )* ];

            fn field(&self, name: &str) -> Option<Cow<'_, str>> {
                match name {
                    $( stringify!($field) => ColumnValue::text(&self.$field), )*
                    _ => None,
                }
            }
        }
    };
}

table_row! {
    /// A command typed in a session (from a stream or transcript), or run through sudo/auditd.
    pub struct Command in Table::Commands, id event_id {
        /// `hash(session_id, seq)` for session commands; host, stream and offset for host logs.
        pub event_id: String,
        /// When the command was run (for streams: the upload time of the chunk that holds it;
        /// for S3 transcripts, which carry no per-line times: the session start).
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// Who: the AWS principal's short name (IAM user name, role session name, `root`).
        pub user: Option<String>,
        /// Who: the full principal ARN that owned the session.
        pub principal_arn: Option<String>,
        /// The operating-system user the command ran as (`ssm-user`, `ec2-user`, `root`).
        pub run_as: Option<String>,
        /// Where: instance or managed-node id.
        pub target: Option<String>,
        /// Where: AWS account id.
        pub account: Option<String>,
        /// Where: AWS region.
        pub region: Option<String>,
        /// Where from: the IP the session was opened from (CloudTrail `sourceIPAddress`).
        pub source_ip: Option<String>,
        /// What: the command line as the user finally ran it.
        pub cmd: String,
        /// Working directory, when the prompt or log shows it.
        pub cwd: Option<String>,
        /// Session Manager session id.
        pub session_id: Option<String>,
        /// Position of the command in its session, from 1.
        pub seq: i64,
        /// Where the command was read: `stream`, `transcript`, `sudo`, `auditd`, `run_command`
        /// (a line of the script Run Command sent, from Systems Manager).
        pub source: String,
        /// Location of the record that produced it (file, S3 object, log stream).
        pub origin: String,
        /// auditd: the command line of the process that started it, when its exec was seen.
        pub parent_cmd: Option<String>,
        /// auditd: whether the session's recording (stream or transcript) shows the program it
        /// ran; null while the session has no recording known (or none at all).
        pub seen_in_transcript: Option<bool>,
        /// Where, as it was named then: the instance's `Name` tag ([`Name`] history).
        pub target_name: Option<String>,
        /// Where, as it was named then: the instance's `Environment` tag.
        pub environment: Option<String>,
        /// Where, as it was named then: the account's alias.
        pub account_alias: Option<String>,
    }
}

table_row! {
    /// A Session Manager session or an SSH login, assembled from every source that saw it.
    pub struct Session in Table::Sessions, id session_id {
        /// Session Manager session id (the key of this table).
        pub session_id: String,
        /// UTC day of `started_at` (partition).
        pub date: NaiveDate,
        /// Who: principal short name.
        pub user: Option<String>,
        /// Who: principal ARN.
        pub principal_arn: Option<String>,
        /// Where from: source IP of StartSession.
        pub source_ip: Option<String>,
        /// Client user agent of StartSession.
        pub user_agent: Option<String>,
        /// When the session started (CloudTrail StartSession, else the earliest transcript time).
        pub started_at: Option<Timestamp>,
        /// When it ended (CloudTrail TerminateSession, else the latest transcript time).
        pub ended_at: Option<Timestamp>,
        /// `ended_at - started_at` in seconds.
        pub duration_seconds: Option<i64>,
        /// Where: instance or managed-node id.
        pub target: Option<String>,
        /// Where: AWS account id.
        pub account: Option<String>,
        /// Where: AWS region.
        pub region: Option<String>,
        /// SSM document (`SSM-SessionManagerRunShell` when none was named).
        pub document: Option<String>,
        /// `shell`, `ssh`, `port_forward`, `command`.
        pub kind: String,
        /// The OS user the shell ran as.
        pub run_as: Option<String>,
        /// Number of commands extracted from its transcript or stream.
        pub commands: i64,
        /// What recorded it: `transcript`, `stream`, `host_only` or `none`.
        pub logged: String,
        /// Where the transcript is (S3 object or file).
        pub transcript_uri: Option<String>,
        /// The log stream that carried its streamed output.
        pub stream_uri: Option<String>,
        /// The reason given at StartSession.
        pub reason: Option<String>,
        /// CloudTrail `eventID` of StartSession.
        pub start_event_id: Option<String>,
        /// Where, as it was named at its start: the instance's `Name` tag ([`Name`] history).
        pub target_name: Option<String>,
        /// Where, as it was named at its start: the instance's `Environment` tag.
        pub environment: Option<String>,
        /// Where, as it was named at its start: the account's alias.
        pub account_alias: Option<String>,
        /// Where its recording ends: a transcript's `Script done` time, a stream's last event.
        /// Null when nothing recorded it, or when its transcript has no `Script done` line (it
        /// was cut short: the agent or the instance stopped before the shell ended).
        pub recorded_to: Option<Timestamp>,
        /// The longest silence in its stream: seconds between two consecutive events. Session
        /// Manager ends a session idle for its idle timeout (20 minutes by default), so a longer
        /// silence in a session that went on is output the stream lost.
        pub longest_silence_seconds: Option<i64>,
    }
}

table_row! {
    /// One CloudTrail record.
    pub struct TrailEvent in Table::Cloudtrail, id event_id {
        /// CloudTrail `eventID` (a hash of the record when it has none).
        pub event_id: String,
        /// `eventTime`.
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// Who: `userIdentity.arn` (absent for some identity types).
        pub principal_arn: Option<String>,
        /// Who: `userIdentity.type` (`IAMUser`, `AssumedRole`, `Root`, ...).
        pub principal_type: Option<String>,
        /// Who: IAM user name, role session name, or `root`.
        pub user: Option<String>,
        /// Who: access key used.
        pub access_key_id: Option<String>,
        /// Whether MFA was used (session attributes, or `MFAUsed` of console logins).
        pub mfa: Option<bool>,
        /// Where: account the event was recorded in (`recipientAccountId`).
        pub account: Option<String>,
        /// Where: `awsRegion`.
        pub region: Option<String>,
        /// Where from: `sourceIPAddress` (an IP or a service name).
        pub source_ip: Option<String>,
        /// `userAgent`.
        pub user_agent: Option<String>,
        /// What: `eventSource`.
        pub event_source: String,
        /// What: `eventName`.
        pub event_name: String,
        /// `eventType`.
        pub event_type: Option<String>,
        /// `errorCode` (absent on success).
        pub error_code: Option<String>,
        /// `errorMessage`.
        pub error_message: Option<String>,
        /// `readOnly`.
        pub read_only: Option<bool>,
        /// Session Manager session id for ssm Start/Resume/TerminateSession.
        pub session_id: Option<String>,
        /// `requestParameters` as JSON.
        pub request: Option<String>,
        /// `responseElements` as JSON.
        pub response: Option<String>,
        /// `additionalEventData` as JSON.
        pub additional: Option<String>,
        /// `resources` as JSON.
        pub resources: Option<String>,
        /// Location of the record (file or S3 object).
        pub origin: String,
    }
}

table_row! {
    /// One line of sshd, sudo, su or auditd on a host.
    pub struct HostEvent in Table::HostEvents, id event_id {
        /// `hash(instance or host, line, occurrence)`; auditd: `hash(instance or node, serial,
        /// time)`. Where the line was read does not matter.
        pub event_id: String,
        /// When it happened.
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// Who: the user acting.
        pub user: Option<String>,
        /// The user acted as (sudo `USER=`, su target).
        pub run_as: Option<String>,
        /// Where: host name as logged.
        pub host: Option<String>,
        /// Where: instance id (the log stream name under the CloudWatch agent).
        pub target: Option<String>,
        /// Where from: remote address.
        pub source_ip: Option<String>,
        /// `sshd`, `sudo`, `su`, `auditd`, ...
        pub program: String,
        /// `login`, `login_failed`, `sudo`, `su`, `exec`, ...
        pub action: String,
        /// `success` or `failure`.
        pub outcome: Option<String>,
        /// The command, for sudo and exec.
        pub cmd: Option<String>,
        /// The line as logged (auditd: every record of the event, one per line).
        pub raw: String,
        /// Location of the line.
        pub origin: String,
        /// Process id of the program that logged it.
        pub pid: Option<i64>,
        /// Terminal (`pts/0`).
        pub tty: Option<String>,
        /// Working directory (sudo `PWD=`, auditd `CWD`).
        pub cwd: Option<String>,
        /// How a login authenticated: `publickey`, `password`, `keyboard-interactive/pam`, ...
        pub auth: Option<String>,
        /// The key or certificate of a public-key login (`RSA SHA256:...`, `ID ... CA ...`).
        pub key: Option<String>,
        /// Why it failed (`user NOT in sudoers`, `invalid user`), or the files an auditd event
        /// touched (`paths: /etc/sudoers`).
        pub reason: Option<String>,
        /// The auditd rule key that recorded it (`-k sudoers`).
        pub audit_key: Option<String>,
        /// The Session Manager session it happened in, when correlated.
        pub session_id: Option<String>,
        /// auditd: the parent's process id (`ppid`).
        pub ppid: Option<i64>,
        /// auditd: the login session (`ses`); null when unset, as for every process of a Session
        /// Manager shell, which no login started.
        pub audit_session: Option<i64>,
        /// auditd: the executable (`exe`).
        pub exe: Option<String>,
    }
}

table_row! {
    /// A rule match.
    pub struct Alert in Table::Alerts, id alert_id {
        /// `hash(rule_id, event_id)`: a retry never creates a second alert.
        pub alert_id: String,
        /// Rule that matched.
        pub rule_id: String,
        /// `info`, `low`, `medium`, `high`, `critical`.
        pub severity: String,
        /// Human title.
        pub title: String,
        /// Time of the event that matched.
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// When auditq saw it.
        pub detected_at: Timestamp,
        /// Where.
        pub target: Option<String>,
        /// Where: account.
        pub account: Option<String>,
        /// Who.
        pub user: Option<String>,
        /// What: the command.
        pub cmd: Option<String>,
        /// What: the CloudTrail event name.
        pub event_name: Option<String>,
        /// Session of the event.
        pub session_id: Option<String>,
        /// Table of the event that matched.
        pub source_table: String,
        /// Id of the event that matched.
        pub event_id: String,
        /// Whether the alert reached its publishers.
        pub published: bool,
        /// Where, as it was named then: the instance's `Name` tag ([`Name`] history).
        pub target_name: Option<String>,
        /// Where, as it was named then: the instance's `Environment` tag.
        pub environment: Option<String>,
        /// Where, as it was named then: the account's alias.
        pub account_alias: Option<String>,
        /// The ISO/IEC 27001:2022 Annex A controls its rule evidences (`A.8.2, A.8.16`).
        pub controls: Option<String>,
    }
}

table_row! {
    /// A record that could not be read, kept with the reason so nothing is lost silently.
    pub struct Reject in Table::Rejects, id event_id {
        /// `hash(origin, position)`.
        pub event_id: String,
        /// When auditq rejected it.
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// File, object or stream the record came from.
        pub origin: String,
        /// Where in it: `line 12`, `record 3`, `byte 1048576`.
        pub position: String,
        /// The format it was read as.
        pub format: String,
        /// Why it was rejected.
        pub reason: String,
        /// The first bytes of the record, lossily decoded.
        pub excerpt: String,
    }
}

table_row! {
    /// A source position whose rows are all in the lake: written after them, read to skip work
    /// already done. A crash between the rows and this row replays the source, and provenance ids
    /// keep the replay from adding anything.
    pub struct Position in Table::Positions, id event_id {
        /// `hash(source, version)`.
        pub event_id: String,
        /// When the source was last modified (S3 LastModified; latest event for a log stream).
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// The source: `s3://bucket/key` or `cwl://group/stream`.
        pub source: String,
        /// Its version: 1 for an S3 object (whose ETag is in `detail`); events read for a stream.
        pub version: i64,
        /// S3 ETag, or the stream's last event timestamp.
        pub detail: String,
        /// When auditq stored it.
        pub ingested_at: Timestamp,
    }
}

table_row! {
    /// What an instance, an account or a principal was called from a time on: one row per
    /// change, kept as history (a slowly changing dimension). A row holds from `time` until
    /// `valid_to`, the `time` of the next row of the same `kind`, `key` and `attribute` (null
    /// while it is the latest); a null `value` says the name was removed then.
    pub struct Name in Table::Names, id event_id {
        /// `hash(source, what said it, kind, key, attribute)`: the CloudTrail `eventID` for a
        /// change the trail recorded, the value for a look-up (a look-up that finds the value
        /// unchanged adds nothing).
        pub event_id: String,
        /// From when the value holds: the CloudTrail call that set it, or when a look-up saw it
        /// (which then may have held since before).
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// Until when it held: the next change's `time`; null while it still holds.
        pub valid_to: Option<Timestamp>,
        /// `instance`, `account` or `principal`.
        pub kind: String,
        /// The instance id, account id or principal ARN.
        pub key: String,
        /// `Name`, `Environment` (instance tags), `alias` (account), `user`, `permission_set`
        /// (IAM Identity Center principals).
        pub attribute: String,
        /// The value; null when it was removed.
        pub value: Option<String>,
        /// The account the thing is in.
        pub account: Option<String>,
        /// Its region (instances).
        pub region: Option<String>,
        /// What said it: `cloudtrail`, `describe_tags`, `list_account_aliases`, `identity_center`.
        pub source: String,
        /// The CloudTrail `eventID`, or the API call and endpoint of a look-up.
        pub origin: String,
    }
}

table_row! {
    /// One look at the lake: a query, replay, report, coverage check or evidence export, who
    /// made it and what it saw (ISO/IEC 27001 A.8.15: access to logs is itself logged).
    pub struct Access in Table::AccessLog, id event_id {
        /// `hash(time, os_user, host, process, action, what)`.
        pub event_id: String,
        /// When it was made.
        pub time: Timestamp,
        /// UTC day of `time` (partition).
        pub date: NaiveDate,
        /// Who: the operating-system user that ran auditq.
        pub os_user: Option<String>,
        /// Where from: the machine's host name.
        pub host: Option<String>,
        /// Who: the AWS principal of the credentials, where known (a lake in S3).
        pub principal_arn: Option<String>,
        /// `query`, `replay`, `report`, `coverage`, `evidence`.
        pub action: String,
        /// The statement, the session id, or the period.
        pub what: String,
        /// Rows it returned (a report or bundle: its sessions; a replay: its lines).
        pub rows: Option<i64>,
        /// `ok`, or why it failed or was refused.
        pub outcome: String,
        /// The auditq version.
        pub auditq: String,
    }
}

/// The tables of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// [`Command`] rows.
    Commands,
    /// [`Session`] rows.
    Sessions,
    /// [`TrailEvent`] rows.
    Cloudtrail,
    /// [`HostEvent`] rows.
    HostEvents,
    /// [`Alert`] rows.
    Alerts,
    /// [`Reject`] rows.
    Rejects,
    /// [`Position`] rows.
    Positions,
    /// [`Name`] rows.
    Names,
    /// [`Access`] rows.
    AccessLog,
}

impl Table {
    /// Every table, in the order they are described.
    pub const ALL: [Table; 9] = [
        Table::Commands,
        Table::Sessions,
        Table::Cloudtrail,
        Table::HostEvents,
        Table::Alerts,
        Table::Rejects,
        Table::Positions,
        Table::Names,
        Table::AccessLog,
    ];

    /// The SQL name of the table.
    pub fn name(self) -> &'static str {
        match self {
            Table::Commands => "commands",
            Table::Sessions => "sessions",
            Table::Cloudtrail => "cloudtrail",
            Table::HostEvents => "host_events",
            Table::Alerts => "alerts",
            Table::Rejects => "rejects",
            Table::Positions => "positions",
            Table::Names => "names",
            Table::AccessLog => "access_log",
        }
    }

    /// One line on what a row is.
    pub fn description(self) -> &'static str {
        match self {
            Table::Commands => "one row per command typed in a session or run through sudo/auditd",
            Table::Sessions => "one row per Session Manager session or SSH login",
            Table::Cloudtrail => "one row per CloudTrail record",
            Table::HostEvents => "one row per sshd/sudo/su/auditd line",
            Table::Alerts => "one row per rule match",
            Table::Rejects => "one row per input record that could not be read, with the reason",
            Table::Positions => {
                "one row per source position (S3 object, log stream) fully ingested"
            }
            Table::Names => {
                "one row per change of an instance's Name/Environment tag, an account alias or a principal's name, valid from time to valid_to"
            }
            Table::AccessLog => {
                "one row per query, replay, report, coverage check or evidence export of this lake: who, when, what"
            }
        }
    }

    /// The Arrow schema of the table.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Commands => Command::schema(),
            Table::Sessions => Session::schema(),
            Table::Cloudtrail => TrailEvent::schema(),
            Table::HostEvents => HostEvent::schema(),
            Table::Alerts => Alert::schema(),
            Table::Rejects => Reject::schema(),
            Table::Positions => Position::schema(),
            Table::Names => Name::schema(),
            Table::AccessLog => Access::schema(),
        }
    }

    /// The name of the id column.
    pub fn id_column(self) -> &'static str {
        match self {
            Table::Sessions => "session_id",
            Table::Alerts => "alert_id",
            _ => "event_id",
        }
    }

    /// The partition column (every table is partitioned by day).
    pub fn partition_column(self) -> &'static str {
        "date"
    }

    /// Looks a table up by its SQL name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn event_id_depends_on_every_part_and_their_boundaries() {
        let a = event_id("cmd", &["ab", "c"]);
        assert_eq!(a, event_id("cmd", &["ab", "c"]));
        assert_ne!(a, event_id("cmd", &["a", "bc"]));
        assert_ne!(a, event_id("trail", &["ab", "c"]));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn rows_round_trip_through_arrow() {
        let t = time("2026-10-05T09:12:03.123456Z");
        let rows = vec![Command {
            event_id: "e1".into(),
            time: t,
            date: day_of(&t),
            user: Some("alice".into()),
            principal_arn: None,
            run_as: Some("root".into()),
            target: Some("i-0a1b2c3d4e5f60711".into()),
            account: None,
            region: None,
            source_ip: None,
            cmd: "sudo su -".into(),
            cwd: None,
            session_id: Some("alice-0a7f3c9e1b2d4f601".into()),
            seq: 3,
            source: "stream".into(),
            origin: "file.json".into(),
            parent_cmd: None,
            seen_in_transcript: None,
            target_name: None,
            environment: None,
            account_alias: None,
        }];
        let batch = Command::to_batch(&rows).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch.schema(), Command::schema());
        let back = Command::from_batch(&batch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, rows);
        assert_eq!(back[0].date.to_string(), "2026-10-05");
    }

    #[test]
    fn every_table_has_a_date_partition_and_its_id_column() {
        for table in Table::ALL {
            let schema = table.schema();
            assert!(schema.field_with_name("date").is_ok(), "{table}");
            assert!(schema.field_with_name(table.id_column()).is_ok(), "{table}");
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
    }
}
