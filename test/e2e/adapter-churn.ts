/**
 * Correctness after churn (issue #11): 8 adapters requested at once through 2 device slots and a host tier of 3
 * (--max-loaded-loras), so that adapters are evicted from both tiers, reloaded from disk and copied into slots again
 * while other requests run. Shared by the CPU test (test/e2e/adapter-churn-parity.test.ts) and the GPU test
 * (test/gpu/cuda-adapter-churn.test.ts); the expected tokens are the PyTorch + PEFT references of the fixtures.
 */
import { ADAPTER, FIXTURE, get, greedy, post, reference, startServer } from './server-harness.js';

export const CHURN_MODEL = 'tiny-llama';
/** Eight of the fixture's adapters (every target module, ranks 1 to 64, rsLoRA, patterns). */
export const CHURN_ADAPTERS = ['r1-qv', 'r3-all', 'r5-gateup', 'r8-vdown', 'r16-o', 'r64-rslora', 'r4-pattern', 'r6-regex-layer1'];

export interface ChurnOutput {
  adapter: string;
  prompt: number;
  expected: number[];
  got: number[];
  /** Per generated position: the logprob gap between the best and the second-best token. */
  top2Margins: number[];
}

export interface ChurnRun {
  outputs: ChurnOutput[];
  hostEvictions: number;
  deviceLoads: number;
  /** tslora_lora_host_tier_bytes after the workload (the host tier holds at most 3 adapters). */
  hostTierBytes: number;
  serverOutput: string;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** One server (extra flags: device, dtype), every (adapter, prompt) pair requested at once, twice over. */
export async function runChurn(extraArgs: string[], overlap: boolean): Promise<ChurnRun> {
  const ref = reference(CHURN_MODEL);
  const server = await startServer([
    '--model-path', FIXTURE(CHURN_MODEL), '--max-loras-per-batch', '2', '--max-loaded-loras', '3', '--enable-metrics',
    '--max-lora-rank', '64', '--lora-target-modules', 'all',
    // Start-up lists may not exceed --max-loaded-loras (spec a.2): three at start-up, the other five at run time.
    '--lora-paths', ...CHURN_ADAPTERS.slice(0, 3).map((n) => `${n}=${ADAPTER(CHURN_MODEL, n)}`),
    ...(overlap ? ['--enable-lora-overlap-loading'] : []), ...extraArgs,
  ]);
  try {
    for (const name of CHURN_ADAPTERS.slice(3)) {
      const res = await post(`${server.url}/load_lora_adapter`, { lora_name: name, lora_path: ADAPTER(CHURN_MODEL, name) });
      if (res.status !== 200) throw new Error(`loading ${name}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    }
    const jobs: Array<{ adapter: string; prompt: number }> = [];
    for (let round = 0; round < 2; round++)
      for (let p = 0; p < ref.prompts.length; p++) for (const adapter of CHURN_ADAPTERS) jobs.push({ adapter, prompt: p });
    const responses = await Promise.all(jobs.map((j) => post(`${server.url}/generate`, {
      input_ids: ref.prompts[j.prompt], lora_path: j.adapter, sampling_params: greedy(ref.greedyTokens),
      return_logprob: true, top_logprobs_num: 2,
    })));
    const outputs = jobs.map((j, i) => {
      const body = responses[i].body;
      if (responses[i].status !== 200) throw new Error(`${j.adapter} prompt ${j.prompt}: HTTP ${responses[i].status} ${JSON.stringify(body)}`);
      const tops = (body.meta_info.output_top_logprobs ?? []) as Array<Array<[number, number, unknown]>>;
      return {
        ...j,
        expected: ref.adapters.find((a) => a.name === j.adapter)!.prompts[j.prompt].greedy,
        got: body.output_ids as number[],
        top2Margins: tops.map((t) => (t.length >= 2 ? t[0][0] - t[1][0] : Number.POSITIVE_INFINITY)),
      };
    });
    const metrics = (await get(`${server.url}/metrics`)).body as string;
    return {
      outputs,
      hostEvictions: metric(metrics, 'tslora_lora_host_evictions_total'),
      deviceLoads: metric(metrics, 'tslora_lora_device_loads_total'),
      hostTierBytes: metric(metrics, 'tslora_lora_host_tier_bytes'),
      serverOutput: server.output(),
    };
  } finally {
    await server.stop();
  }
}

/** The first position where `got` leaves the reference, or -1. */
export function firstDivergence(o: ChurnOutput): number {
  for (let i = 0; i < o.expected.length; i++) if (o.got[i] !== o.expected[i]) return i;
  return -1;
}
