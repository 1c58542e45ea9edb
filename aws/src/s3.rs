//! S3's REST calls: list a prefix, head and get an object.
//!
//! Requests go virtual-hosted (`https://BUCKET.s3.REGION.amazonaws.com/KEY`) where the bucket's
//! name is a DNS label, path-style otherwise and on an endpoint at an IP address or
//! `localhost` (an emulator). A bucket in another region than the configured one answers with
//! its region (`x-amz-bucket-region`): the request is signed again for that region, which is
//! then remembered.

use chrono::{DateTime, Utc};

use crate::{Answer, Aws, Error, Request, Result, decode, encode, encode_keeping};

/// An object as listed or headed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Key.
    pub key: String,
    /// ETag, without its quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modified.
    pub modified: DateTime<Utc>,
}

/// An object's bytes and its user metadata (`x-amz-meta-NAME`, by `NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    /// The body.
    pub body: Vec<u8>,
    /// User metadata.
    pub metadata: Vec<(String, String)>,
}

impl Aws {
    /// Every object under a prefix, in key order (`ListObjectsV2`, every page).
    pub async fn s3_list(&self, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
        let resource = format!("s3://{bucket}/{prefix}");
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = format!("encoding-type=url&list-type=2&prefix={}", encode(prefix));
            if let Some(token) = &token {
                query.push_str(&format!("&continuation-token={}", encode(token)));
            }
            let answer = self
                .s3_call(
                    "GET",
                    bucket,
                    "",
                    &query,
                    vec![],
                    "ListObjectsV2",
                    &resource,
                )
                .await?;
            let text = String::from_utf8_lossy(&answer.body);
            let mut next = None;
            let mut item = (None, String::new(), 0u64, None);
            crate::xml::read(&text, &mut |entry| match entry {
                crate::xml::Item::Text(path, value) => match path {
                    "/ListBucketResult/Contents/Key" => item.0 = Some(decode(value)),
                    "/ListBucketResult/Contents/ETag" => {
                        item.1 = value.trim_matches('"').to_string()
                    }
                    "/ListBucketResult/Contents/Size" => item.2 = value.parse().unwrap_or(0),
                    "/ListBucketResult/Contents/LastModified" => {
                        item.3 = DateTime::parse_from_rfc3339(value).ok()
                    }
                    "/ListBucketResult/NextContinuationToken" => next = Some(value.to_string()),
                    _ => {}
                },
                crate::xml::Item::End("/ListBucketResult/Contents") => {
                    let (key, etag, size, modified) = std::mem::take(&mut item);
                    if let Some(key) = key {
                        objects.push(Object {
                            key,
                            etag,
                            size,
                            modified: modified.map(|t| t.to_utc()).unwrap_or_default(),
                        });
                    }
                }
                crate::xml::Item::End(_) => {}
            })
            .map_err(|e| Error::new("ListObjectsV2", &resource, e))?;
            match next {
                Some(next) if token.as_ref() != Some(&next) => token = Some(next),
                _ => break,
            }
        }
        Ok(objects)
    }

    /// The current version of one object (`HeadObject`).
    pub async fn s3_head(&self, bucket: &str, key: &str) -> Result<Object> {
        let resource = format!("s3://{bucket}/{key}");
        let answer = self
            .s3_call("HEAD", bucket, key, "", vec![], "HeadObject", &resource)
            .await?;
        Ok(Object {
            key: key.to_string(),
            etag: answer
                .header("etag")
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
            size: answer
                .header("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0),
            modified: answer
                .header("last-modified")
                .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
                .map(|t| t.to_utc())
                .unwrap_or_default(),
        })
    }

    /// One object's bytes (`GetObject`); with `if_match`, only the version of that ETag (a
    /// 412 otherwise).
    pub async fn s3_get(&self, bucket: &str, key: &str, if_match: Option<&str>) -> Result<Got> {
        let resource = format!("s3://{bucket}/{key}");
        let headers = if_match
            .map(|etag| vec![("if-match", format!("\"{etag}\""))])
            .unwrap_or_default();
        let answer = self
            .s3_call("GET", bucket, key, "", headers, "GetObject", &resource)
            .await?;
        let metadata = answer
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        Ok(Got {
            body: answer.body,
            metadata,
        })
    }

    /// One S3 call, in the bucket's region (learnt from a redirect when it is not the
    /// configured one).
    #[allow(clippy::too_many_arguments)]
    async fn s3_call(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        query: &str,
        headers: Vec<(&str, String)>,
        operation: &str,
        resource: &str,
    ) -> Result<Answer> {
        let known = self
            .inner
            .bucket_regions
            .lock()
            .ok()
            .and_then(|regions| regions.get(bucket).cloned());
        let mut region = match known {
            Some(region) => region,
            None => self.need_region(operation, resource)?,
        };
        let mut redirected = false;
        loop {
            let request = Request {
                method,
                url: self.object_url(bucket, key, query, &region),
                service: "s3",
                region: region.clone(),
                headers: headers.clone(),
                body: Vec::new(),
                operation,
                resource,
            };
            let answer = self.call(request).await;
            // 301 (and 400 for a request signed for the wrong region) name the bucket's region.
            let moved = match &answer {
                Ok(answer) if answer.status == 301 => answer.header("x-amz-bucket-region"),
                _ => None,
            };
            let elsewhere = match (&answer, moved) {
                (_, Some(moved)) => Some(moved.to_string()),
                (Err(e), None) if e.status == Some(400) || e.status == Some(301) => {
                    self.bucket_region(bucket, &region).await
                }
                _ => None,
            };
            match elsewhere {
                Some(other) if !redirected && other != region => {
                    if let Ok(mut regions) = self.inner.bucket_regions.lock() {
                        regions.insert(bucket.to_string(), other.clone());
                    }
                    region = other;
                    redirected = true;
                }
                _ => {
                    return match answer {
                        Ok(answer) if answer.status >= 300 => Err(Error {
                            status: Some(answer.status),
                            ..Error::new(operation, resource, "redirected, with no region named")
                        }),
                        other => other,
                    };
                }
            }
        }
    }

    /// The region S3 names for a bucket (`HeadBucket`'s `x-amz-bucket-region`), if it is
    /// not `region`.
    async fn bucket_region(&self, bucket: &str, region: &str) -> Option<String> {
        let request = Request {
            method: "HEAD",
            url: self.object_url(bucket, "", "", region),
            service: "s3",
            region: region.to_string(),
            headers: vec![],
            body: Vec::new(),
            operation: "HeadBucket",
            resource: bucket,
        };
        let response = self.send(&request).await.ok()?;
        let named = response
            .headers()
            .get("x-amz-bucket-region")?
            .to_str()
            .ok()?;
        (named != region).then(|| named.to_string())
    }

    /// An object's URL (`key` empty: the bucket's), with its query.
    fn object_url(&self, bucket: &str, key: &str, query: &str, region: &str) -> String {
        let key = encode_keeping(key, b"/");
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        match self.endpoint_url() {
            Some(url) => {
                let url = url.trim_end_matches('/');
                let (scheme, host) = url.split_once("://").unwrap_or(("https", url));
                if path_style(bucket, host) {
                    format!("{url}/{bucket}/{key}{query}")
                } else {
                    format!("{scheme}://{bucket}.{host}/{key}{query}")
                }
            }
            None => {
                let suffix = crate::dns_suffix(region);
                if path_style(bucket, "") {
                    format!("https://s3.{region}.{suffix}/{bucket}/{key}{query}")
                } else {
                    format!("https://{bucket}.s3.{region}.{suffix}/{key}{query}")
                }
            }
        }
    }
}

