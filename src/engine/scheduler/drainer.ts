/**
 * Starvation control (spec c.6). When a waiting adapter cannot enter because the running adapter set is full,
 * and its oldest request has waited past the threshold, one running adapter (the one closest to finishing) is
 * marked *draining*: new requests for it are held back so that its slot frees up for the starving adapter.
 *
 * With --lora-drain-wait-threshold 0 (off) the same mechanism still runs with a fixed fallback threshold and no
 * tolerance, so that no adapter waits forever under steady traffic for the others (the spec's MUST).
 */
import type { Sequence } from './sequence.js';

export const FALLBACK_DRAIN_THRESHOLD_MS = 5000;
const TOLERANCE = 1.2;

interface DrainTarget {
  adapter: string;
  /** Largest remaining-token count among its running requests when it was chosen. */
  maxRemaining: number;
  /** Engine step count when it was chosen: the drain deadline moves closer by one token per step. */
  markedAtStep: number;
}

export class Drainer {
  private readonly thresholdMs: number;
  private readonly useTolerance: boolean;
  /** starving adapter → the adapter drained for it */
  private readonly targets = new Map<string, DrainTarget>();
  private currentStep = 0;

  constructor(configuredThresholdMs: number) {
    this.useTolerance = configuredThresholdMs > 0;
    this.thresholdMs = configuredThresholdMs > 0 ? configuredThresholdMs : FALLBACK_DRAIN_THRESHOLD_MS;
  }

  /** Draining adapters right now (for tests and metrics). */
  drainingAdapters(): string[] {
    return [...this.targets.values()].map((t) => t.adapter);
  }

  /**
   * @param blockedSince adapters refused by the adapter budget in the last pass → arrival time of their oldest
   *                     waiting request
   */
  update(nowMs: number, step: number, blockedSince: ReadonlyMap<string, number>, running: readonly Sequence[], pinned: ReadonlySet<string>): void {
    this.currentStep = step;
    const remainingByAdapter = new Map<string, number>();
    for (const seq of running) {
      const r = Math.max(0, seq.remainingTokens);
      remainingByAdapter.set(seq.adapterKey, Math.max(remainingByAdapter.get(seq.adapterKey) ?? 0, r));
    }
    for (const [starving, target] of this.targets) {
      if (!blockedSince.has(starving)) this.targets.delete(starving);
      else if (!remainingByAdapter.has(target.adapter)) this.targets.delete(starving);
    }
    const starvingInAgeOrder = [...blockedSince.entries()]
      .filter(([adapter, since]) => nowMs - since > this.thresholdMs && !this.targets.has(adapter))
      .sort((a, b) => a[1] - b[1]);
    for (const [starving] of starvingInAgeOrder) {
      const taken = new Set(this.drainingAdapters());
      let best: DrainTarget | null = null;
      for (const [adapter, remaining] of remainingByAdapter) {
        if (pinned.has(adapter) || taken.has(adapter) || blockedSince.has(adapter)) continue;
        if (!best || remaining < best.maxRemaining || (remaining === best.maxRemaining && adapter < best.adapter)) {
          best = { adapter, maxRemaining: remaining, markedAtStep: step };
        }
      }
      if (best) this.targets.set(starving, best);
    }
  }

  /**
   * Drops targets that no longer apply before an admission pass: the drained adapter stopped running, or the
   * starving adapter has nothing waiting any more (its requests were cancelled or admitted).
   */
  prune(runningAdapters: ReadonlySet<string>, waitingAdapters: ReadonlySet<string>): void {
    for (const [starving, target] of this.targets) {
      if (!runningAdapters.has(target.adapter) || !waitingAdapters.has(starving)) this.targets.delete(starving);
    }
  }

  /**
   * May this waiting request enter now, as far as draining goes? With a configured threshold, a request for a
   * draining adapter still enters when it would finish within 1.2 × the time the drain needs anyway (the
   * adapter's largest remaining count at marking, minus the steps since), so short requests do not wait.
   */
  allows(seq: Sequence): boolean {
    for (const target of this.targets.values()) {
      if (target.adapter !== seq.adapterKey) continue;
      if (!this.useTolerance) return false;
      const left = Math.max(0, target.maxRemaining - (this.currentStep - target.markedAtStep));
      return seq.req.sampling.maxNewTokens <= TOLERANCE * left;
    }
    return true;
  }
}
