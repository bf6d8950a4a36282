/**
 * Writes random decoder models and LoRA adapters as real safetensors files (for the forward tests and the native
 * microbenchmark) and returns the ModelSpec / ModelWeights / AdapterSpec that point into them. Values are drawn
 * from a seeded generator; with `keepValues` the fp32 value of every tensor (after dtype rounding) is returned
 * for JS reference computations.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { float32ToBfloat16Bits } from '../../src/bench/synth/random-fill.js';

import type {
  AdapterSpec,
  DType,
  LayerWeights,
  LoraModuleName,
  LoraTensorPair,
  ModelSpec,
  ModelWeights,
  RopeScaling,
  TensorRef,
} from '../../src/engine/model/types.js';
import type { StepSampling } from '../../src/engine/model/runner-types.js';

/** Greedy sampling without logprobs: the StepSampling most forward tests step their rows with. */
export const greedy: StepSampling = {
  temperature: 0, topP: 1, topK: 0, minP: 0, seed: 0, generatedCount: 0, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 0, wantLogprob: false,
};

export interface RandomModelOptions {
  dir: string;
  hidden: number;
  intermediate: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim?: number;
  vocab: number;
  dtype: DType;
  tieWordEmbeddings?: boolean;
  qkvBias?: boolean;
  qkNorm?: boolean;
  ropeTheta?: number;
  ropeScaling?: RopeScaling;
  seed?: number;
  /** Weights are uniform in ±weightScale / sqrt(fan-in) (embeddings: ±weightScale). */
  weightScale?: number;
  keepValues?: boolean;
}

export interface RandomModel {
  spec: ModelSpec;
  weights: ModelWeights;
  /** Tensor name → fp32 values (only with keepValues). */
  values: Map<string, Float32Array>;
  sizeBytes: number;
}

/** mulberry32: a small seeded generator of uniform floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Round-to-nearest-even fp32 → bf16 bits (the synthetic models' encoder). */
export const toBf16Bits = float32ToBfloat16Bits;
export function fromBf16Bits(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}
/** fp32 → fp16 bits (round to nearest; normal range only, which random weights stay in). */
export function toF16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  let exp = ((bits >>> 23) & 0xff) - 127 + 15;
  let mant = bits & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  mant = mant + 0x1000;
  if (mant & 0x800000) {
    mant = 0;
    exp += 1;
  }
  return sign | (exp << 10) | (mant >>> 13);
}
export function fromF16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2 };
const ST_DTYPE: Record<DType, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

interface PlannedTensor {
  name: string;
  shape: number[];
  fill: (rand: () => number, i: number) => number;
}

/** Writes tensors into one safetensors file; returns a TensorRef per name (and values when asked). */
export function writeSafetensors(
  path: string,
  tensors: PlannedTensor[],
  dtype: DType,
  seed: number,
  keepValues: boolean,
  fileIndex = 0,
): { refs: Map<string, TensorRef>; values: Map<string, Float32Array>; sizeBytes: number } {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    header[t.name] = { dtype: ST_DTYPE[dtype], shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const dataStart = 8 + json.length;
  const fd = openSync(path, 'w');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, prefix);
  writeSync(fd, Buffer.from(json, 'utf8'));
  const refs = new Map<string, TensorRef>();
  const values = new Map<string, Float32Array>();
  const rand = rng(seed);
  let position = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    const buf = Buffer.alloc(count * BYTES[dtype]);
    const kept = keepValues ? new Float32Array(count) : null;
    if (dtype === 'f32') {
      const view = new Float32Array(buf.buffer, buf.byteOffset, count);
      for (let i = 0; i < count; i++) view[i] = t.fill(rand, i);
      kept?.set(view);
    } else {
      const view = new Uint16Array(buf.buffer, buf.byteOffset, count);
      const enc = dtype === 'bf16' ? toBf16Bits : toF16Bits;
      const dec = dtype === 'bf16' ? fromBf16Bits : fromF16Bits;
      for (let i = 0; i < count; i++) {
        view[i] = enc(t.fill(rand, i));
        if (kept) kept[i] = dec(view[i]);
      }
    }
    writeSync(fd, buf);
    refs.set(t.name, { file: fileIndex, offsetBytes: dataStart + position, sizeBytes: buf.length, dtype, shape: t.shape });
    if (kept) values.set(t.name, kept);
    position += buf.length;
  }
  closeSync(fd);
  return { refs, values, sizeBytes: dataStart + position };
}

