#!/usr/bin/env python3
"""Collect attacker command lines from every stored version of Cowrie logs in a git history.

usage: collect_raw.py text GITDIR TAG > out.log     (cowrie.log* text logs; 'CMD:' lines)
       collect_raw.py json GITDIR TAG > out.jsonl   (cowrie.json* logs; cowrie.command.input events)

A log file is committed many times while it grows and is later renamed on rotation, so the same
line appears in many blobs. For every session we keep each blob's run of lines (file order),
then merge the runs (drop runs contained in another, join overlapping runs) so that the
original order is kept and no line is invented or dropped.
"""
import re, subprocess, sys, collections, json

def blobs(gitdir, pathre):
    revs = subprocess.run(['git', '--git-dir', gitdir, 'rev-list', '--all'], capture_output=True, text=True).stdout.split()
    seen = set()
    for c in revs:
        out = subprocess.run(['git', '--git-dir', gitdir, 'ls-tree', '-r', c], capture_output=True, text=True).stdout
        for l in out.splitlines():
            meta, path = l.split('\t', 1)
            if re.match(pathre, path):
                seen.add(meta.split()[2])
    return sorted(seen)

def read_blobs(gitdir, shas):
    p = subprocess.Popen(['git', '--git-dir', gitdir, 'cat-file', '--batch'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for s in shas:
        p.stdin.write((s + '\n').encode()); p.stdin.flush()
        hdr = p.stdout.readline().split()
        if len(hdr) < 3 or hdr[1] == b'missing':
            continue
        n = int(hdr[2]); data = p.stdout.read(n); p.stdout.read(1)
        yield data.decode('utf-8', 'replace')
    p.stdin.close(); p.wait()

TXT = re.compile(r'^(\S+) \[(.*?Transport),(\d+),([0-9a-fA-F.:]+)\] CMD: ')

def key_text(line):
    m = TXT.match(line)
    return None if not m else ('T' if 'Telnet' in m.group(2) else 'S', m.group(3), m.group(4))

def key_json(line):
    if 'cowrie.command.input' not in line:
        return None
    try:
        e = json.loads(line)
    except ValueError:
        return None
    return e.get('session') if e.get('eventid') == 'cowrie.command.input' else None

def contains(big, small):
    n = len(small)
    return any(big[i:i + n] == small for i in range(len(big) - n + 1))

def merge(runs):
    """runs: list of (blob_start, lines).  Drop runs contained in another run, then put the rest
    in order: by the time of their first line, ties broken by the start time of the log file they
    come from (the part written before a log rotation sits in the older file)."""
    start = {}
    for bs, r in runs:
        t = tuple(r)
        start[t] = min(bs, start.get(t, bs))
    merged = []
    for r in sorted(start, key=lambda r: (-len(r), r)):
        if any(contains(m, r) for m in merged):
            continue
        merged.append(r)
    merged.sort(key=lambda r: (r[0][:24], start[r]))
    out = list(merged[0])
    for r in merged[1:]:
        ov = 0
        for k in range(min(len(out), len(r)), 0, -1):
            if tuple(out[-k:]) == r[:k]:
                ov = k; break
        out.extend(r[ov:])
    return out

def main():
    mode, gitdir, tag = sys.argv[1:4]
    pathre = r'cowrie\.log' if mode == 'text' else r'cowrie\.json'
    keyf = key_text if mode == 'text' else key_json
    runs = collections.defaultdict(list)
    for text in read_blobs(gitdir, blobs(gitdir, pathre)):
        cur = collections.defaultdict(list)
        lines = text.splitlines()
        blob_start = lines[0][:40] if lines else ''
        for line in lines:
            k = keyf(line)
            if k is not None:
                cur[k].append(line)
        for k, v in cur.items():
            runs[k].append((blob_start, v))
    sessions = [(k, merge(v)) for k, v in runs.items()]
    sessions.sort(key=lambda kv: (kv[1][0][:25] if mode == 'text' else '', str(kv[0])))
    for k, lines in sessions:
        for l in lines:
            sys.stdout.write(l + '\n')

main()
