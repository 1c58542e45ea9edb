"""Lambda invocations of the real `bootstrap` binary: cold init, then wall time and peak memory
for 1 MB CloudWatch Logs subscription batches of CloudTrail records, one after another in the
same container and the same lake (so the later ones find the day's partition already full).

    .venv/bin/python benches/lambda_invoke.py BOOTSTRAP [BATCH_BYTES] [INVOCATIONS]

Needs the AWS API emulator (moto) at AWS_ENDPOINT_URL, as ./scripts/test.sh starts it; the lake,
topic and queue are created there. The Lambda Runtime API (the four HTTP calls the runtime makes:
next invocation, response, error, init error) is served here on 127.0.0.1, as the Lambda service
serves it, so the binary runs exactly as in Lambda: init, the invocations, then it asks for the
next, is refused, and exits. Peak memory is the process's high-water resident set (VmHWM in
/proc), read when init is done and after each invocation.
"""

import base64
import concurrent.futures
import datetime
import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent


START = datetime.datetime(2026, 10, 6, 12, 0, tzinfo=datetime.timezone.utc)


def trail_batch(target_bytes, first_id=0):
    """A subscription payload of CloudTrail records from the sample logs, ids made unique, about
    `target_bytes` of uncompressed JSON. Their times follow on from the previous batch's (80 ms
    apart, about a minute a batch), as a live trail's do."""
    records = []
    for path in sorted((ROOT / "sample-logs/s3/cloudtrail").rglob("*.json.gz")):
        records.extend(json.loads(gzip.decompress(path.read_bytes()))["Records"])
    events, size, n = [], 0, first_id
    while size < target_bytes:
        record = dict(records[n % len(records)])
        record["eventID"] = str(uuid.UUID(int=n))
        at = START + datetime.timedelta(milliseconds=80 * n)
        record["eventTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        message = json.dumps(record)
        events.append({"id": str(n), "timestamp": int(at.timestamp() * 1000), "message": message})
        size += len(message)
        n += 1
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs-111122223333",
        "logStream": "111122223333_CloudTrail_eu-west-1",
        "subscriptionFilters": ["auditq"],
        "logEvents": events,
    }
    raw = json.dumps(payload).encode()
    data = base64.b64encode(gzip.compress(raw)).decode()
    return {"awslogs": {"data": data}}, len(events), len(raw), len(data), n


