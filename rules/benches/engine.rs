//! Rule engine throughput over 1M realistic command lines, side by side with the alternatives a
//! user would pick: a loop of per-rule `regex::Regex::is_match`, and `grep -E -c` on the union
//! of the patterns.
//!
//!     cargo bench -p auditq-rules --bench engine            (1M lines, ~200 patterns)
//!     cargo bench -p auditq-rules --bench engine -- 200000   (fewer lines)
//!     cargo bench -p auditq-rules --bench engine -- --generated   (generated lines only)
//!     cargo bench -p auditq-rules --bench engine -- --sigma
//!         (`--sigma DIR`: another folder than ../shared/corpora/sigma; the per-rule loop runs
//!         over the first 20,000 lines, `--loop-lines=N` to change)
//!         (the default pack and every Sigma rule that loads for `commands`, instead of
//!         generated rules; grep is not run, as Sigma's case-insensitive patterns need inline
//!         flags grep lacks)
//!
//! One core (no threads). Prints lines/s of each and the ratios; results go in BENCHMARKS.md.

use std::borrow::Cow;
use std::io::Write;
use std::time::Instant;

use auditq_model::Table;
use auditq_rules::fields::Accessor;
use auditq_rules::spec::{ConditionSpec, LoadedFile, RuleSpec, Severity};
use auditq_rules::{Engine, EventView, pack};

/// A command line as an event, without building a map per line.
struct Line<'a>(&'a str);

impl EventView for Line<'_> {
    fn table(&self) -> Table {
        Table::Commands
    }
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        (name == "cmd").then_some(Cow::Borrowed(self.0))
    }
}

/// A small deterministic generator (no dependency, same lines every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

const COMMANDS: &[&str] = &[
    "ls -la {p}",
    "cd {p}",
    "cat {p}",
    "tail -n 200 {p}",
    "less {p}",
    "vim {p}",
    "grep -rn {w} {p}",
    "systemctl status {s}",
    "sudo systemctl restart {s}",
    "journalctl -u {s} --since today",
    "docker ps -a",
    "docker logs --tail 100 {w}",
    "kubectl get pods -n {w}",
    "kubectl describe pod {w}-7d9f8c",
    "git pull origin main",
    "git log --oneline -n 20",
    "ps aux | grep {w}",
    "df -h",
    "free -m",
    "top -b -n 1 | head -20",
    "aws s3 ls s3://{w}-logs/",
    "python3 manage.py migrate",
    "curl -s http://localhost:8080/health",
    "ss -tlnp",
    "find {p} -name '*.log' -mtime +7",
    "du -sh {p}",
    "sudo tail -f {p}",
    "echo $PATH",
    "export ENV={w}",
    "ping -c 3 10.0.1.{n}",
    "ssh ec2-user@10.0.2.{n}",
    "history | tail",
    "sudo -l",
    "id",
    "whoami",
    "uptime",
    "sudo su -",
    "crontab -l",
    "chmod 644 {p}",
];
const PATHS: &[&str] = &[
    "/var/log/messages",
    "/var/log/nginx/access.log",
    "/etc/nginx/nginx.conf",
    "/opt/app/config.yml",
    "/home/ec2-user/deploy.sh",
    "/tmp/out.txt",
    "/etc/hosts",
    "/srv/data/export.csv",
];
const SERVICES: &[&str] = &["nginx", "postgresql", "redis", "app", "docker", "sshd"];
const WORDS: &[&str] = &[
    "billing", "orders", "api", "worker", "payments", "search", "etl",
];

/// Real one-line shell commands (nl2bash, 12,607 lines from web Q&A) when the shared corpora are
/// beside the repository; otherwise lines in the style of an operations team.
const REAL_COMMANDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpora/shell-commands/all.cm"
);

fn lines(n: usize, generated_only: bool) -> (Vec<String>, &'static str) {
    let mut rng = Lcg(42);
    if let Some(text) = (!generated_only)
        .then(|| std::fs::read_to_string(REAL_COMMANDS).ok())
        .flatten()
    {
        let real: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if !real.is_empty() {
            let picked = (0..n).map(|_| rng.pick(&real).to_string()).collect();
            return (picked, "nl2bash real commands, drawn at random");
        }
    }
    let generated = (0..n)
        .map(|_| {
            rng.pick(COMMANDS)
                .replace("{p}", rng.pick(PATHS))
                .replace("{s}", rng.pick(SERVICES))
                .replace("{w}", rng.pick(WORDS))
                .replace("{n}", &(rng.next() % 250).to_string())
        })
        .collect();
    (generated, "generated operations commands")
}

