/**
 * Per-sequence KV allocation on top of BlockPool, with a prefix cache keyed by (namespace, tokens).
 *
 * The namespace is the adapter **id** (a new id on every load, spec c.9) or "base": cached KV is only valid for
 * the weights that produced it, so a prefix is never shared across adapters or across reloads of one name.
 * Hashes chain block by block (hash_i = H(hash_{i-1}, tokens of block i)), so equal hashes mean equal prefixes.
 *
 * A sequence reserves blocks for its whole budget (prompt + max new tokens) at admission: no preemption is ever
 * needed, at the cost of holding memory a request may not use.
 */
import { createHash } from 'node:crypto';
import { BlockPool } from './block-pool.js';

export interface KvAllocation {
  namespace: string;
  /** Physical blocks covering positions [0, blockTable.length * blockSize). */
  blockTable: number[];
  /** Prompt tokens whose KV came from the prefix cache (a multiple of the block size). */
  cachedTokens: number;
  /** Chain hash of each full prompt block (empty when the cache is off for this sequence). */
  promptBlockHashes: string[];
  /** Prompt blocks already registered in the cache. */
  registeredBlocks: number;
  released: boolean;
}

export class KvCacheManager {
  readonly blockSize: number;
  readonly pool: BlockPool;
  readonly prefixCacheEnabled: boolean;
  private hitTokens = 0;
  private queriedTokens = 0;

  constructor(numBlocks: number, blockSize: number, prefixCacheEnabled: boolean) {
    this.pool = new BlockPool(numBlocks);
    this.blockSize = blockSize;
    this.prefixCacheEnabled = prefixCacheEnabled;
  }

  blocksForTokens(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Could a sequence needing `totalTokens` positions be admitted if nothing were cached? */
  fitsEver(totalTokens: number): boolean {
    return this.blocksForTokens(totalTokens) <= this.pool.numBlocks;
  }

  /**
   * Reserves blocks for positions [0, totalTokens), reusing cached full blocks of the prompt when allowed.
   * At least the last prompt token is always recomputed (its logits start the generation). Null = not enough
   * free blocks now (the request stays waiting).
   */
  tryAllocate(namespace: string, promptTokens: ArrayLike<number>, totalTokens: number, usePrefixCache: boolean): KvAllocation | null {
    const needBlocks = this.blocksForTokens(totalTokens);
    const useCache = usePrefixCache && this.prefixCacheEnabled;
    const hashes = useCache ? this.promptHashes(namespace, promptTokens) : [];
    const matched: number[] = [];
    // Only blocks strictly before the last prompt token may come from the cache.
    const maxMatch = Math.floor((promptTokens.length - 1) / this.blockSize);
    for (let i = 0; i < Math.min(maxMatch, hashes.length); i++) {
      const block = this.pool.acquireCached(hashes[i]);
      if (block === undefined) break;
      matched.push(block);
    }
    const fresh = needBlocks - matched.length;
    if (fresh > this.pool.availableBlocks()) {
      this.pool.release(matched);
      return null;
    }
    if (useCache) {
      this.queriedTokens += promptTokens.length;
      this.hitTokens += matched.length * this.blockSize;
    }
    return {
      namespace,
      blockTable: [...matched, ...this.pool.allocate(fresh)],
      cachedTokens: matched.length * this.blockSize,
      promptBlockHashes: hashes,
      registeredBlocks: matched.length,
      released: false,
    };
  }

  /** Registers the full prompt blocks whose KV is now computed (computedTokens = prompt tokens done so far). */
  registerComputed(alloc: KvAllocation, computedTokens: number): void {
    const fullBlocks = Math.min(Math.floor(computedTokens / this.blockSize), alloc.promptBlockHashes.length);
    for (let i = alloc.registeredBlocks; i < fullBlocks; i++) this.pool.register(alloc.blockTable[i], alloc.promptBlockHashes[i]);
    alloc.registeredBlocks = Math.max(alloc.registeredBlocks, fullBlocks);
  }

  release(alloc: KvAllocation): void {
    if (alloc.released) return;
    alloc.released = true;
    this.pool.release(alloc.blockTable);
  }

  /** Fraction of queried prompt tokens served from the cache since start-up. */
  hitRate(): number {
    return this.queriedTokens === 0 ? 0 : this.hitTokens / this.queriedTokens;
  }

  private promptHashes(namespace: string, tokens: ArrayLike<number>): string[] {
    const out: string[] = [];
    let parent = `ns:${namespace}`;
    const fullBlocks = Math.floor(tokens.length / this.blockSize);
    for (let b = 0; b < fullBlocks; b++) {
      const h = createHash('sha1');
      h.update(parent);
      const block = new Int32Array(this.blockSize);
      for (let i = 0; i < this.blockSize; i++) block[i] = tokens[b * this.blockSize + i];
      h.update(new Uint8Array(block.buffer));
      parent = h.digest('hex');
      out.push(parent);
    }
    return out;
  }
}
