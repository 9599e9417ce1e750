#!/bin/bash
# Makes a FAT file system image (no partition table, the way a USB stick
# often is) holding a copy of a directory tree. Needs no root: mkfs.vfat -C
# plus mtools.
#
# Usage: tools/mkfat.sh IMAGE DIR [SIZE_MIB]
#   SIZE_MIB defaults to twice the tree's size plus 8 MiB (at least 16).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 IMAGE DIR [SIZE_MIB]" >&2; exit 2; }
img=$1
dir=$2
[ -d "$dir" ] || { echo "mkfat: no such directory: $dir" >&2; exit 2; }
if [ $# -ge 3 ]; then
    size=$3
else
    used=$(du -s -k "$dir" | cut -f1)
    size=$(( used * 2 / 1024 + 8 ))
    [ "$size" -ge 16 ] || size=16
fi

export MTOOLS_SKIP_CHECK=1
# mtools converts file names with the locale's character set: UTF-8 names
# only become proper long names under a UTF-8 locale.
case ${LC_ALL:-${LC_CTYPE:-${LANG:-}}} in
*UTF-8* | *utf8*) ;;
*) export LC_ALL=C.UTF-8 ;;
esac
rm -f "$img"
mkfs.vfat -C -n QCOWBOOT "$img" $(( size * 1024 )) >/dev/null
shopt -s nullglob dotglob
entries=("$dir"/*)
if [ ${#entries[@]} -gt 0 ]; then
    mcopy -s -Q -i "$img" "${entries[@]}" ::/
fi
