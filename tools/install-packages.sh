#!/bin/bash
# Installs the Debian packages that the build and the tests need, only the
# ones that are missing. Quiet and network-free when everything is present;
# otherwise runs `apt-get update` once and installs the missing ones.
set -euo pipefail

PACKAGES=(
    gnu-efi            # EFI headers, crt0 and linker script
    qemu-system-x86    # firmware tests
    qemu-utils         # qemu-img: reference images
    ovmf               # UEFI firmware for QEMU
    mtools             # FAT images without mounting
    dosfstools         # mkfs.fat
    gdisk              # sgdisk: GPT images
    fdisk              # sfdisk
    dpkg-dev           # dpkg-source: unpacks the third-party sources
    clang              # fuzzing
    libclang-rt-14-dev # libFuzzer runtime
    python3
    busybox-static     # minimal initramfs for boot tests
    cpio
    systemd-boot-efi   # EFI stub for boot tests
    grub-efi-amd64-bin # standalone GRUB for a boot-test guest
    sbsigntool
    e2fsprogs
    xxd
    openssl            # reference AES for the cipher tests
)

installed() {
    local status
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
    [ "${status:0:2}" = "ii" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-packages: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi

echo "install-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

# Every package must now be there.
still=()
for p in "${missing[@]}"; do
    installed "$p" || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
    echo "install-packages: still missing after install: ${still[*]}" >&2
    exit 1
fi
