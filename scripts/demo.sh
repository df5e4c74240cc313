#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the demo topology with real traffic through a VIP.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/demo/main.js
