#!/usr/bin/env bash
# qcowboot.efi's disk side under QEMU + OVMF: images published as Block I/O
# disks, guests booted from them, mount/unmount in the UEFI shell, the
# Block I/O's answers to bad requests, Secure Boot.
#
# The guests are tiny: a GPT or MBR disk (or a FAT file system as a whole
# disk) whose EFI system partition holds build/efi/guest_hello.efi as
# \EFI\BOOT\BOOTX64.EFI and a data file. The guest prints where it came
# from and the CRC32 of the data file, and powers the machine off. Every
# boot that should reach the guest is its own QEMU run (the guest ends it);
# everything else shares one run of the shell. Runs go two at a time.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"

W=$QB_ROOT/build/tests/disk
G=$W/guests
# One run at a time per tree.
mkdir -p "$QB_ROOT/build/tests"
exec 9>"$QB_ROOT/build/tests/disk.lock"
flock 9
rm -rf "$W"
mkdir -p "$G"

EFI=$QB_ROOT/build/efi
VENDOR=222F59AB-487E-4FF9-A0E5-E94C1062DA94     # efi/efi_disk.h: QB_EFI_DISK_VENDOR_GUID
JOBS=${QB_DISK_JOBS:-2}
SB_CODE=/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd
SB_VARS=/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd
SB_KEY=/usr/share/ovmf/PkKek-1-snakeoil.key
SB_CERT=/usr/share/ovmf/PkKek-1-snakeoil.pem

setup_fail() { fail "setup" "$1"; finish; exit 1; }
for t in qemu-system-x86_64 qemu-img qemu-io mkfs.vfat mcopy mmd sgdisk sfdisk python3; do
    command -v "$t" >/dev/null || setup_fail "$t is not installed"
done
make -s -C "$QB_ROOT" efi efi-test-apps >"$W/build.log" 2>&1 ||
    setup_fail "building the EFI programs: $(tail -n 5 "$W/build.log")"
export MTOOLS_SKIP_CHECK=1

# --- guest disks ---------------------------------------------------------------
crc32() { python3 -c 'import sys, zlib; print("%08X" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$1"; }

# esp_fs IMAGE WITH_LOADER: a 4 MiB FAT file system with the data file, a
# text file and, if asked, the guest as \EFI\BOOT\BOOTX64.EFI.
esp_fs() {
    mkfs.vfat -C -n GUESTESP "$1" 4096 >/dev/null
    mmd -i "$1" ::/EFI ::/EFI/BOOT
    mcopy -i "$1" "$G/DATA.BIN" ::/DATA.BIN
    mcopy -i "$1" "$G/HELLO.TXT" ::/HELLO.TXT
    if [ "$2" = 1 ]; then mcopy -i "$1" "$EFI/guest_hello.efi" ::/EFI/BOOT/BOOTX64.EFI; fi
}

# gpt_disk OUT TYPE FS: 8 MiB, partition 1 (1 MiB..5 MiB) of sgdisk type
# TYPE holding the file system FS, partition 2 of random bytes.
gpt_disk() {
    truncate -s 8M "$1"
    sgdisk -n 1:2048:10239 -t "1:$2" -c 1:ESP -n 2:10240:16350 -t 2:8300 "$1" >/dev/null
    dd if="$3" of="$1" bs=512 seek=2048 conv=notrunc status=none
    dd if="$G/random" of="$1" bs=512 seek=10240 conv=notrunc status=none
}

# overlay_diff BASE_RAW TOP_RAW OVERLAY: writes into OVERLAY (whose backing
# file holds BASE_RAW) the 4 KiB blocks in which TOP_RAW differs.
overlay_diff() {
    python3 - "$1" "$2" <<'PY' | while read -r off len; do
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
run = None
for off in range(0, len(b), 4096):
    if a[off:off + 4096] != b[off:off + 4096]:
        run = [off, 4096] if run is None else [run[0], off + 4096 - run[0]]
    elif run:
        print(*run); run = None
if run:
    print(*run)
PY
        dd if="$2" of="$G/chunk" bs=4096 skip=$((off / 4096)) count=$((len / 4096)) status=none
        qemu-io -c "write -s $G/chunk $off $len" "$3" >/dev/null || return 1
    done
}

# qcow2_poke FILE WHAT: damages a qcow2 image: "l1" makes the L1 table
# offset unaligned (refused at open), "l2" makes the first L2 entry point
# at an unaligned cluster (the first 64 KiB of the disk cannot be read).
qcow2_poke() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
h = f.read(72)
l1 = struct.unpack(">Q", h[40:48])[0]
if sys.argv[2] == "l1":
    f.seek(40); f.write(struct.pack(">Q", l1 + 8))
else:
    f.seek(l1); l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
    f.seek(l2); e = struct.unpack(">Q", f.read(8))[0]
    f.seek(l2); f.write(struct.pack(">Q", e + 512))
PY
}

