import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { SseSplitter } from '../../../src/bench/load/sse.js';
import { sendStreaming, type Target } from '../../../src/bench/load/stream-request.js';
import { generateLoad } from '../../../src/bench/load/generate-load.js';
import { newLiveState } from '../../../src/bench/runner/live-state.js';
import type { PlannedRequest } from '../../../src/bench/workload/plan.js';

test('SSE splitter handles events split anywhere, CRLF, multi-line data and a missing final blank line', () => {
  const splitter = new SseSplitter();
  const text = 'data: {"a":1}\n\n: comment\r\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]';
  const events: string[] = [];
  for (const ch of text) events.push(...splitter.push(ch));
  events.push(...splitter.flush());
  assert.deepEqual(events, ['{"a":1}', 'x\ny', '[DONE]']);
});

/** A small SGLang-style streaming server: cumulative output_ids, one event per token, `gapMs` apart. */
async function startStreamingServer(gapMs: number): Promise<{ server: Server; url: string; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  const server = createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw) as { sampling_params: { max_new_tokens: number }; lora_path: string | null; input_ids: number[] };
    bodies.push(body);
    if (body.lora_path === 'missing') {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: "adapter 'missing' is not loaded" } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    await sleep(gapMs * 2); // "prefill"
    const ids: number[] = [];
    for (let i = 0; i < body.sampling_params.max_new_tokens; i++) {
      if (i > 0) await sleep(gapMs);
      ids.push(7 + i);
      res.write(`data: ${JSON.stringify({ text: 'x'.repeat(ids.length), output_ids: ids, meta_info: { completion_tokens: ids.length, finish_reason: null } })}\n\n`);
    }
    if (body.lora_path === 'midstream-error') res.write(`data: ${JSON.stringify({ error: { message: 'boom', code: 400 } })}\n\n`);
    res.end('data: [DONE]\n\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies };
}

const planned = (index: number, adapter: string | null, outputTokens = 4): PlannedRequest => ({ index, sendAtMs: null, inputTokens: 3, outputTokens, adapter, inputIds: [5, 6, 7] });

test('sendStreaming times TTFT at the first token, one ITL per later token, and sends SGLang fields', async () => {
  const { server, url, bodies } = await startStreamingServer(30);
  const dispatcher = new Agent();
  const target: Target = { baseUrl: url, dispatcher, apiKey: null, api: 'generate', requestTimeoutMs: 5000 };
  try {
    let streamed = 0;
    const timing = await sendStreaming(target, planned(0, 'sql', 4), { onTokens: (n) => (streamed += n) });
    assert.equal(timing.error, null);
    assert.equal(timing.outputTokens, 4);
    assert.equal(streamed, 4);
    assert.ok(timing.ttftMs! >= 55 && timing.ttftMs! < 1000, `ttft ${timing.ttftMs}`);
    assert.equal(timing.itlMs.length, 3);
    // 3 gaps of 30 ms on the server; a loaded machine may deliver two events in one read, so check the sum
    const itlSum = timing.itlMs.reduce((a, b) => a + b, 0);
    assert.ok(timing.itlMs.every((gap) => gap >= 0) && itlSum >= 55, `itl ${timing.itlMs}`);
    assert.ok(timing.e2eMs >= timing.ttftMs! + 80);
    assert.deepEqual(bodies[0], {
      input_ids: [5, 6, 7],
      sampling_params: { max_new_tokens: 4, temperature: 0, ignore_eos: true },
      lora_path: 'sql',
      stream: true,
      rid: (bodies[0] as { rid: string }).rid,
    });

    const rejected = await sendStreaming(target, planned(1, 'missing'));
    assert.match(rejected.error!, /^HTTP 400: adapter 'missing' is not loaded/);
    const broken = await sendStreaming(target, planned(2, 'midstream-error', 2));
    assert.equal(broken.error, 'boom');
    const unreachable = await sendStreaming({ ...target, baseUrl: 'http://127.0.0.1:1' }, planned(3, null));
    assert.ok(unreachable.error);
  } finally {
    await dispatcher.close();
    server.close();
  }
});

test('closed loop keeps the asked number of requests in flight and fills the live state', async () => {
  const { server, url } = await startStreamingServer(10);
  const dispatcher = new Agent();
  let peak = 0;
  const live = newLiveState('r', 'r', null, 6);
  const probe = setInterval(() => (peak = Math.max(peak, live.inFlight)), 2);
  try {
    const result = await generateLoad({
      target: { baseUrl: url, dispatcher, apiKey: null, api: 'generate', requestTimeoutMs: 5000 },
      requests: Array.from({ length: 6 }, (_v, i) => planned(i, null, 3)),
      arrival: { type: 'closed', concurrency: 2 },
      live,
    });
    assert.deepEqual(result.timings.map((t) => t.planned.index), [0, 1, 2, 3, 4, 5]);
    assert.equal(peak, 2);
    assert.equal(live.done, 6);
    assert.equal(live.outputTokens, 18);
    assert.equal(live.recentTtftMs.length, 6);
    assert.equal(live.recentItlMs.length, 12);
  } finally {
    clearInterval(probe);
    await dispatcher.close();
    server.close();
  }
});

test('open loop sends at the planned times, whatever is in flight', async () => {
  const { server, url } = await startStreamingServer(20);
  const dispatcher = new Agent();
  try {
    const requests = [0, 100, 200].map((at, i) => ({ ...planned(i, null, 2), sendAtMs: at }));
    const result = await generateLoad({ target: { baseUrl: url, dispatcher, apiKey: null, api: 'generate', requestTimeoutMs: 5000 }, requests, arrival: { type: 'poisson', ratePerS: 10 } });
    const sent = result.timings.map((t) => t.timing.sentAt - result.startedAt);
    // never early; late only by scheduling noise (generous bound for a loaded 2-core machine)
    assert.ok(sent[1] >= 95 && sent[1] < 600, `second send at ${sent[1]}`);
    assert.ok(sent[2] >= 195 && sent[2] < 700, `third send at ${sent[2]}`);
    // in plan order
    assert.ok(result.timings[0].timing.sentAt < result.timings[1].timing.sentAt);
  } finally {
    await dispatcher.close();
    server.close();
  }
});

test('the SSE reader times each token at its arrival: events flushed 25 ms apart to 4 concurrent streams are not bunched', async () => {
  // Guards the ITL figures: if undici's body iteration (or the splitter) held events back and handed them over
  // together, the median gap would collapse towards 0 ms while the server still sent one event per 25 ms.
  const { server, url } = await startStreamingServer(25);
  const dispatcher = new Agent({ connections: 16 });
  try {
    const result = await generateLoad({
      target: { baseUrl: url, dispatcher, apiKey: null, api: 'generate', requestTimeoutMs: 10_000 },
      requests: Array.from({ length: 8 }, (_v, i) => planned(i, null, 8)),
      arrival: { type: 'closed', concurrency: 4 },
    });
    const gaps = result.timings.flatMap((t) => t.timing.itlMs).sort((a, b) => a - b);
    assert.equal(gaps.length, 8 * 7);
    const median = gaps[Math.floor(gaps.length / 2)];
    const nearZero = gaps.filter((g) => g < 5).length;
    // a loaded machine may merge a few reads; most gaps must still be the server's spacing
    assert.ok(median >= 18 && median < 200, `median ITL ${median.toFixed(1)} ms, gaps ${gaps.map((g) => g.toFixed(0)).join(' ')}`);
    assert.ok(nearZero <= gaps.length / 4, `${nearZero} of ${gaps.length} gaps under 5 ms`);
  } finally {
    await dispatcher.close();
    server.close();
  }
});
