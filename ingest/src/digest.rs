//! Tamper evidence for the lake, in the spirit of CloudTrail's log file validation.
//!
//! Every commit auditq makes to a table gets a digest: the commit's Delta log file and every data
//! file it added, each with its size and SHA-256, the files it removed, and the SHA-256 of the
//! table's previous digest. The digest is signed with Ed25519 and stored beside the lake, at
//! `_auditq/digests/TABLE/VERSION.json`, with a conditional write (never overwritten). The chain
//! makes a deleted, replaced or reordered digest visible; the signature makes a re-written chain
//! visible to anyone holding the public key. [`verify`] checks all of it.
//!
//! A digest file is two lines: the digest as JSON (the signed bytes, exactly), then
//! `{"signature":"BASE64","key_id":"HEX"}`. The next digest chains to the SHA-256 of the whole
//! file.
//!
//! What this does not prove: that a commit made by someone holding the signing key, or a commit
//! made while the lake was writable by an attacker *and* then signed by auditq, was honest; nor
//! that events which never reached auditq happened. A commit whose digest could not be written
//! (the process stopped in between) is reported by [`verify`] as a commit without a digest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use auditq_model::{Table, hex};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{IngestError, Result};

/// The `format` of the digests this version writes.
pub const FORMAT: &str = "auditq-digest/1";

/// The environment variable holding the signing key (base64 of a 32-byte Ed25519 seed).
pub const KEY_VARIABLE: &str = "AUDITQ_SIGNING_KEY";

/// An Ed25519 signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from its text: base64 of the 32-byte seed.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let seed = STANDARD
            .decode(text.trim())
            .map_err(|e| format!("a signing key is base64 of 32 bytes: {e}"))?;
        if seed.len() != 32 {
            return Err(format!(
                "a signing key is base64 of 32 bytes, this is {} bytes",
                seed.len()
            ));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| format!("not an Ed25519 seed: {e}"))?;
        Ok(Self { pair })
    }

    /// A new random key, and its text (to store).
    pub fn generate() -> std::result::Result<(Self, String), String> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| "the system's random source failed".to_string())?;
        let text = STANDARD.encode(seed);
        Ok((Self::parse(&text)?, text))
    }

    /// The public key, base64 (what [`verify`] is given to trust).
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// A short name of the key: the first 8 bytes of the public key's SHA-256, in hex.
    pub fn key_id(&self) -> String {
        key_id(self.pair.public_key().as_ref())
    }

    /// The signature of `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.pair.sign(message).as_ref())
    }
}

/// Whether `signature` (base64) is a signature of `message` by one of `public_keys` (base64).
pub fn signed_by(public_keys: &[String], message: &[u8], signature: &str) -> bool {
    let Ok(signature) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    public_keys
        .iter()
        .filter_map(|k| STANDARD.decode(k).ok())
        .any(|key| {
            UnparsedPublicKey::new(&ED25519, &key)
                .verify(message, &signature)
                .is_ok()
        })
}

/// The key id of a public key given as base64 (see [`SigningKey::key_id`]).
pub fn key_id_of(public_key: &str) -> Option<String> {
    STANDARD.decode(public_key.trim()).ok().map(|k| key_id(&k))
}

fn key_id(public: &[u8]) -> String {
    hex(&Sha256::digest(public)[..8])
}

/// The key file used when none is configured: `$AUDITQ_CONFIG_DIR/signing.key`, else
/// `$XDG_CONFIG_HOME/auditq/signing.key`, else `$HOME/.config/auditq/signing.key`, with the
/// variables as `var` looks them up (the binaries pass the environment's). It is kept away from
/// the lake on purpose: whoever can rewrite the lake must not also hold its key.
pub fn default_key_file(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let var = |name| var(name).filter(|v| !v.is_empty());
    var("AUDITQ_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("auditq")))
        .or_else(|| var("HOME").map(|d| PathBuf::from(d).join(".config/auditq")))
        .map(|dir| dir.join("signing.key"))
}

/// Where the signing key may come from, in order; the binaries fill it from their flags,
/// configuration and environment.
#[derive(Debug, Clone, Default)]
pub struct KeySources {
    /// A file holding the key (`--signing-key`, `signing_key_file`).
    pub file: Option<PathBuf>,
    /// The key itself ([`KEY_VARIABLE`]).
    pub inline: Option<String>,
    /// The default key file ([`default_key_file`]).
    pub default_file: Option<PathBuf>,
}

/// Where a signing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding it (configured: `--signing-key`, `signing_key_file`).
    File(PathBuf),
    /// [`KEY_VARIABLE`].
    Environment,
    /// [`default_key_file`], made on first use.
    Default(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "{}", path.display()),
            KeySource::Environment => write!(f, "${KEY_VARIABLE}"),
            KeySource::Default(path) => write!(f, "{} (default)", path.display()),
        }
    }
}

