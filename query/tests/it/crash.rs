//! Crash safety: `auditq ingest` killed with SIGKILL at random moments of a large ingest and
//! restarted each time ends with exactly the rows the input holds, each `event_id` once.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flate2::{Compression, write::GzEncoder};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sample-logs");
const FILES: usize = 60;
const RECORDS_PER_FILE: usize = 400;
const KILLS: usize = 24;

fn record(file: usize, n: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","principalId":"AIDA{file:04}","arn":"arn:aws:iam::111122223333:user/u{n}","accountId":"111122223333","userName":"u{n}"}},"eventTime":"2026-10-{day:02}T{hour:02}:{min:02}:00Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.{ip}","userAgent":"aws-cli/2.17.5","requestParameters":{{"maxResults":1000}},"responseElements":null,"requestID":"r-{file}-{n}","eventID":"crash-{file:04}-{n:05}","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"111122223333"}}"#,
        day = 1 + file % 20,
        hour = n % 24,
        min = n % 60,
        ip = n % 250,
    )
}

fn write_corpus(dir: &Path) {
    for file in 0..FILES {
        let records: Vec<String> = (0..RECORDS_PER_FILE).map(|n| record(file, n)).collect();
        let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(body.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let bytes = enc.finish().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(format!("trail-{file:04}.json.gz")), bytes)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

fn ingest(lake: &Path, corpus: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auditq"));
    command
        .args([
            "--data",
            &lake.to_string_lossy(),
            "ingest",
            "--batch-files",
            "4",
        ])
        .arg(corpus)
        .arg(SAMPLES)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn query(lake: &Path, sql: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_auditq"))
        .args(["--data", &lake.to_string_lossy(), "--format", "csv", sql])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small deterministic generator: the kill moments are reproducible from the printed seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn killed_and_restarted_ingest_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap_or_else(|e| panic!("{e}"));
    write_corpus(&corpus);

    // How long an uninterrupted ingest takes here, so kills land inside one.
    let reference = dir.path().join("reference");
    let started = Instant::now();
    let status = ingest(&reference, &corpus)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let full = started.elapsed();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    eprintln!("crash test: full ingest {full:?}, kill seed {seed}");
    let mut random = Lcg(seed);
    let lake = dir.path().join("lake");
    let mut killed = 0;
    let mut runs = 0;
    while killed < KILLS && runs < 3 * KILLS {
        runs += 1;
        let mut child = ingest(&lake, &corpus)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let window = (full.as_millis() as u64 * 4 / 5).max(1);
        let wait = Duration::from_millis(random.next() % window);
        std::thread::sleep(wait);
        match child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            Some(status) => assert!(status.success(), "ingest failed before the kill"),
            None => {
                child.kill().unwrap_or_else(|e| panic!("{e}")); // SIGKILL
                killed += 1;
            }
        }
        let _ = child.wait();
    }
    let status = ingest(&lake, &corpus)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    assert_eq!(
        killed, KILLS,
        "only {killed} of {runs} runs were killed mid-ingest"
    );

    let expected_trail = FILES * RECORDS_PER_FILE + 37;
    let counts = query(
        &lake,
        "select t.n trail, t.d trail_ids, c.n commands, c.d command_ids, s.n sessions \
         from (select count(*) n, count(distinct event_id) d from cloudtrail) t, \
         (select count(*) n, count(distinct event_id) d from commands) c, \
         (select count(*) n from sessions) s",
    );
    assert_eq!(
        counts,
        format!(
            "trail,trail_ids,commands,command_ids,sessions\n{expected_trail},{expected_trail},68,68,14\n"
        ),
        "after {killed} kills (seed {seed})"
    );
    // The same answer as the uninterrupted reference.
    let sql = "select user, count(*) n from commands group by user order by user";
    assert_eq!(query(&lake, sql), query(&reference, sql));
    eprintln!("crash test: {killed} kills, {expected_trail} trail rows expected and found");
}
