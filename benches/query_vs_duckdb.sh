#!/usr/bin/env bash
# Query speed, auditq against DuckDB on the same lake, both in-process, in one run; and the cold
# `auditq` process on the sample data.
#
#   ./benches/query_vs_duckdb.sh [COMMANDS] [SESSIONS] [RUNS]   (defaults 10000000 1000000 3)
#
# Builds auditq, the lake generator and auditq's in-process harness (query/examples/query_bench.rs)
# in release (a clean release build of this stack takes about 45 minutes on 2 cores), generates
# the lake once into target/bench-lake-COMMANDS (query/examples/generate_lake.rs: seeded, a year
# of sessions with their CloudTrail StartSession, one in 25 a port forward nothing recorded,
# written through auditq's lake writer and compacted as `auditq compact` does), installs DuckDB
# 1.4.4 and its Delta extension (pinned) into target/bench-venv-delta, and runs
# benches/query_vs_duckdb.py over benches/query_questions.json: auditq against DuckDB's
# read_parquet over the files and DuckDB's delta_scan over the Delta tables.
set -euo pipefail
cd "$(dirname "$0")/.."
commands=${1:-10000000}
sessions=${2:-1000000}
runs=${3:-3}
lake=target/bench-lake-$commands
cargo build --release --locked -p auditq-query --bin auditq --example generate_lake --example query_bench
if [ ! -f "$lake/GENERATED" ]; then
  rm -rf "$lake"
  target/release/examples/generate_lake "$lake" "$commands" "$sessions" 365 > "$lake.log"
  cp "$lake.log" "$lake/GENERATED"
fi
venv=target/bench-venv-delta
if [ ! -x $venv/bin/python ] || ! $venv/bin/python -c "import duckdb, duckdb_ext" 2>/dev/null; then
  python3 -m venv $venv
  $venv/bin/pip install --quiet duckdb==1.4.4 duckdb-ext-delta==1.4.4.20260205
fi
cat "$lake/GENERATED"
echo "files: $(find "$lake/commands" -name '*.parquet' -not -path '*_delta_log*' | wc -l) in commands," \
  "$(find "$lake/sessions" -name '*.parquet' -not -path '*_delta_log*' | wc -l) in sessions," \
  "$(find "$lake/cloudtrail" -name '*.parquet' -not -path '*_delta_log*' | wc -l) in cloudtrail;" \
  "$(du -sh "$lake" | cut -f1) in all; $(nproc) cores"
$venv/bin/python benches/query_vs_duckdb.py "$lake" target/release/examples/query_bench "$runs"

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
