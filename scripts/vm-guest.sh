#!/bin/bash
# Stage 2 of scripts/vm-test.sh, run as PID 1 inside the VM after switch_root onto the host's /
# (9p, read-only): writable tmpfs where programs write, cgroup2 only at /sys/fs/cgroup, a
# delegated subtree for the tests, then tests/vm/; the verdict goes to the results share.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
REPO=$(cd "$(dirname "$0")/.." && pwd)
R=/mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# /tmp holds the data dirs, whose /tmp disk images are sparse: a tmpfs larger than RAM is fine
# (only written pages count), and brazier wants EphemeralStorage + 1 GiB free before a disk.
for d in /tmp /run /var; do mount -t tmpfs -o mode=0755,size=16g tmpfs "$d"; done
chmod 1777 /tmp
# A checkout under one of those (CI may clone into /tmp) is hidden by them: mount it again at
# its own path, from its own read-only share.
case "$REPO" in
/tmp/* | /run/* | /var/*)
    mkdir -p "$REPO"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro repo "$REPO"
    ;;
esac
mkdir -p /var/tmp && chmod 1777 /var/tmp
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results "$R"
echo "root_ready $(cut -d' ' -f1 /proc/uptime)" >>"$R/timings"
finish() {
    echo "${1:-1}" >"$R/verdict"
    sync
    echo o >/proc/sysrq-trigger 2>/dev/null
    busybox poweroff -f
}
trap 'finish 1' ERR
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
ip link set lo up
hostname brazier-vm
# A delegated subtree for the tests, as systemd would give a Delegate=yes unit.
echo "+cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/brazier-ci
echo $$ >/sys/fs/cgroup/brazier-ci/cgroup.procs
cd "$REPO"
export PYTHONDONTWRITEBYTECODE=1 HOME=/root BRAZIER_IN_VM=1 TMPDIR=/tmp
trap - ERR
t0=$(cut -d' ' -f1 /proc/uptime)
# shellcheck disable=SC2046
.venv/bin/pytest -p no:randomly -p no:hypothesispytest -v --durations=0 --color=no tests/vm \
    --junitxml="$R/junit.xml" $(cat "$R/pytest-args" 2>/dev/null) 2>&1
rc=$?
cp /tmp/pytest-of-*/pytest-*/*/server-*.log "$R/" 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
echo "tests_s $(echo "$t0 $t1" | awk '{print $2 - $1}')" >>"$R/timings"
if [ "$(cat "$R/bench" 2>/dev/null)" = 1 ]; then
    .venv/bin/python tests/vm/coldstart_bench.py 10 >"$R/bench.json" 2>&1 || true
fi
finish "$rc"
