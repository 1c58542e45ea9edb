#!/usr/bin/env python3
"""Replays real attacker sessions (benches/attacks) as Session Manager streams through auditq.

Each session becomes a CloudWatch Logs export of its Session Manager stream (one event per
command: the prompt and the command as typed, then the prompt again), the way
`aws logs filter-log-events` writes it; `auditq rules scan RULES --over DIR --list` then parses
them as any stream and runs the rules, and each alert is traced back to the command it was
raised on by its time (commands are a second apart, sessions an hour apart).

    python3 benches/honeypot_replay.py [--auditq target/debug/auditq] [--rules default,../shared/corpora/sigma]

Prints, per label judged before any rule ran, how many commands were alerted at medium or
higher, and how many sessions with a fetch, persist, escalate or hide command raised one. Also
how many commands the stream parser extracted, against how many were typed.
"""
import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = ("fetch", "persist", "escalate", "hide")
SEVERE = ("medium", "high", "critical")
PROMPT = "[root@ip-10-0-1-11 ~]# "
START = datetime.datetime(2026, 9, 1, tzinfo=datetime.timezone.utc)


def sessions(paths):
    found = collections.OrderedDict()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                key = f"{row['source']}:{row['session']}"
                found.setdefault(key, []).append((row["seq"], row["cmd"], row["label"]))
    for commands in found.values():
        commands.sort()
    return found


def stream_export(session_id, start, commands):
    events = []
    for seq, cmd, _ in commands:
        at = start + datetime.timedelta(seconds=seq)
        millis = int(at.timestamp() * 1000)
        message = {
            "eventVersion": "1.0",
            "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "awsRegion": "eu-west-1",
            "target": {"id": "i-0a1b2c3d4e5f60711"},
            "userIdentity": {"arn": "arn:aws:iam::111122223333:user/intruder"},
            "runAsUser": "root",
            "sessionId": session_id,
            "sessionData": [f"{PROMPT}{cmd}", "", PROMPT],
        }
        events.append({
            "logStreamName": session_id,
            "timestamp": millis,
            "message": json.dumps(message),
            "ingestionTime": millis + 200,
            "eventId": f"{millis}{seq:045d}",
        })
    return {"events": events}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--auditq", default=os.path.join(HERE, "..", "target", "debug", "auditq"))
    parser.add_argument("--rules", default="default," + os.path.join(HERE, "..", "..", "shared", "corpora", "sigma"))
    parser.add_argument("sessions", nargs="*", default=[
        p for p in (os.path.join(HERE, "attacks", "honeypot-sessions.jsonl"),
                    os.path.join(HERE, "attacks", "unlicensed", "honeypot-sessions.jsonl"))
        if os.path.exists(p)])
    parser.add_argument("--missed", action="store_true", help="list the commands missed, by label")
    args = parser.parse_args()
    found = sessions(args.sessions)
    by_time = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (key, commands) in enumerate(found.items()):
            # Session Manager ids: user name, dash, 17 or more hex digits.
            session_id = f"intruder-{n:017x}"
            start = START + datetime.timedelta(hours=n)
            for seq, cmd, label in commands:
                at = start + datetime.timedelta(seconds=seq)
                by_time[at.strftime("%Y-%m-%d %H:%M:%S")] = (key, seq, cmd, label)
            with open(os.path.join(tmp, f"{session_id}.json"), "w", encoding="utf-8") as f:
                json.dump(stream_export(session_id, start, commands), f)
        out = subprocess.run(
            [args.auditq, "rules", "scan", args.rules, "--over", tmp, "--list"],
            capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"auditq failed: {out.stderr}")
    alerted = collections.defaultdict(set)
    unmatched = 0
    line_re = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\S+):")
    for line in out.stdout.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        time, severity, rule = m.groups()
        if severity not in SEVERE:
            continue
        if time in by_time:
            key, seq, _, _ = by_time[time]
            alerted[(key, seq)].add(rule)
        else:
            unmatched += 1
    summary = next((l for l in out.stdout.splitlines() if "events scanned" in l), "")
    typed = sum(len(c) for c in found.values())
    extracted = re.search(r"\((\d+) commands", summary)
    print(f"{len(found)} sessions, {typed} commands typed; the stream parser extracted "
          f"{extracted.group(1) if extracted else '?'} commands ({summary.split(':')[0]})")
    per_label = collections.Counter()
    hit_label = collections.Counter()
    bad_sessions = set()
    bad_alerted = set()
    alerted_sessions = {key for key, _ in alerted}
    for key, commands in found.items():
        for seq, cmd, label in commands:
            per_label[label] += 1
            if (key, seq) in alerted:
                hit_label[label] += 1
            if label in BAD:
                bad_sessions.add(key)
                if key in alerted_sessions:
                    bad_alerted.add(key)
    print()
    print("| label (judged before running the rules) | commands | alerted (medium+) on the command | recall |")
    print("|---|---:|---:|---:|")
    for label in sorted(per_label):
        print(f"| {label} | {per_label[label]} | {hit_label[label]} | "
              f"{100.0 * hit_label[label] / per_label[label]:.1f}% |")
    bad = sum(per_label[l] for l in BAD)
    bad_hit = sum(hit_label[l] for l in BAD)
    print()
    print(f"fetch, persist, escalate, hide together: **{bad_hit} of {bad} commands "
          f"({100.0 * bad_hit / max(bad, 1):.1f}%)**; sessions with any such command that raised "
          f"an alert: **{len(bad_alerted)} of {len(bad_sessions)} "
          f"({100.0 * len(bad_alerted) / max(len(bad_sessions), 1):.1f}%)**.")
    if args.missed:
        missed = collections.defaultdict(collections.Counter)
        for key, commands in found.items():
            for seq, cmd, label in commands:
                if label in BAD and (key, seq) not in alerted:
                    missed[label][cmd] += 1
        for label, cmds in sorted(missed.items()):
            print(f"\nmissed {label}: {sum(cmds.values())} commands, {len(cmds)} distinct")
            for cmd, count in cmds.most_common():
                print(f"  {count:>4}  {cmd[:200]!r}")
    if unmatched:
        print(f"({unmatched} medium+ alerts at a time no command was typed: session-level rules)")


if __name__ == "__main__":
    main()
