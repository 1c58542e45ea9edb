//! Names as CloudTrail records them: what an instance was called (its `Name` and `Environment`
//! tags), an account's alias, and who an IAM Identity Center principal is, each from the call
//! that set it. Without any AWS access this is the whole history; look-ups (`DescribeTags`,
//! `ListAccountAliases`) add what was set before the trail began.
//!
//! The calls read (successful ones only):
//!
//! | call | what it names |
//! |---|---|
//! | `ec2:RunInstances` | the tags given at launch to each instance it started |
//! | `ec2:CreateTags`, `ec2:DeleteTags` | the tags of each instance it names |
//! | `ssm:AddTagsToResource`, `ssm:RemoveTagsFromResource` | the tags of a managed node (`mi-`) |
//! | `iam:CreateAccountAlias`, `iam:DeleteAccountAlias` | the account's alias |
//! | any call by an `AWSReservedSSO_<permission set>_<id>` role session | the principal's user and permission set |

use std::collections::HashMap;

use auditq_model::{Name, Timestamp, TrailEvent, day_of, event_id};

use crate::ssm::is_instance_id;
use serde_json::Value;

/// The instance tags kept, by tag key (compared without case): `Name`, and `Environment` as
/// teams spell it.
pub fn tag_attribute(key: &str) -> Option<&'static str> {
    match key.to_ascii_lowercase().as_str() {
        "name" => Some("Name"),
        "environment" | "env" => Some("Environment"),
        _ => None,
    }
}

/// One name as something said it at a time.
pub fn name(
    time: Timestamp,
    (kind, key, attribute): (&str, &str, &str),
    value: Option<String>,
    account: Option<String>,
    region: Option<String>,
    (source, origin): (&str, &str),
) -> Name {
    // A CloudTrail change is identified by the call that made it; a principal's name by the
    // name (every call of the principal says it again); a look-up by what it found and when.
    let said = match source {
        "cloudtrail" => origin.to_string(),
        "identity_center" => value.clone().unwrap_or_default(),
        _ => format!(
            "{}\u{0}{}",
            time.timestamp_micros(),
            value.as_deref().unwrap_or("")
        ),
    };
    Name {
        event_id: event_id("name", &[source, &said, kind, key, attribute]),
        time,
        date: day_of(&time),
        valid_to: None,
        kind: kind.to_string(),
        key: key.to_string(),
        attribute: attribute.to_string(),
        value,
        account,
        region,
        source: source.to_string(),
        origin: origin.to_string(),
    }
}

/// The names a batch of CloudTrail records says: what each record sets or removes
/// ([`from_trail`]), and who each IAM Identity Center principal is, once per principal, from its
/// earliest successful call (a principal says its name again on every call it makes).
pub fn of_trail(trail: &[TrailEvent]) -> Vec<Name> {
    let mut names: Vec<Name> = trail.iter().flat_map(from_trail).collect();
    let mut first: HashMap<&str, &TrailEvent> = HashMap::new();
    for event in trail.iter().filter(|e| e.error_code.is_none()) {
        if let Some(arn) = event
            .principal_arn
            .as_deref()
            .filter(|a| sso_principal(a).is_some())
        {
            let earliest = first.entry(arn).or_insert(event);
            if event.time < earliest.time {
                *earliest = event;
            }
        }
    }
    names.extend(first.into_values().flat_map(identity_center));
    names
}

