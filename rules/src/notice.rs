//! What an alert says: who, when, where and what, in a subject a phone can show, a JSON body
//! with every field, and message attributes subscribers filter on.

use std::collections::BTreeMap;

use auditq_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::detect::alert_id;
use crate::engine::{EventView, Rule, table_fields};
use crate::spec::Severity;

/// One alert, as published and as kept in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotice {
    /// `hash(rule_id, event_id)`.
    pub alert_id: String,
    /// The rule.
    pub rule_id: String,
    /// Its severity.
    pub severity: Severity,
    /// Its title.
    pub title: String,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Its tags (ATT&CK ids).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The ISO/IEC 27001:2022 Annex A controls it evidences ([`crate::controls`]).
    #[serde(default)]
    pub controls: Vec<String>,
    /// When the event happened.
    pub time: Timestamp,
    /// When auditq raised the alert.
    pub detected_at: Timestamp,
    /// Who.
    pub user: Option<String>,
    /// Where: instance or managed node.
    pub target: Option<String>,
    /// Where: account.
    pub account: Option<String>,
    /// Where: region.
    pub region: Option<String>,
    /// Where, as it was named then: the instance's `Name` tag.
    #[serde(default)]
    pub target_name: Option<String>,
    /// Where, as it was named then: the instance's `Environment` tag.
    #[serde(default)]
    pub environment: Option<String>,
    /// Where, as it was named then: the account's alias.
    #[serde(default)]
    pub account_alias: Option<String>,
    /// Where from.
    pub source_ip: Option<String>,
    /// What: the command.
    pub cmd: Option<String>,
    /// What: the CloudTrail event name.
    pub event_name: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// The table of the event.
    pub table: String,
    /// The event's id.
    pub event_id: String,
    /// Every non-null field of the event.
    pub event: BTreeMap<String, String>,
}

impl AlertNotice {
    /// The alert a rule raises on an event.
    pub fn new(
        rule: &Rule,
        event: &dyn EventView,
        time: Timestamp,
        detected_at: Timestamp,
    ) -> AlertNotice {
        let get = |name: &str| event.field(name).map(|v| v.into_owned());
        let event_id = event.event_id().into_owned();
        let fields: BTreeMap<String, String> = table_fields(event.table())
            .iter()
            .filter_map(|name| Some((name.to_string(), get(name)?)))
            .collect();
        AlertNotice {
            alert_id: alert_id(&rule.id, &event_id),
            rule_id: rule.id.clone(),
            severity: rule.severity,
            title: rule.title.clone(),
            description: rule.description.clone(),
            tags: rule.tags.clone(),
            controls: crate::controls::controls(&rule.tags),
            time,
            detected_at,
            user: get("user"),
            target: get("target"),
            account: get("account"),
            region: get("region"),
            target_name: get("target_name"),
            environment: get("environment"),
            account_alias: get("account_alias"),
            source_ip: get("source_ip"),
            cmd: get("cmd"),
            event_name: get("event_name"),
            session_id: get("session_id"),
            table: event.table().name().to_string(),
            event_id,
            event: fields,
        }
    }

    /// The SNS subject: `[high] linux.sudo: alice ran "sudo su -" on i-0abc...`, printable
    /// ASCII, under 100 characters (SNS refuses longer subjects).
    pub fn subject(&self) -> String {
        let who = self.user.as_deref().unwrap_or("someone");
        let head = format!("[{}] {}: {who} ", self.severity, self.rule_id);
        let place = match (&self.target, &self.target_name, &self.account) {
            (Some(target), Some(name), _) => format!(" on {name} ({target})"),
            (Some(target), None, _) => format!(" on {target}"),
            (None, _, Some(account)) => match &self.account_alias {
                Some(alias) => format!(" in {alias} ({account})"),
                None => format!(" in {account}"),
            },
            (None, _, None) => String::new(),
        };
        let (verb, what) = match (&self.cmd, &self.event_name) {
            (Some(cmd), _) => ("ran", cmd.as_str()),
            (None, Some(name)) => ("called", name.as_str()),
            (None, None) => ("triggered", self.title.as_str()),
        };
        let fixed = head.chars().count() + verb.len() + 3 + place.chars().count();
        let room = SUBJECT_MAX.saturating_sub(fixed).max(8);
        let what = shorten(&printable(what), room);
        let subject = printable(&format!("{head}{verb} \"{what}\"{place}"));
        shorten(&subject, SUBJECT_MAX)
    }

    /// The JSON body: every field.
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Message attributes for SNS filter policies (at most 10; empty values are left out, as
    /// SNS refuses them): severity, rule, table, and who and where, with the names in force then
    /// (`environment` lets a team subscribe to production alone).
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = vec![
            ("severity", self.severity.name().to_string()),
            ("rule_id", self.rule_id.clone()),
            ("table", self.table.clone()),
        ];
        for (name, value) in [
            ("account", &self.account),
            ("target", &self.target),
            ("user", &self.user),
            ("environment", &self.environment),
            ("target_name", &self.target_name),
            ("account_alias", &self.account_alias),
        ] {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                attributes.push((name, value.clone()));
            }
        }
        attributes
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "{} {}",
            self.time.format("%Y-%m-%d %H:%M:%S"),
            self.subject()
        )
    }
}

