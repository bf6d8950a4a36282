/**
 * Issue 13 (hardening), what an adapter path can make the server do, against the real `tslora serve` on the demo
 * model: hostile adapter files (item 5: regexes, FIFO, directories, /dev/zero), what errors and /v1/models reveal
 * and the content-type rule (6), the queue bound across an adapter reload (8), unload of a host-evicted adapter (9).
 * The server listens on every address without a key, so it must warn, and hides paths from remote callers.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { get, post, startServer, type Server } from './server-harness.js';
import { makeHostileAdapters, type HostileSet } from './hostile-adapters.js';

let server: Server;
let local: string;
let hostile: HostileSet;

before(async () => {
  hostile = makeHostileAdapters();
  // The six demo adapters load at start-up; two fit the host tier, so four are evicted (known, reloadable).
  server = await startServer(['--host', '0.0.0.0', '--max-loras-per-batch', '2', '--max-loaded-loras', '2', '--max-running-requests', '1', '--max-queued-requests', '8']);
  local = server.url.replace('0.0.0.0', '127.0.0.1');
});
after(async () => {
  hostile.remove();
  assert.equal(await server.stop(), 0, server.output());
});

async function alive(): Promise<void> {
  assert.equal(server.proc.exitCode, null, `the server exited:\n${server.output()}`);
  assert.equal((await fetch(`${local}/health`)).status, 200);
}

const load = (name: string, path: string) => post(`${local}/load_lora_adapter`, { lora_name: name, lora_path: path });

test('item 6: a non-loopback listener without --api-key or --lora-allowed-dirs warns at start-up', () => {
  assert.match(server.output(), /warning: --host 0\.0\.0\.0 is reachable from other machines and neither --api-key nor --lora-allowed-dirs/);
});

test('item 5: catastrophic or unsupported patterns in adapter_config.json are refused, and the server keeps answering', { timeout: 300_000 }, async () => {
  for (const [name, dir] of [['regex-targets', hostile.dirs.regexTargets], ['regex-rank', hostile.dirs.regexRankPattern], ['lookaround', hostile.dirs.lookaround]]) {
    const res = await load(name, dir);
    assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
    await alive();
  }
});

test('item 5: FIFOs, directories and devices where adapter files belong are 400, and do not hold a lock', { timeout: 300_000 }, async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['fifo', hostile.dirs.fifoConfig, /adapter_config\.json .* is a FIFO/],
    ['dirconfig', hostile.dirs.dirConfig, /adapter_config\.json .* is a directory/],
    ['dirweights', hostile.dirs.dirWeights, /adapter_model\.safetensors .* is a directory/],
    ['zero', hostile.dirs.zeroConfig, /adapter_config\.json .* is a device/],
  ];
  for (const [name, dir, message] of cases) {
    const res = await load(name, dir);
    assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.error_message, message);
  }
  // Loads and unloads go on (the FIFO held the one global lock forever before).
  assert.equal((await load('fine', hostile.dirs.good)).status, 200);
  assert.equal((await post(`${local}/unload_lora_adapter`, { lora_name: 'fine' })).status, 200);
  await alive();
});

test('item 6: errors never echo file contents nor tell which directories exist', async () => {
  const passwd = await load('passwd', hostile.dirs.passwdWeights);
  assert.equal(passwd.status, 400);
  assert.doesNotMatch(passwd.body.error_message, /root|\d{7,}/, passwd.body.error_message);
  const existing = await load('probe', '/etc');
  const missing = await load('probe', '/no-such-directory');
  assert.equal(existing.status, 400);
  assert.equal(existing.body.error_message.replace('/etc', 'P'), missing.body.error_message.replace('/no-such-directory', 'P'));
});

test('item 6: JSON routes need Content-Type application/json (a cross-site text/plain POST loads nothing)', async () => {
  for (const route of ['/load_lora_adapter', '/unload_lora_adapter', '/generate', '/v1/completions']) {
    const res = await fetch(`${local}${route}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ lora_name: 'x', lora_path: hostile.dirs.good, text: 'hi', model: 'demo', prompt: 'hi' }) });
    assert.equal(res.status, 415, route);
  }
  const models = await get(`${local}/v1/models`);
  assert.ok(!models.body.data.some((c: { id: string }) => c.id === 'x'));
});

test('item 6: /v1/models shows adapter paths only to local callers when there is no key', async (t) => {
  const mine = await get(`${local}/v1/models`);
  assert.ok(mine.body.data.filter((c: { parent: string | null }) => c.parent).every((c: { root: string }) => c.root.startsWith('/')));
  const remote = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4');
  if (!remote) {
    t.skip('no non-loopback IPv4 address on this machine');
    return;
  }
  const theirs = await get(`${server.url.replace('0.0.0.0', remote.address)}/v1/models`);
  assert.equal(theirs.status, 200);
  const adapters = theirs.body.data.filter((c: { parent: string | null }) => c.parent);
  assert.ok(adapters.length > 0);
  for (const card of adapters) assert.equal(card.root, null);
});

test('item 9: unloading a host-evicted adapter takes; the next request does not bring it back', async () => {
  const loaded = Object.keys((await get(`${local}/get_server_info`)).body.loaded_adapters);
  const evicted = ['add', 'caesar', 'last_word', 'reverse', 'spell', 'upper'].find((n) => !loaded.includes(n))!;
  const res = await post(`${local}/unload_lora_adapter`, { lora_name: evicted });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const gen = await post(`${local}/generate`, { text: 'hello', lora_path: evicted, sampling_params: { max_new_tokens: 2 } });
  assert.equal(gen.status, 400);
  assert.match(gen.body.error.message, /not loaded/);
  const again = await post(`${local}/unload_lora_adapter`, { lora_name: evicted });
  assert.equal(again.status, 400);
});

test('item 8: --max-queued-requests holds while an evicted adapter reloads', async () => {
  const loaded = Object.keys((await get(`${local}/get_server_info`)).body.loaded_adapters);
  const evicted = ['add', 'caesar', 'last_word', 'reverse', 'spell', 'upper'].filter((n) => !loaded.includes(n)).at(-1)!; // item 9 forgot the first
  const burst = await Promise.all(
    Array.from({ length: 30 }, () => post(`${local}/generate`, { text: 'hello', lora_path: evicted, sampling_params: { max_new_tokens: 100, ignore_eos: true } })),
  );
  const statuses = burst.map((r) => r.status);
  const accepted = statuses.filter((s) => s === 200).length;
  assert.equal(statuses.filter((s) => s !== 200 && s !== 503).length, 0, statuses.join());
  // 1 running + 8 queued; each accepted request runs 100 steps, so none finishes while the burst arrives.
  assert.ok(accepted >= 1 && accepted <= 9, `accepted ${accepted}: ${statuses.join()}`);
  await alive();
});
