/**
 * Runs one forward step so that a row the engine rejects (e.g. sampling values the HTTP checks let through) aborts
 * alone: when the batch throws, each row is run again on its own, the rows that fail are aborted (null result) and
 * the rest of the step completes. Re-running is safe: a row rewrites the same KV positions with the same values and
 * its sampling seed is fixed per step.
 */
import type { StepSequence, StepSequenceResult } from '../model/runner-types.js';
import type { SchedulerRunner } from '../runner-port.js';
import type { TokenUpdate } from '../types.js';
import type { PlannedChunk } from './step-builder.js';
import type { ResultContext } from './step-results.js';

export function runIsolated<HostAdapter>(
  runner: SchedulerRunner<HostAdapter>,
  ctx: Pick<ResultContext, 'updateFor' | 'finishSequence'>,
  plan: PlannedChunk[],
  stepSeqs: StepSequence[],
  updates: Map<string, TokenUpdate>,
): Array<StepSequenceResult | null> {
  try {
    return runner.step(stepSeqs);
  } catch (batchError) {
    return stepSeqs.map((stepSeq, i) => {
      try {
        if (stepSeqs.length === 1) throw batchError;
        return runner.step([stepSeq])[0];
      } catch (error) {
        const seq = plan[i].seq;
        const update = ctx.updateFor(seq, updates);
        update.finish = { type: 'abort', message: `the engine rejected this request: ${error instanceof Error ? error.message : String(error)}` };
        ctx.finishSequence(seq);
        return null;
      }
    });
  }
}
