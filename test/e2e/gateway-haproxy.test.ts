/**
 * Two replicas (`tslora serve --replicas 2 --lora-resolver-dir ...`) behind the shipped HAProxy configuration:
 *   - affinity: while both are up, every adapter's requests land on one replica (counted by each replica's
 *     per-adapter tslora_requests_total, and only that replica loaded the adapter on demand);
 *   - both replicas export the gateway protocol gauges;
 *   - failover: a replica killed (SIGKILL) mid-run loses no request sent after the kill (HAProxy retries on the
 *     survivor), and its adapters move to the survivor, which loads them from the shared directory.
 * The figures (requests routed, affinity share, failover losses) are printed as test diagnostics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIXTURE, post } from './server-harness.js';
import { freePortRun, haproxyMissing, requestsByModel, scrapeFamilies, startHaproxy, startReplicas } from './gateway-harness.js';

const MODEL = 'tiny-llama';
const ADAPTERS = ['r1-qv', 'r16-o', 'r3-all', 'r4-pattern', 'r5-gateup', 'r6-regex-layer1', 'r8-vdown', 'r64-rslora'];
const PROTOCOL_GAUGES = ['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc', 'vllm:cache_config_info', 'vllm:lora_requests_info'];

interface Outcome {
  adapter: string;
  sentAtMs: number;
  status: number;
}

test('two replicas behind HAProxy: adapter affinity, protocol gauges on both, failover without losing unstarted requests', { skip: haproxyMissing ? 'haproxy is not installed (apt-get install haproxy; .ci/run installs it)' : false }, async (t) => {
  const basePort = await freePortRun(2);
  const proxyPort = await freePortRun(1);
  const replicaUrls = [0, 1].map((i) => `http://127.0.0.1:${basePort + i}`);
  const replicas = await startReplicas(2, basePort, [
    '--model-path', FIXTURE(MODEL), '--enable-metrics', '--enable-lora', '--max-lora-rank', '64', '--lora-target-modules', 'all',
    '--lora-resolver-dir', `${FIXTURE(MODEL)}/adapters`,
  ]);
  const proxy = await startHaproxy(proxyPort, [basePort, basePort + 1]).catch(async (error) => {
    replicas.proc.kill('SIGTERM');
    await replicas.exited;
    throw error;
  });
  const complete = async (adapter: string): Promise<Outcome> => {
    const sentAtMs = performance.now();
    const res = await post(`http://127.0.0.1:${proxyPort}/v1/completions`, { model: adapter, prompt: 'hello', max_tokens: 4, temperature: 0 }).catch(() => ({ status: 0 }));
    return { adapter, sentAtMs, status: res.status };
  };
  let killed = false;
  try {
    // Affinity while both replicas are up.
    const ROUNDS = 5;
    for (let round = 0; round < ROUNDS; round++) {
      const results = await Promise.all(ADAPTERS.map(complete));
      for (const r of results) assert.equal(r.status, 200, `round ${round}: ${r.adapter} answered ${r.status}`);
    }
    const counts = await Promise.all(replicaUrls.map(requestsByModel));
    const home = new Map<string, number>();
    for (const adapter of ADAPTERS) {
      const perReplica = counts.map((c) => c.get(adapter) ?? 0);
      assert.equal(perReplica[0] + perReplica[1], ROUNDS, `${adapter}: every request counted once (${perReplica})`);
      const share = Math.max(...perReplica) / ROUNDS;
      t.diagnostic(`affinity ${adapter}: replica1=${perReplica[0]} replica2=${perReplica[1]} home share ${(share * 100).toFixed(0)}%`);
      assert.equal(share, 1, `${adapter}'s requests all land on one replica`);
      home.set(adapter, perReplica[0] > 0 ? 0 : 1);
    }
    const homedOn = [0, 1].map((i) => ADAPTERS.filter((a) => home.get(a) === i));
    t.diagnostic(`routed ${ROUNDS * ADAPTERS.length} requests: replica1 is home to ${homedOn[0].join(',')}; replica2 to ${homedOn[1].join(',')}`);
    assert.ok(homedOn[0].length > 0 && homedOn[1].length > 0, 'the hash spreads the adapters over both replicas');

    // Both replicas export the gateway protocol gauges; each lists only its own adapters as running.
    for (const [i, url] of replicaUrls.entries()) {
      const families = await scrapeFamilies(url);
      for (const name of PROTOCOL_GAUGES) {
        assert.equal(families.get(name)?.type, 'GAUGE', `replica ${i + 1} exports ${name}`);
        assert.equal(families.get(name)?.metrics.length, 1);
      }
      const running = families.get('vllm:lora_requests_info')!.metrics[0].labels!.running_lora_adapters.split(',').filter(Boolean);
      assert.ok(running.length > 0 && running.every((a) => homedOn[i].includes(a)), `replica ${i + 1} runs only its adapters: ${running}`);
    }

    // Failover: clients keep sending while replica 2 is killed; then its adapters must be served by replica 1.
    const victim = 1;
    const outcomes: Outcome[] = [];
    let killAtMs = Infinity;
    let stop = false;
    const client = async (offset: number) => {
      for (let i = offset; !stop; i++) outcomes.push(await complete(ADAPTERS[i % ADAPTERS.length]));
    };
    const clients = [0, 3, 5].map(client);
    while (outcomes.length < 15) await new Promise((r) => setTimeout(r, 10));
    killAtMs = performance.now();
    process.kill(replicas.pids[victim], 'SIGKILL');
    killed = true;
    while (outcomes.filter((o) => o.sentAtMs > killAtMs).length < 3 * ADAPTERS.length) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    await Promise.all(clients);
    const before = outcomes.filter((o) => o.sentAtMs <= killAtMs);
    const after = outcomes.filter((o) => o.sentAtMs > killAtMs);
    const lostInFlight = before.filter((o) => o.status !== 200);
    t.diagnostic(`failover: ${outcomes.length} requests (${before.length} sent before the kill, ${after.length} after); lost: ${lostInFlight.length} of those in flight at the kill, ${after.filter((o) => o.status !== 200).length} sent after`);
    assert.ok(lostInFlight.length <= 3, 'only requests in flight at the kill (3 clients) can be lost');
    for (const o of after) assert.equal(o.status, 200, `${o.adapter} sent after the kill answered ${o.status}`);
    const survivor = await requestsByModel(replicaUrls[1 - victim]);
    for (const adapter of homedOn[victim]) {
      assert.ok((survivor.get(adapter) ?? 0) > 0, `${adapter} moved to the surviving replica`);
    }
    const survivorFamilies = await scrapeFamilies(replicaUrls[1 - victim]);
    assert.equal(survivorFamilies.get('vllm:lora_requests_info')?.metrics.length, 1);
  } finally {
    await proxy.stop();
    replicas.proc.kill('SIGTERM');
    const code = await replicas.exited;
    if (killed) assert.equal(code, 128 + 9, `the supervisor reports the killed replica's status:\n${replicas.output()}`);
  }
});
