//! Sigma rules, translated into auditq's own rules so that one engine runs both.
//!
//! A Sigma rule becomes a [`RuleSpec`]: its `logsource` picks the table and any condition the
//! source implies (`service: auditd` is `program: auditd`), its field names are mapped onto that
//! table's columns or derived fields ([`crate::fields`]), and its detection becomes a tree of
//! `all`/`any`/`not` over field tests, each a pattern of the same automaton per field as every
//! other rule. A rule therefore decides the same live, in `rules scan` and in `rules test`.
//!
//! Semantics follow the Sigma specification (v2): maps are AND, lists are OR (AND with `|all`),
//! plain strings are case-insensitive and whole-value unless a modifier says otherwise, `*` and
//! `?` are wildcards and `\*`, `\?`, `\\` escape them, `null` is an absent field, `''` an empty
//! one; `re` is case-sensitive unless `|i`. A field the log source names but auditq does not
//! record (`ParentImage` of commands, for now) is absent: a test on it never holds, exactly as
//! in a Sigma backend over logs without it, and a rule that can then never match is refused.
//!
//! What cannot be honoured is refused, with the rule and the reason, never approximated: log
//! sources auditq does not read, fields it does not know, modifiers such as `fieldref` or
//! `windash`, regular expressions outside Rust's syntax (look-around, back-references),
//! aggregation conditions, and correlations it cannot decide in real time.

use std::collections::{BTreeMap, BTreeSet};

use auditq_model::Table;
use base64::Engine as _;
use serde_norway::{Mapping, Value};

use crate::engine::Refused;
use crate::spec::{
    ConditionSpec, LoadedFile, RuleError, RuleSpec, SequenceSpec, Severity, SigmaOrigin,
    ThresholdSpec, parse_duration,
};

/// Whether a YAML text holds Sigma rules (a top-level `detection:` or `correlation:`) rather
/// than an auditq rule file (`rules:`).
pub fn is_sigma(text: &str) -> bool {
    text.lines()
        .any(|line| line.starts_with("detection:") || line.starts_with("correlation:"))
        && !text.lines().any(|line| line.starts_with("rules:"))
}

