/**
 * The engine inside its worker thread: owns the runner (native model) and the scheduler, runs the step loop, and
 * answers the facade's messages between steps. The loop yields to the event loop after every step, so aborts,
 * new requests and adapter operations are handled with at most one step of delay.
 */
import { toTsloraError } from '../../errors.js';
import { KvCacheManager } from '../kv/kv-cache.js';
import { Scheduler } from '../scheduler/scheduler.js';
import type { EngineStats, TokenUpdate } from '../types.js';
import { createEngineRunner, type EngineRunner, type HostAdapterHandle } from './runner-factory.js';
import type { EngineInfo, EngineInit, FromWorker, ToWorker, WireError } from './messages.js';

/** How often a loop with waiting but unrunnable work re-checks on its own. */
const IDLE_RECHECK_MS = 20;

export function wireError(error: unknown): WireError {
  const e = toTsloraError(error);
  return { code: e.code, message: e.message, hint: e.hint };
}

export class EngineCore {
  private readonly post: (msg: FromWorker) => void;
  private runner: EngineRunner | null = null;
  private scheduler: Scheduler<HostAdapterHandle> | null = null;
  private info: EngineInfo | null = null;
  private wake: (() => void) | null = null;
  private closed = false;

  constructor(post: (msg: FromWorker) => void) {
    this.post = post;
  }

  async handle(msg: ToWorker): Promise<void> {
    switch (msg.type) {
      case 'init':
        return this.init(msg.init);
      case 'submit': {
        const immediate = this.scheduler!.submit(msg.req);
        if (immediate) this.post({ type: 'updates', updates: [immediate] });
        this.kick();
        return;
      }
      case 'abort':
        this.scheduler?.abort(msg.rid);
        return;
      case 'loadAdapter':
        return this.op(msg.opId, async () => {
          const host = await this.runner!.loadHostAdapter(msg.adapter);
          this.scheduler!.addAdapter(msg.id, host, msg.pinned);
          this.kick();
          return { sizeBytes: this.runner!.hostAdapterSizeBytes(host) };
        });
      case 'freeAdapter':
        return this.op(msg.opId, async () => {
          const host = await this.scheduler!.removeAdapter(msg.id);
          if (host !== undefined) this.runner!.freeHostAdapter(host);
          return null;
        });
      case 'setPinned':
        return this.op(msg.opId, async () => {
          this.scheduler!.setPinned(msg.id, msg.pinned);
          this.kick();
          return null;
        });
      case 'stats':
        return this.op(msg.opId, async () => this.stats());
      case 'shutdown':
        return this.op(msg.opId, async () => {
          this.closed = true;
          const aborts = this.scheduler?.abortAll('the server is shutting down') ?? [];
          if (aborts.length) this.post({ type: 'updates', updates: aborts });
          this.kick();
          this.runner?.destroy();
          this.runner = null;
          return null;
        });
    }
  }

  private async op(opId: number, fn: () => Promise<unknown>): Promise<void> {
    try {
      const result = await fn();
      this.post({ type: 'opDone', opId, result });
    } catch (error) {
      this.post({ type: 'opDone', opId, error: wireError(error) });
    }
  }

  private async init(init: EngineInit): Promise<void> {
    try {
      const { runner, info } = await createEngineRunner(init);
      this.runner = runner;
      this.info = info;
      const kv = new KvCacheManager(info.kvNumBlocks, info.kvBlockSize, !init.disablePrefixCache);
      this.scheduler = new Scheduler<HostAdapterHandle>(runner, {
        numSlots: init.lora.enabled ? init.lora.slots : 1,
        loraEnabled: init.lora.enabled,
        evictionPolicy: init.lora.evictionPolicy,
        maxRunningRequests: info.maxRunningRequests,
        chunkedPrefillSize: init.chunkedPrefillSize,
        overlapLoading: init.lora.enabled && init.lora.overlapLoading,
        overlapSchedule: init.overlapSchedule,
        drainThresholdMs: init.lora.drainThresholdMs,
        eosTokenIds: init.eosTokenIds,
        kv,
      });
      this.scheduler.onWake = () => this.kick();
      this.post({ type: 'ready', info });
      void this.loop();
    } catch (error) {
      this.post({ type: 'initFailed', error: wireError(error) });
    }
  }

  private kick(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async loop(): Promise<void> {
    const scheduler = this.scheduler!;
    while (!this.closed) {
      let ran = false;
      if (scheduler.hasWork() || scheduler.stats().pinned.length > 0) {
        const before = scheduler.counters.steps;
        let updates: TokenUpdate[];
        try {
          updates = scheduler.step();
        } catch (error) {
          // A failed forward step fails the requests in it, not the server.
          updates = scheduler.abortAll(`engine step failed: ${wireError(error).message}`);
        }
        updates.push(...scheduler.takeAsyncAborts());
        const steps = scheduler.takeStepTimings();
        if (updates.length > 0 || steps.length > 0) this.post({ type: 'updates', updates, steps });
        // A step left in flight (overlap scheduling) is progress too: the next turn waits for it.
        ran = scheduler.counters.steps !== before || scheduler.stepsInFlight > 0;
      }
      if (ran) await new Promise<void>((resolve) => setImmediate(resolve));
      else if (scheduler.hasWork()) {
        // Work that cannot run yet (pending copies, KV full, time-based draining): wake on news or shortly.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, IDLE_RECHECK_MS);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      } else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private stats(): EngineStats {
    const s = this.scheduler!;
    const st = s.stats();
    return {
      waiting: st.waiting,
      running: st.running,
      waitingOnAdapterLoad: st.waitingOnAdapterLoad,
      slotsUsed: s.slots.usedSlots(),
      slotsTotal: s.slots.numSlots,
      slotIds: s.slots.snapshot(),
      slotLoadingIds: s.slots.loadingIds(),
      kvBlocksTotal: s.kv.pool.numBlocks,
      kvBlocksUsed: s.kv.pool.usedBlocks(),
      kvBlockSize: s.kv.blockSize,
      prefixCacheHitRate: s.kv.hitRate(),
      deviceLoads: s.deviceLoads,
      deviceEvictions: s.slots.evictions,
      promptTokensTotal: s.counters.promptTokens,
      generatedTokensTotal: s.counters.generatedTokens,
      cachedTokensTotal: s.counters.cachedTokens,
      steps: s.counters.steps,
      delayedPrefills: s.delayedPrefills,
      hostAdapterBytes: this.runner!.memoryReport().hostAdapterBytes,
      maxRunningRequests: this.info!.maxRunningRequests,
      decodeSteps: s.decodeStepTotals.steps,
      decodeStepMsTotal: s.decodeStepTotals.forwardMs,
    };
  }
}
