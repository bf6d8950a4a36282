/**
 * Requests and updates exchanged between the server (main thread) and the engine (worker thread).
 * Plain data only: everything here crosses postMessage.
 */
export interface EngineSampling {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  seed: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  maxNewTokens: number;
  minNewTokens: number;
  stopTokenIds: number[];
  ignoreEos: boolean;
  /** logit_bias as [token id, bias] pairs (distinct ids, inside the vocabulary); empty = none. */
  logitBias?: Array<[number, number]>;
  /** Per output token: its logprob and this many top alternatives. */
  returnLogprob: boolean;
  topLogprobsNum: number;
}

export interface EngineRequest {
  rid: string;
  promptTokenIds: number[];
  /** Adapter id (unique per load), or null for the base model. */
  adapterId: string | null;
  sampling: EngineSampling;
  /** First prompt position whose logprob is reported; -1 = none (prompt logprobs off). */
  logprobStartLen: number;
  /** Upper bound on prompt + output tokens (the context length). */
  maxTotalTokens: number;
}

export type EngineFinish =
  | { type: 'stop'; matched: number }
  | { type: 'length'; length: number }
  | { type: 'abort'; message: string };

/** What one engine step produced for one request. */
export interface TokenUpdate {
  rid: string;
  tokenIds: number[];
  logprobs?: number[];
  topLogprobs?: Array<Array<[number, number]>>;
  /** Prompt positions → logprob (index 0 of the array is position `promptLogprobStart`). */
  promptLogprobs?: Array<number | null>;
  /** Top alternatives [tokenId, logprob] at each prompt position (null where none), aligned with promptLogprobs. */
  promptTopLogprobs?: Array<Array<[number, number]> | null>;
  promptLogprobStart?: number;
  /** Set on the first update of a request. */
  cachedTokens?: number;
  finish?: EngineFinish;
}

export interface EngineStats {
  waiting: number;
  running: number;
  waitingOnAdapterLoad: number;
  slotsUsed: number;
  slotsTotal: number;
  /** Bytes of the host tier's adapter copies (CUDA: page-locked, in the device's format). */
  hostAdapterBytes: number;
  slotIds: Array<string | null>;
  /** Slot ids whose copy to the device is still in flight (resident but not ready). */
  slotLoadingIds: string[];
  kvBlocksTotal: number;
  kvBlocksUsed: number;
  kvBlockSize: number;
  prefixCacheHitRate: number;
  deviceLoads: number;
  deviceEvictions: number;
  promptTokensTotal: number;
  generatedTokensTotal: number;
  cachedTokensTotal: number;
  steps: number;
  /** Overlap loading: prefill steps held back for a copy that was about to finish. */
  delayedPrefills: number;
  maxRunningRequests: number;
  /** Decode-only forward steps and the sum of their forward times (ms), since start-up (EngineStepTiming). */
  decodeSteps: number;
  decodeStepMsTotal: number;
}

/**
 * One forward step as the engine timed it: `forwardMs` = the native forward alone (the GPU's or CPU's step; the
 * JavaScript that plans the step and collects its results is left out), `decodeOnly` = every row was a decode token
 * (no prompt chunk), `batch` = sequences in the step, `tokens` = rows (tokens) computed.
 */
export interface EngineStepTiming {
  forwardMs: number;
  decodeOnly: boolean;
  batch: number;
  tokens: number;
}