/// Translates the Sigma files of one rule source (correlations may name rules of other files
/// of the source). Every rule ends either in a file's `rules` or in its `refused`.
pub fn translate(files: &[(String, String)]) -> Vec<LoadedFile> {
    let mut documents = Vec::new();
    let mut out: Vec<LoadedFile> = Vec::new();
    for (name, text) in files {
        out.push(LoadedFile {
            file: name.clone(),
            rules: Vec::new(),
            refused: Vec::new(),
        });
        let file = out.len() - 1;
        let starts = document_lines(text);
        let stem = std::path::Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        for (n, document) in serde_norway::Deserializer::from_str(text).enumerate() {
            let line = starts.get(n).copied();
            let value = match <Value as serde::Deserialize>::deserialize(document) {
                Ok(value) => value,
                Err(e) => {
                    out[file].refused.push(refusal(
                        name,
                        e.location().map(|l| l.line()).or(line),
                        &stem,
                        "?",
                        format!("not YAML: {e}"),
                    ));
                    break;
                }
            };
            if value.is_null() {
                continue;
            }
            documents.push(Document {
                file,
                line,
                stem: if n == 0 {
                    stem.clone()
                } else {
                    format!("{stem}_{n}")
                },
                value,
            });
        }
    }
    // Base rules are looked up by `name` and `id` for correlations.
    let mut by_reference: BTreeMap<String, usize> = BTreeMap::new();
    for (i, document) in documents.iter().enumerate() {
        for key in ["name", "id"] {
            if let Some(reference) = text(document.value.get(key)) {
                by_reference.insert(reference, i);
            }
        }
    }
    let translated: Vec<Result<Translated, (String, String)>> =
        documents.iter().map(translate_rule).collect();
    let mut silenced = BTreeSet::new();
    let mut correlations = Vec::new();
    for (i, document) in documents.iter().enumerate() {
        if document.value.get("correlation").is_none() {
            continue;
        }
        let result = correlate(document, &documents, &translated, &by_reference);
        if let Ok((_, base)) = &result
            && !document
                .value
                .get("correlation")
                .and_then(|c| c.get("generate"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        {
            silenced.extend(base.iter().copied());
        }
        correlations.push((i, result.map(|(t, _)| t)));
    }
    let results = translated
        .into_iter()
        .enumerate()
        .filter(|(i, _)| documents[*i].value.get("correlation").is_none())
        .chain(correlations);
    for (i, result) in results {
        let document = &documents[i];
        let id = rule_id(document);
        match result {
            Ok(_) if silenced.contains(&i) => {}
            Ok(translated) => out[document.file]
                .rules
                .push((translated.spec, document.line)),
            Err((logsource, reason)) => {
                let file = out[document.file].file.clone();
                out[document.file].refused.push(refusal(
                    &file,
                    document.line,
                    &id,
                    &logsource,
                    reason,
                ));
            }
        }
    }
    out
}

struct Document {
    file: usize,
    line: Option<usize>,
    stem: String,
    value: Value,
}

struct Translated {
    spec: RuleSpec,
    source: &'static Source,
}

fn refusal(
    file: &str,
    line: Option<usize>,
    rule: &str,
    logsource: &str,
    reason: String,
) -> Refused {
    Refused {
        error: RuleError {
            file: file.to_string(),
            line,
            rule: Some(rule.to_string()),
            message: reason,
        },
        logsource: logsource.to_string(),
    }
}

/// The line each YAML document of a text starts on.
fn document_lines(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    for (n, line) in text.lines().enumerate() {
        if line.trim_end() == "---" && n > 0 {
            starts.push(n + 2);
        }
    }
    starts
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// auditq's id for a Sigma rule: `sigma.` and its `name`, or its file's name.
fn rule_id(document: &Document) -> String {
    let name = text(document.value.get("name")).unwrap_or_else(|| document.stem.clone());
    let name: String = name
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("sigma.{name}")
}

/// A log source auditq reads, and how Sigma's names map onto it.
struct Source {
    /// `product/category/service` as shown in reports.
    label: &'static str,
    table: Table,
    /// `program` values the source implies (none: every row of the table).
    programs: &'static [&'static str],
    /// The field keyword searches look in.
    keywords: Option<&'static str>,
    /// Sigma field name to auditq field (`Ok(None)`: a field the source defines that auditq
    /// does not record, so it is absent).
    field: fn(&str) -> Result<Option<String>, String>,
}

const SOURCES: &[Source] = &[
    Source {
        label: "aws/cloudtrail",
        table: Table::Cloudtrail,
        programs: &[],
        keywords: None,
        field: cloudtrail_field,
    },
    Source {
        label: "linux/process_creation",
        table: Table::Commands,
        programs: &[],
        keywords: Some("cmd"),
        field: process_field,
    },
    Source {
        label: "linux/auditd",
        table: Table::HostEvents,
        programs: &["auditd"],
        keywords: Some("raw"),
        field: auditd_field,
    },
    Source {
        label: "linux/file_event",
        table: Table::HostEvents,
        programs: &["auditd"],
        keywords: None,
        field: file_field,
    },
    Source {
        label: "linux/sshd",
        table: Table::HostEvents,
        programs: &["sshd"],
        keywords: Some("raw"),
        field: host_field,
    },
    Source {
        label: "linux/sudo",
        table: Table::HostEvents,
        programs: &["sudo"],
        keywords: Some("raw"),
        field: host_field,
    },
    Source {
        label: "linux/auth",
        table: Table::HostEvents,
        programs: &[],
        keywords: Some("raw"),
        field: host_field,
    },
    Source {
        label: "linux/syslog",
        table: Table::HostEvents,
        programs: &[],
        keywords: Some("raw"),
        field: host_field,
    },
    Source {
        label: "linux",
        table: Table::HostEvents,
        programs: &[],
        keywords: Some("raw"),
        field: host_field,
    },
];

fn cloudtrail_field(name: &str) -> Result<Option<String>, String> {
    let column = match name {
        "eventName" => "event_name",
        "eventSource" => "event_source",
        "eventType" => "event_type",
        "eventID" => "event_id",
        "errorCode" => "error_code",
        "errorMessage" => "error_message",
        "userAgent" => "user_agent",
        "sourceIPAddress" => "source_ip",
        "awsRegion" => "region",
        "recipientAccountId" => "account",
        "readOnly" => "read_only",
        "userIdentity.type" => "principal_type",
        "userIdentity.arn" => "principal_arn",
        "userIdentity.accessKeyId" => "access_key_id",
        "requestParameters" => "request",
        "responseElements" => "response",
        "additionalEventData" => "additional",
        "resources" => "resources",
        _ => {
            for (prefix, column) in [
                ("requestParameters.", "request."),
                ("responseElements.", "response."),
                ("additionalEventData.", "additional."),
                ("resources.", "resources."),
            ] {
                if let Some(path) = name.strip_prefix(prefix) {
                    return Ok(Some(format!("{column}{path}")));
                }
            }
            return Err(if name.starts_with("userIdentity.") {
                format!(
                    "field {name}: auditq keeps userIdentity's type, arn, accessKeyId and user \
                     name, not the rest of it"
                )
            } else {
                format!("field {name} is not a CloudTrail record field auditq keeps")
            });
        }
    };
    Ok(Some(column.to_string()))
}

/// Fields of Sigma's process_creation taxonomy that auditq does not record (yet).
const PROCESS_UNRECORDED: &[&str] = &[
    "ProcessId",
    "ParentProcessId",
    "ParentImage",
    "ParentCommandLine",
    "ParentUser",
    "LogonId",
    "LogonGuid",
    "TerminalSessionId",
    "IntegrityLevel",
    "Hashes",
    "OriginalFileName",
    "Description",
    "Product",
    "Company",
];

fn process_field(name: &str) -> Result<Option<String>, String> {
    Ok(Some(
        match name {
            "CommandLine" => "cmd",
            "Image" => "programs",
            "User" => "run_as",
            "CurrentDirectory" => "cwd",
            _ if PROCESS_UNRECORDED.contains(&name) => return Ok(None),
            _ => return Err(format!("field {name} is not a process_creation field")),
        }
        .to_string(),
    ))
}

fn auditd_field(name: &str) -> Result<Option<String>, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("field {name:?} is not an auditd record key"));
    }
    Ok(Some(format!("auditd.{name}")))
}