/// Reads the signing key: the configured file, else the key given inline ([`KEY_VARIABLE`]),
/// else the default key file, made (readable by its owner only) when `create` and it does not
/// exist yet. `None` when there is no key and none could be made (digests are then written
/// unsigned, and [`verify`] reports them).
pub fn load_signing_key(
    sources: &KeySources,
    create: bool,
) -> Result<Option<(SigningKey, KeySource)>> {
    let bad = |location: String, message: String| IngestError::Digest { location, message };
    if let Some(path) = &sources.file {
        let text = std::fs::read_to_string(path).map_err(|source| IngestError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let key = SigningKey::parse(&text).map_err(|m| bad(path.display().to_string(), m))?;
        return Ok(Some((key, KeySource::File(path.to_path_buf()))));
    }
    if let Some(text) = sources.inline.as_ref().filter(|t| !t.is_empty()) {
        let key = SigningKey::parse(text).map_err(|m| bad(format!("${KEY_VARIABLE}"), m))?;
        return Ok(Some((key, KeySource::Environment)));
    }
    let Some(path) = sources.default_file.clone() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = SigningKey::parse(&text).map_err(|m| bad(path.display().to_string(), m))?;
            return Ok(Some((key, KeySource::Default(path))));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(IngestError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    }
    let (key, text) = SigningKey::generate().map_err(|m| bad(path.display().to_string(), m))?;
    let made = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| write_private(&path, &text));
    match made {
        Ok(()) => Ok(Some((key, KeySource::Default(path)))),
        // Another process made it first: theirs is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_signing_key(
            &KeySources {
                file: None,
                inline: None,
                default_file: sources.default_file.clone(),
            },
            false,
        ),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no signing key: digests are written unsigned");
            Ok(None)
        }
    }
}

/// Writes a file readable by its owner only, whole or not at all: written aside, then linked
/// into place, so a process starting at the same moment finds either no key or the whole key
/// (`AlreadyExists` when another process made it first).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let aside = path.with_extension(format!("{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&aside).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    linked
}

/// A file a digest lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Its path from the lake's root (`commands/date=2026-10-05/part-....parquet`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// The digest a commit's digest chains to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// Its table version.
    pub version: u64,
    /// The SHA-256 of its whole file (digest and signature line), hex.
    pub sha256: String,
}

/// One commit's digest (the first line of its file; the signed bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// [`FORMAT`].
    pub format: String,
    /// The table.
    pub table: String,
    /// The table version the commit made.
    pub version: u64,
    /// When the digest was made (RFC 3339).
    pub time: String,
    /// The commit's operation (`WRITE`, `OPTIMIZE`, `VACUUM START`, ...).
    pub operation: Option<String>,
    /// The commit's Delta log file.
    pub commit: FileDigest,
    /// The data files it added.
    pub added: Vec<FileDigest>,
    /// The data files it removed (they may then be deleted by VACUUM).
    pub removed: Vec<String>,
    /// The table's previous digest; `None` for its first.
    pub previous: Option<Previous>,
    /// The public key that signed it (base64); `None` when unsigned.
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignatureLine {
    signature: Option<String>,
    key_id: Option<String>,
}

/// Where the digests live and how they are signed: one per lake.
#[derive(Debug, Clone)]
pub struct Digests {
    store: std::sync::Arc<dyn ObjectStore>,
    root: StorePath,
    location: String,
    key: Option<std::sync::Arc<SigningKey>>,
}

fn join(root: &StorePath, rest: &str) -> StorePath {
    let root = root.as_ref();
    if root.is_empty() {
        StorePath::from_iter(rest.split('/').filter(|p| !p.is_empty()))
    } else {
        StorePath::from_iter(
            root.split('/')
                .chain(rest.split('/'))
                .filter(|p| !p.is_empty()),
        )
    }
}

fn relative(root: &StorePath, path: &StorePath) -> String {
    let root = root.as_ref();
    let full = path.as_ref();
    if root.is_empty() {
        full.to_string()
    } else {
        full.strip_prefix(root)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(full)
            .to_string()
    }
}

/// How long a digest of the previous commit is waited for (rounds of 50 ms), and how recent
/// that commit must be for a writer to be still recording it.
const DIGEST_WAIT_ROUNDS: usize = 60;
const DIGEST_WAIT_SECONDS: i64 = 30;

