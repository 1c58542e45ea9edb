//! CloudTrail log file integrity validation against the AWS API emulator (moto's S3): a trail
//! of four hours with signed, chained digests (signed here with a test RSA key, as CloudTrail's
//! regional key signs them), then each kind of tampering, each found and named.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use auditq_ingest::aws::{S3Location, S3Source};
use auditq_ingest::trail_digest::{self, TrailCheck};
use auditq_tests::{emulator, repo_root, run_id};
use aws_config::BehaviorVersion;
use aws_sdk_s3::primitives::ByteStream;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use sha2::{Digest, Sha256};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
    encoder.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn log_key(hour: u32, n: u32) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/10/05/{ACCOUNT}_CloudTrail_{REGION}_20261005T{hour:02}{:02}Z_LOG{n}.json.gz",
        5 + n * 10
    )
}

fn digest_key(hour: u32) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/2026/10/05/{ACCOUNT}_CloudTrail-Digest_{REGION}_main_{REGION}_20261005T{:02}0000Z.json.gz",
        hour + 1
    )
}

fn log_body(hour: u32, n: u32) -> Vec<u8> {
    format!(
        r#"{{"Records":[{{"eventVersion":"1.08","eventTime":"2026-10-05T{hour:02}:{:02}:00Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"{REGION}","sourceIPAddress":"198.51.100.7","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::{ACCOUNT}:user/alice","accountId":"{ACCOUNT}"}},"eventID":"e-{hour}-{n}","recipientAccountId":"{ACCOUNT}"}}]}}"#,
        n * 10
    )
    .into_bytes()
}

struct Put<'a> {
    client: &'a aws_sdk_s3::Client,
    bucket: &'a str,
}

impl Put<'_> {
    async fn object(&self, key: &str, body: Vec<u8>, signature: Option<&str>) {
        let mut put = self
            .client
            .put_object()
            .bucket(self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        if let Some(signature) = signature {
            put = put
                .metadata("signature", signature)
                .metadata("signature-algorithm", "SHA256withRSA");
        }
        put.send().await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
    }
}

