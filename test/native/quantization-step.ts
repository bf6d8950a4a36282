// How far the int8 LoRA pool's quantization (native/src/lora/lora.h, PoolDType::I8) can move an adapter, from its own
// weights: every lora_A row and every lora_B row (an output feature) is quantized with a step of 1/127 of its largest
// |value|, so each weight moves by at most half a step, and the row as a vector by at most
//   ||δrow||₂ ≤ √n · absmax / 254 = ||row||₂ · (absmax / rms) / 254.
// stepBound(adapter) = max over the adapter's A rows + max over its B rows of (absmax / rms) / 254: the largest relative
// change the quantization can make to any row's product with an input (to first order, the two factors add). The PEFT
// parity test with the int8 pool derives its logits tolerance from it.
import { readFileSync } from 'node:fs';

import type { AdapterSpec, TensorRef } from '../../src/engine/model/types.js';
import { fromBf16Bits, fromF16Bits } from './forward-random-model.js';

function tensorValues(adapter: AdapterSpec, files: Map<number, Buffer>, ref: TensorRef): Float32Array {
  if (!files.has(ref.file)) files.set(ref.file, readFileSync(adapter.files[ref.file]));
  const bytes = files.get(ref.file)!.subarray(ref.offsetBytes, ref.offsetBytes + ref.sizeBytes);
  const n = ref.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (ref.dtype === 'f32') out[i] = bytes.readFloatLE(4 * i);
    else if (ref.dtype === 'bf16') out[i] = fromBf16Bits(bytes.readUInt16LE(2 * i));
    else out[i] = fromF16Bits(bytes.readUInt16LE(2 * i));
  }
  return out;
}

/** max over rows of v [rows, cols] of (max |v| / rms) / 254; 0 for all-zero rows. */
function worstRowStep(v: Float32Array, cols: number): number {
  let worst = 0;
  for (let r = 0; r < v.length / cols; r++) {
    let max = 0;
    let sq = 0;
    for (let k = 0; k < cols; k++) {
      const x = Math.abs(v[r * cols + k]);
      max = Math.max(max, x);
      sq += x * x;
    }
    if (sq > 0) worst = Math.max(worst, max / Math.sqrt(sq / cols) / 254);
  }
  return worst;
}

export function stepBound(adapter: AdapterSpec): number {
  const files = new Map<number, Buffer>();
  let a = 0;
  let b = 0;
  for (const pair of adapter.tensors) {
    a = Math.max(a, worstRowStep(tensorValues(adapter, files, pair.a), pair.a.shape[1]));
    b = Math.max(b, worstRowStep(tensorValues(adapter, files, pair.b), pair.b.shape[1]));
  }
  return a + b;
}
