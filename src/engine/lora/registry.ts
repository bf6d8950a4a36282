/**
 * The adapter registry (spec c.1–c.3, c.8): name → {id, path, pinned, in-flight count}, the host-tier recency
 * order used by --max-loaded-loras eviction, and the *known* names (everything loaded and not explicitly
 * unloaded) that may be reloaded implicitly. Pure bookkeeping; AdapterManager drives it.
 */
import { EvictionOrder, type EvictionPolicyName } from './eviction-policy.js';

export interface RegistryEntry {
  name: string;
  /** Unique per load (a reload of the same name gets a new id). */
  id: string;
  path: string;
  pinned: boolean;
  inFlight: number;
  /** Resolved when inFlight drops to zero after the entry left the registry. */
  drained: Promise<void>;
  resolveDrained: () => void;
  registered: boolean;
}

export class AdapterRegistry {
  private readonly entries = new Map<string, RegistryEntry>();
  private readonly known = new Map<string, { path: string; pinned: boolean }>();
  private readonly order: EvictionOrder;
  private nextId = 1;

  constructor(policy: EvictionPolicyName) {
    this.order = new EvictionOrder(policy);
  }

  newId(): string {
    return `lora-${String(this.nextId++).padStart(6, '0')}`;
  }

  get(name: string): RegistryEntry | undefined {
    return this.entries.get(name);
  }

  size(): number {
    return this.entries.size;
  }

  list(): RegistryEntry[] {
    return [...this.entries.values()];
  }

  pinnedCount(): number {
    return this.list().filter((e) => e.pinned).length;
  }

  knownPath(name: string): { path: string; pinned: boolean } | undefined {
    return this.known.get(name);
  }

  register(name: string, id: string, path: string, pinned: boolean): RegistryEntry {
    let resolveDrained!: () => void;
    const drained = new Promise<void>((resolve) => (resolveDrained = resolve));
    const entry: RegistryEntry = { name, id, path, pinned, inFlight: 0, drained, resolveDrained, registered: true };
    this.entries.set(name, entry);
    this.known.set(name, { path, pinned });
    this.order.insert(name);
    return entry;
  }

  /** Drops a known name that is not registered (evicted from the host tier); false when there was none. */
  forget(name: string): boolean {
    return !this.entries.has(name) && this.known.delete(name);
  }

  /** Removes a name from the registry (new requests can no longer take it); `forget` also drops it from known. */
  unregister(entry: RegistryEntry, forget: boolean): void {
    if (this.entries.get(entry.name) === entry) {
      this.entries.delete(entry.name);
      this.order.remove(entry.name);
    }
    entry.registered = false;
    if (forget) this.known.delete(entry.name);
    if (entry.inFlight === 0) entry.resolveDrained();
  }

  setPinned(entry: RegistryEntry, pinned: boolean): void {
    entry.pinned = pinned;
    if (this.known.has(entry.name)) this.known.set(entry.name, { path: entry.path, pinned });
  }

  acquire(entry: RegistryEntry): void {
    entry.inFlight++;
    this.order.touch(entry.name);
  }

  release(entry: RegistryEntry): void {
    entry.inFlight--;
    if (entry.inFlight === 0 && !entry.registered) entry.resolveDrained();
  }

  /**
   * The next host-tier victim: an unpinned adapter outside `protect`, preferring ones with no in-flight requests,
   * in policy order (lru: least recently requested; fifo: earliest loaded).
   */
  pickHostVictim(protect: ReadonlySet<string>): RegistryEntry | undefined {
    const candidates = this.list().filter((e) => !e.pinned && !protect.has(e.name));
    const idle = candidates.filter((e) => e.inFlight === 0);
    const pool = idle.length > 0 ? idle : candidates;
    const name = this.order.pickVictim(pool.map((e) => e.name));
    return name === undefined ? undefined : this.entries.get(name);
  }
}
