#!/usr/bin/env bash
# Installs the Debian packages brazier's sandboxes and tests need, once. Idempotent and quick when
# everything is present. Needs root (brazier's sandboxes need root anyway).
set -euo pipefail
need=()
for pkg in libseccomp2 e2fsprogs curl python3 wrk autoconf automake libtool cmake g++ make; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: missing Debian packages ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "system-deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
