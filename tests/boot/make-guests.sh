#!/usr/bin/env bash
# Builds the boot-test guests (see tests/boot/lib.sh) under build/guests/,
# without root and from Debian packages only:
#   - the kernel: vmlinuz from the linux-image-*-amd64 package that the
#     linux-image-amd64 metapackage currently depends on (`apt-get download`,
#     extracted with dpkg-deb, never installed), and the few modules the
#     RAM-disk guest's initramfs loads (PMEM_MODULES);
#   - the initramfs: busybox-static and an /init that prints the guest's
#     marker (name from the kernel command line) and powers off;
#   - a unified kernel image from systemd-boot-efi's stub, a standalone
#     GRUB from grub-efi-amd64-bin, FAT (mtools) and ext4 (mke2fs -d) file
#     systems, GPT (sgdisk) and MBR (sfdisk) labels, spliced with dd;
#   - the qcow2 variants with qemu-img and qemu-io.
# Nothing is rebuilt while the inputs (this directory's scripts, the kernel
# package and the tools' package versions) are unchanged.
#
# Usage: tests/boot/make-guests.sh [--force]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

force=0
[ "${1:-}" = --force ] && force=1

export MTOOLS_SKIP_CHECK=1 LC_ALL=C.UTF-8
G=$GUESTS_DIR
mkdir -p "$G"
exec 8>"$G.lock"
flock 8

