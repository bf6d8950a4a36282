// scripts/run-tests.mjs counts skipped suites and cases with their reasons, and fails a GPU-required run whose GPU
// suites skip or fail.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

function runTests(args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['scripts/run-tests.mjs', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, out: r.stdout + r.stderr };
}

test('the summary counts a skipped suite, a declared skip and a skip from inside a case, each with its reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-skips-'));
  try {
    const file = join(dir, 'skips.test.mjs');
    writeFileSync(file, [
      "import { describe, it, test } from 'node:test';",
      "describe('gpu things', { skip: 'no device here' }, () => { it('a', () => {}); it('b', () => {}); });",
      "test('declared', { skip: 'declared reason' }, () => {});",
      "test('inside', (t) => { t.skip('decided at run time'); });",
      "test('runs', () => {});",
      "test('runs too', () => {});",
    ].join('\n'));
    const { status, out } = runTests([file], { TSLORA_REQUIRE_CUDA: '0' });
    assert.equal(status, 0, out);
    assert.match(out, /tslora tests: 2 cases run \(2 passed, 0 failed\), 2 cases skipped, 1 suites skipped/);
    assert.match(out, /skipped 1 suite in .*skips\.test\.mjs \("gpu things"\): no device here/);
    assert.match(out, /skipped 1 case in .*skips\.test\.mjs: declared reason/);
    assert.match(out, /skipped 1 case in .*skips\.test\.mjs: decided at run time/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TSLORA_REQUIRE_CUDA=1 fails a GPU run that cannot pass (the 1B test without its reference)', () => {
  const env = { TSLORA_REQUIRE_CUDA: '1', TSLORA_1B_REFERENCE: '' };
  const { status, out } = runTests(['test/gpu/cuda-parity-1b.test.ts'], env);
  assert.notEqual(status, 0, out);
  assert.match(out, /the 1B reference exists where a GPU is required \(TSLORA_REQUIRE_CUDA=1\)/);
  assert.match(out, /GPU required \(TSLORA_REQUIRE_CUDA=1\) but .*: FAIL/);
});
