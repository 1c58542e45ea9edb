//! CloudTrail records: `{"Records":[...]}` deliveries, single records, and NDJSON.
//!
//! Real records are loose (see `formats.md` section 2 and 7): `requestParameters` and
//! `responseElements` may be `null`, `errorCode` is absent on success, identities of type
//! `AWSService` or `IdentityCenterUser` have no ARN, `mfaAuthenticated` is a string, and
//! anonymised corpora carry fake regions and odd IPs. The parser demands only what every record
//! has (`eventTime`, `eventSource`, `eventName`) and keeps the rest as it came.

use auditq_model::{TrailEvent, day_of, event_id};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::session::SessionFragment;
use crate::time::parse_event_time;

/// The fields of a record auditq reads, borrowed from the record's text. Leaves stay raw until
/// needed: a delivery of a million records then costs one pass over the bytes and an allocation
/// per stored string, not a tree of maps per record (the JSON `Value` tree was two thirds of the
/// ingest time). Leaves of the wrong type read as absent, as they did before.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordFields<'a> {
    #[serde(borrow)]
    event_time: Option<&'a RawValue>,
    #[serde(borrow)]
    event_source: Option<&'a RawValue>,
    #[serde(borrow)]
    event_name: Option<&'a RawValue>,
    #[serde(rename = "eventID", borrow)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow)]
    aws_region: Option<&'a RawValue>,
    #[serde(rename = "sourceIPAddress", borrow)]
    source_ip_address: Option<&'a RawValue>,
    #[serde(borrow)]
    user_agent: Option<&'a RawValue>,
    #[serde(borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    error_code: Option<&'a RawValue>,
    #[serde(borrow)]
    error_message: Option<&'a RawValue>,
    #[serde(borrow)]
    recipient_account_id: Option<&'a RawValue>,
    #[serde(borrow)]
    read_only: Option<&'a RawValue>,
    #[serde(borrow)]
    user_identity: Option<&'a RawValue>,
    #[serde(borrow)]
    request_parameters: Option<&'a RawValue>,
    #[serde(borrow)]
    response_elements: Option<&'a RawValue>,
    #[serde(borrow)]
    additional_event_data: Option<&'a RawValue>,
    #[serde(borrow)]
    resources: Option<&'a RawValue>,
}

/// `userIdentity`, as far as auditq reads it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    arn: Option<&'a RawValue>,
    #[serde(borrow)]
    account_id: Option<&'a RawValue>,
    #[serde(borrow)]
    access_key_id: Option<&'a RawValue>,
    #[serde(borrow)]
    user_name: Option<&'a RawValue>,
    #[serde(borrow)]
    invoked_by: Option<&'a RawValue>,
    #[serde(borrow)]
    session_context: Option<&'a RawValue>,
    #[serde(borrow)]
    on_behalf_of: Option<&'a RawValue>,
}

/// Reads one field of a JSON object without building the object (`None` when `raw` is not an
/// object or has no such field).
fn field<'a>(raw: Option<&'a RawValue>, key: &str) -> Option<&'a RawValue> {
    let mut de = serde_json::Deserializer::from_str(raw?.get());
    serde::de::Deserializer::deserialize_map(&mut de, FindField(key))
        .ok()
        .flatten()
}

struct FindField<'k>(&'k str);

