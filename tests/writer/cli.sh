#!/usr/bin/env bash
# The writer's commands through the CLI: io, commit, snapshot -c/-a/-d and
# check -r. First their option parsing and error paths (bad sizes, unknown
# commands, pattern mismatches, writes refused on a read-only open, ranges
# past the end), then what they write, judged by qemu-img and qemu-io:
# patterns read back with `qemu-io -c 'read -P'`, commits compared with a
# raw reference, repaired and snapshotted images checked clean by
# `qemu-img check`. Every qcowboot run must be free of sanitizer reports.
#
# Runs $QB (default build/host-san/qcowboot) in a temporary directory under
# build/tests/ (QB_KEEP=1 keeps it).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QB=${QB:-$ROOT/build/host-san/qcowboot}
. "$ROOT/tests/lib.sh"

export TZ=UTC
mkdir -p "$QB_ROOT/build/tests"
T=$(mktemp -d "$QB_ROOT/build/tests/writer-cli.XXXXXX")
if [ "${QB_KEEP:-0}" = 1 ]; then echo "files kept in $T"; else trap 'rm -rf "$T"' EXIT; fi
cd "$T" || exit 1
O=$T/out
mkdir -p "$O"

require_qb

# ---------------------------------------------------------------------------
# Helpers

# qb ARGS...: runs qcowboot with stdout in $O/out, stderr in $O/err; returns
# its exit status (124: timeout).
qb() { timeout 120 "$QB" "$@" >"$O/out" 2>"$O/err"; }
sanitizer_report() {
    grep -m1 -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$O/err"
}
short() { head -c 300 "$1" | tr '\n' '|'; }

# expect NAME RC OUT ERR ARGS...: passes when `qcowboot ARGS` exits RC, its
# stdout contains the line part OUT and its stderr ERR (each may be empty:
# anything), and no sanitizer report appears.
expect() {
    local name=$1 want=$2 out=$3 err=$4 rc rep; shift 4
    qb "$@"; rc=$?
    if rep=$(sanitizer_report); then fail "$name" "sanitizer: $rep"; return 1; fi
    if [ "$rc" -ne "$want" ]; then
        fail "$name" "exit $rc, wanted $want: out: $(short $O/out) err: $(short $O/err)"; return 1
    fi
    if [ -n "$out" ] && ! grep -qF -- "$out" "$O/out"; then
        fail "$name" "stdout lacks '$out': $(short $O/out)"; return 1
    fi
    if [ -n "$err" ] && ! grep -qF -- "$err" "$O/err"; then
        fail "$name" "stderr lacks '$err': $(short $O/err)"; return 1
    fi
    pass "$name"
}

# qio NAME IMG CMD...: passes when qemu-io (read-only) runs every -c CMD on
# IMG without reporting a failure (a pattern mismatch included).
qio() {
    local name=$1 img=$2 args=() c out; shift 2
    for c in "$@"; do args+=(-c "$c"); done
    if out=$(qemu-io -r "${args[@]}" "$img" 2>&1) && ! grep -qE 'failed|error' <<<"$out"; then
        pass "$name"
    else
        fail "$name" "qemu-io: $(head -c 300 <<<"$out" | tr '\n' '|')"
    fi
}

# clean NAME IMG: passes when qemu-img check finds no errors and no leaks.
clean() {
    local out
    if out=$(qemu-img check "$2" 2>&1); then pass "$1"; else fail "$1" "$(tr '\n' '|' <<<"$out")"; fi
}

# same_file NAME A B
same_file() {
    local why
    if why=$(cmp "$2" "$3" 2>&1); then pass "$1"; else fail "$1" "$why"; fi
}

# setref IMG CLUSTER VALUE: sets the 16-bit refcount of host cluster CLUSTER
# in the image's first refcount block (the images here are small).
setref() {
    python3 - "$@" <<'EOF'
import struct, sys
path, cluster, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, 'r+b') as f:
    h = f.read(104)
    assert struct.unpack('>I', h[96:100])[0] == 4, 'refcount_order must be 4'
    reftable = struct.unpack('>Q', h[48:56])[0]
    f.seek(reftable)
    block = struct.unpack('>Q', f.read(8))[0]
    f.seek(block + 2 * cluster)
    f.write(struct.pack('>H', value))
EOF
}

