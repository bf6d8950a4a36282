/**
 * Overlap scheduling (the default) against --disable-overlap-schedule, two real servers on the tiny-llama fixture
 * with two adapters and 8-token prefill chunks: the same concurrent mix of requests (greedy and seeded sampling,
 * base and adapters, n = 2, logprobs and top logprobs, prompt logprobs over several chunks, penalties, stop-id and
 * stop-string finishes, a scoring-only request) gives the same tokens, finishes and logprobs; a stream aborted
 * mid-way leaves the server serving; afterwards no KV block is left in use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADAPTER, FIXTURE, get, post, postStream, startServer, type Server } from './server-harness.js';

const MODEL = 'tiny-llama';
const ARGS = [
  '--model-path', FIXTURE(MODEL), '--max-loras-per-batch', '2', '--max-lora-rank', '16', '--lora-target-modules', 'all', '--chunked-prefill-size', '8',
  '--lora-paths', `a=${ADAPTER(MODEL, 'r1-qv')}`, `b=${ADAPTER(MODEL, 'r3-all')}`,
];
const LONG = 'the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat by the door';

function requests(stopId: number, stopText: string): Array<Record<string, unknown>> {
  const g = (n: number, extra: Record<string, unknown> = {}) => ({ max_new_tokens: n, temperature: 0, ignore_eos: true, ...extra });
  return [
    { text: 'hello there', sampling_params: g(24) },
    { text: 'hello there', lora_path: 'a', sampling_params: g(20) },
    { text: 'one two three', lora_path: 'b', return_logprob: true, top_logprobs_num: 3, sampling_params: g(16) },
    { text: 'seeded', lora_path: 'a', sampling_params: { max_new_tokens: 20, temperature: 0.8, sampling_seed: 7, ignore_eos: true } },
    { text: 'nucleus', sampling_params: { max_new_tokens: 18, temperature: 1.1, top_p: 0.9, top_k: 20, sampling_seed: 11, ignore_eos: true, n: 2 } },
    { text: 'penalised', lora_path: 'b', sampling_params: { max_new_tokens: 16, temperature: 0.7, sampling_seed: 3, repetition_penalty: 1.2, frequency_penalty: 0.5, presence_penalty: 0.3, ignore_eos: true } },
    { text: LONG, lora_path: 'a', return_logprob: true, logprob_start_len: 0, top_logprobs_num: 2, sampling_params: g(8) },
    { text: 'hello there', sampling_params: g(30, { stop_token_ids: [stopId] }) },
    { text: 'hello there', sampling_params: g(30, { stop: stopText }) },
    { text: LONG, return_logprob: true, logprob_start_len: 0, sampling_params: g(0) },
    { text: 'short', lora_path: 'b', sampling_params: g(1) },
  ];
}

/** What must match between the two servers (logprobs to 1e-4: batch composition may differ by a step). */
function outcome(body: any): any {
  const bodies = Array.isArray(body) ? body : [body];
  return bodies.map((b) => ({
    output_ids: b.output_ids,
    text: b.text,
    finish: b.meta_info.finish_reason,
    logprobs: b.meta_info.output_token_logprobs?.map((t: number[]) => [t[0], t[1]]),
    top: b.meta_info.output_top_logprobs?.map((row: number[][]) => row.map((t) => t[1])),
    input: b.meta_info.input_token_logprobs?.map((t: Array<number | null>) => t[0]),
  }));
}

/** Deep equality, with non-integer numbers (logprobs) equal within 1e-3. */
function assertSame(a: unknown, b: unknown, path = ''): void {
  if (typeof a === 'number' && typeof b === 'number' && !(Number.isInteger(a) && Number.isInteger(b))) {
    assert.ok(Math.abs(a - b) < 1e-3, `${path}: ${a} vs ${b}`);
  } else if (Array.isArray(a) && Array.isArray(b)) {
    assert.equal(a.length, b.length, `${path}: length`);
    a.forEach((x, i) => assertSame(x, b[i], `${path}[${i}]`));
  } else if (a && b && typeof a === 'object' && typeof b === 'object') {
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort(), `${path}: keys`);
    for (const k of Object.keys(a)) assertSame((a as any)[k], (b as any)[k], `${path}.${k}`);
  } else assert.deepEqual(a, b, path);
}

async function runMix(server: Server, stopId: number, stopText: string): Promise<any[]> {
  // A long stream, aborted after a few events while the others run.
  const controller = new AbortController();
  let events = 0;
  const aborted = postStream(`${server.url}/generate`, { text: 'abort me', stream: true, sampling_params: { max_new_tokens: 400, temperature: 0, ignore_eos: true } }, () => {
    if (++events === 5) controller.abort();
  }, controller.signal).catch((error: Error) => error.name);
  const results = await Promise.all(requests(stopId, stopText).map(async (body) => {
    const res = await post(`${server.url}/generate`, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return outcome(res.body);
  }));
  assert.equal(await aborted, 'AbortError');
  return results;
}

async function kvBlocksUsed(server: Server): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const engine = (await get(`${server.url}/get_server_info`)).body.engine;
    if (engine.kvBlocksUsed === 0 && engine.running === 0) return 0;
    await new Promise((r) => setTimeout(r, 50));
  }
  return (await get(`${server.url}/get_server_info`)).body.engine.kvBlocksUsed;
}

test('overlap scheduling on (default) vs --disable-overlap-schedule: identical outputs, aborts and KV accounting', { timeout: 240_000 }, async () => {
  const servers = [await startServer(ARGS), await startServer([...ARGS, '--disable-overlap-schedule'])];
  try {
    const info = await Promise.all(servers.map(async (s) => (await get(`${s.url}/get_server_info`)).body));
    assert.deepEqual(info.map((i) => i.disable_overlap_schedule ?? i.disableOverlapSchedule), [false, true]);
    // Finishing ids and text taken from the greedy base output, so both finish kinds happen mid-generation.
    const probe = (await post(`${servers[1].url}/generate`, { text: 'hello there', sampling_params: { max_new_tokens: 24, temperature: 0, ignore_eos: true } })).body;
    const stopId = probe.output_ids[6];
    const stopText = probe.text.slice(Math.floor(probe.text.length / 2), Math.floor(probe.text.length / 2) + 3).trim() || probe.text.slice(-2);
    const [on, off] = await Promise.all(servers.map((s) => runMix(s, stopId, stopText)));
    assertSame(on, off);
    assert.equal(off[7][0].finish.type, 'stop', 'the stop id ended the request');
    assert.ok(off[7][0].output_ids.length < 30);
    assert.equal(off[8][0].finish.type, 'stop', 'the stop string ended the request');
    assert.equal(on[4].length, 2, 'n = 2');
    // Each server again alone (no concurrent batch): the same answers as under load.
    const single = outcome((await post(`${servers[0].url}/generate`, requests(stopId, stopText)[2])).body);
    assertSame(single, on[2]);
    for (const server of servers) assert.equal(await kvBlocksUsed(server), 0, 'no KV block left in use');
  } finally {
    for (const server of servers) assert.equal(await server.stop(), 0, server.output());
  }
});
