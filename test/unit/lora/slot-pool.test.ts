import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EvictionOrder } from '../../../src/engine/lora/eviction-policy.js';
import { BASE_ADAPTER_ID, SlotPool, sortAdapterIds } from '../../../src/engine/lora/slot-pool.js';

test('LRU reorders on reuse, FIFO does not', () => {
  for (const policy of ['lru', 'fifo'] as const) {
    const order = new EvictionOrder(policy);
    order.insert('a');
    order.insert('b');
    order.insert('c');
    order.touch('a');
    assert.equal(order.pickVictim(['a', 'b', 'c']), policy === 'lru' ? 'b' : 'a');
    assert.deepEqual(order.order(['a', 'b', 'c']), policy === 'lru' ? ['b', 'c', 'a'] : ['a', 'b', 'c']);
    order.remove('b');
    assert.equal(order.has('b'), false);
    assert.equal(order.pickVictim(['b']), 'b', 'unknown ids rank last but can still be chosen alone');
  }
});

test('batch ids sort base first, then by id string', () => {
  assert.deepEqual(sortAdapterIds(['b', BASE_ADAPTER_ID, 'a10', 'a2']), [BASE_ADAPTER_ID, 'a10', 'a2', 'b']);
});

test('slot choice: empty slot first, then a victim that is neither in the batch nor pinned, base last', () => {
  const pool = new SlotPool(3, 'lru');
  assert.deepEqual(pool.choose(new Set(), new Set()), { slot: 0, evicted: null });
  pool.place(BASE_ADAPTER_ID, 0, false);
  pool.place('x', 1, false);
  pool.place('y', 2, false);
  pool.touch('x');
  // y is the LRU adapter; base goes last even though it is older.
  assert.deepEqual(pool.choose(new Set(), new Set()), { slot: 2, evicted: 'y' });
  assert.deepEqual(pool.choose(new Set(['y']), new Set()), { slot: 1, evicted: 'x' });
  assert.deepEqual(pool.choose(new Set(['y']), new Set(['x'])), { slot: 0, evicted: BASE_ADAPTER_ID });
  assert.equal(pool.choose(new Set(['y', BASE_ADAPTER_ID]), new Set(['x'])), null);
  pool.place('z', 2, true);
  assert.equal(pool.state('z'), 'LOADING');
  assert.equal(pool.state('y'), 'NOT_LOADED');
  assert.equal(pool.choose(new Set(), new Set(['x', BASE_ADAPTER_ID])), null, 'a slot with a pending copy is never a victim');
  pool.markLoaded('z');
  assert.equal(pool.state('z'), 'LOADED');
  assert.equal(pool.remove('z'), 2);
  assert.deepEqual(pool.snapshot(), [BASE_ADAPTER_ID, 'x', null]);
});

test('FIFO slot victims ignore reuse', () => {
  const pool = new SlotPool(2, 'fifo');
  pool.place('a', 0, false);
  pool.place('b', 1, false);
  pool.touch('a');
  assert.deepEqual(pool.choose(new Set(), new Set()), { slot: 0, evicted: 'a' });
});
