#!/usr/bin/env bash
# Boot tests: real Linux guests (tests/boot/lib.sh) booted under QEMU + OVMF.
#   1. each guest's raw disk attached directly (no qcowboot): proves the
#      guest itself boots;
#   2. qcowboot.efi as the stick's \EFI\BOOT\BOOTX64.EFI with one image on
#      the stick: without a config (mode "stick": it boots the only image
#      after its countdown) and with a qcowboot.cfg saying `timeout = 0`
#      (mode "unattended");
#   3. `qcowboot.efi boot fs0:\IMAGE` from the UEFI shell's startup.nsh (mode
#      "shell": the stick has no BOOTX64.EFI, the firmware falls through to
#      the shell).
# A boot passes when the guest's marker is on the serial console and QEMU
# exited 0 by itself (the guest powered off) within the time limit.
#
# Under TCG a Linux guest boot costs ~10 s of CPU, so the matrix covers
# every guest and every qcow2 variant without booting every combination.
# QB_BOOT_CASES="mode:guest:variant ..." runs other cases (mode: raw,
# stick, unattended or shell; no variant for raw).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"

W=$BOOT_ROOT/build/tests/boot
mkdir -p "$W"
LIMIT=${QB_BOOT_LIMIT:-150}

if ! bash "$BOOT_ROOT/tests/boot/make-guests.sh"; then
    fail "build guests"
    finish
    exit 1
fi
[ -f "$BOOT_EFI_APP" ] || { fail "qcowboot.efi" "missing: $BOOT_EFI_APP (make all)"; finish; exit 1; }

# One QEMU at a time across the firmware-driven suites: parallel runs on two
# cores would turn timing limits into noise.
exec 9>"$BOOT_ROOT/build/tests/firmware.lock"
flock 9

CASES=${QB_BOOT_CASES:-"
    raw:gpt-uki raw:mbr-uki raw:gpt-grub
    stick:gpt-uki:plain
    unattended:gpt-uki:zlib unattended:gpt-uki:zstd unattended:gpt-uki:l2ext
    unattended:gpt-uki:overlay unattended:mbr-uki:plain unattended:gpt-grub:plain
    unattended:gpt-grub:zstd
    shell:gpt-uki:plain shell:mbr-uki:l2ext shell:gpt-grub:overlay
"}

# console LOG: the serial log without terminal escapes and CRs.
console() {
    sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g; s/\x1b[()][A-Za-z0-9]//g' "$1" | tr -d '\r'
}

# make_stick MODE GUEST VARIANT OUT: a FAT stick image holding the variant's
# image (with its backing files) and qcowboot.efi, started as MODE says.
make_stick() {
    local mode=$1 guest=$2 v=$3 out=$4 tree img d
    tree=$(guest_tree "$guest" "$v")
    img=$(guest_image_name "$guest" "$v")
    if [ "$mode" != shell ] && [ -f "$BOOT_ROOT/tools/mkstick.sh" ]; then
        local opts=(-q --efi "$BOOT_EFI_APP")
        [ "$mode" = unattended ] && opts+=(--timeout 0)
        bash "$BOOT_ROOT/tools/mkstick.sh" "${opts[@]}" "$out" "$tree/$img"
        return
    fi
    d=$W/tree
    rm -rf "$d"
    cp -r "$tree" "$d"
    case $mode in
    stick | unattended)
        mkdir -p "$d/EFI/BOOT"
        cp "$BOOT_EFI_APP" "$d/EFI/BOOT/BOOTX64.EFI"
        [ "$mode" = unattended ] && printf 'timeout = 0\r\n' >"$d/qcowboot.cfg"
        ;;
    shell)
        cp "$BOOT_EFI_APP" "$d/qcowboot.efi"
        printf '@echo -off\r\nfs0:\r\ncd \\\r\nqcowboot.efi boot fs0:\\%s\r\necho "=== qcowboot returned %%lasterror%%"\r\nreset -s\r\n' \
            "$img" >"$d/startup.nsh"
        ;;
    esac
    bash "$BOOT_ROOT/tools/mkfat.sh" "$out" "$d"
    rm -rf "$d"
}

# run_case MODE GUEST [VARIANT]
run_case() {
    local mode=$1 guest=$2 v=${3:-} name disk log rc start end secs args
    name=$mode:$guest${v:+:$v}
    log=$W/${name//:/-}.log
    if [ "$mode" = raw ]; then
        disk=$(guest_raw "$guest")
    else
        disk=$W/stick.img
        if ! make_stick "$mode" "$guest" "$v" "$disk"; then
            fail "$name" "could not make the stick"
            return
        fi
    fi
    args=(--disk "$disk" --log "$log" --timeout "$LIMIT" --stop-on "$BOOT_CRASH_TEXT")
    # The shell's startup.nsh countdown only listens after printing this.
    [ "$mode" = shell ] && args+=(--key-after "seconds to skip")
    # Unattended, the shell's prompt means qcowboot gave up and the firmware
    # fell through to its next boot option.
    [ "$mode" = stick ] || [ "$mode" = unattended ] && args+=(--stop-on "Shell> ")
    rc=0
    start=$(date +%s.%N)
    bash "$BOOT_ROOT/tools/qemu-run.sh" "${args[@]}" || rc=$?
    end=$(date +%s.%N)
    secs=$(boot_elapsed "$start" "$end")
    if [ "$rc" -eq 0 ] && boot_has_marker "$log" "$guest"; then
        pass "$name (${secs} s)"
        return
    fi
    local why
    case $rc in
    0) why="QEMU exited without the guest's marker" ;;
    124) why="no exit within ${LIMIT} s" ;;
    125) if console "$log" | grep -a -q -F "Shell> "; then
             why="fell through to the UEFI shell"
         else
             why="firmware exception"
         fi ;;
    *) why="QEMU exit $rc" ;;
    esac
    fail "$name" "$why after ${secs} s; console in $log, its end:"
    console "$log" | grep -a -v '^[[:space:]]*$' | tail -n 15 | sed 's/^/    | /'
}

for c in $CASES; do
    IFS=: read -r mode guest v <<<"$c"
    run_case "$mode" "$guest" "$v"
done
rm -f "$W/stick.img"
finish
