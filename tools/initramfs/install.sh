#!/bin/sh
# Installs qcowboot's initramfs-tools support on a Debian or Ubuntu system
# that is to run from a qcow2 image qcowboot boots (README: "Handing the
# disk to the OS"); run it as root inside that system, then rebuild the
# initramfs:
#
#   tools/initramfs/install.sh && update-initramfs -u
#
# It copies
#   hooks/qcowboot              to CONFDIR/hooks/qcowboot
#   scripts/local-top/qcowboot  to CONFDIR/scripts/local-top/qcowboot
#   lib/attach, lib/shutdown    to /usr/local/lib/qcowboot/ (the hook takes
#                               them into the initramfs from there)
# CONFDIR is /etc/initramfs-tools unless --confdir says otherwise.
# --uninstall removes the same files.
#
# The system needs the packages qemu-utils (qemu-nbd) and busybox, and its
# kernel command line root= pointing into the image: root=/dev/nbd0p2, or
# better root=UUID=... of the root file system in the image.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
confdir=/etc/initramfs-tools
lib=/usr/local/lib/qcowboot
uninstall=0

while [ $# -gt 0 ]; do
    case $1 in
    --confdir) confdir=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (--help)" >&2; exit 2 ;;
    esac
done

if [ "$uninstall" = 1 ]; then
    rm -f "$confdir/hooks/qcowboot" "$confdir/scripts/local-top/qcowboot" \
        "$lib/attach" "$lib/shutdown"
    rmdir "$lib" 2>/dev/null || true
    echo "removed; now run update-initramfs -u"
    exit 0
fi

command -v qemu-nbd >/dev/null || echo "install.sh: warning: no qemu-nbd (apt install qemu-utils)" >&2
[ -x /bin/busybox ] || echo "install.sh: warning: no busybox (apt install busybox)" >&2
install -d "$confdir/hooks" "$confdir/scripts/local-top" "$lib"
install -m 755 "$here/hooks/qcowboot" "$confdir/hooks/qcowboot"
install -m 755 "$here/scripts/local-top/qcowboot" "$confdir/scripts/local-top/qcowboot"
install -m 755 "$here/lib/attach" "$here/lib/shutdown" "$lib/"
echo "installed; now run update-initramfs -u"
