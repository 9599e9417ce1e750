# Fuzzing the read engine with libFuzzer (clang, ASan + UBSan).
#
#   make fuzz          fuzz for FUZZ_SECONDS (default 1800) on one job, over
#                      the seed corpus and build/fuzz/corpus (which grows);
#                      crashes go to build/fuzz/crashes/, the log to
#                      build/fuzz/fuzz.log, then a summary is printed
#   make fuzz-smoke    run the target once over the seeds and the committed
#                      regression inputs (tests/fuzz/regressions/), and stop
#   make fuzz-seeds    (re)generate the seed corpus with qemu-img/qemu-io
#   make fuzz-write    as make fuzz, for the write target: corpus, crashes and
#                      log under build/fuzz/write-*
#
# The targets are tests/fuzz/fuzz_image.c (reading) and tests/fuzz/fuzz_write.c
# (writes checked against a model); see their headers for the input layouts.
# The write target's seeds are the image seeds with operations appended
# (tests/fuzz/make_write_seeds.py).
# core/ is compiled with coverage and sanitizers; zlib, zstd and libdeflate
# are compiled again from the same pinned sources with ASan (no coverage), so
# that a wrong buffer length handed to inflate, libdeflate or ZSTD_decompress
# shows up too.
#
# Exported: FUZZ_BIN, FUZZ_WRITE_BIN, FUZZ_SMOKE_SUITE (a suite script for
# tests/run-all.sh).

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
FUZZ_WRITE_BIN := $(FUZZ_DIR)/fuzz_write
FUZZ_WRITE_SEEDS := $(FUZZ_DIR)/write-seeds
FUZZ_WRITE_CORPUS := $(FUZZ_DIR)/write-corpus
FUZZ_WRITE_CRASHES := $(FUZZ_DIR)/write-crashes
# Its inputs carry operations after the two files.
FUZZ_WRITE_MAX_LEN ?= $(shell echo $$(($(FUZZ_MAX_LEN) + 4096)))

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
# BearSSL (encrypted images) from the host archive: the fuzzed inputs never
# reach it without a passphrase, so it needs no sanitizer build of its own.
FUZZ_BEARSSL := $(DEPS_DIR)/host/libbearssl.a
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

$(FUZZ_DIR)/fuzz_image.o: tests/fuzz/fuzz_image.c tests/fuzz/fuzz_heap.h $(CORE_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_HARNESS_FLAGS) -c $< -o $@

$(FUZZ_BIN): $(FUZZ_DIR)/fuzz_image.o $(FUZZ_CORE_OBJS) $(FUZZ_DEPS_OBJS) $(FUZZ_BEARSSL)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^

$(FUZZ_DIR)/fuzz_write.o: tests/fuzz/fuzz_write.c tests/fuzz/fuzz_heap.h $(CORE_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_HARNESS_FLAGS) -c $< -o $@

$(FUZZ_WRITE_BIN): $(FUZZ_DIR)/fuzz_write.o $(FUZZ_CORE_OBJS) $(FUZZ_DEPS_OBJS) $(FUZZ_BEARSSL)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^

# The seeds depend only on the script (and qemu-img); regenerate with
# `make fuzz-seeds` after changing it.
$(FUZZ_SEEDS)/.done: tests/fuzz/make_seeds.sh
	bash tests/fuzz/make_seeds.sh $(FUZZ_SEEDS)
	@touch $@

$(FUZZ_WRITE_SEEDS)/.done: $(FUZZ_SEEDS)/.done tests/fuzz/make_write_seeds.py
	rm -rf $(FUZZ_WRITE_SEEDS)
	python3 tests/fuzz/make_write_seeds.py $(FUZZ_SEEDS) $(FUZZ_WRITE_SEEDS)
	@touch $@

FUZZ_FLAGS = -max_len=$(FUZZ_MAX_LEN) -dict=$(FUZZ_DICT) -timeout=$(FUZZ_TIMEOUT) \
        -rss_limit_mb=$(FUZZ_RSS_MB) -artifact_prefix=$(FUZZ_CRASHES)/
FUZZ_WRITE_FLAGS = -max_len=$(FUZZ_WRITE_MAX_LEN) -dict=$(FUZZ_DICT) -timeout=$(FUZZ_TIMEOUT) \
        -rss_limit_mb=$(FUZZ_RSS_MB) -artifact_prefix=$(FUZZ_WRITE_CRASHES)/

# One job (-fork=1) that keeps going after a crash, timeout or OOM: each one
# is saved under build/fuzz/crashes/ and counted in the summary.
fuzz: $(FUZZ_BIN) $(FUZZ_SEEDS)/.done
	@mkdir -p $(FUZZ_CORPUS) $(FUZZ_CRASHES)
	-$(FUZZ_BIN) $(FUZZ_FLAGS) -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(FUZZ_CORPUS) $(FUZZ_SEEDS) 2>&1 | tee $(FUZZ_DIR)/fuzz.log
	@bash tests/fuzz/summary.sh $(FUZZ_DIR)/fuzz.log $(FUZZ_CORPUS) $(FUZZ_CRASHES)

# The same for the write target.
fuzz-write: $(FUZZ_WRITE_BIN) $(FUZZ_WRITE_SEEDS)/.done
	@mkdir -p $(FUZZ_WRITE_CORPUS) $(FUZZ_WRITE_CRASHES)
	-$(FUZZ_WRITE_BIN) $(FUZZ_WRITE_FLAGS) -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
	    -ignore_ooms=1 -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(FUZZ_WRITE_CORPUS) $(FUZZ_WRITE_SEEDS) 2>&1 | tee $(FUZZ_DIR)/write-fuzz.log
	@bash tests/fuzz/summary.sh $(FUZZ_DIR)/write-fuzz.log $(FUZZ_WRITE_CORPUS) $(FUZZ_WRITE_CRASHES)

fuzz-smoke: $(FUZZ_BIN) $(FUZZ_SEEDS)/.done $(FUZZ_WRITE_BIN) $(FUZZ_WRITE_SEEDS)/.done
	bash tests/run-all.sh $(FUZZ_SMOKE_SUITE)

fuzz-seeds:
	rm -rf $(FUZZ_SEEDS) $(FUZZ_WRITE_SEEDS)
	$(MAKE) $(FUZZ_SEEDS)/.done $(FUZZ_WRITE_SEEDS)/.done

fuzz-build: $(FUZZ_BIN) $(FUZZ_WRITE_BIN)

.PHONY: fuzz fuzz-write fuzz-smoke fuzz-seeds fuzz-build
