# The UEFI application: core/ + libc-mini + efi/ (+ the firmware builds of
# zlib, zstd, BearSSL and libdeflate from mk/deps.mk) linked with GNU-EFI into
# build/efi/qcowboot.efi, a PE32+ x86_64 EFI application for the UEFI shell.
#
# The link fails when
#   - the linked image has an undefined symbol,
#   - core/ or libc-mini objects reference anything outside
#     memcpy memmove memset memcmp, what libc-mini defines and the
#     third-party libraries' own API (tools/check-symbols.sh),
#   - the image carries a relocation other than R_X86_64_RELATIVE (gnu-efi's
#     self-relocation handles nothing else, so an absolute one would point
#     into the void once the firmware loads us elsewhere).
#
# `make demo` boots a sample guest from a qcow2 image on a stick (tests/boot/demo.sh).

EFI_APP := build/efi/qcowboot.efi
EFI_SO := build/efi/qcowboot.so
EFI_OBJDIR := build/efi/obj

GNUEFI_INC := /usr/include/efi
GNUEFI_LIBDIR := /usr/lib
EFI_LDS := $(GNUEFI_LIBDIR)/elf_x86_64_efi.lds
EFI_CRT0 := $(GNUEFI_LIBDIR)/crt0-efi-x86_64.o
# gnu-efi's libefi.a defines strong memcpy/memset in init.o, which clash
# with libc-mini's: link a copy in which they are weak.
EFI_LIBEFI := build/efi/libefi-weak.a
EFI_LIBGNUEFI := $(GNUEFI_LIBDIR)/libgnuefi.a

ifeq ($(V),1)
EFI_Q :=
EFI_SAY = @:
else
EFI_Q := @
EFI_SAY = @printf '  %-4s %s\n'
endif

EFI_LD ?= ld
EFI_OBJCOPY ?= objcopy
EFI_NM ?= nm
EFI_OBJDUMP ?= objdump

