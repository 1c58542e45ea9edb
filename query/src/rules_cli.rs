//! `auditq rules ...` and `auditq alerts ...`: write, test, backtest rules; manage SNS
//! subscriptions; and the `--rules/--alerts` options of `ingest` and `follow`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use auditq_ingest::Lake;
use auditq_ingest::lake::Filter;
use auditq_model::{Command as CommandRow, Session, Table, TrailEvent};
use auditq_rules::notice::filter_policy;
use auditq_rules::pack::run_cases;
use auditq_rules::{Detector, Engine, EventView, FieldsEvent, RuleState, Severity, Sink};
use clap::{Args, Subcommand};

/// `--rules` and `--alerts` of `ingest` and `follow`.
#[derive(Debug, Args)]
pub struct AlertingArgs {
    /// Rules to evaluate on every event: `default` (the built-in pack), a YAML file, or a folder.
    #[arg(long, value_name = "default|FILE|DIR")]
    pub rules: Option<String>,
    /// Where alerts go: `sns://TOPIC_ARN`, `stdout`, `file://PATH` (repeatable); without
    /// `--rules`, the default pack raises them. Alerts that cannot be delivered are kept in the
    /// outbox beside the lake and delivered on the next run.
    #[arg(long, value_name = "SINK")]
    pub alerts: Vec<String>,
}

impl AlertingArgs {
    /// Whether an SNS client is needed.
    pub fn needs_sns(&self) -> bool {
        self.alerts.iter().any(|a| a.starts_with("sns://"))
    }

    /// The rule source: `--rules`, or the default pack when only `--alerts` is given (said on
    /// standard error, as the user named where alerts go but not which rules raise them).
    pub fn source(&self) -> Option<&str> {
        match (&self.rules, self.alerts.is_empty()) {
            (Some(rules), _) => Some(rules),
            (None, false) => {
                eprintln!(
                    "auditq: --alerts without --rules: evaluating the default rule pack \
                     (rules/packs/default; --rules FILE|DIR to choose)"
                );
                Some("default")
            }
            (None, true) => None,
        }
    }

