//! From rule matches to alerts: suppression, thresholds, and the state that makes them survive
//! a restart.
//!
//! Windows are measured in *event* time, not wall-clock time, so a backtest over last month
//! and a replay after a crash decide exactly what the live run decided.

use std::collections::BTreeMap;
use std::sync::Arc;

use auditq_model::{Alert, Timestamp, day_of, event_id};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EventView, Rule, Scratch, Sequence, Window};
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
    /// The last alert each threshold or sequence key fired.
    #[serde(default)]
    pub fired: BTreeMap<String, Fired>,
    /// The value each counted event gave, for thresholds on distinct values (same order).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, Vec<String>>,
    /// Sequences under way per key: for each step, the chain that has reached it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chains: BTreeMap<String, Vec<Option<Chain>>>,
}

/// Steps of a sequence seen so far: from when, until when, which events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Time of its first step (microseconds).
    pub start: i64,
    /// Time of its latest step.
    pub last: i64,
    /// The events of its steps, in order.
    pub events: Vec<String>,
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
                    .chain(r.threshold.as_ref().map(|t| &t.window))
                    .chain(r.sequence.as_ref().map(|s| &s.window))
            })
            .map(micros)
            .max()
            .unwrap_or(0);
        self.last_alert.retain(|_, t| now - *t < longest);
        let last_alert = &self.last_alert;
        self.last_alert_id.retain(|k, _| last_alert.contains_key(k));
        let counted = &mut self.counted;
        let values = &mut self.values;
        self.windows.retain(|key, times| {
            let mut ids = counted.remove(key).unwrap_or_default();
            ids.resize(times.len(), String::new());
            let distinct = values.remove(key);
            let mut kept_values = Vec::new();
            let mut kept_ids = Vec::new();
            let mut kept_times = Vec::new();
            for (i, (t, id)) in times.iter().copied().zip(ids).enumerate() {
                if now - t < longest {
                    kept_times.push(t);
                    kept_ids.push(id);
                    if let Some(v) = distinct.as_ref().and_then(|d| d.get(i)) {
                        kept_values.push(v.clone());
                    }
                }
            }
            *times = kept_times;
            if !times.is_empty() {
                counted.insert(key.clone(), kept_ids);
                if distinct.is_some() {
                    values.insert(key.clone(), kept_values);
                }
            }
            !times.is_empty()
        });
        self.fired.retain(|_, fired| now - fired.at < longest);
        self.chains.retain(|_, steps| {
            for step in steps.iter_mut() {
                if step.as_ref().is_some_and(|c| now - c.start >= longest) {
                    *step = None;
                }
            }
            steps.iter().any(Option::is_some)
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
        // `matching` makes the cheap "any pattern?" pass itself before asking which: a
        // separate `any_match` first would read and scan every matching event twice.
        let matched = engine.matching(event, &mut self.scratch);
        if matched.is_empty() {
            return Vec::new();
        }
        let Some(time) = event.time() else {
            return Vec::new();
        };
        let at = time.timestamp_micros();
        self.latest = self.latest.max(at);
        let mut alerts = Vec::new();
        for rule in matched {
            let steps = if rule.sequence.is_some() {
                engine.steps_matched(rule, event, &self.scratch)
            } else {
                Vec::new()
            };
            if self.admit(rule, &steps, event, at) {
                alerts.push(AlertNotice::new(rule, event, time, detected_at));
            }
        }
        alerts
    }

    /// Applies the rule's sequence, threshold and suppression to a match at `at` (`steps`: the
    /// steps of a sequence rule the event satisfies).
    fn admit(&mut self, rule: &Rule, steps: &[usize], event: &dyn EventView, at: i64) -> bool {
        let event_id = event.event_id();
        let alert = alert_id(&rule.id, &event_id);
        if let Some(sequence) = &rule.sequence
            && !self.advance(rule, sequence, steps, event, at, &alert)
        {
            return false;
        }
        if let Some(threshold) = &rule.threshold {
            let (count, window) = (&threshold.count, &threshold.window);
            let distinct = match &threshold.distinct {
                Some(field) => match field.read(event) {
                    Some(value) => Some(value.into_owned()),
                    // Nothing to count.
                    None => return false,
                },
                None => None,
            };
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
                // Both sides of `at`: writers and retries deliver events out of order.
                let keep: Vec<bool> = times.iter().map(|t| (at - *t).abs() < within).collect();
                retain_flagged(times, &keep);
                retain_flagged(ids, &keep);
                let reached = match distinct {
                    Some(value) => {
                        // The value of each counted event, kept only for distinct counts.
                        let values = self.state.values.entry(key.clone()).or_default();
                        values.resize(keep.len() - 1, String::new());
                        values.push(value);
                        retain_flagged(values, &keep);
                        values
                            .iter()
                            .collect::<std::collections::BTreeSet<_>>()
                            .len()
                    }
                    None => times.len(),
                };
                if reached < *count as usize {
                    return false;
                }
                let ids = self.state.counted.entry(key.clone()).or_default();
                let events = std::mem::take(ids);
                self.state.windows.remove(&key);
                self.state.values.remove(&key);
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

impl Detector {
    /// Moves a sequence rule's chains for the event's key on with the steps it satisfies;
    /// whether the last step was reached (or this is the alert it raised, evaluated again).
    fn advance(
        &mut self,
        rule: &Rule,
        sequence: &Sequence,
        steps: &[usize],
        event: &dyn EventView,
        at: i64,
        alert: &str,
    ) -> bool {
        let event_id = event.event_id();
        let key = key(rule, &sequence.window.by, event);
        let fired = self.state.fired.get(&key);
        if fired.is_some_and(|f| f.alert_id == alert) {
            return true;
        }
        if fired.is_some_and(|f| f.events.iter().any(|id| *id == event_id)) {
            return false;
        }
        let within = micros(&sequence.window);
        let n = sequence.steps.len();
        let chains = self.state.chains.entry(key.clone()).or_default();
        chains.resize(n, None);
        if chains
            .iter()
            .flatten()
            .any(|c| c.events.iter().any(|id| *id == event_id))
        {
            // Seen before (the same batch evaluated again).
            return false;
        }
        for chain in chains.iter_mut() {
            if chain.as_ref().is_some_and(|c| at - c.start >= within) {
                *chain = None;
            }
        }
        let done = if sequence.ordered {
            // Last step first, so one event does not satisfy two steps of one chain.
            for &step in steps.iter().rev() {
                let extended = if step == 0 {
                    Some(Chain {
                        start: at,
                        last: at,
                        events: vec![event_id.to_string()],
                    })
                } else {
                    chains[step - 1].as_ref().filter(|c| at >= c.last).map(|c| {
                        let mut c = c.clone();
                        c.last = at;
                        c.events.push(event_id.to_string());
                        c
                    })
                };
                if let Some(extended) = extended {
                    let newer = chains[step]
                        .as_ref()
                        .is_none_or(|c| c.start <= extended.start);
                    if newer {
                        chains[step] = Some(extended);
                    }
                }
            }
            chains[n - 1].clone()
        } else {
            for &step in steps {
                chains[step] = Some(Chain {
                    start: at,
                    last: at,
                    events: vec![event_id.to_string()],
                });
            }
            let seen: Vec<&Chain> = chains.iter().flatten().collect();
            let first = seen.iter().map(|c| c.start).min().unwrap_or(at);
            (seen.len() == n && at - first < within).then(|| Chain {
                start: first,
                last: at,
                events: seen.iter().flat_map(|c| c.events.clone()).collect(),
            })
        };
        let Some(done) = done else {
            return false;
        };
        self.state.chains.remove(&key);
        self.state.fired.insert(
            key,
            Fired {
                at,
                alert_id: alert.to_string(),
                events: done.events,
            },
        );
        true
    }
}

/// Keeps the items whose flag is set.
fn retain_flagged<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    items.retain(|_| flags.next().copied().unwrap_or(false));
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
            target_name: self.target_name.clone(),
            environment: self.environment.clone(),
            account_alias: self.account_alias.clone(),
            controls: (!self.controls.is_empty()).then(|| self.controls.join(", ")),
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

    const SEQUENCE: &str = r#"
rules:
  - id: t.fetch_run
    title: fetch then run
    severity: high
    table: commands
    sequence:
      by: [session_id]
      within: 10m
      steps:
        - { field: cmd, prefix: "wget " }
        - { field: cmd, prefix: "./" }
  - id: t.many_ips
    title: three addresses
    severity: medium
    table: commands
    match: { field: cmd, equals: login }
    threshold: { count: 3, within: 1m, by: [session_id], distinct: source_ip }
"#;

    fn sequence_detector(state: RuleState) -> Detector {
        let file = parse_file("t", SEQUENCE).unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::compile(&[file]).unwrap_or_else(|e| panic!("{e:?}"));
        Detector::new(Arc::new(engine), state)
    }

    #[test]
    fn sequences_fire_in_order_within_the_window_and_survive_a_restart() {
        let now = Timestamp::default();
        let mut d = sequence_detector(RuleState::default());
        // Out of order, then another session, then too late: nothing.
        assert!(d.detect(&event("1", 0, "./x", "s1", "ip"), now).is_empty());
        assert!(
            d.detect(&event("2", 1, "wget http://h/x", "s1", "ip"), now)
                .is_empty()
        );
        assert!(d.detect(&event("3", 2, "./x", "s2", "ip"), now).is_empty());
        let saved = d.state().to_json();
        // Restarted between the steps: the chain is remembered.
        let mut d = sequence_detector(RuleState::from_json(&saved).unwrap_or_default());
        let fired = d.detect(&event("4", 3, "./x", "s1", "ip"), now);
        assert_eq!(ids(&fired), ["t.fetch_run"]);
        assert_eq!(fired[0].event_id, "4");
        // The same batch again from the saved state: the same alert, nothing counted twice.
        let mut again = sequence_detector(RuleState::from_json(&saved).unwrap_or_default());
        let refired = again.detect(&event("4", 3, "./x", "s1", "ip"), now);
        assert_eq!(refired[0].alert_id, fired[0].alert_id);
        // After firing, a new run needs a new download; one older than the window is too old.
        assert!(d.detect(&event("5", 4, "./x", "s1", "ip"), now).is_empty());
        assert!(
            d.detect(&event("6", 10, "wget http://h/y", "s1", "ip"), now)
                .is_empty()
        );
        assert!(
            d.detect(&event("7", 700, "./y", "s1", "ip"), now)
                .is_empty()
        );
    }

    #[test]
    fn distinct_thresholds_count_values_not_matches() {
        let now = Timestamp::default();
        let mut d = sequence_detector(RuleState::default());
        let mut fired = Vec::new();
        for (n, ip) in ["a", "a", "b", "b", "c"].iter().enumerate() {
            let alerts = d.detect(&event(&n.to_string(), n as i64, "login", "s", ip), now);
            fired.extend(alerts.into_iter().map(|a| a.event_id));
        }
        // Five matches, but the third different address is the fifth event.
        assert_eq!(fired, ["4"]);
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
