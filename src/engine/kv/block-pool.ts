/**
 * Paged KV cache bookkeeping (no tensors here: the native side owns the memory, we hand it block ids).
 *
 * Every physical block is in exactly one of three states:
 *   - free:     on the free list, content meaningless;
 *   - used:     refCount > 0, owned by one or more running sequences (shared prefix blocks have refCount > 1);
 *   - cached:   refCount == 0 but registered in the prefix cache under a hash; reusable by a later request
 *               with the same (namespace, tokens) prefix, or reclaimed (least recently released first) when
 *               the free list runs dry.
 */
export class BlockPool {
  readonly numBlocks: number;
  private readonly refCounts: Int32Array; // [numBlocks]
  private readonly freeList: number[] = [];
  /** Block id → prefix-cache hash, for blocks that are registered. */
  private readonly hashOfBlock = new Map<number, string>();
  /** Prefix-cache hash → block id. */
  private readonly blockOfHash = new Map<string, number>();
  /** Registered blocks with refCount 0, in release order (Map keeps insertion order = LRU first). */
  private readonly evictable = new Map<number, true>();

  constructor(numBlocks: number) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new Error(`BlockPool needs ≥ 1 block (got ${numBlocks})`);
    this.numBlocks = numBlocks;
    this.refCounts = new Int32Array(numBlocks);
    // Pop from the end: low ids are handed out first, which keeps tests readable.
    for (let b = numBlocks - 1; b >= 0; b--) this.freeList.push(b);
  }

  /** Blocks a new allocation could get right now (free plus reclaimable cached ones). */
  availableBlocks(): number {
    return this.freeList.length + this.evictable.size;
  }

  usedBlocks(): number {
    return this.numBlocks - this.availableBlocks();
  }

  cachedBlocks(): number {
    return this.hashOfBlock.size;
  }

  /** Takes `count` fresh blocks (refCount 1); throws when not enough are available (callers check first). */
  allocate(count: number): number[] {
    if (count > this.availableBlocks()) {
      throw new Error(`KV cache: asked for ${count} blocks but only ${this.availableBlocks()} are available`);
    }
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      let block = this.freeList.pop();
      if (block === undefined) block = this.reclaimOldestCached();
      this.refCounts[block] = 1;
      out.push(block);
    }
    return out;
  }

  /** Looks up a cached block by hash and takes a reference on it; undefined when absent. */
  acquireCached(hash: string): number | undefined {
    const block = this.blockOfHash.get(hash);
    if (block === undefined) return undefined;
    if (this.refCounts[block] === 0) this.evictable.delete(block);
    this.refCounts[block]++;
    return block;
  }

  /** Registers a full, computed block under a hash. A hash already present keeps its existing block. */
  register(block: number, hash: string): void {
    if (this.blockOfHash.has(hash) || this.hashOfBlock.has(block)) return;
    this.blockOfHash.set(hash, block);
    this.hashOfBlock.set(block, hash);
  }

  /** Drops one reference on each block; unregistered blocks with no references return to the free list. */
  release(blocks: readonly number[]): void {
    for (const block of blocks) {
      const count = --this.refCounts[block];
      if (count < 0) throw new Error(`KV cache: block ${block} released more often than taken`);
      if (count > 0) continue;
      if (this.hashOfBlock.has(block)) this.evictable.set(block, true);
      else this.freeList.push(block);
    }
  }

  /** Forgets every cached hash (e.g. when the prefix cache is disabled at run time); used blocks stay used. */
  clearCache(): void {
    for (const block of this.evictable.keys()) this.freeList.push(block);
    this.evictable.clear();
    this.hashOfBlock.clear();
    this.blockOfHash.clear();
  }

  refCount(block: number): number {
    return this.refCounts[block];
  }

  private reclaimOldestCached(): number {
    const oldest = this.evictable.keys().next();
    if (oldest.done) throw new Error('KV cache: no block to reclaim');
    const block = oldest.value;
    this.evictable.delete(block);
    const hash = this.hashOfBlock.get(block)!;
    this.hashOfBlock.delete(block);
    this.blockOfHash.delete(hash);
    return block;
  }
}
