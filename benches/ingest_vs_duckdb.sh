#!/usr/bin/env bash
# Ingest throughput, auditq against DuckDB, on the same generated corpus, in one run.
#
#   ./benches/ingest_vs_duckdb.sh [RECORDS] [CHUNKS]     (defaults 1000000 and 100000)
#
# Builds auditq in release (a clean release build of this stack takes about 45 minutes on 2
# cores), installs DuckDB (pinned) into target/bench-venv, generates the corpus once into
# target/bench-corpus-RECORDS, then times both with /usr/bin/time -v (wall time, peak RSS).
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
cat "$corpus/SIZES"
echo "== auditq"
/usr/bin/time -v target/release/auditq --data "$work/lake" ingest "$corpus/trail" "$corpus/ssm" \
  2> "$work/auditq.time"
grep -E "Elapsed|Maximum resident" "$work/auditq.time"
echo "== duckdb"
/usr/bin/time -v target/bench-venv/bin/python benches/duckdb_ingest.py "$corpus" "$work/duck" \
  2> "$work/duck.time"
grep -E "Elapsed|Maximum resident" "$work/duck.time"
