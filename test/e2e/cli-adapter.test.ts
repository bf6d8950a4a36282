/** `tslora adapter ...` (the real binary) against a stub server that answers like spec b.3-b.5. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStubServer, unusedPort } from '../unit/client/stub-server.js';
import { runCli } from './cli-run.js';

test('load, list, pin, unpin, unload: human output and exit 0', async () => {
  const stub = await startStubServer({ pinnedOnCards: true });
  try {
    const url = ['--url', stub.url];
    let result = await runCli(['adapter', 'load', 'sql', '/loras/sql', ...url]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "Loaded adapter 'sql' from /loras/sql.\nLoaded adapters (1): sql\n");
    assert.deepEqual(stub.requests.at(-1)?.body, { lora_name: 'sql', lora_path: '/loras/sql', pinned: false });

    result = await runCli(['adapter', 'load', 'chat', '/loras/chat', '--pinned', ...url]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stdout.startsWith("Loaded adapter 'chat' from /loras/chat (pinned)."));
    assert.equal(stub.adapters.get('chat')?.pinned, true);

    result = await runCli(['adapter', 'list', ...url]);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, [
      'Base model: demo (context 2048)',
      'NAME  PINNED  PATH',
      'sql   no      /loras/sql',
      'chat  yes     /loras/chat',
      '',
    ].join('\n'));

    result = await runCli(['adapter', 'pin', 'sql', ...url]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "Pinned adapter 'sql'.\n");
    assert.equal(stub.adapters.get('sql')?.pinned, true);

    result = await runCli(['adapter', 'unpin', 'chat', ...url]);
    assert.equal(result.code, 0);
    assert.equal(stub.adapters.get('chat')?.pinned, false);

    result = await runCli(['adapter', 'unload', 'sql', ...url]);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, "Unloaded adapter 'sql'.\nLoaded adapters (1): chat\n");
    assert.deepEqual([...stub.adapters.keys()], ['chat']);
  } finally {
    await stub.close();
  }
});

test('--json prints the server objects on stdout, errors included', async () => {
  const stub = await startStubServer();
  try {
    let result = await runCli(['adapter', 'load', 'sql', '/loras/sql', '--json'], { env: { TSLORA_URL: stub.url } });
    assert.equal(result.code, 0);
    const loaded = JSON.parse(result.stdout) as { success: boolean; loaded_adapters: Record<string, string> };
    assert.equal(loaded.success, true);
    assert.deepEqual(loaded.loaded_adapters, { sql: '/loras/sql' });

    result = await runCli(['adapter', 'list', '--json'], { env: { TSLORA_URL: stub.url } });
    assert.deepEqual(JSON.parse(result.stdout), {
      base: { id: 'demo', max_model_len: 2048 },
      adapters: [{ name: 'sql', path: '/loras/sql', pinned: null }],
    });

    result = await runCli(['adapter', 'load', 'sql', '/loras/other', '--json'], { env: { TSLORA_URL: stub.url } });
    assert.equal(result.code, 5, 'rejected by the server');
    const failure = JSON.parse(result.stdout) as { success: boolean; error_code: string; error_message: string };
    assert.equal(failure.success, false);
    assert.equal(failure.error_code, 'already_loaded');
    assert.ok(failure.error_message.includes('already loaded'));
    assert.ok(result.stderr.includes('already loaded'));
  } finally {
    await stub.close();
  }
});

test('exit codes: not loaded / not found 4, rejected 5 with the server reason, unauthorized 6, unreachable 3, usage 2', async () => {
  const stub = await startStubServer({ apiKey: 'k', maxLorasPerBatch: 2, existingPaths: ['/a', '/b'] });
  try {
    const url = ['--url', stub.url, '--api-key', 'k'];
    let result = await runCli(['adapter', 'unload', 'ghost', ...url]);
    assert.equal(result.code, 4);
    assert.ok(result.stderr.includes("adapter 'ghost' is not loaded"), result.stderr);

    await runCli(['adapter', 'load', 'a', '/a', '--pinned', ...url]);
    result = await runCli(['adapter', 'load', 'b', '/b', '--pinned', ...url]);
    assert.equal(result.code, 5);
    assert.ok(result.stderr.includes('starve'), result.stderr);

    result = await runCli(['adapter', 'load', 'c', '/missing', ...url]);
    assert.equal(result.code, 4, 'no adapter at the path (not_found) shares status 4');
    assert.ok(result.stderr.includes("no PEFT LoRA adapter at '/missing'"), result.stderr);

    result = await runCli(['adapter', 'list', '--url', stub.url]);
    assert.equal(result.code, 6);
    assert.ok(result.stderr.includes('HTTP 401') && result.stderr.includes('--api-key'), result.stderr);

    result = await runCli(['adapter', 'list', '--url', stub.url], { env: { TSLORA_API_KEY: 'k' } });
    assert.equal(result.code, 0, 'the key can come from TSLORA_API_KEY');
    assert.equal(stub.requests.at(-1)?.authorization, 'Bearer k');
  } finally {
    await stub.close();
  }
  const port = await unusedPort();
  let result = await runCli(['adapter', 'list', '--url', `http://127.0.0.1:${port}`]);
  assert.equal(result.code, 3);
  assert.ok(result.stderr.includes(`cannot reach the tslora server at http://127.0.0.1:${port}`), result.stderr);
  result = await runCli(['adapter', 'list', '--url', 'not a url']);
  assert.equal(result.code, 2);
  assert.ok(result.stderr.includes('--url must be an http:// or https:// URL'), result.stderr);
});

test('pin against a server without /pin_lora_adapter reloads the adapter pinned and says so', async () => {
  const stub = await startStubServer({ pinRoute: false });
  try {
    await runCli(['adapter', 'load', 'sql', '/loras/sql', '--url', stub.url]);
    const result = await runCli(['adapter', 'pin', 'sql', '--url', stub.url, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { method: string }).method, 'reload');
    assert.ok(result.stderr.includes('has no /pin_lora_adapter'));
    assert.deepEqual(stub.adapters.get('sql'), { path: '/loras/sql', pinned: true });
  } finally {
    await stub.close();
  }
});

test('load sends a relative PATH that exists locally as an absolute path, other paths as typed', async () => {
  const { mkdtempSync, mkdirSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const cwd = mkdtempSync(join(tmpdir(), 'tslora-adapter-cwd-'));
  mkdirSync(join(cwd, 'loras', 'sql'), { recursive: true });
  const stub = await startStubServer();
  try {
    let result = await runCli(['adapter', 'load', 'sql', 'loras/sql', '--url', stub.url], { cwd });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(stub.requests.at(-1)?.body, { lora_name: 'sql', lora_path: join(cwd, 'loras', 'sql'), pinned: false });
    result = await runCli(['adapter', 'load', 'remote', 'server-side/dir', '--url', stub.url], { cwd });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(stub.requests.at(-1)?.body, { lora_name: 'remote', lora_path: 'server-side/dir', pinned: false });
  } finally {
    await stub.close();
    rmSync(cwd, { recursive: true, force: true });
  }
});
