#!/usr/bin/env bash
# Boot tests: real Linux guests (tests/boot/lib.sh) booted under QEMU + OVMF.
#   1. each guest's raw disk attached directly (no qcowboot): proves the
#      guest itself boots;
#   2. qcowboot.efi as the stick's \EFI\BOOT\BOOTX64.EFI with one image on
#      the stick: without a config (mode "stick": it boots the only image
#      after its countdown) and with a qcowboot.cfg saying `timeout = 0`
#      (mode "unattended");
#   3. `qcowboot.efi boot fs0:\IMAGE` from the UEFI shell's startup.nsh (mode
#      "shell": the stick has no BOOTX64.EFI, the firmware falls through to
#      the shell).
#   4. "shell-commands": one shell session that mounts an image, lists its
#      ESP through the new fsN: and unmounts it, then `boot`s each broken
#      image of build/guests/bad/ (corrupt header, corrupt boot loader
#      cluster, missing backing file, no ESP, no boot loader): each must
#      fail with a message and a non-zero status;
#   5. "menu-errors": the same broken images as entries of a stick's menu:
#      each failure must show its reason and bring the menu back; keys
#      typed over QMP choose the next entry and finally power off.
#   6. "grubenv": the gpt-grub guest with an environment block on its ESP,
#      booted unattended three times from one stick, its mode set in the
#      config: read-write (GRUB's save_env puts boots=x into the image),
#      volatile (GRUB saves boots=xx, the image stays byte for byte as it
#      was), read-write again (boots=xx in the image); after each boot the
#      image passes qemu-img check and grub-editenv reads the block.
#   7. "ramdisk": RAM-disk mode (tests/boot/ramdisk.sh): a guest whose root
#      file system is ext4 on the image boots from the firmware's RAM disk
#      and prints a marker read from that root; the shell-commands session
#      also has RAM-disk mode's refusals.
# A boot passes when the guest's marker is on the serial console and QEMU
# exited 0 by itself (the guest powered off) within the time limit.
#
# Under TCG a Linux guest boot costs ~10 s of CPU, so the matrix covers
# every guest and every qcow2 variant without booting every combination.
# QB_BOOT_CASES="mode:guest:variant ..." runs other cases (mode: raw,
# stick, unattended or shell; no variant for raw).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../firmware/lib.sh"
. "$(dirname "$0")/ramdisk.sh"

W=$BOOT_ROOT/build/tests/boot
mkdir -p "$W"
LIMIT=${QB_BOOT_LIMIT:-150}

if ! bash "$BOOT_ROOT/tests/boot/make-guests.sh"; then
    fail "build guests"
    finish
    exit 1
fi
[ -f "$BOOT_EFI_APP" ] || { fail "qcowboot.efi" "missing: $BOOT_EFI_APP (make all)"; finish; exit 1; }

# One QEMU at a time across the firmware-driven suites: parallel runs on two
# cores would turn timing limits into noise.
exec 9>"$BOOT_ROOT/build/tests/firmware.lock"
flock 9

CASES=${QB_BOOT_CASES:-"
    raw:gpt-uki raw:mbr-uki raw:gpt-grub
    stick:gpt-uki:plain
    unattended:gpt-uki:zlib unattended:gpt-uki:zstd unattended:gpt-uki:l2ext
    unattended:gpt-uki:overlay unattended:mbr-uki:plain unattended:gpt-grub:zstd
    shell:gpt-uki:plain shell:mbr-uki:l2ext shell:gpt-grub:overlay
    shell-commands menu-errors grubenv ramdisk
"}

# console LOG: the serial log without terminal escapes and CRs.
console() {
    sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g; s/\x1b[()][A-Za-z0-9]//g' "$1" | tr -d '\r'
}

# make_stick MODE GUEST VARIANT OUT: a FAT stick image holding the variant's
# image (with its backing files) and qcowboot.efi, started as MODE says.
make_stick() {
    local mode=$1 guest=$2 v=$3 out=$4 tree img d
    tree=$(guest_tree "$guest" "$v")
    img=$(guest_image_name "$guest" "$v")
    if [ "$mode" != shell ] && [ -f "$BOOT_ROOT/tools/mkstick.sh" ]; then
        local opts=(-q --efi "$BOOT_EFI_APP")
        [ "$mode" = unattended ] && opts+=(--timeout 0)
        bash "$BOOT_ROOT/tools/mkstick.sh" "${opts[@]}" "$out" "$tree/$img"
        return
    fi
    d=$W/tree
    rm -rf "$d"
    cp -r "$tree" "$d"
    case $mode in
    stick | unattended)
        mkdir -p "$d/EFI/BOOT"
        cp "$BOOT_EFI_APP" "$d/EFI/BOOT/BOOTX64.EFI"
        [ "$mode" = unattended ] && printf 'timeout = 0\r\n' >"$d/qcowboot.cfg"
        ;;
    shell)
        cp "$BOOT_EFI_APP" "$d/qcowboot.efi"
        printf '@echo -off\r\nfs0:\r\ncd \\\r\nqcowboot.efi boot fs0:\\%s\r\necho "=== qcowboot returned %%lasterror%%"\r\nreset -s\r\n' \
            "$img" >"$d/startup.nsh"
        ;;
    esac
    bash "$BOOT_ROOT/tools/mkfat.sh" "$out" "$d"
    rm -rf "$d"
}

