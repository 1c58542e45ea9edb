//! Sigma, as the specification means it: detection semantics as data (`sigma_cases.yaml`, one
//! runner), correlations on top of the live `Detector`, and refusals by rule and reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use auditq_model::Table;
use auditq_rules::{Detector, Engine, FieldsEvent, RuleState, sigma};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    logsource: Option<serde_norway::Value>,
    detection: serde_norway::Value,
    #[serde(rename = "match")]
    positive: Vec<BTreeMap<String, String>>,
    no_match: Vec<BTreeMap<String, String>>,
}

fn compile(files: &[(&str, String)]) -> Engine {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let loaded = sigma::translate(&files);
    Engine::compile(&loaded).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn detection_semantics_as_the_specification_gives_them() {
    let text = include_str!("sigma_cases.yaml");
    let cases: Vec<Case> = serde_norway::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for case in &cases {
        let logsource = case.logsource.clone().unwrap_or_else(|| {
            serde_norway::from_str("{product: linux, category: process_creation}")
                .unwrap_or(serde_norway::Value::Null)
        });
        let rule = serde_norway::to_string(&serde_norway::Mapping::from_iter([
            ("title".into(), case.name.clone().into()),
            ("logsource".into(), logsource),
            ("detection".into(), case.detection.clone()),
            ("level".into(), "high".into()),
        ]))
        .unwrap_or_default();
        let engine = compile(&[("case.yml", rule)]);
        if let Some(refused) = engine.refused().first() {
            failures.push(format!("{}: refused: {}", case.name, refused.error));
            continue;
        }
        let rule = &engine.rules()[0];
        let mut scratch = engine.scratch();
        for (fields, expected) in case
            .positive
            .iter()
            .map(|f| (f, true))
            .chain(case.no_match.iter().map(|f| (f, false)))
        {
            let event = FieldsEvent {
                table: rule.table,
                fields: fields.clone(),
            };
            let matched = !engine.matching(&event, &mut scratch).is_empty();
            if matched != expected {
                failures.push(format!(
                    "{}: {} {fields:?}",
                    case.name,
                    if expected {
                        "must match"
                    } else {
                        "must not match"
                    }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const BASE: &str = "title: Failed console login
name: failed_login
logsource: { product: aws, service: cloudtrail }
detection:
    selection: { eventName: ConsoleLogin, errorMessage|contains: Failed }
    condition: selection
level: low
---
title: Key created
name: key_created
logsource: { product: aws, service: cloudtrail }
detection:
    selection: { eventName: CreateAccessKey }
    condition: selection
level: low
";

fn trail(id: &str, seconds: i64, name: &str, ip: &str, user: &str) -> FieldsEvent {
    let time = chrono::DateTime::from_timestamp(1_790_000_000 + seconds, 0)
        .unwrap_or_default()
        .to_rfc3339();
    let mut fields = BTreeMap::from([
        ("event_id".to_string(), id.to_string()),
        ("time".to_string(), time),
        ("event_name".to_string(), name.to_string()),
        ("source_ip".to_string(), ip.to_string()),
        ("user".to_string(), user.to_string()),
        (
            "principal_arn".to_string(),
            format!("arn:aws:iam::1:user/{user}"),
        ),
    ]);
    if name == "ConsoleLogin" {
        fields.insert("error_message".into(), "Failed authentication".into());
    }
    FieldsEvent {
        table: Table::Cloudtrail,
        fields,
    }
}

fn fired(engine: Engine, events: &[FieldsEvent]) -> Vec<(String, String)> {
    let mut detector = Detector::new(Arc::new(engine), RuleState::default());
    let now = chrono::Utc::now();
    events
        .iter()
        .flat_map(|e| detector.detect(e, now))
        .map(|a| (a.rule_id, a.event_id))
        .collect()
}

#[test]
fn correlations_become_thresholds_and_sequences() {
    let event_count = "title: Password spraying
name: spray
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [sourceIPAddress]
    timespan: 5m
    condition: { gte: 3 }
level: high
";
    let events = [
        trail("1", 0, "ConsoleLogin", "a", "u1"),
        trail("2", 10, "ConsoleLogin", "b", "u2"),
        trail("3", 20, "ConsoleLogin", "a", "u3"),
        trail("4", 30, "ConsoleLogin", "a", "u4"),
        trail("5", 40, "CreateAccessKey", "a", "u4"),
    ];
    let engine = compile(&[("base.yml", BASE.into()), ("c.yml", event_count.into())]);
    // The base rules raise nothing of their own (generate defaults to false).
    assert_eq!(engine.rules().len(), 2, "{:?}", engine.rules());
    assert_eq!(
        fired(engine, &events),
        [
            ("sigma.spray".to_string(), "4".to_string()),
            ("sigma.key_created".to_string(), "5".to_string())
        ]
    );

    let value_count = "title: Many users from one address
name: many_users
correlation:
    type: value_count
    rules: failed_login
    group-by: [sourceIPAddress]
    timespan: 5m
    condition: { gte: 2, field: userIdentity.arn }
level: high
";
    // From address a: u1, then u3 (the second user: fires), then u4 (counting starts over).
    let engine = compile(&[("base.yml", BASE.into()), ("c.yml", value_count.into())]);
    let alerts = fired(engine, &events);
    assert!(
        alerts.contains(&("sigma.many_users".to_string(), "3".to_string())),
        "{alerts:?}"
    );
    assert_eq!(
        alerts
            .iter()
            .filter(|(r, _)| r == "sigma.many_users")
            .count(),
        1
    );

    let ordered = "title: Failed login then a key
name: login_then_key
correlation:
    type: temporal_ordered
    rules: [failed_login, key_created]
    group-by: [sourceIPAddress]
    timespan: 1m
    generate: true
level: critical
";
    let engine = compile(&[("base.yml", BASE.into()), ("c.yml", ordered.into())]);
    let alerts = fired(engine, &events);
    // generate: true keeps the base rules' own alerts.
    assert!(alerts.contains(&("sigma.failed_login".to_string(), "1".to_string())));
    assert!(alerts.contains(&("sigma.login_then_key".to_string(), "5".to_string())));
    // In the wrong order, nothing.
    let engine = compile(&[("base.yml", BASE.into()), ("c.yml", ordered.into())]);
    let reversed = [
        trail("1", 0, "CreateAccessKey", "a", "u"),
        trail("2", 10, "ConsoleLogin", "a", "u"),
    ];
    assert!(
        fired(engine, &reversed)
            .iter()
            .all(|(r, _)| r != "sigma.login_then_key")
    );
}

#[test]
fn what_cannot_be_honoured_is_refused_with_the_reason() {
    let refused = |detection: &str, logsource: &str| -> String {
        let rule =
            format!("title: t\nlogsource: {logsource}\ndetection:\n{detection}\nlevel: low\n");
        let engine = compile(&[("r.yml", rule)]);
        assert!(engine.rules().is_empty(), "{detection} loaded");
        engine.refused()[0].error.message.clone()
    };
    let linux = "{ product: linux, category: process_creation }";
    for (detection, logsource, reason) in [
        (
            "  s: { CommandLine|windash: -x }\n  condition: s",
            linux,
            "Windows",
        ),
        (
            "  s: { CommandLine|re: '(?<=a)b' }\n  condition: s",
            linux,
            "bad pattern",
        ),
        (
            "  s: { CommandLine: x }\n  condition: s | count() > 5",
            linux,
            "aggregates",
        ),
        (
            "  s: { ParentImage|endswith: /java }\n  condition: s",
            linux,
            "ParentImage",
        ),
        (
            "  s: { Commandline: x }\n  condition: s",
            linux,
            "not a process_creation field",
        ),
        (
            "  s: { CommandLine: x }\n  condition: s and t",
            linux,
            "lacks",
        ),
        (
            "  s: { Image: x }\n  condition: s",
            "{ product: windows, category: process_creation }",
            "not one auditq reads",
        ),
        (
            "  keywords: [x]\n  condition: keywords",
            "{ product: aws, service: cloudtrail }",
            "keywords",
        ),
    ] {
        let message = refused(detection, logsource);
        assert!(message.contains(reason), "{detection}: {message}");
    }
    // A filter on a field auditq does not record excludes nothing: the rule loads.
    let rule = "title: t\nlogsource: { product: linux, category: process_creation }\ndetection:\n  s: { Image|endswith: /nc }\n  f: { ParentImage|endswith: /java }\n  condition: s and not f\nlevel: low\n";
    let engine = compile(&[("r.yml", rule.into())]);
    assert_eq!(engine.rules().len(), 1, "{:?}", engine.refused());
}
