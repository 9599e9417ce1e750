# Test targets. Every suite is a script that ends with `N passed, N failed`;
# tests/run-all.sh runs them in order and sums the counts.

TEST_SUITES := tests/unit/run.sh tests/conformance/run.sh tests/bad/run.sh $(FUZZ_SMOKE_SUITE) \
               tests/writer/run.sh tests/crash/run.sh tests/crypto/run.sh tests/crypto/firmware.sh \
               tests/firmware/run.sh tests/firmware/disk.sh tests/firmware/stick.sh \
               tests/boot/run.sh tests/secureboot/run.sh tests/handoff/run.sh

test: $(DEPS_STAMP) all $(HOST_SAN_CLI) $(UNIT_TEST_BIN) $(LIBC_MINI_TEST_BIN) $(EFI_UNIT_BIN) \
      $(STICK_UNIT_BIN) $(FUZZ_BIN) $(CRASH_BINS) \
      $(FUZZ_SEEDS)/.done
	bash tests/run-all.sh $(TEST_SUITES)

test-unit: $(UNIT_TEST_BIN) $(LIBC_MINI_TEST_BIN)
	bash tests/run-all.sh tests/unit/run.sh
test-conformance: $(HOST_SAN_CLI)
	bash tests/run-all.sh tests/conformance/run.sh
test-writer: $(HOST_SAN_CLI)
	bash tests/run-all.sh tests/writer/run.sh
test-crash: $(HOST_SAN_CLI) $(CRASH_BINS)
	bash tests/run-all.sh tests/crash/run.sh
test-bad: $(HOST_SAN_CLI)
	bash tests/run-all.sh tests/bad/run.sh
test-firmware: all $(HOST_SAN_CLI) $(EFI_UNIT_BIN) $(STICK_UNIT_BIN)
	bash tests/run-all.sh tests/firmware/run.sh tests/firmware/disk.sh tests/firmware/stick.sh
test-disk: all $(EFI_TEST_APPS)
	bash tests/run-all.sh tests/firmware/disk.sh
test-stick: all $(STICK_UNIT_BIN)
	bash tests/run-all.sh tests/firmware/stick.sh

# The suites run the sanitized CLI.
export QB := $(abspath $(HOST_SAN_CLI))

.PHONY: test-writer test-crash test test-unit test-conformance test-bad test-firmware test-disk test-stick
