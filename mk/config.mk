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
