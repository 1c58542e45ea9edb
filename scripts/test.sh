#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine as in CI.
#
# 1. Installs the AWS API emulator (moto, pinned) into ./.venv, and the template linters
#    (cfn-lint, checkov, pinned) into ./.venv-lint, if they are not there yet, and lints deploy/
#    (deploy/lint.sh). Two venvs: checkov pins an old boto3 that moto must not be run with.
#    Installs Debian's chromium (the report test renders the HTML report headless) if it is
#    not there, with apt-get (as root, or through sudo).
# 2. Starts it on 127.0.0.1 on a free port and points the AWS SDK at it (AWS_ENDPOINT_URL and
#    dummy credentials); it is stopped by its pid when this script exits, tests passing or not.
# 3. Runs every test: cargo builds what it needs (debug profile, no debug info: see Cargo.toml).
#    The real-data conformance tests read ../shared/corpora when it is present.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
VENV=.venv
LINT_VENV=.venv-lint
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$MOTO_VERSION')" 2>/dev/null; then
  echo "installing moto[server]==$MOTO_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
if ! "$LINT_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('cfn-lint') != '$CFN_LINT_VERSION' or m.version('checkov') != '$CHECKOV_VERSION')" 2>/dev/null; then
  echo "installing cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION into $LINT_VENV" >&2
  python3 -m venv "$LINT_VENV"
  "$LINT_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "cfn-lint==$CFN_LINT_VERSION" "checkov==$CHECKOV_VERSION"
fi
deploy/lint.sh "$LINT_VENV"

if [ -z "${AUDITQ_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium (for the report test)" >&2
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$VENV/moto.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
"$VENV/bin/python" - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(f"the AWS emulator did not start on {url}; see .venv/moto.log")
PY

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
# Signing keys the tests make (digests, README "Security") go here, not into ~/.config.
export AUDITQ_CONFIG_DIR="$PWD/target/test-config"
unset AUDITQ_SIGNING_KEY AUDITQ_SIGNING_KEY_FILE AUDITQ_PUBLIC_KEY
cargo test --workspace --locked "$@"
