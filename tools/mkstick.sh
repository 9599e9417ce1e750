#!/bin/bash
# Makes a qcowboot boot stick: qcowboot.efi as \EFI\BOOT\BOOTX64.EFI (the
# file a firmware boots from removable media), the images with their
# backing files, and optionally the config \qcowboot.cfg. Needs no root:
# mkfs.vfat -C and mtools for FAT image files, plain cp for a directory.
#
# Usage: tools/mkstick.sh [OPTIONS] OUTPUT [IMAGE[=DEST]]...
#
# OUTPUT
#   FILE               a new FAT image file (replaced if it exists), sized from
#                      the contents with headroom (FAT32 from 512 MiB on);
#                      write it to a stick with dd, or attach it to QEMU
#   FILE@@OFFSET       an existing FAT file system at byte OFFSET of FILE (a
#                      partition in a disk image; @@0 for a plain FAT image),
#                      filled through mtools; files already there are replaced
#   DIR                an existing directory, such as a mounted FAT stick
#
# IMAGE[=DEST]         an image to put on the stick, at DEST (a path on the
#                      stick, '/' or '\'; ending in '/' for a directory;
#                      default: the root, under its own name). Its backing
#                      files (relative names) are copied to the same relative
#                      places, so the chain opens on the stick as on the host.
#
# Options
#   --efi FILE         the qcowboot.efi to install (default: build/efi/qcowboot.efi)
#   --file SRC=DEST    also copy SRC to DEST on the stick (repeatable): a
#                      driver binary, a backing file named by an absolute
#                      path, anything. DEST ending in '/' keeps SRC's name.
#   --config FILE      copy FILE as \qcowboot.cfg
#   --entry IMAGE[:TITLE[:SNAPSHOT]]
#                      a menu entry of a generated \qcowboot.cfg (repeatable,
#                      in menu order): IMAGE is the path on the stick, TITLE
#                      what the menu shows, SNAPSHOT an internal snapshot to
#                      boot. TITLE cannot contain ':' or '|' here (write a
#                      config file for that).
#   --default N|TITLE  the default entry of the generated config
#   --timeout SECONDS  its countdown (0 boots at once; -1 waits for a key)
#   --no-backing       do not follow the images' backing files
#   --size MIB         size of a new FAT image instead of the computed one
#   --label NAME       volume label of a new FAT image (default QCOWBOOT)
#   -q, --quiet        no summary of what was put where
#   -h, --help         this text
#
# Without --config, --entry, --default or --timeout no config is written:
# qcowboot then lists the *.qcow2 files of the stick's root and \images
# directory in its menu, and boots a single one after a 5 s countdown.
#
# Examples
#   tools/mkstick.sh stick.img debian.qcow2
#   tools/mkstick.sh --entry images/deb.qcow2:Debian --entry images/win.qcow2:Windows:clean \
#       --default 2 --timeout 10 stick.img deb.qcow2=images/ win.qcow2=images/
#   tools/mkstick.sh /media/usb vm/overlay.qcow2=vms/      (the base follows it)
#   tools/mkstick.sh disk.raw@@1048576 debian.qcow2        (FAT partition at 1 MiB)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prog=mkstick

usage() {   # usage [STATUS]: the help, on stderr unless asked for
    if [ "${1:-2}" = 0 ]; then
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    else
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    fi
    exit "${1:-2}"
}
die() {
    echo "$prog: $*" >&2
    exit 1
}
warn() {
    echo "$prog: warning: $*" >&2
}

efi=$root/build/efi/qcowboot.efi
config=""
entries=()
default=""
timeout=""
follow=1
size=""
label=QCOWBOOT
quiet=0
output=""
images=()
files=()

need_arg() {
    [ $# -ge 2 ] || die "option $1 needs an argument"
}
while [ $# -gt 0 ]; do
    case $1 in
    --efi) need_arg "$@"; efi=$2; shift 2 ;;
    --file) need_arg "$@"; files+=("$2"); shift 2 ;;
    --config) need_arg "$@"; config=$2; shift 2 ;;
    --entry) need_arg "$@"; entries+=("$2"); shift 2 ;;
    --default) need_arg "$@"; default=$2; shift 2 ;;
    --timeout) need_arg "$@"; timeout=$2; shift 2 ;;
    --no-backing) follow=0; shift ;;
    --size) need_arg "$@"; size=$2; shift 2 ;;
    --label) need_arg "$@"; label=$2; shift 2 ;;
    -q | --quiet) quiet=1; shift ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    -*) echo "$prog: unknown option '$1'" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || usage
output=$1
shift
images=("$@")

