/**
 * Random tensor bytes without building whole tensors in memory: a pool of random values (uniform in ±limit, in
 * the target dtype) is made once, and each chunk of a tensor is a window of that pool at a random offset. The
 * weights are meaningless anyway; what matters is that they are finite, non-degenerate and cheap to stream.
 */
import { SeededRandom } from '../workload/random.js';

export type SynthDType = 'bf16' | 'f16' | 'f32';
export const SAFETENSORS_DTYPE: Record<SynthDType, string> = { bf16: 'BF16', f16: 'F16', f32: 'F32' };
export const BYTES_PER_ELEMENT: Record<SynthDType, number> = { bf16: 2, f16: 2, f32: 4 };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half from a float, round-to-nearest-even, with subnormals (enough for weights of small magnitude). */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = ((x >>> 23) & 0xff) - 127 + 15;
  let mantissa = x & 0x7fffff;
  if (exponent >= 0x1f) return sign | 0x7c00; // overflow → inf (never for our magnitudes)
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (half + (rest > midpoint || (rest === midpoint && (half & 1)) ? 1 : 0));
  }
  const half = (exponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1)) ? 1 : 0));
}

/** bf16 bits by round-to-nearest-even of the float32 bits. */
export function float32ToBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function encodeValues(values: ArrayLike<number>, dtype: SynthDType): Buffer {
  const bytes = Buffer.alloc(values.length * BYTES_PER_ELEMENT[dtype]);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'f32') bytes.writeFloatLE(values[i], i * 4);
    else bytes.writeUInt16LE(dtype === 'bf16' ? float32ToBfloat16Bits(values[i]) : float32ToFloat16Bits(values[i]), i * 2);
  }
  return bytes;
}

export class RandomPool {
  /** pool of encoded random values, POOL_ELEMENTS long */
  private readonly pool: Buffer;
  private readonly random: SeededRandom;
  readonly bytesPerElement: number;

  static readonly POOL_ELEMENTS = 1 << 21;

  /** `shared`: the encoded values of another pool of the same dtype (reseeded), instead of drawing new ones. */
  constructor(dtype: SynthDType, limit: number, seed: number, shared?: Buffer) {
    this.random = new SeededRandom(seed);
    this.bytesPerElement = BYTES_PER_ELEMENT[dtype];
    if (shared) {
      this.pool = shared;
      return;
    }
    const values = new Float32Array(RandomPool.POOL_ELEMENTS);
    for (let i = 0; i < values.length; i++) values[i] = (this.random.next() * 2 - 1) * limit;
    this.pool = encodeValues(values, dtype);
  }

  /**
   * The same values, windows drawn by another seed: what `synth adapters` uses per adapter, so that a thousand
   * adapters cost a thousand files, not a thousand pools of 2M encoded values (about 0.1 s each).
   */
  reseeded(dtype: SynthDType, seed: number): RandomPool {
    return new RandomPool(dtype, 0, seed, this.pool);
  }

  /** A window of `elements` random values (elements ≤ POOL_ELEMENTS / 2), at a random offset. */
  chunk(elements: number): Buffer {
    const span = RandomPool.POOL_ELEMENTS - elements;
    const start = this.random.int(0, Math.max(0, span));
    return this.pool.subarray(start * this.bytesPerElement, (start + elements) * this.bytesPerElement);
  }
}
