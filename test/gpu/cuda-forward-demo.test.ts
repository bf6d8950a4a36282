// `tslora serve --device cuda` with the embedded demo model (models/demo): one /generate batch over the base model and
// every adapter returns each task's exact answer, and a chat request goes through the chat template. The same
// requests as test/e2e/demo-serve.test.ts, on the CUDA engine. Skipped, with the reason, without the CUDA addon or a
// GPU (or without dist/: the server runs from the built CLI).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { TASKS } from '../e2e/demo-tasks.js';
import { REPO, post, startServer, type Server } from '../e2e/server-harness.js';
import { cudaBackendOrSkip } from './cuda-parity-helpers.js';

const answer = (name: string | null, prompt: string): string => TASKS[name ?? 'echo'].answer(prompt.replace(/=$/, ''));
const { skip: noGpu } = cudaBackendOrSkip();
const skip = noGpu || (existsSync(`${REPO}/dist/cli/main.js`) ? false : 'dist/ is not built (npm run build)');

describe('tslora serve --device cuda with the demo model', { skip, timeout: 180_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer(['--device', 'cuda'], 120_000);
  });
  after(async () => {
    await server?.stop();
  });

  it('runs the engine on the GPU', () => {
    assert.match(server.output(), /engine on cuda/);
  });

  it('one /generate batch over every adapter and the base answers exactly', async () => {
    const rows: Array<[string | null, string]> = [
      [null, 'Hi there!='], ['reverse', 'hello world='], ['spell', '4096='], ['upper', 'make me loud='],
      ['caesar', 'xyz abc='], ['last_word', 'the quick brown fox='], ['add', '999+1='],
    ];
    const res = await post(`${server.url}/generate`, {
      text: rows.map((r) => r[1]), lora_path: rows.map((r) => r[0]), sampling_params: { max_new_tokens: 40, temperature: 0 },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const texts = (res.body as Array<{ text: string }>).map((r) => r.text);
    console.log(`cuda-demo: ${JSON.stringify(texts)}`);
    assert.deepEqual(texts, rows.map(([n, p]) => answer(n, p)));
  });

  it('a chat request through the chat template', async () => {
    const chat = await post(`${server.url}/v1/chat/completions`, {
      model: 'demo:reverse', messages: [{ role: 'user', content: 'hello world' }], max_tokens: 24, temperature: 0,
    });
    assert.equal(chat.status, 200, JSON.stringify(chat.body));
    assert.equal(chat.body.choices[0].message.content, 'dlrow olleh');
  });
});
