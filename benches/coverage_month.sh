#!/usr/bin/env bash
# Issue 21's measures over a generated month (5 accounts, 2 regions, 2,000 sessions, with planted
# faults: auditq_tests::month), release, each side by side with what a user would do instead:
#
#   coverage  against DuckDB 1.4.4 running coverage's own statements over the same Delta tables
#             (benches/coverage_duckdb.py, delta_scan), both as processes;
#   evidence  against tar + sha256sum of the lake's files (a by-hand bundle and its manifest);
#   verify    against extracting that by-hand bundle and sha256sum -c.
#
#   ./benches/coverage_month.sh [RUNS]    (default 5)
#
# Needs target/bench-venv-delta (benches/query_vs_duckdb.sh makes it) and farm-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
lake=target/bench-month
work=$(mktemp -d)
export AUDITQ_SIGNING_KEY=${AUDITQ_SIGNING_KEY:-$(head -c 32 /dev/urandom | base64)}
export AUDITQ_CONFIG_DIR=$work/config
cargo build --release --locked -p auditq-query --bin auditq --example generate_month
rm -rf "$lake"
target/release/examples/generate_month "$lake"
auditq=target/release/auditq
period=(--from 2026-09-01 --to 2026-09-30)
echo "== the month: $(du -sh "$lake" | cut -f1), $(find "$lake" -name '*.parquet' -not -path '*_delta_log*' | wc -l) data files; $(nproc) cores"
$auditq --data "$lake" --format json coverage "${period[@]}" > "$work/coverage.json"
python3 -c "import json,collections,sys; f=json.load(open(sys.argv[1]))['findings']; print('findings:', len(f), dict(collections.Counter(x['kind'] for x in f)))" "$work/coverage.json"
target/bench-venv-delta/bin/python benches/coverage_duckdb.py "$lake" "$work/coverage.json"

echo "== coverage: auditq (A) against DuckDB running the same statements (B)"
farm-bench -n "$runs" --timeout 900 --vs "target/bench-venv-delta/bin/python benches/coverage_duckdb.py $lake $work/coverage.json" \
  -- $auditq --data "$lake" coverage "${period[@]}"

echo "== evidence: auditq evidence (A, no replays: the month's streams are not stored) against tar + sha256sum (B)"
files=$(cd "$lake" && find . -type f -not -path './access_log/*' -not -path './_auditq/digests/access_log/*' | sort)
echo "$files" > "$work/files"
farm-bench -n "$runs" --timeout 900 \
  --vs "sh -c 'cd $lake && tar -cf $work/hand.tar -T $work/files && sha256sum \$(cat $work/files) > $work/hand.sha256'" \
  -- $auditq --data "$lake" evidence "${period[@]}" --replays 0 -o "$work/evidence.tar"
rows=$($auditq --data "$lake" --format csv "select (select count(*) from sessions) + (select count(*) from commands) + (select count(*) from cloudtrail) + (select count(*) from host_events) as n" | tail -1)
echo "bundle: $(stat -c %s "$work/evidence.tar") bytes for $rows rows ($(tar -tf "$work/evidence.tar" | grep -c parquet) Parquet files);" \
  "the by-hand tar: $(stat -c %s "$work/hand.tar") bytes"

key=$($auditq key | awk '/public key/{print $3}')
echo "== verify: auditq verify of the bundle (A) against extracting the by-hand tar and sha256sum -c (B)"
farm-bench -n "$runs" --timeout 900 \
  --vs "sh -c 'rm -rf $work/x && mkdir $work/x && tar -xf $work/hand.tar -C $work/x && cd $work/x && sha256sum --quiet -c $work/hand.sha256'" \
  -- $auditq --data "$work/nowhere" verify "$work/evidence.tar" --public-key "$key"
rm -rf "$work"
