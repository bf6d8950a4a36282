/**
 * Overlap scheduling (issue #12, SGLang's overlap scheduler): step N+1 is planned and launched while step N still
 * computes, so the host does not know step N's sampled tokens yet. This file says where each running sequence will
 * stand once the step in flight has run: its KV positions, its generated-token count (the unknown newest token
 * included), which row of the step in flight samples that token, and whether the sequence is certain to end there
 * (a last token by count: max_new_tokens, the total token budget, or a scoring-only request) so that it gets no row.
 * A sequence that ends at step N for a reason only the token tells (EOS, a stop id, an abort) still has its row in
 * step N+1, whose result is dropped.
 */
import type { StepSequence } from '../model/runner-types.js';
import type { Sequence } from './sequence.js';
import type { LagState, PlannedChunk } from './step-builder.js';

/** A step launched and not yet processed. */
export interface LaunchedStep {
  plan: PlannedChunk[];
  stepSeqs: StepSequence[];
  seqs: ReadonlySet<Sequence>;
}

export interface Projection extends LagState {
  computed: number;
  /** Ends with the step in flight whatever its token: no further row. */
  done: boolean;
}

export function launchedStep(plan: PlannedChunk[], stepSeqs: StepSequence[]): LaunchedStep {
  return { plan, stepSeqs, seqs: new Set(plan.map((p) => p.seq)) };
}

/** Where each sequence of the step in flight will stand after it (sequences not in it stand where they are). */
export function projectAfter(inFlight: LaunchedStep | undefined): Map<Sequence, Projection> {
  const out = new Map<Sequence, Projection>();
  if (!inFlight) return out;
  inFlight.plan.forEach(({ seq, start, length }, index) => {
    const samples = inFlight.stepSeqs[index].sampling !== null;
    const generated = seq.outputIds.length + (samples ? 1 : 0);
    const done = samples && (seq.req.sampling.maxNewTokens === 0 || seq.lastByCount(generated));
    out.set(seq, { computed: start + length, generated, pendingIndex: samples ? index : -1, done });
  });
  return out;
}

/** The lag state of a sequence for the next step's StepSequence (a sequence outside the step in flight has none). */
export function lagOf(seq: Sequence, projections: ReadonlyMap<Sequence, Projection>): LagState {
  return projections.get(seq) ?? { generated: seq.outputIds.length, pendingIndex: -1 };
}

/**
 * Rows whose sampling reads the exact token history on the host (repetition / frequency / presence penalties build
 * their token counts in JavaScript): with such a sequence waiting on an unknown token, the next step is planned only
 * after the step in flight has been processed (synchronous fallback for that step).
 */
export function needsKnownHistory(running: readonly Sequence[], projections: ReadonlyMap<Sequence, Projection>): boolean {
  return running.some((seq) => {
    const p = projections.get(seq);
    if (!p || p.pendingIndex < 0 || p.done) return false;
    const s = seq.req.sampling;
    return s.repetitionPenalty !== 1 || s.frequencyPenalty !== 0 || s.presencePenalty !== 0;
  });
}
