//! Detection quality on attack data no one here wrote, and false positives on real
//! administrators' commands. Prints the tables of BENCHMARKS.md ("Detections").
//!
//!     cargo bench -p auditq-rules --bench detections -- [CORPORA] [ATTACKS]
//!
//! CORPORA (default `../shared/corpora`) holds `cloudtrail-stratus/` (Stratus Red Team
//! detonations, one technique a file), `shell-commands/all.cm` (12,607 real one-line commands)
//! and `sigma/` (SigmaHQ rules, loaded beside the default pack). ATTACKS (default
//! `benches/attacks/honeypot-sessions.jsonl`) holds real attacker sessions from public SSH
//! honeypots, one command a line, each labelled before any rule was run.
//!
//! Every event goes through the same `Detector` as live detection (suppression, thresholds and
//! sequences included); a session's commands are a second apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditq_model::{Command, Table, Timestamp, TrailEvent, day_of};
use auditq_rules::{AlertNotice, Detector, Engine, RuleState, Severity, pack};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // `cargo bench` runs in the package's folder: defaults are relative to the repository.
    let repository = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let corpora = args
        .first()
        .map_or_else(|| repository.join("../shared/corpora"), PathBuf::from);
    // The licensed sessions are in the repository; the unlicensed ones are rebuilt locally
    // (benches/attacks/README.md) and read when present.
    let attacks: Vec<PathBuf> = match args.get(1) {
        Some(path) => vec![PathBuf::from(path)],
        None => [
            "benches/attacks/honeypot-sessions.jsonl",
            "benches/attacks/unlicensed/honeypot-sessions.jsonl",
        ]
        .iter()
        .map(|p| repository.join(p))
        .filter(|p| p.exists())
        .collect(),
    };
    let default = pack::compile_source("default").unwrap_or_else(|e| panic!("{e}"));
    let sigma_dir = corpora.join("sigma");
    let both = pack::compile_source(&format!("default,{}", sigma_dir.display()))
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "rules: default pack {} rules; with Sigma {} rules ({} Sigma rules refused)\n",
        default.rules().len(),
        both.rules().len(),
        both.refused().len()
    );
    let both = Arc::new(both);
    cloudtrail(&corpora.join("cloudtrail-stratus"), &both);
    shell(&attacks, &both);
    false_positives(&corpora.join("shell-commands/all.cm"), &both);
}

fn serious(alert: &AlertNotice) -> bool {
    alert.severity >= Severity::Medium
}

fn is_sigma(engine: &Engine, rule_id: &str) -> bool {
    engine
        .rules()
        .iter()
        .any(|r| r.id == rule_id && r.sigma.is_some())
}

/// Each Stratus technique's records through the rules: which fire, at what severity.
fn cloudtrail(dir: &Path, engine: &Arc<Engine>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    println!(
        "### CloudTrail: Stratus Red Team detonations ({} techniques)\n",
        files.len()
    );
    println!("| technique | records | default pack (medium+) | Sigma (medium+) | detected |");
    println!("|---|---:|---|---|:-:|");
    let mut detected = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
        let records: Vec<serde_json::Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut events: Vec<TrailEvent> = records
            .iter()
            .filter_map(|r| auditq_parse::cloudtrail::parse_record(&r.to_string(), "bench").ok())
            .collect();
        events.sort_by_key(|e| e.time);
        let mut detector = Detector::new(engine.clone(), RuleState::default());
        let mut ours = BTreeSet::new();
        let mut theirs = BTreeSet::new();
        for event in &events {
            for alert in detector.detect(event, event.time) {
                if !serious(&alert) {
                    continue;
                }
                let name = format!("{} ({})", alert.rule_id, alert.severity);
                if is_sigma(engine, &alert.rule_id) {
                    theirs.insert(name);
                } else {
                    ours.insert(name);
                }
            }
        }
        let hit = !ours.is_empty() || !theirs.is_empty();
        detected += usize::from(hit);
        let technique = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let show = |set: &BTreeSet<String>| {
            if set.is_empty() {
                "".to_string()
            } else {
                set.iter().cloned().collect::<Vec<_>>().join("<br>")
            }
        };
        println!(
            "| {technique} | {} | {} | {} | {} |",
            events.len(),
            show(&ours),
            show(&theirs),
            if hit { "yes" } else { "**no**" }
        );
    }
    println!(
        "\n**{detected} of {} techniques** raise an alert of medium or higher.\n",
        files.len()
    );
}

fn command(session: &str, seq: i64, cmd: &str, start: Timestamp) -> Command {
    let time = start + chrono::Duration::seconds(seq);
    Command {
        event_id: format!("{session}/{seq}"),
        time,
        date: day_of(&time),
        user: Some("attacker".into()),
        principal_arn: None,
        run_as: Some("root".into()),
        target: Some("i-0honeypot".into()),
        account: None,
        region: None,
        source_ip: None,
        cmd: cmd.to_string(),
        cwd: None,
        session_id: Some(session.to_string()),
        seq,
        source: "stream".into(),
        origin: "bench".into(),
    }
}

