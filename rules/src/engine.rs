//! Compiles rules into one automaton per (table, field) and decides rules from match sets.
//!
//! Every field test (`regex`, `prefix`, `suffix`, `contains`, `equals`, `in`) becomes a pattern;
//! the patterns of all rules on one field of one table are compiled together, twice: a
//! leftmost-first `meta::Regex` answers "does any pattern match?" (the common answer for a
//! command line is no, and this pass is several times cheaper), and a `MatchKind::All` one
//! answers "which patterns match?" in one overlapping scan. Rules are then decided from those
//! pattern sets without touching the text again. The cost per event is therefore one or two
//! scans per field, whatever the number of rules.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use auditq_model::{Alert, Command, HostEvent, Row, Session, Table, Timestamp, TrailEvent};
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};

use crate::fields::Accessor;
use crate::gate::{self, Test};
use crate::literal::{Anchor, Literal, Literals};
use crate::spec::{
    ConditionSpec, LoadedFile, RuleError, RuleSpec, SequenceSpec, Severity, SigmaOrigin, TestsSpec,
    parse_duration,
};

/// Limits on user-supplied patterns, so a rule file cannot exhaust memory or time.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest pattern text, in bytes.
    pub max_pattern_bytes: usize,
    /// Most patterns in all rules.
    pub max_patterns: usize,
    /// Deepest nesting of groups and repetitions in one pattern.
    pub nest_limit: u32,
    /// Largest compiled NFA of one pattern, in bytes.
    pub pattern_nfa_bytes: usize,
    /// Largest compiled NFA of all patterns on one field, in bytes.
    pub field_nfa_bytes: usize,
    /// Lazy DFA cache per field, in bytes: too small and the DFA thrashes with many patterns.
    pub dfa_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pattern_bytes: 4096,
            max_patterns: 10_000,
            nest_limit: 64,
            pattern_nfa_bytes: 2 << 20,
            field_nfa_bytes: 256 << 20,
            dfa_cache_bytes: 32 << 20,
        }
    }
}

/// What a rule reads an event through: its table and its fields as text.
pub trait EventView {
    /// The table the event belongs to.
    fn table(&self) -> Table;
    /// A field as text (`None` when null or unknown).
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The event's id.
    fn event_id(&self) -> Cow<'_, str> {
        self.field(self.table().id_column())
            .unwrap_or(Cow::Borrowed(""))
    }
    /// When the event happened.
    fn time(&self) -> Option<Timestamp> {
        ["time", "started_at", "ended_at"]
            .iter()
            .find_map(|name| self.field(name))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.to_utc())
    }
}

impl<R: Row> EventView for R {
    fn table(&self) -> Table {
        R::TABLE
    }
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        Row::field(self, name)
    }
    fn event_id(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.id())
    }
}

/// An event given as field values (`auditq rules test --event`, rule test cases).
#[derive(Debug, Clone)]
pub struct FieldsEvent {
    /// Its table.
    pub table: Table,
    /// Its fields.
    pub fields: BTreeMap<String, String>,
}

impl EventView for FieldsEvent {
    fn table(&self) -> Table {
        self.table
    }
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.fields.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// The columns of a table, as rules may name them.
pub fn table_fields(table: Table) -> &'static [&'static str] {
    match table {
        Table::Commands => Command::FIELDS,
        Table::Sessions => Session::FIELDS,
        Table::Cloudtrail => TrailEvent::FIELDS,
        Table::HostEvents => HostEvent::FIELDS,
        Table::Alerts => Alert::FIELDS,
        Table::Rejects | Table::Positions | Table::Names | Table::AccessLog => &[],
    }
}

/// A compiled condition: leaves point at a pattern of a field.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Every one holds.
    All(Vec<Condition>),
    /// At least one holds.
    Any(Vec<Condition>),
    /// Does not hold.
    Not(Box<Condition>),
    /// Pattern `pattern` of field slot `slot` matched.
    Leaf {
        /// The field's slot in its table.
        slot: usize,
        /// The pattern's index in that field's automaton.
        pattern: usize,
    },
    /// One of these patterns of field slot `slot` matched (a Sigma value list: `any` of
    /// leaves on one field, decided from the few tests that passed rather than leaf by leaf).
    AnyOf {
        /// The field's slot in its table.
        slot: usize,
        /// The patterns, sorted.
        patterns: Vec<usize>,
    },
    /// A test no automaton answers (a network, a number), made on the field's value.
    Check {
        /// The field.
        field: Accessor,
        /// The test.
        check: Check,
    },
}

/// A test on a value that is not a pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The value is an address in this network.
    Cidr {
        /// The network's address.
        network: std::net::IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
    /// The value equals a value of another field.
    SameAs(Accessor),
    /// The value is a number `op` this one.
    Compare {
        /// `<`, `<=`, `>`, `>=`.
        op: &'static str,
        /// The number.
        value: f64,
    },
}

impl Check {
    /// Whether one value passes.
    pub fn holds(&self, value: &str) -> bool {
        match self {
            Check::Cidr { network, prefix } => {
                let Ok(address) = value.trim().parse::<std::net::IpAddr>() else {
                    return false;
                };
                let (address, network, bits) = match (address, network) {
                    (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => {
                        (u128::from(u32::from(a)), u128::from(u32::from(*n)), 32)
                    }
                    (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) => {
                        (u128::from(a), u128::from(*n), 128)
                    }
                    _ => return false,
                };
                let shift = bits - u32::from(*prefix).min(bits);
                let high = |x: u128| x.checked_shr(shift).unwrap_or(0);
                shift == bits || high(address) == high(network)
            }
            // Needs the event: decided by `check_event`.
            Check::SameAs(_) => false,
            Check::Compare { op, value: bound } => {
                let Ok(number) = value.trim().parse::<f64>() else {
                    return false;
                };
                match *op {
                    "<" => number < *bound,
                    "<=" => number <= *bound,
                    ">" => number > *bound,
                    _ => number >= *bound,
                }
            }
        }
    }
}

impl Condition {
    /// Whether the condition holds, given the tests that passed on the event.
    fn eval(&self, tests: &[FieldScratch], check: &dyn Fn(&Accessor, &Check) -> bool) -> bool {
        match self {
            Condition::All(parts) => parts.iter().all(|c| c.eval(tests, check)),
            Condition::Any(parts) => parts.iter().any(|c| c.eval(tests, check)),
            Condition::Not(inner) => !inner.eval(tests, check),
            Condition::Leaf { slot, pattern } => passed(tests, *slot, *pattern),
            Condition::AnyOf { slot, patterns } => {
                let hits = tests.get(*slot).map_or(&[][..], |t| t.hits.as_slice());
                if hits.len() < patterns.len() {
                    hits.iter().any(|hit| patterns.binary_search(hit).is_ok())
                } else {
                    patterns.iter().any(|p| passed(tests, *slot, *p))
                }
            }
            Condition::Check { field, check: c } => check(field, c),
        }
    }

