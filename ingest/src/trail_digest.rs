//! CloudTrail log file integrity validation, done by auditq: CloudTrail's own hourly digest
//! files, checked against CloudTrail's public keys and against the log files in the bucket and
//! the ones auditq ingested.
//!
//! CloudTrail writes a digest every hour for each trail and region, even when nothing happened,
//! under `AWSLogs/ACCOUNT/CloudTrail-Digest/REGION/...`. Each lists the log files delivered in its
//! hour with the SHA-256 of their uncompressed content, chains to the digest before it (its key,
//! the SHA-256 of its uncompressed content and its signature), and is signed (RSA, SHA-256) by a
//! regional CloudTrail key over `digestEndTime\nbucket/object\nsha256(digest)\nprevious
//! signature`; the signature is the object's `x-amz-meta-signature`. So a missing hour, a log file
//! deleted, changed or slipped in, and a digest forged or removed, can each be told, the way `aws
//! cloudtrail validate-logs` does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use auditq_model::{Timestamp, hex};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::aws::{S3Location, S3Object, S3Source};
use crate::error::Result;
use crate::time::parse_rfc3339;

/// A log file a digest lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFile {
    /// Its bucket.
    pub s3_bucket: String,
    /// Its key.
    pub s3_object: String,
    /// SHA-256 of its uncompressed content, hex.
    pub hash_value: String,
}

/// The fields of a digest file auditq checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFile {
    /// The account.
    pub aws_account_id: String,
    /// Start of the hour it covers.
    pub digest_start_time: String,
    /// End of it.
    pub digest_end_time: String,
    /// Where it says it was delivered.
    pub digest_s3_bucket: String,
    /// Its key, as it says.
    pub digest_s3_object: String,
    /// The previous digest's bucket (null for a chain's first).
    pub previous_digest_s3_bucket: Option<String>,
    /// Its key.
    pub previous_digest_s3_object: Option<String>,
    /// SHA-256 of its uncompressed content.
    pub previous_digest_hash_value: Option<String>,
    /// Its signature, hex.
    pub previous_digest_signature: Option<String>,
    /// The log files delivered in the hour.
    #[serde(default)]
    pub log_files: Vec<LogFile>,
}

/// A digest as read: where, its fields, the SHA-256 of its content, its signature.
#[derive(Debug, Clone)]
pub struct ReadDigest {
    /// `s3://bucket/key` where it was read.
    pub uri: String,
    /// Its fields.
    pub file: DigestFile,
    /// SHA-256 of its uncompressed content, hex.
    pub sha256: String,
    /// Its signature (object metadata `signature`), hex, when the store gave it.
    pub signature: Option<String>,
}

/// Gunzips when gzip (some clients inflate `Content-Encoding: gzip` objects themselves).
fn inflate(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format!("not gzip: {e}"))?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Reads a digest object's bytes.
pub fn read_digest(
    uri: &str,
    bytes: &[u8],
    signature: Option<String>,
) -> std::result::Result<ReadDigest, String> {
    let inflated = inflate(bytes)?;
    let file: DigestFile =
        serde_json::from_slice(&inflated).map_err(|e| format!("not a CloudTrail digest: {e}"))?;
    Ok(ReadDigest {
        uri: uri.to_string(),
        file,
        sha256: hex(&Sha256::digest(&inflated)),
        signature,
    })
}

/// What CloudTrail signs for a digest.
pub fn string_to_sign(digest: &ReadDigest) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        digest.file.digest_end_time,
        digest.file.digest_s3_bucket,
        digest.file.digest_s3_object,
        digest.sha256,
        digest
            .file
            .previous_digest_signature
            .as_deref()
            .unwrap_or("null")
    )
}