impl<'de> serde::de::Visitor<'de> for FindField<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.0))? {
            if matches && found.is_none() {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Compares a map key with a name, borrowed or unescaped, without allocating.
struct KeyIs<'k>(&'k str);

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// A string leaf; `None` when absent, null or not a string.
fn text(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw?.get();
    if raw.starts_with('"') {
        serde_json::from_str(raw).ok()
    } else {
        None
    }
}

/// A JSON leaf kept as JSON text (`None` when absent or null).
fn json(raw: Option<&RawValue>) -> Option<String> {
    raw.map(|r| r.get().to_string()).filter(|r| r != "null")
}

/// Reads one CloudTrail record from its JSON text.
pub fn parse_record(record: &str, origin: &str) -> Result<TrailEvent, String> {
    let fields: RecordFields<'_> = serde_json::from_str(record).map_err(|e| {
        if record.trim_start().starts_with('{') {
            format!("malformed CloudTrail record: {e}")
        } else {
            "a CloudTrail record must be a JSON object".to_string()
        }
    })?;
    let time_text = text(fields.event_time).ok_or("missing eventTime")?;
    let time =
        parse_event_time(&time_text).ok_or_else(|| format!("bad eventTime {time_text:?}"))?;
    let event_source = text(fields.event_source).ok_or("missing eventSource")?;
    let event_name = text(fields.event_name).ok_or("missing eventName")?;
    let identity: Option<Identity<'_>> = fields
        .user_identity
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let id = identity.as_ref();
    let session_id = (event_source == "ssm.amazonaws.com"
        && matches!(
            event_name.as_str(),
            "StartSession" | "ResumeSession" | "TerminateSession"
        ))
    .then(|| {
        [fields.response_elements, fields.request_parameters]
            .into_iter()
            .find_map(|raw| text(field(raw, "sessionId")))
    })
    .flatten();
    let event_id = text(fields.event_id).unwrap_or_else(|| {
        // Hash the record in canonical form, so reformatting it does not change its id.
        let canonical = serde_json::from_str::<Value>(record)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| record.to_string());
        event_id("trail", &[&canonical])
    });
    Ok(TrailEvent {
        event_id,
        time,
        date: day_of(&time),
        principal_arn: text(id.and_then(|i| i.arn)),
        principal_type: text(id.and_then(|i| i.kind)),
        user: id.and_then(principal_name),
        access_key_id: text(id.and_then(|i| i.access_key_id)).filter(|k| !k.is_empty()),
        mfa: mfa_used(fields.additional_event_data, id),
        account: text(fields.recipient_account_id).or_else(|| text(id.and_then(|i| i.account_id))),
        region: text(fields.aws_region),
        source_ip: text(fields.source_ip_address),
        user_agent: text(fields.user_agent),
        event_source,
        event_name,
        event_type: text(fields.event_type),
        error_code: text(fields.error_code),
        error_message: text(fields.error_message),
        read_only: fields.read_only.and_then(loose_bool),
        session_id,
        request: json(fields.request_parameters),
        response: json(fields.response_elements),
        additional: json(fields.additional_event_data),
        resources: json(fields.resources),
        origin: origin.to_string(),
    })
}

/// The short name of a principal: IAM user name, role session name, `root`, or the service.
fn principal_name(identity: &Identity<'_>) -> Option<String> {
    let arn_tail = || {
        text(identity.arn)
            .as_deref()
            .and_then(|arn| arn.rsplit('/').next())
            .map(str::to_string)
    };
    match text(identity.kind).as_deref() {
        Some("Root") => Some("root".to_string()),
        Some("AssumedRole" | "FederatedUser" | "WebIdentityUser" | "SAMLUser") => {
            arn_tail().or_else(|| text(identity.user_name))
        }
        Some("AWSService") => text(identity.invoked_by),
        Some("IdentityCenterUser") => text(field(identity.on_behalf_of, "userId")),
        _ => text(identity.user_name).or_else(arn_tail),
    }
}

/// MFA as CloudTrail reports it: console logins say `MFAUsed: "Yes"|"No"`, sessions say
/// `mfaAuthenticated: "true"|"false"` (strings).
fn mfa_used(additional: Option<&RawValue>, identity: Option<&Identity<'_>>) -> Option<bool> {
    field(additional, "MFAUsed")
        .and_then(loose_bool)
        .or_else(|| {
            let attributes = field(identity?.session_context, "attributes");
            field(attributes, "mfaAuthenticated").and_then(loose_bool)
        })
}

fn loose_bool(raw: &RawValue) -> Option<bool> {
    match raw.get() {
        "true" => Some(true),
        "false" => Some(false),
        _ => match text(Some(raw))?.to_ascii_lowercase().as_str() {
            "true" | "yes" => Some(true),
            "false" | "no" => Some(false),
            _ => None,
        },
    }
}

