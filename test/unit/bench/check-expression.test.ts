import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateCheck, parseCheck, referencedRuns } from '../../../src/bench/check/check-expression.js';
import type { RunSummary } from '../../../src/bench/metrics/records.js';
import { summarizeRun } from '../../../src/bench/metrics/summarize.js';
import { TsloraError } from '../../../src/errors.js';

function summaryWithTtft(run: string, ttftMs: number): RunSummary {
  return summarizeRun({ run, variant: run.split('@')[0], level: null }, [
    { run, variant: run, level: null, round: 0, index: 0, adapter: null, inputTokens: 1, requestedOutputTokens: 2, outputTokens: 2, sentAtMs: 0, ttftMs, e2eMs: ttftMs + 5, itlMs: [5], error: null },
  ], 1000);
}

const runs = new Map([
  ['triton', summaryWithTtft('triton', 100)],
  ['csgmv', summaryWithTtft('csgmv', 105)],
  ['csgmv@c16', summaryWithTtft('csgmv@c16', 50)],
]);

test('parses references, comparisons and scale factors', () => {
  const check = parseCheck('csgmv.ttft_p50 < triton.ttft_p50 * 1.1');
  assert.deepEqual(check.left.ref, { run: 'csgmv', metric: 'ttft_p50' });
  assert.equal(check.op, '<');
  assert.deepEqual(check.right.factors, [1.1]);
  assert.deepEqual(referencedRuns(parseCheck('csgmv@c16.e2e_p99 >= 3')), ['csgmv@c16']);
  assert.deepEqual(parseCheck('2 * 3 / 4 != triton.errors').left.factors, [3, 0.25]);
});

test('evaluates against run summaries', () => {
  assert.equal(evaluateCheck(parseCheck('csgmv.ttft_p50 < triton.ttft_p50 * 1.1'), runs).passed, true);
  assert.equal(evaluateCheck(parseCheck('csgmv.ttft_p50 < triton.ttft_p50'), runs).passed, false);
  assert.equal(evaluateCheck(parseCheck('csgmv@c16.ttft_p50 <= 50.1'), runs).passed, true);
  assert.equal(evaluateCheck(parseCheck('triton.errors == 0'), runs).passed, true);
  const result = evaluateCheck(parseCheck('csgmv.ttft_p50 > triton.ttft_p50 / 2'), runs);
  assert.equal(result.passed, true);
  assert.ok(Math.abs(result.right! - 50) < 0.1); // hdr keeps 3 significant digits
  assert.match(result.message, /ok$/);
});

test('a missing value fails the check instead of passing it', () => {
  const result = evaluateCheck(parseCheck('csgmv.adapter_loads < 5'), runs);
  assert.equal(result.passed, false);
  assert.match(result.message, /no value for csgmv\.adapter_loads/);
  assert.equal(evaluateCheck(parseCheck('other.ttft_p50 < 5'), runs).passed, false);
});

test('syntax errors are usage errors that say what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['csgmv.ttft_p50 <', /operand is missing/],
    ['csgmv.ttft_p50 << 3', /expected a RUN\.METRIC or a number, got '<'/],
    ['csgmv.ttft_p5 < 3', /unknown metric 'ttft_p5'/],
    ['csgmv < 3', /not RUN\.METRIC/],
    ['csgmv.ttft_p50 3', /expected a comparison/],
    ['csgmv.ttft_p50 < 3 * x', /must be followed by a number/],
    ['csgmv.ttft_p50 < 3 / 0', /division by zero/],
    ['csgmv.ttft_p50 < 3 4', /unexpected '4'/],
    ['csgmv.ttft_p50 < 3 $', /unexpected text/],
  ];
  for (const [source, pattern] of cases) {
    assert.throws(() => parseCheck(source), (error: unknown) => error instanceof TsloraError && error.code === 'usage' && pattern.test(error.message), source);
  }
});
