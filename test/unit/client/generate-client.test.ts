// GenerateClient against small node:http servers speaking /generate: JSON batches, SSE (cumulative and
// incremental), error bodies with error_code, and per-item error events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GenerateClient, type GenerateEvent } from '../../../src/client/index.js';
import { TsloraError } from '../../../src/errors.js';

async function withServer(handler: (req: IncomingMessage, body: any, res: ServerResponse) => void, run: (url: string) => Promise<void>): Promise<void> {
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => handler(req, text ? JSON.parse(text) : null, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const item = (text: string, done: boolean) => ({ text, output_ids: [], meta_info: { id: 'r', finish_reason: done ? { type: 'stop', matched: 2 } : null } });

test('generate sends stream false and returns the array; a 400 keeps the server error_code and message', async () => {
  const bodies: any[] = [];
  await withServer((_req, body, res) => {
    bodies.push(body);
    res.writeHead(body.lora_path?.[0] === 'nope' ? 400 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body.lora_path?.[0] === 'nope' ? { error: { message: "adapter 'nope' is not loaded.", code: 'not_loaded' } } : [item('42', true)]));
  }, async (url) => {
    const client = new GenerateClient({ url });
    const items = await client.generate({ text: ['12+30='], lora_path: ['add'] });
    assert.deepEqual(items.map((i) => i.text), ['42']);
    assert.equal(bodies[0].stream, false);
    await assert.rejects(client.generate({ text: ['x'], lora_path: ['nope'] }), (e: unknown) => e instanceof TsloraError && e.code === 'not_loaded' && e.message.includes("'nope'"));
  });
});

test('generateStream parses SSE events split across chunks, with index, errors and [DONE]', async () => {
  await withServer((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const events = [JSON.stringify({ ...item('H', false), index: 1 }), JSON.stringify({ ...item('HI', true), index: 1 }), JSON.stringify({ error: { message: 'boom' }, index: 0 }), '[DONE]'];
    const wire = events.map((e) => `data: ${e}\r\n\r\n`).join('');
    res.write(wire.slice(0, 17));
    setTimeout(() => res.end(wire.slice(17)), 20);
  }, async (url) => {
    const seen: GenerateEvent[] = [];
    await new GenerateClient({ url }).generateStream({ text: ['a', 'b'] }, (e) => seen.push(e));
    assert.deepEqual(seen.map((e) => (e.kind === 'item' ? `${e.index}:${e.item.text}` : `${e.index}:error:${e.message}`)), ['1:H', '1:HI', '0:error:boom']);
  });
});

test('streamsIncrementally reads the server info and is false where the route is missing', async () => {
  await withServer((req, _body, res) => {
    res.writeHead(req.url === '/get_server_info' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ incrementalStreamingOutput: true }));
  }, async (url) => assert.equal(await new GenerateClient({ url }).streamsIncrementally(), true));
  await withServer((_req, _body, res) => {
    res.writeHead(404);
    res.end();
  }, async (url) => assert.equal(await new GenerateClient({ url }).streamsIncrementally(), false));
});
