//! `auditq evidence`: one file an auditor takes away, and `auditq verify FILE`, which checks it
//! offline on a machine that has never seen the lake.
//!
//! The bundle is a plain tar archive (`tar -xf` opens it) under `evidence/`:
//!
//! - `report.html`: the period's report, opened from the folder without a server;
//! - `coverage.json`: what `auditq coverage` found over the period;
//! - `lake/TABLE/date=DAY/*.parquet`: the lake's own data files of the period's days, byte for
//!   byte (every file of `names`, whose history labels the rest), readable by any Parquet reader;
//! - `lake/_auditq/digests/TABLE/VERSION.json`: every signed digest of those tables, whose chain
//!   names each data file with its SHA-256;
//! - `README.txt`: what is in it and how to check it;
//! - `MANIFEST.json`: the period, the public keys, and every other member with its size and
//!   SHA-256; `MANIFEST.sig`: its Ed25519 signature by the lake's signing key.
//!
//! Verifying checks the manifest's signature, every member against the manifest, every digest's
//! signature and link, and that the data files are exactly those the digests make live for the
//! period: a changed byte, a removed or added file, and a swapped or edited digest are each
//! named. The digests being signed when the rows were written, the bundle shows the rows are the
//! lake's as written, not only as exported.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use auditq_ingest::Lake;
use auditq_ingest::digest::{self, Finding, Problem, SigningKey, TableCheck, Verification};
use auditq_model::Table;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::report::Period;

/// The `format` of the manifests this version writes.
pub const FORMAT: &str = "auditq-evidence/1";

/// The folder every member is under.
const ROOT: &str = "evidence";

/// A member of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its path in the archive.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// A table in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table.
    pub table: String,
    /// Its digests in the bundle.
    pub digests: usize,
    /// Its data files in the bundle.
    pub files: usize,
}

/// What the bundle holds (`MANIFEST.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// First instant of the period (RFC 3339).
    pub from: String,
    /// First instant after it.
    pub to: String,
    /// The days whose data files are included (`names`: every file).
    pub days: Vec<String>,
    /// When the bundle was made.
    pub generated: String,
    /// The auditq version that made it.
    pub auditq: String,
    /// The lake it was made from.
    pub lake: String,
    /// The public keys (base64) of the digests and of this manifest's signature.
    pub public_keys: Vec<String>,
    /// Their key ids, to compare with the ones the organisation published.
    pub key_ids: Vec<String>,
    /// The tables.
    pub tables: Vec<TableEntry>,
    /// Every other member, with its size and SHA-256.
    pub members: Vec<Member>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    auditq_model::hex(&Sha256::digest(bytes))
}

/// Minimal POSIX ustar: regular files only, what `tar -xf` reads.
mod tar {
    use std::io::{Read, Write};

    const BLOCK: usize = 512;

    fn octal(field: &mut [u8], value: u64) {
        let width = field.len() - 1;
        let text = format!("{value:0width$o}");
        field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
        field[width] = 0;
    }

    /// The header of a regular file.
    pub fn header(path: &str, size: u64, mtime: u64) -> std::io::Result<[u8; BLOCK]> {
        let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let (prefix, name) = if path.len() <= 100 {
            ("", path)
        } else {
            let split = path
                .char_indices()
                .filter(|(i, c)| *c == '/' && *i <= 155 && path.len() - i - 1 <= 100)
                .map(|(i, _)| i)
                .next()
                .ok_or_else(|| invalid("a path too long for a tar header"))?;
            (&path[..split], &path[split + 1..])
        };
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        Ok(h)
    }

    /// Writes one file.
    pub fn append(out: &mut dyn Write, path: &str, data: &[u8], mtime: u64) -> std::io::Result<()> {
        out.write_all(&header(path, data.len() as u64, mtime)?)?;
        out.write_all(data)?;
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        out.write_all(&vec![0u8; pad])
    }

