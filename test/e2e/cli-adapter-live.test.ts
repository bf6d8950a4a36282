/**
 * `tslora adapter` against a real `tslora serve` (the tiny-llama fixture with an explicit pool): load, list,
 * pin, unpin, unload, and the not-loaded / already-loaded / not-found failures with their exit codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REPO_ROOT, runCli, startServe } from './cli-run.js';

const MODEL_DIR = join(REPO_ROOT, 'test/fixtures/models/tiny-llama');
const ADAPTER_DIR = join(MODEL_DIR, 'adapters/r1-qv');

interface Listing {
  base: { id: string } | null;
  adapters: Array<{ name: string; path: string | null; pinned: boolean | null }>;
}

test('adapter commands against a live server', { timeout: 240_000 }, async () => {
  const server = await startServe([
    '--model-path', MODEL_DIR, '--enable-lora', '--max-lora-rank', '64', '--lora-target-modules', 'all',
    '--max-loras-per-batch', '2', '--served-model-name', 'tiny', '--num-threads', '1',
  ]);
  if (!server.url) {
    server.kill('SIGKILL');
    const code = await server.exitCode;
    assert.fail(`tslora serve did not start (exit ${code}):\n${server.stderr()}`);
  }
  const env = { TSLORA_URL: server.url };
  const adapter = (...args: string[]) => runCli(['adapter', ...args], { env });
  try {
    let result = await adapter('load', 'qv', ADAPTER_DIR);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stdout.includes('Loaded adapters (1): qv'), result.stdout);

    result = await adapter('list', '--json');
    assert.equal(result.code, 0, result.stderr);
    let listing = JSON.parse(result.stdout) as Listing;
    assert.equal(listing.base?.id, 'tiny');
    assert.equal(listing.adapters.length, 1);
    assert.equal(listing.adapters[0].name, 'qv');
    assert.equal(listing.adapters[0].path, ADAPTER_DIR);

    result = await adapter('load', 'qv', ADAPTER_DIR);
    assert.equal(result.code, 5, 'a second load of the same name is rejected');
    assert.ok(result.stderr.includes('already loaded'), result.stderr);

    result = await adapter('load', 'ghost', join(MODEL_DIR, 'no-such-adapter'));
    assert.equal(result.code, 4, 'no adapter at that path: not found');
    assert.ok(result.stderr.toLowerCase().includes('adapter_config.json') || result.stderr.includes('no PEFT'), result.stderr);

    result = await adapter('pin', 'qv');
    assert.equal(result.code, 0, result.stderr);
    listing = JSON.parse((await adapter('list', '--json')).stdout) as Listing;
    assert.equal(listing.adapters[0].pinned, true, 'the pin shows in /v1/models');

    result = await adapter('unpin', 'qv');
    assert.equal(result.code, 0, result.stderr);

    result = await adapter('unload', 'qv');
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stdout.includes('No adapters loaded.'), result.stdout);

    result = await adapter('unload', 'qv');
    assert.equal(result.code, 4, 'unloading an unknown name: not loaded');
    assert.ok(result.stderr.includes('not loaded'), result.stderr);
  } finally {
    server.kill('SIGTERM');
    await server.exitCode;
  }
});
