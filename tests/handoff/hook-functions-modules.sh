# Appended to initramfs-tools' own hook-functions (from the Debian package,
# unpacked by tests/handoff/make-guest.sh) when the qcowboot hook runs for
# the test guest: the one function that needs the kernel's modules
# installed on the build machine (modprobe --show-depends) is replaced by
# one that reads modules.dep of the unpacked kernel package ($QB_KMODDIR,
# made by busybox depmod). Everything else (copy_exec, copy_file) is
# initramfs-tools' own.

# manual_add_modules NAME...: each module and what it depends on, copied to
# the same place under $DESTDIR. Built-in modules are no error.
manual_add_modules() {
    local name want path dep
    for name in "$@"; do
        want=$(printf '%s' "$name" | tr - _)
        if grep -q -E "/${name}\.ko\$|/$(printf '%s' "$name" | tr _ -)\.ko\$|/${want}\.ko\$" \
            "$QB_KMODDIR/modules.builtin" 2>/dev/null; then
            continue
        fi
        path=$(sed -n 's/^\([^:]*\):.*/\1/p' "$QB_KMODDIR/modules.dep" |
            awk -v w="$want" '{ b = $0; sub(/.*\//, "", b); sub(/\.ko$/, "", b); gsub(/-/, "_", b)
                                 if (b == w) { print; exit } }')
        if [ -z "$path" ]; then
            echo "E: no module $name in $QB_KMODDIR" >&2
            return 1
        fi
        copy_file module "$QB_KMODDIR/$path" "/lib/modules/${version?}/$path" || true
        for dep in $(sed -n "s|^$path: *||p" "$QB_KMODDIR/modules.dep"); do
            copy_file module "$QB_KMODDIR/$dep" "/lib/modules/$version/$dep" || true
        done
    done
}
