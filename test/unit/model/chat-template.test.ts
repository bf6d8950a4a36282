import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { ChatTemplateRenderer, resolveChatTemplate } from '../../../src/engine/model/chat-template.js';
import { loadModel } from '../../../src/engine/model/load-model.js';
import { TsloraError } from '../../../src/errors.js';
import { MODELS, modelDir, readJson, reference, tempCopy, writeJson } from './helpers.js';

for (const model of MODELS) {
  test(`${model}: chat template renders byte-identical to transformers apply_chat_template`, async () => {
    const loaded = await loadModel(modelDir(model));
    for (const c of reference(model).chatTemplate) {
      assert.equal(loaded.chatRenderer.render(c.messages, { addGenerationPrompt: c.addGenerationPrompt }), c.rendered);
    }
  });
}

test('a model without a chat template gives a clear invalid_request error', async () => {
  const copy = tempCopy(modelDir('tiny-qwen3'));
  try {
    const configPath = join(copy.dir, 'tokenizer_config.json');
    const { chat_template: _template, ...rest } = readJson(configPath);
    writeJson(configPath, rest);
    const model = await loadModel(copy.dir);
    assert.equal(model.chatTemplate, null);
    assert.throws(
      () => model.chatRenderer.render([{ role: 'user', content: 'hi' }]),
      (e: unknown) => e instanceof TsloraError && e.code === 'invalid_request' && /has no chat template/.test(e.message) && e.param === 'messages',
    );
    // transformers ≥ 4.43 saves the template as chat_template.jinja next to tokenizer_config.json.
    writeFileSync(join(copy.dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}');
    const again = await loadModel(copy.dir);
    assert.equal(again.chatRenderer.render([{ role: 'user', content: 'hi' }]), '[user] hi\n');
  } finally {
    copy.cleanup();
  }
});

test('named template lists pick "default"; raise_exception becomes invalid_request', () => {
  const source = resolveChatTemplate({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] }, '/nonexistent');
  assert.equal(source, 'D');
  const renderer = new ChatTemplateRenderer("{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok", {});
  assert.equal(renderer.render([{ role: 'user', content: 'x' }]), 'ok');
  assert.throws(
    () => renderer.render([{ role: 'assistant', content: 'x' }]),
    (e: unknown) => e instanceof TsloraError && e.code === 'invalid_request' && /first message must be from the user/.test(e.message),
  );
});