/// Real attacker sessions: recall per label on the commands that matter.
fn shell(paths: &[PathBuf], engine: &Arc<Engine>) {
    let text: String = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect::<Vec<_>>()
        .join("\n");
    let mut sessions: BTreeMap<String, Vec<(i64, String, String)>> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        let get = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        sources.insert(get("source"));
        sessions
            .entry(format!("{}:{}", get("source"), get("session")))
            .or_default()
            .push((
                v.get("seq")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0),
                get("cmd"),
                get("label"),
            ));
    }
    let start = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    let mut detector = Detector::new(engine.clone(), RuleState::default());
    // label -> (commands, alerted on the command itself)
    let mut per_label: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
    let (mut bad_sessions, mut bad_sessions_alerted) = (0, 0);
    let mut missed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, (session, commands)) in sessions.iter_mut().enumerate() {
        commands.sort_by_key(|c| c.0);
        let session_start = start + chrono::Duration::hours(n as i64);
        let mut any_bad = false;
        let mut any_alert = false;
        for (seq, cmd, label) in commands.iter() {
            let event = command(session, *seq, cmd, session_start);
            let alerts: Vec<AlertNotice> = detector
                .detect(&event, event.time)
                .into_iter()
                .filter(serious)
                .collect();
            for alert in &alerts {
                *per_rule.entry(alert.rule_id.clone()).or_default() += 1;
            }
            any_alert |= !alerts.is_empty();
            let entry = per_label.entry(label.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(!alerts.is_empty());
            if matches!(label.as_str(), "fetch" | "persist" | "escalate" | "hide") {
                any_bad = true;
                if alerts.is_empty() {
                    missed.entry(label.clone()).or_default().push(cmd.clone());
                }
            }
        }
        bad_sessions += usize::from(any_bad);
        bad_sessions_alerted += usize::from(any_bad && any_alert);
    }
    println!(
        "### Shell: {} real attacker sessions from public honeypots ({})\n",
        sessions.len(),
        sources.into_iter().collect::<Vec<_>>().join(", ")
    );
    println!(
        "| label (judged before running the rules) | commands | alerted (medium+) on the command | recall |"
    );
    println!("|---|---:|---:|---:|");
    let (mut bad, mut bad_hit) = (0, 0);
    for (label, (count, hit)) in &per_label {
        if matches!(label.as_str(), "fetch" | "persist" | "escalate" | "hide") {
            bad += count;
            bad_hit += hit;
        }
        println!(
            "| {label} | {count} | {hit} | {:.1}% |",
            100.0 * *hit as f64 / (*count).max(1) as f64
        );
    }
    println!(
        "\nfetch, persist, escalate, hide together: **{bad_hit} of {bad} commands ({:.1}%)**; sessions with any such command that raised an alert: **{bad_sessions_alerted} of {bad_sessions} ({:.1}%)**.\n",
        100.0 * bad_hit as f64 / bad.max(1) as f64,
        100.0 * bad_sessions_alerted as f64 / bad_sessions.max(1) as f64
    );
    println!("Alerts per rule: {per_rule:?}\n");
    for (label, commands) in &missed {
        let distinct: BTreeSet<&String> = commands.iter().collect();
        println!("missed {label} ({} distinct), for example:", distinct.len());
        for cmd in distinct.iter().take(8) {
            let shown: String = cmd.chars().take(160).collect();
            println!("    {shown}");
        }
    }
    println!();
}

/// Real administrators' commands: how many raise medium or higher.
fn false_positives(path: &Path, engine: &Arc<Engine>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    let mut detector = Detector::new(engine.clone(), RuleState::default());
    let hunting: BTreeSet<&str> = engine
        .rules()
        .iter()
        .filter(|r| r.tags.iter().any(|t| t == "detection.threat-hunting"))
        .map(|r| r.id.as_str())
        .collect();
    let sigma: BTreeSet<&str> = engine
        .rules()
        .iter()
        .filter(|r| r.sigma.is_some())
        .map(|r| r.id.as_str())
        .collect();
    // Commands flagged by: the default pack; it and SigmaHQ's detection rules; and also
    // SigmaHQ's threat-hunting rules (meant for hunting, not alerting).
    let mut flagged_by = [0usize; 3];
    let mut total = 0;
    let mut per_rule: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        total += 1;
        // Each command is its own session: they are unrelated one-liners.
        let event = command(
            &format!("fp-{n}"),
            1,
            line,
            start + chrono::Duration::seconds(n as i64),
        );
        let alerts: Vec<AlertNotice> = detector
            .detect(&event, event.time)
            .into_iter()
            .filter(serious)
            .collect();
        let ours = alerts.iter().any(|a| !sigma.contains(a.rule_id.as_str()));
        let detection = alerts.iter().any(|a| !hunting.contains(a.rule_id.as_str()));
        flagged_by[0] += usize::from(ours);
        flagged_by[1] += usize::from(detection);
        flagged_by[2] += usize::from(!alerts.is_empty());
        for alert in alerts {
            let entry = per_rule
                .entry(alert.rule_id.clone())
                .or_insert((0, line.to_string()));
            entry.0 += 1;
        }
    }
    let _ = Table::Commands;
    println!("### False positives: {total} real administrators' commands (nl2bash)\n");
    println!("| rules | commands raising medium or higher | share |");
    println!("|---|---:|---:|");
    for (name, flagged) in [
        "default pack",
        "default pack + SigmaHQ detection rules",
        "default pack + SigmaHQ detection and threat-hunting rules",
    ]
    .iter()
    .zip(flagged_by)
    {
        println!(
            "| {name} | {flagged} of {total} | **{:.2}%** |",
            100.0 * flagged as f64 / total.max(1) as f64
        );
    }
    println!();
    println!("| rule | commands | example |");
    println!("|---|---:|---|");
    let mut rows: Vec<_> = per_rule.into_iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1.0));
    for (rule, (count, example)) in rows {
        let example: String = example.chars().take(90).collect();
        println!("| {rule} | {count} | `{}` |", example.replace('|', "\\|"));
    }
}