(
    set -e
    cd "$G"
    head -c 300000 /dev/urandom >DATA.BIN
    yes "qcowboot guest data" | head -c 300000 >>DATA.BIN
    echo "QB-ESP-HELLO-TEXT" >HELLO.TXT
    head -c 2M /dev/urandom >random
    esp_fs esp.img 1
    esp_fs bare.img 0
    echo "return, do not power off" >RETURN

    gpt_disk gpt.raw ef00 esp.img
    qemu-img convert -O qcow2 gpt.raw gpt.qcow2
    qemu-img convert -c -O qcow2 -o compression_type=zstd gpt.raw gpt-zstd.qcow2

    truncate -s 8M mbr.raw
    printf 'label: dos\nstart=2048, size=8192, type=ef\n' | sfdisk -q mbr.raw
    dd if=esp.img of=mbr.raw bs=512 seek=2048 conv=notrunc status=none
    qemu-img convert -O qcow2 -o cluster_size=4096 mbr.raw mbr.qcow2

    # FAT as the whole disk, no partition table.
    qemu-img convert -O qcow2 esp.img floppy.qcow2

    # An overlay in a subdirectory whose backing file, in a subdirectory
    # of its own, has an ESP without the boot loader: the loader and the
    # data file exist only in the overlay.
    gpt_disk base.raw ef00 bare.img
    cp base.raw top.raw
    mdel -i top.raw@@1M ::/DATA.BIN
    mcopy -i top.raw@@1M "$EFI/guest_hello.efi" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i top.raw@@1M DATA.BIN ::/DATA.BIN
    mkdir -p vm/base
    qemu-img convert -O qcow2 base.raw vm/base/esp.qcow2
    (cd vm && qemu-img create -q -f qcow2 -b base/esp.qcow2 -F qcow2 top.qcow2)
    overlay_diff base.raw top.raw vm/top.qcow2

    # A snapshot that boots; the current state has its ESP wiped.
    cp gpt.qcow2 snap.qcow2
    qemu-img snapshot -c good snap.qcow2
    qemu-io -c 'write -z 1M 4M' snap.qcow2 >/dev/null

    # A guest that returns instead of powering off.
    cp gpt.raw ret.raw
    mcopy -i ret.raw@@1M RETURN ::/EFI/BOOT/RETURN
    qemu-img convert -O qcow2 ret.raw ret.qcow2

    # No ESP: the FAT partition is typed Linux and holds no loader.
    gpt_disk noesp.raw 8300 bare.img
    qemu-img convert -O qcow2 noesp.raw noesp.qcow2

    qemu-img create -q -f qcow2 -u -b gone/base.qcow2 -F qcow2 missing.qcow2 8M
    cp gpt.qcow2 corrupt-header.qcow2
    qcow2_poke corrupt-header.qcow2 l1
    cp gpt.qcow2 corrupt-data.qcow2
    qcow2_poke corrupt-data.qcow2 l2
) >"$W/images.log" 2>&1 || setup_fail "could not build the guest disks: $(tail -n 5 "$W/images.log")"
DATA_CRC=$(crc32 "$G/DATA.BIN")
DATA_SIZE=$(stat -c %s "$G/DATA.BIN")
DISK_CRC=$(crc32 "$G/gpt.raw")
# The overlay holds only what differs: far less than the disk.
ov=$(stat -c %s "$G/vm/top.qcow2")
if [ "$ov" -lt 1500000 ] && qemu-img compare -q "$G/top.raw" "$G/vm/top.qcow2"; then
    pass "setup: overlay of $ov bytes reads as the full guest disk on the host"
