#!/usr/bin/env python3
"""Regenerate honeypot-sessions.jsonl from the raw honeypot logs in raw/ (stdlib only).

Raw inputs (see README.md for where each comes from):
  raw/scriptzteam_v*.cmd.log      Cowrie text-log 'CMD:' lines, one session's lines kept together, in order
  raw/<name>.cmd.jsonl            Cowrie JSON 'cowrie.command.input' events (kareiva, radec73, vignesh942)
  raw/zyw286_sessions_*.jsonl     rows of zyw-286/shell-attack-evolution-dataset dataset/sessions/*.jsonl
                                  (only the fields session_id and commands are needed)

Per source: sessions are rebuilt in original order, exact duplicate sessions (same command
sequence) are dropped (the earliest copy is kept), and at most CAP sessions are kept per
"shape" (the set of commands after masking IPs, numbers, hex escapes and the random tokens
bots use), so that one botnet does not swamp the set.  Labels come from labels.tsv
(cmd<TAB>label, the command JSON-escaped); a command without a label is reported and
written with label "UNLABELLED".

usage: python3 extract.py [--raw DIR] [--out FILE] [--labels FILE] [--cap N]
"""
import argparse, collections, glob, json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
TXT = re.compile(r'^(\S+) \[(.*?Transport),(\d+),([0-9a-fA-F.:]+)\] CMD: (.*)$')


def norm(c):
    c = re.sub(r'\d+\.\d+\.\d+\.\d+', 'IP', c)
    c = re.sub(r'\\x[0-9a-fA-F]{2}', 'X', c)
    c = re.sub(r'\b[A-Z]{5}\b', 'TOK', c)
    c = re.sub(r'\b[0-9a-f]{8}\b', 'HEX', c)
    return re.sub(r'\d+', 'N', c)


RAW_LINES = collections.defaultdict(list)   # session id -> raw log lines (text logs only)


def read_text(path, tag):
    """Cowrie text log: key = transport kind + transport number + source IP."""
    sess = collections.OrderedDict()
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            m = TXT.match(line.rstrip('\n'))
            if m:
                kind = 'telnet' if 'Telnet' in m.group(2) else 'ssh'
                sid = '%s/%s-%s/%s' % (tag, kind, m.group(3), m.group(4))
                sess.setdefault(sid, []).append(m.group(5))
                RAW_LINES[sid].append(line if line.endswith('\n') else line + '\n')
    return sess


def read_json(path, tag):
    """Cowrie JSON log: key = Cowrie session id; order = timestamp (microseconds)."""
    ev = collections.defaultdict(list)
    with open(path, encoding='utf-8', errors='replace') as f:
        for n, line in enumerate(f):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get('eventid') == 'cowrie.command.input':
                ev[e['session']].append((e.get('timestamp', ''), n, e['input']))
    sess = collections.OrderedDict()
    for sid, v in sorted(ev.items(), key=lambda kv: min(kv[1])):
        sess['%s/%s' % (tag, sid)] = [c for _, _, c in sorted(v)]
    return sess


NOT_TRANSCRIBED = collections.Counter()


