//! CloudTrail records: `{"Records":[...]}` deliveries, single records, and NDJSON.
//!
//! Real records are loose (see `formats.md` section 2 and 7): `requestParameters` and
//! `responseElements` may be `null`, `errorCode` is absent on success, identities of type
//! `AWSService` or `IdentityCenterUser` have no ARN, `mfaAuthenticated` is a string, and
//! anonymised corpora carry fake regions and odd IPs. The parser demands only what every record
//! has (`eventTime`, `eventSource`, `eventName`) and keeps the rest as it came.

use auditq_model::{TrailEvent, day_of, event_id};
use serde_json::Value;

use crate::session::SessionFragment;
use crate::time::parse_rfc3339;

/// Reads one CloudTrail record.
pub fn parse_record(record: &Value, origin: &str) -> Result<TrailEvent, String> {
    let obj = record
        .as_object()
        .ok_or("a CloudTrail record must be a JSON object")?;
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
    let time_text = text("eventTime").ok_or("missing eventTime")?;
    let time = parse_rfc3339(&time_text).ok_or_else(|| format!("bad eventTime {time_text:?}"))?;
    let event_source = text("eventSource").ok_or("missing eventSource")?;
    let event_name = text("eventName").ok_or("missing eventName")?;
    let identity = obj.get("userIdentity").filter(|v| v.is_object());
    let id_text = |key: &str| {
        identity
            .and_then(|i| i.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let principal_arn = id_text("arn");
    let principal_type = id_text("type");
    let user = principal_name(identity);
    let json = |key: &str| obj.get(key).filter(|v| !v.is_null()).map(Value::to_string);
    let request = obj.get("requestParameters");
    let response = obj.get("responseElements");
    let session_id = (event_source == "ssm.amazonaws.com"
        && matches!(
            event_name.as_str(),
            "StartSession" | "ResumeSession" | "TerminateSession"
        ))
    .then(|| {
        [response, request]
            .into_iter()
            .flatten()
            .find_map(|v| v.get("sessionId").and_then(Value::as_str))
            .map(str::to_string)
    })
    .flatten();
    let event_id = text("eventID").unwrap_or_else(|| event_id("trail", &[&record.to_string()]));
    Ok(TrailEvent {
        event_id,
        time,
        date: day_of(&time),
        principal_arn,
        principal_type,
        user,
        access_key_id: id_text("accessKeyId").filter(|k| !k.is_empty()),
        mfa: mfa_used(obj.get("additionalEventData"), identity),
        account: text("recipientAccountId").or_else(|| id_text("accountId")),
        region: text("awsRegion"),
        source_ip: text("sourceIPAddress"),
        user_agent: text("userAgent"),
        event_source,
        event_name,
        event_type: text("eventType"),
        error_code: text("errorCode"),
        error_message: text("errorMessage"),
        read_only: obj.get("readOnly").and_then(loose_bool),
        session_id,
        request: json("requestParameters"),
        response: json("responseElements"),
        additional: json("additionalEventData"),
        resources: json("resources"),
        origin: origin.to_string(),
    })
}

/// The short name of a principal: IAM user name, role session name, `root`, or the service.
fn principal_name(identity: Option<&Value>) -> Option<String> {
    let identity = identity?;
    let get = |key: &str| identity.get(key).and_then(Value::as_str);
    let arn_tail = || {
        get("arn")
            .and_then(|arn| arn.rsplit('/').next())
            .map(str::to_string)
    };
    match get("type") {
        Some("Root") => Some("root".to_string()),
        Some("AssumedRole" | "FederatedUser" | "WebIdentityUser" | "SAMLUser") => {
            arn_tail().or_else(|| get("userName").map(str::to_string))
        }
        Some("AWSService") => get("invokedBy").map(str::to_string),
        Some("IdentityCenterUser") => identity
            .pointer("/onBehalfOf/userId")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => get("userName").map(str::to_string).or_else(arn_tail),
    }
}

/// MFA as CloudTrail reports it: console logins say `MFAUsed: "Yes"|"No"`, sessions say
/// `mfaAuthenticated: "true"|"false"` (strings).
fn mfa_used(additional: Option<&Value>, identity: Option<&Value>) -> Option<bool> {
    additional
        .and_then(|a| a.get("MFAUsed"))
        .and_then(loose_bool)
        .or_else(|| {
            identity?
                .pointer("/sessionContext/attributes/mfaAuthenticated")
                .and_then(loose_bool)
        })
}

fn loose_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("yes") => {
            Some(true)
        }
        Value::String(s) if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("no") => {
            Some(false)
        }
        _ => None,
    }
}

