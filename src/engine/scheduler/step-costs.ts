/**
 * What the scheduler learns from its timed steps: each step's timing for the worker to post with the step's updates,
 * decode-only totals for the engine stats, and the prefill cost per token that decides whether a fresh prefill is
 * held back for an adapter copy about to finish (c.10).
 */
import type { StepSequence } from '../model/runner-types.js';
import type { EngineStepTiming } from '../types.js';
import type { PlannedChunk } from './step-builder.js';

export class StepCosts {
  /** Decode-only steps and their forward milliseconds since start-up (engine stats). */
  readonly decodeStepTotals = { steps: 0, forwardMs: 0 };
  private msPerPrefillToken: number | null = null;
  /** Forward steps timed since the last take() (the worker posts them with the step's updates). */
  private timings: EngineStepTiming[] = [];

  /** Learned prefill cost (null until a step with enough prompt tokens was timed). */
  get prefillMsPerToken(): number | null {
    return this.msPerPrefillToken;
  }

  /** A step that ran; forwardMs is NaN for a runner that cannot time its forward. */
  record(plan: PlannedChunk[], stepSeqs: StepSequence[], forwardMs: number): void {
    this.learnPrefillCost(plan, forwardMs);
    this.recordTiming(plan, stepSeqs, forwardMs);
  }

  /** Timings of the steps recorded since the last call (oldest first). */
  take(): EngineStepTiming[] {
    const out = this.timings;
    this.timings = [];
    return out;
  }

  /** Hold back a step made only of fresh prefills when the soonest copy should end before the prefill would. */
  prefillOutlasts(plan: PlannedChunk[], soonestCopyMs: number): boolean {
    if (this.msPerPrefillToken === null) return false;
    if (!plan.every((p) => p.seq.inPrefill && p.start === (p.seq.alloc?.cachedTokens ?? 0))) return false;
    const prefillMs = plan.reduce((n, p) => n + p.length, 0) * this.msPerPrefillToken;
    return soonestCopyMs < prefillMs;
  }

  private recordTiming(plan: PlannedChunk[], stepSeqs: StepSequence[], forwardMs: number): void {
    if (!Number.isFinite(forwardMs)) return; // a runner that cannot time its forward
    const decodeOnly = plan.every((p) => p.start >= p.seq.promptLen);
    const tokens = stepSeqs.reduce((n, s) => n + s.tokenIds.length, 0);
    this.timings.push({ forwardMs, decodeOnly, batch: plan.length, tokens });
    if (decodeOnly) {
      this.decodeStepTotals.steps++;
      this.decodeStepTotals.forwardMs += forwardMs;
    }
  }

  private learnPrefillCost(plan: PlannedChunk[], ms: number): void {
    if (!Number.isFinite(ms)) return;
    const prefillTokens = plan.reduce((n, p) => n + (p.seq.promptLen > p.start ? p.length : 0), 0);
    if (prefillTokens < 8) return; // decode-dominated steps say little about prefill cost
    const perToken = ms / prefillTokens;
    this.msPerPrefillToken = this.msPerPrefillToken === null ? perToken : 0.7 * this.msPerPrefillToken + 0.3 * perToken;
  }
}
