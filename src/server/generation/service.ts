/**
 * Runs generation jobs: one job = the samples of one HTTP request (prompts × n). Resolves adapters (taking
 * references), applies the queue bound, submits every sample to the engine, routes updates to SampleRuns, and
 * releases everything when the job ends or its client goes away.
 */
import { randomBytes } from 'node:crypto';
import { TsloraError } from '../../errors.js';
import type { Engine } from '../../engine/engine.js';
import type { AdapterManager } from '../../engine/lora/adapter-manager.js';
import type { EngineRequest } from '../../engine/types.js';
import type { SamplingParams } from '../../protocol/generate.js';
import { logitBiasEntries } from '../../protocol/logit-bias.js';
import type { AdapterDirectory } from '../adapter-directory.js';
import type { ServerMetrics } from '../metrics.js';
import { SampleRun, type TokenTextFns } from './sample-run.js';

export interface GenerationItem {
  promptIds: number[];
  params: SamplingParams;
  adapterName: string | null;
  clientId: string;
  returnLogprob: boolean;
  logprobStartLen: number;
  topLogprobsNum: number;
  returnTextInLogprobs: boolean;
}

export interface JobHandlers {
  /** Called after every update that changed a sample (streaming). */
  onProgress?: (run: SampleRun, index: number) => void;
}

export interface Job {
  runs: SampleRun[];
  done: Promise<void>;
  cancel(message: string): void;
}

export interface ServiceLimits {
  contextLength: number;
  vocabSize: number;
  maxRunningRequests: number;
  maxQueuedRequests: number;
  eosTokenIds: number[];
  /** Token positions the whole KV cache holds; a request needing more can never run. */
  kvCapacityTokens: number;
}

export class GenerationService {
  private readonly engine: Engine;
  private readonly adapters: AdapterManager;
  private readonly limits: ServiceLimits;
  private readonly metrics: ServerMetrics;
  private readonly text: { withSpecial: TokenTextFns; skipSpecial: TokenTextFns };
  private nextSeed: number;
  private nextRid = 1;
  outstanding = 0;
  /** Called for every finished sample (the server logs them at --log-level debug). */
  onSampleFinished: ((run: SampleRun) => void) | null = null;
  private readonly jobs = new Set<Job>();
  closing = false;
  /** --lora-resolver-dir: adapters requested and not loaded are loaded from it first. */
  adapterDirectory: AdapterDirectory | null = null;

  constructor(engine: Engine, adapters: AdapterManager, limits: ServiceLimits, metrics: ServerMetrics, text: { withSpecial: TokenTextFns; skipSpecial: TokenTextFns }, randomSeed: number | null) {
    this.engine = engine;
    this.adapters = adapters;
    this.limits = limits;
    this.metrics = metrics;
    this.text = text;
    this.nextSeed = randomSeed ?? randomBytes(4).readUInt32LE(0);
  }

  static newClientId(): string {
    return randomBytes(16).toString('hex');
  }

  private validate(item: GenerationItem, index: number, batch: boolean): void {
    const where = batch ? ` (batch item ${index})` : '';
    if (item.promptIds.length === 0) throw new TsloraError('invalid_request', `the prompt${where} is empty; send at least one token`, { param: 'text' });
    if (item.promptIds.length >= this.limits.contextLength) {
      throw new TsloraError('invalid_request', `the prompt${where} has ${item.promptIds.length} tokens but the context length is ${this.limits.contextLength}; shorten it or start the server with a larger --context-length`, { param: 'text' });
    }
    const bad = item.promptIds.find((id) => id >= this.limits.vocabSize);
    if (bad !== undefined) throw new TsloraError('invalid_request', `input_ids${where} contains token id ${bad}, outside the vocabulary (size ${this.limits.vocabSize})`, { param: 'input_ids' });
    const needed = Math.min(item.promptIds.length + item.params.max_new_tokens, this.limits.contextLength);
    if (needed > this.limits.kvCapacityTokens) {
      throw new TsloraError('invalid_request', `the request${where} needs ${needed} KV cache positions (prompt + max_new_tokens) but the whole cache holds ${this.limits.kvCapacityTokens}`, {
        hint: 'Lower max_new_tokens or shorten the prompt, or give the server more KV memory (--mem-fraction-static).',
        param: 'sampling_params.max_new_tokens',
      });
    }
    const badStop = item.params.stop_token_ids?.find((id) => id >= this.limits.vocabSize);
    if (badStop !== undefined) {
      throw new TsloraError('invalid_request', `sampling_params.stop_token_ids${where} contains token id ${badStop}, outside the vocabulary (size ${this.limits.vocabSize})`, { param: 'sampling_params.stop_token_ids' });
    }
    const badBias = logitBiasEntries(item.params.logit_bias).find(([id]) => id >= this.limits.vocabSize);
    if (badBias !== undefined) {
      throw new TsloraError('invalid_request', `sampling_params.logit_bias${where} names token id ${badBias[0]}, outside the vocabulary (size ${this.limits.vocabSize})`, { param: 'sampling_params.logit_bias' });
    }
    if (item.params.min_new_tokens > item.params.max_new_tokens) {
      throw new TsloraError('invalid_request', `sampling_params.min_new_tokens (${item.params.min_new_tokens}) exceeds max_new_tokens (${item.params.max_new_tokens})`, { param: 'sampling_params.min_new_tokens' });
    }
  }

