#!/usr/bin/env bash
# Stick mode: qcowboot.efi as a stick's \EFI\BOOT\BOOTX64.EFI, started by
# OVMF's boot manager with no shell, the stick made by tools/mkstick.sh.
#   - host: the config parser's unit test; tools/mkstick.sh (FAT image,
#     directory, FAT at an offset, backing files, generated config, errors);
#   - QEMU + OVMF, keys sent on the serial console:
#     a. a config naming a missing image (and a bad line): the countdown
#        boots it, the error is on serial, the menu comes back without a
#        countdown; q returns to the firmware (its boot manager starts);
#     b. no config, two images: the menu lists both and counts down;
#        Down+Enter boots entry 2, the menu returns;
#     c. Up+Enter boots entry 1, an image with a corrupt header: the message
#        names the header field, the menu returns; p powers off;
#     d. (with a guest) one image, no config: it boots after the countdown;
#     e. (with a guest) a config with a default entry and timeout 1: the
#        default boots; entries with their own modes (read-only,
#        volatile) say so in the menu and when they boot.
# A run passes on what its serial console shows and on how QEMU ended
# (exit 0 by itself after a power-off) within its time limit.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"

W=$QB_ROOT/build/tests/stick
MKSTICK=$QB_ROOT/tools/mkstick.sh
LIMIT=${QB_STICK_LIMIT:-90}
mkdir -p "$QB_ROOT/build/tests"
# One QEMU at a time across the firmware suites.
exec 9>"$QB_ROOT/build/tests/firmware.lock"
flock 9
rm -rf "$W"
mkdir -p "$W"

for t in qemu-system-x86_64 qemu-img mkfs.vfat mcopy mdir sgdisk; do
    command -v "$t" >/dev/null || { fail "setup" "$t is not installed"; finish; exit 1; }
done
for f in "$FW_EFI_APP" /usr/share/OVMF/OVMF_CODE_4M.fd; do
    [ -f "$f" ] || { fail "setup" "missing $f (run make first)"; finish; exit 1; }
done

# --- the config parser ---------------------------------------------------------
unit_binary stick_unit build/tests/stick_unit

# --- images ----------------------------------------------------------------------
I=$W/images
mkdir -p "$I/vm"
(
    set -e
    cd "$I"
    qemu-img create -q -f qcow2 base.qcow2 16M
    qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 vm/top.qcow2
    qemu-img create -q -f qcow2 b-empty.qcow2 16M
    # Header field cluster_bits (big-endian 32 bits at offset 20) = 31.
    qemu-img create -q -f qcow2 a-broken.qcow2 16M
    printf '\037' | dd of=a-broken.qcow2 bs=1 seek=23 conv=notrunc status=none
    qemu-img create -q -f qcow2 -b /nowhere/base.qcow2 -F qcow2 -u abs.qcow2 16M
    qemu-img create -q -f qcow2 -b ../images/base.qcow2 -F qcow2 escape.qcow2
) || { fail "setup" "could not create the test images"; finish; exit 1; }

# --- tools/mkstick.sh ----------------------------------------------------------
export MTOOLS_SKIP_CHECK=1
# mfiles IMG: every file on the FAT image, as "/path", sorted.
mfiles() {
    mdir -/ -b -i "$1" ::/ 2>/dev/null | sed -n 's#^::\(.*[^/]\)$#\1#p' | LC_ALL=C sort
}

if bash "$MKSTICK" --help >"$W/help.txt" 2>&1 &&
    grep -q -- '--entry IMAGE\[:TITLE\[:SNAPSHOT\]\]' "$W/help.txt" &&
    grep -q 'FILE@@OFFSET' "$W/help.txt"; then
    pass "mkstick: --help documents the options"
else
    fail "mkstick: --help" "$(head -c 300 "$W/help.txt")"
fi

