/**
 * Continuous batching with chunked prefill and LoRA-aware admission (spec c.4, c.6, c.10).
 *
 * One call to step() = one admission pass plus (at most) one forward step over every running sequence: decode
 * sequences contribute one token each, prefilling sequences a chunk of their prompt within the
 * --chunked-prefill-size budget. The caller (the engine worker loop) calls step() while hasWork() and sleeps
 * until wake() otherwise.
 */
import { KvCacheManager } from '../kv/kv-cache.js';
import { BASE_ADAPTER_ID, SlotPool, sortAdapterIds } from '../lora/slot-pool.js';
import type { EvictionPolicyName } from '../lora/eviction-policy.js';
import type { StepSequence } from '../model/runner-types.js';
import type { SchedulerRunner } from '../runner-port.js';
import type { EngineFinish, EngineRequest, TokenUpdate } from '../types.js';
import { canAdmitAdapter } from './admission.js';
import { Drainer } from './drainer.js';
import { Sequence } from './sequence.js';
import { buildStepSequence, type PlannedChunk } from './step-builder.js';

export interface SchedulerOptions {
  /** Device slots S; 1 when LoRA is off (base only). */
  numSlots: number;
  loraEnabled: boolean;
  evictionPolicy: EvictionPolicyName;
  maxRunningRequests: number;
  /** Prompt tokens per step; -1 = no chunking. */
  chunkedPrefillSize: number;
  overlapLoading: boolean;
  drainThresholdMs: number;
  eosTokenIds: number[];
  kv: KvCacheManager;
  now?: () => number;
}

export interface SchedulerCounters {
  steps: number;
  deviceLoads: number;
  promptTokens: number;
  generatedTokens: number;
  cachedTokens: number;
}

export class Scheduler<HostAdapter = unknown> {
  readonly slots: SlotPool;
  readonly kv: KvCacheManager;
  readonly counters: SchedulerCounters = { steps: 0, deviceLoads: 0, promptTokens: 0, generatedTokens: 0, cachedTokens: 0 };
  /** Called when something outside step() made progress possible (an asynchronous copy finished). */
  onWake: () => void = () => {};
  private readonly options: SchedulerOptions;
  private readonly runner: SchedulerRunner<HostAdapter>;
  private readonly now: () => number;
  private readonly drainer: Drainer;
  private waiting: Sequence[] = [];
  private running: Sequence[] = [];
  private readonly byRid = new Map<string, Sequence>();
  private readonly hostAdapters = new Map<string, HostAdapter>();
  private readonly pinned = new Set<string>();
  private readonly pendingCopies = new Map<string, Promise<void>>();
  private arrivals = 0;
  private waitingOnLoad = 0;
  // Overlap loading: running estimates of one adapter copy and of prefill cost, for the delay rule below.
  private readonly copyStartedAt = new Map<string, number>();
  private copyMsEstimate: number | null = null;
  private prefillMsPerToken: number | null = null;
  /** Steps skipped because a pending copy was expected to finish sooner than the prefill alone would take. */
  delayedPrefills = 0;

  constructor(runner: SchedulerRunner<HostAdapter>, options: SchedulerOptions) {
    this.runner = runner;
    this.options = options;
    this.kv = options.kv;
    this.now = options.now ?? (() => performance.now());
    this.slots = new SlotPool(options.numSlots, options.evictionPolicy);
    this.drainer = new Drainer(options.drainThresholdMs);
  }

  // ---- requests ---------------------------------------------------------------------------------------------

