/**
 * Server metrics on prom-client (GET /metrics). This file is the one place that registers metrics:
 *   - tslora_* request metrics labelled by `model_name` (the request's `model`: the served name for the base, else
 *     the adapter name), in the spirit of vLLM's per-LoRA metrics: requests, tokens, TTFT / ITL / e2e histograms;
 *   - tslora_* engine and adapter-tier gauges, refreshed from one engine snapshot per scrape;
 *   - the gateway "model server protocol" gauges under vLLM's names (gateway-metrics.ts, docs/deploy.md);
 *   - process_* / nodejs_* default metrics.
 * Callers report events through methods; nothing outside this file touches prom-client.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineStats, EngineStepTiming } from '../engine/types.js';
import { GatewayGauges, type LoraView } from './gateway-metrics.js';

const LATENCY_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/**
 * Forward-step buckets: 0.1 ms wide up to 5 ms and 0.25 ms up to 10 ms, where decode steps live, so that a p50 read
 * from two scrapes (bench/server/prometheus.ts engineStepHistogram) is within a few µs of the true one; coarser above.
 */
export const STEP_BUCKETS_S = [
  ...Array.from({ length: 50 }, (_, i) => (i + 1) / 10_000),
  ...Array.from({ length: 20 }, (_, i) => 0.005 + (i + 1) / 4000),
  0.0125, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
].map((s) => Number(s.toFixed(6)));

/** Host-side adapter figures the AdapterManager and the service keep. */
export interface HostFigures {
  loaded: number;
  hostEvictions: number;
  loads: number;
  outstanding: number;
}

export interface MetricsSnapshot {
  /** null when the engine worker did not answer: engine gauges are then left out of the scrape. */
  engine: EngineStats | null;
  host: HostFigures;
  lora: LoraView;
}