fn log_name(version: u64) -> String {
    format!("{version:020}.json")
}

/// A file's size and SHA-256, read as a stream.
async fn hash_object(
    store: &dyn ObjectStore,
    path: &StorePath,
) -> object_store::Result<(u64, String)> {
    let mut stream = store.get(path).await?.into_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((size, hex(&hasher.finalize())))
}

impl Digests {
    /// The digests of the lake whose object store and root are given; signed with `key`.
    pub fn new(
        store: std::sync::Arc<dyn ObjectStore>,
        root: StorePath,
        location: &str,
        key: Option<std::sync::Arc<SigningKey>>,
    ) -> Self {
        Self {
            store,
            root,
            location: location.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn digest_path(&self, table: Table, version: u64) -> StorePath {
        join(
            &self.root,
            &format!("_auditq/digests/{}/{}", table.name(), log_name(version)),
        )
    }

    fn error(&self, what: &str, message: impl std::fmt::Display) -> IngestError {
        IngestError::Digest {
            location: format!("{}/{what}", self.location),
            message: message.to_string(),
        }
    }

    /// Writes the digest of each of the table's commits `from..=to` that has none yet.
    pub async fn record(&self, table: Table, from: u64, to: u64) -> Result<()> {
        for version in from..=to {
            self.record_one(table, version).await?;
        }
        Ok(())
    }

    async fn record_one(&self, table: Table, version: u64) -> Result<()> {
        let target = self.digest_path(table, version);
        match self.store.head(&target).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error(target.as_ref(), e)),
        }
        let commit_rel = format!("{}/_delta_log/{}", table.name(), log_name(version));
        let commit_path = join(&self.root, &commit_rel);
        let commit_bytes = self
            .store
            .get(&commit_path)
            .await
            .map_err(|e| self.error(&commit_rel, e))?
            .bytes()
            .await
            .map_err(|e| self.error(&commit_rel, e))?;
        let mut operation = None;
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for line in commit_bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let action: serde_json::Value = serde_json::from_slice(line)
                .map_err(|e| self.error(&commit_rel, format!("unreadable action: {e}")))?;
            if let Some(op) = action
                .pointer("/commitInfo/operation")
                .and_then(|v| v.as_str())
            {
                operation = Some(op.to_string());
            }
            for (kind, list) in [("add", &mut added), ("remove", &mut removed)] {
                if let Some(path) = action
                    .pointer(&format!("/{kind}/path"))
                    .and_then(|v| v.as_str())
                {
                    let decoded =
                        StorePath::from_url_path(path).map_err(|e| self.error(&commit_rel, e))?;
                    list.push(format!("{}/{}", table.name(), decoded.as_ref()));
                }
            }
        }
        let mut files = Vec::with_capacity(added.len());
        for rel in added {
            let (size, sha256) = hash_object(self.store.as_ref(), &join(&self.root, &rel))
                .await
                .map_err(|e| self.error(&rel, e))?;
            files.push(FileDigest {
                path: rel,
                size,
                sha256,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        removed.sort();
        let previous = self.previous(table, version).await?;
        let digest = Digest {
            format: FORMAT.to_string(),
            table: table.name().to_string(),
            version,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            operation,
            commit: FileDigest {
                path: commit_rel,
                size: commit_bytes.len() as u64,
                sha256: hex(&Sha256::digest(&commit_bytes)),
            },
            added: files,
            removed,
            previous,
            public_key: self.key.as_ref().map(|k| k.public_key()),
        };
        let body = serde_json::to_vec(&digest).map_err(|e| self.error(target.as_ref(), e))?;
        let line = SignatureLine {
            signature: self.key.as_ref().map(|k| k.sign(&body)),
            key_id: self.key.as_ref().map(|k| k.key_id()),
        };
        let mut file = body;
        file.push(b'\n');
        file.extend(serde_json::to_vec(&line).map_err(|e| self.error(target.as_ref(), e))?);
        file.push(b'\n');
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&target, file.into(), create).await {
            // Another writer recorded this commit first.
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(self.error(target.as_ref(), e)),
        }
    }

    /// The newest digest of `table` before `version`: its version and the SHA-256 of its file.
    async fn previous(&self, table: Table, version: u64) -> Result<Option<Previous>> {
        if version == 0 {
            return Ok(None);
        }
        let hash_of = |bytes: &[u8]| hex(&Sha256::digest(bytes));
        self.await_digest(table, version - 1).await?;
        match self.store.get(&self.digest_path(table, version - 1)).await {
            Ok(found) => {
                let bytes = found
                    .bytes()
                    .await
                    .map_err(|e| self.error("_auditq/digests", e))?;
                return Ok(Some(Previous {
                    version: version - 1,
                    sha256: hash_of(&bytes),
                }));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("_auditq/digests", e)),
        }
        // A gap (a commit without a digest): chain to the newest digest there is.
        let listed = self.list_digests(table).await?;
        let Some((&newest, path)) = listed.range(..version).next_back() else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get(path)
            .await
            .map_err(|e| self.error(path.as_ref(), e))?
            .bytes()
            .await
            .map_err(|e| self.error(path.as_ref(), e))?;
        Ok(Some(Previous {
            version: newest,
            sha256: hash_of(&bytes),
        }))
    }

    /// When the commit before ours has no digest yet, waits a moment for it: another writer
    /// that committed just before us writes it right after its commit, and ours must chain to
    /// it, not past it. A commit nobody records (one forged into the log) is waited for in
    /// vain, then chained past, and `verify` names it.
    async fn await_digest(&self, table: Table, version: u64) -> Result<()> {
        let digest = self.digest_path(table, version);
        let commit = join(
            &self.root,
            &format!("{}/_delta_log/{}", table.name(), log_name(version)),
        );
        for _ in 0..DIGEST_WAIT_ROUNDS {
            match self.store.head(&digest).await {
                Ok(_) => return Ok(()),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("_auditq/digests", e)),
            }
            match self.store.head(&commit).await {
                Ok(meta)
                    if chrono::Utc::now() - meta.last_modified
                        < chrono::Duration::seconds(DIGEST_WAIT_SECONDS) => {}
                // No such commit, or one too old for a writer to be recording it now.
                _ => return Ok(()),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Every digest file of `table`: its path from the lake's root and its bytes, oldest first.
    pub async fn files(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for path in self.list_digests(table).await?.into_values() {
            let rel = relative(&self.root, &path);
            let bytes = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.error(&rel, e))?
                .bytes()
                .await
                .map_err(|e| self.error(&rel, e))?;
            out.push((rel, bytes.to_vec()));
        }
        Ok(out)
    }

    async fn list_digests(&self, table: Table) -> Result<BTreeMap<u64, StorePath>> {
        let prefix = join(&self.root, &format!("_auditq/digests/{}", table.name()));
        let mut found = BTreeMap::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| self.error(prefix.as_ref(), e))?
        {
            if let Some(version) = meta
                .location
                .filename()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                found.insert(version, meta.location);
            }
        }
        Ok(found)
    }
}

