#!/usr/bin/env bash
# Runs qcowboot.efi in the UEFI shell (QEMU + OVMF, one boot for the whole
# suite) on images made by qemu-img/qemu-io, and compares every command's
# console output and exit status with the Linux CLI's on the same images.
#
# The shell's current directory is the stick's root and the firmware gets
# the same relative names as the host (the shell passes '/' through), so
# the outputs must be identical; the cases that use fs0:\ paths or another
# current directory normalise the image-name fields.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"

W=$QB_ROOT/build/tests/firmware
STICK_DIR=$W/stick
HOST_DIR=$W/host
# One run at a time per tree: a second one waits instead of deleting the
# first one's files.
mkdir -p "$QB_ROOT/build/tests"
exec 9>"$QB_ROOT/build/tests/firmware.lock"
flock 9
rm -rf "$W"
mkdir -p "$STICK_DIR" "$HOST_DIR"

need() {
    for t in "$@"; do
        command -v "$t" >/dev/null || { fail "setup" "$t is not installed"; finish; exit 1; }
    done
}
need qemu-system-x86_64 qemu-img qemu-io mkfs.vfat mcopy
for f in "$FW_EFI_APP" "$QB" /usr/share/OVMF/OVMF_CODE_4M.fd; do
    [ -f "$f" ] || { fail "setup" "missing $f (run make first)"; finish; exit 1; }
done

# --- host tests of the front end's path and UTF-8/UCS-2 code ---------------------
unit_binary efi_unit build/tests/efi_unit
# --- and of the in-memory overlay of published disks (volatile writes) -----------
unit_binary overlay_unit build/tests/overlay_unit

# --- images ------------------------------------------------------------------
(
    set -e
    cd "$STICK_DIR"
    qio() { qemu-io "$@" >/dev/null; }

    # A plain v3 image: data, a zeroed range, data past 4 GiB of virtual size.
    qemu-img create -q -f qcow2 v3.qcow2 6G
    qio -c 'write -P 0xab 0 1M' -c 'write -P 0x11 10M 64k' -c 'write -z 12M 128k' \
        -c 'write -P 0x5a 5G 192k' v3.qcow2

    # Compressed images (zstd and zlib) from a raw file of patterns and noise,
    # larger than the 1 MiB the file backend reads at once.
    qemu-img create -q -f raw src.raw 8M
    qio -f raw -c 'write -P 0x21 0 3M' -c 'write -P 0x42 5M 512k' src.raw
    dd if=/dev/urandom of=src.raw bs=64k seek=60 count=4 conv=notrunc status=none
    qemu-img convert -c -O qcow2 -o compression_type=zstd src.raw zstd.qcow2
    qemu-img convert -c -O qcow2 -o compression_type=zlib src.raw zlib.qcow2
    rm src.raw

    # A chain with relative backing names in subdirectories:
    # vm/top.qcow2 -> "base/mid.qcow2" (vm/base/mid.qcow2) -> "../../base.qcow2".
    mkdir -p vm/base
    qemu-img create -q -f qcow2 base.qcow2 16M
    qio -c 'write -P 0x01 0 2M' base.qcow2
    qemu-img create -q -f qcow2 -b ../../base.qcow2 -F qcow2 vm/base/mid.qcow2
    qio -c 'write -P 0x02 1M 2M' vm/base/mid.qcow2
    qemu-img create -q -f qcow2 -b base/mid.qcow2 -F qcow2 vm/top.qcow2
    qio -c 'write -P 0x03 2M 64k' -c 'write -z 4M 64k' vm/top.qcow2

    # Internal snapshots.
    qemu-img create -q -f qcow2 snap.qcow2 32M
    qio -c 'write -P 0x10 0 1M' snap.qcow2
    qemu-img snapshot -c first snap.qcow2
    qio -c 'write -P 0x20 512k 1M' snap.qcow2
    qemu-img snapshot -c second snap.qcow2
    qio -c 'write -P 0x30 8M 64k' snap.qcow2

    # Cut short in the middle of its data: what lies past the end of the
    # file reads as zeros (and is a hole for map), check reports it.
    qemu-img create -q -f qcow2 short.qcow2 4M
    qio -c 'write -P 0x77 0 1M' short.qcow2
    truncate -s 700000 short.qcow2

    # A backing chain that loops back through "..": loop/a.qcow2 ->
    # "sub/b.qcow2" -> "../a.qcow2". Canonical paths must catch it.
    mkdir -p loop/sub
    qemu-img create -q -f qcow2 loop/a.qcow2 16M
    qemu-img create -q -f qcow2 -b ../a.qcow2 -F qcow2 loop/sub/b.qcow2
    qemu-img rebase -q -u -b sub/b.qcow2 -F qcow2 loop/a.qcow2

    # Names outside ASCII: UCS-2 on the shell's command line, UTF-8 in the
    # engine and in the backing file name.
    qemu-img create -q -f qcow2 café.qcow2 16M
    qemu-img create -q -f qcow2 -b café.qcow2 -F qcow2 över.qcow2
) || { fail "setup" "could not create the test images"; finish; exit 1; }
cp "$FW_EFI_APP" "$STICK_DIR/qcowboot.efi"
# No \EFI\BOOT\BOOTX64.EFI: the firmware goes straight to the shell (the
# stick's unattended mode has its own suite, tests/firmware/stick.sh).

