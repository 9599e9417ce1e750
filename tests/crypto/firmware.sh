#!/usr/bin/env bash
# Encrypted guests under QEMU + OVMF, the passphrase typed on the serial
# console by the test (tools/qemu-run.sh --send-after):
#   1. unattended stick (timeout = 0) with the gpt-uki guest as a LUKS image
#      (aes-256-xts): a wrong passphrase first, then the right one typed
#      with a mistake taken back by Backspace; the guest must boot, the
#      console show the stars, "wrong passphrase" and the unlocking
#      progress, and no character of the passphrase;
#   2. one UEFI shell session: `info` of the LUKS image (right passphrase),
#      `info` with three wrong ones (fails, says so), `mount` + `ls` of the
#      guest's ESP + `unmount`, then `boot` of the same guest as a legacy
#      AES image.
# Small PBKDF2 counts (encrypt.iter-time=10) keep the firmware's key
# derivation short under TCG.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../boot/lib.sh"
. "$(dirname "$0")/../firmware/lib.sh"

W=$BOOT_ROOT/build/tests/crypto-firmware
mkdir -p "$W"
LIMIT=${QB_BOOT_LIMIT:-240}
PASS='correct horse'

if ! bash "$BOOT_ROOT/tests/boot/make-guests.sh"; then
    fail "build guests"; finish; exit 1
fi
[ -f "$BOOT_EFI_APP" ] || { fail "qcowboot.efi" "missing: $BOOT_EFI_APP (make all)"; finish; exit 1; }

exec 9>"$BOOT_ROOT/build/tests/firmware.lock"
flock 9

printf %s "$PASS" >"$W/pass"
SEC=(--object "secret,id=sec0,file=$W/pass")
mkimg() {   # OUT OPTIONS: the gpt-uki guest as an encrypted image
    qemu-img convert "${SEC[@]}" -O qcow2 -o "$2,encrypt.key-secret=sec0" \
        "$(guest_raw gpt-uki)" "$1"
}
if ! mkimg "$W/luks.qcow2" encrypt.format=luks,encrypt.iter-time=10 ||
   ! mkimg "$W/aes.qcow2" encrypt.format=aes; then
    fail "encrypted guest images"; finish; exit 1
fi

# --- 1. unattended stick ---
d=$W/tree log=$W/unattended.log
rm -rf "$d"
mkdir -p "$d/EFI/BOOT"
cp "$BOOT_EFI_APP" "$d/EFI/BOOT/BOOTX64.EFI"
cp "$W/luks.qcow2" "$d/guest.qcow2"
printf 'timeout = 0\r\n' >"$d/qcowboot.cfg"
bash "$BOOT_ROOT/tools/mkfat.sh" "$W/stick.img" "$d"
rm -rf "$d"
rc=0
bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$W/stick.img" --log "$log" --timeout "$LIMIT" \
    --stop-on "$FW_CRASH_TEXT" --stop-on "Shell> " \
    --send-after "Passphrase for" 'wrong\r' \
    --send-after "Passphrase for" 'xy\b\b'"$PASS"'\r' || rc=$?
fw_console "$log" >"$W/unattended.txt"
if [ "$rc" -eq 0 ] && boot_has_marker "$log" gpt-uki; then
    pass "unattended: the LUKS guest boots after the passphrase"
else
    fail "unattended: the LUKS guest boots" "QEMU exit $rc; console in $log: $(grep -a -v '^\s*$' "$W/unattended.txt" | tail -n 8 | tr '\n' '|')"
fi
if grep -a -q 'wrong passphrase' "$W/unattended.txt" &&
   grep -a -q -F "(try 2 of 3): " "$W/unattended.txt" &&
   grep -a -q -F "*************" "$W/unattended.txt" &&
   grep -a -q -F $'**\b \b\b \b' "$W/unattended.txt"; then
    pass "unattended: wrong passphrase reported, asked again, one star a character"
else
    fail "unattended: wrong passphrase, stars" "$(grep -a -E 'Passphrase|wrong' "$W/unattended.txt" | tr '\n' '|')"
fi
if grep -a -q 'Unlocking: 100%' "$W/unattended.txt"; then
    pass "unattended: key derivation progress shown"
else
    fail "unattended: key derivation progress shown"
