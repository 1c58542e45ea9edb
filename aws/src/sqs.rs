//! SQS's JSON-protocol calls: receiving and deleting the messages of a queue of S3 event
//! notifications.

use serde_json::json;

use crate::{Aws, JSON_1_0, Result};

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id.
    pub id: String,
    /// The handle to delete it with.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
}

impl Aws {
    /// Up to `max` messages, waiting up to `wait_seconds` for the first (`ReceiveMessage`).
    pub async fn sqs_receive(
        &self,
        queue_url: &str,
        max: u32,
        wait_seconds: u32,
    ) -> Result<Vec<Message>> {
        let request = json!({
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": max,
            "WaitTimeSeconds": wait_seconds,
        });
        let answer = self.sqs_call("ReceiveMessage", queue_url, &request).await?;
        let text =
            |m: &serde_json::Value, key: &str| m[key].as_str().unwrap_or_default().to_string();
        Ok(answer["Messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| Message {
                id: text(m, "MessageId"),
                receipt_handle: text(m, "ReceiptHandle"),
                body: text(m, "Body"),
            })
            .collect())
    }

    /// Deletes a received message (`DeleteMessage`).
    pub async fn sqs_delete(&self, queue_url: &str, receipt_handle: &str) -> Result<()> {
        let request = json!({ "QueueUrl": queue_url, "ReceiptHandle": receipt_handle });
        self.sqs_call("DeleteMessage", queue_url, &request)
            .await
            .map(|_| ())
    }

    /// A queue's URL from its name (`GetQueueUrl`).
    pub async fn sqs_queue_url(&self, name: &str) -> Result<String> {
        let answer = self
            .sqs_call("GetQueueUrl", name, &json!({ "QueueName": name }))
            .await?;
        answer["QueueUrl"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| crate::Error::new("GetQueueUrl", name, "no QueueUrl in the answer"))
    }

    async fn sqs_call(
        &self,
        action: &str,
        queue: &str,
        request: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let region = match queue_region(queue) {
            Some(region) => region.to_string(),
            None => self.need_region(action, queue)?,
        };
        self.json(
            "sqs",
            &region,
            JSON_1_0,
            &format!("AmazonSQS.{action}"),
            request,
            queue,
        )
        .await
    }
}

/// The region of a queue URL on AWS (`https://sqs.eu-west-1.amazonaws.com/123/q`, or the
/// legacy `https://eu-west-1.queue.amazonaws.com/123/q`).
fn queue_region(url: &str) -> Option<&str> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    if !host.contains(".amazonaws.com") {
        return None;
    }
    let mut labels = host.split('.');
    match labels.next()? {
        "sqs" => labels.next(),
        region => Some(region),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_url_names_its_region() {
        assert_eq!(
            queue_region("https://sqs.eu-west-1.amazonaws.com/123456789012/q"),
            Some("eu-west-1")
        );
        assert_eq!(
            queue_region("https://eu-west-1.queue.amazonaws.com/123456789012/q"),
            Some("eu-west-1")
        );
        assert_eq!(queue_region("http://127.0.0.1:5000/123456789012/q"), None);
        assert_eq!(queue_region("auditq-s3-events"), None);
    }
}
