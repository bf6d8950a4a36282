import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseModelConfig } from '../../../src/engine/model/config.js';
import { TsloraError } from '../../../src/errors.js';
import { modelDir, readJson } from './helpers.js';

function fixtureConfig(model: 'tiny-llama' | 'tiny-qwen2' | 'tiny-qwen3') {
  return { config: readJson(join(modelDir(model), 'config.json')), generation: readJson(join(modelDir(model), 'generation_config.json')) };
}

function rejects(config: unknown, code: string, includes: RegExp): void {
  assert.throws(
    () => parseModelConfig(config),
    (error: unknown) => error instanceof TsloraError && error.code === code && includes.test(error.message),
  );
}

test('tiny-llama: GQA, head_dim, llama3 rope scaling from rope_theta + rope_scaling, eos from both files', () => {
  const { config, generation } = fixtureConfig('tiny-llama');
  const spec = parseModelConfig(config, generation);
  assert.equal(spec.architecture, 'llama');
  assert.equal(spec.hfArchitecture, 'LlamaForCausalLM');
  assert.deepEqual([spec.hiddenSize, spec.intermediateSize, spec.numLayers], [64, 128, 2]);
  assert.deepEqual([spec.numHeads, spec.numKvHeads, spec.headDim, spec.vocabSize], [4, 2, 16, 384]);
  assert.equal(spec.rmsNormEps, 1e-5);
  assert.equal(spec.ropeTheta, 10000);
  assert.deepEqual(spec.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
  assert.equal(spec.tieWordEmbeddings, false);
  assert.equal(spec.qkvBias, false);
  assert.equal(spec.qkNorm, false);
  assert.equal(spec.weightDtype, 'bf16');
  assert.equal(spec.bosTokenId, 1);
  assert.deepEqual(spec.eosTokenIds, [2, 383]);
});

test('tiny-qwen2: tied embeddings, qkv bias, rope_parameters spelling', () => {
  const { config, generation } = fixtureConfig('tiny-qwen2');
  const spec = parseModelConfig(config, generation);
  assert.equal(spec.architecture, 'qwen2');
  assert.equal(spec.tieWordEmbeddings, true);
  assert.equal(spec.qkvBias, true);
  assert.equal(spec.ropeTheta, 1_000_000);
  assert.equal(spec.ropeScaling.type, 'none');
  assert.equal(spec.weightDtype, 'f16');
  assert.equal(spec.bosTokenId, null);
  assert.deepEqual(spec.eosTokenIds, [2, 0]);
});

test('tiny-qwen3: head_dim from config (q out 128 != hidden 64), q/k norm', () => {
  const { config } = fixtureConfig('tiny-qwen3');
  const spec = parseModelConfig(config);
  assert.equal(spec.architecture, 'qwen3');
  assert.equal(spec.headDim, 32);
  assert.equal(spec.numHeads * spec.headDim, 128);
  assert.equal(spec.qkNorm, true);
  assert.equal(spec.qkvBias, false);
});

test('Mistral and linear rope scaling parse; head_dim defaults to hidden / heads', () => {
  const spec = parseModelConfig({
    architectures: ['MistralForCausalLM'], hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32000, rms_norm_eps: 1e-5, rope_theta: 1e6,
    max_position_embeddings: 32768, sliding_window: null, rope_scaling: { type: 'linear', factor: 2 },
    eos_token_id: 2, bos_token_id: 1, torch_dtype: 'bfloat16',
  });
  assert.equal(spec.architecture, 'mistral');
  assert.equal(spec.headDim, 128);
  assert.equal(spec.ropeScaling.type, 'linear');
  assert.equal(spec.ropeScaling.factor, 2);
  assert.equal(spec.weightDtype, 'bf16');
  assert.deepEqual(spec.eosTokenIds, [2]);
});

test('unsupported architectures name themselves and the supported list', () => {
  const { config } = fixtureConfig('tiny-llama');
  rejects({ ...config, architectures: ['GPT2LMHeadModel'] }, 'unsupported_model', /GPT2LMHeadModel.*LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM/);
  rejects({ ...config, architectures: undefined }, 'unsupported_model', /no architectures/);
});

test('unsupported features and invalid fields are rejected with the field named', () => {
  const { config } = fixtureConfig('tiny-llama');
  rejects({ ...config, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'unsupported_model', /yarn/);
  rejects({ ...config, hidden_act: 'gelu' }, 'unsupported_model', /gelu/);
  rejects({ ...config, attention_bias: true }, 'unsupported_model', /attention_bias/);
  rejects({ ...config, quantization_config: { quant_method: 'awq' } }, 'unsupported_model', /quantized/);
  rejects({ ...config, hidden_size: -1 }, 'corrupt_file', /hidden_size/);
  rejects({ ...config, num_key_value_heads: 3 }, 'corrupt_file', /num_key_value_heads/);
  rejects({ ...config, vocab_size: '384' }, 'corrupt_file', /vocab_size/);
  rejects([], 'corrupt_file', /JSON object/);
});

test('llama3 scaling in the rope_parameters spelling and missing scaling fields named with their parent', () => {
  const { config } = fixtureConfig('tiny-llama');
  const { rope_scaling: scaling, rope_theta: theta, ...rest } = config as Record<string, unknown>;
  const spec = parseModelConfig({ ...rest, rope_parameters: { ...(scaling as object), rope_theta: theta } });
  assert.equal(spec.ropeTheta, 10000);
  assert.equal(spec.ropeScaling.type, 'llama3');
  assert.equal(spec.ropeScaling.originalMaxPositionEmbeddings, 64);
  rejects({ ...rest, rope_theta: 1e4, rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'corrupt_file', /rope_scaling\.low_freq_factor/);
});
