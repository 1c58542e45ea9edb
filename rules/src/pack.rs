//! Where rules come from: the default pack built into the binary, files, and folders of files.

use std::path::Path;

use crate::engine::Engine;
use crate::spec::{LoadedFile, RuleError, parse_file};

/// Every problem found in a set of rules, each with its file, line and rule id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<RuleError>);

impl std::fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problem(s) in the rules:", self.0.len())?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// Loads and compiles the rules of `default` (the built-in pack), a file, or a folder; several
/// separated by commas (`default,rules/sigma`). Sigma rules that cannot be honoured are left
/// out and listed by [`Engine::refused`]; any problem in an auditq rule fails the whole set.
pub fn compile_source(source: &str) -> Result<Engine, RuleErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for part in source.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match load(part) {
            Ok(loaded) => files.extend(loaded),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }
    Engine::compile(&files).map_err(RuleErrors)
}

/// The default pack, built in so `--rules default` needs no files on disk.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "default/linux.yaml",
        include_str!("../packs/default/linux.yaml"),
    ),
    (
        "default/aws.yaml",
        include_str!("../packs/default/aws.yaml"),
    ),
    (
        "default/host.yaml",
        include_str!("../packs/default/host.yaml"),
    ),
];

/// Reads rules from `default` (the built-in pack), a `.yaml`/`.yml` file, or a folder of them
/// (and of its subfolders). Each file is auditq's format or Sigma, told apart by content.
pub fn load(source: &str) -> Result<Vec<LoadedFile>, Vec<RuleError>> {
    if source == "default" {
        return collect(
            DEFAULT_PACK
                .iter()
                .map(|(name, text)| Ok((name.to_string(), text.to_string()))),
        );
    }
    let path = Path::new(source);
    if path.is_dir() {
        let mut files = Vec::new();
        yaml_files(path, &mut files).map_err(|e| {
            vec![RuleError {
                file: source.to_string(),
                line: None,
                rule: None,
                message: format!("cannot read: {e}"),
            }]
        })?;
        files.sort();
        return collect(files.iter().map(|p| read(p)));
    }
    collect(std::iter::once(read(path)))
}

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<(String, String), RuleError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RuleError {
        file: name.clone(),
        line: None,
        rule: None,
        message: format!("cannot read: {e}"),
    })?;
    Ok((name, text))
}

/// Parses files read: auditq's format one by one, Sigma together (a correlation may name a
/// rule of another file).
fn collect(
    files: impl Iterator<Item = Result<(String, String), RuleError>>,
) -> Result<Vec<LoadedFile>, Vec<RuleError>> {
    let mut loaded = Vec::new();
    let mut sigma = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match file {
            Ok((name, text)) if crate::sigma::is_sigma(&text) => sigma.push((name, text)),
            Ok((name, text)) => match parse_file(&name, &text) {
                Ok(file) => loaded.push(file),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    loaded.extend(crate::sigma::translate(&sigma));
    Ok(loaded)
}

/// A rule's own test case that did not come out as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    /// The rule.
    pub rule: String,
    /// Where it is written.
    pub file: String,
    /// Its line.
    pub line: Option<usize>,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        write!(
            f,
            "{}{line}: rule {}: {}",
            self.file, self.rule, self.message
        )
    }
}

/// Runs every rule's `tests` cases and returns the ones that failed, plus the number of cases
/// run. Each case is evaluated alone, from empty state, by the same [`Detector`] as live
/// detection: a case of one event with suppression and thresholds left out (they need many),
/// a session case (a list of events, a second apart, one `session_id`) with everything.
///
/// [`Detector`]: crate::Detector
pub fn run_cases(engine: &std::sync::Arc<crate::Engine>) -> (usize, Vec<CaseFailure>) {
    let mut scratch = engine.scratch();
    let mut failures = Vec::new();
    let mut run = 0;
    for rule in engine.rules() {
        let cases = rule
            .tests
            .positive
            .iter()
            .map(|c| (c, true))
            .chain(rule.tests.no_match.iter().map(|c| (c, false)));
        for (case, expected) in cases {
            run += 1;
            let matched = match case {
                crate::spec::TestCase::Session(_) => session_fires(engine, rule, &case.events()),
                _ => {
                    let event = crate::FieldsEvent {
                        table: rule.table,
                        fields: case.fields(),
                    };
                    engine
                        .matching(&event, &mut scratch)
                        .iter()
                        .any(|r| r.id == rule.id && r.sequence.is_none())
                }
            };
            if matched != expected {
                let verb = if expected {
                    "must match"
                } else {
                    "must not match"
                };
                failures.push(CaseFailure {
                    rule: rule.id.clone(),
                    file: rule.file.clone(),
                    line: rule.line,
                    message: format!("{verb} {:?}", case.events()),
                });
            }
        }
    }
    (run, failures)
}

/// Whether `rule` raises an alert on a session made of `events`.
fn session_fires(
    engine: &std::sync::Arc<crate::Engine>,
    rule: &crate::Rule,
    events: &[std::collections::BTreeMap<String, String>],
) -> bool {
    let mut detector = crate::Detector::new(engine.clone(), crate::RuleState::default());
    let start = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    let mut fired = false;
    for (n, fields) in events.iter().enumerate() {
        let mut fields = fields.clone();
        let time = start + chrono::Duration::seconds(n as i64);
        fields.insert("event_id".into(), format!("case-{n}"));
        fields.insert("time".into(), time.to_rfc3339());
        fields
            .entry("session_id".into())
            .or_insert_with(|| "case".into());
        let event = crate::FieldsEvent {
            table: rule.table,
            fields,
        };
        fired |= detector
            .detect(&event, time)
            .iter()
            .any(|alert| alert.rule_id == rule.id);
    }
    fired
}
