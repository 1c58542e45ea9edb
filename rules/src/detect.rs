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

/// Suppression and threshold state, serialisable so that every writer of a lake shares it
/// (see `auditq_ingest::alerting`). Times are microseconds since the epoch.
///
/// It also remembers which alert each window let through and which events each threshold
/// counted, so that a batch evaluated again (a retry after a crash, or after another writer
/// saved the state first) decides exactly what it decided the first time: the alert it let
/// through passes again (same id), and no event is counted twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// Last alert per suppression key.
    pub last_alert: BTreeMap<String, i64>,
    /// The id of that alert.
    #[serde(default)]
    pub last_alert_id: BTreeMap<String, String>,
    /// Recent matches per threshold key.
    pub windows: BTreeMap<String, Vec<i64>>,
    /// The events of those matches (same order).
    #[serde(default)]
    pub counted: BTreeMap<String, Vec<String>>,
    /// The last alert each threshold key fired.
    #[serde(default)]
    pub fired: BTreeMap<String, Fired>,
}

/// A threshold that fired: when, which alert, and the events it counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// Time of the event that fired it (microseconds).
    pub at: i64,
    /// The alert.
    pub alert_id: String,
    /// The events counted towards it.
    pub events: Vec<String>,
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
        let last_alert = &self.last_alert;
        self.last_alert_id.retain(|k, _| last_alert.contains_key(k));
        let counted = &mut self.counted;
        self.windows.retain(|key, times| {
            let mut ids = counted.remove(key).unwrap_or_default();
            ids.resize(times.len(), String::new());
            let kept: Vec<(i64, String)> = times
                .iter()
                .copied()
                .zip(ids)
                .filter(|(t, _)| now - *t < longest)
                .collect();
            *times = kept.iter().map(|(t, _)| *t).collect();
            if !kept.is_empty() {
                counted.insert(key.clone(), kept.into_iter().map(|(_, id)| id).collect());
            }
            !times.is_empty()
        });
        self.fired.retain(|_, fired| now - fired.at < longest);
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
        let event_id = event.event_id();
        let alert = alert_id(&rule.id, &event_id);
        if let Some((count, window)) = &rule.threshold {
            let key = key(rule, &window.by, event);
            let fired = self.state.fired.get(&key);
            let refired = fired.is_some_and(|f| f.alert_id == alert);
            if !refired {
                if fired.is_some_and(|f| f.events.iter().any(|id| *id == event_id)) {
                    // Counted towards the last firing (the same batch evaluated again).
                    return false;
                }
                let times = self.state.windows.entry(key.clone()).or_default();
                let ids = self.state.counted.entry(key.clone()).or_default();
                ids.resize(times.len(), String::new());
                if ids.iter().any(|id| *id == event_id) {
                    // Counted before (the same batch evaluated again).
                    return false;
                }
                times.push(at);
                ids.push(event_id.to_string());
                let within = micros(window);
                let kept: Vec<(i64, String)> = times
                    .iter()
                    .copied()
                    .zip(ids.iter().cloned())
                    // Both sides of `at`: writers and retries deliver events out of order.
                    .filter(|(t, _)| (at - *t).abs() < within)
                    .collect();
                *times = kept.iter().map(|(t, _)| *t).collect();
                *ids = kept.into_iter().map(|(_, id)| id).collect();
                if times.len() < *count as usize {
                    return false;
                }
                times.clear();
                let events = std::mem::take(ids);
                self.state.fired.insert(
                    key,
                    Fired {
                        at,
                        alert_id: alert.clone(),
                        events,
                    },
                );
            }
        }
        if let Some(window) = &rule.suppress {
            let key = key(rule, &window.by, event);
            if self.state.last_alert_id.get(&key) == Some(&alert) {
                // The alert this window let through, evaluated again: it passes again.
                return true;
            }
            // Either side of the last alert: writers deliver events out of order.
            if let Some(last) = self.state.last_alert.get(&key)
                && (at - *last).abs() < micros(window)
            {
                return false;
            }
            self.state.last_alert.insert(key.clone(), at);
            self.state.last_alert_id.insert(key, alert);
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
    fn a_batch_evaluated_again_from_the_state_it_saved_decides_the_same() {
        let now = Timestamp::default();
        let batch = [
            event("1", 0, "sudo ls", "s1", "ip"),
            event("2", 1, "fail", "s", "ip"),
            event("3", 2, "fail", "s", "ip"),
            event("4", 3, "fail", "s", "ip"),
            event("5", 4, "sudo id", "s1", "ip"),
        ];
        let run = |d: &mut Detector| -> Vec<String> {
            batch
                .iter()
                .flat_map(|e| d.detect(e, now))
                .map(|a| a.alert_id)
                .collect()
        };
        let mut d = detector(RuleState::default());
        let first = run(&mut d);
        assert_eq!(first.len(), 2, "sudo once, the burst once: {first:?}");
        // The state was saved, then the batch is evaluated again (a retry): same alerts, and
        // the failures are not counted a second time.
        let saved = d.state().to_json();
        let mut again = detector(RuleState::from_json(&saved).unwrap_or_default());
        assert_eq!(run(&mut again), first);
        assert!(
            again
                .detect(&event("6", 5, "sudo x", "s1", "ip"), now)
                .is_empty()
        );
        assert!(
            again
                .detect(&event("7", 6, "fail", "s", "ip"), now)
                .is_empty(),
            "a replay counted the failures twice"
        );
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
