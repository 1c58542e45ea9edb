//! Detection rules for auditq: rule files, one automaton per field, alerts and publishers.
//!
//! Why one automaton per field: a rule pack of a few hundred patterns checked one regex at a
//! time costs a few hundred scans of every command line, and the pipeline must keep up with
//! every keystroke of every session. Instead all patterns on one field of one table are
//! compiled into one `regex_automata::meta::Regex` (`MatchKind::All`), so each event costs one
//! cheap "any match?" scan per field, plus one overlapping scan when something matched; rules
//! are then decided from the set of patterns that matched ([`engine`]). Tests that are plain
//! text (most of a Sigma pack) go into one Aho-Corasick automaton per field instead
//! ([`literal`]): thousands of them in one lazy DFA make its states too large to cache.
//!
//! Why event time for suppression and thresholds: decisions do not depend on when auditq ran,
//! so a backtest over last month, a replay after a crash, and the live service agree
//! ([`detect`]). Why deterministic alert ids: a retried batch re-raises the same alerts, and
//! the lake and subscribers can tell ([`detect::alert_id`]).
//!
//! Layers: [`spec`] (YAML as written, with file/line/rule in every error), [`sigma`] (Sigma
//! rules translated into specs), [`fields`] (derived fields), [`engine`] (pure
//! compilation and matching), [`detect`] (suppression, thresholds, their state), [`notice`]
//! (what an alert says), [`publish`] (SNS, stdout, file, retries, outbox), [`pack`] (the
//! built-in default rules).

pub mod controls;
pub mod detect;
pub mod engine;
pub mod fields;
pub mod fuzzing;
mod gate;
pub mod literal;
pub mod notice;
pub mod pack;
#[cfg(feature = "publish")]
pub mod publish;
pub mod sigma;
pub mod spec;

pub use detect::{Detector, RuleState, alert_id};
pub use engine::{Engine, EventView, FieldsEvent, Limits, Refused, Rule, Scratch};
pub use notice::AlertNotice;
pub use pack::{RuleErrors, compile_source};
#[cfg(feature = "publish")]
pub use publish::{AlertOutbox, PublishError, PublishReport, Publisher, Retry, Sink};
pub use spec::{RuleError, Severity};

/// An error and its causes on one line: `what: why: root cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
