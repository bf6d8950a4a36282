// Deviations from the HTTP API spec (b.5, b.6) found by running the real server on the demo model, each pinned by
// a test over real HTTP:
//  - `logprobs` on streamed /v1/completions and /v1/chat/completions were accepted but every chunk said
//    `logprobs: null`; each chunk now carries the logprobs of the tokens it reports, and together they equal the
//    non-streamed response's;
//  - with `echo: true`, /v1/completions' `text_offset` counted from the start of the completion, not of the choice's
//    text (which begins with the echoed prompt), so offsets pointed into the prompt;
//  - an unknown adapter named in `model` ('demo:nope') answered an OpenAI error with `param: "lora_path"`, a field
//    the request never sent; it is now `param: "model"` (lora_path stays the param when the body's lora_path named it).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { post, postStream, startServer, type Server } from './server-harness.js';

const ADAPTERS = ['add', 'reverse'].map((name) => `${name}=models/demo/adapters/${name}`);

describe('HTTP API spec audit on the demo model', { timeout: 180_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer(['--enable-lora', '--lora-paths', ...ADAPTERS], 120_000);
  });
  after(async () => {
    assert.equal(await server.stop(), 0, server.output());
  });

  const chunksOf = (events: any[]) => events.filter((e) => typeof e === 'object' && e.choices?.length);

  it('streamed /v1/completions chunks carry the logprobs of their tokens (b.6), equal to the non-streamed ones', async () => {
    const request = { model: 'demo:reverse', prompt: 'hello world=', max_tokens: 20, temperature: 0, logprobs: 2 };
    const whole = await post(`${server.url}/v1/completions`, request);
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    const expected = whole.body.choices[0];
    assert.equal(expected.text, 'dlrow olleh');
    assert.ok(expected.logprobs.tokens.length >= 11, JSON.stringify(expected.logprobs));

    const events = await postStream(`${server.url}/v1/completions`, { ...request, stream: true });
    assert.equal(events.at(-1), '[DONE]');
    const chunks = chunksOf(events);
    const withText = chunks.filter((c) => c.choices[0].text !== '');
    assert.ok(withText.every((c) => c.choices[0].logprobs !== null), `a chunk with text but no logprobs: ${JSON.stringify(withText)}`);
    const streamed = chunks.map((c) => c.choices[0].logprobs).filter((l) => l !== null);
    assert.deepEqual(streamed.flatMap((l) => l.tokens), expected.logprobs.tokens);
    assert.deepEqual(streamed.flatMap((l) => l.token_logprobs), expected.logprobs.token_logprobs);
    assert.deepEqual(streamed.flatMap((l) => l.top_logprobs), expected.logprobs.top_logprobs);
    assert.deepEqual(streamed.flatMap((l) => l.text_offset), expected.logprobs.text_offset);
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), expected.text);
  });

  it('streamed /v1/chat/completions chunks carry logprobs.content when logprobs is true, null otherwise', async () => {
    const request = { model: 'demo:add', messages: [{ role: 'user', content: '12+30' }], max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2 };
    const whole = await post(`${server.url}/v1/chat/completions`, request);
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    assert.equal(whole.body.choices[0].message.content, '42');
    const expected = whole.body.choices[0].logprobs.content;

    const chunks = chunksOf(await postStream(`${server.url}/v1/chat/completions`, { ...request, stream: true }));
    const streamed = chunks.flatMap((c) => c.choices[0].logprobs?.content ?? []);
    assert.deepEqual(streamed, expected);
    assert.ok(chunks.filter((c) => c.choices[0].delta.content).every((c) => c.choices[0].logprobs !== null));

    const plain = chunksOf(await postStream(`${server.url}/v1/chat/completions`, { ...request, logprobs: false, top_logprobs: undefined, stream: true }));
    assert.ok(plain.every((c) => c.choices[0].logprobs === null), JSON.stringify(plain));
  });

  it('with echo, text_offset indexes the choice text that starts with the prompt, streamed or not', async () => {
    const request = { model: 'demo:add', prompt: '12+30=', max_tokens: 8, temperature: 0, echo: true, logprobs: 1 };
    const whole = await post(`${server.url}/v1/completions`, request);
    assert.equal(whole.status, 200, JSON.stringify(whole.body));
    const choice = whole.body.choices[0];
    assert.equal(choice.text, '12+30=42');
    const { tokens, text_offset: offsets } = choice.logprobs;
    assert.equal(offsets[0], '12+30='.length);
    // Every token that is visible text sits at its offset in the choice text.
    tokens.forEach((token: string, i: number) => {
      if (token !== '</s>') assert.equal(choice.text.slice(offsets[i], offsets[i] + token.length), token, `token ${i}`);
    });

    const chunks = chunksOf(await postStream(`${server.url}/v1/completions`, { ...request, stream: true }));
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), choice.text);
    assert.deepEqual(chunks.flatMap((c) => c.choices[0].logprobs?.text_offset ?? []), offsets);
  });

  it("an unknown adapter in 'model' is a 400 whose OpenAI error names param 'model'; one in lora_path names 'lora_path'", async () => {
    for (const route of ['/v1/completions', '/v1/chat/completions']) {
      const input = route === '/v1/completions' ? { prompt: '1+2=' } : { messages: [{ role: 'user', content: '1+2' }] };
      const byModel = await post(`${server.url}${route}`, { model: 'demo:nope', max_tokens: 4, ...input });
      assert.equal(byModel.status, 400, JSON.stringify(byModel.body));
      assert.match(byModel.body.error.message, /adapter 'nope' is not loaded/);
      assert.equal(byModel.body.error.type, 'invalid_request_error');
      assert.equal(byModel.body.error.param, 'model', `${route}: ${JSON.stringify(byModel.body)}`);

      const byBody = await post(`${server.url}${route}`, { model: 'demo', lora_path: 'nope', max_tokens: 4, ...input });
      assert.equal(byBody.status, 400, JSON.stringify(byBody.body));
      assert.equal(byBody.body.error.param, 'lora_path', `${route}: ${JSON.stringify(byBody.body)}`);
    }
    const streamed = await fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo:nope', prompt: '1+2=', stream: true }),
    });
    assert.equal(streamed.status, 400);
    assert.equal(((await streamed.json()) as any).error.param, 'model');
  });

  it('/get_server_info reports the port in use when the server was started with --port 0', async () => {
    const info = await (await fetch(`${server.url}/get_server_info`)).json() as { port: number };
    assert.equal(info.port, Number(new URL(server.url).port));
    assert.notEqual(info.port, 0);
  });

  it("a prompt longer than the context is a 400 naming the route's own field: prompt, messages, or text on /generate", async () => {
    const long = 'ab'.repeat(400); // the demo model is character-level: 800 tokens, past its context
    const cases = [
      { route: '/v1/completions', body: { model: 'demo', prompt: long, max_tokens: 4 }, param: 'prompt' },
      { route: '/v1/chat/completions', body: { model: 'demo', messages: [{ role: 'user', content: long }], max_tokens: 4 }, param: 'messages' },
      { route: '/generate', body: { text: long, sampling_params: { max_new_tokens: 4 } }, param: 'text' },
    ];
    for (const c of cases) {
      const r = await post(`${server.url}${c.route}`, c.body);
      assert.equal(r.status, 400, `${c.route}: ${JSON.stringify(r.body)}`);
      assert.match(JSON.stringify(r.body), /context length/);
      if (c.route !== '/generate') assert.equal(r.body.error.param, c.param, `${c.route}: ${JSON.stringify(r.body)}`);
    }
  });
});
