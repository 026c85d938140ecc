#!/usr/bin/env bash
# Large captures for benchmarking the analyzer against tshark (git-ignored bench/out/).
# Needs root and the lab tools (see `iscsi-analyzer lab --help`).
# Usage: scripts/make_bench_captures.sh [SIZE_MB]   (default 300 MiB each)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
size=${1:-300}
for kind in seq rand small; do
  .venv/bin/iscsi-analyzer lab bench --kind "$kind" --size-mb "$size" --out bench/out
done
