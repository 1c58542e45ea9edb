"""Event-to-alert latency of the ECS service (`auditq-service`) against the AWS API emulator.

    .venv/bin/python benches/service_latency.py SERVICE_BINARY [SESSIONS] [live_tail|poll]

Needs moto at AWS_ENDPOINT_URL (as ./scripts/test.sh starts it). Starts the service on a lake in
the emulator's S3, following one log group, with the default rules publishing to an SNS topic
that delivers to an SQS queue. Then, one session at a time, puts a Session Manager stream in
which the user runs `sudo su -` (the sample session alice-0a7f3c9e1b2d4f601 under a new session
id) and measures from the PutLogEvents call returning to the root-shell alert arriving in the
queue. Prints p50, p90, p99 and max.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "alice-0a7f3c9e1b2d4f601"


def main():
    binary = sys.argv[1]
    sessions = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    follow = sys.argv[3] if len(sys.argv) > 3 else "live_tail"
    if "AWS_ENDPOINT_URL" not in os.environ:
        sys.exit("AWS_ENDPOINT_URL is not set: start moto as ./scripts/test.sh does")
    region = os.environ.get("AWS_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name=region)
    sns = boto3.client("sns", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    logs = boto3.client("logs", region_name=region)
    suffix = uuid.uuid4().hex[:8]
    bucket = f"auditq-bench-service-{suffix}"
    s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name=f"auditq-bench-{suffix}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"auditq-bench-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    group = f"/aws/ssm/bench-{suffix}"
    logs.create_log_group(logGroupName=group)

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    listen = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    env = dict(
        os.environ,
        AUDITQ_DATA=os.environ.get("BENCH_DATA", f"s3://{bucket}/lake"),
        AUDITQ_RULES="default",
        AUDITQ_SNS_TOPIC_ARN=topic,
        AUDITQ_LOG_GROUPS=group,
        AUDITQ_LISTEN=listen,
        AUDITQ_FOLLOW=follow,
        AUDITQ_POLL_INTERVAL_MS="500",
        AUDITQ_COMPACT_EVERY_HOURS="0",
        AUDITQ_COMPACT_EVERY_BATCHES=os.environ.get("BENCH_COMPACT_EVERY_BATCHES", "20"),
    )
    log = open(f"/tmp/auditq-bench-service-{suffix}.log", "w")
    service = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://{listen}/healthz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        time.sleep(2)

        template = json.loads(
            (ROOT / f"sample-logs/cloudwatch/aws-ssm-sessions/{TEMPLATE}.json").read_text()
        )["events"]
        latencies = []
        for n in range(sessions):
            session = f"bench{n}-{uuid.uuid4().hex[:17]}"
            now = int(time.time() * 1000)
            first = template[0]["timestamp"]
            events = [
                {
                    "timestamp": e["timestamp"] - first + now - 60_000,
                    "message": e["message"].replace(TEMPLATE, session),
                }
                for e in template
            ]
            logs.create_log_stream(logGroupName=group, logStreamName=session)
            logs.put_log_events(logGroupName=group, logStreamName=session, logEvents=events)
            sent = time.monotonic()
            found = None
            while found is None and time.monotonic() - sent < 30:
                # A long poll returns as soon as a message arrives, without spinning on the
                # emulator the service also talks to.
                page = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                for message in page.get("Messages", []):
                    alert = json.loads(json.loads(message["Body"])["Message"])
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                    if alert.get("rule_id") == "linux.sudo_root_shell" and alert.get(
                        "session_id"
                    ) == session:
                        found = time.monotonic() - sent
            if found is None:
                sys.exit(f"no alert for {session} within 30 s; see {log.name}")
            latencies.append(found)
        latencies.sort()

        def pct(p):
            return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

        print(f"service: {binary}, follow={follow}, {sessions} sessions, one at a time")
        print(
            f"PutLogEvents -> alert in SQS: p50 {pct(50):.0f} ms, p90 {pct(90):.0f} ms, "
            f"p99 {pct(99):.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        )
    finally:
        service.terminate()
        service.wait(60)
        print(f"service exit status after SIGTERM: {service.returncode}")


if __name__ == "__main__":
    main()