const TOOLS: &[&str] = &[
    "nmap",
    "masscan",
    "hydra",
    "john",
    "hashcat",
    "mimikatz",
    "tcpdump",
    "chisel",
    "ngrok",
    "frpc",
    "xmrig",
    "minerd",
    "linpeas",
    "pspy",
    "gdb",
    "strace",
    "ltrace",
    "insmod",
    "rmmod",
    "modprobe",
    "iptables",
    "nft",
    "setcap",
    "chattr",
    "base64",
    "openssl",
    "xxd",
    "dd",
    "shred",
    "wipe",
    "nsenter",
    "unshare",
    "crontab",
    "at",
    "systemd-run",
    "tmux",
    "screen",
    "socat",
];

/// Rules in the style of the pack (a tool, then a suspicious flag), until `total` patterns.
fn generated(start: usize, total: usize) -> Vec<RuleSpec> {
    let mut rng = Lcg(7);
    (start..total)
        .map(|n| {
            let tool = rng.pick(TOOLS);
            let flag = (b'a' + (rng.next() % 26) as u8) as char;
            RuleSpec {
                id: format!("gen.{n}"),
                title: format!("{tool} -{flag}"),
                severity: Severity::Low,
                table: "commands".to_string(),
                description: None,
                tags: Vec::new(),
                condition: Some(ConditionSpec {
                    field: Some("cmd".to_string()),
                    regex: Some(format!(
                        "(?:^|[;&|]\\s*){tool}\\s+(?:\\S+\\s+)*-[a-zA-Z]*{flag}[a-zA-Z0-9]*\\b"
                    )),
                    ..Default::default()
                }),
                sequence: None,
                suppress: None,
                threshold: None,
                tests: None,
                sigma: None,
            }
        })
        .collect()
}

/// The leaves of a condition as Rust regex pattern texts, translated as the engine does.
fn leaves(cond: &ConditionSpec, out: &mut Vec<String>) {
    for part in cond.all.iter().chain(cond.any.iter()).flatten() {
        leaves(part, out);
    }
    if let Some(inner) = &cond.not {
        leaves(inner, out);
    }
    let e = regex_syntax::escape;
    // A field of several values (one per line) anchors at line boundaries, as the engine does.
    let multi = cond
        .field
        .as_deref()
        .and_then(|f| Accessor::parse(Table::Commands, f).ok())
        .is_some_and(|a| a.multi());
    let (start, end) = if multi {
        ("(?m:^)", "(?m:$)")
    } else {
        ("^", "$")
    };
    let text = [
        cond.regex.clone(),
        cond.prefix.as_ref().map(|p| format!("{start}{}", e(p))),
        cond.suffix.as_ref().map(|s| format!("{}{end}", e(s))),
        cond.contains.as_ref().map(|c| e(c)),
        cond.equals
            .as_ref()
            .map(|q| format!("{start}{}{end}", e(q))),
        cond.one_of.as_ref().map(|v| {
            format!(
                "{start}(?:{}){end}",
                v.iter().map(|x| e(x)).collect::<Vec<_>>().join("|")
            )
        }),
        cond.exists.filter(|x| *x).map(|_| "^".to_string()),
    ];
    out.extend(text.into_iter().flatten());
}

/// The per-rule loop: each rule's condition evaluated with one compiled regex per leaf.
enum Naive {
    All(Vec<Naive>),
    Any(Vec<Naive>),
    Not(Box<Naive>),
    Leaf(Accessor, regex::bytes::Regex),
}