/// Whether a bucket is addressed in the path: its name is not one DNS label (dots would
/// break the TLS certificate's wildcard), or the endpoint is an IP address or `localhost`.
fn path_style(bucket: &str, host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let local =
        name == "localhost" || name.parse::<std::net::IpAddr>().is_ok() || name.starts_with('[');
    let label = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-');
    local || !label
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::SdkConfig;

    #[test]
    fn buckets_are_virtual_hosted_unless_their_name_or_the_endpoint_forbids_it() {
        let aws = Aws::new(SdkConfig::builder().build(), None);
        assert_eq!(
            aws.object_url("trail-logs", "AWSLogs/1/a b.json.gz", "", "eu-west-1"),
            "https://trail-logs.s3.eu-west-1.amazonaws.com/AWSLogs/1/a%20b.json.gz"
        );
        assert_eq!(
            aws.object_url("my.bucket", "", "list-type=2", "us-east-1"),
            "https://s3.us-east-1.amazonaws.com/my.bucket/?list-type=2"
        );
        let emulator = Aws::new(
            SdkConfig::builder().build(),
            Some("http://127.0.0.1:5000".into()),
        );
        assert_eq!(
            emulator.object_url("trail-logs", "k", "", "us-east-1"),
            "http://127.0.0.1:5000/trail-logs/k"
        );
        let endpoint = Aws::new(
            SdkConfig::builder().build(),
            Some("https://vpce-1.s3.us-east-1.vpce.amazonaws.com".into()),
        );
        assert_eq!(
            endpoint.object_url("trail-logs", "k", "", "us-east-1"),
            "https://trail-logs.vpce-1.s3.us-east-1.vpce.amazonaws.com/k"
        );
    }
}
