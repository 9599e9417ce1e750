#!/bin/bash
# Fetches the Debian source packages of the third-party libraries, checks
# them against the SHA-256 sums pinned in tools/sources.sha256 and unpacks
# them into build/deps/src/{zlib,zstd,bearssl,libdeflate}.
#
# The system's apt configuration is left alone: a private deb-src sources
# file is derived from the machine's own Debian archive entry, and apt runs
# with its lists, cache and sources under build/deps/apt/. Files already
# downloaded and verified are not fetched again, so a re-run needs no
# network; a package already unpacked from the pinned files is skipped.
#
# Usage: tools/fetch-sources.sh [--print-sums]
#   --print-sums  download (if needed) and print the sums of the downloaded
#                 files in tools/sources.sha256 format instead of checking.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUMS=$ROOT/tools/sources.sha256
DEPS=$ROOT/build/deps
APT=$DEPS/apt
DL=$DEPS/download
SRC=$DEPS/src

# source package, version, directory under build/deps/src
PACKAGES=(
    "zlib 1:1.2.13.dfsg-1 zlib"     # the source version carries an epoch
    "libzstd 1.5.4+dfsg2-5 zstd"
    "bearssl 0.6+dfsg.1-3 bearssl"
    "libdeflate 1.14-1 libdeflate"
)
SUITE=bookworm
# The apt configuration directory whose sources are read (never written).
APT_ETC=${APT_ETC:-/etc/apt}

PRINT_SUMS=0
if [ "${1:-}" = "--print-sums" ]; then PRINT_SUMS=1; fi

die() { echo "fetch-sources: error: $*" >&2; exit 1; }
say() { echo "fetch-sources: $*"; }

[ -f "$SUMS" ] || [ "$PRINT_SUMS" = 1 ] || die "missing $SUMS"

# The pinned lines ("sha256  file") of one source package, sorted.
pinned_lines() {
    grep -E "^[0-9a-f]{64}  $(sed 's/[.+]/\\&/g' <<<"$1")_" "$SUMS" | sort || true
}

# Checks the pinned files of package $1 in the download directory.
# Returns 0 when all are present and match, 1 when some are missing;
# dies on a mismatch (a corrupt or substituted file is never used).
verify_package() {
    local name=$1 lines sum file missing=0 bad=0
    lines=$(pinned_lines "$name")
    [ -n "$lines" ] || die "no pinned sums for source package '$name' in $SUMS"
    while read -r sum file; do
        if [ ! -f "$DL/$file" ]; then
            missing=1
            continue
        fi
        local got
        got=$(sha256sum "$DL/$file" | cut -d' ' -f1)
        if [ "$got" != "$sum" ]; then
            echo "fetch-sources: SHA-256 MISMATCH for $file" >&2
            echo "fetch-sources:   expected $sum" >&2
            echo "fetch-sources:   got      $got" >&2
            bad=1
        fi
    done <<<"$lines"
    [ "$bad" = 0 ] || die "verification of $name failed; remove the bad file from $DL to fetch it again"
    return "$missing"
}

# Files apt downloaded for package $1 that are not pinned: refused.
check_unpinned() {
    local name=$1 f base
    for f in "$DL/${name}_"*; do
        [ -e "$f" ] || continue
        base=${f##*/}
        grep -qE "^[0-9a-f]{64}  $(sed 's/[.+]/\\&/g' <<<"$base")\$" "$SUMS" ||
            die "downloaded file $base has no pinned SHA-256 in $SUMS"
    done
}

# --- private apt configuration -------------------------------------------

# Prints the deb822 fields (URIs, Suites, Components, Signed-By) of the
# first enabled entry of the system's sources whose Suites include $SUITE,
# from $APT_ETC/sources.list.d/*.sources or the one-line sources.list.
system_entry() {
    local f
    for f in "$APT_ETC"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '
            function flush() {
                if (n > 0 && !found && types ~ /(^| )deb(-src)?($| )/ && enabled != "no") {
                    ns = split(suites, s, /[ \t]+/)
                    for (i = 1; i <= ns; i++) if (s[i] == suite) { found = 1; break }
                    if (found) printf "%s", out
                }
                n = 0; out = ""; types = ""; suites = ""; enabled = ""; key = ""
            }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ {                       # continuation of the previous field
                if (key == "suites") suites = suites " " $0
                if (key == "uris" || key == "suites" || key == "components" || key == "signed-by")
                    out = out $0 "\n"
                next
            }
            {
                n++
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1); sub(/^[ \t]+/, "", val); sub(/[ \t]+$/, "", val)
                if (key == "types") types = val
                else if (key == "suites") { suites = val; out = out "Suites: " val "\n" }
                else if (key == "enabled") enabled = tolower(val)
                else if (key == "uris") out = out "URIs: " val "\n"
                else if (key == "components") out = out "Components: " val "\n"
                else if (key == "signed-by") out = out "Signed-By:" (val == "" ? "" : " " val) "\n"
            }
            END { flush(); exit !found }
        ' "$f" && return 0
    done
    f=$APT_ETC/sources.list
    [ -f "$f" ] || return 1
    awk -v suite="$SUITE" '
        /^[ \t]*deb[ \t]/ {
            line = $0; sub(/#.*/, "", line); sub(/[ \t]+$/, "", line)
            signed = ""
            if (match(line, /\[[^]]*\]/)) {
                opts = substr(line, RSTART + 1, RLENGTH - 2)
                line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
                no = split(opts, o, /[ \t]+/)
                for (i = 1; i <= no; i++) if (o[i] ~ /^signed-by=/) signed = substr(o[i], 11)
            }
            nf = split(line, w, /[ \t]+/)
            if (w[1] == "") { for (i = 1; i < nf; i++) w[i] = w[i + 1]; nf-- }
            if (nf >= 4 && w[3] == suite) {
                printf "URIs: %s\nSuites: %s\nComponents:", w[2], w[3]
                for (i = 4; i <= nf; i++) printf " %s", w[i]
                printf "\n"
                if (signed != "") printf "Signed-By: %s\n", signed
                found = 1; exit 0
            }
        }
        END { exit !found }
    ' "$f"
}

