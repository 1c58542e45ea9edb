#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine as in CI: cargo fetches and builds what
# it needs (debug profile, no debug info: see Cargo.toml), then runs unit, integration, CLI and
# doc tests. The real-data conformance tests read ../shared/corpora when it is present.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