/// The names a CloudTrail record sets or removes.
pub fn from_trail(event: &TrailEvent) -> Vec<Name> {
    let mut names = Vec::new();
    if event.error_code.is_some() {
        return names;
    }
    let parse = |raw: &Option<String>| -> Value {
        raw.as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null)
    };
    let trail_name = |(kind, key, attribute): (&str, &str, &str), value: Option<String>| {
        name(
            event.time,
            (kind, key, attribute),
            value,
            event.account.clone(),
            event.region.clone(),
            ("cloudtrail", &event.event_id),
        )
    };
    match (event.event_source.as_str(), event.event_name.as_str()) {
        ("ec2.amazonaws.com", "CreateTags" | "DeleteTags") => {
            let request = parse(&event.request);
            let removing = event.event_name == "DeleteTags";
            for resource in items(&request["resourcesSet"]) {
                let Some(id) = resource["resourceId"]
                    .as_str()
                    .filter(|id| is_instance_id(id))
                else {
                    continue;
                };
                for tag in items(&request["tagSet"]) {
                    let Some(attribute) = tag["key"].as_str().and_then(tag_attribute) else {
                        continue;
                    };
                    let value =
                        (!removing).then(|| tag["value"].as_str().unwrap_or("").to_string());
                    names.push(trail_name(("instance", id, attribute), value));
                }
            }
        }
        ("ec2.amazonaws.com", "RunInstances") => {
            let request = parse(&event.request);
            let response = parse(&event.response);
            let tags: Vec<(&'static str, String)> = items(&request["tagSpecificationSet"])
                .filter(|spec| spec["resourceType"].as_str() == Some("instance"))
                .flat_map(|spec| {
                    // CloudTrail writes them as `tags` (a list) or `tagSet.items`.
                    spec["tags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(items(&spec["tagSet"]))
                })
                .filter_map(|tag| {
                    let attribute = tag["key"].as_str().and_then(tag_attribute)?;
                    Some((attribute, tag["value"].as_str().unwrap_or("").to_string()))
                })
                .collect();
            for instance in items(&response["instancesSet"]) {
                let Some(id) = instance["instanceId"].as_str() else {
                    continue;
                };
                for (attribute, value) in &tags {
                    names.push(trail_name(("instance", id, attribute), Some(value.clone())));
                }
            }
        }
        ("ssm.amazonaws.com", "AddTagsToResource" | "RemoveTagsFromResource") => {
            let request = parse(&event.request);
            let Some(id) = request["resourceId"]
                .as_str()
                .filter(|id| is_instance_id(id))
            else {
                return names;
            };
            if event.event_name == "AddTagsToResource" {
                for tag in request["tags"].as_array().into_iter().flatten() {
                    if let Some(attribute) = tag["key"].as_str().and_then(tag_attribute) {
                        let value = tag["value"].as_str().unwrap_or("").to_string();
                        names.push(trail_name(("instance", id, attribute), Some(value)));
                    }
                }
            } else {
                for key in request["tagKeys"].as_array().into_iter().flatten() {
                    if let Some(attribute) = key.as_str().and_then(tag_attribute) {
                        names.push(trail_name(("instance", id, attribute), None));
                    }
                }
            }
        }
        ("iam.amazonaws.com", "CreateAccountAlias" | "DeleteAccountAlias") => {
            let request = parse(&event.request);
            if let Some(account) = &event.account {
                let value = (event.event_name == "CreateAccountAlias")
                    .then(|| request["accountAlias"].as_str().map(str::to_string))
                    .flatten();
                names.push(trail_name(("account", account, "alias"), value));
            }
        }
        _ => {}
    }
    names
}

/// The elements of `{"items": [...]}` (how EC2's CloudTrail records write lists), or of a plain
/// list.
fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value["items"]
        .as_array()
        .or(value.as_array())
        .into_iter()
        .flatten()
}

/// Who an IAM Identity Center principal is: its role, `AWSReservedSSO_<permission set>_<id>`,
/// names the permission set, and its role session name is the user's Identity Center user name.
fn identity_center(event: &TrailEvent) -> Vec<Name> {
    let Some(arn) = event.principal_arn.as_deref() else {
        return Vec::new();
    };
    let Some((permission_set, user)) = sso_principal(arn) else {
        return Vec::new();
    };
    [("user", user), ("permission_set", permission_set)]
        .into_iter()
        .map(|(attribute, value)| {
            name(
                event.time,
                ("principal", arn, attribute),
                Some(value.to_string()),
                event.account.clone(),
                None,
                ("identity_center", "role session"),
            )
        })
        .collect()
}

