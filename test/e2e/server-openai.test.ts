/**
 * The OpenAI-compatible layer through the official `openai` client (spec b.5, b.6, f.14): base:adapter parsing,
 * bare adapter names, completions and chat (plain and streaming, with usage), error shapes; plus --api-key and a
 * server with LoRA off.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { ADAPTER, FIXTURE, get, greedy, post, reference, startServer, type Server } from './server-harness.js';

const MODEL = 'tiny-llama';
const ref = reference(MODEL);
const expected = (name: string, p: number) => ref.adapters.find((a) => a.name === name)!.prompts[p].greedy;
let server: Server;
let client: OpenAI;

before(async () => {
  server = await startServer([
    '--model-path', FIXTURE(MODEL), '--served-model-name', 'tiny', '--max-loras-per-batch', '4',
    '--lora-paths', `sql=${ADAPTER(MODEL, 'r64-rslora')}`, `chat=${ADAPTER(MODEL, 'r1-qv')}`, `ünï:cödé=${ADAPTER(MODEL, 'r8-vdown')}`,
  ]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  assert.equal(await server.stop(), 0, server.output());
});

/** Token ids of a completion, via the native route with the same prompt (the OpenAI shape has only text). */
async function nativeText(lora: string | null, p: number, n: number): Promise<string> {
  const res = await post(`${server.url}/generate`, { input_ids: ref.prompts[p], lora_path: lora, sampling_params: greedy(n) });
  return res.body.text;
}

test('completions: model "base:adapter" selects the adapter, usage counts tokens', async () => {
  const completion = await client.completions.create({ model: 'tiny:sql', prompt: ref.prompts[0], max_tokens: 8, temperature: 0, ignore_eos: true } as never);
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.model, 'tiny:sql');
  assert.equal(completion.choices[0].text, await nativeText('sql', 0, 8));
  assert.equal(completion.choices[0].finish_reason, 'length');
  assert.deepEqual({ ...completion.usage, prompt_tokens_details: undefined }, { prompt_tokens: ref.prompts[0].length, completion_tokens: 8, total_tokens: ref.prompts[0].length + 8, prompt_tokens_details: undefined });
  // The native route with the same adapter gives the PEFT reference tokens.
  const native = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], lora_path: 'sql', sampling_params: greedy(8) });
  assert.deepEqual(native.body.output_ids, expected('r64-rslora', 0).slice(0, 8));
});

test('model parsing: whitespace, empty adapter part, first-colon split with unicode, bare adapter name, override of lora_path', async () => {
  const text = async (model: string, extra: Record<string, unknown> = {}) =>
    (await client.completions.create({ model, prompt: ref.prompts[1], max_tokens: 6, temperature: 0, ignore_eos: true, ...extra } as never)).choices[0].text;
  const base = await nativeText(null, 1, 6);
  assert.equal(await text('tiny: sql '), await nativeText('sql', 1, 6));
  assert.equal(await text('tiny:'), base);
  assert.equal(await text('tiny:   '), base);
  assert.equal(await text('anything:ünï:cödé'), await nativeText('ünï:cödé', 1, 6));
  assert.equal(await text('chat'), await nativeText('chat', 1, 6), 'a bare registered adapter name selects it (vLLM style)');
  assert.equal(await text('tiny'), base);
  assert.equal(await text('tiny:chat', { lora_path: 'sql' }), await nativeText('chat', 1, 6), 'model overrides lora_path');
  assert.equal(await text('tiny', { lora_path: 'sql' }), await nativeText('sql', 1, 6), 'lora_path applies when model names none');
});