else
    fail "setup: overlay" "$ov bytes, or not the guest disk on the host"
fi

# --- sticks ---------------------------------------------------------------------
# stick NAME FILE...: a directory for a stick holding qcowboot.efi and the
# named guest files (paths relative to $G); a startup.nsh comes later.
stick() {
    local d=$W/$1; shift
    mkdir -p "$d"
    cp "$EFI/qcowboot.efi" "$EFI/qcowbootdrv.efi" "$d/"
    for f in "$@"; do
        mkdir -p "$d/$(dirname "$f")"
        cp "$G/$f" "$d/$f"
    done
}

# Booting cases: name | guest files | startup.nsh command | device path of
# the guest's volume after our vendor node | a line the boot must print.
BOOTS=(
    "gpt|gpt.qcow2|qcowboot.efi boot gpt.qcow2|/HD(1,GPT,|Booting \\EFI\\BOOT\\BOOTX64.EFI from partition 1 of FS0:\\gpt.qcow2"
    "mbr|mbr.qcow2|qcowboot.efi boot fs0:\\mbr.qcow2|/HD(1,MBR,|Booting \\EFI\\BOOT\\BOOTX64.EFI from partition 1 of FS0:\\mbr.qcow2"
    "zstd|gpt-zstd.qcow2|qcowboot.efi boot gpt-zstd.qcow2|/HD(1,GPT,|Booting \\EFI\\BOOT\\BOOTX64.EFI from partition 1 of FS0:\\gpt-zstd.qcow2"
    "overlay|vm/top.qcow2 vm/base/esp.qcow2|qcowboot.efi boot vm\\top.qcow2|/HD(1,GPT,|  backing file FS0:\\vm\\base\\esp.qcow2"
    "snapshot|snap.qcow2|qcowboot.efi boot --snapshot good snap.qcow2|/HD(1,GPT,|Opening FS0:\\snap.qcow2 at snapshot good"
    "floppy|floppy.qcow2|qcowboot.efi boot floppy.qcow2||FS0:\\floppy.qcow2: no EFI system partition holds \\EFI\\BOOT\\BOOTX64.EFI; using the disk"
)
for b in "${BOOTS[@]}"; do
    IFS='|' read -r name files cmd _ <<<"$b"
    # shellcheck disable=SC2086
    stick "boot-$name" $files
    fw_nsh_begin "$W/boot-$name/startup.nsh"
    fw_nsh_case "$W/boot-$name/startup.nsh" "$name" "$cmd"
    fw_nsh_end "$W/boot-$name/startup.nsh"
done

# The shell run: mount, the probe, errors, a guest that returns, bench.
SH=$W/shell
stick shell gpt.qcow2 gpt.raw mbr.qcow2 snap.qcow2 ret.qcow2 noesp.qcow2 vm/base/esp.qcow2 \
    missing.qcow2 corrupt-header.qcow2 corrupt-data.qcow2