    fn has_check(&self) -> bool {
        match self {
            Condition::All(parts) | Condition::Any(parts) => parts.iter().any(Self::has_check),
            Condition::Not(inner) => inner.has_check(),
            Condition::Leaf { .. } | Condition::AnyOf { .. } => false,
            Condition::Check { .. } => true,
        }
    }

    /// The same condition with each `any` of three or more leaves on one field as one
    /// [`Condition::AnyOf`].
    fn gathered(self) -> Condition {
        match self {
            Condition::All(parts) => {
                Condition::All(parts.into_iter().map(Condition::gathered).collect())
            }
            Condition::Not(inner) => Condition::Not(Box::new(inner.gathered())),
            Condition::Any(parts) => {
                let parts: Vec<Condition> = parts.into_iter().map(Condition::gathered).collect();
                let leaves: Option<Vec<(usize, usize)>> = parts
                    .iter()
                    .map(|p| match p {
                        Condition::Leaf { slot, pattern } => Some((*slot, *pattern)),
                        _ => None,
                    })
                    .collect();
                match leaves {
                    Some(leaves)
                        if leaves.len() >= 3 && leaves.iter().all(|(s, _)| *s == leaves[0].0) =>
                    {
                        let mut patterns: Vec<usize> = leaves.iter().map(|(_, p)| *p).collect();
                        patterns.sort_unstable();
                        patterns.dedup();
                        Condition::AnyOf {
                            slot: leaves[0].0,
                            patterns,
                        }
                    }
                    _ => Condition::Any(parts),
                }
            }
            other => other,
        }
    }
}

/// Whether test `pattern` of the field in `slot` passed on the event last matched.
fn passed(caches: &[FieldScratch], slot: usize, pattern: usize) -> bool {
    caches
        .get(slot)
        .is_some_and(|c| c.set.get(pattern).copied().unwrap_or(false))
}

/// Whether a check holds on an event: on one of the field's values.
fn check_event(event: &dyn EventView, field: &Accessor, check: &Check) -> bool {
    if let Check::SameAs(other) = check {
        let (Some(mine), Some(theirs)) = (field.read(event), other.read(event)) else {
            return false;
        };
        return mine.lines().any(|v| theirs.lines().any(|t| t == v));
    }
    field
        .read(event)
        .is_some_and(|text| text.lines().any(|value| check.holds(value)))
}

/// `suppress` or `threshold` key and window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Fields forming the key.
    pub by: Vec<String>,
    /// The window.
    pub window: Duration,
}

/// `threshold`: how many matches, or distinct values, within a window.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// Matches (or distinct values) needed.
    pub count: u32,
    /// Key and window.
    pub window: Window,
    /// Count distinct values of this field instead of matches.
    pub distinct: Option<Accessor>,
}

/// `sequence`: steps seen under one key within a window.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// The steps.
    pub steps: Vec<Condition>,
    /// Key and window (from the first step to the last).
    pub window: Window,
    /// Whether the order of the steps matters.
    pub ordered: bool,
}

/// A rule that could not be honoured and was left out, and why: a Sigma rule whose log
/// source, field, modifier or pattern auditq cannot read as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The rule's id (as auditq would have named it), file and line.
    pub error: RuleError,
    /// Its Sigma log source.
    pub logsource: String,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// One line for people.
    pub title: String,
    /// How bad.
    pub severity: Severity,
    /// The table it reads.
    pub table: Table,
    /// What to do about it.
    pub description: Option<String>,
    /// ATT&CK ids and labels.
    pub tags: Vec<String>,
    /// The condition.
    pub condition: Condition,
    /// At most one alert per key per window.
    pub suppress: Option<Window>,
    /// Alert when enough matches (or distinct values) fall in the window, per key.
    pub threshold: Option<Threshold>,
    /// Alert when the steps are seen (in order, unless said otherwise) within the window, per
    /// key. The rule's `condition` is then "any step".
    pub sequence: Option<Sequence>,
    /// The Sigma rule it was translated from.
    pub sigma: Option<SigmaOrigin>,
    /// Its test cases.
    pub tests: TestsSpec,
    /// Where it was written.
    pub file: String,
    /// Its line there.
    pub line: Option<usize>,
}

#[derive(Debug)]
struct FieldMatcher {
    name: String,
    accessor: Accessor,
    /// Every test of the field as a pattern (what `explain` shows and checks).
    patterns: Vec<String>,
    /// The plain-text tests searched on every event (the others open on a gate).
    literals: Literals,
    /// The other tests, as regular expressions: most in one group, each large one alone.
    regexes: Vec<RegexTests>,
    /// Rules with a leaf on each pattern.
    rules_of_pattern: Vec<Vec<usize>>,
}

/// A field's tests that are not plain text: one automaton for "any?", one for "which?".
#[derive(Debug)]
struct RegexTests {
    any: Regex,
    which: Regex,
    /// The field's pattern index of each of their patterns.
    ids: Vec<usize>,
    /// Searched only when one of these tests passed (`None`: on every event).
    gates: Option<Vec<Test>>,
}

#[derive(Debug, Default)]
struct TableRules {
    fields: Vec<FieldMatcher>,
    /// The field whose plain-text tests open others (see [`crate::gate`]).
    gate_slot: Option<usize>,
    /// For each test of that field (by pattern index): the plain-text tests it opens, by
    /// field slot.
    opens: Vec<Vec<(usize, Literals)>>,
    /// Rules that can hold when no pattern matched (a bare `not`, a check): decided on every
    /// event.
    always: Vec<usize>,
}

/// The compiled rule set.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    tables: BTreeMap<Table, TableRules>,
    patterns: usize,
    limits: Limits,
    refused: Vec<Refused>,
}

/// Per-thread search state of an [`Engine`].
#[derive(Debug)]
pub struct Scratch {
    tables: BTreeMap<Table, Vec<FieldScratch>>,
    candidates: Vec<usize>,
}

#[derive(Debug)]
struct FieldScratch {
    /// For each group of regular expressions: its caches and which of them matched.
    groups: Vec<(meta::Cache, meta::Cache, PatternSet)>,
    /// Which of the field's tests passed.
    set: Vec<bool>,
    /// The same, as a list (a set of thousands of tests is slow to walk).
    hits: Vec<usize>,
}

impl FieldScratch {
    /// Forgets the tests of the last event (only those set: the set may hold thousands).
    fn clear(&mut self) {
        for pattern in self.hits.drain(..) {
            self.set[pattern] = false;
        }
    }

    /// Notes that a test passed.
    fn record(&mut self, pattern: usize) {
        record(&mut self.set, &mut self.hits, pattern);
    }
}

/// Notes in a field's scratch (its set and list) that test `pattern` passed.
fn record(set: &mut [bool], hits: &mut Vec<usize>, pattern: usize) {
    if let Some(flag) = set.get_mut(pattern)
        && !*flag
    {
        *flag = true;
        hits.push(pattern);
    }
}

