#!/usr/bin/env bash
# `make demo`: builds the sample guest (a Debian kernel with a busybox
# initramfs on a GPT disk whose ESP holds a unified kernel image, as a
# zstd-compressed qcow2), puts it on a FAT stick with qcowboot.efi as
# \EFI\BOOT\BOOTX64.EFI (tools/mkstick.sh, a menu with a 3 s countdown),
# and boots the stick in QEMU with OVMF. The serial console (firmware,
# qcowboot's menu, the guest's kernel and init) is shown live; the demo
# ends when the guest powers the machine off.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

W=$BOOT_ROOT/build/demo
guest=gpt-uki
variant=zstd
image=$(guest_image_name "$guest" "$variant")

echo "== building the sample guest (cached under $GUESTS_DIR)"
bash "$BOOT_ROOT/tests/boot/make-guests.sh"
[ -f "$BOOT_EFI_APP" ] || { echo "demo: no $BOOT_EFI_APP (make all)" >&2; exit 1; }

echo "== making the stick $W/stick.img (tools/mkstick.sh)"
rm -rf "$W"
mkdir -p "$W"
bash "$BOOT_ROOT/tools/mkstick.sh" --efi "$BOOT_EFI_APP" --timeout 3 \
    --entry "$image:Sample guest (Debian kernel + busybox, GPT + UKI, zstd qcow2)" \
    "$W/stick.img" "$(guest_tree "$guest" "$variant")/$image"

accel=$(bash "$BOOT_ROOT/tools/kvm-probe.sh")
echo "== booting OVMF ($accel) from the stick; serial console:"
log=$W/serial.log
: >"$log"
start=$(date +%s.%N)
rc=0
bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$W/stick.img" --log "$log" --timeout 300 \
    --accel "$accel" --stop-on "$BOOT_CRASH_TEXT" --stop-on "Shell> " &
qpid=$!
# Show the console as it grows, as plain lines: cursor moves (the menu's
# redraws) become line breaks, other escape sequences go, runs of blank
# lines shrink to one.
tail -n +1 -f --pid="$qpid" "$log" |
    sed -u -E 's/\x1b\[[0-9]+;[0-9]+H/\n/g; s/\x1b\[[0-9;=?]*[A-Za-z]//g; s/\x1b[()][A-Za-z0-9]//g; s/\r//g' |
    awk '/^[[:space:]]*$/ { if (blank) next; blank = 1; print; fflush(); next }
         { blank = 0; print; fflush() }' &
tpid=$!
wait "$qpid" || rc=$?
wait "$tpid" 2>/dev/null || true
end=$(date +%s.%N)
echo
if [ "$rc" -eq 0 ] && boot_has_marker "$log" "$guest"; then
    echo "== the guest booted from $image through qcowboot and powered off ($(boot_elapsed "$start" "$end") s)"
    exit 0
fi
case $rc in
124) why="no power-off within the time limit" ;;
125) why="the firmware crashed or fell through to the UEFI shell" ;;
*) why="QEMU exited ($rc) without the guest's marker" ;;
esac
echo "demo failed: $why; console in $log" >&2
exit 1
