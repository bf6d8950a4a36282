/**
 * Issue 13: a seeded, bounded fuzz of every route of the real `tslora serve` (demo model, loopback only). Several
 * thousand generated requests (malformed JSON, wrong types, extreme and float32-edge numbers, prototype keys, odd
 * unicode, wrong content types and methods, hostile adapter paths) must get no 5xx; afterwards the process is
 * alive and a greedy request gives the answer it gave before. Change SEED to explore; failures print the request.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { REPO, startServer, type Server } from './server-harness.js';

const SEED = 0x7a13;
const REQUESTS = 2000;
const CONCURRENCY = 2;

/** mulberry32: a small seeded generator, so every run sends the same requests. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof rng>;

const NUMBERS = [0, 1, -1, 2, 0.5, 1.5, 64, 65, 128, 1e9, -1e9, 1e308, -1e308, 5e-324, 1e-45, 3.5e38, 2 ** 31, 2 ** 53, -0, 0.999999];
const STRINGS = ['', 'hello', 'demo', 'demo:upper', 'upper', ':', '<script>', '__proto__', 'a:b', '../../etc', '\u0000', '\ud800', '😀'.repeat(3), 'x'.repeat(300), '%ZZ'];
const PATHS = ['/etc/passwd', '/dev/zero', '/proc/self/mem', '/', '.', '..', '/tmp', `${REPO}models/demo/adapters/upper`, `${REPO}models/demo/adapters/add`, `${REPO}models/demo`, 'models/demo/adapters/spell', '\u0000'];
const SAMPLING_KEYS = ['max_new_tokens', 'min_new_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'stop', 'stop_token_ids', 'ignore_eos', 'skip_special_tokens', 'no_stop_trim', 'frequency_penalty', 'presence_penalty', 'repetition_penalty', 'n', 'sampling_seed', 'spaces_between_special_tokens'];
const OPENAI_KEYS = ['temperature', 'top_p', 'n', 'stop', 'seed', 'presence_penalty', 'frequency_penalty', 'stream', 'stream_options', 'top_k', 'min_p', 'repetition_penalty', 'min_tokens', 'ignore_eos', 'stop_token_ids', 'skip_special_tokens', 'lora_path', 'logprobs', 'top_logprobs', 'echo', 'max_completion_tokens'];

function value(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 4 : 7)) {
    case 0: return r.pick(NUMBERS);
    case 1: return r.pick(STRINGS);
    case 2: return r.chance(0.5);
    case 3: return null;
    case 4: return Array.from({ length: r.int(4) }, () => value(r, depth + 1));
    case 5: return Object.fromEntries(Array.from({ length: r.int(3) }, () => [r.pick(['__proto__', 'constructor', 'a', ...SAMPLING_KEYS]), value(r, depth + 1)]));
    default: return Array.from({ length: 1 + r.int(3) }, () => r.int(300));
  }
}

/** A small generation length most of the time, so that the run stays bounded. */
const length = (r: Rng) => (r.chance(0.85) ? r.int(4) : r.pick(NUMBERS));

function sampling(r: Rng): Record<string, unknown> {
  const out: Record<string, unknown> = { max_new_tokens: length(r) };
  for (let i = r.int(4); i > 0; i--) out[r.pick(SAMPLING_KEYS)] = r.chance(0.5) ? r.pick(NUMBERS) : value(r, 1);
  if (typeof out.max_new_tokens !== 'number' || out.max_new_tokens > 8) out.max_new_tokens = r.int(4);
  if (r.chance(0.1)) out[r.pick(['bogus', '__proto__'])] = value(r, 1);
  return out;
}

function prompt(r: Rng): unknown {
  return r.pick([() => r.pick(STRINGS), () => Array.from({ length: 1 + r.int(3) }, () => r.pick(STRINGS)), () => value(r), () => [1, 2, 3], () => [[1, 2], [3]], () => [-1], () => [1e9]])();
}

