#!/usr/bin/env bash
# Builds the sandboxes' native helpers beside their sources in src/brazier/_sandbox_init: the
# environments' PID 1 (brazier_init.c, static: gcc and libc.a) and the node runtime's trace-id
# helper (trace_env.c: gcc and Node's node_api.h). Both are optional: without gcc or the headers
# it says so, and the sandboxes use the Python init and process.env. The build itself is
# src/brazier/sandbox/native.py, which an installed wheel runs on first use instead.
# Usage: scripts/build-native.sh [PYTHON] (default: .venv/bin/python). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-$here/.venv/bin/python}"
exec "$python" -c 'import sys; from brazier.sandbox import native; sys.exit(native.main(sys.argv[1:]))' --in-place
