import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTokenizer } from '../../../src/engine/model/tokenizer.js';
import { MODELS, modelDir, reference } from './helpers.js';

for (const model of MODELS) {
  test(`${model}: encode/decode identical to Python tokenizers on the hard strings`, async () => {
    const { tokenizer } = await loadTokenizer(modelDir(model));
    const ref = reference(model);
    assert.equal(tokenizer.vocabSize, ref.vocabSize);
    for (const c of ref.tokenizer) {
      assert.deepEqual(tokenizer.encode(c.text), c.ids, `ids of ${JSON.stringify(c.text)}`);
      assert.deepEqual(tokenizer.encode(c.text, { addSpecialTokens: false }), c.idsNoSpecial, `ids (no specials) of ${JSON.stringify(c.text)}`);
      assert.equal(tokenizer.decode(c.ids), c.decoded);
      assert.equal(tokenizer.decode(c.ids, { skipSpecialTokens: true }), c.decodedSkipSpecial);
    }
  });

  test(`${model}: streaming decode emits exactly decode(all ids), never a broken character`, async () => {
    const { tokenizer } = await loadTokenizer(modelDir(model));
    for (const c of reference(model).tokenizer) {
      for (const skipSpecialTokens of [false, true]) {
        const stream = tokenizer.createStreamDecoder({ skipSpecialTokens });
        let text = '';
        for (const id of c.ids) {
          const piece = stream.push(id);
          assert.ok(!piece.includes('\uFFFD'), `piece ${JSON.stringify(piece)} of ${JSON.stringify(c.text)}`);
          text += piece;
        }
        text += stream.flush();
        assert.equal(text, skipSpecialTokens ? c.decodedSkipSpecial : c.decoded);
      }
    }
  });
}

test('stream decoder holds back the bytes of a multi-byte character until it is complete', async () => {
  const { tokenizer } = await loadTokenizer(modelDir('tiny-llama'));
  // 🦙 is not in the tiny vocabulary, so it encodes as four <0xXX> byte-fallback tokens.
  const ids = tokenizer.encode('🦙', { addSpecialTokens: false });
  const byteIds = ids.slice(-4);
  const stream = tokenizer.createStreamDecoder({ promptIds: ids.slice(0, -4) });
  assert.deepEqual(byteIds.slice(0, 3).map((id) => stream.push(id)), ['', '', '']);
  assert.equal(stream.push(byteIds[3]), '🦙');
  // An incomplete tail is released (as U+FFFD) only by flush().
  assert.equal(stream.push(byteIds[0]), '');
  assert.equal(stream.flush(), '\uFFFD');
});

test('prompt context keeps the leading space of the first generated word (metaspace decoders strip it)', async () => {
  const { tokenizer } = await loadTokenizer(modelDir('tiny-llama'));
  const prompt = tokenizer.encode('The cat', { addSpecialTokens: true });
  const full = tokenizer.encode('The cat sat on the mat', { addSpecialTokens: true });
  assert.deepEqual(full.slice(0, prompt.length), prompt);
  const stream = tokenizer.createStreamDecoder({ promptIds: prompt });
  const text = full.slice(prompt.length).map((id) => stream.push(id)).join('') + stream.flush();
  assert.equal(text, ' sat on the mat');
});

test('special token ids, bos and eos come from tokenizer_config.json', async () => {
  const llama = (await loadTokenizer(modelDir('tiny-llama'))).tokenizer;
  assert.equal(llama.bosTokenId, 1);
  assert.deepEqual(llama.eosTokenIds, [2]);
  assert.deepEqual([...llama.specialTokenIds].sort((a, b) => a - b), [0, 1, 2, 381, 382, 383]);
  const qwen = (await loadTokenizer(modelDir('tiny-qwen2'))).tokenizer;
  assert.equal(qwen.bosTokenId, null);
  assert.deepEqual(qwen.eosTokenIds, [2]);
  assert.equal(qwen.decode([]), '');
  assert.equal(qwen.decode([100000]), '', 'ids beyond the vocabulary decode to nothing');
});
