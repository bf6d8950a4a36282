import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockPool } from '../../../src/engine/kv/block-pool.js';
import { KvCacheManager } from '../../../src/engine/kv/kv-cache.js';

const range = (n: number, from = 0) => Array.from({ length: n }, (_v, i) => from + i);

test('block pool hands out, reclaims cached blocks last-released-last, and refuses over-allocation', () => {
  const pool = new BlockPool(4);
  const a = pool.allocate(2);
  assert.deepEqual(a, [0, 1]);
  pool.register(a[0], 'h0');
  pool.register(a[1], 'h1');
  pool.release([a[1]]);
  pool.release([a[0]]);
  assert.equal(pool.availableBlocks(), 4);
  assert.equal(pool.cachedBlocks(), 2);
  // Two free blocks first, then the cached ones in release order (1 before 0).
  assert.deepEqual(pool.allocate(3), [2, 3, 1]);
  assert.equal(pool.acquireCached('h1'), undefined, 'reclaimed block lost its hash');
  assert.equal(pool.acquireCached('h0'), 0);
  assert.throws(() => pool.allocate(1), /only 0 are available/);
});

test('prefix cache reuses full prompt blocks only within the same namespace', () => {
  const kv = new KvCacheManager(16, 4, true);
  const prompt = range(10, 100);
  const first = kv.tryAllocate('adapter-1', prompt, 14, true)!;
  assert.equal(first.cachedTokens, 0);
  kv.registerComputed(first, 10);
  kv.release(first);

  const same = kv.tryAllocate('adapter-1', prompt, 14, true)!;
  assert.equal(same.cachedTokens, 8, 'two full blocks of 4 reused');
  assert.deepEqual(same.blockTable.slice(0, 2), first.blockTable.slice(0, 2));
  kv.release(same);

  const other = kv.tryAllocate('adapter-2', prompt, 14, true)!;
  assert.equal(other.cachedTokens, 0, 'another adapter id never sees the cached KV');
  kv.release(other);
  const base = kv.tryAllocate('base', prompt, 14, false)!;
  assert.equal(base.cachedTokens, 0);
  kv.release(base);
});

test('the last prompt token is always recomputed, and a different token breaks the chain', () => {
  const kv = new KvCacheManager(16, 4, true);
  const prompt = range(8);
  const a = kv.tryAllocate('ns', prompt, 8, true)!;
  kv.registerComputed(a, 8);
  kv.release(a);
  const again = kv.tryAllocate('ns', prompt, 8, true)!;
  assert.equal(again.cachedTokens, 4, 'block 2 holds the last prompt token, so it is recomputed');
  kv.release(again);
  const changed = kv.tryAllocate('ns', [99, ...prompt.slice(1)], 8, true)!;
  assert.equal(changed.cachedTokens, 0);
  kv.release(changed);
});

test('allocation fails cleanly when the cache is full and frees everything on release', () => {
  const kv = new KvCacheManager(4, 4, true);
  const a = kv.tryAllocate('ns', range(5), 12, true)!;
  assert.equal(a.blockTable.length, 3);
  assert.equal(kv.tryAllocate('ns', range(5, 50), 8, true), null);
  assert.equal(kv.pool.usedBlocks(), 3);
  kv.release(a);
  kv.release(a);
  assert.equal(kv.pool.usedBlocks(), 0);
  assert.equal(kv.fitsEver(17), false);
  assert.equal(kv.fitsEver(16), true);
});
