// The runtime-dispatched CPU kernels: every instruction-set copy this machine can run (baseline, avx2, avx512, amx)
// is forced in turn and checked against a float64 reference and against the other copies (equal within rounding),
// for the GEMM alone and for a whole forward step; TSLORA_CPU_ISA picks the copy at load. "amx-emulated" (the AMX
// tile GEMM over a C++ model of the tiles) runs everywhere, so machines without AMX check the tile path's layouts;
// the real AMX copy runs where the CPU has AMX-BF16 and Linux grants the tile state (an Intel Xeon since Sapphire
// Rapids), and is compared with the emulated one there.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend, loadNativeTestingOps } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import { fromBf16Bits, fromF16Bits, rng, toBf16Bits, toF16Bits, writeRandomModel, greedy } from './forward-random-model.js';
import { referenceForward, relativeL2 } from './forward-reference.js';

const ops = loadNativeTestingOps();
const backend = loadNativeBackend('cpu');
const { available, active: initial } = ops.cpuKernelIsa();
// Every copy this machine can run, plus the emulated AMX tiles (selectable by name only).
const tested = [...available, 'amx-emulated'];
const noAmx = available.includes('amx') ? false : 'this CPU has no AMX-BF16, or Linux did not grant the tile state';
const root = mkdtempSync(join(tmpdir(), 'tslora-isa-'));
after(() => {
  ops.selectCpuKernelIsa(initial);
  rmSync(root, { recursive: true, force: true });
});

