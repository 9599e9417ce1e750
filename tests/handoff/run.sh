#!/usr/bin/env bash
# Handoff to the booted OS (README: "Handing the disk to the OS"): a Linux
# guest boots from a qcow2 image on a stick through qcowboot.efi, and its
# initramfs (initramfs-tools with qcowboot's hook, tools/initramfs/) reads
# the EFI variable qcowboot left, finds the stick, attaches the image with
# qemu-nbd and mounts its root file system from it; the root's init writes
# a file and shuts down as systemd does, through /run/initramfs/shutdown,
# which detaches the image and unmounts the stick. Guest:
# tests/handoff/make-guest.sh.
#
#   gpt-rw    a GPT stick (FAT32 partition with a known GUID and serial),
#             the image an overlay in \vms over a base in \vms\base,
#             read-write: the variable names the partition, the path, the
#             chain and the mode; the root is ext4 on /dev/nbd0p2; the
#             file the guest wrote is in the overlay afterwards, the
#             overlay passes qemu-img check, the base is unchanged, the
#             stick's FAT is clean
#   fat-volatile  a stick formatted as a whole (tools/mkstick.sh), mode
#             volatile in qcowboot.cfg: found by its FAT serial number,
#             attached with the guest's writes in memory; the image is
#             byte for byte as before
#   mbr-ro    an MBR stick, the image at its root, mode read-only in
#             qcowboot.cfg: found by PARTUUID (disk signature and partition
#             number), attached --read-only; the guest cannot write to its
#             root, the image is byte for byte as before
# QB_HANDOFF_CASES="gpt-rw ..." runs only those.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
. "$here/../boot/lib.sh"

W=$BOOT_ROOT/build/tests/handoff
G=$BOOT_ROOT/build/handoff/guest
mkdir -p "$W"
LIMIT=${QB_HANDOFF_LIMIT:-150}
export MTOOLS_SKIP_CHECK=1 LC_ALL=C.UTF-8

if ! bash "$here/make-guest.sh"; then
    fail "build the guest"
    finish
    exit 1
fi
[ -f "$BOOT_EFI_APP" ] || { fail "qcowboot.efi" "missing: $BOOT_EFI_APP (make all)"; finish; exit 1; }

# One QEMU at a time across the firmware-driven suites.
exec 9>"$BOOT_ROOT/build/tests/firmware.lock"
flock 9

MIB=1048576
G_PART_GUID=3f6c1a52-8e0b-4d7a-9c15-7b2e5d4a9f01
G_SERIAL=51C0-B00F
F_SERIAL=0B0E-F1A7
M_SIGNATURE=5ab1e5c0
M_SERIAL=3C0B-D15C
BASE=$G/handoff-base.qcow2
ROOT_OFF=$(cat "$G/root-offset")

# console LOG: the serial log without terminal escapes and CRs.
console() {
    sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g; s/\x1b[()][A-Za-z0-9]//g' "$1" | tr -d '\r'
}

# guest_lines TXT: what the guest said about itself, without the prefix.
guest_lines() { sed -n 's/^qcowboot handoff guest: //p' "$1"; }

# boot NAME STICK: boots the stick; sets rc and secs, writes $W/NAME.txt.
boot() {
    local name=$1 stick=$2 start end
    rc=0
    start=$(date +%s.%N)
    bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$stick" --log "$W/$name.log" --timeout "$LIMIT" \
        --mem 768 --stop-on "$BOOT_CRASH_TEXT" --stop-on "Kernel panic" || rc=$?
    end=$(date +%s.%N)
    secs=$(boot_elapsed "$start" "$end")
    console "$W/$name.log" >"$W/$name.txt"
}

# show TXT: the end of a console, for a failure.
show() { grep -a -v '^[[:space:]]*$' "$1" | tail -n 20 | sed 's/^/    | /'; }

