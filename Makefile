# heca: post-copy live migration over RDMA for QEMU/KVM.
#   make test    set up the host, build QEMU and the L1 kernel, run every test (what CI runs)
#   make deps    check the direction of imports (.dependency-cruiser.cjs)
#   make test-nested  the nested testbed's tests alone
#   make bench   set up, build, run the default comparison of all scenarios
SHELL := /bin/bash
TSX := npx tsx
BENCH_ARGS ?=
OUT ?= results/latest

.PHONY: setup build build-kernel typecheck deps test test-nested test-unit test-integration bench clean

setup:
	bash tools/setup-host.sh

build: setup
	$(TSX) tools/build.ts --qemu

build-kernel: setup
	$(TSX) tools/build.ts --kernel

typecheck: setup
	npx tsc --noEmit

# The layout's rules: no import cycle, no stage importing a later one. A
# violation names the rule, the file and the import.
deps: setup
	npx depcruise tools bench tests --config .dependency-cruiser.cjs --output-type err

test-unit: setup
	$(TSX) tests/run.ts unit

test-integration: build
	$(TSX) tests/run.ts integration

# The type check, the import rules, unit tests, the patch series checks, the integration tests (real QEMU), then
# the nested testbed's (two L1 hosts on the heca kernel, an L2 migration).
test: setup typecheck deps build build-kernel
	$(TSX) tools/patches.ts check --qemu
	$(TSX) tests/run.ts all

# The nested testbed's suite alone.
test-nested: setup build build-kernel
	$(TSX) tests/run.ts nested

bench: build
	$(TSX) bench/run.ts --out $(OUT) $(BENCH_ARGS)

clean:
	rm -rf build/qemu build/guest results