cp "$EFI/blockio_probe.efi" "$SH/"
mkdir -p "$SH/alone"
cp "$EFI/qcowboot.efi" "$SH/alone/"     # without the driver next to it
NSH=$SH/startup.nsh
fw_nsh_begin "$NSH"
fw_nsh_case "$NSH" mount 'qcowboot.efi mount gpt.qcow2'
fw_nsh_case "$NSH" mount-list 'qcowboot.efi mount'
fw_nsh_case "$NSH" mount-again 'qcowboot.efi mount gpt.qcow2'
fw_nsh_case "$NSH" map-mounted 'map -r'
fw_nsh_case "$NSH" ls-esp 'ls fs1:\EFI\BOOT'
fw_nsh_case "$NSH" type-esp 'type fs1:\HELLO.TXT'
fw_nsh_case "$NSH" probe 'blockio_probe.efi'
fw_nsh_case "$NSH" unmount 'qcowboot.efi unmount GPT.QCOW2'
fw_nsh_case "$NSH" map-unmounted 'map -r'
fw_nsh_case "$NSH" unmount-none 'qcowboot.efi unmount'
fw_nsh_case "$NSH" mount-snapshot 'qcowboot.efi mount --snapshot good snap.qcow2'
fw_nsh_case "$NSH" mount-second 'qcowboot.efi mount fs0:\mbr.qcow2'
fw_nsh_case "$NSH" mount-list-two 'qcowboot.efi mount'
fw_nsh_case "$NSH" unmount-all 'qcowboot.efi unmount'
fw_nsh_case "$NSH" mount-list-empty 'qcowboot.efi mount'
fw_nsh_case "$NSH" mount-no-driver 'alone\qcowboot.efi mount gpt.qcow2'
fw_nsh_case "$NSH" driver-alone 'qcowbootdrv.efi info gpt.qcow2'
fw_nsh_case "$NSH" no-esp 'qcowboot.efi boot noesp.qcow2'
fw_nsh_case "$NSH" no-loader 'qcowboot.efi boot vm\base\esp.qcow2'
fw_nsh_case "$NSH" no-fs 'qcowboot.efi boot snap.qcow2'
fw_nsh_case "$NSH" missing-backing 'qcowboot.efi boot missing.qcow2'
fw_nsh_case "$NSH" corrupt-header 'qcowboot.efi boot corrupt-header.qcow2'
fw_nsh_case "$NSH" corrupt-data 'qcowboot.efi boot corrupt-data.qcow2'
fw_nsh_case "$NSH" no-image 'qcowboot.efi boot nope.qcow2'
fw_nsh_case "$NSH" guest-returns 'qcowboot.efi boot ret.qcow2'
fw_nsh_case "$NSH" after-return 'qcowboot.efi mount'
fw_nsh_case "$NSH" map-after-return 'map -r'
fw_nsh_case "$NSH" bench 'qcowboot.efi bench --raw gpt.raw gpt.qcow2'
fw_nsh_case "$NSH" boot-help 'qcowboot.efi boot --help'
fw_nsh_case "$NSH" boot-usage 'qcowboot.efi boot'
fw_nsh_case "$NSH" help 'qcowboot.efi help'
fw_nsh_end "$NSH"

# Secure Boot (OVMF with the snakeoil keys enrolled; its built-in shell is
# refused there, so tests/firmware/launch.c runs the command lines). The
# guest loader in gpt.qcow2 is unsigned, the one in secure.qcow2 signed.
SB=0
if [ -f "$SB_CODE" ] && [ -f "$SB_VARS" ] && [ -f "$SB_KEY" ] && command -v sbsign >/dev/null &&
    command -v openssl >/dev/null; then
    SB=1
fi
if [ "$SB" = 1 ]; then
    (
        set -e
        cd "$G"
        openssl rsa -in "$SB_KEY" -passin pass:snakeoil -out snakeoil.key 2>/dev/null
        sign() { sbsign --key snakeoil.key --cert "$SB_CERT" --output "$2" "$1" 2>/dev/null; }
        sign "$EFI/guest_hello.efi" guest-signed.efi
        cp gpt.raw secure.raw
        mcopy -o -i secure.raw@@1M guest-signed.efi ::/EFI/BOOT/BOOTX64.EFI
        qemu-img convert -O qcow2 secure.raw secure.qcow2
        d=$W/secure
        mkdir -p "$d/EFI/BOOT" "$d/unsigned"
        sign "$EFI/launch.efi" "$d/EFI/BOOT/BOOTX64.EFI"
        sign "$EFI/qcowboot.efi" "$d/qcowboot.efi"
        sign "$EFI/qcowbootdrv.efi" "$d/qcowbootdrv.efi"
        cp "$d/qcowboot.efi" "$d/unsigned/qcowboot.efi"
        cp "$EFI/qcowbootdrv.efi" "$d/unsigned/qcowbootdrv.efi"
        cp gpt.qcow2 secure.qcow2 "$d/"
        printf '%s\n' 'qcowboot.efi boot gpt.qcow2' 'unsigned\qcowboot.efi mount gpt.qcow2' \
            'qcowboot.efi mount gpt.qcow2' 'qcowboot.efi unmount' \
            'qcowboot.efi boot secure.qcow2' >"$d/LAUNCH.TXT"
    ) >"$W/secure.log" 2>&1 || setup_fail "Secure Boot stick: $(tail -n 5 "$W/secure.log")"
