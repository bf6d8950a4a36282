/**
 * Issue 13 item 6: --lora-allowed-dirs. Run-time loads must resolve (symlinks followed, the adapter's files too)
 * inside the allowed directories; anything else is 403 forbidden_path, whether or not it exists. A loopback
 * server with the allowlist prints no exposure warning.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { post, startServer, type Server } from './server-harness.js';
import { DEMO_ADAPTER } from './hostile-adapters.js';

let server: Server;
const root = mkdtempSync(join(tmpdir(), 'tslora-allowed-'));
const allowed = join(root, 'allowed');

before(async () => {
  mkdirSync(allowed);
  cpSync(DEMO_ADAPTER, join(allowed, 'good'), { recursive: true });
  symlinkSync(DEMO_ADAPTER, join(allowed, 'link-out'));
  mkdirSync(join(allowed, 'file-out'));
  cpSync(join(DEMO_ADAPTER, 'adapter_config.json'), join(allowed, 'file-out', 'adapter_config.json'));
  symlinkSync(join(DEMO_ADAPTER, 'adapter_model.safetensors'), join(allowed, 'file-out', 'adapter_model.safetensors'));
  server = await startServer(['--lora-allowed-dirs', allowed]);
});
after(async () => {
  rmSync(root, { recursive: true, force: true });
  assert.equal(await server.stop(), 0, server.output());
});

const load = (name: string, path: string) => post(`${server.url}/load_lora_adapter`, { lora_name: name, lora_path: path });

test('loads inside --lora-allowed-dirs work; outside, through a symlink or by an adapter file are 403', async () => {
  assert.equal((await load('good', join(allowed, 'good'))).status, 200);
  for (const [name, path] of [['outside', DEMO_ADAPTER], ['link', join(allowed, 'link-out')], ['file', join(allowed, 'file-out')], ['dotdot', join(allowed, '..', '..')], ['missing', '/no/such/dir']]) {
    const res = await load(name, path);
    assert.equal(res.status, 403, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error_code, 'forbidden_path');
    assert.doesNotMatch(res.body.error_message, /does not exist|not found/);
  }
  assert.doesNotMatch(server.output(), /neither --api-key nor --lora-allowed-dirs/);
});
