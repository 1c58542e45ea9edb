//! Detection quality on attack data no one here wrote, and false positives on real
//! administrators' commands. Prints the tables of BENCHMARKS.md ("Detections").
//!
//!     cargo bench -p auditq-rules --bench detections -- [CORPORA]
//!
//! CORPORA (default `../shared/corpora`) holds `cloudtrail-stratus/` (Stratus Red Team
//! detonations, one technique a file), `shell-commands/all.cm` (12,607 real one-line commands)
//! and `sigma/` (SigmaHQ rules, loaded beside the default pack). Real attacker sessions are
//! measured by `benches/honeypot_replay.py`, through the Session Manager stream parser.
//!
//! Every event goes through the same `Detector` as live detection (suppression, thresholds and
//! sequences included).

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
        parent_cmd: None,
        seen_in_transcript: None,
        target_name: None,
        environment: None,
        account_alias: None,
    }
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
