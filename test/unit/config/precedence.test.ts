import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { readConfigFile, resolveServeConfig, resolveAdapterCliConfig, serveOptions } from '../../../src/config/index.js';
import { TsloraError } from '../../../src/errors.js';

const file = (values: Record<string, unknown>, path = '/etc/tslora/serve.json') => ({ path, values });

test('defaults < config file < env < flags, option by option', () => {
  const configFile = file({ port: 1111, 'max-loras-per-batch': 3, logLevel: 'debug', host: '0.0.0.0', modelPath: '/m' });
  const env = { TSLORA_PORT: '2222', TSLORA_MAX_LORAS_PER_BATCH: '5' };
  const config = resolveServeConfig({ port: '3333' }, env, configFile);
  assert.equal(config.port, 3333, 'flag beats env and file');
  assert.equal(config.maxLorasPerBatch, 5, 'env beats file');
  assert.equal(config.logLevel, 'debug', 'file beats default');
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.streamInterval, 1, 'default when nobody sets it');
});

test('--no-<flag> overrides a true from the config file or env', () => {
  const configFile = file({ disableRadixCache: true, enableMetrics: true, modelPath: '/m' });
  assert.equal(resolveServeConfig({}, {}, configFile).disableRadixCache, true);
  assert.equal(resolveServeConfig({ disableRadixCache: false }, {}, configFile).disableRadixCache, false);
  assert.equal(resolveServeConfig({}, { TSLORA_ENABLE_METRICS: 'off' }, configFile).enableMetrics, false);
  assert.equal(resolveServeConfig({}, { TSLORA_ENABLE_METRICS: '0' }, configFile).enableMetrics, false);
});

test('env values are coerced with the same rules and name the variable on error', () => {
  const config = resolveServeConfig({ modelPath: '/m' }, { TSLORA_LORA_PATHS: 'a=./a {"lora_name": "b", "lora_path": "./b", "pinned": true}', TSLORA_MEM_FRACTION_STATIC: '0.8' });
  assert.deepEqual(config.loraPaths, [
    { name: 'a', path: './a', pinned: false },
    { name: 'b', path: './b', pinned: true },
  ]);
  assert.equal(config.memFractionStatic, 0.8);
  assert.throws(() => resolveServeConfig({ modelPath: '/m' }, { TSLORA_TP_SIZE: 'two' }), (e: TsloraError) =>
    e.code === 'usage' && e.message === '--tp-size must be an integer (got two from TSLORA_TP_SIZE).');
  assert.throws(() => resolveServeConfig({ modelPath: '/m' }, { TSLORA_ENABLE_METRICS: 'maybe' }), /--enable-metrics must be true or false/);
  // empty env values count as unset
  assert.equal(resolveServeConfig({ modelPath: '/m' }, { TSLORA_PORT: '' }).port, 30000);
});

test('TSLORA_LORA_PATHS may be a JSON list', () => {
  const config = resolveServeConfig({ modelPath: '/m' }, { TSLORA_LORA_PATHS: '[{"lora_name":"x y","lora_path":"./dir with space"}]' });
  assert.deepEqual(config.loraPaths, [{ name: 'x y', path: './dir with space', pinned: false }]);
});

test('config file: flag names, camelCase keys and aliases are accepted; unknown keys are an error naming them', () => {
  const config = resolveServeConfig({}, {}, file({ model: '/m', tp: 2, 'served-model-name': 'llama' }));
  assert.equal(config.modelPath, '/m');
  assert.equal(config.tpSize, 2);
  assert.equal(config.servedModelName, 'llama');
  assert.throws(() => resolveServeConfig({}, {}, file({ maxLorasPerBtach: 4 })), (e: TsloraError) =>
    e.code === 'usage' && e.message.includes("unknown key 'maxLorasPerBtach'") && (e.hint ?? '').includes('max-loras-per-batch'));
  assert.throws(() => resolveServeConfig({}, {}, file({ frobnicate: true })), /unknown key 'frobnicate' in config file/);
  assert.throws(() => resolveServeConfig({}, {}, file({ port: 2, Port: 3 })), /unknown key 'Port'/);
  assert.throws(() => resolveServeConfig({}, {}, file({ port: 1, tp: 1, 'tp-size': 2 })), /sets 'tpSize' twice/);
  assert.throws(() => resolveServeConfig({}, {}, file({ config: 'other.json' })), /may not name another config file/);
  assert.throws(() => resolveServeConfig({}, {}, file({ port: '80x' })), (e: TsloraError) =>
    e.message === "--port must be an integer (got 80x from 'port' in /etc/tslora/serve.json).");
});

