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

/// Loads and compiles the rules of `default` (the built-in pack), a file, or a folder.
pub fn compile_source(source: &str) -> Result<Engine, RuleErrors> {
    let files = load(source).map_err(RuleErrors)?;
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

/// Reads rules from `default` (the built-in pack), a `.yaml`/`.yml` file, or a folder of them.
pub fn load(source: &str) -> Result<Vec<LoadedFile>, Vec<RuleError>> {
    if source == "default" {
        return collect(
            DEFAULT_PACK
                .iter()
                .map(|(name, text)| parse_file(name, text)),
        );
    }
    let path = Path::new(source);
    let unreadable = |e: std::io::Error| {
        vec![RuleError {
            file: source.to_string(),
            line: None,
            rule: None,
            message: format!("cannot read: {e}"),
        }]
    };
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(unreadable)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        return collect(files.iter().map(|p| read(p)));
    }
    collect(std::iter::once(read(path)))
}

fn read(path: &Path) -> Result<LoadedFile, RuleError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RuleError {
        file: name.clone(),
        line: None,
        rule: None,
        message: format!("cannot read: {e}"),
    })?;
    parse_file(&name, &text)
}

fn collect(
    files: impl Iterator<Item = Result<LoadedFile, RuleError>>,
) -> Result<Vec<LoadedFile>, Vec<RuleError>> {
    let (ok, errors): (Vec<_>, Vec<_>) = files.partition(Result::is_ok);
    if errors.is_empty() {
        Ok(ok.into_iter().flatten().collect())
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
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

/// Runs every rule's `tests` cases (each case alone, so suppression and thresholds do not
/// apply) and returns the ones that failed, plus the number of cases run.
pub fn run_cases(engine: &crate::Engine) -> (usize, Vec<CaseFailure>) {
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
            let event = crate::FieldsEvent {
                table: rule.table,
                fields: case.fields(),
            };
            let matched = engine
                .matching(&event, &mut scratch)
                .iter()
                .any(|r| r.id == rule.id);
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
                    message: format!("{verb} {:?}", event.fields),
                });
            }
        }
    }
    (run, failures)
}