APT_OPTS=()
setup_apt() {
    [ ${#APT_OPTS[@]} -eq 0 ] || return 0
    local entry
    entry=$(system_entry) ||
        die "no '$SUITE' entry of Debian's archive found in $APT_ETC/sources.list.d/*.sources or $APT_ETC/sources.list"
    mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$DL"
    { echo "Types: deb-src"; printf '%s\n' "$entry"; } >"$APT/sources.sources.new"
    if ! cmp -s "$APT/sources.sources.new" "$APT/sources.sources" 2>/dev/null; then
        mv "$APT/sources.sources.new" "$APT/sources.sources"
    else
        rm -f "$APT/sources.sources.new"
    fi
    # The system's apt.conf.d hooks (cache refreshers and cleaners) are
    # for the system's own updates: not run for this private one.
    cat >"$APT/apt.conf" <<'CONF'
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
CONF
    APT_OPTS=(
        -c "$APT/apt.conf"
        -o "Dir::Etc::SourceList=$APT/sources.sources"
        -o "Dir::Etc::SourceParts=-"
        -o "Dir::State::Lists=$APT/lists"
        -o "Dir::Cache=$APT/cache"
        -o "Dir::Cache::pkgcache="
        -o "Dir::Cache::srcpkgcache="
        -o "Acquire::Languages=none"
        -o "APT::Sandbox::User=root"
        -o "APT::Get::List-Cleanup=0"
    )
}

UPDATED=0
apt_update() {
    [ "$UPDATED" = 0 ] || return 0
    setup_apt
    say "updating the private deb-src lists"
    apt-get "${APT_OPTS[@]}" -q update >"$APT/update.log" 2>&1 || {
        cat "$APT/update.log" >&2
        die "apt-get update (private deb-src lists) failed"
    }
    UPDATED=1
}

download() {
    local name=$1 version=$2
    apt_update
    say "downloading $name $version"
    (cd "$DL" && apt-get "${APT_OPTS[@]}" -q source --download-only "$name=$version") \
        >"$APT/source-$name.log" 2>&1 || {
        cat "$APT/source-$name.log" >&2
        die "apt-get source $name=$version failed"
    }
}

# --- main ----------------------------------------------------------------

mkdir -p "$DL" "$SRC"

if [ "$PRINT_SUMS" = 1 ]; then
    for p in "${PACKAGES[@]}"; do
        read -r name version dir <<<"$p"
        download "$name" "$version"
        (cd "$DL" && sha256sum -- "${name}_"*)
    done
    exit 0
fi

for p in "${PACKAGES[@]}"; do
    read -r name version dir <<<"$p"
    stamp=$SRC/.$dir.stamp
    lines=$(pinned_lines "$name")
    # Already unpacked from exactly these pinned files: nothing to do.
    if [ -f "$stamp" ] && [ -d "$SRC/$dir" ] && [ "$(cat "$stamp")" = "$lines" ]; then
        continue
    fi
    if ! verify_package "$name"; then
        download "$name" "$version"
        verify_package "$name" || die "apt did not download every pinned file of $name $version"
    fi
    check_unpinned "$name"
    dsc=$(awk '{print $2}' <<<"$lines" | grep '\.dsc$') || die "no .dsc pinned for $name"
    say "unpacking $dsc into build/deps/src/$dir"
    rm -rf "$SRC/$dir" "$SRC/$dir.tmp" "$stamp"
    # The .dsc is authenticated by its pinned SHA-256 and dpkg-source checks
    # the tarballs against the .dsc; its OpenPGP check of the .dsc only
    # warns (the uploaders' keys are not installed) and is not relied on.
    dpkg-source --no-copy -x "$DL/$dsc" "$SRC/$dir.tmp" >"$SRC/.$dir.log" 2>&1 || {
        cat "$SRC/.$dir.log" >&2
        die "dpkg-source -x $dsc failed"
    }
    mv "$SRC/$dir.tmp" "$SRC/$dir"
    printf '%s\n' "$lines" >"$stamp"
done