test('config file: --lora-paths as a list of objects, as a {name: path} object, relative to the file', () => {
  const list = resolveServeConfig({}, {}, file({ modelPath: '/m', loraPaths: [{ lora_name: 'sql', lora_path: 'loras/sql', pinned: true }, 'chat=/abs/chat'] }));
  assert.deepEqual(list.loraPaths, [
    { name: 'sql', path: '/etc/tslora/loras/sql', pinned: true },
    { name: 'chat', path: '/abs/chat', pinned: false },
  ]);
  const object = resolveServeConfig({}, {}, file({ modelPath: 'models/llama', 'lora-paths': { sql: './sql', code: '/c' } }));
  assert.deepEqual(object.loraPaths, [
    { name: 'sql', path: '/etc/tslora/sql', pinned: false },
    { name: 'code', path: '/c', pinned: false },
  ]);
  assert.equal(object.modelPath, '/etc/tslora/models/llama');
  assert.throws(() => resolveServeConfig({}, {}, file({ modelPath: '/m', loraPaths: [{ lora_name: 'a' }] })), /looks like JSON but needs the keys/);
  assert.throws(() => resolveServeConfig({}, {}, file({ modelPath: '/m', loraPaths: { a: 3 } })), /must be a path string/);
  // flag values win over the file, and stay relative to the working directory as given
  const flagged = resolveServeConfig({ loraPaths: ['x=./x'] }, {}, file({ modelPath: '/m', loraPaths: { sql: './sql' } }));
  assert.deepEqual(flagged.loraPaths, [{ name: 'x', path: './x', pinned: false }]);
});

test('readConfigFile reports missing files, bad JSON and non-objects as usage errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-config-'));
  try {
    assert.throws(() => readConfigFile(join(dir, 'missing.json')), (e: TsloraError) => e.code === 'usage' && e.message.includes('does not exist'));
    writeFileSync(join(dir, 'bad.json'), '{"port": 1,}');
    assert.throws(() => readConfigFile(join(dir, 'bad.json')), (e: TsloraError) => e.code === 'usage' && e.message.includes('not valid JSON'));
    writeFileSync(join(dir, 'list.json'), '[1]');
    assert.throws(() => readConfigFile(join(dir, 'list.json')), /must hold a JSON object/);
    writeFileSync(join(dir, 'ok.json'), '{"port": 8000}');
    assert.deepEqual(readConfigFile(join(dir, 'ok.json')).values, { port: 8000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every serve option has a flag, an env var, a group and help, and names are unique', () => {
  const names = new Set<string>();
  for (const spec of serveOptions) {
    assert.ok(spec.help.length > 10, spec.key);
    assert.equal(spec.env, `TSLORA_${spec.flag.replace(/-/g, '_').toUpperCase()}`);
    for (const name of new Set([spec.key, spec.flag, ...(spec.aliases ?? [])])) {
      assert.ok(!names.has(name), `duplicate ${name}`);
      names.add(name);
    }
    if (spec.type === 'boolean') assert.equal(spec.negatable, true, `${spec.flag} should accept --no-${spec.flag}`);
  }
});

test('adapter CLI options: defaults < env < flags, URL and timeout checks', () => {
  assert.deepEqual(resolveAdapterCliConfig({}, {}), { url: 'http://127.0.0.1:30000', apiKey: null, timeoutMs: 120000, json: false });
  const fromEnv = resolveAdapterCliConfig({}, { TSLORA_URL: 'http://h:1/', TSLORA_API_KEY: 'k', TSLORA_TIMEOUT: '2.5' });
  assert.deepEqual(fromEnv, { url: 'http://h:1', apiKey: 'k', timeoutMs: 2500, json: false });
  assert.equal(resolveAdapterCliConfig({ url: 'http://flag:2' }, { TSLORA_URL: 'http://h:1' }).url, 'http://flag:2');
  assert.throws(() => resolveAdapterCliConfig({ url: 'localhost:30000' }, {}), (e: TsloraError) => e.code === 'usage' && e.message.includes('http://'));
  assert.throws(() => resolveAdapterCliConfig({ timeout: '0' }, {}), /--timeout must be a positive number/);
});