fn file_field(name: &str) -> Result<Option<String>, String> {
    match name {
        "TargetFilename" => Ok(Some("auditd.name".to_string())),
        "Image" => Ok(Some("auditd.exe".to_string())),
        "User" => Ok(Some("user".to_string())),
        "ProcessId" | "CreationUtcTime" | "ProcessGuid" => Ok(None),
        _ => Err(format!("field {name} is not a file_event field")),
    }
}

fn host_field(name: &str) -> Result<Option<String>, String> {
    match name {
        "USER" => Ok(Some("run_as".to_string())),
        "COMMAND" => Ok(Some("cmd".to_string())),
        "PWD" => Ok(Some("cwd".to_string())),
        "TTY" => Ok(Some("tty".to_string())),
        "pid" => Ok(Some("pid".to_string())),
        "host" | "hostname" => Ok(Some("host".to_string())),
        _ => Err(format!(
            "field {name} is not one auditq reads from host logs"
        )),
    }
}

/// The source a rule's `logsource` names, or why none.
fn source_of(logsource: Option<&Value>) -> (String, Result<&'static Source, String>) {
    let get = |key| text(logsource.and_then(|l| l.get(key))).unwrap_or_default();
    let (product, category, service) = (get("product"), get("category"), get("service"));
    let label = [product.as_str(), category.as_str(), service.as_str()]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let found = SOURCES.iter().find(|s| s.label == label);
    let result = found.ok_or_else(|| {
        format!(
            "log source {label:?} is not one auditq reads (it reads {})",
            SOURCES
                .iter()
                .map(|s| s.label)
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    (label, result)
}

fn translate_rule(document: &Document) -> Result<Translated, (String, String)> {
    let value = &document.value;
    let (label, source) = source_of(value.get("logsource"));
    if value.get("correlation").is_some() {
        return Err((label, String::new()));
    }
    let fail = |reason: String| (label.clone(), reason);
    let source = source.map_err(fail)?;
    if text(value.get("status")).as_deref() == Some("unsupported") {
        return Err(fail(
            "status: unsupported (Sigma's own mark for rules no backend can run)".into(),
        ));
    }
    let detection = value
        .get("detection")
        .and_then(Value::as_mapping)
        .ok_or_else(|| fail("no detection".into()))?;
    let condition = detection_condition(detection, source).map_err(fail)?;
    let condition = match (condition, source.programs) {
        (Expr::Spec(spec), []) => *spec,
        (Expr::Spec(spec), programs) => ConditionSpec {
            all: Some(vec![
                ConditionSpec {
                    field: Some("program".into()),
                    one_of: Some(programs.iter().map(|p| p.to_string()).collect()),
                    ..Default::default()
                },
                *spec,
            ]),
            ..Default::default()
        },
        (Expr::False, _) => {
            return Err(fail(format!(
                "can never match: every way it can match needs {}, which auditq does not record \
                 for {} (yet)",
                unrecorded(detection, source).join(" or "),
                source.table
            )));
        }
        (Expr::True, _) => {
            return Err(fail(
                "would match every event: what it tests is a field auditq does not record for \
                 this log source"
                    .into(),
            ));
        }
    };
    let spec = RuleSpec {
        id: rule_id(document),
        title: text(value.get("title")).unwrap_or_else(|| document.stem.clone()),
        severity: severity(value.get("level")).map_err(fail)?,
        table: source.table.name().to_string(),
        description: text(value.get("description")).map(|d| d.trim().to_string()),
        tags: value
            .get("tags")
            .and_then(Value::as_sequence)
            .map(|tags| tags.iter().filter_map(|t| text(Some(t))).collect())
            .unwrap_or_default(),
        condition: Some(condition),
        sequence: None,
        suppress: None,
        threshold: None,
        tests: None,
        sigma: Some(SigmaOrigin {
            logsource: source.label.to_string(),
            id: text(value.get("id"))
                .or_else(|| text(value.get("name")))
                .unwrap_or_default(),
        }),
    };
    Ok(Translated { spec, source })
}

/// The fields a detection names that its source defines but auditq does not record.
fn unrecorded(detection: &Mapping, source: &Source) -> Vec<String> {
    let mut names = BTreeSet::new();
    let mut visit = |map: &Mapping| {
        for key in map.keys().filter_map(Value::as_str) {
            let name = key.split('|').next().unwrap_or_default();
            if matches!((source.field)(name), Ok(None)) {
                names.insert(name.to_string());
            }
        }
    };
    for value in detection.values() {
        match value {
            Value::Mapping(map) => visit(map),
            Value::Sequence(items) => items
                .iter()
                .filter_map(Value::as_mapping)
                .for_each(&mut visit),
            _ => {}
        }
    }
    names.into_iter().collect()
}

fn severity(level: Option<&Value>) -> Result<Severity, String> {
    Ok(match text(level).as_deref() {
        None => Severity::Medium,
        Some("informational") => Severity::Info,
        Some("low") => Severity::Low,
        Some("medium") => Severity::Medium,
        Some("high") => Severity::High,
        Some("critical") => Severity::Critical,
        Some(other) => return Err(format!("level {other:?} is not a Sigma level")),
    })
}

/// A condition while it is built: a field auditq does not record makes a test constant.
#[derive(Debug, Clone)]
enum Expr {
    True,
    False,
    Spec(Box<ConditionSpec>),
}

impl Expr {
    fn all(parts: Vec<Expr>) -> Expr {
        Expr::join(parts, true)
    }

    fn any(parts: Vec<Expr>) -> Expr {
        Expr::join(parts, false)
    }

    /// `all` (`every`) or `any` of the parts, constants folded: a constant that decides the
    /// whole (false in `all`, true in `any`) is the result, the other is dropped.
    fn join(parts: Vec<Expr>, every: bool) -> Expr {
        let mut specs = Vec::new();
        for part in parts {
            match part {
                Expr::False if every => return Expr::False,
                Expr::True if !every => return Expr::True,
                Expr::True | Expr::False => {}
                Expr::Spec(spec) => specs.push(*spec),
            }
        }
        match specs.len() {
            0 if every => Expr::True,
            0 => Expr::False,
            1 => Expr::Spec(Box::new(specs.remove(0))),
            _ if every => Expr::Spec(Box::new(ConditionSpec {
                all: Some(specs),
                ..Default::default()
            })),
            _ => Expr::Spec(Box::new(ConditionSpec {
                any: Some(specs),
                ..Default::default()
            })),
        }
    }

    fn not(self) -> Expr {
        match self {
            Expr::True => Expr::False,
            Expr::False => Expr::True,
            Expr::Spec(spec) => Expr::Spec(Box::new(ConditionSpec {
                not: Some(spec),
                ..Default::default()
            })),
        }
    }
}

/// The rule's condition over its search identifiers.
fn detection_condition(detection: &Mapping, source: &Source) -> Result<Expr, String> {
    if detection.get("timeframe").is_some() {
        return Err(
            "timeframe outside a correlation (Sigma v1 aggregation) is not supported".into(),
        );
    }
    let mut searches: BTreeMap<String, Expr> = BTreeMap::new();
    let mut order = Vec::new();
    for (key, value) in detection {
        let Some(name) = key.as_str() else {
            return Err(format!("search identifier {key:?} is not a string"));
        };
        if name == "condition" {
            continue;
        }
        let expr = search(value, source).map_err(|e| format!("{name}: {e}"))?;
        order.push(name.to_string());
        searches.insert(name.to_string(), expr);
    }
    let conditions: Vec<String> = match detection.get("condition") {
        Some(Value::String(c)) => vec![c.clone()],
        Some(Value::Sequence(list)) => list.iter().filter_map(|c| text(Some(c))).collect(),
        _ => return Err("no condition".into()),
    };
    let mut parsed = Vec::new();
    for condition in &conditions {
        parsed.push(Condition::parse(condition, &order, &searches)?);
    }
    Ok(Expr::any(parsed))
}

/// One search identifier's value: a map (AND of fields), a list of maps (OR), or a list of
/// keywords (OR).
fn search(value: &Value, source: &Source) -> Result<Expr, String> {
    match value {
        Value::Mapping(map) => fields(map, source),
        Value::Sequence(items) if items.iter().all(|i| i.is_mapping()) => {
            let parts: Result<Vec<Expr>, String> = items
                .iter()
                .map(|i| fields(i.as_mapping().unwrap_or(&Mapping::new()), source))
                .collect();
            Ok(Expr::any(parts?))
        }
        Value::Sequence(items) => {
            let parts: Result<Vec<Expr>, String> =
                items.iter().map(|i| keyword(i, &[], source)).collect();
            Ok(Expr::any(parts?))
        }
        scalar => keyword(scalar, &[], source),
    }
}

/// A map of `field|modifiers: values`, all of which must hold.
fn fields(map: &Mapping, source: &Source) -> Result<Expr, String> {
    let mut parts = Vec::new();
    for (key, values) in map {
        let key = key
            .as_str()
            .ok_or_else(|| format!("field name {key:?} is not a string"))?;
        let mut split = key.split('|');
        let name = split.next().unwrap_or_default();
        let modifiers: Vec<&str> = split.collect();
        if name.is_empty() {
            // `'|all': [...]`: keywords with modifiers.
            let values = list(values);
            let all = modifiers.contains(&"all");
            let rest: Vec<&str> = modifiers.iter().copied().filter(|m| *m != "all").collect();
            let each: Result<Vec<Expr>, String> =
                values.iter().map(|v| keyword(v, &rest, source)).collect();
            parts.push(if all {
                Expr::all(each?)
            } else {
                Expr::any(each?)
            });
            continue;
        }
        let field = (source.field)(name)?;
        parts.push(field_test(
            name,
            field.as_deref(),
            &modifiers,
            values,
            source,
        )?);
    }
    Ok(Expr::all(parts))
}

fn list(values: &Value) -> Vec<Value> {
    match values {
        Value::Sequence(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// A keyword: the value anywhere in the source's keyword field.
fn keyword(value: &Value, modifiers: &[&str], source: &Source) -> Result<Expr, String> {
    let Some(field) = source.keywords else {
        return Err(format!(
            "keywords are not supported for log source {}",
            source.label
        ));
    };
    let modifiers: Vec<&str> = if modifiers.iter().any(|m| MATCH_KINDS.contains(m)) {
        modifiers.to_vec()
    } else {
        let mut m = modifiers.to_vec();
        m.push("contains");
        m
    };
    field_test(field, Some(field), &modifiers, value, source)
}

const MATCH_KINDS: &[&str] = &[
    "contains",
    "startswith",
    "endswith",
    "re",
    "cidr",
    "exists",
    "lt",
    "lte",
    "gt",
    "gte",
];

/// `field|modifiers: value(s)`. `field` is `None` when auditq does not record it.
fn field_test(
    name: &str,
    field: Option<&str>,
    modifiers: &[&str],
    values: &Value,
    source: &Source,
) -> Result<Expr, String> {
    let mut kind: Option<&str> = None;
    let mut all = false;
    let mut cased = false;
    let mut encode: Option<&str> = None;
    let mut flags = String::new();
    for modifier in modifiers {
        match *modifier {
            "all" => all = true,
            "cased" => cased = true,
            "base64" | "base64offset" => encode = Some(modifier),
            "fieldref" => kind = kind.or(Some("fieldref")),
            "i" | "m" | "s" | "ignorecase" | "multiline" | "dotall" => {
                flags.push(modifier.chars().next().unwrap_or('i'))
            }
            kind_name if MATCH_KINDS.contains(&kind_name) => {
                if kind.is_some() {
                    return Err(format!("{name}: two match modifiers ({modifiers:?})"));
                }
                kind = Some(kind_name);
            }
            "windash" | "wide" | "utf16" | "utf16le" | "utf16be" => {
                return Err(format!(
                    "modifier {modifier} is for Windows logs; auditq reads AWS and Linux"
                ));
            }
            other => {
                return Err(format!("modifier {other} is not supported"));
            }
        }
    }
    if !flags.is_empty() && kind != Some("re") {
        return Err(format!("{name}: regular-expression flags without re"));
    }
    if encode.is_some() && !matches!(kind, None | Some("contains" | "startswith" | "endswith")) {
        return Err(format!("{name}: base64 with {kind:?}"));
    }
    let values = list(values);
    if values.is_empty() {
        return Err(format!("{name}: an empty list of values"));
    }
    let Some(field) = field else {
        // Not recorded: absent, so every test on it is false (and `exists: false` true).
        let absent_holds = kind == Some("exists")
            && values.first().and_then(Value::as_bool) == Some(false)
            || values.iter().all(Value::is_null);
        return Ok(if absent_holds {
            Expr::True
        } else {
            Expr::False
        });
    };
    let multi = crate::fields::Accessor::parse(source.table, field)
        .map(|a| a.multi())
        .map_err(|e| format!("{name}: {e}"))?;
    let modifiers = Modifiers {
        kind,
        encode,
        cased,
        flags: &flags,
    };
    let mut leaves = Vec::new();
    for value in &values {
        leaves.push(Expr::Spec(Box::new(leaf(
            field, &modifiers, value, multi, source,
        )?)));
    }
    Ok(if all {
        Expr::all(leaves)
    } else {
        Expr::any(leaves)
    })
}

/// A field's modifiers, read.
#[derive(Clone, Copy)]
struct Modifiers<'a> {
    /// `contains`, `startswith`, `re`, ... (none: the whole value).
    kind: Option<&'a str>,
    /// `base64` or `base64offset`.
    encode: Option<&'a str>,
    /// Case-sensitive.
    cased: bool,
    /// `re`'s flags (`i`, `m`, `s`).
    flags: &'a str,
}

/// One value under one field's modifiers.
fn leaf(
    field: &str,
    modifiers: &Modifiers<'_>,
    value: &Value,
    multi: bool,
    source: &Source,
) -> Result<ConditionSpec, String> {
    let Modifiers {
        kind,
        encode,
        cased,
        flags,
    } = *modifiers;
    let base = ConditionSpec {
        field: Some(field.to_string()),
        ..Default::default()
    };
    if value.is_null() {
        if kind.is_some() {
            return Err(format!("{field}: null with a modifier"));
        }
        return Ok(ConditionSpec {
            exists: Some(false),
            ..base
        });
    }
    let number = || -> Result<f64, String> {
        match value {
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a number")),
            other => Err(format!("{other:?} is not a number")),
        }
    };
    match kind {
        Some("lt") => {
            return Ok(ConditionSpec {
                lt: Some(number()?),
                ..base
            });
        }
        Some("lte") => {
            return Ok(ConditionSpec {
                lte: Some(number()?),
                ..base
            });
        }
        Some("gt") => {
            return Ok(ConditionSpec {
                gt: Some(number()?),
                ..base
            });
        }
        Some("gte") => {
            return Ok(ConditionSpec {
                gte: Some(number()?),
                ..base
            });
        }
        Some("exists") => {
            let Some(exists) = value.as_bool() else {
                return Err(format!("{field}|exists needs true or false"));
            };
            return Ok(ConditionSpec {
                exists: Some(exists),
                ..base
            });
        }
        Some("fieldref") => {
            let other = text(Some(value)).unwrap_or_default();
            let mapped = (source.field)(&other)?;
            let other = mapped.ok_or_else(|| {
                format!("fieldref to {other}, which auditq does not record for this log source")
            })?;
            return Ok(ConditionSpec {
                same_as: Some(other),
                ..base
            });
        }
        Some("cidr") => {
            return Ok(ConditionSpec {
                cidr: Some(text(Some(value)).unwrap_or_default()),
                ..base
            });
        }
        _ => {}
    }
    let raw = text(Some(value)).ok_or_else(|| format!("{field}: value {value:?} is not text"))?;
    if kind == Some("re") {
        let pattern = if flags.is_empty() {
            raw
        } else {
            format!("(?{flags}:{raw})")
        };
        return Ok(ConditionSpec {
            regex: Some(pattern),
            ..base
        });
    }
    let case_insensitive = !cased && encode.is_none() && matches!(value, Value::String(_));
    // Plain texts (no wildcard: 99% of SigmaHQ's values) become plain-text tests, which the
    // engine answers with Aho-Corasick; the rest become patterns.
    let texts: Option<Vec<String>> = match encode {
        Some("base64") => Some(vec![
            base64::prelude::BASE64_STANDARD.encode(raw.as_bytes()),
        ]),
        Some(_) => Some(base64_offsets(raw.as_bytes())),
        None => plain(&raw).map(|t| vec![t]),
    };
    if let Some(texts) = texts.filter(|t| t.iter().all(|t| !t.is_empty())) {
        let mut tests: Vec<ConditionSpec> = texts
            .into_iter()
            .map(|text| {
                let mut test = ConditionSpec {
                    case_insensitive,
                    ..base.clone()
                };
                match kind {
                    Some("contains") => test.contains = Some(text),
                    Some("startswith") => test.prefix = Some(text),
                    Some("endswith") => test.suffix = Some(text),
                    _ => test.equals = Some(text),
                }
                test
            })
            .collect();
        return Ok(if tests.len() == 1 {
            tests.remove(0)
        } else {
            ConditionSpec {
                any: Some(tests),
                ..ConditionSpec::default()
            }
        });
    }
    let (start, end, any) = if multi {
        ("(?m:^)", "(?m:$)", "[^\\n]")
    } else {
        ("^", "$", "(?s:.)")
    };
    let body = wildcards(&raw, any);
    let pattern = match kind {
        Some("contains") => body,
        Some("startswith") => format!("{start}{body}"),
        Some("endswith") => format!("{body}{end}"),
        _ => format!("{start}{body}{end}"),
    };
    Ok(ConditionSpec {
        regex: Some(pattern),
        case_insensitive,
        ..base
    })
}

/// A Sigma string without wildcards, unescaped (`\*` is `*`); `None` when it has wildcards.
fn plain(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push(next);
                }
                _ => out.push('\\'),
            },
            '*' | '?' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

/// A Sigma string as a regular expression: `*` any run of characters, `?` one, and `\*`,
/// `\?`, `\\` the characters themselves; any other backslash is a backslash.
fn wildcards(value: &str, any: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push_str(&regex_syntax::escape(&next.to_string()));
                }
                _ => out.push_str("\\\\"),
            },
            '*' => {
                out.push_str(any);
                out.push('*');
            }
            '?' => out.push_str(any),
            other => out.push_str(&regex_syntax::escape(&other.to_string())),
        }
    }
    out
}

