# RAM-disk mode (`qcowboot.efi boot --ramdisk`, `mode = ramdisk` in
# qcowboot.cfg): the cases tests/boot/run.sh runs, sourced by it (it needs
# run.sh's W, LIMIT and console).
#
#   ramdisk_boot          case "ramdisk": the pmem-root guest (tests/boot/lib.sh)
#                         from a stick whose config entry has mode ramdisk.
#                         Its kernel, started by the UKI from the firmware's
#                         RAM disk, mounts its ext4 root from /dev/pmem0p2
#                         (the RAM disk as the ACPI NFIT describes it) and
#                         the root's /sbin/init prints the marker only that
#                         file system holds, writes a file there and powers
#                         off. Also checked: the load read exactly the
#                         image's allocated data (qemu-img map), the screen
#                         showed the progress bar, the load rates, the NFIT
#                         and the writes-stay-in-memory notice, and the
#                         image on the stick is byte for byte as before.
#   ramdisk_shell_cases NSH DIR, ramdisk_shell_checks TXT
#                         within the shell-commands session: a 64 GiB image
#                         is refused before loading with the memory it needs
#                         and the memory there is; --ramdisk with mount, or
#                         with --volatile, is a usage error; an image
#                         mounted read-write is refused; an image whose ESP
#                         has no boot loader is loaded, fails to boot, and
#                         its RAM disk goes away again (no file system of it
#                         left in `map -r`).

# The memory the RAM-disk boot gets: the 256 MiB disk, what qcowboot leaves
# the OS (QB_EFI_RAMDISK_OS_MIB), and the firmware's own.
RAMDISK_QEMU_MIB=1024

ramdisk_boot() {
    local name=ramdisk:$RAMDISK_GUEST d=$W/tree log=$W/ramdisk.log txt=$W/ramdisk.txt
    local img src marker rc=0 start end secs sha_before sha_after line want got
    marker=$(ramdisk_marker 2>/dev/null)
    if [ -z "$marker" ]; then
        fail "$name" "no $GUESTS_DIR/$RAMDISK_GUEST.marker (tests/boot/make-guests.sh)"
        return
    fi
    img=$(guest_image_name "$RAMDISK_GUEST" plain)
    src=$(guest_tree "$RAMDISK_GUEST" plain)/$img
    rm -rf "$d"
    mkdir -p "$d/EFI/BOOT"
    cp "$src" "$d/"
    cp "$BOOT_EFI_APP" "$d/EFI/BOOT/BOOTX64.EFI"
    printf 'timeout = 0\r\nentry = %s | RAM-disk guest | | ramdisk\r\n' "$img" >"$d/qcowboot.cfg"
    bash "$BOOT_ROOT/tools/mkfat.sh" "$W/stick.img" "$d"
    rm -rf "$d"
    sha_before=$(mcopy -n -i "$W/stick.img" "::/$img" - | sha256sum)

    start=$(date +%s.%N)
    bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$W/stick.img" --log "$log" --timeout "$LIMIT" \
        --mem "$RAMDISK_QEMU_MIB" --stop-on "$BOOT_CRASH_TEXT" --stop-on "Shell> " || rc=$?
    end=$(date +%s.%N)
    secs=$(boot_elapsed "$start" "$end")
    console "$log" >"$txt"

    if [ "$rc" -eq 0 ] && grep -a -q -x -F -- "$marker" "$txt"; then
        pass "$name: booted from the RAM disk, marker read from the root file system (${secs} s)"
    else
        fail "$name: marker from the root file system" \
            "QEMU exit $rc after ${secs} s; console in $log, its end:"
        grep -a -v '^[[:space:]]*$' "$txt" | tail -n 15 | sed 's/^/    | /'
    fi
    if grep -a -q '^qcowboot test guest: /sbin/init on the root file system: /dev/pmem0p2 / ext4 ' \
        "$txt"; then
        pass "$name: the root is ext4 on /dev/pmem0p2"
    else
        fail "$name: root on /dev/pmem0p2" \
            "$(grep -a -E 'root file system|initramfs:|pmem|nfit' "$txt" | head -n 5 | tr '\n' '|')"
    fi

    # Only allocated data is read: as many bytes as qemu-img map lists as data.
    line=$(grep -a -m 1 '^RAM disk loaded: ' "$txt")
    want=$(qemu-img map -f qcow2 --output=json "$src" |
        python3 -c 'import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if e["data"] and not e["zero"]))')
    got=$(sed -n 's/^RAM disk loaded: \([0-9]*\) bytes of virtual disk, \([0-9]*\) of them read.*/\1 \2/p' <<<"$line")
    if [ "$got" = "$(qemu-img info -f qcow2 --output=json "$src" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])') $want" ] &&
        grep -q -E 'MB/s of virtual disk, [0-9]+\.[0-9] MB/s of allocated data \(reads alone [0-9]+\.[0-9] MB/s\)$' <<<"$line"; then
        pass "$name: loaded the whole disk reading only its $want allocated bytes, rates shown"
    else
        fail "$name: load" "want '<virtual size> $want' read, got '$got' from: ${line:-no 'RAM disk loaded' line}"
    fi
    if grep -a -q -F '[##############################] 256/256 MiB' <(tr '\r' '\n' <"$txt") &&
        grep -a -q -E '^  RAM disk at 0x[0-9a-f]+, 256 MiB, in the ACPI NFIT' "$txt" &&
        grep -a -q -F "  ramdisk: the guest's writes go to memory only" "$txt"; then
        pass "$name: progress bar, NFIT and the writes-in-memory notice on screen"
    else
        fail "$name: notices" "$(grep -a -E 'MiB|ramdisk' "$txt" | head -n 6 | tr '\n' '|')"
    fi

    sha_after=$(mcopy -n -i "$W/stick.img" "::/$img" - | sha256sum)
    if grep -a -q -x -F 'qcowboot test guest: wrote /guest-wrote-this on the root file system' \
        "$txt" && [ "$sha_after" = "$sha_before" ]; then
        pass "$name: the guest wrote to its root, the image is byte for byte as before"
    else
        fail "$name: the image after the boot" \
            "$([ "$sha_after" = "$sha_before" ] && echo "unchanged, but the guest wrote nothing" || echo changed)"
    fi
}

