// `tslora serve` with no --model-path serves the embedded demo model: the example requests it prints on start-up
// (a /generate batch over three adapters, a /v1/completions call) return each task's exact answer, and a chat
// request goes through the demo's chat template.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { TASKS } from './demo-tasks.js';
import { post, startServer, type Server } from './server-harness.js';

/** The task answer for a demo prompt 'INPUT=' under adapter `name` (null = the base model's echo). */
const answer = (name: string | null, prompt: string): string => TASKS[name ?? 'echo'].answer(prompt.replace(/=$/, ''));

describe('tslora serve with the embedded demo model', { timeout: 180_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer([], 120_000);
  });
  after(async () => {
    await server?.stop();
  });

  it('the printed /generate example returns each adapter its own answer', async () => {
    const line = server.output().split('\n').find((l) => l.includes('/generate') && l.includes('curl'));
    assert.ok(line, `no /generate example in the start-up output:\n${server.output()}`);
    const body = JSON.parse(/-d '(.*)'$/.exec(line.trim())![1]) as { text: string[]; lora_path: string[] };
    assert.equal(new Set(body.lora_path).size, 3, 'the example mixes three adapters');
    const res = await post(`${server.url}/generate`, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const texts = (res.body as Array<{ text: string }>).map((r) => r.text);
    assert.deepEqual(texts, body.text.map((p, i) => answer(body.lora_path[i], p)));
  });

  it('the printed /v1/completions example and a chat request answer exactly', async () => {
    const line = server.output().split('\n').find((l) => l.includes('/v1/completions') && l.includes('curl'));
    assert.ok(line, server.output());
    const body = JSON.parse(/-d '(.*)'$/.exec(line.trim())![1]) as { model: string; prompt: string };
    const res = await post(`${server.url}/v1/completions`, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.choices[0].text, answer(body.model.split(':')[1], body.prompt));

    const chat = await post(`${server.url}/v1/chat/completions`, {
      model: 'demo:reverse', messages: [{ role: 'user', content: 'hello world' }], max_tokens: 24, temperature: 0,
    });
    assert.equal(chat.status, 200, JSON.stringify(chat.body));
    assert.equal(chat.body.choices[0].message.content, 'dlrow olleh');
  });

  it('one /generate batch over every adapter and the base', async () => {
    const rows: Array<[string | null, string]> = [
      [null, 'Hi there!='], ['reverse', 'hello world='], ['spell', '4096='], ['upper', 'make me loud='],
      ['caesar', 'xyz abc='], ['last_word', 'the quick brown fox='], ['add', '999+1='],
    ];
    const res = await post(`${server.url}/generate`, {
      text: rows.map((r) => r[1]), lora_path: rows.map((r) => r[0]), sampling_params: { max_new_tokens: 40, temperature: 0 },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual((res.body as Array<{ text: string }>).map((r) => r.text), rows.map(([n, p]) => answer(n, p)));
  });
});
