//! From rule matches to alerts: suppression, thresholds, and the state that makes them survive
//! a restart.
//!
//! Windows are measured in *event* time, not wall-clock time, so a backtest over last month
//! and a replay after a crash decide exactly what the live run decided.

use std::collections::BTreeMap;
use std::sync::Arc;

use auditq_model::{Alert, Timestamp, day_of, event_id};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EventView, Rule, Scratch, Window};
use crate::notice::AlertNotice;

/// Suppression and threshold state, serialisable so a long-running service keeps it across
/// restarts. Times are microseconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// Last alert per suppression key.
    pub last_alert: BTreeMap<String, i64>,
    /// Recent matches per threshold key.
    pub windows: BTreeMap<String, Vec<i64>>,
}

impl RuleState {
    /// Reads state saved by [`RuleState::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<RuleState, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The state as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Drops what no window can need any more, given the latest event time seen.
    fn prune(&mut self, engine: &Engine, now: i64) {
        let longest = engine
            .rules()
            .iter()
            .flat_map(|r| {
                r.suppress
                    .iter()
                    .chain(r.threshold.as_ref().map(|(_, w)| w))
            })
            .map(micros)
            .max()
            .unwrap_or(0);
        self.last_alert.retain(|_, t| now - *t < longest);
        self.windows.retain(|_, times| {
            times.retain(|t| now - *t < longest);
            !times.is_empty()
        });
    }
}

fn micros(window: &Window) -> i64 {
    i64::try_from(window.window.as_micros()).unwrap_or(i64::MAX)
}

/// Evaluates events against an engine and decides which matches become alerts.
#[derive(Debug)]
pub struct Detector {
    engine: Arc<Engine>,
    scratch: Scratch,
    state: RuleState,
    latest: i64,
}