/// What a Session Manager API call says about its session.
pub fn session_fragment(event: &TrailEvent, record: &Value) -> Option<SessionFragment> {
    if event.error_code.is_some() {
        return None;
    }
    let session_id = event.session_id.clone()?;
    let mut fragment = SessionFragment::new(session_id);
    match event.event_name.as_str() {
        "StartSession" => {
            let request = record.get("requestParameters");
            let req = |key: &str| {
                request
                    .and_then(|r| r.get(key))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            fragment.started_at = Some(event.time);
            fragment.user = event.user.clone();
            fragment.principal_arn = event.principal_arn.clone();
            fragment.source_ip = event.source_ip.clone();
            fragment.user_agent = event.user_agent.clone();
            fragment.account = event.account.clone();
            fragment.region = event.region.clone();
            fragment.target = req("target");
            fragment.document =
                Some(req("documentName").unwrap_or_else(|| DEFAULT_SHELL_DOCUMENT.to_string()));
            fragment.reason = req("reason");
            fragment.start_event_id = Some(event.event_id.clone());
            fragment.from_trail = true;
        }
        "TerminateSession" => fragment.ended_at = Some(event.time),
        "ResumeSession" => fragment.last_seen = Some(event.time),
        _ => return None,
    }
    Some(fragment)
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

    fn record(json: &str) -> Value {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn start_session_fields() {
        let value = record(
            r#"{"eventVersion":"1.05","userIdentity":{"type":"IAMUser","principalId":"AIDA","arn":"arn:aws:iam::354114410416:user/garland.kan.temp","accountId":"354114410416","accessKeyId":"AKIAVE4W5C6YJPLGCFU5","userName":"garland.kan.temp"},"eventTime":"2020-05-18T17:00:24Z","eventSource":"ssm.amazonaws.com","eventName":"StartSession","awsRegion":"us-east-1","sourceIPAddress":"38.30.8.138","userAgent":"aws-cli/2.0.0","requestParameters":{"target":"i-02311671588e96626","documentName":"SSM-sudo"},"responseElements":{"sessionId":"garland.kan.temp-0e34861185201706f"},"eventID":"4b7a66fc","readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"354114410416"}"#,
        );
        let event = parse_record(&value, "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.user.as_deref(), Some("garland.kan.temp"));
        assert_eq!(
            event.session_id.as_deref(),
            Some("garland.kan.temp-0e34861185201706f")
        );
        assert_eq!(event.read_only, Some(false));
        let fragment = session_fragment(&event, &value).unwrap_or_else(|| panic!("no fragment"));
        assert_eq!(fragment.target.as_deref(), Some("i-02311671588e96626"));
        assert_eq!(fragment.document.as_deref(), Some("SSM-sudo"));
        assert_eq!(fragment.source_ip.as_deref(), Some("38.30.8.138"));
    }

    #[test]
    fn null_elements_and_missing_fields() {
        let value = record(
            r#"{"eventTime":"2024-01-01T00:00:00Z","eventSource":"ssm.amazonaws.com","eventName":"StartSession","requestParameters":null,"responseElements":null,"userIdentity":{"type":"AWSService","invokedBy":"ssm.amazonaws.com"}}"#,
        );
        let event = parse_record(&value, "f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.session_id, None);
        assert_eq!(event.request, None);
        assert_eq!(event.user.as_deref(), Some("ssm.amazonaws.com"));
        assert_eq!(event.event_id.len(), 32);
        assert!(session_fragment(&event, &value).is_none());
        let err = parse_record(&record(r#"{"eventSource":"x","eventName":"y"}"#), "f");
        assert_eq!(err, Err("missing eventTime".to_string()));
    }

    #[test]
    fn console_login_mfa_is_case_insensitive() {
        let value = record(
            r#"{"eventTime":"2026-10-06T15:58:02Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"No"},"userIdentity":{"type":"IAMUser","userName":"bob","arn":"arn:aws:iam::1:user/bob"}}"#,
        );
        assert_eq!(parse_record(&value, "f").map(|e| e.mfa), Ok(Some(false)));
    }
}
