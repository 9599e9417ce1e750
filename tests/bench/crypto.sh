#!/usr/bin/env bash
# Encrypted images: decryption speed of `qcowboot convert` against
# `qemu-img convert` on the same images in the same run, and the time the
# key derivation (PBKDF2) takes to open a LUKS image qemu-img made with its
# default iteration time. Never fails on timing; it fails when a run fails
# or an output differs from qemu-img's.
#
#   tests/bench/crypto.sh
#
# Environment: QB (default build/host/qcowboot), BENCH_RUNS (3: each tool
# runs that many times, interleaved, best kept), BENCH_CRYPTO_MIB (256: the
# virtual disk, all of it data), BENCH_WORK (directory; default a new one in
# /dev/shm when it has room, else build/bench/crypto-work).
#
# Cases (random data, so that no range reads as zeros; 64 KiB clusters):
#   luks-xts    LUKS aes-256-xts-plain64 (qemu-img's default)
#   luks-cbc    LUKS aes-256-cbc-essiv:sha256
#   aes         legacy qcow2 AES (aes-128-cbc-plain64)
# The throughput images have encrypt.iter-time=10, so the key derivation is
# a few milliseconds of each run. Ratio: qemu-img time / qcowboot time (>1:
# qcowboot is faster). The AES implementation qcowboot used is printed.
#
# PBKDF2: a LUKS image made by qemu-img with its default iter-time (2 s of
# QEMU's own PBKDF2 on this machine, measured when the image is made); the
# time of `qcowboot info` on it (the open derives the slot key and checks
# the master key digest) against `qemu-io -c 'read 0 512'` (QEMU's open does
# the same), best of BENCH_RUNS.
set -u
QB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$QB_ROOT/tests/lib.sh"
QB=${QB:-$QB_ROOT/build/host/qcowboot}
RUNS=${BENCH_RUNS:-3}
MIB=${BENCH_CRYPTO_MIB:-256}

die() { echo "bench-crypto: $*" >&2; exit 1; }
say() { echo "bench-crypto: $*" >&2; }
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || die "qemu-img/qemu-io missing"
[ -x "$QB" ] || die "$QB is missing (make build/host/qcowboot)"

MADE_WORK=0
if [ -n "${BENCH_WORK:-}" ]; then
    W=$BENCH_WORK
elif [ "$(df --output=avail -B1M /dev/shm 2>/dev/null | tail -n 1)" -gt $((MIB * 5 + 512)) ] 2>/dev/null; then
    W=$(mktemp -d /dev/shm/qb-cbench.XXXXXX) && MADE_WORK=1
else
    W=$QB_ROOT/build/bench/crypto-work