impl Naive {
    /// `unicode`: the regex crate's default (what `regex::Regex::new` gives); without it, the
    /// engine's own pattern semantics (bytes, ASCII classes and folding).
    fn new(cond: &ConditionSpec, unicode: bool) -> Naive {
        let part = |c: &ConditionSpec| Naive::new(c, unicode);
        if let Some(parts) = &cond.all {
            return Naive::All(parts.iter().map(part).collect());
        }
        if let Some(parts) = &cond.any {
            return Naive::Any(parts.iter().map(part).collect());
        }
        if let Some(inner) = &cond.not {
            return Naive::Not(Box::new(part(inner)));
        }
        if cond.exists == Some(false) {
            let present = ConditionSpec {
                exists: Some(true),
                ..cond.clone()
            };
            return Naive::Not(Box::new(part(&present)));
        }
        let mut texts = Vec::new();
        leaves(cond, &mut texts);
        let text = texts.pop().unwrap_or_default();
        let field = cond.field.as_deref().unwrap_or("cmd");
        let accessor = Accessor::parse(Table::Commands, field).unwrap_or_else(|e| panic!("{e}"));
        let re = regex::bytes::RegexBuilder::new(&text)
            .unicode(unicode)
            .case_insensitive(cond.case_insensitive)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Naive::Leaf(accessor, re)
    }
    fn eval(&self, line: &str) -> bool {
        match self {
            Naive::All(p) => p.iter().all(|c| c.eval(line)),
            Naive::Any(p) => p.iter().any(|c| c.eval(line)),
            Naive::Not(c) => !c.eval(line),
            Naive::Leaf(Accessor::Column(_), r) => r.is_match(line.as_bytes()),
            Naive::Leaf(accessor, r) => accessor
                .read(&Line(line))
                .is_some_and(|v| r.is_match(v.as_bytes())),
        }
    }
}

