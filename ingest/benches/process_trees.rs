//! auditd process trees at volume: a generated host with 1,000 Session Manager sessions of 50
//! execs each (nested shells, `sudo`, `sudo su -`, scripts and their children, pipelines in
//! command substitutions whose subshell never execs, pid reuse as pids wrap at 32,768) and a
//! daemon's execs interleaved, as auditd writes them (6 records an exec). Reports how many execs
//! land on the right session, how many daemon execs are wrongly given one, and the time per
//! 100,000 audit records to group them into events and walk the trees (release, in-process).
//!
//! Side by side, in the same run: auditd's own answer, its login session (`ses`, what `ausearch
//! --session` groups by), and `grep -c` over the same file for the cost of reading it at all.
//!
//! `cargo bench -p auditq-ingest --bench process_trees [-- --sessions=N]`

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use auditq_ingest::host::{HostLineIn, HostSource, parse_host_lines};
use auditq_ingest::process;

/// A tiny deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Host {
    text: String,
    serial: u64,
    next_pid: i64,
    /// Execs written.
    execs: usize,
    /// Pids of live long-running processes.
    alive: std::collections::HashSet<i64>,
}

impl Host {
    /// The next free pid: pids wrap at 32,768, and the kernel skips those of live processes
    /// (cron, the agent, every live session's worker and shells).
    fn pid(&mut self) -> i64 {
        loop {
            self.next_pid += 1;
            if self.next_pid > 32_768 {
                self.next_pid = 300;
            }
            if !self.alive.contains(&self.next_pid) {
                return self.next_pid;
            }
        }
    }

    /// One execve as auditd (ENRICHED) writes it. `truth` goes into the CWD record, which the
    /// tree walk does not read.
    fn exec(&mut self, at_ms: i64, pid: i64, ppid: i64, argv: &[&str], truth: &str, tty: &str) {
        self.serial += 1;
        self.execs += 1;
        let stamp = format!(
            "msg=audit({}.{:03}:{})",
            at_ms / 1000,
            at_ms % 1000,
            self.serial
        );
        let exe = if argv[0].starts_with('/') {
            argv[0].to_string()
        } else {
            format!("/usr/bin/{}", argv[0].trim_start_matches('-'))
        };
        let _ = writeln!(
            self.text,
            "type=SYSCALL {stamp}: arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid={ppid} pid={pid} auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty={tty} ses=4294967295 comm=\"x\" exe=\"{exe}\" key=\"exec\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"unset\" UID=\"root\" GID=\"root\""
        );
        let mut execve = format!("type=EXECVE {stamp}: argc={}", argv.len());
        for (i, arg) in argv.iter().enumerate() {
            let _ = write!(execve, " a{i}=\"{arg}\"");
        }
        let _ = writeln!(self.text, "{execve}");
        let _ = writeln!(self.text, "type=CWD {stamp}: cwd=\"/truth/{truth}\"");
        let _ = writeln!(
            self.text,
            "type=PATH {stamp}: item=0 name=\"{exe}\" inode=1 dev=ca:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL"
        );
        let _ = writeln!(self.text, "type=PROCTITLE {stamp}: proctitle=6C73");
        let _ = writeln!(self.text, "type=EOE {stamp}:");
    }
}

fn generate(sessions: usize, per_session: usize) -> Host {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut host = Host {
        text: String::new(),
        serial: 0,
        next_pid: 1000,
        execs: 0,
        alive: [900, 1850].into_iter().collect(),
    };
    // Sessions run 20 at a time, their execs interleaved one step at a time.
    struct Live {
        id: String,
        shell: i64,
        left: usize,
        tty: String,
        /// Its worker and shells, alive until it ends.
        pids: Vec<i64>,
    }
    let mut clock: i64 = 1_791_191_523_000;
    let mut live: Vec<Live> = Vec::new();
    let mut started = 0;
    while started < sessions || !live.is_empty() {
        while live.len() < 20 && started < sessions {
            let id = format!("user{started}-0{:016x}", rng.next());
            let worker = host.pid();
            clock += 7;
            host.exec(
                clock,
                worker,
                1850,
                &["/usr/bin/ssm-session-worker", &id, "i-0a1b2c3d4e5f60711"],
                &id,
                "(none)",
            );
            // The lowest terminal no live session holds.
            let tty = (0..)
                .map(|n| format!("pts{n}"))
                .find(|t| live.iter().all(|l| &l.tty != t))
                .unwrap_or_default();
            let shell = host.pid();
            host.exec(clock + 1, shell, worker, &["sh"], &id, &tty);
            host.alive.extend([worker, shell]);
            live.push(Live {
                id,
                shell,
                left: per_session - 2,
                tty,
                pids: vec![worker, shell],
            });
            started += 1;
        }
        let at = rng.below(live.len() as u64) as usize;
        clock += 3;
        let (id, shell, tty) = (live[at].id.clone(), live[at].shell, live[at].tty.clone());
        let tty = tty.as_str();
        let used = match rng.below(20) {
            // sudo X: sudo below the shell, X below sudo.
            0..=3 => {
                let sudo = host.pid();
                host.exec(
                    clock,
                    sudo,
                    shell,
                    &["sudo", "systemctl", "status", "nginx"],
                    &id,
                    tty,
                );
                let child = host.pid();
                host.exec(
                    clock + 1,
                    child,
                    sudo,
                    &["systemctl", "status", "nginx"],
                    &id,
                    tty,
                );
                2
            }
            // sudo su -: the root shell becomes where the session's next commands run.
            4 => {
                let sudo = host.pid();
                host.exec(clock, sudo, shell, &["sudo", "su", "-"], &id, tty);
                let su = host.pid();
                host.exec(clock + 1, su, sudo, &["su", "-"], &id, tty);
                let root = host.pid();
                host.exec(clock + 2, root, su, &["-bash"], &id, tty);
                live[at].shell = root;
                host.alive.extend([sudo, su, root]);
                live[at].pids.extend([sudo, su, root]);
                3
            }
            // A script and what it runs.
            5..=6 => {
                let script = host.pid();
                host.exec(
                    clock,
                    script,
                    shell,
                    &["/bin/bash", "/usr/local/bin/deploy.sh"],
                    &id,
                    tty,
                );
                for n in 0..3 {
                    let child = host.pid();
                    host.exec(
                        clock + 1 + n,
                        child,
                        script,
                        &["rsync", "-a", "x", "y"],
                        &id,
                        tty,
                    );
                }
                4
            }
            // $(a | b): the substitution's subshell forks both and never execs itself.
            7 => {
                let subshell = host.pid();
                for (n, program) in ["ps", "grep"].iter().enumerate() {
                    let child = host.pid();
                    host.exec(clock + n as i64, child, subshell, &[program], &id, tty);
                }
                2
            }
            // A plain command.
            _ => {
                let pid = host.pid();
                host.exec(clock, pid, shell, &["ls", "-la"], &id, tty);
                1
            }
        };
        // A daemon's exec now and then (cron's job, parent cron), on the same host.
        if rng.below(10) == 0 {
            let cron = host.pid();
            host.exec(
                clock + 1,
                cron,
                900,
                &["/usr/sbin/logrotate", "/etc/logrotate.conf"],
                "none",
                "(none)",
            );
        }
        live[at].left = live[at].left.saturating_sub(used);
        if live[at].left == 0 {
            for pid in &live[at].pids {
                host.alive.remove(pid);
            }
            live.swap_remove(at);
        }
    }
    host
}

