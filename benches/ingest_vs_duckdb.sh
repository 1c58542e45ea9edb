#!/usr/bin/env bash
# Ingest throughput, auditq against DuckDB, on the same generated corpus, in one run.
#
#   ./benches/ingest_vs_duckdb.sh [RECORDS] [CHUNKS]     (defaults 1000000 and 100000)
#
# Builds auditq in release (a clean release build of this stack takes about 45 minutes on 2
# cores), installs DuckDB (pinned) into target/bench-venv, generates the corpus once into
# target/bench-corpus-RECORDS, then times both with /usr/bin/time (Debian package `time`): wall
# time and peak resident memory, and prints records/s and MB/s of uncompressed input.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
chunks=${2:-100000}
corpus=target/bench-corpus-$records
if [ ! -f "$corpus/SIZES" ]; then
  python3 benches/generate_corpus.py "$corpus" --records "$records" --chunks "$chunks"
fi
if [ ! -x target/bench-venv/bin/python ]; then
  python3 -m venv target/bench-venv
  target/bench-venv/bin/pip install --quiet duckdb==1.4.1
fi
cargo build --release --locked --bin auditq
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/duck"
# shellcheck disable=SC1090
. <(sed 's/ /=/' "$corpus/SIZES")
echo "corpus: $trail_records CloudTrail records ($((trail_bytes / 1000000)) MB of JSON in $(ls "$corpus/trail" | wc -l) .json.gz files)," \
  "$ssm_chunks Session Manager chunks ($((ssm_bytes / 1000000)) MB of JSON); $(nproc) cores"

measure() { # name, records, bytes, command...
  local name=$1 records=$2 bytes=$3; shift 3
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2>&1 \
    || { cat "$work/$name.out"; exit 1; }
  read -r seconds kb < "$work/$name.time"
  awk -v n="$name" -v s="$seconds" -v kb="$kb" -v r="$records" -v b="$bytes" 'BEGIN {
    printf "%-14s %8.1f s %12.0f records/s %8.1f MB/s %8.0f MB peak RSS\n",
           n, s, r / s, b / 1e6 / s, kb / 1024 }'
  echo "$seconds" > "$work/$name.seconds"
}

all=$((trail_records + ssm_chunks)) all_bytes=$((trail_bytes + ssm_bytes))
echo "== everything (CloudTrail and Session Manager)"
measure auditq "$all" "$all_bytes" target/release/auditq --data "$work/lake" ingest "$corpus/trail" "$corpus/ssm"
measure duckdb "$all" "$all_bytes" target/bench-venv/bin/python benches/duckdb_ingest.py "$corpus" "$work/duck"
echo "== CloudTrail only"
measure auditq-trail "$trail_records" "$trail_bytes" target/release/auditq --data "$work/lake-trail" ingest "$corpus/trail"
measure duckdb-trail "$trail_records" "$trail_bytes" target/bench-venv/bin/python benches/duckdb_ingest.py "$corpus" "$work/duck" --trail-only
echo "--- auditq's summary:"; cat "$work/auditq.out"
echo "--- duckdb's:"; cat "$work/duckdb.out"
ratio() { awk -v a="$(cat "$work/$1.seconds")" -v d="$(cat "$work/$2.seconds")" -v what="$3" \
  'BEGIN { printf "ratio, %s: auditq is %.2fx the speed of DuckDB (DuckDB time / auditq time)\n", what, d / a }'; }
ratio auditq duckdb "everything"
ratio auditq-trail duckdb-trail "CloudTrail only"
