# heca: post-copy live migration over RDMA for QEMU/KVM.
#   make test    set up the host, build QEMU and the L1 kernel, run every test (what CI runs)
#   make deps    check the direction of imports (.dependency-cruiser.cjs)
#   make workflows  check .github/workflows/*.yml against GitHub's workflow schema
#   make test-nested  the nested testbed's tests alone
#   make bench   set up, build, run the default comparison of all scenarios
#   make nightly the nested-testbed benchmark of every scenario, 5 repeats, compared
#                with the previous night (fails on a regression beyond the spread)
SHELL := /bin/bash
TSX := npx tsx
BENCH_ARGS ?=
OUT ?= results/latest
# make nightly: NIGHTLY_OUT (default results/nightly/<UTC date>T<hh-mm>Z),
# NIGHTLY_BASELINE (auto: the previous night that ended well | none | a result.json),
# NIGHTLY_REPEAT (5), NIGHTLY_SCENARIOS (all: every scenario of the catalog),
# NIGHTLY_ARGS (more bench/run.ts flags). Set but empty counts as the default.
NIGHTLY_ARGS ?=

.PHONY: setup build build-kernel typecheck deps workflows test test-nested test-unit test-integration bench nightly clean

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

# The GitHub workflows against GitHub's workflow schema (@action-validator/cli,
# SchemaStore's schema built in: no network). tests/unit/workflows.test.ts adds
# the project's rules for them and broken workflows that must fail.
workflows: setup
	@for f in .github/workflows/*.yml; do npx action-validator "$$f" || { echo "error: $$f does not match GitHub's workflow schema (above)" >&2; exit 1; }; echo "$$f: valid"; done

test-unit: setup
	$(TSX) tests/run.ts unit

test-integration: build
	$(TSX) tests/run.ts integration

# The type check, the import rules, the workflows' schema, unit tests, the patch series checks, the integration tests (real QEMU), then
# the nested testbed's (two L1 hosts on the heca kernel, an L2 migration).
test: setup typecheck deps workflows build build-kernel
	$(TSX) tools/patches.ts check --qemu
	$(TSX) tests/run.ts all

# The nested testbed's suite alone.
test-nested: setup build build-kernel
	$(TSX) tests/run.ts nested

bench: build
	$(TSX) bench/run.ts --out $(OUT) $(BENCH_ARGS)

# The nightly benchmark (bench/nightly.ts): bench/run.ts --testbed nested, then
# bench/compare.ts --fail-on-regression against the baseline; OUT/nightly.json.
nightly: build build-kernel
	$(TSX) bench/nightly.ts --repeat $(or $(NIGHTLY_REPEAT),5) --scenario $(or $(NIGHTLY_SCENARIOS),all) \
	  --baseline $(or $(NIGHTLY_BASELINE),auto) $(if $(NIGHTLY_OUT),--out $(NIGHTLY_OUT)) $(if $(strip $(NIGHTLY_ARGS)),-- $(NIGHTLY_ARGS))

clean:
	rm -rf build/qemu build/guest results
