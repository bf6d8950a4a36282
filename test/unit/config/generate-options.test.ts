import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adaptersForPrompts, resolveGenerateRequest } from '../../../src/config/index.js';
import { TsloraError } from '../../../src/errors.js';

test('--lora maps onto prompts: none = base, one = all, one per prompt in order, base and - = null', () => {
  assert.deepEqual(adaptersForPrompts([], 2), [null, null]);
  assert.deepEqual(adaptersForPrompts(['sql'], 3), ['sql', 'sql', 'sql']);
  assert.deepEqual(adaptersForPrompts(['a', 'base', '-'], 3), ['a', null, null]);
  assert.deepEqual(adaptersForPrompts(['base'], 1), [null]);
});

test('more --lora than prompts, or several but fewer, is a usage error naming both counts', () => {
  for (const [loras, prompts] of [[['a', 'b'], 1], [['a', 'b'], 3]] as const) {
    assert.throws(() => adaptersForPrompts(loras, prompts), (e: unknown) => {
      assert.ok(e instanceof TsloraError);
      assert.equal(e.code, 'usage');
      assert.match(e.message, new RegExp(`--lora was given 2 times but there (is|are) ${prompts} prompt`));
      return true;
    });
  }
});

test('the request body: a batch, greedy 128 tokens by default, sampling fields only when given', () => {
  const plain = resolveGenerateRequest(['x='], {});
  assert.deepEqual(plain.body, { text: ['x='], sampling_params: { max_new_tokens: 128, temperature: 0 } });
  assert.equal(plain.stream, false);
  const full = resolveGenerateRequest(['a=', 'b='], {
    lora: ['add', 'base'], maxNewTokens: '16', temperature: '0.7', topP: '0.9', topK: '5', seed: '7', stop: ['\n', 'END'], stream: true,
  });
  assert.deepEqual(full.body, {
    text: ['a=', 'b='],
    lora_path: ['add', null],
    sampling_params: { max_new_tokens: 16, temperature: 0.7, top_p: 0.9, top_k: 5, sampling_seed: 7, stop: ['\n', 'END'] },
    stream: true,
  });
  assert.deepEqual(full.adapters, ['add', null]);
});

test('no prompt, a negative temperature or a non-number are usage errors', () => {
  assert.throws(() => resolveGenerateRequest([], {}), /no prompt given/);
  assert.throws(() => resolveGenerateRequest(['a'], { temperature: '-1' }), /--temperature must be ≥ 0/);
  assert.throws(() => resolveGenerateRequest(['a'], { maxNewTokens: 'many' }), /--max-new-tokens must be an integer/);
});