/// The three base64 forms of `value` at byte offsets 0, 1 and 2 of the encoded data, trimmed
/// to the characters that do not depend on the bytes around it (Sigma's `base64offset`).
fn base64_offsets(value: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(value);
            let encoded = base64::prelude::BASE64_STANDARD.encode(&padded);
            let end = encoded.len().saturating_sub(END[(value.len() + i) % 3]);
            encoded.get(START[i]..end).unwrap_or_default().to_string()
        })
        .collect()
}

/// A Sigma condition: `selection and not 1 of filter_*`.
struct Condition<'a> {
    tokens: Vec<String>,
    at: usize,
    order: &'a [String],
    searches: &'a BTreeMap<String, Expr>,
}

impl<'a> Condition<'a> {
    fn parse(
        text: &str,
        order: &'a [String],
        searches: &'a BTreeMap<String, Expr>,
    ) -> Result<Expr, String> {
        if text.contains('|') {
            return Err(format!(
                "condition {text:?} aggregates (Sigma v1 `| count()`); write it as a correlation"
            ));
        }
        let tokens = text
            .replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut parser = Condition {
            tokens,
            at: 0,
            order,
            searches,
        };
        let expr = parser.or()?;
        if parser.at != parser.tokens.len() {
            return Err(format!(
                "condition {text:?}: unexpected {:?}",
                parser.tokens[parser.at]
            ));
        }
        Ok(expr)
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self) -> Result<Expr, String> {
        Ok(Expr::any(self.joined("or", Self::and)?))
    }

