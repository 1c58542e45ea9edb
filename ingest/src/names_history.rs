//! Names as they were: the `names` table is a history of what each instance, account and
//! principal was called ([`auditq_model::Name`]), and every session, command and alert is
//! labelled with the names in force at its own time, so a session on an instance renamed since
//! still reads as where it happened.
//!
//! Where names come from: CloudTrail calls that set them (`auditq_parse::names::of_trail`), and
//! look-ups of the present state ([`crate::aws::look_up_names`]: EC2 `DescribeTags`, IAM
//! `ListAccountAliases`). A look-up knows only when it looked: before the first row of a name
//! there is nothing to go by, except that a value first seen by a look-up was probably in force
//! before it too, which [`Names::at`] assumes (a CloudTrail change says when it began).
//!
//! Names learned later label what is ingested from then on; rows stored before keep what was
//! known when they were written (SQL can always join `names` on its validity times).

use std::collections::{HashMap, HashSet};

use auditq_model::{Command, Name, Session, Timestamp};

/// One name's history: (kind, key, attribute).
type Key = (String, String, String);

/// The history of every name a batch needs: by the thing named (instance id, account id,
/// principal ARN), one history per attribute it has, each sorted by time. A look-up by key
/// allocates nothing: every command and session of a batch is labelled.
#[derive(Debug, Clone, Default)]
pub struct Names {
    history: HashMap<String, Vec<Vec<Name>>>,
}

/// What a batch changes in the `names` table.
#[derive(Debug, Clone, Default)]
pub struct NameChanges {
    /// The history with the batch's changes in it.
    pub names: Names,
    /// New rows: changes the batch brought.
    pub added: Vec<Name>,
    /// Stored rows whose `valid_to` moved (a change now follows them).
    pub replaced: Vec<Name>,
}

/// Folds the batch's names into the stored history: a name the batch says again with the value
/// already in force then is no change and adds nothing; every kept row is valid until the next.
pub fn merge(stored: &[Name], batch: Vec<Name>) -> NameChanges {
    let stored_ids: HashSet<&str> = stored.iter().map(|n| n.event_id.as_str()).collect();
    let mut groups: HashMap<Key, (Vec<Name>, Vec<Name>)> = HashMap::new();
    for name in stored {
        groups.entry(key_of(name)).or_default().0.push(name.clone());
    }
    // One row per id, the earliest: CloudTrail may deliver a record twice.
    let mut earliest: HashMap<String, Name> = HashMap::new();
    for name in batch {
        if stored_ids.contains(name.event_id.as_str()) {
            continue;
        }
        match earliest.get(&name.event_id) {
            Some(kept) if kept.time <= name.time => {}
            _ => {
                earliest.insert(name.event_id.clone(), name);
            }
        }
    }
    for name in earliest.into_values() {
        groups.entry(key_of(&name)).or_default().1.push(name);
    }
    let mut changes = NameChanges::default();
    for (key, (old, new)) in groups {
        let before: HashMap<String, Option<Timestamp>> = old
            .iter()
            .map(|n| (n.event_id.clone(), n.valid_to))
            .collect();
        let mut all: Vec<(Name, bool)> = old
            .into_iter()
            .map(|n| (n, true))
            .chain(new.into_iter().map(|n| (n, false)))
            .collect();
        all.sort_by(|a, b| (a.0.time, &a.0.event_id).cmp(&(b.0.time, &b.0.event_id)));
        let mut kept: Vec<(Name, bool)> = Vec::with_capacity(all.len());
        for (name, is_stored) in all {
            let repeats = kept
                .last()
                .is_some_and(|(last, _)| last.value == name.value);
            if is_stored || !repeats {
                kept.push((name, is_stored));
            }
        }
        let times: Vec<Timestamp> = kept.iter().map(|(n, _)| n.time).collect();
        let mut history = Vec::with_capacity(kept.len());
        for (i, (mut name, is_stored)) in kept.into_iter().enumerate() {
            name.valid_to = times.get(i + 1).copied();
            if !is_stored {
                changes.added.push(name.clone());
            } else if before.get(&name.event_id) != Some(&name.valid_to) {
                changes.replaced.push(name.clone());
            }
            history.push(name);
        }
        changes
            .names
            .history
            .entry(key.1)
            .or_default()
            .push(history);
    }
    changes
}

fn key_of(name: &Name) -> Key {
    (name.kind.clone(), name.key.clone(), name.attribute.clone())
}

impl Names {
    /// The value of a name at `time`: the latest change at or before it; before the first, a
    /// value first seen by a look-up (in force since before it looked); else none.
    pub fn at(&self, kind: &str, key: &str, attribute: &str, time: Timestamp) -> Option<&str> {
        let history = self.history.get(key)?.iter().find(|h| {
            h.first()
                .is_some_and(|n| n.kind == kind && n.attribute == attribute)
        })?;
        let after = history.partition_point(|n| n.time <= time);
        let name = match after {
            0 => history.first().filter(|n| n.source != "cloudtrail")?,
            i => &history[i - 1],
        };
        name.value.as_deref()
    }

