//! The AWS API calls auditq makes, signed with SigV4 and sent over one HTTP client.
//!
//! auditq calls about twenty operations of eight services: S3 (list, head, get), CloudWatch
//! Logs (groups, streams, events, live tail), SNS (publish, subscriptions), SQS (receive,
//! delete), and the look-ups of EC2, IAM, STS and SSM. The generated SDK crates for the four
//! first alone took a third of a fresh build's compiling (`aws-sdk-s3` and
//! `aws-sdk-cloudwatchlogs` about 47 s each on 2 cores, beside DataFusion's chain;
//! BENCHMARKS.md, "First build"). What the SDK does that these calls need is small and done
//! here with the SDK's own parts:
//!
//! - **Configuration and credentials**: `aws-config`'s standard chain (environment, profiles,
//!   SSO, web identity, ECS and EC2 metadata), the region, `AWS_ENDPOINT_URL`. Credentials are
//!   cached until five minutes before they expire.
//! - **Signing**: `aws-sigv4`, the SDK's signer (S3's variant: the payload hash header, paths
//!   encoded once).
//! - **Retries**: three attempts in all, as the SDK's standard mode, with exponential backoff
//!   and jitter, on connection failures, 5xx, 429 and throttling codes.
//! - **Protocols**: the Query protocol (form in, XML out: SNS, EC2, IAM, STS), JSON 1.0 and 1.1
//!   (SQS, CloudWatch Logs, SSM), S3's REST form, and the event stream of `StartLiveTail`
//!   ([`eventstream`]).
//!
//! Endpoints: `https://SERVICE.REGION.amazonaws.com` (`.amazonaws.com.cn` in China), S3
//! virtual-hosted where the bucket name allows it, or `AWS_ENDPOINT_URL` for every service (an
//! emulator or a VPC endpoint; path-style S3 on an IP address or `localhost`).

pub mod eventstream;
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod xml;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

/// Content type of the JSON 1.0 protocol (SQS).
pub const JSON_1_0: &str = "application/x-amz-json-1.0";
/// Content type of the JSON 1.1 protocol (CloudWatch Logs, SSM).
pub const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Attempts in all for one call, as the SDK's standard retry mode.
const ATTEMPTS: u32 = 3;
/// The first backoff; doubled each attempt, with full jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Credentials are renewed this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// A failed call: what was called, on what, and what the service (or the network) said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {resource}: {}", self.detail())]
pub struct Error {
    /// The operation (`GetObject`, `PublishBatch`).
    pub operation: String,
    /// What it was called on (an S3 URI, a log group, a topic).
    pub resource: String,
    /// The HTTP status, when the service answered.
    pub status: Option<u16>,
    /// The service's error code (`NoSuchKey`, `ResourceNotFoundException`), when it gave one.
    pub code: String,
    /// The service's message, or the network's error.
    pub message: String,
}

impl Error {
    /// What went wrong, without the operation and resource: `404 NoSuchKey: The specified
    /// key does not exist.`
    pub fn detail(&self) -> String {
        let status = self.status.map(|s| format!("{s} ")).unwrap_or_default();
        let colon = if self.code.is_empty() || self.message.is_empty() {
            ""
        } else {
            ": "
        };
        format!("{status}{}{colon}{}", self.code, self.message)
    }

    fn new(operation: &str, resource: &str, message: impl std::fmt::Display) -> Self {
        Error {
            operation: operation.to_string(),
            resource: resource.to_string(),
            status: None,
            code: String::new(),
            message: message.to_string(),
        }
    }

    /// Whether the service refused this one request for what it asked (a 4xx other than
    /// throttling): asking again will not help, and nothing else is wrong.
    pub fn is_refusal(&self) -> bool {
        self.status
            .is_some_and(|s| (400..500).contains(&s) && s != 429 && !throttling(&self.code))
    }
}

/// A result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A client for every service: the SDK's configuration, one HTTP client, cached credentials.
#[derive(Clone)]
pub struct Aws {
    inner: Arc<Inner>,
}

struct Inner {
    config: SdkConfig,
    http: reqwest::Client,
    endpoint_url: Option<String>,
    credentials: tokio::sync::Mutex<Option<Credentials>>,
    /// Buckets found in another region than the configured one (S3 said so in a redirect).
    bucket_regions: std::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("region", &self.region())
            .field("endpoint_url", &self.inner.endpoint_url)
            .finish_non_exhaustive()
    }
}