/// Rust regex syntax to POSIX ERE as GNU grep reads it.
fn to_ere(pattern: &str) -> String {
    pattern.replace("(?:", "(").replace("\\d", "[0-9]")
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let generated_only = std::env::args().any(|a| a == "--generated");
    let args: Vec<String> = std::env::args().collect();
    let sigma = args.iter().position(|a| a == "--sigma").map(|i| {
        args.get(i + 1)
            .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
            .cloned()
            .unwrap_or_else(|| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpora/sigma").to_string()
            })
    });
    let (lines, origin) = lines(n, generated_only);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut files = pack::load("default").unwrap_or_else(|e| panic!("{e:?}"));
    if let Some(dir) = &sigma {
        files.extend(pack::load(dir).unwrap_or_else(|e| panic!("{e:?}")));
    }
    // Sequence rules decide over sessions, not lines: the per-rule loop has no equivalent.
    let mut specs: Vec<RuleSpec> = files
        .iter()
        .flat_map(|f| f.rules.iter().map(|(s, _)| s.clone()))
        .filter(|s| s.table == "commands" && s.condition.is_some())
        .collect();
    if sigma.is_some() {
        // Only the Sigma rules the engine accepts (some are refused for a pattern Rust's
        // syntax lacks, and they are refused here too).
        let probe = Engine::compile(&[LoadedFile {
            file: "probe".into(),
            rules: specs.iter().cloned().map(|s| (s, None)).collect(),
            refused: Vec::new(),
        }])
        .unwrap_or_else(|e| panic!("{e:?}"));
        let kept: std::collections::BTreeSet<String> =
            probe.rules().iter().map(|r| r.id.clone()).collect();
        specs.retain(|s| kept.contains(&s.id));
    }
    let mut pack_patterns = Vec::new();
    for s in &specs {
        leaves(
            s.condition.as_ref().unwrap_or(&ConditionSpec::default()),
            &mut pack_patterns,
        );
    }
    if sigma.is_none() {
        specs.extend(generated(pack_patterns.len(), 200));
    }
    let mut patterns = Vec::new();
    for s in &specs {
        leaves(
            s.condition.as_ref().unwrap_or(&ConditionSpec::default()),
            &mut patterns,
        );
    }
    let file = LoadedFile {
        file: "bench".to_string(),
        rules: specs.iter().cloned().map(|s| (s, None)).collect(),
        refused: Vec::new(),
    };
    let engine = Engine::compile(&[file]).unwrap_or_else(|e| panic!("{e:?}"));
    println!(
        "{n} lines of {origin} ({:.1} MB, {:.0} bytes/line), {} rules, {} patterns ({} from rule files)",
        bytes as f64 / 1e6,
        bytes as f64 / n as f64,
        specs.len(),
        patterns.len(),
        pack_patterns.len()
    );

    // The per-rule loop over thousands of Sigma patterns takes about a millisecond a line, so
    // with --sigma it runs over the first `loop_lines` lines only (its lines/s are comparable;
    // the rule matches are compared over those lines).
    let loop_lines = if sigma.is_some() {
        args.iter()
            .find_map(|a| a.strip_prefix("--loop-lines="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000)
            .min(n)
    } else {
        n
    };
    let mut scratch = engine.scratch();
    let started = Instant::now();
    let mut engine_hits = 0usize;
    let mut engine_hits_looped = 0usize;
    for (i, line) in lines.iter().enumerate() {
        let hits = engine.matching(&Line(line), &mut scratch).len();
        engine_hits += hits;
        if i < loop_lines {
            engine_hits_looped += hits;
        }
    }
    let engine_secs = started.elapsed().as_secs_f64();

    let per_rule = |unicode: bool| {
        let naive: Vec<(String, Naive)> = specs
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    Naive::new(
                        s.condition.as_ref().unwrap_or(&ConditionSpec::default()),
                        unicode,
                    ),
                )
            })
            .collect();
        let started = Instant::now();
        let mut hits = 0usize;
        for line in &lines[..loop_lines] {
            hits += naive.iter().filter(|(_, rule)| rule.eval(line)).count();
        }
        (started.elapsed().as_secs_f64(), hits)
    };
    // Same semantics as the engine: the counts must agree.
    let (naive_secs, naive_hits) = per_rule(false);
    assert_eq!(
        engine_hits_looped, naive_hits,
        "engine and per-rule loop disagree"
    );
    // What `regex::Regex::new` gives by default (Unicode classes): may differ on non-ASCII lines.
    let (unicode_secs, unicode_hits) = per_rule(true);

    let dir = std::env::temp_dir().join(format!("auditq-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let lines_path = dir.join("lines.txt");
    let patterns_path = dir.join("patterns.txt");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&lines_path).unwrap_or_else(|e| panic!("{e}")),
    );
    for line in &lines {
        writeln!(out, "{line}").unwrap_or_else(|e| panic!("{e}"));
    }
    drop(out);
    let ere: Vec<String> = patterns.iter().map(|p| to_ere(p)).collect();
    std::fs::write(&patterns_path, ere.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    // The C locale: bytes and ASCII classes, as the engine reads patterns.
    let grep = if sigma.is_some() {
        Err(std::io::Error::other(
            "Sigma patterns use inline flags ((?i:...)) and derived fields grep lacks",
        ))
    } else {
        std::process::Command::new("grep")
            .env("LC_ALL", "C")
            .arg("-E")
            .arg("-c")
            .arg("-f")
            .arg(&patterns_path)
            .arg(&lines_path)
            .output()
    };
    let grep_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);

    let rate = |secs: f64| n as f64 / secs;
    let loop_rate = |secs: f64| loop_lines as f64 / secs;
    println!(
        "auditq engine     {:>12.0} lines/s  ({engine_hits} rule matches; {engine_hits_looped} in the first {loop_lines} lines)",
        rate(engine_secs)
    );
    println!(
        "per-rule regex    {:>12.0} lines/s  ({naive_hits} rule matches in {loop_lines} lines; ASCII, as the engine)",
        loop_rate(naive_secs)
    );
    println!(
        "per-rule regex    {:>12.0} lines/s  ({unicode_hits} rule matches in {loop_lines} lines; Unicode, the default)",
        loop_rate(unicode_secs)
    );
    match grep {
        Ok(out) => println!(
            "grep -E -c -f     {:>12.0} lines/s  ({} lines with any match; {})",
            rate(grep_secs),
            String::from_utf8_lossy(&out.stdout).trim(),
            out.status
        ),
        Err(e) => println!("grep -E -c -f     not run: {e}"),
    }
    println!(
        "ratio engine / per-rule loop: {:.1}x (ASCII), {:.1}x (Unicode); engine / grep: {:.2}x",
        rate(engine_secs) / loop_rate(naive_secs),
        rate(engine_secs) / loop_rate(unicode_secs),
        grep_secs / engine_secs
    );
}