/// What [`verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// A file's content differs from its digest.
    Changed,
    /// A file a digest lists (and no later digest removed) is gone.
    Removed,
    /// A file or commit no digest lists.
    Added,
    /// Digests out of their order: a digest under another version's name, or a chain link that
    /// points at the wrong digest.
    Reordered,
    /// A digest whose signature does not verify, is missing, or is by another key.
    Signature,
}

/// One thing [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of thing.
    pub finding: Finding,
    /// The file concerned, from the lake's root.
    pub path: String,
    /// What exactly, in words.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.finding {
            Finding::Changed => "CHANGED",
            Finding::Removed => "REMOVED",
            Finding::Added => "ADDED",
            Finding::Reordered => "REORDERED",
            Finding::Signature => "SIGNATURE",
        };
        write!(f, "{kind:<9} {}: {}", self.path, self.detail)
    }
}

/// What [`verify`] checked, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    /// The table.
    pub table: String,
    /// Digests read.
    pub digests: usize,
    /// Signatures that verified.
    pub signed: usize,
    /// Data files that should be there (listed, not removed since).
    pub files: usize,
    /// Of those, files whose SHA-256 was computed (with `--data`; otherwise sizes only).
    pub hashed: usize,
    /// Commits in the Delta log.
    pub commits: usize,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The public keys the signatures were checked against (base64): a digest signed by any of
    /// them is good (several, while a key is rotated).
    pub public_keys: Vec<String>,
    /// Where they came from.
    pub key_from: String,
    /// Per table.
    pub tables: Vec<TableCheck>,
    /// Everything found wrong; empty when the lake is as its digests say.
    pub problems: Vec<Problem>,
    /// Data files that neither a digest nor the Delta log knows (a write that failed before
    /// its commit leaves them; no reader sees them; VACUUM deletes them). Not a problem.
    pub unreferenced: Vec<String>,
}