/// One request, before signing.
#[derive(Debug)]
pub struct Request<'a> {
    /// `GET`, `HEAD`, `POST`.
    pub method: &'a str,
    /// The whole URL, query included (already percent-encoded).
    pub url: String,
    /// The signing name (`s3`, `logs`, `sns`).
    pub service: &'a str,
    /// The signing region.
    pub region: String,
    /// Headers to send and sign.
    pub headers: Vec<(&'a str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The operation, for errors.
    pub operation: &'a str,
    /// What it is called on, for errors.
    pub resource: &'a str,
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Aws {
    /// A client from the standard chain (no network call until one is made); `endpoint_url`
    /// (an emulator, a VPC endpoint) replaces every service's endpoint.
    pub async fn from_env(endpoint_url: Option<String>) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::new(config, endpoint_url)
    }

    /// A client from an SDK configuration.
    pub fn new(config: SdkConfig, endpoint_url: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            // A signed request is never sent elsewhere; S3's region redirects are followed by
            // signing again (see [`s3`]).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Aws {
            inner: Arc::new(Inner {
                config,
                http,
                endpoint_url: endpoint_url.filter(|u| !u.is_empty()),
                credentials: tokio::sync::Mutex::new(None),
                bucket_regions: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configured region.
    pub fn region(&self) -> Option<String> {
        self.inner.config.region().map(|r| r.to_string())
    }

    /// The configured region, or an error naming the operation that needs one.
    pub fn need_region(&self, operation: &str, resource: &str) -> Result<String> {
        self.region().ok_or_else(|| {
            Error::new(
                operation,
                resource,
                "no AWS region configured (set AWS_REGION or a profile's region)",
            )
        })
    }

    /// The emulator or VPC endpoint every call goes to, if one is set.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.inner.endpoint_url.as_deref()
    }

    /// The base URL of a service in a region (`host` is the endpoint's first label: `sns`,
    /// `stream-logs`), without a trailing slash.
    pub fn endpoint(&self, host: &str, region: &str) -> String {
        match (&self.inner.endpoint_url, host) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, "iam") if region.starts_with("cn-") => {
                "https://iam.cn-north-1.amazonaws.com.cn".to_string()
            }
            (None, "iam") => "https://iam.amazonaws.com".to_string(),
            (None, host) => format!("https://{host}.{region}.{}", dns_suffix(region)),
        }
    }

    /// One Query-protocol call (a form in, XML out: SNS, EC2, IAM, STS); the answer's XML.
    pub async fn query(
        &self,
        service: &str,
        region: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
        resource: &str,
    ) -> Result<String> {
        let mut body = format!("Action={}&Version={}", encode(action), encode(version));
        for (key, value) in params {
            body.push_str(&format!("&{}={}", encode(key), encode(value)));
        }
        let answer = self
            .call(Request {
                method: "POST",
                url: format!("{}/", self.endpoint(service, region)),
                service,
                region: region.to_string(),
                headers: vec![(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8".to_string(),
                )],
                body: body.into_bytes(),
                operation: action,
                resource,
            })
            .await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    /// One JSON-protocol call (`content_type` [`JSON_1_0`] or [`JSON_1_1`], `target`
    /// `Logs_20140328.GetLogEvents`); the answer.
    pub async fn json(
        &self,
        service: &str,
        region: &str,
        content_type: &str,
        target: &str,
        request: &serde_json::Value,
        resource: &str,
    ) -> Result<serde_json::Value> {
        let request = json_request(
            self.endpoint(service, region),
            service,
            region,
            content_type,
            target,
            request,
            resource,
        );
        let answer = self.call(request).await?;
        serde_json::from_slice(&answer.body).map_err(|e| Error {
            status: Some(answer.status),
            ..Error::new(
                operation_of(target),
                resource,
                format!("an answer that is not JSON: {e}"),
            )
        })
    }

    /// A JSON-protocol call whose answer is an event stream (`StartLiveTail`), sent to
    /// `endpoint`; the open response, to read with [`eventstream::Reader`].
    pub async fn json_stream(
        &self,
        endpoint: String,
        service: &str,
        region: &str,
        target: &str,
        request: &serde_json::Value,
        resource: &str,
    ) -> Result<eventstream::Reader> {
        let request = json_request(
            endpoint, service, region, JSON_1_1, target, request, resource,
        );
        let response = self.send(&request).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            return Err(service_error(
                &request,
                &Answer {
                    status,
                    headers,
                    body,
                },
            ));
        }
        Ok(eventstream::Reader::new(
            response,
            request.operation,
            resource,
        ))
    }

    /// Sends a request, with retries; a 2xx (or 3xx) answer, or the service's error.
    pub async fn call(&self, request: Request<'_>) -> Result<Answer> {
        let mut attempt = 1;
        loop {
            let outcome = match self.send(&request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(body) => Ok(Answer {
                            status,
                            headers,
                            body: body.to_vec(),
                        }),
                        Err(e) => Err(Error::new(
                            request.operation,
                            request.resource,
                            error_chain(&e),
                        )),
                    }
                }
                Err(e) => Err(e),
            };
            let error = match outcome {
                Ok(answer) if answer.status < 400 => return Ok(answer),
                Ok(answer) => service_error(&request, &answer),
                Err(e) => e,
            };
            let retry = match error.status {
                None => true,
                Some(status) => status >= 500 || status == 429 || throttling(&error.code),
            };
            if !retry || attempt >= ATTEMPTS {
                return Err(error);
            }
            tracing::debug!(%error, attempt, "retrying");
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// Signs and sends one request.
    async fn send(&self, request: &Request<'_>) -> Result<reqwest::Response> {
        let fail = |e: &dyn std::fmt::Display| Error::new(request.operation, request.resource, e);
        let identity = self.credentials().await.map_err(|e| fail(&e))?.into();
        let mut settings = SigningSettings::default();
        if request.service == "s3" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&request.region)
            .name(request.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| fail(&e))?
            .into();
        let signable = SignableRequest::new(
            request.method,
            request.url.as_str(),
            request.headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&request.body),
        )
        .map_err(|e| fail(&e))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| fail(&e))?.into_parts();
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| fail(&e))?;
        let mut builder = self
            .inner
            .http
            .request(method, &request.url)
            .body(request.body.clone());
        for (header, value) in &request.headers {
            builder = builder.header(*header, value);
        }
        for (header, value) in instructions.headers() {
            builder = builder.header(header, value);
        }
        builder.send().await.map_err(|e| fail(&error_chain(&e)))
    }

    /// The credentials of the chain, cached until shortly before they expire.
    async fn credentials(&self) -> std::result::Result<Credentials, String> {
        let mut cached = self.inner.credentials.lock().await;
        if let Some(credentials) = cached.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + CREDENTIALS_MARGIN);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let provider = self
            .inner
            .config
            .credentials_provider()
            .ok_or("no AWS credentials configured")?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {}", error_chain(&e)))?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

