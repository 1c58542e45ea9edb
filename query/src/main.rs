//! `auditq`: parse arguments, run, report the error chain once.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use auditq_ingest::aws::{AwsClients, AwsSettings, FollowMode, S3Location};
use auditq_ingest::digest::{self, KeySources, load_signing_key};
use auditq_ingest::{IngestSummary, Lake, Limits, Pipeline, PipelineBuilder, Progress};
use auditq_query::{Filters, OutputFormat, QueryError, QueryLimits, questions};
use clap::{Parser, Subcommand};

mod rules_cli;
use indicatif::{ProgressBar, ProgressStyle};
use rules_cli::{AlertingArgs, AlertsCommand, RulesCommand};

/// Audit trail of server access on AWS: who opened a shell, when, where, and what they ran.
///
/// With a SQL statement, answers it over the lake; a statement without FROM reads `commands`:
///
///   auditq "select user, time, target, cmd where cmd like 'sudo%'"
#[derive(Debug, Parser)]
#[command(name = "auditq", version)]
struct Cli {
    /// Lake location [default: ./auditq-data; when that is empty, the bundled sample logs are
    /// ingested first].
    #[arg(long, global = true, env = "AUDITQ_DATA")]
    data: Option<String>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    format: OutputFormat,

    /// Write the answer to FILE instead of standard output (needed for `--format parquet`).
    #[arg(short = 'o', long = "output", global = true, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Minutes after a session ended that its transcript, stream or host login may still
    /// arrive; then it reads `logged = none` (and `ssm.session_unlogged` alerts).
    #[arg(long, global = true, value_name = "MINUTES", default_value_t = auditq_ingest::pipeline::builder::DEFAULT_UNLOGGED_GRACE_MINUTES as u64)]
    unlogged_after: u64,

    /// The most rows an answer may have; a larger answer is refused (add LIMIT or narrow it).
    #[arg(long, global = true, default_value_t = QueryLimits::default().max_rows)]
    max_rows: usize,

    /// Every column in full, even in a terminal (where the table format otherwise fits the
    /// window: long cells cut, middle columns left out). Piped or redirected output is always
    /// in full.
    #[arg(long, global = true)]
    wide: bool,

    /// The most memory a statement's sorts, joins and aggregates may hold, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = QueryLimits::default().max_memory >> 20)]
    max_memory: usize,

    /// The longest a statement may run, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = QueryLimits::default().timeout.as_secs())]
    timeout: u64,

    /// A secret pattern to redact besides the built-in ones, `NAME=REGEX` (the first capture
    /// group is the secret, else the whole match); repeatable.
    #[arg(long = "redact", global = true, value_name = "NAME=REGEX")]
    redact: Vec<String>,

    /// The file holding the Ed25519 key that signs every commit's digest (base64 of a 32-byte
    /// seed) [default: $AUDITQ_SIGNING_KEY, else ~/.config/auditq/signing.key, made on first
    /// use].
    #[arg(
        long,
        global = true,
        env = "AUDITQ_SIGNING_KEY_FILE",
        value_name = "FILE"
    )]
    signing_key: Option<PathBuf>,

    /// Print the SQL of a named question (who, sessions, commands) on stderr before its answer.
    #[arg(long, global = true)]
    show_sql: bool,

    #[command(flatten)]
    narrow: Narrow,

    /// SQL statement (DataFusion dialect).
    sql: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Filters that apply to every table a statement reads (see `auditq_query::filters`).
#[derive(Debug, clap::Args)]
struct Narrow {
    /// Only rows at or after: 30m, 12h, 7d, 2w (back from now), a date (2026-10-01) or an RFC
    /// 3339 time. Sessions by their start.
    #[arg(long, global = true, value_name = "WHEN")]
    since: Option<String>,
    /// Only rows before: as --since; a date includes that whole day.
    #[arg(long, global = true, value_name = "WHEN")]
    until: Option<String>,
    /// Only this user (principal short name; `%` is a wildcard).
    #[arg(long, global = true)]
    user: Option<String>,
    /// Only this instance or managed node (`%` is a wildcard).
    #[arg(long, global = true)]
    target: Option<String>,
    /// Only this AWS account.
    #[arg(long, global = true)]
    account: Option<String>,
}

impl Narrow {
    /// The options as given (`--user 'alice' `), to print beside what they narrowed.
    fn options(&self) -> String {
        let mut text = String::new();
        for (name, value) in [
            ("since", &self.since),
            ("until", &self.until),
            ("user", &self.user),
            ("target", &self.target),
            ("account", &self.account),
        ] {
            if let Some(value) = value {
                text.push_str(&format!("--{name} {} ", auditq_query::sql_quote(value)));
            }
        }
        text
    }

