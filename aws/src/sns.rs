//! SNS's Query-protocol calls: publishing alerts and managing a topic's subscriptions. Each
//! goes to the region of the topic's (or subscription's) ARN.

use crate::{Aws, Error, Result, arn_region};

const VERSION: &str = "2010-03-31";

/// One message of a `PublishBatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's id within the batch.
    pub id: String,
    /// The subject (e-mail subscribers see it).
    pub subject: String,
    /// The body.
    pub message: String,
    /// String message attributes, which subscription filter policies match.
    pub attributes: Vec<(String, String)>,
}

/// What `PublishBatch` said of each entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// The ids taken.
    pub successful: Vec<String>,
    /// The ids refused: (id, code, message).
    pub failed: Vec<(String, String, String)>,
}

/// A subscription of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its ARN (`PendingConfirmation` until confirmed).
    pub arn: String,
    /// `email`, `sqs`, `https`, `lambda`.
    pub protocol: String,
    /// The address, queue, URL or function.
    pub endpoint: String,
}

impl Aws {
    /// Publishes up to ten messages to a topic (`PublishBatch`).
    pub async fn sns_publish_batch(&self, topic_arn: &str, entries: &[Entry]) -> Result<Published> {
        let mut params = vec![("TopicArn".to_string(), topic_arn.to_string())];
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("PublishBatchRequestEntries.member.{}", i + 1);
            params.push((format!("{at}.Id"), entry.id.clone()));
            params.push((format!("{at}.Subject"), entry.subject.clone()));
            params.push((format!("{at}.Message"), entry.message.clone()));
            for (j, (name, value)) in entry.attributes.iter().enumerate() {
                let attribute = format!("{at}.MessageAttributes.entry.{}", j + 1);
                params.push((format!("{attribute}.Name"), name.clone()));
                params.push((format!("{attribute}.Value.DataType"), "String".to_string()));
                params.push((format!("{attribute}.Value.StringValue"), value.clone()));
            }
        }
        let xml = self.sns_call("PublishBatch", topic_arn, &params).await?;
        let mut published = Published::default();
        let mut failed = (String::new(), String::new(), String::new());
        let path = "/PublishBatchResponse/PublishBatchResult";
        crate::xml::read(&xml, &mut |item| match item {
            crate::xml::Item::Text(p, value) => match p.strip_prefix(path) {
                Some("/Successful/member/Id") => published.successful.push(value.to_string()),
                Some("/Failed/member/Id") => failed.0 = value.to_string(),
                Some("/Failed/member/Code") => failed.1 = value.to_string(),
                Some("/Failed/member/Message") => failed.2 = value.to_string(),
                _ => {}
            },
            crate::xml::Item::End(p) if p.strip_prefix(path) == Some("/Failed/member") => {
                published.failed.push(std::mem::take(&mut failed));
            }
            crate::xml::Item::End(_) => {}
        })
        .map_err(|e| Error::new("PublishBatch", topic_arn, e))?;
        Ok(published)
    }

    /// Subscribes an endpoint to a topic, with subscription attributes (`FilterPolicy`); the
    /// subscription's ARN (`pending confirmation` for e-mail until the address confirms).
    pub async fn sns_subscribe(
        &self,
        topic_arn: &str,
        protocol: &str,
        endpoint: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String> {
        let mut params = vec![
            ("TopicArn".to_string(), topic_arn.to_string()),
            ("Protocol".to_string(), protocol.to_string()),
            ("Endpoint".to_string(), endpoint.to_string()),
            ("ReturnSubscriptionArn".to_string(), "true".to_string()),
        ];
        for (i, (key, value)) in attributes.iter().enumerate() {
            params.push((format!("Attributes.entry.{}.key", i + 1), key.to_string()));
            params.push((
                format!("Attributes.entry.{}.value", i + 1),
                value.to_string(),
            ));
        }
        let xml = self.sns_call("Subscribe", topic_arn, &params).await?;
        let mut arn = String::new();
        crate::xml::walk(&xml, &mut |path, value| {
            if path.ends_with("/SubscriptionArn") {
                arn = value.to_string();
            }
        })
        .map_err(|e| Error::new("Subscribe", topic_arn, e))?;
        Ok(arn)
    }

    /// Every subscription of a topic (`ListSubscriptionsByTopic`, every page).
    pub async fn sns_subscriptions(&self, topic_arn: &str) -> Result<Vec<Subscription>> {
        let mut subscriptions = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("TopicArn".to_string(), topic_arn.to_string())];
            if let Some(token) = &token {
                params.push(("NextToken".to_string(), token.clone()));
            }
            let xml = self
                .sns_call("ListSubscriptionsByTopic", topic_arn, &params)
                .await?;
            let mut next = None;
            let mut item = (String::new(), String::new(), String::new());
            crate::xml::read(&xml, &mut |entry| match entry {
                crate::xml::Item::Text(path, value) => {
                    match path.rsplit_once("/Subscriptions/member/").map(|(_, f)| f) {
                        Some("SubscriptionArn") => item.0 = value.to_string(),
                        Some("Protocol") => item.1 = value.to_string(),
                        Some("Endpoint") => item.2 = value.to_string(),
                        _ if path.ends_with("Result/NextToken") => next = Some(value.to_string()),
                        _ => {}
                    }
                }
                crate::xml::Item::End(path) if path.ends_with("/Subscriptions/member") => {
                    let (arn, protocol, endpoint) = std::mem::take(&mut item);
                    subscriptions.push(Subscription {
                        arn,
                        protocol,
                        endpoint,
                    });
                }
                crate::xml::Item::End(_) => {}
            })
            .map_err(|e| Error::new("ListSubscriptionsByTopic", topic_arn, e))?;
            match next {
                Some(next) if token.as_ref() != Some(&next) => token = Some(next),
                _ => break,
            }
        }
        Ok(subscriptions)
    }

    /// A subscription's attributes (`GetSubscriptionAttributes`): (name, value).
    pub async fn sns_subscription_attributes(
        &self,
        subscription_arn: &str,
    ) -> Result<Vec<(String, String)>> {
        let params = [("SubscriptionArn".to_string(), subscription_arn.to_string())];
        let xml = self
            .sns_call("GetSubscriptionAttributes", subscription_arn, &params)
            .await?;
        let mut attributes = Vec::new();
        let mut key = String::new();
        crate::xml::walk(&xml, &mut |path, value| {
            if path.ends_with("/Attributes/entry/key") {
                key = value.to_string();
            } else if path.ends_with("/Attributes/entry/value") {
                attributes.push((std::mem::take(&mut key), value.to_string()));
            }
        })
        .map_err(|e| Error::new("GetSubscriptionAttributes", subscription_arn, e))?;
        Ok(attributes)
    }

    /// Removes a subscription (`Unsubscribe`).
    pub async fn sns_unsubscribe(&self, subscription_arn: &str) -> Result<()> {
        let params = [("SubscriptionArn".to_string(), subscription_arn.to_string())];
        self.sns_call("Unsubscribe", subscription_arn, &params)
            .await
            .map(|_| ())
    }

    async fn sns_call(
        &self,
        action: &str,
        arn: &str,
        params: &[(String, String)],
    ) -> Result<String> {
        let region = match arn_region(arn) {
            Some(region) => region.to_string(),
            None => self.need_region(action, arn)?,
        };
        self.query("sns", &region, VERSION, action, params, arn)
            .await
    }
}
