/**
 * Adapter lifecycle on the server side (spec b.2–b.4, c.2–c.8): load, unload, pin, implicit reload, host-tier
 * eviction, and the per-request references that make an unload wait for in-flight requests.
 *
 * A lock per adapter name serialises the loads, unloads, pins and implicit reloads of that name; operations on
 * different names run side by side, so one slow or failing adapter cannot hold up the others. Reading an adapter (readAdapter) happens here,
 * off the engine thread; the engine worker then builds its host copy on a native worker thread.
 */
import { TsloraError } from '../../errors.js';
import type { AdapterSpec } from '../model/types.js';
import type { EvictionPolicyName } from './eviction-policy.js';
import { AdapterRegistry, type RegistryEntry } from './registry.js';

export interface AdapterEnginePort {
  loadAdapter(id: string, adapter: AdapterSpec, pinned: boolean): Promise<unknown>;
  freeAdapter(id: string): Promise<void>;
  setPinned(id: string, pinned: boolean): Promise<void>;
}

/** Reads and validates a PEFT adapter against the pool (throws TsloraErrors with the b.4 categories). */
export type AdapterReader = (path: string, name: string) => Promise<{ adapter: AdapterSpec; warnings: string[] }>;

export interface AdapterManagerOptions {
  loraEnabled: boolean;
  /** S: device slots (base included). */
  numSlots: number;
  maxLoadedLoras: number | null;
  evictionPolicy: EvictionPolicyName;
}

export interface AdapterEvents {
  onWarning?: (message: string) => void;
  onHostEviction?: (name: string) => void;
  onLoaded?: (name: string, ms: number) => void;
}

/** References taken by one request on its adapters. */
export interface AdapterLease {
  /** name → adapter id ('' names are not in here). */
  ids: Map<string, string>;
  /** Drops the reference on one adapter (its last item finished); idempotent per name. */
  releaseName(name: string): void;
  /** Drops every reference still held; idempotent. */
  release(): void;
}

export class AdapterManager {
  readonly registry: AdapterRegistry;
  private readonly engine: AdapterEnginePort;
  private readonly read: AdapterReader;
  private readonly options: AdapterManagerOptions;
  private readonly events: AdapterEvents;
  private readonly locks = new Map<string, Promise<unknown>>();
  hostEvictions = 0;
  loads = 0;

  constructor(engine: AdapterEnginePort, read: AdapterReader, options: AdapterManagerOptions, events: AdapterEvents = {}) {
    this.engine = engine;
    this.read = read;
    this.options = options;
    this.events = events;
    this.registry = new AdapterRegistry(options.evictionPolicy);
  }

  loadedAdapters(): Record<string, string> {
    return Object.fromEntries(this.registry.list().map((e) => [e.name, e.path]));
  }

  pinnedAdapters(): string[] {
    return this.registry.list().filter((e) => e.pinned).map((e) => e.name);
  }