fi
if ! grep -a -q -e 'horse' -e 'wrong[^ ]' "$W/unattended.txt" && ! grep -a -q 'xy' "$W/unattended.txt"; then
    pass "unattended: the passphrase is not echoed"
else
    fail "unattended: the passphrase is not echoed"
fi

# --- 2. shell session ---
d=$W/tree log=$W/shell.log txt=$W/shell.txt
drv=$(dirname "$BOOT_EFI_APP")/qcowbootdrv.efi
rm -rf "$d"
mkdir -p "$d"
cp "$BOOT_EFI_APP" "$d/qcowboot.efi"
cp "$drv" "$d/"
cp "$W/luks.qcow2" "$d/luks.qcow2"
cp "$W/aes.qcow2" "$d/aes.qcow2"
nsh=$d/startup.nsh
fw_nsh_begin "$nsh"
fw_nsh_case "$nsh" info 'qcowboot.efi info fs0:\luks.qcow2'
fw_nsh_case "$nsh" info-wrong 'qcowboot.efi info fs0:\luks.qcow2'
fw_nsh_case "$nsh" mount 'qcowboot.efi mount fs0:\luks.qcow2'
fw_nsh_case "$nsh" map 'map -r'
fw_nsh_case "$nsh" ls 'ls fs1:\EFI\BOOT'
fw_nsh_line "$nsh" 'fs0:'
fw_nsh_case "$nsh" unmount 'qcowboot.efi unmount'
fw_nsh_case "$nsh" boot-aes 'qcowboot.efi boot fs0:\aes.qcow2'
fw_nsh_end "$nsh"
bash "$BOOT_ROOT/tools/mkfat.sh" "$W/stick.img" "$d"
rm -rf "$d"
rc=0
bash "$BOOT_ROOT/tools/qemu-run.sh" --disk "$W/stick.img" --log "$log" --timeout "$LIMIT" \
    --key-after "$FW_SHELL_PROMPT_TEXT" --stop-on "$FW_CRASH_TEXT" \
    --send-after "Passphrase for" "$PASS"'\r' \
    --send-after "Passphrase for" 'bad1\r' \
    --send-after "Passphrase for" 'bad2\r' \
    --send-after "Passphrase for" 'bad3\r' \
    --send-after "Passphrase for" "$PASS"'\r' \
    --send-after "Passphrase for" "$PASS"'\r' || rc=$?
fw_console "$log" >"$txt"
if [ "$(fw_status "$txt" info)" = 0 ] && fw_section "$txt" info | grep -q '^file format: qcow2' &&
   fw_section "$txt" info | grep -q 'virtual size:'; then
    pass "shell: info asks for the passphrase"
else
    fail "shell: info" "status $(fw_status "$txt" info): $(fw_section "$txt" info | tail -n 4 | tr '\n' '|')"
fi
st=$(fw_status "$txt" info-wrong)
if [ -n "$st" ] && [ "$st" != 0 ] &&
   [ "$(fw_section "$txt" info-wrong | grep -c 'wrong passphrase')" -ge 3 ] &&
   fw_section "$txt" info-wrong | grep -q -F '(try 3 of 3)'; then
    pass "shell: three wrong passphrases, then info fails saying so"
else
    fail "shell: three wrong passphrases" "status ${st:-none}: $(fw_section "$txt" info-wrong | tail -n 5 | tr '\n' '|')"
fi
if [ "$(fw_status "$txt" mount)" = 0 ] && [ "$(fw_status "$txt" ls)" = 0 ] &&
   fw_section "$txt" ls | grep -q -i 'BOOTX64\.EFI'; then
    pass "shell: mount of the LUKS image shows the guest's ESP"
else
    fail "shell: mount" "status $(fw_status "$txt" mount)/$(fw_status "$txt" ls): $(fw_section "$txt" mount | tail -n 3 | tr '\n' '|')"
fi
[ "$(fw_status "$txt" unmount)" = 0 ] && pass "shell: unmount" ||
    fail "shell: unmount" "status $(fw_status "$txt" unmount)"
if [ "$rc" -eq 0 ] && boot_has_marker "$log" gpt-uki; then
    pass "shell: boot of the legacy AES guest"
else
    fail "shell: boot of the legacy AES guest" "QEMU exit $rc; console in $log: $(grep -a -v '^\s*$' "$txt" | tail -n 8 | tr '\n' '|')"
fi
finish
