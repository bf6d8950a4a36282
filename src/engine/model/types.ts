/**
 * The contract between model/adapter loading (config.json, safetensors headers, PEFT adapters) and the native
 * runner. Loading code produces these plain objects; src/binding passes them to the addon unchanged.
 * Tensors are never read into the JS heap: a TensorRef points into a file that the addon memory-maps.
 */

export type DType = 'f32' | 'f16' | 'bf16';

/** One tensor inside a safetensors file: absolute byte offset of its data in the file (header included). */
export interface TensorRef {
  /** Index into the owning `files` array. */
  file: number;
  /** Absolute offset of the first byte of the tensor's data within the file. */
  offsetBytes: number;
  /** Length in bytes; must equal product(shape) * bytesPerElement(dtype). */
  sizeBytes: number;
  dtype: DType;
  shape: number[];
}

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface RopeScaling {
  /** 'none' = plain RoPE; 'llama3' = Llama 3.x frequency-dependent scaling; 'linear' = position / factor. */
  type: 'none' | 'llama3' | 'linear';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** Numeric description of a decoder-only transformer, parsed from config.json. */
export interface ModelSpec {
  architecture: Architecture;
  /** The `architectures[0]` string from config.json, e.g. "LlamaForCausalLM". */
  hfArchitecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Qwen2: q/k/v projections carry a bias. */
  qkvBias: boolean;
  /** Qwen3: per-head RMSNorm on q and k before RoPE. */
  qkNorm: boolean;
  /** dtype of the checkpoint's weights (the largest share of bytes). */
  weightDtype: DType;
  bosTokenId: number | null;
  /** All ids that end generation (config.json + generation_config.json). */
  eosTokenIds: number[];
}

export interface LayerWeights {
  inputNorm: TensorRef; // [hidden]
  postAttentionNorm: TensorRef; // [hidden]
  qProj: TensorRef; // [numHeads*headDim, hidden]
  kProj: TensorRef; // [numKvHeads*headDim, hidden]
  vProj: TensorRef; // [numKvHeads*headDim, hidden]
  oProj: TensorRef; // [hidden, numHeads*headDim]
  gateProj: TensorRef; // [intermediate, hidden]
  upProj: TensorRef; // [intermediate, hidden]
  downProj: TensorRef; // [hidden, intermediate]
  qBias?: TensorRef; // [numHeads*headDim]      (qwen2)
  kBias?: TensorRef; // [numKvHeads*headDim]    (qwen2)
  vBias?: TensorRef; // [numKvHeads*headDim]    (qwen2)
  qNorm?: TensorRef; // [headDim]               (qwen3)
  kNorm?: TensorRef; // [headDim]               (qwen3)
}

export interface ModelWeights {
  /** Absolute paths of the safetensors files (one, or the shards of model.safetensors.index.json). */
  files: string[];
  embedTokens: TensorRef; // [vocab, hidden]
  finalNorm: TensorRef; // [hidden]
  /** The output projection [vocab, hidden]; the same ref as embedTokens when embeddings are tied. */
  lmHead: TensorRef;
  layers: LayerWeights[];
}

/** Names of the projections a LoRA pool can be built for (spec a.4, after normalisation to fused names). */
export type LoraTargetModule = 'qkv_proj' | 'o_proj' | 'gate_up_proj' | 'down_proj' | 'embed_tokens' | 'lm_head';

/** Un-fused projection a PEFT tensor belongs to. */
export type LoraModuleName =
  | 'q_proj'
  | 'k_proj'
  | 'v_proj'
  | 'o_proj'
  | 'gate_proj'
  | 'up_proj'
  | 'down_proj'
  | 'embed_tokens'
  | 'lm_head';

/** One LoRA pair of one module of one layer (layer = -1 for embed_tokens / lm_head). */
export interface LoraTensorPair {
  layer: number;
  module: LoraModuleName;
  /** This module's rank r_m (≤ the adapter's rank; smaller ranks are zero-padded natively). */
  rank: number;
  /** σ_m = α_m / r_m, or α_m / sqrt(r_m) with rsLoRA; folded into B natively in fp32. */
  scaling: number;
  /** lora_A: [r_m, in]. For embed_tokens (lora_embedding_A): [r_m, vocab]. */
  a: TensorRef;
  /** lora_B: [out, r_m]. For embed_tokens (lora_embedding_B): [hidden, r_m]. */
  b: TensorRef;
}

/** A validated PEFT adapter, ready to be converted into a host-tier copy by the addon. */
export interface AdapterSpec {
  /** Directory the adapter was loaded from. */
  path: string;
  /** [adapter_model.safetensors] */
  files: string[];
  /** The adapter's rank: the largest r_m over its tensors (its device slot uses exactly this rank). */
  rank: number;
  /** Normalised fused module names this adapter touches (⊆ the pool's target set). */
  targetModules: LoraTargetModule[];
  tensors: LoraTensorPair[];
  /** Total bytes of LoRA tensor data in the file. */
  sizeBytes: number;
}
