# heca: post-copy live migration over RDMA for QEMU/KVM.
#   make test    set up the host, build QEMU and the L1 kernel, run every test (what CI runs)
#   make bench   set up, build, run the default comparison of all scenarios
SHELL := /bin/bash
TSX := npx tsx
BENCH_ARGS ?=
OUT ?= results/latest

.PHONY: setup build build-kernel typecheck test test-unit test-integration bench clean

setup:
	bash tools/setup-host.sh

build: setup
	$(TSX) tools/build.ts --qemu

build-kernel: setup
	$(TSX) tools/build.ts --kernel

typecheck: setup
	npx tsc --noEmit

test-unit: setup
	$(TSX) tests/run.ts unit

test-integration: build
	$(TSX) tests/run.ts integration

# Unit tests, the patch series checks, then the integration tests (real QEMU;
# the nested testbed boots L1 hosts on the heca kernel).
test: setup typecheck build build-kernel
	$(TSX) tools/patches.ts check --qemu
	$(TSX) tests/run.ts all

bench: build
	$(TSX) bench/run.ts --out $(OUT) $(BENCH_ARGS)

clean:
	rm -rf build/qemu build/guest results
