import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TsloraClient, categorizeAdapterError } from '../../../src/client/index.js';
import { TsloraError, exitCodeForCode } from '../../../src/errors.js';
import { startStubServer, unusedPort } from './stub-server.js';

async function rejectsWith(promise: Promise<unknown>, code: string, fragment: string): Promise<TsloraError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TsloraError, String(error));
    assert.equal(error.code, code);
    assert.ok(error.message.includes(fragment), `'${error.message}' lacks '${fragment}'`);
    return error;
  }
  assert.fail('expected a rejection');
}

test('load, list and unload speak the spec bodies', async () => {
  const stub = await startStubServer({ pinnedOnCards: true });
  try {
    const client = new TsloraClient({ url: `${stub.url}/` });
    const loaded = await client.loadAdapter('sql', '/loras/sql', { pinned: true });
    assert.deepEqual(loaded.loaded_adapters, { sql: '/loras/sql' });
    assert.deepEqual(stub.requests.at(-1), {
      method: 'POST', path: '/load_lora_adapter', authorization: undefined, body: { lora_name: 'sql', lora_path: '/loras/sql', pinned: true },
    });
    const listing = await client.listAdapters();
    assert.deepEqual(listing, { base: { id: 'demo', max_model_len: 2048 }, adapters: [{ name: 'sql', path: '/loras/sql', pinned: true }] });
    const unloaded = await client.unloadAdapter('sql');
    assert.deepEqual(unloaded.loaded_adapters, {});
    assert.deepEqual(stub.requests.at(-1)?.body, { lora_name: 'sql' });
  } finally {
    await stub.close();
  }
});

test('server error codes become TsloraError codes with the server message', async () => {
  const stub = await startStubServer({ existingPaths: ['/ok'] });
  try {
    const client = new TsloraClient({ url: stub.url });
    await client.loadAdapter('a', '/ok');
    const already = await rejectsWith(client.loadAdapter('a', '/ok'), 'already_loaded', "adapter 'a' is already loaded");
    assert.equal(exitCodeForCode(already.code), 5);
    const notLoaded = await rejectsWith(client.unloadAdapter('zzz'), 'not_loaded', "adapter 'zzz' is not loaded");
    assert.equal(exitCodeForCode(notLoaded.code), 4);
    await rejectsWith(client.loadAdapter('b', '/missing'), 'not_found', 'adapter_config.json not found');
  } finally {
    await stub.close();
  }
});

test('SGLang-style bodies without error_code are categorised by their wording', () => {
  assert.equal(categorizeAdapterError(undefined, 'The lora adapter sql is already loaded.'), 'already_loaded');
  assert.equal(categorizeAdapterError(null, 'LoRA adapter sql does not exist'), 'not_loaded');
  assert.equal(categorizeAdapterError(undefined, 'LoRA adapter is incompatible with the memory pool'), 'incompatible');
  assert.equal(categorizeAdapterError(undefined, 'would cause starvation'), 'pinned_limit');
  assert.equal(categorizeAdapterError('capacity', 'whatever'), 'capacity');
  assert.equal(categorizeAdapterError('made_up', 'something else'), 'invalid_request');
});

test('API key: sent as a bearer token; a missing or wrong key is unauthorized (exit 6)', async () => {
  const stub = await startStubServer({ apiKey: 's3cret' });
  try {
    const error = await rejectsWith(new TsloraClient({ url: stub.url }).listModels(), 'unauthorized', 'HTTP 401');
    assert.ok((error.hint ?? '').includes('--api-key'));
    assert.equal(exitCodeForCode(error.code), 6);
    await rejectsWith(new TsloraClient({ url: stub.url, apiKey: 'wrong' }).listModels(), 'unauthorized', 'refused');
    const models = await new TsloraClient({ url: stub.url, apiKey: 's3cret' }).listModels();
    assert.equal(models.data[0].id, 'demo');
    assert.equal(stub.requests.at(-1)?.authorization, 'Bearer s3cret');
  } finally {
    await stub.close();
  }
});