# like_qemu NAME IMG ARGS...: runs `check ARGS` on a copy of IMG, and
# `qemu-img check` with the same ARGS (--json as --output=json) on another;
# passes when the exit codes, stdout and stderr agree, leaving out the image
# end offset (where a repair puts the new refcount structures is the
# writer's choice). qcowboot's copy is left in q.qcow2.
no_end() { grep -v -e '^Image end offset: ' -e '"image-end-offset": ' "$1"; }
like_qemu() {
    local name=$1 img=$2 rc qrc rep; shift 2
    cp "$img" q.qcow2
    qemu-img check "${@/--json/--output=json}" q.qcow2 >"$O/q.out" 2>"$O/q.err"; qrc=$?
    cp "$img" q.qcow2
    qb check "$@" q.qcow2; rc=$?
    if rep=$(sanitizer_report); then fail "$name" "sanitizer: $rep"; return; fi
    if [ $rc = $qrc ] && cmp -s <(no_end "$O/out") <(no_end "$O/q.out") && cmp -s "$O/err" "$O/q.err"; then
        pass "$name"
    else
        fail "$name" "exit $rc, qemu-img $qrc: out: $(short $O/out) err: $(short $O/err) qemu-img: $(short $O/q.out) $(short $O/q.err)"
    fi
}

# mk NAME SIZE [qemu-img create options...]
mk() { local n=$1 s=$2; shift 2; rm -f "$n"; qemu-img create -q -f qcow2 "$@" "$n" "$s"; }

# ---------------------------------------------------------------------------
# io: options and errors (no writes reach the image)

mk p.qcow2 1M
qemu-io -c 'write -P 0x5a 0 64k' p.qcow2 >/dev/null
sum_p=$(md5sum <p.qcow2)
unchanged() {
    if [ "$(md5sum <p.qcow2)" = "$sum_p" ]; then pass "$1"; else fail "$1" "p.qcow2 changed"; fi
}

expect "io --help" 0 "Usage: io" "" io --help
expect "io: no command" 1 "" "no command given" io p.qcow2
expect "io: no image" 1 "" "no image given" io -c flush
expect "io: two images" 1 "" "one image only" io p.qcow2 p.qcow2 -c flush
expect "io: unknown command" 1 "" "unknown command 'bogus'" io p.qcow2 -c bogus
expect "io: empty command" 1 "" "empty command" io p.qcow2 -c ' '
expect "io: bad length suffix" 1 "" "bad length '1x'" io p.qcow2 -c 'read 0 1x'
expect "io: bad offset" 1 "" "bad offset 'zz'" io p.qcow2 -c 'read zz 4k'
expect "io: bad hex" 1 "" "bad offset '0x'" io p.qcow2 -c 'read 0x 4k'
expect "io: negative length" 1 "" "bad length '-4'" io p.qcow2 -c 'read 0 -4'
expect "io: size overflow" 1 "" "bad length" io p.qcow2 -c 'read 0 99999999999999999999'
expect "io: suffix overflow" 1 "" "bad length" io p.qcow2 -c 'read 0 99999999999E'
expect "io: missing LEN" 1 "" "read needs OFF and LEN" io p.qcow2 -c 'read 0'
expect "io: extra operand" 1 "" "write needs OFF and LEN" io p.qcow2 -c 'write 0 4k 4k'
expect "io: flush takes none" 1 "" "flush takes no arguments" io p.qcow2 -c 'flush 0'
expect "io: unknown read option" 1 "" "unknown option '-z'" io p.qcow2 -c 'read -z 0 4k'
expect "io: -P too big" 1 "" "-P needs a byte value (0 to 255), not '256'" io p.qcow2 -c 'read -P 256 0 4k'
expect "io: -P suffix" 1 "" "-P needs a byte value" io p.qcow2 -c 'read -P 1k 0 4k'
expect "io: -P missing" 1 "" "option '-P' needs an argument" io p.qcow2 -c 'read -P'
expect "io: -z with -P" 1 "" "-z and -P cannot be combined" io p.qcow2 -c 'write -z -P 1 0 4k'
expect "io: -z with -c" 1 "" "-z and -c cannot be combined" io p.qcow2 -c 'write -z -c 0 64k'
expect "io: unknown io option" 1 "" "unknown option '-x'" io -x p.qcow2 -c flush
expect "io: too long command" 1 "" "command too long" io p.qcow2 -c "read $(printf '0%.0s' $(seq 300)) 1"
expect "io: -r refuses write" 1 "" "write: the image is opened read-only (-r)" io -r p.qcow2 -c 'write 0 4k'
expect "io: -r after image refuses discard" 1 "" "discard: the image is opened read-only (-r)" \
    io p.qcow2 -r -c 'discard 0 64k'