struct ReadDigest {
    /// Its file, from the lake's root.
    file: String,
    digest: Digest,
    body: Vec<u8>,
    signature: Option<String>,
    sha256: String,
}

fn read_digest(bytes: &[u8], file: String) -> std::result::Result<ReadDigest, String> {
    let mut lines = bytes.splitn(2, |b| *b == b'\n');
    let body = lines.next().unwrap_or_default().to_vec();
    let digest: Digest = serde_json::from_slice(&body).map_err(|e| format!("not a digest: {e}"))?;
    if digest.format != FORMAT {
        return Err(format!("format {:?}, not {FORMAT:?}", digest.format));
    }
    let signature = match lines.next().map(|l| l.trim_ascii()) {
        Some(line) if !line.is_empty() => {
            let line: SignatureLine = serde_json::from_slice(line)
                .map_err(|e| format!("unreadable signature line: {e}"))?;
            line.signature
        }
        _ => None,
    };
    Ok(ReadDigest {
        file,
        digest,
        body,
        signature,
        sha256: hex(&Sha256::digest(bytes)),
    })
}

/// Checks the lake against its digests: every table's chain, every signature (against the
/// `trusted` public keys, base64, and where they came from; else the key in the first signed
/// digest, which the result says),
/// every commit file, and that every data file a digest lists is there with its size (and, with
/// `hash_data`, its SHA-256), that no data file or commit is there that no digest lists, and
/// that the Delta log's live files are the ones the digests add up to.
pub async fn verify(
    lake: &crate::Lake,
    trusted: &[String],
    key_from: &str,
    hash_data: bool,
) -> Result<Verification> {
    let (store, root) = lake.object_store()?;
    let mut result = Verification {
        public_keys: trusted.to_vec(),
        key_from: key_from.to_string(),
        ..Verification::default()
    };
    let digests = Digests::new(store.clone(), root.clone(), lake.location(), None);
    for table in Table::ALL {
        let check = verify_table(lake, &digests, table, hash_data, &mut result).await?;
        if let Some(check) = check {
            result.tables.push(check);
        }
    }
    Ok(result)
}

