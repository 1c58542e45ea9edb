//! The ISO/IEC 27001:2022 Annex A controls a rule's alerts evidence.
//!
//! A rule names them with tags `iso27001.a.8.2` (any case). Rules that do not, which is every
//! Sigma rule as SigmaHQ writes them, get them from their ATT&CK tags by the table below; and
//! every rule evidences A.8.16 (monitoring activities), since an alert is monitoring at work.
//!
//! | ATT&CK tag | controls |
//! |---|---|
//! | `t1078` valid accounts | A.5.15 access control, A.8.5 secure authentication |
//! | `t1110` brute force, tactic `initial_access` | A.8.5 secure authentication |
//! | `t1548` abuse elevation control, tactic `privilege_escalation` | A.8.2 privileged access rights |
//! | `t1098` account manipulation, `t1136` create account, tactic `persistence` | A.5.18 access rights |
//! | `t1552`, `t1555` credentials, tactic `credential_access` | A.5.17 authentication information |
//! | `t1562` impair defenses, `t1070` indicator removal, tactic `defense_evasion` | A.8.15 logging |
//! | `t1021` remote services, `t1572` tunnelling, tactic `lateral_movement` | A.5.15 access control |
//! | `t1537`, `t1048`, `t1567` exfiltration, tactic `exfiltration` | A.8.12 data leakage prevention |
//! | `t1105` tool transfer, `t1204` user execution | A.8.7 protection against malware |

/// ATT&CK technique prefixes and tactics, and the controls they map to.
const FROM_ATTACK: &[(&str, &[&str])] = &[
    ("attack.t1078", &["A.5.15", "A.8.5"]),
    ("attack.t1110", &["A.8.5"]),
    ("attack.initial_access", &["A.8.5"]),
    ("attack.t1548", &["A.8.2"]),
    ("attack.privilege_escalation", &["A.8.2"]),
    ("attack.t1098", &["A.5.18"]),
    ("attack.t1136", &["A.5.18"]),
    ("attack.persistence", &["A.5.18"]),
    ("attack.t1552", &["A.5.17"]),
    ("attack.t1555", &["A.5.17"]),
    ("attack.credential_access", &["A.5.17"]),
    ("attack.t1562", &["A.8.15"]),
    ("attack.t1070", &["A.8.15"]),
    ("attack.defense_evasion", &["A.8.15"]),
    ("attack.t1021", &["A.5.15"]),
    ("attack.t1572", &["A.5.15"]),
    ("attack.lateral_movement", &["A.5.15"]),
    ("attack.t1537", &["A.8.12"]),
    ("attack.t1048", &["A.8.12"]),
    ("attack.t1567", &["A.8.12"]),
    ("attack.exfiltration", &["A.8.12"]),
    ("attack.t1105", &["A.8.7"]),
    ("attack.t1204", &["A.8.7"]),
];

/// The control every rule evidences.
pub const MONITORING: &str = "A.8.16";

/// The controls of a rule with these tags, in Annex A order.
pub fn controls(tags: &[String]) -> Vec<String> {
    let mut found = vec![MONITORING.to_string()];
    for tag in tags {
        let tag = tag.to_ascii_lowercase();
        if let Some(control) = tag.strip_prefix("iso27001.") {
            let control = control.trim_start_matches("a.").trim_start_matches('a');
            found.push(format!("A.{control}"));
            continue;
        }
        for (prefix, mapped) in FROM_ATTACK {
            let matches = tag == *prefix
                || tag
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'));
            if matches {
                found.extend(mapped.iter().map(|c| c.to_string()));
            }
        }
    }
    found.sort_by_key(|c| order(c));
    found.dedup();
    found
}

/// `A.8.16` as `(8, 16)`, for Annex A order.
pub fn order(control: &str) -> (u32, u32) {
    let mut parts = control.trim_start_matches("A.").split('.');
    let number = |p: Option<&str>| p.and_then(|p| p.parse().ok()).unwrap_or(u32::MAX);
    (number(parts.next()), number(parts.next()))
}

/// The Annex A control names auditq evidences.
pub const NAMES: &[(&str, &str)] = &[
    (
        "A.5.9",
        "Inventory of information and other associated assets",
    ),
    ("A.5.15", "Access control"),
    ("A.5.17", "Authentication information"),
    ("A.5.18", "Access rights"),
    ("A.8.2", "Privileged access rights"),
    ("A.8.5", "Secure authentication"),
    ("A.8.7", "Protection against malware"),
    ("A.8.12", "Data leakage prevention"),
    ("A.8.15", "Logging"),
    ("A.8.16", "Monitoring activities"),
];

/// A control's name, when auditq knows it.
pub fn name(control: &str) -> Option<&'static str> {
    NAMES.iter().find(|(c, _)| *c == control).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn controls_come_from_iso_tags_attack_tags_and_monitoring() {
        assert_eq!(controls(&tags(&[])), ["A.8.16"]);
        assert_eq!(
            controls(&tags(&["attack.t1548.003", "attack.t1059.004"])),
            ["A.8.2", "A.8.16"]
        );
        assert_eq!(
            controls(&tags(&["attack.privilege_escalation", "ISO27001.A.8.15"])),
            ["A.8.2", "A.8.15", "A.8.16"]
        );
        assert_eq!(
            controls(&tags(&["attack.t1078.004", "attack.t1078"])),
            ["A.5.15", "A.8.5", "A.8.16"]
        );
        // A technique id that only starts like one of the table's is not it.
        assert_eq!(controls(&tags(&["attack.t10780"])), ["A.8.16"]);
    }
}