# A new FAT image: the overlay placed in a subdirectory brings its base to
# the same relative place; extra files; a generated config.
S=$W/mk1.img
if bash "$MKSTICK" -q --efi "$FW_EFI_APP" --file "$I/b-empty.qcow2=extra/" \
    --entry images/sub/top.qcow2:Top:snap --entry b-empty.qcow2 --default 2 --timeout 3 \
    "$S" "$I/vm/top.qcow2=images/sub/" "$I/b-empty.qcow2" >"$W/mk1.out" 2>&1; then
    want=$'/EFI/BOOT/BOOTX64.EFI\n/b-empty.qcow2\n/extra/b-empty.qcow2\n/images/base.qcow2\n/images/sub/top.qcow2\n/qcowboot.cfg'
    got=$(mfiles "$S")
    if [ "$got" = "$want" ]; then
        pass "mkstick: FAT image with the overlay's base at its relative place, --file"
    else
        fail "mkstick: FAT image files" "got: $(tr '\n' ' ' <<<"$got")"
    fi
    mtype -i "$S" ::/qcowboot.cfg >"$W/mk1.cfg" 2>/dev/null
    if grep -qx 'timeout = 3' "$W/mk1.cfg" && grep -qx 'default = 2' "$W/mk1.cfg" &&
        grep -qxF 'entry = images\sub\top.qcow2 | Top | snap' "$W/mk1.cfg" &&
        grep -qxF 'entry = b-empty.qcow2' "$W/mk1.cfg"; then
        pass "mkstick: generated config"
    else
        fail "mkstick: generated config" "$(tr '\n' '|' <"$W/mk1.cfg")"
    fi
    if mcopy -n -i "$S" ::/EFI/BOOT/BOOTX64.EFI "$W/mk1.efi" && cmp -s "$W/mk1.efi" "$FW_EFI_APP" &&
        mcopy -n -i "$S" ::/images/sub/top.qcow2 "$W/mk1.top" && cmp -s "$W/mk1.top" "$I/vm/top.qcow2"; then
        pass "mkstick: file contents intact"
    else
        fail "mkstick: file contents intact"
    fi
else
    fail "mkstick: FAT image" "$(tail -n 5 "$W/mk1.out")"
fi

# Filling a directory, and a FAT file system at an offset of a disk image.
D=$W/mk2.dir
mkdir -p "$D/old"
cfgsrc=$W/given.cfg
printf 'timeout = off\n' >"$cfgsrc"
if bash "$MKSTICK" -q --efi "$FW_EFI_APP" --config "$cfgsrc" "$D" "$I/b-empty.qcow2=images/" \
    >"$W/mk2.out" 2>&1 && cmp -s "$D/EFI/BOOT/BOOTX64.EFI" "$FW_EFI_APP" &&
    cmp -s "$D/images/b-empty.qcow2" "$I/b-empty.qcow2" && cmp -s "$D/qcowboot.cfg" "$cfgsrc" &&
    [ -d "$D/old" ]; then
    pass "mkstick: fills a directory, copies a given config"
else
    fail "mkstick: directory" "$(tail -n 5 "$W/mk2.out"; find "$D" | head)"
fi
P=$W/mk3.disk
truncate -s 40M "$P"
mkfs.vfat -C "$W/mk3.part" 32768 >/dev/null
dd if="$W/mk3.part" of="$P" bs=1M seek=1 conv=notrunc status=none
mmd -i "$P@@1048576" ::/EFI
if bash "$MKSTICK" -q --efi "$FW_EFI_APP" "$P@@1048576" "$I/b-empty.qcow2" >"$W/mk3.out" 2>&1 &&
    [ "$(mfiles "$P@@1048576")" = $'/EFI/BOOT/BOOTX64.EFI\n/b-empty.qcow2' ] &&
    bash "$MKSTICK" -q --efi "$FW_EFI_APP" --timeout 1 "$P@@1048576" >>"$W/mk3.out" 2>&1 &&
    [ "$(mfiles "$P@@1048576")" = $'/EFI/BOOT/BOOTX64.EFI\n/b-empty.qcow2\n/qcowboot.cfg' ]; then
    pass "mkstick: fills a FAT file system at an offset, twice"
else
    fail "mkstick: @@offset" "$(tail -n 5 "$W/mk3.out"; mfiles "$P@@1048576" | tr '\n' ' ')"
