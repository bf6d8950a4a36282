/**
 * Queue bound (503 + Retry-After), incremental streaming with --stream-interval, and shutdown: SIGTERM lets a
 * running stream finish, refuses new work, and exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIXTURE, greedy, post, postStream, reference, startServer } from './server-harness.js';

const MODEL = 'tiny-llama';
const ref = reference(MODEL);

test('queue bound, incremental streaming, and a graceful SIGTERM', async () => {
  const server = await startServer([
    '--model-path', FIXTURE(MODEL), '--max-running-requests', '1', '--max-queued-requests', '1',
    '--incremental-streaming-output', '--stream-interval', '3',
  ]);
  let exited = false;
  try {
    const plain = await post(`${server.url}/generate`, { input_ids: ref.prompts[0], sampling_params: greedy(10) });
    const events = await postStream(`${server.url}/generate`, { input_ids: ref.prompts[0], stream: true, sampling_params: greedy(10) });
    const data = events.slice(0, -1);
    assert.deepEqual(data.map((e) => e.output_ids.length), [3, 3, 3, 1], 'increments of --stream-interval tokens');
    assert.deepEqual(data.flatMap((e) => e.output_ids), plain.body.output_ids);
    assert.equal(data.map((e) => e.text).join(''), plain.body.text);

    // One running + one queued are allowed: a burst sent while the long stream runs overflows the queue, and the
    // overflow is turned away with 503 and Retry-After. Every request of the burst is long too (200 tokens), so a
    // third request finds one running and one queued unless the engine finished a whole 200-token request between two
    // arrivals of the burst: the overflow does not depend on how fast this machine is.
    let firstToken!: () => void;
    const running = new Promise<void>((r) => (firstToken = r));
    const long = postStream(`${server.url}/generate`, { input_ids: ref.prompts[1], stream: true, sampling_params: greedy(240) }, () => firstToken());
    await running;
    // A request whose connection is only attempted after SIGTERM closed the listener is refused (status 0 here).
    const burst = Array.from({ length: 24 }, () =>
      post(`${server.url}/generate`, { input_ids: ref.prompts[2], sampling_params: greedy(200) }).catch(() => ({ status: 0, body: null, headers: new Headers() })),
    );
    // Wait until the server has turned one away (or everything was answered: then the checks below fail), so that
    // SIGTERM comes after the overflow was seen.
    await Promise.race([
      new Promise<void>((r) => burst.forEach((p) => void p.then((a) => a.status === 503 && r()))),
      Promise.all(burst),
    ]);

    // SIGTERM while the long stream runs: it finishes, accepted requests too, then the process exits 0.
    const exitCode = server.stop();
    const longEvents = await long;
    assert.equal(longEvents.at(-1), '[DONE]');
    assert.deepEqual(longEvents.at(-2).meta_info.finish_reason, { type: 'length', length: 240 });
    const answers = await Promise.all(burst);
    const accepted = answers.filter((a) => a.status === 200);
    const rejected = answers.filter((a) => a.status === 503);
    const refused = answers.filter((a) => a.status === 0);
    assert.equal(accepted.length + rejected.length + refused.length, answers.length, `statuses: ${answers.map((a) => a.status)}`);
    assert.ok(accepted.length >= 1, 'the queued request is served');
    assert.ok(rejected.some((a) => /capacity|queue/.test(a.body.error.message)), 'the overflow is refused as queue full');
    for (const a of rejected) assert.ok(a.headers.get('retry-after'));
    const expected = accepted[0].body.output_ids;
    for (const a of accepted) assert.deepEqual(a.body.output_ids, expected);
    assert.equal(await exitCode, 0, server.output());
    exited = true;
  } finally {
    if (!exited) await server.stop();
  }
});

test('start-up checks that need the model exit 2 with a clear message', async () => {
  const { spawnSync } = await import('node:child_process');
  const { REPO } = await import('./server-harness.js');
  const run = (args: string[]) => spawnSync(process.execPath, ['bin/tslora.js', 'serve', '--port', '0', '--model-path', FIXTURE(MODEL), ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  const ctx = run(['--context-length', '4096']);
  assert.equal(ctx.status, 2, ctx.stderr);
  assert.match(ctx.stderr, /--context-length 4096 exceeds the model's max_position_embeddings \(256\)/);
  const heads = run(['--tp-size', '3']);
  assert.equal(heads.status, 2, heads.stderr);
  assert.match(heads.stderr, /does not divide the model's 4 attention heads/);
});