fn main() {
    let sessions: usize = std::env::args()
        .find_map(|a| a.strip_prefix("--sessions=").and_then(|n| n.parse().ok()))
        .unwrap_or(1000);
    let host = generate(sessions, 50);
    let lines: Vec<&str> = host.text.lines().collect();
    let records = lines.len();
    let path = std::env::temp_dir().join("auditq-process-trees.log");
    std::fs::write(&path, &host.text).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "generated: {sessions} sessions, {} execs, {records} audit records ({:.1} MB) in {}",
        host.execs,
        host.text.len() as f64 / 1e6,
        path.display()
    );

    let reference = chrono::Utc::now();
    let mut best_parse = f64::MAX;
    let mut best_walk = f64::MAX;
    let mut result = None;
    for _ in 0..3 {
        let input: Vec<HostLineIn<'_>> = lines
            .iter()
            .enumerate()
            .map(|(index, text)| HostLineIn {
                index,
                text,
                reference,
            })
            .collect();
        let clock = Instant::now();
        let parsed = parse_host_lines(
            &input,
            HostSource {
                origin: "bench",
                target: Some("i-0a1b2c3d4e5f60711"),
            },
        );
        best_parse = best_parse.min(clock.elapsed().as_secs_f64());
        let mut events = parsed.events;
        let clock = Instant::now();
        process::attribute(&mut events, &[]);
        best_walk = best_walk.min(clock.elapsed().as_secs_f64());
        result = Some((events, parsed.rejects.len()));
    }
    let Some((events, rejects)) = result else {
        return;
    };

    let mut right = 0;
    let mut wrong = 0;
    let mut missed = 0;
    let mut daemon_given = 0;
    let mut daemon = 0;
    let mut by_ses: HashMap<Option<i64>, usize> = HashMap::new();
    for event in &events {
        let truth = event
            .cwd
            .as_deref()
            .and_then(|c| c.strip_prefix("/truth/"))
            .unwrap_or_default();
        *by_ses.entry(event.audit_session).or_default() += 1;
        if truth == "none" {
            daemon += 1;
            daemon_given += usize::from(event.session_id.is_some());
            continue;
        }
        match event.session_id.as_deref() {
            Some(s) if s == truth => right += 1,
            Some(_) => wrong += 1,
            None => missed += 1,
        }
    }
    let session_execs = right + wrong + missed;
    println!(
        "events: {} from {records} records, {rejects} rejects",
        events.len()
    );
    println!(
        "auditq process trees: {right} of {session_execs} session execs on the right session ({:.2}%), {wrong} on a wrong one, {missed} on none; {daemon_given} of {daemon} daemon execs given a session",
        100.0 * right as f64 / session_execs as f64
    );
    let with_ses: usize = by_ses
        .iter()
        .filter(|(k, _)| k.is_some())
        .map(|(_, v)| v)
        .sum();
    println!(
        "auditd's login session (ses, what ausearch --session groups by): {with_ses} of {} execs have one (0.00% attributable: Session Manager shells have no login)",
        events.len()
    );
    let per_100k = |seconds: f64| seconds * 100_000.0 / records as f64 * 1000.0;
    println!(
        "time per 100,000 audit records (best of 3): group into events {:.1} ms, walk the trees {:.1} ms, together {:.1} ms",
        per_100k(best_parse),
        per_100k(best_walk),
        per_100k(best_parse + best_walk)
    );
    let clock = Instant::now();
    let output = std::process::Command::new("grep")
        .args(["-c", "type=EXECVE"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("grep: {e}"));
    let grep = clock.elapsed().as_secs_f64();
    println!(
        "grep -c type=EXECVE over the same file (a process): {} execs in {:.1} ms per 100,000 records",
        String::from_utf8_lossy(&output.stdout).trim(),
        per_100k(grep)
    );
}
