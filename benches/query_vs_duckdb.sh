#!/usr/bin/env bash
# Query speed, auditq against DuckDB, on the same Parquet files, in one run; and the cold
# `auditq` process on the sample data.
#
#   ./benches/query_vs_duckdb.sh [COMMANDS] [SESSIONS] [RUNS]   (defaults 10000000 1000000 3)
#
# Builds auditq and the lake generator in release (a clean release build of this stack takes
# about 45 minutes on 2 cores), generates the lake once into target/bench-lake-COMMANDS
# (query/examples/generate_lake.rs: seeded, a year of sessions, written through auditq's lake
# writer and compacted as `auditq compact` does), installs DuckDB (pinned) into
# target/bench-venv, and runs benches/query_vs_duckdb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
commands=${1:-10000000}
sessions=${2:-1000000}
runs=${3:-3}
lake=target/bench-lake-$commands
cargo build --release --locked -p auditq-query --bin auditq --example generate_lake
if [ ! -f "$lake/GENERATED" ]; then
  rm -rf "$lake"
  target/release/examples/generate_lake "$lake" "$commands" "$sessions" 365 > "$lake.log"
  cp "$lake.log" "$lake/GENERATED"
fi
if [ ! -x target/bench-venv/bin/python ]; then
  python3 -m venv target/bench-venv
  target/bench-venv/bin/pip install --quiet duckdb==1.4.1
fi
cat "$lake/GENERATED"
echo "files: $(find "$lake/commands" -name '*.parquet' -not -path '*_delta_log*' | wc -l) in commands," \
  "$(find "$lake/sessions" -name '*.parquet' -not -path '*_delta_log*' | wc -l) in sessions;" \
  "$(du -sh "$lake" | cut -f1) in all; $(nproc) cores"
target/bench-venv/bin/python benches/query_vs_duckdb.py "$lake" target/release/auditq "$runs"

echo "== cold auditq process on the sample data (README's first query), 20 runs"
sample=$(mktemp -d)
trap 'rm -rf "$sample"' EXIT
target/release/auditq --data "$sample/lake" ingest sample-logs --rules default > /dev/null
for build in release debug; do
  [ -x "target/$build/auditq" ] || continue
  python3 - "target/$build/auditq" "$sample/lake" <<'PY'
import statistics, subprocess, sys, time
binary, lake = sys.argv[1], sys.argv[2]
sql = "select time, user, target, run_as, cmd where cmd like 'sudo%' order by time"
times = []
for _ in range(20):
    start = time.perf_counter()
    subprocess.run([binary, "--data", lake, sql], check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - start)
print(f"{binary}: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
PY
done
