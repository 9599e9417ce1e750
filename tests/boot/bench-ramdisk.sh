#!/usr/bin/env bash
# `make bench-ramdisk`: what RAM-disk mode costs. Times, from QEMU's start
# to the marker the pmem-root guest (tests/boot/lib.sh) prints from its ext4
# root file system, the guest booted
#   raw       as its raw disk attached to QEMU twice over the same bytes: as
#             the USB stick OVMF boots the unified kernel image from, and as
#             an NVDIMM (-device nvdimm over the file, private mapping) that
#             Linux finds as /dev/pmem0 as it finds the RAM disk, so the
#             kernel, initramfs and root= are the same in both runs
#   ramdisk   from a stick made by tools/mkstick.sh: qcowboot.efi as
#             \EFI\BOOT\BOOTX64.EFI, the guest's qcow2 image and a
#             qcowboot.cfg with `mode = ramdisk` and `timeout = 0`
# with the same memory and accelerator (tools/kvm-probe.sh), runs
# interleaved, best of N. Prints each time and its ratio to the raw boot,
# where the best runs spent their time, and the RAM disk's load rate in the
# firmware (MB/s of virtual disk and of allocated data) as qcowboot printed
# it in each run.
#
# Usage: tests/boot/bench-ramdisk.sh [RUNS]   (default 3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

runs=${1:-3}
guest=$RAMDISK_GUEST
mem=1024
W=$BOOT_ROOT/build/bench-ramdisk
rm -rf "$W"
mkdir -p "$W"

bash "$BOOT_ROOT/tests/boot/make-guests.sh"
[ -f "$BOOT_EFI_APP" ] || { echo "bench-ramdisk: no $BOOT_EFI_APP (make all)" >&2; exit 1; }
accel=$(bash "$BOOT_ROOT/tools/kvm-probe.sh")
export QB_ACCEL=$accel
marker=$(ramdisk_marker)

# The raw run's disk: a private copy, so nothing the firmware might write
# reaches the guest that make-guests.sh built.
cp --sparse=always "$(guest_raw "$guest")" "$W/raw.img"
raw_bytes=$(stat -c %s "$W/raw.img")
printf 'timeout = 0\r\nmode = ramdisk\r\n' >"$W/qcowboot.cfg"
bash "$BOOT_ROOT/tools/mkstick.sh" -q --efi "$BOOT_EFI_APP" --config "$W/qcowboot.cfg" \
    "$W/stick.img" "$(guest_tree "$guest" plain)/$(guest_image_name "$guest" plain)"

# One QEMU at a time with the firmware-driven suites.
mkdir -p "$BOOT_ROOT/build/tests"
exec 9>"$BOOT_ROOT/build/tests/firmware.lock"
flock 9

# What the console shows along the way: the firmware starting the stick's
# boot loader, qcowboot opening the image, the RAM disk loaded, the guest's
# loader started, the kernel's EFI stub, the kernel, the root mounted, the
# marker.
MILESTONES=("BdsDxe: loading" "Opening " "RAM disk loaded: " 'Booting \EFI\BOOT\BOOTX64.EFI'
            "EFI stub:" "Linux version" "EXT4-fs (pmem0p2): mounted" "$marker")

# qemu_args CONFIG: tools/qemu-run.sh's arguments for one configuration.
qemu_args() {
    case $1 in
    raw)
        printf '%s\n' --disk "$W/raw.img" --mem "$mem,slots=2,maxmem=$((2 * mem))M" -- \
            -machine nvdimm=on \
            -object "memory-backend-file,id=pmemroot,share=off,mem-path=$W/raw.img,size=$raw_bytes" \
            -device nvdimm,memdev=pmemroot,id=nvdimm0 ;;
    ramdisk)
        printf '%s\n' --disk "$W/stick.img" --mem "$mem" ;;
    esac
}

