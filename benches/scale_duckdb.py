"""DuckDB's side of benches/scale.sh: deduplicate a CloudTrail batch against the Delta table's
day partition and write the new records to Parquet, as a DuckDB user appending to a lake would.

    python benches/scale_duckdb.py LAKE BATCH.json OUT_DIR

Two ways, each timed in-process after the connection and the Delta extension are loaded:
- anti-join: the batch's ids not among the day's ids;
- near: only stored rows within a second of the batch's times are compared (what auditq does).
Prints one JSON line with both times and the duplicates found.
"""
import json, os, sys, time, glob

import duckdb

lake, batch, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
site = os.path.dirname(duckdb.__file__)
ext = glob.glob(os.path.join(os.path.dirname(site), "duckdb_ext", "extensions", "*", "*", "delta.duckdb_extension"))
con = duckdb.connect()
con.execute(f"LOAD '{ext[0]}'")
if os.path.isdir(f"{lake}/cloudtrail/_delta_log"):
    table = f"delta_scan('{lake}/cloudtrail')"
else:  # an empty lake: nothing to compare with
    table = "(select ''::varchar as event_id, now() as time, '2026-10-06'::date as date where false)"
read = f"""create or replace temp table b as
  select r.eventID as event_id, r.eventTime::timestamptz as time, r as record
  from (select unnest(Records) as r from read_json('{batch}', maximum_object_size = 100000000))"""

def timed(sql_dedup, name):
    started = time.perf_counter()
    con.execute(read)
    con.execute(f"create or replace temp table fresh as {sql_dedup}")
    con.execute(f"copy (select record from fresh) to '{out}/{name}.parquet' (format parquet)")
    elapsed = (time.perf_counter() - started) * 1000
    n = con.execute("select (select count(*) from b) - (select count(*) from fresh)").fetchone()[0]
    return elapsed, n

anti_ms, dups = timed(
    f"select * from b where event_id not in (select event_id from {table} where date = '2026-10-06')",
    "anti")
near_ms, dups_near = timed(
    f"""select * from b where event_id not in (
          select event_id from {table}
          where date = '2026-10-06'
            and time between (select min(time) from b) - interval 1 second
                         and (select max(time) from b) + interval 1 second)""",
    "near")
assert dups == dups_near, (dups, dups_near)
print(json.dumps({"anti_join_ms": anti_ms, "near_ms": near_ms, "duplicates": dups}))
