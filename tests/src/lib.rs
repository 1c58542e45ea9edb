//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;

pub mod month;

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

/// auditq's own AWS calls, against the emulator (checked to answer, as [`emulator`]).
pub async fn aws_calls() -> auditq_aws::Aws {
    auditq_aws::Aws::from_env(Some(emulator())).await
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
    let run = run_auditq_with(binary, lake, args, &[]);
    (run.ok, run.stdout, run.stderr)
}

/// What a run of `auditq` did.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Like [`run_auditq`], with no signing or public key from the environment either, and `env`
/// set (`AUDITQ_CONFIG_DIR`, `AWS_ENDPOINT_URL`, ...).
pub fn run_auditq_with(
    binary: &str,
    lake: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Run {
    let out = std::process::Command::new(binary)
        .env_remove("AUDITQ_DATA")
        .env_remove("AUDITQ_REDACTION_KEY")
        .env_remove("AUDITQ_SIGNING_KEY")
        .env_remove("AUDITQ_SIGNING_KEY_FILE")
        .env_remove("AUDITQ_PUBLIC_KEY")
        .envs(env.iter().copied())
        .arg("--data")
        .arg(lake)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file under `dir`, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// What [`FaultProxy`] does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes it to the emulator and its answer back.
    Pass,
    /// Answers `500 InternalError` itself, as a failing AWS endpoint does.
    ServerError,
    /// Closes the connection without answering, as an endpoint that went away.
    Drop,
}

/// An HTTP proxy in front of the AWS API emulator that passes the first requests and then
/// fails the rest, to test retries and clean failure mid-run against the real emulator. Point
/// `AWS_ENDPOINT_URL` at [`FaultProxy::url`]. One request per upstream connection; requests are
/// counted as they arrive.
#[derive(Debug)]
pub struct FaultProxy {
    url: String,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Debug)]
struct ProxyState {
    upstream: String,
    pass_first: std::sync::atomic::AtomicUsize,
    then: std::sync::Mutex<Fault>,
    seen: std::sync::atomic::AtomicUsize,
    failed: std::sync::Mutex<Vec<String>>,
}

impl FaultProxy {
    /// Passes the first `pass_first` requests to `upstream` (`http://HOST:PORT`), then does
    /// `then` to every request.
    pub fn start(upstream: &str, pass_first: usize, then: Fault) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot listen for the fault proxy: {e}"));
        let url = format!(
            "http://{}",
            listener
                .local_addr()
                .unwrap_or_else(|e| panic!("fault proxy address: {e}"))
        );
        let state = std::sync::Arc::new(ProxyState {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            pass_first: std::sync::atomic::AtomicUsize::new(pass_first),
            then: std::sync::Mutex::new(then),
            seen: std::sync::atomic::AtomicUsize::new(0),
            failed: std::sync::Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(client, &state));
            }
        });
        FaultProxy { url, state }
    }

    /// The proxy's endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The request lines (`GET /bucket/key HTTP/1.1`) answered with a fault, in order.
    pub fn failed(&self) -> Vec<String> {
        self.state
            .failed
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// From now on, passes every request (the endpoint recovered).
    pub fn heal(&self) {
        self.state
            .pass_first
            .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    }
}

fn serve(mut client: std::net::TcpStream, state: &ProxyState) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    loop {
        // The request head, then its body by Content-Length (the SDK sends no chunked bodies
        // on the calls auditq makes while reading).
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match client.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let length = text
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if client.read_exact(&mut body).is_err() {
            return;
        }
        let n = state.seen.fetch_add(1, Ordering::SeqCst);
        let request_line = text.lines().next().unwrap_or_default().to_string();
        let fault = if n < state.pass_first.load(Ordering::SeqCst) {
            Fault::Pass
        } else {
            state.then.lock().map(|f| *f).unwrap_or(Fault::Drop)
        };
        match fault {
            Fault::Pass => {
                let Ok(mut upstream) = std::net::TcpStream::connect(&state.upstream) else {
                    return;
                };
                // One request per upstream connection: its answer ends when moto closes.
                let head = text
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .collect::<Vec<_>>()
                    .join("\r\n");
                let head = format!("{}\r\nConnection: close\r\n\r\n", head.trim_end());
                if upstream.write_all(head.as_bytes()).is_err()
                    || upstream.write_all(&body).is_err()
                {
                    return;
                }
                let mut answer = Vec::new();
                if upstream.read_to_end(&mut answer).is_err() || client.write_all(&answer).is_err()
                {
                    return;
                }
                // The client may send its next request on this connection.
            }
            Fault::ServerError => {
                if let Ok(mut failed) = state.failed.lock() {
                    failed.push(request_line);
                }
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>injected by the test's fault proxy</Message></Error>";
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes());
                return;
            }
            Fault::Drop => {
                if let Ok(mut failed) = state.failed.lock() {
                    failed.push(request_line);
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}