async fn verify_table(
    lake: &crate::Lake,
    digests: &Digests,
    table: Table,
    hash_data: bool,
    result: &mut Verification,
) -> Result<Option<TableCheck>> {
    let store = digests.store.as_ref();
    let root = &digests.root;
    let mut out: Vec<Problem> = Vec::new();
    // Everything stored under the table: commits, checkpoints and data files.
    let mut commits: BTreeMap<u64, StorePath> = BTreeMap::new();
    let mut newest_checkpoint: Option<u64> = None;
    let mut data: BTreeMap<String, u64> = BTreeMap::new();
    let prefix = join(root, table.name());
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| digests.error(table.name(), e))?
    {
        let rel = relative(root, &meta.location);
        let name = meta.location.filename().unwrap_or_default();
        if rel.contains("/_delta_log/") {
            if let Some(v) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<u64>().ok())
            {
                commits.insert(v, meta.location.clone());
            } else if let Some(v) = name
                .split('.')
                .next()
                .filter(|_| name.contains(".checkpoint"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                newest_checkpoint = newest_checkpoint.max(Some(v));
            }
        } else {
            data.insert(rel, meta.size);
        }
    }
    let listed = digests.list_digests(table).await?;
    if commits.is_empty() && listed.is_empty() && data.is_empty() {
        return Ok(None);
    }
    let mut check = TableCheck {
        table: table.name().to_string(),
        digests: listed.len(),
        commits: commits.len(),
        ..TableCheck::default()
    };

    let mut files = Vec::with_capacity(listed.len());
    for (&version, path) in &listed {
        let rel = relative(root, path);
        let bytes = store
            .get(path)
            .await
            .map_err(|e| digests.error(&rel, e))?
            .bytes()
            .await
            .map_err(|e| digests.error(&rel, e))?;
        files.push((version, rel, bytes.to_vec()));
    }
    let read = read_chain(table.name(), files, &mut out);
    check_chain(
        table.name(),
        &read,
        &mut result.public_keys,
        &mut result.key_from,
        |version| relative(root, &digests.digest_path(table, version)),
        &mut check,
        &mut out,
    );

    // Commits: each has a digest, and is as its digest says.
    for (&version, path) in &commits {
        let rel = relative(root, path);
        let Some(found) = read.get(&version) else {
            note(
                &mut out,
                Finding::Added,
                &rel,
                format!(
                    "commit version {version} has no digest (not written by auditq, or the writer stopped before its digest)"
                ),
            );
            continue;
        };
        let (size, sha256) = hash_object(store, path)
            .await
            .map_err(|e| digests.error(&rel, e))?;
        if sha256 != found.digest.commit.sha256 {
            note(
                &mut out,
                Finding::Changed,
                &rel,
                format!(
                    "SHA-256 {} ({size} bytes), digest says {} ({} bytes)",
                    &sha256[..16],
                    &found.digest.commit.sha256[..16],
                    found.digest.commit.size
                ),
            );
        }
    }
    for (&version, found) in &read {
        if !commits.contains_key(&version) && newest_checkpoint.is_none_or(|c| version > c) {
            note(
                &mut out,
                Finding::Removed,
                &found.digest.commit.path,
                format!("commit version {version} is gone from the Delta log"),
            );
        }
    }

    // Data files: the digests add up to the live set; what is stored must match it.
    let (live, ever) = live_files(&read);
    check.files = live.len();
    for (path, (file, version)) in &live {
        match data.get(path) {
            None => note(
                &mut out,
                Finding::Removed,
                path,
                format!("listed by the digest of version {version}, and never removed by a commit"),
            ),
            Some(&size) if size != file.size => note(
                &mut out,
                Finding::Changed,
                path,
                format!(
                    "{size} bytes, the digest of version {version} says {}",
                    file.size
                ),
            ),
            Some(_) if hash_data => {
                let (_, sha256) = hash_object(store, &join(root, path))
                    .await
                    .map_err(|e| digests.error(path, e))?;
                check.hashed += 1;
                if sha256 != file.sha256 {
                    note(
                        &mut out,
                        Finding::Changed,
                        path,
                        format!(
                            "SHA-256 {}, the digest of version {version} says {}",
                            &sha256[..16],
                            &file.sha256[..16]
                        ),
                    );
                }
            }
            Some(_) => {}
        }
    }
    // The Delta log's own view (checkpoints included) must be the digests' live set.
    let active = match lake.open(table).await {
        Ok(delta) if delta.version().is_some() => {
            let url = delta.table_url().clone();
            let forms = [
                url.to_string().trim_end_matches('/').to_string(),
                url.path().trim_end_matches('/').to_string(),
            ];
            let uris = delta
                .get_file_uris()
                .map_err(|e| digests.error(table.name(), e))?;
            let mut active = BTreeSet::new();
            for uri in uris {
                let tail = forms
                    .iter()
                    .find_map(|form| uri.strip_prefix(form.as_str()))
                    .unwrap_or(&uri)
                    .trim_start_matches('/');
                let decoded =
                    StorePath::from_url_path(tail).map_or(tail.to_string(), |p| p.to_string());
                active.insert(format!("{}/{decoded}", table.name()));
            }
            Some(active)
        }
        Ok(_) => Some(BTreeSet::new()),
        Err(_) => None,
    };
    for path in data.keys().filter(|p| !ever.contains(*p)) {
        match &active {
            // Left by a write that failed before its commit, or put there by hand: no reader
            // of the table sees it. Named, not a problem (VACUUM deletes such files).
            Some(active) if !active.contains(path) => result.unreferenced.push(path.clone()),
            Some(_) => note(
                &mut out,
                Finding::Added,
                path,
                "the Delta log reads a data file no digest lists".to_string(),
            ),
            None => note(
                &mut out,
                Finding::Added,
                path,
                "a data file no digest lists (the Delta log cannot be read to tell whether it is read)"
                    .to_string(),
            ),
        }
    }
    if let Some(active) = &active {
        for path in active.difference(&live.keys().cloned().collect()) {
            if ever.contains(path) {
                note(
                    &mut out,
                    Finding::Added,
                    path,
                    "the Delta log reads this file again after a digest removed it".to_string(),
                );
            } else if !data.contains_key(path) {
                note(
                    &mut out,
                    Finding::Added,
                    path,
                    "the Delta log reads a file no digest lists".to_string(),
                );
            }
        }
        for path in live.keys() {
            if !active.contains(path) && data.contains_key(path) {
                note(
                    &mut out,
                    Finding::Removed,
                    path,
                    "no longer read by the Delta log, though no digest removed it".to_string(),
                );
            }
        }
    }
    result.problems.extend(out);
    Ok(Some(check))
}

