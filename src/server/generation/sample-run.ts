/**
 * The server-side state of one engine request (one sample of one prompt): incremental text, stop strings,
 * logprobs, and the finish reason in SGLang's shape.
 */
import type { EngineSampling, TokenUpdate } from '../../engine/types.js';
import type { FinishReason, LogprobTriple } from '../../protocol/generate.js';
import { IncrementalDetokenizer, type DecodeFn } from './detokenizer.js';
import { StopStringMatcher } from './stop-strings.js';

export interface SampleSpec {
  /** Engine request id (unique per server). */
  rid: string;
  /** Id reported to the client (meta_info.id). */
  clientId: string;
  /** Index of the prompt in the request's batch. */
  itemIndex: number;
  promptIds: number[];
  adapterId: string | null;
  adapterName: string | null;
  sampling: EngineSampling;
  stops: string[];
  noStopTrim: boolean;
  skipSpecialTokens: boolean;
  logprobStartLen: number;
  returnTextInLogprobs: boolean;
}

export interface SampleDelta {
  text: string;
  ids: number[];
}

export interface TokenTextFns {
  /** Decode for output text (honours skip_special_tokens). */
  decode: DecodeFn;
  /** Decode one token for logprob triples. */
  tokenText: (id: number) => string;
}

export class SampleRun {
  readonly spec: SampleSpec;
  readonly arrivedAtMs: number;
  readonly outputIds: number[] = [];
  /** Text decided so far (stop strings already applied). */
  private text = '';
  /** Characters of `text` handed out as deltas. */
  private emitted = 0;
  /** Output ids handed out as deltas. */
  private emittedIds = 0;
  finish: FinishReason | null = null;
  cachedTokens = 0;
  firstTokenAtMs: number | null = null;
  finishedAtMs: number | null = null;
  readonly outputLogprobs: LogprobTriple[] = [];
  readonly outputTopLogprobs: LogprobTriple[][] = [];
  inputLogprobs: LogprobTriple[] | null = null;
  /** Top alternatives at each reported prompt position (null at the first prompt position: nothing predicts it). */
  inputTopLogprobs: Array<LogprobTriple[] | null> | null = null;
  /** Stop-string matches ending at or before this text length came before min_new_tokens and do not count. */
  private stopMatchesEndAfter = 0;
  private readonly detok: IncrementalDetokenizer;
  private readonly stops: StopStringMatcher;
  private readonly fns: TokenTextFns;

  constructor(spec: SampleSpec, fns: TokenTextFns, arrivedAtMs: number) {
    this.spec = spec;
    this.fns = fns;
    this.arrivedAtMs = arrivedAtMs;
    this.detok = new IncrementalDetokenizer(fns.decode, spec.promptIds);
    this.stops = new StopStringMatcher(spec.stops);
  }

  get finished(): boolean {
    return this.finish !== null;
  }

  get fullText(): string {
    return this.text;
  }

  /** Applies an engine update. Returns true when a stop string ended the sample (the engine must be told). */
  apply(update: TokenUpdate, nowMs: number): { stoppedByString: boolean } {
    if (this.finished) return { stoppedByString: false };
    if (update.cachedTokens !== undefined) this.cachedTokens = update.cachedTokens;
    if (update.tokenIds.length > 0 && this.firstTokenAtMs === null) this.firstTokenAtMs = nowMs;
    if (update.promptLogprobs && update.promptLogprobStart !== undefined) {
      const start = update.promptLogprobStart;
      this.inputLogprobs = update.promptLogprobs.map((lp, i) => this.triple(lp, this.spec.promptIds[start + i]));
      if (update.promptTopLogprobs) {
        this.inputTopLogprobs = update.promptTopLogprobs.map((top) => (top ? top.map(([tid, lp]) => this.triple(lp, tid)) : null));
      }
    }
    update.tokenIds.forEach((id, i) => {
      if (update.logprobs) this.outputLogprobs.push(this.triple(update.logprobs[i], id));
      if (update.topLogprobs) this.outputTopLogprobs.push((update.topLogprobs[i] ?? []).map(([tid, lp]) => this.triple(lp, tid)));
    });
    this.outputIds.push(...update.tokenIds);
    const before = this.text.length;
    this.text += this.detok.push(update.tokenIds);
    if (update.finish) this.text += this.detok.flush();
    // A stop string ends the sample only once min_new_tokens tokens exist (vLLM's rule for min_tokens; EOS and stop
    // ids cannot even be drawn before then): a match must end in text decoded after that point.
    const minReached = this.outputIds.length >= this.spec.sampling.minNewTokens;
    if (this.stops.active && minReached) {
      let match = this.stops.find(this.text, before - this.stops.longest);
      while (match && match.index + match.stop.length <= this.stopMatchesEndAfter) match = this.stops.find(this.text, match.index + 1);
      if (match) {
        this.text = this.text.slice(0, match.index + (this.spec.noStopTrim ? match.stop.length : 0));
        this.finishWith({ type: 'stop', matched: match.stop }, nowMs);
        return { stoppedByString: true };
      }
    }
    if (!minReached) this.stopMatchesEndAfter = this.text.length;
    if (update.finish) {
      const f = update.finish;
      this.finishWith(f.type === 'stop' ? { type: 'stop', matched: f.matched } : f.type === 'length' ? { type: 'length', length: f.length } : { type: 'abort', message: f.message }, nowMs);
    }
    return { stoppedByString: false };
  }

  /** Ends the sample from outside (client gone, shutdown). */
  abort(message: string, nowMs: number): void {
    if (!this.finished) this.finishWith({ type: 'abort', message }, nowMs);
  }

  private finishWith(reason: FinishReason, nowMs: number): void {
    this.finish = reason;
    this.finishedAtMs = nowMs;
  }

  /** Text and ids not yet handed out; text that could still become a stop string is held back until the end. */
  takeDelta(): SampleDelta {
    const visible = this.finished ? this.text.length : this.text.length - this.stops.holdBack(this.text);
    const text = visible > this.emitted ? this.text.slice(this.emitted, visible) : '';
    this.emitted = Math.max(this.emitted, visible);
    const ids = this.outputIds.slice(this.emittedIds);
    this.emittedIds = this.outputIds.length;
    return { text, ids };
  }

  /** Text handed out so far (for cumulative streaming). */
  get emittedText(): string {
    return this.text.slice(0, this.emitted);
  }

  get emittedIdList(): number[] {
    return this.outputIds.slice(0, this.emittedIds);
  }

  private triple(logprob: number | null, tokenId: number): LogprobTriple {
    const value = logprob === null || Number.isNaN(logprob) ? null : logprob;
    return [value, tokenId, this.spec.returnTextInLogprobs ? this.fns.tokenText(tokenId) : null];
  }
}
