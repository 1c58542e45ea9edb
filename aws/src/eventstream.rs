//! The AWS event stream (`application/vnd.amazon.eventstream`): the framing of answers that
//! arrive as a series of messages, as `StartLiveTail`'s.
//!
//! A message is a prelude (total length, headers length, both big-endian `u32`, and the CRC-32
//! of those 8 bytes), headers (name length `u8`, name, value type `u8`, value), the payload,
//! and the CRC-32 of everything before it. `:message-type` says whether it is an `event` (then
//! `:event-type` names it), an `exception` (`:exception-type`) or an `error` (`:error-code`,
//! `:error-message`).

use crate::{Error, Result};

/// The smallest message: prelude and message CRC, no headers, no payload.
const MINIMUM: usize = 16;
/// The largest message the format allows (16 MiB of payload, 128 KiB of headers).
const MAXIMUM: usize = 16 * 1024 * 1024 + 128 * 1024 + MINIMUM;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The headers, each value as text (numbers in decimal, bytes and UUIDs in hex).
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The message at the start of `buffer` and its length, or `None` while it is incomplete.
pub fn decode(buffer: &[u8]) -> std::result::Result<Option<(Message, usize)>, String> {
    if buffer.len() < 12 {
        return Ok(None);
    }
    let word = |at: usize| {
        u32::from_be_bytes([buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]])
    };
    let total = word(0) as usize;
    let headers_length = word(4) as usize;
    if crc32fast::hash(&buffer[..8]) != word(8) {
        return Err("the prelude's CRC does not match".to_string());
    }
    if !(MINIMUM..=MAXIMUM).contains(&total) || headers_length > total - MINIMUM {
        return Err(format!(
            "a message of {total} bytes with {headers_length} bytes of headers"
        ));
    }
    if buffer.len() < total {
        return Ok(None);
    }
    if crc32fast::hash(&buffer[..total - 4]) != word(total - 4) {
        return Err("the message's CRC does not match".to_string());
    }
    let headers = read_headers(&buffer[12..12 + headers_length])?;
    let payload = buffer[12 + headers_length..total - 4].to_vec();
    Ok(Some((Message { headers, payload }, total)))
}

