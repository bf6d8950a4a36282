// Programmatic dependent launch (native/src/cuda/engine/pdl.h, TSLORA_CUDA_PDL) changes when the engine's kernels
// start, never what they compute, and the skinny GEMM's fused epilogues (TSLORA_CUDA_FUSED_SWIGLU,
// TSLORA_CUDA_FUSED_QKV_ROPE) and its L2 prefetch (TSLORA_CUDA_SKINNY_PREFETCH) are bit-identical to the two-kernel
// paths: the same steps (tiny-llama, csgmv, base and adapter rows, eager and decode-graph replays; driver
// test/gpu/pdl-step-logits.ts, one process per setting since the switches are read once) must give bit-identical
// logits with everything off, with everything on, with everything on but PDL, and with everything on but the LoRA
// side stream (TSLORA_CUDA_LORA_SIDE_STREAM: then base GEMM → LoRA shrink → expand → next kernel is one unbroken PDL
// chain, the LoRA kernels being programmatic dependents too, TSLORA_CUDA_LORA_PDL). A kernel reading a predecessor's
// output before its griddepcontrol.wait, or completing without waiting, shows up as a difference here.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { cudaBackendOrSkip } from './cuda-parity-helpers.js';
import { countDiffering, runLogitsDriver } from './logits-driver.js';

const { skip } = cudaBackendOrSkip();
const SWITCHES = ['TSLORA_CUDA_PDL', 'TSLORA_CUDA_FUSED_SWIGLU', 'TSLORA_CUDA_FUSED_QKV_ROPE', 'TSLORA_CUDA_SKINNY_PREFETCH',
  'TSLORA_CUDA_LORA_PDL', 'TSLORA_CUDA_LORA_SIDE_STREAM'];

test('PDL (engine and LoRA kernels), LoRA side stream, fused skinny epilogues and L2 prefetch on or off give bit-identical logits (eager steps and graph replays)', { skip, timeout: 300_000 }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-pdl-'));
  try {
    const run = (label: string, on: string[]): Float32Array => {
      const env = { ...process.env, ...Object.fromEntries(SWITCHES.map((k) => [k, on.includes(k) ? '1' : '0'])) };
      const { logits, line } = runLogitsDriver({ script: 'test/gpu/pdl-step-logits.ts', dir, label, env });
      t.diagnostic(line);
      return logits;
    };
    const plain = run('all-off', []);
    assert.ok(plain.length > 0 && plain.every(Number.isFinite), 'every logit finite');
    const allBut = (name: string) => SWITCHES.filter((k) => k !== name);
    for (const [label, on] of [['all-on', SWITCHES], ['all-on-but-pdl', allBut('TSLORA_CUDA_PDL')],
      ['all-on-but-lora-side-stream', allBut('TSLORA_CUDA_LORA_SIDE_STREAM')]] as const) {
      const got = run(label, [...on]);
      assert.equal(got.length, plain.length, `${label}: ${got.length} logits, ${plain.length} with everything off`);
      const differing = countDiffering(got, plain);
      assert.equal(differing, 0, `${label}: ${differing} of ${got.length} logits differ from everything off`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