  /** Queues a request; returns an immediate abort update when it can never run. */
  submit(req: EngineRequest): TokenUpdate | null {
    const key = req.adapterId ?? BASE_ADAPTER_ID;
    if (req.adapterId !== null && !this.hostAdapters.has(req.adapterId)) {
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
    return this.waiting.length > 0 || this.running.length > 0;
  }

  // ---- adapters ---------------------------------------------------------------------------------------------

  addAdapter(id: string, host: HostAdapter, pinned: boolean): void {
    this.hostAdapters.set(id, host);
    if (pinned) this.pinned.add(id);
  }

  setPinned(id: string, pinned: boolean): void {
    if (!this.hostAdapters.has(id)) throw new Error(`adapter id ${id} is not loaded in the engine`);
    if (pinned) this.pinned.add(id);
    else this.pinned.delete(id);
  }

  isPinned(id: string): boolean {
    return this.pinned.has(id);
  }

  /**
   * Takes an adapter out of the engine (the server guarantees no request references it any more): waits for a
   * pending copy, zeroes and frees its slot, and hands the host copy back for freeing.
   */
  async removeAdapter(id: string): Promise<HostAdapter | undefined> {
    const pending = this.pendingCopies.get(id);
    if (pending) await pending;
    const slot = this.slots.remove(id);
    if (slot !== undefined) this.runner.clearSlot(slot);
    this.pinned.delete(id);
    const host = this.hostAdapters.get(id);
    this.hostAdapters.delete(id);
    return host;
  }

  // ---- stepping ---------------------------------------------------------------------------------------------

  /** One admission pass and one forward step. Returns the updates to stream (empty when nothing could run). */
  step(): TokenUpdate[] {
    this.copyPinnedAdapters();
    const updates = new Map<string, TokenUpdate>();
    this.admit();
    if (this.running.length === 0) return [];
    const plan = this.planStep();
    if (plan.length === 0) return [];
    if (this.shouldWaitForPendingCopy(plan)) return [];
    for (const key of new Set(plan.map((p) => p.seq.adapterKey))) this.slots.touch(key);
    const stepSeqs: StepSequence[] = plan.map((p) => buildStepSequence(p, this.slotFor(p.seq), this.kv.blockSize));
    const startedAt = this.now();
    const results = this.runner.step(stepSeqs);
    this.learnPrefillCost(plan, this.now() - startedAt);
    this.counters.steps++;
    for (let i = 0; i < plan.length; i++) {
      const { seq, start, length } = plan[i];
      const result = results[i];
      const update = this.updateFor(seq, updates);
      seq.computed = start + length;
      if (start < seq.promptLen) {
        this.counters.promptTokens += Math.min(length, seq.promptLen - start);
        if (seq.alloc) this.kv.registerComputed(seq.alloc, Math.min(seq.computed, seq.promptLen));
        if (plan[i].promptLogprobs) this.collectPromptLogprobs(seq, start, length, result.promptLogprobs);
      }
      if (result.tokenId < 0) continue;
      seq.outputIds.push(result.tokenId);
      this.counters.generatedTokens++;
      update.tokenIds.push(result.tokenId);
      if (seq.req.sampling.returnLogprob) {
        (update.logprobs ??= []).push(result.logprob);
        if (seq.req.sampling.topLogprobsNum > 0) (update.topLogprobs ??= []).push(result.topLogprobs ?? []);
      }
      if (seq.promptLogprobs && !seq.promptLogprobsSent) {
        update.promptLogprobStart = Math.max(0, seq.req.logprobStartLen);
        update.promptLogprobs = seq.promptLogprobs.slice(update.promptLogprobStart);
        seq.promptLogprobsSent = true;
      }
      const finish = seq.finishAfter(result.tokenId, this.options.eosTokenIds);
      if (finish) {
        update.finish = finish;
        this.finishSequence(seq);
      }
    }
    return [...updates.values()];
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
    if (seq.alloc) this.kv.release(seq.alloc);
    this.byRid.delete(seq.req.rid);
    this.waiting = this.waiting.filter((s) => s !== seq);
    this.running = this.running.filter((s) => s !== seq);
  }

  private runningAdapterSet(): Set<string> {
    return new Set(this.running.map((s) => s.adapterKey));
  }

  /** Copy-on-pin (c.5): a pinned adapter gets its slot as soon as one can be freed. */
  private copyPinnedAdapters(): void {
    for (const id of sortAdapterIds(this.pinned)) {
      if (this.slots.state(id) !== 'NOT_LOADED') continue;
      const protect = new Set([...this.runningAdapterSet(), ...this.slots.loadingIds()]);
      const choice = this.slots.choose(protect, this.pinned);
      if (!choice) continue;
      this.loadIntoSlot(id, choice.slot, this.options.overlapLoading);
    }
  }

  private loadIntoSlot(id: string, slot: number, async: boolean): void {
    if (id === BASE_ADAPTER_ID) {
      this.slots.place(id, slot, false);
      if (this.options.loraEnabled) this.runner.clearSlot(slot);
      return;
    }
    const host = this.hostAdapters.get(id);
    if (host === undefined) throw new Error(`internal: adapter ${id} has no host copy`);
    this.counters.deviceLoads++;
    if (!async) {
      this.slots.place(id, slot, false);
      this.runner.copyAdapterToSlot(slot, host);
      return;
    }
    this.slots.place(id, slot, true);
    const copyStart = this.now();
    this.copyStartedAt.set(id, copyStart);
    const copy = this.runner.copyAdapterToSlotAsync(slot, host).then(
      () => {
        if (this.slots.slotOf(id) === slot) this.slots.markLoaded(id);
        const ms = this.now() - copyStart;
        this.copyMsEstimate = this.copyMsEstimate === null ? ms : 0.7 * this.copyMsEstimate + 0.3 * ms;
      },
      (error: unknown) => {
        if (this.slots.slotOf(id) === slot) this.slots.remove(id);
        const message = `copying adapter ${id} to the device failed: ${(error as Error)?.message ?? String(error)}`;
        for (const seq of this.waiting.filter((s) => s.adapterKey === id)) this.pendingAborts.push({ seq, message });
      },
    );
    const tracked = copy.finally(() => {
      this.pendingCopies.delete(id);
      this.copyStartedAt.delete(id);
      this.onWake();
    });
    this.pendingCopies.set(id, tracked);
  }

  private readonly pendingAborts: Array<{ seq: Sequence; message: string }> = [];

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
        this.loadIntoSlot(x, choice.slot, x !== BASE_ADAPTER_ID);
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
      if (seq.req.logprobStartLen >= 0) seq.promptLogprobs = new Array(seq.promptLen).fill(null);
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
      this.loadIntoSlot(id, choice.slot, false);
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
    if (!this.options.overlapLoading || this.waitingOnLoad === 0 || this.copyStartedAt.size === 0) return false;
    if (this.copyMsEstimate === null || this.prefillMsPerToken === null) return false;
    if (!plan.every((p) => p.seq.inPrefill && p.start === (p.seq.alloc?.cachedTokens ?? 0))) return false;
    const now = this.now();
    let soonest = Number.POSITIVE_INFINITY;
    for (const started of this.copyStartedAt.values()) soonest = Math.min(soonest, Math.max(0, this.copyMsEstimate - (now - started)));
    const prefillMs = plan.reduce((n, p) => n + p.length, 0) * this.prefillMsPerToken;
    if (!(soonest < prefillMs)) return false;
    this.delayedPrefills++;
    setTimeout(() => this.onWake(), Math.ceil(soonest) + 1).unref?.();
    return true;
  }

