/**
 * Device slot bookkeeping (spec c.4): which adapter id occupies which of the S LoRA slots, and whether its copy
 * has finished (overlap loading, c.10). The base model occupies a slot of its own (zeroed, rank 0) whenever
 * base requests run, so it is tracked here under BASE_ADAPTER_ID like any adapter; it goes last as a victim.
 * This class only decides; the scheduler performs the copies through the runner.
 */
import { EvictionOrder, type EvictionPolicyName } from './eviction-policy.js';

export const BASE_ADAPTER_ID = '__base__';

export type SlotState = 'LOADED' | 'LOADING' | 'NOT_LOADED';

interface SlotEntry {
  id: string;
  loading: boolean;
}

export interface SlotChoice {
  slot: number;
  /** The id that leaves the slot, if it was occupied. */
  evicted: string | null;
}

/** Deterministic order of a batch's ids: base first, then by id string (never hash order). */
export function sortAdapterIds(ids: Iterable<string>): string[] {
  return [...ids].sort((a, b) => {
    if (a === b) return 0;
    if (a === BASE_ADAPTER_ID) return -1;
    if (b === BASE_ADAPTER_ID) return 1;
    return a < b ? -1 : 1;
  });
}

export class SlotPool {
  readonly numSlots: number;
  private readonly slots: Array<SlotEntry | null>;
  private readonly slotOfId = new Map<string, number>();
  private readonly order: EvictionOrder;
  evictions = 0;

  constructor(numSlots: number, policy: EvictionPolicyName) {
    this.numSlots = numSlots;
    this.slots = new Array(numSlots).fill(null);
    this.order = new EvictionOrder(policy);
  }

  slotOf(id: string): number | undefined {
    return this.slotOfId.get(id);
  }

  state(id: string): SlotState {
    const slot = this.slotOfId.get(id);
    if (slot === undefined) return 'NOT_LOADED';
    return this.slots[slot]!.loading ? 'LOADING' : 'LOADED';
  }

  usedSlots(): number {
    return this.slotOfId.size;
  }

  residentIds(): string[] {
    return [...this.slotOfId.keys()];
  }

  loadingIds(): string[] {
    return [...this.slotOfId.entries()].filter(([, s]) => this.slots[s]!.loading).map(([id]) => id);
  }

  /** Records that `id` ran in a batch (refreshes LRU, not FIFO). */
  touch(id: string): void {
    this.order.touch(id);
  }

  /**
   * Picks a slot for `id`: the first empty slot, else a victim among resident ids that are neither protected
   * (in the running batch, or with a pending copy) nor pinned, adapters before base, by policy. Null = no slot.
   */
  choose(protect: ReadonlySet<string>, pinned: ReadonlySet<string>): SlotChoice | null {
    const empty = this.slots.indexOf(null);
    if (empty >= 0) return { slot: empty, evicted: null };
    const candidates = [...this.slotOfId.keys()].filter(
      (id) => !protect.has(id) && !pinned.has(id) && !this.slots[this.slotOfId.get(id)!]!.loading,
    );
    const adapters = candidates.filter((id) => id !== BASE_ADAPTER_ID);
    const victim = this.order.pickVictim(adapters) ?? (candidates.includes(BASE_ADAPTER_ID) ? BASE_ADAPTER_ID : undefined);
    if (victim === undefined) return null;
    return { slot: this.slotOfId.get(victim)!, evicted: victim };
  }

  /** Puts `id` into `slot` (evicting whatever was there); `loading` = an asynchronous copy is in flight. */
  place(id: string, slot: number, loading: boolean): void {
    const previous = this.slots[slot];
    if (previous) {
      this.slotOfId.delete(previous.id);
      this.order.remove(previous.id);
      this.evictions++;
    }
    const old = this.slotOfId.get(id);
    if (old !== undefined) this.slots[old] = null;
    this.slots[slot] = { id, loading };
    this.slotOfId.set(id, slot);
    this.order.insert(id);
  }

  markLoaded(id: string): void {
    const slot = this.slotOfId.get(id);
    if (slot !== undefined) this.slots[slot]!.loading = false;
  }

  /** Empties the slot of `id`; returns the slot number (the caller zeroes it natively). */
  remove(id: string): number | undefined {
    const slot = this.slotOfId.get(id);
    if (slot === undefined) return undefined;
    this.slots[slot] = null;
    this.slotOfId.delete(id);
    this.order.remove(id);
    return slot;
  }

  /** Snapshot for /metrics and tests: slot → id (null = empty). */
  snapshot(): Array<string | null> {
    return this.slots.map((s) => (s ? s.id : null));
  }
}