# run_case MODE GUEST [VARIANT]
run_case() {
    local mode=$1 guest=$2 v=${3:-} name disk log rc start end secs args
    name=$mode:$guest${v:+:$v}
    log=$W/${name//:/-}.log
    if [ "$mode" = raw ]; then
        disk=$(guest_raw "$guest")
    else
        disk=$W/stick.img
        if ! make_stick "$mode" "$guest" "$v" "$disk"; then
            fail "$name" "could not make the stick"
            return
        fi
    fi
    args=(--disk "$disk" --log "$log" --timeout "$LIMIT" --stop-on "$BOOT_CRASH_TEXT")
    # The shell's startup.nsh countdown only listens after printing this.
    [ "$mode" = shell ] && args+=(--key-after "seconds to skip")
    # Unattended, the shell's prompt means qcowboot gave up and the firmware
    # fell through to its next boot option.
    [ "$mode" = stick ] || [ "$mode" = unattended ] && args+=(--stop-on "Shell> ")
    rc=0
    start=$(date +%s.%N)
    bash "$BOOT_ROOT/tools/qemu-run.sh" "${args[@]}" || rc=$?
    end=$(date +%s.%N)
    secs=$(boot_elapsed "$start" "$end")
    if [ "$rc" -eq 0 ] && boot_has_marker "$log" "$guest"; then
        pass "$name (${secs} s)"
        return
    fi
    local why
    case $rc in
    0) why="QEMU exited without the guest's marker" ;;
    124) why="no exit within ${LIMIT} s" ;;
    125) if console "$log" | grep -a -q -F "Shell> "; then
             why="fell through to the UEFI shell"
         else
             why="firmware exception"
         fi ;;
    *) why="QEMU exit $rc" ;;
    esac
    fail "$name" "$why after ${secs} s; console in $log, its end:"
    console "$log" | grep -a -v '^[[:space:]]*$' | tail -n 15 | sed 's/^/    | /'
}

# The negative cases (tests/boot/make-guests.sh: build/guests/bad/), as
# menu entries "file|title".
BAD=(
    "corrupt-header.qcow2|corrupt header"
    "corrupt-data.qcow2|corrupt boot loader cluster"
    "missing-backing.qcow2|missing backing file"
    "no-esp.qcow2|no EFI system partition"
    "no-loader.qcow2|no boot loader"
)

# menu_errors: unattended stick whose config lists only broken images,
# timeout 0. Entry 1 boots at once and fails; each failure must bring the
# menu back with the reason; keys typed then boot entries 2..5 and finally
# power off ('p').
menu_errors() {
    local d=$W/tree log=$W/menu-errors.log rc=0 i n steps=() kpid
    rm -rf "$d"
    mkdir -p "$d/EFI/BOOT"
    cp "$BOOT_EFI_APP" "$d/EFI/BOOT/BOOTX64.EFI"
    printf 'timeout = 0\r\n' >"$d/qcowboot.cfg"
    for i in "${!BAD[@]}"; do
        cp "$GUESTS_DIR/bad/${BAD[$i]%%|*}" "$d/"
        printf 'entry = %s | %s\r\n' "${BAD[$i]%%|*}" "${BAD[$i]#*|}" >>"$d/qcowboot.cfg"
        # The failure is reported on the console, then shown in the menu.
        n=$((i + 2))
        [ "$n" -le "${#BAD[@]}" ] || n=p
        steps+=("$((i + 1)). ${BAD[$i]#*|} failed" 2 "$n")
    done
    bash "$BOOT_ROOT/tools/mkfat.sh" "$W/stick.img" "$d"
    rm -rf "$d" "$W/qmp.sock"
    : >"$log"
    python3 "$BOOT_ROOT/tests/boot/qmp-keys.py" "$W/qmp.sock" "$log" "$LIMIT" "${steps[@]}" \
        >"$W/menu-errors.keys" 2>&1 &
    kpid=$!
    bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$W/stick.img" --log "$log" --timeout "$LIMIT" \
        --stop-on "$BOOT_CRASH_TEXT" --stop-on "Shell> " -- \
        -qmp "unix:$W/qmp.sock,server=on,wait=off" || rc=$?
    wait "$kpid" 2>/dev/null || true
    console "$log" >"$W/menu-errors.txt"
    for i in "${!BAD[@]}"; do
        local t="$((i + 1)). ${BAD[$i]#*|} failed (status"
        if grep -a -q -F -- "$t" "$W/menu-errors.txt"; then
            pass "menu: ${BAD[$i]%%|*} fails with a message, menu back"
        else
            fail "menu: ${BAD[$i]%%|*}" "no '$t' on the console ($log)"
        fi
    done
    if [ "$rc" -eq 0 ]; then
        pass "menu: power off from the menu after the failures"
    else
        fail "menu: power off from the menu" "QEMU exit $rc; keys: $(tail -n 2 "$W/menu-errors.keys")"
        grep -a -v '^[[:space:]]*$' "$W/menu-errors.txt" | tail -n 15 | sed 's/^/    | /'
    fi
}