  private learnPrefillCost(plan: PlannedChunk[], ms: number): void {
    const prefillTokens = plan.reduce((n, p) => n + (p.seq.promptLen > p.start ? p.length : 0), 0);
    if (prefillTokens < 8) return; // decode-dominated steps say little about prefill cost
    const perToken = ms / prefillTokens;
    this.prefillMsPerToken = this.prefillMsPerToken === null ? perToken : 0.7 * this.prefillMsPerToken + 0.3 * perToken;
  }

  /** Decode tokens for every decoding sequence, then prompt chunks within the prefill budget (age order). */
  private planStep(): PlannedChunk[] {
    const plan: PlannedChunk[] = [];
    let prefillBudget = this.options.chunkedPrefillSize > 0 ? this.options.chunkedPrefillSize : Number.POSITIVE_INFINITY;
    for (const seq of this.running) {
      if (!seq.inPrefill) plan.push({ seq, start: seq.computed, length: 1, promptLogprobs: false });
    }
    for (const seq of this.running) {
      if (!seq.inPrefill || prefillBudget <= 0) continue;
      const length = Math.min(seq.promptLen - seq.computed, prefillBudget);
      prefillBudget -= length;
      plan.push({ seq, start: seq.computed, length, promptLogprobs: seq.promptLogprobs !== null });
    }
    return plan;
  }

  private collectPromptLogprobs(seq: Sequence, start: number, length: number, values: number[] | undefined): void {
    if (!seq.promptLogprobs || !values) return;
    // values[i] = logprob of the token at position start + i + 1
    for (let i = 0; i < values.length; i++) {
      const position = start + i + 1;
      if (position < seq.promptLen && position < start + length + 1) seq.promptLogprobs[position] = values[i];
    }
  }
}
