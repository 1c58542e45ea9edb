//! Secret redaction: secrets typed into shells (a password on a command line, a token in an
//! environment assignment, a key pasted in) are replaced before anything is stored or published,
//! so the audit trail does not become a leak of its own.
//!
//! Each secret becomes `[REDACTED:<kind>:<token>]`, where the token is the first 12 hex digits
//! of HMAC-SHA256(key, secret): the same secret gives the same token everywhere (so a leaked
//! password can still be followed across sessions), and without the key the token says nothing
//! about the secret. The key comes from `AUDITQ_REDACTION_KEY`, else from `_auditq/redaction.key`
//! beside the lake (made on first use).
//!
//! Redacted: command lines (`commands.cmd`), host log lines and their commands
//! (`host_events.cmd`, `raw`), CloudTrail request/response/additional JSON, and rejected
//! records' excerpts. CloudTrail's `access_key_id` column is kept: AWS logs it to say which key
//! was used, and it is not a secret by itself.

use regex::Regex;
use sha2::{Digest, Sha256};

/// One kind of secret: a pattern and which group is the secret (0: the whole match).
#[derive(Debug, Clone)]
pub struct SecretPattern {
    /// Short name, shown in the token (`password-flag`).
    pub kind: String,
    /// The pattern.
    pub regex: Regex,
    /// The capture group holding the secret.
    pub group: usize,
}

