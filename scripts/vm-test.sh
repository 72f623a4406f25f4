#!/usr/bin/env bash
# Run tests/vm/ on a real cgroup v2 (unified only) kernel: Debian's kernel under QEMU (TCG), the
# host's / shared read-only over 9p, brazier's checkout used in place. The exit code is the
# guest's pytest verdict (qemu's own exit code says nothing about the guest). Decision 0023.
#
#   scripts/vm-test.sh            # or: make test-v2
#   VM_PYTEST_ARGS='-k oom' scripts/vm-test.sh   # extra pytest args, split on spaces
#   VM_BENCH=1 scripts/vm-test.sh # also the cold-start bench inside the VM
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VM_TIMEOUT=${VM_TIMEOUT:-900}   # seconds for the whole VM run (about 8 minutes on 2 shared cores)
VM_MEM=${VM_MEM:-3072}
VM_CPUS=${VM_CPUS:-2}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
compgen -G '/boot/vmlinuz-*' >/dev/null || need+=(linux-image-amd64)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if ((${#need[@]})); then
    echo "vm-test: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        --no-install-recommends "${need[@]}" >/dev/null
fi
KERNEL=$(ls -1 /boot/vmlinuz-* | sort -V | tail -1)
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER
BUSYBOX=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -1)

WORK=$(mktemp -d /tmp/brazier-vm.XXXXXX)
RESULTS=$WORK/results
mkdir -p "$RESULTS" "$WORK/initramfs"
trap 'rm -rf "$WORK"' EXIT

# --- the initramfs: busybox, the modules for virtio + 9p (+ ext4, loop), a short /init --------
IR=$WORK/initramfs
mkdir -p "$IR"/{bin,proc,sys,dev,newroot,lib/modules}
cp "$BUSYBOX" "$IR/bin/busybox"
for tool in sh mount umount insmod mkdir switch_root poweroff cat echo sleep; do
    ln -s busybox "$IR/bin/$tool"
done
# Each wanted module after its dependencies, from modules.dep.
declare -A seen=()
order=()
add_module() {
    local name=$1 path deps d
    path=$(grep -E "(^|/)${name}\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -1 || true)
    [[ -z $path ]] && return 0 # built in
    deps=${path#*:}
    path=${path%%:*}
    [[ -n ${seen[$path]:-} ]] && return 0
    seen[$path]=1
    for d in $deps; do add_module "$(basename "${d%%.ko*}")"; done
    order+=("$path")
}
for m in virtio virtio_ring virtio_pci 9pnet 9pnet_virtio 9p ext4 loop overlay; do add_module "$m"; done
for p in "${order[@]}"; do
    dest=$IR/lib/modules/$(basename "${p%%.ko*}").ko
    case $p in
    *.xz) xz -dc "$MODDIR/$p" >"$dest" ;;
    *.zst) zstd -qdc "$MODDIR/$p" >"$dest" ;;
    *) cp "$MODDIR/$p" "$dest" ;;
    esac
    echo "insmod /lib/modules/$(basename "$dest")" >>"$IR/modules.sh"
done
cat >"$IR/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
echo "vm: at /init, uptime \$(cat /proc/uptime)"
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
. /modules.sh 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /newroot \
    || { echo "vm: cannot mount the host's root"; poweroff -f; }
umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /bin/bash $REPO/scripts/vm-guest.sh
EOF
chmod +x "$IR/init"
(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initramfs.gz"

printf '%s' "${VM_PYTEST_ARGS:-}" >"$RESULTS/pytest-args"
printf '%s' "${VM_BENCH:-0}" >"$RESULTS/bench"

# --- boot -----------------------------------------------------------------------------------
echo "vm-test: kernel $KVER, ${VM_CPUS} vCPU, ${VM_MEM} MiB, TCG; log in $RESULTS/console.log"
t0=$(date +%s%N)
set +e
timeout --foreground "$VM_TIMEOUT" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "$VM_CPUS" -m "$VM_MEM" \
    -nographic -no-reboot -serial mon:stdio -display none -nic none \
    -kernel "$KERNEL" -initrd "$WORK/initramfs.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init cgroup_no_v1=all" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$RESULTS",mount_tag=results,security_model=none,multidevs=remap \
    -virtfs local,path="$REPO",mount_tag=repo,security_model=none,readonly=on,multidevs=remap \
    </dev/null 2>&1 | tee "$RESULTS/console.log" | sed -u 's/^/  vm| /'
qemu_rc=${PIPESTATUS[0]}
set -e
t1=$(date +%s%N)
wall=$(printf %d.%02d $(((t1 - t0) / 1000000000)) $(((t1 - t0) / 10000000 % 100)))
rm -rf "$REPO/.vm-results"
mkdir -p "$REPO/.vm-results"
cp -f "$RESULTS"/* "$REPO/.vm-results/" 2>/dev/null || true
if [[ ! -s $RESULTS/verdict ]]; then
    echo "vm-test: FAILED: no verdict from the guest (qemu exit $qemu_rc, ${wall}s; timeout ${VM_TIMEOUT}s)"
    exit 1
fi
verdict=$(cat "$RESULTS/verdict")
echo "vm-test: guest verdict $verdict; wall ${wall}s (qemu start to power-off);" \
    "$(cat "$RESULTS/timings" 2>/dev/null | tr '\n' ' ')"
echo "vm-test: junit in .vm-results/junit.xml"
exit "$verdict"