    /// The compiled rules and their sinks, when `--rules` or `--alerts` is given.
    pub fn rules(
        &self,
        sns: Option<auditq_aws::Aws>,
    ) -> anyhow::Result<Option<(Arc<Engine>, Vec<Sink>)>> {
        let Some(rules) = self.source() else {
            return Ok(None);
        };
        let engine = Arc::new(compile(rules)?);
        let sinks = self
            .alerts
            .iter()
            .map(|spec| Sink::parse(spec, sns.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--alerts {e}"))?;
        Ok(Some((engine, sinks)))
    }
}

/// `auditq rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate rule files and run the cases they carry; every problem is reported with its
    /// file, line and rule id.
    Check {
        /// `default`, files or folders.
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// Show which rules match one event, and why.
    Test {
        /// `default`, a file or a folder.
        rules: String,
        /// A command line (an event of the `commands` table).
        #[arg(long, conflicts_with = "event")]
        cmd: Option<String>,
        /// An event as a JSON object of column values.
        #[arg(long)]
        event: Option<String>,
        /// The table of `--event` [default: cloudtrail if it has event_name, else commands].
        #[arg(long)]
        table: Option<String>,
    },
    /// Run rules over logs or the lake without publishing: how many alerts would they raise?
    Scan {
        /// `default`, a file or a folder.
        rules: String,
        /// Log files or folders to read (into a temporary lake) instead of the lake.
        #[arg(long, value_name = "PATH")]
        over: Vec<PathBuf>,
        /// Only events at or after this time: 30m, 12h, 7d, 2w (back from now), a date or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// Print every alert, not just the counts.
        #[arg(long)]
        list: bool,
    },
}

/// `auditq alerts ...`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Subscribe an endpoint to the alert topic, receiving exactly the alerts selected.
    Subscribe {
        /// The alert topic.
        #[arg(long)]
        topic: String,
        /// Deliver by email.
        #[arg(long, group = "endpoint")]
        email: Option<String>,
        /// Deliver to an SQS queue (its ARN).
        #[arg(long, group = "endpoint")]
        sqs: Option<String>,
        /// Deliver to an HTTPS endpoint.
        #[arg(long, group = "endpoint")]
        https: Option<String>,
        /// Deliver to a Lambda function (its ARN).
        #[arg(long, group = "endpoint")]
        lambda: Option<String>,
        /// Only alerts at least this severe (info, low, medium, high, critical).
        #[arg(long)]
        min_severity: Option<String>,
        /// Only these rules: an id, `prefix.*` or `*.suffix` (repeatable).
        #[arg(long)]
        rule: Vec<String>,
        /// Only alerts from these accounts (repeatable).
        #[arg(long)]
        account: Vec<String>,
        /// Only alerts on instances whose `Environment` tag was this then (repeatable).
        #[arg(long)]
        environment: Vec<String>,
    },
    /// List the topic's subscriptions and their filters.
    Subscriptions {
        /// The alert topic.
        #[arg(long)]
        topic: String,
    },
    /// Remove a subscription.
    Unsubscribe {
        /// The subscription ARN (from `auditq alerts subscriptions`).
        subscription: String,
    },
}

/// Compiles a rule source; Sigma rules that cannot be honoured are left out, and said so.
fn compile(source: &str) -> anyhow::Result<Engine> {
    let engine = auditq_rules::compile_source(source)?;
    if !engine.refused().is_empty() {
        eprintln!(
            "auditq: {} Sigma rule(s) of {source} refused (`auditq rules check {source}` says why); \
             {} rules loaded",
            engine.refused().len(),
            engine.rules().len()
        );
    }
    Ok(engine)
}

/// Runs `auditq rules ...`; returns whether everything passed.
pub async fn rules(
    command: RulesCommand,
    lake: &Lake,
    writing: &crate::WriteSettings,
) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match command {
        RulesCommand::Check { sources } => {
            let mut ok = true;
            for source in sources {
                match compile(&source) {
                    Err(e) => {
                        ok = false;
                        writeln!(out, "{source}: {e}")?;
                    }
                    Ok(engine) => {
                        let engine = Arc::new(engine);
                        let (run, failures) = run_cases(&engine);
                        for failure in &failures {
                            writeln!(out, "{failure}")?;
                        }
                        ok &= failures.is_empty() && engine.refused().is_empty();
                        writeln!(
                            out,
                            "{source}: {} rules, {} patterns, {run} cases, {} failed",
                            engine.rules().len(),
                            engine.pattern_count(),
                            failures.len()
                        )?;
                        sigma_report(&mut out, &engine)?;
                    }
                }
            }
            Ok(ok)
        }
        RulesCommand::Test {
            rules,
            cmd,
            event,
            table,
        } => {
            let engine = compile(&rules)?;
            let event = match (cmd, event) {
                (Some(cmd), _) => FieldsEvent {
                    table: Table::Commands,
                    fields: BTreeMap::from([("cmd".to_string(), cmd)]),
                },
                (None, Some(json)) => json_event(&json, table.as_deref())?,
                (None, None) => bail!("give --cmd '...' or --event JSON"),
            };
            let mut scratch = engine.scratch();
            let matched = engine.matching(&event, &mut scratch);
            for rule in engine.rules().iter().filter(|r| r.table == event.table) {
                let hit = matched.iter().any(|m| m.id == rule.id);
                if !hit && !engine.explain(rule, &event).iter().any(|e| e.hit) {
                    continue;
                }
                let verdict = if hit { "MATCH" } else { "no match" };
                writeln!(
                    out,
                    "{verdict:<8} {} [{}] {}",
                    rule.id, rule.severity, rule.title
                )?;
                for test in engine.explain(rule, &event) {
                    let mark = if test.hit { "yes" } else { "no " };
                    writeln!(out, "    {mark} {} =~ /{}/", test.field, test.pattern)?;
                }
            }
            writeln!(
                out,
                "{} of {} {} rules match",
                matched.len(),
                engine
                    .rules()
                    .iter()
                    .filter(|r| r.table == event.table)
                    .count(),
                event.table
            )?;
            Ok(true)
        }
        RulesCommand::Scan {
            rules,
            over,
            since,
            list,
        } => {
            let engine = Arc::new(compile(&rules)?);
            let scratch_dir;
            let source = if over.is_empty() {
                lake.clone()
            } else {
                scratch_dir = tempfile::tempdir().context("cannot make a temporary lake")?;
                let temporary = Lake::new(scratch_dir.path().display().to_string());
                let pipeline = writing.pipeline(&temporary, None).await?;
                auditq_ingest::ingest_paths(
                    &pipeline,
                    &over,
                    &auditq_ingest::Limits::default(),
                    &|_| {},
                )
                .await?;
                temporary
            };
            let since = since
                .as_deref()
                .map(|t| auditq_query::filters::parse_time(t, chrono::Utc::now(), false))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--since {e}"))?;
            let since_filter = |column: &'static str| match since {
                Some(t) => {
                    Filter::all().between(column, t, chrono::DateTime::<chrono::Utc>::MAX_UTC)
                }
                None => Filter::all(),
            };
            let commands: Vec<CommandRow> = source.rows(since_filter("time")).await?;
            let trail: Vec<TrailEvent> = source.rows(since_filter("time")).await?;
            let sessions: Vec<Session> = source.rows(since_filter("started_at")).await?;
            let host: Vec<auditq_model::HostEvent> = source.rows(since_filter("time")).await?;
            let mut events: Vec<&dyn EventView> = Vec::new();
            // As live: an exec already seen as another row is not a second event.
            events.extend(
                commands
                    .iter()
                    .filter(|c| !auditq_ingest::process::repeats_an_act(c))
                    .map(|e| e as &dyn EventView),
            );
            events.extend(host.iter().map(|e| e as &dyn EventView));
            events.extend(trail.iter().map(|e| e as &dyn EventView));
            events.extend(sessions.iter().map(|e| e as &dyn EventView));
            events.sort_by_key(|e| e.time());
            let mut detector = Detector::new(engine.clone(), RuleState::default());
            let now = chrono::Utc::now();
            let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
            let mut total = 0;
            for event in &events {
                for alert in detector.detect(*event, now) {
                    total += 1;
                    *per_rule.entry(alert.rule_id.clone()).or_default() += 1;
                    if list {
                        writeln!(out, "{}", alert.line())?;
                    }
                }
            }
            writeln!(
                out,
                "{} events scanned ({} commands, {} CloudTrail records, {} sessions, {} host log events): {total} alerts would be raised",
                events.len(),
                commands.len(),
                trail.len(),
                sessions.len(),
                host.len()
            )?;
            for rule in engine.rules() {
                if let Some(n) = per_rule.get(&rule.id) {
                    writeln!(out, "  {n:>6}  {} [{}]", rule.id, rule.severity)?;
                }
            }
            Ok(true)
        }
    }
}