test('an unreachable server is an unreachable error (exit 3) naming the URL', async () => {
  const port = await unusedPort();
  const error = await rejectsWith(new TsloraClient({ url: `http://127.0.0.1:${port}` }).listModels(), 'unreachable', `127.0.0.1:${port}`);
  assert.ok(error.message.includes('ECONNREFUSED'));
  assert.equal(exitCodeForCode(error.code), 3);
});

test('pin uses /pin_lora_adapter when the server has it', async () => {
  const stub = await startStubServer();
  try {
    const client = new TsloraClient({ url: stub.url });
    await client.loadAdapter('sql', '/loras/sql');
    const result = await client.pinAdapter('sql', true);
    assert.equal(result.method, 'endpoint');
    assert.equal(stub.adapters.get('sql')?.pinned, true);
    assert.deepEqual(stub.requests.map((r) => r.path), ['/load_lora_adapter', '/pin_lora_adapter']);
    await rejectsWith(client.pinAdapter('nope', true), 'not_loaded', "adapter 'nope' is not loaded");
  } finally {
    await stub.close();
  }
});

test('pin falls back to unload + load with the path from /v1/models when the route is missing', async () => {
  const stub = await startStubServer({ pinRoute: false });
  try {
    const client = new TsloraClient({ url: stub.url });
    await client.loadAdapter('sql', '/loras/sql');
    const result = await client.pinAdapter('sql', true);
    assert.equal(result.method, 'reload');
    assert.deepEqual(stub.adapters.get('sql'), { path: '/loras/sql', pinned: true });
    assert.deepEqual(stub.requests.map((r) => `${r.method} ${r.path}`), [
      'POST /load_lora_adapter', 'POST /pin_lora_adapter', 'GET /v1/models', 'POST /unload_lora_adapter', 'POST /load_lora_adapter',
    ]);
    assert.deepEqual(stub.requests.at(-1)?.body, { lora_name: 'sql', lora_path: '/loras/sql', pinned: true });
    await rejectsWith(client.pinAdapter('ghost', false), 'not_loaded', "adapter 'ghost' is not loaded");
  } finally {
    await stub.close();
  }
});

test('pinning past max-loras-per-batch − 1 is rejected with the starvation reason', async () => {
  const stub = await startStubServer({ maxLorasPerBatch: 2 });
  try {
    const client = new TsloraClient({ url: stub.url });
    await client.loadAdapter('a', '/a', { pinned: true });
    await client.loadAdapter('b', '/b');
    const error = await rejectsWith(client.pinAdapter('b', true), 'pinned_limit', 'starve');
    assert.equal(exitCodeForCode(error.code), 5);
  } finally {
    await stub.close();
  }
});

test('a server that does not answer in time is reported with the timeout', async () => {
  const { createServer } = await import('node:http');
  const silent = createServer(() => {
    /* never answers */
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  try {
    await rejectsWith(new TsloraClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 200 }).listModels(), 'unreachable', 'within 0.2 s');
  } finally {
    silent.closeAllConnections();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test('advice is added to messages of servers without error_code (SGLang), not to tslora messages', async () => {
  const { createServer } = await import('node:http');
  const sglangLike = createServer((_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ success: false, error_message: 'The lora adapter sql is already loaded.', loaded_adapters: { sql: '/a' } }));
  });
  await new Promise<void>((resolve) => sglangLike.listen(0, '127.0.0.1', resolve));
  const { port } = sglangLike.address() as { port: number };
  const stub = await startStubServer();
  try {
    const fromSglang = await rejectsWith(new TsloraClient({ url: `http://127.0.0.1:${port}` }).loadAdapter('sql', '/a'), 'already_loaded', 'already loaded');
    assert.ok((fromSglang.hint ?? '').includes('tslora adapter unload'));
    const client = new TsloraClient({ url: stub.url });
    await client.loadAdapter('sql', '/a');
    const fromTslora = await rejectsWith(client.loadAdapter('sql', '/a'), 'already_loaded', 'already loaded');
    assert.equal(fromTslora.hint, undefined);
  } finally {
    await stub.close();
    await new Promise<void>((resolve) => sglangLike.close(() => resolve()));
  }
});
