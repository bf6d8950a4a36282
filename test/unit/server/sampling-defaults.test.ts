// generation_config.json → request defaults: the five sampling fields SGLang reads, transformers' top_k 0 spelled
// as the API's -1, out-of-range values dropped with a warning, and filling only what a request left unset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fillSamplingDefaults, samplingDefaultsFromGenerationConfig } from '../../../src/server/sampling-defaults.js';
import { samplingParamsSchema } from '../../../src/protocol/generate.js';

test('picks temperature, top_p, top_k, min_p and repetition_penalty; ignores the rest', () => {
  const warnings: string[] = [];
  const d = samplingDefaultsFromGenerationConfig(
    { do_sample: true, temperature: 0.7, top_p: 0.8, top_k: 20, min_p: 0.05, repetition_penalty: 1.05, max_new_tokens: 64, eos_token_id: [2] },
    (m) => warnings.push(m),
  );
  assert.deepEqual(d, { temperature: 0.7, top_p: 0.8, top_k: 20, min_p: 0.05, repetition_penalty: 1.05 });
  assert.deepEqual(warnings, []);
});

test('top_k 0 means off; invalid values are dropped with a warning naming the field', () => {
  const warnings: string[] = [];
  const d = samplingDefaultsFromGenerationConfig({ top_k: 0, top_p: 1.5, temperature: 'hot', repetition_penalty: null }, (m) => warnings.push(m));
  assert.deepEqual(d, { top_k: -1 });
  assert.equal(warnings.length, 2);
  assert.match(warnings[0], /temperature/);
  assert.match(warnings[1], /top_p = 1.5 is outside \(0, 1\]/);
  assert.deepEqual(samplingDefaultsFromGenerationConfig(null), {});
});

test('fills only unset fields, per item of a batch, and the result passes the request schema', () => {
  const defaults = { temperature: 0.6, top_p: 0.9 };
  assert.deepEqual(fillSamplingDefaults(undefined, defaults), { temperature: 0.6, top_p: 0.9 });
  assert.deepEqual(fillSamplingDefaults({ temperature: 0, max_new_tokens: 4 }, defaults), { temperature: 0, max_new_tokens: 4, top_p: 0.9 });
  assert.deepEqual(fillSamplingDefaults([{ top_p: 0.5 }, {}], defaults), [{ top_p: 0.5, temperature: 0.6 }, { temperature: 0.6, top_p: 0.9 }]);
  assert.equal(fillSamplingDefaults('oops', defaults), 'oops', 'wrong types are left for the schema to reject');
  assert.equal(fillSamplingDefaults(undefined, {}), undefined, 'no model defaults: the body is untouched');
  const parsed = samplingParamsSchema.parse(fillSamplingDefaults({ max_new_tokens: 3 }, defaults));
  assert.equal(parsed.temperature, 0.6);
  assert.equal(parsed.top_k, -1, 'fields the model does not set keep the API defaults');
});