test('chat completions, plain and streaming with include_usage', async () => {
  const messages = [{ role: 'user' as const, content: 'Hello there!' }];
  const plain = await client.chat.completions.create({ model: 'tiny:chat', messages, max_tokens: 6, temperature: 0, ignore_eos: true } as never);
  assert.equal(plain.object, 'chat.completion');
  assert.equal(plain.choices[0].message.role, 'assistant');
  assert.equal(plain.usage!.completion_tokens, 6);
  const stream = await client.chat.completions.create({ model: 'tiny:chat', messages, max_tokens: 6, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } } as never);
  let content = '';
  let role = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) {
      usage = chunk.usage;
      assert.equal(chunk.choices.length, 0);
    }
    for (const choice of chunk.choices) {
      if (choice.delta.role) role = choice.delta.role;
      content += choice.delta.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(content, plain.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.deepEqual([usage?.prompt_tokens, usage?.completion_tokens], [plain.usage!.prompt_tokens, 6]);
  const completionStream = await client.completions.create({ model: 'tiny:sql', prompt: ref.prompts[0], max_tokens: 5, temperature: 0, ignore_eos: true, stream: true } as never);
  let streamed = '';
  for await (const chunk of completionStream as unknown as AsyncIterable<OpenAI.Completion>) streamed += chunk.choices[0]?.text ?? '';
  assert.equal(streamed, await nativeText('sql', 0, 5));
});

test('several adapters at once, and OpenAI-shaped errors', async () => {
  const results = await Promise.all(['tiny:sql', 'tiny:chat', 'tiny', 'tiny:ünï:cödé'].map((model) => client.completions.create({ model, prompt: ref.prompts[2], max_tokens: 5, temperature: 0, ignore_eos: true } as never)));
  assert.deepEqual(results.map((r) => r.choices[0].text), [await nativeText('sql', 2, 5), await nativeText('chat', 2, 5), await nativeText(null, 2, 5), await nativeText('ünï:cödé', 2, 5)]);
  await assert.rejects(client.completions.create({ model: 'tiny:nope', prompt: 'hi', max_tokens: 2 }), (e: unknown) => {
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 400);
    assert.match(e.message, /adapter 'nope' is not loaded/);
    return true;
  });
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: -1 }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && /max_tokens/.test(e.message));
  const raw = await post(`${server.url}/v1/completions`, { model: 'tiny:nope', prompt: 'hi' });
  assert.equal(raw.body.error.type, 'invalid_request_error');
  assert.equal(typeof raw.body.error.message, 'string');
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id).sort(), ['chat', 'sql', 'tiny', 'ünï:cödé'].sort());
  const card = await client.models.retrieve('sql');
  assert.equal((card as unknown as { parent: string }).parent, 'tiny');
});

test('--api-key guards every route but /health; LoRA off rejects adapters with "not enabled"', async () => {
  const locked = await startServer(['--model-path', FIXTURE(MODEL), '--api-key', 'sekret']);
  try {
    assert.equal((await get(`${locked.url}/health`)).status, 200);
    assert.equal((await get(`${locked.url}/v1/models`)).status, 401);
    assert.equal((await post(`${locked.url}/generate`, { text: 'hi' })).status, 401);
    assert.equal((await post(`${locked.url}/generate`, { text: 'hi' }, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await get(`${locked.url}/metrics`)).status, 401);
    const ok = await post(`${locked.url}/generate`, { input_ids: ref.prompts[0], sampling_params: greedy(4) }, { authorization: 'Bearer sekret' });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body.output_ids, ref.base[0].greedy.slice(0, 4));
    const keyed = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: 'sekret', maxRetries: 0 });
    const noLora = await keyed.completions.create({ model: 'x:sql', prompt: 'hi', max_tokens: 2 }).catch((e: unknown) => e);
    assert.ok(noLora instanceof OpenAI.APIError && noLora.status === 400);
    assert.match((noLora as Error).message, /LoRA.*not enabled/);
    const load = await post(`${locked.url}/load_lora_adapter`, { lora_name: 'a', lora_path: ADAPTER(MODEL, 'r1-qv') }, { authorization: 'Bearer sekret' });
    assert.equal(load.body.error_code, 'lora_disabled');
    const gen = await post(`${locked.url}/generate`, { text: 'hi', lora_path: 'sql' }, { authorization: 'Bearer sekret' });
    assert.equal(gen.status, 400);
    assert.match(gen.body.error.message, /LoRA.*not enabled/);
  } finally {
    assert.equal(await locked.stop(), 0, locked.output());
  }
});