    /// The end of the archive: two zero blocks, then zeros to the 10 KiB record tar itself
    /// writes (GNU tar's `--delete` and `--append` expect whole records). `written` is the
    /// length of the archive so far.
    pub fn finish(out: &mut dyn Write, written: u64) -> std::io::Result<()> {
        const RECORD: u64 = 20 * BLOCK as u64;
        let end = written + 2 * BLOCK as u64;
        let padded = end.div_ceil(RECORD) * RECORD;
        out.write_all(&vec![0u8; (padded - written) as usize])
    }

    fn parse_octal(field: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(field).ok()?;
        let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
        if text.is_empty() {
            return Some(0);
        }
        u64::from_str_radix(text, 8).ok()
    }

    fn text(field: &[u8]) -> String {
        let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    }

    /// Reads every regular file, handing each to `each` as `(path, size, reader of its bytes)`.
    pub fn read(
        input: &mut dyn Read,
        mut each: impl FnMut(&str, u64, &mut dyn Read) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
        let mut long_name: Option<String> = None;
        loop {
            let mut h = [0u8; BLOCK];
            match input.read_exact(&mut h) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(bad("the archive ends in the middle of a header".into()));
                }
                Err(e) => return Err(e),
            }
            if h.iter().all(|b| *b == 0) {
                return Ok(());
            }
            let stored =
                parse_octal(&h[148..156]).ok_or_else(|| bad("bad header checksum field".into()))?;
            let mut copy = h;
            copy[148..156].fill(b' ');
            let sum: u64 = copy.iter().map(|b| u64::from(*b)).sum();
            if sum != stored {
                return Err(bad(
                    "a tar header's checksum does not match: the archive is damaged".into(),
                ));
            }
            let size = parse_octal(&h[124..136]).ok_or_else(|| bad("bad size field".into()))?;
            let prefix = text(&h[345..500]);
            let name = text(&h[..100]);
            let path = match (long_name.take(), prefix.is_empty()) {
                (Some(long), _) => long,
                (None, true) => name,
                (None, false) => format!("{prefix}/{name}"),
            };
            let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
            let mut body = (&mut *input).take(size);
            match h[156] {
                b'0' | 0 => each(&path, size, &mut body)?,
                // GNU long name: the next header's name.
                b'L' => {
                    let mut name = Vec::new();
                    body.read_to_end(&mut name)?;
                    long_name = Some(text(&name));
                }
                _ => {}
            }
            std::io::copy(&mut body, &mut std::io::sink())?;
            std::io::copy(&mut (&mut *input).take(padded - size), &mut std::io::sink())?;
        }
    }
}