fi
mkdir -p "$W" || die "cannot make $W"
W=$(cd "$W" && pwd)
cleanup() {
    rm -f "$W"/*.qcow2 "$W"/*.raw "$W"/pass "$W"/*.err "$W"/cpu.out
    [ $MADE_WORK = 1 ] && rmdir "$W" 2>/dev/null
}
trap cleanup EXIT
cd "$W" || exit 1

printf %s 'bench passphrase' >pass
SEC=(--object "secret,id=sec0,file=$W/pass")
opts() { echo "driver=qcow2,file.filename=$W/$1,encrypt.key-secret=sec0"; }

say "preparing ${MIB} MiB of random data and the encrypted images"
head -c $((MIB << 20)) /dev/urandom >data.raw || die "cannot write data.raw"
CASES=(luks-xts luks-cbc aes)
declare -A CREATE=(
    [luks-xts]="encrypt.format=luks,encrypt.iter-time=10"
    [luks-cbc]="encrypt.format=luks,encrypt.iter-time=10,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256"
    [aes]="encrypt.format=aes"
)
for c in "${CASES[@]}"; do
    qemu-img convert "${SEC[@]}" -f raw -O qcow2 -o "${CREATE[$c]},encrypt.key-secret=sec0" \
        data.raw $c.qcow2 || die "qemu-img convert to $c.qcow2"
done

now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }
# timed OUT CMD...: prints "WALL_US CPU_US" of CMD, or "-1 -1" on failure.
timed() {
    local out=$1 s e u y; shift
    s=$(now_us)
    if ! /usr/bin/time -f '%U %S' -o cpu.out "$@" >/dev/null 2>"$out.err"; then
        say "failed: $* ($(head -c 300 "$out.err"))"
        echo "-1 -1"; return
    fi
    e=$(now_us)
    read -r u y <cpu.out
    echo "$((e - s)) $(awk -v u="$u" -v y="$y" 'BEGIN { printf "%d", (u + y) * 1e6 }')"
}
best() {
    printf '%s\n' "$@" | awk '$1 >= 0 { if (!k++ || $1 < w) w = $1; if (k == 1 || $2 < c) c = $2 }
        END { if (k) print w, c; else print "-1 -1" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }
rate() { awk -v us="$1" -v m="$MIB" 'BEGIN { if (us > 0) printf "%.0f", m / (us / 1e6); else print "-" }'; }

declare -A T_QB T_QEMU
for c in "${CASES[@]}"; do
    qb=() qe=()
    for i in $(seq 1 "$RUNS"); do
        qbcmd=("$QB" --passphrase-file pass convert $c.qcow2 qb.raw)
        qecmd=(qemu-img convert "${SEC[@]}" --image-opts "$(opts $c.qcow2)" -O raw qemu.raw)
        if [ $((i % 2)) = 1 ]; then
            qb+=("$(timed qb "${qbcmd[@]}")"); qe+=("$(timed qemu "${qecmd[@]}")")
        else
            qe+=("$(timed qemu "${qecmd[@]}")"); qb+=("$(timed qb "${qbcmd[@]}")")
        fi
        if [ $i = 1 ]; then
            check "$c: qcowboot's output equals the data" cmp -s qb.raw data.raw
            check "$c: qemu-img's output equals the data" cmp -s qemu.raw data.raw
        fi
        rm -f qb.raw qemu.raw
    done
    T_QB[$c]=$(best "${qb[@]}")
    T_QEMU[$c]=$(best "${qe[@]}")
    say "$c (wall_us cpu_us): qcowboot ${qb[*]}; qemu-img ${qe[*]}"
done

# PBKDF2 of a default qemu-img LUKS image (making it takes QEMU's 2 s of
# iterations, plus the master key digest's).
say "making a LUKS image with qemu-img's default iteration time"
qemu-img create -q -f qcow2 "${SEC[@]}" -o encrypt.format=luks,encrypt.key-secret=sec0 \
    default.qcow2 64M || die "qemu-img create default.qcow2"
INFO=$(qemu-img info default.qcow2)
SLOT_ITERS=$(awk '/ iters:/ { print $2; exit }' <<<"$INFO")
MK_ITERS=$(awk '/master key iters:/ { print $4 }' <<<"$INFO")
kq=() kqe=()
for i in $(seq 1 "$RUNS"); do
    kq+=("$(timed kdf "$QB" --passphrase-file pass info default.qcow2)")
    kqe+=("$(timed kdfq qemu-io "${SEC[@]}" --image-opts "$(opts default.qcow2)" -c "read 0 512")")
done
T_KDF=$(best "${kq[@]}") T_KDFQ=$(best "${kqe[@]}")
say "pbkdf2 (wall_us cpu_us): qcowboot ${kq[*]}; qemu-io ${kqe[*]}"
IMPL=$(grep -q -w aes /proc/cpuinfo && echo "AES-NI (the CPU has it)" || echo "constant-time ct64")

echo
echo "qcowboot: $QB; images in $W; ${MIB} MiB of data; $RUNS runs per tool, best kept"
echo "AES in qcowboot: $IMPL"
printf '%-10s %12s %12s %10s %10s %7s %7s\n' case "qcowboot ms" "qemu-img ms" "qb MiB/s" "qemu MiB/s" ratio "cpu"
for c in "${CASES[@]}"; do
    read -r qw qc <<<"${T_QB[$c]}"
    read -r ew ec <<<"${T_QEMU[$c]}"
    printf '%-10s %12s %12s %10s %10s %7s %7s\n' "$c" $((qw / 1000)) $((ew / 1000)) "$(rate "$qw")" \
        "$(rate "$ew")" "$(ratio "$ew" "$qw")" "$(ratio "$ec" "$qc")"
done
read -r kw kc <<<"$T_KDF"
read -r ew ec <<<"$T_KDFQ"
echo
echo "PBKDF2, default qemu-img LUKS image (sha256, slot $SLOT_ITERS iterations, master key digest $MK_ITERS):"
printf '  open with qcowboot: %d ms (cpu %d ms); with qemu-io: %d ms (cpu %d ms); ratio %s\n' \
    $((kw / 1000)) $((kc / 1000)) $((ew / 1000)) $((ec / 1000)) "$(ratio "$ew" "$kw")"
finish
