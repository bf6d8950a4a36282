/**
 * Continuous batching with chunked prefill and LoRA-aware admission (spec c.4, c.6, c.10).
 *
 * One call to step() = one admission pass plus (at most) one forward step over every running sequence: decode
 * sequences contribute one token each, prefilling sequences a chunk of their prompt within the
 * --chunked-prefill-size budget. The caller (the engine worker loop) calls step() while hasWork() and sleeps
 * until wake() otherwise. The parts: request-queues.ts (waiting / running), admission-pass.ts (who enters),
 * device-adapters.ts (adapter copies into slots), forward-steps.ts (forming, running and applying steps).
 */
import { KvCacheManager } from '../kv/kv-cache.js';
import { BASE_ADAPTER_ID, type SlotPool } from '../lora/slot-pool.js';
import type { EvictionPolicyName } from '../lora/eviction-policy.js';
import type { SchedulerRunner } from '../runner-port.js';
import type { EngineRequest, EngineStepTiming, TokenUpdate } from '../types.js';
import { admitWaiting } from './admission-pass.js';
import { DeviceAdapters } from './device-adapters.js';
import { Drainer } from './drainer.js';
import { ForwardSteps } from './forward-steps.js';
import { RequestQueues } from './request-queues.js';
import { Sequence } from './sequence.js';
import type { ResultContext } from './step-results.js';

export interface SchedulerOptions {
  /** Device slots S; 1 when LoRA is off (base only). */
  numSlots: number;
  loraEnabled: boolean;
  evictionPolicy: EvictionPolicyName;
  maxRunningRequests: number;
  /** Prompt tokens per step; -1 = no chunking. */
  chunkedPrefillSize: number;
  overlapLoading: boolean;
  /** Launch each step before processing the previous one's results (needs runner.launch / wait); default off. */
  overlapSchedule?: boolean;
  drainThresholdMs: number;
  eosTokenIds: number[];
  kv: KvCacheManager;
  now?: () => number;
}

export interface SchedulerCounters {
  steps: number;
  promptTokens: number;
  generatedTokens: number;
  cachedTokens: number;
}

export class Scheduler<HostAdapter = unknown> {
  readonly kv: KvCacheManager;
  readonly counters: SchedulerCounters = { steps: 0, promptTokens: 0, generatedTokens: 0, cachedTokens: 0 };
  /** Called when something outside step() made progress possible (an asynchronous copy finished). */
  onWake: () => void = () => {};
  private readonly options: SchedulerOptions;
  private readonly now: () => number;
  private readonly drainer: Drainer;
  private readonly device: DeviceAdapters<HostAdapter>;
  private readonly requests: RequestQueues;
  private readonly steps: ForwardSteps<HostAdapter>;
  private arrivals = 0;
  private waitingOnLoad = 0;

  constructor(runner: SchedulerRunner<HostAdapter>, options: SchedulerOptions) {
    this.options = options;
    this.kv = options.kv;
    this.now = options.now ?? (() => performance.now());
    this.drainer = new Drainer(options.drainThresholdMs);
    this.device = new DeviceAdapters(runner, options.numSlots, options.evictionPolicy, options.loraEnabled, this.now);
    this.device.onCopyDone = () => this.onWake();
    this.device.onCopyFailed = (id, message) => this.requests.abortWaitingFor(id, message);
    this.requests = new RequestQueues((seq) => this.steps.overlap.release(seq)); // a launched step may still write its KV
    // What applying a step's results needs of the scheduler (step-results.ts).
    const results: ResultContext = {
      counters: this.counters,
      kv: () => this.kv,
      eosTokenIds: () => this.options.eosTokenIds,
      updateFor: (seq, updates) => this.updateFor(seq, updates),
      finishSequence: (seq) => this.requests.finish(seq),
    };
    this.steps = new ForwardSteps({
      runner, kv: this.kv, device: this.device, options, counters: this.counters, results, now: this.now,
      running: () => this.requests.running,
      waitingOnLoad: () => this.waitingOnLoad,
      onWake: () => this.onWake(),
    });
  }

  get slots(): SlotPool {
    return this.device.slots;
  }

  /** Adapter copies into device slots since start-up. */
  get deviceLoads(): number {
    return this.device.deviceLoads;
  }

  /** Steps skipped because a pending copy was expected to finish sooner than the prefill alone would take. */
  get delayedPrefills(): number {
    return this.steps.delayedPrefills;
  }

  /** Decode-only steps and their forward milliseconds since start-up (engine stats). */
  get decodeStepTotals(): { readonly steps: number; readonly forwardMs: number } {
    return this.steps.costs.decodeStepTotals;
  }

  /** Steps launched and not yet processed (overlap scheduling; 0 otherwise). */
  get stepsInFlight(): number {
    return this.steps.overlap.inFlight;
  }

  private get pinned(): ReadonlySet<string> {
    return this.device.pinned;
  }

  // ---- requests ---------------------------------------------------------------------------------------------

