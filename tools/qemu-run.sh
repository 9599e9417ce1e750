#!/bin/bash
# Boots OVMF (UEFI firmware) in QEMU with a disk image as a removable USB
# stick and records the serial console, which OVMF mirrors the console to.
#
# Usage: tools/qemu-run.sh --disk IMAGE --log FILE [options] [-- QEMU_ARGS...]
#   --disk IMAGE        raw disk image attached as a USB stick, boot device 1
#                       (repeatable: later ones get no bootindex, and OVMF
#                       connects only boot-order devices once one has one)
#   --log FILE          serial console output
#   --timeout SECONDS   wall-clock limit for QEMU (default 120)
#   --key-after TEXT    send a key on the serial console once TEXT has appeared
#                       (the UEFI shell's "seconds to skip" countdown only
#                       listens after it printed it: a key sent earlier is lost)
#   --send-after TEXT KEYS
#                       send KEYS (printf %b escapes: "\r" Enter, "\e[B" down)
#                       on the serial console once TEXT has appeared after
#                       what the previous --send-after waited for
#                       (repeatable; taken in order)
#   --stop-on TEXT      stop QEMU as soon as TEXT appears on the console
#                       (repeatable; e.g. "!!!! X64 Exception" for a crash,
#                       after which the firmware would hang until the limit)
#   --accel kvm|tcg     default: what tools/kvm-probe.sh finds
#   --mem MIB           guest memory (default 512)
#   --code FILE         OVMF code (default /usr/share/OVMF/OVMF_CODE_4M.fd)
#   --vars FILE         OVMF variable store template; a fresh copy is used
#                       for every run (default /usr/share/OVMF/OVMF_VARS_4M.fd)
#
# Exit status: QEMU's (0 after a guest power-off, or a reset: -no-reboot
# turns a reset into an exit too, so check the log as well), 124 when the
# time limit was hit, 125 when a --stop-on text appeared. Prints the boot's wall-clock seconds on stderr when
# QB_QEMU_TIME=1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
qemu=${QEMU:-qemu-system-x86_64}
disks=()
log=""
limit=120
key_after=""
sends=()
stop_on=()
accel=""
mem=512
code=/usr/share/OVMF/OVMF_CODE_4M.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.fd
extra=()

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --disk) disks+=("$2"); shift 2 ;;
    --log) log=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --key-after) key_after=$2; shift 2 ;;
    --send-after) sends+=("$2" "$3"); shift 3 ;;
    --stop-on) stop_on+=("$2"); shift 2 ;;
    --accel) accel=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --code) code=$2; shift 2 ;;
    --vars) vars=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) usage ;;
    esac
done
[ -n "$log" ] || usage
[ -n "$accel" ] || accel=$(bash "$root/tools/kvm-probe.sh")

tmp=$(mktemp -d)
qpid=""
catpid=""
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
    [ -n "$catpid" ] && kill "$catpid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
cp "$vars" "$tmp/vars.fd"

args=(-machine q35 -accel "$accel" -m "$mem" -nodefaults -display none -monitor none
      -no-reboot
      -chardev "pipe,id=serial0,path=$tmp/serial" -serial chardev:serial0
      -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
      -drive "if=pflash,format=raw,unit=1,file=$tmp/vars.fd"
      -device qemu-xhci,id=xhci)
[ "$accel" = kvm ] && args+=(-cpu host)
for i in "${!disks[@]}"; do
    boot=""
    [ "$i" -eq 0 ] && boot=,bootindex=1
    args+=(-drive "if=none,id=disk$i,format=raw,file=${disks[$i]}"
           -device "usb-storage,bus=xhci.0,drive=disk$i,removable=on$boot")
done

# The serial line is a pair of FIFOs: QEMU reads serial.in, writes serial.out.
mkfifo "$tmp/serial.in" "$tmp/serial.out"
: >"$log"
start=$(date +%s.%N)
timeout -k 2 "$limit" "$qemu" "${args[@]}" "${extra[@]}" </dev/null &
qpid=$!
cat "$tmp/serial.out" >"$log" &
catpid=$!
# Read-write, so opening never blocks even if QEMU failed to start.
exec 3<>"$tmp/serial.in"

# Watch the console: send the key once, the --send-after keys in order
# (each text looked for past the end of the previous one), stop on the
# first stop text.
stopped=0
send_i=0
send_from=0
while kill -0 "$qpid" 2>/dev/null; do
    if [ -n "$key_after" ] && grep -a -q -F -- "$key_after" "$log"; then
        printf ' ' >&3
        key_after=""
    fi
    if [ "$send_i" -lt "${#sends[@]}" ]; then
        t=${sends[$send_i]}
        m=$(tail -c +"$((send_from + 1))" "$log" | grep -a -b -o -F -m 1 -- "$t" || true)
        if [ -n "$m" ]; then
            printf '%b' "${sends[$((send_i + 1))]}" >&3
            send_from=$((send_from + ${m%%:*} + $(printf '%s' "$t" | wc -c)))
            send_i=$((send_i + 2))
        fi
    fi
    for t in "${stop_on[@]+"${stop_on[@]}"}"; do
        if grep -a -q -F -- "$t" "$log"; then
            stopped=1
            kill "$qpid" 2>/dev/null || true
            break 2
        fi
    done
    [ -n "$key_after" ] || [ "$send_i" -lt "${#sends[@]}" ] && sleep 0.05 || sleep 0.2
done

rc=0
wait "$qpid" || rc=$?
qpid=""
end=$(date +%s.%N)
# If QEMU never opened its end, cat still waits in open(): let it through.
: 1<>"$tmp/serial.out"
wait "$catpid" 2>/dev/null || true
catpid=""
exec 3>&-
[ "$stopped" = 1 ] && rc=125
if [ "${QB_QEMU_TIME:-0}" = 1 ]; then
    awk -v s="$start" -v e="$end" 'BEGIN { printf "qemu-run: %.1f s\n", e - s }' >&2
fi
exit "$rc"
