//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared corpora beside the repository, when present (`../shared/corpora`).
pub fn corpora() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/corpora");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: ../shared/corpora is absent; corpus conformance checks did not run");
        None
    }
}

/// The scenario's "every sudo command" question; its answer is `fixtures/sample_sudo_commands.csv`.
pub const SUDO_COMMANDS_SQL: &str = include_str!("../fixtures/sample_sudo_commands.sql");

/// The AWS API emulator's endpoint (`AWS_ENDPOINT_URL`, set by `./scripts/test.sh`), checked to
/// answer; otherwise the test fails with a message naming the command that provides it.
pub fn emulator() -> String {
    let command = "run ./scripts/test.sh, which installs and starts moto and sets AWS_ENDPOINT_URL";
    let Ok(url) = std::env::var("AWS_ENDPOINT_URL") else {
        panic!("this test needs the AWS API emulator: {command}");
    };
    let address = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
        });
    assert!(
        reachable,
        "the AWS API emulator at {url} does not answer: {command}"
    );
    url
}

/// A name no other test run uses (buckets, groups and queues of concurrent tests stay apart).
pub fn run_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Runs the `auditq` binary (`binary`: the caller's `env!("CARGO_BIN_EXE_auditq")`) on the lake
/// `lake`, with no `AUDITQ_DATA` or `AUDITQ_REDACTION_KEY` from the environment; returns
/// (success, stdout, stderr).
pub fn run_auditq(binary: &str, lake: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary)
        .env_remove("AUDITQ_DATA")
        .env_remove("AUDITQ_REDACTION_KEY")
        .env_remove("AUDITQ_SIGNING_KEY")
        .env_remove("AUDITQ_SIGNING_KEY_FILE")
        .arg("--data")
        .arg(lake)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
