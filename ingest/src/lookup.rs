//! What AWS holds that its logs do not say, looked up: names as they are now (EC2 `DescribeTags`:
//! the `Name` and `Environment` tags of every instance in a region; IAM `ListAccountAliases`;
//! STS `GetCallerIdentity`: the account they belong to), each a [`Name`] row seen now, of which
//! the history ([`crate::names`]) keeps those that differ from what was known; and the scripts
//! Run Command invocations sent (SSM `ListCommands`), which CloudTrail hides.
//!
//! These are AWS Query-protocol calls (a form-encoded POST, an XML answer) and, for SSM,
//! JSON-protocol ones, made here with
//! the SDK's own configuration (credentials chain, region, `AWS_ENDPOINT_URL`) and signed with
//! SigV4 by `aws-sigv4`, the SDK's signer, over the HTTP client the lake's object store already
//! uses. The generated SDK crates would add 1.24 million lines of Rust to the build for EC2
//! alone (`aws-sdk-ec2` 1.274; `aws-sdk-s3` is 252 thousand), for two calls.

use std::time::SystemTime;

use auditq_model::{Name, Timestamp};
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::error::{IngestError, Result};
use crate::names::{name, tag_attribute};
use crate::ssm::ListedCommand;

/// The tag keys asked for: `Name`, and `Environment` as teams spell it (tag keys are
/// case-sensitive; [`tag_attribute`] maps each to its attribute).
const TAG_KEYS: [&str; 6] = ["Name", "name", "Environment", "environment", "Env", "env"];

/// A client for the Query-protocol calls of the look-up.
#[derive(Debug, Clone)]
pub struct Lookup {
    config: SdkConfig,
    http: reqwest::Client,
    endpoint_url: Option<String>,
}

impl Lookup {
    /// A client from the SDK's configuration; `endpoint_url` (an emulator) replaces every
    /// service's endpoint.
    pub fn new(config: SdkConfig, endpoint_url: Option<String>) -> Self {
        Lookup {
            config,
            http: reqwest::Client::new(),
            endpoint_url,
        }
    }

    /// The configured region.
    pub fn region(&self) -> Option<String> {
        self.config.region().map(|r| r.to_string())
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
        let mut body = format!("Action={}&Version={}", encode(action), encode(version));
        for (key, value) in params {
            body.push_str(&format!("&{}={}", encode(key), encode(value)));
        }
        let operation = format!("{service}:{action}");
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let (status, text) = self
            .send(
                service,
                region,
                &operation,
                &[("content-type", content_type)],
                body,
            )
            .await?;
        if !status.is_success() {
            let mut code = String::new();
            let mut message = String::new();
            let _ = walk(&text, "", &mut |path, value| {
                if path.ends_with("/Code") {
                    code = value.to_string();
                } else if path.ends_with("/Message") {
                    message = value.to_string();
                }
            });
            return Err(failure(
                &operation,
                service,
                &format!("{status}: {code} {message}"),
            ));
        }
        Ok(text)
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
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let (status, text) = self
            .send(service, region, &operation, &headers, request.to_string())
            .await?;
        let answer: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            failure(
                &operation,
                service,
                &format!("{status}: not JSON ({e}): {text:.200}"),
            )
        })?;
        if !status.is_success() {
            let code = answer["__type"].as_str().unwrap_or_default();
            let message = answer["message"]
                .as_str()
                .or(answer["Message"].as_str())
                .unwrap_or_default();
            return Err(failure(
                &operation,
                service,
                &format!("{status}: {code} {message}"),
            ));
        }
        Ok(answer)
    }

    /// A POST to `service`'s endpoint in `region` (or the emulator's), signed with SigV4.
    async fn send(
        &self,
        service: &str,
        region: &str,
        operation: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<(reqwest::StatusCode, String)> {
        let endpoint = match (&self.endpoint_url, service) {
            (Some(url), _) => format!("{}/", url.trim_end_matches('/')),
            (None, "iam") => "https://iam.amazonaws.com/".to_string(),
            (None, service) => format!("https://{service}.{region}.amazonaws.com/"),
        };
        let fail = |e: &dyn std::fmt::Display| failure(operation, &endpoint, &e.to_string());
        let provider = self
            .config
            .credentials_provider()
            .ok_or_else(|| fail(&"no AWS credentials configured"))?;
        let credentials = provider.provide_credentials().await.map_err(|e| fail(&e))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| fail(&e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            endpoint.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| fail(&e))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| fail(&e))?.into_parts();
        let mut request = self.http.post(&endpoint).body(body);
        for (header, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(header, value);
        }
        let response = request.send().await.map_err(|e| fail(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| fail(&e))?;
        Ok((status, text))
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

/// Percent-encoding of a form value (RFC 3986 unreserved characters kept), as SigV4 expects.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Every element of an answer that holds text: (path, text).
pub fn leaves(xml: &str) -> Result<Vec<(String, String)>> {
    let mut leaves = Vec::new();
    walk(xml, "answer", &mut |path, value| {
        leaves.push((path.to_string(), value.to_string()))
    })?;
    Ok(leaves)
}

/// Calls `leaf` with the path (`/Response/.../Tag`) and the text of every element that holds
/// text, entities resolved.
fn walk(xml: &str, action: &str, leaf: &mut dyn FnMut(&str, &str)) -> Result<()> {
    use quick_xml::events::Event;
    let bad = |e: &dyn std::fmt::Display| failure(action, "answer", &format!("bad XML: {e}"));
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path = String::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(element) => {
                path.push('/');
                path.push_str(&String::from_utf8_lossy(element.local_name().as_ref()));
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(r) => {
                let entity = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c,
                    None => match r.decode().map_err(|e| bad(&e))?.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(bad(&format!("unknown entity &{other};"))),
                    },
                };
                text.push(entity);
            }
            Event::End(_) => {
                if !text.trim().is_empty() {
                    leaf(&path, text.trim());
                }
                text.clear();
                let cut = path.rfind('/').unwrap_or(0);
                path.truncate(cut);
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_paths_and_text() {
        let xml = r#"<?xml version="1.0"?>
<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <tagSet><item><resourceId>i-1</resourceId><key>Name</key><value>a &amp; b</value></item></tagSet>
  <nextToken>t2</nextToken>
</DescribeTagsResponse>"#;
        let mut seen = Vec::new();
        walk(xml, "DescribeTags", &mut |path, value| {
            seen.push(format!("{path}={value}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            seen,
            [
                "/DescribeTagsResponse/tagSet/item/resourceId=i-1",
                "/DescribeTagsResponse/tagSet/item/key=Name",
                "/DescribeTagsResponse/tagSet/item/value=a & b",
                "/DescribeTagsResponse/nextToken=t2",
            ]
        );
        assert_eq!(encode("a b/c~"), "a%20b%2Fc~");
    }
}