/// Reads a table's digest files (`(version named, path from the lake's root, bytes)`), keyed by
/// the version each says it is of, so two swapped files are reported as swapped and the rest
/// checks as it should.
fn read_chain(
    table: &str,
    files: Vec<(u64, String, Vec<u8>)>,
    out: &mut Vec<Problem>,
) -> BTreeMap<u64, ReadDigest> {
    let mut read: BTreeMap<u64, ReadDigest> = BTreeMap::new();
    for (version, rel, bytes) in files {
        match read_digest(&bytes, rel.clone()) {
            Ok(found) => {
                if found.digest.version != version || found.digest.table != table {
                    note(
                        out,
                        Finding::Reordered,
                        &rel,
                        format!(
                            "this file holds the digest of {} version {}, not {table} version {version}",
                            found.digest.table, found.digest.version,
                        ),
                    );
                }
                if found.digest.table != table {
                    continue;
                }
                if let Some(other) = read.get(&found.digest.version) {
                    note(
                        out,
                        Finding::Reordered,
                        &rel,
                        format!(
                            "holds a second digest of version {} (the first is {})",
                            found.digest.version, other.file
                        ),
                    );
                    continue;
                }
                read.insert(found.digest.version, found);
            }
            Err(reason) => note(
                out,
                Finding::Changed,
                &rel,
                format!("digest unreadable: {reason}"),
            ),
        }
    }
    read
}

/// Checks a table's chain of digests: each signature against the public keys (when none is
/// given, the key of the first signed digest, which `key_from` then names), and each link to
/// the digest before it. `missing` names the file of a digest that is not there.
fn check_chain(
    table: &str,
    read: &BTreeMap<u64, ReadDigest>,
    public_keys: &mut Vec<String>,
    key_from: &mut String,
    missing: impl Fn(u64) -> String,
    check: &mut TableCheck,
    out: &mut Vec<Problem>,
) {
    if public_keys.is_empty()
        && let Some(key) = read.values().find_map(|d| d.digest.public_key.clone())
    {
        *key_from = format!("the first signed digest of {table} (pass --public-key to pin it)");
        public_keys.push(key);
    }
    let trusted: Vec<Vec<u8>> = public_keys
        .iter()
        .filter_map(|k| STANDARD.decode(k).ok())
        .collect();
    let mut problems = Vec::new();
    let mut before: Option<u64> = None;
    for (&version, found) in read {
        let rel = found.file.clone();
        match (&found.signature, trusted.is_empty()) {
            (None, _) => problems.push((Finding::Signature, rel.clone(), "not signed".to_string())),
            (Some(_), true) => problems.push((
                Finding::Signature,
                rel.clone(),
                "signed, but no public key to check it with".to_string(),
            )),
            (Some(signature), false) => {
                let ok = STANDARD.decode(signature).is_ok_and(|signature| {
                    trusted.iter().any(|key| {
                        UnparsedPublicKey::new(&ED25519, key)
                            .verify(&found.body, &signature)
                            .is_ok()
                    })
                });
                let by_trusted_key = found
                    .digest
                    .public_key
                    .as_ref()
                    .is_some_and(|k| public_keys.contains(k));
                if ok {
                    check.signed += 1;
                } else if !by_trusted_key {
                    problems.push((
                        Finding::Signature,
                        rel.clone(),
                        format!(
                            "signed by another key (key id {})",
                            found
                                .digest
                                .public_key
                                .as_deref()
                                .and_then(|k| STANDARD.decode(k).ok())
                                .map_or("unknown".to_string(), |k| key_id(&k))
                        ),
                    ));
                } else {
                    problems.push((
                        Finding::Signature,
                        rel.clone(),
                        "the signature does not match the digest: it was edited after signing"
                            .to_string(),
                    ));
                }
            }
        }
        match (&found.digest.previous, before) {
            (None, None) => {}
            (None, Some(b)) => problems.push((
                Finding::Reordered,
                rel.clone(),
                format!("the chain starts again here, after version {b}"),
            )),
            (Some(link), _) => match read.get(&link.version) {
                None => problems.push((
                    Finding::Removed,
                    missing(link.version),
                    format!("the digest version {version} chains to is gone"),
                )),
                Some(prior) if prior.sha256 != link.sha256 => problems.push((
                    Finding::Reordered,
                    rel.clone(),
                    format!(
                        "chains to version {} with SHA-256 {}, but that digest now hashes to {}: \
                         it was replaced, edited or swapped",
                        link.version,
                        &link.sha256[..16],
                        &prior.sha256[..16]
                    ),
                )),
                Some(_) => {
                    if let Some(b) = before.filter(|b| *b != link.version) {
                        problems.push((
                            Finding::Reordered,
                            rel.clone(),
                            format!(
                                "chains to version {}, but the digest before it is version {b}",
                                link.version
                            ),
                        ));
                    }
                }
            },
        }
        before = Some(version);
    }
    for (finding, path, detail) in problems {
        note(out, finding, &path, detail);
    }
}

