#!/bin/bash
# Encrypted qcow2 images (legacy AES and LUKS) against qemu-img/qemu-io:
#   - the primitives against OpenSSL and RFC 6070 (crypto_tool);
#   - images qemu-img makes with every cipher/mode/IV/hash combination,
#     written by qemu-io, converted by qcowboot byte for byte as qemu-img
#     converts them; then written by qcowboot (unaligned, across clusters,
#     zeros, discards, snapshots, repair) and judged by qemu-img compare and
#     qemu-img check;
#   - images made encrypted by the engine's creation hook, read by QEMU;
#   - several key slots, compressed clusters, an encrypted backing chain;
#   - wrong passphrase, damaged key slots and headers, unsupported ciphers:
#     clear errors and nothing from the sanitizers.
# Small PBKDF2 iteration counts (encrypt.iter-time=10) keep it quick.
set -u
. "$(dirname "$0")/../lib.sh"
require_qb

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
TOOL=$QB_ROOT/build/tests/crypto_tool
CT64_TOOL=$QB_ROOT/build/tests/crypto_tool_ct64

# --- the test driver, linked against the sanitized engine; a second one
# with the primitives compiled to use the constant-time AES even where the
# CPU has AES-NI ---
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
build_tool() {
    local objs=() f
    make -s -C "$QB_ROOT" build/host-san/qcowboot >"$W/make.log" 2>&1 || return 1
    for f in "$QB_ROOT"/core/*.c; do
        objs+=("$QB_ROOT/build/host-san/core/$(basename "${f%.c}").o")
    done
    mkdir -p "$(dirname "$TOOL")"
    gcc -O1 -g "${SAN[@]}" -nostdinc -isystem "$QB_ROOT/libc-mini/include" \
        -isystem "$(gcc -print-file-name=include)" -I"$QB_ROOT/core" \
        -I"$QB_ROOT/build/deps/src/bearssl/inc" -DQB_CRYPTO_FORCE_CT64 -std=c11 \
        -c "$QB_ROOT/core/qcow2_crypto.c" -o "$W/crypto_ct64.o" >"$W/make.log" 2>&1 || return 1
    for variant in "$TOOL" "$CT64_TOOL"; do
        local use=("${objs[@]}")
        [ "$variant" = "$CT64_TOOL" ] && use=("${objs[@]/*qcow2_crypto.o/$W/crypto_ct64.o}")
        gcc -O1 -g "${SAN[@]}" -Wall -Wextra -Werror -Wno-unused-parameter -std=gnu11 \
        -I"$QB_ROOT/core" -I"$QB_ROOT/tools/host" \
        -o "$variant" "$QB_ROOT/tests/crypto/crypto_tool.c" "${use[@]}" \
        "$QB_ROOT/build/host-san/fe/posix_backend.o" "$QB_ROOT/build/host-san/fe/write_behind.o" "$QB_ROOT"/build/deps/host/libbearssl.a \
        "$QB_ROOT"/build/deps/host/libz.a "$QB_ROOT"/build/deps/host/libzstd.a \
        "$QB_ROOT"/build/deps/host/libdeflate.a -pthread >"$W/make.log" 2>&1 || return 1
    done
}
if build_tool; then pass "build crypto_tool"; else
    fail "build crypto_tool" "$(tail -n 5 "$W/make.log")"; finish; exit 1; fi

printf %s 'correct horse' >"$W/pass"
printf %s 'battery staple' >"$W/other"
printf %s 'wrong' >"$W/wrong"
SEC=(--object "secret,id=sec0,file=$W/pass")
opts() { echo "driver=qcow2,file.filename=$1,encrypt.key-secret=sec0"; }
qio() { local img=$1; shift; qemu-io "${SEC[@]}" --image-opts "$(opts "$img")" "$@"; }
qb() { "$QB" --passphrase-file "$W/pass" "$@"; }
# mkimg ARGS...: qemu-img create, failing the suite's step loudly.
mkimg() {
    local out
    out=$(qemu-img create -q "$@" 2>&1) || { fail "qemu-img create ${*: -2:1}" "$out"; return 1; }
}
# no_sanitizer FILE: the sanitizers said nothing in FILE.
no_sanitizer() { ! grep -q -e 'Sanitizer' -e 'runtime error' "$1"; }

# --- primitives ---
kat() {   # NAME HASH PASS SALT ITER LEN EXPECTED
    local out
    out=$("$TOOL" pbkdf2 "$2" "$3" "$4" "$5" "$6" | head -n 1)
    if [ "$out" = "$7" ]; then pass "pbkdf2 $1"; else fail "pbkdf2 $1" "got $out"; fi
}
kat "rfc6070 c=1" sha1 password salt 1 20 0c60c80f961f0e71f3a9b524af6012062fe037a6
kat "rfc6070 c=2" sha1 password salt 2 20 ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957
kat "rfc6070 c=4096" sha1 password salt 4096 20 4b007901b765489abead49d926f721d065a429c1
kat "rfc6070 c=4096 dkLen=25" sha1 passwordPASSWORDpassword saltSALTsaltSALTsaltSALTsaltSALTsalt \
    4096 25 3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038
kat "sha256 c=1 dkLen=32" sha256 password salt 1 32 \
    120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b
prog=$("$TOOL" pbkdf2 sha256 password salt 20000 64 | tail -n 1)
if [[ $prog =~ ^progress\ ([0-9]+)\ 40000/40000$ ]] && [ "${BASH_REMATCH[1]}" -ge 9 ]; then
    pass "pbkdf2 reports progress up to the total"
else
    fail "pbkdf2 reports progress up to the total" "$prog"
fi

# cipher_kat NAME MODE IVGEN KEYHEX SECTOR: 8 sectors encrypted by the
# engine equal a reference built on OpenSSL's AES-ECB (CBC chaining, the
# XTS tweaks and ESSIV computed here), and decrypt back.
head -c 4096 /dev/urandom >"$W/plain"
cipher_kat() {
    local name=$1 mode=$2 ivgen=$3 key=$4 sector=$5
    local tool=$TOOL
    if [ -n "${CT64:-}" ]; then tool=$CT64_TOOL name="$name (ct64)"; fi
    "$tool" cipher enc "$mode" "$ivgen" "$key" "$sector" <"$W/plain" >"$W/ours"
    python3 - "$mode" "$ivgen" "$key" "$sector" "$W/plain" "$W/theirs" <<'PY'
import hashlib, subprocess, sys
mode, ivgen, key, sector, src, dst = sys.argv[1:]
key, sector = bytes.fromhex(key), int(sector)
def ecb(k, data):
    return subprocess.run(['openssl', 'enc', '-aes-%d-ecb' % (len(k) * 8), '-K', k.hex(),
                           '-nopad'], input=data, capture_output=True, check=True).stdout
def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))
plain, out = open(src, 'rb').read(), b''
for s in range(len(plain) // 512):
    p = plain[512 * s:512 * s + 512]
    n = sector + s
    iv = ((n & 0xffffffff) if ivgen == 'plain' else n).to_bytes(8, 'little') + bytes(8)
    if mode == 'xts':
        k1, k2 = key[:len(key) // 2], key[len(key) // 2:]
        t = int.from_bytes(ecb(k2, iv), 'little')
        tweaks = b''
        for j in range(32):
            tweaks += t.to_bytes(16, 'little')
            t = ((t << 1) ^ (0x87 if t >> 127 else 0)) & ((1 << 128) - 1)
        out += xor(ecb(k1, xor(p, tweaks)), tweaks)
    else:
        if ivgen == 'essiv':
            iv = ecb(hashlib.sha256(key).digest(), iv)
        prev = iv
        for j in range(32):
            prev = ecb(key, xor(p[16 * j:16 * j + 16], prev))
            out += prev
open(dst, 'wb').write(out)
PY
    if cmp -s "$W/ours" "$W/theirs"; then pass "cipher $name = reference"; else
        fail "cipher $name = reference"; fi
    "$tool" cipher dec "$mode" "$ivgen" "$key" "$sector" <"$W/ours" >"$W/back"
    if cmp -s "$W/back" "$W/plain"; then pass "cipher $name decrypts"; else
        fail "cipher $name decrypts"; fi
}
K64=$(head -c 64 /dev/urandom | xxd -p | tr -d '\n')
cipher_kat "aes-256-xts-plain64" xts plain64 "$K64" 77777
cipher_kat "aes-128-xts-plain64" xts plain64 "${K64:0:64}" 4294967294
cipher_kat "aes-256-xts-plain" xts plain "$K64" 4294967295
cipher_kat "aes-256-cbc-plain64" cbc plain64 "${K64:0:64}" 5000000000
cipher_kat "aes-128-cbc-plain" cbc plain "${K64:0:32}" 4294967295
cipher_kat "aes-192-cbc-plain64" cbc plain64 "${K64:0:48}" 1
cipher_kat "aes-128-cbc-essiv:sha256" cbc essiv "${K64:0:32}" 123
cipher_kat "aes-256-cbc-essiv:sha256" cbc essiv "${K64:0:64}" 9
if [ "$("$CT64_TOOL" impl)" = "constant-time (ct64)" ]; then pass "ct64 build uses the fallback"
else fail "ct64 build uses the fallback" "$("$CT64_TOOL" impl)"; fi
CT64=1 cipher_kat "aes-256-xts-plain64" xts plain64 "$K64" 77777
CT64=1 cipher_kat "aes-128-cbc-essiv:sha256" cbc essiv "${K64:0:32}" 123
CT64=1 cipher_kat "aes-192-cbc-plain" cbc plain "${K64:0:48}" 4294967296

# --- images ---
SIZE=16M
# The first writes (qemu-io): aligned and unaligned, across clusters and
# L2 ranges, zeros.
W1=(-c "write -P 0x11 0 64k" -c "write -P 0x22 100000 300000" -c "write -P 0x33 5M 4096"
    -c "write -z 1M 128k" -c "write -P 0x44 8388096 1024" -c "write -P 0x45 15M 1M")
# Then qcowboot's: parts of sectors in allocated clusters, a write across
# a cluster boundary, new clusters, a partial new cluster, zeros, discard.
W2=(-c "write -P 0x55 1 511" -c "write -P 0x66 65535 2" -c "write -P 0x77 3M 200k"
    -c "write -z 5M 64k" -c "write -P 0x88 10000001 1000" -c "write -P 0x99 100001 70000"
    -c "discard 3M 64k" -c "write -P 0xaa 3M 513" -c "flush")

# judge NAME IMAGE MODEL: QEMU reads IMAGE as MODEL, its check is clean,
# and so is qcowboot's.
judge() {
    local name=$1 img=$2 model=$3 out
    if out=$(qemu-img compare "${SEC[@]}" --image-opts "$(opts "$img")" \
             "driver=raw,file.filename=$model" 2>&1); then pass "$name: qemu-img reads it"
    else fail "$name: qemu-img reads it" "$out"; fi
    if out=$(qemu-img check "${SEC[@]}" --image-opts "$(opts "$img")" 2>&1); then
        pass "$name: qemu-img check"; else fail "$name: qemu-img check" "$out"; fi
    if out=$(qb check "$img" 2>&1) && no_sanitizer <(echo "$out"); then
        pass "$name: qcowboot check"; else fail "$name: qcowboot check" "$out"; fi
}

# roundtrip NAME IMAGE: qemu-io's writes, convert byte for byte as
# qemu-img's, then qcowboot's writes judged by QEMU.
roundtrip() {
    local name=$1 img=$2 model=$W/$1.model out
    rm -f "$model"
    qemu-img create -q -f raw "$model" $SIZE
    qio "$img" "${W1[@]}" >/dev/null
    qemu-io -f raw "$model" "${W1[@]}" >/dev/null
    qemu-img convert "${SEC[@]}" --image-opts "$(opts "$img")" -O raw "$W/$name.ref"
    if out=$(qb convert "$img" "$W/$name.qb" 2>&1) && cmp -s "$W/$name.ref" "$W/$name.qb" &&
       no_sanitizer <(echo "$out"); then
        pass "$name: convert = qemu-img convert"
    else
        fail "$name: convert = qemu-img convert" "$out"
    fi
    rm -f "$W/$name.ref" "$W/$name.qb"
    if out=$(qb io "$img" "${W2[@]}" 2>&1); then pass "$name: qcowboot io"; else
        fail "$name: qcowboot io" "$out"; fi
    qemu-io -f raw "$model" "${W2[@]}" >/dev/null
    judge "$name" "$img" "$model"
    # Reads of parts of sectors, and across a cluster boundary.
    if out=$(qb io "$img" -c "read -P 0x55 1 511" -c "read -P 0x66 65535 2" \
             -c "read -P 0x88 10000001 1000" -c "read -P 0x99 100001 70000" \
             -c "read -P 0x22 399995 5" 2>&1); then
        pass "$name: qcowboot reads parts of sectors"
    else
        fail "$name: qcowboot reads parts of sectors" "$out"
    fi
}

COMBOS=(
    "aes|encrypt.format=aes"
    "aes-v2-4k|encrypt.format=aes,compat=0.10,cluster_size=4k"
    "luks-default|encrypt.format=luks"
    "luks-aes128-xts|encrypt.format=luks,encrypt.cipher-alg=aes-128"
    "luks-cbc-plain64-sha1|encrypt.format=luks,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain64,encrypt.hash-alg=sha1"
    "luks-aes128-cbc-essiv|encrypt.format=luks,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256"
    "luks-cbc-essiv-sha512|encrypt.format=luks,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha512"
    "luks-xts-sha512|encrypt.format=luks,encrypt.hash-alg=sha512"
    "luks-aes128-cbc-plain|encrypt.format=luks,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain"
    "luks-512-clusters|encrypt.format=luks,cluster_size=512"
    "luks-v2|encrypt.format=luks,compat=0.10"
    "luks-extended-l2|encrypt.format=luks,extended_l2=on"
)
iter() { case $1 in *luks*) echo ",encrypt.iter-time=10" ;; esac; }

for combo in "${COMBOS[@]}"; do
    name=${combo%%|*} o=${combo#*|}
    img=$W/$name.qcow2
    mkimg -f qcow2 "${SEC[@]}" -o "encrypt.key-secret=sec0,$o$(iter "$o")" "$img" $SIZE
    roundtrip "qemu-img $name" "$img"
    rm -f "$img" "$W/qemu-img $name.model"
done

# Made encrypted by the engine's creation hook (create's encrypt.* options):
# the same workloads, and the metadata qemu-img would have written.
for combo in "${COMBOS[@]}"; do
    name=${combo%%|*} o=${combo#*|}
    img=$W/$name.qcowboot.qcow2
    plain=${o//encrypt.format=aes/} plain=${plain//encrypt.format=luks/}
    crypt=$(tr , '\n' <<<"$o" | grep '^encrypt' | paste -sd,)
    plain=$(tr , '\n' <<<"$plain" | grep -v '^encrypt' | grep . | paste -sd,)
    if ! out=$("$QB" create -q -f qcow2 ${plain:+-o "$plain"} "$img" $SIZE 2>&1) ||
       ! out=$("$TOOL" encrypt-new "$img" "$W/pass" "$crypt$(iter "$o")" 2>&1); then
        fail "new $name: created" "$out"; continue
    fi
    pass "new $name: created"
    roundtrip "new $name" "$img"
    rm -f "$img" "$W/new $name.model"
done

# A default LUKS image: the same header, tables and LUKS header clusters
# as qemu-img's (only the keys, salts and UUID differ).
mkimg -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 \
    "$W/q.qcow2" 64M
"$QB" create -q -f qcow2 "$W/n.qcow2" 64M
"$TOOL" encrypt-new "$W/n.qcow2" "$W/pass" encrypt.format=luks,encrypt.iter-time=10 >/dev/null
if cmp -s <(head -c 262144 "$W/q.qcow2") <(head -c 262144 "$W/n.qcow2") &&
   [ "$(stat -c %s "$W/q.qcow2")" = "$(stat -c %s "$W/n.qcow2")" ]; then
    pass "new luks: metadata as qemu-img lays it out"
else
    fail "new luks: metadata as qemu-img lays it out" "$(cmp <(head -c 262144 "$W/q.qcow2") <(head -c 262144 "$W/n.qcow2"))"
fi
info=$(qemu-img info "$W/n.qcow2")
if grep -q 'cipher alg: aes-256' <<<"$info" && grep -q 'cipher mode: xts' <<<"$info" &&
   grep -q 'ivgen alg: plain64' <<<"$info" && grep -q 'hash alg: sha256' <<<"$info"; then
    pass "new luks: qemu-img info names aes-256 xts-plain64 sha256"
else
    fail "new luks: qemu-img info names aes-256 xts-plain64 sha256" "$info"
fi
mkimg -f qcow2 "${SEC[@]}" -o encrypt.format=aes,encrypt.key-secret=sec0 "$W/qa.qcow2" 64M
"$QB" create -q -f qcow2 "$W/na.qcow2" 64M
"$TOOL" encrypt-new "$W/na.qcow2" "$W/pass" encrypt.format=aes
if cmp -s "$W/qa.qcow2" "$W/na.qcow2"; then pass "new aes: the file qemu-img writes"; else
    fail "new aes: the file qemu-img writes"; fi
# Without encrypt.iter-time: the fixed default count.
"$QB" create -q -f qcow2 "$W/d.qcow2" 1M
out=$("$TOOL" encrypt-new "$W/d.qcow2" "$W/pass" encrypt.format=luks)
if [ "$out" = "iterations 2000000" ] && qemu-img info "$W/d.qcow2" | grep -q 'iters: 2000000'; then
    pass "new luks: default iteration count"
else
    fail "new luks: default iteration count" "$out"
fi
rm -f "$W"/q.qcow2 "$W"/n.qcow2 "$W"/qa.qcow2 "$W"/na.qcow2 "$W"/d.qcow2

# --- snapshots and repair on an encrypted image (new tables, same LUKS header) ---
img=$W/snap.qcow2
mkimg -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 "$img" 4M
qio "$img" -c "write -P 0x21 0 1M" >/dev/null
check "snapshot: create" qb snapshot -c s1 "$img"
check "snapshot: write after" qb io "$img" -c "write -P 0x22 0 64k"
check "snapshot: qemu-img check" qemu-img check "${SEC[@]}" --image-opts "$(opts "$img")"
check "snapshot: apply" qb snapshot -a s1 "$img"
check "snapshot: data back" qio "$img" -c "read -P 0x21 0 1M"
check "snapshot: delete" qb snapshot -d s1 "$img"
check "repair: check -r all" qb check -r all "$img"
check "repair: qemu-img check" qemu-img check "${SEC[@]}" --image-opts "$(opts "$img")"
check "repair: data kept" qio "$img" -c "read -P 0x21 0 1M"

# --- several key slots: every one is tried ---
qemu-img amend "${SEC[@]}" --object "secret,id=sec1,file=$W/other" --image-opts "$(opts "$img")" \
    -o encrypt.state=active,encrypt.new-secret=sec1,encrypt.keyslot=5,encrypt.iter-time=10
check "key slots: the second passphrase (slot 5)" \
    "$QB" --passphrase-file "$W/other" io "$img" -c "read -P 0x21 0 1M"
check "key slots: the first one still" qb io "$img" -c "read -P 0x21 0 1M"
# Progress over both slots' work (slot 0 fails, slot 5 opens): it ends at
# its total and never goes back.
out=$("$TOOL" open "$img" "$W/other")
if [[ $out =~ ^progress\ ([0-9]+)\ ([0-9]+)/([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 4 ] &&
   [ "${BASH_REMATCH[2]}" = "${BASH_REMATCH[3]}" ]; then
    pass "key slots: key derivation progress"
else
    fail "key slots: key derivation progress" "$out"
fi
qemu-img amend --object "secret,id=sec1,file=$W/other" \
    --image-opts "driver=qcow2,file.filename=$img,encrypt.key-secret=sec1" \
    -o encrypt.state=inactive,encrypt.keyslot=0
out=$(qb io "$img" -c "read 0 512" 2>&1)
if [ $? -ne 0 ] && grep -q 'wrong passphrase' <<<"$out"; then
    pass "key slots: slot 0 erased refuses the first"; else
    fail "key slots: slot 0 erased refuses the first" "$out"; fi
rm -f "$img"

# --- compressed clusters: QEMU stores them in clear and reads them so ---
img=$W/comp.qcow2
mkimg -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 "$img" 4M
qio "$img" -c "write -c -P 0x31 0 64k" -c "write -P 0x32 64k 64k" >/dev/null
qemu-img convert "${SEC[@]}" --image-opts "$(opts "$img")" -O raw "$W/comp.ref"
qb convert "$img" "$W/comp.qb"
if cmp -s "$W/comp.ref" "$W/comp.qb"; then pass "compressed: read as QEMU reads it"; else
    fail "compressed: read as QEMU reads it"; fi
out=$(qb io "$img" -c "write -c -P 0x33 128k 64k" 2>&1)
if [ $? -ne 0 ] && grep -q 'cannot be written into an encrypted image' <<<"$out"; then
    pass "compressed: writing one refused"; else fail "compressed: writing one refused" "$out"; fi

# --- an encrypted overlay over an encrypted backing file, one passphrase ---
base=$W/base.qcow2 top=$W/top.qcow2
mkimg -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 "$base" 4M
qio "$base" -c "write -P 0x41 0 2M" >/dev/null
mkimg -f qcow2 "${SEC[@]}" -b "$base" -F qcow2 \
    -o encrypt.format=aes,encrypt.key-secret=sec0 "$top" 4M
check "chain: qcowboot writes the overlay" qb io "$top" -c "write -P 0x42 1000 3000"
qemu-img convert "${SEC[@]}" --image-opts \
    "driver=qcow2,file.filename=$top,encrypt.key-secret=sec0,backing.encrypt.key-secret=sec0" \
    -O raw "$W/chain.ref"
qb convert "$top" "$W/chain.qb"
if cmp -s "$W/chain.ref" "$W/chain.qb"; then pass "chain: convert = qemu-img convert"; else
    fail "chain: convert = qemu-img convert"; fi

# --- errors: clear words, a failing exit status, no sanitizer findings ---
lk=$W/err.qcow2
mkimg -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 "$lk" 4M
qio "$lk" -c "write -P 0x51 0 64k" >/dev/null
# refused NAME REGEX IMAGE [PASSFILE]: convert fails saying REGEX and writes no output.
refused() {
    local name=$1 re=$2 image=$3 pf=${4:-$W/pass} out
    rm -f "$W/out.raw"
    out=$("$QB" --passphrase-file "$pf" convert "$image" "$W/out.raw" 2>&1)
    local rc=$?
    if [ $rc -ne 0 ] && grep -Eq "$re" <<<"$out" && no_sanitizer <(echo "$out") &&
       [ ! -e "$W/out.raw" ]; then
        pass "$name"
    else
        fail "$name" "exit $rc: $out"
    fi
}
out=$("$QB" convert "$lk" "$W/out.raw" 2>&1)
if [ $? -ne 0 ] && grep -q 'encrypted: passphrase required (LUKS encryption)' <<<"$out"; then
    pass "no --passphrase-file: passphrase required"; else
    fail "no --passphrase-file: passphrase required" "$out"; fi
refused "wrong passphrase" 'wrong passphrase' "$lk" "$W/wrong"
: >"$W/empty"
out=$("$QB" --passphrase-file "$W/empty" info "$lk" 2>&1)
if [ $? -ne 0 ] && grep -q 'a passphrase has 1 to' <<<"$out"; then
    pass "empty passphrase file refused"; else fail "empty passphrase file refused" "$out"; fi
out=$("$QB" --passphrase-file "$W/missing" info "$lk" 2>&1)
if [ $? -ne 0 ] && grep -q 'passphrase-file' <<<"$out"; then
    pass "missing passphrase file refused"; else fail "missing passphrase file refused" "$out"; fi

# damaged COPY NAME PYTHON: a copy of $lk changed by PYTHON (f: the file
# as a bytearray, L: the LUKS header's offset, be32(off, v) writes).
damaged() {
    local copy=$W/$1.qcow2
    cp "$lk" "$copy"
    python3 - "$copy" "$2" <<'EOF'
import struct, sys
path, code = sys.argv[1], sys.argv[2]
f = bytearray(open(path, 'rb').read())
hl = struct.unpack('>I', f[100:104])[0]
L = struct.unpack('>Q', f[hl + 8:hl + 16])[0]
def be32(off, v): f[off:off + 4] = struct.pack('>I', v)
def be64(off, v): f[off:off + 8] = struct.pack('>Q', v)
def text(off, s): f[off:off + 32] = s.encode().ljust(32, b'\0')
exec(code)
open(path, 'wb').write(f)
EOF
    echo "$copy"
}
slot0=208
refused "key slot: damaged key material reads as a wrong passphrase" 'wrong passphrase' \
    "$(damaged material 'f[L+4096+100] ^= 1')"
refused "key slot: bad active field" 'key slot 0: field active .*neither enabled nor disabled' \
    "$(damaged active "be32(L+$slot0, 0x12345678)")"
refused "key slot: zero iterations" 'key slot 0: field iterations .* is 0' \
    "$(damaged iters "be32(L+$slot0+4, 0)")"
refused "key slot: huge iterations" 'key slot 0: field iterations .* is 4294967295' \
    "$(damaged hugeiters "be32(L+$slot0+4, 0xffffffff)")"
refused "key slot: zero stripes" 'key slot 0: field stripes .* is 0' \
    "$(damaged stripes "be32(L+$slot0+44, 0)")"
refused "key slot: key material outside the header area" 'key slot 0: key material .* outside' \
    "$(damaged kmoff "be32(L+$slot0+40, 0x7fffffff)")"
refused "key slot: key material over the header" 'key slot 0: key material .* outside' \
    "$(damaged kmzero "be32(L+$slot0+40, 0)")"
refused "key slots: none active" 'no active key slot' \
    "$(damaged noslot "be32(L+$slot0, 0xdead)")"
refused "LUKS header: bad magic" 'no LUKS header at file offset .*bad magic' \
    "$(damaged magic 'f[L] = 0')"
refused "LUKS header: version 2" 'LUKS header version .* is 2; only LUKS1' \
    "$(damaged version 'f[L+7] = 2')"
refused "LUKS header: unterminated cipher name" 'field cipher-name .* not terminated' \
    "$(damaged cname "f[L+8:L+40] = b'a' * 32")"
refused "LUKS header: zero master key digest iterations" 'mk-digest-iter .* is 0' \
    "$(damaged mkiter 'be32(L+164, 0)')"
refused "LUKS header: damaged master key digest" 'wrong passphrase' \
    "$(damaged digest 'f[L+112] ^= 0xff')"
refused "crypto extension: offset past the file" 'lies past the end of the file' \
    "$(damaged extoff 'be64(hl+8, 0x7fff0000)')"
refused "crypto extension: offset not a cluster" 'is not a cluster boundary' \
    "$(damaged extalign 'be64(hl+8, L+512)')"
refused "crypto extension: too short for a header" 'smaller than a LUKS header' \
    "$(damaged extlen 'be64(hl+16, 100)')"
refused "crypto extension: missing" 'without the encryption header extension' \
    "$(damaged noext 'be32(hl, 0x12345678)')"
refused "unsupported cipher: serpent" "LUKS cipher 'serpent' is not supported" \
    "$(damaged serpent "text(L+8, 'serpent')")"
refused "unsupported cipher mode: ecb" "cipher mode 'ecb' is not supported" \
    "$(damaged ecb "text(L+40, 'ecb')")"
refused "unsupported IV generator: benbi" "IV generator in 'cbc-benbi' is not supported" \
    "$(damaged benbi "text(L+40, 'cbc-benbi')")"
refused "unsupported ESSIV hash: sha1" "ESSIV hash 'sha1' is not supported" \
    "$(damaged essivsha1 "text(L+40, 'cbc-essiv:sha1')")"
refused "unsupported hash: ripemd160" "LUKS hash 'ripemd160' is not supported" \
    "$(damaged ripemd "text(L+72, 'ripemd160')")"
refused "unsupported key size: 20 bytes" 'key size 20 bytes is not supported' \
    "$(damaged keysize 'be32(L+108, 20)')"
refused "unknown crypt_method 3" 'crypt_method .* is 3; unknown' \
    "$(damaged method3 'be32(32, 3)')"

# A wrong passphrase never reaches the data: no output file, nothing written.
sum=$(md5sum <"$lk")
"$QB" --passphrase-file "$W/wrong" io "$lk" -c "write -P 0x61 0 512" >/dev/null 2>&1
if [ "$(md5sum <"$lk")" = "$sum" ]; then pass "wrong passphrase: the image is not touched"; else
    fail "wrong passphrase: the image is not touched"; fi

finish
