//! S3 event notifications, however they arrive: from S3 directly (`{"Records":[{"s3":...}]}`),
//! through SQS (the Lambda SQS event, whose record bodies hold the notification), through SNS
//! (`{"Type":"Notification","Message":...}`), or through EventBridge (`"detail-type": "Object
//! Created"`).
//!
//! Quirks (`formats.md` 3b, 3c, 7.10): keys in S3 notifications are URL-encoded with `+` for a
//! space, EventBridge keys are not; S3 sends a one-off `s3:TestEvent` when a notification is
//! configured, which carries no object and is ignored.

use serde_json::Value;

/// An object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Bucket.
    pub bucket: String,
    /// Key, decoded.
    pub key: String,
    /// Size, when given.
    pub size: Option<u64>,
    /// ETag, when given (without quotes).
    pub etag: Option<String>,
}

/// Decodes an S3 notification key: `%XX` escapes, and `+` for a space.
pub fn decode_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The objects created according to a notification, in any of its envelopes. Errors name what
/// is wrong with the envelope; a test event or a non-create event yields no objects.
pub fn created_objects(body: &Value) -> Result<Vec<ObjectRef>, String> {
    let mut objects = Vec::new();
    collect(body, &mut objects, 0)?;
    Ok(objects)
}

fn parse_nested(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("envelope holds malformed JSON: {e}"))
}

fn collect(body: &Value, out: &mut Vec<ObjectRef>, depth: usize) -> Result<(), String> {
    if depth > 4 {
        return Err("envelopes nested too deeply".to_string());
    }
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    if body.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(());
    }
    if body.get("Type").and_then(Value::as_str) == Some("Notification") {
        let message = text(body, "Message").ok_or("SNS notification without Message")?;
        return collect(&parse_nested(&message)?, out, depth + 1);
    }
    if body.get("source").and_then(Value::as_str) == Some("aws.s3") {
        if body.get("detail-type").and_then(Value::as_str) != Some("Object Created") {
            return Ok(());
        }
        let detail = body
            .get("detail")
            .ok_or("EventBridge event without detail")?;
        out.push(ObjectRef {
            bucket: detail
                .pointer("/bucket/name")
                .and_then(Value::as_str)
                .ok_or("no bucket name")?
                .to_string(),
            key: detail
                .pointer("/object/key")
                .and_then(Value::as_str)
                .ok_or("no object key")?
                .to_string(),
            size: detail.pointer("/object/size").and_then(Value::as_u64),
            etag: detail
                .pointer("/object/etag")
                .and_then(Value::as_str)
                .map(|e| e.trim_matches('"').to_string()),
        });
        return Ok(());
    }
    let records = body
        .get("Records")
        .and_then(Value::as_array)
        .ok_or("not an S3, SQS, SNS or EventBridge notification")?;
    for record in records {
        let source = record
            .get("eventSource")
            .or_else(|| record.get("EventSource"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match source {
            "aws:s3" => {
                let created = record
                    .get("eventName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with("ObjectCreated:"));
                if !created {
                    continue;
                }
                let s3 = record.get("s3").ok_or("S3 record without s3")?;
                out.push(ObjectRef {
                    bucket: s3
                        .pointer("/bucket/name")
                        .and_then(Value::as_str)
                        .ok_or("no bucket name")?
                        .to_string(),
                    key: decode_key(
                        s3.pointer("/object/key")
                            .and_then(Value::as_str)
                            .ok_or("no object key")?,
                    ),
                    size: s3.pointer("/object/size").and_then(Value::as_u64),
                    etag: s3
                        .pointer("/object/eTag")
                        .and_then(Value::as_str)
                        .map(|e| e.trim_matches('"').to_string()),
                });
            }
            "aws:sqs" => {
                let body = text(record, "body").ok_or("SQS record without body")?;
                collect(&parse_nested(&body)?, out, depth + 1)?;
            }
            "aws:sns" => {
                let sns = record.get("Sns").ok_or("SNS record without Sns")?;
                collect(sns, out, depth + 1)?;
            }
            other => return Err(format!("unsupported record source {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    const S3: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"logs"},"object":{"key":"session-logs/carol%40example.com-x+y.log","size":12,"eTag":"abc"}}},{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"logs"},"object":{"key":"gone"}}}]}"#;

    #[test]
    fn direct_sqs_sns_and_eventbridge() {
        let want = vec![ObjectRef {
            bucket: "logs".into(),
            key: "session-logs/carol@example.com-x y.log".into(),
            size: Some(12),
            etag: Some("abc".into()),
        }];
        assert_eq!(created_objects(&json(S3)), Ok(want.clone()));
        let sqs = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": S3}]});
        assert_eq!(created_objects(&sqs), Ok(want.clone()));
        let sns = serde_json::json!({"Type": "Notification", "Message": S3});
        assert_eq!(created_objects(&sns), Ok(want.clone()));
        let sqs_sns =
            serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": sns.to_string()}]});
        assert_eq!(created_objects(&sqs_sns), Ok(want));
        let eventbridge = json(
            r#"{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{"key":"a b+c.log","size":5,"etag":"e"}}}"#,
        );
        let objects = created_objects(&eventbridge).unwrap_or_default();
        assert_eq!(
            objects[0].key, "a b+c.log",
            "EventBridge keys are not encoded"
        );
    }

    #[test]
    fn test_events_and_garbage() {
        let test_event = json(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#);
        assert_eq!(created_objects(&test_event), Ok(vec![]));
        assert!(created_objects(&json(r#"{"hello":1}"#)).is_err());
        let bad_body =
            serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{nope"}]});
        assert!(created_objects(&bad_body).is_err_and(|e| e.contains("malformed JSON")));
        assert_eq!(decode_key("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
