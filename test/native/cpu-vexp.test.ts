// The vectorised exp behind SwiGLU and the softmax of attention (native/src/cpu/simd-vec.inc `vexp`, row-kernels.inc):
// every instruction-set copy this machine can run and the one-lane (scalar) twin are held against the float64 exp,
// against each other, and checked to give an element the same value wherever it sits in a row.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { loadNativeTestingOps } from '../../src/binding/index.js';
import { rng } from './forward-random-model.js';

const ops = loadNativeTestingOps();
const { available, active: initial } = ops.cpuKernelIsa();
after(() => ops.selectCpuKernelIsa(initial));

const ulp = 2 ** -23; // relative spacing of fp32 at the bottom of a binade
const copies: Array<{ name: string; scalar: boolean; isa: string }> = [
  ...available.map((isa) => ({ name: isa, scalar: false, isa })),
  { name: 'scalar twin', scalar: true, isa: initial },
];

function run(kind: 'exp' | 'swiglu', a: Float32Array, b: Float32Array | null, copy: (typeof copies)[number]): Float32Array {
  ops.selectCpuKernelIsa(copy.isa);
  return ops.rowKernel(kind, a, b, copy.scalar);
}

function uniform(n: number, lo: number, hi: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

// 1001 elements: a tail that is not a multiple of any vector width; the clamp ends and exact points included.
const expInputs = Float32Array.from([...uniform(1001, -87, 88, 7), 0, 1, -1, 1e-7, -1e-7, 0.5, -0.5, -87.3, 88.3, -20, 20]);

describe('vectorised exp (SwiGLU, softmax)', () => {
  for (const copy of copies) {
    it(`${copy.name}: exp within 2 ulp of the float64 exp over [-87, 88]`, () => {
      const y = run('exp', expInputs, null, copy);
      let worst = 0;
      for (let i = 0; i < expInputs.length; i++) {
        const exact = Math.exp(expInputs[i]);
        worst = Math.max(worst, Math.abs(y[i] - exact) / exact);
      }
      assert.ok(worst <= 2 * ulp, `${copy.name}: worst relative error ${worst} (2 ulp = ${2 * ulp})`);
    });

    it(`${copy.name}: SwiGLU within a few ulp of the float64 silu(gate) · up`, () => {
      const gate = uniform(777, -30, 30, 11);
      const up = uniform(777, -3, 3, 13);
      const y = run('swiglu', gate, up, copy);
      for (let i = 0; i < gate.length; i++) {
        const exact = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
        const bound = 5 * 2 ** -24 * Math.abs(exact) + 1e-37;
        assert.ok(Math.abs(y[i] - exact) <= bound, `${copy.name} [${i}] silu(${gate[i]})·${up[i]}: ${y[i]} vs ${exact}`);
      }
    });
  }

  it('every copy agrees with the scalar twin within 1 ulp, and an element does not depend on its position in the row', () => {
    const twin = run('exp', expInputs, null, copies[copies.length - 1]);
    for (const copy of copies) {
      const y = run('exp', expInputs, null, copy);
      for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i] - twin[i]) <= ulp * twin[i], `${copy.name} [${i}]: ${y[i]} vs twin ${twin[i]}`);
      for (const start of [0, 3, 500, 999, 1010]) {
        for (const len of [1, 5, 17]) {
          const part = run('exp', expInputs.slice(start, start + len), null, copy);
          for (let j = 0; j < part.length; j++) assert.equal(part[j], y[start + j], `${copy.name}: element ${start + j} in a row of ${len}`);
        }
      }
    }
  });

  it('keeps NaN, and saturates instead of producing denormals or inf outside the clamp', () => {
    for (const copy of copies) {
      const y = run('exp', Float32Array.from([Number.NaN, -200, -Infinity, 200]), null, copy);
      assert.ok(Number.isNaN(y[0]), `${copy.name}: exp(NaN) = ${y[0]}`);
      assert.ok(y[1] > 0 && y[1] < 1.2e-38 && y[2] === y[1], `${copy.name}: exp(-200) = ${y[1]}, exp(-inf) = ${y[2]}`);
      assert.ok(Number.isFinite(y[3]) && y[3] > 2e38, `${copy.name}: exp(200) = ${y[3]}`);
    }
  });
});
