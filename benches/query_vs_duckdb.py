"""Times auditq and DuckDB on the same questions over the same lake, both in-process, in one run.

    target/bench-venv-delta/bin/python benches/query_vs_duckdb.py LAKE QUERY_BENCH [RUNS]

LAKE is a lake written by `generate_lake` (compacted, vacuumed: only the files of the current
version are on disk). QUERY_BENCH is auditq's harness (`query/examples/query_bench.rs`, release).
The questions are in benches/query_questions.json, each written for both engines.

Both sides are timed the same way, in-process, and write the answer as CSV to /dev/null:

- auditq (the harness): a fresh session over the lake's current version (the Delta log read),
  the statement planned, the answer streamed as CSV into /dev/null.
- DuckDB 1.4.4, two baselines: a fresh `duckdb.connect()` with views over the same files, either
  `read_parquet('.../date=*/*.parquet', hive_partitioning = true)` or the Delta extension's
  `delta_scan` (duckdb-ext-delta, loaded from its wheel), then `COPY (query) TO '/dev/null'`.

Each question is asked RUNS times (default 3) of each; medians are reported. Row counts come from
one more, untimed run of each, and must agree (the run stops otherwise).
"""

import glob
import json
import os
import statistics
import subprocess
import sys
import time

import duckdb

lake, harness = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
here = os.path.dirname(os.path.abspath(__file__))
questions_file = os.path.join(here, "query_questions.json")
questions = json.load(open(questions_file))
extension = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_ext", "extensions",
                                   "v*", "linux_amd64", "delta.duckdb_extension"))
TABLES = ("commands", "sessions", "cloudtrail")


def connect(source):
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    if source == "delta_scan":
        con.execute(f"load '{extension[0]}'")
    for table in TABLES:
        if source == "read_parquet":
            con.execute(f"create view {table} as select * from read_parquet("
                        f"'{lake}/{table}/date=*/*.parquet', hive_partitioning = true)")
        else:
            con.execute(f"create view {table} as select * from delta_scan('{lake}/{table}')")
    return con


def run_duckdb(source, sql):
    start = time.perf_counter()
    con = connect(source)
    con.execute(f"copy ({sql}) to '/dev/null' (format csv, header)")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def rows_duckdb(source, sql):
    con = connect(source)
    rows = con.execute(f"select count(*) from ({sql})").fetchone()[0]
    con.close()
    return rows


out = subprocess.run([harness, lake, questions_file, str(runs)], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
if out.returncode != 0:
    sys.exit(f"{harness} failed: {out.stderr}")
auditq = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}

sources = ["read_parquet"] + (["delta_scan"] if extension else [])
if not extension:
    print("DuckDB's Delta extension is not installed: delta_scan is left out", file=sys.stderr)
results = []
for question in questions:
    name = question["name"]
    a = auditq[name]
    row = {"question": name, "rows": a["rows"], "auditq_s": round(a["median_s"], 3)}
    for source in sources:
        times = [run_duckdb(source, question["duckdb"]) for _ in range(runs)]
        rows = rows_duckdb(source, question["duckdb"])
        if rows != a["rows"]:
            sys.exit(f"{name}: auditq answered {a['rows']} rows, DuckDB ({source}) {rows}")
        d = statistics.median(times)
        row[f"{source}_s"] = round(d, 3)
        row[f"vs_{source}"] = round(d / a["median_s"], 2)
    results.append(row)
    print(f"{name:<62} {a['rows']:>9} rows  auditq {a['median_s']:7.3f} s  "
          + "  ".join(f"{s} {row[s + '_s']:7.3f} s ({row['vs_' + s]:.2f}x)" for s in sources), flush=True)
print(json.dumps(results))
