#!/usr/bin/env bash
# qcowboot.efi's disk side under QEMU + OVMF: images published as Block I/O
# disks, guests booted from them, mount/unmount in the UEFI shell, the
# Block I/O's answers to bad requests, Secure Boot, and writing: read-write,
# --readonly and --volatile disks, the fallback to read-only (read-only
# file, read-only medium, corrupt bit), a guest that writes and powers off
# at once; the images are then judged on the host (qemu-img check, mtools).
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
for t in qemu-system-x86_64 qemu-img qemu-io mkfs.vfat fsck.vfat mcopy mmd mattrib mshowfat sgdisk sfdisk \
    python3 iconv sha256sum; do
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
fw_nsh_case "$NSH" mount 'qcowboot.efi mount --readonly gpt.qcow2'
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
fw_nsh_case "$NSH" both-modes 'qcowboot.efi mount --readonly --volatile gpt.qcow2'
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

# The write run: one shell session on its own FAT32 stick with 512-byte
# clusters whose free space is in pieces (the images grow into them), and a
# second stick attached read-only:
#   --readonly, then read-write: the shell writes files onto the guest's ESP
#   (through the firmware's FAT driver on top of the disk), the probe writes
#   blocks; --volatile the same on another copy; read-only fallbacks for a
#   file with the read-only attribute, an image marked corrupt and an image
#   on the read-only stick; a mount that would share an image with a
#   read-write disk; a volatile disk written until its memory runs out; and
#   last a guest that copies a file on its ESP and powers off at once.
WRITE_MEM=256
PROBE_LBA=12000         # in partition 2 (random bytes), clear of the ESP
WR=$W/write
stick write gpt.qcow2 DATA.BIN gpt.raw
cp "$EFI/blockio_probe.efi" "$WR/"
mv "$WR/gpt.raw" "$WR/rw.raw"
mv "$WR/gpt.qcow2" "$WR/rw.qcow2"
for f in vol roattr corrupt; do cp "$WR/rw.qcow2" "$WR/$f.qcow2"; done
python3 - "$WR/corrupt.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(72); bits = struct.unpack(">Q", f.read(8))[0]
f.seek(72); f.write(struct.pack(">Q", bits | 2))   # incompatible_features bit 1: corrupt
PY
qemu-img create -q -f qcow2 "$WR/big.qcow2" 1G
(
    set -e
    cd "$G"
    cp gpt.raw guestw.raw
    echo "copy DATA.BIN to COPY.BIN" >WRITE
    mcopy -i guestw.raw@@1M WRITE ::/EFI/BOOT/WRITE
    qemu-img convert -O qcow2 guestw.raw "$WR/guestw.qcow2"
) >"$W/write-images.log" 2>&1 || setup_fail "write run images: $(tail -n 5 "$W/write-images.log")"
for f in rw vol roattr corrupt big guestw; do sha256sum <"$WR/$f.qcow2" | cut -d' ' -f1 >"$W/$f.sha"; done
mkdir -p "$W/rostick"
cp "$WR/rw.qcow2" "$W/rostick/romedia.qcow2"
echo "the read-only stick" >"$W/rostick/ROSTICK.TXT"
sha256sum <"$W/rostick/romedia.qcow2" | cut -d' ' -f1 >"$W/romedia.sha"
bash "$QB_ROOT/tools/mkfat.sh" "$W/rostick.img" "$W/rostick" >/dev/null ||
    setup_fail "the read-only stick"
