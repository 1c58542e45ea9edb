//! Rule files as users write them: YAML, every key known (an unknown key is an error, so a typo
//! such as `severty:` cannot silently disable part of a rule), every problem reported with its
//! file, line and rule id.
//!
//! ```yaml
//! rules:
//!   - id: linux.sudo_root_shell
//!     title: Root shell through sudo
//!     severity: high
//!     table: commands
//!     tags: [attack.t1548.003]
//!     match:
//!       all:
//!         - { field: cmd, regex: '(?:^|[;&|]\s*)sudo\s+(?:su|-i|-s)\b' }
//!         - not: { field: run_as, equals: root }
//!     suppress: { by: [session_id], for: 10m }
//!     tests:
//!       match: ["sudo su -"]
//!       no_match: ["sudo systemctl restart nginx"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// How bad a match is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording.
    Info,
    /// Worth a look.
    Low,
    /// Worth a look today.
    Medium,
    /// Worth a look now.
    High,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The name used in files, attributes and filter policies.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Reads a severity name.
    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rules, in order.
    pub rules: Vec<RuleSpec>,
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id, dotted by family: `linux.sudo_root_shell`, `aws.stop_logging`.
    pub id: String,
    /// One line for people.
    pub title: String,
    /// How bad a match is.
    pub severity: Severity,
    /// The table whose rows the rule reads: `commands`, `cloudtrail`, `host_events`, `sessions`.
    pub table: String,
    /// Why the rule exists and what to do when it fires.
    #[serde(default)]
    pub description: Option<String>,
    /// MITRE ATT&CK technique ids and other labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The condition (a rule has `match` or `sequence`).
    #[serde(rename = "match", default)]
    pub condition: Option<ConditionSpec>,
    /// Conditions that must hold, in order, for events of one key within a window.
    #[serde(default)]
    pub sequence: Option<SequenceSpec>,
    /// Raise at most one alert per key per window.
    #[serde(default)]
    pub suppress: Option<SuppressSpec>,
    /// Raise only when `count` matches fall within a window, per key.
    #[serde(default)]
    pub threshold: Option<ThresholdSpec>,
    /// Cases the rule must and must not match (run by `auditq rules check` and the test suite).
    #[serde(default)]
    pub tests: Option<TestsSpec>,
    /// The Sigma log source a rule was translated from (`None` for auditq's own rules): a
    /// problem in such a rule refuses that rule instead of failing the whole set.
    #[serde(skip)]
    pub sigma: Option<SigmaOrigin>,
}

/// Where a rule translated from Sigma came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaOrigin {
    /// `product/category/service` of its `logsource`.
    pub logsource: String,
    /// The Sigma rule's `id` (a UUID) or `name`.
    pub id: String,
}

/// `sequence: { by: [session_id], within: 10m, steps: [...] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceSpec {
    /// Fields whose values form the key: the steps must all be seen under one key.
    #[serde(default)]
    pub by: Vec<String>,
    /// The window from the first step to the last: `30s`, `10m`, `1h`, `1d`.
    pub within: String,
    /// Whether the steps must come in the order written (default) or in any order.
    #[serde(default = "yes")]
    pub ordered: bool,
    /// The conditions, at least two.
    pub steps: Vec<ConditionSpec>,
}

fn yes() -> bool {
    true
}

/// A condition: exactly one of `all`, `any`, `not`, or a test on a `field`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// Every sub-condition holds.
    #[serde(default)]
    pub all: Option<Vec<ConditionSpec>>,
    /// At least one sub-condition holds.
    #[serde(default)]
    pub any: Option<Vec<ConditionSpec>>,
    /// The sub-condition does not hold.
    #[serde(default)]
    pub not: Option<Box<ConditionSpec>>,
    /// The column tested (a missing or null value matches no test).
    #[serde(default)]
    pub field: Option<String>,
    /// A regular expression (Rust `regex` syntax) found anywhere in the value.
    #[serde(default)]
    pub regex: Option<String>,
    /// The value starts with this text.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The value ends with this text.
    #[serde(default)]
    pub suffix: Option<String>,
    /// The value contains this text.
    #[serde(default)]
    pub contains: Option<String>,
    /// The value is exactly this text.
    #[serde(default)]
    pub equals: Option<String>,
    /// The value is exactly one of these texts.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<String>>,
    /// The value is an IP address inside this network (`10.0.0.0/8`, `fd00::/8`).
    #[serde(default)]
    pub cidr: Option<String>,
    /// The value is a number below this one.
    #[serde(default)]
    pub lt: Option<f64>,
    /// The value is a number at most this one.
    #[serde(default)]
    pub lte: Option<f64>,
    /// The value is a number above this one.
    #[serde(default)]
    pub gt: Option<f64>,
    /// The value is a number at least this one.
    #[serde(default)]
    pub gte: Option<f64>,
    /// The value equals a value of this other field (Sigma's `fieldref`).
    #[serde(default)]
    pub same_as: Option<String>,
    /// The field is present (`true`, even when empty) or absent (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
    /// Compare ignoring case.
    #[serde(default)]
    pub case_insensitive: bool,
}

/// `suppress: { by: [session_id], for: 10m }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressSpec {
    /// Fields whose values form the key (none: one key for the whole rule).
    #[serde(default)]
    pub by: Vec<String>,
    /// The window: `30s`, `10m`, `1h`, `1d`.
    #[serde(rename = "for")]
    pub window: String,
}