  private exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.locks.get(name) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }

  private requireLora(): void {
    if (!this.options.loraEnabled) {
      throw new TsloraError('lora_disabled', 'LoRA is not enabled; start the server with --enable-lora (and --lora-paths, or --max-lora-rank and --lora-target-modules).');
    }
  }

  private checkPinLimit(name: string): void {
    const limit = this.options.numSlots - 1;
    const pinned = this.registry.pinnedCount();
    if (pinned + 1 > limit) {
      throw new TsloraError(
        'pinned_limit',
        `cannot pin '${name}': ${pinned} of ${this.options.numSlots} slots are already pinned; pinning every slot would starve base and unpinned requests.`,
        { hint: 'Raise --max-loras-per-batch or load it unpinned.' },
      );
    }
  }

  /** POST /load_lora_adapter. `replace` = vLLM load_inplace (atomic unload + load, new id). */
  load(name: string, path: string, pinned: boolean, replace = false): Promise<{ warnings: string[] }> {
    this.requireLora();
    return this.exclusive(name, () => this.loadLocked(name, path, pinned, replace, new Set()));
  }

  private async loadLocked(name: string, path: string, pinned: boolean, replace: boolean, protect: ReadonlySet<string>) {
    const existing = this.registry.get(name);
    if (existing && !replace) {
      throw new TsloraError('already_loaded', `adapter '${name}' is already loaded (path ${existing.path}); unload it first or choose another name.`);
    }
    if (pinned && !(existing?.pinned ?? false)) this.checkPinLimit(name);
    const cap = this.options.maxLoadedLoras;
    if (!existing && cap !== null && this.registry.size() >= cap && !this.registry.pickHostVictim(new Set([...protect, name]))) {
      const pinned = this.registry.pinnedCount();
      const why =
        pinned === this.registry.size()
          ? `all ${pinned} loaded adapters are pinned`
          : `the ${this.registry.size()} loaded adapters are pinned (${pinned}) or needed by the same request`;
      throw new TsloraError('capacity', `cannot load '${name}': ${why} and --max-loaded-loras is ${cap}; unpin or unload one, or raise --max-loaded-loras.`, { param: 'lora_path' });
    }
    const started = performance.now();
    const { adapter, warnings } = await this.read(path, name);
    const samePath = this.registry.list().find((e) => e.path === path && e.name !== name);
    if (samePath) warnings.push(`adapter path ${path} is also loaded as '${samePath.name}'.`);
    const id = this.registry.newId();
    await this.engine.loadAdapter(id, adapter, pinned);
    this.loads++;
    if (existing) {
      this.registry.unregister(existing, false);
      void this.freeWhenDrained(existing);
    }
    this.registry.register(name, id, path, pinned);
    this.events.onLoaded?.(name, performance.now() - started);
    for (const w of warnings) this.events.onWarning?.(w);
    this.evictOverCap(new Set([...protect, name]));
    return { warnings };
  }

  /** c.3: while over the cap, unregister unpinned adapters now and free each when its requests finish. */
  private evictOverCap(protect: ReadonlySet<string>): void {
    const cap = this.options.maxLoadedLoras;
    if (cap === null) return;
    while (this.registry.size() > cap) {
      const victim = this.registry.pickHostVictim(protect);
      if (!victim) break;
      this.registry.unregister(victim, false);
      this.hostEvictions++;
      this.events.onHostEviction?.(victim.name);
      void this.freeWhenDrained(victim);
    }
  }

  private async freeWhenDrained(entry: RegistryEntry): Promise<void> {
    await entry.drained;
    await this.engine.freeAdapter(entry.id).catch(() => undefined);
  }

  /**
   * POST /unload_lora_adapter: unregister at once, wait for in-flight requests, then free slot and host copy. A
   * name the host-tier cap evicted is only known (it would reload on its next request): unloading forgets it.
   */
  unload(name: string): Promise<void> {
    this.requireLora();
    return this.exclusive(name, async () => {
      const entry = this.registry.get(name);
      if (!entry && this.registry.forget(name)) return;
      if (!entry) throw this.notLoaded(name);
      this.registry.unregister(entry, true);
      await entry.drained;
      await this.engine.freeAdapter(entry.id);
    });
  }

  /** POST /pin_lora_adapter (tslora extension): flips the flag in place, copy-on-pin in the engine. */
  setPinned(name: string, pinned: boolean): Promise<void> {
    this.requireLora();
    return this.exclusive(name, async () => {
      const entry = this.registry.get(name);
      if (!entry) throw this.notLoaded(name);
      if (entry.pinned === pinned) return;
      if (pinned) this.checkPinLimit(name);
      await this.engine.setPinned(entry.id, pinned);
      this.registry.setPinned(entry, pinned);
    });
  }

  notLoaded(name: string): TsloraError {
    const loaded = this.registry.list().map((e) => e.name);
    return new TsloraError(
      'not_loaded',
      `adapter '${name}' is not loaded. Loaded adapters: ${loaded.length ? loaded.join(', ') : '(none)'}.`,
      { hint: "Load it with POST /load_lora_adapter or 'tslora adapter load'.", param: 'lora_path' },
    );
  }

  /**
   * Resolves a request's adapter names (b.2) and takes a reference on each, all or nothing. Names evicted by the
   * host-tier cap are reloaded first (c.8). Null/empty names mean the base model.
   */
  async acquire(names: ReadonlyArray<string | null>, param = 'lora_path'): Promise<AdapterLease> {
    const distinct = [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
    if (distinct.length === 0) return { ids: new Map(), releaseName: () => {}, release: () => {} };
    if (!this.options.loraEnabled) {
      throw new TsloraError(
        'lora_disabled',
        `LoRA adapter '${distinct[0]}' was requested but LoRA is not enabled; start the server with --enable-lora (and --lora-paths, or load adapters at run time).`,
        { param },
      );
    }
    const cap = this.options.maxLoadedLoras;
    if (cap !== null && distinct.length > cap) {
      throw new TsloraError('invalid_request', `the request names ${distinct.length} distinct adapters but at most ${cap} can be loaded at once (--max-loaded-loras).`, { param });
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const missing = distinct.filter((n) => !this.registry.get(n));
      for (const name of missing) {
        if (!this.registry.knownPath(name)) throw this.notLoaded(name);
      }
      if (missing.length > 0) await this.reload(missing, new Set(distinct));
      const entries = distinct.map((n) => this.registry.get(n));
      if (entries.every((e): e is RegistryEntry => e !== undefined)) {
        for (const e of entries) this.registry.acquire(e);
        const held = new Map(entries.map((e) => [e.name, e]));
        const releaseName = (name: string) => {
          const e = held.get(name);
          if (!e) return;
          held.delete(name);
          this.registry.release(e);
        };
        return {
          ids: new Map(entries.map((e) => [e.name, e.id])),
          releaseName,
          release: () => {
            for (const name of [...held.keys()]) releaseName(name);
          },
        };
      }
    }
    throw new TsloraError('capacity', `could not keep the adapters ${distinct.join(', ')} loaded together; raise --max-loaded-loras.`, { param });
  }

  private async reload(names: string[], protect: ReadonlySet<string>): Promise<void> {
    for (const name of names) {
      await this.exclusive(name, async () => {
        if (this.registry.get(name)) return;
        const known = this.registry.knownPath(name);
        if (!known) throw this.notLoaded(name);
        await this.loadLocked(name, known.path, known.pinned, false, protect);
      });
    }
  }
}
