#!/usr/bin/env bash
# Runs a command with the AWS API emulator beside it, as ./scripts/test.sh does for the tests:
# moto (the pinned one ./scripts/test.sh installs into .venv) on a free port of 127.0.0.1, the
# AWS environment pointing at it, stopped when the command ends.
#
#   ./benches/with_moto.sh .venv/bin/python benches/lambda_invoke.py target/release-lambda/bootstrap
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/moto_server ]; then
  echo "no .venv/bin/moto_server: run ./scripts/test.sh once, which installs it" >&2
  exit 1
fi
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > .venv/moto-bench.log 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/moto-api/" > /dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/moto-api/" > /dev/null \
  || { echo "moto did not start; see .venv/moto-bench.log" >&2; exit 1; }
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
"$@"