    fn and(&mut self) -> Result<Expr, String> {
        Ok(Expr::all(self.joined("and", Self::not)?))
    }

    /// `part (word part)*`: the parts, each read by `part`.
    fn joined(
        &mut self,
        word: &str,
        part: fn(&mut Self) -> Result<Expr, String>,
    ) -> Result<Vec<Expr>, String> {
        let mut parts = vec![part(self)?];
        while self.peek() == Some(word) {
            self.at += 1;
            parts.push(part(self)?);
        }
        Ok(parts)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek() == Some("not") {
            self.at += 1;
            return Ok(self.not()?.not());
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let Some(token) = self.next() else {
            return Err("condition ends too early".into());
        };
        match token.as_str() {
            "(" => {
                let inner = self.or()?;
                if self.next().as_deref() != Some(")") {
                    return Err("condition: unbalanced parentheses".into());
                }
                Ok(inner)
            }
            "all" | "any" | "1" if self.peek() == Some("of") => {
                self.at += 1;
                let pattern = self
                    .next()
                    .ok_or_else(|| "condition: `of` without a name".to_string())?;
                let names: Vec<&String> = self
                    .order
                    .iter()
                    .filter(|name| {
                        if pattern == "them" {
                            !name.starts_with('_')
                        } else {
                            glob(&pattern, name)
                        }
                    })
                    .collect();
                if names.is_empty() {
                    return Err(format!(
                        "condition: no search identifier matches {pattern:?}"
                    ));
                }
                let parts: Vec<Expr> = names
                    .iter()
                    .filter_map(|n| self.searches.get(*n).cloned())
                    .collect();
                Ok(if token == "all" {
                    Expr::all(parts)
                } else {
                    Expr::any(parts)
                })
            }
            name => self
                .searches
                .get(name)
                .cloned()
                .ok_or_else(|| format!("condition names {name:?}, which the detection lacks")),
        }
    }
}

/// A condition's `selection_*` against a search identifier.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (head.len()..=name.len())
                    .any(|i| name.is_char_boundary(i) && glob(tail, &name[i..]))
        }
    }
}