NSH=$WR/startup.nsh
fw_nsh_begin "$NSH"
# find_fs VAR FILE: sets VAR to the file system holding FILE, by the map
# as it is now (map -r renumbers them as disks come and go).
find_fs() {
    fw_nsh_line "$NSH" 'map -r > NUL'
    fw_nsh_line "$NSH" "set $1 none"
    fw_nsh_line "$NSH" 'for %a in fs0 fs1 fs2 fs3 fs4 fs5 fs6'
    fw_nsh_line "$NSH" "  if exist %a:$2 then"
    fw_nsh_line "$NSH" "    set $1 %a"
    fw_nsh_line "$NSH" '  endif'
    fw_nsh_line "$NSH" 'endfor'
    fw_nsh_line "$NSH" 'fs0:'
}
# The guest's ESP holds HELLO.TXT.
find_esp() { find_fs ESP '\HELLO.TXT'; }
fw_nsh_case "$NSH" w-mount-readonly 'qcowboot.efi mount --readonly rw.qcow2'
fw_nsh_case "$NSH" w-probe-readonly 'blockio_probe.efi'
fw_nsh_case "$NSH" w-unmount-readonly 'qcowboot.efi unmount'
fw_nsh_case "$NSH" w-mount-rw 'qcowboot.efi mount rw.qcow2'
find_esp
fw_nsh_case "$NSH" w-list-rw 'qcowboot.efi mount'
# (echo leaves %lasterror% as it was: here, the listing's 0.)
fw_nsh_case "$NSH" w-echo-rw 'echo QB-WRITTEN-BY-THE-SHELL > %ESP%:\SHELL.TXT'
fw_nsh_case "$NSH" w-cp-rw 'cp -q DATA.BIN %ESP%:\COPY.BIN'
fw_nsh_case "$NSH" w-type-rw 'type %ESP%:\SHELL.TXT'
fw_nsh_case "$NSH" w-probe-rw "blockio_probe.efi write $PROBE_LBA"
fw_nsh_case "$NSH" w-conflict 'qcowboot.efi mount --readonly --snapshot 1 rw.qcow2'
fw_nsh_case "$NSH" w-unmount-rw 'qcowboot.efi unmount'
# A raw image, read-write too.
fw_nsh_case "$NSH" w-mount-raw 'qcowboot.efi mount rw.raw'
find_esp
fw_nsh_case "$NSH" w-echo-raw 'echo QB-RAW-WRITTEN > %ESP%:\SHELL.TXT'
fw_nsh_case "$NSH" w-probe-raw "blockio_probe.efi write $PROBE_LBA"
fw_nsh_case "$NSH" w-unmount-raw 'qcowboot.efi unmount'
fw_nsh_case "$NSH" w-mount-vol 'qcowboot.efi mount --volatile vol.qcow2'
find_esp
fw_nsh_case "$NSH" w-echo-vol 'echo QB-VOLATILE > %ESP%:\SHELL.TXT'
fw_nsh_case "$NSH" w-cp-vol 'cp -q DATA.BIN %ESP%:\COPY.BIN'
fw_nsh_case "$NSH" w-type-vol 'type %ESP%:\SHELL.TXT'
fw_nsh_case "$NSH" w-probe-vol "blockio_probe.efi write $PROBE_LBA"
fw_nsh_case "$NSH" w-unmount-vol 'qcowboot.efi unmount'
fw_nsh_case "$NSH" w-mount-roattr 'qcowboot.efi mount roattr.qcow2'
fw_nsh_case "$NSH" w-probe-roattr 'blockio_probe.efi'
fw_nsh_case "$NSH" w-unmount-roattr 'qcowboot.efi unmount'
fw_nsh_case "$NSH" w-mount-corrupt 'qcowboot.efi mount corrupt.qcow2'
fw_nsh_case "$NSH" w-probe-corrupt 'blockio_probe.efi'
fw_nsh_case "$NSH" w-unmount-corrupt 'qcowboot.efi unmount'
find_fs ROSTICK '\ROSTICK.TXT'
fw_nsh_case "$NSH" w-mount-romedia 'qcowboot.efi mount %ROSTICK%:\romedia.qcow2'
fw_nsh_case "$NSH" w-probe-romedia 'blockio_probe.efi'
fw_nsh_case "$NSH" w-unmount-romedia 'qcowboot.efi unmount'
fw_nsh_case "$NSH" w-mount-fill 'qcowboot.efi mount --volatile big.qcow2'
fw_nsh_case "$NSH" w-probe-fill 'blockio_probe.efi fill'
fw_nsh_case "$NSH" w-unmount-fill 'qcowboot.efi unmount'
fw_nsh_case "$NSH" w-boot-guest-writes 'qcowboot.efi boot guestw.qcow2'
fw_nsh_end "$NSH"
(
    set -e
    img=$W/write.img
    mkfs.vfat -F 32 -s 1 -S 512 -n QBWRITE -C "$img" $((64 * 1024)) >/dev/null
    head -c 1024 /dev/zero >"$G/small"
    for i in $(seq 100 299); do mcopy -i "$img" "$G/small" "::/F$i"; done
    export LC_ALL=C.UTF-8
    mcopy -s -Q -i "$img" "$WR"/* ::/
    mattrib -i "$img" +r ::/roattr.qcow2
    for i in $(seq 101 2 299); do mdel -i "$img" "::/F$i"; done
    # The FSInfo sector's next-free hint at the start of the data area:
    # the firmware's FAT driver allocates the images' growth in the holes.
    python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(48); fsinfo = struct.unpack("<H", f.read(2))[0]
f.seek(fsinfo * 512 + 492); f.write(struct.pack("<I", 2))
PY
) >"$W/write-stick.log" 2>&1 || setup_fail "write stick: $(tail -n 5 "$W/write-stick.log")"

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
    # The write run's stick is judged afterwards.
    [ "$name" = write ] || rm -f "$W/$name.img"
}

RUNS=(shell write)
for b in "${BOOTS[@]}"; do RUNS+=("boot-${b%%|*}"); done
[ "$SB" = 1 ] && RUNS+=(secure)
t0=$(date +%s.%N)
for r in "${RUNS[@]}"; do
    if [ "$r" = secure ]; then
        run secure --code "$SB_CODE" --vars "$SB_VARS" -- -machine smm=on \
            -global driver=cfi.pflash01,property=secure,value=on &
    elif [ "$r" = write ]; then
        # Little memory, so the volatile disk runs out of it soon; a second
        # stick, read-only to the machine.
        run write --mem "$WRITE_MEM" -- -drive "if=none,id=rostick,format=raw,file=$W/rostick.img,readonly=on" \
            -device usb-storage,bus=xhci.0,drive=rostick,removable=on,bootindex=2 &
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
expect "$C" mount zero 'Opening FS0:\gpt.qcow2' "Mounted FS0:\\gpt.qcow2 read-only: 'map -r' shows its file systems"
expect "$C" mount-list zero 'FS0:\gpt.qcow2 (read-only)' "VenMsg($VENDOR)"
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
expect "$C" mount-second zero 'Mounted FS0:\mbr.qcow2 read-write'
expect "$C" mount-list-two zero 'FS0:\snap.qcow2 at snapshot good (read-only)' 'FS0:\mbr.qcow2 (read-write)'
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
expect "$C" boot-help zero 'Usage: qcowboot.efi boot [--snapshot NAME] [--readonly | --volatile] IMAGE' \
    '  --volatile           keep the guest'"'"'s writes in memory'
expect "$C" boot-usage nonzero 'Usage: qcowboot.efi boot [--snapshot NAME] [--readonly | --volatile] IMAGE'
expect "$C" both-modes nonzero 'Usage: qcowboot.efi mount [--snapshot NAME] [--readonly | --volatile] [IMAGE]'
expect "$C" help zero 'Firmware commands:' '  mount [--snapshot NAME] [--readonly | --volatile] [IMAGE]'
# Nothing may hang or crash the firmware.
if ! grep -q -F "$FW_CRASH_TEXT" "$C"; then
    pass "shell: no firmware exception"
else
    fail "shell: no firmware exception" "$(grep -F -A3 "$FW_CRASH_TEXT" "$C" | head -n 4 | tr '\n' '|')"
fi

# The write run.
C=$W/write.txt
if [ "$(cat "$W/write.rc")" = 0 ] && grep -q '^QB-GUEST-HELLO powering off' "$C"; then
    pass "write: every section ran, the last guest powered the machine off ($(cat "$W/write.time") s)"
else
    fail "write run" "QEMU exit $(cat "$W/write.rc"); console tail: $(tail -n 5 "$C" | tr '\n' '|')"
fi
# probe_expect NAME CHECK...: the probe in section NAME passed every CHECK,
# failed none, and started at TPL_APPLICATION (whatever the disk did before
# left the TPL where it belongs).
probe_expect() {
    local name=$1 out chk bad=""; shift
    out=$(fw_section "$C" "$name")
    for chk in "$@"; do
        grep -q "^probe: ok $chk\$" <<<"$out" || bad+=" $chk"
    done
    grep -q '^probe: FAIL' <<<"$out" && bad+=" $(grep '^probe: FAIL' <<<"$out" | head -n 3 | tr '\n' '|')"
    grep -q '^probe: tpl start 4$' <<<"$out" || bad+=" tpl: $(grep '^probe: tpl' <<<"$out")"
    if [ -z "$bad" ]; then pass "$name"; else fail "$name" "$bad"; fi
}
media_ro() {   # media_ro NAME 0|1: the probe saw ReadOnly as given
    if fw_section "$C" "$1" | grep -q "^probe: media .* readonly=$2 "; then
        pass "$1: media ReadOnly=$2"
    else
        fail "$1: media ReadOnly=$2" "$(fw_section "$C" "$1" | grep '^probe: media')"
    fi
}
READONLY_CHECKS=(write-protected write-stale-mediaid flush read-whole-disk chunks-match-whole)
WRITE_CHECKS=(writable write-stale-mediaid write-size-not-multiple write-past-end write-null-buffer
              write-zero-length write-three-blocks write-middle-block read-merged merged-content
              write-256k flush)
expect "$C" w-mount-readonly zero 'Opening FS0:\rw.qcow2' '  read-only' 'Mounted FS0:\rw.qcow2 read-only'
probe_expect w-probe-readonly "${READONLY_CHECKS[@]}"
media_ro w-probe-readonly 1
expect "$C" w-unmount-readonly zero 'Unmounted FS0:\rw.qcow2'
expect "$C" w-mount-rw zero "  read-write: the guest's writes go into the image" \
    "Mounted FS0:\\rw.qcow2 read-write: 'map -r' shows its file systems"
expect "$C" w-list-rw zero 'FS0:\rw.qcow2 (read-write)'
expect "$C" w-conflict nonzero 'FS0:\rw.qcow2 is attached read-write (unmount it first)'
expect "$C" w-echo-rw zero
expect "$C" w-cp-rw zero
expect "$C" w-type-rw zero 'QB-WRITTEN-BY-THE-SHELL'
probe_expect w-probe-rw "${WRITE_CHECKS[@]}"
media_ro w-probe-rw 0
expect "$C" w-unmount-rw zero 'Unmounted FS0:\rw.qcow2'
expect "$C" w-mount-raw zero "  read-write: the guest's writes go into the image" 'Mounted FS0:\rw.raw read-write'
probe_expect w-probe-raw "${WRITE_CHECKS[@]}"
expect "$C" w-unmount-raw zero 'Unmounted FS0:\rw.raw'
expect "$C" w-mount-vol zero "  volatile: the guest's writes are kept in memory" 'Mounted FS0:\vol.qcow2 volatile'
expect "$C" w-echo-vol zero
expect "$C" w-cp-vol zero
expect "$C" w-type-vol zero 'QB-VOLATILE'
probe_expect w-probe-vol "${WRITE_CHECKS[@]}"
media_ro w-probe-vol 0
expect "$C" w-unmount-vol zero 'Unmounted FS0:\vol.qcow2'
expect "$C" w-mount-roattr zero \
    "warning: FS0:\\roattr.qcow2 cannot be written (could not open 'FS0:\\roattr.qcow2': access denied): attached read-only" \
    '  read-only' 'Mounted FS0:\roattr.qcow2 read-only'
probe_expect w-probe-roattr "${READONLY_CHECKS[@]}"
media_ro w-probe-roattr 1
expect "$C" w-mount-corrupt zero 'warning: FS0:\corrupt.qcow2 cannot be written' \
    'image is marked corrupt' '  read-only' 'Mounted FS0:\corrupt.qcow2 read-only'
probe_expect w-probe-corrupt "${READONLY_CHECKS[@]}"
media_ro w-probe-corrupt 1
expect "$C" w-mount-romedia zero 'romedia.qcow2 cannot be written' 'write protected): attached read-only' \
    '  read-only'
probe_expect w-probe-romedia "${READONLY_CHECKS[@]}"
media_ro w-probe-romedia 1
expect "$C" w-mount-fill zero 'Mounted FS0:\big.qcow2 volatile'
probe_expect w-probe-fill fill-volume-full fill-read-first fill-first-intact fill-read-last \
    fill-last-intact fill-refused-unchanged fill-refused-zero fill-rewrite
expect "$C" w-probe-fill zero 'MiB of writes kept in memory (at most ' '; writes beyond it fail)' \
    'failed: the writes kept in memory would pass their limit of '
fw_section "$C" w-probe-fill | grep -E '^probe: fill stopped|MiB of writes' | sed 's/^/    /'
expect "$C" w-unmount-fill zero 'Unmounted FS0:\big.qcow2'
if grep -q '^QB-GUEST-HELLO wrote 600000$' "$C" && grep -q '^QB-GUEST-HELLO tpl after-write 4$' "$C"; then
    pass "w-boot-guest-writes: the guest copied its file through the disk, at TPL_APPLICATION after"
else
    fail "w-boot-guest-writes" "$(grep '^QB-GUEST-HELLO' "$C" | tr '\n' '|')"
fi
if ! grep -q -F "$FW_CRASH_TEXT" "$C"; then
    pass "write: no firmware exception"
else
    fail "write: no firmware exception" "$(grep -F -A3 "$FW_CRASH_TEXT" "$C" | head -n 4 | tr '\n' '|')"
fi

# The images on the write stick, judged on the host.
J=$W/judge
rm -rf "$J"
mkdir -p "$J"
for f in rw vol roattr corrupt big guestw; do
    mcopy -n -i "$W/write.img" "::/$f.qcow2" "$J/$f.qcow2" 2>>"$J/mcopy.log"
done
# qcow2_ok NAME: qemu-img check finds nothing wrong with it.
qcow2_ok() {
    local out
    if out=$(qemu-img check "$J/$1.qcow2" 2>&1) && grep -q 'No errors were found' <<<"$out"; then
        pass "$1.qcow2: qemu-img check is clean"
    else
        fail "$1.qcow2: qemu-img check" "$(head -n 5 <<<"$out" | tr '\n' '|')"
    fi
}
unchanged() {   # unchanged NAME WHY: the image is byte for byte as before the run
    if [ -f "$J/$1.qcow2" ] && [ "$(sha256sum <"$J/$1.qcow2" | cut -d' ' -f1)" = "$(cat "$W/$1.sha")" ]; then
        pass "$1.qcow2 is byte for byte as before ($2)"
    else
        fail "$1.qcow2 unchanged ($2)" "sha256 differs or the file is missing"
    fi
}
# probe_blocks_in RAW: RAW is gpt.raw with the ESP changed and the blocks
# `blockio_probe.efi write $PROBE_LBA` wrote (pattern() there).
probe_blocks_in() {
    python3 - "$1" "$G/gpt.raw" "$PROBE_LBA" <<'PY'
import sys
img, orig, lba = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), int(sys.argv[3])
def pat(tag, block):
    return bytes((tag ^ (block * 29) ^ (i * 13) ^ (i >> 8)) & 0xff for i in range(512))
want = bytearray(orig)
for k, tag in ((0, 0xa5), (1, 0x3c), (2, 0xa5)):
    want[(lba + k) * 512:(lba + k + 1) * 512] = pat(tag, lba + k)
for k in range(512):
    b = lba + 64 + k
    want[b * 512:(b + 1) * 512] = pat(0x77, b)
esp = slice(2048 * 512, 10240 * 512)
want[esp] = img[esp]
sys.exit(0 if bytes(want) == img else 1)
PY
}
qcow2_ok rw
if qemu-img convert -O raw "$J/rw.qcow2" "$J/rw.raw" 2>>"$J/mcopy.log"; then
    text=$(mtype -i "$J/rw.raw@@1M" ::/SHELL.TXT 2>&1 | iconv -f UTF-16 -t UTF-8 2>/dev/null | tr -d '\r')
    if grep -q -x 'QB-WRITTEN-BY-THE-SHELL' <<<"$text"; then
        pass "rw.qcow2: the file the shell wrote onto the guest's ESP is in the image"
    else
        fail "rw.qcow2: SHELL.TXT" "'$text'"
    fi
    if mcopy -n -i "$J/rw.raw@@1M" ::/COPY.BIN "$J/COPY.BIN" 2>>"$J/mcopy.log" && cmp -s "$J/COPY.BIN" "$G/DATA.BIN"; then
        pass "rw.qcow2: the file the shell copied onto the guest's ESP is in the image, intact"
    else
        fail "rw.qcow2: COPY.BIN" "missing or different"
    fi
    if fsck.vfat -n "$J/rw.raw" >/dev/null 2>&1 || { dd if="$J/rw.raw" of="$J/esp" bs=512 skip=2048 count=8192 status=none &&
        fsck.vfat -n "$J/esp" >"$J/fsck.log" 2>&1; }; then
        pass "rw.qcow2: the guest's ESP is a sound FAT file system (fsck.vfat)"
    else
        fail "rw.qcow2: fsck.vfat" "$(tail -n 3 "$J/fsck.log" | tr '\n' '|')"
    fi
    # The probe's blocks, and everything past the ESP otherwise as before.
    if probe_blocks_in "$J/rw.raw"; then
        pass "rw.qcow2: the probe's blocks are in the image, the rest of the disk outside the ESP unchanged"
    else
        fail "rw.qcow2: the probe's blocks" "the disk differs from what was written"
    fi
else
    fail "rw.qcow2: convert" "$(tail -n 3 "$J/mcopy.log")"
fi
if [ "$(stat -c %s "$J/rw.qcow2")" -gt "$(stat -c %s "$G/gpt.qcow2")" ] &&
   [ "$(mshowfat -i "$W/write.img" ::/rw.qcow2 | grep -o '<[0-9]*-[0-9]*>' | wc -l)" -ge 3 ]; then
    pass "rw.qcow2 grew into fragmented free space on the stick ($(mshowfat -i "$W/write.img" ::/rw.qcow2 | grep -o '<[0-9]*-[0-9]*>' | wc -l) extents)"
else
    fail "rw.qcow2: growth" "$(stat -c %s "$J/rw.qcow2") bytes; $(mshowfat -i "$W/write.img" ::/rw.qcow2 | head -c 200)"
fi
mcopy -n -i "$W/write.img" ::/rw.raw "$J/rw-raw.raw" 2>>"$J/mcopy.log"
text=$(mtype -i "$J/rw-raw.raw@@1M" ::/SHELL.TXT 2>&1 | iconv -f UTF-16 -t UTF-8 2>/dev/null | tr -d '\r')
if grep -q -x 'QB-RAW-WRITTEN' <<<"$text" && probe_blocks_in "$J/rw-raw.raw"; then
    pass "rw.raw: the shell's file and the probe's blocks are in the raw image"
else
    fail "rw.raw" "SHELL.TXT '$text', or the probe's blocks differ"
fi
unchanged vol "volatile: written, copied to and probed, never written"
unchanged roattr "read-only attribute"
unchanged corrupt "corrupt bit"
unchanged big "volatile, filled until its memory ran out"
romedia_now=$(mcopy -n -i "$W/rostick.img" ::/romedia.qcow2 - 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$romedia_now" = "$(cat "$W/romedia.sha")" ]; then
    pass "romedia.qcow2 on the read-only stick is as before"
else
    fail "romedia.qcow2 unchanged" "sha256 differs"
fi
qcow2_ok guestw
if qemu-img convert -O raw "$J/guestw.qcow2" "$J/guestw.raw" 2>>"$J/mcopy.log" &&
   mcopy -n -i "$J/guestw.raw@@1M" ::/COPY.BIN "$J/GUESTCOPY.BIN" 2>>"$J/mcopy.log" &&
   cmp -s "$J/GUESTCOPY.BIN" "$G/DATA.BIN"; then
    pass "guestw.qcow2: what the guest wrote just before powering off is in the image"
else
    fail "guestw.qcow2: the guest's copy" "missing or different: $(tail -n 2 "$J/mcopy.log")"
fi
rm -rf "$J" "$W/write.img"

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
