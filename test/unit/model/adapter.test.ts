import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { adapterTargetSet, normalizeModuleName, readAdapter, readAdapterTargetSet, type AdapterPoolLimits } from '../../../src/engine/model/adapter.js';
import { parseAdapterConfig, patternValue } from '../../../src/engine/model/adapter-config.js';
import { parseModelConfig } from '../../../src/engine/model/config.js';
import type { ModelSpec } from '../../../src/engine/model/types.js';
import { TsloraError } from '../../../src/errors.js';
import { f32Tensor, MODELS, modelDir, readJson, reference, tempCopy, tempDir, writeJson, writeSafetensors } from './helpers.js';

const OPEN: AdapterPoolLimits = { maxRank: 64, targetModules: null, strict: false };

function specOf(model: (typeof MODELS)[number]): ModelSpec {
  return parseModelConfig(readJson(join(modelDir(model), 'config.json')));
}

const llama = specOf('tiny-llama');

for (const model of MODELS) {
  test(`${model}: every valid fixture adapter reads with the ranks and scalings PEFT used`, async () => {
    const spec = specOf(model);
    for (const ref of reference(model).adapters) {
      const { adapter, warnings } = await readAdapter(join(modelDir(model), ref.path), spec, OPEN);
      assert.deepEqual(warnings, [], ref.name);
      assert.equal(adapter.tensors.length * 2, ref.numTensors, `${ref.name}: one pair per A/B`);
      const patternRanks = Object.values(ref.rankPattern);
      assert.equal(adapter.rank, Math.max(ref.r, ...patternRanks), ref.name);
      for (const pair of adapter.tensors) {
        if (Object.keys(ref.rankPattern).length === 0) assert.equal(pair.rank, ref.r);
        if (Object.keys(ref.rankPattern).length + Object.keys(ref.alphaPattern).length === 0) {
          const expected = ref.useRslora ? ref.loraAlpha / Math.sqrt(ref.r) : ref.loraAlpha / ref.r;
          assert.equal(pair.scaling, expected, `${ref.name} ${pair.module}`);
        }
        assert.equal(pair.a.shape[0], pair.rank);
        assert.equal(pair.b.shape[1], pair.rank);
      }
      assert.equal(adapter.files.length, 1);
      assert.ok(adapter.sizeBytes > 0);
    }
  });
}

