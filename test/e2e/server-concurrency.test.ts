/**
 * 64 concurrent streaming requests over 8 adapters (and base) with --max-loras-per-batch 4 all complete, with
 * outputs identical to the same requests run one at a time (greedy); chunked prefill is on with a small budget.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADAPTER, FIXTURE, get, greedy, post, postStream, reference, startServer, type Server } from './server-harness.js';

const MODEL = 'tiny-llama';
const ref = reference(MODEL);
const NAMES = ['r1-qv', 'r2-embed-head', 'r5-gateup', 'r8-vdown', 'r16-o', 'r64-rslora', 'r4-pattern', 'r6-regex-layer1'];
let server: Server;

before(async () => {
  server = await startServer([
    '--model-path', FIXTURE(MODEL), '--enable-metrics', '--max-loras-per-batch', '4', '--chunked-prefill-size', '16', '--max-lora-rank', '64', '--lora-target-modules', 'all',
    '--lora-paths', ...NAMES.map((n) => `${n}=${ADAPTER(MODEL, n)}`),
  ]);
});
after(async () => {
  assert.equal(await server.stop(), 0, server.output());
});

test('64 concurrent streams over 8 adapters with 4 slots equal one-at-a-time runs', async () => {
  const requests = Array.from({ length: 64 }, (_v, i) => {
    const prompt = [...ref.prompts[i % 3], ...ref.prompts[(i + 1) % 3]].slice(0, 5 + (i % 17));
    return { input_ids: prompt, lora_path: i % 9 === 8 ? null : NAMES[i % 9], sampling_params: greedy(6 + (i % 11)) };
  });
  const sequential: number[][] = [];
  for (const r of requests) sequential.push((await post(`${server.url}/generate`, r)).body.output_ids);
  // Slot use scraped from /metrics while the streams run (and once after): every scrape must carry both gauges, the
  // total must be the flag's 4, and no scrape may see more in use; at least the final scrape always happens.
  let maxSlots = 0;
  let scrapes = 0;
  let streaming = true;
  const scrape = async () => {
    const m = (await get(`${server.url}/metrics`)).body as string;
    const used = /^lora_pool_slots_used (\d+)/m.exec(m);
    const total = /^lora_pool_slots_total (\d+)/m.exec(m);
    assert.ok(used && total, 'the metrics carry lora_pool_slots_used and lora_pool_slots_total');
    assert.equal(Number(total[1]), 4);
    maxSlots = Math.max(maxSlots, Number(used[1]));
    scrapes++;
  };
  const watcher = (async () => {
    while (streaming) {
      await scrape();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const streamed = await Promise.all(
    requests.map(async (r) => {
      const events = await postStream(`${server.url}/generate`, { ...r, stream: true });
      assert.equal(events.at(-1), '[DONE]');
      return events.at(-2).output_ids as number[];
    }),
  ).finally(() => (streaming = false));
  await watcher;
  await scrape();
  assert.deepEqual(streamed, sequential);
  assert.ok(scrapes >= 2 && maxSlots <= 4, `${scrapes} scrapes, at most ${maxSlots} slots in use`);
  // A few requests that the PEFT reference covers directly.
  for (let i = 0; i < NAMES.length; i++) {
    const res = await post(`${server.url}/generate`, { input_ids: ref.prompts[i % 3], lora_path: NAMES[i], sampling_params: greedy(ref.greedyTokens) });
    assert.deepEqual(res.body.output_ids, ref.adapters.find((a) => a.name === NAMES[i])!.prompts[i % 3].greedy, NAMES[i]);
  }
});
