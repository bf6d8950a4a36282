/**
 * Continuous batching with chunked prefill and LoRA-aware admission (spec c.4, c.6, c.10).
 *
 * One call to step() = one admission pass plus (at most) one forward step over every running sequence: decode
 * sequences contribute one token each, prefilling sequences a chunk of their prompt within the
 * --chunked-prefill-size budget. The caller (the engine worker loop) calls step() while hasWork() and sleeps
 * until wake() otherwise.
 */
import { KvCacheManager } from '../kv/kv-cache.js';
import { BASE_ADAPTER_ID, type SlotPool, sortAdapterIds } from '../lora/slot-pool.js';
import type { EvictionPolicyName } from '../lora/eviction-policy.js';
import type { StepSequence, StepSequenceResult } from '../model/runner-types.js';
import type { SchedulerRunner } from '../runner-port.js';
import type { EngineFinish, EngineRequest, EngineStepTiming, TokenUpdate } from '../types.js';
import { canAdmitAdapter } from './admission.js';
import { DeviceAdapters } from './device-adapters.js';
import { Drainer } from './drainer.js';
import { Sequence } from './sequence.js';
import { launchedStep, lagOf, needsKnownHistory, projectAfter, type LaunchedStep, type Projection } from './lagged-step.js';
import { buildStepSequence, planStep, type PlannedChunk } from './step-builder.js';
import { applyStepResults, type ResultContext } from './step-results.js';

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
  private readonly runner: SchedulerRunner<HostAdapter>;
  private readonly now: () => number;
  private readonly drainer: Drainer;
  private readonly device: DeviceAdapters<HostAdapter>;
  private waiting: Sequence[] = [];
  private running: Sequence[] = [];
  private readonly byRid = new Map<string, Sequence>();
  private readonly pendingAborts: Array<{ seq: Sequence; message: string }> = [];
  private arrivals = 0;
  private waitingOnLoad = 0;
  /** Learned prefill cost, for holding back a prefill while a copy is about to finish (c.10). */
  private prefillMsPerToken: number | null = null;
  /** Steps skipped because a pending copy was expected to finish sooner than the prefill alone would take. */
  delayedPrefills = 0;
  /** Forward steps timed since the last takeStepTimings() (the worker posts them with the step's updates). */
  private stepTimings: EngineStepTiming[] = [];
  /** Overlap scheduling: launched steps not yet processed (oldest first, at most two, one between calls). */
  private launched: LaunchedStep[] = [];
  /** Sequences that ended while a launched step still computes their rows: KV blocks freed once it is processed. */
  private readonly deferredReleases = new Set<Sequence>();
  /** What applying a step's results needs of the scheduler (step-results.ts). */
  private readonly resultContext: ResultContext = {
    counters: this.counters,
    kv: () => this.kv,
    eosTokenIds: () => this.options.eosTokenIds,
    updateFor: (seq, updates) => this.updateFor(seq, updates),
    finishSequence: (seq) => this.finishSequence(seq),
  };
  /** Decode-only steps and their forward milliseconds since start-up (engine stats). */
  readonly decodeStepTotals = { steps: 0, forwardMs: 0 };

  constructor(runner: SchedulerRunner<HostAdapter>, options: SchedulerOptions) {
    this.runner = runner;
    this.options = options;
    this.kv = options.kv;
    this.now = options.now ?? (() => performance.now());
    this.drainer = new Drainer(options.drainThresholdMs);
    this.device = new DeviceAdapters(runner, options.numSlots, options.evictionPolicy, options.loraEnabled, this.now);
    this.device.onCopyDone = () => this.onWake();
    this.device.onCopyFailed = (id, message) => {
      for (const seq of this.waiting.filter((s) => s.adapterKey === id)) this.pendingAborts.push({ seq, message });
    };
  }

  get slots(): SlotPool {
    return this.device.slots;
  }

  /** Adapter copies into device slots since start-up. */
  get deviceLoads(): number {
    return this.device.deviceLoads;
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
    this.waiting.push(seq);
    this.byRid.set(req.rid, seq);
    return null;
  }

  /** Cancels a request wherever it is; frees its KV blocks at once. */
  abort(rid: string): boolean {
    const seq = this.byRid.get(rid);
    if (!seq) return false;
    this.finishSequence(seq);
    return true;
  }

  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0 || this.launched.length > 0;
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
    if (this.overlapSchedule) this.stepOverlapped(updates);
    else {
      const next = this.prepareStep(new Map());
      if (next) {
        const startedAt = this.now();
        const results = this.runIsolated(next.plan, next.stepSeqs, updates);
        this.finishStep(next, results, this.runner.lastForwardMs ?? this.now() - startedAt, updates);
      }
    }
    return [...updates.values()];
  }

  /** Steps launched and not yet processed (overlap scheduling; 0 otherwise). */
  get stepsInFlight(): number {
    return this.launched.length;
  }

  private get overlapSchedule(): boolean {
    return this.options.overlapSchedule === true && this.runner.launch !== undefined && this.runner.wait !== undefined;
  }

  /** Launch step N+1 (planned from where step N leaves every sequence), then wait for step N and process it. */
  private stepOverlapped(updates: Map<string, TokenUpdate>): void {
    let projections = projectAfter(this.launched[0]);
    if (this.launched.length > 0 && needsKnownHistory(this.running, projections)) {
      this.waitLaunched(updates); // synchronous fallback: this step is planned with every token known
      projections = projectAfter(undefined);
    }
    const next = this.prepareStep(projections);
    if (next) {
      this.runner.launch!(next.stepSeqs);
      this.launched.push(next);
    }
    if (this.launched.length > (next ? 1 : 0)) this.waitLaunched(updates);
  }

  /** Plans and builds the next step from `projections` (empty: from where every sequence stands now). */
  private prepareStep(projections: ReadonlyMap<Sequence, Projection>): LaunchedStep | null {
    const running = this.running.filter((seq) => !projections.get(seq)?.done);
    if (running.length === 0) return null;
    const plan = planStep(running, this.options.chunkedPrefillSize, (seq) => projections.get(seq)?.computed ?? seq.computed);
    if (plan.length === 0) return null;
    if (this.shouldWaitForPendingCopy(plan)) return null;
    for (const key of new Set(plan.map((p) => p.seq.adapterKey))) this.slots.touch(key);
    return this.buildLaunchedStep(plan, projections);
  }

  /** The StepSequences of `plan`, each from where `projections` leaves its sequence (empty: where it stands now). */
  private buildLaunchedStep(plan: PlannedChunk[], projections: ReadonlyMap<Sequence, Projection>): LaunchedStep {
    const { blockSize } = this.kv;
    const stepSeqs = plan.map((p) => buildStepSequence(p, this.slotFor(p.seq), blockSize, this.options.eosTokenIds, lagOf(p.seq, projections)));
    return launchedStep(plan, stepSeqs);
  }

  /**
   * Waits for the oldest launched step and processes it. When it failed, the steps launched after it (which read its
   * tokens) are dropped and it is run again synchronously from the now-known tokens, row by row where needed.
   */
  private waitLaunched(updates: Map<string, TokenUpdate>): void {
    let step = this.launched.shift()!;
    let results: Array<StepSequenceResult | null>;
    try {
      results = this.runner.wait!();
    } catch {
      for (const _ of this.launched.splice(0)) {
        try {
          this.runner.wait!();
        } catch {
          // dropped: its sequences are planned again from where they stand
        }
      }
      step = this.buildLaunchedStep(step.plan.filter((p) => !p.seq.finished), new Map());
      results = step.plan.length > 0 ? this.runIsolated(step.plan, step.stepSeqs, updates) : [];
    }
    this.finishStep(step, results, this.runner.lastForwardMs ?? Number.NaN, updates);
    this.releaseDeferred();
  }

  /** Counts a step that ran and applies its results. */
  private finishStep(step: LaunchedStep, results: Array<StepSequenceResult | null>, forwardMs: number, updates: Map<string, TokenUpdate>): void {
    if (step.plan.length === 0) return;
    this.learnPrefillCost(step.plan, forwardMs);
    this.recordStepTiming(step.plan, step.stepSeqs, forwardMs);
    this.counters.steps++;
    applyStepResults(this.resultContext, step.plan, results, updates);
  }

  /**
   * Runs one forward step. When it throws (a row the engine rejects, e.g. sampling values the HTTP checks let
   * through), each row is run again on its own, so that only the rows that fail are aborted (null result) and the
   * rest of the step completes. Re-running is safe: a row rewrites the same KV positions with the same values and
   * its sampling seed is fixed per step.
   */
  private runIsolated(plan: PlannedChunk[], stepSeqs: StepSequence[], updates: Map<string, TokenUpdate>): Array<StepSequenceResult | null> {
    try {
      return this.runner.step(stepSeqs);
    } catch (batchError) {
      return stepSeqs.map((stepSeq, i) => {
        try {
          if (stepSeqs.length === 1) throw batchError;
          return this.runner.step([stepSeq])[0];
        } catch (error) {
          const seq = plan[i].seq;
          const update = this.updateFor(seq, updates);
          update.finish = { type: 'abort', message: `the engine rejected this request: ${error instanceof Error ? error.message : String(error)}` };
          this.finishSequence(seq);
          return null;
        }
      });
    }
  }

  /** Timings of the steps run since the last call (oldest first). */
  takeStepTimings(): EngineStepTiming[] {
    const out = this.stepTimings;
    this.stepTimings = [];
    return out;
  }

  private recordStepTiming(plan: PlannedChunk[], stepSeqs: StepSequence[], forwardMs: number): void {
    if (!Number.isFinite(forwardMs)) return; // a runner that cannot time its forward
    const decodeOnly = plan.every((p) => p.start >= p.seq.promptLen);
    const tokens = stepSeqs.reduce((n, s) => n + s.tokenIds.length, 0);
    this.stepTimings.push({ forwardMs, decodeOnly, batch: plan.length, tokens });
    if (decodeOnly) {
      this.decodeStepTotals.steps++;
      this.decodeStepTotals.forwardMs += forwardMs;
    }
  }

  /** Aborts every request (shutdown); returns their abort updates. */
  abortAll(message: string): TokenUpdate[] {
    const out: TokenUpdate[] = [];
    for (const seq of [...this.waiting, ...this.running]) {
      out.push({ rid: seq.req.rid, tokenIds: [], finish: { type: 'abort', message } });
      this.finishSequence(seq);
    }
    return out;
  }

  stats() {
    return {
      waiting: this.waiting.length,
      running: this.running.length,
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

  private slotFor(seq: Sequence): number {
    if (seq.adapterKey === BASE_ADAPTER_ID) return -1;
    const slot = this.slots.slotOf(seq.adapterKey);
    if (slot === undefined || this.slots.state(seq.adapterKey) !== 'LOADED') {
      throw new Error(`internal: adapter ${seq.adapterKey} runs without a loaded slot`);
    }
    return slot;
  }

  private finishSequence(seq: Sequence): void {
    if (seq.finished) return;
    seq.finished = true;
    // A launched step may still write this sequence's KV blocks: they go back to the pool once it is processed.
    if (seq.alloc) {
      if (this.launched.some((step) => step.seqs.has(seq))) this.deferredReleases.add(seq);
      else this.kv.release(seq.alloc);
    }
    this.byRid.delete(seq.req.rid);
    this.waiting = this.waiting.filter((s) => s !== seq);
    this.running = this.running.filter((s) => s !== seq);
  }

  /** Adapters of the running batch and of the launched steps (their slots must not be rewritten meanwhile). */
  private runningAdapterSet(): Set<string> {
    const set = new Set(this.running.map((s) => s.adapterKey));
    for (const step of this.launched) for (const seq of step.seqs) set.add(seq.adapterKey);
    return set;
  }

  private releaseDeferred(): void {
    for (const seq of this.deferredReleases) {
      if (this.launched.some((step) => step.seqs.has(seq))) continue;
      this.deferredReleases.delete(seq);
      if (seq.alloc) this.kv.release(seq.alloc);
    }
  }

  /** Drains aborts produced asynchronously (failed copies); the worker loop forwards them. */
  takeAsyncAborts(): TokenUpdate[] {
    const out: TokenUpdate[] = [];
    for (const { seq, message } of this.pendingAborts.splice(0)) {
      if (seq.finished) continue;
      const finish: EngineFinish = { type: 'abort', message };
      out.push({ rid: seq.req.rid, tokenIds: [], finish });
      this.finishSequence(seq);
    }
    return out;
  }

  /** Admission pass (c.6): age order, skip-not-block, adapter budget, KV budget, draining. */
  private admit(): void {
    const { numSlots, overlapLoading, maxRunningRequests } = this.options;
    const inBatch = this.runningAdapterSet();
    this.drainer.prune(inBatch, new Set(this.waiting.map((s) => s.adapterKey)));
    const pending = new Set(this.slots.loadingIds());
    const needSlot = new Set<string>();
    const blockedSince = new Map<string, number>();
    let waitingOnLoad = 0;
    const admitted: Sequence[] = [];
    for (const seq of this.waiting) {
      if (this.running.length + admitted.length >= maxRunningRequests) break;
      const x = seq.adapterKey;
      if (!this.drainer.allows(seq)) continue;
      const budgetSet = overlapLoading ? new Set([...inBatch, ...pending]) : inBatch;
      if (!canAdmitAdapter(x, budgetSet, numSlots, this.pinned)) {
        if (!blockedSince.has(x)) blockedSince.set(x, seq.arrivedAtMs);
        continue;
      }
      const state = this.slots.state(x);
      if (overlapLoading && state === 'LOADING') {
        waitingOnLoad++;
        continue;
      }
      if (overlapLoading && state === 'NOT_LOADED') {
        const choice = this.slots.choose(new Set([...inBatch, ...pending, x]), this.pinned);
        if (!choice) {
          if (!blockedSince.has(x)) blockedSince.set(x, seq.arrivedAtMs);
          continue;
        }
        this.device.load(x, choice.slot, x !== BASE_ADAPTER_ID);
        if (x !== BASE_ADAPTER_ID) {
          pending.add(x);
          waitingOnLoad++;
          continue;
        }
      }
      const usePrefixCache = seq.req.logprobStartLen < 0;
      const alloc = this.kv.tryAllocate(x, seq.req.promptTokenIds, seq.budgetTokens, usePrefixCache);
      if (!alloc) continue;
      seq.alloc = alloc;
      seq.computed = alloc.cachedTokens;
      this.counters.cachedTokens += alloc.cachedTokens;
      if (seq.req.logprobStartLen >= 0) {
        seq.promptLogprobs = new Array(seq.promptLen).fill(null);
        if (seq.req.sampling.topLogprobsNum > 0) seq.promptTopLogprobs = new Array(seq.promptLen).fill(null);
      }
      admitted.push(seq);
      inBatch.add(x);
      if (!overlapLoading && this.slots.state(x) === 'NOT_LOADED') needSlot.add(x);
    }
    if (admitted.length > 0) {
      const set = new Set(admitted);
      this.waiting = this.waiting.filter((s) => !set.has(s));
      this.running.push(...admitted);
    }
    // Synchronous loading: every newly needed slot is assigned in deterministic order, protecting the batch.
    for (const id of sortAdapterIds(needSlot)) {
      const choice = this.slots.choose(inBatch, this.pinned);
      if (!choice) throw new Error(`internal: no device slot for adapter ${id} although admission allowed it`);
      this.device.load(id, choice.slot, false);
    }
    this.waitingOnLoad = waitingOnLoad;
    this.drainer.update(this.now(), this.counters.steps, blockedSince, this.running, this.pinned);
  }

  /**
   * c.10: with overlap loading, a step made only of fresh prefills is held back when a pending copy (that some
   * waiting request needs) should end sooner than this prefill would take, so that both groups prefill together
   * instead of one after the other. Never holds back decode work; a timer wakes the loop if the copy is late.
   */
  private shouldWaitForPendingCopy(plan: PlannedChunk[]): boolean {
    if (!this.options.overlapLoading || this.waitingOnLoad === 0 || this.prefillMsPerToken === null) return false;
    const soonest = this.device.soonestCopyMs();
    if (soonest === null) return false;
    if (!plan.every((p) => p.seq.inPrefill && p.start === (p.seq.alloc?.cachedTokens ?? 0))) return false;
    const prefillMs = plan.reduce((n, p) => n + p.length, 0) * this.prefillMsPerToken;
    if (!(soonest < prefillMs)) return false;
    this.delayedPrefills++;
    setTimeout(() => this.onWake(), Math.ceil(soonest) + 1).unref?.();
    return true;
  }

  private learnPrefillCost(plan: PlannedChunk[], ms: number): void {
    if (!Number.isFinite(ms)) return;
    const prefillTokens = plan.reduce((n, p) => n + (p.seq.promptLen > p.start ? p.length : 0), 0);
    if (prefillTokens < 8) return; // decode-dominated steps say little about prefill cost
    const perToken = ms / prefillTokens;
    this.prefillMsPerToken = this.prefillMsPerToken === null ? perToken : 0.7 * this.prefillMsPerToken + 0.3 * perToken;
  }
}