/// The SNS filter policy (on message attributes) for a subscription: at least `min_severity`,
/// rule ids matching any of `rules` (`linux.*` is a prefix, `*.sudo` a suffix, anything else
/// exact), from any of `accounts`, on instances of any of `environments`. Conditions on
/// different attributes must all hold.
pub fn filter_policy(
    min_severity: Option<crate::Severity>,
    rules: &[String],
    accounts: &[String],
    environments: &[String],
) -> Result<Option<String>, String> {
    let mut policy = serde_json::Map::new();
    if let Some(min) = min_severity {
        let names: Vec<serde_json::Value> = crate::Severity::ALL
            .into_iter()
            .filter(|s| *s >= min)
            .map(|s| s.name().into())
            .collect();
        policy.insert("severity".to_string(), names.into());
    }
    if !rules.is_empty() {
        let mut values = Vec::new();
        for rule in rules {
            let stars = rule.matches('*').count();
            let value = match (stars, rule.strip_suffix('*'), rule.strip_prefix('*')) {
                (0, _, _) => serde_json::Value::from(rule.as_str()),
                (1, Some(prefix), _) => serde_json::json!({ "prefix": prefix }),
                (1, _, Some(suffix)) => serde_json::json!({ "suffix": suffix }),
                _ => {
                    return Err(format!(
                        "rule pattern {rule:?}: SNS filter policies match an exact id, a prefix (linux.*) or a suffix (*.sudo)"
                    ));
                }
            };
            values.push(value);
        }
        policy.insert("rule_id".to_string(), values.into());
    }
    for (attribute, values) in [("account", accounts), ("environment", environments)] {
        if !values.is_empty() {
            let values: Vec<serde_json::Value> = values.iter().map(|a| a.as_str().into()).collect();
            policy.insert(attribute.to_string(), values.into());
        }
    }
    Ok((!policy.is_empty()).then(|| serde_json::Value::Object(policy).to_string()))
}

/// SNS subjects must be under 100 characters.
const SUBJECT_MAX: usize = 99;

fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, FieldsEvent};
    use crate::spec::parse_file;
    use auditq_model::Table;

    fn notice(cmd: &str) -> AlertNotice {
        let text = "rules:\n  - id: linux.sudo_root_shell\n    title: Root shell through sudo\n    severity: high\n    table: commands\n    match: { field: cmd, prefix: sudo }\n";
        let engine = Engine::compile(&[parse_file("t", text).unwrap_or_else(|e| panic!("{e}"))])
            .unwrap_or_else(|e| panic!("{e:?}"));
        let event = FieldsEvent {
            table: Table::Commands,
            fields: [
                ("event_id", "e1"),
                ("cmd", cmd),
                ("user", "alice"),
                ("target", "i-0abc123def4567890"),
                ("account", "111122223333"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        AlertNotice::new(
            &engine.rules()[0],
            &event,
            Timestamp::default(),
            Timestamp::default(),
        )
    }

    #[test]
    fn subject_says_who_what_where() {
        assert_eq!(
            notice("sudo su -").subject(),
            "[high] linux.sudo_root_shell: alice ran \"sudo su -\" on i-0abc123def4567890"
        );
    }

    #[test]
    fn long_or_binary_commands_keep_the_subject_valid() {
        let subject = notice(&format!(
            "sudo sh -c 'echo \u{1b}[31m{}'\n",
            "x".repeat(300)
        ))
        .subject();
        assert!(subject.chars().count() < 100, "{subject}");
        assert!(subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        assert!(subject.ends_with(" on i-0abc123def4567890"), "{subject}");
        assert!(subject.contains("...\""), "{subject}");
    }

    #[test]
    fn filter_policies() {
        let policy = filter_policy(
            Some(Severity::High),
            &["linux.*".to_string(), "aws.root_activity".to_string()],
            &["111122223333".to_string()],
            &["prod".to_string()],
        );
        assert_eq!(
            policy,
            Ok(Some(
                r#"{"account":["111122223333"],"environment":["prod"],"rule_id":[{"prefix":"linux."},"aws.root_activity"],"severity":["high","critical"]}"#
                    .to_string()
            ))
        );
        assert_eq!(filter_policy(None, &[], &[], &[]), Ok(None));
        assert!(filter_policy(None, &["a*b*".to_string()], &[], &[]).is_err());
    }

    #[test]
    fn attributes_and_body() {
        let n = notice("sudo su -");
        let names: Vec<_> = n.attributes().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            ["severity", "rule_id", "table", "account", "target", "user"]
        );
        let body: serde_json::Value =
            serde_json::from_str(&n.body()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["cmd"], "sudo su -");
        assert_eq!(body["event"]["target"], "i-0abc123def4567890");
        assert_eq!(body["severity"], "high");
        let back: AlertNotice = serde_json::from_str(&n.body()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, n);
    }
}