/// What a Session Manager API call says about its session.
pub fn session_fragment(event: &TrailEvent) -> Option<SessionFragment> {
    if event.error_code.is_some() {
        return None;
    }
    let session_id = event.session_id.clone()?;
    let mut fragment = SessionFragment::new(session_id);
    match event.event_name.as_str() {
        "StartSession" => {
            let request: Option<&RawValue> = event
                .request
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok());
            let req = |key: &str| text(field(request, key));
            fragment = SessionFragment {
                target: req("target"),
                document: Some(
                    req("documentName").unwrap_or_else(|| DEFAULT_SHELL_DOCUMENT.to_string()),
                ),
                reason: req("reason"),
                ..started_by(event, fragment.session_id)
            };
        }
        "TerminateSession" => fragment.ended_at = Some(event.time),
        "ResumeSession" => fragment.last_seen = Some(event.time),
        _ => return None,
    }
    Some(fragment)
}

/// A session started by a CloudTrail call: who, from where, in which account and region, when,
/// and the call's event id (authoritative over what a recording says).
fn started_by(event: &TrailEvent, session_id: String) -> SessionFragment {
    SessionFragment {
        from_trail: true,
        started_at: Some(event.time),
        user: event.user.clone(),
        principal_arn: event.principal_arn.clone(),
        source_ip: event.source_ip.clone(),
        user_agent: event.user_agent.clone(),
        account: event.account.clone(),
        region: event.region.clone(),
        start_event_id: Some(event.event_id.clone()),
        ..SessionFragment::new(session_id)
    }
}

/// What a call that opens an access without a Session Manager session says about it, as
/// sessions of their own kinds:
///
/// - `ssm:SendCommand` (Run Command): one per instance it names, id `<command id>-<instance>`
///   (as `aws ssm get-command-invocation` addresses it), kind `run_command`, the document, and
///   the comment as the reason; commands sent to tags name no instance: one, id `<command id>`.
/// - `ec2-instance-connect:SendSSHPublicKey`: a key pushed for 60 seconds for an OS user on an
///   instance, id `eic-<event id>`, kind `instance_connect`; the sshd login that follows joins it
///   ([`crate::session`], `auditq_ingest::correlate`).
/// - `ec2-instance-connect:OpenTunnel` (EC2 Instance Connect Endpoint): a tunnel to a private
///   address and port, id `eice-<event id>`, kind `instance_connect_endpoint`, target the address.
pub fn access_fragments(event: &TrailEvent) -> Vec<SessionFragment> {
    if event.error_code.is_some() {
        return Vec::new();
    }
    let request: Option<&RawValue> = event
        .request
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let response: Option<&RawValue> = event
        .response
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let base = |session_id: String, kind: &str| SessionFragment {
        kind: Some(kind.to_string()),
        ..started_by(event, session_id)
    };
    match (event.event_source.as_str(), event.event_name.as_str()) {
        ("ssm.amazonaws.com", "SendCommand") => {
            let command = field(response, "command");
            let Some(command_id) = text(field(command, "commandId")) else {
                return Vec::new();
            };
            let document = text(field(request, "documentName"))
                .or_else(|| text(field(command, "documentName")));
            let mut instances: Vec<String> =
                [field(request, "instanceIds"), field(command, "instanceIds")]
                    .into_iter()
                    .flatten()
                    .filter_map(|raw| serde_json::from_str::<Vec<String>>(raw.get()).ok())
                    .flatten()
                    .collect();
            instances.sort();
            instances.dedup();
            let reason = text(field(request, "comment")).filter(|c| !c.is_empty());
            let fragment = |session_id: String, target: Option<String>| SessionFragment {
                target,
                document: document.clone(),
                reason: reason.clone(),
                ..base(session_id, "run_command")
            };
            if instances.is_empty() {
                return vec![fragment(command_id, None)];
            }
            instances
                .into_iter()
                .map(|instance| fragment(format!("{command_id}-{instance}"), Some(instance)))
                .collect()
        }
        ("ec2-instance-connect.amazonaws.com", "SendSSHPublicKey") => {
            let Some(instance) = text(field(request, "instanceId")) else {
                return Vec::new();
            };
            vec![SessionFragment {
                target: Some(instance),
                run_as: text(field(request, "instanceOSUser")),
                document: Some("SendSSHPublicKey".into()),
                ..base(format!("eic-{}", event.event_id), "instance_connect")
            }]
        }
        ("ec2-instance-connect.amazonaws.com", "OpenTunnel") => {
            let address = text(field(request, "privateIpAddress"));
            let port = text(field(request, "remotePort"));
            vec![SessionFragment {
                target: address,
                document: Some("OpenTunnel".into()),
                reason: port.map(|p| format!("port {p}")),
                ..base(
                    format!("eice-{}", event.event_id),
                    "instance_connect_endpoint",
                )
            }]
        }
        _ => Vec::new(),
    }
}