# --- cases -------------------------------------------------------------------
# name | arguments (both sides) | how to compare: same (identical but for
# the program name that starts error messages),
# fsnorm (firmware "fs0:\x\y" names compared as "x/y") or ascii (the
# console shows '?' for each character outside ASCII)
CASES=(
    "info-v3|info v3.qcow2|same"
    "info-json-v3|info --json v3.qcow2|same"
    "map-json-v3|map --json v3.qcow2|same"
    "map-v3|map v3.qcow2|same"
    "check-v3|check v3.qcow2|same"
    "info-zstd|info zstd.qcow2|same"
    "map-json-zstd|map --json zstd.qcow2|same"
    "check-zstd|check zstd.qcow2|same"
    "map-json-zlib|map --json zlib.qcow2|same"
    "info-chain|info --backing-chain vm/top.qcow2|same"
    "map-json-chain|map --json vm/top.qcow2|same"
    "check-chain|check --json vm/top.qcow2|same"
    "info-chain-abs|info --backing-chain fs0:\\vm\\top.qcow2|fsnorm"
    "snapshot-list|snapshot -l snap.qcow2|same"
    "info-snap|info snap.qcow2|same"
    "convert-zstd|convert -O raw zstd.qcow2 zstd.raw|same"
    "convert-zlib|convert -O raw zlib.qcow2 zlib.raw|same"
    "convert-chain|convert -O raw vm/top.qcow2 chain.raw|same"
    "check-short|check short.qcow2|same"
    "map-json-short|map --json short.qcow2|same"
    "convert-short|convert -O raw short.qcow2 short.raw|same"
    "utf8-names|info --backing-chain över.qcow2|ascii"
    "backing-loop|info --backing-chain loop/a.qcow2|same"
)

NSH=$STICK_DIR/startup.nsh
fw_nsh_begin "$NSH"
for c in "${CASES[@]}"; do
    IFS='|' read -r name args _ <<<"$c"
    fw_nsh_case "$NSH" "$name" "qcowboot.efi $args"
done
# Another current directory: names relative to fs0:\vm.
fw_nsh_line "$NSH" 'cd vm'
fw_nsh_case "$NSH" cwd-info "fs0:\\qcowboot.efi info --backing-chain top.qcow2"
fw_nsh_line "$NSH" 'cd \'
# Error paths: a missing image, a missing backing file, no command at all.
fw_nsh_case "$NSH" missing 'qcowboot.efi info fs0:\nope.qcow2'
fw_nsh_case "$NSH" missing-backing 'qcowboot.efi info --backing-chain broken.qcow2'
fw_nsh_case "$NSH" usage 'qcowboot.efi'
# Output through the shell's redirection (into a UCS-2 file on the stick).
fw_nsh_case "$NSH" redirect 'qcowboot.efi info --json v3.qcow2 > redirect.txt'
fw_nsh_end "$NSH"
fw_nsh_ucs2 "$NSH"

# An overlay whose backing file does not exist (made after the cases above
# were listed, only for the error case).
qemu-img create -q -f qcow2 -u -b gone/base.qcow2 -F qcow2 "$STICK_DIR/broken.qcow2" 16M

# The host's view, computed before the boot from pristine images.
host_run() {   # host_run NAME DIR ARGS...
    local name=$1 dir=$2; shift 2
    (cd "$dir" && "$QB" "$@" >"$HOST_DIR/$name.out" 2>&1; echo $? >"$HOST_DIR/$name.rc")
}
HOST_TREE=$W/host-tree
# Without holes, as on FAT: qemu-img's preallocation heuristic (which map
# follows) looks at how much of the file is allocated.
cp -a --sparse=never "$STICK_DIR" "$HOST_TREE"
for c in "${CASES[@]}"; do
    IFS='|' read -r name args _ <<<"$c"
    # shellcheck disable=SC2086
    host_run "$name" "$HOST_TREE" $(printf '%s' "$args" | sed 's#fs0:\\##; s#\\#/#g')
done
host_run cwd-info "$HOST_TREE/vm" info --backing-chain top.qcow2
host_run missing "$HOST_TREE" info nope.qcow2
host_run missing-backing "$HOST_TREE" info --backing-chain broken.qcow2
host_run usage "$HOST_TREE"
host_run redirect "$HOST_TREE" info --json v3.qcow2

# --- boot --------------------------------------------------------------------
STICK=$W/stick.img
bash "$QB_ROOT/tools/mkfat.sh" "$STICK" "$STICK_DIR" 64 || { fail "setup" "mkfat failed"; finish; exit 1; }
LOG=$W/serial.log
start=$(date +%s.%N)
fw_boot "$STICK" "$LOG" 300
rc=$?
end=$(date +%s.%N)
CONSOLE=$W/console.txt
fw_console "$LOG" >"$CONSOLE"
awk -v a="$(bash "$QB_ROOT/tools/kvm-probe.sh")" -v s="$start" -v e="$end" -v rc="$rc" \
    'BEGIN { printf "boot: %s, %.1f s (QEMU exit %d)\n", a, e - s, rc }'