/// A correlation rule, on top of the rules it names; the base rules' indices too.
fn correlate(
    document: &Document,
    documents: &[Document],
    translated: &[Result<Translated, (String, String)>],
    by_reference: &BTreeMap<String, usize>,
) -> Result<(Translated, Vec<usize>), (String, String)> {
    let value = &document.value;
    let correlation = value.get("correlation").unwrap_or(&Value::Null);
    let kind = text(correlation.get("type")).unwrap_or_default();
    let label = format!("correlation/{kind}");
    let fail = |reason: String| (label.clone(), reason);
    let references: Vec<String> = match correlation.get("rules") {
        Some(Value::Sequence(items)) => items.iter().filter_map(|i| text(Some(i))).collect(),
        Some(single) => text(Some(single)).into_iter().collect(),
        None => Vec::new(),
    };
    if references.is_empty() {
        return Err(fail("a correlation names no rules".into()));
    }
    let mut base = Vec::new();
    let mut conditions = Vec::new();
    let mut source: Option<&'static Source> = None;
    for reference in &references {
        let index = *by_reference.get(reference).ok_or_else(|| {
            fail(format!(
                "names rule {reference:?}, which is not in the rule source"
            ))
        })?;
        if documents[index].value.get("correlation").is_some() {
            return Err(fail(format!(
                "names correlation {reference:?}: correlations of correlations are not supported"
            )));
        }
        let rule = translated[index].as_ref().map_err(|(_, why)| {
            fail(format!("names rule {reference:?}, which is refused: {why}"))
        })?;
        if source.is_some_and(|s| s.table != rule.source.table) {
            return Err(fail("names rules of different tables".into()));
        }
        source = Some(rule.source);
        conditions.push(rule.spec.condition.clone().unwrap_or_default());
        base.push(index);
    }
    let Some(source) = source else {
        return Err(fail("a correlation names no rules".into()));
    };
    let map_field = |name: &str| -> Result<String, (String, String)> {
        match (source.field)(name) {
            Ok(Some(field)) => Ok(field),
            Ok(None) => Err(fail(format!(
                "field {name} is not recorded for {}",
                source.label
            ))),
            Err(e) => Err(fail(e)),
        }
    };
    let by: Vec<String> = match correlation.get("group-by") {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| text(Some(i)))
            .map(|f| map_field(&f))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(fail("group-by must be a list".into())),
        None => Vec::new(),
    };
    let timespan = text(correlation.get("timespan")).unwrap_or_default();
    if parse_duration(&timespan).is_none() {
        return Err(fail(format!(
            "timespan {timespan:?} is not a duration like 30s, 10m, 2h, 1d"
        )));
    }
    let steps = conditions.clone();
    let any = if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        ConditionSpec {
            any: Some(conditions.clone()),
            ..Default::default()
        }
    };
    let mut spec = RuleSpec {
        id: rule_id(document),
        title: text(value.get("title")).unwrap_or_else(|| document.stem.clone()),
        severity: severity(value.get("level")).map_err(fail)?,
        table: source.table.name().to_string(),
        description: text(value.get("description")).map(|d| d.trim().to_string()),
        tags: Vec::new(),
        condition: None,
        sequence: None,
        suppress: None,
        threshold: None,
        tests: None,
        sigma: Some(SigmaOrigin {
            logsource: label.clone(),
            id: text(value.get("id")).unwrap_or_default(),
        }),
    };
    match kind.as_str() {
        "event_count" | "value_count" => {
            let condition = correlation
                .get("condition")
                .and_then(Value::as_mapping)
                .ok_or_else(|| fail("no condition".into()))?;
            let mut count = None;
            let mut distinct = None;
            for (key, bound) in condition {
                let bound_number = bound.as_u64().and_then(|n| u32::try_from(n).ok());
                match (key.as_str(), bound_number) {
                    (Some("gte"), Some(n)) => count = Some(n),
                    (Some("gt"), Some(n)) => count = Some(n.saturating_add(1)),
                    (Some("field"), _) if kind == "value_count" => {
                        distinct = Some(map_field(&text(Some(bound)).unwrap_or_default())?)
                    }
                    (Some(other @ ("lt" | "lte" | "eq" | "neq")), _) => {
                        return Err(fail(format!(
                            "condition {other}: counts below or equal to a number need the \
                             absence of events at the window's end, which real-time thresholds \
                             do not decide"
                        )));
                    }
                    (other, _) => {
                        return Err(fail(format!("condition {other:?} is not supported")));
                    }
                }
            }
            let Some(count) = count.filter(|c| *c > 0) else {
                return Err(fail("condition needs gte or gt of at least 1".into()));
            };
            if kind == "value_count" && distinct.is_none() {
                return Err(fail("value_count needs condition.field".into()));
            }
            spec.condition = Some(any);
            spec.threshold = Some(ThresholdSpec {
                count,
                within: timespan,
                by,
                distinct,
            });
        }
        "temporal" | "temporal_ordered" => {
            if steps.len() < 2 {
                return Err(fail(
                    "a temporal correlation needs at least two rules".into(),
                ));
            }
            spec.sequence = Some(SequenceSpec {
                by,
                within: timespan,
                ordered: kind == "temporal_ordered",
                steps,
            });
        }
        other => return Err(fail(format!("correlation type {other:?} is not supported"))),
    }
    Ok((Translated { spec, source }, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_escapes() {
        assert_eq!(wildcards("a*b?c", "."), "a.*b.c");
        assert_eq!(wildcards(r"a\*b\?c\\d\e", "."), r"a\*b\?c\\d\\e");
        assert_eq!(wildcards("1.2", "."), r"1\.2");
    }

    #[test]
    fn plain_texts_are_unescaped() {
        assert_eq!(plain(r"a\*b\?c\\d\e").as_deref(), Some(r"a*b?c\d\e"));
        assert_eq!(plain("a*b"), None);
        assert_eq!(plain("a?"), None);
    }

    #[test]
    fn base64_offsets_match_sigma() {
        // pySigma's values for `base64offset|contains: /bin/bash`.
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            ["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
    }

    #[test]
    fn globs() {
        assert!(glob("selection_*", "selection_a"));
        assert!(glob("sel*", "sel"));
        assert!(!glob("filter_*", "selection"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }
}
