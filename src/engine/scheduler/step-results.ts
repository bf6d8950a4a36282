/**
 * Applies one step's results to its sequences (spec c.4): KV positions computed, prompt tokens counted and registered
 * in the prefix cache, prompt logprobs, the sampled token streamed with its logprobs, finishes. Rows of sequences that
 * ended meanwhile (an abort, or overlap scheduling's row after a token-decided finish) and rejected rows (null) are
 * dropped.
 */
import type { KvCacheManager } from '../kv/kv-cache.js';
import type { StepSequenceResult } from '../model/runner-types.js';
import type { TokenUpdate } from '../types.js';
import type { Sequence } from './sequence.js';
import { collectPromptLogprobs, type PlannedChunk } from './step-builder.js';

export interface ResultContext {
  counters: { promptTokens: number; generatedTokens: number };
  kv: () => KvCacheManager;
  eosTokenIds: () => readonly number[];
  updateFor(seq: Sequence, updates: Map<string, TokenUpdate>): TokenUpdate;
  finishSequence(seq: Sequence): void;
}

export function applyStepResults(ctx: ResultContext, plan: PlannedChunk[], results: Array<StepSequenceResult | null>, updates: Map<string, TokenUpdate>): void {
  for (let i = 0; i < plan.length; i++) {
    const { seq, start, length } = plan[i];
    const result = results[i];
    if (result === null || seq.finished) continue; // a row of a sequence that ended meanwhile: dropped
    const update = ctx.updateFor(seq, updates);
    seq.computed = start + length;
    if (start < seq.promptLen) {
      ctx.counters.promptTokens += Math.min(length, seq.promptLen - start);
      if (seq.alloc) ctx.kv().registerComputed(seq.alloc, Math.min(seq.computed, seq.promptLen));
      if (plan[i].promptLogprobs) collectPromptLogprobs(seq, start, length, result.promptLogprobs, result.promptTopLogprobs);
    }
    if (result.tokenId < 0) continue;
    if (seq.req.sampling.maxNewTokens === 0) {
      // Scoring only (e.g. prompt logprobs): the sampled token is not part of the output.
      if (seq.promptLogprobs) {
        update.promptLogprobStart = Math.max(0, seq.req.logprobStartLen);
        update.promptLogprobs = seq.promptLogprobs.slice(update.promptLogprobStart);
        if (seq.promptTopLogprobs) update.promptTopLogprobs = seq.promptTopLogprobs.slice(update.promptLogprobStart);
      }
      update.finish = { type: 'length', length: 0 };
      ctx.finishSequence(seq);
      continue;
    }
    seq.outputIds.push(result.tokenId);
    ctx.counters.generatedTokens++;
    update.tokenIds.push(result.tokenId);
    if (seq.req.sampling.returnLogprob) {
      (update.logprobs ??= []).push(result.logprob);
      if (seq.req.sampling.topLogprobsNum > 0) (update.topLogprobs ??= []).push(result.topLogprobs ?? []);
    }
    if (seq.promptLogprobs && !seq.promptLogprobsSent) {
      update.promptLogprobStart = Math.max(0, seq.req.logprobStartLen);
      update.promptLogprobs = seq.promptLogprobs.slice(update.promptLogprobStart);
      if (seq.promptTopLogprobs) update.promptTopLogprobs = seq.promptTopLogprobs.slice(update.promptLogprobStart);
      seq.promptLogprobsSent = true;
    }
    const finish = seq.finishAfter(result.tokenId, ctx.eosTokenIds());
    if (finish) {
      update.finish = finish;
      ctx.finishSequence(seq);
    }
  }

}
