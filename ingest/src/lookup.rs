//! What AWS holds that its logs do not say, looked up: names as they are now (EC2 `DescribeTags`:
//! the `Name` and `Environment` tags of every instance in a region; IAM `ListAccountAliases`;
//! STS `GetCallerIdentity`: the account they belong to), each a [`Name`] row seen now, of which
//! the history ([`crate::names`]) keeps those that differ from what was known; and the scripts
//! Run Command invocations sent (SSM `ListCommands`), which CloudTrail hides.
//!
//! These are AWS Query-protocol calls (a form-encoded POST, an XML answer) and, for SSM,
//! JSON-protocol ones, made with [`auditq_aws`] (the SDK's configuration and signer over the
//! HTTP client the lake's object store already uses). The generated SDK crates would add 1.24
//! million lines of Rust to the build for EC2 alone (`aws-sdk-ec2` 1.274), for two calls.

use auditq_aws::Aws;
use auditq_model::{Name, Timestamp};

use crate::error::{IngestError, Result};
use crate::names::{name, tag_attribute};
use crate::ssm::ListedCommand;

/// The tag keys asked for: `Name`, and `Environment` as teams spell it (tag keys are
/// case-sensitive; [`tag_attribute`] maps each to its attribute).
const TAG_KEYS: [&str; 6] = ["Name", "name", "Environment", "environment", "Env", "env"];

/// A client for the Query-protocol calls of the look-up.
#[derive(Debug, Clone)]
pub struct Lookup {
    aws: Aws,
}

impl Lookup {
    /// A client over `aws`.
    pub fn new(aws: Aws) -> Self {
        Lookup { aws }
    }

    /// The configured region.
    pub fn region(&self) -> Option<String> {
        self.aws.region()
    }

    /// Every name AWS holds now: the account's alias, and the instance tags of each region.
    pub async fn names(&self, regions: &[String], now: Timestamp) -> Result<Vec<Name>> {
        let account = self.account().await?;
        let mut names = Vec::new();
        let alias = self.account_aliases().await?.into_iter().next();
        names.push(name(
            now,
            ("account", &account, "alias"),
            alias,
            Some(account.clone()),
            None,
            ("list_account_aliases", "iam:ListAccountAliases"),
        ));
        for region in regions {
            for (instance, key, value) in self.instance_tags(region).await? {
                let Some(attribute) = tag_attribute(&key) else {
                    continue;
                };
                names.push(name(
                    now,
                    ("instance", &instance, attribute),
                    Some(value),
                    Some(account.clone()),
                    Some(region.clone()),
                    ("describe_tags", "ec2:DescribeTags"),
                ));
            }
        }
        Ok(names)
    }

    /// STS `GetCallerIdentity`: the account the credentials belong to.
    pub async fn account(&self) -> Result<String> {
        let region = self.region().unwrap_or_else(|| "us-east-1".to_string());
        let xml = self
            .call("sts", &region, "2011-06-15", "GetCallerIdentity", &[])
            .await?;
        let mut account = None;
        walk(&xml, "GetCallerIdentity", &mut |path, value| {
            if path.ends_with("/Account") {
                account = Some(value.to_string());
            }
        })?;
        account.ok_or_else(|| failure("GetCallerIdentity", "sts", "no Account in the answer"))
    }

    /// STS `GetCallerIdentity`: the ARN of the principal the credentials are.
    pub async fn caller_arn(&self) -> Result<String> {
        let region = self.region().unwrap_or_else(|| "us-east-1".to_string());
        let xml = self
            .call("sts", &region, "2011-06-15", "GetCallerIdentity", &[])
            .await?;
        let mut arn = None;
        walk(&xml, "GetCallerIdentity", &mut |path, value| {
            if path.ends_with("/Arn") {
                arn = Some(value.to_string());
            }
        })?;
        arn.ok_or_else(|| failure("GetCallerIdentity", "sts", "no Arn in the answer"))
    }

    /// IAM `ListAccountAliases` (an account has at most one).
    pub async fn account_aliases(&self) -> Result<Vec<String>> {
        let xml = self
            .call("iam", "us-east-1", "2010-05-08", "ListAccountAliases", &[])
            .await?;
        let mut aliases = Vec::new();
        walk(&xml, "ListAccountAliases", &mut |path, value| {
            if path.ends_with("/AccountAliases/member") {
                aliases.push(value.to_string());
            }
        })?;
        Ok(aliases)
    }