/// The days of a period (`YYYY-MM-DD`), first to last.
fn days(period: &Period) -> Vec<String> {
    let last = (period.to - chrono::Duration::microseconds(1)).date_naive();
    let mut day = period.from.date_naive();
    let mut out = Vec::new();
    while day <= last {
        out.push(day.to_string());
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// Whether a data file (path from the lake's root) belongs in the bundle of these days.
fn wanted(table: &str, path: &str, days: &BTreeSet<String>) -> bool {
    if table == Table::Names.name() {
        return true;
    }
    path.split('/')
        .find_map(|part| part.strip_prefix("date="))
        .is_some_and(|day| days.contains(day))
}

/// What goes into a bundle besides the lake's files.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The report.
    pub report_html: String,
    /// What coverage found, as JSON.
    pub coverage_json: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The manifest.
    pub manifest: Manifest,
    /// Bytes of the bundle.
    pub bytes: u64,
    /// Rows in its data files.
    pub data_bytes: u64,
}

/// Writes the bundle of `period` to `path` (through a hidden file renamed at the end, so a
/// failure leaves nothing). The lake must verify against its digests first (sizes; the files
/// taken are hashed as they are read).
pub async fn write(
    lake: &Lake,
    period: &Period,
    key: Option<&SigningKey>,
    contents: Contents,
    path: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Written> {
    let keys: Vec<String> = key.map(|k| vec![k.public_key()]).unwrap_or_default();
    let from = if keys.is_empty() {
        String::new()
    } else {
        "the signing key".to_string()
    };
    let check = digest::verify(lake, &keys, &from, false).await?;
    if !check.problems.is_empty() {
        anyhow::bail!(
            "the lake does not verify against its digests ({} problems, the first: {}): run `auditq verify` and make a bundle only of a lake that does",
            check.problems.len(),
            check.problems[0]
        );
    }
    let public_keys = if keys.is_empty() {
        check.public_keys.clone()
    } else {
        keys
    };
    let days = days(period);
    let day_set: BTreeSet<String> = days.iter().cloned().collect();
    let digests = lake.digests()?;
    let mtime = now.timestamp().max(0) as u64;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "evidence.tar".into());
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let result = async {
        let file = std::fs::File::create(&partial)?;
        let mut out = std::io::BufWriter::new(file);
        let mut members = Vec::new();
        let mut tables = Vec::new();
        let mut data_bytes = 0u64;
        let put = |out: &mut dyn Write, members: &mut Vec<Member>, rel: String, bytes: &[u8]| -> std::io::Result<()> {
            let path = format!("{ROOT}/{rel}");
            tar::append(out, &path, bytes, mtime)?;
            members.push(Member {
                path,
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            });
            Ok(())
        };
        for table in Table::ALL {
            let files = digests.files(table).await?;
            if files.is_empty() {
                continue;
            }
            let mut key_list = public_keys.clone();
            let mut key_from = String::new();
            let chain = digest::verify_chain(table.name(), files.clone(), &mut key_list, &mut key_from);
            let mut included = 0;
            for (rel, (file, version)) in &chain.live {
                if !wanted(table.name(), rel, &day_set) {
                    continue;
                }
                let bytes = lake.read_file(rel).await?;
                let sha256 = sha256_hex(&bytes);
                if sha256 != file.sha256 {
                    anyhow::bail!(
                        "{rel}: SHA-256 {}, its digest (version {version}) says {}: the lake was changed after it was written",
                        &sha256[..16],
                        &file.sha256[..16]
                    );
                }
                data_bytes += bytes.len() as u64;
                put(&mut out, &mut members, format!("lake/{rel}"), &bytes)?;
                included += 1;
            }
            for (rel, bytes) in &files {
                put(&mut out, &mut members, format!("lake/{rel}"), bytes)?;
            }
            tables.push(TableEntry {
                table: table.name().to_string(),
                digests: files.len(),
                files: included,
            });
        }
        put(&mut out, &mut members, "report.html".into(), contents.report_html.as_bytes())?;
        put(&mut out, &mut members, "coverage.json".into(), contents.coverage_json.as_bytes())?;
        let key_ids: Vec<String> = public_keys.iter().filter_map(|k| digest::key_id_of(k)).collect();
        let readme = readme(period, &key_ids);
        put(&mut out, &mut members, "README.txt".into(), readme.as_bytes())?;
        let manifest = Manifest {
            format: FORMAT.to_string(),
            from: period.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to: period.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            days,
            generated: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            auditq: env!("CARGO_PKG_VERSION").to_string(),
            lake: lake.location().to_string(),
            public_keys: public_keys.clone(),
            key_ids,
            tables,
            members,
        };
        let body = serde_json::to_vec_pretty(&manifest)?;
        tar::append(&mut out, &format!("{ROOT}/MANIFEST.json"), &body, mtime)?;
        if let Some(key) = key {
            tar::append(&mut out, &format!("{ROOT}/MANIFEST.sig"), key.sign(&body).as_bytes(), mtime)?;
        }
        let written = std::io::Seek::stream_position(&mut out)?;
        tar::finish(&mut out, written)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok::<_, anyhow::Error>((manifest, data_bytes))
    }
    .await;
    match result {
        Ok((manifest, data_bytes)) => {
            std::fs::rename(&partial, path)?;
            let bytes = std::fs::metadata(path)?.len();
            Ok(Written {
                manifest,
                bytes,
                data_bytes,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn readme(period: &Period, key_ids: &[String]) -> String {
    format!(
        "auditq evidence bundle, {} to {} (UTC, end exclusive)\n\n\
         report.html        the report: open it in a browser (no server, no network)\n\
         coverage.json      what `auditq coverage` found over the period\n\
         lake/TABLE/...     the lake's own Parquet data files of the period's days, byte for byte\n\
         lake/_auditq/digests/TABLE/VERSION.json\n\
         \x20                  the lake's signed digests: each names the files a commit added, with\n\
         \x20                  their SHA-256, and chains to the digest before it\n\
         MANIFEST.json      every other file with its size and SHA-256; MANIFEST.sig signs it\n\n\
         Check it, offline:  auditq verify THIS_FILE.tar --public-key KEY\n\
         KEY is the signing key's public key as your organisation published it; its key id\n\
         must be one of: {}\n\n\
         By hand: every member's SHA-256 (sha256sum) against MANIFEST.json; the data files\n\
         against the digests' \"added\" lists; each digest's Ed25519 signature (its first line,\n\
         signed) and its \"previous\" link (the SHA-256 of the digest file before it).\n\
         The rows: read lake/TABLE/**/*.parquet with any Parquet reader (DuckDB, pandas, Spark).\n",
        period
            .from
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        period.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        if key_ids.is_empty() {
            "(none: the lake's digests are unsigned)".to_string()
        } else {
            key_ids.join(", ")
        }
    )
}

/// Checks a bundle offline against `trusted` public keys (base64; when none is given, the
/// bundle's own, which the result says, and which should then be compared with the published
/// key id).
pub fn verify(path: &Path, trusted: &[String]) -> anyhow::Result<Verification> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let mut input = std::io::BufReader::new(file);
    // Small members are kept (manifest, signature, digests); every member is hashed.
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut kept: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut problems = Vec::new();
    tar::read(&mut input, |name, size, body| {
        let keep = name.ends_with("MANIFEST.json")
            || name.ends_with("MANIFEST.sig")
            || name.contains("/_auditq/digests/");
        let mut hasher = Sha256::new();
        let mut bytes = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = body.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            if keep {
                bytes.extend_from_slice(&buffer[..n]);
            }
        }
        if seen
            .insert(
                name.to_string(),
                (size, auditq_model::hex(&hasher.finalize())),
            )
            .is_some()
        {
            problems.push(problem(
                Finding::Added,
                name,
                "a second member of this name".into(),
            ));
        }
        if keep {
            kept.insert(name.to_string(), bytes);
        }
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("{}: not a readable evidence bundle: {e}", path.display()))?;

    let manifest_name = format!("{ROOT}/MANIFEST.json");
    let Some(body) = kept.get(&manifest_name) else {
        anyhow::bail!(
            "{}: no {manifest_name}: not an auditq evidence bundle",
            path.display()
        );
    };
    let manifest: Manifest = serde_json::from_slice(body)
        .map_err(|e| anyhow::anyhow!("{manifest_name} is unreadable: {e}"))?;
    if manifest.format != FORMAT {
        anyhow::bail!(
            "{manifest_name}: format {:?}, not {FORMAT:?}",
            manifest.format
        );
    }
    let (mut keys, mut key_from) = if trusted.is_empty() {
        (
            manifest.public_keys.clone(),
            format!(
                "the bundle itself (key id {}): compare it with the key id your organisation published, or pass --public-key",
                manifest.key_ids.join(", ")
            ),
        )
    } else {
        (trusted.to_vec(), "--public-key".to_string())
    };
    match kept.get(&format!("{ROOT}/MANIFEST.sig")) {
        None => problems.push(problem(
            Finding::Signature,
            &manifest_name,
            "not signed".into(),
        )),
        Some(signature) => {
            let signature = String::from_utf8_lossy(signature);
            if !digest::signed_by(&keys, body, &signature) {
                problems.push(problem(
                    Finding::Signature,
                    &manifest_name,
                    "its signature does not verify with the trusted key: it was edited, or signed by another key".into(),
                ));
            }
        }
    }
    // Members against the manifest.
    let listed: BTreeMap<&str, &Member> = manifest
        .members
        .iter()
        .map(|m| (m.path.as_str(), m))
        .collect();
    for member in &manifest.members {
        match seen.get(&member.path) {
            None => problems.push(problem(
                Finding::Removed,
                &member.path,
                "listed by the manifest, not in the bundle".into(),
            )),
            Some((size, sha256)) if *sha256 != member.sha256 => problems.push(problem(
                Finding::Changed,
                &member.path,
                format!(
                    "SHA-256 {} ({size} bytes), the manifest says {} ({} bytes)",
                    &sha256[..16],
                    &member.sha256[..16],
                    member.size
                ),
            )),
            Some(_) => {}
        }
    }
    for name in seen.keys() {
        let own = name == &manifest_name || name == &format!("{ROOT}/MANIFEST.sig");
        if !own && !listed.contains_key(name.as_str()) {
            problems.push(problem(
                Finding::Added,
                name,
                "in the bundle, not in the manifest".into(),
            ));
        }
    }
    // The lake's files against the lake's digests.
    let lake_prefix = format!("{ROOT}/lake/");
    let day_set: BTreeSet<String> = manifest.days.iter().cloned().collect();
    let mut tables = Vec::new();
    for table in Table::ALL {
        let digest_dir = format!("{lake_prefix}_auditq/digests/{}/", table.name());
        let files: Vec<(String, Vec<u8>)> = kept
            .iter()
            .filter(|(name, _)| name.starts_with(&digest_dir))
            .map(|(name, bytes)| (name[lake_prefix.len()..].to_string(), bytes.clone()))
            .collect();
        let data: BTreeMap<String, &(u64, String)> = seen
            .iter()
            .filter_map(|(name, found)| {
                let rel = name.strip_prefix(&lake_prefix)?;
                (rel.starts_with(&format!("{}/", table.name()))).then(|| (rel.to_string(), found))
            })
            .collect();
        if files.is_empty() && data.is_empty() {
            continue;
        }
        let chain = digest::verify_chain(table.name(), files, &mut keys, &mut key_from);
        problems.extend(chain.problems.into_iter().map(|p| Problem {
            path: format!("{lake_prefix}{}", p.path),
            ..p
        }));
        let mut check = TableCheck {
            files: 0,
            ..chain.check
        };
        for (rel, (file, version)) in &chain.live {
            if !wanted(table.name(), rel, &day_set) {
                continue;
            }
            check.files += 1;
            let name = format!("{lake_prefix}{rel}");
            match data.get(rel) {
                None => problems.push(problem(
                    Finding::Removed,
                    &name,
                    format!("the digest of version {version} lists it, live in the period, and it is not in the bundle"),
                )),
                Some((_, sha256)) if *sha256 != file.sha256 => problems.push(problem(
                    Finding::Changed,
                    &name,
                    format!(
                        "SHA-256 {}, the digest of version {version} says {}",
                        &sha256[..16],
                        &file.sha256[..16]
                    ),
                )),
                Some(_) => check.hashed += 1,
            }
        }
        for rel in data.keys() {
            if !chain.live.contains_key(rel) {
                problems.push(problem(
                    Finding::Added,
                    &format!("{lake_prefix}{rel}"),
                    "a data file no digest makes live".into(),
                ));
            }
        }
        tables.push(check);
    }
    Ok(Verification {
        public_keys: keys,
        key_from,
        tables,
        problems,
        unreferenced: Vec::new(),
    })
}

fn problem(finding: Finding, path: &str, detail: String) -> Problem {
    Problem {
        finding,
        path: path.to_string(),
        detail,
    }
}