/// The built-in patterns.
pub fn default_patterns() -> Vec<SecretPattern> {
    let patterns: [(&str, &str, usize); 9] = [
        (
            "private-key",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            0,
        ),
        (
            "aws-secret-key",
            r#"(?i)(?:aws_secret_access_key|secret_access_key|secretaccesskey|--secret-access-key)["']?\s*[=: ]\s*["']?([A-Za-z0-9/+]{40})"#,
            1,
        ),
        ("aws-access-key-id", r"\b((?:AKIA|ASIA)[A-Z0-9]{16})\b", 1),
        (
            "authorization",
            r"(?i)\bauthorization:\s*(?:bearer\s+|basic\s+|token\s+)?([^\s'\x22]+)",
            1,
        ),
        (
            "password-flag",
            r#"(?:^|\s)--?(?:password|passwd|pass)[= ]["']?([^\s'"]+)"#,
            1,
        ),
        (
            "password-flag",
            r#"\b(?:mysql|mysqldump|mariadb)\b[^|;&]*?\s-p["']?([^\s'"-][^\s'"]*)"#,
            1,
        ),
        ("password-flag", r#"\bsshpass\s+-p\s*["']?([^\s'"]+)"#, 1),
        (
            "assignment",
            r#"(?i)\b[A-Z0-9_]*(?:PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|PRIVATE_KEY)[A-Z0-9_]*=["']?([^\s'"]+)"#,
            1,
        ),
        (
            "url-password",
            r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:([^\s/@]+)@",
            1,
        ),
    ];
    patterns
        .into_iter()
        .filter_map(|(kind, pattern, group)| {
            Regex::new(pattern).ok().map(|regex| SecretPattern {
                kind: kind.to_string(),
                regex,
                group,
            })
        })
        .collect()
}

/// Replaces secrets with keyed tokens.
#[derive(Clone)]
pub struct Redactor {
    key: Vec<u8>,
    patterns: Vec<SecretPattern>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor with `key` and the built-in patterns.
    pub fn new(key: Vec<u8>) -> Self {
        Self {
            key,
            patterns: default_patterns(),
        }
    }

    /// Adds a pattern (`NAME=REGEX`; the first capture group is the secret, or the whole match
    /// when there is none).
    pub fn with_pattern(mut self, spec: &str) -> Result<Self, String> {
        let (kind, pattern) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: give NAME=REGEX"))?;
        let regex = Regex::new(pattern).map_err(|e| format!("{kind}: {e}"))?;
        let group = usize::from(regex.captures_len() > 1);
        self.patterns.push(SecretPattern {
            kind: kind.to_string(),
            regex,
            group,
        });
        Ok(self)
    }

    /// The token a secret becomes.
    pub fn token(&self, kind: &str, secret: &str) -> String {
        let mac = hmac_sha256(&self.key, secret.as_bytes());
        format!("[REDACTED:{kind}:{}]", auditq_model::hex(&mac[..6]))
    }

    /// Text with every secret replaced; returns how many were.
    pub fn redact(&self, text: &str) -> (String, usize) {
        let mut out = text.to_string();
        let mut count = 0;
        for pattern in &self.patterns {
            if !pattern.regex.is_match(&out) {
                continue;
            }
            let mut result = String::with_capacity(out.len());
            let mut last = 0;
            for caps in pattern.regex.captures_iter(&out) {
                let Some(secret) = caps.get(pattern.group) else {
                    continue;
                };
                if secret.as_str().starts_with("[REDACTED:") || secret.as_str().is_empty() {
                    continue;
                }
                result.push_str(&out[last..secret.start()]);
                result.push_str(&self.token(&pattern.kind, secret.as_str()));
                last = secret.end();
                count += 1;
            }
            result.push_str(&out[last..]);
            out = result;
        }
        (out, count)
    }

    /// Redacts a field in place; returns how many secrets it held.
    pub fn field(&self, text: &mut String) -> usize {
        let (redacted, count) = self.redact(text);
        if count > 0 {
            *text = redacted;
        }
        count
    }

    /// Redacts an optional field in place.
    pub fn optional(&self, text: &mut Option<String>) -> usize {
        text.as_mut().map_or(0, |t| self.field(t))
    }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            auditq_model::hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn every_kind_is_redacted_and_equal_secrets_give_equal_tokens() {
        let r = Redactor::new(b"test-key".to_vec());
        let cases = [
            ("mysql -u root -pS3cretPass -e 'select 1'", "S3cretPass"),
            ("mysql --password=S3cretPass db", "S3cretPass"),
            ("sshpass -p hunter2 ssh admin@10.0.0.5", "hunter2"),
            ("DB_PASSWORD=correct-horse ./migrate.sh", "correct-horse"),
            (
                "export GITHUB_TOKEN=ghp_abcdefghijklmnop1234",
                "ghp_abcdefghijklmnop1234",
            ),
            (
                "curl -H 'Authorization: Bearer eyJhbGciOi.payload.sig' https://api",
                "eyJhbGciOi.payload.sig",
            ),
            (
                "aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE",
                "AKIAIOSFODNN7EXAMPLE",
            ),
            (
                "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            (
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY aws s3 ls",
                "wJalrXUtnFEMI",
            ),
            ("psql postgres://app:pa55word@db:5432/app", "pa55word"),
            (
                "echo '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----' > k",
                "b3BlbnNzaC1rZXktdjEAAAAA",
            ),
        ];
        for (line, secret) in cases {
            let (out, count) = r.redact(line);
            assert!(count >= 1, "{line}: nothing redacted");
            assert!(!out.contains(secret), "{line} -> {out}");
            assert!(out.contains("[REDACTED:"), "{out}");
        }
        let (a, _) = r.redact("mysql -pS3cretPass");
        let (b, _) = r.redact("DB_PASSWORD=S3cretPass make");
        let token = |s: &str| {
            s.split("[REDACTED:")
                .nth(1)
                .and_then(|t| t.split(':').nth(1))
                .map(|t| t.chars().take(12).collect::<String>())
        };
        assert_eq!(token(&a), token(&b), "{a} / {b}");
        let other = Redactor::new(b"another-key".to_vec());
        assert_ne!(r.token("x", "S3cretPass"), other.token("x", "S3cretPass"));
        for harmless in [
            "ls -la",
            "sudo systemctl restart nginx",
            "ps aux | grep -v grep",
            "mysql -u root -p",
            "git push --force",
        ] {
            assert_eq!(r.redact(harmless), (harmless.to_string(), 0), "{harmless}");
        }
        let custom = r
            .clone()
            .with_pattern(r"vault=vault token ([a-z0-9.]+)")
            .unwrap_or_else(|e| panic!("{e}"));
        let (out, n) = custom.redact("vault token s.abc123");
        assert_eq!(n, 1, "{out}");
        assert!(!out.contains("s.abc123"));
    }
}
