/**
 * config.json (+ generation_config.json) → ModelSpec for the decoder-only architectures tslora runs.
 * Reads both RoPE spellings: `rope_theta` + `rope_scaling` (checkpoints written before transformers 5) and
 * `rope_parameters` (transformers 5).
 */
import { TsloraError } from '../../errors.js';
import type { Architecture, DType, ModelSpec, RopeScaling } from './types.js';

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

export const SUPPORTED_ARCHITECTURES = Object.keys(ARCHITECTURES);

const DEFAULT_ROPE_THETA: Record<Architecture, number> = { llama: 10000, mistral: 10000, qwen2: 10000, qwen3: 10000 };

type Json = Record<string, unknown>;

function invalid(field: string, value: unknown, expected: string): TsloraError {
  return new TsloraError('corrupt_file', `config.json: ${field} must be ${expected}, got ${JSON.stringify(value)}`, {
    hint: 'Fix config.json or re-download the model.',
  });
}

function unsupported(message: string, hint?: string): TsloraError {
  return new TsloraError('unsupported_model', message, { hint });
}

function positiveInt(config: Json, field: string, fallback?: number, prefix = ''): number {
  const value = config[field] ?? fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw invalid(prefix + field, value, 'a positive integer');
  return value;
}

function positiveNumber(config: Json, field: string, fallback?: number, prefix = ''): number {
  const value = config[field] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalid(prefix + field, value, 'a positive number');
  return value;
}

function tokenId(value: unknown, field: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw invalid(field, value, 'a token id');
  return value;
}

function tokenIds(value: unknown, field: string): number[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.map((id, i) => tokenId(id, `${field}[${i}]`) as number);
  return [tokenId(value, field) as number];
}

function parseDtype(value: unknown): DType {
  switch (value) {
    case 'bfloat16':
      return 'bf16';
    case 'float16':
    case 'half':
      return 'f16';
    default:
      return 'f32';
  }
}

/** RoPE parameters from either spelling; `rope_type: default` (or none) means plain RoPE. */
function parseRope(config: Json, architecture: Architecture): { theta: number; scaling: RopeScaling } {
  const params = (config.rope_parameters ?? null) as Json | null;
  const legacy = (config.rope_scaling ?? null) as Json | null;
  const theta = positiveNumber(
    { rope_theta: config.rope_theta ?? params?.rope_theta },
    'rope_theta',
    DEFAULT_ROPE_THETA[architecture],
  );
  const scalingJson = legacy ?? params;
  const prefix = legacy ? 'rope_scaling.' : 'rope_parameters.';
  const none: RopeScaling = { type: 'none', factor: 1, lowFreqFactor: 1, highFreqFactor: 1, originalMaxPositionEmbeddings: 0 };
  if (scalingJson === null || typeof scalingJson !== 'object') return { theta, scaling: none };
  const ropeType = scalingJson.rope_type ?? scalingJson.type ?? 'default';
  switch (ropeType) {
    case 'default':
      return { theta, scaling: none };
    case 'linear':
      return { theta, scaling: { ...none, type: 'linear', factor: positiveNumber(scalingJson, 'factor', undefined, prefix) } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: positiveNumber(scalingJson, 'factor', undefined, prefix),
          lowFreqFactor: positiveNumber(scalingJson, 'low_freq_factor', undefined, prefix),
          highFreqFactor: positiveNumber(scalingJson, 'high_freq_factor', undefined, prefix),
          originalMaxPositionEmbeddings: positiveInt(scalingJson, 'original_max_position_embeddings', undefined, prefix),
        },
      };
    default:
      throw unsupported(`RoPE scaling type '${String(ropeType)}' is not supported (supported: default, linear, llama3).`);
  }
}

function rejectUnsupportedFeatures(config: Json, architecture: Architecture, hfArchitecture: string): void {
  const act = config.hidden_act ?? config.hidden_activation ?? 'silu';
  if (act !== 'silu') throw unsupported(`${hfArchitecture} with hidden_act '${String(act)}' is not supported (only silu).`);
  if (config.mlp_bias === true) throw unsupported(`${hfArchitecture} with mlp_bias is not supported.`);
  // Qwen2 always has q/k/v biases; elsewhere attention_bias would add an o_proj bias too, which tslora lacks.
  if (architecture !== 'qwen2' && config.attention_bias === true) {
    throw unsupported(`${hfArchitecture} with attention_bias is not supported.`);
  }
  const quant = config.quantization_config;
  if (quant !== undefined && quant !== null) {
    throw unsupported(`quantized checkpoints (quantization_config) are not supported.`, 'Use an f32, f16 or bf16 checkpoint.');
  }
}

/** Parses config.json (and optionally generation_config.json) into a ModelSpec. */
export function parseModelConfig(configJson: unknown, generationConfigJson?: unknown): ModelSpec {
  if (configJson === null || typeof configJson !== 'object' || Array.isArray(configJson)) {
    throw invalid('(root)', configJson, 'a JSON object');
  }
  const config = configJson as Json;
  const architectures = config.architectures;
  const hfArchitecture = Array.isArray(architectures) && typeof architectures[0] === 'string' ? architectures[0] : undefined;
  const architecture = hfArchitecture === undefined ? undefined : ARCHITECTURES[hfArchitecture];
  if (hfArchitecture === undefined || architecture === undefined) {
    throw unsupported(
      `model architecture ${hfArchitecture === undefined ? '(config.json has no architectures)' : `'${hfArchitecture}'`} is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}.`,
    );
  }
  rejectUnsupportedFeatures(config, architecture, hfArchitecture);
  const hiddenSize = positiveInt(config, 'hidden_size');
  const numHeads = positiveInt(config, 'num_attention_heads');
  const numKvHeads = positiveInt(config, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw invalid('num_key_value_heads', numKvHeads, `a divisor of num_attention_heads (${numHeads})`);
  }
  const headDim = config.head_dim === undefined || config.head_dim === null ? hiddenSize / numHeads : positiveInt(config, 'head_dim');
  if (!Number.isInteger(headDim)) throw invalid('hidden_size', hiddenSize, `divisible by num_attention_heads (${numHeads})`);
  const rope = parseRope(config, architecture);
  const generation = (generationConfigJson ?? {}) as Json;
  const eos = [...tokenIds(config.eos_token_id, 'eos_token_id'), ...tokenIds(generation.eos_token_id, 'generation_config.eos_token_id')];
  return {
    architecture,
    hfArchitecture,
    hiddenSize,
    intermediateSize: positiveInt(config, 'intermediate_size'),
    numLayers: positiveInt(config, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: positiveInt(config, 'vocab_size'),
    rmsNormEps: positiveNumber(config, 'rms_norm_eps', 1e-6),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    maxPositionEmbeddings: positiveInt(config, 'max_position_embeddings', 4096),
    tieWordEmbeddings: config.tie_word_embeddings === true,
    qkvBias: architecture === 'qwen2',
    qkNorm: architecture === 'qwen3',
    weightDtype: parseDtype(config.torch_dtype ?? config.dtype),
    bosTokenId: tokenId(config.bos_token_id ?? generation.bos_token_id, 'bos_token_id'),
    eosTokenIds: [...new Set(eos)],
  };
}
