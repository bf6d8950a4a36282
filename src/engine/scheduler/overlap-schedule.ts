/**
 * Overlap scheduling (issue #12, SGLang's overlap scheduler): each call launches step N+1, planned from where step N
 * leaves every sequence (lagged-step.ts), before it waits for step N and processes its results, so the host's work
 * hides under the device's. Holds the steps launched and not yet processed (oldest first, at most two, one between
 * calls) and the sequences that ended while a launched step still computes their rows: their KV blocks go back to the
 * pool once no launched step writes them.
 */
import type { KvCacheManager } from '../kv/kv-cache.js';
import type { StepSequence, StepSequenceResult } from '../model/runner-types.js';
import type { SchedulerRunner } from '../runner-port.js';
import type { TokenUpdate } from '../types.js';
import { needsKnownHistory, projectAfter, type LaunchedStep, type Projection } from './lagged-step.js';
import type { Sequence } from './sequence.js';
import type { PlannedChunk } from './step-builder.js';

/** What the overlap schedule needs of the scheduler. */
export interface OverlapHost {
  running(): readonly Sequence[];
  /** Plans and builds the next step from `projections` (empty: from where every sequence stands now); null = none. */
  prepareStep(projections: ReadonlyMap<Sequence, Projection>): LaunchedStep | null;
  /** The step of `plan` built from where its sequences stand now. */
  buildStep(plan: PlannedChunk[]): LaunchedStep;
  runIsolated(plan: PlannedChunk[], stepSeqs: StepSequence[], updates: Map<string, TokenUpdate>): Array<StepSequenceResult | null>;
  /** Counts a step that ran and applies its results. */
  finishStep(step: LaunchedStep, results: Array<StepSequenceResult | null>, forwardMs: number, updates: Map<string, TokenUpdate>): void;
}

export class OverlapSchedule<HostAdapter> {
  private launched: LaunchedStep[] = [];
  private readonly deferredReleases = new Set<Sequence>();

  constructor(
    private readonly runner: SchedulerRunner<HostAdapter>,
    private readonly kv: KvCacheManager,
    private readonly host: OverlapHost,
  ) {}

  /** Steps launched and not yet processed. */
  get inFlight(): number {
    return this.launched.length;
  }

  /** Adds the adapters of the launched steps' sequences to `set` (their slots must not be rewritten meanwhile). */
  addAdapters(set: Set<string>): void {
    for (const step of this.launched) for (const seq of step.seqs) set.add(seq.adapterKey);
  }

  /** Frees the KV blocks of a sequence that ended: now, or once no launched step writes them any more. */
  release(seq: Sequence): void {
    if (!seq.alloc) return;
    if (this.launched.some((step) => step.seqs.has(seq))) this.deferredReleases.add(seq);
    else this.kv.release(seq.alloc);
  }

  /** Launch step N+1 (planned from where step N leaves every sequence), then wait for step N and process it. */
  step(updates: Map<string, TokenUpdate>): void {
    let projections = projectAfter(this.launched[0]);
    if (this.launched.length > 0 && needsKnownHistory(this.host.running(), projections)) {
      this.waitOldest(updates); // synchronous fallback: this step is planned with every token known
      projections = projectAfter(undefined);
    }
    const next = this.host.prepareStep(projections);
    if (next) {
      this.runner.launch!(next.stepSeqs);
      this.launched.push(next);
    }
    if (this.launched.length > (next ? 1 : 0)) this.waitOldest(updates);
  }

  /**
   * Waits for the oldest launched step and processes it. When it failed, the steps launched after it (which read its
   * tokens) are dropped and it is run again synchronously from the now-known tokens, row by row where needed.
   */
  private waitOldest(updates: Map<string, TokenUpdate>): void {
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
      step = this.host.buildStep(step.plan.filter((p) => !p.seq.finished));
      results = step.plan.length > 0 ? this.host.runIsolated(step.plan, step.stepSeqs, updates) : [];
    }
    this.host.finishStep(step, results, this.runner.lastForwardMs ?? Number.NaN, updates);
    this.releaseDeferred();
  }

  private releaseDeferred(): void {
    for (const seq of this.deferredReleases) {
      if (this.launched.some((step) => step.seqs.has(seq))) continue;
      this.deferredReleases.delete(seq);
      if (seq.alloc) this.kv.release(seq.alloc);
    }
  }
}