def high_water(pid):
    """The process's peak resident set so far, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    events = []
    served = threading.Event()
    answered = threading.Event()
    answers = []
    handed = []
    pid = None
    peaks = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        done = len(RuntimeApi.answers)
        RuntimeApi.peaks.append(high_water(RuntimeApi.pid))
        if done >= len(RuntimeApi.events):
            # No next invocation: the runtime fails to read one and the process exits, so GNU
            # time reports on it.
            self.close_connection = True
            self.send_error(500)
            return
        RuntimeApi.handed.append(time.monotonic())
        body = json.dumps(RuntimeApi.events[done]).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", f"bench-{done + 1}")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:111122223333:function:auditq",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        RuntimeApi.served.set()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        RuntimeApi.answers.append(
            (time.monotonic(), self.path, self.rfile.read(length).decode(errors="replace"))
        )
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if len(RuntimeApi.answers) >= len(RuntimeApi.events):
            RuntimeApi.answered.set()


def main():
    bootstrap = sys.argv[1]
    batch_bytes = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    invocations = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    if "AWS_ENDPOINT_URL" not in os.environ:
        sys.exit("AWS_ENDPOINT_URL is not set: start moto as ./scripts/test.sh does")
    suffix = uuid.uuid4().hex[:8]
    region = os.environ.get("AWS_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name=region)
    sns = boto3.client("sns", region_name=region)
    bucket = f"auditq-bench-lambda-{suffix}"
    s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name=f"auditq-bench-{suffix}")["TopicArn"]

    # Every COMPACT_EVERY ingest invocations (each about a minute of a live trail) the schedule
    # sends a compaction, as lambda.yaml's default rate(15 minutes) does.
    compact_every = int(os.environ.get("BENCH_COMPACT_EVERY", "15"))
    schedule = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    next_id = 0
    kinds = []
    for n in range(invocations):
        event, records, raw, encoded, next_id = trail_batch(batch_bytes, next_id)
        RuntimeApi.events.append(event)
        kinds.append("ingest")
        if compact_every and (n + 1) % compact_every == 0 and n + 1 < invocations:
            RuntimeApi.events.append(schedule)
            kinds.append("compact")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
        AWS_LAMBDA_FUNCTION_NAME="auditq",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_STREAM_NAME="bench",
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/auditq",
        AUDITQ_DATA=os.environ.get("BENCH_DATA", f"s3://{bucket}/lake"),
        AUDITQ_RULES="default",
        AUDITQ_SNS_TOPIC_ARN=topic,
        RUST_LOG=os.environ.get("BENCH_RUST_LOG", "info"),
    )
    log = Path(f"/tmp/auditq-bench-log-{suffix}")
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen([bootstrap], env=env, stdout=out, stderr=out)
        RuntimeApi.pid = process.pid
        if not RuntimeApi.answered.wait(600):
            process.kill()
            sys.exit(f"no answer in 600 s; see {log}")
        process.wait(60)
    size = os.path.getsize(bootstrap)
    print(f"binary: {bootstrap} ({size / 1e6:.1f} MB)")
    print(
        f"each batch: {records} CloudTrail records, {raw / 1e6:.2f} MB of JSON, "
        f"{encoded / 1e6:.2f} MB as awslogs.data; {invocations} ingest invocation(s) in one container, "
        f"and a compaction after every {compact_every}"
    )
    print(f"cold init (process start to first /next): {(RuntimeApi.handed[0] - started) * 1000:.0f} ms")
    print(f"peak memory (VmHWM) after init: {RuntimeApi.peaks[0] / 1024:.1f} MiB")
    times, compactions = [], []
    for n, (kind, handed, (answered, path, answer)) in enumerate(
        zip(kinds, RuntimeApi.handed, RuntimeApi.answers)
    ):
        took = (answered - handed) * 1000
        if kind == "compact":
            compactions.append(took)
        else:
            times.append(took)
        if n < 3 or n >= len(kinds) - 3 or "error" in path or kind == "compact":
            print(
                f"invocation {n + 1} ({kind}): {took:.0f} ms, "
                f"peak memory so far {RuntimeApi.peaks[n + 1] / 1024:.1f} MiB, "
                f"{path.rsplit('/', 1)[-1]}: {answer[:160]}"
            )
    if compactions:
        print(f"{len(compactions)} compaction invocations: {', '.join(f'{t:.0f}' for t in compactions)} ms")
    ordered = sorted(times)
    tenth = max(1, len(times) // 10)
    first, last = sum(times[:tenth]) / tenth, sum(times[-tenth:]) / tenth
    print(
        f"{len(times)} invocations: min {ordered[0]:.0f} ms, median {ordered[len(times) // 2]:.0f} ms, "
        f"max {ordered[-1]:.0f} ms; {sum(t > 500 for t in times)} over 500 ms; "
        f"peak memory {max(RuntimeApi.peaks) / 1024:.1f} MiB"
    )
    print(
        f"first {tenth} invocations average {first:.0f} ms, last {tenth} {last:.0f} ms: "
        f"the last {last / first:.2f}x the first (goal: at most 1.30x)"
    )

    # Where an invocation's time goes (the handler's own stage times), beside what the
    # emulator alone takes to accept as many PublishBatch calls as an invocation makes.
    answers = [json.loads(a) for kind, (_, path, a) in zip(kinds, RuntimeApi.answers)
               if kind == "ingest" and path.endswith("/response")]
    stages = {}
    for answer in answers:
        for stage, ms in answer.get("stages_ms", {}).items():
            stages.setdefault(stage, []).append(ms)
    print("median stage times: " + ", ".join(
        f"{stage} {sorted(ms)[len(ms) // 2]} ms" for stage, ms in sorted(stages.items())))
    delivered = sorted(a["alerts"]["delivered"] for a in answers)[len(answers) // 2]
    floor = emulator_publish_floor(sns, topic, delivered)
    print(
        f"the emulator alone: {-(-delivered // 10)} PublishBatch calls ({delivered} alerts), "
        f"10 in flight, from Python: median {floor:.0f} ms of 5"
    )


def emulator_publish_floor(sns, topic, alerts):
    """Median of 5 timings of `alerts` alert-sized messages published to `topic` in calls of 10,
    10 calls in flight, as the handler publishes them."""
    body = json.dumps({"alert": "x" * 1500})
    attributes = {
        key: {"DataType": "String", "StringValue": "value"}
        for key in ["severity", "rule_id", "table", "account", "target", "user"]
    }

    def call(first):
        entries = [
            {"Id": f"a{j}", "Message": body, "Subject": "[high] rule: alice ran x on i-0",
             "MessageAttributes": attributes}
            for j in range(first, min(first + 10, alerts))
        ]
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)

    timings = []
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        for _ in range(5):
            started = time.perf_counter()
            list(pool.map(call, range(0, alerts, 10)))
            timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)[2]


if __name__ == "__main__":
    main()