/// `threshold: { count: 5, within: 1m, by: [source_ip] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// Matches needed within the window.
    pub count: u32,
    /// The window: `30s`, `10m`, `1h`, `1d`.
    pub within: String,
    /// Fields whose values form the key.
    #[serde(default)]
    pub by: Vec<String>,
    /// Count distinct values of this field instead of matches (`count: 10, distinct: user`:
    /// ten different users within the window).
    #[serde(default)]
    pub distinct: Option<String>,
}

/// Cases kept with the rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestsSpec {
    /// Events the rule must match.
    #[serde(default, rename = "match")]
    pub positive: Vec<TestCase>,
    /// Events the rule must not match.
    #[serde(default)]
    pub no_match: Vec<TestCase>,
}

/// A test event: a command line (for `commands` rules), or field values; for a sequence rule,
/// a list of them (one session, a second apart).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TestCase {
    /// The `cmd` of a command.
    Command(String),
    /// Field values.
    Fields(BTreeMap<String, serde_norway::Value>),
    /// Events of one session, in order.
    Session(Vec<TestCase>),
}

impl TestCase {
    /// The events of the case: one, or a session's.
    pub fn events(&self) -> Vec<BTreeMap<String, String>> {
        match self {
            TestCase::Session(events) => events.iter().flat_map(TestCase::events).collect(),
            single => vec![single.fields()],
        }
    }

    /// The case as field values (a session's: its last event's).
    pub fn fields(&self) -> BTreeMap<String, String> {
        match self {
            TestCase::Command(cmd) => BTreeMap::from([("cmd".to_string(), cmd.clone())]),
            TestCase::Session(events) => events.last().map(TestCase::fields).unwrap_or_default(),
            TestCase::Fields(map) => map
                .iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        serde_norway::Value::String(s) => s.clone(),
                        serde_norway::Value::Bool(b) => b.to_string(),
                        serde_norway::Value::Number(n) => n.to_string(),
                        serde_norway::Value::Null => return None,
                        other => serde_norway::to_string(other).ok()?.trim().to_string(),
                    };
                    Some((k.clone(), text))
                })
                .collect(),
        }
    }
}

/// A problem in a rule file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file (or `default pack`).
    pub file: String,
    /// The line, from 1, when known.
    pub line: Option<usize>,
    /// The rule id, when the problem is inside a rule.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule {rule}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RuleError {}

/// Rule specs read from one file, with the line each rule starts on.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// The file name as given.
    pub file: String,
    /// The rules, each with its line.
    pub rules: Vec<(RuleSpec, Option<usize>)>,
    /// Sigma rules of the file that cannot be honoured, and why.
    pub refused: Vec<crate::engine::Refused>,
}

/// Reads a rule file's text. Syntax errors and unknown keys are reported with their line.
pub fn parse_file(file: &str, text: &str) -> Result<LoadedFile, RuleError> {
    let parsed: RuleFile = serde_norway::from_str(text).map_err(|e| RuleError {
        file: file.to_string(),
        line: e.location().map(|l| l.line()),
        rule: rule_around(text, e.location().map(|l| l.line())),
        message: e.to_string(),
    })?;
    let rules = parsed
        .rules
        .into_iter()
        .map(|rule| {
            let line = line_of_id(text, &rule.id);
            (rule, line)
        })
        .collect();
    Ok(LoadedFile {
        file: file.to_string(),
        rules,
        refused: Vec::new(),
    })
}

/// The line of `id: <id>` in a file.
fn line_of_id(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|line| id_on_line(line) == Some(id))
        .map(|n| n + 1)
}

fn id_on_line(line: &str) -> Option<&str> {
    let rest = line.trim_start().trim_start_matches('-').trim_start();
    let value = rest.strip_prefix("id:")?.trim();
    Some(value.trim_matches(|c| c == '"' || c == '\''))
}

/// The id of the rule a line falls in: the last `id:` at or before it.
fn rule_around(text: &str, line: Option<usize>) -> Option<String> {
    let line = line?;
    text.lines()
        .take(line)
        .filter_map(id_on_line)
        .last()
        .map(str::to_string)
}

/// Reads `30s`, `10m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_an_error_with_line_and_rule() {
        let text = "rules:\n  - id: a.one\n    title: t\n    severity: high\n    table: commands\n    severty: low\n    match: { field: cmd, contains: x }\n";
        let err = parse_file("r.yaml", text)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.rule.as_deref(), Some("a.one"));
        assert!(err.message.contains("severty"), "{err}");
        assert!(err.line.is_some_and(|l| (2..=6).contains(&l)), "{err:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5 weeks"), None);
        assert_eq!(parse_duration("m"), None);
    }

    #[test]
    fn rule_lines_are_found() {
        let text = "rules:\n  - id: a\n    title: t\n    severity: low\n    table: commands\n    match: { field: cmd, contains: x }\n  - id: 'b'\n    title: t\n    severity: low\n    table: commands\n    match: { field: cmd, contains: y }\n";
        let file = parse_file("f", text).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<_> = file.rules.iter().map(|(_, l)| *l).collect();
        assert_eq!(lines, vec![Some(2), Some(7)]);
    }
}
