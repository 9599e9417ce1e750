#!/usr/bin/env bash
# Builds the handoff guest (tests/handoff/run.sh) under build/handoff/,
# from Debian packages only and without installing any:
#   - the kernel: the package the linux-image-amd64 metapackage depends on
#     (as tests/boot/make-guests.sh picks it), unpacked whole: vmlinuz, and
#     modules with a modules.dep made by busybox depmod;
#   - the initramfs as initramfs-tools builds it: its own /init,
#     scripts/functions, scripts/local and initramfs.conf (package
#     initramfs-tools-core), busybox (busybox-static) with its applet links,
#     blkid (util-linux), and what qcowboot's hook (tools/initramfs/hooks/
#     qcowboot) adds, the hook run for real with initramfs-tools'
#     hook-functions in a private mount namespace (only module lookup is
#     replaced: tests/handoff/hook-functions-modules.sh); its local-top
#     script ordered by initramfs-tools' cache_run_scripts. Standing in for
#     what a Debian system adds besides: the modules udev would load
#     (/conf/modules: USB host, ext4) and udev's init-bottom step that moves
#     /dev to the root;
#   - the disk: GPT, an ESP with a unified kernel image (systemd-boot-efi's
#     stub) whose command line says root=/dev/nbd0p2, and the root file
#     system, ext4, on partition 2: busybox and an /sbin/init that shows
#     how its root is mounted and the handoff it got, writes a file, and
#     shuts down as systemd does (root read-only, pivot into
#     /run/initramfs, /shutdown poweroff);
#   - build/handoff/guest/handoff-base.qcow2: that disk as qcow2 (the
#     suite puts an overlay over it on the stick).
# Nothing is rebuilt while the inputs are unchanged.
#
# Usage: tests/handoff/make-guest.sh [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../boot/lib.sh"

force=0
[ "${1:-}" = --force ] && force=1

export MTOOLS_SKIP_CHECK=1 LC_ALL=C.UTF-8
H=$BOOT_ROOT/build/handoff
G=$H/guest
mkdir -p "$H"
exec 8>"$H.lock"
flock 8

say() { printf 'make-guest (handoff): %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# --- inputs ----------------------------------------------------------------
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
candidate() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }'; }
kpkg=$(kernel_package || true)
if [ -n "$kpkg" ]; then
    kernel_id="$kpkg=$(candidate "$kpkg")"
elif [ -f "$H/kernel/package" ]; then
    kernel_id=$(cat "$H/kernel/package")
    say "package lists unavailable: keeping the kernel from $kernel_id"
else
    die "cannot resolve linux-image-amd64's kernel package (no package lists; run apt-get update)"
fi
itc_ver=$(candidate initramfs-tools-core)
if [ -n "$itc_ver" ]; then
    itc_id="initramfs-tools-core=$itc_ver"
elif [ -f "$H/itc/package" ]; then
    itc_id=$(cat "$H/itc/package")
else
    die "cannot resolve initramfs-tools-core (no package lists; run apt-get update)"
fi