    fn filters(&self) -> anyhow::Result<Filters> {
        let now = chrono::Utc::now();
        let time = |text: &Option<String>, end_of_day: bool| {
            text.as_deref()
                .map(|t| auditq_query::filters::parse_time(t, now, end_of_day))
                .transpose()
                .map_err(|message| QueryError::User { message })
        };
        Ok(Filters {
            since: time(&self.since, false)?,
            until: time(&self.until, true)?,
            user: self.user.clone(),
            target: self.target.clone(),
            account: self.account.clone(),
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read log files and folders into the lake (format detected from content; re-reading adds
    /// no rows).
    Ingest {
        /// Files or folders, `s3://bucket/prefix`, `cwl://LOG_GROUP[/STREAM_PREFIX]`,
        /// `sqs://QUEUE` (a queue of S3 event notifications, drained), or `ssm-commands://REGION`
        /// (the scripts Run Command sent, which CloudTrail hides: SSM ListCommands, 30 days).
        #[arg(required = true)]
        sources: Vec<String>,
        /// Files read per lake commit.
        #[arg(long, default_value_t = Limits::default().batch_files)]
        batch_files: usize,
        #[command(flatten)]
        alerting: AlertingArgs,
    },
    /// Follow CloudWatch Logs groups and store new events as they arrive (Ctrl-C stops after
    /// the batch in hand is committed).
    Follow {
        /// `cwl://LOG_GROUP`, one or more.
        #[arg(required = true)]
        groups: Vec<String>,
        /// Poll every SECONDS instead of using StartLiveTail.
        #[arg(long, value_name = "SECONDS")]
        poll: Option<u64>,
        #[command(flatten)]
        alerting: AlertingArgs,
    },
    /// Write, test and backtest detection rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Subscribe to alerts (SNS filter policies), list and remove subscriptions.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Who accessed an instance, when, and from where (its sessions).
    Who {
        /// Instance or managed-node id.
        target: String,
    },
    /// Sessions: who, from where, on which instance, what kind, and whether it was recorded.
    Sessions,
    /// The commands of one session, in order.
    Commands {
        /// Session Manager session id.
        session_id: String,
    },
    /// Show a session as its user saw it, rendered from its transcript or stream.
    Replay {
        /// Session Manager session id.
        session_id: String,
        /// Print only the commands, with their times and OS user.
        #[arg(long)]
        commands: bool,
        /// Play at the pace it was typed (streams carry times; transcripts do not).
        #[arg(long)]
        real_time: bool,
        /// With --real-time: play this many times faster.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// With --real-time: the longest pause between lines, in seconds.
        #[arg(long, default_value_t = 3.0)]
        max_wait: f64,
    },
    /// Write the HTML evidence report of a period (self-contained; -o FILE, else stdout).
    Report {
        /// First day (or time) of the period: as --since.
        #[arg(long)]
        from: String,
        /// Last day of the period, included (or an exclusive time): as --until.
        #[arg(long)]
        to: String,
        /// Only the sections, alerts and findings evidencing this ISO/IEC 27001:2022 Annex A
        /// control (`A.8.2`, `A.8.15`, ...).
        #[arg(long, value_name = "CONTROL")]
        control: Option<String>,
        /// Read each recorded session's transcript or stream and add a player that replays it
        /// in the browser (the page then carries a small script; nothing is fetched).
        #[arg(long)]
        replays: bool,
    },
    /// Is the trail complete? Reconciles what should exist with what does over a period:
    /// sessions without their CloudTrail calls or recording, recordings cut short or with gaps
    /// or that arrived late, hours with no CloudTrail delivery, hosts whose logs went silent.
    /// Each finding has a severity; the statement behind each kind is printed with it.
    Coverage {
        /// First day (or time) of the period: as --since.
        #[arg(long)]
        from: String,
        /// Last day of the period, included (or an exclusive time): as --until.
        #[arg(long)]
        to: String,
        /// Session Manager's idle session timeout in the accounts, in minutes (its session
        /// preferences; 20 by default): a recording that stops or falls silent for longer while
        /// its session went on lost what followed.
        #[arg(long, value_name = "MINUTES", default_value_t = auditq_query::coverage::Settings::default().idle_timeout_minutes)]
        idle_timeout: i64,
        /// Raise each finding of low severity or more as an alert of rule `coverage.KIND`
        /// (recorded in `alerts`, once per gap however often it is checked) and publish the new
        /// ones here: `sns://TOPIC_ARN`, `stdout`, `file://PATH` (repeatable).
        #[arg(long, value_name = "SINK")]
        alerts: Vec<String>,
        /// Also validate CloudTrail's own digest files in this bucket (`s3://BUCKET[/PREFIX]`,
        /// holding `AWSLogs/`): every hour's digest, its signature and chain, every log file's
        /// SHA-256, files no digest lists, files not ingested.
        #[arg(long, value_name = "S3_URI")]
        cloudtrail: Option<String>,
        /// CloudTrail's public keys, as `aws cloudtrail list-public-keys --region HOME_REGION
        /// > keys.json` prints them; without them signatures are not checked (and it says so).
        #[arg(long, value_name = "FILE")]
        cloudtrail_keys: Option<PathBuf>,
    },
    /// Compact the lake: rewrite each day's small files into large ones clustered on user,
    /// target and time (Delta OPTIMIZE, Z-order), then delete files no recent version reads
    /// (VACUUM).
    Compact {
        /// Keep files that versions younger than this still read (time travel, running
        /// queries).
        #[arg(long, default_value_t = 168)]
        retention_hours: u64,
    },
    /// Look up what instances and the account are called now (EC2 DescribeTags of the Name and
    /// Environment tags, IAM ListAccountAliases) and add what changed to the `names` history.
    /// CloudTrail's CreateTags, DeleteTags, RunInstances and CreateAccountAlias keep it
    /// current between look-ups.
    Names {
        /// Regions whose instances to look up (repeatable) [default: the configured region].
        #[arg(long)]
        region: Vec<String>,
    },
    /// Check the lake against its signed digests: every commit, the chain of digests, and
    /// every data file's SHA-256. Says what was changed, removed, added or reordered; exits 1
    /// when anything was.
    Verify {
        /// An evidence bundle (`auditq evidence -o FILE`) to check offline, instead of the
        /// lake: its manifest, every member, the digests and the data files they name.
        bundle: Option<PathBuf>,
        /// A public key the digests may be signed with (base64); repeat it while a key is
        /// rotated [default: the configured signing key's; else the key in the first signed
        /// digest, which is then said].
        #[arg(long, env = "AUDITQ_PUBLIC_KEY", value_delimiter = ',')]
        public_key: Vec<String>,
        /// Check file sizes only, not their SHA-256 (reads no data files).
        #[arg(long)]
        quick: bool,
    },
    /// Write one file an auditor can take away: the report, the period's rows (the lake's
    /// own Parquet files), the signed digests that cover them and a signed manifest. `auditq
    /// verify FILE` checks it offline.
    Evidence {
        /// First day (or time) of the period: as --since.
        #[arg(long)]
        from: String,
        /// Last day of the period, included (or an exclusive time): as --until.
        #[arg(long)]
        to: String,
        /// The most sessions whose recordings the report's player carries (read from their
        /// transcripts and streams, oldest first); 0 for none.
        #[arg(long, default_value_t = 500)]
        replays: usize,
    },
    /// Print the public key that signs this machine's digests (to give to `verify
    /// --public-key` elsewhere, or to publish).
    Key,
    /// List the tables with their row counts.
    Tables,
    /// Show the columns of a table.
    Schema {
        /// Table name.
        table: String,
    },
}

const DEFAULT_DATA: &str = "auditq-data";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "auditq: {error}");
            for cause in error.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            if let Some(QueryError::User { .. }) = error.downcast_ref::<QueryError>() {
                let _ = write!(stderr, "\n{}", auditq_query::catalogue());
            }
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(cause.downcast_ref::<QueryError>(), Some(QueryError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run_async(cli));
    if result.is_err() {
        // A failed ingest can leave deltalake work running on the runtime's blocking threads: a
        // sibling table's snapshot load, abandoned when the first error stopped the rest. Shutting
        // the runtime down drops the tasks that work waits on, and the Delta kernel's executor
        // then panics ("TokioMultiThreadExecutor has crashed"). The process exits once the error
        // is printed, which ends those threads without a panic.
        std::mem::forget(runtime);
    }
    result
}

/// Where and how an answer is written.
#[derive(Debug)]
struct Output {
    format: OutputFormat,
    file: Option<PathBuf>,
    show_sql: bool,
    limits: QueryLimits,
    /// DataFusion options the user set (`DATAFUSION_*` variables).
    datafusion: Vec<(String, String)>,
    /// The terminal's width, when the table format is fitted to it (standard output is a
    /// terminal, no `-o`, no `--wide`).
    fit_to: Option<usize>,
}

impl Output {
    /// Standard output, or the file named by `-o`.
    fn writer(&self) -> anyhow::Result<Box<dyn Write>> {
        Ok(match &self.file {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => Box::new(std::io::stdout().lock()),
        })
    }
}

/// Answers a statement over the (filtered) lake.
async fn answer(
    lake: &Lake,
    explicit: bool,
    writing: &WriteSettings,
    filters: &Filters,
    sql: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let answered = answer_only(lake, explicit, writing, filters, sql, out).await;
    let (rows, outcome) = match &answered {
        Ok(rows) => (Some(*rows), "ok".to_string()),
        Err(e) => (None, format!("{e:#}")),
    };
    record_access(lake, "query", sql, rows, &outcome).await;
    answered.map(|_| ())
}

/// Records a look at the lake in its `access_log` table (under the lake's signed digests),
/// after the answer is out. It never fails what it records: a lake that cannot be written (read
/// only, or no lake at all yet) says so on standard error and goes on.
async fn record_access(lake: &Lake, action: &str, what: &str, rows: Option<u64>, outcome: &str) {
    // Never make a lake to record a look at nothing: a local lake must already hold a table.
    let location = lake.location();
    if !location.contains("://")
        && !auditq_model::Table::ALL.iter().any(|t| {
            std::path::Path::new(location)
                .join(t.name())
                .join("_delta_log")
                .is_dir()
        })
    {
        return;
    }
    let now = chrono::Utc::now();
    let os_user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(os_user_of_process);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let principal_arn = match lake.location().starts_with("s3://") {
        true => {
            let aws = AwsSettings::from_vars(|name| std::env::var(name).ok());
            aws.lookup().await.caller_arn().await.ok()
        }
        false => None,
    };
    let pid = std::process::id().to_string();
    let time = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let row = auditq_model::Access {
        event_id: auditq_model::event_id(
            "access",
            &[
                &time,
                os_user.as_deref().unwrap_or(""),
                host.as_deref().unwrap_or(""),
                &pid,
                action,
                what,
            ],
        ),
        time: now,
        date: auditq_model::day_of(&now),
        os_user,
        host,
        principal_arn,
        action: action.to_string(),
        what: what.to_string(),
        rows: rows.map(|r| r as i64),
        outcome: outcome.chars().take(2000).collect(),
        auditq: env!("CARGO_PKG_VERSION").to_string(),
    };
    if let Err(e) = lake.append(&[row]).await {
        eprintln!(
            "auditq: this {action} is not recorded in the access log: the lake cannot be written ({e})"
        );
    }
}

/// Records coverage's findings as alerts (those not recorded before) and publishes them, with
/// the outbox of the lake for what a sink cannot take now.
async fn raise_coverage_alerts(
    lake: &Lake,
    aws: &AwsSettings,
    ctx: &datafusion::prelude::SessionContext,
    coverage: &auditq_query::coverage::Coverage,
    sinks: &[String],
) -> anyhow::Result<()> {
    use auditq_rules::publish::{AlertOutbox, Publisher, Retry, Sink};
    let sns = match sinks.iter().any(|s| s.starts_with("sns://")) {
        true => Some(aws.clients().await.aws),
        false => None,
    };
    let sinks = sinks
        .iter()
        .map(|spec| Sink::parse(spec, sns.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let known = auditq_query::rows_as_json(
        &auditq_query::run_sql(
            ctx,
            "select alert_id from alerts where rule_id like 'coverage.%'",
        )
        .await?,
    )?;
    let known: std::collections::BTreeSet<String> = known
        .iter()
        .filter_map(|r| {
            r.get("alert_id")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .collect();
    let new: Vec<_> = auditq_query::coverage::notices(coverage, chrono::Utc::now())
        .into_iter()
        .filter(|n| !known.contains(&n.alert_id))
        .collect();
    if new.is_empty() {
        eprintln!("auditq: no new coverage alerts (each gap is raised once)");
        return Ok(());
    }
    let (store, root) = lake.object_store()?;
    let outbox = AlertOutbox::new(
        store,
        root.clone().join("_auditq").join("outbox"),
        format!("{}/_auditq/outbox", lake.location().trim_end_matches('/')),
    );
    let publisher = Publisher::new(sinks, Retry::default(), Some(outbox));
    let report = publisher.publish(&new).await?;
    let delivered: std::collections::BTreeSet<&String> = report.delivered.iter().collect();
    let rows: Vec<_> = new
        .iter()
        .map(|n| n.to_row(delivered.contains(&n.alert_id)))
        .collect();
    lake.append(&rows).await?;
    eprintln!(
        "auditq: {} new coverage alerts, {} delivered, {} kept in the outbox",
        new.len(),
        report.delivered.len(),
        report.kept.len()
    );
    Ok(())
}

/// The name of the user this process runs as, from `/proc/self/status` and `/etc/passwd`
/// (a service or a container sets no `USER`).
fn os_user_of_process() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or(format!("uid {uid}")))
}

/// Answers a statement; the rows written.
async fn answer_only(
    lake: &Lake,
    explicit: bool,
    writing: &WriteSettings,
    filters: &Filters,
    sql: &str,
    out: &Output,
) -> anyhow::Result<u64> {
    if out.show_sql {
        eprintln!("{sql};");
    }
    load_samples_if_first_run(lake, explicit, writing).await?;
    let started = std::time::Instant::now();
    let ctx = auditq_query::context_limited(lake, filters, &out.limits, &out.datafusion).await?;
    let plan = auditq_query::plan_sql(&ctx, sql).await?;
    let schema = std::sync::Arc::new(plan.schema().as_arrow().clone());
    if out.format != OutputFormat::Table {
        return stream_answer(&ctx, plan, schema, out).await;
    }
    // The table sizes its columns on every row: it is kept whole (at most --max-rows).
    let batches = auditq_query::collect_limited(&ctx, plan, &out.limits).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let elapsed = started.elapsed();
    let mut sink = out.writer()?;
    match out.fit_to {
        Some(width) if out.file.is_none() && rows > 0 => {
            auditq_query::fit::write_fitted(&batches, schema, width, Some(elapsed), &mut sink)?;
        }
        _ => auditq_query::write_batches(&batches, schema, out.format, &mut sink)?,
    }
    Ok(rows as u64)
}

/// Writes an answer as it arrives (CSV, JSON, NDJSON, Parquet). Into `-o FILE`, the answer goes
/// to a file beside it that takes its name only once the answer is whole: a refused or failed
/// answer leaves no file (and an existing one as it was).
async fn stream_answer(
    ctx: &datafusion::prelude::SessionContext,
    plan: datafusion::logical_expr::LogicalPlan,
    schema: arrow::datatypes::SchemaRef,
    out: &Output,
) -> anyhow::Result<u64> {
    if out.format == OutputFormat::Parquet && out.file.is_none() {
        anyhow::bail!("--format parquet writes a file: give -o FILE");
    }
    let partial = out.file.as_ref().map(|path| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
    });
    let sink: Box<dyn Write + Send> = match &partial {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| {
                format!(
                    "cannot create {}",
                    out.file.as_deref().unwrap_or(path).display()
                )
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let written = async {
        let Some(mut encoder) = auditq_query::Encoder::new(out.format, schema.clone(), sink)?
        else {
            return Err(auditq_query::QueryError::User {
                message: "the table format is written whole, not streamed".to_string(),
            });
        };
        let mut rows = 0u64;
        auditq_query::stream_limited(ctx, plan, &out.limits, |batch| {
            rows += batch.num_rows() as u64;
            encoder.write(&batch)
        })
        .await?;
        encoder.finish(schema)?;
        Ok::<_, auditq_query::QueryError>(rows)
    }
    .await;
    let rows = match (written, partial, &out.file) {
        (Ok(rows), Some(partial), Some(file)) => {
            std::fs::rename(&partial, file)
                .with_context(|| format!("cannot write {}", file.display()))?;
            rows
        }
        (Ok(rows), _, _) => rows,
        (Err(error), partial, _) => {
            if let Some(partial) = partial {
                let _ = std::fs::remove_file(partial);
            }
            return Err(error.into());
        }
    };
    Ok(rows)
}

/// `auditq tables` and the shell's `.tables`: the tables, their rows and what they hold.
async fn tables(
    lake: &Lake,
    explicit: bool,
    writing: &WriteSettings,
    filters: &Filters,
    limits: &QueryLimits,
    out: &Output,
) -> anyhow::Result<String> {
    load_samples_if_first_run(lake, explicit, writing).await?;
    let ctx = auditq_query::context_limited(lake, filters, limits, &out.datafusion).await?;
    Ok(auditq_query::describe_tables(&ctx).await?)
}

/// What the shell does after an entry.
enum Flow {
    Continue,
    Failed,
    Quit,
}

/// `auditq` without a statement: the interactive shell when standard input is a terminal, else
/// the statements (and dot commands) piped in, one after another; exit 1 if one failed.
async fn shell(
    lake: &Lake,
    explicit: bool,
    writing: &WriteSettings,
    filters: &Filters,
    out: Output,
) -> anyhow::Result<ExitCode> {
    use auditq_query::shell::{Completion, Entry, entries};
    use rustyline::error::ReadlineError;
    let mut out = out;
    let mut timer = false;
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        let (mut found, rest) = entries(&text);
        if !rest.trim().is_empty() {
            found.push(Entry::Sql(rest.trim().to_string()));
        }
        if found.is_empty() {
            anyhow::bail!(
                "give a SQL statement or a subcommand (see auditq --help), or pipe statements in"
            );
        }
        let mut failed = false;
        for entry in found {
            match run_entry(
                entry, lake, explicit, writing, filters, &mut out, &mut timer,
            )
            .await?
            {
                Flow::Continue => {}
                Flow::Failed => failed = true,
                Flow::Quit => break,
            }
        }
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }

    let history = history_file();
    let mut editor = rustyline::Editor::<Completion, rustyline::history::DefaultHistory>::new()?;
    editor.set_helper(Some(Completion::default()));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!(
        "auditq {}: statements end with ';'; .help lists the commands; .quit or Ctrl-D leaves",
        env!("CARGO_PKG_VERSION")
    );
    let mut pending = String::new();
    loop {
        let prompt = if pending.trim().is_empty() {
            "auditq> "
        } else {
            "   ...> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                pending.push_str(&line);
                pending.push('\n');
                let (found, rest) = entries(&pending);
                if found.is_empty() {
                    continue;
                }
                let entered = pending[..pending.len() - rest.len()].trim().to_string();
                let _ = editor.add_history_entry(entered);
                if let Some(path) = &history {
                    let _ = editor.save_history(path);
                }
                pending = rest;
                for entry in found {
                    if let Flow::Quit = run_entry(
                        entry, lake, explicit, writing, filters, &mut out, &mut timer,
                    )
                    .await?
                    {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            // Ctrl-C drops the statement being typed.
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the shell keeps its history: `$XDG_DATA_HOME/auditq/history`, else
/// `~/.local/share/auditq/history`.
fn history_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    let dir = base.join("auditq");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history"))
}

/// Runs one entry of the shell; a failed statement is reported and the shell goes on.
async fn run_entry(
    entry: auditq_query::shell::Entry,
    lake: &Lake,
    explicit: bool,
    writing: &WriteSettings,
    filters: &Filters,
    out: &mut Output,
    timer: &mut bool,
) -> anyhow::Result<Flow> {
    use auditq_query::shell::{DOT_COMMANDS, Entry};
    let failed = |error: anyhow::Error| {
        eprintln!("auditq: {error:#}");
        Ok(Flow::Failed)
    };
    match entry {
        Entry::Sql(sql) => {
            let started = std::time::Instant::now();
            if let Err(error) = answer(lake, explicit, writing, filters, &sql, out).await {
                return failed(error);
            }
            if *timer {
                eprintln!("time: {:.3} s", started.elapsed().as_secs_f64());
            }
        }
        Entry::Dot(name, argument) => match (name.as_str(), argument.as_deref()) {
            (".quit" | ".exit", _) => return Ok(Flow::Quit),
            (".help", _) => {
                for (command, about) in DOT_COMMANDS {
                    println!("{command:<9} {about}");
                }
            }
            (".tables", _) => {
                match tables(lake, explicit, writing, filters, &out.limits, out).await {
                    Ok(text) => print!("{text}"),
                    Err(error) => return failed(error),
                }
            }
            (".schema", Some(table)) => match auditq_query::describe_schema(table) {
                Ok(text) => print!("{text}"),
                Err(error) => return failed(error.into()),
            },
            (".format", Some(format)) => {
                match <OutputFormat as clap::ValueEnum>::from_str(format, true) {
                    Ok(OutputFormat::Parquet) | Err(_) => {
                        return failed(anyhow::anyhow!(
                            "unknown format {format:?}: table, csv, json or ndjson"
                        ));
                    }
                    Ok(format) => out.format = format,
                }
            }
            (".timer", Some("on")) => *timer = true,
            (".timer", Some("off")) => *timer = false,
            (".schema" | ".format" | ".timer", _) => {
                let usage = DOT_COMMANDS
                    .iter()
                    .find(|(command, _)| *command == name)
                    .map_or("", |(_, about)| about);
                return failed(anyhow::anyhow!("usage: {usage}"));
            }
            _ => return failed(anyhow::anyhow!("unknown command {name}: .help lists them")),
        },
    }
    Ok(Flow::Continue)
}

/// `auditq verify`'s report: per table what was checked, then every problem, one per line.
fn print_verification(
    verification: &digest::Verification,
    location: &str,
    bundle: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {location}",
        if bundle { "bundle" } else { "lake" }
    )?;
    match verification.public_keys.as_slice() {
        [] => writeln!(out, "key:  none (the digests are unsigned)")?,
        keys => writeln!(
            out,
            "key:  {} (from {})",
            keys.join(", "),
            verification.key_from
        )?,
    }
    for table in &verification.tables {
        if bundle {
            writeln!(
                out,
                "  {:<11} {:>5} digests ({} signed), {:>5} data files of the period ({} as signed)",
                table.table, table.digests, table.signed, table.files, table.hashed
            )?;
        } else {
            writeln!(
                out,
                "  {:<11} {:>5} digests ({} signed), {:>5} commits, {:>5} files ({} hashed)",
                table.table, table.digests, table.signed, table.commits, table.files, table.hashed
            )?;
        }
    }
    if !verification.unreferenced.is_empty() {
        writeln!(
            out,
            "{} files no commit references (a write that failed before its commit leaves them; \
             no reader sees them; VACUUM deletes them):",
            verification.unreferenced.len()
        )?;
        for path in &verification.unreferenced {
            writeln!(out, "  {path}")?;
        }
    }
    if verification.problems.is_empty() && bundle {
        writeln!(
            out,
            "OK: the manifest is signed, every member is as it lists, each chain of digests is whole, and every data file of the period is there as signed."
        )?;
    } else if verification.problems.is_empty() {
        writeln!(
            out,
            "OK: every commit has a signed digest, each chain is whole, and every file is as signed."
        )?;
    } else {
        writeln!(out, "{} problems:", verification.problems.len())?;
        for problem in &verification.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    Ok(())
}

async fn run_async(cli: Cli) -> anyhow::Result<ExitCode> {
    let explicit = cli.data.is_some();
    let filters = cli.narrow.filters()?;
    let out = Output {
        format: cli.format,
        file: cli.output.clone(),
        show_sql: cli.show_sql,
        limits: QueryLimits {
            max_rows: cli.max_rows,
            max_memory: cli.max_memory.saturating_mul(1 << 20),
            timeout: std::time::Duration::from_secs(cli.timeout.max(1)),
        },
        datafusion: auditq_query::datafusion_settings(|name| std::env::var(name).ok()),
        fit_to: (cli.output.is_none() && !cli.wide && std::io::stdout().is_terminal()).then(|| {
            console::Term::stdout()
                .size_checked()
                .map_or(80, |(_, columns)| usize::from(columns))
        }),
    };
    let var = |name: &str| std::env::var(name).ok();
    let aws = AwsSettings::from_vars(var);
    // Verifying reads the key if there is one; it never makes one.
    let verifying = matches!(cli.command, Some(Command::Verify { .. }));
    let key_sources = KeySources {
        file: cli.signing_key.clone(),
        inline: var(digest::KEY_VARIABLE),
        default_file: digest::default_key_file(var),
    };
    let signing = load_signing_key(&key_sources, !verifying)?;
    let public_key = signing
        .as_ref()
        .map(|(key, source)| (key.public_key(), format!("the signing key, {source}")));
    let key_line = signing.as_ref().map(|(key, source)| {
        format!(
            "public key: {}\nkey id:     {}\nfrom:       {source}\n",
            key.public_key(),
            key.key_id()
        )
    });
    let signing_key = signing.map(|(key, _)| std::sync::Arc::new(key));
    let lake = Lake::new(cli.data.unwrap_or_else(|| DEFAULT_DATA.to_string()))
        .with_storage_options(aws.storage_options())
        .with_signing_key(signing_key.clone());
    let writing = WriteSettings {
        unlogged_after: cli.unlogged_after,
        redact: cli.redact.clone(),
        redaction_key: var("AUDITQ_REDACTION_KEY").map(String::into_bytes),
    };
    match cli.command {
        Some(Command::Verify {
            bundle: Some(bundle),
            public_key: given,
            ..
        }) => {
            let verification = auditq_query::evidence::verify(&bundle, &given)?;
            let mut stdout = std::io::stdout().lock();
            match cli.format {
                OutputFormat::Json | OutputFormat::Ndjson => {
                    serde_json::to_writer_pretty(&mut stdout, &verification)?;
                    writeln!(stdout)?;
                }
                _ => print_verification(
                    &verification,
                    &bundle.display().to_string(),
                    true,
                    &mut stdout,
                )?,
            }
            if !verification.problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Some(Command::Verify {
            bundle: None,
            public_key: given,
            quick,
        }) => {
            let (trusted, from) = match (given.is_empty(), public_key) {
                (false, _) => (given, "--public-key".to_string()),
                (true, Some((key, from))) => (vec![key], from),
                (true, None) => (Vec::new(), String::new()),
            };
            let verification = digest::verify(&lake, &trusted, &from, !quick).await?;
            let mut stdout = std::io::stdout().lock();
            match cli.format {
                OutputFormat::Json | OutputFormat::Ndjson => {
                    serde_json::to_writer_pretty(&mut stdout, &verification)?;
                    writeln!(stdout)?;
                }
                _ => print_verification(&verification, lake.location(), false, &mut stdout)?,
            }
            if !verification.problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Some(Command::Key) => {
            let Some(line) = key_line else {
                anyhow::bail!(
                    "no signing key: set --signing-key, ${}, or HOME (for ~/.config/auditq/signing.key)",
                    digest::KEY_VARIABLE
                );
            };
            std::io::stdout().lock().write_all(line.as_bytes())?;
        }
        Some(Command::Ingest {
            sources,
            batch_files,
            alerting,
        }) => {
            let limits = Limits {
                batch_files: batch_files.max(1),
                ..Limits::default()
            };
            let sns = match alerting.needs_sns() {
                true => Some(aws.clients().await.aws),
                false => None,
            };
            let pipeline = writing.pipeline(&lake, alerting.rules(sns)?).await?;
            let summary = ingest_sources(&pipeline, &aws, &sources, &limits).await?;
            print_summary(&summary, &mut std::io::stdout().lock())?;
        }
        Some(Command::Follow {
            groups,
            poll,
            alerting,
        }) => {
            let sns = match alerting.needs_sns() {
                true => Some(aws.clients().await.aws),
                false => None,
            };
            let pipeline = writing.pipeline(&lake, alerting.rules(sns)?).await?;
            let mode = match poll {
                Some(seconds) => FollowMode::Poll(std::time::Duration::from_secs(seconds.max(1))),
                None => FollowMode::LiveTail,
            };
            follow(&pipeline, &aws, &groups, mode).await?;
        }
        Some(Command::Names { region }) => {
            let lookup = aws.lookup().await;
            let regions = match (region.is_empty(), lookup.region()) {
                (false, _) => region,
                (true, Some(configured)) => vec![configured],
                (true, None) => anyhow::bail!("give --region, or set AWS_REGION"),
            };
            let names = lookup.names(&regions, chrono::Utc::now()).await?;
            let looked_up = names.len();
            let pipeline = writing.pipeline(&lake, None).await?;
            let summary = pipeline.store_names(names).await?;
            let changed = summary
                .tables
                .get(&auditq_model::Table::Names)
                .map_or(0, |c| c.added);
            println!(
                "{looked_up} names looked up in {}; {changed} new or changed",
                regions.join(", ")
            );
        }
        Some(Command::Rules(command)) => {
            if !rules_cli::rules(command, &lake, &writing).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Some(Command::Alerts(command)) => {
            rules_cli::alerts(command, &aws.clients().await.aws).await?;
        }
        Some(Command::Schema { table }) => {
            let text = auditq_query::describe_schema(&table)?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        Some(Command::Tables) => {
            let text = tables(
                &lake,
                explicit,
                &writing,
                &filters,
                &QueryLimits::default(),
                &out,
            )
            .await?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        Some(Command::Who { target }) => {
            answer(
                &lake,
                explicit,
                &writing,
                &filters,
                &questions::who(&target),
                &out,
            )
            .await?;
        }
        Some(Command::Sessions) => {
            answer(
                &lake,
                explicit,
                &writing,
                &filters,
                &questions::sessions(),
                &out,
            )
            .await?;
        }
        Some(Command::Commands { session_id }) => {
            answer(
                &lake,
                explicit,
                &writing,
                &filters,
                &questions::commands(&session_id),
                &out,
            )
            .await?;
        }
        Some(Command::Replay {
            session_id,
            commands,
            real_time,
            speed,
            max_wait,
        }) => {
            load_samples_if_first_run(&lake, explicit, &writing).await?;
            let ctx = auditq_query::context(&lake).await?;
            let replay = match auditq_query::replay::load(&ctx, &lake, &aws, &session_id).await {
                Ok(replay) => replay,
                Err(e) => {
                    record_access(&lake, "replay", &session_id, None, &format!("{e:#}")).await;
                    return Err(e);
                }
            };
            record_access(
                &lake,
                "replay",
                &session_id,
                Some(replay.lines.len() as u64),
                "ok",
            )
            .await;
            eprintln!(
                "auditq: session {session_id} from {}{}",
                replay.source,
                if replay.timed {
                    ""
                } else {
                    " (a transcript: no per-line times)"
                }
            );
            let mut sink = out.writer()?;
            if commands {
                auditq_query::replay::write_commands(&replay, &mut sink)?;
            } else {
                let pace = auditq_query::replay::Pace {
                    speed: real_time.then_some(speed),
                    max_wait: std::time::Duration::from_secs_f64(max_wait.max(0.0)),
                };
                auditq_query::replay::play(&replay, pace, &mut sink).await?;
            }
        }
        Some(Command::Compact { retention_hours }) => {
            let retention = std::time::Duration::from_secs(retention_hours * 3600);
            let mut stdout = std::io::stdout().lock();
            for done in lake.compact(retention).await? {
                writeln!(
                    stdout,
                    "  {:<11} {:>5} files rewritten into {:>3}, {:>5} unread files deleted",
                    done.table, done.files_removed, done.files_added, done.files_vacuumed
                )?;
            }
        }
        Some(Command::Coverage {
            from,
            to,
            idle_timeout,
            alerts,
            cloudtrail,
            cloudtrail_keys,
        }) => {
            load_samples_if_first_run(&lake, explicit, &writing).await?;
            let period = period_of(&from, &to)?;
            let ctx = auditq_query::context_limited(
                &lake,
                &filters,
                &QueryLimits::default(),
                &out.datafusion,
            )
            .await?;
            let settings = auditq_query::coverage::Settings {
                idle_timeout_minutes: idle_timeout.max(1),
                ..Default::default()
            };
            let mut coverage = auditq_query::coverage::run(&ctx, &period, &settings).await?;
            if let Some(trail) = &cloudtrail {
                let location = auditq_ingest::aws::S3Location::parse(trail).ok_or_else(|| {
                    anyhow::anyhow!("--cloudtrail takes s3://BUCKET[/PREFIX], not {trail:?}")
                })?;
                let keys = match &cloudtrail_keys {
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        auditq_ingest::trail_digest::public_keys(&text)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                    }
                    None => {
                        eprintln!(
                            "auditq: no --cloudtrail-keys: CloudTrail's signatures are not checked (aws cloudtrail list-public-keys > keys.json gives them)"
                        );
                        Vec::new()
                    }
                };
                let ingested = auditq_query::rows_as_json(
                    &auditq_query::run_sql(
                        &ctx,
                        "select distinct source from positions where source like 's3://%'",
                    )
                    .await?,
                )?
                .iter()
                .filter_map(|r| r.get("source").and_then(|v| v.as_str()).map(str::to_string))
                .collect();
                let s3 = aws.clients().await.s3;
                let found = auditq_ingest::trail_digest::check(
                    &s3,
                    &location,
                    &keys,
                    &ingested,
                    period.from,
                    period.to,
                )
                .await?;
                auditq_query::coverage::add_trail(&mut coverage, trail, &found);
            }
            if !alerts.is_empty() {
                raise_coverage_alerts(&lake, &aws, &ctx, &coverage, &alerts).await?;
            }
            record_access(
                &lake,
                "coverage",
                &format!("{} to {}", coverage.from, coverage.to),
                Some(coverage.findings.len() as u64),
                "ok",
            )
            .await;
            let mut sink = out.writer()?;
            match cli.format {
                OutputFormat::Json | OutputFormat::Ndjson => {
                    serde_json::to_writer_pretty(&mut sink, &coverage)?;
                    writeln!(sink)?;
                }
                _ => auditq_query::coverage::write_text(&coverage, &mut sink)?,
            }
            sink.flush()?;
        }
        Some(Command::Evidence { from, to, replays }) => {
            let Some(file) = out.file.clone() else {
                anyhow::bail!(
                    "auditq evidence writes one file: give -o FILE (for example -o evidence-{from}.tar)"
                );
            };
            if !cli.narrow.options().trim().is_empty() {
                anyhow::bail!(
                    "a bundle holds the whole lake's rows of the period, as the digests sign them: it takes no --user, --target or --account"
                );
            }
            load_samples_if_first_run(&lake, explicit, &writing).await?;
            let period = period_of(&from, &to)?;
            let now = chrono::Utc::now();
            let (ctx, coverage) = covered(&lake, &filters, &out, &period).await?;
            let recordings =
                auditq_query::replay::recordings(&ctx, &lake, &aws, &period, replays).await?;
            let extras = auditq_query::report::Extras {
                coverage: Some(&coverage),
                recordings,
                access_sql: Some(auditq_query::report::access_sql(&period)),
                ..Default::default()
            };
            let report_html =
                auditq_query::report::build(&ctx, &period, lake.location(), "", now, &extras)
                    .await?;
            let contents = auditq_query::evidence::Contents {
                report_html,
                coverage_json: serde_json::to_string_pretty(&coverage)?,
            };
            let written = auditq_query::evidence::write(
                &lake,
                &period,
                signing_key.as_deref(),
                contents,
                &file,
                now,
            )
            .await?;
            let files: usize = written.manifest.tables.iter().map(|t| t.files).sum();
            record_access(
                &lake,
                "evidence",
                &format!(
                    "{} to {} -> {}",
                    written.manifest.from,
                    written.manifest.to,
                    file.display()
                ),
                Some(files as u64),
                "ok",
            )
            .await;
            eprintln!(
                "auditq: wrote {} ({} bytes: {files} data files of {} bytes, {} digests, the report and coverage; key id {})",
                file.display(),
                written.bytes,
                written.data_bytes,
                written
                    .manifest
                    .tables
                    .iter()
                    .map(|t| t.digests)
                    .sum::<usize>(),
                if written.manifest.key_ids.is_empty() {
                    "none: unsigned".to_string()
                } else {
                    written.manifest.key_ids.join(", ")
                }
            );
            eprintln!(
                "auditq: check it anywhere with: auditq verify {} --public-key KEY",
                file.display()
            );
        }
        Some(Command::Report {
            from,
            to,
            control,
            replays,
        }) => {
            load_samples_if_first_run(&lake, explicit, &writing).await?;
            let now = chrono::Utc::now();
            let period = period_of(&from, &to)?;
            let (ctx, coverage) = covered(&lake, &filters, &out, &period).await?;
            let recordings = match replays {
                true => {
                    auditq_query::replay::recordings(&ctx, &lake, &aws, &period, usize::MAX).await?
                }
                false => Default::default(),
            };
            let extras = auditq_query::report::Extras {
                coverage: Some(&coverage),
                control: control.map(|c| auditq_query::report::control_name(&c)),
                recordings,
                access_sql: Some(auditq_query::report::access_sql(&period)),
            };
            let html = auditq_query::report::build(
                &ctx,
                &period,
                lake.location(),
                &cli.narrow.options(),
                now,
                &extras,
            )
            .await?;
            out.writer()?.write_all(html.as_bytes())?;
            record_access(
                &lake,
                "report",
                &format!(
                    "{} to {}{}",
                    coverage.from,
                    coverage.to,
                    extras
                        .control
                        .as_deref()
                        .map(|c| format!(", control {c}"))
                        .unwrap_or_default()
                ),
                None,
                "ok",
            )
            .await;
            if let Some(path) = &out.file {
                eprintln!("auditq: wrote {} ({} bytes)", path.display(), html.len());
            }
        }
        None => {
            let Some(sql) = cli.sql else {
                return shell(&lake, explicit, &writing, &filters, out).await;
            };
            let out = Output {
                show_sql: false,
                ..out
            };
            answer(&lake, explicit, &writing, &filters, &sql, &out).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The query context of a report or bundle, and what coverage finds in its period.
async fn covered(
    lake: &Lake,
    filters: &Filters,
    out: &Output,
    period: &auditq_query::report::Period,
) -> anyhow::Result<(
    datafusion::prelude::SessionContext,
    auditq_query::coverage::Coverage,
)> {
    let ctx =
        auditq_query::context_limited(lake, filters, &QueryLimits::default(), &out.datafusion)
            .await?;
    let coverage =
        auditq_query::coverage::run(&ctx, period, &auditq_query::coverage::Settings::default())
            .await?;
    Ok((ctx, coverage))
}

/// The period `--from` and `--to` name: days (the last included) or times.
fn period_of(from: &str, to: &str) -> anyhow::Result<auditq_query::report::Period> {
    let now = chrono::Utc::now();
    let time = |text: &str, end_of_day| {
        auditq_query::filters::parse_time(text, now, end_of_day)
            .map_err(|message| QueryError::User { message })
    };
    let period = auditq_query::report::Period {
        from: time(from, false)?,
        to: time(to, true)?,
    };
    if period.to <= period.from {
        anyhow::bail!("--to must be after --from");
    }
    Ok(period)
}

/// The bundled sample logs: `./sample-logs` if present, else the copy in the source tree.
fn sample_logs() -> Option<PathBuf> {
    let local = PathBuf::from("sample-logs");
    if local.is_dir() {
        return Some(local);
    }
    let bundled = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs"));
    bundled.is_dir().then_some(bundled)
}

async fn load_samples_if_first_run(
    lake: &Lake,
    explicit: bool,
    writing: &WriteSettings,
) -> anyhow::Result<()> {
    if explicit || !lake.is_empty().await? {
        return Ok(());
    }
    let Some(samples) = sample_logs() else {
        return Ok(());
    };
    eprintln!(
        "auditq: {} is empty; ingesting the bundled sample logs from {} first, with the default rules (alerts recorded, not published; use --data or AUDITQ_DATA for your own lake)",
        lake.location(),
        samples.display()
    );
    let rules = AlertingArgs {
        rules: Some("default".to_string()),
        alerts: Vec::new(),
    };
    let pipeline = writing.pipeline(lake, rules.rules(None)?).await?;
    let summary = ingest(&pipeline, &[samples], &Limits::default()).await?;
    print_summary(&summary, &mut std::io::stderr().lock())?;
    Ok(())
}

/// What the commands that write (ingest, follow, the first run's samples) build their pipeline
/// from: flags and the environment, read here.
#[derive(Debug, Clone)]
pub(crate) struct WriteSettings {
    unlogged_after: u64,
    redact: Vec<String>,
    redaction_key: Option<Vec<u8>>,
}

impl WriteSettings {
    /// The pipeline over `lake`, with `rules` and their sinks when given; what the outbox kept
    /// from earlier runs is delivered first.
    pub(crate) async fn pipeline(
        &self,
        lake: &Lake,
        rules: Option<(
            std::sync::Arc<auditq_rules::Engine>,
            Vec<auditq_rules::Sink>,
        )>,
    ) -> anyhow::Result<Pipeline> {
        let mut builder = PipelineBuilder::new(lake.clone())
            .unlogged_grace(chrono::Duration::minutes(
                i64::try_from(self.unlogged_after).unwrap_or(i64::MAX / 60_000),
            ))
            .redaction_key(self.redaction_key.clone())
            .redaction_patterns(self.redact.clone());
        if let Some((engine, sinks)) = rules {
            builder = builder.rules(engine, sinks);
        }
        let pipeline = builder.build().await?;
        let (delivered, still) = pipeline.flush_outbox().await?;
        if delivered > 0 || still > 0 {
            eprintln!(
                "auditq: outbox: {delivered} alerts delivered from earlier runs, {still} still kept"
            );
        }
        Ok(pipeline)
    }
}

async fn follow(
    pipeline: &Pipeline,
    aws: &AwsSettings,
    groups: &[String],
    mode: FollowMode,
) -> anyhow::Result<()> {
    let cwl = aws.clients().await.cwl;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("auditq: stopping after the batch in hand");
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let mut followers = Vec::new();
    for group in groups {
        let (pipeline, cwl, stop, group) =
            (pipeline.clone(), cwl.clone(), stop.clone(), group.clone());
        followers.push(tokio::spawn(async move {
            let report = |summary: &IngestSummary| {
                let added: usize = summary.tables.values().map(|c| c.added).sum();
                if added > 0 {
                    let _ = print_summary(summary, &mut std::io::stdout().lock());
                }
            };
            auditq_ingest::aws::follow_cwl(&pipeline, &cwl, &group, mode, &stop, &report)
                .await
                .with_context(|| format!("following {group}"))
        }));
    }
    for follower in followers {
        follower.await.context("a follower panicked")??;
    }
    Ok(())
}

async fn ingest_sources(
    pipeline: &Pipeline,
    aws: &AwsSettings,
    sources: &[String],
    limits: &Limits,
) -> anyhow::Result<IngestSummary> {
    let mut summary = IngestSummary::default();
    let local: Vec<PathBuf> = sources
        .iter()
        .filter(|s| !s.contains("://"))
        .map(PathBuf::from)
        .collect();
    if !local.is_empty() {
        summary.add(ingest(pipeline, &local, limits).await?);
    }
    let remote: Vec<&String> = sources.iter().filter(|s| s.contains("://")).collect();
    if remote.is_empty() {
        return Ok(summary);
    }
    let AwsClients {
        s3,
        cwl,
        aws: calls,
    } = aws.clients().await;
    for uri in remote {
        let bar = progress_bar();
        let progress = |p: Progress<'_>| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.current.to_string());
        };
        let part = if let Some(location) = S3Location::parse(uri) {
            auditq_ingest::aws::ingest_s3(pipeline, &s3, &location, limits, &progress).await
        } else if uri.starts_with("cwl://") {
            auditq_ingest::aws::ingest_cwl(pipeline, &cwl, uri, &progress).await
        } else if let Some(queue) = uri.strip_prefix("sqs://") {
            let queue_url = auditq_ingest::aws::queue_url(&calls, queue).await?;
            auditq_ingest::aws::ingest_sqs(pipeline, &s3, &calls, &queue_url, limits).await
        } else if let Some(region) = uri.strip_prefix("ssm-commands://") {
            let lookup = aws.lookup().await;
            let region = match (region.trim_matches('/'), lookup.region()) {
                ("", Some(configured)) => configured,
                ("", None) => anyhow::bail!("{uri}: name the region (ssm-commands://eu-west-1)"),
                (region, _) => region.to_string(),
            };
            auditq_ingest::aws::ingest_run_commands(pipeline, &lookup, &region).await
        } else {
            anyhow::bail!(
                "{uri}: not a path, s3://bucket/prefix, cwl://LOG_GROUP, sqs://QUEUE or ssm-commands://REGION"
            );
        };
        bar.finish_and_clear();
        summary.add(part.with_context(|| {
            format!("ingest of {uri} into {} failed", pipeline.lake().location())
        })?);
    }
    Ok(summary)
}

/// A progress bar on stderr when it is a terminal (hidden otherwise, and in tests).
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::hidden();
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    bar
}

async fn ingest(
    pipeline: &Pipeline,
    paths: &[PathBuf],
    limits: &Limits,
) -> anyhow::Result<IngestSummary> {
    let bar = progress_bar();
    let progress = |p: Progress<'_>| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(p.current.to_string());
    };
    let summary = auditq_ingest::ingest_paths(pipeline, paths, limits, &progress)
        .await
        .with_context(|| format!("ingest into {} failed", pipeline.lake().location()))?;
    bar.finish_and_clear();
    Ok(summary)
}

fn print_summary(summary: &IngestSummary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "read {} sources ({} skipped: already ingested, or not log files)",
        summary.objects, summary.skipped
    )?;
    for (table, count) in &summary.tables {
        write!(
            out,
            "  {:<11} {:>6} read {:>6} added",
            table.name(),
            count.read,
            count.added
        )?;
        if count.updated > 0 {
            write!(out, " {:>6} updated", count.updated)?;
        }
        writeln!(out)?;
    }
    if summary.redactions > 0 {
        writeln!(
            out,
            "  redacted {} secrets (passwords, keys, tokens) before storing",
            summary.redactions
        )?;
    }
    let alerts = &summary.alerts;
    if alerts.raised > 0 {
        writeln!(
            out,
            "  alerts: {} raised, {} new delivered, {} kept in the outbox",
            alerts.raised, alerts.delivered, alerts.kept
        )?;
    }
    if summary.rejected() > 0 {
        writeln!(
            out,
            "  rejected {} records (see the rejects table):",
            summary.rejected()
        )?;
        for (kind, n) in &summary.reject_reasons {
            match summary.reject_examples.get(kind).filter(|e| *e != kind) {
                Some(example) => writeln!(out, "    {n:>6}  {kind}, e.g. {example}")?,
                None => writeln!(out, "    {n:>6}  {kind}")?,
            }
        }
    }
    Ok(())
}
