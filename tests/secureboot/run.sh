#!/usr/bin/env bash
# Secure Boot end to end, under OVMF built to enforce it with Debian's test
# keys (OVMF_CODE_4M.snakeoil.fd + OVMF_VARS_4M.snakeoil.fd, whose PK, KEK
# and db hold the snakeoil certificate; its private key ships as
# /usr/share/ovmf/PkKek-1-snakeoil.key, passphrase "snakeoil"):
#   sign      `make sign` signs qcowboot.efi and qcowbootdrv.efi with that
#             key and sbverify accepts them; the unsigned build and the
#             unsigned guest loader do not verify.
#   guest     the gpt-uki boot-test guest (tests/boot/lib.sh) with its
#             unified kernel image signed inside a copy of its ESP, as qcow2.
#   signed    signed qcowboot + signed guest: the guest boots and its kernel
#             reports Secure Boot enabled.
#   refused   signed qcowboot + the unsigned guest: the firmware refuses the
#             guest's loader, qcowboot says so in words naming Secure Boot,
#             its menu comes back and takes a key (power off).
#   unsigned  unsigned qcowboot: the firmware refuses to start it (Access
#             Denied) and falls through its boot options; qcowboot prints
#             nothing.
# Three QEMU boots; everything lives under build/secureboot/.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../boot/lib.sh"
. "$(dirname "$0")/../firmware/lib.sh"

R=$BOOT_ROOT
W=$R/build/secureboot
LIMIT=${QB_SB_LIMIT:-150}
# QB_SB_CODE / QB_SB_VARS: other firmware, to see the suite fail without
# Secure Boot (with the plain OVMF_CODE_4M.fd every boot case must fail).
CODE=${QB_SB_CODE:-/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd}
VARS=${QB_SB_VARS:-/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd}
KEY=/usr/share/ovmf/PkKek-1-snakeoil.key
CERT=/usr/share/ovmf/PkKek-1-snakeoil.pem
GUEST=gpt-uki
LOADER=/EFI/BOOT/BOOTX64.EFI
HEADING="qcowboot: choose the image to boot"
# What OVMF's boot manager prints when no boot option could be started.
FELL_THROUGH="No bootable option or device was found"
export MTOOLS_SKIP_CHECK=1

for f in "$CODE" "$VARS" "$KEY" "$CERT"; do
    [ -f "$f" ] || { fail "setup" "missing $f (Debian package ovmf)"; finish; exit 1; }
done
[ -f "$BOOT_EFI_APP" ] || { fail "setup" "missing $BOOT_EFI_APP (make all)"; finish; exit 1; }
if ! bash "$R/tests/boot/make-guests.sh"; then
    fail "setup" "could not build the boot-test guests"
    finish
    exit 1
fi

rm -rf "$W"
mkdir -p "$W" "$R/build/tests"
printf 'snakeoil\n' >"$W/snakeoil.pass"

# --- signing ------------------------------------------------------------------
signed_dir=$W/signed
if make -s -C "$R" sign KEY="$KEY" CERT="$CERT" KEY_PASS_FILE="$W/snakeoil.pass" \
        SIGNED_DIR="$signed_dir" >"$W/sign.log" 2>&1 &&
   sbverify --cert "$CERT" "$signed_dir/qcowboot.efi" >/dev/null 2>&1 &&
   sbverify --cert "$CERT" "$signed_dir/qcowbootdrv.efi" >/dev/null 2>&1; then
    pass "sign: make sign signs qcowboot.efi and qcowbootdrv.efi, sbverify accepts both"
else
    fail "sign: make sign" "$(tail -n 5 "$W/sign.log")"
fi
if sbverify --cert "$CERT" "$BOOT_EFI_APP" >/dev/null 2>&1; then
    fail "sign: the unsigned build" "$BOOT_EFI_APP verifies already: the 'unsigned' case would prove nothing"
else
    pass "sign: the unsigned build does not verify"
fi
signed_app=$signed_dir/qcowboot.efi

# --- the guest, signed ----------------------------------------------------------
# esp_offset RAW: byte offset of the disk's EFI system partition.
esp_offset() {
    sfdisk -d "$1" 2>/dev/null |
        awk -F'[=,]' '/type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B/ { gsub(/ /, "", $2); print $2 * 512; exit }'
}
raw=$W/$GUEST.raw
signed_img=$W/guest/$GUEST-signed.qcow2
unsigned_img=$(guest_tree "$GUEST" plain)/$(guest_image_name "$GUEST" plain)
mkdir -p "$W/guest"
guest_ok=0
if cp "$(guest_raw "$GUEST")" "$raw" && off=$(esp_offset "$raw") && [ -n "$off" ] &&
   mcopy -n -i "$raw@@$off" "::$LOADER" "$W/loader.efi" >"$W/guest.log" 2>&1 &&
   ! sbverify --cert "$CERT" "$W/loader.efi" >/dev/null 2>&1 &&
   bash "$R/tools/sign-efi.sh" --key "$KEY" --cert "$CERT" --pass-file "$W/snakeoil.pass" \
        --output "$W/loader.signed.efi" "$W/loader.efi" >>"$W/guest.log" 2>&1 &&
   mcopy -o -i "$raw@@$off" "$W/loader.signed.efi" "::$LOADER" >>"$W/guest.log" 2>&1 &&
   mcopy -n -i "$raw@@$off" "::$LOADER" "$W/loader.check.efi" >>"$W/guest.log" 2>&1 &&
   sbverify --cert "$CERT" "$W/loader.check.efi" >>"$W/guest.log" 2>&1 &&
   qemu-img convert -f raw -O qcow2 "$raw" "$signed_img" >>"$W/guest.log" 2>&1; then
    guest_ok=1
    pass "guest: $GUEST's unsigned loader signed inside its ESP, as qcow2"