fn kinds(check: &TrailCheck) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for f in &check.findings {
        out.entry(f.kind).or_default().push(f.subject.clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudtrail_digests_validate_and_each_tampering_is_named() {
    let _ = emulator();
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_s3::Client::new(&config);
    let bucket = run_id("auditq-trail");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let put = Put {
        client: &client,
        bucket: &bucket,
    };
    let fixtures = repo_root().join("tests/fixtures/cloudtrail-digest");
    let private = std::fs::read(fixtures.join("private.pk8")).unwrap_or_else(|e| panic!("{e}"));
    let key = RsaKeyPair::from_pkcs8(&private).unwrap_or_else(|e| panic!("{e}"));
    let keys = trail_digest::public_keys(
        &std::fs::read_to_string(fixtures.join("list-public-keys.json"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sign = |message: &str| {
        let mut signature = vec![0u8; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        hex(&signature)
    };

    // Four hours, two log files an hour, each hour's digest signed and chained.
    let mut previous: Option<(String, String, String)> = None; // key, sha256, signature
    let mut digests = BTreeMap::new();
    let mut all_logs = BTreeSet::new();
    for hour in 10..14u32 {
        let mut files = Vec::new();
        for n in 0..2 {
            let body = log_body(hour, n);
            put.object(&log_key(hour, n), gzip(&body), None).await;
            all_logs.insert(format!("s3://{bucket}/{}", log_key(hour, n)));
            files.push(serde_json::json!({
                "s3Bucket": bucket, "s3Object": log_key(hour, n),
                "hashValue": hex(&Sha256::digest(&body)), "hashAlgorithm": "SHA-256",
            }));
        }
        let digest = serde_json::json!({
            "awsAccountId": ACCOUNT,
            "digestStartTime": format!("2026-10-05T{hour:02}:00:00Z"),
            "digestEndTime": format!("2026-10-05T{:02}:00:00Z", hour + 1),
            "digestS3Bucket": bucket,
            "digestS3Object": digest_key(hour),
            "digestPublicKeyFingerprint": "0123456789abcdef0123456789abcdef",
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": format!("2026-10-05T{hour:02}:10:00Z"),
            "oldestEventTime": format!("2026-10-05T{hour:02}:00:00Z"),
            "previousDigestS3Bucket": previous.as_ref().map(|_| bucket.clone()),
            "previousDigestS3Object": previous.as_ref().map(|p| p.0.clone()),
            "previousDigestHashValue": previous.as_ref().map(|p| p.1.clone()),
            "previousDigestHashAlgorithm": previous.as_ref().map(|_| "SHA-256"),
            "previousDigestSignature": previous.as_ref().map(|p| p.2.clone()),
            "logFiles": files,
        });
        let body = serde_json::to_vec(&digest).unwrap_or_else(|e| panic!("{e}"));
        let sha256 = hex(&Sha256::digest(&body));
        let to_sign = format!(
            "2026-10-05T{:02}:00:00Z\n{bucket}/{}\n{sha256}\n{}",
            hour + 1,
            digest_key(hour),
            previous
                .as_ref()
                .map_or("null".to_string(), |p| p.2.clone())
        );
        let signature = sign(&to_sign);
        put.object(&digest_key(hour), gzip(&body), Some(&signature))
            .await;
        digests.insert(hour, (digest, signature.clone()));
        previous = Some((digest_key(hour), sha256, signature));
    }
    let s3 = S3Source::new(auditq_tests::aws_calls().await);
    let location = S3Location::parse(&format!("s3://{bucket}")).unwrap_or_else(|| panic!("uri"));
    let period = |h: u32| {
        auditq_ingest::time::parse_rfc3339(&format!("2026-10-05T{h:02}:00:00Z"))
            .unwrap_or_else(|| panic!("a time"))
    };
    let check = trail_digest::check(&s3, &location, &keys, &all_logs, period(0), period(23))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check.findings, [], "an untouched trail validates");
    assert_eq!((check.digests, check.signed, check.logs), (4, 4, 8));

    // Tampering, one of each kind.
    // 1. A log file changed after delivery.
    put.object(&log_key(10, 0), gzip(b"{\"Records\":[]}"), None)
        .await;
    // 2. A log file deleted.
    client
        .delete_object()
        .bucket(&bucket)
        .key(log_key(11, 1))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    // 3. A log file slipped in among hour 11's.
    let forged = format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/10/05/{ACCOUNT}_CloudTrail_{REGION}_20261005T1140Z_FORGED.json.gz"
    );
    put.object(&forged, gzip(&log_body(11, 4)), None).await;
    // 4. Hour 12's digest deleted.
    client
        .delete_object()
        .bucket(&bucket)
        .key(digest_key(12))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    // 5. Hour 13's digest edited, its signature kept.
    let (mut edited, signature) = digests[&13].clone();
    edited["newestEventTime"] = serde_json::json!("2026-10-05T13:59:00Z");
    put.object(
        &digest_key(13),
        gzip(&serde_json::to_vec(&edited).unwrap_or_default()),
        Some(&signature),
    )
    .await;
    // 6. One delivered log file auditq never read.
    let mut ingested = all_logs.clone();
    ingested.remove(&format!("s3://{bucket}/{}", log_key(13, 1)));

    let check = trail_digest::check(&s3, &location, &keys, &ingested, period(0), period(23))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let found = kinds(&check);
    let uri = |key: String| format!("s3://{bucket}/{key}");
    assert_eq!(
        found["cloudtrail_log_changed"],
        [uri(log_key(10, 0))],
        "{found:#?}"
    );
    assert_eq!(
        found["cloudtrail_log_missing"],
        [uri(log_key(11, 1))],
        "{found:#?}"
    );
    assert_eq!(
        found["cloudtrail_digest_invalid"],
        [uri(digest_key(13))],
        "{found:#?}"
    );
    assert_eq!(
        found["cloudtrail_log_not_ingested"],
        [uri(log_key(13, 1))],
        "{found:#?}"
    );
    // The forged file, and hour 12's files whose digest is gone: no digest vouches for them.
    let unlisted: BTreeSet<&String> = found["cloudtrail_log_unlisted"].iter().collect();
    let expected = [
        uri(forged.clone()),
        uri(log_key(12, 0)),
        uri(log_key(12, 1)),
    ];
    assert_eq!(unlisted, expected.iter().collect(), "{found:#?}");
    // The missing hour: its gap, and the link to it from the next digest.
    let missing = &found["cloudtrail_digest_missing"];
    assert_eq!(missing.len(), 2, "{found:#?}");
    assert!(missing.contains(&uri(digest_key(12))), "{found:#?}");
    assert!(
        check
            .findings
            .iter()
            .any(|f| f.kind == "cloudtrail_digest_missing"
                && f.detail
                    .contains("no digest from 2026-10-05T12:00:00Z to 2026-10-05T13:00:00Z")),
        "{found:#?}"
    );
    assert_eq!(found.len(), 6, "nothing else: {found:#?}");

    // Another key than CloudTrail's: no signature verifies.
    let other_der =
        std::fs::read(fixtures.join("other-public.der")).unwrap_or_else(|e| panic!("{e}"));
    let other = trail_digest::public_keys(&format!(
        r#"{{"PublicKeyList":[{{"Value":"{}"}}]}}"#,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &other_der)
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let check = trail_digest::check(&s3, &location, &other, &ingested, period(0), period(23))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check.signed, 0);
    assert_eq!(
        kinds(&check)["cloudtrail_digest_invalid"].len(),
        3,
        "every digest fails another key"
    );
}