    /// Sets what an instance and an account were called at `time`, the instance's `Name` and
    /// `Environment` and the account's alias, into `labels` (in that order); a name not known
    /// leaves its label as it was.
    fn label(
        &self,
        (target, account): (Option<&str>, Option<&str>),
        time: Timestamp,
        labels: [&mut Option<String>; 3],
    ) {
        let [name, environment, alias] = labels;
        for (label, kind, key, attribute) in [
            (name, "instance", target, "Name"),
            (environment, "instance", target, "Environment"),
            (alias, "account", account, "alias"),
        ] {
            if let Some(value) = key.and_then(|k| self.at(kind, k, attribute, time)) {
                *label = Some(value.to_string());
            }
        }
    }

    /// Labels a session with the names in force when it started.
    pub fn label_session(&self, session: &mut Session) {
        let Some(time) = session.started_at.or(session.ended_at) else {
            return;
        };
        self.label(
            (session.target.as_deref(), session.account.as_deref()),
            time,
            [
                &mut session.target_name,
                &mut session.environment,
                &mut session.account_alias,
            ],
        );
    }

    /// Labels a command with the names in force when it ran.
    pub fn label_command(&self, command: &mut Command) {
        self.label(
            (command.target.as_deref(), command.account.as_deref()),
            command.time,
            [
                &mut command.target_name,
                &mut command.environment,
                &mut command.account_alias,
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditq_parse::names::name;
    use chrono::{DateTime, Utc};

    fn at(text: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn tag(time: &str, value: Option<&str>, source: &str, origin: &str) -> Name {
        name(
            at(time),
            ("instance", "i-1", "Name"),
            value.map(str::to_string),
            None,
            None,
            (source, origin),
        )
    }

    #[test]
    fn each_change_holds_until_the_next_and_repeats_add_nothing() {
        let first = merge(
            &[],
            vec![
                tag("2026-10-01T00:00:00Z", Some("web"), "cloudtrail", "e1"),
                tag("2026-10-03T00:00:00Z", Some("web"), "describe_tags", "x"),
            ],
        );
        assert_eq!(first.added.len(), 1, "{:?}", first.added);
        assert_eq!(first.added[0].valid_to, None);
        let names = &first.names;
        assert_eq!(
            names.at("instance", "i-1", "Name", at("2026-09-30T00:00:00Z")),
            None
        );
        assert_eq!(
            names.at("instance", "i-1", "Name", at("2026-10-02T00:00:00Z")),
            Some("web")
        );

        // A rename, then a removal, read in a later batch in the wrong order.
        let second = merge(
            &first.added,
            vec![
                tag("2026-10-09T00:00:00Z", None, "cloudtrail", "e3"),
                tag("2026-10-05T00:00:00Z", Some("db"), "cloudtrail", "e2"),
            ],
        );
        assert_eq!(second.added.len(), 2);
        assert_eq!(second.replaced.len(), 1);
        assert_eq!(
            second.replaced[0].valid_to,
            Some(at("2026-10-05T00:00:00Z"))
        );
        let names = &second.names;
        assert_eq!(
            names.at("instance", "i-1", "Name", at("2026-10-04T23:59:59Z")),
            Some("web")
        );
        assert_eq!(
            names.at("instance", "i-1", "Name", at("2026-10-05T00:00:00Z")),
            Some("db")
        );
        assert_eq!(
            names.at("instance", "i-1", "Name", at("2026-10-10T00:00:00Z")),
            None
        );

        // The same batch again changes nothing.
        let stored: Vec<Name> = second
            .names
            .history
            .values()
            .flatten()
            .flatten()
            .cloned()
            .collect();
        let again = merge(
            &stored,
            vec![tag("2026-10-05T00:00:00Z", Some("db"), "cloudtrail", "e2")],
        );
        assert!(again.added.is_empty() && again.replaced.is_empty());
    }

    #[test]
    fn a_value_first_seen_by_a_look_up_holds_before_it() {
        let changes = merge(
            &[],
            vec![tag(
                "2026-10-03T00:00:00Z",
                Some("web"),
                "describe_tags",
                "x",
            )],
        );
        let names = &changes.names;
        assert_eq!(
            names.at("instance", "i-1", "Name", at("2026-10-01T00:00:00Z")),
            Some("web")
        );
        let mut session = Session {
            session_id: "s".into(),
            date: at("2026-10-01T00:00:00Z").date_naive(),
            target: Some("i-1".into()),
            started_at: Some(at("2026-10-01T00:00:00Z")),
            kind: "shell".into(),
            logged: "none".into(),
            ..empty_session()
        };
        names.label_session(&mut session);
        assert_eq!(session.target_name.as_deref(), Some("web"));
        assert_eq!(session.environment, None);
    }

    fn empty_session() -> Session {
        Session {
            session_id: String::new(),
            date: at("2026-10-01T00:00:00Z").date_naive(),
            user: None,
            principal_arn: None,
            source_ip: None,
            user_agent: None,
            started_at: None,
            ended_at: None,
            duration_seconds: None,
            target: None,
            account: None,
            region: None,
            document: None,
            kind: String::new(),
            run_as: None,
            commands: 0,
            logged: String::new(),
            transcript_uri: None,
            stream_uri: None,
            reason: None,
            start_event_id: None,
            target_name: None,
            environment: None,
            account_alias: None,
            recorded_to: None,
            longest_silence_seconds: None,
        }
    }
}
