"""The by-hand alternative to `auditq coverage`: DuckDB running coverage's own statements over
the same Delta tables (delta_scan), as an auditor would paste them.

    python benches/coverage_duckdb.py LAKE CHECKS.json

CHECKS.json is `auditq coverage --format json` of the same period (its `checks[].sql`). DataFusion's
`to_unixtime` is DuckDB's `epoch`; nothing else is changed. Prints the rows each statement gave.
"""
import glob
import json
import os
import sys

import duckdb

lake, checks = sys.argv[1], sys.argv[2]
con = duckdb.connect()
ext = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_ext", "extensions",
                             "v1.4.4", "linux_amd64", "delta.duckdb_extension"))[0]
con.execute(f"LOAD '{ext}'")
for table in [t for t in ["sessions", "commands", "cloudtrail", "host_events", "alerts"] if os.path.isdir(os.path.join(lake, t, "_delta_log"))]:
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM delta_scan('{os.path.abspath(lake)}/{table}')")
total = 0
for check in json.load(open(checks))["checks"]:
    sql = check["sql"].replace("to_unixtime(", "epoch(")
    try:
        # Each row whole, as text (Python's timestamp objects would need pytz).
        rows = con.execute(f"SELECT CAST(q AS VARCHAR) FROM ({sql}) q").fetchall()
    except duckdb.CatalogException as e:  # a table the lake does not have yet (alerts)
        print(f"{check['kind']}: skipped ({str(e).splitlines()[0]})")
        continue
    total += len(rows)
    print(f"{check['kind']}: {len(rows)} rows")
print(f"total {total}")
