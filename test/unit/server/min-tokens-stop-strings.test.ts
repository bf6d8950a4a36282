// Stop strings and min_new_tokens (spec b.1): a stop string that appears before min_new_tokens tokens were generated
// does not end the sample; one completed afterwards does (and is trimmed as usual).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SampleRun, type SampleSpec } from '../../../src/server/generation/sample-run.js';

// One character per token: id = char code.
const fns = { decode: (ids: number[]) => String.fromCharCode(...ids), tokenText: (id: number) => String.fromCharCode(id) };
const ids = (s: string) => [...s].map((c) => c.charCodeAt(0));

function sample(minNewTokens: number): SampleRun {
  const spec: SampleSpec = {
    rid: 'r1', clientId: 'c', itemIndex: 0, promptIds: ids('> '), adapterId: null, adapterName: null, stops: ['XY'],
    noStopTrim: false, skipSpecialTokens: true, logprobStartLen: -1, returnTextInLogprobs: false,
    sampling: {
      temperature: 0, topP: 1, topK: -1, minP: 0, seed: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0,
      maxNewTokens: 20, minNewTokens, stopTokenIds: [], ignoreEos: false, returnLogprob: false, topLogprobsNum: 0,
    },
  };
  return new SampleRun(spec, fns, 0);
}

const feed = (run: SampleRun, text: string) => {
  for (const id of ids(text)) {
    const { stoppedByString } = run.apply({ rid: 'r1', tokenIds: [id] }, 1);
    if (stoppedByString) return true;
  }
  return false;
};

test('without min_new_tokens the first stop string ends the sample', () => {
  const run = sample(0);
  assert.equal(feed(run, 'aXYbbXYc'), true);
  assert.equal(run.fullText, 'a');
  assert.deepEqual(run.finish, { type: 'stop', matched: 'XY' });
});

test('a stop string before min_new_tokens is kept as text; the next one after it ends the sample', () => {
  const run = sample(5);
  assert.equal(feed(run, 'aXYbbX'), false, 'XY at tokens 2-3 comes before 5 tokens exist');
  assert.equal(run.finished, false);
  assert.equal(feed(run, 'Yc'), true);
  assert.equal(run.outputIds.length, 7);
  assert.equal(run.fullText, 'aXYbb');
  assert.deepEqual(run.finish, { type: 'stop', matched: 'XY' });
});

test('a match completed before min_new_tokens does not fire when the minimum is reached right after it', () => {
  const run = sample(4);
  assert.equal(feed(run, 'aXYb'), false, 'XY ended at token 3; the 4th token reaches the minimum');
  assert.equal(feed(run, 'XYc'), true);
  assert.equal(run.fullText, 'aXYb');
});