/// A JSON-protocol request: the operation is the target's last part (`GetLogEvents`).
fn json_request<'a>(
    endpoint: String,
    service: &'a str,
    region: &str,
    content_type: &str,
    target: &'a str,
    request: &serde_json::Value,
    resource: &'a str,
) -> Request<'a> {
    let operation = operation_of(target);
    Request {
        method: "POST",
        url: format!("{endpoint}/"),
        service,
        region: region.to_string(),
        headers: vec![
            ("content-type", content_type.to_string()),
            ("x-amz-target", target.to_string()),
        ],
        body: request.to_string().into_bytes(),
        operation,
        resource,
    }
}

/// The operation a JSON target names: `Logs_20140328.GetLogEvents` -> `GetLogEvents`.
fn operation_of(target: &str) -> &str {
    target.rsplit('.').next().unwrap_or(target)
}

/// The error of an answer with a status of 400 or more: its code and message from the JSON
/// (`__type`, `message`) or XML (`Code`, `Message`) body, or from the status alone (HEAD).
fn service_error(request: &Request<'_>, answer: &Answer) -> Error {
    let mut code = String::new();
    let mut message = String::new();
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&answer.body) {
        code = json["__type"]
            .as_str()
            .or(json["code"].as_str())
            .unwrap_or_default()
            .rsplit('#')
            .next()
            .unwrap_or_default()
            .to_string();
        message = json["message"]
            .as_str()
            .or(json["Message"].as_str())
            .unwrap_or_default()
            .to_string();
    } else if !answer.body.is_empty() {
        let text = String::from_utf8_lossy(&answer.body);
        let _ = xml::walk(&text, &mut |path, value| {
            if path.ends_with("/Code") && code.is_empty() {
                code = value.to_string();
            } else if path.ends_with("/Message") && message.is_empty() {
                message = value.to_string();
            }
        });
        if code.is_empty() && message.is_empty() {
            message = text.chars().take(200).collect();
        }
    }
    // SQS's JSON errors name the Query code in a header too (`AWS.SimpleQueueService...`).
    if let Some(query_code) = answer.header("x-amzn-query-error")
        && code.is_empty()
    {
        code = query_code.split(';').next().unwrap_or_default().to_string();
    }
    if code.is_empty() && message.is_empty() {
        message = reqwest::StatusCode::from_u16(answer.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("refused")
            .to_string();
    }
    Error {
        status: Some(answer.status),
        code,
        ..Error::new(request.operation, request.resource, message)
    }
}

