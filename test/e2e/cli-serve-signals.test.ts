/**
 * `tslora serve` as a process: it prints the URL it listens on (port 0 = a free port), prints the resolver's
 * warnings, answers on the URL, and exits with status 0 after SIGTERM or SIGINT (server.close() first).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REPO_ROOT, startServe } from './cli-run.js';

/** A tiny fixture model (written by scripts/make-fixtures.py), so that this test does not need the demo model. */
const MODEL_DIR = join(REPO_ROOT, 'test/fixtures/models/tiny-llama');
const ADAPTER_DIR = join(MODEL_DIR, 'adapters/r1-qv');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`serve prints its URL and warnings, answers /health, and exits 0 on ${signal}`, { timeout: 150_000 }, async () => {
    const server = await startServe(['--model-path', MODEL_DIR, '--lora-paths', `qv=${ADAPTER_DIR}`, '--num-threads', '1']);
    if (!server.url) {
      server.kill('SIGKILL');
      const code = await server.exitCode;
      assert.fail(`tslora serve did not start (exit ${code}):\n${server.stderr()}`);
    }
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(server.url, 'http://127.0.0.1:0', 'port 0 must print the chosen port');
      assert.ok(server.stderr().includes('LoRA enabled because --lora-paths was given.'), server.stderr());
      const health = await fetch(`${server.url}/health`);
      assert.equal(health.status, 200);
    } finally {
      server.kill(signal);
    }
    assert.equal(await server.exitCode, 0, server.stderr());
  });
}
