/**
 * Issue 13, shutdown: SIGTERM waits for a slow reader to receive its whole stream (item 7), a reader that never
 * reads is cut off after --shutdown-timeout, and a second SIGINT exits with status 130 without a native abort
 * (item 11). Real `tslora serve` on the demo model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { startServer } from './server-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a streaming /generate whose response is paused (not read) until resume() is called. */
function pausedStream(url: string, body: unknown) {
  const text = JSON.stringify(body);
  let response!: IncomingMessage;
  const responded = new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } });
    req.on('error', reject);
    req.on('response', (res) => {
      response = res;
      res.pause();
      resolve();
    });
    req.end(text);
  });
  const readAll = async (): Promise<string> => {
    await responded;
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
    } catch {
      /* cut off: return what arrived */
    }
    return Buffer.concat(chunks).toString();
  };
  return { responded, readAll, destroy: () => response?.destroy() };
}

// About 15 MB of events: more than the kernel's socket buffers hold, so most of it waits in the server process.
const big = { text: ['hello', 'world'], stream: true, return_logprob: true, top_logprobs_num: 20, sampling_params: { n: 64, max_new_tokens: 100, ignore_eos: true } };

test('item 7: SIGTERM waits for a slow reader to receive the whole stream', { timeout: 600_000 }, async () => {
  const server = await startServer(['--shutdown-timeout', '600', '--max-unread-stream-bytes', String(256 * 1024 * 1024)]);
  try {
    const stream = pausedStream(server.url, big);
    await stream.responded;
    await sleep(3000);
    const exit = server.stop();
    await sleep(3000);
    const text = await stream.readAll();
    assert.ok(text.trimEnd().endsWith('data: [DONE]'), `the stream was cut off after ${text.length} characters`);
    const finals = text.split('\n\n').filter((e) => e.includes('"finish_reason":{"type":"length"'));
    assert.equal(finals.length, 128, 'every sample of the batch finished');
    assert.equal(await exit, 0, server.output());
  } finally {
    await server.stop();
  }
});

test('item 7: a reader that never reads is cut off after --shutdown-timeout, and the exit is clean', { timeout: 600_000 }, async () => {
  const server = await startServer(['--shutdown-timeout', '2', '--max-unread-stream-bytes', String(256 * 1024 * 1024)]);
  const stream = pausedStream(server.url, big);
  await stream.responded;
  assert.equal(await server.stop(), 0, server.output());
  stream.destroy();
});

test('item 11: SIGINT twice while requests run exits 130 without a native abort', { timeout: 600_000 }, async () => {
  const server = await startServer([]);
  const body = JSON.stringify({ text: 'hello', sampling_params: { max_new_tokens: 100, n: 16, ignore_eos: true } });
  // Enough work that the drain after the first SIGINT is still running at the second one on a fast CPU (eight requests
  // finished within 1.7 s on a Sapphire Rapids core with AMX, and the first SIGINT then exited 0): 32 requests × 16.
  const requests = Array.from({ length: 32 }, () => fetch(`${server.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).catch(() => null));
  await sleep(800);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => server.proc.on('exit', (code, signal) => r({ code, signal })));
  server.proc.kill('SIGINT');
  await sleep(200);
  server.proc.kill('SIGINT');
  const { code, signal } = await exited;
  await Promise.all(requests);
  assert.equal(signal, null, server.output());
  assert.equal(code, 130, server.output());
  assert.doesNotMatch(server.output(), /terminate called|Napi::Error/);
});