# check_common NAME TXT MODE PATH: the boot itself, the root, qemu-nbd,
# shutdown. The guest writes to its root unless the mode is read-only.
check_common() {
    local name=$1 txt=$2 mode=$3 path=$4 wrote=wrote
    [ "$mode" = read-only ] && wrote="cannot write"
    if [ "$rc" -eq 0 ] && guest_lines "$txt" | grep -q "^$wrote" &&
        grep -a -q -x -F 'qcowboot: image flushed and detached from /dev/nbd0' "$txt"; then
        pass "$name: booted from the image through the handoff, $wrote its root, shut down (${secs} s)"
    else
        fail "$name: boot" "QEMU exit $rc after ${secs} s; console in $W/$name.log, its end:"
        show "$txt"
    fi
    if guest_lines "$txt" | grep -q -E '^root: /dev/nbd0p2 / ext4 '; then
        pass "$name: the root file system is ext4 on /dev/nbd0p2"
    else
        fail "$name: root" "$(guest_lines "$txt" | grep '^root:' || echo 'no root line')"
    fi
    if grep -a -q -E '^  handoff to the OS: EFI variable QcowbootHandoff \([0-9]+ bytes\)$' "$txt" &&
        grep -a -q -x -E "qcowboot: ${path//./\\.} attached to /dev/nbd0 \($mode, qemu-nbd pid [0-9]+\)" "$txt"; then
        pass "$name: qcowboot.efi set the variable, the initramfs attached the image ($mode)"
    else
        fail "$name: handoff" "$(grep -a -E '^qcowboot: |handoff to the OS' "$txt" | head -n 8 | tr '\n' '|')"
    fi
    # systemd spares '@' processes when it kills everything at shutdown.
    if guest_lines "$txt" | grep -q -E '^qemu-nbd argv: @qemu-nbd --connect=/dev/nbd0 '; then
        pass "$name: qemu-nbd runs as @qemu-nbd"
    else
        fail "$name: qemu-nbd's name" "$(guest_lines "$txt" | grep '^qemu-nbd' || echo 'no argv line')"
    fi
}

