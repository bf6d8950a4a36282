/**
 * `tslora bench bench-configs/ci-smoke.json --json` end to end: launches real `tslora serve` processes on the
 * CPU demo model (one per LoRA backend), streams requests, and prints results JSON on stdout. Checks the shape and
 * the sanity of the figures, never their speed (bench figures are not tests).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResults } from '../../src/bench/report/results.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('tslora bench ci-smoke runs both backends on the demo model and reports JSON', { timeout: 180_000 }, (t) => {
  const outDir = mkdtempSync(join(tmpdir(), 'bench-ci-smoke-'));
  const started = Date.now();
  const run = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'tslora.js'), 'bench', join(REPO_ROOT, 'bench-configs', 'ci-smoke.json'), '--json', '--out', outDir, '--server-args', '--num-threads 1'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 170_000,
  });
  const seconds = (Date.now() - started) / 1000;
  assert.equal(run.status, 0, `exit ${run.status} after ${seconds} s\nstderr:\n${run.stderr}`);
  t.diagnostic(`ci-smoke took ${seconds.toFixed(1)} s`);

  const results = JSON.parse(run.stdout) as BenchResults;
  assert.equal(results.tool, 'tslora bench');
  assert.equal(results.name, 'ci-smoke');
  assert.deepEqual(results.runIds, ['triton', 'csgmv']);
  assert.ok(results.environment.cpu && results.environment.cpuCores >= 1 && results.environment.node.startsWith('v'));
  assert.equal(results.launches.length, 2);
  assert.ok(results.launches[0].argv.join(' ').includes('--lora-backend triton'));
  assert.ok(results.launches[1].argv.join(' ').includes('--lora-backend csgmv'));

  const requested = results.config.workload.requests!;
  const outputTokens = (results.config.workload.outputTokens as { value: number }).value;
  for (const summary of results.summaries) {
    assert.equal(summary.requests, requested, summary.run);
    assert.equal(summary.errors, 0, `${summary.run}: ${results.records.filter((r) => r.error).map((r) => r.error).join('; ')}`);
    assert.equal(summary.outputTokens, requested * outputTokens, `${summary.run}: ignore_eos gives exactly max_new_tokens`);
    for (const latency of [summary.ttft, summary.e2e, summary.itl]) {
      assert.ok(latency.p50 > 0 && latency.p50 <= latency.p90 && latency.p90 <= latency.p99 && latency.p99 <= latency.max + 0.1, JSON.stringify(latency));
    }
    assert.ok(summary.ttft.p50 < summary.e2e.p50, 'the first token arrives before the last byte');
    assert.equal(summary.itl.count, requested * (outputTokens - 1), 'one ITL per streamed token after the first');
    assert.ok(summary.outputTokPerS > 0 && summary.reqPerS > 0);
    // the server's own decode steps over the window, from its /metrics (issue #12's ITL minus step)
    assert.ok(summary.engineStep && summary.engineStep.decodeSteps >= 1 && summary.engineStep.decodeStepP50Ms > 0, JSON.stringify(summary.engineStep));
  }
  // every request is recorded, and the adapters of the demo model were used (baseFraction < 1)
  assert.equal(results.records.length, 2 * requested);
  assert.ok(results.records.some((r) => r.adapter !== null));
  assert.ok(results.records.every((r) => r.ttftMs !== null && r.ttftMs <= r.e2eMs));
  assert.ok(results.checks.length >= 2 && results.checks.every((c) => c.passed), JSON.stringify(results.checks));

  for (const file of ['results.json', 'report.md', 'ttft-cdf.svg', 'e2e-cdf.svg', 'ttft-bars.svg', 'throughput-bars.svg']) {
    assert.ok(existsSync(join(outDir, file)), file);
  }
  assert.match(readFileSync(join(outDir, 'report.md'), 'utf8'), /\| TTFT p50 \|/);
  // the human summary goes to stderr with --json, so stdout stayed pure JSON
  assert.match(run.stderr, /csgmv \(\/A\)/);
});

test('a failing --check exits with status 7 (checkFailed)', { timeout: 180_000 }, () => {
  const outDir = mkdtempSync(join(tmpdir(), 'bench-check-'));
  const run = spawnSync(process.execPath, [
    join(REPO_ROOT, 'bin', 'tslora.js'), 'bench', 'ci-smoke', '--variants', 'csgmv', '--requests', '2', '--out', outDir,
    '--server-args', '--num-threads 1', '--check', 'csgmv.ttft_p50 < 0',
  ], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 170_000 });
  assert.equal(run.status, 7, run.stderr);
  assert.match(run.stdout, /check csgmv\.ttft_p50 < 0: [\d.]+ < 0 FAILED/);
});