impl Detector {
    /// A detector starting from saved state.
    pub fn new(engine: Arc<Engine>, state: RuleState) -> Detector {
        Detector {
            scratch: engine.scratch(),
            engine,
            state,
            latest: i64::MIN,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The state to save (pruned of what no window needs).
    pub fn state(&mut self) -> &RuleState {
        if self.latest != i64::MIN {
            self.state.prune(&self.engine, self.latest);
        }
        &self.state
    }

    /// The alerts an event raises. Feed events in time order for windows to mean what they say.
    pub fn detect(&mut self, event: &dyn EventView, detected_at: Timestamp) -> Vec<AlertNotice> {
        let engine = Arc::clone(&self.engine);
        if !engine.any_match(event, &mut self.scratch) {
            return Vec::new();
        }
        let Some(time) = event.time() else {
            return Vec::new();
        };
        let at = time.timestamp_micros();
        self.latest = self.latest.max(at);
        engine
            .matching(event, &mut self.scratch)
            .into_iter()
            .filter(|rule| self.admit(rule, event, at))
            .map(|rule| AlertNotice::new(rule, event, time, detected_at))
            .collect()
    }

    /// Applies the rule's threshold and suppression to a match at `at`.
    fn admit(&mut self, rule: &Rule, event: &dyn EventView, at: i64) -> bool {
        if let Some((count, window)) = &rule.threshold {
            let times = self
                .state
                .windows
                .entry(key(rule, &window.by, event))
                .or_default();
            times.push(at);
            let within = micros(window);
            times.retain(|t| at - *t < within && *t <= at);
            if times.len() < *count as usize {
                return false;
            }
            times.clear();
        }
        if let Some(window) = &rule.suppress {
            let key = key(rule, &window.by, event);
            if let Some(last) = self.state.last_alert.get(&key)
                && at >= *last
                && at - *last < micros(window)
            {
                return false;
            }
            self.state.last_alert.insert(key, at);
        }
        true
    }
}

/// The key of a rule's window: its id and the values of the `by` fields.
fn key(rule: &Rule, by: &[String], event: &dyn EventView) -> String {
    let mut key = rule.id.clone();
    for field in by {
        key.push('\u{1f}');
        key.push_str(&event.field(field).unwrap_or_default());
    }
    key
}

/// The alert id: a hash of rule id and event id, so re-evaluating an event never creates a
/// second alert.
pub fn alert_id(rule_id: &str, event_id_: &str) -> String {
    event_id("alert", &[rule_id, event_id_])
}

impl AlertNotice {
    /// The `alerts` table row of this alert.
    pub fn to_row(&self, published: bool) -> Alert {
        Alert {
            alert_id: self.alert_id.clone(),
            rule_id: self.rule_id.clone(),
            severity: self.severity.name().to_string(),
            title: self.title.clone(),
            time: self.time,
            date: day_of(&self.time),
            detected_at: self.detected_at,
            target: self.target.clone(),
            account: self.account.clone(),
            user: self.user.clone(),
            cmd: self.cmd.clone(),
            event_name: self.event_name.clone(),
            session_id: self.session_id.clone(),
            source_table: self.table.clone(),
            event_id: self.event_id.clone(),
            published,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FieldsEvent;
    use crate::spec::parse_file;
    use auditq_model::Table;

    const RULES: &str = r#"
rules:
  - id: t.sudo
    title: sudo
    severity: high
    table: commands
    match: { field: cmd, prefix: "sudo " }
    suppress: { by: [session_id], for: 10m }
  - id: t.burst
    title: many failures
    severity: medium
    table: commands
    match: { field: cmd, equals: fail }
    threshold: { count: 3, within: 1m, by: [source_ip] }
"#;

    fn detector(state: RuleState) -> Detector {
        let file = parse_file("t", RULES).unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::compile(&[file]).unwrap_or_else(|e| panic!("{e:?}"));
        Detector::new(Arc::new(engine), state)
    }

    fn event(id: &str, seconds: i64, cmd: &str, session: &str, ip: &str) -> FieldsEvent {
        let time = chrono::DateTime::from_timestamp(1_790_000_000 + seconds, 0)
            .unwrap_or_default()
            .to_rfc3339();
        FieldsEvent {
            table: Table::Commands,
            fields: [
                ("event_id", id),
                ("time", &time),
                ("cmd", cmd),
                ("session_id", session),
                ("source_ip", ip),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    fn ids(alerts: &[AlertNotice]) -> Vec<String> {
        alerts.iter().map(|a| a.rule_id.clone()).collect()
    }

    #[test]
    fn suppression_per_key_and_window_survives_restart() {
        let now = Timestamp::default();
        let mut d = detector(RuleState::default());
        assert_eq!(
            ids(&d.detect(&event("1", 0, "sudo ls", "s1", "ip"), now)),
            ["t.sudo"]
        );
        assert!(
            d.detect(&event("2", 60, "sudo id", "s1", "ip"), now)
                .is_empty()
        );
        assert_eq!(
            ids(&d.detect(&event("3", 61, "sudo id", "s2", "ip"), now)),
            ["t.sudo"]
        );
        // Saved and restored, the window still holds.
        let saved = d.state().to_json();
        let mut d = detector(RuleState::from_json(&saved).unwrap_or_default());
        assert!(
            d.detect(&event("4", 300, "sudo w", "s1", "ip"), now)
                .is_empty()
        );
        assert_eq!(
            ids(&d.detect(&event("5", 601, "sudo w", "s1", "ip"), now)),
            ["t.sudo"]
        );
    }

    #[test]
    fn threshold_counts_within_window_by_key() {
        let now = Timestamp::default();
        let mut d = detector(RuleState::default());
        let mut fired = Vec::new();
        for (n, (seconds, ip)) in [
            (0, "a"),
            (10, "a"),
            (20, "b"),
            (30, "a"),
            (40, "a"),
            (200, "a"),
            (210, "a"),
        ]
        .into_iter()
        .enumerate()
        {
            let alerts = d.detect(&event(&n.to_string(), seconds, "fail", "s", ip), now);
            fired.extend(alerts.into_iter().map(|a| a.event_id));
        }
        // The third "a" within a minute fires (event 3); the counter restarts; 200 s and 210 s are
        // only two.
        assert_eq!(fired, ["3"]);
        let alert = alert_id("t.burst", "3");
        assert_eq!(alert.len(), 32);
        assert_ne!(alert, alert_id("t.burst", "4"));
    }
}