# --- gpt-rw --------------------------------------------------------------------
gpt_rw() {
    local name=gpt-rw stick=$W/gpt-stick.raw t=$W/tree txt marker want got
    local part_off=$MIB base_sha d
    rm -rf "$t" "$W/out"
    mkdir -p "$t/vms/base" "$W/out"
    cp "$BASE" "$t/vms/base/handoff-base.qcow2"
    qemu-img create -q -f qcow2 -b base/handoff-base.qcow2 -F qcow2 "$t/vms/handoff.qcow2"
    rm -f "$stick" "$W/part.img"
    truncate -s 128M "$stick"
    sgdisk -n 1:2048:0 -t 1:0700 -u "1:$G_PART_GUID" -c 1:"qcowboot stick" "$stick" >/dev/null
    mkfs.vfat -C -F 32 -i "${G_SERIAL/-/}" -n QBSTICK "$W/part.img" $(( (128 - 2) * 1024 )) >/dev/null
    dd if="$W/part.img" of="$stick" bs=$MIB seek=1 conv=notrunc status=none
    rm -f "$W/part.img"
    if ! bash "$BOOT_ROOT/tools/mkstick.sh" -q --efi "$BOOT_EFI_APP" --timeout 0 \
        --entry 'vms/handoff.qcow2:Handoff guest' "$stick@@$part_off" "$t/vms/handoff.qcow2=vms/"; then
        fail "$name" "could not make the stick"
        return
    fi
    rm -rf "$t"
    base_sha=$(mcopy -n -i "$stick@@$part_off" ::/vms/base/handoff-base.qcow2 - | sha256sum)

    boot "$name" "$stick"
    txt=$W/$name.txt
    check_common "$name" "$txt" read-write /vms/handoff.qcow2

    want="version=1
mode=read-write
path=/vms/handoff.qcow2
part_table=gpt
part_number=1
part_uuid=$G_PART_GUID
fat_serial=$G_SERIAL
format=qcow2
backing=/vms/base/handoff-base.qcow2"
    got=$(guest_lines "$txt" | sed -n 's/^handoff: //p')
    if [ "$got" = "$want" ]; then
        pass "$name: the variable names the GPT partition, its FAT serial, the path, the chain, the mode"
    else
        fail "$name: the variable" "got: $(tr '\n' '|' <<<"$got") want: $(tr '\n' '|' <<<"$want")"
    fi
    if grep -a -q -x -F 'qcowboot: stick /dev/sda1 unmounted' "$txt"; then
        pass "$name: the shutdown unmounted the stick"
    else
        fail "$name: stick unmount" "$(grep -a '^qcowboot: ' "$txt" | tail -n 4 | tr '\n' '|')"
    fi

    # On the host: the image, its check, the file in it, the base, the stick.
    d=$W/out
    mkdir -p "$d/vms/base"
    mcopy -n -i "$stick@@$part_off" ::/vms/handoff.qcow2 "$d/vms/handoff.qcow2"
    mcopy -n -i "$stick@@$part_off" ::/vms/base/handoff-base.qcow2 "$d/vms/base/handoff-base.qcow2"
    if out=$(qemu-img check -f qcow2 "$d/vms/handoff.qcow2" 2>&1); then
        pass "$name: qemu-img check: the overlay is clean"
    else
        fail "$name: qemu-img check" "$(tail -n 3 <<<"$out" | tr '\n' '|')"
    fi
    if [ "$(sha256sum <"$d/vms/base/handoff-base.qcow2")" = "$base_sha" ]; then
        pass "$name: the backing file is unchanged"
    else
        fail "$name: the backing file changed"
    fi
    marker=$(guest_lines "$txt" | sed -n 's/^wrote: //p')
    got=""
    if qemu-img convert -f qcow2 -O raw "$d/vms/handoff.qcow2" "$d/disk.raw" 2>/dev/null &&
        dd if="$d/disk.raw" of="$d/root.ext4" bs=$MIB skip=$((ROOT_OFF / MIB)) count=40 \
            status=none; then
        got=$(debugfs -R 'cat /handoff-wrote-this' "$d/root.ext4" 2>/dev/null)
    fi
    if [ -n "$marker" ] && [ "$got" = "$marker" ]; then
        pass "$name: the file the guest wrote is in the image ($marker)"
    else
        fail "$name: the guest's file in the image" "want '${marker:-?}', got '${got}'"
    fi
    if out=$(e2fsck -f -n "$d/root.ext4" 2>&1); then
        pass "$name: e2fsck: the guest's root file system in the image is clean"
    else
        fail "$name: e2fsck" "$(tail -n 3 <<<"$out" | tr '\n' '|')"
    fi
    dd if="$stick" of="$d/stick-part.img" bs=$MIB skip=1 status=none
    if out=$(fsck.vfat -n "$d/stick-part.img" 2>&1); then
        pass "$name: the stick's FAT is clean"
    else
        fail "$name: fsck.vfat" "$(tail -n 3 <<<"$out" | tr '\n' '|')"
    fi
    rm -rf "$d"
}