/// Fields in the order rules first name them: a field's slot in its table never changes as
/// later rules add fields.
#[derive(Default, Clone)]
struct FieldRegistry {
    order: Vec<(Table, String, Accessor)>,
    patterns: Vec<FieldPatterns>,
}

impl FieldRegistry {
    /// The field's patterns and its slot in its table.
    fn entry(
        &mut self,
        table: Table,
        name: &str,
        accessor: &Accessor,
    ) -> (&mut FieldPatterns, usize) {
        let at = self
            .order
            .iter()
            .position(|(t, n, _)| *t == table && n == name);
        let at = at.unwrap_or_else(|| {
            self.order.push((table, name.to_string(), accessor.clone()));
            self.patterns.push(FieldPatterns::default());
            self.order.len() - 1
        });
        let slot = self.order[..at]
            .iter()
            .filter(|(t, _, _)| *t == table)
            .count();
        (&mut self.patterns[at], slot)
    }
}

/// Patterns of one field being collected, deduplicated.
#[derive(Default, Clone)]
struct FieldPatterns {
    patterns: Vec<String>,
    /// The plain-text form of each pattern, when it has one.
    literals: Vec<Option<Literal>>,
    index: HashMap<String, usize>,
    rules: Vec<BTreeSet<usize>>,
}

impl Engine {
    /// Compiles the rules of some files with default limits.
    pub fn compile(files: &[LoadedFile]) -> Result<Engine, Vec<RuleError>> {
        Engine::compile_with(files, &Limits::default())
    }

