/**
 * The gateway "model server protocol" gauges (kubernetes-sigs/gateway-api-inference-extension,
 * docs/proposals/003-model-server-protocol) under vLLM's names, which the reference endpoint picker (EPP) and
 * llm-d read by default, so an InferencePool of tslora servers needs no metric flags. docs/deploy.md has the table.
 *   vllm:num_requests_waiting   gauge  requests queued in the engine (not yet in the running batch)
 *   vllm:num_requests_running   gauge  requests in the running batch
 *   vllm:kv_cache_usage_perc    gauge  KV blocks in use / total, a fraction 0..1 as vLLM reports it (reclaimable
 *                                      prefix-cache blocks count as free); vllm:gpu_cache_usage_perc, the older
 *                                      EPP default, carries the same value
 *   vllm:cache_config_info      gauge  1, labels block_size (tokens per KV block) and num_gpu_blocks
 *   vllm:lora_requests_info     gauge  last-update time in seconds since the epoch; labels max_lora (device slots
 *                                      = --max-loras-per-batch), running_lora_adapters (resident in a slot with the
 *                                      copy finished), waiting_lora_adapters (requested by samples in flight and not
 *                                      ready in a slot), both comma-separated and sorted
 * The labelled gauges are reset on each update so that exactly one series of each exists; without an engine snapshot
 * (worker gone, /health failing too) every gauge is left out of the scrape rather than reported stale or as 0.
 */
import { Gauge, type Registry } from 'prom-client';
import type { EngineStats } from '../engine/types.js';

/** How the server names what sits in the device slots. */
export interface LoraView {
  /** Adapter name of a slot id; null for the base model's slot and for ids no longer registered. */
  nameOfSlotId(id: string): string | null;
}

export class GatewayGauges {
  private readonly waiting: Gauge;
  private readonly running: Gauge;
  private readonly kvUsage: Gauge[];
  private readonly cacheConfig: Gauge;
  private readonly loraInfo: Gauge;

  constructor(registry: Registry) {
    const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers: [registry] });
    this.waiting = gauge('vllm:num_requests_waiting', 'Gateway protocol TotalQueuedRequests: requests waiting in the queue.');
    this.running = gauge('vllm:num_requests_running', 'Gateway protocol TotalRunningRequests: requests in the running batch.');
    this.kvUsage = [
      gauge('vllm:kv_cache_usage_perc', 'Gateway protocol KVCacheUtilization: fraction of KV cache blocks in use (0..1).'),
      gauge('vllm:gpu_cache_usage_perc', 'Same as vllm:kv_cache_usage_perc, under the name older endpoint pickers read.'),
    ];
    this.cacheConfig = gauge('vllm:cache_config_info', 'KV cache configuration (value 1): tokens per block and blocks in device memory.', ['block_size', 'num_gpu_blocks']);
    this.loraInfo = gauge('vllm:lora_requests_info', 'LoRA state; value = last update time (s since epoch).', ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters']);
  }

  update(engine: EngineStats | null, lora: LoraView, adaptersInFlight: string[]): void {
    this.cacheConfig.reset();
    this.loraInfo.reset();
    if (engine === null) {
      for (const g of [this.waiting, this.running, ...this.kvUsage]) g.remove({});
      return;
    }
    this.waiting.set(engine.waiting);
    this.running.set(engine.running);
    const usage = engine.kvBlocksTotal > 0 ? engine.kvBlocksUsed / engine.kvBlocksTotal : 0;
    for (const g of this.kvUsage) g.set(usage);
    this.cacheConfig.set({ block_size: String(engine.kvBlockSize), num_gpu_blocks: String(engine.kvBlocksTotal) }, 1);
    const loading = new Set(engine.slotLoadingIds);
    const ready = new Set<string>();
    for (const id of engine.slotIds) {
      if (id === null || loading.has(id)) continue;
      const name = lora.nameOfSlotId(id);
      if (name !== null) ready.add(name);
    }
    const waiting = adaptersInFlight.filter((name) => !ready.has(name));
    this.loraInfo.set(
      { max_lora: String(engine.slotsTotal), running_lora_adapters: [...ready].sort().join(','), waiting_lora_adapters: waiting.sort().join(',') },
      Date.now() / 1000,
    );
  }
}
