/**
 * The HTTP server on a generated random model (real engine worker, real native runner) with a toy character
 * tokenizer: route shapes, SSE, validation, auth, client disconnects and adapter operations. The fixture-model
 * e2e tests (test/e2e/server-*.test.ts) cover the same routes through the real `tslora serve` binary.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveServeConfig } from '../../../src/config/resolve-serve.js';
import type { AdapterSpec } from '../../../src/engine/model/types.js';
import { TsloraError } from '../../../src/errors.js';
import { startServer, type RunningServer } from '../../../src/server/index.js';
import type { ServerModel } from '../../../src/server/model-port.js';
import { writeRandomAdapter, writeRandomModel } from '../../native/forward-random-model.js';
import { get, post } from '../../e2e/server-harness.js';

/** Polls `check` until it passes, so slow shared machines do not fail on fixed sleeps; the deadline only turns a
 * hang into a failure (generous: it is no performance bound). */
async function eventually(check: () => Promise<void>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tslora-http-'));
const model = writeRandomModel({ dir: join(dir, 'model'), hidden: 64, intermediate: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocab: 96, dtype: 'f32', seed: 3, weightScale: 2 });
model.spec.maxPositionEmbeddings = 4096;
const adapters = new Map<string, AdapterSpec>([
  [join(dir, 'a'), writeRandomAdapter(join(dir, 'a'), model.spec, 4, ['q_proj', 'v_proj'], 21).adapter],
  [join(dir, 'b'), writeRandomAdapter(join(dir, 'b'), model.spec, 8, ['o_proj', 'down_proj'], 22).adapter],
  [join(dir, 'c'), writeRandomAdapter(join(dir, 'c'), model.spec, 2, ['gate_proj', 'up_proj'], 23).adapter],
]);
// Character tokenizer: id = char code − 32 (printable ASCII); id 95 is the end of sequence.
const tokenizer = {
  encode: (text: string) => [...text].map((c) => Math.min(94, Math.max(0, c.charCodeAt(0) - 32))),
  decode: (ids: number[], skipSpecial: boolean) => ids.filter((i) => !(skipSpecial && i === 95)).map((i) => (i === 95 ? '</s>' : String.fromCharCode(i + 32))).join(''),
  tokenText: (id: number) => (id === 95 ? '</s>' : String.fromCharCode(id + 32)),
};
const serverModel: ServerModel = {
  dir: join(dir, 'model'), spec: model.spec, weights: model.weights, tokenizer, eosTokenIds: [95],
  renderChat: (messages) => messages.map((m) => `${m.role}: ${m.content}\n`).join('') + 'assistant: ',
};
const deps = {
  loadModel: async () => serverModel,
  readAdapter: async (path: string) => {
    const adapter = adapters.get(path);
    if (!adapter) throw new TsloraError('not_found', `no PEFT LoRA adapter at '${path}': adapter_config.json not found`);
    return { adapter, warnings: [] };
  },
};

let server: RunningServer;
before(async () => {
  const config = resolveServeConfig({
    modelPath: join(dir, 'model'), port: 0, numThreads: 1, maxLorasPerBatch: 2, apiKey: 'k', logLevel: 'error',
    loraPaths: [`a=${join(dir, 'a')}`, `b=${join(dir, 'b')}`], maxLoraRank: 8, loraTargetModules: ['all'], chunkedPrefillSize: 8, maxRunningRequests: 8,
    enableMetrics: true,
  });
  server = await startServer(config, deps);
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const H = { authorization: 'Bearer k' };
const gen = (body: Record<string, unknown>) => post(`${server.url}/generate`, body, H);
const greedy = (n: number) => ({ max_new_tokens: n, temperature: 0, ignore_eos: true });

test('single, batch and adapters: a mixed batch equals solo runs', async () => {
  const prompts = ['hello there', 'abc', 'The quick brown fox'];
  const lora = ['a', null, 'b'];
  const solo = [];
  for (let i = 0; i < 3; i++) solo.push((await gen({ text: prompts[i], lora_path: lora[i], sampling_params: greedy(7) })).body);
  assert.equal(solo[0].output_ids.length, 7);
  assert.equal(solo[0].text, tokenizer.decode(solo[0].output_ids, true));
  const batch = await gen({ text: prompts, lora_path: lora, sampling_params: greedy(7) });
  assert.deepEqual(batch.body.map((b: { output_ids: number[] }) => b.output_ids), solo.map((s) => s.output_ids));
  assert.notDeepEqual((await gen({ text: prompts[0], lora_path: 'b', sampling_params: greedy(7) })).body.output_ids, solo[0].output_ids);
});

test('auth: 401 without the key except /health', async () => {
  assert.equal((await get(`${server.url}/health`)).status, 200);
  assert.equal((await post(`${server.url}/generate`, { text: 'x' })).status, 401);
  assert.equal((await get(`${server.url}/v1/models`)).status, 401);
  const openai = await post(`${server.url}/v1/completions`, { model: 'm', prompt: 'x' });
  assert.equal(openai.body.error.type, 'authentication_error');
});

test('client disconnect cancels the request and frees its KV blocks', async () => {
  const controller = new AbortController();
  let seen = 0;
  const stream = fetch(`${server.url}/generate`, { method: 'POST', headers: { ...H, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'long one', stream: true, sampling_params: greedy(4000) }), signal: controller.signal })
    .then(async (res) => {
      for await (const _chunk of res.body as unknown as AsyncIterable<Uint8Array>) if (++seen === 2) controller.abort();
    })
    .catch(() => undefined);
  await stream;
  await eventually(async () => {
    const info = await get(`${server.url}/get_server_info`, H);
    assert.equal(info.body.engine.running, 0);
    assert.equal(info.body.engine.waiting, 0);
  });
  const metrics = await get(`${server.url}/metrics`, H);
  assert.match(metrics.body, /^tslora_requests_aborted_total\{model_name="[^"]*"\} [1-9]/m);
});

test('SSE: incremental chunks of OpenAI completions concatenate to the plain answer; chat works', async () => {
  const plain = await post(`${server.url}/v1/completions`, { model: 'm:a', prompt: 'stream me', max_tokens: 9, temperature: 0, ignore_eos: true }, H);
  assert.equal(plain.status, 200, JSON.stringify(plain.body));
  const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { ...H, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm:a', prompt: 'stream me', max_tokens: 9, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }) });
  const text = await res.text();
  const events = text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), plain.body.choices[0].text);
  assert.equal(chunks.at(-1).usage.completion_tokens, 9);
  const chat = await post(`${server.url}/v1/chat/completions`, { model: 'a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0, ignore_eos: true }, H);
  assert.equal(chat.body.choices[0].message.role, 'assistant');
  assert.equal(chat.body.usage.completion_tokens, 4);
});

test('native stream: an error before the stream starts is a plain JSON 400; cumulative events otherwise', async () => {
  const res = await fetch(`${server.url}/generate`, { method: 'POST', headers: { ...H, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'abc', lora_path: 'c', stream: true, sampling_params: greedy(3) }) });
  assert.equal(res.status, 400, 'c is not loaded: an error before the stream starts is a plain JSON 400');
  const body = (await res.json()) as { error: { message: string } };
  assert.match(body.error.message, /adapter 'c' is not loaded/);
  const events = await postStreamWithKey({ text: 'abc', lora_path: 'b', stream: true, sampling_params: greedy(4) });
  assert.equal(events.at(-1), '[DONE]');
  const data = events.slice(0, -1) as Array<{ text: string; output_ids: number[] }>;
  assert.equal(data.at(-1)!.output_ids.length, 4);
  for (let i = 1; i < data.length; i++) assert.ok(data[i].text.startsWith(data[i - 1].text), 'cumulative text');
});

async function postStreamWithKey(body: unknown): Promise<unknown[]> {
  const res = await fetch(`${server.url}/generate`, { method: 'POST', headers: { ...H, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, '')).map((e) => (e === '[DONE]' ? e : JSON.parse(e)));
}

test('adapter operations: load, pin (copy-on-pin), unload; /v1/models follows', async () => {
  const load = await post(`${server.url}/load_lora_adapter`, { lora_name: 'c', lora_path: join(dir, 'c') }, H);
  assert.equal(load.body.success, true, JSON.stringify(load.body));
  const pin = await post(`${server.url}/pin_lora_adapter`, { lora_name: 'c', pinned: true }, H);
  assert.equal(pin.body.success, true);
  await eventually(async () => {
    const info = await get(`${server.url}/get_server_info`, H);
    assert.ok(info.body.engine.slotIds.some((id: string | null) => id !== null), 'the pinned adapter was copied to a slot');
  });
  const second = await post(`${server.url}/pin_lora_adapter`, { lora_name: 'a', pinned: true }, H);
  assert.equal(second.body.error_code, 'pinned_limit');
  const out = await Promise.all(['a', 'b', 'c', null].map((l) => gen({ text: 'xyz', lora_path: l, sampling_params: greedy(5) })));
  for (const o of out) assert.equal(o.body.output_ids.length, 5);
  assert.equal((await post(`${server.url}/unload_lora_adapter`, { lora_name: 'c' }, H)).body.success, true);
  const models = await get(`${server.url}/v1/models`, H);
  assert.deepEqual(models.body.data.map((m: { id: string }) => m.id).slice(1).sort(), ['a', 'b']);
});

test('stop strings: trimmed at the first match, streaming holds back partial matches, no_stop_trim keeps it', async () => {
  const full = await gen({ text: 'stop test', lora_path: 'a', sampling_params: greedy(16) });
  const text: string = full.body.text;
  assert.equal(text.length, 16);
  const stop = text.slice(5, 8);
  const cut = text.indexOf(stop);
  const stopped = await gen({ text: 'stop test', lora_path: 'a', sampling_params: { ...greedy(16), stop: ['\u0000never', stop] } });
  assert.deepEqual(stopped.body.meta_info.finish_reason, { type: 'stop', matched: stop });
  assert.equal(stopped.body.text, text.slice(0, cut));
  const kept = await gen({ text: 'stop test', lora_path: 'a', sampling_params: { ...greedy(16), stop, no_stop_trim: true } });
  assert.equal(kept.body.text, text.slice(0, cut + stop.length));
  const res = await fetch(`${server.url}/generate`, {
    method: 'POST', headers: { ...H, 'content-type': 'application/json' },
    body: JSON.stringify({ text: 'stop test', lora_path: 'a', stream: true, sampling_params: { ...greedy(16), stop } }),
  });
  const events = (await res.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, '')).filter((e) => e !== '[DONE]').map((e) => JSON.parse(e));
  for (const e of events) assert.ok(!e.text.includes(stop), 'a stop string never reaches the client');
  assert.equal(events.at(-1).text, text.slice(0, cut));
  // stop_token_ids finishes with the token id as `matched`
  const id = full.body.output_ids[3];
  const byId = await gen({ text: 'stop test', lora_path: 'a', sampling_params: { ...greedy(16), stop_token_ids: [id] } });
  assert.deepEqual(byId.body.meta_info.finish_reason, { type: 'stop', matched: id });
  assert.equal(byId.body.output_ids.at(-1), id);
});

test('OpenAI completions: n, echo, logprobs and a batch of prompts', async () => {
  const res = await post(`${server.url}/v1/completions`, { model: 'm', prompt: ['ab', 'cd'], n: 2, max_tokens: 3, temperature: 0, ignore_eos: true, echo: true, logprobs: 2 }, H);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const choices = res.body.choices;
  assert.deepEqual(choices.map((c: { index: number }) => c.index), [0, 1, 2, 3]);
  assert.ok(choices[0].text.startsWith('ab') && choices[2].text.startsWith('cd'), 'echo prepends the prompt');
  assert.equal(choices[0].text, choices[1].text, 'greedy samples agree');
  assert.equal(choices[0].logprobs.tokens.length, 3);
  assert.equal(Object.keys(choices[0].logprobs.top_logprobs[0]).length <= 2, true);
  assert.deepEqual(res.body.usage, { prompt_tokens: 4, completion_tokens: 12, total_tokens: 16, prompt_tokens_details: { cached_tokens: 0 } });
  const bad = await post(`${server.url}/v1/completions`, { model: 'm', prompt: ['ab', 'cd'], lora_path: ['a'] }, H);
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /lora_path has 1 entries but the request has 2 prompts/);
  assert.equal(bad.body.error.param, 'lora_path');
});

test('close() drains: running streams finish, new work and /health get 503 meanwhile (runs last)', async () => {
  let firstEvent!: () => void;
  const started = new Promise<void>((r) => (firstEvent = r));
  const stream = fetch(`${server.url}/generate`, { method: 'POST', headers: { ...H, 'content-type': 'application/json' }, body: JSON.stringify({ text: 'drain me', stream: true, sampling_params: greedy(3000) }) }).then(async (res) => {
    let text = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += Buffer.from(chunk).toString();
      firstEvent();
    }
    return text;
  });
  await started;
  const closed = server.close();
  const refused = await gen({ text: 'late', sampling_params: greedy(2) });
  assert.equal(refused.status, 503);
  assert.match(refused.body.error.message, /shutting down/);
  assert.ok(refused.headers.get('retry-after'));
  assert.equal((await get(`${server.url}/health`)).status, 503);
  const text = await stream;
  assert.ok(text.trimEnd().endsWith('data: [DONE]'));
  assert.match(text, /"finish_reason":\{"type":"length","length":3000\}/);
  await closed;
});
