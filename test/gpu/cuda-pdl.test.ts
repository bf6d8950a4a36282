// Programmatic dependent launch (native/src/cuda/engine/pdl.h) changes when the engine's kernels start, never what
// they compute: the same steps with TSLORA_CUDA_PDL=1 and =0 (one process each, the switch is read once) must give
// bit-identical logits, eager and in decode-graph replays (tiny-llama, csgmv, base and adapter rows; driver:
// test/gpu/pdl-step-logits.ts). A kernel reading a predecessor's output before its griddepcontrol.wait, or completing
// without waiting, shows up as a difference here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { cudaBackendOrSkip } from './cuda-parity-helpers.js';

const { skip } = cudaBackendOrSkip();

test('PDL on and off give bit-identical logits (eager steps and graph replays)', { skip, timeout: 300_000 }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-pdl-'));
  try {
    const run = (pdl: '0' | '1'): Buffer => {
      const file = join(dir, `logits-pdl${pdl}.bin`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/gpu/pdl-step-logits.ts', file], {
        encoding: 'utf8', env: { ...process.env, TSLORA_CUDA_PDL: pdl },
      });
      assert.equal(r.status, 0, `TSLORA_CUDA_PDL=${pdl}:\n${r.stdout}${r.stderr}`);
      t.diagnostic(r.stdout.trim());
      return readFileSync(file);
    };
    const on = run('1');
    const off = run('0');
    assert.ok(on.length > 0 && on.length === off.length, `logit bytes: ${on.length} with PDL, ${off.length} without`);
    const a = new Float32Array(on.buffer, on.byteOffset, on.length / 4);
    const b = new Float32Array(off.buffer, off.byteOffset, off.length / 4);
    let differing = 0;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) differing++;
    assert.equal(differing, 0, `${differing} of ${a.length} logits differ between PDL on and off`);
    assert.ok(a.every(Number.isFinite), 'every logit finite');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
