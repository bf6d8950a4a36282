/**
 * Sizes the paged KV cache from the memory flags (spec a.5). GPU: --mem-fraction-static of device memory minus
 * weights and the LoRA pool. CPU: the same fraction of host memory when given; otherwise enough positions for
 * the running-request cap at full context length, capped at a quarter of memory (at most 8 GiB).
 */
import { TsloraError } from '../../errors.js';
import type { ModelSpec, ModelWeights } from '../model/types.js';

export interface KvSizingInput {
  spec: ModelSpec;
  weights: ModelWeights;
  device: 'cpu' | 'cuda';
  computeBytesPerElement: number;
  /** Bytes per cached K or V element (default computeBytesPerElement; 2 for the CPU's bf16 KV cache). */
  kvBytesPerElement?: number;
  totalMemoryBytes: number;
  memFractionStatic: number | null;
  contextLength: number;
  blockSize: number;
  maxRunningRequests: number | null;
  loraPoolBytes: number;
  /** Tensor-parallel ranks (default 1): with fewer KV heads than ranks each head is cached on several ranks. */
  tpSize?: number;
}

export interface KvSizing {
  numBlocks: number;
  maxRunningRequests: number;
  bytesPerBlock: number;
}

const GiB = 1024 ** 3;

export function weightBytes(weights: ModelWeights, computeBytesPerElement: number): number {
  const refs = [weights.embedTokens, weights.finalNorm, ...(weights.lmHead === weights.embedTokens ? [] : [weights.lmHead])];
  for (const layer of weights.layers) refs.push(...Object.values(layer).filter((r): r is NonNullable<typeof r> => r !== undefined));
  return refs.reduce((n, r) => n + r.shape.reduce((a, b) => a * b, 1) * computeBytesPerElement, 0);
}

export function sizeKvCache(input: KvSizingInput): KvSizing {
  const { spec, blockSize, contextLength } = input;
  const cachedKvHeads = Math.max(spec.numKvHeads, input.tpSize ?? 1); // over all ranks (docs/tensor-parallel.md)
  const bytesPerToken = 2 * spec.numLayers * cachedKvHeads * spec.headDim * (input.kvBytesPerElement ?? input.computeBytesPerElement);
  const bytesPerBlock = bytesPerToken * blockSize;
  const weights = weightBytes(input.weights, input.computeBytesPerElement);
  let budget: number;
  if (input.memFractionStatic !== null || input.device === 'cuda') {
    const fraction = input.memFractionStatic ?? 0.85;
    budget = fraction * input.totalMemoryBytes - weights - input.loraPoolBytes;
  } else {
    const wantedRequests = input.maxRunningRequests ?? 128;
    budget = Math.min(wantedRequests * contextLength * bytesPerToken, Math.min(input.totalMemoryBytes / 4, 8 * GiB));
  }
  // More positions than every running request at full context could use are never touched: cap there, so a
  // small model on a large GPU does not reserve (and index) tens of gigabytes of KV for nothing.
  const runningCap = input.maxRunningRequests ?? (input.device === 'cpu' ? 128 : 512);
  const usefulBlocks = runningCap * Math.ceil(contextLength / blockSize) * 2;
  const numBlocks = Math.min(Math.floor(budget / bytesPerBlock), usefulBlocks);
  const minBlocks = Math.ceil(contextLength / blockSize);
  if (numBlocks < minBlocks) {
    throw new TsloraError(
      'usage',
      `the KV cache would hold ${Math.max(0, numBlocks) * blockSize} token positions, fewer than one request at the context length (${contextLength}).`,
      { hint: 'Raise --mem-fraction-static or lower --context-length.', param: 'memFractionStatic' },
    );
  }
  const derived = Math.max(1, Math.min(input.device === 'cpu' ? 128 : 512, Math.floor((numBlocks * blockSize) / Math.min(contextLength, 512))));
  return { numBlocks, maxRunningRequests: input.maxRunningRequests ?? derived, bytesPerBlock };
}

/** Shape of one LoRA target module as the pools store it: A [slices × R, in], B [out, R]; `perLayer` false for the
 *  modules that exist once (embed_tokens: in = the vocabulary; lm_head: out = the vocabulary). */
interface LoraModuleShape {
  in: number;
  slices: number;
  out: number;
  perLayer: boolean;
}

function loraModuleShapes(spec: ModelSpec): Record<string, LoraModuleShape> {
  const h = spec.hiddenSize;
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  const layer = (inDim: number, slices: number, out: number) => ({ in: inDim, slices, out, perLayer: true });
  return {
    qkv_proj: layer(h, 3, q + 2 * kv),
    o_proj: layer(q, 1, h),
    gate_up_proj: layer(h, 2, 2 * spec.intermediateSize),
    down_proj: layer(spec.intermediateSize, 1, h),
    embed_tokens: { in: spec.vocabSize, slices: 1, out: h, perLayer: false },
    lm_head: { in: h, slices: 1, out: spec.vocabSize, perLayer: false },
  };
}

/** Σ over the target modules (× layers for the per-layer ones) of perModule(shape). */
function sumOverModules(spec: ModelSpec, modules: readonly string[], perModule: (m: LoraModuleShape) => number): number {
  const shapes = loraModuleShapes(spec);
  let total = 0;
  for (const name of modules) {
    const m = shapes[name];
    if (m !== undefined) total += perModule(m) * (m.perLayer ? spec.numLayers : 1);
  }
  return total;
}

/** LoRA pool bytes: S slots × R × (in + out) of every target module in every layer. */
export function loraPoolBytes(spec: ModelSpec, slots: number, rank: number, modules: readonly string[], bytesPerElement: number): number {
  return slots * rank * sumOverModules(spec, modules, (m) => m.slices * m.in + m.out) * bytesPerElement;
}

/**
 * The int8 pool's fp32 scales (native/src/lora/lora.h, PoolDType::I8) on top of loraPoolBytes(…, 1): per slot, layer
 * and module, one per A row (slices × R) and one per output column (padded to the 16-column panels of Bᵀ).
 */
export function loraPoolScaleBytes(spec: ModelSpec, slots: number, rank: number, modules: readonly string[]): number {
  const panels = (out: number) => Math.ceil(out / 16) * 16;
  return slots * sumOverModules(spec, modules, (m) => m.slices * rank + panels(m.out)) * 4;
}