/// The data files a chain of digests adds up to (each with the version that added it), and
/// every file any of them ever added.
fn live_files(
    read: &BTreeMap<u64, ReadDigest>,
) -> (BTreeMap<String, (FileDigest, u64)>, BTreeSet<String>) {
    let mut live: BTreeMap<String, (FileDigest, u64)> = BTreeMap::new();
    let mut ever: BTreeSet<String> = BTreeSet::new();
    for (&version, found) in read {
        for file in &found.digest.added {
            ever.insert(file.path.clone());
            live.insert(file.path.clone(), (file.clone(), version));
        }
        for path in &found.digest.removed {
            live.remove(path);
        }
    }
    (live, ever)
}

/// A table's chain of digests checked on its own, away from the lake (an evidence bundle).
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// What was checked.
    pub check: TableCheck,
    /// What was wrong with the chain.
    pub problems: Vec<Problem>,
    /// The data files the digests add up to, each with the version whose digest added it.
    pub live: BTreeMap<String, (FileDigest, u64)>,
}

/// Checks a table's digest files (`(path from the lake's root, bytes)`; each named
/// `VERSION.json`) against the public keys: names, signatures and links, and the data files
/// they add up to. The keys are taken from the first signed digest when none is given, and
/// `key_from` then says so.
pub fn verify_chain(
    table: &str,
    files: Vec<(String, Vec<u8>)>,
    public_keys: &mut Vec<String>,
    key_from: &mut String,
) -> Chain {
    let mut chain = Chain::default();
    let dir = format!("_auditq/digests/{table}");
    let files = files
        .into_iter()
        .filter_map(|(path, bytes)| {
            let version = path
                .rsplit('/')
                .next()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()?;
            Some((version, path, bytes))
        })
        .collect::<Vec<_>>();
    chain.check.table = table.to_string();
    chain.check.digests = files.len();
    let read = read_chain(table, files, &mut chain.problems);
    check_chain(
        table,
        &read,
        public_keys,
        key_from,
        |version| format!("{dir}/{}", log_name(version)),
        &mut chain.check,
        &mut chain.problems,
    );
    chain.live = live_files(&read).0;
    chain.check.files = chain.live.len();
    chain
}

fn note(out: &mut Vec<Problem>, finding: Finding, path: &str, detail: String) {
    out.push(Problem {
        finding,
        path: path.to_string(),
        detail,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_ed25519_as_rfc_8032_gives_them() {
        // RFC 8032, section 7.1, test 1: the empty message.
        let key = SigningKey::parse("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
            .unwrap_or_else(|e| panic!("{e}"));
        let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        let signature = STANDARD
            .decode(key.sign(b""))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hex(&signature), expected);
        assert!(SigningKey::parse("c2hvcnQ=").is_err_and(|e| e.contains("32 bytes")));
    }

    #[test]
    fn a_digest_file_reads_back_and_its_body_is_what_was_signed() {
        let key = SigningKey::parse("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
            .unwrap_or_else(|e| panic!("{e}"));
        let digest = Digest {
            format: FORMAT.to_string(),
            table: "commands".to_string(),
            version: 3,
            time: "2026-11-24T00:00:00.000Z".to_string(),
            operation: Some("WRITE".to_string()),
            commit: FileDigest {
                path: "commands/_delta_log/00000000000000000003.json".to_string(),
                size: 10,
                sha256: "00".repeat(32),
            },
            added: Vec::new(),
            removed: vec!["commands/date=2026-10-05/a.parquet".to_string()],
            previous: Some(Previous {
                version: 2,
                sha256: "11".repeat(32),
            }),
            public_key: Some(key.public_key()),
        };
        let body = serde_json::to_vec(&digest).unwrap_or_else(|e| panic!("{e}"));
        let line = SignatureLine {
            signature: Some(key.sign(&body)),
            key_id: Some(key.key_id()),
        };
        let mut file = body.clone();
        file.push(b'\n');
        file.extend(serde_json::to_vec(&line).unwrap_or_else(|e| panic!("{e}")));
        let read = read_digest(&file, "x".to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.digest, digest);
        assert_eq!(read.body, body);
        let signature = STANDARD
            .decode(read.signature.unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let public = STANDARD
            .decode(key.public_key())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            UnparsedPublicKey::new(&ED25519, public)
                .verify(&read.body, &signature)
                .is_ok()
        );
        assert!(read_digest(b"{\"format\":\"other\"}", "x".to_string()).is_err());
    }
}