  /**
   * A request of more samples (prompts × n) than running + queued can hold can never run: 400 naming the limit,
   * not 503 (retrying cannot help). The routes call it with the prompt count before tokenizing a batch.
   */
  checkFits(samples: number): void {
    const capacity = this.limits.maxRunningRequests + this.limits.maxQueuedRequests;
    if (samples <= capacity) return;
    throw new TsloraError('invalid_request', `the request has ${samples} samples (prompts × n) but the server holds at most ${capacity} at once (--max-running-requests ${this.limits.maxRunningRequests} + --max-queued-requests ${this.limits.maxQueuedRequests})`, {
      hint: 'Split the batch or lower n.',
      param: 'n',
    });
  }

  async start(items: GenerationItem[], handlers: JobHandlers = {}): Promise<Job> {
    if (this.closing) throw new TsloraError('shutting_down', 'the server is shutting down; retry against another instance');
    items.forEach((item, i) => this.validate(item, i, items.length > 1));
    const samples = items.reduce((n, item) => n + item.params.n, 0);
    this.checkFits(samples);
    const capacity = this.limits.maxRunningRequests + this.limits.maxQueuedRequests;
    if (this.outstanding + samples > capacity) {
      this.metrics.rejectedForCapacity();
      throw new TsloraError('queue_full', `the server is at capacity (${this.outstanding} requests in flight, queue limit ${this.limits.maxQueuedRequests}); retry later`);
    }
    // The samples count against the bound from here on, across the adapter awaits below (a load or reload can take
    // a while and other requests arrive meanwhile).
    this.outstanding += samples;
    let lease: Awaited<ReturnType<AdapterManager['acquire']>>;
    try {
      await this.adapterDirectory?.loadMissing(this.adapters, items.map((i) => i.adapterName));
      lease = await this.adapters.acquire(items.map((i) => i.adapterName));
    } catch (error) {
      this.outstanding -= samples;
      throw error;
    }
    if (this.closing) {
      this.outstanding -= samples;
      lease.release();
      throw new TsloraError('shutting_down', 'the server is shutting down; retry against another instance');
    }
    const runs: SampleRun[] = [];
    const now = performance.now();
    for (const item of items) {
      for (let k = 0; k < item.params.n; k++) {
        const p = item.params;
        const seed = p.sampling_seed !== undefined ? p.sampling_seed + k : this.nextSeed++ >>> 0;
        const adapterId = item.adapterName ? lease.ids.get(item.adapterName) ?? null : null;
        const stops = p.stop === undefined ? [] : typeof p.stop === 'string' ? [p.stop] : p.stop;
        const fns = p.skip_special_tokens ? this.text.skipSpecial : this.text.withSpecial;
        runs.push(
          new SampleRun(
            {
              rid: `r${this.nextRid++}`,
              clientId: item.params.n > 1 ? `${item.clientId}-${k}` : item.clientId,
              itemIndex: items.indexOf(item),
              promptIds: item.promptIds,
              adapterId,
              adapterName: item.adapterName,
              stops,
              noStopTrim: p.no_stop_trim,
              skipSpecialTokens: p.skip_special_tokens,
              logprobStartLen: item.returnLogprob ? item.logprobStartLen : -1,
              returnTextInLogprobs: item.returnTextInLogprobs,
              sampling: {
                temperature: p.temperature,
                topP: p.top_p,
                topK: p.top_k,
                minP: p.min_p,
                seed,
                repetitionPenalty: p.repetition_penalty,
                frequencyPenalty: p.frequency_penalty,
                presencePenalty: p.presence_penalty,
                maxNewTokens: p.max_new_tokens,
                minNewTokens: p.min_new_tokens,
                stopTokenIds: p.stop_token_ids ?? [],
                logitBias: logitBiasEntries(p.logit_bias),
                ignoreEos: p.ignore_eos,
                returnLogprob: item.returnLogprob,
                topLogprobsNum: item.returnLogprob ? item.topLogprobsNum : 0,
              },
            },
            fns,
            now,
          ),
        );
      }
    }
    let remaining = runs.length;
    // Each adapter's reference goes as soon as the last sample using it ends (b.2 step 5), so an unload
    // waits only for the items that really use the adapter.
    const runsPerAdapter = new Map<string, number>();
    for (const run of runs) if (run.spec.adapterName) runsPerAdapter.set(run.spec.adapterName, (runsPerAdapter.get(run.spec.adapterName) ?? 0) + 1);
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const job: Job = {
      runs,
      done,
      cancel: (message: string) => {
        for (const run of runs) {
          if (run.finished) continue;
          this.engine.abort(run.spec.rid);
          run.abort(message, performance.now());
          finishRun(run);
        }
      },
    };
    const finishRun = (run: SampleRun) => {
      this.outstanding--;
      const t = performance.now();
      this.metrics.sampleFinished(run.spec.adapterName, {
        aborted: run.finish?.type === 'abort',
        e2eS: (t - run.arrivedAtMs) / 1000,
        promptTokens: run.spec.promptIds.length,
        generationTokens: run.outputIds.length,
        cachedTokens: run.cachedTokens,
      });
      this.onSampleFinished?.(run);
      const name = run.spec.adapterName;
      if (name) {
        const left = (runsPerAdapter.get(name) ?? 1) - 1;
        runsPerAdapter.set(name, left);
        if (left === 0) lease.releaseName(name);
      }
      if (--remaining === 0) {
        lease.release();
        this.jobs.delete(job);
        resolveDone();
      }
    };
    this.jobs.add(job);
    for (const run of runs) this.metrics.accepted(run.spec.adapterName, 1);
    if (runs.length === 0) {
      lease.release();
      this.jobs.delete(job);
      resolveDone();
      return job;
    }
    runs.forEach((run, index) => {
      let lastTokenAt = run.arrivedAtMs;
      const req: EngineRequest = {
        rid: run.spec.rid,
        promptTokenIds: run.spec.promptIds,
        adapterId: run.spec.adapterId,
        sampling: run.spec.sampling,
        logprobStartLen: run.spec.logprobStartLen,
        maxTotalTokens: this.limits.contextLength,
      };
      this.engine.submit(req, (update) => {
        if (run.finished) return;
        const t = performance.now();
        if (update.tokenIds.length > 0) {
          if (run.firstTokenAtMs === null) this.metrics.firstToken(run.spec.adapterName, (t - run.arrivedAtMs) / 1000);
          else this.metrics.tokensArrived(run.spec.adapterName, (t - lastTokenAt) / 1000, update.tokenIds.length);
          lastTokenAt = t;
        }
        const { stoppedByString } = run.apply(update, t);
        if (stoppedByString) this.engine.abort(run.spec.rid);
        handlers.onProgress?.(run, index);
        if (run.finished) finishRun(run);
      });
    });
    return job;
  }

  /** Cancels every job in flight (a drain past --shutdown-timeout). */
  cancelAll(message: string): void {
    for (const job of [...this.jobs]) job.cancel(message);
  }

  /** Stops accepting work and waits for every job in flight to finish. */
  async drain(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.jobs].map((j) => j.done));
  }
}
