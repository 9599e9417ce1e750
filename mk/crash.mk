# Crash-consistency tests: programs that run write workloads over a
# fault-injecting backend (tests/crash/). CRASH_BINS lists what
# `make test` must build first.
CRASH_BINS :=
