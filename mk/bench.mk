# Convert benchmark of qcowboot against qemu-img (tests/bench/run.sh).
#
#   make bench        generate the 1 GiB test images once (kept in
#                     build/bench/, slow the first time), then time
#                     qcowboot convert, qemu-img convert and cat, and print
#                     the table and the peak RSS on a 2 TiB sparse image
#   make bench-images only generate the images
#
# Variables passed through: BENCH_RUNS (3), BENCH_ONLY, BENCH_SINK, BENCH_DIR.
# Timing never fails the target; a wrong output does.

bench: $(HOST_CLI)
	bash tests/bench/run.sh

bench-images:
	bash tests/bench/run.sh --gen

.PHONY: bench bench-images