/** Finished sample, as the service reports it. */
export interface FinishedSample {
  aborted: boolean;
  e2eS: number;
  promptTokens: number;
  generationTokens: number;
  cachedTokens: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  /** Samples accepted and not finished, per adapter name (base requests are not tracked): the LoRA waiting set. */
  private readonly inFlightByAdapter = new Map<string, number>();
  private readonly counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers: [this.registry] });
  private readonly gauge = (name: string, help: string) => new Gauge({ name, help, registers: [this.registry] });
  private readonly histogram = (name: string, help: string, labelNames: string[]) =>
    new Histogram({ name, help, labelNames, buckets: LATENCY_BUCKETS_S, registers: [this.registry] });

  private readonly requests = this.counter('tslora_requests_total', 'Generation requests (samples) accepted.', ['model_name']);
  private readonly finished = this.counter('tslora_requests_finished_total', 'Samples that finished normally.', ['model_name']);
  private readonly aborted = this.counter('tslora_requests_aborted_total', 'Samples aborted (client gone, error, shutdown).', ['model_name']);
  private readonly rejected = this.counter('tslora_requests_rejected_total', 'Requests rejected because the queue was full.');
  private readonly streamClientsDropped = this.counter('tslora_stream_clients_dropped_total', 'Streaming clients disconnected for leaving more than --max-unread-stream-bytes unread.');
  private readonly promptTokens = this.counter('tslora_prompt_tokens_total', 'Prompt tokens of finished samples.', ['model_name']);
  private readonly generationTokens = this.counter('tslora_generation_tokens_total', 'Generated tokens of finished samples.', ['model_name']);
  private readonly cachedTokens = this.counter('tslora_cached_tokens_total', 'Prompt tokens served from the prefix cache.', ['model_name']);
  private readonly ttft = this.histogram('tslora_time_to_first_token_seconds', 'Arrival to first token.', ['model_name']);
  private readonly itl = this.histogram('tslora_inter_token_latency_seconds', 'Time between streamed token updates, per token.', ['model_name']);
  private readonly e2e = this.histogram('tslora_e2e_request_latency_seconds', 'Arrival to completion.', ['model_name']);
  private readonly adapterLoad = this.histogram('tslora_lora_load_seconds', 'Adapter load latency (read + host copy).', ['model_name']);
  private readonly engineStep = new Histogram({
    name: 'tslora_engine_step_seconds',
    help: 'Native forward time of each engine step (JavaScript planning and result handling left out); phase="decode" for steps of decode tokens only, "mixed" when a prompt chunk ran.',
    labelNames: ['phase'],
    buckets: STEP_BUCKETS_S,
    registers: [this.registry],
  });

  private readonly outstanding = this.gauge('tslora_outstanding_requests', 'Samples submitted and not finished.');
  private readonly hostLoaded = this.gauge('tslora_lora_loaded_adapters', 'Adapters registered in the host tier.');
  private readonly hostLoads = this.counter('tslora_lora_loads_total', 'Adapter loads into the host tier (explicit and implicit).');
  private readonly hostEvictions = this.counter('tslora_lora_host_evictions_total', 'Host-tier evictions by --max-loaded-loras.');
  /** Gauges copied from the engine snapshot (counters among them are monotonic in the engine). */
  private readonly engineGauges: Array<[Gauge | Counter, (e: EngineStats) => number]> = [
    [this.gauge('tslora_num_queue_reqs', 'Requests waiting in the engine queue.'), (e) => e.waiting],
    [this.gauge('tslora_num_running_reqs', 'Requests in the running batch.'), (e) => e.running],
    [this.gauge('tslora_lora_requests_waiting_on_load', 'Waiting requests whose adapter copy is pending.'), (e) => e.waitingOnAdapterLoad],
    [this.gauge('lora_pool_slots_used', 'Device LoRA slots in use (base included).'), (e) => e.slotsUsed],
    [this.gauge('lora_pool_slots_total', 'Device LoRA slots (max-loras-per-batch).'), (e) => e.slotsTotal],
    [this.gauge('tslora_lora_host_tier_bytes', 'Host memory held by host-tier adapter copies (CUDA: page-locked, in the device format).'), (e) => e.hostAdapterBytes],
    [this.counter('tslora_lora_device_loads_total', 'Adapter copies into device slots.'), (e) => e.deviceLoads],
    [this.counter('tslora_lora_device_evictions_total', 'Device slot evictions.'), (e) => e.deviceEvictions],
    [this.gauge('tslora_kv_blocks_used', 'KV cache blocks in use (reclaimable prefix-cache blocks excluded).'), (e) => e.kvBlocksUsed],
    [this.gauge('tslora_kv_blocks_total', 'KV cache blocks.'), (e) => e.kvBlocksTotal],
    [this.gauge('tslora_prefix_cache_hit_rate', 'Share of prompt tokens served from the prefix cache.'), (e) => e.prefixCacheHitRate],
    [this.counter('tslora_engine_steps_total', 'Forward steps run.'), (e) => e.steps],
    [this.counter('tslora_lora_delayed_prefills_total', 'Prefill steps held back for an adapter copy about to finish (overlap loading).'), (e) => e.delayedPrefills],
  ];
  private readonly gateway = new GatewayGauges(this.registry);

  /** The served model name labels base-model requests. */
  private readonly baseModelName: string;

  constructor(baseModelName: string) {
    this.baseModelName = baseModelName;
    collectDefaultMetrics({ register: this.registry });
  }

  /** The `model_name` label: the adapter name, or the served name for the base model. */
  private label(adapter: string | null): { model_name: string } {
    return { model_name: adapter ?? this.baseModelName };
  }

  /** `n` samples accepted for `adapter` (null = the base model). */
  accepted(adapter: string | null, n: number): void {
    this.requests.inc(this.label(adapter), n);
    if (adapter !== null) this.inFlightByAdapter.set(adapter, (this.inFlightByAdapter.get(adapter) ?? 0) + n);
  }

  /** A streaming client was disconnected for leaving too many bytes unread. */
  droppedStreamClient(): void {
    this.streamClientsDropped.inc();
  }

  rejectedForCapacity(): void {
    this.rejected.inc();
  }

  firstToken(adapter: string | null, ttftS: number): void {
    this.ttft.observe(this.label(adapter), ttftS);
  }

  /** `tokens` tokens arrived together `gapS` after the previous update: one ITL observation each. */
  tokensArrived(adapter: string | null, gapS: number, tokens: number): void {
    for (let i = 0; i < tokens; i++) this.itl.observe(this.label(adapter), gapS / tokens);
  }

  sampleFinished(adapter: string | null, s: FinishedSample): void {
    const label = this.label(adapter);
    (s.aborted ? this.aborted : this.finished).inc(label);
    this.e2e.observe(label, s.e2eS);
    this.promptTokens.inc(label, s.promptTokens);
    this.generationTokens.inc(label, s.generationTokens);
    this.cachedTokens.inc(label, s.cachedTokens);
    if (adapter === null) return;
    const left = (this.inFlightByAdapter.get(adapter) ?? 1) - 1;
    if (left > 0) this.inFlightByAdapter.set(adapter, left);
    else this.inFlightByAdapter.delete(adapter);
  }

  /** Forward steps the engine ran (posted with their updates). */
  engineSteps(steps: readonly EngineStepTiming[]): void {
    for (const s of steps) this.engineStep.observe({ phase: s.decodeOnly ? 'decode' : 'mixed' }, s.forwardMs / 1000);
  }

  adapterLoaded(name: string, seconds: number): void {
    this.adapterLoad.observe(this.label(name), seconds);
  }

  /** Adapters with samples in flight (running or queued). */
  adaptersInFlight(): string[] {
    return [...this.inFlightByAdapter.keys()];
  }

  /** Refreshes every snapshot gauge and renders the Prometheus text. */
  async render(snapshot: MetricsSnapshot): Promise<string> {
    const { engine, host } = snapshot;
    this.outstanding.set(host.outstanding);
    this.hostLoaded.set(host.loaded);
    setCounter(this.hostLoads, host.loads);
    setCounter(this.hostEvictions, host.hostEvictions);
    for (const [metric, pick] of this.engineGauges) {
      if (engine === null) metric.remove({}); // left out of the scrape, not reported as 0
      else if (metric instanceof Gauge) metric.set(pick(engine));
      else setCounter(metric, pick(engine));
    }
    this.gateway.update(engine, snapshot.lora, this.adaptersInFlight());
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Mirrors a monotonic figure kept elsewhere into a prom-client counter (which only increments). */
function setCounter(counter: Counter, value: number): void {
  counter.reset();
  counter.inc(value);
}