fn read_headers(mut bytes: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let short = || "a header runs past its end".to_string();
    let take = |bytes: &mut &[u8], n: usize| -> std::result::Result<Vec<u8>, String> {
        if bytes.len() < n {
            return Err(short());
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head.to_vec())
    };
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name_length = take(&mut bytes, 1)?[0] as usize;
        let name = String::from_utf8_lossy(&take(&mut bytes, name_length)?).into_owned();
        let kind = take(&mut bytes, 1)?[0];
        let number = |raw: Vec<u8>| raw.iter().fold(0i64, |n, b| (n << 8) | i64::from(*b));
        let value = match kind {
            0 => "true".to_string(),
            1 => "false".to_string(),
            2 => (take(&mut bytes, 1)?[0] as i8).to_string(),
            3 => (number(take(&mut bytes, 2)?) as i16).to_string(),
            4 => (number(take(&mut bytes, 4)?) as i32).to_string(),
            5 | 8 => number(take(&mut bytes, 8)?).to_string(),
            6 | 7 => {
                let length = take(&mut bytes, 2)?;
                let length = u16::from_be_bytes([length[0], length[1]]) as usize;
                let raw = take(&mut bytes, length)?;
                if kind == 7 {
                    String::from_utf8_lossy(&raw).into_owned()
                } else {
                    raw.iter().map(|b| format!("{b:02x}")).collect()
                }
            }
            9 => take(&mut bytes, 16)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            other => return Err(format!("header {name:?} has an unknown value type {other}")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// The messages of an open answer, as they arrive.
#[derive(Debug)]
pub struct Reader {
    response: reqwest::Response,
    buffer: Vec<u8>,
    operation: String,
    resource: String,
}

impl Reader {
    pub(crate) fn new(response: reqwest::Response, operation: &str, resource: &str) -> Self {
        Reader {
            response,
            buffer: Vec::new(),
            operation: operation.to_string(),
            resource: resource.to_string(),
        }
    }

    /// The next event (`:event-type` and message); `None` when the service closed the stream.
    /// An exception or error message is the call's error.
    pub async fn next(&mut self) -> Result<Option<(String, Message)>> {
        loop {
            let fail = |message: String| Error {
                operation: self.operation.clone(),
                resource: self.resource.clone(),
                status: None,
                code: String::new(),
                message,
            };
            if let Some((message, length)) = decode(&self.buffer).map_err(fail)? {
                self.buffer.drain(..length);
                match message.header(":message-type") {
                    Some("exception") | Some("error") => {
                        let code = message
                            .header(":exception-type")
                            .or(message.header(":error-code"))
                            .unwrap_or_default()
                            .to_string();
                        let text = serde_json::from_slice::<serde_json::Value>(&message.payload)
                            .ok()
                            .and_then(|v| v["message"].as_str().map(str::to_string))
                            .or(message.header(":error-message").map(str::to_string))
                            .unwrap_or_else(|| {
                                String::from_utf8_lossy(&message.payload).into_owned()
                            });
                        return Err(Error { code, ..fail(text) });
                    }
                    _ => {
                        let kind = message
                            .header(":event-type")
                            .unwrap_or_default()
                            .to_string();
                        return Ok(Some((kind, message)));
                    }
                }
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|e| fail(crate::error_chain(&e)))?;
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None if self.buffer.is_empty() => return Ok(None),
                None => {
                    return Err(fail(format!(
                        "the stream ended inside a message ({} bytes)",
                        self.buffer.len()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as AWS frames one (string headers only).
    fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut head = Vec::new();
        for (name, value) in headers {
            head.push(name.len() as u8);
            head.extend_from_slice(name.as_bytes());
            head.push(7);
            head.extend_from_slice(&(value.len() as u16).to_be_bytes());
            head.extend_from_slice(value.as_bytes());
        }
        let total = (16 + head.len() + payload.len()) as u32;
        let mut out = total.to_be_bytes().to_vec();
        out.extend_from_slice(&(head.len() as u32).to_be_bytes());
        let prelude = crc32fast::hash(&out);
        out.extend_from_slice(&prelude.to_be_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(payload);
        let whole = crc32fast::hash(&out);
        out.extend_from_slice(&whole.to_be_bytes());
        out
    }

    #[test]
    fn messages_are_read_whole_and_only_when_complete() {
        let payload = br#"{"sessionResults":[{"logStreamName":"alice-0a1b"}]}"#;
        let frame = encode(
            &[(":message-type", "event"), (":event-type", "sessionUpdate")],
            payload,
        );
        let mut two = frame.clone();
        two.extend_from_slice(&encode(&[(":message-type", "event")], b""));
        for cut in [0, 5, 12, frame.len() - 1] {
            assert_eq!(decode(&frame[..cut]), Ok(None), "cut at {cut}");
        }
        let (message, length) = decode(&two)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a whole message"));
        assert_eq!(length, frame.len());
        assert_eq!(message.header(":event-type"), Some("sessionUpdate"));
        assert_eq!(message.payload, payload);
        let rest = decode(&two[length..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rest.map(|(m, l)| (m.payload.len(), l)), Some((0, 16 + 22)));
    }

    #[test]
    fn a_damaged_message_is_an_error_not_a_message() {
        let frame = encode(&[(":message-type", "event")], b"{}");
        let mut payload_flipped = frame.clone();
        let at = frame.len() - 5;
        payload_flipped[at] ^= 1;
        assert!(decode(&payload_flipped).is_err());
        let mut length_flipped = frame.clone();
        length_flipped[3] ^= 1;
        assert!(decode(&length_flipped).is_err());
        let mut header_cut = frame;
        // Claim more headers than there are: the prelude CRC is recomputed, the message's is not.
        header_cut[7] += 40;
        let crc = crc32fast::hash(&header_cut[..8]).to_be_bytes();
        header_cut[8..12].copy_from_slice(&crc);
        assert!(decode(&header_cut).is_err());
    }
}