expect "io: a bad second command stops the first" 1 "" "unknown command 'wrte'" \
    io p.qcow2 -c 'write -P 1 0 4k' -c 'wrte 0 4k'
if grep -q wrote "$O/out"; then fail "io: nothing written before the error is found" "$(short $O/out)"
else pass "io: nothing written before the error is found"; fi
unchanged "io: image unchanged by refused commands"
expect "io: missing file" 1 "" "" io -r nosuch.qcow2 -c 'read 0 1'

# io: reads (these need no writer)
expect "io: read -P matches" 0 "read 65536/65536 bytes at offset 0" "" \
    io -r p.qcow2 -c 'read -P 0x5a 0 64k'
expect "io: read -q prints nothing" 0 "" "" io -r p.qcow2 -c 'read -q -P 90 0 64k'
if [ -s "$O/out" ]; then fail "io: -q output empty" "$(short $O/out)"; else pass "io: -q output empty"; fi
expect "io: hex and suffixes" 0 "read 4096/4096 bytes at offset 65536" "" \
    io -r p.qcow2 -c 'read -P 0 0x10000 4k' -c 'read 1K 0x400' -c 'read 0 1M'
grep -qx "read 1024/1024 bytes at offset 1024" "$O/out" && grep -qx "read 1048576/1048576 bytes at offset 0" "$O/out" \
    && pass "io: every command reports" || fail "io: every command reports" "$(short $O/out)"
expect "io: options around the image" 0 "read 4096/4096 bytes at offset 0" "" \
    io -f qcow2 p.qcow2 -r -c 'read -P 0x5a 0 4k'
expect "io: pattern mismatch" 1 "Pattern verification failed at offset 0, 69632 bytes" \
    "read -P: byte at offset 65536 is 0x00, expected 0x5a" io -r p.qcow2 -c 'read -P 0x5a 0 68k' -c 'read 0 4k'
if [ "$(grep -c '^read ' "$O/out")" = 1 ]; then pass "io: mismatch stops the run"
else fail "io: mismatch stops the run" "$(short $O/out)"; fi
# The same lines as qemu-io (without its timing lines).
grep -v ' ops; ' "$O/out" >"$O/ours"
qemu-io -r -c 'read -P 0x5a 0 68k' p.qcow2 2>/dev/null | grep -v ' ops; ' >"$O/theirs"
same_file "io: mismatch lines as qemu-io's" "$O/ours" "$O/theirs"
expect "io: read past the end" 1 "" "read failed: 8192 bytes at offset 1044480 reach past the end of the virtual disk (1048576 bytes)" \
    io -r p.qcow2 -c 'read 1020k 8k'
expect "io: offset past the end" 1 "" "reach past the end" io -r p.qcow2 -c 'read 2M 0'
expect "io: read of nothing at the end" 0 "read 0/0 bytes at offset 1048576" "" io -r p.qcow2 -c 'read 1M 0'
expect "io: huge length" 1 "" "reach past the end" io -r p.qcow2 -c 'read 4k 0xffffffffffffffff'

# Longer than one 4 MiB piece: the first bad byte is named by its offset
# in the disk, not in the piece.
mk big.qcow2 10M
qemu-io -c 'write -P 0x22 0 10M' -c 'write -P 0x23 9437189 1' big.qcow2 >/dev/null
expect "io: long read verifies the last piece" 1 "" "byte at offset 9437189 is 0x23, expected 0x22" \
    io -r big.qcow2 -c 'read -P 0x22 0 10M'
expect "io: long read matches" 0 "read 9437189/9437189 bytes at offset 0" "" \
    io -r big.qcow2 -c 'read -P 0x22 0 9437189'

# A raw image, named as raw.
python3 -c "open('r.raw','wb').write(bytes([7])*65536)"
expect "io: raw has no compressed writes" 1 "" "compressed writes need a qcow2 image" io -f raw r.raw -c 'write -c 0 64k'
expect "io: raw read -P" 0 "read 65536/65536 bytes at offset 0" "" io -r -f raw r.raw -c 'read -P 7 0 64k'

# ---------------------------------------------------------------------------
# commit, snapshot, check -r: options and errors