    /// Compiles the rules of some files. Every problem is reported, not just the first.
    pub fn compile_with(files: &[LoadedFile], limits: &Limits) -> Result<Engine, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut seen: HashMap<String, (String, Option<usize>)> = HashMap::new();
        let mut fields = FieldRegistry::default();
        let mut total_patterns = 0;
        let mut refused: Vec<Refused> = files.iter().flat_map(|f| f.refused.clone()).collect();
        for file in files {
            for (spec, line) in &file.rules {
                let error = |message: String| RuleError {
                    file: file.file.clone(),
                    line: *line,
                    rule: Some(spec.id.clone()),
                    message,
                };
                if let Some((other, other_line)) = seen.get(&spec.id) {
                    let at = other_line.map(|l| format!(":{l}")).unwrap_or_default();
                    errors.push(error(format!("duplicate rule id (first in {other}{at})")));
                    continue;
                }
                seen.insert(spec.id.clone(), (file.file.clone(), *line));
                let index = rules.len();
                // A rule's patterns are added to the fields only once it is known to be whole,
                // so a refused Sigma rule leaves nothing behind.
                let mut trial = fields.clone();
                let mut builder = RuleBuilder {
                    spec,
                    index,
                    limits,
                    fields: &mut trial,
                    problems: Vec::new(),
                    patterns_added: 0,
                };
                let rule = builder.build(&file.file, *line);
                let added = builder.patterns_added;
                let problems = std::mem::take(&mut builder.problems);
                match (problems.is_empty(), &spec.sigma) {
                    (true, _) => {
                        if let Some(rule) = rule {
                            fields = trial;
                            total_patterns += added;
                            rules.push(rule);
                        }
                    }
                    (false, Some(origin)) => {
                        seen.remove(&spec.id);
                        refused.push(Refused {
                            error: error(problems.join("; ")),
                            logsource: origin.logsource.clone(),
                        });
                    }
                    (false, None) => errors.extend(problems.into_iter().map(error)),
                }
            }
        }
        if total_patterns > limits.max_patterns {
            errors.push(RuleError {
                file: files.first().map(|f| f.file.clone()).unwrap_or_default(),
                line: None,
                rule: None,
                message: format!(
                    "{total_patterns} patterns in all exceed the limit of {}",
                    limits.max_patterns
                ),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Each table's fields in slot order.
        let mut by_table: BTreeMap<Table, Vec<(String, Accessor, FieldPatterns)>> = BTreeMap::new();
        for ((table, name, accessor), collected) in fields.order.into_iter().zip(fields.patterns) {
            by_table
                .entry(table)
                .or_default()
                .push((name, accessor, collected));
        }
        let mut tables: BTreeMap<Table, TableRules> = BTreeMap::new();
        for (table, table_fields) in by_table {
            let gating = Gating::plan(&table_fields, &rules);
            let compiled = &mut tables.entry(table).or_default();
            for (slot, (name, accessor, collected)) in table_fields.iter().enumerate() {
                match compile_field(slot, name, accessor, collected, &gating, limits) {
                    Ok((matcher, opens)) => {
                        compiled.fields.push(matcher);
                        for (gate, literals) in opens {
                            if compiled.opens.len() <= gate {
                                compiled.opens.resize_with(gate + 1, Vec::new);
                            }
                            compiled.opens[gate].push((slot, literals));
                        }
                    }
                    Err((what, e)) => errors.push(RuleError {
                        file: files.first().map(|f| f.file.clone()).unwrap_or_default(),
                        line: None,
                        rule: None,
                        message: format!("the {what} on {table}.{name} together: {e}"),
                    }),
                }
            }
            compiled.gate_slot = gating.slot;
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for (index, rule) in rules.iter().enumerate() {
            let table = tables.entry(rule.table).or_default();
            if rule.condition.has_check() || rule.condition.eval(&[], &|_, _| false) {
                table.always.push(index);
            }
        }
        Ok(Engine {
            rules,
            tables,
            patterns: total_patterns,
            limits: *limits,
            refused,
        })
    }

    /// The Sigma rules left out, each with why.
    pub fn refused(&self) -> &[Refused] {
        &self.refused
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Patterns compiled, before deduplication.
    pub fn pattern_count(&self) -> usize {
        self.patterns
    }

    /// Fresh search state for this engine (one per thread).
    pub fn scratch(&self) -> Scratch {
        Scratch {
            tables: self
                .tables
                .iter()
                .map(|(table, rules)| {
                    let fields = rules
                        .fields
                        .iter()
                        .map(|f| FieldScratch {
                            groups: f
                                .regexes
                                .iter()
                                .map(|r| {
                                    (
                                        r.any.create_cache(),
                                        r.which.create_cache(),
                                        PatternSet::new(r.which.pattern_len()),
                                    )
                                })
                                .collect(),
                            set: vec![false; f.patterns.len()],
                            hits: Vec::new(),
                        })
                        .collect();
                    (*table, fields)
                })
                .collect(),
            candidates: Vec::new(),
        }
    }

    /// Whether any rule on the event's table could match it (the cheap first pass). Tests
    /// behind a gate need not be searched: they open only when a test already passed.
    pub fn any_match(&self, event: &dyn EventView, scratch: &mut Scratch) -> bool {
        let Some(table) = self.tables.get(&event.table()) else {
            return false;
        };
        if !table.always.is_empty() {
            return true;
        }
        let Some(caches) = scratch.tables.get_mut(&event.table()) else {
            return false;
        };
        table.fields.iter().zip(caches).any(|(field, cache)| {
            field.accessor.read(event).is_some_and(|text| {
                let mut hit = false;
                field.literals.each_hit(&text, |_| {
                    hit = true;
                    true
                });
                hit || field
                    .regexes
                    .iter()
                    .zip(cache.groups.iter_mut())
                    .filter(|(regexes, _)| regexes.gates.is_none())
                    .any(|(regexes, (any, _, _))| {
                        regexes
                            .any
                            .search_half_with(any, &Input::new(text.as_ref()).earliest(true))
                            .is_some()
                    })
            })
        })
    }

    /// The rules that match the event, in rule order.
    ///
    /// Every field's ungated plain texts are searched first, then the texts the gate field's
    /// passing tests open, then the regular expressions (gated ones only when a gate passed);
    /// rules are decided from the tests that passed.
    pub fn matching<'e>(&'e self, event: &dyn EventView, scratch: &mut Scratch) -> Vec<&'e Rule> {
        let Some(table) = self.tables.get(&event.table()) else {
            return Vec::new();
        };
        let Some(caches) = scratch.tables.get_mut(&event.table()) else {
            return Vec::new();
        };
        let texts: Vec<Option<Cow<'_, str>>> = table
            .fields
            .iter()
            .map(|f| f.accessor.read(event))
            .collect();
        for ((field, cache), text) in table.fields.iter().zip(caches.iter_mut()).zip(&texts) {
            cache.clear();
            if let Some(text) = text {
                field.literals.each_hit(text, |pattern| {
                    cache.record(pattern);
                    false
                });
            }
        }
        if let Some(gate_slot) = table.gate_slot {
            let mut k = 0;
            while let Some(&gate) = caches.get(gate_slot).and_then(|c| c.hits.get(k)) {
                k += 1;
                for (slot, literals) in table.opens.get(gate).into_iter().flatten() {
                    if let (Some(Some(text)), Some(cache)) =
                        (texts.get(*slot), caches.get_mut(*slot))
                    {
                        literals.each_hit(text, |pattern| {
                            cache.record(pattern);
                            false
                        });
                    }
                }
            }
        }
        for (slot, (field, text)) in table.fields.iter().zip(&texts).enumerate() {
            let Some(text) = text else { continue };
            let input = Input::new(text.as_ref());
            for (group, regexes) in field.regexes.iter().enumerate() {
                if let Some(gates) = &regexes.gates
                    && !gates.iter().any(|(s, p)| passed(caches, *s, *p))
                {
                    continue;
                }
                let FieldScratch {
                    groups, set, hits, ..
                } = &mut caches[slot];
                let (any, which, which_set) = &mut groups[group];
                if regexes
                    .any
                    .search_half_with(any, &input.clone().earliest(true))
                    .is_none()
                {
                    continue;
                }
                if let [pattern] = regexes.ids.as_slice() {
                    // Alone in its group: the first search said which.
                    record(set, hits, *pattern);
                    continue;
                }
                which_set.clear();
                regexes
                    .which
                    .which_overlapping_matches_with(which, &input, which_set);
                for found in which_set.iter() {
                    if let Some(pattern) = regexes.ids.get(found.as_usize()) {
                        record(set, hits, *pattern);
                    }
                }
            }
        }
        let candidates = &mut scratch.candidates;
        candidates.clear();
        candidates.extend_from_slice(&table.always);
        for (field, cache) in table.fields.iter().zip(caches.iter()) {
            for pattern in &cache.hits {
                candidates.extend_from_slice(&field.rules_of_pattern[*pattern]);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let caches = &*caches;
        let check = |field: &Accessor, check: &Check| check_event(event, field, check);
        candidates
            .iter()
            .map(|&i| &self.rules[i])
            .filter(|rule| rule.condition.eval(caches, &check))
            .collect()
    }

    /// The steps of a sequence rule that the event last given to [`Engine::matching`] with
    /// this scratch satisfies, in step order.
    pub fn steps_matched(
        &self,
        rule: &Rule,
        event: &dyn EventView,
        scratch: &Scratch,
    ) -> Vec<usize> {
        let (Some(sequence), Some(caches)) = (&rule.sequence, scratch.tables.get(&rule.table))
        else {
            return Vec::new();
        };
        let check = |field: &Accessor, check: &Check| check_event(event, field, check);
        sequence
            .steps
            .iter()
            .enumerate()
            .filter(|(_, step)| step.eval(caches, &check))
            .map(|(i, _)| i)
            .collect()
    }
}

/// One field test of a rule and whether it held for an event: why a rule matched or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// The field.
    pub field: String,
    /// The pattern the test compiled to.
    pub pattern: String,
    /// The field's value, when present.
    pub value: Option<String>,
    /// Whether the pattern matched.
    pub hit: bool,
}

impl Engine {
    /// Each field test of `rule` on `event`, in the order written.
    pub fn explain(&self, rule: &Rule, event: &dyn EventView) -> Vec<Explained> {
        let mut leaves = Vec::new();
        collect_leaves(&rule.condition, &mut leaves);
        let Some(table) = self.tables.get(&rule.table) else {
            return Vec::new();
        };
        leaves
            .into_iter()
            .filter_map(|(slot, pattern)| {
                let field = table.fields.get(slot)?;
                let text = field.patterns.get(pattern)?.clone();
                let value = field.accessor.read(event).map(|v| v.into_owned());
                let hit = value.as_deref().is_some_and(|v| {
                    Regex::builder()
                        .syntax(syntax_config(&self.limits))
                        .build(&text)
                        .is_ok_and(|re| re.is_match(v))
                });
                Some(Explained {
                    field: field.name.clone(),
                    pattern: text,
                    value,
                    hit,
                })
            })
            .collect()
    }
}

fn collect_leaves(condition: &Condition, out: &mut Vec<(usize, usize)>) {
    match condition {
        Condition::All(parts) | Condition::Any(parts) => {
            parts.iter().for_each(|p| collect_leaves(p, out))
        }
        Condition::Not(inner) => collect_leaves(inner, out),
        Condition::Leaf { slot, pattern } => out.push((*slot, *pattern)),
        Condition::AnyOf { slot, patterns } => out.extend(patterns.iter().map(|p| (*slot, *p))),
        Condition::Check { .. } => {}
    }
}

/// Patterns match bytes with ASCII classes and case folding, as a shell reads a command line:
/// `\w`, `\s`, `\b` and `(?i)` are ASCII, and `.` or `[^x]` match one byte. This keeps the lazy
/// DFA on every input (a Unicode `\b` makes it give up on the first non-ASCII byte, measured at
/// 20x slower on real commands); `(?u:...)` turns Unicode back on inside a pattern. Only match
/// or no match is asked, never an offset, so a match inside a UTF-8 sequence slices nothing.
fn syntax_config(limits: &Limits) -> syntax::Config {
    syntax::Config::new()
        .nest_limit(limits.nest_limit)
        .unicode(false)
        .utf8(false)
}

/// Which tests of a table are searched only when a gate opens them (see [`crate::gate`]).
struct Gating {
    /// The field whose plain-text tests gate the plain-text tests of the others: the one that
    /// gates the most (for Sigma's process rules, `programs`).
    slot: Option<usize>,
    /// Each rule's tests on that field, one of which it needs.
    by_gate_field: Vec<Option<Vec<Test>>>,
    /// Each rule's plain-text tests on any field, one of which it needs (what gates the
    /// regular expressions: all plain text is searched before them).
    by_any_text: Vec<Option<Vec<Test>>>,
    /// Each rule's tests, one of which it needs: only those make it a candidate to decide.
    by_any_test: Vec<Option<Vec<Test>>>,
}

impl Gating {
    fn plan(fields: &[(String, Accessor, FieldPatterns)], rules: &[Rule]) -> Gating {
        let literal = |(slot, pattern): Test| {
            fields
                .get(slot)
                .and_then(|(_, _, f)| f.literals.get(pattern))
                .is_some_and(Option::is_some)
        };
        let gates_on = |eligible: &dyn Fn(Test) -> bool| -> Vec<Option<Vec<Test>>> {
            rules
                .iter()
                .map(|rule| gate::necessary(&rule.condition, eligible))
                .collect()
        };
        // How many plain-text tests of the other fields a field's tests would gate.
        let gated_by = |gate_slot: usize, gates: &[Option<Vec<Test>>]| -> usize {
            fields
                .iter()
                .enumerate()
                .filter(|(slot, _)| *slot != gate_slot)
                .map(|(_, (_, _, f))| {
                    gate::pattern_gates(&f.rules, gates)
                        .iter()
                        .zip(&f.literals)
                        .filter(|(gate, literal)| gate.is_some() && literal.is_some())
                        .count()
                })
                .sum()
        };
        let best = (0..fields.len())
            .filter(|slot| fields[*slot].2.literals.iter().any(Option::is_some))
            .map(|slot| {
                let gates = gates_on(&|test: Test| test.0 == slot && literal(test));
                (gated_by(slot, &gates), slot, gates)
            })
            .filter(|(count, _, _)| *count > 0)
            .max_by_key(|(count, slot, _)| (*count, std::cmp::Reverse(*slot)));
        let (slot, by_gate_field) = match best {
            Some((_, slot, gates)) => (Some(slot), gates),
            None => (None, vec![None; rules.len()]),
        };
        Gating {
            slot,
            by_gate_field,
            by_any_text: gates_on(&literal),
            by_any_test: gates_on(&|_| true),
        }
    }
}

/// A field's matcher, and the plain-text tests each gate opens on it.
type CompiledField = (FieldMatcher, Vec<(usize, Literals)>);

/// What of a field would not compile (its texts or its patterns), and why.
type FieldError = (&'static str, String);

/// Compiles one field's tests: plain texts searched on every event into one automaton, the
/// gated ones into one automaton per gate, regular expressions grouped as they are gated.
fn compile_field(
    slot: usize,
    name: &str,
    accessor: &Accessor,
    collected: &FieldPatterns,
    gating: &Gating,
    limits: &Limits,
) -> Result<CompiledField, FieldError> {
    let text_gates = match gating.slot {
        Some(gate_slot) if gate_slot != slot => {
            gate::pattern_gates(&collected.rules, &gating.by_gate_field)
        }
        _ => vec![None; collected.patterns.len()],
    };
    let mut always: Vec<(usize, &Literal)> = Vec::new();
    let mut opened: BTreeMap<usize, Vec<(usize, &Literal)>> = BTreeMap::new();
    for (index, literal) in collected.literals.iter().enumerate() {
        let Some(literal) = literal else { continue };
        match &text_gates[index] {
            None => always.push((index, literal)),
            Some(gates) => {
                for (_, gate) in gates {
                    opened.entry(*gate).or_default().push((index, literal));
                }
            }
        }
    }
    let multi = accessor.multi();
    let texts = |e: String| ("texts", e);
    let literals = Literals::build(&always, multi).map_err(texts)?;
    let opens = opened
        .into_iter()
        .map(|(gate, tests)| Ok((gate, Literals::build(&tests, multi).map_err(texts)?)))
        .collect::<Result<Vec<_>, FieldError>>()?;

    let regex_gates = gate::pattern_gates(&collected.rules, &gating.by_any_text);
    let ids: Vec<usize> = (0..collected.patterns.len())
        .filter(|i| collected.literals[*i].is_none())
        .collect();
    // A pattern with a large automaton of its own (`(.){200,}`) would multiply the states of
    // every other pattern's in a shared lazy DFA: it gets its own. The others are one group
    // searched on every event and one searched only when a gate of theirs passed.
    let (large, small): (Vec<usize>, Vec<usize>) = ids
        .iter()
        .partition(|i| nfa_states(&collected.patterns[**i], limits) > LARGE_NFA_STATES);
    let (gated, ungated): (Vec<usize>, Vec<usize>) =
        small.into_iter().partition(|i| regex_gates[*i].is_some());
    let gates_of = |ids: &[usize]| -> Option<Vec<Test>> {
        let mut union = BTreeSet::new();
        for i in ids {
            union.extend(regex_gates[*i].as_ref()?.iter().copied());
        }
        Some(union.into_iter().collect())
    };
    let groups: Vec<Vec<usize>> = [ungated, gated]
        .into_iter()
        .filter(|g| !g.is_empty())
        .chain(large.into_iter().map(|i| vec![i]))
        .collect();
    let regexes = groups
        .into_iter()
        .map(|ids| {
            let texts: Vec<&String> = ids.iter().map(|i| &collected.patterns[*i]).collect();
            let any = build_many(&texts, MatchKind::LeftmostFirst, limits)?;
            let which = build_many(&texts, MatchKind::All, limits)?;
            let gates = gates_of(&ids);
            Ok::<_, Box<meta::BuildError>>(RegexTests {
                any,
                which,
                ids,
                gates,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ("patterns", e.to_string()))?;
    let matcher = FieldMatcher {
        name: name.to_string(),
        accessor: accessor.clone(),
        patterns: collected.patterns.clone(),
        literals,
        regexes,
        // A rule that needs one of some tests is decided only when one of them passed.
        rules_of_pattern: collected
            .rules
            .iter()
            .enumerate()
            .map(|(pattern, rules)| {
                rules
                    .iter()
                    .copied()
                    .filter(|rule| match &gating.by_any_test[*rule] {
                        Some(needed) => needed.contains(&(slot, pattern)),
                        None => true,
                    })
                    .collect()
            })
            .collect(),
    };
    Ok((matcher, opens))
}

/// A pattern whose automaton has more states than this gets a lazy DFA of its own. Measured on
/// 1M lines (BENCHMARKS.md): 150 isolated some of the default pack's own patterns and cost it
/// 2.6x (every group is one more scan a line), 300 keeps them together; below 100 it gets
/// worse still.
const LARGE_NFA_STATES: usize = 300;

/// The states of a pattern's NFA (0 when it does not compile: the caller reports that).
fn nfa_states(pattern: &str, limits: &Limits) -> usize {
    regex_automata::nfa::thompson::Compiler::new()
        .syntax(syntax_config(limits))
        .configure(
            regex_automata::nfa::thompson::Config::new()
                .nfa_size_limit(Some(limits.pattern_nfa_bytes))
                .shrink(false),
        )
        .build(pattern)
        .map_or(0, |nfa| nfa.states().len())
}

fn build_many(
    patterns: &[&String],
    kind: MatchKind,
    limits: &Limits,
) -> Result<Regex, Box<meta::BuildError>> {
    // A lazy DFA over hundreds of patterns needs room: with the default cache it thrashes and
    // falls back to slower engines (measured: 20x slower on real command lines).
    let config = meta::Config::new()
        .match_kind(kind)
        .nfa_size_limit(Some(limits.field_nfa_bytes))
        .hybrid_cache_capacity(limits.dfa_cache_bytes);
    Regex::builder()
        .syntax(syntax_config(limits))
        .configure(config)
        .build_many(patterns)
        .map_err(Box::new)
}

struct RuleBuilder<'a> {
    spec: &'a RuleSpec,
    index: usize,
    limits: &'a Limits,
    fields: &'a mut FieldRegistry,
    problems: Vec<String>,
    patterns_added: usize,
}

impl RuleBuilder<'_> {
    fn build(&mut self, file: &str, line: Option<usize>) -> Option<Rule> {
        let spec = self.spec;
        if spec.id.trim().is_empty() || spec.id.chars().any(char::is_whitespace) {
            self.problems
                .push("id must be non-empty and without spaces".to_string());
        }
        if spec.title.trim().is_empty() {
            self.problems.push("title must not be empty".to_string());
        }
        let table = match Table::from_name(&spec.table) {
            Some(t) if !table_fields(t).is_empty() && t != Table::Alerts => t,
            _ => {
                self.problems.push(format!(
                    "unknown table {:?} (rules read commands, sessions, cloudtrail, host_events)",
                    spec.table
                ));
                return None;
            }
        };
        let (condition, sequence) = match (&spec.condition, &spec.sequence) {
            (Some(condition), None) => (
                self.condition(table, condition).map(Condition::gathered),
                None,
            ),
            (None, Some(sequence)) => match self.sequence(table, sequence) {
                Some(mut sequence) => {
                    sequence.steps = sequence
                        .steps
                        .into_iter()
                        .map(Condition::gathered)
                        .collect();
                    (Some(Condition::Any(sequence.steps.clone())), Some(sequence))
                }
                None => (None, None),
            },
            _ => {
                self.problems
                    .push("a rule has exactly one of match and sequence".to_string());
                (None, None)
            }
        };
        if sequence.is_some() && spec.threshold.is_some() {
            self.problems
                .push("a sequence rule cannot also have a threshold".to_string());
        }
        let suppress = spec.suppress.as_ref().and_then(|s| {
            // Both checked, so both problems are reported.
            let by = self.key_fields(table, &s.by);
            let window = self.duration("suppress.for", &s.window);
            Some(Window {
                by: by?,
                window: window?,
            })
        });
        let threshold = spec.threshold.as_ref().and_then(|t| {
            if t.count == 0 {
                self.problems
                    .push("threshold.count must be at least 1".to_string());
                return None;
            }
            let by = self.key_fields(table, &t.by);
            let window = self.duration("threshold.within", &t.within);
            let distinct = match &t.distinct {
                Some(name) => match Accessor::parse(table, name) {
                    Ok(accessor) => Some(Some(accessor)),
                    Err(e) => {
                        self.problems.push(format!("threshold.distinct: {e}"));
                        None
                    }
                },
                None => Some(None),
            };
            Some(Threshold {
                count: t.count,
                window: Window {
                    by: by?,
                    window: window?,
                },
                distinct: distinct?,
            })
        });
        let tests = spec.tests.clone().unwrap_or_default();
        for case in tests.positive.iter().chain(&tests.no_match) {
            for name in case.events().iter().flat_map(|e| e.keys()) {
                if !table_fields(table).contains(&name.as_str()) {
                    self.problems
                        .push(format!("test case names unknown field {name:?} of {table}"));
                }
            }
        }
        Some(Rule {
            id: spec.id.clone(),
            title: spec.title.clone(),
            severity: spec.severity,
            table,
            description: spec.description.clone(),
            tags: spec.tags.clone(),
            condition: condition?,
            suppress,
            threshold,
            sequence,
            sigma: spec.sigma.clone(),
            tests,
            file: file.to_string(),
            line,
        })
    }

    fn duration(&mut self, what: &str, text: &str) -> Option<Duration> {
        let parsed = parse_duration(text);
        if parsed.is_none() {
            self.problems.push(format!(
                "{what}: {text:?} is not a duration like 30s, 10m, 2h, 1d"
            ));
        }
        parsed
    }

    fn key_fields(&mut self, table: Table, by: &[String]) -> Option<Vec<String>> {
        let unknown: Vec<&String> = by
            .iter()
            .filter(|f| !table_fields(table).contains(&f.as_str()))
            .collect();
        if unknown.is_empty() {
            Some(by.to_vec())
        } else {
            self.problems.push(format!(
                "unknown field(s) {unknown:?} of {table}; it has {}",
                table_fields(table).join(", ")
            ));
            None
        }
    }

    fn sequence(&mut self, table: Table, spec: &SequenceSpec) -> Option<Sequence> {
        if spec.steps.len() < 2 {
            self.problems
                .push("a sequence needs at least two steps".to_string());
        }
        let by = self.key_fields(table, &spec.by);
        let window = self.duration("sequence.within", &spec.within);
        let steps: Vec<Option<Condition>> = spec
            .steps
            .iter()
            .map(|step| self.condition(table, step))
            .collect();
        let steps: Option<Vec<Condition>> = steps.into_iter().collect();
        Some(Sequence {
            steps: steps?,
            window: Window {
                by: by?,
                window: window?,
            },
            ordered: spec.ordered,
        })
    }

    fn condition(&mut self, table: Table, spec: &ConditionSpec) -> Option<Condition> {
        let kinds = [
            spec.all.is_some(),
            spec.any.is_some(),
            spec.not.is_some(),
            spec.field.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.problems.push(
                "a condition has exactly one of all, any, not, or field (with one test)"
                    .to_string(),
            );
            return None;
        }
        if let Some(parts) = spec.all.as_ref().or(spec.any.as_ref()) {
            if parts.is_empty() {
                self.problems
                    .push("all/any needs at least one condition".to_string());
                return None;
            }
            let compiled: Vec<Option<Condition>> =
                parts.iter().map(|p| self.condition(table, p)).collect();
            let compiled: Option<Vec<Condition>> = compiled.into_iter().collect();
            return Some(if spec.all.is_some() {
                Condition::All(compiled?)
            } else {
                Condition::Any(compiled?)
            });
        }
        if let Some(inner) = &spec.not {
            return Some(Condition::Not(Box::new(self.condition(table, inner)?)));
        }
        let field = spec.field.as_deref().unwrap_or_default();
        let accessor = match Accessor::parse(table, field) {
            Ok(accessor) => accessor,
            Err(e) => {
                self.problems.push(e);
                return None;
            }
        };
        if let Some(check) = self.check(table, spec) {
            return Some(Condition::Check {
                field: accessor,
                check: check?,
            });
        }
        if spec.exists == Some(false) {
            // Absent: not present.
            let present = ConditionSpec {
                exists: Some(true),
                ..spec.clone()
            };
            return Some(Condition::Not(Box::new(self.condition(table, &present)?)));
        }
        let pattern = self.pattern(spec, accessor.multi())?;
        self.patterns_added += 1;
        let literal = literal_of(spec);
        let (collected, slot) = self.fields.entry(table, field, &accessor);
        let next = collected.patterns.len();
        let index = *collected.index.entry(pattern.clone()).or_insert(next);
        if index == next {
            collected.patterns.push(pattern);
            collected.literals.push(literal);
            collected.rules.push(BTreeSet::new());
        }
        collected.rules[index].insert(self.index);
        Some(Condition::Leaf {
            slot,
            pattern: index,
        })
    }

    /// A test that is not a pattern (`cidr`, `lt`, `lte`, `gt`, `gte`), when the leaf is one:
    /// `Some(None)` when it is one but wrong.
    fn check(&mut self, table: Table, spec: &ConditionSpec) -> Option<Option<Check>> {
        let compare = [
            ("<", spec.lt),
            ("<=", spec.lte),
            (">", spec.gt),
            (">=", spec.gte),
        ]
        .into_iter()
        .find_map(|(op, value)| value.map(|value| Check::Compare { op, value }));
        let cidr = spec.cidr.as_ref().map(|text| {
            let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
            let network = address.trim().parse::<std::net::IpAddr>().ok();
            let prefix = match (network, prefix) {
                (Some(std::net::IpAddr::V4(_)), "") => Some(32),
                (Some(std::net::IpAddr::V6(_)), "") => Some(128),
                (Some(std::net::IpAddr::V4(_)), p) => p.parse::<u8>().ok().filter(|p| *p <= 32),
                (Some(std::net::IpAddr::V6(_)), p) => p.parse::<u8>().ok().filter(|p| *p <= 128),
                (None, _) => None,
            };
            match (network, prefix) {
                (Some(network), Some(prefix)) => Some(Check::Cidr { network, prefix }),
                _ => {
                    self.problems
                        .push(format!("cidr {text:?} is not a network like 10.0.0.0/8"));
                    None
                }
            }
        });
        let same_as = spec
            .same_as
            .as_ref()
            .map(|name| match Accessor::parse(table, name) {
                Ok(other) => Some(Check::SameAs(other)),
                Err(e) => {
                    self.problems.push(format!("same_as: {e}"));
                    None
                }
            });
        let given = usize::from(compare.is_some())
            + usize::from(cidr.is_some())
            + usize::from(same_as.is_some());
        if given == 0 {
            return None;
        }
        let patterns = [
            spec.regex.is_some(),
            spec.prefix.is_some(),
            spec.suffix.is_some(),
            spec.contains.is_some(),
            spec.equals.is_some(),
            spec.one_of.is_some(),
            spec.exists.is_some(),
        ];
        let compares = [spec.lt, spec.lte, spec.gt, spec.gte]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if patterns.iter().any(|p| *p) || compares > 1 || given > 1 {
            self.problems.push(format!(
                "field {:?} needs exactly one test",
                spec.field.as_deref().unwrap_or_default()
            ));
            return Some(None);
        }
        Some(compare.or(cidr.flatten()).or(same_as.flatten()))
    }

    /// The field test as one pattern. On a field of several values (one per line), anchored
    /// tests hold when one value passes.
    fn pattern(&mut self, spec: &ConditionSpec, multi: bool) -> Option<String> {
        let (start, end) = if multi {
            ("(?m:^)", "(?m:$)")
        } else {
            ("^", "$")
        };
        let tests = [
            spec.regex.clone(),
            spec.prefix
                .as_ref()
                .map(|p| format!("{start}{}", escape(p))),
            spec.suffix.as_ref().map(|s| format!("{}{end}", escape(s))),
            spec.contains.as_ref().map(|c| escape(c)),
            spec.equals
                .as_ref()
                .map(|e| format!("{start}{}{end}", escape(e))),
            spec.one_of.as_ref().map(|values| {
                let alternatives: Vec<String> = values.iter().map(|v| escape(v)).collect();
                format!("{start}(?:{}){end}", alternatives.join("|"))
            }),
            spec.exists.filter(|e| *e).map(|_| "^".to_string()),
        ];
        let mut given = tests.into_iter().flatten();
        let (Some(pattern), None) = (given.next(), given.next()) else {
            self.problems.push(format!(
                "field {:?} needs exactly one of regex, prefix, suffix, contains, equals, in, \
                 exists, cidr, lt, lte, gt, gte",
                spec.field.as_deref().unwrap_or_default()
            ));
            return None;
        };
        if spec.one_of.as_ref().is_some_and(Vec::is_empty) {
            self.problems
                .push("`in` needs at least one value".to_string());
            return None;
        }
        if pattern.len() > self.limits.max_pattern_bytes {
            self.problems.push(format!(
                "pattern of {} bytes exceeds the limit of {}",
                pattern.len(),
                self.limits.max_pattern_bytes
            ));
            return None;
        }
        let pattern = if spec.case_insensitive {
            format!("(?i:{pattern})")
        } else {
            // Keeps a user's `a|b` from binding across patterns when wrapped later.
            format!("(?:{pattern})")
        };
        let alone = Regex::builder()
            .syntax(syntax_config(self.limits))
            .configure(meta::Config::new().nfa_size_limit(Some(self.limits.pattern_nfa_bytes)))
            .build(&pattern);
        if let Err(e) = alone {
            let shown = spec.regex.as_deref().unwrap_or(&pattern);
            self.problems
                .push(format!("bad pattern {shown:?}: {}", crate::error_chain(&e)));
            return None;
        }
        Some(pattern)
    }
}

/// The plain-text form of a field test, when it has one (a `contains`, `prefix`, `suffix` or
/// `equals` of a non-empty text); its pattern means the same.
fn literal_of(spec: &ConditionSpec) -> Option<Literal> {
    let (text, anchor) = [
        (&spec.contains, Anchor::Anywhere),
        (&spec.prefix, Anchor::Start),
        (&spec.suffix, Anchor::End),
        (&spec.equals, Anchor::Whole),
    ]
    .into_iter()
    .find_map(|(text, anchor)| Some((text.as_ref()?, anchor)))?;
    (!text.is_empty()).then(|| Literal {
        text: text.clone(),
        anchor,
        case_insensitive: spec.case_insensitive,
    })
}

fn escape(text: &str) -> String {
    regex_syntax::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_file;

    fn engine(text: &str) -> Result<Engine, Vec<RuleError>> {
        let file = parse_file("t.yaml", text).map_err(|e| vec![e])?;
        Engine::compile(&[file])
    }

    fn command(cmd: &str) -> FieldsEvent {
        FieldsEvent {
            table: Table::Commands,
            fields: BTreeMap::from([("cmd".to_string(), cmd.to_string())]),
        }
    }

    const RULES: &str = r#"
rules:
  - id: t.sudo
    title: sudo
    severity: low
    table: commands
    match: { field: cmd, prefix: "sudo " }
  - id: t.root_shell
    title: root shell
    severity: high
    table: commands
    match:
      all:
        - { field: cmd, prefix: "sudo " }
        - any:
            - { field: cmd, regex: '\bsu\b' }
            - { field: cmd, suffix: " -i" }
  - id: t.not_ls
    title: anything but ls
    severity: info
    table: commands
    match: { not: { field: cmd, equals: ls } }
  - id: t.ci
    title: case
    severity: info
    table: commands
    match: { field: cmd, in: [REBOOT, halt], case_insensitive: true }
"#;

    #[test]
    fn patterns_too_large_together_are_an_error_not_a_field_left_out() {
        let rules = r#"
rules:
  - id: t.a
    title: a
    severity: low
    table: commands
    match: { field: cmd, regex: '[a-z]{40}x' }
  - id: t.b
    title: b
    severity: low
    table: commands
    match: { field: cmd, regex: '[0-9]{40}y' }
"#;
        let file = parse_file("t.yaml", rules).unwrap_or_else(|e| panic!("{e:?}"));
        let alone = nfa_states("[a-z]{40}x", &Limits::default());
        assert!(alone > 0);
        let limits = Limits {
            field_nfa_bytes: 4096,
            ..Limits::default()
        };
        let errors = Engine::compile_with(&[file], &limits)
            .err()
            .unwrap_or_else(|| panic!("two patterns over the field's limit compiled"));
        assert!(
            errors.iter().any(|e| e
                .message
                .starts_with("the patterns on commands.cmd together: ")),
            "{errors:?}"
        );
    }

    #[test]
    fn rules_decided_from_pattern_sets() {
        let engine = engine(RULES).unwrap_or_else(|e| panic!("{e:?}"));
        let mut scratch = engine.scratch();
        let ids = |cmd: &str, scratch: &mut Scratch| -> Vec<String> {
            engine
                .matching(&command(cmd), scratch)
                .iter()
                .map(|r| r.id.clone())
                .collect()
        };
        assert_eq!(
            ids("sudo su -", &mut scratch),
            ["t.sudo", "t.root_shell", "t.not_ls"]
        );
        assert_eq!(
            ids("sudo -i", &mut scratch),
            ["t.sudo", "t.root_shell", "t.not_ls"]
        );
        assert_eq!(ids("sudo ls", &mut scratch), ["t.sudo", "t.not_ls"]);
        assert!(ids("ls", &mut scratch).is_empty());
        assert_eq!(ids("Reboot", &mut scratch), ["t.not_ls", "t.ci"]);
        // A missing field matches no test, so `not` holds.
        let empty = FieldsEvent {
            table: Table::Commands,
            fields: BTreeMap::new(),
        };
        let matched: Vec<_> = engine.matching(&empty, &mut scratch);
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].id, "t.not_ls");
    }

    #[test]
    fn bad_regex_names_rule_and_line() {
        let text = "rules:\n  - id: ok.one\n    title: t\n    severity: low\n    table: commands\n    match: { field: cmd, contains: x }\n  - id: bad.regex\n    title: t\n    severity: low\n    table: commands\n    match: { field: cmd, regex: 'sudo (' }\n";
        let errors = engine(text).err().unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].rule.as_deref(), Some("bad.regex"));
        assert_eq!(errors[0].line, Some(7));
        assert!(
            errors[0]
                .to_string()
                .starts_with("t.yaml:7: rule bad.regex: bad pattern")
        );
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let text = r#"
rules:
  - id: a
    title: t
    severity: low
    table: commandz
    match: { field: cmd, contains: x }
  - id: b
    title: t
    severity: low
    table: commands
    match: { field: comand, contains: x }
  - id: c
    title: t
    severity: low
    table: commands
    match: { field: cmd, contains: x, prefix: y }
  - id: c
    title: t
    severity: low
    table: commands
    match: { field: cmd, contains: x }
  - id: d
    title: t
    severity: low
    table: commands
    match: { field: cmd, contains: x }
    suppress: { by: [sesion_id], for: 10 minutes }
"#;
        let errors = engine(text).err().unwrap_or_default();
        let rules: Vec<_> = errors.iter().filter_map(|e| e.rule.clone()).collect();
        assert_eq!(rules, ["a", "b", "c", "c", "d", "d"], "{errors:#?}");
        assert!(errors[3].message.contains("duplicate"));
    }

    #[test]
    fn oversized_and_deep_patterns_are_refused() {
        let long = "a".repeat(5000);
        let text = format!(
            "rules:\n  - id: big\n    title: t\n    severity: low\n    table: commands\n    match: {{ field: cmd, regex: '{long}' }}\n"
        );
        let errors = engine(&text).err().unwrap_or_default();
        assert!(
            errors[0].message.contains("exceeds the limit"),
            "{errors:?}"
        );
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        let text = format!(
            "rules:\n  - id: deep\n    title: t\n    severity: low\n    table: commands\n    match: {{ field: cmd, regex: '{deep}' }}\n"
        );
        let errors = engine(&text).err().unwrap_or_default();
        assert_eq!(errors[0].rule.as_deref(), Some("deep"));
        // A pattern that compiles to a huge NFA is refused, not built.
        let text = "rules:\n  - id: huge\n    title: t\n    severity: low\n    table: commands\n    match: { field: cmd, regex: '(?u:\\w){1000}(?u:\\w){1000}' }\n";
        let errors = engine(text).err().unwrap_or_default();
        assert_eq!(errors[0].rule.as_deref(), Some("huge"), "{errors:?}");
    }
}
