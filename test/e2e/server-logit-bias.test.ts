// logit_bias over real HTTP on the demo model (whose base model echoes `Hi there!=` and then ends with </s>):
// +100 on a token id forces that token at every step (greedy and sampled), -100 on the echo's first token bans it,
// on /generate (sampling_params.logit_bias) and the OpenAI routes (token-id string keys); out-of-range values,
// non-numeric keys and ids outside the vocabulary are 400s naming the field.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { post, startServer, type Server } from './server-harness.js';

describe('logit_bias on the demo model', { timeout: 180_000 }, () => {
  let server: Server;
  let echo: number[];
  before(async () => {
    server = await startServer([], 120_000);
    echo = (await post(`${server.url}/generate`, { text: 'Hi there!=', sampling_params: { max_new_tokens: 30, temperature: 0 } })).body.output_ids;
  });
  after(async () => {
    assert.equal(await server?.stop(), 0, server?.output());
  });

  it('+100 forces a token at every step, greedy and sampled; -100 bans the greedy token', async () => {
    const forced = echo[2];
    assert.notEqual(echo[0], forced);
    for (const temperature of [0, 1]) {
      const res = await post(`${server.url}/generate`, {
        text: 'Hi there!=', sampling_params: { max_new_tokens: 6, temperature, logit_bias: { [String(forced)]: 100 } },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.output_ids, Array(6).fill(forced), `temperature ${temperature}`);
    }
    const banned = await post(`${server.url}/generate`, {
      text: 'Hi there!=', sampling_params: { max_new_tokens: 3, temperature: 0, logit_bias: { [String(echo[0])]: -100 } },
    });
    assert.equal(banned.status, 200, JSON.stringify(banned.body));
    assert.notEqual(banned.body.output_ids[0], echo[0]);
    // Without a bias the same request gives the echo again (no state leaks between requests).
    const again = (await post(`${server.url}/generate`, { text: 'Hi there!=', sampling_params: { max_new_tokens: 30, temperature: 0 } })).body;
    assert.deepEqual(again.output_ids, echo);
  });

  it('the OpenAI routes take logit_bias with token-id string keys', async () => {
    const forced = echo[1];
    const viaGenerate = (await post(`${server.url}/generate`, {
      text: 'Hi there!=', sampling_params: { max_new_tokens: 4, temperature: 0, logit_bias: { [String(forced)]: 100 } },
    })).body;
    const completion = await post(`${server.url}/v1/completions`, {
      model: 'demo', prompt: 'Hi there!=', max_tokens: 4, temperature: 0, logit_bias: { [String(forced)]: 100 },
    });
    assert.equal(completion.status, 200, JSON.stringify(completion.body));
    assert.equal(completion.body.usage.completion_tokens, 4);
    assert.equal(completion.body.choices[0].text, viaGenerate.text);
    const chat = await post(`${server.url}/v1/chat/completions`, {
      model: 'demo', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, logit_bias: { [String(forced)]: 100 },
    });
    assert.equal(chat.status, 200, JSON.stringify(chat.body));
    assert.equal(chat.body.usage.completion_tokens, 3);
  });

  it('rejects out-of-range values, non-numeric keys and ids outside the vocabulary with a 400', async () => {
    // (A schema failure inside /generate's sampling_params, an object-or-array union, is reported for the whole
    // sampling_params field today; the other cases name logit_bias.)
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['/generate', { text: 'Hi', sampling_params: { logit_bias: { '5': 101 } } }, /sampling_params/],
      ['/generate', { text: 'Hi', sampling_params: { logit_bias: { abc: 1 } } }, /sampling_params/],
      ['/generate', { text: 'Hi', sampling_params: { logit_bias: { '99999999': 1 } } }, /logit_bias names token id 99999999, outside the vocabulary/],
      ['/v1/completions', { model: 'demo', prompt: 'Hi', logit_bias: { '5': -100.5 } }, /logit_bias/],
      ['/v1/completions', { model: 'demo', prompt: 'Hi', logit_bias: { '-1': 1 } }, /logit_bias/],
      ['/v1/chat/completions', { model: 'demo', messages: [{ role: 'user', content: 'Hi' }], logit_bias: { '99999999': 1 } }, /logit_bias/],
    ];
    for (const [route, body, message] of cases) {
      const res = await post(`${server.url}${route}`, body);
      assert.equal(res.status, 400, `${route} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.match(JSON.stringify(res.body), message);
    }
  });
});
