#!/usr/bin/env bash
# Install, build and run every test tier (unit, BPF_PROG_TEST_RUN, end to end). Needs root for the last two.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.test.json # tests and sources type-check together (tap itself only transpiles)
exec npx tap "$@"
