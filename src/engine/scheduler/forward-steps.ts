/**
 * Forms each forward step from the running sequences and runs it (spec c.4): the plan (decode rows plus prompt chunks
 * within the --chunked-prefill-size budget, step-builder.ts), the c.10 hold-back of a fresh prefill for an adapter
 * copy about to finish, the runner's StepSequences with each sequence's device slot, then the run (synchronous, or
 * launched ahead of the previous step's results with overlap scheduling, overlap-schedule.ts), its results applied
 * (step-results.ts) and its cost learned (step-costs.ts).
 */
import type { KvCacheManager } from '../kv/kv-cache.js';
import { BASE_ADAPTER_ID } from '../lora/slot-pool.js';
import type { StepSequence, StepSequenceResult } from '../model/runner-types.js';
import type { SchedulerRunner } from '../runner-port.js';
import type { TokenUpdate } from '../types.js';
import type { DeviceAdapters } from './device-adapters.js';
import { runIsolated } from './isolated-step.js';
import { launchedStep, lagOf, type LaunchedStep, type Projection } from './lagged-step.js';
import { OverlapSchedule, type OverlapHost } from './overlap-schedule.js';
import type { Sequence } from './sequence.js';
import { StepCosts } from './step-costs.js';
import { buildStepSequence, planStep, type PlannedChunk } from './step-builder.js';
import { applyStepResults, type ResultContext } from './step-results.js';

/** What forming and running steps needs of the scheduler. */
export interface StepContext<HostAdapter> {
  runner: SchedulerRunner<HostAdapter>;
  kv: KvCacheManager;
  device: DeviceAdapters<HostAdapter>;
  options: { chunkedPrefillSize: number; eosTokenIds: number[]; overlapLoading: boolean; overlapSchedule?: boolean };
  counters: { steps: number };
  results: ResultContext;
  now(): number;
  running(): readonly Sequence[];
  /** Waiting requests whose adapter copy is in flight (overlap loading). */
  waitingOnLoad(): number;
  /** Called when the loop should run again although step() found nothing to do now (a held-back prefill). */
  onWake(): void;
}

export class ForwardSteps<HostAdapter> implements OverlapHost {
  /** Steps skipped because a pending copy was expected to finish sooner than the prefill alone would take. */
  delayedPrefills = 0;
  readonly costs = new StepCosts();
  readonly overlap: OverlapSchedule<HostAdapter>;

  constructor(private readonly ctx: StepContext<HostAdapter>) {
    this.overlap = new OverlapSchedule(ctx.runner, ctx.kv, this);
  }

  /** One forward step (with overlap scheduling: launches one and processes the one before). */
  run(updates: Map<string, TokenUpdate>): void {
    if (this.overlapSchedule) this.overlap.step(updates);
    else {
      const next = this.prepareStep(new Map());
      if (next) {
        const startedAt = this.ctx.now();
        const results = this.runIsolated(next.plan, next.stepSeqs, updates);
        this.finishStep(next, results, this.ctx.runner.lastForwardMs ?? this.ctx.now() - startedAt, updates);
      }
    }
  }

  running(): readonly Sequence[] {
    return this.ctx.running();
  }

  /** Plans and builds the next step from `projections` (empty: from where every sequence stands now). */
  prepareStep(projections: ReadonlyMap<Sequence, Projection>): LaunchedStep | null {
    const running = this.ctx.running().filter((seq) => !projections.get(seq)?.done);
    if (running.length === 0) return null;
    const plan = planStep(running, this.ctx.options.chunkedPrefillSize, (seq) => projections.get(seq)?.computed ?? seq.computed);
    if (plan.length === 0) return null;
    if (this.shouldWaitForPendingCopy(plan)) return null;
    for (const key of new Set(plan.map((p) => p.seq.adapterKey))) this.ctx.device.slots.touch(key);
    return this.buildLaunchedStep(plan, projections);
  }

  buildStep(plan: PlannedChunk[]): LaunchedStep {
    return this.buildLaunchedStep(plan, new Map());
  }

  runIsolated(plan: PlannedChunk[], stepSeqs: StepSequence[], updates: Map<string, TokenUpdate>): Array<StepSequenceResult | null> {
    return runIsolated(this.ctx.runner, this.ctx.results, plan, stepSeqs, updates);
  }

  /** Counts a step that ran and applies its results. */
  finishStep(step: LaunchedStep, results: Array<StepSequenceResult | null>, forwardMs: number, updates: Map<string, TokenUpdate>): void {
    if (step.plan.length === 0) return;
    this.costs.record(step.plan, step.stepSeqs, forwardMs);
    this.ctx.counters.steps++;
    applyStepResults(this.ctx.results, step.plan, results, updates);
  }

  private get overlapSchedule(): boolean {
    const { runner, options } = this.ctx;
    return options.overlapSchedule === true && runner.launch !== undefined && runner.wait !== undefined;
  }

  /** The StepSequences of `plan`, each from where `projections` leaves its sequence (empty: where it stands now). */
  private buildLaunchedStep(plan: PlannedChunk[], projections: ReadonlyMap<Sequence, Projection>): LaunchedStep {
    const { blockSize } = this.ctx.kv;
    const stepSeqs = plan.map((p) => buildStepSequence(p, this.slotFor(p.seq), blockSize, this.ctx.options.eosTokenIds, lagOf(p.seq, projections)));
    return launchedStep(plan, stepSeqs);
  }

  private slotFor(seq: Sequence): number {
    if (seq.adapterKey === BASE_ADAPTER_ID) return -1;
    const { slots } = this.ctx.device;
    const slot = slots.slotOf(seq.adapterKey);
    if (slot === undefined || slots.state(seq.adapterKey) !== 'LOADED') {
      throw new Error(`internal: adapter ${seq.adapterKey} runs without a loaded slot`);
    }
    return slot;
  }

  /**
   * c.10: with overlap loading, a step made only of fresh prefills is held back when a pending copy (that some
   * waiting request needs) should end sooner than this prefill would take, so that both groups prefill together
   * instead of one after the other. Never holds back decode work; a timer wakes the loop if the copy is late.
   */
  private shouldWaitForPendingCopy(plan: PlannedChunk[]): boolean {
    if (!this.ctx.options.overlapLoading || this.ctx.waitingOnLoad() === 0 || this.costs.prefillMsPerToken === null) return false;
    const soonest = this.ctx.device.soonestCopyMs();
    if (soonest === null || !this.costs.prefillOutlasts(plan, soonest)) return false;
    this.delayedPrefills++;
    setTimeout(() => this.ctx.onWake(), Math.ceil(soonest) + 1).unref?.();
    return true;
  }
}