/// The document Session Manager uses when StartSession names none.
pub const DEFAULT_SHELL_DOCUMENT: &str = "SSM-SessionManagerRunShell";

/// Whether a JSON value looks like a CloudTrail record.
pub fn looks_like_record(value: &Value) -> bool {
    value.get("eventSource").is_some() && value.get("eventName").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> &str {
        json
    }

    #[test]
    fn start_session_fields() {
        let value = record(
            r#"{"eventVersion":"1.05","userIdentity":{"type":"IAMUser","principalId":"AIDA","arn":"arn:aws:iam::354114410416:user/garland.kan.temp","accountId":"354114410416","accessKeyId":"AKIAVE4W5C6YJPLGCFU5","userName":"garland.kan.temp"},"eventTime":"2020-05-18T17:00:24Z","eventSource":"ssm.amazonaws.com","eventName":"StartSession","awsRegion":"us-east-1","sourceIPAddress":"38.30.8.138","userAgent":"aws-cli/2.0.0","requestParameters":{"target":"i-02311671588e96626","documentName":"SSM-sudo"},"responseElements":{"sessionId":"garland.kan.temp-0e34861185201706f"},"eventID":"4b7a66fc","readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"354114410416"}"#,
        );
        let event = parse_record(value, "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.user.as_deref(), Some("garland.kan.temp"));
        assert_eq!(
            event.session_id.as_deref(),
            Some("garland.kan.temp-0e34861185201706f")
        );
        assert_eq!(event.read_only, Some(false));
        let fragment = session_fragment(&event).unwrap_or_else(|| panic!("no fragment"));
        assert_eq!(fragment.target.as_deref(), Some("i-02311671588e96626"));
        assert_eq!(fragment.document.as_deref(), Some("SSM-sudo"));
        assert_eq!(fragment.source_ip.as_deref(), Some("38.30.8.138"));
    }

    #[test]
    fn run_command_and_instance_connect_are_accesses() {
        let send_command = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/bob","accountId":"111122223333","userName":"bob"},"eventTime":"2026-10-06T13:05:00Z","eventSource":"ssm.amazonaws.com","eventName":"SendCommand","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.23","userAgent":"aws-cli/2.17.5","requestParameters":{"instanceIds":["i-0a1b2c3d4e5f60711","i-0b2c3d4e5f6071822"],"documentName":"AWS-RunShellScript","comment":"rotate keys","parameters":"HIDDEN_DUE_TO_SECURITY_REASONS","interactive":false},"responseElements":{"command":{"commandId":"7f3e2a10-5b6c-4d8e-9f01-23456789abcd","documentName":"AWS-RunShellScript","instanceIds":["i-0a1b2c3d4e5f60711","i-0b2c3d4e5f6071822"],"status":"Pending"}},"eventID":"e1","eventType":"AwsApiCall","recipientAccountId":"111122223333"}"#;
        let event = parse_record(send_command, "f").unwrap_or_else(|e| panic!("{e}"));
        assert!(session_fragment(&event).is_none());
        let fragments = access_fragments(&event);
        type Seen<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let seen: Vec<Seen<'_>> = fragments
            .iter()
            .map(|f| {
                (
                    f.session_id.as_str(),
                    f.target.as_deref(),
                    f.kind.as_deref(),
                    f.document.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "7f3e2a10-5b6c-4d8e-9f01-23456789abcd-i-0a1b2c3d4e5f60711",
                    Some("i-0a1b2c3d4e5f60711"),
                    Some("run_command"),
                    Some("AWS-RunShellScript")
                ),
                (
                    "7f3e2a10-5b6c-4d8e-9f01-23456789abcd-i-0b2c3d4e5f6071822",
                    Some("i-0b2c3d4e5f6071822"),
                    Some("run_command"),
                    Some("AWS-RunShellScript")
                ),
            ]
        );
        let session = crate::session::merge([&fragments[0]]).unwrap_or_else(|| panic!("no row"));
        assert_eq!(
            (
                session.kind.as_str(),
                session.logged.as_str(),
                session.user.as_deref()
            ),
            ("run_command", "none", Some("bob"))
        );
        assert_eq!(session.reason.as_deref(), Some("rotate keys"));
        // The stored row folded with a later fragment keeps its kind.
        let again = crate::session::merge([
            &SessionFragment::from_row(&session),
            &SessionFragment {
                ended_at: Some(event.time),
                ..SessionFragment::new(session.session_id.clone())
            },
        ])
        .unwrap_or_else(|| panic!("no row"));
        assert_eq!(again.kind, "run_command");

        let push = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","userName":"alice"},"eventTime":"2026-10-06T14:00:00Z","eventSource":"ec2-instance-connect.amazonaws.com","eventName":"SendSSHPublicKey","awsRegion":"eu-west-1","sourceIPAddress":"203.0.113.10","requestParameters":{"instanceId":"i-0d4e5f60718293a44","instanceOSUser":"ec2-user","sSHPublicKey":"ssh-ed25519 AAAAC3Nz","availabilityZone":"eu-west-1a"},"responseElements":{"requestId":"r1","success":true},"eventID":"e2","eventType":"AwsApiCall","recipientAccountId":"111122223333"}"#;
        let event = parse_record(push, "f").unwrap_or_else(|e| panic!("{e}"));
        let fragments = access_fragments(&event);
        assert_eq!(fragments.len(), 1);
        let session = crate::session::merge([&fragments[0]]).unwrap_or_else(|| panic!("no row"));
        assert_eq!(
            (
                session.session_id.as_str(),
                session.kind.as_str(),
                session.run_as.as_deref(),
                session.target.as_deref()
            ),
            (
                "eic-e2",
                "instance_connect",
                Some("ec2-user"),
                Some("i-0d4e5f60718293a44")
            )
        );
        // A refused call opened nothing.
        let refused = push.replace(
            r#""eventID":"e2""#,
            r#""eventID":"e3","errorCode":"AccessDenied""#,
        );
        let event = parse_record(&refused, "f").unwrap_or_else(|e| panic!("{e}"));
        assert!(access_fragments(&event).is_empty());
    }

    #[test]
    fn null_elements_and_missing_fields() {
        let value = record(
            r#"{"eventTime":"2024-01-01T00:00:00Z","eventSource":"ssm.amazonaws.com","eventName":"StartSession","requestParameters":null,"responseElements":null,"userIdentity":{"type":"AWSService","invokedBy":"ssm.amazonaws.com"}}"#,
        );
        let event = parse_record(value, "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.session_id, None);
        assert_eq!(event.request, None);
        assert_eq!(event.user.as_deref(), Some("ssm.amazonaws.com"));
        assert_eq!(event.event_id.len(), 32);
        assert!(session_fragment(&event).is_none());
        let err = parse_record(record(r#"{"eventSource":"x","eventName":"y"}"#), "f");
        assert_eq!(err, Err("missing eventTime".to_string()));
    }

    #[test]
    fn event_time_without_a_zone_is_utc() {
        let event = parse_record(
            record(
                r#"{"eventTime":"2024-01-01 00:00:00.000","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"e1"}"#,
            ),
            "f",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.time.to_rfc3339(), "2024-01-01T00:00:00+00:00");
        assert_eq!(event.date.to_string(), "2024-01-01");
        let err = parse_record(
            record(r#"{"eventTime":"last tuesday","eventSource":"x","eventName":"y"}"#),
            "f",
        );
        assert_eq!(err, Err(r#"bad eventTime "last tuesday""#.to_string()));
    }

    #[test]
    fn console_login_mfa_is_case_insensitive() {
        let value = record(
            r#"{"eventTime":"2026-10-06T15:58:02Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"No"},"userIdentity":{"type":"IAMUser","userName":"bob","arn":"arn:aws:iam::1:user/bob"}}"#,
        );
        assert_eq!(parse_record(value, "f").map(|e| e.mfa), Ok(Some(false)));
    }
}
