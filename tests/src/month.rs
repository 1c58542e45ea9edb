//! A seeded month of access with planted faults, for `auditq coverage`'s tests and benchmark:
//! 5 accounts, 2 regions, 2,000 Session Manager shells on 100 instances that ship auditd,
//! background CloudTrail every hour in every account and region, and these faults:
//!
//! - one hour with no CloudTrail in one account and region;
//! - ten sessions whose stream stops long before the session ends (cut short);
//! - five sessions nothing recorded;
//! - one instance whose auditd records stop on day 20 while sessions go on.
//!
//! Everything else is complete: every session has its `StartSession` and `TerminateSession`,
//! a stream without silences longer than a few minutes that ends shortly before the session,
//! and an auditd `exec` for each command. Written through auditq's own lake writer.

use auditq_ingest::Lake;
use auditq_model::{Command, HostEvent, Session, Timestamp, TrailEvent, day_of, event_id};
use chrono::{Duration, TimeZone, Utc};

/// What was planted, to check against what coverage finds.
#[derive(Debug, Clone, Default)]
pub struct Planted {
    /// `ACCOUNT/REGION` and the hour with no CloudTrail.
    pub missing_trail: (String, Timestamp),
    /// Sessions whose stream stops long before they end.
    pub cut_short: Vec<String>,
    /// Sessions nothing recorded.
    pub unrecorded: Vec<String>,
    /// The instance whose auditd stops, and from when.
    pub silent_host: (String, Timestamp),
    /// Rows written: sessions, commands, CloudTrail records, host events.
    pub rows: [usize; 4],
}

/// The month's first instant.
pub fn first_day() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Days in the month.
pub const DAYS: i64 = 30;
const ACCOUNTS: [&str; 5] = [
    "210987654321",
    "321098765432",
    "432109876543",
    "543210987654",
    "654321098765",
];
const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];
const COMMANDS: [&str; 12] = [
    "ls -la",
    "df -h",
    "uptime",
    "systemctl status nginx",
    "sudo systemctl restart nginx",
    "tail -n 50 /var/log/app.log",
    "free -m",
    "ps aux",
    "cat /etc/os-release",
    "journalctl -u app --since today",
    "sudo -i",
    "exit",
];

/// xorshift64*: the same month on every machine.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn instance(account: usize, region: usize, n: usize) -> String {
    format!("i-0{account}{region}{n:014x}")
}