    /// EC2 `DescribeTags` of instances, for the kept keys, every page: (instance, key, value).
    pub async fn instance_tags(&self, region: &str) -> Result<Vec<(String, String, String)>> {
        let mut tags = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params: Vec<(String, String)> = vec![
                ("Filter.1.Name".into(), "resource-type".into()),
                ("Filter.1.Value.1".into(), "instance".into()),
                ("Filter.2.Name".into(), "key".into()),
                ("MaxResults".into(), "1000".into()),
            ];
            for (i, key) in TAG_KEYS.iter().enumerate() {
                params.push((format!("Filter.2.Value.{}", i + 1), key.to_string()));
            }
            if let Some(token) = &token {
                params.push(("NextToken".into(), token.clone()));
            }
            let xml = self
                .call("ec2", region, "2016-11-15", "DescribeTags", &params)
                .await?;
            let mut item: [Option<String>; 3] = Default::default();
            let mut next = None;
            walk(&xml, "DescribeTags", &mut |path, value| {
                let slot = match path.rsplit('/').next() {
                    Some("resourceId") => 0,
                    Some("key") => 1,
                    Some("value") => 2,
                    Some("nextToken") => {
                        next = Some(value.to_string());
                        return;
                    }
                    _ => return,
                };
                item[slot] = Some(value.to_string());
                if let [Some(id), Some(key), Some(value)] = &mut item {
                    tags.push((
                        std::mem::take(id),
                        std::mem::take(key),
                        std::mem::take(value),
                    ));
                    item = Default::default();
                }
            })?;
            if !next_page(&mut token, next.as_deref()) {
                break;
            }
        }
        Ok(tags)
    }

    /// One signed Query-protocol call (`service` is the signing name: `ec2`, `iam`, `sts`);
    /// the answer's XML, or the service's error.
    pub async fn call(
        &self,
        service: &str,
        region: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String> {
        self.aws
            .query(service, region, version, action, params, service)
            .await
            .map_err(|e| failure(&format!("{service}:{action}"), service, &e.detail()))
    }

    /// One signed JSON-protocol call (`target`: `AmazonSSM.ListCommands`); the answer, or the
    /// service's error.
    pub async fn json_call(
        &self,
        service: &str,
        region: &str,
        target: &str,
        request: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let operation = format!("{service}:{}", target.rsplit('.').next().unwrap_or(target));
        self.aws
            .json(
                service,
                region,
                auditq_aws::JSON_1_1,
                target,
                request,
                service,
            )
            .await
            .map_err(|e| failure(&operation, service, &e.detail()))
    }

    /// The Run Command invocations of a region sent after `after` (all that Systems Manager
    /// keeps, 30 days, when `None`), oldest first, with the instances each ran on.
    pub async fn run_commands(
        &self,
        region: &str,
        after: Option<Timestamp>,
    ) -> Result<Vec<ListedCommand>> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = serde_json::json!({ "MaxResults": 50 });
            if let Some(after) = after {
                request["Filters"] = serde_json::json!([{
                    "key": "InvokedAfter",
                    "value": after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                }]);
            }
            if let Some(token) = &token {
                request["NextToken"] = token.clone().into();
            }
            let answer = self
                .json_call("ssm", region, "AmazonSSM.ListCommands", &request)
                .await?;
            for command in answer["Commands"].as_array().into_iter().flatten() {
                let Some(id) = command["CommandId"].as_str() else {
                    continue;
                };
                let text = |key: &str| command[key].as_str().map(str::to_string);
                let requested = command["RequestedDateTime"]
                    .as_f64()
                    .and_then(|s| chrono::DateTime::from_timestamp_micros((s * 1e6) as i64))
                    .unwrap_or_else(chrono::Utc::now);
                if after.is_some_and(|a| requested <= a) {
                    continue;
                }
                let mut instances: Vec<String> = command["InstanceIds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect();
                if instances.is_empty() {
                    // Sent to tags: the invocations name the instances.
                    instances = self.invocations(region, id).await?;
                }
                listed.push(ListedCommand {
                    command_id: id.to_string(),
                    document: text("DocumentName"),
                    comment: text("Comment"),
                    commands: command["Parameters"]["commands"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect(),
                    instances,
                    requested,
                    region: region.to_string(),
                });
            }
            if !next_page(&mut token, answer["NextToken"].as_str()) {
                break;
            }
        }
        listed.sort_by_key(|c| c.requested);
        Ok(listed)
    }

    /// The instances a Run Command invocation ran on (`ListCommandInvocations`).
    async fn invocations(&self, region: &str, command_id: &str) -> Result<Vec<String>> {
        let mut instances = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = serde_json::json!({ "CommandId": command_id, "MaxResults": 50 });
            if let Some(token) = &token {
                request["NextToken"] = token.clone().into();
            }
            let answer = self
                .json_call("ssm", region, "AmazonSSM.ListCommandInvocations", &request)
                .await?;
            for invocation in answer["CommandInvocations"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(instance) = invocation["InstanceId"].as_str() {
                    instances.push(instance.to_string());
                }
            }
            if !next_page(&mut token, answer["NextToken"].as_str()) {
                break;
            }
        }
        instances.sort();
        instances.dedup();
        Ok(instances)
    }
}

/// Moves `token` to the next page's, when the answer names one not seen yet (an empty or
/// repeated token ends the listing); whether there is a next page.
fn next_page(token: &mut Option<String>, next: Option<&str>) -> bool {
    match next.filter(|t| !t.is_empty()) {
        Some(next) if token.as_deref() != Some(next) => {
            *token = Some(next.to_string());
            true
        }
        _ => false,
    }
}

fn failure(operation: &str, resource: &str, message: &str) -> IngestError {
    IngestError::Aws {
        operation: operation.to_string(),
        resource: resource.to_string(),
        message: message.to_string(),
    }
}

/// Every element of an answer that holds text: (path, text).
pub fn leaves(xml: &str) -> Result<Vec<(String, String)>> {
    auditq_aws::xml::leaves(xml).map_err(|e| failure("answer", "answer", &e))
}

/// Calls `leaf` with the path (`/Response/.../Tag`) and the text of every element that holds
/// text, entities resolved.
fn walk(xml: &str, action: &str, leaf: &mut dyn FnMut(&str, &str)) -> Result<()> {
    auditq_aws::xml::walk(xml, leaf).map_err(|e| failure(action, "answer", &e))
}