/// Whether an error code is one of throttling (retried like a 5xx).
fn throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "SlowDown"
            | "RequestThrottled"
            | "PriorRequestNotComplete"
            | "EC2ThrottledException"
    )
}

/// The wait before attempt `attempt + 1`: exponential, with full jitter.
fn backoff(attempt: u32) -> Duration {
    let cap = FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(1));
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    cap.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
}

/// The DNS suffix of a region's partition.
fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// An error and its sources, joined: what the SDK's `DisplayErrorContext` shows.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Percent-encoding of a query or form value (RFC 3986 unreserved characters kept), as
/// SigV4 expects.
pub fn encode(text: &str) -> String {
    encode_keeping(text, b"")
}

/// Percent-encoding that also keeps the bytes of `keep` (`/` in an S3 key's path).
fn encode_keeping(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ if keep.contains(&byte) => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (S3 listings asked for with `encoding-type=url`; `+` is a space
/// there).
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The region in an ARN (`arn:aws:sns:eu-west-1:123456789012:alerts`), if it names one.
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_and_decoded_as_sigv4_and_s3_listings_want() {
        assert_eq!(encode("a b/c~"), "a%20b%2Fc~");
        assert_eq!(encode_keeping("logs/a b.gz", b"/"), "logs/a%20b.gz");
        assert_eq!(decode("logs/a%20b+c.gz"), "logs/a b c.gz");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%e2%9c%93"), "\u{2713}");
    }

    #[test]
    fn errors_read_json_and_xml_bodies_and_throttling_is_retried_not_refused() {
        let request = Request {
            method: "POST",
            url: "https://x/".into(),
            service: "logs",
            region: "us-east-1".into(),
            headers: vec![],
            body: vec![],
            operation: "GetLogEvents",
            resource: "g/s",
        };
        let answer = |status, body: &str| Answer {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        };
        let json = service_error(
            &request,
            &answer(
                400,
                r#"{"__type":"com.amazonaws.logs#ResourceNotFoundException","message":"no stream"}"#,
            ),
        );
        assert_eq!(json.code, "ResourceNotFoundException");
        assert_eq!(json.message, "no stream");
        assert!(json.is_refusal());
        assert_eq!(
            json.to_string(),
            "GetLogEvents on g/s: 400 ResourceNotFoundException: no stream"
        );
        let xml = service_error(
            &request,
            &answer(
                400,
                "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
            ),
        );
        assert_eq!(
            (xml.code.as_str(), xml.message.as_str()),
            ("Throttling", "Rate exceeded")
        );
        assert!(!xml.is_refusal());
        let head = service_error(&request, &answer(404, ""));
        assert_eq!(head.message, "Not Found");
        assert!(head.is_refusal());
    }

    #[test]
    fn endpoints_follow_the_partition_and_an_override_replaces_them_all() {
        let config = SdkConfig::builder().build();
        let aws = Aws::new(config.clone(), None);
        assert_eq!(
            aws.endpoint("sns", "eu-west-1"),
            "https://sns.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            aws.endpoint("logs", "cn-north-1"),
            "https://logs.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            aws.endpoint("iam", "eu-west-1"),
            "https://iam.amazonaws.com"
        );
        let emulator = Aws::new(config, Some("http://127.0.0.1:5000/".into()));
        assert_eq!(
            emulator.endpoint("stream-logs", "eu-west-1"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            arn_region("arn:aws:sns:eu-west-1:123456789012:alerts"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("alerts"), None);
    }
}
