# Helpers for running qcowboot.efi in the UEFI shell under QEMU + OVMF.
# Source it (after tests/lib.sh when you want its pass/fail helpers).
#
# A run is one boot: a FAT stick holding qcowboot.efi, the test images and
# a startup.nsh made of marked sections,
#     echo "=== BEGIN name"  /  command  /  echo "=== END name %lasterror%"
# which the shell runs before `reset -s` powers the machine off. The serial
# console is then cut back into those sections.

FW_ROOT=${FW_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
FW_EFI_APP=${FW_EFI_APP:-$FW_ROOT/build/efi/qcowboot.efi}
# The UEFI shell counts down 5 s before running startup.nsh unless it gets a
# key, which it only listens for after printing this.
FW_SHELL_PROMPT_TEXT="seconds to skip"

# fw_nsh_begin FILE: starts a startup.nsh: no command echo, work on fs0:.
fw_nsh_begin() {
    printf '@echo -off\r\nfs0:\r\ncd \\\r\n' >"$1"
}

# fw_nsh_case FILE NAME COMMAND...: appends one marked section. The words of
# COMMAND are written as they are (quote them for the shell yourself).
fw_nsh_case() {
    local file=$1 name=$2; shift 2
    printf 'echo "=== BEGIN %s"\r\n%s\r\necho "=== END %s %%lasterror%%"\r\n' \
        "$name" "$*" "$name" >>"$file"
}

# fw_nsh_line FILE TEXT: appends a raw shell line.
fw_nsh_line() {
    printf '%s\r\n' "$2" >>"$1"
}

# fw_nsh_end FILE: powers the machine off once the script is done.
fw_nsh_end() {
    printf 'reset -s\r\n' >>"$1"
}

# What the firmware prints when an image crashes it (it then hangs).
FW_CRASH_TEXT="!!!! X64 Exception"

# fw_nsh_ucs2 FILE: converts the script to UCS-2 (UTF-16LE with a BOM), the
# form in which the shell reads non-ASCII characters.
fw_nsh_ucs2() {
    { printf '\xff\xfe'; iconv -f UTF-8 -t UTF-16LE "$1"; } >"$1.tmp" && mv "$1.tmp" "$1"
}

# fw_ascii: what the serial console shows of UTF-8 text: OVMF's terminal
# prints '?' for every character outside ASCII.
fw_ascii() {
    perl -CS -pe 's/[^\x{0}-\x{7f}]/?/g'
}

# fw_boot STICK LOG [TIMEOUT]: boots OVMF from STICK, skipping the shell's
# countdown, with the serial console in LOG; a crash ends the run at once.
# Returns qemu-run.sh's exit status (0: powered off, 124: time limit, 125:
# crashed).
fw_boot() {
    bash "$FW_ROOT/tools/qemu-run.sh" --disk "$1" --log "$2" --timeout "${3:-120}" \
        --key-after "$FW_SHELL_PROMPT_TEXT" --stop-on "$FW_CRASH_TEXT"
}

# fw_console LOG: the console text without terminal escapes and CRs.
fw_console() {
    sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g; s/\x1b[()][A-Za-z0-9]//g' "$1" | tr -d '\r'
}

# fw_section TEXT NAME: the output of section NAME in the cleaned console TEXT
# (a file), without its markers.
fw_section() {
    awk -v b="=== BEGIN $2" -v e="=== END $2 " '
        $0 == b { on = 1; next }
        on && index($0, e) == 1 { exit }
        on { print }' "$1"
}

# fw_status TEXT NAME: the exit status of section NAME in decimal (the
# shell's %lasterror% of the command), or nothing if the section never ended.
fw_status() {
    local v
    v=$(awk -v e="=== END $2 " 'index($0, e) == 1 { print substr($0, length(e) + 1); exit }' "$1")
    [ -n "$v" ] || return 0
    printf '%d\n' "$v"
}
