//! Which tests an event need not be searched for: those whose every rule also needs a test
//! that did not pass.
//!
//! A Sigma process-creation rule is nearly always "this program, and one of these texts on its
//! command line" (`Image|endswith: /curl` and `CommandLine|contains: ' -O '`). SigmaHQ's pack
//! puts 1,566 texts on `cmd`, most of them behind a program; searching all of them on every
//! line is most of the engine's time, though a line starts two or three programs. So the texts
//! of a field are split: those some rule needs whatever else passed are searched on every event,
//! the others only when one of the tests gating them passed (`/curl` opens the texts of the
//! rules that need curl). Skipping a text can only leave false a rule that was false already:
//! a test is gated only by tests every rule using it needs.

use std::collections::BTreeSet;

use crate::engine::Condition;

/// A test: a field's slot in its table and the pattern's index on that field.
pub(crate) type Test = (usize, usize);

/// Tests, among those `eligible` admits, at least one of which passes whenever `condition`
/// holds; `None` when there is no such set (a `not`, a check, a part with no eligible test).
/// An empty set means the condition can never hold.
pub(crate) fn necessary(
    condition: &Condition,
    eligible: &dyn Fn(Test) -> bool,
) -> Option<Vec<Test>> {
    match condition {
        Condition::Leaf { slot, pattern } => {
            eligible((*slot, *pattern)).then(|| vec![(*slot, *pattern)])
        }
        Condition::AnyOf { slot, patterns } => patterns
            .iter()
            .map(|pattern| eligible((*slot, *pattern)).then_some((*slot, *pattern)))
            .collect(),
        // Every part holds: any part's set will do; the smallest opens the fewest texts.
        Condition::All(parts) => parts
            .iter()
            .filter_map(|part| necessary(part, eligible))
            .min_by_key(Vec::len),
        // One part holds: each part needs a set, and the union serves.
        Condition::Any(parts) => {
            let mut union = BTreeSet::new();
            for part in parts {
                union.extend(necessary(part, eligible)?);
            }
            Some(union.into_iter().collect())
        }
        Condition::Not(_) | Condition::Check { .. } => None,
    }
}

/// For each pattern of a field, given the rules using it and each rule's gate: the tests that
/// open it (the union of its rules' gates), or `None` when one of its rules has no gate (it is
/// searched on every event).
pub(crate) fn pattern_gates(
    rules_of_pattern: &[BTreeSet<usize>],
    rule_gates: &[Option<Vec<Test>>],
) -> Vec<Option<Vec<Test>>> {
    rules_of_pattern
        .iter()
        .map(|rules| {
            let mut union = BTreeSet::new();
            for rule in rules {
                union.extend(rule_gates.get(*rule)?.as_ref()?.iter().copied());
            }
            Some(union.into_iter().collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(slot: usize, pattern: usize) -> Condition {
        Condition::Leaf { slot, pattern }
    }

    #[test]
    fn a_rule_needs_one_of_its_gates() {
        let on_slot_1 = |(slot, _): Test| slot == 1;
        // curl or wget, and a text on the command line.
        let rule = Condition::All(vec![
            Condition::Any(vec![leaf(1, 0), leaf(1, 1)]),
            leaf(0, 7),
        ]);
        assert_eq!(necessary(&rule, &on_slot_1), Some(vec![(1, 0), (1, 1)]));
        // The smaller of two sets.
        let rule = Condition::All(vec![
            Condition::Any(vec![leaf(1, 0), leaf(1, 1)]),
            leaf(1, 2),
        ]);
        assert_eq!(necessary(&rule, &on_slot_1), Some(vec![(1, 2)]));
        // One branch without a program: no gate.
        let rule = Condition::Any(vec![leaf(1, 0), leaf(0, 7)]);
        assert_eq!(necessary(&rule, &on_slot_1), None);
        // What a `not` says cannot gate anything.
        let rule = Condition::All(vec![Condition::Not(Box::new(leaf(1, 0))), leaf(0, 7)]);
        assert_eq!(necessary(&rule, &on_slot_1), None);
        // Nothing holds for `any` of nothing.
        assert_eq!(necessary(&Condition::Any(vec![]), &on_slot_1), Some(vec![]));
        assert_eq!(necessary(&Condition::All(vec![]), &on_slot_1), None);
    }

    #[test]
    fn a_pattern_is_gated_only_when_all_its_rules_are() {
        let rules_of_pattern = vec![BTreeSet::from([0, 1]), BTreeSet::from([0, 2])];
        let rule_gates = vec![Some(vec![(1, 0)]), Some(vec![(1, 3)]), None];
        assert_eq!(
            pattern_gates(&rules_of_pattern, &rule_gates),
            vec![Some(vec![(1, 0), (1, 3)]), None]
        );
    }
}
