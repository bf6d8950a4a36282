/** Published shapes of the models bench can imitate, as Hugging Face config.json objects. */
import type { SynthDType } from './random-fill.js';

export type SynthShape = 'llama-3.1-8b' | 'llama-3.2-1b' | 'qwen2.5-0.5b' | 'tiny';

export interface ShapeSpec {
  family: 'llama' | 'qwen2';
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositions: number;
  tied: boolean;
  ropeScaling: Record<string, unknown> | null;
}

const LLAMA3_ROPE = (factor: number) => ({
  factor,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  original_max_position_embeddings: 8192,
  rope_type: 'llama3',
});

export const SHAPES: Record<SynthShape, ShapeSpec> = {
  'llama-3.1-8b': {
    family: 'llama', hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 128, vocab: 128256,
    rmsNormEps: 1e-5, ropeTheta: 500000, maxPositions: 131072, tied: false, ropeScaling: LLAMA3_ROPE(8),
  },
  'llama-3.2-1b': {
    family: 'llama', hidden: 2048, intermediate: 8192, layers: 16, heads: 32, kvHeads: 8, headDim: 64, vocab: 128256,
    rmsNormEps: 1e-5, ropeTheta: 500000, maxPositions: 131072, tied: true, ropeScaling: LLAMA3_ROPE(32),
  },
  'qwen2.5-0.5b': {
    family: 'qwen2', hidden: 896, intermediate: 4864, layers: 24, heads: 14, kvHeads: 2, headDim: 64, vocab: 151936,
    rmsNormEps: 1e-6, ropeTheta: 1000000, maxPositions: 32768, tied: true, ropeScaling: null,
  },
  tiny: {
    family: 'llama', hidden: 64, intermediate: 176, layers: 2, heads: 4, kvHeads: 2, headDim: 16, vocab: 512,
    rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 4096, tied: false, ropeScaling: null,
  },
};

/** Token ids of the synthetic byte-level tokenizer's specials (after the 256 byte tokens). */
export const SYNTH_BOS_ID = 256;
export const SYNTH_EOS_ID = 257;

const TORCH_DTYPE: Record<SynthDType, string> = { bf16: 'bfloat16', f16: 'float16', f32: 'float32' };

export function hfConfig(shape: ShapeSpec, dtype: SynthDType, shapeName: string): Record<string, unknown> {
  const common = {
    hidden_size: shape.hidden,
    intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    head_dim: shape.headDim,
    vocab_size: shape.vocab,
    rms_norm_eps: shape.rmsNormEps,
    rope_theta: shape.ropeTheta,
    rope_scaling: shape.ropeScaling,
    max_position_embeddings: shape.maxPositions,
    tie_word_embeddings: shape.tied,
    hidden_act: 'silu',
    initializer_range: 0.02,
    bos_token_id: SYNTH_BOS_ID,
    eos_token_id: SYNTH_EOS_ID,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
    _tslora_synthetic: `random weights in the shape of ${shapeName} (tslora synth model)`,
  };
  if (shape.family === 'qwen2') {
    return {
      architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', ...common,
      use_sliding_window: false, sliding_window: null, max_window_layers: shape.layers, attention_dropout: 0.0,
    };
  }
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', ...common,
    attention_bias: false, mlp_bias: false, attention_dropout: 0.0, pretraining_tp: 1,
  };
}

/** [out, in] of each projection of one layer. */
export function projectionShapes(shape: Pick<ShapeSpec, 'hidden' | 'intermediate' | 'heads' | 'kvHeads' | 'headDim'>): Record<string, [number, number]> {
  const q = shape.heads * shape.headDim;
  const kv = shape.kvHeads * shape.headDim;
  return {
    q_proj: [q, shape.hidden],
    k_proj: [kv, shape.hidden],
    v_proj: [kv, shape.hidden],
    o_proj: [shape.hidden, q],
    gate_proj: [shape.intermediate, shape.hidden],
    up_proj: [shape.intermediate, shape.hidden],
    down_proj: [shape.hidden, shape.intermediate],
  };
}

export const ATTENTION_MODULES = new Set(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
