#!/usr/bin/env bash
# `make demo`: makes a sample qcow2 image, puts it on a FAT stick with
# qcowboot.efi and a startup.nsh, boots OVMF from the stick and prints what
# `qcowboot.efi info` said on the serial console.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

W=$FW_ROOT/build/demo
rm -rf "$W"
mkdir -p "$W/stick"
cd "$W/stick"

qemu-img create -q -f qcow2 -o compression_type=zstd sample.qcow2 1G
qemu-io -c 'write -P 0x61 0 4M' -c 'write -c -P 0x62 64M 1M' sample.qcow2 >/dev/null
qemu-img snapshot -c installed sample.qcow2
qemu-io -c 'write -P 0x63 512M 64k' sample.qcow2 >/dev/null
cp "$FW_EFI_APP" qcowboot.efi

fw_nsh_begin startup.nsh
fw_nsh_case startup.nsh info 'qcowboot.efi info sample.qcow2'
fw_nsh_end startup.nsh
bash "$FW_ROOT/tools/mkfat.sh" "$W/stick.img" "$W/stick"

accel=$(bash "$FW_ROOT/tools/kvm-probe.sh")
echo "Booting OVMF ($accel) from $W/stick.img; the UEFI shell runs:"
echo "  qcowboot.efi info sample.qcow2"
start=$(date +%s.%N)
rc=0
fw_boot "$W/stick.img" "$W/serial.log" 120 || rc=$?
end=$(date +%s.%N)
fw_console "$W/serial.log" >"$W/console.txt"
echo "--- serial console (boot took $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }') s) ---"
fw_section "$W/console.txt" info
status=$(fw_status "$W/console.txt" info)
echo "--- exit status in the shell: ${status:-none} ---"
if [ "$rc" -ne 0 ] || [ "${status:-x}" != 0 ]; then
    echo "demo failed (QEMU exit $rc); full console in $W/console.txt" >&2
    exit 1
fi
