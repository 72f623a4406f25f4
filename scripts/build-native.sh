#!/usr/bin/env bash
# Builds the sandboxes' init (brazier_init.c) and the node runtime's native helper
# (src/brazier/_sandbox_init/trace_env.c) beside their sources. Needs gcc and Node's headers (Debian's nodejs package ships /usr/include/node); without
# them it says so and the runtime falls back to plain process.env (see trace_env.c). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/src/brazier/_sandbox_init/trace_env.c"
out="$here/src/brazier/_sandbox_init/_brazier_trace_env.node"
# The environments' PID 1 (brazier_init.c): static, needs only gcc and libc.a. Without it the
# sandboxes use the same init in Python, at ~1.4 MiB more private memory per environment.
init_src="$here/src/brazier/_sandbox_init/brazier_init.c"
init_out="$here/src/brazier/_sandbox_init/_brazier_init"
if command -v gcc >/dev/null && ! [ "$init_out" -nt "$init_src" ]; then
  if gcc -O2 -static -s -Wall -Wextra -Werror -o "$init_out.tmp" "$init_src"; then
    mv "$init_out.tmp" "$init_out"
    echo "build-native: built $(basename "$init_out")"
  else
    rm -f "$init_out.tmp"
    echo "build-native: could not build $(basename "$init_out"); sandboxes use the Python init" >&2
  fi
fi
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