say() { printf 'make-guests: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# --- which kernel --------------------------------------------------------
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
kpkg=$(kernel_package || true)
if [ -z "$kpkg" ] && [ ! -f "$G/kernel/package" ] && [ "$(id -u)" -eq 0 ]; then
    apt-get update -q >/dev/null
    kpkg=$(kernel_package || true)
fi
if [ -n "$kpkg" ]; then
    kver=$(apt-cache policy "$kpkg" | awk '$1 == "Candidate:" { print $2; exit }')
    kernel_id="$kpkg=$kver"
elif [ -f "$G/kernel/package" ]; then
    kernel_id=$(cat "$G/kernel/package")
    say "package lists unavailable: keeping the kernel from $kernel_id"
else
    die "cannot resolve linux-image-amd64's kernel package (no package lists; run apt-get update)"
fi

pkgver() { dpkg-query -W -f='${Package}=${Version} ' "$@" 2>/dev/null || true; }
key="kernel $kernel_id
tools $(pkgver busybox-static systemd-boot-efi grub-efi-amd64-bin qemu-utils e2fsprogs dosfstools mtools gdisk fdisk cpio)
scripts $(cat "$BOOT_ROOT/tests/boot/make-guests.sh" "$BOOT_ROOT/tests/boot/scramble.py" \
          "$BOOT_ROOT/tests/boot/damage.py" \
          "$BOOT_ROOT/tests/boot/lib.sh" | sha256sum | cut -d' ' -f1)"
if [ "$force" = 0 ] && [ -f "$G/.done" ] && [ "$(cat "$G/.done")" = "$key" ]; then
    exit 0
fi
rm -f "$G/.done"
t0=$(date +%s.%N)

# --- kernel --------------------------------------------------------------
# The modules the RAM-disk guest (pmem-root) needs to mount its root, in
# load order, as paths under lib/modules/VERSION/kernel/ without ".ko":
# the ACPI NFIT and the NVDIMM bus that turn the firmware's RAM disk into
# /dev/pmem0, then ext4. Checked below against each module's own list of
# dependencies.
PMEM_MODULES=(drivers/nvdimm/libnvdimm drivers/acpi/nfit/nfit drivers/nvdimm/nd_btt
              drivers/nvdimm/nd_pmem lib/crc16 fs/mbcache fs/jbd2/jbd2
              crypto/crc32c_generic fs/ext4/ext4)
if [ ! -f "$G/kernel/vmlinuz" ] || [ ! -d "$G/kernel/modules" ] ||
   [ "$(cat "$G/kernel/package" 2>/dev/null)" != "$kernel_id" ]; then
    say "downloading $kernel_id"
    rm -rf "$G/kernel" "$G/dl"
    mkdir -p "$G/dl" "$G/kernel"
    # apt runs the download as _apt when it can write here; otherwise (as
    # root) it warns and downloads unsandboxed: fine for a file we unpack.
    (cd "$G/dl" && apt-get download -q "$kernel_id" 2>&1 | grep -v -i 'unsandboxed' >&2 || true)
    deb=$(ls "$G"/dl/*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || die "apt-get download $kernel_id failed"
    mods=()
    for m in "${PMEM_MODULES[@]}"; do mods+=("./lib/modules/*/kernel/$m.ko"); done
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$G/dl" --wildcards './boot/vmlinuz-*' "${mods[@]}"
    mv "$G"/dl/boot/vmlinuz-* "$G/kernel/vmlinuz"
    mkdir -p "$G/kernel/modules"
    for m in "${PMEM_MODULES[@]}"; do mv "$G"/dl/lib/modules/*/kernel/"$m.ko" "$G/kernel/modules/"; done
    rm -rf "$G/dl"
    printf '%s\n' "$kernel_id" >"$G/kernel/package"
fi

W=$G/work
rm -rf "$W"
mkdir -p "$W"

# --- initramfs -----------------------------------------------------------
bb=/bin/busybox
[ -x "$bb" ] || die "no $bb (install busybox-static)"
readelf -l "$bb" 2>/dev/null | grep -q 'INTERP' && die "$bb is not static (install busybox-static)"
R=$W/initramfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev"
cp "$bb" "$R/bin/busybox"
for a in sh mount cat sed echo poweroff sleep; do ln -s busybox "$R/bin/$a"; done
# The kernel starts /init without a console when the archive has no
# /dev/console node (making one needs root): /init mounts devtmpfs first
# and then takes the console from it.
cat >"$R/init" <<'EOF'
#!/bin/busybox sh
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
name=$(sed -n 's/.*qcowboot_guest=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "qcowboot test guest: /init running, kernel command line: $(cat /proc/cmdline)"
echo "QCOWBOOT-GUEST-OK $name"
poweroff -f
EOF
chmod 755 "$R/init"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$G/initrd.img"

cmdline() { printf 'console=ttyS0 panic=1 qcowboot_guest=%s' "$1"; }

# --- unified kernel image --------------------------------------------------
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
[ -f "$stub" ] || die "no $stub (install systemd-boot-efi)"
# make_uki OUT NAME [INITRD [CMDLINE_EXTRA]]: stub + .osrel .cmdline .linux
# .initrd (the busybox initramfs unless INITRD is given), each at the next
# 4 KiB-aligned address after the previous section.
make_uki() {
    local out=$1 name=$2 initrd=${3:-$G/initrd.img} extra=${4:-} d=$W/uki-$2
    mkdir -p "$d"
    printf 'NAME="qcowboot test guest"\nID=qcowboot-test\nPRETTY_NAME="qcowboot test guest %s"\n' \
        "$name" >"$d/osrel"
    printf '%s%s' "$(cmdline "$name")" "${extra:+ $extra}" >"$d/cmdline"
    local next args=() sec file size
    local idx sname ssize svma rest
    next=0
    while read -r idx sname ssize svma rest; do
        [[ $idx =~ ^[0-9]+$ ]] || continue
        (( 0x$ssize + 0x$svma > next )) && next=$(( 0x$ssize + 0x$svma ))
    done < <(objdump -h "$stub")
    for sec in osrel cmdline linux initrd; do
        case $sec in
        linux) file=$G/kernel/vmlinuz ;;
        initrd) file=$initrd ;;
        *) file=$d/$sec ;;
        esac
        next=$(( (next + 4095) / 4096 * 4096 ))
        args+=(--add-section ".$sec=$file" --change-section-vma ".$sec=$(printf '0x%x' "$next")")
        size=$(stat -c %s "$file")
        next=$(( next + size ))
    done
    objcopy "${args[@]}" "$stub" "$out"
}

# --- disks ---------------------------------------------------------------
MIB=1048576
# fat_image IMG SIZE_MIB FATBITS LABEL: an empty FAT file system.
fat_image() {
    rm -f "$1"
    mkfs.vfat -C -F "$3" -n "$4" "$1" $(( $2 * 1024 )) >/dev/null
}
# splice DISK PART START_MIB: writes a partition image into a disk.
splice() {
    dd if="$2" of="$1" bs=$MIB seek="$3" conv=notrunc status=none
}
# esp_with IMG SIZE_MIB FATBITS BOOTX64: an ESP holding \EFI\BOOT\BOOTX64.EFI.
esp_with() {
    fat_image "$1" "$2" "$3" ESP
    mmd -i "$1" ::/EFI ::/EFI/BOOT
    mcopy -i "$1" "$4" ::/EFI/BOOT/BOOTX64.EFI
}

say "building disks"
# gpt-uki: 64 MiB, ESP (FAT32) at 1 MiB, 48 MiB long.
make_uki "$W/gpt-uki.efi" gpt-uki
esp_with "$W/gpt-uki.esp" 48 32 "$W/gpt-uki.efi"
d=$W/gpt-uki.raw
rm -f "$d"; truncate -s 64M "$d"
sgdisk -n 1:2048:+48M -t 1:ef00 -c 1:"EFI system partition" "$d" >/dev/null
splice "$d" "$W/gpt-uki.esp" 1

# mbr-uki: 64 MiB, msdos label, one partition of type 0xEF (FAT16).
make_uki "$W/mbr-uki.efi" mbr-uki
esp_with "$W/mbr-uki.esp" 48 16 "$W/mbr-uki.efi"
d=$W/mbr-uki.raw
rm -f "$d"; truncate -s 64M "$d"
printf 'label: dos\nstart=2048, size=%d, type=ef, bootable\n' $(( 48 * 2048 )) | sfdisk -q "$d"
splice "$d" "$W/mbr-uki.esp" 1

# gpt-grub: 64 MiB, ESP (FAT16, 16 MiB) with a standalone GRUB, ext4
# (45 MiB at 17 MiB) holding the kernel and the initramfs; GRUB finds the
# ext4 file system by UUID. When its ESP holds an environment block next
# to GRUB (\EFI\BOOT\grubenv; the guests built here have none, the write
# test adds one), GRUB appends an x to `boots` there at every boot.
ext_uuid=5b8d0c3e-7a61-4a55-9d1e-0c0bc0a7b001
mkdir -p "$W/ext/boot"
cp "$G/kernel/vmlinuz" "$W/ext/boot/vmlinuz"
cp "$G/initrd.img" "$W/ext/boot/initrd.img"
printf 'qcowboot test guest root\n' >"$W/ext/README"
rm -f "$W/gpt-grub.ext4"
mke2fs -q -F -t ext4 -L qbguest -U "$ext_uuid" -E root_owner=0:0 -d "$W/ext" "$W/gpt-grub.ext4" 45M >/dev/null
cat >"$W/grub.cfg" <<EOF
set timeout=0
insmod part_gpt
insmod ext2
if [ -f "\$cmdpath/grubenv" ]; then
    load_env -f "\$cmdpath/grubenv"
    set boots="\${boots}x"
    save_env -f "\$cmdpath/grubenv" boots
    echo "qcowboot test guest: GRUB saved boots=\$boots"
fi
search --no-floppy --fs-uuid --set=root $ext_uuid
echo "qcowboot test guest: GRUB loads the kernel from (\$root)"
linux /boot/vmlinuz $(cmdline gpt-grub)
initrd /boot/initrd.img
boot
EOF
grub-mkstandalone -O x86_64-efi -o "$W/grubx64.efi" --locales= --fonts= --themes= \
    --modules="part_gpt part_msdos ext2 fat search search_fs_uuid linux normal echo test loadenv" \
    "boot/grub/grub.cfg=$W/grub.cfg"
esp_with "$W/gpt-grub.esp" 16 16 "$W/grubx64.efi"
d=$W/gpt-grub.raw
rm -f "$d"; truncate -s 64M "$d"
sgdisk -n 1:2048:+16M -t 1:ef00 -c 1:"EFI system partition" \
       -n 2:$(( 17 * 2048 )):+45M -t 2:8300 -c 2:"guest root" "$d" >/dev/null
splice "$d" "$W/gpt-grub.esp" 1
splice "$d" "$W/gpt-grub.ext4" 17

# --- qcow2 variants ------------------------------------------------------
say "converting to qcow2"
# overlay_repair OUT BASE_NAME EXTRA_CREATE_OPTS RAW PAYLOADS...: OUT is an
# overlay (backing file BASE_NAME, relative to OUT's directory) that repairs
# the base, which the caller makes from $W/scrambled.raw.
qcow2_of() { qemu-img convert -f raw -O qcow2 "$@"; }
rm -rf "$G/stick"
for name in "${BOOT_GUESTS[@]}"; do
    raw=$W/$name.raw
    payloads=("$W/$name.efi")
    [ "$name" = gpt-grub ] && payloads=("$W/grubx64.efi" "$G/kernel/vmlinuz")
    for v in "${BOOT_VARIANTS[@]}"; do
        t=$(guest_tree "$name" "$v")
        img=$t/$(guest_image_name "$name" "$v")
        mkdir -p "$t"
        case $v in
        plain) qcow2_of "$raw" "$img" ;;
        zlib) qcow2_of -c -o compression_type=zlib "$raw" "$img" ;;
        zstd) qcow2_of -c -o compression_type=zstd "$raw" "$img" ;;
        l2ext | overlay)
            python3 "$BOOT_ROOT/tests/boot/scramble.py" "$raw" "$W/scrambled.raw" \
                "$W/patches-$name" "${payloads[@]}" >"$W/patches-$name.txt"
            if [ "$v" = l2ext ]; then
                base=$(basename "$img" .qcow2).base
                opts=(-o extended_l2=on)
            else
                base=base/$name.img
                opts=()
            fi
            mkdir -p "$(dirname "$t/$base")"
            qcow2_of "${opts[@]}" "$W/scrambled.raw" "$t/$base"
            qemu-img create -q -f qcow2 "${opts[@]}" -b "$base" -F qcow2 "$img"
            while read -r off len patch; do
                qemu-io -f qcow2 -c "write -q -s $patch $off $len" "$img"
            done <"$W/patches-$name.txt"
            ;;
        esac
        qemu-img compare -q -f qcow2 -F raw "$img" "$raw" ||
            die "$img does not read as $raw"
    done
    mv "$raw" "$(guest_raw "$name")"
done

# --- the RAM-disk guest ---------------------------------------------------
# pmem-root: the RAM-disk guest (qcowboot's RAM-disk mode). 256 MiB, GPT: an
# ESP (FAT16, 24 MiB at 1 MiB) with a unified kernel image whose command
# line says root=/dev/pmem0p2, and the root file system, ext4, on the rest.
# Its initramfs holds only what mounting the root needs: busybox, the
# modules for the firmware's RAM disk as Linux sees it (ACPI NFIT -> nfit,
# libnvdimm, nd_pmem -> /dev/pmem0) and for ext4, and an /init that loads
# them, waits for the root device, mounts it and switches to it. The root
# file system's /sbin/init prints the marker file /etc/qcowboot-marker
# (random per build, in no other file: $G/pmem-root.marker has a copy for
# the tests), writes a file on the root and powers off.
say "building the RAM-disk guest"
pmem_check_modules() {   # each module's dependencies load before it
    local seen=" " m dep
    for m in "${PMEM_MODULES[@]##*/}"; do
        objcopy -O binary --only-section=.modinfo "$G/kernel/modules/$m.ko" "$W/modinfo"
        for dep in $(tr '\0' '\n' <"$W/modinfo" | sed -n 's/^depends=//p' | tr ',' ' '); do
            [[ $seen == *" ${dep//-/_} "* ]] ||
                die "module $m needs $dep, which PMEM_MODULES does not load before it"
        done
        seen+="${m//-/_} "
    done
}
pmem_check_modules
pmem_initrd() {
    local r=$W/pmem-initramfs m
    mkdir -p "$r/bin" "$r/proc" "$r/sys" "$r/dev" "$r/root" "$r/lib/modules"
    cp "$bb" "$r/bin/busybox"
    for a in sh mount umount cat sed echo insmod usleep ls poweroff switch_root; do
        ln -s busybox "$r/bin/$a"
    done
    for m in "${PMEM_MODULES[@]}"; do
        cp "$G/kernel/modules/${m##*/}.ko" "$r/lib/modules/"
    done
    {
        cat <<'EOF'
#!/bin/busybox sh
# Mounts root= (ext4) and hands over to its /sbin/init.
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
root=$(sed -n 's/.*\broot=\([^ ]*\).*/\1/p' /proc/cmdline)
EOF
        printf 'for m in'
        printf ' %s' "${PMEM_MODULES[@]##*/}"
        printf '; do\n'
        cat <<'EOF'
    insmod "/lib/modules/$m.ko" || echo "initramfs: insmod $m failed"
done
# The NVDIMM bus probes its regions asynchronously: wait up to 10 s.
i=0
while [ ! -b "$root" ] && [ $i -lt 200 ]; do usleep 50000; i=$((i + 1)); done
if ! mount -t ext4 "$root" /root; then
    echo "initramfs: cannot mount root=$root; block devices: $(ls /sys/class/block)"
    poweroff -f
fi
umount /sys /proc
exec switch_root /root /sbin/init
EOF
    } >"$r/init"
    chmod 755 "$r/init"
    (cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$W/pmem-initrd.img"
}
pmem_root_fs() {
    local r=$W/pmem-root a
    mkdir -p "$r/bin" "$r/sbin" "$r/etc" "$r/dev" "$r/proc" "$r/sys"
    cp "$bb" "$r/bin/busybox"
    for a in sh mount cat grep echo sync poweroff; do ln -s busybox "$r/bin/$a"; done
    printf 'QCOWBOOT-ROOTFS-OK pmem-root %s\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
        >"$r/etc/qcowboot-marker"
    cp "$r/etc/qcowboot-marker" "$G/pmem-root.marker.new"
    cat >"$r/sbin/init" <<'EOF'
#!/bin/sh
# The root file system's init: says where it runs, prints the marker kept
# on this file system, writes a file here and powers off.
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
echo "qcowboot test guest: /sbin/init on the root file system: $(grep ' / ' /proc/mounts)"
cat /etc/qcowboot-marker
echo "written by the guest" >/guest-wrote-this && sync &&
    echo "qcowboot test guest: wrote /guest-wrote-this on the root file system"
poweroff -f
EOF
    chmod 755 "$r/sbin/init"
    rm -f "$W/pmem-root.ext4"
    mke2fs -q -F -t ext4 -L pmemroot -E root_owner=0:0 -d "$r" "$W/pmem-root.ext4" 229M >/dev/null
}
pmem_initrd
pmem_root_fs
make_uki "$W/pmem-root.efi" pmem-root "$W/pmem-initrd.img" "root=/dev/pmem0p2"
esp_with "$W/pmem-root.esp" 24 16 "$W/pmem-root.efi"
d=$W/pmem-root.raw
rm -f "$d"; truncate -s 256M "$d"
sgdisk -n 1:2048:+24M -t 1:ef00 -c 1:"EFI system partition" \
       -n 2:$(( 26 * 2048 )):+229M -t 2:8300 -c 2:"guest root" "$d" >/dev/null
splice "$d" "$W/pmem-root.esp" 1
splice "$d" "$W/pmem-root.ext4" 26
t=$(guest_tree pmem-root plain)
mkdir -p "$t"
qemu-img convert -f raw -O qcow2 "$d" "$t/$(guest_image_name pmem-root plain)"
mv "$d" "$(guest_raw pmem-root)"
mv "$G/pmem-root.marker.new" "$G/pmem-root.marker"

# --- negative cases: build/guests/bad/ ------------------------------------
#   corrupt-header.qcow2   L1 table past the end of the file
#   corrupt-data.qcow2     gpt-uki whose boot loader has a cluster at an
#                          unaligned offset (reading it fails)
#   missing-backing.qcow2  overlay of base/absent.img, which is not there
#   no-esp.qcow2           GPT disk with only an ext4 partition
#   no-loader.qcow2        GPT disk whose ESP has no \EFI\BOOT\BOOTX64.EFI
say "making the negative cases"
B=$G/bad
rm -rf "$B"
mkdir -p "$B"
d=$W/no-esp.raw
truncate -s 16M "$d"
sgdisk -n 1:2048:+12M -t 1:8300 -c 1:"guest data" "$d" >/dev/null
mkdir -p "$W/data"
printf 'no EFI system partition here\n' >"$W/data/README"
mke2fs -q -F -t ext4 -L qbdata -d "$W/data" "$W/data.ext4" 12M >/dev/null
splice "$d" "$W/data.ext4" 1
qcow2_of "$d" "$B/no-esp.qcow2"
d=$W/no-loader.raw
truncate -s 16M "$d"
sgdisk -n 1:2048:+12M -t 1:ef00 -c 1:"EFI system partition" "$d" >/dev/null
fat_image "$W/empty.esp" 12 16 ESP
mmd -i "$W/empty.esp" ::/EFI ::/EFI/other
printf 'no boot loader here\r\n' >"$W/README.TXT"
mcopy -i "$W/empty.esp" "$W/README.TXT" ::/EFI/other/README.TXT
splice "$d" "$W/empty.esp" 1
qcow2_of "$d" "$B/no-loader.qcow2"
cp "$B/no-esp.qcow2" "$B/corrupt-header.qcow2"
python3 "$BOOT_ROOT/tests/boot/damage.py" l1-past-eof "$B/corrupt-header.qcow2"
cp "$(guest_tree gpt-uki plain)/$(guest_image_name gpt-uki plain)" "$B/corrupt-data.qcow2"
python3 "$BOOT_ROOT/tests/boot/damage.py" unaligned-data "$B/corrupt-data.qcow2" \
    "$(guest_raw gpt-uki)" "$W/gpt-uki.efi"
qemu-img create -q -f qcow2 -u -b base/absent.img -F qcow2 "$B/missing-backing.qcow2" 64M

rm -rf "$W"
printf '%s\n' "$key" >"$G/.done"
t1=$(date +%s.%N)
say "guests built in $(boot_elapsed "$t0" "$t1") s under $G"
