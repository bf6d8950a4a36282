// The native step thread behind overlap scheduling (native/src/napi/step-queue.h): forwardLaunch / forwardWait give
// the outputs of forward(), a decode row may take its token from the previous launched step by reference, and the
// misuse cases throw instead of crashing or hanging.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { loadNativeBackend } from '../../src/binding/index.js';
import { ModelRunner } from '../../src/engine/model/runner.js';
import type { StepSampling, StepSequence } from '../../src/engine/model/runner-types.js';
import { writeRandomModel } from './forward-random-model.js';

const root = mkdtempSync(join(tmpdir(), 'tslora-launch-'));
after(() => rmSync(root, { recursive: true, force: true }));
const model = writeRandomModel({ dir: root, hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 101, dtype: 'bf16', seed: 5 });
const backend = loadNativeBackend('cpu');
const makeRunner = () =>
  new ModelRunner(model, {
    backend, kvNumBlocks: 32, kvBlockSize: 4, loraSlots: 0, loraMaxRank: 0, loraTargetModules: [], loraBackend: 'triton', maxLoraChunkSize: 16, numThreads: 2,
  });

const sampling = (generatedCount: number, temperature = 0): StepSampling => ({
  temperature, topP: 1, topK: 0, minP: 0, seed: 9, generatedCount, repetitionPenalty: 1, frequencyPenalty: 0,
  presencePenalty: 0, promptTokenIds: [], outputTokenIds: [], topLogprobsNum: 2, wantLogprob: true,
});
const prompts = [[5, 6, 7, 8, 9, 10, 11], [40, 41, 42]];
const blocks = [[0, 1, 2, 3], [8, 9, 10, 11]];
const prefill = (b: number, temperature: number): StepSequence => ({ tokenIds: prompts[b], startPosition: 0, blockTable: blocks[b], slot: -1, sampling: sampling(0, temperature) });
const decode = (b: number, token: number, position: number, generated: number, temperature: number): StepSequence => ({
  tokenIds: [token], startPosition: position, blockTable: blocks[b], slot: -1, sampling: sampling(generated, temperature),
});

/** Four tokens per sequence, greedy for sequence 0 and sampled for 1: synchronously, then launched with references. */
function generate(runner: ModelRunner, launched: boolean): number[][] {
  const out: number[][] = [[], []];
  const temps = [0, 0.9];
  const first = [prefill(0, temps[0]), prefill(1, temps[1])];
  if (!launched) {
    let step = first;
    for (let i = 0; i < 4; i++) {
      const results = runner.step(step);
      results.forEach((r, b) => out[b].push(r.tokenId));
      step = [0, 1].map((b) => decode(b, out[b][i], prompts[b].length + i, i + 1, temps[b]));
    }
    return out;
  }
  runner.launch!(first);
  for (let i = 0; i < 4; i++) {
    // Step i+1 goes in before step i's tokens are read: its rows refer to them.
    if (i < 3) runner.launch!([0, 1].map((b) => ({ ...decode(b, 0, prompts[b].length + i, i + 1, temps[b]), tokenFromPrevious: b })));
    runner.wait!().forEach((r, b) => out[b].push(r.tokenId));
    assert.ok(runner.lastForwardMs >= 0);
  }
  return out;
}

describe('forwardLaunch / forwardWait', () => {
  it('give the tokens of synchronous steps, with each decode token fed by reference on the native side', () => {
    const a = makeRunner();
    const b = makeRunner();
    try {
      assert.deepEqual(generate(a, true), generate(b, false));
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('refuse a third launched step, a wait with nothing launched, and a reference with no previous step; a sync forward waits for the step thread', () => {
    const runner = makeRunner();
    try {
      const handle = (runner as unknown as { model: never }).model;
      assert.throws(() => backend.forwardWait!(handle), /no step was launched/);
      runner.launch!([prefill(0, 0)]);
      runner.launch!([prefill(1, 0)]);
      assert.throws(() => runner.launch!([prefill(0, 0)]), /at most 2/);
      // A synchronous step while two are launched runs after them, and their results stay for wait().
      const [sync] = runner.step([prefill(0, 0)]);
      const [r0] = runner.wait!();
      const [r1] = runner.wait!();
      assert.equal(r0.tokenId, sync.tokenId);
      assert.ok(r1.tokenId >= 0);
      // A reference to a row the previous step did not have fails that step only.
      const step = runner.buildStepInput([decode(0, 0, 7, 1, 0)]).step;
      step.tokenIds[0] = -(1 + 5);
      backend.forwardLaunch!(handle, step);
      assert.throws(() => backend.forwardWait!(handle), /refers to row 5 of the previous step, which had 1 rows/);
      step.tokenIds[0] = -1;
      backend.forwardLaunch!(handle, step);
      assert.throws(() => backend.forwardWait!(handle), /which failed or never ran/);
      runner.launch!([prefill(1, 0)]);
      assert.equal(runner.wait!()[0].tokenId, r1.tokenId, 'the step thread serves on after failed steps');
    } finally {
      runner.destroy();
    }
  });

  it('an addon without forwardLaunch (built before it) gives a runner without launch: the scheduler runs synchronously', () => {
    const { forwardLaunch: _l, forwardWait: _w, ...older } = backend;
    const runner = new ModelRunner(model, {
      backend: older, kvNumBlocks: 8, kvBlockSize: 4, loraSlots: 0, loraMaxRank: 0, loraTargetModules: [], loraBackend: 'triton', maxLoraChunkSize: 16, numThreads: 1,
    });
    try {
      assert.equal(runner.launch, undefined);
      assert.equal(runner.wait, undefined);
      assert.equal(runner.step([prefill(0, 0)]).length, 1);
    } finally {
      runner.destroy();
    }
  });

  it('destroying a model with a launched step finishes the step first', () => {
    const runner = makeRunner();
    runner.launch!([prefill(0, 0), prefill(1, 0)]);
    runner.destroy();
    assert.throws(() => runner.launch!([prefill(0, 0)]), /after destroy/);
  });
});