test('rank_pattern / alpha_pattern: end-anchored keys give per-module ranks and scalings', async () => {
  const { adapter } = await readAdapter(join(modelDir('tiny-llama'), 'adapters/r4-pattern'), llama, OPEN);
  const get = (layer: number, module: string) => adapter.tensors.find((t) => t.layer === layer && t.module === module)!;
  assert.equal(adapter.rank, 12);
  assert.deepEqual([get(0, 'q_proj').rank, get(0, 'q_proj').scaling], [2, 4]); // r 2, α 8
  assert.deepEqual([get(0, 'k_proj').rank, get(0, 'k_proj').scaling], [4, 2]); // defaults r 4, α 8
  assert.deepEqual([get(0, 'o_proj').rank, get(0, 'o_proj').scaling], [4, 5]); // α 20
  assert.deepEqual([get(0, 'down_proj').rank, get(0, 'down_proj').scaling], [4, 0.75]); // α 3
  assert.deepEqual([get(1, 'down_proj').rank, get(1, 'down_proj').scaling], [12, 0.25]); // r 12, α 3
  assert.deepEqual(adapter.targetModules, ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj']);
  // PEFT's get_pattern_key: first key that matches at a dot boundary at the end of the module path.
  assert.equal(patternValue({ q_proj: 2 }, 'model.layers.0.self_attn.q_proj'), 2);
  assert.equal(patternValue({ q_proj: 2 }, 'model.layers.0.self_attn.kq_proj'), undefined);
  assert.equal(patternValue({ 'layers.1.mlp.down_proj': 12 }, 'model.layers.11.mlp.down_proj'), undefined);
  assert.equal(patternValue({ 'layers\\.1\\..*': 7, down_proj: 3 }, 'model.layers.1.mlp.down_proj'), 7);
});

test('rsLoRA scaling is alpha / sqrt(r)', async () => {
  const { adapter } = await readAdapter(join(modelDir('tiny-llama'), 'adapters/r64-rslora'), llama, OPEN);
  assert.ok(adapter.tensors.every((t) => t.rank === 64 && t.scaling === 16 / 8));
  const { adapter: qwen } = await readAdapter(join(modelDir('tiny-qwen3'), 'adapters/r9-o-rslora'), specOf('tiny-qwen3'), OPEN);
  assert.ok(qwen.tensors.every((t) => t.scaling === 2));
});

test('key variants: adapter name before .weight, lora_embedding_A/B, lm_head', async () => {
  const named = await readAdapter(join(modelDir('tiny-llama'), 'adapters/r3-all'), llama, OPEN);
  assert.equal(named.adapter.tensors.length, 14);
  const { adapter } = await readAdapter(join(modelDir('tiny-llama'), 'adapters/r2-embed-head'), llama, OPEN);
  const embed = adapter.tensors.find((t) => t.module === 'embed_tokens')!;
  const head = adapter.tensors.find((t) => t.module === 'lm_head')!;
  assert.deepEqual([embed.layer, embed.a.shape, embed.b.shape], [-1, [2, 384], [64, 2]]);
  assert.deepEqual([head.layer, head.a.shape, head.b.shape], [-1, [2, 64], [384, 2]]);
  assert.deepEqual(adapter.targetModules, ['embed_tokens', 'lm_head']);
});

test('regex target_modules: only layer 1 q/k carry tensors', async () => {
  const { adapter } = await readAdapter(join(modelDir('tiny-llama'), 'adapters/r6-regex-layer1'), llama, OPEN);
  assert.deepEqual(adapter.tensors.map((t) => `${t.layer}.${t.module}`), ['1.k_proj', '1.q_proj']);
  assert.deepEqual(adapterTargetSet(parseAdapterConfig(JSON.stringify({ target_modules: '.*\\.layers\\.1\\.self_attn\\.(q_proj|k_proj)' })), llama), ['qkv_proj']);
});

test('every invalid fixture adapter is rejected with the recorded category', async () => {
  const invalid = reference('tiny-llama').invalidAdapters;
  assert.ok(Object.keys(invalid).length >= 14);
  for (const [name, expected] of Object.entries(invalid)) {
    const limits: AdapterPoolLimits = {
      maxRank: expected.limits?.maxRank ?? 64,
      targetModules: (expected.limits?.targetModules as AdapterPoolLimits['targetModules']) ?? null,
      strict: false,
    };
    const path = join(modelDir('tiny-llama'), 'invalid-adapters', name);
    if (expected.structureValid) {
      await readAdapter(path, llama, limits); // NaN/Inf values are found natively, not here
      continue;
    }
    await assert.rejects(readAdapter(path, llama, limits), (e: unknown) => {
      assert.ok(e instanceof TsloraError, name);
      assert.equal(e.code, expected.code, `${name}: ${e.message}`);
      assert.ok(e.message.includes(expected.messageIncludes), `${name}: ${e.message}`);
      return true;
    });
  }
});

test('incompatible messages carry the pool hint and the category word', async () => {
  await assert.rejects(readAdapter(join(modelDir('tiny-llama'), 'adapters/r64-rslora'), llama, { ...OPEN, maxRank: 16 }, 'sql'), (e: unknown) => {
    return e instanceof TsloraError && e.code === 'incompatible' && /adapter 'sql' is incompatible.*rank 64.*rank ≤ 16/.test(e.message) && /--max-lora-rank 64/.test(e.hint ?? '');
  });
  await assert.rejects(readAdapter(join(modelDir('tiny-llama'), 'adapters/r8-vdown'), llama, { ...OPEN, targetModules: ['qkv_proj', 'o_proj'] }), (e: unknown) => {
    return e instanceof TsloraError && /targets down_proj, which the pool was not built for \(pool: qkv_proj, o_proj\)/.test(e.message) && /qkv_proj o_proj down_proj, or all/.test(e.hint ?? '');
  });
  await assert.rejects(readAdapter('/nonexistent/adapter', llama, OPEN), (e: unknown) => e instanceof TsloraError && e.code === 'not_found' && /expected a directory/.test(e.message));
});

test('tensors outside target_modules: warning and ignored, or an error with strict loading', async () => {
  const copy = tempCopy(join(modelDir('tiny-llama'), 'adapters/r8-vdown'));
  try {
    const configPath = join(copy.dir, 'adapter_config.json');
    writeJson(configPath, { ...readJson(configPath), target_modules: ['v_proj'] });
    const { adapter, warnings } = await readAdapter(copy.dir, llama, { ...OPEN, targetModules: ['qkv_proj'] });
    assert.deepEqual(adapter.targetModules, ['qkv_proj']);
    assert.equal(adapter.tensors.length, 2);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /ignoring LoRA tensors.*model\.layers\.0\.mlp\.down_proj/);
    await assert.rejects(readAdapter(copy.dir, llama, { ...OPEN, strict: true }), (e: unknown) => e instanceof TsloraError && e.code === 'incompatible' && /--lora-strict-loading/.test(e.message));
  } finally {
    copy.cleanup();
  }
});

