/**
 * Adapter lifecycle through HTTP (spec b.3, b.4, c.5, c.7, f.6-f.8): start-up adapters in all three forms,
 * dynamic load / unload / replace, every error category, pinning, and unload during a stream.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADAPTER, FIXTURE, INVALID_ADAPTER, get, greedy, post, postStream, reference, startServer, type Server } from './server-harness.js';

const MODEL = 'tiny-llama';
const ref = reference(MODEL);
const expected = (name: string, p: number) => ref.adapters.find((a) => a.name === name)!.prompts[p].greedy;
let server: Server;
const pathNamed = ADAPTER(MODEL, 'r8-vdown');

before(async () => {
  server = await startServer([
    '--model-path', FIXTURE(MODEL), '--max-loras-per-batch', '3', '--max-loaded-loras', '6',
    '--max-lora-rank', '64', '--lora-target-modules', 'all',
    '--lora-paths', `r1-qv=${ADAPTER(MODEL, 'r1-qv')}`, JSON.stringify({ lora_name: 'r3', lora_path: ADAPTER(MODEL, 'r64-rslora'), pinned: true }), pathNamed,
  ]);
});
after(async () => {
  assert.equal(await server.stop(), 0, server.output());
});

const gen = (lora: string | null, p = 0, n = ref.greedyTokens) => post(`${server.url}/generate`, { input_ids: ref.prompts[p], lora_path: lora, sampling_params: greedy(n) });

test('start-up adapters in the three --lora-paths forms, listed by /v1/models', async () => {
  const models = await get(`${server.url}/v1/models`);
  const ids = models.body.data.map((c: { id: string }) => c.id);
  assert.deepEqual(ids.slice(1).sort(), ['r1-qv', 'r3', pathNamed].sort());
  const base = models.body.data[0];
  assert.equal(base.parent, null);
  const r3 = models.body.data.find((c: { id: string }) => c.id === 'r3');
  assert.equal(r3.parent, base.id);
  assert.equal(r3.root, ADAPTER(MODEL, 'r64-rslora'));
  assert.equal(r3.pinned, true);
  assert.deepEqual((await gen('r3')).body.output_ids, expected('r64-rslora', 0));
  assert.deepEqual((await gen(pathNamed, 1)).body.output_ids, expected('r8-vdown', 1));
  const card = await get(`${server.url}/v1/models/r1-qv`);
  assert.equal(card.body.root, ADAPTER(MODEL, 'r1-qv'));
});

test('dynamic load, serve, unload; /v1/models follows; replace with load_inplace gets a new id and no stale KV', async () => {
  const load = await post(`${server.url}/load_lora_adapter`, { lora_name: 'dyn', lora_path: ADAPTER(MODEL, 'r16-o') });
  assert.equal(load.status, 200, JSON.stringify(load.body));
  assert.equal(load.body.success, true);
  assert.equal(load.body.loaded_adapters.dyn, ADAPTER(MODEL, 'r16-o'));
  const prompt = [...ref.prompts[1], ...ref.prompts[1]];
  const first = await post(`${server.url}/generate`, { input_ids: prompt, lora_path: 'dyn', sampling_params: greedy(4) });
  const cachedRun = await post(`${server.url}/generate`, { input_ids: prompt, lora_path: 'dyn', sampling_params: greedy(4) });
  assert.equal(cachedRun.body.meta_info.cached_tokens, 16);
  assert.deepEqual((await gen('dyn', 2)).body.output_ids, expected('r16-o', 2));
  const replaced = await post(`${server.url}/v1/load_lora_adapter`, { lora_name: 'dyn', lora_path: ADAPTER(MODEL, 'r5-gateup'), load_inplace: true });
  assert.equal(replaced.body.success, true, JSON.stringify(replaced.body));
  const afterReplace = await post(`${server.url}/generate`, { input_ids: prompt, lora_path: 'dyn', sampling_params: greedy(4) });
  assert.equal(afterReplace.body.meta_info.cached_tokens, 0, 'a new id never reuses the old adapter\'s KV');
  assert.notDeepEqual(afterReplace.body.output_ids, first.body.output_ids);
  assert.deepEqual((await gen('dyn', 2)).body.output_ids, expected('r5-gateup', 2));
  const unload = await post(`${server.url}/unload_lora_adapter`, { lora_name: 'dyn' });
  assert.equal(unload.body.success, true);
  assert.equal(unload.body.loaded_adapters.dyn, undefined);
  const gone = await gen('dyn');
  assert.equal(gone.status, 400);
  assert.match(gone.body.error.message, /not loaded/);
  const ids = (await get(`${server.url}/v1/models`)).body.data.map((c: { id: string }) => c.id);
  assert.ok(!ids.includes('dyn'));
  assert.equal((await get(`${server.url}/v1/models/dyn`)).status, 404);
});

test('every adapter error category, with its error_code and wording', async () => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ lora_name: 'x', lora_path: '/nonexistent/adapter' }, 'not_found', /adapter_config\.json|does not exist|no PEFT/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'no-config') }, 'not_found', /adapter_config\.json/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'dora') }, 'unsupported_adapter', /DoRA/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'modules-to-save') }, 'unsupported_adapter', /modules_to_save/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'bias-all') }, 'unsupported_adapter', /bias/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'pickle-only') }, 'unsupported_adapter', /adapter_model\.bin/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'not-lora') }, 'unsupported_adapter', /IA3/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'added-tokens') }, 'unsupported_adapter', /added tokens/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'truncated') }, 'unsupported_adapter', /corrupt adapter file/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'rank-128') }, 'incompatible', /incompatible|rank 128/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'wrong-shape') }, 'incompatible', /down_proj/],
    [{ lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'fan-in-fan-out') }, 'incompatible', /fan_in_fan_out/],
    [{ lora_name: 'r1-qv', lora_path: ADAPTER(MODEL, 'r16-o') }, 'already_loaded', /already loaded/],
    [{ lora_name: '  ', lora_path: ADAPTER(MODEL, 'r16-o') }, 'invalid_request', /lora_name/],
    [{ lora_name: 'x' }, 'invalid_request', /lora_path/],
  ];
  for (const [body, code, words] of cases) {
    const res = await post(`${server.url}/load_lora_adapter`, body);
    assert.equal(res.status, 400, `${JSON.stringify(body)} → ${JSON.stringify(res.body)}`);
    assert.equal(res.body.success, false);
    assert.equal(res.body.error_code, code, `${JSON.stringify(body)}: ${res.body.error_message}`);
    assert.match(res.body.error_message, words);
    assert.ok('r1-qv' in res.body.loaded_adapters, 'failures leave the registry as it was');
  }
  const nan = await post(`${server.url}/load_lora_adapter`, { lora_name: 'x', lora_path: INVALID_ADAPTER(MODEL, 'nan-weights') });
  assert.equal(nan.status, 400);
  assert.match(nan.body.error_message, /corrupt adapter file|NaN|non-finite/i);
  const unload = await post(`${server.url}/unload_lora_adapter`, { lora_name: 'never' });
  assert.equal(unload.body.error_code, 'not_loaded');
  assert.match(unload.body.error_message, /not loaded/);
  // The registry is unchanged and still serves.
  assert.deepEqual((await gen('r1-qv')).body.output_ids, expected('r1-qv', 0));
});

test('pinning: load pinned, S − 1 limit ("starv"), pin endpoint flips the flag in place', async () => {
  // S = 3: r3 is pinned already, so one more may be.
  const pin = await post(`${server.url}/pin_lora_adapter`, { lora_name: 'r1-qv', pinned: true });
  assert.equal(pin.body.success, true, JSON.stringify(pin.body));
  assert.ok(pin.body.pinned_adapters.includes('r1-qv'));
  const tooMany = await post(`${server.url}/load_lora_adapter`, { lora_name: 'p3', lora_path: ADAPTER(MODEL, 'r16-o'), pinned: true });
  assert.equal(tooMany.body.error_code, 'pinned_limit');
  assert.match(tooMany.body.error_message, /starv/);
  const pinAnother = await post(`${server.url}/pin_lora_adapter`, { lora_name: pathNamed, pinned: true });
  assert.equal(pinAnother.body.error_code, 'pinned_limit');
  // With two slots pinned, the third serves base and every other adapter in turn.
  const slotsBefore = (await get(`${server.url}/get_server_info`)).body.lora_slots;
  assert.ok(slotsBefore.includes('r1-qv') && slotsBefore.includes('r3'), `pinned adapters hold slots: ${slotsBefore}`);
  const outs = await Promise.all([gen(null, 0), gen(pathNamed, 1), gen('r1-qv', 2), gen('r3', 1), gen(pathNamed, 0), gen(null, 2)]);
  const slotsAfter = (await get(`${server.url}/get_server_info`)).body.lora_slots;
  assert.equal(slotsAfter.indexOf('r1-qv'), slotsBefore.indexOf('r1-qv'), 'pinned adapters keep their slots under churn');
  assert.equal(slotsAfter.indexOf('r3'), slotsBefore.indexOf('r3'));
  outs.splice(4);
  assert.deepEqual(outs.map((o) => o.body.output_ids), [ref.base[0].greedy, expected('r8-vdown', 1), expected('r1-qv', 2), expected('r64-rslora', 1)]);
  const unpin = await post(`${server.url}/pin_lora_adapter`, { lora_name: 'r1-qv', pinned: false });
  assert.equal(unpin.body.success, true);
  const card = await get(`${server.url}/v1/models/r1-qv`);
  assert.equal(card.body.pinned, false);
});

test('unload during a stream: the stream finishes, the unload returns after it, new requests get not_loaded', async () => {
  // Ordered by causality, not by the clock: the name leaves the registry as soon as the server has the unload (seen
  // through /v1/models), and when the unload answers, the engine has no request of the stream left (seen through
  // /get_server_info, asked after the answer), which an unload that did not wait could not show while a 200-token
  // stream runs.
  await post(`${server.url}/load_lora_adapter`, { lora_name: 'streamed', lora_path: ADAPTER(MODEL, 'r16-o') });
  let firstEvent!: () => void;
  const started = new Promise<void>((r) => (firstEvent = r));
  const stream = postStream(`${server.url}/generate`, { input_ids: ref.prompts[0], lora_path: 'streamed', stream: true, sampling_params: greedy(200) }, () => firstEvent());
  await started;
  const unload = post(`${server.url}/unload_lora_adapter`, { lora_name: 'streamed' }).then(async (r) => ({ r, info: (await get(`${server.url}/get_server_info`)).body }));
  const listed = async () => (await get(`${server.url}/v1/models`)).body.data.some((c: { id: string }) => c.id === 'streamed');
  while (await listed()) await new Promise((r) => setTimeout(r, 10));
  const during = await gen('streamed');
  assert.equal(during.status, 400);
  assert.match(during.body.error.message, /not loaded/);
  const { r, info } = await unload;
  assert.equal(r.body.success, true);
  assert.equal(info.engine.running, 0, `when the unload answered, the engine still ran ${info.engine.running} request(s)`);
  const events = await stream;
  assert.equal(events.at(-1), '[DONE]');
  assert.deepEqual(events.at(-2).meta_info.finish_reason, { type: 'length', length: 200 });
});