/// The permission set and user of an Identity Center role session ARN
/// (`arn:aws:sts::<account>:assumed-role/AWSReservedSSO_<set>_<16 hex>/<user>`).
pub fn sso_principal(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.split_once(":assumed-role/AWSReservedSSO_")?.1;
    let (role, user) = rest.split_once('/')?;
    let (set, id) = role.rsplit_once('_')?;
    (!set.is_empty() && !user.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()))
        .then_some((set, user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudtrail::parse_record;

    fn names_of(record: &str) -> Vec<(String, String, String, Option<String>)> {
        let event = parse_record(record, "test").unwrap_or_else(|e| panic!("{e}"));
        of_trail(&[event])
            .into_iter()
            .map(|n| (n.kind, n.key, n.attribute, n.value))
            .collect()
    }

    fn owned(
        kind: &str,
        key: &str,
        attribute: &str,
        value: Option<&str>,
    ) -> (String, String, String, Option<String>) {
        (
            kind.into(),
            key.into(),
            attribute.into(),
            value.map(str::to_string),
        )
    }

    #[test]
    fn create_and_delete_tags_name_instances_only() {
        let create = r#"{"eventTime":"2026-10-05T09:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"CreateTags","eventID":"e1","recipientAccountId":"111122223333","awsRegion":"eu-west-1",
            "requestParameters":{"resourcesSet":{"items":[{"resourceId":"i-0a1b"},{"resourceId":"vol-9"}]},"tagSet":{"items":[{"key":"Name","value":"web-1"},{"key":"env","value":"prod"},{"key":"Owner","value":"x"}]}}}"#;
        assert_eq!(
            names_of(create),
            vec![
                owned("instance", "i-0a1b", "Name", Some("web-1")),
                owned("instance", "i-0a1b", "Environment", Some("prod")),
            ]
        );
        let delete = create.replace("CreateTags", "DeleteTags");
        assert_eq!(
            names_of(&delete),
            vec![
                owned("instance", "i-0a1b", "Name", None),
                owned("instance", "i-0a1b", "Environment", None),
            ]
        );
        let failed = create.replace(
            r#""eventID":"e1""#,
            r#""eventID":"e1","errorCode":"Client.UnauthorizedOperation""#,
        );
        assert!(names_of(&failed).is_empty());
    }

    #[test]
    fn run_instances_names_what_it_started() {
        let record = r#"{"eventTime":"2026-10-05T09:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","eventID":"e2",
            "requestParameters":{"tagSpecificationSet":{"items":[{"resourceType":"instance","tags":[{"key":"Name","value":"batch"}]},{"resourceType":"volume","tags":[{"key":"Name","value":"disk"}]}]}},
            "responseElements":{"instancesSet":{"items":[{"instanceId":"i-1"},{"instanceId":"i-2"}]}}}"#;
        assert_eq!(
            names_of(record),
            vec![
                owned("instance", "i-1", "Name", Some("batch")),
                owned("instance", "i-2", "Name", Some("batch")),
            ]
        );
    }

    #[test]
    fn account_aliases_and_managed_node_tags() {
        let alias = r#"{"eventTime":"2026-10-05T09:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccountAlias","eventID":"e3","recipientAccountId":"111122223333","requestParameters":{"accountAlias":"acme-prod"}}"#;
        assert_eq!(
            names_of(alias),
            vec![owned("account", "111122223333", "alias", Some("acme-prod"))]
        );
        let removed = alias.replace("CreateAccountAlias", "DeleteAccountAlias");
        assert_eq!(
            names_of(&removed),
            vec![owned("account", "111122223333", "alias", None)]
        );
        let node = r#"{"eventTime":"2026-10-05T09:00:00Z","eventSource":"ssm.amazonaws.com","eventName":"RemoveTagsFromResource","eventID":"e4","requestParameters":{"resourceType":"ManagedInstance","resourceId":"mi-0abc","tagKeys":["Name","Team"]}}"#;
        assert_eq!(
            names_of(node),
            vec![owned("instance", "mi-0abc", "Name", None)]
        );
    }

    #[test]
    fn a_principal_is_named_once_a_batch_from_its_earliest_call() {
        let arn = "arn:aws:sts::1:assumed-role/AWSReservedSSO_ReadOnly_0123456789abcdef/bob";
        let call = |time: &str, id: &str| {
            parse_record(
                &format!(
                    r#"{{"eventTime":"{time}","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"{id}","userIdentity":{{"type":"AssumedRole","arn":"{arn}"}}}}"#
                ),
                "test",
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let names = of_trail(&[
            call("2026-10-05T10:00:00Z", "a"),
            call("2026-10-05T09:00:00Z", "b"),
            call("2026-10-05T11:00:00Z", "c"),
        ]);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.time.to_rfc3339() == "2026-10-05T09:00:00+00:00"),
            "{names:?}"
        );
    }

    #[test]
    fn identity_center_sessions_name_their_user_and_permission_set() {
        let arn = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com";
        assert_eq!(
            sso_principal(arn),
            Some(("AdministratorAccess", "alice@example.com"))
        );
        assert_eq!(sso_principal("arn:aws:sts::1:assumed-role/Deploy/ci"), None);
        let record = format!(
            r#"{{"eventTime":"2026-10-05T09:00:00Z","eventSource":"ssm.amazonaws.com","eventName":"StartSession","eventID":"e5","userIdentity":{{"type":"AssumedRole","arn":"{arn}"}}}}"#
        );
        assert_eq!(
            names_of(&record),
            vec![
                owned("principal", arn, "user", Some("alice@example.com")),
                owned(
                    "principal",
                    arn,
                    "permission_set",
                    Some("AdministratorAccess")
                ),
            ]
        );
    }
}
