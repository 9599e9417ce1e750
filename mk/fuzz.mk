# Fuzzing the read engine with libFuzzer (clang, ASan + UBSan).
#
#   make fuzz          fuzz for FUZZ_SECONDS (default 1800) on one job, over
#                      the seed corpus and build/fuzz/corpus (which grows);
#                      crashes go to build/fuzz/crashes/, the log to
#                      build/fuzz/fuzz.log, then a summary is printed
#   make fuzz-smoke    run the target once over the seeds and the committed
#                      regression inputs (tests/fuzz/regressions/), and stop
#   make fuzz-seeds    (re)generate the seed corpus with qemu-img/qemu-io
#
# The target is tests/fuzz/fuzz_image.c; see its header for the input layout.
# core/ is compiled with coverage and sanitizers; zlib, zstd and libdeflate
# are compiled again from the same pinned sources with ASan (no coverage), so
# that a wrong buffer length handed to inflate, libdeflate or ZSTD_decompress
# shows up too.
#
# Exported: FUZZ_BIN, FUZZ_SMOKE_SUITE (a suite script for tests/run-all.sh).

FUZZ_CC := $(shell command -v clang-14 2>/dev/null || command -v clang 2>/dev/null || echo clang)
FUZZ_CLANG_INC := $(shell $(FUZZ_CC) -print-file-name=include 2>/dev/null)
FUZZ_DIR := build/fuzz
FUZZ_BIN := $(FUZZ_DIR)/fuzz_image
FUZZ_SEEDS := $(FUZZ_DIR)/seeds
FUZZ_CORPUS := $(FUZZ_DIR)/corpus
FUZZ_CRASHES := $(FUZZ_DIR)/crashes
FUZZ_DICT := tests/fuzz/qcow2.dict
FUZZ_SECONDS ?= 1800
FUZZ_MAX_LEN ?= 1048576
FUZZ_TIMEOUT ?= 30
FUZZ_RSS_MB ?= 2048
FUZZ_SMOKE_SUITE := tests/fuzz/smoke.sh

FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# Warnings stay on for the harness; core/ is not built with -Werror here, so
# that a clang-only warning in someone else's file cannot stop the fuzzer.
# HOST_DEPS_INC (mk/host.mk): the third-party include dirs and defines core/ needs.
FUZZ_CORE_FLAGS = -nostdinc -isystem libc-mini/include -isystem $(FUZZ_CLANG_INC) -Icore \
        $(HOST_DEPS_INC) -std=c11 -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_HARNESS_FLAGS := -Icore $(WARN) -std=gnu11 -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_DEPS_FLAGS := -O1 -g -fsanitize=address -fno-omit-frame-pointer $(DEPS_DEFS) \
        -DZSTD_DISABLE_ASM  # the C Huffman loop, which the sanitizer can see into

# Library name in mk/deps.mk -> its list of sources (without .c).
FUZZ_LIB_NAMES_zlib = $(ZLIB_NAMES)
FUZZ_LIB_NAMES_zstd = $(ZSTD_NAMES)
FUZZ_LIB_NAMES_libdeflate = $(LIBDEFLATE_NAMES)
FUZZ_LIBS := $(foreach l,zlib zstd libdeflate,$(if $(FUZZ_LIB_NAMES_$(l)),$(l)))

FUZZ_CORE_OBJS := $(patsubst core/%.c,$(FUZZ_DIR)/core/%.o,$(CORE_SRCS))
FUZZ_DEPS_OBJS := $(foreach l,$(FUZZ_LIBS),$(FUZZ_LIB_NAMES_$(l):%=$(FUZZ_DIR)/deps/$(l)/%.o))

$(FUZZ_DIR)/core/%.o: core/%.c $(CORE_HDRS) $(DEPS_FETCHED) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CORE_FLAGS) -c $< -o $@

define FUZZ_DEP_RULE
$(FUZZ_DIR)/deps/$(1)/%.o: $$(DEPS_FETCHED) | $$(DEPS_STAMP)
	@mkdir -p $$(@D)
	$$(FUZZ_CC) $$(FUZZ_DEPS_FLAGS) $$(DEPS_LIBCFLAGS_$(1)) -c $$(DEPS_SRCDIR_$(1))/$$*.c -o $$@
endef
$(foreach l,$(FUZZ_LIBS),$(eval $(call FUZZ_DEP_RULE,$(l))))

$(FUZZ_DIR)/fuzz_image.o: tests/fuzz/fuzz_image.c $(CORE_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_HARNESS_FLAGS) -c $< -o $@

$(FUZZ_BIN): $(FUZZ_DIR)/fuzz_image.o $(FUZZ_CORE_OBJS) $(FUZZ_DEPS_OBJS)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^

# The seeds depend only on the script (and qemu-img); regenerate with
# `make fuzz-seeds` after changing it.
$(FUZZ_SEEDS)/.done: tests/fuzz/make_seeds.sh
	bash tests/fuzz/make_seeds.sh $(FUZZ_SEEDS)
	@touch $@

FUZZ_FLAGS = -max_len=$(FUZZ_MAX_LEN) -dict=$(FUZZ_DICT) -timeout=$(FUZZ_TIMEOUT) \
        -rss_limit_mb=$(FUZZ_RSS_MB) -artifact_prefix=$(FUZZ_CRASHES)/

# One job (-fork=1) that keeps going after a crash, timeout or OOM: each one
# is saved under build/fuzz/crashes/ and counted in the summary.
fuzz: $(FUZZ_BIN) $(FUZZ_SEEDS)/.done
	@mkdir -p $(FUZZ_CORPUS) $(FUZZ_CRASHES)
	-$(FUZZ_BIN) $(FUZZ_FLAGS) -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(FUZZ_CORPUS) $(FUZZ_SEEDS) 2>&1 | tee $(FUZZ_DIR)/fuzz.log
	@bash tests/fuzz/summary.sh $(FUZZ_DIR)/fuzz.log $(FUZZ_CORPUS) $(FUZZ_CRASHES)

fuzz-smoke: $(FUZZ_BIN) $(FUZZ_SEEDS)/.done
	bash tests/run-all.sh $(FUZZ_SMOKE_SUITE)

fuzz-seeds:
	rm -rf $(FUZZ_SEEDS)
	$(MAKE) $(FUZZ_SEEDS)/.done

fuzz-build: $(FUZZ_BIN)

.PHONY: fuzz fuzz-smoke fuzz-seeds fuzz-build