test('modules_to_save listed without tensors is a warning; unsupported options and odd configs are rejected', async () => {
  const copy = tempCopy(join(modelDir('tiny-llama'), 'adapters/r1-qv'));
  try {
    const configPath = join(copy.dir, 'adapter_config.json');
    const base = readJson(configPath);
    writeJson(configPath, { ...base, modules_to_save: ['lm_head'] });
    const { warnings } = await readAdapter(copy.dir, llama, OPEN);
    assert.match(warnings[0], /modules_to_save \(lm_head\).*no such weights/);
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ layer_replication: [[0, 1]] }, 'unsupported_adapter', /layer_replication/],
      [{ lora_bias: true }, 'unsupported_adapter', /lora_bias/],
      [{ r: 0 }, 'unsupported_adapter', /corrupt adapter file.*r must be/],
      [{ rank_pattern: { q_proj: 3 } }, 'incompatible', /lora_A.*shape \[1, 64\], expected \[3, 64\].*rank_pattern/],
      [{ target_modules: '(' }, 'unsupported_adapter', /regular expression/],
    ];
    for (const [change, code, message] of cases) {
      writeJson(configPath, { ...base, ...change });
      await assert.rejects(readAdapter(copy.dir, llama, OPEN), (e: unknown) => e instanceof TsloraError && e.code === code && message.test(e.message), JSON.stringify(change));
    }
    writeFileSync(configPath, '{ not json');
    await assert.rejects(readAdapter(copy.dir, llama, OPEN), (e: unknown) => e instanceof TsloraError && e.code === 'unsupported_adapter' && /corrupt adapter file/.test(e.message));
  } finally {
    copy.cleanup();
  }
});

