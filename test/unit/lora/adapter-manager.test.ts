import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdapterManager, type AdapterEnginePort } from '../../../src/engine/lora/adapter-manager.js';
import type { AdapterSpec } from '../../../src/engine/model/types.js';
import { TsloraError } from '../../../src/errors.js';

class FakeEngine implements AdapterEnginePort {
  readonly log: string[] = [];
  async loadAdapter(id: string, adapter: AdapterSpec, pinned: boolean) {
    this.log.push(`load ${id} ${adapter.path}${pinned ? ' pinned' : ''}`);
  }
  async freeAdapter(id: string) {
    this.log.push(`free ${id}`);
  }
  async setPinned(id: string, pinned: boolean) {
    this.log.push(`pin ${id} ${pinned}`);
  }
}

const spec = (path: string): AdapterSpec => ({ path, files: [], rank: 4, targetModules: ['qkv_proj'], tensors: [], sizeBytes: 0 });
const reader = async (path: string) => {
  if (path.includes('missing')) throw new TsloraError('not_found', `no PEFT LoRA adapter at '${path}'`);
  return { adapter: spec(path), warnings: [] };
};

function manager(maxLoaded: number | null, policy: 'lru' | 'fifo' = 'lru', numSlots = 4) {
  const engine = new FakeEngine();
  const m = new AdapterManager(engine, reader, { loraEnabled: true, numSlots, maxLoadedLoras: maxLoaded, evictionPolicy: policy });
  return { m, engine };
}

async function rejectsCode(p: Promise<unknown>, code: string, words?: RegExp) {
  await assert.rejects(p, (e: unknown) => e instanceof TsloraError && e.code === code && (!words || words.test(e.message)));
}

test('load, duplicate, unload, unknown', async () => {
  const { m } = manager(null);
  await m.load('a', '/a', false);
  await rejectsCode(m.load('a', '/b', false), 'already_loaded', /already loaded/);
  await rejectsCode(m.load('x', '/missing', false), 'not_found');
  assert.deepEqual(m.loadedAdapters(), { a: '/a' });
  await m.unload('a');
  await rejectsCode(m.unload('a'), 'not_loaded', /not loaded/);
  await rejectsCode(m.acquire(['a']), 'not_loaded', /not loaded/);
});

test('host-tier cap evicts by policy and evicted names reload implicitly with a new id', async () => {
  for (const policy of ['lru', 'fifo'] as const) {
    const { m } = manager(2, policy);
    await m.load('a', '/a', false);
    await m.load('b', '/b', false);
    const lease = await m.acquire(['a']); // refreshes a under LRU
    lease.release();
    await m.load('c', '/c', false);
    const expectedGone = policy === 'lru' ? 'b' : 'a';
    assert.equal(m.registry.get(expectedGone), undefined, `${policy} evicted ${expectedGone}`);
    const oldIds = m.registry.list().map((e) => e.id);
    const again = await m.acquire([expectedGone]);
    assert.ok(!oldIds.includes(again.ids.get(expectedGone)!), 'reload has a new id');
    again.release();
    assert.equal(m.registry.size(), 2);
  }
});

test('pinned adapters are never evicted; capacity and pin limits', async () => {
  const { m } = manager(2, 'lru', 3);
  await m.load('p', '/p', true);
  await m.load('q', '/q', true);
  await rejectsCode(m.load('c', '/c', false), 'capacity');
  await rejectsCode(m.load('r', '/r', true), 'pinned_limit', /starv/);
  await m.setPinned('q', false);
  await m.load('c', '/c', false);
  assert.deepEqual(Object.keys(m.loadedAdapters()).sort(), ['c', 'p']);
  await rejectsCode(m.setPinned('nope', true), 'not_loaded');
});

test('unload waits for in-flight references, and new requests fail at once', async () => {
  const { m, engine } = manager(null);
  await m.load('a', '/a', false);
  const lease = await m.acquire(['a', null, 'a']);
  let unloaded = false;
  const unload = m.unload('a').then(() => (unloaded = true));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(unloaded, false);
  await rejectsCode(m.acquire(['a']), 'not_loaded');
  assert.ok(!engine.log.some((l) => l.startsWith('free')));
  lease.release();
  await unload;
  assert.ok(engine.log.some((l) => l.startsWith('free')));
});

test('request-level checks: LoRA off, too many distinct adapters', async () => {
  const off = new AdapterManager(new FakeEngine(), reader, { loraEnabled: false, numSlots: 8, maxLoadedLoras: null, evictionPolicy: 'lru' });
  await rejectsCode(off.acquire(['sql']), 'lora_disabled', /LoRA.*not enabled/);
  assert.equal((await off.acquire([null, ''])).ids.size, 0);
  const { m } = manager(2);
  await rejectsCode(m.acquire(['a', 'b', 'c']), 'invalid_request', /3 distinct adapters but at most 2/);
});

test('load_inplace replaces the adapter with a new id', async () => {
  const { m, engine } = manager(null);
  await m.load('a', '/a1', false);
  const first = m.registry.get('a')!.id;
  await m.load('a', '/a2', false, true);
  const second = m.registry.get('a')!;
  assert.notEqual(second.id, first);
  assert.equal(second.path, '/a2');
  await new Promise((r) => setImmediate(r));
  assert.ok(engine.log.includes(`free ${first}`));
});

test('a lease releases adapters one by one', async () => {
  const { m } = manager(null);
  await m.load('a', '/a', false);
  await m.load('b', '/b', false);
  const lease = await m.acquire(['a', 'b']);
  let unloaded = false;
  const unload = m.unload('a').then(() => (unloaded = true));
  lease.releaseName('b');
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(unloaded, false, 'a is still referenced');
  lease.releaseName('a');
  await unload;
  lease.release();
  assert.equal(m.registry.get('b')!.inFlight, 0);
});