if [ "$rc" -eq 0 ] && grep -q '^=== END usage ' "$CONSOLE"; then
    pass "boot: the shell ran every section and powered off"
else
    fail "boot" "QEMU exit $rc; console tail: $(tail -n 5 "$CONSOLE" | tr '\n' '|')"
fi

# The console needs "\r\n": a bare "\n" makes a staircase on a terminal.
# (The comparisons below strip the CRs.) Only the last line, cut short by the
# power-off, may lack one.
bare=$(head -n -1 "$LOG" | grep -a -c -v $'\r$')
if [ "$bare" -eq 0 ]; then
    pass "console: every line ends in CRLF"
else
    fail "console: every line ends in CRLF" "$bare lines end in a bare LF"
fi

# --- comparisons -------------------------------------------------------------
# compare NAME FW_TEXT_FILE HOST_TEXT_FILE
compare() {
    local name=$1 fwst hst
    fwst=$(fw_status "$CONSOLE" "$name")
    hst=$(cat "$HOST_DIR/$name.rc")
    if [ -z "$fwst" ]; then
        fail "$name" "section did not finish in firmware"
    elif [ "$fwst" != "$hst" ]; then
        fail "$name" "exit status $fwst in firmware, $hst on the host"
    elif ! diff -u "$3" "$2" >"$W/$name.diff"; then
        fail "$name" "output differs (host vs firmware): $(head -c 600 "$W/$name.diff")"
    else
        pass "$name"
    fi
}

for c in "${CASES[@]}" "cwd-info||same"; do
    IFS='|' read -r name _ how <<<"$c"
    # Messages start with the program's name, which differs.
    fw_section "$CONSOLE" "$name" | sed 's/^qcowboot\.efi: /qcowboot: /' >"$W/$name.fw"
    case $how in
    fsnorm) sed -i 's#[Ff][Ss]0:\\##g; s#\\#/#g' "$W/$name.fw" ;;
    ascii) fw_ascii <"$HOST_DIR/$name.out" >"$HOST_DIR/$name.ascii" &&
        mv "$HOST_DIR/$name.ascii" "$HOST_DIR/$name.out" ;;
    esac
    compare "$name" "$W/$name.fw" "$HOST_DIR/$name.out"
done

# convert's output files must be the host's, byte for byte.
for f in zstd zlib chain short; do
    if mcopy -n -i "$STICK" "::$f.raw" "$W/fw-$f.raw" 2>/dev/null &&
        cmp -s "$W/fw-$f.raw" "$HOST_TREE/$f.raw"; then
        pass "convert-$f: output file identical"
    else
        fail "convert-$f: output file identical" "$f.raw differs or is missing"
    fi
done

# Errors: same exit status as the host, a message naming the file.
fw_section "$CONSOLE" missing >"$W/missing.fw"
if [ "$(fw_status "$CONSOLE" missing)" = "$(cat "$HOST_DIR/missing.rc")" ] &&
    [ "$(cat "$HOST_DIR/missing.rc")" != 0 ] &&
    grep -q "qcowboot.efi: could not open 'FS0:\\\\nope.qcow2': not found" "$W/missing.fw"; then
    pass "missing file: clear error, status $(cat "$HOST_DIR/missing.rc") as on the host"
else
    fail "missing file" "status $(fw_status "$CONSOLE" missing), output: $(cat "$W/missing.fw")"
fi
fw_section "$CONSOLE" missing-backing >"$W/missing-backing.fw"
if [ "$(fw_status "$CONSOLE" missing-backing)" = "$(cat "$HOST_DIR/missing-backing.rc")" ] &&
    grep -q "broken.qcow2" "$W/missing-backing.fw" &&
    grep -q "FS0:\\\\gone\\\\base.qcow2" "$W/missing-backing.fw"; then
    pass "missing backing file: names both files, status as on the host"
else
    fail "missing backing file" "status $(fw_status "$CONSOLE" missing-backing), output: $(cat "$W/missing-backing.fw")"
fi
fw_section "$CONSOLE" usage | sed 's/qcowboot\.efi/qcowboot/g' >"$W/usage.fw"
compare usage "$W/usage.fw" "$HOST_DIR/usage.out"

# Redirected output: the file the shell wrote holds exactly the host's text
# (with CRLF line ends, as everything on the console).
if mcopy -n -i "$STICK" ::redirect.txt "$W/redirect.ucs2" 2>/dev/null &&
    iconv -f UTF-16 -t UTF-8 "$W/redirect.ucs2" | tr -d '\r' >"$W/redirect.fw"; then
    compare redirect "$W/redirect.fw" "$HOST_DIR/redirect.out"
else
    fail "redirect" "no redirect.txt on the stick"
fi

finish