test('already-fused qkv_proj adapters: A shared by q/k/v, B split into row slices', async () => {
  const { dir, cleanup } = tempDir();
  try {
    writeJson(join(dir, 'adapter_config.json'), { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['qkv_proj'] });
    writeSafetensors(join(dir, 'adapter_model.safetensors'), {
      'base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight': f32Tensor([2, 64]),
      'base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight': f32Tensor([128, 2]),
    });
    const { adapter } = await readAdapter(dir, llama, OPEN);
    assert.deepEqual(adapter.tensors.map((t) => t.module).sort(), ['k_proj', 'q_proj', 'v_proj']);
    const q = adapter.tensors.find((t) => t.module === 'q_proj')!;
    const k = adapter.tensors.find((t) => t.module === 'k_proj')!;
    const v = adapter.tensors.find((t) => t.module === 'v_proj')!;
    assert.equal(q.a, k.a);
    assert.deepEqual([q.b.shape, k.b.shape, v.b.shape], [[64, 2], [32, 2], [32, 2]]);
    assert.equal(k.b.offsetBytes, q.b.offsetBytes + 64 * 2 * 4);
    assert.equal(v.b.offsetBytes, k.b.offsetBytes + 32 * 2 * 4);
    assert.equal(adapter.sizeBytes, (2 * 64 + 128 * 2) * 4);
    // A lone lora_A is a corrupt file; an unknown module is incompatible.
    writeSafetensors(join(dir, 'adapter_model.safetensors'), { 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': f32Tensor([2, 64]) });
    await assert.rejects(readAdapter(dir, llama, OPEN), (e: unknown) => e instanceof TsloraError && /no lora_B tensor/.test(e.message));
    writeSafetensors(join(dir, 'adapter_model.safetensors'), {
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': f32Tensor([2, 64]),
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': f32Tensor([192, 2]),
    });
    writeJson(join(dir, 'adapter_config.json'), { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['c_attn'] });
    await assert.rejects(readAdapter(dir, llama, OPEN), (e: unknown) => e instanceof TsloraError && e.code === 'incompatible' && /c_attn/.test(e.message));
  } finally {
    cleanup();
  }
});

test('normalizeModuleName and adapterTargetSet follow spec a.4', () => {
  assert.equal(normalizeModuleName('q_proj'), 'qkv_proj');
  assert.equal(normalizeModuleName('model.layers.3.mlp.up_proj'), 'gate_up_proj');
  assert.equal(normalizeModuleName('word_embeddings'), 'embed_tokens');
  assert.equal(normalizeModuleName('unembed_tokens'), 'lm_head');
  assert.throws(() => normalizeModuleName('c_attn'), (e: unknown) => e instanceof TsloraError && e.code === 'incompatible');
  const all = adapterTargetSet(parseAdapterConfig(JSON.stringify({ target_modules: 'all-linear' })), llama);
  assert.deepEqual(all, ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj']);
  assert.deepEqual(adapterTargetSet(parseAdapterConfig(JSON.stringify({ target_modules: ['down_proj', 'v_proj', 'lm_head'] })), llama), ['qkv_proj', 'down_proj', 'lm_head']);
  const config = JSON.parse(readFileSync(join(modelDir('tiny-qwen3'), 'adapters/r6-all/adapter_config.json'), 'utf8'));
  assert.deepEqual(adapterTargetSet(parseAdapterConfig(JSON.stringify(config)), specOf('tiny-qwen3')), all);
});

test('added_tokens.json with ids inside the base vocabulary is ignored (PEFT copies the base added tokens)', async () => {
  const copy = tempCopy(join(modelDir('tiny-llama'), 'adapters/r1-qv'));
  try {
    writeJson(join(copy.dir, 'added_tokens.json'), { '<|eot_id|>': 383, '<s>': 1 });
    const { adapter, warnings } = await readAdapter(copy.dir, llama, OPEN);
    assert.equal(adapter.rank, 1);
    assert.deepEqual(warnings, []);
    writeJson(join(copy.dir, 'added_tokens.json'), { '<|eot_id|>': 383, '<new>': 384 });
    await assert.rejects(readAdapter(copy.dir, llama, OPEN), (e: unknown) => e instanceof TsloraError && e.code === 'unsupported_adapter' && /384/.test(e.message));
  } finally {
    copy.cleanup();
  }
});

test('readAdapterTargetSet reads the declared set without touching tensors (pool inference)', async () => {
  assert.deepEqual(await readAdapterTargetSet(join(modelDir('tiny-llama'), 'adapters/r8-vdown'), llama), ['qkv_proj', 'down_proj']);
  assert.deepEqual(await readAdapterTargetSet(join(modelDir('tiny-llama'), 'adapters/r2-embed-head'), llama), ['embed_tokens', 'lm_head']);
  await assert.rejects(readAdapterTargetSet(join(modelDir('tiny-llama'), 'invalid-adapters/no-config'), llama), (e: unknown) => e instanceof TsloraError && e.code === 'not_found');
});