# --- fat-volatile ----------------------------------------------------------------
fat_volatile() {
    local name=fat-volatile stick=$W/fat-stick.img t=$W/tree txt sha_before sha_after got
    rm -rf "$t"
    mkdir -p "$t"
    cp "$BASE" "$t/handoff.qcow2"
    printf 'timeout = 0\r\nentry = vms\\handoff.qcow2 | Handoff guest | | volatile\r\n' >"$t/qcowboot.cfg"
    if ! bash "$BOOT_ROOT/tools/mkstick.sh" -q --efi "$BOOT_EFI_APP" --config "$t/qcowboot.cfg" \
        --size 96 "$stick" "$t/handoff.qcow2=vms/" ||
        ! mlabel -i "$stick" -N "${F_SERIAL/-/}" ::QBSTICK >/dev/null 2>&1; then
        fail "$name" "could not make the stick"
        return
    fi
    rm -rf "$t"
    sha_before=$(mcopy -n -i "$stick" ::/vms/handoff.qcow2 - | sha256sum)

    boot "$name" "$stick"
    txt=$W/$name.txt
    check_common "$name" "$txt" volatile /vms/handoff.qcow2
    got=$(guest_lines "$txt" | sed -n 's/^handoff: //p')
    if [ "$got" = "version=1
mode=volatile
path=/vms/handoff.qcow2
fat_serial=$F_SERIAL
format=qcow2" ]; then
        pass "$name: the variable names the stick by its FAT serial number, mode volatile"
    else
        fail "$name: the variable" "got: $(tr '\n' '|' <<<"$got")"
    fi
    sha_after=$(mcopy -n -i "$stick" ::/vms/handoff.qcow2 - | sha256sum)
    if [ "$sha_after" = "$sha_before" ] && guest_lines "$txt" | grep -q '^wrote: '; then
        pass "$name: the guest wrote to its root, the image is byte for byte as before"
    else
        fail "$name: the image after the boot" \
            "$([ "$sha_after" = "$sha_before" ] && echo "unchanged, but the guest wrote nothing" || echo changed)"
    fi
}

# --- mbr-ro ----------------------------------------------------------------------
mbr_ro() {
    local name=mbr-ro stick=$W/mbr-stick.raw t=$W/tree txt sha_before sha_after got
    local part_off=$MIB
    rm -rf "$t"
    mkdir -p "$t"
    cp "$BASE" "$t/handoff.qcow2"
    printf 'timeout = 0\r\nmode = read-only\r\n' >"$t/qcowboot.cfg"
    rm -f "$stick" "$W/part.img"
    truncate -s 96M "$stick"
    printf 'label: dos\nlabel-id: 0x%s\nstart=2048, type=c\n' "$M_SIGNATURE" | sfdisk -q "$stick"
    mkfs.vfat -C -F 32 -i "${M_SERIAL/-/}" -n QBSTICK "$W/part.img" $(( (96 - 1) * 1024 )) >/dev/null
    dd if="$W/part.img" of="$stick" bs=$MIB seek=1 conv=notrunc status=none
    rm -f "$W/part.img"
    if ! bash "$BOOT_ROOT/tools/mkstick.sh" -q --efi "$BOOT_EFI_APP" --config "$t/qcowboot.cfg" \
        "$stick@@$part_off" "$t/handoff.qcow2"; then
        fail "$name" "could not make the stick"
        return
    fi
    rm -rf "$t"
    sha_before=$(mcopy -n -i "$stick@@$part_off" ::/handoff.qcow2 - | sha256sum)

    boot "$name" "$stick"
    txt=$W/$name.txt
    check_common "$name" "$txt" read-only /handoff.qcow2
    got=$(guest_lines "$txt" | sed -n 's/^handoff: //p')
    if [ "$got" = "version=1
mode=read-only
path=/handoff.qcow2
part_table=mbr
part_number=1
mbr_signature=0x$M_SIGNATURE
part_uuid=$M_SIGNATURE-01
fat_serial=$M_SERIAL
format=qcow2" ]; then
        pass "$name: the variable names the MBR partition (signature and number), mode read-only"
    else
        fail "$name: the variable" "got: $(tr '\n' '|' <<<"$got")"
    fi
    sha_after=$(mcopy -n -i "$stick@@$part_off" ::/handoff.qcow2 - | sha256sum)
    if [ "$sha_after" = "$sha_before" ] &&
        guest_lines "$txt" | grep -q -E '^qemu-nbd argv: @qemu-nbd .* --read-only '; then
        pass "$name: attached --read-only, the image is byte for byte as before"
    else
        fail "$name: read-only" "$([ "$sha_after" = "$sha_before" ] || echo "the image changed; ")$(
            guest_lines "$txt" | grep '^qemu-nbd' || echo 'no argv line')"
    fi
}

for c in ${QB_HANDOFF_CASES:-gpt-rw fat-volatile mbr-ro}; do
    case $c in
    gpt-rw) gpt_rw ;;
    fat-volatile) fat_volatile ;;
    mbr-ro) mbr_ro ;;
    *) fail "case $c" "unknown (gpt-rw, fat-volatile, mbr-ro)" ;;
    esac
done
finish