/// What a set with Sigma rules loaded, per log source, and why each refused rule was refused.
fn sigma_report(out: &mut impl Write, engine: &Engine) -> anyhow::Result<()> {
    let mut per_source: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for rule in engine.rules() {
        if let Some(origin) = &rule.sigma {
            per_source.entry(&origin.logsource).or_default().0 += 1;
        }
    }
    for refused in engine.refused() {
        per_source.entry(&refused.logsource).or_default().1 += 1;
    }
    if per_source.is_empty() {
        return Ok(());
    }
    let (loaded, refused) = per_source
        .values()
        .fold((0, 0), |(l, r), (a, b)| (l + a, r + b));
    writeln!(
        out,
        "Sigma: {loaded} of {} rules load ({:.1}%), {refused} refused",
        loaded + refused,
        100.0 * loaded as f64 / (loaded + refused).max(1) as f64
    )?;
    writeln!(
        out,
        "  {:<26} {:>6} {:>8}",
        "log source", "loaded", "refused"
    )?;
    for (source, (l, r)) in &per_source {
        writeln!(out, "  {source:<26} {l:>6} {r:>8}")?;
    }
    for refused in engine.refused() {
        writeln!(out, "refused: {}", refused.error)?;
    }
    Ok(())
}

fn json_event(json: &str, table: Option<&str>) -> anyhow::Result<FieldsEvent> {
    let value: serde_json::Value = serde_json::from_str(json).context("--event is not JSON")?;
    let Some(object) = value.as_object() else {
        bail!("--event must be a JSON object of column values");
    };
    let fields: BTreeMap<String, String> = object
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    let table = match table {
        Some(name) => Table::from_name(name).with_context(|| format!("no table {name:?}"))?,
        None if fields.contains_key("event_name") => Table::Cloudtrail,
        None => Table::Commands,
    };
    Ok(FieldsEvent { table, fields })
}