# time_boot CONFIG LOG: seconds from QEMU's start to the marker, or "fail";
# LOG.times gets the milestones' times.
time_boot() {
    local log=$2 pid start t rc=0 args=() opts=()
    mapfile -t args < <(qemu_args "$1")
    # The runner's own options come before its "--".
    opts=(--log "$log" --timeout 300 --stop-on "$BOOT_CRASH_TEXT" --stop-on "Shell> ")
    : >"$log"
    start=$(date +%s.%N)
    bash "$BOOT_ROOT/tools/qemu-run.sh" "${opts[@]}" "${args[@]}" &
    pid=$!
    python3 "$BOOT_ROOT/tests/boot/watch-log.py" "$log" "$start" "$pid" 300 \
        "${MILESTONES[@]}" >"$log.times"
    wait "$pid" || rc=$?
    t=$(grep -F -- "$marker" "$log.times" | cut -d' ' -f1)
    if [ -z "$t" ] || [ "$rc" -ne 0 ]; then
        echo "bench-ramdisk: $1: no marker (QEMU exit $rc); console in $log" >&2
        echo fail
        return
    fi
    echo "$t"
}

# at TIMES TEXT: when TEXT appeared in a run, or nothing.
at() { grep -F -- "$2" "$1" | head -n 1 | cut -d' ' -f1; }
# phases TIMES: the run split at the milestones.
phases() {
    local f=$1
    awk -v b="$(at "$f" "BdsDxe: loading")" -v o="$(at "$f" "Opening ")" \
        -v l="$(at "$f" "RAM disk loaded: ")" -v s="$(at "$f" "EFI stub:")" \
        -v r="$(at "$f" "EXT4-fs (pmem0p2): mounted")" -v m="$(at "$f" "$marker")" 'BEGIN {
        printf "firmware %.1f s", b
        if (l != "") printf ", qcowboot and the load %.1f s (load alone %.1f s)", s - b, l - o
        else printf ", boot loader read and started %.1f s", s - b
        printf ", kernel to root mounted %.1f s, to marker %.1f s", r - s, m - r }'
}

# load_line LOG: what qcowboot said about the load.
load_line() {
    tr -d '\r' <"$1" | grep -a -m 1 '^RAM disk loaded: ' | sed 's/^RAM disk loaded: //'
}

declare -A best bestrun
configs=(raw ramdisk)
echo "bench-ramdisk: guest $guest ($((raw_bytes >> 20)) MiB disk, ext4 root on /dev/pmem0p2)," \
    "accelerator $accel, ${mem} MiB, best of $runs (interleaved)"
for ((r = 1; r <= runs; r++)); do
    line="run $r:"
    for c in "${configs[@]}"; do
        t=$(time_boot "$c" "$W/$c-$r.log")
        if [ "$t" = fail ]; then line+=" $c failed"; else line+=" $c $t s"; fi
        if [ "$t" != fail ]; then
            if [ -z "${best[$c]:-}" ] || awk -v a="$t" -v b="${best[$c]}" 'BEGIN { exit !(a < b) }'; then
                best[$c]=$t
                bestrun[$c]=$r
            fi
        fi
    done
    echo "$line"
done

[ -n "${best[raw]:-}" ] || { echo "bench-ramdisk: the raw disk never booted" >&2; exit 1; }
status=0
printf '%-36s %8s %7s\n' "boot to the root file system's marker" "seconds" "ratio"
printf '%-36s %8s %7s\n' "raw disk (OVMF + QEMU NVDIMM)" "${best[raw]}" "1.00"
if [ -n "${best[ramdisk]:-}" ]; then
    printf '%-36s %8s %7s\n' "qcowboot RAM disk from qcow2" "${best[ramdisk]}" \
        "$(awk -v a="${best[ramdisk]}" -v b="${best[raw]}" 'BEGIN { printf "%.2f", a / b }')"
else
    printf '%-36s %8s %7s\n' "qcowboot RAM disk from qcow2" fail -
    status=1
fi
echo "where the best runs spent their time:"
for c in "${configs[@]}"; do
    [ -n "${bestrun[$c]:-}" ] || continue
    printf '  %-8s %s\n' "$c" "$(phases "$W/$c-${bestrun[$c]}.log.times")"
done
echo "RAM disk load in the firmware (qcowboot's own measure, each run):"
for ((r = 1; r <= runs; r++)); do
    l=$(load_line "$W/ramdisk-$r.log")
    printf '  run %d: %s\n' "$r" "${l:-no load line}"
done
exit "$status"