fi

# Refusals: each must fail with a message saying why.
mk_refuses() {   # mk_refuses NAME PATTERN ARGS...
    local name=$1 pat=$2 out
    shift 2
    if out=$(bash "$MKSTICK" -q --efi "$FW_EFI_APP" "$@" 2>&1); then
        fail "mkstick refuses: $name" "exit 0"
    elif grep -q -- "$pat" <<<"$out"; then
        pass "mkstick refuses: $name"
    else
        fail "mkstick refuses: $name" "$out"
    fi
}
mk_refuses "absolute backing name" "absolute path" "$W/r.img" "$I/abs.qcow2"
mk_refuses "backing file outside the stick" "outside the stick" "$W/r.img" "$I/escape.qcow2"
mk_refuses "two files at one place" "two files for /X.QCOW2" "$W/r.img" \
    "$I/b-empty.qcow2=x.qcow2" "$I/base.qcow2=X.QCOW2"
mk_refuses "config and --entry" "exclude each other" --config "$cfgsrc" --entry a.qcow2 "$W/r.img"
mk_refuses "bad timeout" "not a number" --timeout soon "$W/r.img"
mk_refuses "missing image" "no such file" "$W/r.img" "$I/none.qcow2"
mk_refuses "no FAT at the offset" "no FAT file system" "$P@@4096"

# --- boots -----------------------------------------------------------------------
# boot_stick NAME STICK ARGS...: boots the stick with qemu-run.sh ARGS;
# leaves the console (escapes and CRs removed) in $W/NAME.txt and QEMU's
# status in $RC.
RC=0
boot_stick() {
    local name=$1 stick=$2 start end
    shift 2
    start=$(date +%s.%N)
    RC=0
    bash "$QB_ROOT/tools/qemu-run.sh" --disk "$stick" --log "$W/$name.log" --timeout "$LIMIT" \
        --stop-on "$FW_CRASH_TEXT" "$@" 2>"$W/$name.err" || RC=$?
    end=$(date +%s.%N)
    fw_console "$W/$name.log" >"$W/$name.txt"
    awk -v n="$name" -v s="$start" -v e="$end" -v rc="$RC" \
        'BEGIN { printf "boot %s: %.1f s (QEMU exit %d)\n", n, e - s, rc }'
}
# after FILE TEXT: the console from the first line holding TEXT on.
after() {
    awk -v t="$2" 'index($0, t) { on = 1 } on' "$1"
}
# has NAME FILE TEXT...: passes when FILE holds every TEXT.
has() {
    local name=$1 file=$2 t
    shift 2
    for t in "$@"; do
        if ! grep -q -F -- "$t" "$file"; then
            fail "$name" "no '$t' on the console; its end: $(grep -v '^ *$' "$file" | tail -n 8 | tr '\n' '|')"
            return
        fi
    done
    pass "$name"
}
HEADING="qcowboot: choose the image to boot"

# a. A config naming a missing image, with a bad line.
printf '# test config\ntimeout = 1\ncolour = red\nentry = nope.qcow2 | Missing image\nentry = b-empty.qcow2\n' \
    >"$W/a.cfg"
bash "$MKSTICK" -q --efi "$FW_EFI_APP" --config "$W/a.cfg" "$W/a.img" "$I/b-empty.qcow2"
boot_stick a "$W/a.img" --send-after "failed (status" "" --send-after "Power off (p)" "q" \
    --stop-on 'starting Boot0000 "UiApp"'
T=$W/a.txt
has "a: the config's bad line is reported with its line number" "$T" \
    "\\qcowboot.cfg, line 3: unknown key 'colour'"
has "a: the countdown boots the default entry" "$T" 'Booting "Missing image" in 1 s' \
    'Booting 1. Missing image (\nope.qcow2, read-write)...'
after "$T" 'Booting 1. Missing image' >"$W/a.after"
has "a: the error names the missing image" "$W/a.after" "1. Missing image failed (status" \
    "nope.qcow2"
