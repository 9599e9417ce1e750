#!/bin/bash
# Signs UEFI programs (qcowboot.efi, qcowbootdrv.efi, a guest's boot loader)
# for Secure Boot with sbsign, then checks each signature with sbverify
# against the same certificate. `make sign` runs it on the build's outputs.
#
# Usage: tools/sign-efi.sh --key KEY --cert CERT [--pass-file FILE]
#                          (--out-dir DIR | --output OUT) FILE...
#   --key KEY          the private key, PEM (encrypted or not)
#   --cert CERT        its X.509 certificate, PEM: the one enrolled in the
#                      firmware's db (or as a MOK)
#   --pass-file FILE   the key's passphrase, first line of FILE; the key is
#                      decrypted in memory and handed to sbsign through a
#                      pipe, never written to disk. Without it sbsign asks
#                      on the terminal when the key is encrypted.
#   --out-dir DIR      write each signed FILE as DIR/<its name> (the names
#                      stay, so qcowboot.efi finds qcowbootdrv.efi next to it)
#   --output OUT       write the one signed FILE as OUT
#
# Exit status 0 when every FILE was signed and its signature verifies.
set -euo pipefail

prog=sign-efi
key=""
cert=""
pass_file=""
out_dir=""
output=""

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}
die() {
    echo "$prog: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
    --key) key=$2; shift 2 ;;
    --cert) cert=$2; shift 2 ;;
    --pass-file) pass_file=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
done
[ -n "$key" ] && [ -n "$cert" ] && [ $# -ge 1 ] || usage
if [ -n "$out_dir" ] && [ -n "$output" ]; then die "give --out-dir or --output, not both"; fi
if [ -z "$out_dir" ] && [ -z "$output" ]; then die "give --out-dir DIR or --output OUT"; fi
if [ -n "$output" ] && [ $# -ne 1 ]; then die "--output takes exactly one FILE"; fi

for tool in sbsign sbverify openssl; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian packages sbsigntool, openssl)"
done
[ -r "$key" ] || die "cannot read the key $key"
[ -r "$cert" ] || die "cannot read the certificate $cert"
grep -q -- '-----BEGIN CERTIFICATE-----' "$cert" ||
    die "$cert is not a PEM certificate (from DER: openssl x509 -inform DER -in $cert -out cert.pem)"
openssl x509 -in "$cert" -noout 2>/dev/null || die "$cert: openssl cannot read the certificate"

# The key as sbsign reads it: the file itself, or its decrypted form in this
# shell's memory, passed on a pipe (/dev/fd/N).
pem=""
if [ -n "$pass_file" ]; then
    [ -r "$pass_file" ] || die "cannot read the passphrase file $pass_file"
    pem=$(openssl pkey -in "$key" -passin "file:$pass_file" 2>/dev/null) ||
        die "cannot decrypt $key with the passphrase in $pass_file"
fi
# The key must belong to the certificate: a mismatch would sign "fine" and
# only fail in the firmware.
if [ -n "$pass_file" ]; then
    key_pub=$(printf '%s\n' "$pem" | openssl pkey -pubout 2>/dev/null) || die "$key: not a private key"
else
    key_pub=$(openssl pkey -in "$key" -pubout -passin pass: 2>/dev/null || true)
fi
cert_pub=$(openssl x509 -in "$cert" -noout -pubkey)
if [ -n "$key_pub" ] && [ "$key_pub" != "$cert_pub" ]; then
    die "$key is not the private key of $cert"
fi

# sbsign/sbverify warn about the bytes past the last section (objcopy keeps
# the COFF symbol table there); Authenticode hashes them like the rest, so
# the warning says nothing about the signature. Everything else is shown.
quiet() {
    local rc=0 out
    out=$("$@" 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -v -e 'gaps between PE/COFF sections' \
        -e '^Signing Unsigned original image$' -e '^Signature verification OK$' -e '^$' >&2 || true
    return "$rc"
}

[ -z "$out_dir" ] || mkdir -p "$out_dir"
for f in "$@"; do
    [ -f "$f" ] || die "no such file: $f"
    if [ -n "$output" ]; then out=$output; else out=$out_dir/$(basename "$f"); fi
    [ "$(realpath -m "$out")" != "$(realpath "$f")" ] || die "$out would overwrite its input"
    rm -f "$out.tmp"
    if [ -n "$pass_file" ]; then
        quiet sbsign --key <(printf '%s\n' "$pem") --cert "$cert" --output "$out.tmp" "$f" ||
            die "sbsign failed for $f"
    else
        quiet sbsign --key "$key" --cert "$cert" --output "$out.tmp" "$f" || die "sbsign failed for $f"
    fi
    quiet sbverify --cert "$cert" "$out.tmp" || { rm -f "$out.tmp"; die "$out: signature does not verify"; }
    mv -f "$out.tmp" "$out"
    echo "signed $out, verified against $cert ($(openssl x509 -in "$cert" -noout -subject | sed 's/^subject= *//'))"
done