#[allow(clippy::too_many_arguments)]
fn call(
    name: &str,
    id: &str,
    at: Timestamp,
    account: &str,
    region: &str,
    user: &str,
    session: Option<&str>,
    target: &str,
) -> TrailEvent {
    TrailEvent {
        event_id: event_id("month-trail", &[id, name]),
        time: at,
        date: day_of(&at),
        principal_arn: Some(format!("arn:aws:iam::{account}:user/{user}")),
        principal_type: Some("IAMUser".to_string()),
        user: Some(user.to_string()),
        access_key_id: None,
        mfa: Some(true),
        account: Some(account.to_string()),
        region: Some(region.to_string()),
        source_ip: Some("198.51.100.7".to_string()),
        user_agent: Some("aws-cli/2.17.0".to_string()),
        event_source: if session.is_some() { "ssm" } else { "ec2" }.to_string() + ".amazonaws.com",
        event_name: name.to_string(),
        event_type: Some("AwsApiCall".to_string()),
        error_code: None,
        error_message: None,
        read_only: Some(session.is_none()),
        session_id: session.map(str::to_string),
        request: Some(format!(r#"{{"target":"{target}"}}"#)),
        response: None,
        additional: None,
        resources: None,
        origin: format!(
            "s3://trail/AWSLogs/{account}/CloudTrail/{region}/{}",
            day_of(&at)
        ),
    }
}

/// Writes the month into `lake` and says what was planted.
pub async fn write(lake: &Lake) -> anyhow::Result<Planted> {
    let mut rng = Rng(0x000c_0ffe_e5ea_5eed);
    let start = first_day();
    let missing_hour = start + Duration::days(12) + Duration::hours(13);
    let (gap_account, gap_region) = (0usize, 1usize);
    let silent = instance(1, 0, 7);
    let silent_from = start + Duration::days(20);
    let mut planted = Planted {
        missing_trail: (
            format!("{}/{}", ACCOUNTS[gap_account], REGIONS[gap_region]),
            missing_hour,
        ),
        silent_host: (silent.clone(), silent_from),
        ..Planted::default()
    };
    let in_missing_hour = |account: usize, region: usize, at: Timestamp| {
        account == gap_account
            && region == gap_region
            && at >= missing_hour
            && at < missing_hour + Duration::hours(1)
    };
    let sessions_per_day = 2000 / DAYS as u64 + 1;
    let mut written = 0u64;
    for day in 0..DAYS {
        let midnight = start + Duration::days(day);
        let mut trail = Vec::new();
        let mut sessions = Vec::new();
        let mut commands = Vec::new();
        let mut host = Vec::new();
        // Background: a monitoring role's calls, three an hour in every account and region.
        for (a, account) in ACCOUNTS.iter().enumerate() {
            for (r, region) in REGIONS.iter().enumerate() {
                for hour in 0..24 {
                    for n in 0..3 {
                        let at = midnight
                            + Duration::hours(hour)
                            + Duration::seconds(rng.below(3600) as i64);
                        if in_missing_hour(a, r, at) {
                            continue;
                        }
                        let id = format!("{account}-{region}-{day}-{hour}-{n}");
                        trail.push(call(
                            "DescribeInstances",
                            &id,
                            at,
                            account,
                            region,
                            "monitoring",
                            None,
                            "",
                        ));
                    }
                }
            }
        }
        for _ in 0..sessions_per_day {
            if written == 2000 {
                break;
            }
            let n = written;
            written += 1;
            let (mut a, mut r) = (rng.below(5) as usize, rng.below(2) as usize);
            let mut target = instance(a, r, rng.below(10) as usize);
            // The silent host gets a share of the sessions after its auditd stops.
            if day >= 20 && n.is_multiple_of(40) {
                (a, r) = (1, 0);
                target = silent.clone();
            }
            // Nothing of a session falls in the missing hour's day there (its calls would
            // fill the gap).
            if (a, r) == (gap_account, gap_region) && day == (missing_hour - start).num_days() {
                r = 0;
                target = instance(a, r, rng.below(10) as usize);
            }
            let (account, region) = (ACCOUNTS[a], REGIONS[r]);
            let user = format!("admin{:02}", rng.below(40));
            let session_id = format!("{user}-{n:017x}");
            let begin = midnight + Duration::seconds(rng.below(80_000) as i64);
            let unrecorded = n % 400 == 17;
            let cut_short = n % 200 == 101;
            let mut time = begin;
            let count = 3 + rng.below(10) as usize;
            let mut recorded = 0i64;
            let mut silence = 0i64;
            let mut last_recorded = begin;
            for seq in 1..=count {
                let step = 10 + rng.below(290) as i64;
                time += Duration::seconds(step);
                let cmd = COMMANDS[rng.below(COMMANDS.len() as u64) as usize];
                let lost = cut_short && seq > count / 2;
                let shown = !(unrecorded || lost);
                if shown {
                    recorded += 1;
                    silence = silence.max((time - last_recorded).num_seconds());
                    last_recorded = time + Duration::seconds(2);
                    commands.push(Command {
                        event_id: event_id("month-cmd", &[&session_id, &seq.to_string()]),
                        time,
                        date: day_of(&time),
                        user: Some(user.clone()),
                        principal_arn: Some(format!("arn:aws:iam::{account}:user/{user}")),
                        run_as: Some("ssm-user".to_string()),
                        target: Some(target.clone()),
                        account: Some(account.to_string()),
                        region: Some(region.to_string()),
                        source_ip: Some("198.51.100.7".to_string()),
                        cmd: cmd.to_string(),
                        cwd: Some("~".to_string()),
                        session_id: Some(session_id.clone()),
                        seq: seq as i64,
                        source: "stream".to_string(),
                        origin: format!("cwl://aws/ssm/sessions/{session_id}"),
                        parent_cmd: None,
                        seen_in_transcript: None,
                        target_name: None,
                        environment: None,
                        account_alias: None,
                    });
                }
                let stopped = target == silent && time >= silent_from;
                let host_logs = !(unrecorded || stopped);
                if host_logs {
                    let at = time + Duration::seconds(1);
                    host.push(HostEvent {
                        event_id: event_id("month-host", &[&session_id, &seq.to_string()]),
                        time: at,
                        date: day_of(&at),
                        user: Some("ssm-user".to_string()),
                        run_as: Some("ssm-user".to_string()),
                        host: None,
                        target: Some(target.clone()),
                        source_ip: None,
                        program: "auditd".to_string(),
                        action: "exec".to_string(),
                        outcome: Some("success".to_string()),
                        cmd: Some(cmd.to_string()),
                        raw: format!("type=EXECVE msg=audit({}.000:{n}{seq})", at.timestamp()),
                        origin: format!("cwl://host-logs/{target}"),
                        pid: Some(1000 + seq as i64),
                        tty: Some("pts/0".to_string()),
                        cwd: Some("/home/ssm-user".to_string()),
                        auth: None,
                        key: None,
                        reason: None,
                        audit_key: None,
                        session_id: Some(session_id.clone()),
                        ppid: Some(999),
                        audit_session: None,
                        exe: None,
                    });
                }
            }
            let ended = if cut_short {
                planted.cut_short.push(session_id.clone());
                last_recorded + Duration::minutes(45 + rng.below(45) as i64)
            } else {
                time + Duration::seconds(5 + rng.below(600) as i64)
            };
            if unrecorded {
                planted.unrecorded.push(session_id.clone());
            }
            for (name, at) in [("StartSession", begin), ("TerminateSession", ended)] {
                trail.push(call(
                    name,
                    &session_id,
                    at,
                    account,
                    region,
                    &user,
                    Some(&session_id),
                    &target,
                ));
            }
            sessions.push(Session {
                session_id: session_id.clone(),
                date: day_of(&begin),
                user: Some(user.clone()),
                principal_arn: Some(format!("arn:aws:iam::{account}:user/{user}")),
                source_ip: Some("198.51.100.7".to_string()),
                user_agent: Some("aws-cli/2.17.0".to_string()),
                started_at: Some(begin),
                ended_at: Some(ended),
                duration_seconds: Some((ended - begin).num_seconds()),
                target: Some(target.clone()),
                account: Some(account.to_string()),
                region: Some(region.to_string()),
                document: Some("SSM-SessionManagerRunShell".to_string()),
                kind: "shell".to_string(),
                run_as: Some("ssm-user".to_string()),
                commands: recorded,
                logged: if unrecorded { "none" } else { "stream" }.to_string(),
                transcript_uri: None,
                stream_uri: (!unrecorded).then(|| format!("cwl://aws/ssm/sessions/{session_id}")),
                reason: None,
                start_event_id: Some(event_id("month-trail", &[&session_id, "StartSession"])),
                target_name: None,
                environment: None,
                account_alias: None,
                recorded_to: (!unrecorded).then_some(last_recorded),
                longest_silence_seconds: (!unrecorded).then_some(silence),
            });
        }
        planted.rows[0] += lake.append(&sessions).await?.added;
        planted.rows[1] += lake.append(&commands).await?.added;
        planted.rows[2] += lake.append(&trail).await?.added;
        planted.rows[3] += lake.append(&host).await?.added;
    }
    Ok(planted)
}
