/**
 * Server metrics in Prometheus text format (GET /metrics): request counters, token counters, TTFT / ITL / e2e
 * histograms, adapter loads and evictions per tier, and engine gauges fetched from the worker on each scrape.
 */
import type { EngineStats } from '../engine/types.js';

const LATENCY_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_S.length).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < LATENCY_BUCKETS_S.length; i++) if (seconds <= LATENCY_BUCKETS_S[i]) this.counts[i]++;
  }

  render(name: string, help: string): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    LATENCY_BUCKETS_S.forEach((le, i) => lines.push(`${name}_bucket{le="${le}"} ${this.counts[i]}`));
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return lines.join('\n');
  }
}

export class ServerMetrics {
  readonly ttft = new Histogram();
  readonly itl = new Histogram();
  readonly e2e = new Histogram();
  readonly adapterLoadSeconds = new Histogram();
  requestsTotal = 0;
  requestsFinished = 0;
  requestsAborted = 0;
  requestsRejected = 0;
  promptTokens = 0;
  generationTokens = 0;
  cachedTokens = 0;

  render(engine: EngineStats | null, host: { loaded: number; hostEvictions: number; loads: number; outstanding: number }): string {
    const parts: string[] = [];
    const counter = (name: string, help: string, value: number) => parts.push(`# HELP ${name} ${help}\n# TYPE ${name} counter\n${name} ${value}`);
    const gauge = (name: string, help: string, value: number) => parts.push(`# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}`);
    counter('tslora_requests_total', 'Generation requests (samples) accepted.', this.requestsTotal);
    counter('tslora_requests_finished_total', 'Samples that finished normally.', this.requestsFinished);
    counter('tslora_requests_aborted_total', 'Samples aborted (client gone, error, shutdown).', this.requestsAborted);
    counter('tslora_requests_rejected_total', 'Requests rejected because the queue was full.', this.requestsRejected);
    counter('tslora_prompt_tokens_total', 'Prompt tokens of finished samples.', this.promptTokens);
    counter('tslora_generation_tokens_total', 'Generated tokens of finished samples.', this.generationTokens);
    counter('tslora_cached_tokens_total', 'Prompt tokens served from the prefix cache.', this.cachedTokens);
    parts.push(this.ttft.render('tslora_time_to_first_token_seconds', 'Arrival to first token.'));
    parts.push(this.itl.render('tslora_inter_token_latency_seconds', 'Time between streamed token updates, per token.'));
    parts.push(this.e2e.render('tslora_e2e_request_latency_seconds', 'Arrival to completion.'));
    parts.push(this.adapterLoadSeconds.render('tslora_lora_load_seconds', 'Adapter load latency (read + host copy).'));
    gauge('tslora_outstanding_requests', 'Samples submitted and not finished.', host.outstanding);
    gauge('tslora_lora_loaded_adapters', 'Adapters registered in the host tier.', host.loaded);
    counter('tslora_lora_loads_total', 'Adapter loads into the host tier (explicit and implicit).', host.loads);
    counter('tslora_lora_host_evictions_total', 'Host-tier evictions by --max-loaded-loras.', host.hostEvictions);
    if (engine) {
      gauge('tslora_num_queue_reqs', 'Requests waiting in the engine queue.', engine.waiting);
      gauge('tslora_num_running_reqs', 'Requests in the running batch.', engine.running);
      gauge('tslora_lora_requests_waiting_on_load', 'Waiting requests whose adapter copy is pending.', engine.waitingOnAdapterLoad);
      gauge('lora_pool_slots_used', 'Device LoRA slots in use (base included).', engine.slotsUsed);
      gauge('lora_pool_slots_total', 'Device LoRA slots (max-loras-per-batch).', engine.slotsTotal);
      counter('tslora_lora_device_loads_total', 'Adapter copies into device slots.', engine.deviceLoads);
      counter('tslora_lora_device_evictions_total', 'Device slot evictions.', engine.deviceEvictions);
      gauge('tslora_kv_blocks_used', 'KV cache blocks in use or cached.', engine.kvBlocksUsed);
      gauge('tslora_kv_blocks_total', 'KV cache blocks.', engine.kvBlocksTotal);
      gauge('tslora_prefix_cache_hit_rate', 'Share of prompt tokens served from the prefix cache.', engine.prefixCacheHitRate);
      counter('tslora_engine_steps_total', 'Forward steps run.', engine.steps);
      counter('tslora_lora_delayed_prefills_total', 'Prefill steps held back for an adapter copy about to finish (overlap loading).', engine.delayedPrefills);
    }
    return parts.join('\n') + '\n';
  }
}
