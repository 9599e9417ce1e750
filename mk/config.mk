# Shared settings: compilers, warning policy and the include paths that keep
# core/ freestanding (only libc-mini's headers plus the compiler's own
# stddef.h/stdarg.h/stdbool.h are reachable).

CC ?= gcc
CC := $(if $(filter default,$(origin CC)),gcc,$(CC))
GCC_INC := $(shell $(CC) -print-file-name=include)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wno-unused-parameter -Wvla
CORE_INC := -nostdinc -isystem libc-mini/include -isystem $(GCC_INC) -Icore

# Installs the Debian packages the build needs when they are missing (a
# stamp keeps it from running apt on every make).
DEPS_STAMP := build/.packages-installed
$(DEPS_STAMP): tools/install-packages.sh
	@mkdir -p build
	bash tools/install-packages.sh
	@touch $@

# Firmware code generation, used for core/, libc-mini/, efi/ and the
# third-party libraries alike: no red zone (interrupts use the stack), short
# wchar_t (CHAR16), position independent, no libc, MS ABI for EFIAPI.
EFI_ARCH_CFLAGS := -ffreestanding -fshort-wchar -mno-red-zone -fPIC -fno-stack-protector \
        -fno-strict-aliasing -maccumulate-outgoing-args -DGNU_EFI_USE_MS_ABI -O2
# The compression libraries as core/ expects them (zlib without its gz*/libc parts).
DEPS_DEFS := -DZ_SOLO -DZSTD_NO_TRACE

CORE_SRCS := $(wildcard core/*.c)
CORE_HDRS := $(wildcard core/*.h)