  /** Queues a request; returns an immediate abort update when it can never run. */
  submit(req: EngineRequest): TokenUpdate | null {
    const key = req.adapterId ?? BASE_ADAPTER_ID;
    if (req.adapterId !== null && !this.device.has(req.adapterId)) {
      return { rid: req.rid, tokenIds: [], finish: { type: 'abort', message: `adapter id ${req.adapterId} is not loaded in the engine` } };
    }
    const seq = new Sequence(req, key, this.arrivals++, this.now());
    if (!this.kv.fitsEver(seq.budgetTokens)) {
      const capacity = this.kv.pool.numBlocks * this.kv.blockSize;
      return {
        rid: req.rid,
        tokenIds: [],
        finish: { type: 'abort', message: `the request needs ${seq.budgetTokens} KV positions but the whole cache holds ${capacity}; lower max_new_tokens or the prompt length` },
      };
    }
    this.requests.enqueue(seq);
    return null;
  }

  /** Cancels a request wherever it is; frees its KV blocks at once. */
  abort(rid: string): boolean {
    const seq = this.requests.get(rid);
    if (!seq) return false;
    this.requests.finish(seq);
    return true;
  }

  hasWork(): boolean {
    return this.requests.waiting.length > 0 || this.requests.running.length > 0 || this.steps.overlap.inFlight > 0;
  }

  /** Aborts every request (shutdown); returns their abort updates. */
  abortAll(message: string): TokenUpdate[] {
    return this.requests.abortAll(message);
  }

  /** Drains aborts produced asynchronously (failed copies); the worker loop forwards them. */
  takeAsyncAborts(): TokenUpdate[] {
    return this.requests.takeAsyncAborts();
  }

  // ---- adapters ---------------------------------------------------------------------------------------------

  addAdapter(id: string, host: HostAdapter, pinned: boolean): void {
    this.device.add(id, host, pinned);
  }

  setPinned(id: string, pinned: boolean): void {
    this.device.setPinned(id, pinned);
  }

  isPinned(id: string): boolean {
    return this.pinned.has(id);
  }

  /**
   * Takes an adapter out of the engine (the server guarantees no request references it any more): waits for a
   * pending copy, zeroes and frees its slot, and hands the host copy back for freeing.
   */
  removeAdapter(id: string): Promise<HostAdapter | undefined> {
    return this.device.remove(id);
  }

  // ---- stepping ---------------------------------------------------------------------------------------------

  /**
   * One admission pass and one forward step. Returns the updates to stream (empty when nothing could run). With
   * overlap scheduling the step planned here is launched before the previous one's results are processed: the
   * updates returned are the previous step's, and the new one stays in flight (stepsInFlight) until the next call.
   */
  step(): TokenUpdate[] {
    this.device.copyPinned(this.runningAdapterSet(), this.options.overlapLoading);
    const updates = new Map<string, TokenUpdate>();
    this.admit();
    this.steps.run(updates);
    return [...updates.values()];
  }

  /** Timings of the steps run since the last call (oldest first). */
  takeStepTimings(): EngineStepTiming[] {
    return this.steps.costs.take();
  }

  stats() {
    return {
      waiting: this.requests.waiting.length,
      running: this.requests.running.length,
      waitingOnAdapterLoad: this.waitingOnLoad,
      pinned: [...this.pinned],
      draining: this.drainer.drainingAdapters(),
    };
  }

  // ---- internals --------------------------------------------------------------------------------------------

  private updateFor(seq: Sequence, updates: Map<string, TokenUpdate>): TokenUpdate {
    let update = updates.get(seq.req.rid);
    if (!update) {
      update = { rid: seq.req.rid, tokenIds: [] };
      if (!seq.announced) {
        update.cachedTokens = seq.alloc?.cachedTokens ?? 0;
        seq.announced = true;
      }
      updates.set(seq.req.rid, update);
    }
    return update;
  }

  /** Adapters of the running batch and of the launched steps (their slots must not be rewritten meanwhile). */
  private runningAdapterSet(): Set<string> {
    const set = new Set(this.requests.running.map((s) => s.adapterKey));
    this.steps.overlap.addAdapters(set);
    return set;
  }

  /** Admission pass (c.6, admission-pass.ts); with synchronous loading the admitted adapters get their slots now. */
  private admit(): void {
    const inBatch = this.runningAdapterSet();
    const { numSlots, overlapLoading, maxRunningRequests } = this.options;
    const { admitted, needSlot, blockedSince, waitingOnLoad } = admitWaiting({
      waiting: this.requests.waiting, runningCount: this.requests.running.length, inBatch, numSlots, overlapLoading,
      maxRunningRequests, device: this.device, drainer: this.drainer, kv: this.kv, counters: this.counters,
    });
    this.requests.start(admitted);
    this.device.loadNow(needSlot, inBatch);
    this.waitingOnLoad = waitingOnLoad;
    this.drainer.update(this.now(), this.counters.steps, blockedSince, this.requests.running, this.pinned);
  }
}