# ramdisk_shell_cases NSH DIR: adds the image and the sections to the shell
# session being built in DIR (which holds guest.qcow2).
ramdisk_shell_cases() {
    local nsh=$1 dir=$2
    qemu-img create -q -f qcow2 "$dir/huge.qcow2" 64G
    fw_nsh_case "$nsh" ramdisk-too-big 'qcowboot.efi boot --ramdisk fs0:\huge.qcow2'
    fw_nsh_case "$nsh" ramdisk-mount 'qcowboot.efi mount --ramdisk fs0:\guest.qcow2'
    fw_nsh_case "$nsh" ramdisk-volatile 'qcowboot.efi boot --ramdisk --volatile fs0:\guest.qcow2'
    fw_nsh_case "$nsh" ramdisk-mount-rw 'qcowboot.efi mount fs0:\guest.qcow2'
    fw_nsh_case "$nsh" ramdisk-busy 'qcowboot.efi boot --ramdisk fs0:\guest.qcow2'
    fw_nsh_case "$nsh" ramdisk-unmount 'qcowboot.efi unmount'
    fw_nsh_case "$nsh" ramdisk-no-loader 'qcowboot.efi boot --ramdisk fs0:\bad\no-loader.qcow2'
    fw_nsh_case "$nsh" ramdisk-map 'map -r'
}

# ramdisk_shell_checks TXT: judges those sections in the session's console.
ramdisk_shell_checks() {
    local txt=$1 st out s
    st=$(fw_status "$txt" ramdisk-too-big)
    out=$(fw_section "$txt" ramdisk-too-big)
    # 64 GiB of disk and 128 MiB for the OS.
    if [ -n "$st" ] && [ "$st" != 0 ] &&
        grep -q -F 'not enough memory for RAM-disk mode: it needs 65664 MiB' <<<"$out" &&
        grep -q -E 'the firmware has [0-9]+ MiB free, the largest free block is [0-9]+ MiB\. Nothing was loaded\.' <<<"$out" &&
        ! grep -q -F 'Loading the' <<<"$out"; then
        pass "shell: boot --ramdisk of a 64 GiB image is refused before loading, with the numbers"
    else
        fail "shell: boot --ramdisk, too big" "status ${st:-none}: $(tail -n 3 <<<"$out")"
    fi
    for s in ramdisk-mount:mount ramdisk-volatile:boot; do
        st=$(fw_status "$txt" "${s%%:*}")
        out=$(fw_section "$txt" "${s%%:*}")
        if [ -n "$st" ] && [ "$st" != 0 ] && grep -q -F "Usage: qcowboot.efi ${s#*:}" <<<"$out"; then
            pass "shell: ${s%%:*} is a usage error"
        else
            fail "shell: ${s%%:*}" "status ${st:-none}: $(tail -n 3 <<<"$out")"
        fi
    done
    st=$(fw_status "$txt" ramdisk-busy)
    out=$(fw_section "$txt" ramdisk-busy)
    if [ "$(fw_status "$txt" ramdisk-mount-rw)" = 0 ] && [ -n "$st" ] && [ "$st" != 0 ] &&
        grep -q -F 'guest.qcow2 is attached read-write (unmount it first)' <<<"$out"; then
        pass "shell: boot --ramdisk of an image mounted read-write is refused"
    else
        fail "shell: boot --ramdisk of a mounted image" "status ${st:-none}: $(tail -n 3 <<<"$out")"
    fi
    st=$(fw_status "$txt" ramdisk-no-loader)
    out=$(fw_section "$txt" ramdisk-no-loader)
    if [ -n "$st" ] && [ "$st" != 0 ] && grep -q '^RAM disk loaded: ' <<<"$out" &&
        grep -q -F 'not found on the EFI system partition' <<<"$out" &&
        ! grep -q -F 'would not remove the RAM disk' <<<"$out" &&
        [ "$(fw_section "$txt" ramdisk-map | grep -c -E '^ *FS[0-9]+:')" = \
          "$(fw_section "$txt" map-after | grep -c -E '^ *FS[0-9]+:')" ]; then
        pass "shell: boot --ramdisk without a boot loader fails and removes the RAM disk"
    else
        fail "shell: boot --ramdisk without a boot loader" \
            "status ${st:-none}: $(tail -n 4 <<<"$out" | tr '\n' '|') map: $(fw_section "$txt" ramdisk-map | tr '\n' '|')"
    fi
}