else
    fail "guest: signing $GUEST's loader" "$(tail -n 5 "$W/guest.log")"
fi
rm -f "$raw" "$W/loader.efi" "$W/loader.check.efi"

# --- boots ----------------------------------------------------------------------
# One QEMU at a time across the firmware-driven suites.
exec 9>"$R/build/tests/firmware.lock"
flock 9

# sb_boot NAME STICK [qemu-run.sh options]: boots the Secure Boot firmware
# from STICK; the console goes to $W/NAME.log and, cleaned, $W/NAME.txt.
# Sets rc (qemu-run.sh's status) and secs.
sb_boot() {
    local name=$1 stick=$2 start end
    shift 2
    rc=0
    start=$(date +%s.%N)
    bash "$R/tools/qemu-run.sh" --code "$CODE" --vars "$VARS" --disk "$stick" \
        --log "$W/$name.log" --timeout "$LIMIT" --stop-on "$BOOT_CRASH_TEXT" "$@" \
        2>"$W/$name.err" || rc=$?
    end=$(date +%s.%N)
    secs=$(boot_elapsed "$start" "$end")
    fw_console "$W/$name.log" >"$W/$name.txt"
}
# why_rc: qemu-run.sh's status in words.
why_rc() {
    case $rc in
    0) echo "QEMU exited by itself" ;;
    124) echo "no exit within $LIMIT s" ;;
    125) echo "stopped on a crash or a fall-through to the firmware" ;;
    *) echo "QEMU exit $rc" ;;
    esac
}
# tail_of NAME: the end of a boot's console, for failure messages.
tail_of() {
    grep -a -v '^[[:space:]]*$' "$W/$1.txt" | tail -n 12 | sed 's/^/    | /'
}

# signed: signed qcowboot boots the signed guest, unattended.
if [ "$guest_ok" = 1 ] && [ -f "$signed_app" ] &&
   bash "$R/tools/mkstick.sh" -q --efi "$signed_app" --timeout 0 "$W/stick.img" "$signed_img"; then
    sb_boot signed "$W/stick.img" --stop-on "$FELL_THROUGH"
    if [ "$rc" -eq 0 ] && boot_has_marker "$W/signed.log" "$GUEST" &&
       grep -a -q -F "$HEADING" "$W/signed.txt"; then
        pass "signed: signed qcowboot boots the signed guest (${secs} s)"
    else
        fail "signed: signed qcowboot + signed guest" "$(why_rc), marker $(boot_has_marker "$W/signed.log" "$GUEST" && echo seen || echo missing), console in $W/signed.txt:"
        tail_of signed
    fi
    # The guest's kernel reads the SecureBoot variable itself: proof that
    # the firmware enforced it during this boot.
    if grep -a -q -F "EFI stub: UEFI Secure Boot is enabled." "$W/signed.txt"; then
        pass "signed: the guest's kernel reports Secure Boot enabled"
    else
        fail "signed: Secure Boot state" "the guest's kernel did not report Secure Boot enabled"
    fi
else
    fail "signed: stick" "no signed qcowboot or guest to put on it"
fi

# refused: signed qcowboot, unsigned guest. After the refusal the menu is
# drawn again; a 'p' typed on the serial console then powers off.
if [ -f "$signed_app" ] &&
   bash "$R/tools/mkstick.sh" -q --efi "$signed_app" --timeout 0 "$W/stick.img" "$unsigned_img"; then
    sb_boot refused "$W/stick.img" --stop-on "$FELL_THROUGH" \
        --send-after "failed (status" "" --send-after "$HEADING" "p"
    refusal=$(grep -a -n "the firmware refused to load .EFI.BOOT.BOOTX64.EFI" "$W/refused.txt" | head -n 1)
    if [ -n "$refusal" ] && grep -q -E "(access denied|security violation).*Secure Boot" <<<"$refusal" &&
       ! boot_has_marker "$W/refused.log" "$GUEST"; then
        pass "refused: the unsigned guest's loader is refused, the reason names Secure Boot"
    else
        fail "refused: message" "${refusal:-no refusal on the console}; console in $W/refused.txt:"
        tail_of refused
    fi
    if [ -n "$refusal" ] &&
       tail -n +"${refusal%%:*}" "$W/refused.txt" | grep -a -q -F "$HEADING" &&
       [ "$rc" -eq 0 ]; then
        pass "refused: the menu comes back and powers off on 'p' (${secs} s)"
    else
        fail "refused: menu after the refusal" "$(why_rc); console in $W/refused.txt:"
        tail_of refused
    fi
else
    fail "refused: stick" "no signed qcowboot to put on it"
fi

# unsigned: the firmware does not start an unsigned qcowboot.
if bash "$R/tools/mkstick.sh" -q --efi "$BOOT_EFI_APP" --timeout 0 "$W/stick.img" "$signed_img"; then
    sb_boot unsigned "$W/stick.img" --stop-on "$FELL_THROUGH"
    denied=$(grep -a -E "failed to load Boot[0-9A-F]{4} .*USB.*: Access Denied" "$W/unsigned.txt" | head -n 1)
    if [ -n "$denied" ] && ! grep -a -q "qcowboot" "$W/unsigned.txt" &&
       grep -a -q -F "$FELL_THROUGH" "$W/unsigned.txt" && [ "$rc" -eq 125 ]; then
        pass "unsigned: the firmware refuses to start unsigned qcowboot and falls through (${secs} s)"
    else
        fail "unsigned: unsigned qcowboot" "$(why_rc); console in $W/unsigned.txt:"
        tail_of unsigned
    fi
else
    fail "unsigned: stick" "mkstick failed"
fi

rm -f "$W/stick.img"
finish