/// The RSA public keys (PKCS#1 DER) of `aws cloudtrail list-public-keys` output (its
/// `PublicKeyList[].Value`, base64; a SubjectPublicKeyInfo is unwrapped).
pub fn public_keys(json: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Key {
        value: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct List {
        public_key_list: Vec<Key>,
    }
    let list: List = serde_json::from_str(json)
        .map_err(|e| format!("not the output of `aws cloudtrail list-public-keys`: {e}"))?;
    let mut keys = Vec::new();
    for key in list.public_key_list {
        let mut der = key.value.into_bytes();
        // Base64 until DER (the value may be base64 of base64).
        for _ in 0..3 {
            if der.first() == Some(&0x30) {
                break;
            }
            der = STANDARD
                .decode(&der)
                .map_err(|e| format!("a public key is not base64: {e}"))?;
        }
        keys.push(unwrap_spki(der));
    }
    Ok(keys)
}

/// A SubjectPublicKeyInfo of an RSA key as its RSAPublicKey (PKCS#1); anything else as it is.
fn unwrap_spki(der: Vec<u8>) -> Vec<u8> {
    const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let Some(at) = der.windows(RSA_OID.len()).position(|w| w == RSA_OID) else {
        return der;
    };
    // After the algorithm: NULL, then BIT STRING (03 len 00 RSAPublicKey).
    let mut i = at + RSA_OID.len();
    while i < der.len() && der[i] != 0x03 {
        i += 1;
    }
    let Some(&first) = der.get(i + 1) else {
        return der;
    };
    let (len, header) = match first {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(der.get(i + 2).copied().unwrap_or(0)), 3),
        0x82 => (
            usize::from(der.get(i + 2).copied().unwrap_or(0)) << 8
                | usize::from(der.get(i + 3).copied().unwrap_or(0)),
            4,
        ),
        _ => return der,
    };
    let start = i + header + 1;
    match der.get(start..i + header + len) {
        Some(inner) if inner.first() == Some(&0x30) => inner.to_vec(),
        _ => der,
    }
}