expect "commit --help" 0 "Usage: commit" "" commit --help
expect "commit: no image" 1 "" "Usage: commit" commit
expect "commit: unknown option" 1 "" "unknown option '-b'" commit -b base p.qcow2
expect "commit: no backing file" 1 "" "p.qcow2: image does not have a backing file" commit p.qcow2
unchanged "commit: image without backing unchanged"
mk small.qcow2 1M
qemu-img create -q -f qcow2 -b small.qcow2 -F qcow2 grown.qcow2 2M
sum_small=$(md5sum <small.qcow2)
expect "commit: smaller backing file" 1 "" "is smaller than the image (2097152 bytes); growing it is not supported" \
    commit grown.qcow2
if [ "$(md5sum <small.qcow2)" = "$sum_small" ]; then pass "commit: smaller backing untouched"
else fail "commit: smaller backing untouched" "small.qcow2 changed"; fi

expect "snapshot --help" 0 "Usage: snapshot" "" snapshot --help
expect "snapshot: no action" 1 "" "Usage: snapshot" snapshot p.qcow2
expect "snapshot: mixed actions" 1 "" "cannot mix '-l', '-a', '-c', '-d'" snapshot -c a -d b p.qcow2
expect "snapshot: -c needs a name" 1 "" "option '-c' needs an argument" snapshot -c
expect "snapshot: raw has none" 1 "" "format raw has no internal snapshots" snapshot -f raw -c x r.raw
expect "snapshot -a: not found" 1 "" "Could not apply snapshot 'nope'" snapshot -a nope p.qcow2
expect "snapshot -d: not found" 1 "" "Could not delete snapshot 'nope'" snapshot -d nope p.qcow2
clean "snapshot: failed actions leave the image clean" p.qcow2

expect "check --help" 0 "-r leaks" "" check --help
expect "check: bad -r" 1 "" "unknown value for -r (expecting 'leaks' or 'all'): some" check -r some p.qcow2
expect "check: -r needs a value" 1 "" "option '-r' needs an argument" check -r
expect "check -r: raw" 1 "" "format raw has no metadata to check" check -r all -f raw r.raw
expect "check -r on a clean image" 0 "No errors were found on the image." "" check -r all p.qcow2
expect "check --repair=leaks on a clean image" 0 "No errors were found on the image." "" check --repair=leaks p.qcow2

