#!/usr/bin/env python3
"""Writes a benchmark corpus: CloudTrail S3 deliveries and Session Manager CloudWatch exports.

Deterministic (seeded), realistic in shape and size: CloudTrail records from a dozen services with
IAM users, assumed roles (incl. SSO) and AWS services, request/response bodies of varied size,
errors and read-only calls, 1000 records per gzip'd `{"Records":[...]}` file; Session Manager
sessions of 10 streamed chunks each, 100 sessions per `filter-log-events` export file.

Usage: python3 benches/generate_corpus.py OUT_DIR [--records N] [--chunks N]
Writes OUT_DIR/trail/..., OUT_DIR/ssm/..., and OUT_DIR/SIZES (uncompressed bytes per part).
"""

import argparse
import gzip
import json
import os
import random

SERVICES = [
    ("ec2.amazonaws.com", ["DescribeInstances", "RunInstances", "DescribeSecurityGroups", "StopInstances"]),
    ("s3.amazonaws.com", ["GetObject", "PutObject", "ListBucket", "GetBucketAcl"]),
    ("iam.amazonaws.com", ["GetUser", "ListRoles", "CreateAccessKey", "AttachRolePolicy"]),
    ("sts.amazonaws.com", ["AssumeRole", "GetCallerIdentity"]),
    ("ssm.amazonaws.com", ["StartSession", "TerminateSession", "GetParameter", "SendCommand"]),
    ("kms.amazonaws.com", ["Decrypt", "GenerateDataKey"]),
    ("lambda.amazonaws.com", ["Invoke", "UpdateFunctionCode20150331v2"]),
    ("logs.amazonaws.com", ["PutLogEvents", "CreateLogStream"]),
    ("cloudtrail.amazonaws.com", ["LookupEvents", "StopLogging"]),
    ("signin.amazonaws.com", ["ConsoleLogin"]),
    ("rds.amazonaws.com", ["DescribeDBInstances"]),
    ("dynamodb.amazonaws.com", ["DescribeTable", "Query"]),
]
REGIONS = ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2"]
ACCOUNTS = [f"{n:012d}" for n in (111122223333, 444455556666, 777788889999)]


def identity(rng, account):
    kind = rng.random()
    if kind < 0.45:
        name = f"user{rng.randrange(500)}"
        return {"type": "IAMUser", "principalId": f"AIDA{rng.randrange(10**16):016d}",
                "arn": f"arn:aws:iam::{account}:user/{name}", "accountId": account,
                "accessKeyId": f"AKIA{rng.randrange(10**16):016d}", "userName": name}
    if kind < 0.9:
        role = rng.choice(["AWSReservedSSO_AdministratorAccess_5e2a1c0d9b8f7a61", "deploy-role",
                           "AWSReservedSSO_ReadOnlyAccess_1f2e3d4c5b6a7980", "ec2-instance-role"])
        session = f"person{rng.randrange(300)}@example.com" if role.startswith("AWSReserved") else f"i-{rng.randrange(16**17):017x}"
        return {"type": "AssumedRole", "principalId": f"AROA{rng.randrange(10**16):016d}:{session}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
                "accessKeyId": f"ASIA{rng.randrange(10**16):016d}",
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": f"AROA{rng.randrange(10**16):016d}",
                                                     "arn": f"arn:aws:iam::{account}:role/{role}", "accountId": account,
                                                     "userName": role},
                                   "attributes": {"creationDate": "2026-10-05T08:00:00Z",
                                                  "mfaAuthenticated": rng.choice(["true", "false"])}}}
    return {"type": "AWSService", "invokedBy": rng.choice(["ssm.amazonaws.com", "ec2.amazonaws.com"])}