if [ "$(grep -c -F "$HEADING" "$W/a.after")" -ge 1 ] &&
    after "$W/a.after" "$HEADING" | grep -q -F "Missing image failed (status" &&
    ! after "$W/a.after" "$HEADING" | grep -q 'Booting ".*" in [0-9]'; then
    pass "a: the menu comes back with the error and without a countdown"
else
    fail "a: the menu comes back" "$(tail -n 12 "$T" | tr '\n' '|')"
fi
if [ "$RC" -eq 125 ] && grep -q -F "Returning to the firmware." "$T" &&
    after "$T" "Returning to the firmware." | grep -q 'BdsDxe: starting Boot0000 "UiApp"'; then
    pass "a: q returns to the firmware, which shows its boot manager"
else
    fail "a: q returns to the firmware" "QEMU exit $RC; $(tail -n 5 "$T" | tr '\n' '|')"
fi

# b, c. No config, two images; keys: Down+Enter (entry 2), then Up+Enter
# (entry 1, the broken one), then p.
bash "$MKSTICK" -q --efi "$FW_EFI_APP" "$W/b.img" "$I/a-broken.qcow2" "$I/b-empty.qcow2"
boot_stick b "$W/b.img" \
    --send-after 'Booting "a-broken.qcow2" in 5 s' '\e[B\r' \
    --send-after "b-empty.qcow2 failed (status" "" --send-after "Power off (p)" '\e[A\r' \
    --send-after "a-broken.qcow2 failed (status" "" --send-after "Power off (p)" "p"
T=$W/b.txt
if grep -q -x '>  1\. a-broken\.qcow2 *' "$T" && grep -q -x '   2\. b-empty\.qcow2' "$T"; then
    pass "b: without a config the menu lists the images, the first highlighted"
else
    fail "b: the menu lists the images" "$(head -n 20 "$T" | tr '\n' '|')"
fi
has "b: the countdown to the first image is shown" "$T" 'Booting "a-broken.qcow2" in 5 s'
has "b: Down and Enter boot entry 2, the menu returns" "$T" \
    'Booting 2. b-empty.qcow2 (\b-empty.qcow2, read-write)...' "2. b-empty.qcow2 failed (status"
after "$T" 'Booting 1. a-broken.qcow2' >"$W/b.after"
has "c: Up and Enter boot entry 1: its corrupt header field is named" "$W/b.after" \
    "cluster_bits (offset 20) is 31" "1. a-broken.qcow2 failed (status"
if after "$W/b.after" "$HEADING" | grep -q -F "header field cluster_bits"; then
    pass "c: the menu comes back showing the message"
else
    fail "c: the menu comes back" "$(tail -n 12 "$T" | tr '\n' '|')"
fi
if [ "$RC" -eq 0 ]; then
    pass "b: p powers the machine off"
else
    fail "b: p powers off" "QEMU exit $RC"
fi

# --- boots of a guest ----------------------------------------------------------------
# The guest: tests/firmware/guest_hello.c as \EFI\BOOT\BOOTX64.EFI in the ESP
# of a GPT disk, converted to qcow2; it prints its marker and powers off,
# or (with \EFI\BOOT\RETURN on its ESP) returns an error to qcowboot.
HELLO_EFI=$QB_ROOT/build/efi/guest_hello.efi
HELLO_MARK="QB-GUEST-HELLO powering off"
# hello_disk OUT.qcow2 [return]
hello_disk() {
    local out=$1 raw=$1.raw esp=$1.esp
    rm -f "$raw" "$esp"
    truncate -s 20M "$raw" &&
        sgdisk -n 1:2048:+16M -t 1:ef00 -c 1:"EFI system partition" "$raw" >/dev/null &&
        mkfs.vfat -C -n GUEST "$esp" $((16 * 1024)) >/dev/null &&
        mmd -i "$esp" ::/EFI ::/EFI/BOOT &&
        mcopy -i "$esp" "$HELLO_EFI" ::/EFI/BOOT/BOOTX64.EFI || return 1
    if [ -n "${2:-}" ]; then
        : >"$W/RETURN" && mcopy -i "$esp" "$W/RETURN" ::/EFI/BOOT/RETURN || return 1
    fi
    dd if="$esp" of="$raw" bs=1M seek=1 conv=notrunc status=none &&
        qemu-img convert -O qcow2 "$raw" "$out" && rm -f "$raw" "$esp"
}
if ! make -s -C "$QB_ROOT" build/efi/guest_hello.efi >"$W/hello.build" 2>&1 ||
    ! hello_disk "$I/hello.qcow2" || ! hello_disk "$I/hello-return.qcow2" return; then
    fail "guest" "could not make the guest disks: $(tail -n 3 "$W/hello.build")"
    finish
    exit 1
