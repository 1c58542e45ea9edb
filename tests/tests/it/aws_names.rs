//! Names as they were, against the AWS API emulator: EC2 `DescribeTags`, IAM
//! `ListAccountAliases` and STS `GetCallerIdentity` looked up with auditq's signed Query calls,
//! kept as history in the `names` table, and CloudTrail's `CreateTags` renaming an instance
//! afterwards: each session carries the name its instance had when it started.

use auditq_ingest::lookup::{Lookup, leaves};
use auditq_ingest::parse::{Object, parse_object};
use auditq_ingest::{Lake, Limits, PipelineBuilder};
use auditq_model::{Name, Session, Table};
use auditq_tests::{emulator, run_id};
use aws_config::BehaviorVersion;

fn param(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn trail(records: &[String]) -> Vec<u8> {
    format!("{{\"Records\":[{}]}}", records.join(",")).into_bytes()
}

fn start_session(id: &str, instance: &str, time: &str, account: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::{account}:user/alice","userName":"alice"}},
        "eventTime":"{time}","eventSource":"ssm.amazonaws.com","eventName":"StartSession","awsRegion":"us-east-1",
        "sourceIPAddress":"203.0.113.7","requestParameters":{{"target":"{instance}"}},
        "responseElements":{{"sessionId":"{id}"}},"eventID":"start-{id}","recipientAccountId":"{account}"}}"#
    )
}

fn failed<T>(e: auditq_ingest::IngestError) -> T {
    panic!("{e}")
}

#[tokio::test(flavor = "multi_thread")]
async fn looked_up_names_and_later_renames_label_each_session_as_it_was() {
    let endpoint = emulator();
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let lookup = Lookup::new(auditq_aws::Aws::new(config, Some(endpoint)));

    // An instance launched with its tags, and an account alias: AWS's present state.
    let name = run_id("web");
    let launched = lookup
        .call(
            "ec2",
            "us-east-1",
            "2016-11-15",
            "RunInstances",
            &param(&[
                ("ImageId", "ami-12c6146b"),
                ("InstanceType", "t3.micro"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", &name),
                ("TagSpecification.1.Tag.2.Key", "Environment"),
                ("TagSpecification.1.Tag.2.Value", "production"),
                ("TagSpecification.1.Tag.3.Key", "Owner"),
                ("TagSpecification.1.Tag.3.Value", "platform"),
            ]),
        )
        .await
        .unwrap_or_else(failed);
    let instance = leaves(&launched)
        .unwrap_or_else(failed)
        .into_iter()
        .find(|(path, _)| path.ends_with("/instancesSet/item/instanceId"))
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("no instance id in {launched}"));
    lookup
        .call(
            "iam",
            "us-east-1",
            "2010-05-08",
            "CreateAccountAlias",
            &param(&[("AccountAlias", "acme-audit")]),
        )
        .await
        .unwrap_or_else(failed);

    let account = lookup.account().await.unwrap_or_else(failed);
    let seen_at = chrono::Utc::now();
    let names = lookup
        .names(&["us-east-1".to_string()], seen_at)
        .await
        .unwrap_or_else(failed);
    let value = |kind: &str, key: &str, attribute: &str| {
        names
            .iter()
            .find(|n| n.kind == kind && n.key == key && n.attribute == attribute)
            .and_then(|n| n.value.clone())
    };
    assert_eq!(
        value("instance", &instance, "Name").as_deref(),
        Some(name.as_str())
    );
    assert_eq!(
        value("instance", &instance, "Environment").as_deref(),
        Some("production")
    );
    assert_eq!(
        value("account", &account, "alias").as_deref(),
        Some("acme-audit")
    );
    assert!(
        !names
            .iter()
            .any(|n| n.key == instance && n.attribute == "Owner"),
        "only Name and Environment are kept: {names:?}"
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().to_string_lossy().to_string());
    let pipeline = PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(failed);
    let stored = pipeline
        .store_names(names.clone())
        .await
        .unwrap_or_else(failed);
    assert_eq!(stored.tables[&Table::Names].added, names.len());
    // Looking again finds nothing new: the history holds changes only.
    let again = lookup
        .names(&["us-east-1".to_string()], chrono::Utc::now())
        .await
        .unwrap_or_else(failed);
    let stored = pipeline.store_names(again).await.unwrap_or_else(failed);
    assert_eq!(stored.tables[&Table::Names].added, 0, "{stored:?}");

    // Then the trail: a session, a rename by CreateTags, another session.
    let at = |minutes: i64| {
        (seen_at + chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let rename = format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::{account}:user/ops","userName":"ops"}},
        "eventTime":"{}","eventSource":"ec2.amazonaws.com","eventName":"CreateTags","awsRegion":"us-east-1",
        "sourceIPAddress":"203.0.113.9","requestParameters":{{"resourcesSet":{{"items":[{{"resourceId":"{instance}"}}]}},
        "tagSet":{{"items":[{{"key":"Name","value":"{name}-renamed"}}]}}}},"responseElements":{{"_return":true}},
        "eventID":"rename-{instance}","recipientAccountId":"{account}"}}"#,
        at(10)
    );
    let body = trail(&[
        start_session("alice-names-1", &instance, &at(5), &account),
        rename,
        start_session("alice-names-2", &instance, &at(15), &account),
    ]);
    let parsed = parse_object(
        body,
        Object {
            origin: "s3://trail/names.json",
            modified: chrono::Utc::now(),
        },
        &Limits::default(),
    );
    let summary = pipeline.store(parsed).await.unwrap_or_else(failed);
    assert_eq!(summary.tables[&Table::Names].added, 1, "{summary:?}");
    assert_eq!(summary.tables[&Table::Names].updated, 1, "{summary:?}");

    let sessions: Vec<Session> = lake
        .rows(auditq_ingest::lake::Filter::all())
        .await
        .unwrap_or_else(failed);
    let session = |id: &str| {
        sessions
            .iter()
            .find(|s| s.session_id == id)
            .unwrap_or_else(|| panic!("no session {id}: {sessions:?}"))
    };
    let first = session("alice-names-1");
    assert_eq!(first.target_name.as_deref(), Some(name.as_str()));
    assert_eq!(first.environment.as_deref(), Some("production"));
    assert_eq!(first.account_alias.as_deref(), Some("acme-audit"));
    let second = session("alice-names-2");
    assert_eq!(second.target_name, Some(format!("{name}-renamed")));
    assert_eq!(second.environment.as_deref(), Some("production"));

    // The stored history: the looked-up name held until the rename.
    let history: Vec<Name> = lake
        .rows(auditq_ingest::lake::Filter::all().any_of("key", [instance.clone()]))
        .await
        .unwrap_or_else(failed);
    let mut names: Vec<(&str, Option<&str>, bool)> = history
        .iter()
        .filter(|n| n.attribute == "Name")
        .map(|n| (n.source.as_str(), n.value.as_deref(), n.valid_to.is_some()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            (
                "cloudtrail",
                Some(format!("{name}-renamed").as_str()),
                false
            ),
            ("describe_tags", Some(name.as_str()), true),
        ]
    );
}
