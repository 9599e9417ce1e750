#!/usr/bin/env bash
# `make bench-boot`: how much qcowboot adds to a guest's boot. Times, from
# QEMU's start to the guest's marker on the serial console, the gpt-uki
# guest booted
#   raw       as its raw disk attached to QEMU as the USB stick (OVMF boots
#             its \EFI\BOOT\BOOTX64.EFI directly)
#   VARIANT   from a stick made by tools/mkstick.sh: qcowboot.efi as
#             \EFI\BOOT\BOOTX64.EFI, the guest's qcow2 image and a
#             qcowboot.cfg with `timeout = 0`
# on the same accelerator (tools/kvm-probe.sh), runs interleaved, best of
# N, and prints each time and its ratio to the raw boot (target: <= 1.15).
#
# Usage: tests/boot/bench-boot.sh [RUNS]   (default 3)
#   QB_BENCH_VARIANTS="plain zstd" picks the qcow2 variants.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

runs=${1:-3}
variants=(${QB_BENCH_VARIANTS:-plain zstd})
guest=gpt-uki
W=$BOOT_ROOT/build/bench-boot
rm -rf "$W"
mkdir -p "$W"

bash "$BOOT_ROOT/tests/boot/make-guests.sh"
[ -f "$BOOT_EFI_APP" ] || { echo "bench-boot: no $BOOT_EFI_APP (make all)" >&2; exit 1; }
accel=$(bash "$BOOT_ROOT/tools/kvm-probe.sh")
export QB_ACCEL=$accel

for v in "${variants[@]}"; do
    bash "$BOOT_ROOT/tools/mkstick.sh" -q --efi "$BOOT_EFI_APP" --timeout 0 "$W/stick-$v.img" \
        "$(guest_tree "$guest" "$v")/$(guest_image_name "$guest" "$v")"
done

# One QEMU at a time with the firmware-driven suites.
mkdir -p "$BOOT_ROOT/build/tests"
exec 9>"$BOOT_ROOT/build/tests/firmware.lock"
flock 9

# What the console shows along the way: the firmware loading the stick's
# boot loader, qcowboot opening the image and starting the guest's loader,
# the kernel's EFI stub, the kernel, the guest's marker.
marker=$(boot_marker "$guest")
MILESTONES=("BdsDxe: loading" "Opening " 'Booting \EFI\BOOT\BOOTX64.EFI' "EFI stub:"
            "Linux version" "$marker")

# time_boot DISK LOG: seconds from QEMU's start to the marker, or "fail";
# LOG.times gets the milestones' times.
time_boot() {
    local disk=$1 log=$2 pid start t rc=0
    : >"$log"
    start=$(date +%s.%N)
    bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$disk" --log "$log" --timeout 300 \
        --stop-on "$BOOT_CRASH_TEXT" --stop-on "Shell> " &
    pid=$!
    python3 "$BOOT_ROOT/tests/boot/watch-log.py" "$log" "$start" "$pid" 300 \
        "${MILESTONES[@]}" >"$log.times"
    wait "$pid" || rc=$?
    t=$(grep -F -- "$marker" "$log.times" | cut -d' ' -f1)
    if [ -z "$t" ] || [ "$rc" -ne 0 ]; then
        echo "bench-boot: $disk: no marker (QEMU exit $rc); console in $log" >&2
        echo fail
        return
    fi
    echo "$t"
}

# at TIMES TEXT: when TEXT appeared in a run, or nothing.
at() { grep -F -- "$2" "$1" | head -n 1 | cut -d' ' -f1; }
# phases TIMES: the run split at the milestones.
phases() {
    local f=$1 bds stub
    bds=$(at "$f" "${MILESTONES[0]}")
    stub=$(at "$f" "EFI stub:")
    awk -v b="${bds:-0}" -v s="${stub:-0}" -v m="$(at "$f" "$marker")" 'BEGIN {
        printf "firmware %.1f s, boot loader read and started %.1f s, kernel to marker %.1f s", b, s - b, m - s }'
}

declare -A best bestrun
configs=(raw "${variants[@]}")
echo "bench-boot: guest $guest, accelerator $accel, best of $runs (interleaved)"
for ((r = 1; r <= runs; r++)); do
    line="run $r:"
    for c in "${configs[@]}"; do
        if [ "$c" = raw ]; then disk=$(guest_raw "$guest"); else disk=$W/stick-$c.img; fi
        t=$(time_boot "$disk" "$W/$c-$r.log")
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

[ -n "${best[raw]:-}" ] || { echo "bench-boot: the raw disk never booted" >&2; exit 1; }
printf '%-28s %8s %7s\n' "boot to the guest's marker" "seconds" "ratio"
printf '%-28s %8s %7s\n' "raw disk (OVMF directly)" "${best[raw]}" "1.00"
status=0
for v in "${variants[@]}"; do
    if [ -z "${best[$v]:-}" ]; then
        printf '%-28s %8s %7s\n' "qcowboot, $v qcow2" fail -
        status=1
        continue
    fi
    ratio=$(awk -v a="${best[$v]}" -v b="${best[raw]}" 'BEGIN { printf "%.2f", a / b }')
    printf '%-28s %8s %7s%s\n' "qcowboot, $v qcow2" "${best[$v]}" "$ratio" \
        "$(awk -v r="$ratio" 'BEGIN { if (r > 1.15) print "  (over the 1.15 target)" }')"
done
echo "where the best runs spent their time:"
for c in "${configs[@]}"; do
    [ -n "${bestrun[$c]:-}" ] || continue
    printf '  %-6s %s\n' "$c" "$(phases "$W/$c-${bestrun[$c]}.log.times")"
done
exit "$status"
