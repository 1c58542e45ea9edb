#!/usr/bin/env python3
"""The alternative a user would pick: DuckDB reading the same files and writing Parquet.

Usage: python3 benches/duckdb_ingest.py CORPUS_DIR OUT_DIR [--trail-only]
"""

import sys
import time

import duckdb

corpus, out = sys.argv[1], sys.argv[2]
trail_only = "--trail-only" in sys.argv[3:]
con = duckdb.connect()
started = time.time()
con.execute(f"""
    COPY (SELECT r.* FROM (SELECT unnest(Records) AS r
                           FROM read_json('{corpus}/trail/*.json.gz', maximum_object_size = 1073741824)))
    TO '{out}/trail.parquet' (FORMAT parquet)
""")
trail = time.time() - started
if trail_only:
    rows = con.execute(f"SELECT count(*) FROM '{out}/trail.parquet'").fetchone()[0]
    print(f"duckdb: {rows} trail rows in {trail:.1f} s")
    sys.exit(0)
con.execute(f"""
    COPY (SELECT e.*, m.* FROM (SELECT unnest(events) AS e
                                FROM read_json('{corpus}/ssm/*.json', maximum_object_size = 1073741824)),
          LATERAL (SELECT json_extract_string(e.message, '$.sessionId') AS session_id,
                          json_extract_string(e.message, '$.eventTime') AS event_time) m)
    TO '{out}/ssm.parquet' (FORMAT parquet)
""")
total = time.time() - started
rows = con.execute(f"SELECT count(*) FROM '{out}/trail.parquet'").fetchone()[0]
chunks = con.execute(f"SELECT count(*) FROM '{out}/ssm.parquet'").fetchone()[0]
print(f"duckdb: {rows} trail rows in {trail:.1f} s, {chunks} ssm chunks, total {total:.1f} s")