EFI_SRCS := $(wildcard efi/*.c)
EFI_HDRS := $(wildcard efi/*.h)
EFI_ENGINE_OBJS := $(patsubst %.c,$(EFI_OBJDIR)/%.o,$(CORE_SRCS) $(LIBC_MINI_SRCS))
EFI_FRONT_OBJS := $(patsubst %.c,$(EFI_OBJDIR)/%.o,$(EFI_SRCS))

# The engine sees only libc-mini's headers (CORE_INC) and the libraries'.
EFI_ENGINE_CFLAGS := $(EFI_ARCH_CFLAGS) $(WARN) $(CORE_INC) -I$(ZLIB_INC) -I$(ZSTD_INC) \
        -I$(LIBDEFLATE_INC) $(if $(BEARSSL_INC),-I$(BEARSSL_INC)) $(DEPS_DEFS)
# The front end also sees gnu-efi's headers (as system headers: they are
# not warning-clean) and takes va_list from the compiler's stdarg.h.
EFI_FRONT_CFLAGS := $(EFI_ARCH_CFLAGS) $(WARN) $(CORE_INC) -Iefi \
        -isystem $(GNUEFI_INC) -isystem $(GNUEFI_INC)/x86_64 -DGNU_EFI_USE_EXTERNAL_STDARG

# What the engine objects may leave undefined: the mem* functions the
# compiler emits on its own, and the third-party libraries' definitions.
EFI_ENGINE_ALLOWED := memcpy memmove memset memcmp
EFI_DEPS_DEFINED = $$($(EFI_NM) -g --defined-only $(DEPS_EFI_LIBS) | awk 'NF == 3 { print $$3 }' | sort -u)

$(EFI_OBJDIR)/core/%.o $(EFI_OBJDIR)/libc-mini/%.o: EFI_CFLAGS = $(EFI_ENGINE_CFLAGS)
$(EFI_OBJDIR)/efi/%.o: EFI_CFLAGS = $(EFI_FRONT_CFLAGS)

# The libraries' headers come from the fetched sources.
$(EFI_ENGINE_OBJS): | $(DEPS_FETCHED)

$(EFI_OBJDIR)/%.o: %.c mk/efi.mk mk/config.mk | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(EFI_SAY) CC "$@"
	$(EFI_Q)$(CC) $(EFI_CFLAGS) -MMD -MP -c $< -o $@

-include $(EFI_ENGINE_OBJS:.o=.d) $(EFI_FRONT_OBJS:.o=.d)

$(EFI_LIBEFI): $(GNUEFI_LIBDIR)/libefi.a | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(EFI_SAY) WEAK "$@"
	$(EFI_Q)$(EFI_OBJCOPY) -W memcpy -W memset $< $@

$(EFI_SO): $(EFI_ENGINE_OBJS) $(EFI_FRONT_OBJS) $(DEPS_EFI_LIBS) $(EFI_LIBEFI) $(CHECK_SYMBOLS)
	$(EFI_SAY) SYMS "core + libc-mini objects"
	$(EFI_Q)bash $(CHECK_SYMBOLS) --allow "$(EFI_ENGINE_ALLOWED) $(EFI_DEPS_DEFINED)" $(EFI_ENGINE_OBJS)
	$(EFI_SAY) LD "$@"
	$(EFI_Q)$(EFI_LD) -nostdlib -znocombreloc -shared -Bsymbolic --no-undefined -T $(EFI_LDS) \
	    $(EFI_CRT0) $(EFI_ENGINE_OBJS) $(EFI_FRONT_OBJS) $(DEPS_EFI_LIBS) \
	    $(EFI_LIBEFI) $(EFI_LIBGNUEFI) -o $@.tmp
	@undef=$$($(EFI_NM) -u $@.tmp); if [ -n "$$undef" ]; then \
	    echo "$@: undefined symbols:" >&2; echo "$$undef" >&2; exit 1; fi
	@bad=$$($(EFI_OBJDUMP) -R $@.tmp | awk '$$2 ~ /^R_/ && $$2 != "R_X86_64_RELATIVE"'; \
	    $(EFI_OBJDUMP) -r $@.tmp | awk '$$2 ~ /^R_/'); \
	 if [ -n "$$bad" ]; then \
	    echo "$@: relocations other than R_X86_64_RELATIVE:" >&2; echo "$$bad" | head -20 >&2; exit 1; fi
	$(EFI_Q)mv -f $@.tmp $@

EFI_SECTIONS := -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel -j .rela \
	-j '.rel.*' -j '.rela.*' -j .reloc

# Subsystem 10: EFI application.
$(EFI_APP): $(EFI_SO)
	$(EFI_SAY) PE "$@"
	$(EFI_Q)$(EFI_OBJCOPY) $(EFI_SECTIONS) --target efi-app-x86_64 --subsystem=10 $< $@.tmp
	$(EFI_Q)mv -f $@.tmp $@

# The same code as a boot-service driver (subsystem 11), which the firmware
# keeps in memory when its entry point succeeds: `qcowboot.efi mount` loads
# it from its own directory to hold the disk after the command returns.
EFI_DRV := build/efi/qcowbootdrv.efi
$(EFI_DRV): $(EFI_SO)
	$(EFI_SAY) PE "$@"
	$(EFI_Q)$(EFI_OBJCOPY) $(EFI_SECTIONS) --target efi-bsdrv-x86_64 --subsystem=11 $< $@.tmp
	$(EFI_Q)mv -f $@.tmp $@

efi: $(EFI_APP) $(EFI_DRV)
all: $(EFI_DRV)

# Small gnu-efi programs for the firmware tests (tests/firmware/*.c that
# are not host code): a test guest's boot loader, a Block I/O probe, a
# launcher for machines without a shell.
EFI_TEST_APPS := build/efi/guest_hello.efi build/efi/blockio_probe.efi build/efi/launch.efi
build/efi/test/%.o: tests/firmware/%.c mk/efi.mk mk/config.mk | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(EFI_SAY) CC "$@"
	$(EFI_Q)$(CC) $(EFI_FRONT_CFLAGS) -MMD -MP -c $< -o $@
build/efi/test/%.so: build/efi/test/%.o $(EFI_LIBEFI)
	$(EFI_Q)$(EFI_LD) -nostdlib -znocombreloc -shared -Bsymbolic --no-undefined -T $(EFI_LDS) \
	    $(EFI_CRT0) $< $(EFI_LIBEFI) $(EFI_LIBGNUEFI) -o $@
build/efi/%.efi: build/efi/test/%.so
	$(EFI_SAY) PE "$@"
	$(EFI_Q)$(EFI_OBJCOPY) $(EFI_SECTIONS) --target efi-app-x86_64 --subsystem=10 $< $@.tmp
	$(EFI_Q)mv -f $@.tmp $@
-include $(patsubst build/efi/%.efi,build/efi/test/%.d,$(EFI_TEST_APPS))
.PRECIOUS: build/efi/test/%.o build/efi/test/%.so
efi-test-apps: $(EFI_TEST_APPS)

# Host test of the front end's plain-C parts (paths, UTF-8/UCS-2), run by
# tests/firmware/run.sh.
EFI_UNIT_BIN := build/tests/efi_unit
EFI_UNIT_SRCS := tests/firmware/efi_unit.c efi/efi_path.c efi/efi_utf.c
$(EFI_UNIT_BIN): $(EFI_UNIT_SRCS) efi/efi_path.h efi/efi_utf.h tests/firmware/group_check.h
	@mkdir -p $(@D)
	$(EFI_SAY) CC "$@"
	$(EFI_Q)$(CC) -O1 -g $(WARN) -Iefi -fsanitize=address,undefined -fno-sanitize-recover=all \
	    $(EFI_UNIT_SRCS) -o $@

# Host test of stick mode's config parser, run by tests/firmware/stick.sh.
STICK_UNIT_BIN := build/tests/stick_unit
STICK_UNIT_SRCS := tests/firmware/stick_unit.c efi/efi_config.c efi/efi_path.c core/qb_fmt.c
$(STICK_UNIT_BIN): $(STICK_UNIT_SRCS) efi/efi_stick.h efi/efi_path.h core/qb_fmt.h \
                   tests/firmware/group_check.h
	@mkdir -p $(@D)
	$(EFI_SAY) CC "$@"
	$(EFI_Q)$(CC) -O1 -g $(WARN) -Iefi -Icore -fsanitize=address,undefined -fno-sanitize-recover=all \
	    $(STICK_UNIT_SRCS) -o $@

# Host test of the in-memory overlay of published disks, run by
# tests/firmware/run.sh.
OVERLAY_UNIT_BIN := build/tests/overlay_unit
OVERLAY_UNIT_SRCS := tests/firmware/overlay_unit.c efi/efi_overlay.c core/qb_err.c core/qb_fmt.c
$(OVERLAY_UNIT_BIN): $(OVERLAY_UNIT_SRCS) efi/efi_overlay.h core/qb_types.h core/qb_fmt.h \
                     tests/firmware/group_check.h
	@mkdir -p $(@D)
	$(EFI_SAY) CC "$@"
	$(EFI_Q)$(CC) -O1 -g $(WARN) -Iefi -Icore -fsanitize=address,undefined -fno-sanitize-recover=all \
	    $(OVERLAY_UNIT_SRCS) -o $@

# Boots OVMF from a stick holding qcowboot.efi and a sample image and
# prints what `qcowboot.efi info` said on the serial console.
demo: $(EFI_APP) | $(DEPS_STAMP)
	bash tests/boot/demo.sh

.PHONY: efi demo efi-test-apps
