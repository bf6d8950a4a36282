/**
 * GET /metrics read by a real Prometheus text parser (parse-prometheus-text-format): the gateway protocol gauges
 * under vLLM's names (queue, running, KV use, cache_config_info, lora_requests_info with its labels while adapters
 * are resident and while requests wait for the single device slot), per-adapter request metrics, and the
 * process / Node default metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { ADAPTER, FIXTURE, get, greedy, post, startServer } from './server-harness.js';

const MODEL = 'tiny-llama';

interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
}
interface Family {
  name: string;
  type: string;
  metrics: Sample[];
}

async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await get(`${url}/metrics`);
  assert.equal(res.status, 200);
  return new Map((parsePrometheusTextFormat(res.body as string) as Family[]).map((f) => [f.name, f]));
}

/** The parser folds every label set of a histogram into one entry, so histograms are parsed one label set at a time. */
async function histogramCount(url: string, name: string, labels: string): Promise<number> {
  const text = (await get(`${url}/metrics`)).body as string;
  const lines = text.split('\n').filter((l) => l.startsWith(`# HELP ${name} `) || l.startsWith(`# TYPE ${name} `) || (l.startsWith(`${name}_bucket{`) && l.includes(labels)));
  const family = (parsePrometheusTextFormat(lines.join('\n') + '\n') as Family[]).find((f) => f.name === name);
  return Number(family?.metrics[0]?.buckets?.['+Inf'] ?? 0);
}

function only(families: Map<string, Family>, name: string, type = 'GAUGE'): Sample {
  const family = families.get(name);
  assert.ok(family, `${name} is exported`);
  assert.equal(family.type, type, `${name} is a ${type}`);
  assert.equal(family.metrics.length, 1, `${name} has exactly one series`);
  return family.metrics[0];
}

const loraLabels = (families: Map<string, Family>) => only(families, 'vllm:lora_requests_info').labels!;

test('metrics: protocol gauges, LoRA labels while resident and while waiting for a slot, per-adapter series', async () => {
  const server = await startServer([
    '--model-path', FIXTURE(MODEL), '--enable-metrics', '--max-loras-per-batch', '1', '--max-lora-rank', '16', '--lora-target-modules', 'all',
    '--lora-paths', `a=${ADAPTER(MODEL, 'r1-qv')}`, `b=${ADAPTER(MODEL, 'r4-pattern')}`,
  ]);
  try {
    const info = (await get(`${server.url}/get_server_info`)).body;
    const servedName = (await get(`${server.url}/get_model_info`)).body.served_model_name;
    let families = await scrape(server.url);
    assert.equal(Number(only(families, 'vllm:num_requests_waiting').value), 0);
    assert.equal(Number(only(families, 'vllm:num_requests_running').value), 0);
    assert.equal(Number(only(families, 'vllm:kv_cache_usage_perc').value), 0);
    assert.equal(Number(only(families, 'vllm:gpu_cache_usage_perc').value), 0);
    const cache = only(families, 'vllm:cache_config_info');
    assert.equal(Number(cache.value), 1);
    assert.deepEqual(cache.labels, { block_size: String(info.engine.kvBlockSize), num_gpu_blocks: String(info.engine.kvNumBlocks) });
    const idle = only(families, 'vllm:lora_requests_info');
    assert.deepEqual(idle.labels, { max_lora: '1', running_lora_adapters: '', waiting_lora_adapters: '' });
    const beforeS = Date.now() / 1000;
    assert.ok(Math.abs(Number(idle.value) - beforeS) < 600, `value is a Unix time in seconds, got ${idle.value}`);

    // Resident: after a request for a, a sits in the only slot, ready, and nothing waits.
    const done = await post(`${server.url}/generate`, { text: 'hello', lora_path: 'a', sampling_params: greedy(8) });
    assert.equal(done.status, 200);
    families = await scrape(server.url);
    assert.deepEqual(loraLabels(families), { max_lora: '1', running_lora_adapters: 'a', waiting_lora_adapters: '' });
    assert.ok(Number(only(families, 'vllm:lora_requests_info').value) >= beforeS, 'the timestamp moves forward');

    // Waiting: a and b compete for one slot, so while both have requests in flight one runs and the other waits.
    let stop = false;
    const load = (adapter: string) =>
      (async () => {
        while (!stop) await Promise.all([0, 1, 2].map(() => post(`${server.url}/generate`, { text: 'hi', lora_path: adapter, sampling_params: greedy(120) })));
      })();
    const clients = [load('a'), load('b')];
    let seen: { running: string; waiting: string; queued: number; runningReqs: number; kv: number } | null = null;
    for (let scrapes = 0; scrapes < 500 && seen === null; scrapes++) {
      const f = await scrape(server.url);
      const labels = loraLabels(f);
      const running = labels.running_lora_adapters.split(',').filter(Boolean);
      const waiting = labels.waiting_lora_adapters.split(',').filter(Boolean);
      assert.ok(running.length <= 1, `at most max_lora adapters run: ${labels.running_lora_adapters}`);
      assert.ok(!running.some((n) => waiting.includes(n)), `an adapter is running or waiting, not both: ${JSON.stringify(labels)}`);
      const kv = Number(only(f, 'vllm:kv_cache_usage_perc').value);
      assert.ok(kv >= 0 && kv <= 1, `KV use is a fraction: ${kv}`);
      const queued = Number(only(f, 'vllm:num_requests_waiting').value);
      const runningReqs = Number(only(f, 'vllm:num_requests_running').value);
      if (running.length === 1 && waiting.length === 1 && queued >= 1 && runningReqs >= 1) seen = { running: running[0], waiting: waiting[0], queued, runningReqs, kv };
    }
    stop = true;
    await Promise.all(clients);
    assert.ok(seen, 'a scrape showed one adapter running and the other waiting for the slot');
    assert.deepEqual([seen.running, seen.waiting].sort(), ['a', 'b']);
    assert.ok(seen.kv > 0, 'KV blocks are in use while requests run');

    // Per-adapter request metrics and the default process / Node metrics.
    families = await scrape(server.url);
    const requests = families.get('tslora_requests_total')!;
    assert.equal(requests.type, 'COUNTER');
    const byModel = new Map(requests.metrics.map((m) => [m.labels!.model_name, Number(m.value)]));
    assert.ok(byModel.get('a')! >= 4 && byModel.get('b')! >= 3, JSON.stringify([...byModel]));
    const tokens = families.get('tslora_generation_tokens_total')!.metrics.find((m) => m.labels!.model_name === 'b')!;
    assert.equal(Number(tokens.value) % 120, 0, 'b generated whole requests of 120 tokens');
    assert.equal(await histogramCount(server.url, 'tslora_time_to_first_token_seconds', 'model_name="a"'), byModel.get('a'));
    assert.ok((await histogramCount(server.url, 'tslora_inter_token_latency_seconds', 'model_name="b"')) >= 119 * byModel.get('b')!);
    await post(`${server.url}/generate`, { text: 'x', sampling_params: greedy(2) });
    const base = (await scrape(server.url)).get('tslora_requests_total')!.metrics.find((m) => m.labels!.model_name === servedName);
    assert.equal(Number(base?.value), 1, 'base requests are labelled with the served model name');
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      assert.ok(families.has(name), `${name} is exported`);
    }
    assert.equal(only(families, 'tslora_num_queue_reqs').value, only(families, 'vllm:num_requests_waiting').value);
  } finally {
    assert.equal(await server.stop(), 0, server.output());
  }
});
