// Sampling behaviour over real HTTP against real `tslora serve` processes:
//  - min_new_tokens on the demo model: its base model echoes `Hi there!=` and then ends with </s>; with
//    min_new_tokens the end-of-sequence id cannot be drawn (SGLang masks it), so generation runs past it, and the
//    top logprobs at that position show </s> was the raw argmax that got skipped;
//  - the model's generation_config.json sampling values are the defaults of fields a request leaves unset, on
//    /generate and /v1/completions (tiny-llama ships temperature 0.6, top_p 0.9);
//  - input_top_logprobs across prefill chunks (--chunked-prefill-size 4);
//  - /metrics exists only with --enable-metrics.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { FIXTURE, get, post, reference, startServer, type Server } from './server-harness.js';

const EOS = 2; // the demo model's </s>

describe('min_new_tokens on the demo model', { timeout: 180_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer([], 120_000);
  });
  after(async () => {
    await server?.stop();
  });

  it('EOS cannot end the output before min_new_tokens tokens; without it the echo ends at </s>', async () => {
    const plain = (await post(`${server.url}/generate`, { text: 'Hi there!=', sampling_params: { max_new_tokens: 30, temperature: 0 } })).body;
    assert.equal(plain.text, 'Hi there!');
    assert.deepEqual(plain.meta_info.finish_reason, { type: 'stop', matched: EOS });
    const echoTokens = plain.output_ids.filter((id: number) => id !== EOS).length;

    const min = echoTokens + 6;
    const forced = (await post(`${server.url}/generate`, {
      text: 'Hi there!=', sampling_params: { max_new_tokens: 30, temperature: 0, min_new_tokens: min },
      return_logprob: true, top_logprobs_num: 2,
    })).body;
    assert.ok(forced.output_ids.length >= min, `only ${forced.output_ids.length} tokens: ${forced.output_ids}`);
    assert.ok(!forced.output_ids.slice(0, min).includes(EOS), `EOS within the first ${min} tokens: ${forced.output_ids}`);
    assert.deepEqual(forced.output_ids.slice(0, echoTokens), plain.output_ids.slice(0, echoTokens), 'same greedy prefix');
    assert.ok(forced.text.startsWith('Hi there!') && forced.text.length > 'Hi there!'.length, forced.text);
    // At the position where the plain run drew </s>, </s> is still the top raw logprob, yet another token was drawn.
    const top = forced.meta_info.output_top_logprobs[echoTokens];
    assert.equal(top[0][1], EOS, `top logprobs at position ${echoTokens}: ${JSON.stringify(top)}`);
    assert.notEqual(forced.output_ids[echoTokens], EOS);
    // After the minimum, EOS ends the request again (or the length limit does).
    const f = forced.meta_info.finish_reason;
    assert.ok((f.type === 'stop' && f.matched === EOS) || (f.type === 'length' && f.length === 30), JSON.stringify(f));
  });

  it('the OpenAI min_tokens extra does the same on /v1/completions', async () => {
    const res = await post(`${server.url}/v1/completions`, { model: 'demo', prompt: 'Hi there!=', max_tokens: 30, temperature: 0, min_tokens: 15 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(res.body.usage.completion_tokens >= 15, JSON.stringify(res.body.usage));
    assert.ok(res.body.choices[0].text.startsWith('Hi there!'));
  });

  it('a stop string met before min_new_tokens does not end the request', async () => {
    const early = (await post(`${server.url}/generate`, { text: 'Hi there!=', sampling_params: { max_new_tokens: 30, temperature: 0, stop: 'there' } })).body;
    assert.equal(early.text, 'Hi ');
    assert.deepEqual(early.meta_info.finish_reason, { type: 'stop', matched: 'there' });
    const late = (await post(`${server.url}/generate`, { text: 'Hi there!=', sampling_params: { max_new_tokens: 30, temperature: 0, stop: 'there', min_new_tokens: 9 } })).body;
    assert.ok(late.text.startsWith('Hi there!'), late.text);
    assert.ok(late.output_ids.length >= 9);
  });
});

