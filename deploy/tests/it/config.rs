//! The configuration file: the committed example parses, unknown fields are refused, and the
//! environment overrides the file.

use std::collections::HashMap;
use std::path::Path;

use auditq_deploy::Config;
use auditq_deploy::config::Follow;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("auditq.example.yaml")
}

#[test]
fn the_committed_example_parses_and_validates() {
    let config = Config::load(Some(&example()), &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.data, "s3://example-auditq-lake/lake");
    assert_eq!(config.rules.as_deref(), Some("default"));
    assert_eq!(
        config.alerts,
        ["sns://arn:aws:sns:eu-west-1:111122223333:auditq-alerts"]
    );
    assert_eq!(config.sources.log_groups.len(), 2);
    assert_eq!(config.sources.follow, Follow::LiveTail);
    assert_eq!(config.service.listen, "0.0.0.0:9090");
    assert_eq!(config.compaction.vacuum_retention_hours, 168);
    // Every field of the example is the default except the site-specific ones.
    let text = std::fs::read_to_string(example()).unwrap_or_else(|e| panic!("{e}"));
    let mut defaults = Config::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    defaults.data = String::new();
    defaults.rules = None;
    defaults.alerts.clear();
    defaults.sources.log_groups.clear();
    defaults.sources.sqs_queue = None;
    assert_eq!(defaults.redact, ["vault-token=vault login (\\S+)"]);
    defaults.redact.clear();
    assert_eq!(
        defaults,
        Config::default(),
        "the example documents the defaults"
    );
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let error = Config::parse("data: s3://b/l\nservice:\n  listen: 0.0.0.0:1\n  lissten: x\n")
        .err()
        .unwrap_or_default();
    assert!(error.contains("lissten"), "{error}");
}

#[test]
fn environment_overrides_the_file_and_is_validated() {
    let env = HashMap::from([
        ("AUDITQ_DATA", "s3://other/lake"),
        ("AUDITQ_SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
        ("AUDITQ_LOG_GROUPS", "/a, /b ,"),
        ("AUDITQ_FOLLOW", "poll"),
        ("AUDITQ_POLL_INTERVAL_MS", "500"),
        ("AUDITQ_LISTEN", "127.0.0.1:9999"),
    ]);
    let var = |name: &str| env.get(name).map(|v| v.to_string());
    let config = Config::load(Some(&example()), &var).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.data, "s3://other/lake");
    assert!(
        config
            .alerts
            .contains(&"sns://arn:aws:sns:us-east-1:1:t".to_string())
    );
    assert_eq!(config.sources.log_groups, ["/a", "/b"]);
    assert_eq!(config.sources.follow, Follow::Poll);
    assert_eq!(config.sources.poll_interval_ms, 500);
    assert_eq!(config.service.listen, "127.0.0.1:9999");

    for (name, value, says) in [
        ("AUDITQ_FOLLOW", "sometimes", "live_tail or poll"),
        ("AUDITQ_POLL_INTERVAL_MS", "fast", "whole number"),
        ("AUDITQ_LISTEN", "nowhere", "not an address"),
        ("AUDITQ_RULES", "/no/such/rules.yaml", "rules"),
        ("AUDITQ_ALERTS", "email:me", "sns://TOPIC_ARN"),
    ] {
        let var = |n: &str| (n == name).then(|| value.to_string());
        let error = Config::load(Some(&example()), &var)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains(says), "{name}={value}: {error}");
    }
    let error = Config::load(None, &|_| None).err().map(|e| e.to_string());
    assert!(
        error.as_deref().is_some_and(|e| e.contains("AUDITQ_DATA")),
        "{error:?}"
    );
}

#[test]
fn the_signing_key_file_signs_digests_and_a_bad_one_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = dir.path().join("signing.key");
    // RFC 8032's first test key: its public key is known.
    std::fs::write(&good, "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let var = |name: &str| {
        (name == "AUDITQ_SIGNING_KEY_FILE").then(|| good.to_string_lossy().into_owned())
    };
    let config = Config::load(Some(&example()), &var).unwrap_or_else(|e| panic!("{e}"));
    let key = auditq_deploy::signing_key(&config)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no key"));
    assert_eq!(
        key.public_key(),
        "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    );

    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "c2hvcnQ=").unwrap_or_else(|e| panic!("{e}"));
    let config = Config {
        signing_key_file: Some(bad.clone()),
        ..config
    };
    let error = auditq_deploy::signing_key(&config).map(|_| ());
    assert!(
        error
            .as_ref()
            .is_err_and(|e| e.to_string().contains(&bad.display().to_string())
                && e.to_string().contains("32 bytes")),
        "{error:?}"
    );
}