const uniform = (scale: number) => (rand: () => number) => (rand() * 2 - 1) * scale;
const nearOne = (rand: () => number) => 1 + (rand() * 2 - 1) * 0.2;

export function writeRandomModel(o: RandomModelOptions): RandomModel {
  mkdirSync(o.dir, { recursive: true });
  const D = o.headDim ?? o.hidden / o.numHeads;
  const ws = o.weightScale ?? 1;
  const q = o.numHeads * D;
  const kv = o.numKvHeads * D;
  const plan: PlannedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [o.vocab, o.hidden], fill: uniform(ws) }];
  for (let l = 0; l < o.numLayers; l++) {
    const p = `model.layers.${l}.`;
    plan.push(
      { name: `${p}input_layernorm.weight`, shape: [o.hidden], fill: nearOne },
      { name: `${p}post_attention_layernorm.weight`, shape: [o.hidden], fill: nearOne },
      { name: `${p}self_attn.q_proj.weight`, shape: [q, o.hidden], fill: uniform(ws / Math.sqrt(o.hidden)) },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, o.hidden], fill: uniform(ws / Math.sqrt(o.hidden)) },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, o.hidden], fill: uniform(ws / Math.sqrt(o.hidden)) },
      { name: `${p}self_attn.o_proj.weight`, shape: [o.hidden, q], fill: uniform(ws / Math.sqrt(q)) },
      { name: `${p}mlp.gate_proj.weight`, shape: [o.intermediate, o.hidden], fill: uniform(ws / Math.sqrt(o.hidden)) },
      { name: `${p}mlp.up_proj.weight`, shape: [o.intermediate, o.hidden], fill: uniform(ws / Math.sqrt(o.hidden)) },
      { name: `${p}mlp.down_proj.weight`, shape: [o.hidden, o.intermediate], fill: uniform(ws / Math.sqrt(o.intermediate)) },
    );
    if (o.qkvBias) {
      plan.push(
        { name: `${p}self_attn.q_proj.bias`, shape: [q], fill: uniform(0.5) },
        { name: `${p}self_attn.k_proj.bias`, shape: [kv], fill: uniform(0.5) },
        { name: `${p}self_attn.v_proj.bias`, shape: [kv], fill: uniform(0.5) },
      );
    }
    if (o.qkNorm) {
      plan.push({ name: `${p}self_attn.q_norm.weight`, shape: [D], fill: nearOne }, { name: `${p}self_attn.k_norm.weight`, shape: [D], fill: nearOne });
    }
  }
  plan.push({ name: 'model.norm.weight', shape: [o.hidden], fill: nearOne });
  if (!o.tieWordEmbeddings) plan.push({ name: 'lm_head.weight', shape: [o.vocab, o.hidden], fill: uniform(ws / Math.sqrt(o.hidden)) });

  const file = join(o.dir, 'model.safetensors');
  const { refs, values, sizeBytes } = writeSafetensors(file, plan, o.dtype, o.seed ?? 1, o.keepValues ?? false);
  const r = (name: string): TensorRef => refs.get(name)!;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < o.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const layer: LayerWeights = {
      inputNorm: r(`${p}input_layernorm.weight`),
      postAttentionNorm: r(`${p}post_attention_layernorm.weight`),
      qProj: r(`${p}self_attn.q_proj.weight`),
      kProj: r(`${p}self_attn.k_proj.weight`),
      vProj: r(`${p}self_attn.v_proj.weight`),
      oProj: r(`${p}self_attn.o_proj.weight`),
      gateProj: r(`${p}mlp.gate_proj.weight`),
      upProj: r(`${p}mlp.up_proj.weight`),
      downProj: r(`${p}mlp.down_proj.weight`),
    };
    if (o.qkvBias) {
      layer.qBias = r(`${p}self_attn.q_proj.bias`);
      layer.kBias = r(`${p}self_attn.k_proj.bias`);
      layer.vBias = r(`${p}self_attn.v_proj.bias`);
    }
    if (o.qkNorm) {
      layer.qNorm = r(`${p}self_attn.q_norm.weight`);
      layer.kNorm = r(`${p}self_attn.k_norm.weight`);
    }
    layers.push(layer);
  }
  const embed = r('model.embed_tokens.weight');
  const spec: ModelSpec = {
    architecture: o.qkNorm ? 'qwen3' : o.qkvBias ? 'qwen2' : 'llama',
    hfArchitecture: o.qkNorm ? 'Qwen3ForCausalLM' : o.qkvBias ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM',
    hiddenSize: o.hidden,
    intermediateSize: o.intermediate,
    numLayers: o.numLayers,
    numHeads: o.numHeads,
    numKvHeads: o.numKvHeads,
    headDim: D,
    vocabSize: o.vocab,
    rmsNormEps: 1e-5,
    ropeTheta: o.ropeTheta ?? 10000,
    ropeScaling: o.ropeScaling ?? { type: 'none', factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: o.tieWordEmbeddings ?? false,
    qkvBias: o.qkvBias ?? false,
    qkNorm: o.qkNorm ?? false,
    weightDtype: o.dtype,
    bosTokenId: null,
    eosTokenIds: [],
  };
  const weights: ModelWeights = {
    files: [file],
    embedTokens: embed,
    finalNorm: r('model.norm.weight'),
    lmHead: o.tieWordEmbeddings ? embed : r('lm_head.weight'),
    layers,
  };
  return { spec, weights, values, sizeBytes };
}

