/**
 * Victim choice shared by the host tier (--max-loaded-loras) and the device slots (--max-loras-per-batch).
 * `lru` evicts the least recently used id (every use refreshes it); `fifo` evicts the earliest inserted id
 * (use does not refresh it). Ties cannot happen: every insert and use takes a fresh sequence number.
 */
export type EvictionPolicyName = 'lru' | 'fifo';

export class EvictionOrder {
  readonly policy: EvictionPolicyName;
  private clock = 0;
  private readonly insertedAt = new Map<string, number>();
  private readonly usedAt = new Map<string, number>();

  constructor(policy: EvictionPolicyName) {
    this.policy = policy;
  }

  insert(id: string): void {
    const now = ++this.clock;
    this.insertedAt.set(id, now);
    this.usedAt.set(id, now);
  }

  touch(id: string): void {
    if (this.usedAt.has(id)) this.usedAt.set(id, ++this.clock);
  }

  remove(id: string): void {
    this.insertedAt.delete(id);
    this.usedAt.delete(id);
  }

  has(id: string): boolean {
    return this.insertedAt.has(id);
  }

  /** Lower = evicted earlier under this policy. */
  rank(id: string): number {
    const map = this.policy === 'lru' ? this.usedAt : this.insertedAt;
    return map.get(id) ?? Number.POSITIVE_INFINITY;
  }

  /** Candidates ordered from first to last victim. */
  order(candidates: Iterable<string>): string[] {
    return [...candidates].sort((a, b) => this.rank(a) - this.rank(b));
  }

  pickVictim(candidates: Iterable<string>): string | undefined {
    let best: string | undefined;
    let bestRank = Number.POSITIVE_INFINITY;
    for (const id of candidates) {
      const r = this.rank(id);
      if (best === undefined || r < bestRank) {
        best = id;
        bestRank = r;
      }
    }
    return best;
  }
}
