/**
 * Per-step LoRA segment metadata (spec e.3–e.5), built on the host once per forward step and handed to the native
 * kernels unchanged (StepLora in native/src/lora/lora.h).
 *
 * - 'triton': one segment per request over the physical row order (no permutation); requests with no tokens are
 *   dropped; base requests stay as segments with slot -1 (the kernels skip them). chunkSize = the longest segment.
 * - 'csgmv': rows are stably sorted by slot (base rows first, original order kept inside a slot), each run of one
 *   adapter is cut into chunks of at most C rows; all base rows form one slot -1 segment that does no work.
 *   C follows e.5.4: 16 when the cap is 16, else 128 / 32 / 16 for ≥ 256 / ≥ 64 / fewer tokens, capped.
 */
import { TsloraError } from '../../errors.js';

export type LoraBackend = 'triton' | 'csgmv';
export type LoraChunkCap = 16 | 32 | 64 | 128;

export interface LoraSegments {
  /** [numSegments + 1] boundaries over (permuted) row positions; starts at 0, ends at the token count. */
  segIndptr: Int32Array;
  /** [numSegments] slot of each segment; -1 = base (no LoRA work). */
  weightIndices: Int32Array;
  /** [numTokens] physical row of each permuted position; empty = identity. */
  permutation: Int32Array;
  /** csgmv: the chunk size C; triton: the longest segment (at least 1). */
  chunkSize: number;
}

const CHUNK_CAPS: readonly number[] = [16, 32, 64, 128];

/** e.5.4: the csgmv chunk size for a step of `numTokens` tokens under `--max-lora-chunk-size`. */
export function csgmvChunkSize(numTokens: number, maxLoraChunkSize: LoraChunkCap): number {
  if (maxLoraChunkSize === 16) return 16;
  const dynamic = numTokens >= 256 ? 128 : numTokens >= 64 ? 32 : 16;
  return Math.min(dynamic, maxLoraChunkSize);
}

function check(seqSlots: Int32Array, seqTokenCounts: Int32Array, backend: LoraBackend, cap: number): void {
  if (seqSlots.length !== seqTokenCounts.length)
    throw new TsloraError('internal', `LoRA segments: ${seqSlots.length} slots but ${seqTokenCounts.length} token counts`);
  if (backend !== 'triton' && backend !== 'csgmv')
    throw new TsloraError('internal', `LoRA segments: unknown backend '${String(backend)}', expected 'triton' or 'csgmv'`);
  if (!CHUNK_CAPS.includes(cap))
    throw new TsloraError('internal', `LoRA segments: max chunk size ${cap} is not one of 16, 32, 64, 128`);
  for (let i = 0; i < seqSlots.length; i++) {
    if (seqSlots[i] < -1) throw new TsloraError('internal', `LoRA segments: sequence ${i} has slot ${seqSlots[i]}`);
    if (seqTokenCounts[i] < 0)
      throw new TsloraError('internal', `LoRA segments: sequence ${i} has ${seqTokenCounts[i]} tokens`);
  }
}

function buildTriton(seqSlots: Int32Array, seqTokenCounts: Int32Array): LoraSegments {
  const indptr: number[] = [0];
  const weights: number[] = [];
  let position = 0;
  let longest = 1;
  for (let i = 0; i < seqSlots.length; i++) {
    const count = seqTokenCounts[i];
    if (count === 0) continue;
    position += count;
    indptr.push(position);
    weights.push(seqSlots[i]);
    longest = Math.max(longest, count);
  }
  return { segIndptr: Int32Array.from(indptr), weightIndices: Int32Array.from(weights), permutation: new Int32Array(0), chunkSize: longest };
}

function buildCsgmv(seqSlots: Int32Array, seqTokenCounts: Int32Array, cap: LoraChunkCap): LoraSegments {
  let numTokens = 0;
  for (const count of seqTokenCounts) numTokens += count;
  const chunkSize = csgmvChunkSize(numTokens, cap);
  // Stable counting sort of rows by slot: requests in batch order, so rows keep their order inside a slot.
  const order = seqSlots.length === 0 ? [] : Array.from(new Set(seqSlots)).sort((a, b) => a - b);
  const rowsOfSlot = new Map<number, number[]>(order.map((slot) => [slot, []]));
  let row = 0;
  for (let i = 0; i < seqSlots.length; i++) {
    const rows = rowsOfSlot.get(seqSlots[i])!;
    for (let t = 0; t < seqTokenCounts[i]; t++) rows.push(row++);
  }
  const permutation = new Int32Array(numTokens);
  const indptr: number[] = [0];
  const weights: number[] = [];
  let position = 0;
  let identity = true;
  for (const slot of order) {
    const rows = rowsOfSlot.get(slot)!;
    if (rows.length === 0) continue;
    for (const r of rows) {
      identity &&= r === position;
      permutation[position++] = r;
    }
    const start = position - rows.length;
    const step = slot < 0 ? rows.length : chunkSize; // base rows: one segment the kernels skip
    for (let begin = start; begin < position; begin += step) {
      indptr.push(Math.min(position, begin + step));
      weights.push(slot);
    }
  }
  return {
    segIndptr: Int32Array.from(indptr),
    weightIndices: Int32Array.from(weights),
    permutation: identity ? new Int32Array(0) : permutation,
    chunkSize,
  };
}

/** Builds one step's segment tables. seqSlots[i] = the device slot of sequence i (-1 = base model). */
export function buildLoraSegments(
  seqSlots: Int32Array,
  seqTokenCounts: Int32Array,
  backend: LoraBackend,
  maxLoraChunkSize: LoraChunkCap,
): LoraSegments {
  check(seqSlots, seqTokenCounts, backend, maxLoraChunkSize);
  return backend === 'triton' ? buildTriton(seqSlots, seqTokenCounts) : buildCsgmv(seqSlots, seqTokenCounts, maxLoraChunkSize);
}
