/**
 * The direction of imports in heca, checked by `make deps` (part of `make
 * test`; tests/unit/layout.test.ts runs it too). The folders are stages of one
 * pipeline; each may import the ones below it, never one above:
 *
 *   tools/core  <  tools/qmp, tools/source  <  tools/patch  <  tools/build  <  tools/*.ts
 *   tools/core  <  tools/ci (GitHub Actions helpers)  <  tools/ci.ts
 *   bench/results  <  bench/scenario  <  bench/report
 *   bench/scenario  <  bench/guest  <  bench/testbed  <  bench/engine  <  bench/*.ts
 *   bench/results, bench/scenario, bench/report  <  bench/nightly  <  bench/nightly.ts
 *
 * bench/nightly runs the benchmark and the comparison as commands (bench/run.ts,
 * bench/compare.ts), so it imports no engine, testbed or guest code.
 *
 * A violation prints the rule's name, the importing file and the import.
 */
const CLI = '^(bench/(run|compare|nested|nightly)|tools/(build|patches|ci))\\.ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'an import cycle ties two stages into one: move the shared part to the lower one',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      comment: 'an import that resolves to no file',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-cli-imports',
      comment: 'the command lines only parse and print: nothing imports them; move what you need below them',
      severity: 'error',
      from: {},
      to: { path: CLI },
    },
    {
      name: 'no-test-imports',
      comment: 'product code never imports from tests/',
      severity: 'error',
      from: { pathNot: '^tests/' },
      to: { path: '^tests/' },
    },
    {
      name: 'tools-not-bench',
      comment: 'tools/ builds and patches; it knows nothing of the benchmark',
      severity: 'error',
      from: { path: '^tools/' },
      to: { path: '^bench/' },
    },
    {
      name: 'core-is-the-bottom',
      comment: 'tools/core holds the general helpers every stage uses; it imports no stage',
      severity: 'error',
      from: { path: '^tools/core/' },
      to: { path: '^(tools/(qmp|source|patch|build|ci)|bench)/' },
    },
    {
      name: 'ci-over-core-only',
      comment: 'the CI helpers talk to GitHub; they depend on tools/core only',
      severity: 'error',
      from: { path: '^tools/ci/' },
      to: { path: '^tools/(qmp|source|patch|build)/' },
    },
    {
      name: 'qmp-over-core-only',
      comment: 'the QMP client depends on tools/core only',
      severity: 'error',
      from: { path: '^tools/qmp/' },
      to: { path: '^tools/(source|patch|build)/' },
    },
    {
      name: 'source-below-patch',
      comment: 'fetching and unpacking sources comes before patching and building',
      severity: 'error',
      from: { path: '^tools/source/' },
      to: { path: '^tools/(qmp|patch|build)/' },
    },
    {
      name: 'patch-below-build',
      comment: 'the series is applied and checked before a build; building after each patch is a callback the command line passes',
      severity: 'error',
      from: { path: '^tools/patch/' },
      to: { path: '^tools/(qmp|build)/' },
    },
    {
      name: 'results-are-pure',
      comment: 'the result format and its statistics import no scenario logic, testbed, QEMU or build code',
      severity: 'error',
      from: { path: '^bench/results/' },
      to: { path: '^(bench/(scenario|report|guest|testbed|engine|nightly)|tools/(qmp|source|patch|build))/' },
    },
    {
      name: 'scenario-is-data',
      comment: 'scenarios and their policies are data and pure decisions: no QEMU process, QMP connection, testbed or report',
      severity: 'error',
      from: { path: '^bench/scenario/' },
      to: { path: '^(bench/(report|guest|testbed|engine|nightly)|tools/(source|patch|build))/|^tools/qmp/(client|errors)\\.ts$' },
    },
    {
      name: 'report-reads-results-only',
      comment: 'charts and reports are drawn from results alone: no testbed, guest, engine or QEMU code',
      severity: 'error',
      from: { path: '^bench/report/' },
      to: { path: '^(bench/(guest|testbed|engine|nightly)|tools/(qmp|source|patch|build))/' },
    },
    {
      name: 'nightly-runs-commands',
      comment: 'make nightly runs the benchmark and the comparison as the project\'s commands: it imports results, scenarios and reports, never the engine, a testbed, the guest or QEMU code',
      severity: 'error',
      from: { path: '^bench/nightly/' },
      to: { path: '^(bench/(guest|testbed|engine)|tools/(qmp|source|patch|build))/' },
    },
    {
      name: 'guest-below-testbed',
      comment: 'the guest (image, channel, VM) knows no testbed, engine, scenario or report',
      severity: 'error',
      from: { path: '^bench/guest/' },
      to: { path: '^bench/(scenario|report|testbed|engine)/|^tools/(source|patch)/' },
    },
    {
      name: 'testbed-below-engine',
      comment: 'a testbed provides hosts and a link; it knows no engine, scenario or report',
      severity: 'error',
      from: { path: '^bench/testbed/' },
      to: { path: '^bench/(scenario|report|engine)/' },
    },
    {
      name: 'engine-not-report',
      comment: 'the engine produces results; the command lines turn them into reports',
      severity: 'error',
      from: { path: '^bench/engine/' },
      to: { path: '^bench/report/' },
    },
    {
      name: 'l1-agent-node-only',
      comment: 'the agent runs inside an L1 host from its root over 9p: Node built-ins only',
      severity: 'error',
      from: { path: '^bench/testbed/nested/agent\\.ts$' },
      to: { dependencyTypesNot: ['core'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
  },
};