function body(r: Rng, route: string): unknown {
  const openai = (extra: Record<string, unknown>) => {
    const out: Record<string, unknown> = { model: r.pick(['demo', 'demo:upper', 'demo:', 'upper', 'nope', '', 5]), max_tokens: length(r), ...extra };
    for (let i = r.int(4); i > 0; i--) out[r.pick(OPENAI_KEYS)] = r.chance(0.5) ? r.pick(NUMBERS) : value(r, 1);
    if (typeof out.max_completion_tokens === 'number' && out.max_completion_tokens > 8) out.max_completion_tokens = 2;
    return out;
  };
  switch (route) {
    case '/generate':
      return {
        [r.pick(['text', 'input_ids', 'text'])]: prompt(r),
        sampling_params: r.chance(0.9) ? sampling(r) : value(r),
        ...(r.chance(0.3) ? { stream: r.chance(0.7) ? true : value(r) } : {}),
        ...(r.chance(0.3) ? { return_logprob: r.chance(0.7) ? true : value(r), top_logprobs_num: r.pick([0, 1, 5, 20, 21, -1, 1e9]), logprob_start_len: r.pick([-1, 0, 2, 1e9]) } : {}),
        ...(r.chance(0.3) ? { lora_path: r.pick([...STRINGS, null, ['upper', null], ['add']]) } : {}),
        ...(r.chance(0.1) ? { rid: value(r) } : {}),
      };
    case '/v1/completions':
      return openai({ prompt: prompt(r) });
    case '/v1/chat/completions':
      return openai({ messages: r.chance(0.8) ? [{ role: r.pick(['user', 'system', 'assistant', 'robot']), content: r.chance(0.8) ? r.pick(STRINGS) : value(r) }] : value(r) });
    default:
      return { lora_name: r.chance(0.8) ? r.pick(['fz', 'fz2', 'upper', ...STRINGS]) : value(r), lora_path: r.chance(0.8) ? r.pick(PATHS) : value(r), pinned: r.chance(0.2) ? value(r) : r.chance(0.3) };
  }
}

const POSTS = ['/generate', '/v1/completions', '/v1/chat/completions', '/load_lora_adapter', '/v1/load_lora_adapter', '/unload_lora_adapter', '/v1/unload_lora_adapter', '/pin_lora_adapter'];
const GETS = ['/v1/models', '/v1/models/demo', '/v1/models/%ZZ', '/v1/models/%E0%A4%A', '/v1/models/upper', '/health', '/health_generate', '/get_model_info', '/get_server_info', '/metrics', '/nope', '//', '/generate?x=%ZZ'];

function request(r: Rng): { method: string; path: string; headers: Record<string, string>; payload?: string } {
  if (r.chance(0.15)) {
    const path = r.pick(GETS);
    return { method: r.chance(0.9) ? 'GET' : r.pick(['DELETE', 'PUT', 'POST', 'PATCH']), path, headers: {} };
  }
  const path = r.pick(POSTS);
  let payload = JSON.stringify(body(r, path));
  const mangle = r.int(20);
  if (mangle === 0) payload = payload.slice(0, r.int(payload.length)); // truncated JSON
  else if (mangle === 1) payload = Array.from({ length: r.int(64) }, () => String.fromCharCode(r.int(256))).join(''); // noise
  else if (mangle === 2) payload = JSON.stringify(value(r)); // any JSON value
  const contentType = r.chance(0.95) ? 'application/json' : r.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8', '']);
  return { method: 'POST', path, headers: contentType ? { 'content-type': contentType } : {}, payload };
}

let server: Server;
let knownAnswer: number[];
const greedyHello = { text: 'hello', sampling_params: { max_new_tokens: 8, temperature: 0, ignore_eos: true } };

async function greedy(): Promise<number[]> {
  const res = await fetch(`${server.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(greedyHello) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { output_ids: number[] }).output_ids;
}

before(async () => {
  server = await startServer(['--host', '127.0.0.1']);
  knownAnswer = await greedy();
});
after(async () => {
  assert.equal(await server.stop(), 0, server.output());
});

test(`fuzz: ${REQUESTS} seeded requests over every route get no 5xx; the server lives and answers as before`, { timeout: 900_000 }, async () => {
  const r = rng(SEED);
  const all = Array.from({ length: REQUESTS }, () => request(r));
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < all.length) {
      const req = all[next++];
      const res = await fetch(`${server.url}${req.path}`, { method: req.method, headers: req.headers, body: req.payload });
      await res.arrayBuffer(); // read streams to the end
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(res.status < 500, `${res.status} for ${req.method} ${req.path} ${JSON.stringify(req.headers)} ${req.payload?.slice(0, 500)}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  console.log(`fuzz statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.ok((statuses.get(200) ?? 0) > REQUESTS / 20, 'a fair share of the requests were valid');
  assert.equal(server.proc.exitCode, null, server.output());
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  assert.deepEqual(await greedy(), knownAnswer);
});