# shell_commands: one UEFI shell session: `mount` the gpt-uki image, see
# its ESP with `map -r` and `ls`, `unmount` it, then `boot` each broken
# image: every one must fail with a message and a non-zero status.
shell_commands() {
    local d=$W/tree log=$W/shell-commands.log txt=$W/shell-commands.txt rc=0 f name st out
    local drv=$(dirname "$BOOT_EFI_APP")/qcowbootdrv.efi
    rm -rf "$d"
    mkdir -p "$d/bad"
    cp "$BOOT_EFI_APP" "$d/qcowboot.efi"
    [ -f "$drv" ] && cp "$drv" "$d/"
    cp "$(guest_tree gpt-uki plain)/$(guest_image_name gpt-uki plain)" "$d/guest.qcow2"
    for f in "${BAD[@]}"; do cp "$GUESTS_DIR/bad/${f%%|*}" "$d/bad/"; done
    local nsh=$d/startup.nsh
    fw_nsh_begin "$nsh"
    fw_nsh_case "$nsh" mount 'qcowboot.efi mount fs0:\guest.qcow2'
    fw_nsh_case "$nsh" map 'map -r'
    fw_nsh_case "$nsh" mounted 'qcowboot.efi mount'
    fw_nsh_case "$nsh" ls 'ls fs1:\EFI\BOOT'
    fw_nsh_line "$nsh" 'fs0:'
    fw_nsh_case "$nsh" unmount 'qcowboot.efi unmount'
    fw_nsh_case "$nsh" map-after 'map -r'
    for f in "${BAD[@]}"; do
        fw_nsh_case "$nsh" "boot-${f%%|*}" "qcowboot.efi boot fs0:\\bad\\${f%%|*}"
    done
    ramdisk_shell_cases "$nsh" "$d"
    fw_nsh_end "$nsh"
    bash "$BOOT_ROOT/tools/mkfat.sh" "$W/stick.img" "$d"
    rm -rf "$d"
    bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$W/stick.img" --log "$log" --timeout "$LIMIT" \
        --key-after "seconds to skip" --stop-on "$BOOT_CRASH_TEXT" || rc=$?
    fw_console "$log" >"$txt"
    [ "$(fw_status "$txt" mount)" = 0 ] && pass "shell: mount" ||
        fail "shell: mount" "status $(fw_status "$txt" mount): $(fw_section "$txt" mount | tail -n 3)"
    if [ "$(fw_status "$txt" ls)" = 0 ] && fw_section "$txt" ls | grep -q -i 'BOOTX64\.EFI'; then
        pass "shell: map -r and ls show the guest's ESP"
    else
        fail "shell: ls of the guest's ESP" "$(fw_section "$txt" map | tail -n 8; fw_section "$txt" ls | tail -n 5)"
    fi
    if [ "$(fw_status "$txt" unmount)" = 0 ] &&
       [ "$(fw_section "$txt" map-after | grep -c -E '^ *FS[0-9]+:')" -lt \
         "$(fw_section "$txt" map | grep -c -E '^ *FS[0-9]+:')" ]; then
        pass "shell: unmount detaches the disk"
    else
        fail "shell: unmount" "status $(fw_status "$txt" unmount); map after: $(fw_section "$txt" map-after | tail -n 6)"
    fi
    for f in "${BAD[@]}"; do
        name=boot-${f%%|*}
        st=$(fw_status "$txt" "$name")
        out=$(fw_section "$txt" "$name")
        if [ -n "$st" ] && [ "$st" != 0 ] && grep -q 'qcowboot.efi: ' <<<"$out"; then
            pass "shell: boot ${f%%|*} fails with a message"
        else
            fail "shell: boot ${f%%|*}" "status ${st:-none}: $(tail -n 3 <<<"$out")"
        fi
    done
    ramdisk_shell_checks "$txt"
    [ "$rc" -eq 0 ] && pass "shell: session ends (QEMU exit 0)" ||
        fail "shell: session ends" "QEMU exit $rc; console in $txt"
}

