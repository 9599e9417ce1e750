# Names and paths of the boot-test guests (built by tests/boot/make-guests.sh)
# and helpers to boot them under QEMU + OVMF. Source it.
#
# A guest is a small disk whose EFI boot loader ends up running a Debian
# kernel with a busybox initramfs; its /init prints
#     QCOWBOOT-GUEST-OK <guest name>
# on the serial console and powers the machine off. Guests:
#     gpt-uki   GPT, ESP with a unified kernel image as \EFI\BOOT\BOOTX64.EFI
#     mbr-uki   MBR (msdos label), ESP of type 0xEF, the same payload
#     gpt-grub  GPT, ESP with a standalone GRUB that loads the kernel and the
#               initramfs from an ext4 partition of the same disk
# Each as build/guests/NAME.raw and as qcow2 variants, each variant a tree
# to copy onto a stick, build/guests/stick/NAME-VARIANT/, whose image is
# NAME-VARIANT.qcow2 at the tree's root:
#     plain     qemu-img convert
#     zlib      every cluster deflate-compressed
#     zstd      every cluster zstd-compressed
#     l2ext     extended L2 overlay (subclusters allocated by small writes)
#               over an extended L2 base, NAME-VARIANT.base next to it
#     overlay   overlay whose backing file is base/NAME.img (relative path
#               into a subdirectory)
# Both overlays restore bytes their base has scrambled, so a reader that
# ignores the overlay (or reads whole clusters where only subclusters are
# allocated) boots a damaged guest.

# The RAM-disk guest (qcowboot's RAM-disk mode, tests/boot/ramdisk.sh),
# built only as build/guests/pmem-root.raw and the variant plain:
#     pmem-root GPT, 256 MiB: ESP with a unified kernel image whose command
#               line says root=/dev/pmem0p2 and whose initramfs only loads
#               the NVDIMM and ext4 modules and mounts the root; the ext4
#               root's /sbin/init prints the line kept in its
#               /etc/qcowboot-marker (random per build; a copy is
#               build/guests/pmem-root.marker) and powers off.

BOOT_ROOT=${BOOT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
GUESTS_DIR=${QB_GUESTS_DIR:-$BOOT_ROOT/build/guests}
BOOT_GUESTS=(gpt-uki mbr-uki gpt-grub)
BOOT_VARIANTS=(plain zlib zstd l2ext overlay)
BOOT_EFI_APP=${BOOT_EFI_APP:-$BOOT_ROOT/build/efi/qcowboot.efi}

boot_marker() { printf 'QCOWBOOT-GUEST-OK %s' "$1"; }
RAMDISK_GUEST=pmem-root
# ramdisk_marker: the line only the RAM-disk guest's root file system holds.
ramdisk_marker() { cat "$GUESTS_DIR/$RAMDISK_GUEST.marker"; }
guest_raw() { printf '%s/%s.raw' "$GUESTS_DIR" "$1"; }
# guest_tree NAME VARIANT: the directory to copy onto a stick.
guest_tree() { printf '%s/stick/%s-%s' "$GUESTS_DIR" "$1" "$2"; }
guest_image_name() { printf '%s-%s.qcow2' "$1" "$2"; }

# What the firmware prints when a program crashes it (it then hangs).
BOOT_CRASH_TEXT="!!!! X64 Exception"

# boot_has_marker LOG NAME: the guest's marker is on the console in LOG.
boot_has_marker() {
    tr -d '\r' <"$1" | grep -a -q -x -F -- "$(boot_marker "$2")"
}

# boot_elapsed START END: seconds between two `date +%s.%N` readings.
boot_elapsed() {
    awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f", e - s }'
}
