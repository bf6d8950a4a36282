/**
 * The engine's side of the adapter tiers: host copies by id, pinned ids, and the device slots with their copies
 * (synchronous, or asynchronous with overlap loading, c.10). Decides nothing about admission; the scheduler
 * asks it for slot states and tells it what to load.
 */
import { BASE_ADAPTER_ID, SlotPool, sortAdapterIds } from '../lora/slot-pool.js';
import type { EvictionPolicyName } from '../lora/eviction-policy.js';
import type { SchedulerRunner } from '../runner-port.js';

export class DeviceAdapters<HostAdapter> {
  readonly slots: SlotPool;
  readonly pinned = new Set<string>();
  deviceLoads = 0;
  /** Learned duration of one asynchronous copy (null until one finished). */
  copyMsEstimate: number | null = null;
  /** Start time of each pending asynchronous copy. */
  readonly copyStartedAt = new Map<string, number>();
  /** Called when a copy finished (the engine loop may have work again). */
  onCopyDone: () => void = () => {};
  /** Called when an asynchronous copy failed; the scheduler aborts the requests that waited for it. */
  onCopyFailed: (id: string, message: string) => void = () => {};
  private readonly hostAdapters = new Map<string, HostAdapter>();
  private readonly pendingCopies = new Map<string, Promise<void>>();
  private readonly runner: SchedulerRunner<HostAdapter>;
  private readonly loraEnabled: boolean;
  private readonly now: () => number;

  constructor(runner: SchedulerRunner<HostAdapter>, numSlots: number, policy: EvictionPolicyName, loraEnabled: boolean, now: () => number) {
    this.runner = runner;
    this.slots = new SlotPool(numSlots, policy);
    this.loraEnabled = loraEnabled;
    this.now = now;
  }

  has(id: string): boolean {
    return this.hostAdapters.has(id);
  }

  add(id: string, host: HostAdapter, pinned: boolean): void {
    this.hostAdapters.set(id, host);
    if (pinned) this.pinned.add(id);
  }

  setPinned(id: string, pinned: boolean): void {
    if (!this.hostAdapters.has(id)) throw new Error(`adapter id ${id} is not loaded in the engine`);
    if (pinned) this.pinned.add(id);
    else this.pinned.delete(id);
  }

  /** Waits for a pending copy, zeroes and frees the slot, and returns the host copy for freeing. */
  async remove(id: string): Promise<HostAdapter | undefined> {
    const pending = this.pendingCopies.get(id);
    if (pending) await pending;
    const slot = this.slots.remove(id);
    if (slot !== undefined) this.runner.clearSlot(slot);
    this.pinned.delete(id);
    const host = this.hostAdapters.get(id);
    this.hostAdapters.delete(id);
    return host;
  }

  /** Copy-on-pin (c.5): a pinned adapter gets a slot as soon as one outside `protect` can be freed. */
  copyPinned(protect: ReadonlySet<string>, async: boolean): void {
    for (const id of sortAdapterIds(this.pinned)) {
      if (this.slots.state(id) !== 'NOT_LOADED') continue;
      const choice = this.slots.choose(new Set([...protect, ...this.slots.loadingIds()]), this.pinned);
      if (choice) this.load(id, choice.slot, async);
    }
  }

  /** Puts `id` into `slot`: base = a zeroed slot; adapters are copied now, or in the background when `async`. */
  load(id: string, slot: number, async: boolean): void {
    if (id === BASE_ADAPTER_ID) {
      this.slots.place(id, slot, false);
      if (this.loraEnabled) this.runner.clearSlot(slot);
      return;
    }
    const host = this.hostAdapters.get(id);
    if (host === undefined) throw new Error(`internal: adapter ${id} has no host copy`);
    this.deviceLoads++;
    if (!async) {
      this.slots.place(id, slot, false);
      this.runner.copyAdapterToSlot(slot, host);
      return;
    }
    this.slots.place(id, slot, true);
    const startedAt = this.now();
    this.copyStartedAt.set(id, startedAt);
    const copy = this.runner.copyAdapterToSlotAsync(slot, host).then(
      () => {
        if (this.slots.slotOf(id) === slot) this.slots.markLoaded(id);
        const ms = this.now() - startedAt;
        this.copyMsEstimate = this.copyMsEstimate === null ? ms : 0.7 * this.copyMsEstimate + 0.3 * ms;
      },
      (error: unknown) => {
        if (this.slots.slotOf(id) === slot) this.slots.remove(id);
        this.onCopyFailed(id, `copying adapter ${id} to the device failed: ${(error as Error)?.message ?? String(error)}`);
      },
    );
    const tracked = copy.finally(() => {
      this.pendingCopies.delete(id);
      this.copyStartedAt.delete(id);
      this.onCopyDone();
    });
    this.pendingCopies.set(id, tracked);
  }

  /** Synchronous loading: a slot for each of `ids` (deterministic order), never evicting one of `protect`. */
  loadNow(ids: ReadonlySet<string>, protect: ReadonlySet<string>): void {
    for (const id of sortAdapterIds(ids)) {
      const choice = this.slots.choose(protect, this.pinned);
      if (!choice) throw new Error(`internal: no device slot for adapter ${id} although admission allowed it`);
      this.load(id, choice.slot, false);
    }
  }

  /** Milliseconds until the soonest pending copy should finish (by the learned estimate); null = unknown. */
  soonestCopyMs(): number | null {
    if (this.copyMsEstimate === null || this.copyStartedAt.size === 0) return null;
    const now = this.now();
    let soonest = Number.POSITIVE_INFINITY;
    for (const started of this.copyStartedAt.values()) soonest = Math.min(soonest, Math.max(0, this.copyMsEstimate - (now - started)));
    return soonest;
  }
}