/// Runs `auditq alerts ...`.
pub async fn alerts(command: AlertsCommand, sns: &auditq_aws::Aws) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        AlertsCommand::Subscribe {
            topic,
            email,
            sqs,
            https,
            lambda,
            min_severity,
            rule,
            account,
            environment,
        } => {
            let (protocol, endpoint) = match (email, sqs, https, lambda) {
                (Some(e), ..) => ("email", e),
                (_, Some(q), ..) => ("sqs", q),
                (_, _, Some(h), _) => ("https", h),
                (_, _, _, Some(l)) => ("lambda", l),
                _ => bail!("give one of --email, --sqs, --https, --lambda"),
            };
            let min = match min_severity.as_deref() {
                Some(name) => Some(Severity::from_name(name).with_context(|| {
                    format!("--min-severity {name:?}: use info, low, medium, high or critical")
                })?),
                None => None,
            };
            let policy =
                filter_policy(min, &rule, &account, &environment).map_err(anyhow::Error::msg)?;
            let attributes: Vec<(&str, &str)> = match &policy {
                Some(policy) => vec![
                    ("FilterPolicy", policy.as_str()),
                    ("FilterPolicyScope", "MessageAttributes"),
                ],
                None => vec![],
            };
            let arn = sns
                .sns_subscribe(&topic, protocol, &endpoint, &attributes)
                .await
                .with_context(|| format!("subscribe {protocol}:{endpoint} to {topic}"))?;
            let arn = if arn.is_empty() {
                "pending confirmation"
            } else {
                arn.as_str()
            };
            writeln!(out, "{arn}")?;
            writeln!(
                out,
                "filter: {}",
                policy.as_deref().unwrap_or("none (every alert)")
            )?;
        }
        AlertsCommand::Subscriptions { topic } => {
            let subscriptions = sns
                .sns_subscriptions(&topic)
                .await
                .with_context(|| format!("list subscriptions of {topic}"))?;
            for subscription in subscriptions {
                let arn = subscription.arn;
                // A subscription still pending confirmation has no ARN and no attributes.
                let filter = if arn.starts_with("arn:") {
                    match sns.sns_subscription_attributes(&arn).await {
                        Ok(attributes) => attributes
                            .into_iter()
                            .find(|(name, _)| name == "FilterPolicy")
                            .map(|(_, policy)| policy)
                            .unwrap_or_else(|| "none (every alert)".to_string()),
                        Err(e) => format!("unknown ({})", e.detail()),
                    }
                } else {
                    "none (every alert)".to_string()
                };
                writeln!(
                    out,
                    "{arn}\n    {}:{}\n    filter: {filter}",
                    subscription.protocol, subscription.endpoint,
                )?;
            }
        }
        AlertsCommand::Unsubscribe { subscription } => {
            sns.sns_unsubscribe(&subscription)
                .await
                .with_context(|| format!("unsubscribe {subscription}"))?;
            writeln!(out, "removed {subscription}")?;
        }
    }
    Ok(())
}
