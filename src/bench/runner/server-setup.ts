/**
 * Getting a launched server ready for a variant: the `tslora serve` arguments (model, flags, adapters, pool
 * sizing, metrics) and the runtime loads of adapters the server does not list yet.
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { TsloraError } from '../../errors.js';
import type { BenchConfig, Variant } from '../config/schema.js';
import { loadAdapter, registeredAdapters } from '../server/admin.js';
import { flagsToArgs } from '../server/launch.js';
import { poolSizingArgs, type PreparedModel } from './prepare.js';

export function serverArgsFor(config: BenchConfig, variant: Variant, model: PreparedModel, extra: string[], apiKey: string | null): string[] {
  const flags = { ...config.serverFlags, ...variant.flags };
  const args = [...model.modelArgs, ...flagsToArgs(flags)];
  const loadable = model.adapters.filter((a) => a.path !== null);
  // the demo model's server registers its own adapters at start-up (no --model-path, no --lora-paths)
  const demoServesItsAdapters = model.isDemo && 'demo' in config.adapters;
  if (loadable.length > 0 && !demoServesItsAdapters) {
    if (config.adapterLoading === 'startup') {
      args.push('--lora-paths', ...loadable.map((a) => `${a.name}=${a.path}`));
    } else {
      args.push('--enable-lora', ...poolSizingArgs(loadable, flags));
    }
  }
  if (apiKey) args.push('--api-key', apiKey);
  // slot occupancy and adapter loads come from /metrics, which is off by default
  if (!('enable-metrics' in flags)) args.push('--enable-metrics');
  // The CPU engine would take every core, leaving the server's HTTP thread and this client to run only when the OS
  // preempts it: tokens then queue up between the engine worker and the HTTP thread and reach the client in bursts
  // (ITL ≈ 0 for most gaps, TTFT ≈ E2E). One core stays free for them unless the config or --server-args say otherwise.
  if (!('num-threads' in flags) && !extra.some((a) => a.startsWith('--num-threads'))) {
    args.push('--num-threads', String(Math.max(1, availableParallelism() - 1)));
  }
  return [...args, ...extra];
}

export async function ensureAdapters(baseUrl: string, apiKey: string | null, model: PreparedModel, log: (line: string) => void): Promise<void> {
  const needed = model.adapters;
  if (needed.length === 0) return;
  const registered = await registeredAdapters(baseUrl, apiKey);
  if (registered === null) {
    log('could not list adapters (GET /v1/models); assuming they are registered');
    return;
  }
  for (const adapter of needed) {
    if (registered.includes(adapter.name)) continue;
    if (!adapter.path) throw new TsloraError('usage', `adapter '${adapter.name}' is not registered on the server and bench has no path for it.`);
    const started = performance.now();
    await loadAdapter(baseUrl, apiKey, adapter.name, adapter.path);
    log(`loaded adapter ${adapter.name} in ${(performance.now() - started).toFixed(0)} ms`);
  }
}
