#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/): every decoder and parser, and rule compilation.
#
#   scripts/fuzz.sh                 every target, 600 s each
#   scripts/fuzz.sh 60 gzip object  the named targets, 60 s each
#
# Each target starts from a seed corpus made of the bundled sample logs and ../shared/corpora
# (fuzz/corpus/, not committed). A crash stops the run; its input is copied to
# fuzz/regressions/TARGET/, where the normal test suite runs it as a unit test
# (parse/tests/fuzz_regressions.rs, rules/tests/fuzz_regressions.rs). Fix it, keep the file.
#
# cargo fuzz needs nightly features (sanitizer flags); this machine has only a stable toolchain,
# so RUSTC_BOOTSTRAP=1 lets stable rustc accept them. The build goes to target/fuzz (one target
# directory, its own instrumented artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-600}
shift || true
all=(cloudwatch_envelope gzip ssm_stream ssm_transcript cloudtrail host_logs object redact rule_compile)
targets=("${@:-${all[@]}}")
[ "$#" -gt 0 ] || targets=("${all[@]}")

if ! cargo fuzz --version 2>/dev/null | grep -q '0.13.2'; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1

seed() { # seed TARGET FILE...: copies files into the target's corpus
    local dir=fuzz/corpus/$1
    shift
    mkdir -p "$dir"
    for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/$(echo "$f" | tr '/' '_')"; done
    return 0
}
shared=../shared/corpora
seed gzip sample-logs/s3/cloudtrail/AWSLogs/*/CloudTrail/*/2026/10/05/*.json.gz
seed object sample-logs/s3/cloudtrail/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/10/05/*.json.gz \
    sample-logs/s3/ssm-session-logs/session-logs/*.log sample-logs/cloudwatch/*/*.json \
    sample-logs/hosts/*/auth.log $shared/cloudtrail-stratus/aws.execution.ssm-start-session.json
seed cloudtrail $shared/cloudtrail-stratus/*.json
seed ssm_transcript sample-logs/s3/ssm-session-logs/session-logs/*.log $shared/ssm/*.log
seed host_logs sample-logs/hosts/*/auth.log $shared/linux-auth/*
seed rule_compile rules/packs/default/*.yaml
# Stream chunks, one per line, and subscription payloads: taken out of their JSON wrappers.
python3 - "$shared" <<'PY'
import base64, gzip, json, pathlib, sys
shared = pathlib.Path(sys.argv[1])
out = pathlib.Path("fuzz/corpus")
for f in pathlib.Path("sample-logs/cloudwatch/aws-ssm-sessions").glob("*.json"):
    doc = json.loads(f.read_text())
    events = doc.get("events", doc) if isinstance(doc, dict) else doc
    lines = [e["message"] for e in events if isinstance(e, dict) and "message" in e]
    (out / "ssm_stream" ).mkdir(parents=True, exist_ok=True)
    (out / "ssm_stream" / f.name).write_text("\n".join(lines))
for f in shared.glob("lambda-envelopes/*cloudwatch*.json"):
    data = json.loads(f.read_text()).get("awslogs", {}).get("data")
    if data:
        (out / "cloudwatch_envelope").mkdir(parents=True, exist_ok=True)
        (out / "cloudwatch_envelope" / f.name).write_text(data)
        (out / "cloudwatch_envelope" / (f.name + ".decoded")).write_bytes(
            gzip.decompress(base64.b64decode(data)))
# One command line per seed: small inputs run thousands of times faster than the whole file.
lines = (shared / "shell-commands/all.cm").read_text(errors="replace").splitlines()
(out / "redact").mkdir(parents=True, exist_ok=True)
for i, line in enumerate(lines[:3000]):
    (out / "redact" / f"line-{i}").write_text(line)
for i, line in enumerate([
    "mysql -uroot -pS3cret -e 'select 1'", "curl -H 'Authorization: Bearer abc.def' https://x",
    "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "sshpass -p hunter2 ssh host", "git clone https://user:pw@example.com/r.git",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----",
]):
    (out / "redact" / f"planted-{i}").write_text(line)
PY

status=0
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"
    if ! (cd fuzz && cargo fuzz run --target-dir "$root/target/fuzz" "$target" \
        "corpus/$target" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | tee "$root/target/fuzz-$target.log" | grep -E '^(#[0-9]+.*DONE|stat::|==[0-9]+==|thread|SUMMARY)' ); then
        :
    fi
    if ls fuzz/artifacts/"$target"/* >/dev/null 2>&1; then
        for crash in fuzz/artifacts/"$target"/*; do
            cp "$crash" "fuzz/regressions/$target/"
            echo "CRASH: $crash (kept in fuzz/regressions/$target/)"
        done
        rm -f fuzz/artifacts/"$target"/*
        status=1
    fi
done
exit $status