# An image whose data cluster is shared with a snapshot but counted once:
# a corruption that -r leaks does not repair. qcowboot prints what qemu-img
# prints, on both streams, with its exit code.
mk shared.qcow2 1M
qemu-io -c 'write -P 0x11 0 64k' shared.qcow2 >/dev/null
qemu-img snapshot -c s1 shared.qcow2
data_cluster=$(( $(qemu-img map --output=json shared.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["offset"])') / 65536 ))
setref shared.qcow2 "$data_cluster" 1
like_qemu "check -r leaks: corruption left, as qemu-img" shared.qcow2 -r leaks
like_qemu "check -r leaks --json: corruption left, as qemu-img" shared.qcow2 -r leaks --json

# ---------------------------------------------------------------------------
# What the writer writes, judged by qemu-io and qemu-img

mk w.qcow2 8M
expect "io: writes" 0 "wrote 65536/65536 bytes at offset 0" "" io w.qcow2 \
    -c 'write -P 0x11 0 64k' -c 'write 64k 64k' -c 'write -P 0x33 1000 5000' -c flush \
    -c 'write -P 0x44 1M 3M' -c 'read -P 0x33 1000 5000'
qio "io: writes read back by qemu-io" w.qcow2 'read -P 0x11 0 1000' 'read -P 0x33 1000 5000' \
    'read -P 0x11 6000 59536' 'read -P 0xcd 64k 64k' 'read -P 0 128k 896k' 'read -P 0x44 1M 3M' \
    'read -P 0 4M 4M'
clean "io: written image clean" w.qcow2
expect "io: write past the end" 1 "" "write failed: 2097152 bytes at offset 7340032 reach past the end" \
    io w.qcow2 -c 'write -P 0x44 7M 2M'
qio "io: nothing written past the end" w.qcow2 'read -P 0 4M 4M'

expect "io: write -z" 0 "wrote 131072/131072 bytes at offset 0" "" io w.qcow2 -c 'write -z 0 128k'
qio "io: zeroes read back" w.qcow2 'read -P 0 0 128k' 'read -P 0x44 1M 3M'
expect "io: discard" 0 "discard 1048576/1048576 bytes at offset 1048576" "" io w.qcow2 -c 'discard 1M 1M'
qio "io: discarded clusters read zeros" w.qcow2 'read -P 0 1M 1M' 'read -P 0x44 2M 2M'
expect "io: write -c" 0 "wrote 131072/131072 bytes at offset 4194304" "" io w.qcow2 -c 'write -c -P 0x55 4M 128k'
qio "io: compressed clusters read back" w.qcow2 'read -P 0x55 4M 128k' 'read -P 0 4224k 3968k' \
    'read -P 0x44 2M 2M'
if qemu-img check --output=json w.qcow2 | grep -q '"compressed-clusters": 2,'; then pass "io: write -c compresses"
else fail "io: write -c compresses" "qemu-img check counts no 2 compressed clusters"; fi
expect "io: write -c unaligned" 1 "" "must be multiples of the cluster size (65536)" io w.qcow2 -c 'write -c 4k 64k'
clean "io: image clean after zeroes, discard, compression" w.qcow2

# Partial clusters of an overlay are filled from the backing file.
mk base.qcow2 1M
qemu-io -c 'write -P 0x66 0 1M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
expect "io: write into an overlay" 0 "wrote 100/100 bytes at offset 70000" "" io top.qcow2 -c 'write -P 0x77 70000 100'
qio "io: overlay keeps the backing data around a write" top.qcow2 'read -P 0x66 0 70000' \
    'read -P 0x77 70000 100' 'read -P 0x66 70100 978476'
qio "io: backing file untouched" base.qcow2 'read -P 0x66 0 1M'

# A raw image written.
expect "io: raw write" 0 "wrote 3/3 bytes at offset 5" "" io -f raw r.raw -c 'write -P 9 5 3'
python3 -c "
d = open('r.raw','rb').read()
assert d == bytes([7])*5 + bytes([9])*3 + bytes([7])*(65536-8), 'raw contents'" 2>"$O/py" \
    && pass "io: raw contents" || fail "io: raw contents" "$(short $O/py)"

# commit: the backing file ends up as the overlay read; the overlay still
# reads the same. It is emptied unless -d: every cluster unallocated, so
# that it reads from the backing file again.
commit_case() {
    local name=$1 compat=$2 keep=$3 emptied=$4 warning=${5:-}
    mk cb.qcow2 2M -o compat=$compat
    qemu-io -c 'write -P 0xa1 0 2M' cb.qcow2 >/dev/null
    qemu-img create -q -f qcow2 -o compat=$compat -b cb.qcow2 -F qcow2 co.qcow2
    qemu-io -c 'write -P 0xb2 64k 64k' -c 'write -P 0xb3 300000 1234' -c 'write -z 1M 128k' \
        -c 'write -c -P 0xb4 1536k 64k' co.qcow2 >/dev/null
    qemu-img convert -O raw co.qcow2 ref.raw
    expect "$name" 0 "Image committed." "$warning" commit $keep co.qcow2 || return
    local why
    if why=$(qemu-img compare -f qcow2 -F raw cb.qcow2 ref.raw 2>&1); then pass "$name: backing file as the overlay read"
    else fail "$name: backing file as the overlay read" "$why"; fi
    if why=$(qemu-img compare -f qcow2 -F raw co.qcow2 ref.raw 2>&1); then pass "$name: overlay reads the same"
    else fail "$name: overlay reads the same" "$why"; fi
    clean "$name: backing file clean" cb.qcow2
    clean "$name: overlay clean" co.qcow2
    local own
    own=$(qemu-img map --output=json co.qcow2 | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["depth"] == 0 and e["present"]))')
    if [ "$emptied" = yes ]; then
        [ "$own" = 0 ] && pass "$name: overlay emptied" || fail "$name: overlay emptied" "$own ranges left"
    else
        [ "$own" -gt 0 ] && pass "$name: overlay keeps its clusters" || fail "$name: overlay keeps its clusters" "none left"
    fi
}
commit_case "commit (v2)" 0.10 "" yes
commit_case "commit -d (v2)" 0.10 "-d" no
commit_case "commit (v3)" 1.1 "" yes
commit_case "commit -d (v3)" 1.1 "-d" no
expect "commit -q" 0 "" "" commit -q -d co.qcow2
[ -s "$O/out" ] && fail "commit -q prints nothing" "$(short $O/out)" || pass "commit -q prints nothing"

# check -r: leaks repaired, reported as qemu-img reports them; the result
# checked by qemu-img.
mk leak.qcow2 1M
qemu-io -c 'write -P 0x11 0 128k' leak.qcow2 >/dev/null
setref leak.qcow2 0 2            # the header cluster counted twice
end=$(stat -c %s leak.qcow2)
truncate -s $((end + 65536)) leak.qcow2
setref leak.qcow2 $((end / 65536)) 1   # a cluster of the file that nothing uses
qemu-img check leak.qcow2 2>/dev/null | grep -q '^2 leaked clusters were found' \
    && pass "check: the leaky image has 2 leaks" || fail "check: the leaky image has 2 leaks" "qemu-img disagrees"
for args in "-r leaks" "-r all" "-r all --json"; do
    like_qemu "check $args: leaks repaired, reported as qemu-img" leak.qcow2 $args
    clean "check $args: leaks: qemu-img finds it clean" q.qcow2
done
like_qemu "check -r all: corruption repaired, reported as qemu-img" shared.qcow2 -r all
grep -q "Repairing cluster $data_cluster refcount=1 reference=2" "$O/err" \
    && pass "check -r all: the corruption named" || fail "check -r all: the corruption named" "$(short $O/err)"
clean "check -r all: corruption: qemu-img finds it clean" q.qcow2
qio "check -r all: data intact" q.qcow2 'read -P 0x11 0 64k'
like_qemu "check -r all --json: corruption repaired, reported as qemu-img" shared.qcow2 -r all --json

# A COPIED flag missing on a data cluster with refcount 1: a corruption
# that -r leaks repairs too, as nothing else is wrong.
mk copied.qcow2 1M
qemu-io -c 'write -P 0x11 0 128k' copied.qcow2 >/dev/null
python3 - copied.qcow2 <<'EOF'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    h = f.read(104)
    l1 = struct.unpack('>Q', h[40:48])[0]
    f.seek(l1)
    l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
    f.seek(l2)
    e = struct.unpack('>Q', f.read(8))[0]
    f.seek(l2)
    f.write(struct.pack('>Q', e & ~(1 << 63)))
EOF
for args in "-r leaks" "-r all" "-r leaks --json"; do
    like_qemu "check $args: COPIED flag repaired, reported as qemu-img" copied.qcow2 $args
    clean "check $args: COPIED flag: qemu-img finds it clean" q.qcow2
done

# A leak and a corruption: -r leaks repairs the leak and leaves the
# corruption, which the check of the repaired image still reports.
cp shared.qcow2 both.qcow2
setref both.qcow2 0 2
like_qemu "check -r leaks: leak repaired, corruption left, as qemu-img" both.qcow2 -r leaks
like_qemu "check -r all: both repaired, as qemu-img" both.qcow2 -r all
clean "check -r all: leak and corruption: qemu-img finds it clean" q.qcow2

# snapshot -c/-a/-d: what qemu-img lists, and clean images.
mk s.qcow2 1M
qemu-io -c 'write -P 1 0 64k' s.qcow2 >/dev/null
expect "snapshot -c" 0 "" "" snapshot -c first s.qcow2
qemu-io -c 'write -P 2 0 64k' s.qcow2 >/dev/null
expect "snapshot -c again" 0 "" "" snapshot -c second s.qcow2
expect "snapshot -c duplicate name (qemu-img allows it)" 0 "" "" snapshot -c second s.qcow2
clean "snapshot -c: clean" s.qcow2
names() { qemu-img snapshot -l "$1" | awk 'NR > 2 { print $1, $2 }' | tr '\n' ' '; }
[ "$(names s.qcow2)" = "1 first 2 second 3 second " ] && pass "snapshot -c: qemu-img lists them" \
    || fail "snapshot -c: qemu-img lists them" "$(names s.qcow2)"
qb snapshot -l s.qcow2
qemu-img snapshot -l s.qcow2 >"$O/q.out"
same_file "snapshot -l as qemu-img's" "$O/out" "$O/q.out"
expect "snapshot -a" 0 "" "" snapshot -a first s.qcow2
qio "snapshot -a: the disk as it was" s.qcow2 'read -P 1 0 64k'
clean "snapshot -a: clean" s.qcow2
expect "snapshot -d by name" 0 "" "" snapshot -d first s.qcow2
expect "snapshot -d by id" 0 "" "" snapshot -d 3 s.qcow2
[ "$(names s.qcow2)" = "2 second " ] && pass "snapshot -d: qemu-img lists what is left" \
    || fail "snapshot -d: qemu-img lists what is left" "$(names s.qcow2)"
clean "snapshot -d: clean" s.qcow2
qio "snapshot -d: the disk unchanged" s.qcow2 'read -P 1 0 64k'
expect "snapshot -a the rest" 0 "" "" snapshot -a second s.qcow2
qio "snapshot -a: second state" s.qcow2 'read -P 2 0 64k'
clean "snapshot: clean at the end" s.qcow2

finish
