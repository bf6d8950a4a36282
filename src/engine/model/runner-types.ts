/**
 * What the scheduler hands the model runner for one step, and what it gets back. The runner
 * (src/engine/model/runner.ts) flattens this into the typed arrays of binding/types.ts StepInput, builds the LoRA
 * segment tables for the configured backend, and makes one native call.
 */

export interface StepSampling {
  temperature: number; // 0 = greedy
  topP: number;
  topK: number; // <= 0 = off
  minP: number;
  /** Seed of the request; the runner mixes in `generatedCount` so each step draws fresh randomness. */
  seed: number;
  generatedCount: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  /** Token counts for penalties: prompt tokens (count 0 in output) and output tokens with their counts. */
  promptTokenIds: ArrayLike<number>;
  outputTokenIds: ArrayLike<number>;
  topLogprobsNum: number;
  wantLogprob: boolean;
  /**
   * Token ids this draw must not produce (their logits become -inf after the penalties): the EOS and stop ids while
   * fewer than min_new_tokens tokens were generated (SGLang's min_new_tokens penalizer). Absent or empty = none.
   */
  suppressTokenIds?: ArrayLike<number>;
  /** logit_bias: [token id, bias] pairs added to the penalised logits before the draw. Absent or empty = none. */
  logitBias?: ReadonlyArray<readonly [number, number]>;
}

export interface StepSequence {
  /** New tokens computed this step: a prefill chunk, or the one token of a decode step. */
  tokenIds: ArrayLike<number>;
  /** Position of tokenIds[0] (= tokens already in the KV cache for this sequence). */
  startPosition: number;
  /** Physical KV blocks covering positions [0, startPosition + tokenIds.length). */
  blockTable: ArrayLike<number>;
  /** Device LoRA slot, or -1 for the base model. */
  slot: number;
  /** null for a non-final prefill chunk: no logits, no sampling. */
  sampling: StepSampling | null;
  /** Also score each prompt token of this chunk (input_token_logprobs): logprob of tokenIds[i+1] at row i. */
  promptLogprobs?: boolean;
  /** The token following this chunk, for the last row's prompt logprob when the prompt continues. */
  nextPromptTokenId?: number;
  /** Return the raw logits of the sampled row (tests). */
  returnLogits?: boolean;
  /** Top logprobs per prompt row when promptLogprobs is set (input_top_logprobs; also for non-final chunks). */
  promptTopLogprobsNum?: number;
  /**
   * Overlap scheduling: this decode row's one input token is the token sampled for sequence `tokenFromPrevious` (its
   * index) of the step launched just before, not yet known to the host; tokenIds[0] is then a placeholder.
   */
  tokenFromPrevious?: number;
}

export interface StepSequenceResult {
  /** -1 when sampling was null. */
  tokenId: number;
  logprob: number;
  topLogprobs?: Array<[tokenId: number, logprob: number]>;
  /** logprob of each tokenIds[i+1] at row i when promptLogprobs was asked. */
  promptLogprobs?: number[];
  /** The top promptTopLogprobsNum alternatives at each prompt row (aligned with promptLogprobs). */
  promptTopLogprobs?: Array<Array<[tokenId: number, logprob: number]>>;
  logits?: Float32Array;
}
