//! The default pack: it compiles, and every rule's own cases (kept in the pack as data) come
//! out as written. One runner for all rules, the same one `auditq rules check` uses.

use auditq_rules::pack::{self, run_cases};
use auditq_rules::{Engine, Severity};

#[test]
fn default_pack_cases_all_pass() {
    let files = pack::load("default").unwrap_or_else(|e| panic!("{e:?}"));
    let engine = Engine::compile(&files).unwrap_or_else(|e| panic!("{e:#?}"));
    let (run, failures) = run_cases(&std::sync::Arc::new(engine));
    let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} of {run} cases failed:\n{}",
        failures.len(),
        report.join("\n")
    );
    assert!(run >= 140, "only {run} cases");
}

#[test]
fn every_default_rule_has_cases_both_ways_and_tags() {
    let files = pack::load("default").unwrap_or_else(|e| panic!("{e:?}"));
    let engine = Engine::compile(&files).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(engine.rules().len() >= 20, "{} rules", engine.rules().len());
    for rule in engine.rules() {
        assert!(
            !rule.tests.positive.is_empty(),
            "{} has no match case",
            rule.id
        );
        assert!(
            !rule.tests.no_match.is_empty(),
            "{} has no no_match case",
            rule.id
        );
        assert!(!rule.tags.is_empty(), "{} has no tags", rule.id);
        assert!(rule.description.is_some(), "{} has no description", rule.id);
    }
    // The areas the issue names are all covered.
    let ids: Vec<&str> = engine.rules().iter().map(|r| r.id.as_str()).collect();
    for id in [
        "linux.sudo_root_shell",
        "linux.su_root",
        "linux.sudoers_change",
        "linux.authorized_keys_change",
        "linux.user_management",
        "linux.admin_group_grant",
        "linux.history_tampering",
        "linux.audit_tampering",
        "linux.download_and_execute",
        "linux.reverse_shell",
        "linux.aws_credentials_access",
        "aws.root_activity",
        "aws.console_login_without_mfa",
        "aws.cloudtrail_tampering",
        "aws.session_preferences_changed",
        "aws.ssm_ssh_session",
        "aws.ssm_port_forwarding",
    ] {
        assert!(ids.contains(&id), "missing {id}");
    }
    assert!(
        engine
            .rules()
            .iter()
            .any(|r| r.severity == Severity::Critical)
    );
}