pkgver() { dpkg-query -W -f='${Package}=${Version} ' "$@" 2>/dev/null || true; }
key="kernel $kernel_id
itc $itc_id
tools $(pkgver busybox-static systemd-boot-efi qemu-utils util-linux e2fsprogs dosfstools mtools gdisk cpio)
scripts $(cat "$here"/*.sh "$BOOT_ROOT/tests/boot/lib.sh" \
          $(find "$BOOT_ROOT/tools/initramfs" -type f | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)"
if [ "$force" = 0 ] && [ -f "$G/.done" ] && [ "$(cat "$G/.done")" = "$key" ]; then
    exit 0
fi
rm -f "$G/.done"
t0=$(date +%s.%N)

# download PACKAGE=VERSION DIR: the .deb, unpacked into DIR by the caller.
download() {
    local d=$H/dl
    rm -rf "$d"
    mkdir -p "$d"
    # apt runs the download as _apt when it can write here; otherwise (as
    # root) it warns and downloads unsandboxed: fine for a file we unpack.
    (cd "$d" && apt-get download -q "$1" 2>&1 | grep -v -i 'unsandboxed' >&2 || true)
    ls "$d"/*.deb 2>/dev/null | head -n 1
}

# The kernel, whole: the hook looks modules up by name.
if [ ! -f "$H/kernel/package" ] || [ "$(cat "$H/kernel/package")" != "$kernel_id" ]; then
    say "downloading and unpacking $kernel_id"
    rm -rf "$H/kernel"
    deb=$(download "$kernel_id")
    [ -n "$deb" ] || die "apt-get download $kernel_id failed"
    mkdir -p "$H/kernel"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$H/kernel" ./boot ./lib/modules
    kver=$(ls "$H/kernel/lib/modules")
    busybox depmod -b "$H/kernel" "$kver"
    printf '%s\n' "$kernel_id" >"$H/kernel/package"
    rm -rf "$H/dl"
fi
kver=$(ls "$H/kernel/lib/modules")
K=$H/kernel/lib/modules/$kver
vmlinuz=$(ls "$H"/kernel/boot/vmlinuz-*)

if [ ! -f "$H/itc/package" ] || [ "$(cat "$H/itc/package")" != "$itc_id" ]; then
    say "downloading $itc_id"
    rm -rf "$H/itc"
    deb=$(download "$itc_id")
    [ -n "$deb" ] || die "apt-get download $itc_id failed"
    mkdir -p "$H/itc"
    dpkg-deb -x "$deb" "$H/itc"
    printf '%s\n' "$itc_id" >"$H/itc/package"
    rm -rf "$H/dl"
fi
ITC=$H/itc/usr/share/initramfs-tools

W=$H/work
rm -rf "$W"
mkdir -p "$W" "$G"

# --- initramfs -----------------------------------------------------------
bb=/bin/busybox
readelf -l "$bb" 2>/dev/null | grep -q 'INTERP' && die "$bb is not static (install busybox-static)"
R=$W/initramfs
mkdir -p "$R"
# As mkinitramfs lays it out: usr-merged, its directories, its scripts.
for d in /bin /lib* /sbin; do
    mkdir -p "$R/usr$d"
    ln -s "usr$d" "$R$d"
done
mkdir -p "$R/conf/conf.d" "$R/etc" "$R/run" "$R/scripts" "$R/lib/modules/$kver"
cp -p "$ITC/init" "$R/init"
cp -p "$ITC/scripts/functions" "$ITC/scripts/local" "$ITC/scripts/nfs" "$R/scripts/"
cp -p "$H/itc/etc/initramfs-tools/initramfs.conf" "$R/conf/initramfs.conf"
echo "DPKG_ARCH=amd64" >"$R/conf/arch.conf"
cp -p "$K/modules.builtin" "$K/modules.order" "$R/lib/modules/$kver/"
# Busybox and its applets (Debian's busybox hook), blkid (initramfs-tools
# finds the root's file system type with it).
cp "$bb" "$R/usr/bin/busybox"
busybox --list-long | while read -r a; do
    [ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /usr/bin/busybox "$R/$a"
done

# The qcowboot hook, with initramfs-tools' hook-functions, where it looks
# for it and its helpers where install.sh puts them.
mkdir -p "$W/itshare" "$W/qblib"
cat "$ITC/hook-functions" "$here/hook-functions-modules.sh" >"$W/itshare/hook-functions"
cp "$BOOT_ROOT/tools/initramfs/lib/attach" "$BOOT_ROOT/tools/initramfs/lib/shutdown" "$W/qblib/"
cat >"$W/run-hook.sh" <<EOF
set -e
mount -t tmpfs none /usr/share/initramfs-tools
cp "$W/itshare/hook-functions" /usr/share/initramfs-tools/
mount -t tmpfs none /usr/local/lib
mkdir /usr/local/lib/qcowboot
cp "$W/qblib/attach" "$W/qblib/shutdown" /usr/local/lib/qcowboot/
export DESTDIR="$R" version="$kver" verbose=n BUSYBOX=y CONFDIR="$W/confdir" QB_KMODDIR="$K"
sh "$BOOT_ROOT/tools/initramfs/hooks/qcowboot"
. /usr/share/initramfs-tools/hook-functions
copy_exec /usr/sbin/blkid /usr/sbin/blkid
# What MODULES=most and udev would give this machine: its USB host
# controller and the root's file system.
manual_add_modules xhci-pci ext4 crc32c_generic
# The boot scripts from the configuration directory (where install.sh
# puts them), copied and ordered as mkinitramfs does.
mkdir -p "\$CONFDIR/scripts/local-top" "\$CONFDIR/scripts/init-bottom"
cp -p "$BOOT_ROOT/tools/initramfs/scripts/local-top/qcowboot" "\$CONFDIR/scripts/local-top/"
cp -p "$here/init-bottom-dev" "\$CONFDIR/scripts/init-bottom/dev"
cp -a "\$CONFDIR/scripts/." "$R/scripts/"
cache_run_scripts "$R" /scripts/local-top
cache_run_scripts "$R" /scripts/init-bottom
EOF
unshare --mount --propagation private sh "$W/run-hook.sh" ||
    die "the qcowboot hook failed"
[ -x "$R/usr/bin/qemu-nbd" ] && [ -L "$R/usr/lib/qcowboot/bin/@qemu-nbd" ] &&
    [ -f "$R/lib/modules/$kver/kernel/drivers/block/nbd.ko" ] ||
    die "the hook left no qemu-nbd, @qemu-nbd link or nbd module"
grep -q '^/scripts/local-top/qcowboot ' "$R/scripts/local-top/ORDER" ||
    die "cache_run_scripts did not order scripts/local-top/qcowboot"
printf 'xhci_pci\ncrc32c_generic\next4\n' >"$R/conf/modules"
busybox depmod -b "$R" "$kver"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6n >"$W/initrd.img"

# --- unified kernel image --------------------------------------------------
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
[ -f "$stub" ] || die "no $stub (install systemd-boot-efi)"
# make_uki OUT CMDLINE: stub + .osrel .cmdline .linux .initrd, each at the
# next 4 KiB-aligned address after the previous section.
make_uki() {
    local out=$1 d=$W/uki next args=() sec file idx sname ssize svma rest
    mkdir -p "$d"
    printf 'NAME="qcowboot handoff guest"\nID=qcowboot-test\n' >"$d/osrel"
    printf '%s' "$2" >"$d/cmdline"
    next=0
    while read -r idx sname ssize svma rest; do
        [[ $idx =~ ^[0-9]+$ ]] || continue
        (( 0x$ssize + 0x$svma > next )) && next=$(( 0x$ssize + 0x$svma ))
    done < <(objdump -h "$stub")
    for sec in osrel cmdline linux initrd; do
        case $sec in
        linux) file=$vmlinuz ;;
        initrd) file=$W/initrd.img ;;
        *) file=$d/$sec ;;
        esac
        next=$(( (next + 4095) / 4096 * 4096 ))
        args+=(--add-section ".$sec=$file" --change-section-vma ".$sec=$(printf '0x%x' "$next")")
        next=$(( next + $(stat -c %s "$file") ))
    done
    objcopy "${args[@]}" "$stub" "$out"
}
make_uki "$W/handoff.efi" "console=ttyS0 panic=1 root=/dev/nbd0p2 rootfstype=ext4 qcowboot.wait=60"

# --- the root file system ----------------------------------------------------
F=$W/root
mkdir -p "$F/bin" "$F/sbin" "$F/etc" "$F/dev" "$F/proc" "$F/sys" "$F/run" "$F/tmp"
cp "$bb" "$F/bin/busybox"
for a in sh mount cat grep sed echo sync tr sleep pivot_root chroot; do ln -s busybox "$F/bin/$a"; done
cp "$here/guest-init" "$F/sbin/init"
chmod 755 "$F/sbin/init"
printf 'qcowboot handoff guest root\n' >"$F/etc/README"
rm -f "$W/root.ext4"
mke2fs -q -F -t ext4 -L handoffroot -E root_owner=0:0 -d "$F" "$W/root.ext4" 40M >/dev/null

# --- the disk ------------------------------------------------------------------
# 96 MiB, GPT: ESP (FAT16, 44 MiB at 1 MiB), root (ext4, 40 MiB at 46 MiB).
MIB=1048576
rm -f "$W/esp.img"
mkfs.vfat -C -F 16 -n ESP "$W/esp.img" $(( 44 * 1024 )) >/dev/null
mmd -i "$W/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$W/esp.img" "$W/handoff.efi" ::/EFI/BOOT/BOOTX64.EFI
d=$W/handoff.raw
truncate -s 96M "$d"
sgdisk -n 1:2048:+44M -t 1:ef00 -c 1:"EFI system partition" \
       -n 2:$(( 46 * 2048 )):+40M -t 2:8300 -c 2:"guest root" "$d" >/dev/null
dd if="$W/esp.img" of="$d" bs=$MIB seek=1 conv=notrunc status=none
dd if="$W/root.ext4" of="$d" bs=$MIB seek=46 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$d" "$G/handoff-base.qcow2.new"
mv "$G/handoff-base.qcow2.new" "$G/handoff-base.qcow2"
# Where the root file system lies in the disk, for the suite.
printf '%s\n' $(( 46 * MIB )) >"$G/root-offset"

rm -rf "$W"
printf '%s\n' "$key" >"$G/.done"
say "built in $(boot_elapsed "$t0" "$(date +%s.%N)") s under $G"
