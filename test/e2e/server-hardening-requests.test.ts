/**
 * Issue 13 (hardening), what a hostile client sends, against the real `tslora serve` on the demo model with an API
 * key: a malformed URL (item 1), sampling values only the engine would reject (2), incremental streaming logprobs
 * and the unread-bytes bound (3), huge prompts (4), and the limits of item 10 (stop strings, requests that can
 * never fit, adapter names). After each, the server is alive and answers.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { get, post, postStream, startServer, type Server } from './server-harness.js';

const KEY = 'k-hardening';
const AUTH = { authorization: `Bearer ${KEY}` };
let server: Server;

before(async () => {
  server = await startServer(['--api-key', KEY, '--enable-metrics', '--max-running-requests', '64', '--max-queued-requests', '64', '--max-unread-stream-bytes', '262144']);
});
after(async () => {
  assert.equal(await server.stop(), 0, server.output());
});

async function alive(): Promise<void> {
  assert.equal(server.proc.exitCode, null, `the server exited:\n${server.output()}`);
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  const gen = await post(`${server.url}/generate`, { text: 'hello', sampling_params: { max_new_tokens: 2, temperature: 0 } }, AUTH);
  assert.equal(gen.status, 200, JSON.stringify(gen.body));
}

test('item 1: GET /v1/models/%ZZ is a 4xx with and without the key, and the process lives', async () => {
  for (const headers of [{}, AUTH]) {
    const res = await get(`${server.url}/v1/models/%ZZ`, headers);
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  }
  const weird = await get(`${server.url}/v1/models/%E0%A4%A`, AUTH);
  assert.equal(weird.status, 400);
  await alive();
});

test('item 2: values the engine rejects are 400 at the door, and concurrent requests are untouched', async () => {
  const bad = [
    { temperature: 1e308 },
    { top_p: 5e-324 },
    { repetition_penalty: 5e-324 },
  ];
  const good = Array.from({ length: 24 }, () => post(`${server.url}/generate`, { text: 'hello world', sampling_params: { max_new_tokens: 12, ignore_eos: true } }, AUTH));
  const poisoned = bad.flatMap((params) => [
    post(`${server.url}/generate`, { text: 'hello', sampling_params: { max_new_tokens: 12, ...params } }, AUTH),
    post(`${server.url}/v1/completions`, { model: 'demo', prompt: 'hello', max_tokens: 12, ...params }, AUTH),
    post(`${server.url}/v1/chat/completions`, { model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 12, ...params }, AUTH),
  ]);
  for (const res of await Promise.all(poisoned)) {
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.match(JSON.stringify(res.body), /temperature|top_p|repetition_penalty/);
  }
  for (const res of await Promise.all(good)) {
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.meta_info.finish_reason, { type: 'length', length: 12 });
  }
});

test('item 3: streamed logprobs are incremental; text stays cumulative on /generate', async () => {
  const body = { text: 'hello', stream: true, return_logprob: true, top_logprobs_num: 5, sampling_params: { max_new_tokens: 16, n: 2, ignore_eos: true } };
  const res = await fetch(`${server.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', ...AUTH }, body: JSON.stringify(body) });
  const text = await res.text();
  const events = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
  for (const index of [0, 1]) {
    const mine = events.filter((e) => e.index === index);
    const last = mine.at(-1);
    assert.equal(last.meta_info.completion_tokens, 16);
    const logprobs = mine.flatMap((e) => e.meta_info.output_token_logprobs);
    const tops = mine.flatMap((e) => e.meta_info.output_top_logprobs);
    assert.equal(logprobs.length, 16, 'every output logprob is sent exactly once');
    assert.equal(tops.length, 16);
    assert.deepEqual(logprobs.map((l: [number, number]) => l[1]), last.output_ids, 'the logprobs follow the tokens in order');
    assert.ok(last.text.length >= mine[0].text.length, 'text is cumulative');
  }
});

test('item 3: a client that never reads is disconnected past --max-unread-stream-bytes, with a metric', async () => {
  const body = JSON.stringify({ text: 'hello', stream: true, return_logprob: true, top_logprobs_num: 20, sampling_params: { n: 64, max_new_tokens: 100, ignore_eos: true } });
  const clients = Array.from({ length: 4 }, () => {
    const req = httpRequest(`${server.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...AUTH } });
    req.on('error', () => undefined);
    req.on('response', (res) => res.pause()); // never read
    req.end(body);
    return req;
  });
  let dropped = 0;
  for (let i = 0; i < 600 && dropped < 1; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const metrics = await get(`${server.url}/metrics`, AUTH);
    dropped = Number(/tslora_stream_clients_dropped_total (\d+)/.exec(metrics.body)?.[1] ?? 0);
  }
  for (const c of clients) c.destroy();
  assert.ok(dropped >= 1, 'a non-reading client was dropped');
  await alive();
});

test('item 4: a prompt too large for the context is refused by its size, without blocking /health', async () => {
  const huge = 'a'.repeat(8 * 1024 * 1024);
  const pending = post(`${server.url}/generate`, { text: huge, sampling_params: { max_new_tokens: 1 } }, AUTH);
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  const res = await pending;
  assert.equal(res.status, 400);
  assert.match(res.body.error.message, /at most \d+ bytes/);
  // A text under the byte bound but long enough for the tokenizer thread: tokenized there, then refused by its
  // token count, while /health answers.
  const mid = post(`${server.url}/generate`, { text: 'ab '.repeat(9000), sampling_params: { max_new_tokens: 1 } }, AUTH);
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  const midRes = await mid;
  assert.equal(midRes.status, 400);
  assert.match(midRes.body.error.message, /has \d+ tokens but the context length is 128/);
  const completions = await post(`${server.url}/v1/completions`, { model: 'demo', prompt: [huge.slice(0, 1 << 20)], max_tokens: 1 }, AUTH);
  assert.equal(completions.status, 400);
  assert.equal(completions.body.error.param, 'prompt[0]');
  const tooBig = await post(`${server.url}/generate`, 'x'.repeat(17 * 1024 * 1024), AUTH);
  assert.equal(tooBig.status, 400);
  assert.match(tooBig.body.error.message, /body exceeds/);
  await alive();
});

test('item 10: stop strings are bounded, requests that can never fit get 400 naming the limit', async () => {
  const manyStops = await post(`${server.url}/generate`, { text: 'hello', stream: true, sampling_params: { stop: Array.from({ length: 1000 }, (_, i) => `s${i}`) } }, AUTH);
  assert.equal(manyStops.status, 400);
  assert.match(manyStops.body.error.message, /at most 64 stop strings/);
  const longStop = await post(`${server.url}/v1/completions`, { model: 'demo', prompt: 'hello', stop: 'x'.repeat(5000) }, AUTH);
  assert.equal(longStop.status, 400);
  const never = await post(`${server.url}/generate`, { text: Array.from({ length: 20 }, () => 'hello'), sampling_params: { n: 64, max_new_tokens: 1 } }, AUTH);
  assert.equal(never.status, 400, JSON.stringify(never.body));
  assert.match(never.body.error.message, /1280 samples.*at most 128.*--max-queued-requests/);
  assert.equal(never.headers.get('retry-after'), null);
  const manyPrompts = await post(`${server.url}/v1/completions`, { model: 'demo', prompt: Array.from({ length: 2000 }, () => 'hello'), max_tokens: 1 }, AUTH);
  assert.equal(manyPrompts.status, 400, JSON.stringify(manyPrompts.body));
  assert.match(manyPrompts.body.error.message, /2000 samples.*at most 128/);
  await alive();
});

test('item 10: adapter names are validated', async () => {
  for (const name of ['<script>', 'a:b', '__proto__', 'x/y', 'a b']) {
    const res = await post(`${server.url}/load_lora_adapter`, { lora_name: name, lora_path: '/nonexistent' }, AUTH);
    assert.equal(res.status, 400, name);
    assert.equal(res.body.error_code, 'invalid_request', `${name}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.error_message, /lora_name/);
  }
  await alive();
});