fi

# d. One image, no config: it boots after the countdown.
bash "$MKSTICK" -q --efi "$FW_EFI_APP" "$W/d.img" "$I/hello.qcow2"
boot_stick d "$W/d.img"
T=$W/d.txt
has "d: one image, no config: the countdown is shown" "$T" 'Booting "hello.qcow2" in 5 s'
if [ "$RC" -eq 0 ] && after "$T" 'Booting "hello.qcow2" in 1 s' | grep -q -x -F "$HELLO_MARK"; then
    pass "d: the image boots after the countdown, the guest powers off"
else
    fail "d: the image boots" "QEMU exit $RC; $(grep -v '^ *$' "$T" | tail -n 6 | tr '\n' '|')"
fi

# e. A config whose default (by title) boots after 1 s: a guest that
# returns; the menu comes back; 3 boots the guest that powers off, from a
# volatile disk.
printf '%s\n' 'entry = b-empty.qcow2 | Empty | | read-only' \
    'entry = images/hello-return.qcow2 | Returning guest' \
    'entry = images/hello.qcow2 | Hello guest | | volatile' \
    'default = Returning guest' 'timeout = 1' >"$W/e.cfg"
bash "$MKSTICK" -q --efi "$FW_EFI_APP" --config "$W/e.cfg" "$W/e.img" "$I/b-empty.qcow2" \
    "$I/hello-return.qcow2=images/" "$I/hello.qcow2=images/"
boot_stick e "$W/e.img" --send-after "2. Returning guest failed (status" "" \
    --send-after "Power off (p)" "3"
T=$W/e.txt
has "e: the default entry (by title) boots after 1 s" "$T" 'Booting "Returning guest" in 1 s' \
    'Booting 2. Returning guest (\images\hello-return.qcow2, read-write)...' \
    "  read-write: the guest's writes go into the image" "QB-GUEST-HELLO returning"
after "$T" "QB-GUEST-HELLO returning" >"$W/e.after"
if after "$W/e.after" "$HEADING" | grep -q -F "2. Returning guest failed (status" &&
    ! grep -q 'Booting ".*" in [0-9]' "$W/e.after"; then
    pass "e: a guest that returns brings the menu back, without a countdown"
else
    fail "e: the menu comes back after the guest" "$(tail -n 12 "$T" | tr '\n' '|')"
fi
if grep -q -x '   1\. Empty \[read-only\] *' "$T" && grep -q -x '   3\. Hello guest \[volatile\] *' "$T" &&
    grep -q -x '>  2\. Returning guest *' "$T"; then
    pass "e: the menu shows the entries' modes"
else
    fail "e: the menu shows the modes" "$(grep -E '^(>| ) +[0-9]\.' "$T" | head -n 3 | tr '\n' '|')"
fi
has "e: a volatile entry says so when it boots" "$W/e.after" \
    'Booting 3. Hello guest (\images\hello.qcow2, volatile)...' \
    "  volatile: the guest's writes are kept in memory and dropped with the disk"
if [ "$RC" -eq 0 ] && after "$W/e.after" 'Booting 3. Hello guest' | grep -q -x -F "$HELLO_MARK"; then
    pass "e: 3 boots entry 3, the guest powers off"
else
    fail "e: 3 boots entry 3" "QEMU exit $RC; $(grep -v '^ *$' "$T" | tail -n 6 | tr '\n' '|')"
fi

finish
