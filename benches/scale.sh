#!/usr/bin/env bash
# Scale bench: one 1 MB CloudTrail batch (about 770 records, 5% of them repeating stored
# events) stored into lakes whose day partition already holds 0, 1M and 5M rows; auditq's time
# per batch and peak memory, the old design's read of the day's ids on the same lake, and DuckDB
# deduplicating the same batch against the same Delta table, in one run.
#
#   ./benches/scale.sh [ROWS...]      (default: 0 1000000 5000000)
#
# Builds the example in release (`ingest/examples/scale.rs`; the write path without DataFusion,
# about 10 minutes clean), builds each lake once into target/scale/lake-ROWS (kept: 5M rows take
# a few minutes), and stores the batch into a fresh copy of it each run. DuckDB (pinned, with
# its Delta extension) is installed into target/bench-venv-delta. Both sides are timed
# in-process: auditq around `Pipeline::store` (rules, lookups, commits included), DuckDB around
# its statements after the connection and the extension are loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(0 1000000 5000000)
dir=target/scale
mkdir -p "$dir"
cargo build --release --locked -p auditq-ingest --example scale
bin=target/release/examples/scale
venv=target/bench-venv-delta
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb==1.4.4 duckdb-ext-delta==1.4.4.20260205
fi
for n in "${rows[@]}"; do
  lake=$dir/lake-$n
  if [ ! -f "$lake/BUILT" ]; then
    rm -rf "$lake"
    "$bin" build "$lake" "$n"
    touch "$lake/BUILT"
  fi
  "$bin" batch "$n" "$dir/batch-$n.json"
  rm -rf "$dir/run-$n"
  cp -r "$lake" "$dir/run-$n"
  "$bin" store "$dir/run-$n" "$n" > "$dir/auditq-$n.json"
  "$venv/bin/python" benches/scale_duckdb.py "$lake" "$dir/batch-$n.json" "$dir/duck-$n" \
    > "$dir/duckdb-$n.json"
  rm -rf "$dir/run-$n" "$dir/duck-$n"
done
python3 - "$dir" "${rows[@]}" <<'PY'
import json, statistics, sys
d, rows = sys.argv[1], sys.argv[2:]
res = [(int(n), json.load(open(f"{d}/auditq-{n}.json")), json.load(open(f"{d}/duckdb-{n}.json"))) for n in rows]
print("auditq: 1 cold batch (a new process: footers and bloom filters read), then 10 warm ones (the next")
print("five-minute windows); DuckDB: the first batch, after connecting and loading its Delta extension.")
print(f"{'rows in the day':>16} | {'cold batch':>10} | {'warm median':>11} | {'warm p90':>8} | {'rows in groups read':>19} | {'peak RSS':>8} | {'read day ids':>12} | {'DuckDB anti-join':>16} | {'DuckDB near':>11}")
for n, a, k in res:
    decoded = statistics.median(b["rows_decoded"] for b in a["batches"][1:])
    print(f"{n:>16,} | {a['first']['ms']:>7.0f} ms | {a['warm_median_ms']:>8.0f} ms | {a['warm_p90_ms']:>5.0f} ms | {decoded:>19,.0f} | {a['peak_rss_mib']:>4.0f} MiB | {a['read_day_ids_ms']:>9.0f} ms | {k['anti_join_ms']:>13.0f} ms | {k['near_ms']:>8.0f} ms")
base = res[0][1]
for n, a, k in res[1:]:
    print(f"{n:,} rows against 0: warm {a['warm_median_ms'] / base['warm_median_ms']:.2f}x, cold {a['first']['ms'] / base['first']['ms']:.2f}x (goal: within 1.3x)")
for n, a, k in res:
    assert a["first"]["duplicates"] == k["duplicates"], (n, a["first"], k)
    print(f"{n:,}: duplicates in the first batch {a['first']['duplicates']} by auditq, {k['duplicates']} by DuckDB; "
          f"DuckDB's anti-join takes {k['anti_join_ms'] / a['warm_median_ms']:.1f}x auditq's warm batch, its lookup near the batch's times {k['near_ms'] / a['warm_median_ms']:.1f}x")
PY