/** Input and output widths of each un-fused module for a spec. */
export function moduleShape(spec: ModelSpec, m: LoraModuleName): { in: number; out: number } {
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  switch (m) {
    case 'q_proj':
      return { in: spec.hiddenSize, out: q };
    case 'k_proj':
    case 'v_proj':
      return { in: spec.hiddenSize, out: kv };
    case 'o_proj':
      return { in: q, out: spec.hiddenSize };
    case 'gate_proj':
    case 'up_proj':
      return { in: spec.hiddenSize, out: spec.intermediateSize };
    case 'down_proj':
      return { in: spec.intermediateSize, out: spec.hiddenSize };
    case 'embed_tokens':
      return { in: spec.vocabSize, out: spec.hiddenSize };
    case 'lm_head':
      return { in: spec.hiddenSize, out: spec.vocabSize };
  }
}

/** A random PEFT-like adapter (f32 A [r, in], B [out, r]) for every layer of the given modules. */
export function writeRandomAdapter(
  dir: string,
  spec: ModelSpec,
  rank: number,
  modules: LoraModuleName[],
  seed: number,
  scaling = 2,
  keepValues = false,
): { adapter: AdapterSpec; values: Map<string, Float32Array> } {
  mkdirSync(dir, { recursive: true });
  const plan: PlannedTensor[] = [];
  const pairs: Array<{ layer: number; module: LoraModuleName; a: string; b: string }> = [];
  for (let l = 0; l < spec.numLayers; l++) {
    for (const m of modules) {
      if (m === 'embed_tokens' || m === 'lm_head') continue;
      const s = moduleShape(spec, m);
      const a = `layers.${l}.${m}.lora_A.weight`;
      const b = `layers.${l}.${m}.lora_B.weight`;
      plan.push({ name: a, shape: [rank, s.in], fill: uniform(1 / Math.sqrt(s.in)) }, { name: b, shape: [s.out, rank], fill: uniform(0.5 / rank) });
      pairs.push({ layer: l, module: m, a, b });
    }
  }
  for (const m of modules) {
    if (m !== 'embed_tokens' && m !== 'lm_head') continue;
    const s = moduleShape(spec, m);
    const a = `${m}.lora_A.weight`;
    const b = `${m}.lora_B.weight`;
    plan.push({ name: a, shape: [rank, s.in], fill: uniform(m === 'embed_tokens' ? 1 : 1 / Math.sqrt(s.in)) }, { name: b, shape: [s.out, rank], fill: uniform(0.5 / rank) });
    pairs.push({ layer: -1, module: m, a, b });
  }
  const file = join(dir, 'adapter_model.safetensors');
  const { refs, values, sizeBytes } = writeSafetensors(file, plan, 'f32', seed, keepValues);
  const tensors: LoraTensorPair[] = pairs.map((p) => ({ layer: p.layer, module: p.module, rank, scaling, a: refs.get(p.a)!, b: refs.get(p.b)! }));
  const fused = new Set<AdapterSpec['targetModules'][number]>();
  for (const m of modules) {
    fused.add(
      m === 'q_proj' || m === 'k_proj' || m === 'v_proj' ? 'qkv_proj' : m === 'gate_proj' || m === 'up_proj' ? 'gate_up_proj' : (m as 'o_proj' | 'down_proj' | 'embed_tokens' | 'lm_head'),
    );
  }
  return { adapter: { path: dir, files: [file], rank, targetModules: [...fused], tensors, sizeBytes }, values };
}
