#!/usr/bin/env bash
# Lints the deployment: cfn-lint and checkov over deploy/cloudformation/*.yaml, checkov over
# deploy/Dockerfile. Fails on any finding; prints the count of each.
#
# Usage: deploy/lint.sh [VENV]   (VENV holds cfn-lint and checkov; default .venv-lint, as installed by
# scripts/test.sh). Suppressions live in the templates themselves (Metadata: checkov / cfn-lint),
# each with its reason, never here.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${1:-.venv-lint}
templates=(deploy/cloudformation/*.yaml)
status=0

echo "== cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'): ${#templates[@]} templates"
if findings=$("$venv/bin/cfn-lint" --format parseable -- "${templates[@]}"); then
  echo "cfn-lint: 0 findings"
else
  printf '%s\n' "$findings"
  echo "cfn-lint: $(printf '%s\n' "$findings" | grep -c .) findings" >&2
  status=1
fi

# --skip-download: no call to Prisma Cloud, the same checks offline. checkov prints
# "Passed checks: N, Failed checks: N, Skipped checks: N" per framework; no such line means it
# scanned nothing (a parse error), which is a failure too.
run_checkov() {
  local what=$1 framework=$2
  shift 2
  local out rc=0
  out=$("$venv/bin/checkov" "$@" --framework "$framework" --quiet --compact --skip-download 2>&1) || rc=$?
  printf '%s\n' "$out"
  if [ "$rc" -ne 0 ]; then
    echo "checkov ($what): findings (exit $rc)" >&2
    status=1
  elif ! printf '%s\n' "$out" | grep -q 'Passed checks: [1-9]'; then
    echo "checkov ($what): nothing was scanned" >&2
    status=1
  fi
}
echo "== checkov $("$venv/bin/checkov" --version)"
run_checkov "cloudformation" cloudformation -d deploy/cloudformation
run_checkov "Dockerfile" dockerfile -f deploy/Dockerfile

if [ "$status" -ne 0 ]; then
  echo "deploy lint: FAILED" >&2
else
  echo "deploy lint: clean"
fi
exit "$status"