fi

# The shell's stick is FAT32 with 512-byte clusters (the others are FAT16,
# made by tools/mkfat.sh), and gpt.qcow2 on it is fragmented: a filler file
# is copied first and deleted, leaving a hole the image starts in.
(
    set -e
    img=$W/shell.img
    mkfs.vfat -F 32 -s 1 -S 512 -n QBSHELL -C "$img" $((96 * 1024)) >/dev/null
    head -c 300000 /dev/zero >"$G/filler"
    mcopy -i "$img" "$G/filler" ::/FILLER
    mcopy -i "$img" "$G/random" ::/SPACER
    mdel -i "$img" ::/FILLER
    # mtools allocates after the FSInfo sector's next-free hint: point it
    # at the start of the data area, into the hole.
    python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(48); fsinfo = struct.unpack("<H", f.read(2))[0]
f.seek(fsinfo * 512 + 492); f.write(struct.pack("<I", 2))
PY
    mcopy -i "$img" "$SH/gpt.qcow2" ::/gpt.qcow2
    mshowfat -i "$img" ::/gpt.qcow2 >"$W/shell-gpt.fat"
    rm "$SH/gpt.qcow2"
    export LC_ALL=C.UTF-8
    mcopy -s -Q -i "$img" "$SH"/* ::/
) >"$W/shell-stick.log" 2>&1 || setup_fail "shell stick: $(tail -n 5 "$W/shell-stick.log")"
if [ "$(grep -o '<[0-9]*-[0-9]*>' "$W/shell-gpt.fat" | wc -l)" -ge 2 ]; then
    pass "setup: gpt.qcow2 is fragmented on the FAT32 stick ($(tr -d '\n' <"$W/shell-gpt.fat" | cut -c1-80))"
else
    fail "setup: fragmented image" "$(cat "$W/shell-gpt.fat")"
fi

# --- runs -------------------------------------------------------------------------
# run NAME [qemu-run.sh options]: boots the stick $W/NAME.img (made from
# $W/NAME unless it exists); the console goes to $W/NAME.txt, the exit
# status to NAME.rc, seconds to NAME.time.
run() {
    local name=$1; shift
    local start end rc=0
    if [ ! -f "$W/$name.img" ]; then
        bash "$QB_ROOT/tools/mkfat.sh" "$W/$name.img" "$W/$name" >/dev/null || { echo 99 >"$W/$name.rc"; return; }
    fi
    start=$(date +%s.%N)
    bash "$QB_ROOT/tools/qemu-run.sh" --disk "$W/$name.img" --log "$W/$name.log" --timeout 240 \
        --key-after "$FW_SHELL_PROMPT_TEXT" --stop-on "$FW_CRASH_TEXT" \
        --stop-on "No bootable option" "$@" || rc=$?
    end=$(date +%s.%N)
    fw_console "$W/$name.log" >"$W/$name.txt"
    echo "$rc" >"$W/$name.rc"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", e - s }' >"$W/$name.time"
    rm -f "$W/$name.img"
}

RUNS=(shell)
for b in "${BOOTS[@]}"; do RUNS+=("boot-${b%%|*}"); done
[ "$SB" = 1 ] && RUNS+=(secure)
t0=$(date +%s.%N)
for r in "${RUNS[@]}"; do
    if [ "$r" = secure ]; then
        run secure --code "$SB_CODE" --vars "$SB_VARS" -- -machine smm=on \
            -global driver=cfi.pflash01,property=secure,value=on &
    else
        run "$r" &
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
done
wait
t1=$(date +%s.%N)
times=""
for r in "${RUNS[@]}"; do times+=" $r $(cat "$W/$r.time" 2>/dev/null)"; done
awk -v a="$(bash "$QB_ROOT/tools/kvm-probe.sh")" -v s="$t0" -v e="$t1" -v n="${#RUNS[@]}" \
    -v j="$JOBS" 'BEGIN { printf "%d OVMF runs (%s), %d at a time: %.1f s in all\n", n, a, j, e - s }'
echo "seconds per run:$times"

# --- checks -------------------------------------------------------------------------
# Exit statuses come as the shell's %lasterror% ("0x0", "0x1", ...).
status_of() {   # status_of CONSOLE NAME: the raw status, empty if the section never ended
    awk -v e="=== END $2 " 'index($0, e) == 1 { print substr($0, length(e) + 1); exit }' "$1"
}
is_zero() { [[ $1 =~ ^(0x)?0+$ ]]; }

# expect CONSOLE NAME zero|nonzero TEXT...: the section ended with such a
# status and its output holds every TEXT (fixed strings).
expect() {
    local con=$1 name=$2 want=$3 st out t; shift 3
    st=$(status_of "$con" "$name")
    out=$(fw_section "$con" "$name")
    if [ -z "$st" ]; then
        fail "$name" "the section did not finish; console tail: $(tail -n 5 "$con" | tr '\n' '|')"
        return
    fi
    if { [ "$want" = zero ] && ! is_zero "$st"; } || { [ "$want" = nonzero ] && is_zero "$st"; }; then
        fail "$name" "exit status $st; output: $(head -c 600 <<<"$out")"
        return
    fi
    for t in "$@"; do
        if ! grep -q -F -- "$t" <<<"$out"; then
            fail "$name" "no '$t' in: $(head -c 600 <<<"$out")"
            return
        fi
    done
    pass "$name"
}

# Boots that reach the guest.
for b in "${BOOTS[@]}"; do
    IFS='|' read -r name _ _ node line <<<"$b"
    con=$W/boot-$name.txt
    rc=$(cat "$W/boot-$name.rc")
    if [ ! -s "$con" ]; then
        fail "boot $name" "no console output (QEMU exit $rc)"
        continue
    fi
    out=$(fw_section "$con" "$name"; sed -n '/=== BEGIN /,$p' "$con" | tail -n 20)
    dev=$(sed -n 's/^QB-GUEST-HELLO device //p' "$con")
    if grep -q -F -- "$line" <<<"$out" && [[ $dev == *"VenMsg($VENDOR)$node"* ]] &&
        { [ -n "$node" ] || [[ $dev == *"VenMsg($VENDOR)" ]]; }; then
        pass "boot $name: guest loaded from the virtual disk ($(cat "$W/boot-$name.time") s)"
    else
        fail "boot $name: guest loaded from the virtual disk" \
            "device '$dev'; console: $(tail -n 8 "$con" | tr '\n' '|')"
    fi
    if grep -q "^QB-GUEST-HELLO data $DATA_CRC $DATA_SIZE\$" "$con"; then
        pass "boot $name: guest read its data file intact through the disk"
    else
        fail "boot $name: guest data" "$(grep '^QB-GUEST-HELLO data' "$con") (want $DATA_CRC $DATA_SIZE)"
    fi
    # TPL_APPLICATION (4) at the start and after reading through the disk:
    # the firmware's FAT driver must not have been entered twice.
    if grep -q '^QB-GUEST-HELLO tpl start 4$' "$con" && grep -q '^QB-GUEST-HELLO tpl after-read 4$' "$con"; then
        pass "boot $name: guest runs at TPL_APPLICATION before and after its reads"
    else
        fail "boot $name: guest TPL" "$(grep '^QB-GUEST-HELLO tpl' "$con" | tr '\n' '|')"
    fi
    if [ "$rc" = 0 ] && grep -q '^QB-GUEST-HELLO powering off' "$con" &&
        [ -z "$(status_of "$con" "$name")" ]; then
        pass "boot $name: guest powered the machine off"
    else
        fail "boot $name: guest powered the machine off" "QEMU exit $rc; console tail: $(tail -n 4 "$con" | tr '\n' '|')"
    fi
done

# The shell run.
C=$W/shell.txt
if [ "$(cat "$W/shell.rc")" = 0 ] && grep -q '^=== END help ' "$C"; then
    pass "shell: every section ran and the machine powered off ($(cat "$W/shell.time") s)"
else
    fail "shell run" "QEMU exit $(cat "$W/shell.rc"); console tail: $(tail -n 5 "$C" | tr '\n' '|')"
fi
expect "$C" mount zero 'Opening FS0:\gpt.qcow2' "Mounted FS0:\\gpt.qcow2: 'map -r' shows its file systems"
expect "$C" mount-list zero 'FS0:\gpt.qcow2' "VenMsg($VENDOR)"
expect "$C" mount-again nonzero 'FS0:\gpt.qcow2 is mounted already (unmount it first)'
# The guest's ESP is FS1, under our disk's device path; partition 2 has
# no file system and is only a block device.
map=$(fw_section "$C" map-mounted)
if awk '/^ *FS1: /{getline; print; exit}' <<<"$map" | grep -q "/VenMsg($VENDOR,[0-9A-F]*)/HD(1,GPT," &&
    grep -q "/VenMsg($VENDOR,[0-9A-F]*)/HD(2,GPT," <<<"$map"; then
    pass "map-mounted: the ESP is FS1 under the disk's device path (image named in the vendor node)"
else
    fail "map-mounted" "$(head -c 800 <<<"$map")"
fi
expect "$C" ls-esp zero 'BOOTX64.EFI'
expect "$C" type-esp zero 'QB-ESP-HELLO-TEXT'
# The probe: one line per check.
probe=$(fw_section "$C" probe)
for chk in stale-mediaid size-not-multiple lba-past-end range-past-end huge-lba null-buffer \
    zero-length last-block write-protected write-stale-mediaid flush reset read-whole-disk \
    read-in-chunks chunks-match-whole; do
    if grep -q "^probe: ok $chk\$" <<<"$probe"; then
        pass "probe: $chk"
    else
        fail "probe: $chk" "$(grep "^probe: .* $chk" <<<"$probe" || echo "no result")"
    fi
done
want_media="probe: media revision=2001F blocksize=512 lastblock=16383 removable=1 present=1 readonly=1 logicalpartition=0 ioalign=0 lowestaligned=0 blocksperphysical=128 transfergranularity=128"
if grep -q -i -x -F -- "$want_media" <<<"$probe"; then
    pass "probe: media (revision 3, 512-byte blocks, last block, removable, read-only, 64 KiB clusters as physical blocks)"
else
    fail "probe: media" "$(grep '^probe: media' <<<"$probe")"
fi
if grep -q -i "^probe: crc32 $DISK_CRC 8388608\$" <<<"$probe"; then
    pass "probe: the disk reads as the raw guest disk (CRC32 $DISK_CRC)"
else
    fail "probe: disk contents" "$(grep '^probe: crc32' <<<"$probe") (want $DISK_CRC)"
fi
expect "$C" unmount zero 'Unmounted FS0:\gpt.qcow2'
if ! fw_section "$C" map-unmounted | grep -q "VenMsg($VENDOR"; then
    pass "map-unmounted: the disk and its file systems are gone"
else
    fail "map-unmounted" "$(fw_section "$C" map-unmounted | head -c 600)"
fi
expect "$C" unmount-none nonzero 'unmount: no image is mounted'
expect "$C" mount-snapshot zero 'Mounted FS0:\snap.qcow2 at snapshot good'
expect "$C" mount-second zero 'Mounted FS0:\mbr.qcow2'
expect "$C" mount-list-two zero 'FS0:\snap.qcow2 at snapshot good' 'FS0:\mbr.qcow2'
expect "$C" unmount-all zero 'Unmounted FS0:\snap.qcow2 at snapshot good' 'Unmounted FS0:\mbr.qcow2'
expect "$C" mount-list-empty zero
if [ -z "$(fw_section "$C" mount-list-empty)" ]; then
    pass "mount-list-empty: nothing listed"
else
    fail "mount-list-empty" "$(fw_section "$C" mount-list-empty)"
fi
expect "$C" mount-no-driver nonzero 'mount: cannot load qcowbootdrv.efi' 'it belongs next to qcowboot.efi'
# The shell runs no driver as a command ("not an application").
expect "$C" driver-alone nonzero
expect "$C" no-esp nonzero 'qcowboot.efi: FS0:\noesp.qcow2: no EFI system partition on the virtual disk'
expect "$C" no-loader nonzero 'qcowboot.efi: FS0:\vm\base\esp.qcow2: \EFI\BOOT\BOOTX64.EFI not found on the EFI system partition (partition 1)'
expect "$C" no-fs nonzero 'qcowboot.efi: FS0:\snap.qcow2: the EFI system partition (partition 1) holds no file system the firmware can read'
expect "$C" missing-backing nonzero 'FS0:\missing.qcow2' 'FS0:\gone\base.qcow2'
expect "$C" corrupt-header nonzero 'qcowboot.efi: FS0:\corrupt-header.qcow2'
expect "$C" corrupt-data nonzero 'qcowboot.efi: FS0:\corrupt-data.qcow2: read of' \
    'no EFI system partition on the virtual disk (the virtual disk has read errors, see above)'
expect "$C" no-image nonzero "could not open 'FS0:\\nope.qcow2': not found"
expect "$C" guest-returns nonzero 'QB-GUEST-HELLO returning' \
    'qcowboot.efi: FS0:\ret.qcow2: the boot loader returned: aborted'
expect "$C" after-return zero
if [ -z "$(fw_section "$C" after-return)" ] &&
    ! fw_section "$C" map-after-return | grep -q "VenMsg($VENDOR"; then
    pass "after-return: the disk was removed when the guest returned"
else
    fail "after-return" "$(fw_section "$C" after-return; fw_section "$C" map-after-return | head -c 400)"
fi
expect "$C" bench zero 'Block I/O (FS0:\gpt.qcow2): 8388608 bytes in ' 'File (FS0:\gpt.raw): 8388608 bytes in ' 'Ratio (Block I/O / file): '
fw_section "$C" bench | grep -E '^(Block I/O|File|Ratio)' | sed 's/^/    /'
expect "$C" boot-help zero 'Usage: qcowboot.efi boot [--snapshot NAME] IMAGE'
expect "$C" boot-usage nonzero 'Usage: qcowboot.efi boot [--snapshot NAME] IMAGE'
expect "$C" help zero 'Firmware commands:' '  mount [--snapshot NAME] [IMAGE]'
# Nothing may hang or crash the firmware.
if ! grep -q -F "$FW_CRASH_TEXT" "$C"; then
    pass "shell: no firmware exception"
else
    fail "shell: no firmware exception" "$(grep -F -A3 "$FW_CRASH_TEXT" "$C" | head -n 4 | tr '\n' '|')"
fi

# Secure Boot.
if [ "$SB" = 1 ]; then
    S=$W/secure.txt
    expect "$S" 1 nonzero 'the firmware refused to load \EFI\BOOT\BOOTX64.EFI from partition 1' \
        'Secure Boot: the boot loader is not signed by a key the firmware trusts'
    expect "$S" 2 nonzero 'mount: cannot load qcowbootdrv.efi' 'Secure Boot: it must be signed like qcowboot.efi'
    expect "$S" 3 zero 'Mounted \gpt.qcow2'
    expect "$S" 4 zero 'Unmounted \gpt.qcow2'
    if [ "$(cat "$W/secure.rc")" = 0 ] && grep -q "^QB-GUEST-HELLO data $DATA_CRC $DATA_SIZE\$" "$S" &&
        grep -q '^QB-GUEST-HELLO powering off' "$S"; then
        pass "secure boot: the signed guest boots ($(cat "$W/secure.time") s)"
    else
        fail "secure boot: the signed guest boots" "QEMU exit $(cat "$W/secure.rc"); $(tail -n 5 "$S" | tr '\n' '|')"
    fi
else
    echo "note: no snakeoil OVMF, sbsign or openssl: Secure Boot not tested"
fi

finish
