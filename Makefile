# heca: post-copy live migration over RDMA for QEMU/KVM.
#   make test    set up the host, build QEMU, run every test (what CI runs)
#   make test-nested  build the L1 kernel, run the nested testbed's tests
#   make bench   set up, build, run the default comparison of all scenarios
SHELL := /bin/bash
TSX := npx tsx
BENCH_ARGS ?=
OUT ?= results/latest

.PHONY: setup build build-kernel typecheck test test-nested test-unit test-integration bench clean

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

# Unit tests, the patch series checks, then the integration tests (real QEMU).
test: setup typecheck build
	$(TSX) tools/patches.ts check --qemu
	$(TSX) tests/run.ts all

# The nested testbed (two L1 hosts on the heca kernel): not in make test yet,
# an L1 boot hangs now and then under TCG (see README).
test-nested: setup build build-kernel
	$(TSX) tests/run.ts nested

bench: build
	$(TSX) bench/run.ts --out $(OUT) $(BENCH_ARGS)

clean:
	rm -rf build/qemu build/guest results
