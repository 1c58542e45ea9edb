//! Property: for random rule sets and random events, the automaton engine decides exactly what
//! a naive evaluation of each rule, one condition at a time with `str` methods and one
//! `regex::bytes::Regex` per pattern, decides. Both sides read patterns as the engine documents:
//! bytes, with ASCII classes and ASCII case folding.

use std::collections::BTreeMap;

use auditq_model::Table;
use auditq_rules::spec::{ConditionSpec, LoadedFile, RuleSpec, Severity};
use auditq_rules::{Engine, FieldsEvent};
use proptest::prelude::*;

const FIELDS: [&str; 3] = ["cmd", "user", "target"];

fn naive(cond: &ConditionSpec, event: &BTreeMap<String, String>) -> bool {
    if let Some(parts) = &cond.all {
        return parts.iter().all(|c| naive(c, event));
    }
    if let Some(parts) = &cond.any {
        return parts.iter().any(|c| naive(c, event));
    }
    if let Some(inner) = &cond.not {
        return !naive(inner, event);
    }
    let Some(value) = cond.field.as_ref().and_then(|f| event.get(f)) else {
        return false;
    };
    let ci = cond.case_insensitive;
    let fold = |s: &str| {
        if ci {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let value_f = fold(value);
    if let Some(re) = &cond.regex {
        return regex::bytes::RegexBuilder::new(re)
            .unicode(false)
            .case_insensitive(ci)
            .build()
            .map(|r| r.is_match(value.as_bytes()))
            .unwrap_or(false);
    }
    if let Some(p) = &cond.prefix {
        return value_f.starts_with(&fold(p));
    }
    if let Some(s) = &cond.suffix {
        return value_f.ends_with(&fold(s));
    }
    if let Some(c) = &cond.contains {
        return value_f.contains(&fold(c));
    }
    if let Some(e) = &cond.equals {
        return value_f == fold(e);
    }
    if let Some(values) = &cond.one_of {
        return values.iter().any(|v| fold(v) == value_f);
    }
    false
}

/// Short texts over a small alphabet, so patterns and values collide often; the non-ASCII
/// letters (two cases of é, a Cyrillic а that looks like a, a no-break space) check that
/// classes and case folding stay ASCII on both sides.
macro_rules! alphabet {
    () => {
        "[abAB .|*éÉа\u{a0}-]"
    };
}

fn text() -> impl Strategy<Value = String> {
    concat!(alphabet!(), "{0,6}")
}

fn regex_text() -> impl Strategy<Value = String> {
    prop_oneof![
        text().prop_map(|t| regex_syntax::escape(&t)),
        Just("^a".to_string()),
        Just("b$".to_string()),
        Just("a+b".to_string()),
        Just("(?:ab|ba)".to_string()),
        Just("\\s".to_string()),
        Just("a.*a".to_string()),
        Just("^$".to_string()),
        Just("[ab]{2,}".to_string()),
        Just("a|^b".to_string()),
        Just("a.b".to_string()),
        Just("\\w+\\b".to_string()),
        Just("[^ab]".to_string()),
        Just("é".to_string()),
        Just("(?u:\\s)".to_string()),
    ]
}

fn leaf() -> impl Strategy<Value = ConditionSpec> {
    let field = prop::sample::select(FIELDS.to_vec()).prop_map(str::to_string);
    let op = prop_oneof![
        regex_text().prop_map(|r| ConditionSpec {
            regex: Some(r),
            ..Default::default()
        }),
        text().prop_map(|t| ConditionSpec {
            prefix: Some(t),
            ..Default::default()
        }),
        text().prop_map(|t| ConditionSpec {
            suffix: Some(t),
            ..Default::default()
        }),
        text().prop_map(|t| ConditionSpec {
            contains: Some(t),
            ..Default::default()
        }),
        text().prop_map(|t| ConditionSpec {
            equals: Some(t),
            ..Default::default()
        }),
        prop::collection::vec(text(), 1..4).prop_map(|v| ConditionSpec {
            one_of: Some(v),
            ..Default::default()
        }),
    ];
    (field, op, any::<bool>()).prop_map(|(field, mut op, ci)| {
        op.field = Some(field);
        op.case_insensitive = ci;
        op
    })
}

fn condition() -> impl Strategy<Value = ConditionSpec> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| ConditionSpec {
                all: Some(v),
                ..Default::default()
            }),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| ConditionSpec {
                any: Some(v),
                ..Default::default()
            }),
            inner.prop_map(|c| ConditionSpec {
                not: Some(Box::new(c)),
                ..Default::default()
            }),
        ]
    })
}

fn event() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(FIELDS.to_vec()).prop_map(str::to_string),
        concat!(alphabet!(), "{0,10}"),
        0..=3,
    )
}

fn spec(n: usize, condition: ConditionSpec) -> RuleSpec {
    RuleSpec {
        id: format!("r{n}"),
        title: "t".to_string(),
        severity: Severity::Low,
        table: "commands".to_string(),
        description: None,
        tags: Vec::new(),
        condition: Some(condition),
        sequence: None,
        suppress: None,
        threshold: None,
        tests: None,
        sigma: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn engine_decides_what_naive_evaluation_decides(
        conditions in prop::collection::vec(condition(), 1..12),
        events in prop::collection::vec(event(), 1..20),
    ) {
        let specs: Vec<RuleSpec> =
            conditions.into_iter().enumerate().map(|(n, c)| spec(n, c)).collect();
        let file = LoadedFile {
            file: "generated".to_string(),
            rules: specs.iter().cloned().map(|s| (s, None)).collect(),
            refused: Vec::new(),
        };
        let engine = Engine::compile(&[file]).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let mut scratch = engine.scratch();
        for fields in events {
            let expected: Vec<String> = specs
                .iter()
                .filter(|s| s.condition.as_ref().is_some_and(|c| naive(c, &fields)))
                .map(|s| s.id.clone())
                .collect();
            let event = FieldsEvent { table: Table::Commands, fields: fields.clone() };
            let got: Vec<String> =
                engine.matching(&event, &mut scratch).iter().map(|r| r.id.clone()).collect();
            prop_assert_eq!(&got, &expected, "event {:?}", fields);
            // The cheap first pass may say yes when no rule matches, never no when one does.
            if !expected.is_empty() {
                prop_assert!(engine.any_match(&event, &mut scratch), "event {:?}", fields);
            }
        }
    }
}
