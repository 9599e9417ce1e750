# The Linux CLI, built twice from the same sources: an optimised one for
# people and benchmarks, and one under ASan+UBSan that the tests run.

HOST_CLI := build/host/qcowboot
HOST_SAN_CLI := build/host-san/qcowboot
QB_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

HOST_SRCS := $(wildcard tools/host/*.c)
HOST_DEPS_INC := -I$(ZLIB_INC) -I$(BEARSSL_INC) -I$(ZSTD_INC) -I$(LIBDEFLATE_INC) $(DEPS_DEFS)
HOST_CORE_FLAGS = $(CORE_INC) $(HOST_DEPS_INC) $(WARN) -std=c11 -g
HOST_FE_FLAGS = -Icore $(WARN) -std=gnu11 -g -DQB_VERSION='"$(QB_VERSION)"'
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

define host_flavour
# $(1): output dir, $(2): optimisation/sanitizer flags
$(1)/core/%.o: core/%.c $(CORE_HDRS) $(DEPS_HOST_LIBS) | $(DEPS_STAMP)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(HOST_CORE_FLAGS) $(2) -c $$< -o $$@
$(1)/fe/%.o: tools/host/%.c $(CORE_HDRS) $(wildcard tools/host/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(HOST_FE_FLAGS) $(2) -c $$< -o $$@
$(1)/qcowboot: $(patsubst core/%.c,$(1)/core/%.o,$(CORE_SRCS)) \
               $(patsubst tools/host/%.c,$(1)/fe/%.o,$(HOST_SRCS)) $(DEPS_HOST_LIBS)
	$$(CC) $(2) -o $$@ $$(filter %.o,$$^) $(DEPS_HOST_LIBS) -pthread
endef

$(eval $(call host_flavour,build/host,-O2))
$(eval $(call host_flavour,build/host-san,-O1 $(SAN_FLAGS)))

host: $(HOST_CLI) $(HOST_SAN_CLI)
.PHONY: host

# Unit tests: linked against the sanitized core objects.
UNIT_TEST_BIN := build/tests/unit_tests
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_SRCS := $(filter-out tests/unit/libc_mini_test.c,$(UNIT_SRCS))
$(UNIT_TEST_BIN): $(UNIT_SRCS) $(wildcard tests/unit/*.h) \
                  $(patsubst core/%.c,build/host-san/core/%.o,$(CORE_SRCS)) $(DEPS_HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN_FLAGS) -Icore -I$(ZLIB_INC) $(DEPS_DEFS) $(WARN) -Wno-missing-prototypes \
	    -o $@ $(UNIT_SRCS) $(patsubst core/%.c,build/host-san/core/%.o,$(CORE_SRCS)) $(DEPS_HOST_LIBS)
