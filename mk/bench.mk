# Benchmarks of qcowboot against QEMU's tools, in the same run
# (tests/bench/run.sh for reading, tests/bench/write.sh for writing).
#
#   make bench        both, one after the other (never in parallel: they
#                     time the same two cores)
#   make bench-read   convert: generate the 1 GiB test images once (kept in
#                     build/bench/, slow the first time), then time
#                     qcowboot convert, qemu-img convert and cat, and print
#                     the table and the peak RSS on a 2 TiB sparse image
#   make bench-write  qcowboot io against qemu-io: sequential 1 MiB writes,
#                     random 4 KiB writes into a fresh, a fully allocated
#                     and a backed image (images made per run, in /dev/shm
#                     when it has room)
#   make bench-images only generate the read benchmark's images
#
# Variables passed through: BENCH_RUNS (3 read, 5 write), BENCH_ONLY,
# BENCH_SINK, BENCH_DIR (read); BENCH_WORK, BENCH_SEED,
# BENCH_RANDOM_WRITES (write).
# Timing never fails a target; a wrong output does.

bench: $(HOST_CLI)
	bash tests/bench/run.sh; s=$$?; bash tests/bench/write.sh || s=1; \
	    bash tests/bench/crypto.sh || s=1; exit $$s

bench-read: $(HOST_CLI)
	bash tests/bench/run.sh

bench-write: $(HOST_CLI)
	bash tests/bench/write.sh

bench-crypto: $(HOST_CLI)
	bash tests/bench/crypto.sh

bench-images:
	bash tests/bench/run.sh --gen

.PHONY: bench bench-read bench-write bench-crypto bench-images
