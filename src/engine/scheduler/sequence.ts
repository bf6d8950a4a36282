/** One request's state inside the engine: its KV allocation, how far prefill got, and its output so far. */
import type { KvAllocation } from '../kv/kv-cache.js';
import type { EngineFinish, EngineRequest } from '../types.js';

export class Sequence {
  readonly req: EngineRequest;
  /** Adapter id, or BASE_ADAPTER_ID. */
  readonly adapterKey: string;
  readonly arrivalOrder: number;
  readonly arrivedAtMs: number;
  alloc: KvAllocation | null = null;
  /** Tokens whose KV is in the cache (= start position of the next step). */
  computed = 0;
  readonly outputIds: number[] = [];
  finished = false;
  /** The first update carries cachedTokens; set once sent. */
  announced = false;
  /** Logprob of each prompt position (null where not computed) when prompt logprobs were asked. */
  promptLogprobs: Array<number | null> | null = null;
  /** Top alternatives at each prompt position (null where not computed) when top logprobs were asked too. */
  promptTopLogprobs: Array<Array<[number, number]> | null> | null = null;
  promptLogprobsSent = false;

  constructor(req: EngineRequest, adapterKey: string, arrivalOrder: number, arrivedAtMs: number) {
    this.req = req;
    this.adapterKey = adapterKey;
    this.arrivalOrder = arrivalOrder;
    this.arrivedAtMs = arrivedAtMs;
  }

  get promptLen(): number {
    return this.req.promptTokenIds.length;
  }

  get inPrefill(): boolean {
    return this.computed < this.promptLen;
  }

  /** Positions the KV reservation must cover. */
  get budgetTokens(): number {
    return Math.min(this.promptLen + this.req.sampling.maxNewTokens, this.req.maxTotalTokens);
  }

  /** Tokens still to generate at most (for draining decisions). */
  get remainingTokens(): number {
    return this.req.sampling.maxNewTokens - this.outputIds.length;
  }

  tokenAt(position: number): number {
    return position < this.promptLen ? this.req.promptTokenIds[position] : this.outputIds[position - this.promptLen];
  }

  /**
   * Ids the next draw must not produce: EOS and the request's stop ids while fewer than min_new_tokens tokens were
   * generated (SGLang masks them to -inf, as its min_new_tokens penalizer does, also under ignore_eos).
   */
  suppressedTokenIds(eosTokenIds: readonly number[], generated = this.outputIds.length): number[] | undefined {
    const s = this.req.sampling;
    if (generated >= s.minNewTokens) return undefined;
    const ids = [...new Set([...eosTokenIds, ...s.stopTokenIds])];
    return ids.length > 0 ? ids : undefined;
  }

  /** Whether the `generated`-th token ends the sequence whatever it is (max_new_tokens or the total token budget). */
  lastByCount(generated: number): boolean {
    return generated >= this.req.sampling.maxNewTokens || this.promptLen + generated >= this.req.maxTotalTokens;
  }

  /** Finish check after appending a sampled token. */
  finishAfter(token: number, eosTokenIds: readonly number[]): EngineFinish | null {
    const s = this.req.sampling;
    const count = this.outputIds.length;
    if (count >= s.minNewTokens) {
      if (!s.ignoreEos && eosTokenIds.includes(token)) return { type: 'stop', matched: token };
      if (s.stopTokenIds.includes(token)) return { type: 'stop', matched: token };
    }
    if (this.lastByCount(count)) return { type: 'length', length: count };
    return null;
  }
}