function randomArray(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

describe('CPU kernel instruction sets', () => {
  it('lists the baseline and starts on the widest available copy', () => {
    assert.ok(available.includes('baseline'), `available: ${available.join(', ')}`);
    assert.ok(!available.includes('amx-emulated'), 'the emulated tiles are never offered');
    assert.equal(initial, process.env.TSLORA_CPU_ISA || available[available.length - 1]);
    assert.throws(() => ops.selectCpuKernelIsa('no-such-isa'), /not available here/);
  });

  function activeWith(env: Record<string, string>) {
    const script = "import { loadNativeTestingOps } from './src/binding/index.ts'; console.log(loadNativeTestingOps().cpuKernelIsa().active)";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return { active: r.stdout.trim(), stderr: r.stderr };
  }

  it('TSLORA_CPU_ISA selects the copy when the addon loads', () => {
    assert.equal(activeWith({ TSLORA_CPU_ISA: 'baseline' }).active, 'baseline');
  });

  it('TSLORA_CPU_ISA=amx where the CPU or OS lacks AMX falls back to the widest copy and says so', { skip: !noAmx && 'this CPU has AMX' }, () => {
    const { active, stderr } = activeWith({ TSLORA_CPU_ISA: 'amx' });
    assert.equal(active, available[available.length - 1]);
    assert.match(stderr, /TSLORA_CPU_ISA=amx is not available/);
  });

  it('AMX: chosen by default, TSLORA_CPU_ISA=avx512 forbids it', { skip: noAmx }, () => {
    assert.equal(activeWith({ TSLORA_CPU_ISA: '' }).active, 'amx');
    assert.equal(activeWith({ TSLORA_CPU_ISA: 'avx512' }).active, 'avx512');
  });

  // Decode shapes (M = 1, 2: the streaming GEMV with prefetch), batched tiles, K tails that are not a vector multiple,
  // and the packed prefill path (M >= packMinRows): whole panels plus a partial one, several k blocks (K > 256),
  // micro-kernel row tails (M % 6), the narrower k blocks of M >= 256.
  const shapes = [[1, 37, 1000], [2, 50, 777], [1, 64, 4096], [3, 19, 65], [9, 40, 256], [70, 9, 33], [53, 40, 700], [64, 48, 31], [300, 17, 520]];
  // int8: the LoRA pool's codes (native/src/lora/lora.h, PoolDType::I8) as a fused shrink's GEMM part, widened exactly,
  // no scale.
  for (const dtype of ['f32', 'bf16', 'f16', 'int8'] as const) {
    it(`${dtype} GEMM: every copy matches the float64 reference and the others within rounding`, () => {
      for (const [M, N, K] of shapes) {
        const x = randomArray(M * K, M * 31 + K);
        const wf = randomArray(N * K, N * 7 + K);
        const codes = dtype === 'int8' ? Int8Array.from(wf, (v) => Math.round(v * 127)) : null;
        const bits = dtype === 'f32' || codes ? null : Uint16Array.from(wf, (v) => (dtype === 'bf16' ? toBf16Bits(v) : toF16Bits(v)));
        const wv = codes ? Array.from(codes) : bits ? Array.from(bits, (b) => (dtype === 'bf16' ? fromBf16Bits(b) : fromF16Bits(b))) : wf;
        const outputs = new Map<string, Float32Array>();
        for (const isa of tested) {
          ops.selectCpuKernelIsa(isa);
          outputs.set(isa, ops.gemm(x, M, codes ?? bits ?? wf, dtype, N, K, 2));
        }
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            let exact = 0;
            let magnitude = 0;
            for (let k = 0; k < K; k++) {
              exact += x[m * K + k] * wv[n * K + k];
              magnitude += Math.abs(x[m * K + k] * wv[n * K + k]);
            }
            // fp32 accumulation of K products: a few ulps of the sum of magnitudes.
            const bound = 4 * K * 2 ** -24 * magnitude + 1e-30;
            for (const [isa, y] of outputs) {
              const err = Math.abs(y[m * N + n] - exact);
              assert.ok(err <= bound, `${isa} ${dtype} M=${M} N=${N} K=${K} [${m},${n}]: ${y[m * N + n]} vs ${exact} (bound ${bound})`);
            }
          }
        }
      }
    });
  }

  it('the packed GEMM path agrees with the row-dot tiles within rounding, whatever the batch size', () => {
    const [M, N, K] = [96, 64, 384];
    const x = randomArray(M * K, 11);
    const w = Uint16Array.from(randomArray(N * K, 12), (v) => toBf16Bits(v));
    const { packMinRows } = ops.cpuKernelIsa();
    try {
      for (const isa of tested) {
        ops.selectCpuKernelIsa(isa);
        ops.setGemmPackMinRows(0);
        const tiles = ops.gemm(x, M, w, 'bf16', N, K, 2);
        ops.setGemmPackMinRows(1);
        const packed = ops.gemm(x, M, w, 'bf16', N, K, 2);
        assert.ok(relativeL2(packed, tiles) < 1e-6, `${isa}: packed vs tiles ${relativeL2(packed, tiles)}`);
        // A row's result does not depend on the batch it is in (one fp32 chain over k per output).
        const firstRows = ops.gemm(x.subarray(0, 7 * K), 7, w, 'bf16', N, K, 1);
        assert.deepEqual(Array.from(firstRows), Array.from(packed.subarray(0, 7 * N)), `${isa}: rows alone = rows in the batch`);
      }
    } finally {
      ops.setGemmPackMinRows(packMinRows);
    }
  });

  // The hardware's rounding inside a tile multiply is not the model's step by step (the results differ by ~1e-6
  // relative at K = 2048 on a Sapphire-Rapids-class Xeon), so each output is held to twice the fp32 bound of the
  // float64 test: a wrong layout or a lost k block is off by the size of the products themselves.
  it('AMX: the real tiles agree with their C++ model (amx-emulated) within fp32 rounding', { skip: noAmx }, () => {
    for (const [M, N, K] of [[16, 16, 32], [53, 40, 700], [300, 48, 520], [33, 100, 2048]]) {
      const x = randomArray(M * K, M + K);
      const w = Uint16Array.from(randomArray(N * K, N + K), (v) => toBf16Bits(v));
      const wv = Array.from(w, fromBf16Bits);
      ops.selectCpuKernelIsa('amx');
      const real = ops.gemm(x, M, w, 'bf16', N, K, 2);
      ops.selectCpuKernelIsa('amx-emulated');
      const model = ops.gemm(x, M, w, 'bf16', N, K, 2);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let magnitude = 0;
          for (let k = 0; k < K; k++) magnitude += Math.abs(x[m * K + k] * wv[n * K + k]);
          const bound = 8 * K * 2 ** -24 * magnitude + 1e-30;
          const err = Math.abs(real[m * N + n] - model[m * N + n]);
          assert.ok(err <= bound, `M=${M} N=${N} K=${K} [${m},${n}]: ${real[m * N + n]} vs ${model[m * N + n]} (bound ${bound})`);
        }
      }
    }
  });

  const packModes = [['default', ops.cpuKernelIsa().packMinRows], ['packed GEMM at every batch size', 1]] as const;
  for (const [packMode, packMinRows] of packModes) it(`a whole forward step matches the float64 reference on every copy (prefill and decode logits, greedy token; ${packMode})`, () => {
    const model = writeRandomModel({ dir: join(root, `m-${packMinRows}`), hidden: 128, intermediate: 192, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 211, dtype: 'bf16', keepValues: true, seed: 5 });
    const prompt = [3, 17, 42, 5, 99, 0, 64, 23, 7, 81];
    const ref = referenceForward(model.spec, model.values, prompt);
    const restorePack = ops.cpuKernelIsa().packMinRows;
    ops.setGemmPackMinRows(packMinRows);
    after(() => ops.setGemmPackMinRows(restorePack));
    for (const isa of tested) {
      ops.selectCpuKernelIsa(isa);
      const runner = new ModelRunner(model, { backend, kvNumBlocks: 8, kvBlockSize: 4, loraSlots: 0, loraMaxRank: 0, loraTargetModules: [], loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 2 });
      try {
        const blocks = [0, 1, 2];
        const [pre] = runner.step([{ tokenIds: prompt.slice(0, 9), startPosition: 0, blockTable: blocks, slot: -1, sampling: greedy, returnLogits: true }]);
        assert.ok(relativeL2(pre.logits!, ref[8]) < 1e-5, `${isa} prefill: relative L2 ${relativeL2(pre.logits!, ref[8])}`);
        const [dec] = runner.step([{ tokenIds: [prompt[9]], startPosition: 9, blockTable: blocks, slot: -1, sampling: greedy, returnLogits: true }]);
        assert.ok(relativeL2(dec.logits!, ref[9]) < 1e-5, `${isa} decode: relative L2 ${relativeL2(dec.logits!, ref[9])}`);
        const argmax = ref[9].reduce((best, v, i, a) => (v > a[best] ? i : best), 0);
        assert.equal(dec.tokenId, argmax, `${isa}: greedy token`);
      } finally {
        runner.destroy();
      }
    }
  });
});