[ -f "$efi" ] || die "no such file: $efi (build it with make, or pass --efi)"
if [ -n "$config" ] && { [ ${#entries[@]} -gt 0 ] || [ -n "$default" ] || [ -n "$timeout" ]; }; then
    die "--config and --entry/--default/--timeout exclude each other"
fi
[ -z "$config" ] || [ -f "$config" ] || die "no such file: $config"
if [ -n "$timeout" ] && ! [[ $timeout =~ ^(-1|off|[0-9]+)$ ]]; then
    die "--timeout: '$timeout' is not a number of seconds, -1 or off"
fi
if [ -n "$timeout" ] && [[ $timeout =~ ^[0-9]+$ ]] && [ "$timeout" -gt 3600 ]; then
    die "--timeout: at most 3600 seconds"
fi
[ -z "$size" ] || [[ $size =~ ^[0-9]+$ ]] || die "--size: '$size' is not a number of MiB"

export MTOOLS_SKIP_CHECK=1
# mtools converts file names with the locale's character set: UTF-8 names
# only become proper long names under a UTF-8 locale.
case ${LC_ALL:-${LC_CTYPE:-${LANG:-}}} in
*UTF-8* | *utf8*) ;;
*) export LC_ALL=C.UTF-8 ;;
esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/t"

# stick_path PATH: a path on the stick in canonical form: '/' separators,
# no leading '/', no '.' or empty components; fails when '..' leaves the
# root.
stick_path() {
    local p=${1//\\//} out=() c
    local IFS=/
    for c in $p; do
        case $c in
        "" | .) ;;
        ..) [ ${#out[@]} -gt 0 ] || return 1; unset 'out[${#out[@]}-1]' ;;
        *) out+=("$c") ;;
        esac
    done
    [ ${#out[@]} -gt 0 ] || return 1
    printf '%s' "${out[*]}"
}

# place SRC DEST: stages SRC at DEST (canonical stick path). The same file
# twice at one place is fine (a base shared by two overlays); two files are not.
declare -A placed=()
place() {
    local src dest=$2 key
    [ -e "$1" ] || die "no such file: $1"
    src=$(readlink -f -- "$1") || die "no such file: $1"
    [ -f "$src" ] || die "not a file: $1"
    key=$(printf '%s' "$dest" | tr '[:upper:]' '[:lower:]')   # FAT ignores case
    if [ -n "${placed[$key]:-}" ]; then
        [ "${placed[$key]}" = "$src" ] && return 0
        die "two files for /$dest on the stick: ${placed[$key]} and $src"
    fi
    if [ "$(stat -L -c %s -- "$src")" -ge 4294967296 ]; then
        die "$1: 4 GiB or larger, which FAT cannot hold"
    fi
    placed[$key]=$src
    mkdir -p "$stage/t/$(dirname -- "$dest")"
    ln -s -- "$src" "$stage/t/$dest"
}

# dest_for SRC DEST: DEST, or DEST/basename(SRC) when DEST ends in '/'.
dest_for() {
    local d=${2//\\//}
    case $d in
    "" | */) d=$d$(basename -- "$1") ;;
    esac
    stick_path "$d" || die "$2: not a path on the stick"
}

# backing_name FILE: the backing file name recorded in a qcow2 header
# (nothing for other files or no backing file).
backing_name() {
    local magic off len
    magic=$(od -An -tx1 -N4 -- "$1" | tr -d ' \n')
    [ "$magic" = 514649fb ] || return 0
    off=$(od -An -tu8 --endian=big -j8 -N8 -- "$1" | tr -d ' ')
    len=$(od -An -tu4 --endian=big -j16 -N4 -- "$1" | tr -d ' ')
    [ "$off" -gt 0 ] && [ "$len" -gt 0 ] || return 0
    head -c "$((off + len))" -- "$1" | tail -c "$len"
}

# add_image SRC DEST: the image and, unless --no-backing, its chain.
add_image() {
    local src=$1 dest=$2 depth=0 name bsrc bdest
    while :; do
        place "$src" "$dest"
        [ "$follow" = 1 ] || return 0
        name=$(backing_name "$src")
        [ -n "$name" ] || return 0
        depth=$((depth + 1))
        [ "$depth" -le 32 ] || die "$1: backing chain longer than 32 files (or a loop)"
        case $name in
        *:*) die "$src: backing file '$name' is not a plain file name; rebase the image" ;;
        /*) die "$src: backing file '$name' is an absolute path, which means nothing on the" \
                "stick; rebase the image onto a relative name (qemu-img rebase -u -b ...)" \
                "and copy the base with it, or use --no-backing and --file" ;;
        esac
        bsrc=$(dirname -- "$src")/${name//\\//}
        [ -f "$bsrc" ] || die "$src: backing file '$name' not found (looked for $bsrc)"
        bdest=$(stick_path "$(dirname -- "$dest")/$name") ||
            die "$src: backing file '$name' would lie outside the stick (at /$(dirname -- "$dest")/$name)"
        src=$bsrc
        dest=$bdest
    done
}

place "$efi" EFI/BOOT/BOOTX64.EFI
for f in "${files[@]+"${files[@]}"}"; do
    [[ $f == *=* ]] || die "--file $f: expected SRC=DEST"
    place "${f%%=*}" "$(dest_for "${f%%=*}" "${f#*=}")"
done
for i in "${images[@]+"${images[@]}"}"; do
    if [[ $i == *=* ]]; then
        add_image "${i%%=*}" "$(dest_for "${i%%=*}" "${i#*=}")"
    else
        add_image "$i" "$(dest_for "$i" "")"
    fi
done

# The config: copied, or generated from the options.
cfg=""
if [ -n "$config" ]; then
    cfg=$config
elif [ ${#entries[@]} -gt 0 ] || [ -n "$default" ] || [ -n "$timeout" ]; then
    cfg=$stage/qcowboot.cfg
    {
        echo "# qcowboot.cfg: made by tools/mkstick.sh"
        [ -z "$timeout" ] || echo "timeout = $timeout"
        [ -z "$default" ] || echo "default = $default"
        for e in "${entries[@]+"${entries[@]}"}"; do
            img=${e%%:*}
            rest=""
            [[ $e == *:* ]] && rest=${e#*:}
            title=${rest%%:*}
            snap=""
            [[ $rest == *:* ]] && snap=${rest#*:}
            [[ $e != *'|'* && $e != *$'\n'* ]] || die "--entry $e: '|' and line breaks cannot be written"
            [[ $snap != *:* ]] || die "--entry $e: more than IMAGE:TITLE:SNAPSHOT"
            [ -n "$img" ] || die "--entry $e: no image"
            p=$(stick_path "$img") || die "--entry $e: '$img' is not a path on the stick"
            key=$(printf '%s' "$p" | tr '[:upper:]' '[:lower:]')
            # (A stick that is filled may hold it already.)
            if [ -z "${placed[$key]:-}" ] && [ ! -d "$output" ] && [[ $output != *@@* ]]; then
                warn "entry '$img' is not among the files put on the stick"
            fi
            line="entry = ${p//\//\\}"
            [ -z "$title$snap" ] || line+=" | $title"
            [ -z "$snap" ] || line+=" | $snap"
            echo "$line"
        done
    } >"$cfg"
fi
if [ -n "$cfg" ]; then
    rm -f "$stage/t/qcowboot.cfg"
    ln -s -- "$(readlink -f -- "$cfg")" "$stage/t/qcowboot.cfg"
fi

# Every staged file, as a path on the stick.
mapfile -t list < <(cd "$stage/t" && find . -type l -printf '%P\n' | LC_ALL=C sort)

# fill_mtools IMG: copies the staged tree into the FAT file system IMG
# (mtools' FILE@@OFFSET form accepted), making directories as needed.
fill_mtools() {
    local img=$1 d f
    mapfile -t dirs < <(cd "$stage/t" && find . -mindepth 1 -type d -printf '%P\n' | LC_ALL=C sort)
    for d in "${dirs[@]+"${dirs[@]}"}"; do
        mdir -b -i "$img" "::/$d" >/dev/null 2>&1 || mmd -i "$img" "::/$d" ||
            die "$img: cannot make directory /$d"
    done
    for f in "${list[@]}"; do
        mcopy -o -i "$img" "$stage/t/$f" "::/$f" || die "$img: cannot copy /$f (full?)"
    done
}

if [ -d "$output" ]; then
    kind="directory $output"
    for f in "${list[@]}"; do
        mkdir -p -- "$output/$(dirname -- "$f")"
        cp -L -- "$stage/t/$f" "$output/$f" || die "cannot copy to $output/$f"
    done
elif [[ $output == *@@* ]]; then
    file=${output%@@*}
    off=${output##*@@}
    [ -f "$file" ] || die "no such file: $file"
    [[ $off =~ ^[0-9]+$ ]] || die "$output: the offset must be a number of bytes"
    mdir -b -i "$output" ::/ >/dev/null 2>&1 || die "$output: no FAT file system at offset $off"
    kind="FAT file system at offset $off of $file"
    fill_mtools "$output"
else
    if [ -z "$size" ]; then
        # Each file rounded up to 64 KiB (the largest cluster we could get),
        # plus 10% and 16 MiB for the FAT, directories and later additions.
        total=0
        for f in "${list[@]}"; do
            s=$(stat -L -c %s -- "$stage/t/$f")
            total=$((total + (s + 65535) / 65536 * 65536))
        done
        size=$(((total + total / 10) / 1048576 + 16))
        [ "$size" -ge 64 ] || size=64
    fi
    fat=()
    [ "$size" -lt 512 ] || fat=(-F 32)
    rm -f -- "$output"
    mkfs.vfat -C "${fat[@]+"${fat[@]}"}" -n "$label" -- "$output" $((size * 1024)) >/dev/null ||
        die "mkfs.vfat failed"
    kind="FAT image $output ($size MiB)"
    fill_mtools "$output"
fi

if [ "$quiet" = 0 ]; then
    echo "$prog: $kind:"
    for f in "${list[@]}"; do
        printf '  \\%s\n' "${f//\//\\}"
    done
fi
