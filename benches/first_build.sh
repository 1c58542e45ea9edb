#!/usr/bin/env bash
# A newcomer's first run: the README's first command from a fresh clone with an empty cargo
# cache (every dependency downloaded and built), timed, for one or more commits in turn.
#
#   ./benches/first_build.sh HEAD                  # this checkout's commit
#   ./benches/first_build.sh 97f6db4 HEAD 97f6db4 HEAD   # before and after, alternated
#
# Run it with nothing else on the machine (never beside another cargo build): a 2-core VM's speed
# drifts by 20% between runs, so compare commits alternated in one sitting. Each run prints its
# wall time, the CPU time of every compiled unit added up, the unit that finished last and when
# DataFusion (the longest chain) finished; cargo's timing report is kept under
# target/first-build/LABEL.html. Needs network access (crates.io) and about 3 GB under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$repo/target/first-build
mkdir -p "$out"
question="select time, user, target, run_as, source, cmd where cmd like 'sudo%' order by time"

run=0
for rev in "$@"; do
  run=$((run + 1))
  commit=$(git rev-parse --short "$rev")
  label="$run-$commit"
  work=$(mktemp -d /tmp/auditq-first-build.XXXXXX)
  git clone -q "$repo" "$work/auditq"
  git -C "$work/auditq" checkout -q "$commit"
  export CARGO_HOME=$work/cargo-home
  mkdir -p "$CARGO_HOME"
  start=$(date +%s.%N)
  if ! (cd "$work/auditq" && cargo run --timings --bin auditq -- "$question" \
      > "$work/answer.txt" 2> "$work/build.txt"); then
    tail -20 "$work/build.txt" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  cp "$work/auditq/target/cargo-timings/cargo-timing.html" "$out/$label.html"
  rows=$(grep -c '| sudo' "$work/answer.txt" || true)
  python3 - "$out/$label.html" "$label" "$start" "$end" "$rows" <<'PY'
import json, re, sys
html, label, start, end, rows = sys.argv[1:]
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", open(html).read(), re.S).group(1))
cpu = sum(u["duration"] for u in units)
finish = lambda u: u["start"] + u["duration"]
last = max(units, key=finish)
datafusion = max((finish(u) for u in units if u["name"] == "datafusion"), default=0)
print(f"{label}: {float(end) - float(start):.0f} s to the answer ({rows} sudo rows); "
      f"{len(units)} units, {cpu:.0f} s of CPU; DataFusion done at {datafusion:.0f} s; "
      f"last: {last['name']} {last.get('target', '').strip()} at {finish(last):.0f} s")
PY
  rm -rf "$work"
done