def record(rng, n):
    source, names = rng.choice(SERVICES)
    name = rng.choice(names)
    account, region = rng.choice(ACCOUNTS), rng.choice(REGIONS)
    day, sec = 1 + n % 28, rng.randrange(86400)
    request = {"instancesSet": {"items": [{"instanceId": f"i-{rng.randrange(16**17):017x}"}
                                         for _ in range(rng.randrange(1, 6))]},
               "filterSet": {"items": [{"name": "tag:Name", "valueSet": {"items": [{"value": "x" * rng.randrange(5, 80)}]}}]}}
    rec = {
        "eventVersion": rng.choice(["1.08", "1.09", "1.10"]),
        "userIdentity": identity(rng, account),
        "eventTime": f"2026-10-{day:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z",
        "eventSource": source, "eventName": name, "awsRegion": region,
        "sourceIPAddress": f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": rng.choice(["aws-cli/2.17.5 md/awscrt#0.20.11 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.11.9",
                                 "Boto3/1.35.10 md/Botocore#1.35.10 ua/2.0 os/linux#5.10.226 lang/python#3.12.4",
                                 "console.amazonaws.com", "aws-internal/3 aws-sdk-java/1.12.770"]),
        "requestParameters": request if rng.random() < 0.8 else None,
        "responseElements": None if rng.random() < 0.6 else {"requestId": f"{rng.randrange(16**32):032x}", "return": True},
        "requestID": f"{rng.randrange(16**32):032x}",
        "eventID": f"bench-{n:09d}-{rng.randrange(16**8):08x}",
        "readOnly": name.startswith(("Describe", "Get", "List", "Lookup")),
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"},
    }
    if rng.random() < 0.05:
        rec["errorCode"] = "AccessDenied"
        rec["errorMessage"] = "User is not authorized to perform this operation"
    return rec


def chunk_lines(rng, i):
    prompt = rng.choice(["sh-4.2$ ", "[ec2-user@ip-10-0-1-11 ~]$ ", "$ "])
    cmd = rng.choice(["ls -la /var/log", "sudo systemctl restart nginx", "df -h", "tail -n 20 /var/log/messages",
                      "sudo su -", "cat /etc/os-release", "ps aux | grep java", "uptime"])
    out = [f"line {k} of output " + "x" * rng.randrange(10, 120) for k in range(rng.randrange(1, 12))]
    return [prompt + cmd] + out + [prompt]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(20261122)
    trail_dir, ssm_dir = os.path.join(args.out, "trail"), os.path.join(args.out, "ssm")
    os.makedirs(trail_dir, exist_ok=True)
    os.makedirs(ssm_dir, exist_ok=True)
    trail_bytes = ssm_bytes = 0
    per_file = 1000
    for f in range(0, args.records, per_file):
        body = json.dumps({"Records": [record(rng, n) for n in range(f, min(f + per_file, args.records))]},
                          separators=(",", ":")).encode()
        trail_bytes += len(body)
        with gzip.open(os.path.join(trail_dir, f"111122223333_CloudTrail_eu-west-1_{f // per_file:06d}.json.gz"),
                       "wb", compresslevel=6) as out:
            out.write(body)
    chunks_per_session, sessions_per_file = 10, 100
    sessions = args.chunks // chunks_per_session
    for f in range(0, sessions, sessions_per_file):
        events = []
        for s in range(f, min(f + sessions_per_file, sessions)):
            sid = f"bench{s:07d}-{rng.randrange(16**17):017x}"
            for c in range(chunks_per_session):
                ts = 1791100000000 + s * 60000 + c * 1000
                message = {"eventVersion": "1.0", "eventTime": f"2026-10-05T{(s // 3600) % 24:02d}:{(s // 60) % 60:02d}:{c:02d}Z",
                           "awsRegion": "eu-west-1", "target": {"id": f"i-{s % 977:017x}"},
                           "userIdentity": {"arn": f"arn:aws:iam::111122223333:user/user{s % 500}"},
                           "runAsUser": "ssm-user", "sessionId": sid, "sessionData": chunk_lines(rng, c)}
                events.append({"logStreamName": sid, "timestamp": ts, "message": json.dumps(message, separators=(",", ":")),
                               "ingestionTime": ts + 300, "eventId": str(rng.randrange(10**55, 10**56))})
        body = json.dumps({"events": events, "searchedLogStreams": []}).encode()
        ssm_bytes += len(body)
        with open(os.path.join(ssm_dir, f"sessions-{f // sessions_per_file:05d}.json"), "wb") as out:
            out.write(body)
    with open(os.path.join(args.out, "SIZES"), "w") as out:
        out.write(f"trail_records {args.records}\ntrail_bytes {trail_bytes}\nssm_chunks {sessions * chunks_per_session}\nssm_bytes {ssm_bytes}\n")


if __name__ == "__main__":
    main()
