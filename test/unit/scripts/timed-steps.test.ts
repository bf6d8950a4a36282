/**
 * scripts/lib/timed-steps.sh, the time-boxed steps every device script sources (gpu-suite.sh, adapter-path-suite.sh,
 * sidex-round.sh, bench/cuda/step64-round.sh): a step runs with its log, is cut by the budget and reports 124 when
 * cut, is skipped once too little is left, and the summary lines say so.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const lib = resolve('scripts/lib/timed-steps.sh');

test('a step logs its output, records its status and passes it on', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-timed-steps-'));
  try {
    const r = spawnSync('bash', ['-c', `set -u; STEPS_BUDGET_S=60 STEPS_T0=$(date +%s) STEPS_LOG_DIR=${dir} STEPS_SUMMARY=${dir}/summary.txt
source ${lib}
step ok 20 ok.log bash -c 'echo hello; exit 0'; echo "rc1=$?"
step fails 20 fails.log bash -c 'echo bad >&2; exit 3'; echo "rc2=$?"`], { encoding: 'utf8' });
    assert.match(r.stdout, /rc1=0/);
    assert.match(r.stdout, /rc2=3/);
    assert.equal(readFileSync(join(dir, 'ok.log'), 'utf8'), 'hello\n');
    assert.equal(readFileSync(join(dir, 'fails.log'), 'utf8'), 'bad\n');
    const lines = readFileSync(join(dir, 'summary.txt'), 'utf8').trim().split('\n');
    assert.match(lines[0], /^ok: rc=0 \(\d+ s, limit 20 s\)$/);
    assert.match(lines[1], /^fails: rc=3 \(\d+ s, limit 20 s\)$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the budget cuts a step (status 124) and the next one is skipped; the reserve and the tag apply', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-timed-steps-'));
  try {
    // 14 s budget, 2 s reserve, 10 s minimum: the first step gets 12 s of its 60 and is cut; then < 10 s are left
    const r = spawnSync('bash', ['-c', `set -u; STEPS_BUDGET_S=14 STEPS_RESERVE_S=2 STEPS_KILL_S=1 STEPS_TAG=t STEPS_T0=$(date +%s) STEPS_LOG_DIR=${dir} STEPS_SUMMARY=${dir}/summary.txt
source ${lib}
step long 60 long.log sleep 30; echo "rc1=$?"
step next 5 next.log true; echo "rc2=$?"; echo "left=$(left)"`], { encoding: 'utf8', timeout: 40_000 });
    assert.match(r.stdout, /rc1=124/);
    assert.match(r.stdout, /rc2=1/);
    assert.ok(Number(/left=(-?\d+)/.exec(r.stdout)![1]) <= 2);
    const lines = readFileSync(join(dir, 'summary.txt'), 'utf8').trim().split('\n');
    assert.match(lines[0], /^\[t 1[23] s\] long: rc=124 \(1[23] s, limit 12 s\)$/);
    assert.match(lines[1], /^\[t 1[23] s\] next: SKIPPED \(budget spent\)$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
