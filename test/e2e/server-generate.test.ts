/**
 * POST /generate against a real `tslora serve` on the tiny Llama fixture: greedy outputs equal the PyTorch + PEFT
 * reference (base, single adapters, one mixed batch), the b.1 response shape, streaming, stop conditions,
 * logprobs, n, the prefix cache, and field validation (400 naming the field).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADAPTER, FIXTURE, get, greedy, post, postStream, reference, startServer, type Server } from './server-harness.js';

const MODEL = 'tiny-llama';
const ref = reference(MODEL);
const NAMES = ['r1-qv', 'r3-all', 'r5-gateup', 'r8-vdown', 'r16-o', 'r64-rslora', 'r4-pattern', 'r6-regex-layer1'];
let server: Server;

before(async () => {
  server = await startServer(['--model-path', FIXTURE(MODEL), '--enable-metrics', '--max-loras-per-batch', '4', '--max-lora-rank', '64', '--lora-target-modules', 'all', '--lora-paths', ...NAMES.map((n) => `${n}=${ADAPTER(MODEL, n)}`)]);
});
after(async () => {
  assert.equal(await server.stop(), 0, server.output());
});

const N = ref.greedyTokens;

test('base and every fixture adapter alone reproduce the PEFT greedy reference', async () => {
  const extra = await post(`${server.url}/load_lora_adapter`, { lora_name: 'r2-embed-head', lora_path: ADAPTER(MODEL, 'r2-embed-head') });
  assert.equal(extra.body.success, true, JSON.stringify(extra.body));
  const mismatches: string[] = [];
  for (let p = 0; p < ref.prompts.length; p++) {
    const base = await post(`${server.url}/generate`, { input_ids: ref.prompts[p], sampling_params: greedy(N) });
    assert.equal(base.status, 200, JSON.stringify(base.body));
    assert.deepEqual(base.body.output_ids, ref.base[p].greedy, `base, prompt ${p}`);
    for (const name of [...NAMES, 'r2-embed-head']) {
      const expected = ref.adapters.find((a) => a.name === name)!.prompts[p].greedy;
      const res = await post(`${server.url}/generate`, { input_ids: ref.prompts[p], lora_path: name, sampling_params: greedy(N) });
      if (JSON.stringify(res.body.output_ids) !== JSON.stringify(expected)) mismatches.push(`${name} (prompt ${p})`);
    }
  }
  assert.deepEqual(mismatches, [], 'adapters whose greedy tokens differ from PyTorch + PEFT');
  await post(`${server.url}/unload_lora_adapter`, { lora_name: 'r2-embed-head' });
});

test('a batch over several adapters and base equals the per-adapter references, in input order', async () => {
  const lora = [null, 'r5-gateup', 'r64-rslora', 'r1-qv', 'r8-vdown', 'r4-pattern', 'r16-o'];
  const prompts = lora.map((_l, i) => ref.prompts[i % ref.prompts.length]);
  const res = await post(`${server.url}/generate`, { input_ids: prompts, lora_path: lora, sampling_params: greedy(N) });
  assert.equal(res.status, 200);
  assert.equal(res.body.length, lora.length);
  lora.forEach((name, i) => {
    const p = i % ref.prompts.length;
    const expected = name === null ? ref.base[p].greedy : ref.adapters.find((a) => a.name === name)!.prompts[p].greedy;
    assert.deepEqual(res.body[i].output_ids, expected, `item ${i} (${name})`);
    assert.equal(res.body[i].meta_info.lora_name, name);
  });
});

test('response shape: meta_info, finish reasons, rid echo, cached tokens on a repeated prompt', async () => {
  const prompt = [...ref.prompts[1], ...ref.prompts[1], ...ref.prompts[1]]; // 33 tokens: two full KV blocks
  const first = await post(`${server.url}/generate`, { input_ids: prompt, lora_path: 'r3-all', rid: 'my-id', sampling_params: greedy(5) });
  assert.equal(first.status, 200);
  const m = first.body.meta_info;
  assert.equal(m.id, 'my-id');
  assert.equal(m.prompt_tokens, prompt.length);
  assert.equal(m.completion_tokens, 5);
  assert.deepEqual(m.finish_reason, { type: 'length', length: 5 });
  assert.equal(typeof m.e2e_latency, 'number');
  assert.equal(typeof first.body.text, 'string');
  const again = await post(`${server.url}/generate`, { input_ids: prompt, lora_path: 'r3-all', sampling_params: greedy(5) });
  assert.equal(again.body.meta_info.cached_tokens, 32);
  assert.deepEqual(again.body.output_ids, first.body.output_ids);
  const otherAdapter = await post(`${server.url}/generate`, { input_ids: prompt, lora_path: 'r1-qv', sampling_params: greedy(5) });
  assert.equal(otherAdapter.body.meta_info.cached_tokens, 0, 'the prefix cache is keyed by adapter');
});

test('stop_token_ids, stop strings, min_new_tokens and EOS', async () => {
  const full = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: greedy(N) });
  const ids: number[] = full.body.output_ids;
  const stopId = ids[3];
  const firstIdx = ids.indexOf(stopId);
  const stopped = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: greedy(N, { stop_token_ids: [stopId] }) });
  assert.deepEqual(stopped.body.meta_info.finish_reason, { type: 'stop', matched: stopId });
  assert.deepEqual(stopped.body.output_ids, ids.slice(0, firstIdx + 1));
  const late = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: greedy(N, { stop_token_ids: [stopId], min_new_tokens: firstIdx + 2 }) });
  assert.ok(late.body.output_ids.length > firstIdx + 1, 'min_new_tokens defers the stop token');
  const text: string = full.body.text;
  // A two-character stop string from the middle of the text (the first one without a space, so none is trimmed).
  const stopAt = [...Array(text.length).keys()].find((i) => i >= Math.floor(text.length / 2) && text.slice(i, i + 2).trim().length === 2);
  assert.ok(stopAt !== undefined, `no two-character stop string in ${JSON.stringify(text)}`);
  const stopString = text.slice(stopAt, stopAt + 2);
  const s = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: greedy(N, { stop: [stopString] }) });
  assert.deepEqual(s.body.meta_info.finish_reason, { type: 'stop', matched: stopString });
  assert.equal(s.body.text, text.slice(0, text.indexOf(stopString)));
  // EOS: greedy decoding of these prompts never reaches it, so find a seeded sampled run (T = 3) that does, with
  // ignore_eos, then check that the same seed without ignore_eos stops right there. Seeded draws are deterministic;
  // the search must find one (each seed hits EOS within 100 tokens with a fair chance; 200 seeds all missing it would
  // mean EOS is never drawn at all).
  const eosIds: number[] = ref.eosTokenIds;
  const sampled = (seed: number, ignoreEos: boolean) => post(`${server.url}/generate`, {
    input_ids: ref.prompts[0], sampling_params: { max_new_tokens: 100, temperature: 3, sampling_seed: seed, ignore_eos: ignoreEos, stop_token_ids: [] },
  });
  let found: { seed: number; ids: number[]; at: number } | null = null;
  for (let seed = 1; seed <= 200 && !found; seed++) {
    const probe = await sampled(seed, true);
    assert.equal(probe.status, 200, JSON.stringify(probe.body));
    const at = (probe.body.output_ids as number[]).findIndex((id) => eosIds.includes(id));
    if (at >= 0) found = { seed, ids: probe.body.output_ids, at };
  }
  assert.ok(found, `no seed in 1..200 drew an EOS id (${eosIds}) within 100 tokens at T = 3`);
  const withEos = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: { max_new_tokens: 100, temperature: 3, sampling_seed: found.seed, ignore_eos: false, stop_token_ids: [] } });
  assert.equal(withEos.status, 200);
  assert.deepEqual(withEos.body.meta_info.finish_reason, { type: 'stop', matched: found.ids[found.at] });
  assert.deepEqual(withEos.body.output_ids, found.ids.slice(0, found.at + 1));
  console.log(`server-generate: seed ${found.seed} draws EOS id ${found.ids[found.at]} as token ${found.at + 1}`);
});

test('streaming: cumulative events by default, last one equals the non-streaming answer, then [DONE]', async () => {
  const body = { input_ids: ref.prompts[2], lora_path: 'r16-o', sampling_params: greedy(8) };
  const plain = await post(`${server.url}/generate`, body);
  const events = await postStream(`${server.url}/generate`, { ...body, stream: true });
  assert.equal(events.at(-1), '[DONE]');
  const data = events.slice(0, -1);
  assert.ok(data.length >= 2);
  for (let i = 1; i < data.length; i++) assert.ok(data[i].output_ids.length >= data[i - 1].output_ids.length, 'cumulative');
  assert.equal(data.at(-2).meta_info.finish_reason, null);
  assert.deepEqual(data.at(-1).output_ids, plain.body.output_ids);
  assert.equal(data.at(-1).text, plain.body.text);
  assert.deepEqual(data.at(-1).meta_info.finish_reason, { type: 'length', length: 8 });
});

test('logprobs and n', async () => {
  const res = await post(`${server.url}/generate`, {
    input_ids: ref.prompts[0], return_logprob: true, top_logprobs_num: 2, logprob_start_len: 0, return_text_in_logprobs: true, sampling_params: greedy(4),
  });
  const m = res.body.meta_info;
  assert.equal(m.output_token_logprobs.length, 4);
  assert.equal(m.output_token_logprobs[0][1], res.body.output_ids[0]);
  assert.ok(m.output_token_logprobs[0][0] <= 0);
  assert.equal(m.output_top_logprobs[0].length, 2);
  assert.equal(m.output_top_logprobs[0][0][1], res.body.output_ids[0], 'greedy token is the top-1');
  assert.equal(m.input_token_logprobs.length, ref.prompts[0].length);
  assert.equal(m.input_token_logprobs[0][0], null);
  assert.ok(m.input_token_logprobs[1][0] < 0);
  const scoring = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], return_logprob: true, logprob_start_len: 0, sampling_params: greedy(0) });
  assert.deepEqual(scoring.body.output_ids, [], 'max_new_tokens 0 only scores the prompt');
  assert.deepEqual(scoring.body.meta_info.finish_reason, { type: 'length', length: 0 });
  assert.deepEqual(scoring.body.meta_info.input_token_logprobs.map((t: number[]) => t[0]), m.input_token_logprobs.map((t: number[]) => t[0]));
  const n = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: greedy(3, { n: 3 }) });
  assert.equal(n.body.length, 3);
  assert.deepEqual(n.body[1].output_ids, n.body[0].output_ids);
  const sampled = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: { max_new_tokens: 6, temperature: 1.5, sampling_seed: 5, ignore_eos: true } });
  const sampledAgain = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: { max_new_tokens: 6, temperature: 1.5, sampling_seed: 5, ignore_eos: true } });
  assert.deepEqual(sampled.body.output_ids, sampledAgain.body.output_ids, 'a request seed makes sampling reproducible');
});

test('validation errors are 400 and name the field', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ text: 'hi', sampling_params: { max_new_tokens: 2, temprature: 0 } }, /temprature/],
    [{ text: 'hi', sampling_params: { temperature: -1 } }, /sampling_params\.temperature/],
    [{ text: 'hi', sampling_params: { top_p: 0 } }, /top_p/],
    [{ text: 'hi', sampling_params: { top_k: 0 } }, /top_k/],
    [{ text: 'hi', input_ids: [1, 2] }, /exactly one of text and input_ids/],
    [{ sampling_params: {} }, /exactly one of text and input_ids/],
    [{ text: ['a', 'b', 'c'], lora_path: ['r1-qv', null] }, /lora_path has 2 entries but the batch has 3 prompts/],
    [{ text: ['a', 'b'], sampling_params: [{}, {}, {}] }, /sampling_params has 3/],
    [{ text: 5 }, /text/],
    [{ input_ids: [1, 99999] }, /outside the vocabulary/],
    [{ text: 'hi', lora_path: 'nope' }, /adapter 'nope' is not loaded\. Loaded adapters: /],
    ['{not json', /not valid JSON/],
  ];
  for (const [body, pattern] of cases) {
    const res = await post(`${server.url}/generate`, body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.body.error.message, pattern);
  }
  const notFound = await get(`${server.url}/nope`);
  assert.equal(notFound.status, 404);
});

test('health, model info, server info and metrics', async () => {
  assert.equal((await get(`${server.url}/health`)).status, 200);
  assert.equal((await get(`${server.url}/health_generate`)).status, 200);
  const info = await get(`${server.url}/get_model_info`);
  assert.equal(info.body.context_length, 256);
  const serverInfo = await get(`${server.url}/get_server_info`);
  assert.equal(serverInfo.body.maxLorasPerBatch, 4);
  const metrics = await get(`${server.url}/metrics`);
  assert.match(metrics.body, /^lora_pool_slots_total 4$/m);
  assert.match(metrics.body, /^tslora_time_to_first_token_seconds_count\{model_name="[^"]+"\} [1-9]/m);
  assert.match(metrics.body, /^tslora_num_queue_reqs 0$/m);
});
