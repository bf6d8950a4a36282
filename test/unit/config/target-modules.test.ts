import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeTargetModule, parseTargetModules } from '../../../src/config/index.js';

test('q/k/v fold into qkv_proj and gate/up into gate_up_proj', () => {
  assert.deepEqual(parseTargetModules(['q_proj', 'k_proj', 'v_proj', 'gate_proj', 'up_proj']), ['qkv_proj', 'gate_up_proj']);
});

test('dotted names keep their last component; embedding and output aliases map to embed_tokens and lm_head', () => {
  assert.equal(normalizeTargetModule('model.layers.3.self_attn.o_proj'), 'o_proj');
  for (const alias of ['embeddings', 'word_embeddings', 'vocab_emb', 'embed_tokens']) assert.equal(normalizeTargetModule(alias), 'embed_tokens');
  for (const alias of ['output', 'unembed_tokens', 'lm_head']) assert.equal(normalizeTargetModule(alias), 'lm_head');
  assert.equal(normalizeTargetModule('mlp'), undefined);
});

test('result is de-duplicated, in canonical order, and comma lists work', () => {
  assert.deepEqual(parseTargetModules(['lm_head,down_proj', 'o_proj', 'q_proj', 'qkv_proj']), ['qkv_proj', 'o_proj', 'down_proj', 'lm_head']);
});

test("rule 7: 'all' alone; rule 8: unknown names", () => {
  assert.equal(parseTargetModules(['all']), 'all');
  assert.throws(() => parseTargetModules(['q_proj', 'all']), /'all' must be the only value of --lora-target-modules \(got: q_proj, all\)\./);
  assert.throws(() => parseTargetModules(['q_proj', 'attn']), /unknown LoRA target module 'attn'/);
});