# grubenv: see 6. above (it stands in for unattended:gpt-grub:plain).
grubenv() {
    local d=$W/tree j=$W/grubenv img=$W/grubenv-stick.img n=0 step mode printed saved
    local log rc sha_before sha_after env
    command -v grub-editenv >/dev/null ||
        { fail "grubenv: setup" "grub-editenv is not installed (grub-common)"; return; }
    rm -rf "$d" "$j"
    mkdir -p "$d/EFI/BOOT" "$j"
    if ! { cp "$(guest_raw gpt-grub)" "$j/g.raw" && grub-editenv "$j/grubenv" create &&
           mcopy -i "$j/g.raw@@1M" "$j/grubenv" ::/EFI/BOOT/grubenv &&
           qemu-img convert -O qcow2 "$j/g.raw" "$d/grubenv.qcow2" &&
           cp "$BOOT_EFI_APP" "$d/EFI/BOOT/BOOTX64.EFI" && : >"$d/qcowboot.cfg" &&
           bash "$BOOT_ROOT/tools/mkfat.sh" "$img" "$d"; } >"$j/setup.log" 2>&1; then
        fail "grubenv: setup" "$(tail -n 3 "$j/setup.log")"
        return
    fi
    rm -rf "$d" "$j/g.raw"
    for step in "read-write x x" "volatile xx x" "read-write xx xx"; do
        read -r mode printed saved <<<"$step"
        n=$((n + 1))
        printf 'timeout = 0\r\nentry = grubenv.qcow2 | GRUB env | | %s\r\n' "$mode" >"$j/cfg"
        mcopy -o -i "$img" "$j/cfg" ::/qcowboot.cfg
        sha_before=$(mcopy -n -i "$img" ::/grubenv.qcow2 - | sha256sum)
        log=$W/grubenv-$n.log
        rc=0
        bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$img" --log "$log" --timeout "$LIMIT" \
            --stop-on "$BOOT_CRASH_TEXT" --stop-on "Shell> " || rc=$?
        console "$log" >"$j/console"
        if [ "$rc" -eq 0 ] && boot_has_marker "$log" gpt-grub &&
           grep -a -q -x -F "qcowboot test guest: GRUB saved boots=$printed" "$j/console" &&
           grep -a -q "^  $mode: " "$j/console"; then
            pass "grubenv $n ($mode): the guest booted, GRUB saved boots=$printed"
        else
            fail "grubenv $n ($mode)" "QEMU exit $rc; console in $log: $(grep -a -E 'boots=|^  (read|vol)' "$j/console" | tr '\n' '|')"
        fi
        mcopy -n -i "$img" ::/grubenv.qcow2 "$j/image.qcow2"
        sha_after=$(sha256sum <"$j/image.qcow2")
        if [ "$mode" = volatile ]; then
            if [ "$sha_after" = "$sha_before" ]; then
                pass "grubenv $n ($mode): the image is byte for byte as before the boot"
            else
                fail "grubenv $n ($mode): the image changed"
            fi
        fi
        if qemu-img check "$j/image.qcow2" >"$j/check.log" 2>&1; then
            pass "grubenv $n ($mode): qemu-img check is clean"
        else
            fail "grubenv $n ($mode): qemu-img check" "$(head -n 4 "$j/check.log" | tr '\n' '|')"
        fi
        env=$(qemu-img convert -O raw "$j/image.qcow2" "$j/image.raw" &&
              mcopy -n -i "$j/image.raw@@1M" ::/EFI/BOOT/grubenv "$j/grubenv.out" &&
              grub-editenv "$j/grubenv.out" list 2>&1)
        if [ "$env" = "boots=$saved" ]; then
            pass "grubenv $n ($mode): the image's environment block holds boots=$saved"
        else
            fail "grubenv $n ($mode): environment block" "'$env', want 'boots=$saved'"
        fi
        rm -f "$j/image.raw" "$j/image.qcow2"
    done
    rm -f "$img"
}

for c in $CASES; do
    IFS=: read -r mode guest v <<<"$c"
    case $mode in
    menu-errors) menu_errors ;;
    shell-commands) shell_commands ;;
    grubenv) grubenv ;;
    ramdisk) ramdisk_boot ;;
    *) run_case "$mode" "$guest" "$v" ;;
    esac
done
rm -f "$W/stick.img"
finish
