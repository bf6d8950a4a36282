import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IncrementalDetokenizer } from '../../../src/server/generation/detokenizer.js';
import { StopStringMatcher } from '../../../src/server/generation/stop-strings.js';

// A toy byte-level vocabulary: ids are bytes; decoding invalid UTF-8 yields U+FFFD like real tokenizers.
const decode = (ids: number[]) => Buffer.from(ids).toString('utf8');

test('incremental detokenisation holds back incomplete UTF-8 and concatenates to the full text', () => {
  const text = 'héllo 🙂 wörld';
  const bytes = [...Buffer.from(text, 'utf8')];
  const d = new IncrementalDetokenizer(decode, [...Buffer.from('> ', 'utf8')]);
  let out = '';
  const pieces: string[] = [];
  for (const b of bytes) {
    const piece = d.push([b]);
    assert.ok(!piece.includes('\uFFFD'), 'no replacement character leaks');
    pieces.push(piece);
    out += piece;
  }
  out += d.flush();
  assert.equal(out, text);
  assert.ok(pieces.filter((p) => p === '').length >= 3, 'multi-byte characters were held back');
});

test('stop strings: earliest match and hold-back of a possible prefix', () => {
  const m = new StopStringMatcher(['</s>', 'END']);
  assert.deepEqual(m.find('abc END x </s>', 0), { index: 4, stop: 'END' });
  assert.equal(m.find('abc', 0), null);
  assert.equal(m.holdBack('hello </'), 2);
  assert.equal(m.holdBack('hello EN'), 2);
  assert.equal(m.holdBack('hello'), 0);
});
