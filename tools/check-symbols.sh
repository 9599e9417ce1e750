#!/bin/bash
# Checks that freestanding objects and archives reference no symbol from
# outside an allowed set.
#
# Usage: tools/check-symbols.sh [--allow "SYM SYM ..."]... [--list] FILE...
#
# The inputs are taken as one unit: a symbol undefined in one member but
# defined (globally or weakly) by another input is resolved and not
# reported. Every remaining undefined symbol (strong or weak) must be named
# by an --allow option; otherwise the offenders are listed with the objects
# that reference them and the exit status is 1. _GLOBAL_OFFSET_TABLE_ (made
# by the linker for position-independent code) is always allowed.
#   --list  print the remaining undefined symbols, one a line, and exit 0.
# NM (default: nm) selects the nm program.
set -euo pipefail

NM=${NM:-nm}
allow=""
list=0
files=()

usage() {
    echo "usage: $0 [--allow \"SYM ...\"]... [--list] FILE..." >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --allow) [ $# -ge 2 ] || usage; allow="$allow $2"; shift 2 ;;
    --allow=*) allow="$allow ${1#--allow=}"; shift ;;
    --list) list=1; shift ;;
    --) shift; files+=("$@"); break ;;
    -*) usage ;;
    *) files+=("$1"); shift ;;
    esac
done
[ ${#files[@]} -gt 0 ] || usage
for f in "${files[@]}"; do
    [ -f "$f" ] || { echo "check-symbols: no such file: $f" >&2; exit 2; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "object<TAB>symbol" for each undefined reference; defined global symbols.
"$NM" -A -u "${files[@]}" 2>"$tmp/err" |
    awk '{ obj = $1; sub(/:$/, "", obj); print obj "\t" $NF }' | sort -u >"$tmp/undef" ||
    { cat "$tmp/err" >&2; echo "check-symbols: $NM -u failed" >&2; exit 2; }
"$NM" -A -g --defined-only "${files[@]}" 2>>"$tmp/err" |
    awk '{ print $NF }' | sort -u >"$tmp/def" ||
    { cat "$tmp/err" >&2; echo "check-symbols: $NM failed" >&2; exit 2; }

# Undefined and not resolved within the inputs: "symbol<TAB>object".
awk -F'\t' 'NR == FNR { def[$1] = 1; next }
    !($2 in def) && $2 != "_GLOBAL_OFFSET_TABLE_" { print $2 "\t" $1 }' \
    "$tmp/def" "$tmp/undef" | sort >"$tmp/ext"

if [ "$list" = 1 ]; then
    cut -f1 "$tmp/ext" | sort -u
    exit 0
fi

printf '%s\n' $allow | sort -u >"$tmp/allow"
bad=$(awk -F'\t' 'NR == FNR { ok[$1] = 1; next } !($1 in ok)' "$tmp/allow" "$tmp/ext")
if [ -n "$bad" ]; then
    echo "check-symbols: undefined symbols outside the allowed set in ${files[*]}:" >&2
    awk -F'\t' '{ refs[$1] = refs[$1] (refs[$1] == "" ? "" : ", ") $2 }
        END { for (s in refs) printf "  %s  (referenced by %s)\n", s, refs[s] }' <<<"$bad" |
        sort >&2
    echo "check-symbols: allowed: $(tr '\n' ' ' <"$tmp/allow")" >&2
    exit 1
fi
