"""Times auditq and DuckDB on the same questions over the same Parquet files, in one run.

    target/bench-venv/bin/python benches/query_vs_duckdb.py LAKE AUDITQ_BINARY [RUNS]

LAKE is a lake written by `cargo run --release --example generate_lake` (compacted, vacuumed:
only the files of the current version are on disk, so DuckDB's `read_parquet` of the table
folders reads exactly the rows auditq reads). Each question is asked RUNS times (default 3) of
each, alternating, and the median is reported:

- auditq: the whole `auditq --data LAKE --format csv ...` process, from exec to exit, with the
  answer written as CSV to /dev/null: process start, reading the Delta log, planning, scanning.
- DuckDB (1.4.1, pinned in benches/query_vs_duckdb.sh): a fresh `duckdb.connect()` in this
  process, views over the same files (hive partitioning for `date`), and `COPY (query) TO
  '/dev/null' (FORMAT csv)`: the same answer written the same way, without any process start
  (the interpreter and the duckdb import are already loaded), which favours DuckDB.

Both answers' row counts are compared; a mismatch stops the run.
"""

import json
import statistics
import subprocess
import sys
import time

import duckdb

lake, auditq = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3

WEEK = ("2026-03-02", "2026-03-08")
MONTH = ("2026-01-01", "2026-01-31")

# name: (auditq arguments, DuckDB SQL). auditq's are written as its user would: the filters
# as options (which also bound the date partitions); DuckDB's as a DuckDB user would, with the
# date partition bounds written out so it prunes as well.
QUESTIONS = {
    "sudo commands (select * where cmd like 'sudo%')": (
        ["select * where cmd like 'sudo%'"],
        "select * from commands where cmd like 'sudo%'",
    ),
    "count by user and target, one week": (
        ["--since", WEEK[0], "--until", WEEK[1],
         "select user, target, count(*) n from commands group by user, target"],
        f"select user, target, count(*) n from commands where time >= timestamptz '{WEEK[0]} 00:00:00+00' "
        f"and time < timestamptz '{WEEK[1]} 00:00:00+00' + interval 1 day "
        f"and date between date '{WEEK[0]}' and date '{WEEK[1]}' group by user, target",
    ),
    "one user, one month": (
        ["--user", "user042", "--since", MONTH[0], "--until", MONTH[1], "select * from commands order by time"],
        f"select * from commands where user = 'user042' and time >= timestamptz '{MONTH[0]} 00:00:00+00' "
        f"and time < timestamptz '{MONTH[1]} 00:00:00+00' + interval 1 day "
        f"and date between date '{MONTH[0]}' and date '{MONTH[1]}' order by time",
    ),
    "sessions joined with commands": (
        ["select s.account, s.run_as, count(*) n, count(distinct s.session_id) sessions "
         "from commands c join sessions s on c.session_id = s.session_id "
         "where c.cmd like 'sudo%' group by s.account, s.run_as"],
        "select s.account, s.run_as, count(*) n, count(distinct s.session_id) sessions "
        "from commands c join sessions s on c.session_id = s.session_id "
        "where c.cmd like 'sudo%' group by s.account, s.run_as",
    ),
}


def run_auditq(args):
    start = time.perf_counter()
    out = subprocess.run([auditq, "--data", lake, "--format", "csv", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"auditq {args} failed: {out.stderr.decode()}")
    rows = out.stdout.count(b"\n") - 1
    return elapsed, rows


def run_duckdb(sql):
    start = time.perf_counter()
    con = duckdb.connect()
    for table in ("commands", "sessions"):
        con.execute(f"create view {table} as select * from read_parquet('{lake}/{table}/date=*/*.parquet', hive_partitioning = true)")
    con.execute(f"copy ({sql}) to '/dev/null' (format csv, header)")
    elapsed = time.perf_counter() - start
    rows = con.execute(f"select count(*) from ({sql})").fetchone()[0]
    con.close()
    return elapsed, rows


results = []
for name, (args, sql) in QUESTIONS.items():
    times = {"auditq": [], "duckdb": []}
    counts = {}
    for _ in range(runs):
        t, counts["auditq"] = run_auditq(args)
        times["auditq"].append(t)
        t, counts["duckdb"] = run_duckdb(sql)
        times["duckdb"].append(t)
    if counts["auditq"] != counts["duckdb"]:
        sys.exit(f"{name}: auditq answered {counts['auditq']} rows, DuckDB {counts['duckdb']}")
    a, d = statistics.median(times["auditq"]), statistics.median(times["duckdb"])
    results.append({"question": name, "rows": counts["auditq"], "auditq_s": round(a, 3),
                    "duckdb_s": round(d, 3), "ratio": round(d / a, 2)})
    print(f"{name:<50} {counts['auditq']:>9} rows  auditq {a:7.3f} s  DuckDB {d:7.3f} s  "
          f"auditq is {d / a:5.2f}x DuckDB's speed", flush=True)
print(json.dumps(results))