describe('tiny-llama: model sampling defaults, input_top_logprobs, metrics off by default', { timeout: 180_000 }, () => {
  const ref = reference('tiny-llama');
  let server: Server;
  before(async () => {
    server = await startServer(['--model-path', FIXTURE('tiny-llama'), '--chunked-prefill-size', '4']);
  });
  after(async () => {
    assert.equal(await server.stop(), 0, server.output());
  });

  const generate = async (sampling: Record<string, unknown> | undefined) =>
    (await post(`${server.url}/generate`, { input_ids: ref.prompts[1], ...(sampling ? { sampling_params: sampling } : {}) })).body;

  it('unset fields take generation_config.json values (temperature 0.6, top_p 0.9), explicit fields win', async () => {
    assert.match(server.output(), /sampling defaults from the model's generation_config.json: temperature=0.6 top_p=0.9/);
    const base = { max_new_tokens: 24, ignore_eos: true, sampling_seed: 1234 };
    const unset = await generate(base);
    const model = await generate({ ...base, temperature: 0.6, top_p: 0.9 });
    const api = await generate({ ...base, temperature: 1, top_p: 1 });
    assert.deepEqual(unset.output_ids, model.output_ids, 'no fields given = the model values');
    assert.notDeepEqual(unset.output_ids, api.output_ids, 'the API defaults (1.0, 1.0) sample differently with the same seed');
    // A field given explicitly overrides only itself: temperature 0 is greedy whatever top_p the model sets.
    const greedy = await generate({ max_new_tokens: 16, temperature: 0, ignore_eos: true });
    assert.deepEqual(greedy.output_ids, ref.base[1].greedy);
    // Only a seed given: still the model values (and max_new_tokens 128, SGLang's default, not the model's).
    const none = (await post(`${server.url}/generate`, { input_ids: ref.prompts[1], sampling_params: { sampling_seed: 1234, ignore_eos: true } })).body;
    assert.equal(none.output_ids.length, 128);
    assert.deepEqual(none.output_ids.slice(0, 24), unset.output_ids);
  });

  it('/v1/completions applies the same defaults', async () => {
    const completion = async (extra: Record<string, unknown>) =>
      (await post(`${server.url}/v1/completions`, { model: 'tiny', prompt: ref.prompts[1], max_tokens: 24, seed: 1234, ignore_eos: true, ...extra })).body.choices[0].text;
    assert.equal(await completion({}), await completion({ temperature: 0.6, top_p: 0.9 }));
    assert.notEqual(await completion({}), await completion({ temperature: 1, top_p: 1 }));
  });

  it('input_top_logprobs: one entry per reported prompt position, over several prefill chunks', async () => {
    const prompt = ref.prompts[1]; // 11 tokens: three chunks of at most 4
    const res = (await post(`${server.url}/generate`, {
      input_ids: prompt, sampling_params: { max_new_tokens: 2, temperature: 0 }, return_logprob: true, logprob_start_len: 0, top_logprobs_num: 3,
    })).body;
    const input = res.meta_info.input_token_logprobs as Array<[number | null, number, null]>;
    const tops = res.meta_info.input_top_logprobs as Array<Array<[number, number, null]> | null>;
    assert.equal(input.length, prompt.length);
    assert.equal(tops.length, prompt.length);
    assert.equal(tops[0], null, 'nothing predicts the first prompt token');
    for (let i = 1; i < prompt.length; i++) {
      const top = tops[i]!;
      assert.equal(top.length, 3, `position ${i}`);
      for (let k = 1; k < 3; k++) assert.ok(top[k - 1][0] >= top[k][0], `position ${i}: sorted`);
      const [lp, id] = input[i];
      assert.equal(id, prompt[i]);
      assert.ok(lp! <= top[0][0] + 1e-5, `position ${i}: the prompt token's logprob ${lp} exceeds the best ${top[0][0]}`);
      const listed = top.find(([, tid]) => tid === id);
      if (listed) assert.ok(Math.abs(listed[0] - lp!) < 1e-5, `position ${i}`);
    }
    // The output side is unchanged: top logprobs per generated token.
    assert.equal(res.meta_info.output_top_logprobs.length, 2);
    // logprob_start_len 5: the reported positions start there.
    const from5 = (await post(`${server.url}/generate`, {
      input_ids: prompt, sampling_params: { max_new_tokens: 1, temperature: 0 }, return_logprob: true, logprob_start_len: 5, top_logprobs_num: 2,
    })).body.meta_info;
    assert.equal(from5.input_top_logprobs.length, prompt.length - 5);
    from5.input_top_logprobs.forEach((top: Array<[number, number, null]>, j: number) => {
      assert.deepEqual(top.map(([, id]) => id), tops[5 + j]!.slice(0, 2).map(([, id]) => id), `position ${5 + j}`);
    });
  });

  it('GET /metrics is a 404 without --enable-metrics', async () => {
    const res = await get(`${server.url}/metrics`);
    assert.equal(res.status, 404);
    assert.match(res.body.error.message, /--enable-metrics/);
  });
});
