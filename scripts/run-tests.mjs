#!/usr/bin/env node
// Collects test files (Node 20's --test takes no globs), runs them with node's own test runner through tsx, and
// ends with a summary that counts every skipped suite and case with its reason (scripts/test-run/summary.mjs).
// Where a GPU is required (nvidia-smi -L lists one, or TSLORA_REQUIRE_CUDA=1) and GPU tests are in the run, the run
// fails when the CUDA addon does not load or any test under test/gpu skips: a GPU suite cannot pass by skipping.
// Usage: node scripts/run-tests.mjs [dir-or-file ...] [--node-test-flags]
//        (default: test/unit test/native test/e2e test/gpu; TSLORA_REQUIRE_CUDA=0 turns the GPU requirement off)
import { readdirSync, statSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { formatSummary, readRecords, summarize } from './test-run/summary.mjs';
import { cudaAddonProblem, gpuRequirement } from './test-run/gpu-requirement.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const passThrough = process.argv.slice(2).filter((a) => a.startsWith('--'));
const searchRoots = roots.length > 0 ? roots : ['test/unit', 'test/native', 'test/e2e', 'test/gpu'];

function collect(path, out) {
  if (!existsSync(path)) return;
  if (statSync(path).isFile()) { out.push(path); return; }
  for (const entry of readdirSync(path).sort()) {
    const full = join(path, entry);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (/\.test\.(ts|tsx|mjs|js)$/.test(entry)) out.push(full);
  }
}

const files = [];
for (const r of searchRoots) collect(r, files);
if (files.length === 0) {
  console.error(`no test files under ${searchRoots.join(', ')}`);
  process.exit(1);
}

// node's default reporter stays on stdout (TAP when piped: scripts/device/gpu-suite.sh greps it); the record goes to
// a file for the summary.
const recordDir = mkdtempSync(join(tmpdir(), 'tslora-tests-'));
const recordPath = join(recordDir, 'records.jsonl');
const ownReporter = passThrough.some((a) => a.startsWith('--test-reporter'));
const reporters = [
  ...(ownReporter ? [] : [`--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`, '--test-reporter-destination=stdout']),
  `--test-reporter=${join(root, 'scripts/test-run/record-reporter.mjs')}`, `--test-reporter-destination=${recordPath}`,
];
// NODE_TEST_CONTEXT (set when this script runs inside a test) would make node skip every file without a word.
const env = { ...process.env };
delete env.NODE_TEST_CONTEXT;
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...reporters, ...passThrough, ...files], { stdio: 'inherit', env });

const summary = summarize(existsSync(recordPath) ? readRecords(readFileSync(recordPath, 'utf8')) : [], { root });
rmSync(recordDir, { recursive: true, force: true });
console.log(`\n${formatSummary(summary)}`);

let status = result.status ?? 1;
if (summary.casesRun + summary.skippedCases + summary.skippedSuites === 0) {
  console.log(`no test ran in ${files.length} file(s): FAIL`);
  status = status || 1;
}
const requirement = gpuRequirement();
const runsGpuTests = files.some((f) => resolve(f).startsWith(join(root, 'test/gpu')));
if (requirement && runsGpuTests) {
  const problems = [];
  const addon = cudaAddonProblem(root);
  if (addon) problems.push(`the CUDA addon does not work: ${addon}`);
  if (summary.gpuSkips.length > 0) problems.push(`${summary.gpuSkips.length} GPU suites/cases skipped (listed above)`);
  if (problems.length > 0) {
    console.log(`GPU required (${requirement}) but ${problems.join('; ')}: FAIL`);
    status = status || 1;
  } else console.log(`GPU required (${requirement}): the CUDA addon loads and no GPU test skipped`);
}
process.exit(status);