def read_zyw(path, tag):
    """Rows transcribed from zyw-286 dataset/sessions/*.jsonl.  A row is either
    {"session_id", "commands"}, or {"session_id", "same_commands_as": <earlier session_id>}
    (an exact duplicate, written short), or {"session_id", "not_transcribed": <why>}."""
    sess, byid = collections.OrderedDict(), {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if 'not_transcribed' in r:
                NOT_TRANSCRIBED[tag] += 1
                continue
            cmds = list(r['commands']) if 'commands' in r else byid[r['same_commands_as']]
            byid[r['session_id']] = cmds
            sess['%s/%s' % (tag, r['session_id'])] = cmds
    return sess


SOURCES = [  # (glob under raw/, reader, source name)
    ('scriptzteam_v*.cmd.log', read_text, 'scriptzteam-realtime-ssh-honeypot'),
    ('kareiva_cowrie-logs.cmd.jsonl', read_json, 'kareiva-cowrie-logs'),
    ('radec73_cowrie2.cmd.jsonl', read_json, 'radec73-cowrie2'),
    ('vignesh942_cowrie-ti.cmd.jsonl', read_json, 'vignesh942-cowrie-ti'),
    ('zyw286_sessions_*.jsonl', read_zyw, 'zyw286-shell-attack-evolution'),
]


def file_tag(path):
    """scriptzteam_v1.4.cmd.log -> scriptzteam_v1.4 ; zyw286_sessions_2024.jsonl -> zyw286_2024"""
    base = re.sub(r'\.(cmd\.)?(log|jsonl)$', '', os.path.basename(path))
    return base.replace('sessions_', '')


def select(sessions, cap):
    seen, per_shape, kept, dups, capped = set(), collections.Counter(), [], 0, 0
    for sid, cmds in sessions.items():
        t = tuple(cmds)
        if t in seen:
            dups += 1
            continue
        seen.add(t)
        shape = frozenset(norm(c) for c in cmds)
        if per_shape[shape] >= cap:
            capped += 1
            continue
        per_shape[shape] += 1
        kept.append((sid, cmds))
    return kept, dups, capped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--raw', default=os.path.join(HERE, 'raw'))
    ap.add_argument('--out', default=os.path.join(HERE, 'honeypot-sessions.jsonl'))
    ap.add_argument('--labels', default=os.path.join(HERE, 'labels.tsv'))
    ap.add_argument('--cap', type=int, default=3)
    ap.add_argument('--excerpt', metavar='DIR', help='also write the raw lines of the kept sessions of text '
                    'logs (other raw files are copied whole) to DIR; used to make raw/ from full collections')
    a = ap.parse_args()
    labels = {}
    if os.path.exists(a.labels):
        with open(a.labels, encoding='utf-8') as f:
            for line in f:
                if line.startswith('#') or '\t' not in line:
                    continue
                cmd, lab = line.rstrip('\n').rsplit('\t', 1)
                labels[json.loads(cmd)] = lab
    out, missing = [], set()
    for pattern, reader, name in SOURCES:
        sessions = collections.OrderedDict()
        for path in sorted(glob.glob(os.path.join(a.raw, pattern))):
            tag = file_tag(path)
            sessions.update(reader(path, tag))
        if not sessions:
            continue
        kept, dups, capped = select(sessions, a.cap)
        if a.excerpt:
            os.makedirs(a.excerpt, exist_ok=True)
            for path in sorted(glob.glob(os.path.join(a.raw, pattern))):
                dst = os.path.join(a.excerpt, os.path.basename(path))
                with open(dst, 'w', encoding='utf-8') as w:
                    if reader is read_text:
                        tag = file_tag(path)
                        for sid, _ in kept:
                            if sid.startswith(tag + '/'):
                                w.writelines(RAW_LINES[sid])
                    else:
                        with open(path, encoding='utf-8', errors='replace') as r:
                            w.write(r.read())
        ncmd = sum(len(c) for _, c in kept)
        print('%-34s sessions %6d  exact-duplicates dropped %6d  over-cap dropped %5d  kept %4d sessions / %5d commands'
              % (name, len(sessions), dups, capped, len(kept), ncmd), file=sys.stderr)
        if reader is read_zyw and NOT_TRANSCRIBED:
            print('%-34s (%d rows read but not transcribed: %s)' % ('', sum(NOT_TRANSCRIBED.values()), dict(NOT_TRANSCRIBED)), file=sys.stderr)
        for sid, cmds in kept:
            for i, c in enumerate(cmds, 1):
                lab = labels.get(c)
                if lab is None:
                    missing.add(c)
                    lab = 'UNLABELLED'
                out.append({'session': sid, 'seq': i, 'cmd': c, 'source': name, 'label': lab})
    with open(a.out, 'w', encoding='utf-8') as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + '\n')
    print('wrote %d commands to %s; %d distinct commands lack a label' % (len(out), a.out, len(missing)), file=sys.stderr)


if __name__ == '__main__':
    main()
