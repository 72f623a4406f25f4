#!/usr/bin/env bash
# Installs the distribution packages brazier needs, once: `run` (serving) or `dev` (serving plus
# what the tests and benchmarks use). Knows apt (Debian, Ubuntu) and dnf (Fedora, RHEL). Quick
# when everything is present: it asks dpkg/rpm first and runs the package manager only for what
# is missing. Installing needs root (brazier's sandboxes need root anyway).
#
# run: python3 + venv (the server's virtualenv), libseccomp (the sandboxes' seccomp filter),
#      e2fsprogs (mkfs.ext4 for each environment's /tmp image), nftables (functions' egress NAT
#      and policies, decision 0025), gcc + a static libc (the native
#      helpers: the environments' PID 1 in C, node's trace-id helper; optional, see
#      src/brazier/sandbox/native.py).
# dev: curl (provided-runtime tests), wrk (benchmarks), and the toolchain PyPI's awslambdaric
#      builds from source with.
set -euo pipefail
set_=${1:-run}
case "$set_" in
  run|dev) ;;
  *) echo "usage: $0 run|dev" >&2; exit 2 ;;
esac

# Each set: the packages it needs, then the ones it can do without (installed when the
# distribution has them: RHEL keeps glibc-static in CRB and wrk in EPEL).
if command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; then
  manager=apt
  run=(python3 python3-venv libseccomp2 e2fsprogs nftables)
  run_optional=(gcc libc6-dev)
  dev=(curl autoconf automake libtool cmake g++ make)
  dev_optional=(wrk)
  missing() {  # one dpkg-query for all: the names not installed
    local ok
    ok=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null | awk '/install ok installed/ {print $1}' || true)
    for p in "$@"; do grep -qx "$p" <<<"$ok" || echo "$p"; done
  }
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
  refresh() { apt-get update -qq; }
elif command -v dnf >/dev/null && command -v rpm >/dev/null; then
  manager=dnf
  run=(python3 libseccomp e2fsprogs nftables)
  run_optional=(gcc glibc-static)
  dev=(curl autoconf automake libtool cmake gcc-c++ make)
  dev_optional=(wrk)
  missing() { for p in "$@"; do rpm -q --quiet "$p" || echo "$p"; done; }
  install() { dnf install -y -q "$@" >/dev/null; }
  refresh() { :; }
else
  echo "system-deps: neither apt nor dnf here; install by hand: python3 (with venv)," \
    "libseccomp, e2fsprogs, and for the native helpers gcc and a static libc" >&2
  exit 0
fi

want=("${run[@]}")
optional=("${run_optional[@]}")
if [ "$set_" = dev ]; then
  want+=("${dev[@]}")
  optional+=("${dev_optional[@]}")
fi
mapfile -t need < <(missing "${want[@]}")
mapfile -t could < <(missing "${optional[@]}")
[ ${#need[@]} -eq 0 ] && [ ${#could[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "system-deps: missing packages ${need[*]}; run as root or install them ($manager)" >&2
    exit 1
  fi
  echo "system-deps: not installed (optional): ${could[*]}" >&2
  exit 0
fi
refresh
if [ ${#need[@]} -gt 0 ]; then
  echo "system-deps: installing ${need[*]} ($manager)"
  install "${need[@]}"
fi
for pkg in "${could[@]}"; do
  echo "system-deps: installing $pkg ($manager)"
  install "$pkg" || echo "system-deps: $pkg is not available here; going on without it" \
    "(gcc/static libc: the Python init is used; wrk: no throughput benchmark)" >&2
done
