// The LoRA delta in the skinny GEMM's epilogue (TSLORA_CUDA_SKINNY_LORA, native/src/cuda/engine/skinny-gemm.h
// SkinnyLora) must not change a single logit: decode steps of 1 and 2 rows with adapters (two adapters, base beside
// adapter, one adapter; triton and csgmv; bf16 and fp16; eager and decode-graph replays; driver
// test/gpu/skinny-lora-step-logits.ts, one process per setting) give bit-identical logits with the switch off and on
// (the small-step shrink as its own launch, the expand in the skinny GEMM's epilogue), and on with the fused SwiGLU /
// qkv-RoPE epilogues off (the plain epilogue alone). The fused kernel itself is checked against the skinny GEMM +
// small-step expand in native/src/cuda/engine/test/skinny-lora-test.cu (GPU, test/gpu/skinny-lora-kernel.test.ts; host
// emulator, test/native/skinny-lora-emu.test.ts); PEFT parity with the switch on is cuda-parity-fixtures run with it set.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { cudaBackendOrSkip } from './cuda-parity-helpers.js';

const { skip } = cudaBackendOrSkip();

test('the LoRA delta in the skinny GEMM epilogue on or off gives bit-identical logits (1-2 row decode, eager and graphs)', { skip, timeout: 300_000 }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-skinny-lora-'));
  try {
    const run = (label: string, env: Record<string, string>): Float32Array => {
      const file = join(dir, `logits-${label}.bin`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/gpu/skinny-lora-step-logits.ts', file], {
        encoding: 'utf8', env: { ...process.env, ...env },
      });
      assert.equal(r.status, 0, `${label}:\n${r.stdout}${r.stderr}`);
      // decode-graph.cu says so on stderr when a capture fails (the graph runs would silently be eager ones).
      assert.doesNotMatch(r.stderr, /CUDA graph .* failed/, `${label}: ${r.stderr}`);
      t.diagnostic(`${label}: ${r.stdout.trim()}`);
      const bytes = readFileSync(file);
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    };
    const off = run('off', { TSLORA_CUDA_SKINNY_LORA: '0' });
    assert.ok(off.length > 0 && off.every(Number.isFinite), 'every logit finite');
    const variants: Array<[string, Record<string, string>]> = [
      ['on', { TSLORA_CUDA_SKINNY_LORA: '1' }],
      ['on-plain-epilogues', { TSLORA_CUDA_SKINNY_LORA: '1', TSLORA_CUDA_FUSED_SWIGLU: '0', TSLORA_CUDA_FUSED_QKV_ROPE: '0' }],
    ];
    for (const [label, env] of variants) {
      const got = run(label, env);
      assert.equal(got.length, off.length, `${label}: ${got.length} logits, ${off.length} with the switch off`);
      let differing = 0;
      for (let i = 0; i < got.length; i++) if (!Object.is(got[i], off[i])) differing++;
      assert.equal(differing, 0, `${label}: ${differing} of ${got.length} logits differ from the switch off`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
