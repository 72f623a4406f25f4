#!/usr/bin/env bash
# Builds the node runtime's native helper (src/brazier/_sandbox_init/trace_env.c) beside its
# source. Needs gcc and Node's headers (Debian's nodejs package ships /usr/include/node); without
# them it says so and the runtime falls back to plain process.env (see trace_env.c). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/src/brazier/_sandbox_init/trace_env.c"
out="$here/src/brazier/_sandbox_init/_brazier_trace_env.node"
headers=""
for dir in /usr/include/node /usr/local/include/node; do
  [ -f "$dir/node_api.h" ] && headers="$dir" && break
done
if [ -z "$headers" ] || ! command -v gcc >/dev/null; then
  echo "build-native: no gcc or no node_api.h; the node runtime will set _X_AMZN_TRACE_ID through process.env" >&2
  exit 0
fi
if [ "$out" -nt "$src" ]; then
  exit 0
fi
gcc -O2 -shared -fPIC -Wall -Wextra -Werror -DNODE_GYP_MODULE_NAME=_brazier_trace_env \
  -I"$headers" -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "build-native: built $(basename "$out")"
