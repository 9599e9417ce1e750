# Crash-consistency tests: programs that run write workloads over a
# fault-injecting backend (tests/crash/). CRASH_BINS lists what
# `make test` must build first.
#
# crash_test links the sanitized core objects, as the unit tests do.
CRASH_TEST_BIN := build/tests/crash_test
CRASH_SRCS := $(wildcard tests/crash/*.c)
CRASH_CORE_OBJS := $(patsubst core/%.c,build/host-san/core/%.o,$(CORE_SRCS))

$(CRASH_TEST_BIN): $(CRASH_SRCS) $(wildcard tests/crash/*.h) $(CRASH_CORE_OBJS) $(DEPS_HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SAN_FLAGS) -Icore $(WARN) -std=gnu11 \
	    -o $@ $(CRASH_SRCS) $(CRASH_CORE_OBJS) $(DEPS_HOST_LIBS)

CRASH_BINS := $(CRASH_TEST_BIN)
