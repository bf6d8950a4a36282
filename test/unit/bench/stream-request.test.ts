// The bench's streaming client and load generator against a small SGLang-style server that the test paces by
// causality, not by the clock: an event is written only when the test releases it (after the client reported the
// previous one), a response is held until the requests the arrival pattern promises are open at the server. So every
// check is an ordering or a lower bound that holds on any machine, however loaded; nothing has an upper time bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { SseEvents } from '../../../src/bench/load/sse.js';
import { sendStreaming, type Target } from '../../../src/bench/load/stream-request.js';
import { generateLoad } from '../../../src/bench/load/generate-load.js';
import { newLiveState } from '../../../src/bench/runner/live-state.js';
import type { PlannedRequest } from '../../../src/bench/workload/plan.js';

test('SSE events (eventsource-parser) split anywhere, CRLF, multi-line data and a missing final blank line', () => {
  const events = new SseEvents();
  const text = 'data: {"a":1}\n\n: comment\r\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]';
  const seen: string[] = [];
  for (const ch of text) seen.push(...events.push(ch));
  seen.push(...events.flush());
  assert.deepEqual(seen, ['{"a":1}', 'x\ny', '[DONE]']);
});

interface Pacing {
  /** resolves when the server may write the given event (0-based) of request `rid` */
  beforeEvent(rid: string, event: number): Promise<void>;
  /** resolves when the server may start answering request `rid` (after reading its body) */
  beforeAnswer?(rid: string): Promise<void>;
}

/** A small SGLang-style streaming server: cumulative output_ids, one event per token, paced by `pacing`. */
async function startStreamingServer(pacing: Pacing): Promise<{ server: Server; url: string; bodies: Array<Record<string, unknown>>; maxOpen: () => number }> {
  const bodies: Array<Record<string, unknown>> = [];
  let open = 0;
  let maxOpen = 0;
  const server = createServer(async (req, res) => {
    open++;
    maxOpen = Math.max(maxOpen, open);
    res.on('close', () => open--);
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw) as { sampling_params: { max_new_tokens: number }; lora_path: string | null; rid: string };
    bodies.push(body);
    if (body.lora_path === 'missing') {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: "adapter 'missing' is not loaded" } }));
      return;
    }
    await pacing.beforeAnswer?.(body.rid);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const ids: number[] = [];
    const event = () => `data: ${JSON.stringify({ text: 'x'.repeat(ids.length), output_ids: [...ids], meta_info: { completion_tokens: ids.length, finish_reason: null } })}\n\n`;
    for (let i = 0; i < body.sampling_params.max_new_tokens; i++) {
      await pacing.beforeEvent(body.rid, i);
      ids.push(7 + i);
      if (body.lora_path === 'two-per-write' && i % 2 === 0 && i + 1 < body.sampling_params.max_new_tokens) {
        const first = event();
        ids.push(8 + i++);
        res.write(first + event()); // two events in one write: one socket read on the client
      } else res.write(event());
    }
    if (body.lora_path === 'midstream-error') res.write(`data: ${JSON.stringify({ error: { message: 'boom', code: 400 } })}\n\n`);
    res.end('data: [DONE]\n\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, maxOpen: () => maxOpen };
}

/** Pacing by acknowledgement: event i > 0 of a request is written only after the client reported event i − 1 to
 * ack() and then `gapMs` passed; the first event `firstMs` after the request arrived. */
function ackPacing(firstMs: number, gapMs: number): Pacing & { ack(rid: string): void } {
  const waiting = new Map<string, () => void>();
  const acked = new Map<string, number>();
  return {
    async beforeEvent(rid, event) {
      if (event === 0) return sleep(firstMs);
      if ((acked.get(rid) ?? 0) < event) await new Promise<void>((resolve) => waiting.set(rid, resolve));
      await sleep(gapMs);
    },
    ack(rid) {
      acked.set(rid, (acked.get(rid) ?? 0) + 1);
      waiting.get(rid)?.();
      waiting.delete(rid);
    },
  };
}

const noPacing: Pacing = { beforeEvent: async () => {} };
const planned = (index: number, adapter: string | null, outputTokens = 4): PlannedRequest => ({ index, sendAtMs: null, inputTokens: 3, outputTokens, adapter, inputIds: [5, 6, 7] });
const targetOf = (url: string, dispatcher: Agent): Target => ({ baseUrl: url, dispatcher, apiKey: null, api: 'generate', requestTimeoutMs: 60_000 });

test('sendStreaming times each event on arrival: TTFT at the first token, one ITL per later token, each at least the server\'s own pause', async () => {
  const pacing = ackPacing(60, 30);
  const { server, url, bodies } = await startStreamingServer(pacing);
  const dispatcher = new Agent();
  try {
    let streamed = 0;
    const timing = await sendStreaming(targetOf(url, dispatcher), planned(0, 'sql', 4), {
      onTokens: (n) => {
        streamed += n;
        pacing.ack((bodies[0] as { rid: string }).rid);
      },
    });
    assert.equal(timing.error, null);
    assert.equal(timing.outputTokens, 4);
    assert.equal(streamed, 4);
    assert.ok(timing.ttftMs! >= 60, `ttft ${timing.ttftMs}`);
    assert.equal(timing.itlMs.length, 3);
    // Event i + 1 leaves the server ≥ 30 ms after the client reported event i: each gap is at least that, and no
    // two token events can share a socket read.
    assert.ok(timing.itlMs.every((gap) => gap >= 30), `itl ${timing.itlMs}`);
    assert.equal(timing.itlSameRead, 0);
    assert.ok(timing.e2eMs >= timing.ttftMs! + 90);
    assert.deepEqual(bodies[0], {
      input_ids: [5, 6, 7],
      sampling_params: { max_new_tokens: 4, temperature: 0, ignore_eos: true },
      lora_path: 'sql',
      stream: true,
      rid: (bodies[0] as { rid: string }).rid,
    });
  } finally {
    await dispatcher.close();
    server.close();
  }
});