/// Whether `signature` (hex) is CloudTrail's signature of the digest by one of `keys`.
pub fn signature_verifies(digest: &ReadDigest, signature: &str, keys: &[Vec<u8>]) -> bool {
    let Some(signature) = decode_hex(signature.trim()) else {
        return false;
    };
    let message = string_to_sign(digest);
    keys.iter().any(|key| {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
            .verify(message.as_bytes(), &signature)
            .is_ok()
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One thing found wrong with the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailFinding {
    /// `cloudtrail_digest_missing`, `cloudtrail_digest_invalid`, `cloudtrail_log_changed`,
    /// `cloudtrail_log_missing`, `cloudtrail_log_unlisted`, `cloudtrail_log_not_ingested`.
    pub kind: &'static str,
    /// The digest or log file (`s3://...`), or `ACCOUNT/REGION`.
    pub subject: String,
    /// When (the digest's hour).
    pub time: Option<Timestamp>,
    /// What, in words.
    pub detail: String,
}

/// What the check read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailCheck {
    /// Digests read.
    pub digests: usize,
    /// Of those, signatures that verified.
    pub signed: usize,
    /// Log files hashed.
    pub logs: usize,
    /// What was wrong.
    pub findings: Vec<TrailFinding>,
}

/// The trail, region and digest-hour of a digest key, to chain digests by trail.
fn chain_of(key: &str) -> String {
    // ..._CloudTrail-Digest_REGION_TRAIL_HOME_YYYYMMDDTHHMMSSZ.json.gz
    let name = key.rsplit('/').next().unwrap_or(key);
    let stem = name
        .trim_end_matches(".json.gz")
        .trim_end_matches("_backfill");
    let account = key
        .split('/')
        .skip_while(|p| *p != "AWSLogs")
        .nth(1)
        .unwrap_or("");
    let region = key
        .split('/')
        .skip_while(|p| *p != "CloudTrail-Digest")
        .nth(1)
        .unwrap_or("");
    let trail = stem.rsplit_once('_').map_or(stem, |(head, _)| head);
    format!("{account}/{region}/{trail}")
}

/// When CloudTrail delivered a log file, from its name (`..._20261005T1405Z_...json.gz`).
fn delivered_at(key: &str) -> Option<Timestamp> {
    let name = key.rsplit('/').next()?;
    name.split('_').find_map(|part| {
        chrono::NaiveDateTime::parse_from_str(part, "%Y%m%dT%H%MZ")
            .ok()
            .map(|t| t.and_utc())
    })
}

/// Checks the trail under `location` (a bucket and prefix holding `AWSLogs/`) over
/// `[from, to)`: every digest's signature and link, every hour's digest, every listed log file
/// against the bucket and its hash, every log file against the digests, and whether auditq
/// ingested it (`ingested`: the `s3://` sources in `positions`).
pub async fn check(
    s3: &S3Source,
    location: &S3Location,
    keys: &[Vec<u8>],
    ingested: &BTreeSet<String>,
    from: Timestamp,
    to: Timestamp,
) -> Result<TrailCheck> {
    let mut out = TrailCheck::default();
    let objects = s3.list(location).await?;
    let mut logs: BTreeMap<String, &S3Object> = BTreeMap::new();
    let mut digest_objects = Vec::new();
    for object in &objects {
        if object.key.contains("/CloudTrail-Digest/") && object.key.ends_with(".json.gz") {
            digest_objects.push(object);
        } else if object.key.contains("/CloudTrail/") && object.key.ends_with(".json.gz") {
            logs.insert(object.uri(), object);
        }
    }
    // Read the digests of the period (and the hour before, for its link).
    let mut chains: BTreeMap<String, Vec<ReadDigest>> = BTreeMap::new();
    for object in digest_objects {
        let (bytes, signature) = s3.fetch_with_signature(object).await?;
        match read_digest(&object.uri(), &bytes, signature) {
            Ok(digest) => {
                let end = parse_rfc3339(&digest.file.digest_end_time);
                if end.is_some_and(|end| end <= from || end > to + chrono::Duration::hours(1)) {
                    continue;
                }
                chains
                    .entry(chain_of(&object.key))
                    .or_default()
                    .push(digest);
            }
            Err(reason) => out.findings.push(TrailFinding {
                kind: "cloudtrail_digest_invalid",
                subject: object.uri(),
                time: Some(object.modified),
                detail: reason,
            }),
        }
    }
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut covered: Vec<(String, Timestamp, Timestamp)> = Vec::new();
    for (chain, mut digests) in chains {
        digests.sort_by(|a, b| a.file.digest_end_time.cmp(&b.file.digest_end_time));
        let by_key: BTreeMap<String, usize> = digests
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    format!(
                        "s3://{}/{}",
                        d.file.digest_s3_bucket, d.file.digest_s3_object
                    ),
                    i,
                )
            })
            .collect();
        for (i, digest) in digests.iter().enumerate() {
            out.digests += 1;
            let time = parse_rfc3339(&digest.file.digest_start_time);
            let end = parse_rfc3339(&digest.file.digest_end_time);
            let mut bad = |detail: String| {
                out.findings.push(TrailFinding {
                    kind: "cloudtrail_digest_invalid",
                    subject: digest.uri.clone(),
                    time,
                    detail,
                })
            };
            let said = format!(
                "s3://{}/{}",
                digest.file.digest_s3_bucket, digest.file.digest_s3_object
            );
            if said != digest.uri {
                bad(format!("says it is {said}: it was moved or copied"));
            }
            // Its signature: its own metadata, else the next digest's link to it.
            let next_says = digests
                .get(i + 1)
                .filter(|n| {
                    n.file.previous_digest_s3_object.as_deref()
                        == Some(&digest.file.digest_s3_object)
                })
                .and_then(|n| n.file.previous_digest_signature.clone());
            match digest.signature.clone().or(next_says) {
                Some(signature) if signature_verifies(digest, &signature, keys) => out.signed += 1,
                Some(_) if keys.is_empty() => {}
                Some(_) => bad("its signature does not verify with CloudTrail's public keys: it was changed, or not written by CloudTrail".to_string()),
                None => {}
            }
            // Its link to the one before.
            match (&digest.file.previous_digest_s3_bucket, &digest.file.previous_digest_s3_object) {
                (Some(bucket), Some(object)) => {
                    let previous = format!("s3://{bucket}/{object}");
                    match by_key.get(&previous).map(|&p| &digests[p]) {
                        Some(prior) => {
                            if digest.file.previous_digest_hash_value.as_deref() != Some(prior.sha256.as_str()) {
                                bad(format!("links to {previous} by a SHA-256 that digest no longer has: it was changed"));
                            }
                            if let (Some(said), Some(own)) = (&digest.file.previous_digest_signature, &prior.signature)
                                && said != own
                            {
                                bad(format!("links to {previous} by another signature than that digest carries"));
                            }
                        }
                        None if i > 0 => out.findings.push(TrailFinding {
                            kind: "cloudtrail_digest_missing",
                            subject: previous.clone(),
                            time,
                            detail: format!("the digest {} links to is not in the bucket", digest.uri),
                        }),
                        None => {}
                    }
                }
                _ if i > 0 => out.findings.push(TrailFinding {
                    kind: "cloudtrail_digest_missing",
                    subject: digest.uri.clone(),
                    time,
                    detail: "the chain of digests starts again here: logging or validation was stopped, or the trail deleted and made again".to_string(),
                }),
                _ => {}
            }
            // Hours with no digest between this one and the next.
            if let (Some(end), Some(next)) = (
                end,
                digests
                    .get(i + 1)
                    .and_then(|n| parse_rfc3339(&n.file.digest_start_time)),
            ) && next - end > chrono::Duration::minutes(5)
            {
                out.findings.push(TrailFinding {
                    kind: "cloudtrail_digest_missing",
                    subject: chain.clone(),
                    time: Some(end),
                    detail: format!(
                        "no digest from {} to {}: CloudTrail delivers one every hour, even with no activity",
                        end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                });
            }
            if let (Some(start), Some(end)) = (time, end) {
                covered.push((chain.clone(), start, end));
            }
            // The log files it lists.
            for log in &digest.file.log_files {
                let uri = format!("s3://{}/{}", log.s3_bucket, log.s3_object);
                listed.insert(uri.clone());
                let Some(object) = logs.get(&uri) else {
                    out.findings.push(TrailFinding {
                        kind: "cloudtrail_log_missing",
                        subject: uri,
                        time,
                        detail: format!(
                            "listed by {} and not in the bucket: deleted or moved",
                            digest.uri
                        ),
                    });
                    continue;
                };
                let bytes = s3.fetch(object).await?;
                out.logs += 1;
                let sha256 = inflate(&bytes).map(|b| hex(&Sha256::digest(&b)));
                if sha256.as_deref().ok() != Some(log.hash_value.as_str()) {
                    out.findings.push(TrailFinding {
                        kind: "cloudtrail_log_changed",
                        subject: uri.clone(),
                        time,
                        detail: format!(
                            "its content is not what {} says CloudTrail delivered",
                            digest.uri
                        ),
                    });
                }
                if !ingested.contains(&uri) {
                    out.findings.push(TrailFinding {
                        kind: "cloudtrail_log_not_ingested",
                        subject: uri,
                        time,
                        detail: "delivered by CloudTrail and not read by auditq".to_string(),
                    });
                }
            }
        }
    }
    // Log files no digest lists, delivered while digests were being written.
    let newest = covered.iter().map(|(_, _, end)| *end).max();
    let oldest = covered.iter().map(|(_, start, _)| *start).min();
    for (uri, object) in &logs {
        let delivered = delivered_at(&object.key).unwrap_or(object.modified);
        let within =
            matches!((oldest, newest), (Some(o), Some(n)) if delivered >= o && delivered < n);
        if within && !listed.contains(uri) {
            out.findings.push(TrailFinding {
                kind: "cloudtrail_log_unlisted",
                subject: uri.clone(),
                time: Some(delivered),
                detail: "no CloudTrail digest lists it: it was not delivered by CloudTrail"
                    .to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_is_aws_clis() {
        // aws-cli's test_properly_signs_when_no_previous_signature.
        let digest = ReadDigest {
            uri: "s3://b/c".into(),
            file: DigestFile {
                aws_account_id: "1".into(),
                digest_start_time: "x".into(),
                digest_end_time: "a".into(),
                digest_s3_bucket: "b".into(),
                digest_s3_object: "c".into(),
                previous_digest_s3_bucket: None,
                previous_digest_s3_object: None,
                previous_digest_hash_value: None,
                previous_digest_signature: None,
                log_files: Vec::new(),
            },
            sha256: hex(&Sha256::digest(b"abc")),
            signature: None,
        };
        assert_eq!(
            string_to_sign(&digest),
            "a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
        );
    }

    #[test]
    fn spki_and_base64_layers_come_to_pkcs1() {
        let pkcs1 = include_bytes!("../../tests/fixtures/cloudtrail-digest/public.der");
        let spki = include_bytes!("../../tests/fixtures/cloudtrail-digest/public-spki.der");
        assert_eq!(unwrap_spki(spki.to_vec()), pkcs1.to_vec());
        let once = STANDARD.encode(spki);
        let twice = STANDARD.encode(&once);
        for value in [once, twice] {
            let json = format!(r#"{{"PublicKeyList":[{{"Value":"{value}"}}]}}"#);
            assert_eq!(public_keys(&json), Ok(vec![pkcs1.to_vec()]));
        }
    }

    #[test]
    fn digest_chains_are_per_trail_and_region() {
        assert_eq!(
            chain_of(
                "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/10/05/111122223333_CloudTrail-Digest_eu-west-1_main_us-east-1_20261005T100000Z.json.gz"
            ),
            "111122223333/eu-west-1/111122223333_CloudTrail-Digest_eu-west-1_main_us-east-1"
        );
    }
}
