#!/bin/bash
# Prints the QEMU accelerator to use for x86_64 guests here: "kvm" when KVM
# really executes guest code, otherwise "tcg".
#
# An openable /dev/kvm proves nothing: nested KVM without unrestricted-guest
# support fails on the first x87 instruction OVMF runs ("KVM internal error
# ... emulation failure") and QEMU then hangs paused. So boot a 64 KiB fake
# BIOS whose reset vector runs `finit` (wait + fninit, as OVMF's SEC phase
# does) and then writes 1 to isa-debug-exit: QEMU exits with status 3 only
# if the guest got that far.
#
# The answer is cached in build/kvm-probe (keyed by kernel, QEMU version
# and /dev/kvm); QB_ACCEL=kvm|tcg overrides the probe.
set -euo pipefail

if [ -n "${QB_ACCEL:-}" ]; then
    echo "$QB_ACCEL"
    exit 0
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QB_KVM_PROBE_CACHE:-$root/build/kvm-probe}
qemu=${QEMU:-qemu-system-x86_64}

key="$(uname -r) $("$qemu" --version 2>/dev/null | head -n 1) $(ls -l /dev/kvm 2>/dev/null || echo no-kvm)"
if [ -f "$cache" ] && [ "$(sed -n 2p "$cache")" = "$key" ]; then
    sed -n 1p "$cache"
    exit 0
fi

accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # hlt everywhere; at the reset vector (offset 0xfff0):
    #   9b db e3   finit
    #   b0 01      mov al, 1
    #   e6 f4      out 0xf4, al     (isa-debug-exit: QEMU exits with 1 << 1 | 1)
    #   f4 eb fd   hlt; jmp $-1
    {
        head -c 65520 /dev/zero | tr '\0' '\364'
        printf '\x9b\xdb\xe3\xb0\x01\xe6\xf4\xf4\xeb\xfd'
        head -c 6 /dev/zero | tr '\0' '\364'
    } >"$tmp/bios.bin"
    rc=0
    timeout -k 1 3 "$qemu" -machine pc -accel kvm -m 16 -bios "$tmp/bios.bin" \
        -nodefaults -display none -monitor none -serial none \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 >"$tmp/log" 2>&1 || rc=$?
    [ "$rc" -eq 3 ] && accel=kvm
fi

mkdir -p "$(dirname "$cache")"
printf '%s\n%s\n' "$accel" "$key" >"$cache"
echo "$accel"