test('sendStreaming counts the gaps between events that arrived in one socket read, and reports errors', async () => {
  const { server, url } = await startStreamingServer(noPacing);
  const dispatcher = new Agent();
  const target = targetOf(url, dispatcher);
  try {
    const paired = await sendStreaming(target, planned(0, 'two-per-write', 6));
    assert.equal(paired.error, null);
    assert.equal(paired.itlMs.length, 5);
    // Three writes of two events each: at least the three gaps inside a write come from one read, and are 0 ms.
    assert.ok(paired.itlSameRead >= 3, `${paired.itlSameRead} same-read gaps`);
    assert.equal(paired.itlMs.filter((gap) => gap === 0).length >= paired.itlSameRead, true);

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

test('closed loop keeps exactly the asked number of requests open at the server and fills the live state', async () => {
  // Each answer is held until two requests are open at the server (or the last one, alone at the tail): a loop that
  // kept fewer in flight would never be answered, one that kept more would show 3 open.
  let arrived = 0;
  let releaseTwo!: () => void;
  const twoOpen = new Promise<void>((resolve) => (releaseTwo = resolve));
  const serverState = await startStreamingServer({
    beforeEvent: async () => {},
    beforeAnswer: async () => {
      arrived++;
      if (serverState.maxOpen() >= 2 || arrived === 6) releaseTwo();
      await twoOpen;
    },
  });
  const dispatcher = new Agent();
  const live = newLiveState('r', 'r', null, 6);
  try {
    const result = await generateLoad({
      target: targetOf(serverState.url, dispatcher),
      requests: Array.from({ length: 6 }, (_v, i) => planned(i, null, 3)),
      arrival: { type: 'closed', concurrency: 2 },
      live,
    });
    assert.deepEqual(result.timings.map((t) => t.planned.index), [0, 1, 2, 3, 4, 5]);
    assert.equal(serverState.maxOpen(), 2);
    assert.equal(live.done, 6);
    assert.equal(live.inFlight, 0);
    assert.equal(live.outputTokens, 18);
    assert.equal(live.recentTtftMs.length, 6);
    assert.equal(live.recentItlMs.length, 12);
  } finally {
    await dispatcher.close();
    serverState.server.close();
  }
});

test('open loop sends at the planned times, whatever is in flight', async () => {
  // The first request is answered only once the third has arrived: a generator that waited for answers before
  // sending would never get there.
  let arrived = 0;
  let releaseAll!: () => void;
  const allSent = new Promise<void>((resolve) => (releaseAll = resolve));
  const { server, url } = await startStreamingServer({
    beforeEvent: async () => {},
    beforeAnswer: async () => {
      if (++arrived === 3) releaseAll();
      await allSent;
    },
  });
  const dispatcher = new Agent();
  try {
    const requests = [0, 100, 200].map((at, i) => ({ ...planned(i, null, 2), sendAtMs: at }));
    const result = await generateLoad({ target: targetOf(url, dispatcher), requests, arrival: { type: 'poisson', ratePerS: 10 } });
    assert.ok(result.timings.every((t) => t.timing.error === null));
    const sent = result.timings.map((t) => t.timing.sentAt - result.startedAt);
    // never early (timers may fire up to a millisecond before their time), and in plan order
    assert.ok(sent[1] >= 98, `second send at ${sent[1]}`);
    assert.ok(sent[2] >= 198, `third send at ${sent[2]}`);
    assert.ok(sent[0] < sent[1] && sent[1] < sent[2]);
  } finally {
    await dispatcher.close();
    server.close();
  }
});

test('four concurrent streams each see every event on its own, as the server releases it', async () => {
  // Event i + 1 of a stream is written only after the client reported event i of that stream, so a reader that held
  // events back (until the end of the stream, or until several were buffered) would stall here, not pass.
  const pacing = ackPacing(5, 20);
  const { server, url, bodies } = await startStreamingServer(pacing);
  const dispatcher = new Agent({ connections: 16 });
  try {
    const ridOf = (index: number) => (bodies.find((b) => String(b.rid).startsWith(`bench-${index}-`)) as { rid: string }).rid;
    const timings = await Promise.all(Array.from({ length: 4 }, (_v, i) =>
      sendStreaming(targetOf(url, dispatcher), planned(i, null, 8), { onTokens: () => pacing.ack(ridOf(i)) })));
    for (const timing of timings) {
      assert.equal(timing.error, null);
      assert.equal(timing.itlMs.length, 7);
      assert.equal(timing.itlSameRead, 0);
      // the server waits 20 ms after each ack; timers may fire up to a millisecond early (as for the sends above),
      // while a reader that bunched events would see gaps near 0
      assert.ok(timing.itlMs.every((gap) => gap >= 19), `itl ${timing.itlMs.map((g) => g.toFixed(1))}`);
    }
  } finally {
    await dispatcher.close();
    server.close();
  }
});
