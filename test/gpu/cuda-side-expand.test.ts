// The side expand (TSLORA_CUDA_LORA_SIDE_EXPAND, native/src/cuda/engine/forward.cu): at decode-sized steps on the
// small-step LoRA kernels a module's expand runs on the LoRA side stream beside the base projection and stores its
// fp32 delta, which the projection's consumer adds as act_round(y + delta): by construction the bits the in-place
// expand leaves in y. So the same steps (driver test/gpu/side-expand-step-logits.ts: three tiny models, csgmv and triton,
// eager and graph replays, batch 1 / 2 / 3 / 20) must give bit-identical logits with it on and off, one process each
// (the switch is read at model construction; separate processes keep every other setting equal). And the consumers'
// delta inputs, compiled for this GPU, against the same kernels on act_round(y + delta)
// (native/src/cuda/engine/test/delta-consumer-test.cpp). The PEFT parity tests run with the default (on).
// With the delta stored in the activation dtype (TSLORA_CUDA_LORA_DELTA_ACT=1, opt-in) the delta is rounded once more,
// so those logits only stay within the graph-vs-eager tolerance (relative L2 2e-2, test/gpu/cuda-graphs) of the off run.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { relativeL2 } from '../native/forward-reference.js';
import { cudaBackendOrSkip } from './cuda-parity-helpers.js';
import { countDiffering, runLogitsDriver } from './logits-driver.js';

const { skip } = cudaBackendOrSkip();

/** A child process's exit status and its stdout + stderr, without blocking the event loop (parallel builds). */
function runAsync(cmd: string, args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args);
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', (err) => resolve({ status: null, output: String(err) }));
    child.on('close', (status) => resolve({ status, output }));
  });
}

test('side expand on / off: bit-identical logits (3 tiny models, csgmv and triton, eager and graph replays, batch 1-20)', { skip, timeout: 300_000 }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-side-expand-'));
  try {
    const run = (value: string, deltaAct = '0'): Float32Array => {
      // The LoRA side stream on in both (the side expand needs it); everything else at its default.
      const { logits, line } = runLogitsDriver({ script: 'test/gpu/side-expand-step-logits.ts', dir, label: `SIDE_EXPAND=${value}-DELTA_ACT=${deltaAct}`,
        env: { ...process.env, TSLORA_CUDA_LORA_SIDE_EXPAND: value, TSLORA_CUDA_LORA_SIDE_STREAM: '1', TSLORA_CUDA_LORA_DELTA_ACT: deltaAct } });
      t.diagnostic(line);
      return logits;
    };
    const off = run('0');
    const on = run('1');
    assert.ok(off.length > 0 && off.every(Number.isFinite), 'every logit finite');
    const differing = countDiffering(on, off);
    assert.equal(differing, 0, `${differing} of ${on.length} logits differ between side expand on and off`);
    const act = run('1', '1');
    assert.equal(act.length, off.length);
    assert.ok(act.every(Number.isFinite), 'every logit finite with the Act delta');
    const err = relativeL2(act, off);
    t.diagnostic(`Act delta (TSLORA_CUDA_LORA_DELTA_ACT=1) vs side expand off: relative L2 ${err.toExponential(2)}`);
    assert.ok(err < 2e-2, `Act delta: relative L2 ${err} against the off run`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the side expand consumers (add + RMSNorm, SwiGLU, qkv post, fused rope + attention) on this GPU: delta input == kernel on act_round(y + delta)', { skip, timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-delta-consumers-'));
  try {
    const exe = join(dir, 'delta-consumer-test');
    const e = 'native/src/cuda/engine';
    const flags = ['-std=c++17', '-O3', '-gencode', 'arch=compute_90a,code=sm_90a', '-DTSLORA_KERNEL_TEST_ON_GPU', '-Inative/include', `-I${e}`];
    // One nvcc per source, in parallel (attention.cu alone takes most of a minute), then the link.
    const sources = [`${e}/test/delta-consumer-test.cpp`, `${e}/attention.cu`, `${e}/attention-prefill.cu`, `${e}/kernels.cu`];
    const objects = sources.map((_, i) => join(dir, `${i}.o`));
    const compiled = await Promise.all(sources.map((src, i) => runAsync('nvcc', [...flags, '-c', src, '-o', objects[i]])));
    compiled.forEach((r, i) => assert.equal(r.status, 0, `${sources[i]}:\n${r.output}`));
    const link = await runAsync('nvcc', ['-gencode', 'arch=compute_90a,code=sm_90a', ...objects, '-o', exe]);
    assert.equal(link.status, 0, link.output);
    const result = spawnSync(exe, [], { encoding: 'utf8' });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /^0 failures$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
