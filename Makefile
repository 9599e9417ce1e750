# qcowboot: one engine (core/), two front ends (tools/host for Linux,
# efi/ for firmware). `make` builds both; `make test` runs every test;
# `make demo` builds a sample guest qcow2 and a stick and boots it under OVMF.

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
SHELL := /bin/bash

include mk/config.mk
include mk/deps.mk
include mk/host.mk
include mk/efi.mk
include mk/fuzz.mk
include mk/crash.mk
include mk/bench.mk
include mk/boot.mk
include mk/secureboot.mk
include mk/tests.mk

all: $(HOST_CLI) $(EFI_APP)

clean:
	rm -rf build/host build/host-san build/efi build/tests build/fuzz build/demo

distclean:
	rm -rf build

.PHONY: all clean distclean
