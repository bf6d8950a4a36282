import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../../src/engine/model/load-model.js';
import { TsloraError } from '../../../src/errors.js';
import { modelDir, readJson, reference, tempCopy, writeJson } from './helpers.js';

function isError(code: string, includes: RegExp) {
  return (error: unknown) => error instanceof TsloraError && error.code === code && includes.test(error.message);
}

test('sharded tiny-llama: every layer tensor mapped into the 7 shards with the spec shapes', async () => {
  const model = await loadModel(modelDir('tiny-llama'));
  const { spec, weights } = model;
  assert.equal(weights.files.length, 7);
  assert.ok(weights.files.every((f) => f.endsWith('.safetensors') && f.startsWith(modelDir('tiny-llama'))));
  assert.equal(weights.layers.length, 2);
  assert.notEqual(weights.lmHead, weights.embedTokens);
  assert.deepEqual(weights.lmHead.shape, [384, 64]);
  const layer = weights.layers[1];
  assert.deepEqual(layer.qProj.shape, [64, 64]);
  assert.deepEqual(layer.kProj.shape, [32, 64]);
  assert.deepEqual(layer.oProj.shape, [64, 64]);
  assert.deepEqual(layer.downProj.shape, [64, 128]);
  assert.equal(layer.qBias, undefined);
  assert.equal(layer.qNorm, undefined);
  const fileIndices = new Set([weights.embedTokens.file, weights.lmHead.file, ...weights.layers.flatMap((l) => Object.values(l).map((r) => r.file))]);
  assert.ok(fileIndices.size > 1, 'tensors come from several shards');
  assert.equal(spec.weightDtype, 'bf16');
  assert.equal(weights.embedTokens.dtype, 'bf16');
  assert.equal(model.chatTemplate?.includes('<|start_header_id|>'), true);
  assert.deepEqual(model.samplingDefaults, { temperature: 0.6, top_p: 0.9 });
  assert.deepEqual(model.samplingDefaultWarnings, []);
  assert.deepEqual(spec.eosTokenIds, reference('tiny-llama').eosTokenIds);
});

test('tiny-qwen2: tied lm_head is the embedding ref; biases mapped; f16', async () => {
  const { spec, weights, samplingDefaults } = await loadModel(modelDir('tiny-qwen2'));
  assert.equal(weights.lmHead, weights.embedTokens);
  assert.deepEqual(weights.layers[0].qBias?.shape, [64]);
  assert.deepEqual(weights.layers[0].kBias?.shape, [32]);
  assert.deepEqual(weights.layers[0].vBias?.shape, [32]);
  assert.equal(spec.weightDtype, 'f16');
  assert.deepEqual(samplingDefaults, { temperature: 0.7, top_p: 0.8, top_k: 20, repetition_penalty: 1.05 });
});

test('tiny-qwen3: q/k norms of head_dim, q_proj [128, 64], o_proj [64, 128]', async () => {
  const { weights } = await loadModel(modelDir('tiny-qwen3'));
  assert.deepEqual(weights.layers[0].qNorm?.shape, [32]);
  assert.deepEqual(weights.layers[0].kNorm?.shape, [32]);
  assert.deepEqual(weights.layers[0].qProj.shape, [128, 64]);
  assert.deepEqual(weights.layers[0].oProj.shape, [64, 128]);
});

test('missing directories and files are model_not_found', async () => {
  await assert.rejects(loadModel('/nonexistent/model'), isError('model_not_found', /does not exist/));
  const copy = tempCopy(modelDir('tiny-qwen3'));
  try {
    rmSync(join(copy.dir, 'model.safetensors'));
    await assert.rejects(loadModel(copy.dir), isError('model_not_found', /no safetensors weights/));
    rmSync(join(copy.dir, 'config.json'));
    await assert.rejects(loadModel(copy.dir), isError('model_not_found', /no config.json/));
  } finally {
    copy.cleanup();
  }
  const copy2 = tempCopy(modelDir('tiny-qwen3'));
  try {
    rmSync(join(copy2.dir, 'tokenizer.json'));
    await assert.rejects(loadModel(copy2.dir), isError('model_not_found', /tokenizer.json/));
    // --tokenizer-path pointing elsewhere fixes it.
    const model = await loadModel(copy2.dir, { tokenizerPath: modelDir('tiny-qwen2') });
    assert.equal(model.tokenizer.vocabSize, 320);
  } finally {
    copy2.cleanup();
  }
});

test('weights that do not match config.json are rejected naming the tensor', async () => {
  const copy = tempCopy(modelDir('tiny-llama'));
  try {
    const configPath = join(copy.dir, 'config.json');
    const config = readJson(configPath);
    writeJson(configPath, { ...config, num_hidden_layers: 3 });
    await assert.rejects(loadModel(copy.dir), isError('corrupt_file', /lacks tensor 'model\.layers\.2\.input_layernorm\.weight'/));
    writeJson(configPath, { ...config, intermediate_size: 96 });
    await assert.rejects(loadModel(copy.dir), isError('corrupt_file', /'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[128, 64\] but config\.json implies \[96, 64\]/));
    writeJson(configPath, config);
    const indexPath = join(copy.dir, 'model.safetensors.index.json');
    const index = readJson(indexPath) as { weight_map: Record<string, string> };
    index.weight_map['lm_head.weight'] = 'model-00001-of-00007.safetensors';
    writeJson(indexPath, index);
    await assert.rejects(loadModel(copy.dir), isError('corrupt_file', /places tensor 'lm_head\.weight'/));
    index.weight_map['lm_head.weight'] = '../../outside.safetensors';
    writeJson(indexPath, index);
    await assert.rejects(loadModel(copy.dir), isError('corrupt_file', /invalid shard/));
  } finally {
    copy.cleanup();
  }
});
