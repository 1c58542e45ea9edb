//! Writes a large, seeded lake for the query benchmark (`benches/query_vs_duckdb.sh`).
//!
//!   cargo run --release --example generate_lake -- DIR [COMMANDS] [SESSIONS] [DAYS]
//!
//! Defaults: 10,000,000 commands in 1,000,000 sessions over 365 days, by 300 users on 3,000
//! instances in 4 accounts. One session in 25 is a port forward that nothing recorded (`logged =
//! none`, no commands); every session has its CloudTrail `StartSession`, and every tenth user
//! call around it is another read-only API call (`DescribeInstances`). Each day is written as two
//! commits (as micro-batches leave it) and the lake is then compacted as `auditq compact` does,
//! so the files are what a lake in production holds after its daily compaction. Written through
//! auditq's own lake writer.

use auditq_ingest::Lake;
use auditq_model::{Command, Session, Timestamp, TrailEvent, day_of, event_id};
use chrono::{Duration, TimeZone, Utc};

/// A small, seeded generator (xorshift64*): the same lake on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const PLAIN: &[&str] = &[
    "ls -la",
    "cd /var/log",
    "tail -n 100 /var/log/messages",
    "df -h",
    "free -m",
    "uptime",
    "ps aux | grep java",
    "systemctl status nginx",
    "journalctl -u app --since today",
    "cat /etc/os-release",
    "top -b -n 1",
    "netstat -tlnp",
    "ss -s",
    "du -sh /var/lib/docker",
    "docker ps",
    "kubectl get pods -A",
    "git pull",
    "vim config.yaml",
    "less app.log",
    "grep -r ERROR /var/log/app",
    "curl -s localhost:8080/health",
    "exit",
    "history",
    "python3 manage.py migrate",
    "psql -h db -U app -c 'select 1'",
    "aws s3 ls",
];
const PRIVILEGED: &[&str] = &[
    "sudo systemctl restart nginx",
    "sudo su -",
    "sudo -i",
    "sudo tail -f /var/log/secure",
    "sudo vim /etc/sudoers",
    "sudo yum update -y",
    "sudo cat /root/.aws/credentials",
];
const ACCOUNTS: &[&str] = &[
    "111122223333",
    "444455556666",
    "777788889999",
    "123456789012",
];
const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .cloned()
        .unwrap_or_else(|| "target/bench-lake".into());
    let number = |i: usize, default: u64| -> anyhow::Result<u64> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let commands = number(1, 10_000_000)?;
    let sessions = number(2, 1_000_000)?;
    let days = number(3, 365)?.max(1);
    let lake = Lake::new(dir.clone());
    let mut rng = Rng(0x5eed_a0d1_7c0f_fee5);
    let first_day = Utc
        .with_ymd_and_hms(2025, 11, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let per_session = (commands / sessions.max(1)).max(1);
    // At least `sessions` in all: whole sessions per day, rounded up.
    let sessions_per_day = sessions.div_ceil(days);
    let started = std::time::Instant::now();
    let (mut written_sessions, mut written_commands, mut written_trail) = (0usize, 0usize, 0usize);
    for day in 0..days {
        let midnight = first_day + Duration::days(day as i64);
        let mut day_sessions = Vec::new();
        let mut day_commands = Vec::new();
        let mut day_trail = Vec::new();
        for n in 0..sessions_per_day {
            let user = format!("user{:03}", rng.below(300));
            let account = rng.pick(ACCOUNTS);
            let region = rng.pick(REGIONS);
            let target = format!("i-0{:016x}", rng.below(3000));
            let session_id = format!("{user}-{:017x}", day * sessions_per_day + n);
            let start: Timestamp = midnight + Duration::seconds(rng.below(86_000) as i64);
            let ip = format!("198.51.{}.{}", rng.below(256), rng.below(256));
            let run_as = if rng.below(10) == 0 {
                "root"
            } else {
                "ssm-user"
            };
            let forward = rng.below(25) == 0;
            let principal = format!("arn:aws:iam::{account}:user/{user}");
            let call = |name: &str, id: &str, at: Timestamp, session: Option<&str>| TrailEvent {
                event_id: event_id("trail", &[id]),
                time: at,
                date: day_of(&at),
                principal_arn: Some(principal.clone()),
                principal_type: Some("IAMUser".to_string()),
                user: Some(user.clone()),
                access_key_id: Some(format!("AKIA{:016X}", id.len() as u64 * 7919)),
                mfa: Some(false),
                account: Some(account.to_string()),
                region: Some(region.to_string()),
                source_ip: Some(ip.clone()),
                user_agent: Some("aws-cli/2.17.0 md/awscrt#0.20.11".to_string()),
                event_source: if session.is_some() { "ssm" } else { "ec2" }.to_string()
                    + ".amazonaws.com",
                event_name: name.to_string(),
                event_type: Some("AwsApiCall".to_string()),
                error_code: None,
                error_message: None,
                read_only: Some(session.is_none()),
                session_id: session.map(str::to_string),
                request: Some(format!(r#"{{"target":"{target}"}}"#)),
                response: session.map(|s| format!(r#"{{"sessionId":"{s}"}}"#)),
                additional: None,
                resources: None,
                origin: format!(
                    "s3://trail/AWSLogs/{account}/CloudTrail/{region}/{}",
                    day_of(&at)
                ),
            };
            day_trail.push(call("StartSession", &session_id, start, Some(&session_id)));
            if rng.below(10) == 0 {
                let id = format!("{session_id}-describe");
                let before = start - Duration::seconds(30);
                day_trail.push(call("DescribeInstances", &id, before, None));
            }
            let mut time = start;
            for seq in (1..=per_session).filter(|_| !forward) {
                time += Duration::seconds(1 + rng.below(40) as i64);
                let cmd = if rng.below(33) == 0 {
                    rng.pick(PRIVILEGED)
                } else {
                    rng.pick(PLAIN)
                };
                day_commands.push(Command {
                    event_id: event_id("cmd", &[&session_id, &seq.to_string()]),
                    time,
                    date: day_of(&time),
                    user: Some(user.clone()),
                    principal_arn: Some(format!("arn:aws:iam::{account}:user/{user}")),
                    run_as: Some(run_as.to_string()),
                    target: Some(target.clone()),
                    account: Some(account.to_string()),
                    region: Some(region.to_string()),
                    source_ip: Some(ip.clone()),
                    cmd: cmd.to_string(),
                    cwd: Some("~".to_string()),
                    session_id: Some(session_id.clone()),
                    seq: seq as i64,
                    source: "stream".to_string(),
                    origin: format!("cwl://aws/ssm/sessions#{session_id}"),
                    parent_cmd: None,
                    seen_in_transcript: None,
                    target_name: None,
                    environment: None,
                    account_alias: None,
                });
            }
            day_sessions.push(Session {
                session_id: session_id.clone(),
                date: day_of(&start),
                user: Some(user.clone()),
                principal_arn: Some(format!("arn:aws:iam::{account}:user/{user}")),
                source_ip: Some(ip),
                user_agent: Some("aws-cli/2.17.0 md/awscrt#0.20.11".to_string()),
                started_at: Some(start),
                ended_at: Some(time),
                duration_seconds: Some((time - start).num_seconds()),
                target: Some(target),
                account: Some(account.to_string()),
                region: Some(region.to_string()),
                document: Some(
                    if forward {
                        "AWS-StartPortForwardingSession"
                    } else {
                        "SSM-SessionManagerRunShell"
                    }
                    .to_string(),
                ),
                kind: if forward { "port_forward" } else { "shell" }.to_string(),
                run_as: (!forward).then(|| run_as.to_string()),
                commands: if forward { 0 } else { per_session as i64 },
                logged: if forward { "none" } else { "stream" }.to_string(),
                transcript_uri: None,
                stream_uri: (!forward).then(|| format!("cwl://aws/ssm/sessions#{session_id}")),
                reason: None,
                start_event_id: Some(event_id("trail", &[session_id.as_str()])),
                target_name: None,
                environment: None,
                account_alias: None,
                recorded_to: (!forward).then_some(time),
                longest_silence_seconds: None,
            });
        }
        // Two commits a day, as micro-batches leave a day before compaction.
        let half = day_sessions.len() / 2;
        let later = day_sessions.split_off(half);
        written_sessions += lake.append(&day_sessions).await?.added;
        written_sessions += lake.append(&later).await?.added;
        let half = day_commands.len() / 2;
        let later = day_commands.split_off(half);
        written_commands += lake.append(&day_commands).await?.added;
        written_commands += lake.append(&later).await?.added;
        written_trail += lake.append(&day_trail).await?.added;
        if day % 30 == 29 {
            eprintln!(
                "day {}: {written_sessions} sessions, {written_commands} commands, {:.0?}",
                day + 1,
                started.elapsed()
            );
        }
    }
    eprintln!("written in {:.0?}; compacting", started.elapsed());
    for done in lake.compact(std::time::Duration::ZERO).await? {
        eprintln!(
            "  {}: {} files into {}",
            done.table, done.files_removed, done.files_added
        );
    }
    println!(
        "{dir}: {written_sessions} sessions, {written_commands} commands, {written_trail} CloudTrail records over {days} days in {:.0?}",
        started.elapsed()
    );
    Ok(())
}
