/**
 * Runs a bench config: for each round and variant, launch `tslora serve` (or use --url), make sure the adapters
 * are registered, warm up, run every level's workload with streaming requests, scrape /metrics around each
 * level, stop the server. Returns all request records and the summaries per run id.
 */
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Agent } from 'undici';
import { TsloraError } from '../../errors.js';
import type { BenchConfig, Level, Variant, Workload, WorkloadOverride } from '../config/schema.js';
import { resolveWorkload } from '../config/schema.js';
import type { Target } from '../load/stream-request.js';
import type { RequestRecord, RunSummary } from '../metrics/records.js';
import { summarizeRun } from '../metrics/summarize.js';
import { serverInfo } from '../server/admin.js';
import { addStepHistograms, engineStepFigures, type StepHistogram } from '../server/engine-step.js';
import { isHealthy, launchServer, type LaunchedServer } from '../server/launch.js';
import { adaptersForWorkload } from '../workload/plan.js';
import { addCounters, toRecords } from './collect.js';
import { newLiveState } from './live-state.js';
import { measureLevel } from './measure-level.js';
import { prepareModel } from './prepare.js';
import type { BenchReporter } from './reporter.js';
import { ensureAdapters, serverArgsFor } from './server-setup.js';

export interface BenchRunOptions {
  config: BenchConfig;
  outDir: string;
  url: string | null;
  apiKey: string | null;
  startupTimeoutMs: number;
  serverArgs: string[];
  variantFilter: string[] | null;
  overrides: WorkloadOverride;
  reporter: BenchReporter;
  /** first port for launched servers (one more per launch); free ports when null */
  portBase?: number | null;
  /** Ctrl-C: stop sending, cut the requests in flight, stop the server, return what was measured (partial) */
  signal?: AbortSignal;
}

export interface VariantLaunch {
  variant: string;
  round: number;
  argv: string[];
  logPath: string | null;
  serverInfo: unknown;
}

export interface BenchRunOutput {
  model: { description: string; vocabSize: number; adapters: { name: string; path: string | null; rank: number | null }[] };
  launches: VariantLaunch[];
  records: RequestRecord[];
  /** per run id: variant (aggregate over levels and rounds) and variant@level */
  summaries: RunSummary[];
  /** run ids in display order */
  runIds: string[];
  /** true when options.signal cut the run short */
  interrupted: boolean;
}

export function runId(variant: string, level: Level | null): string {
  return level ? `${variant}@${level.name}` : variant;
}

export function selectVariants(config: BenchConfig, filter: string[] | null): Variant[] {
  if (!filter || filter.length === 0) return config.variants;
  const unknown = filter.filter((name) => !config.variants.some((v) => v.name === name));
  if (unknown.length) {
    throw new TsloraError('usage', `--variants names ${unknown.join(', ')}, which the config does not define.`, {
      hint: `Variants in ${config.name}: ${config.variants.map((v) => v.name).join(', ')}.`,
    });
  }
  return config.variants.filter((v) => filter.includes(v.name));
}

/** Every run id a config produces (variant aggregates first), for --check validation and the reporters. */
export function plannedRunIds(config: BenchConfig, variants: Variant[]): string[] {
  const levels = config.levels ?? [];
  return variants.flatMap((v) => [v.name, ...levels.map((l) => runId(v.name, l))]);
}

export function workloadFor(config: BenchConfig, variant: Variant, level: Level | null, overrides: WorkloadOverride): Workload {
  return resolveWorkload(config.workload, level?.workload, variant.workload, overrides);
}

export async function runBench(options: BenchRunOptions): Promise<BenchRunOutput> {
  const { config, reporter } = options;
  mkdirSync(options.outDir, { recursive: true });
  const variants = selectVariants(config, options.variantFilter);
  const levels: (Level | null)[] = config.levels && config.levels.length ? config.levels : [null];
  const model = prepareModel(config, (line) => reporter.log(line));
  const records: RequestRecord[] = [];
  const launches: VariantLaunch[] = [];
  const windows = new Map<string, number>(); // run id → measured seconds, summed over rounds
  const lora = new Map<string, RunSummary['lora']>();
  const engineSteps = new Map<string, StepHistogram | null>(); // level run id → decode-step histogram, summed over rounds
  const clockZero = performance.now();
  const dispatcher = new Agent({ connections: 4096, pipelining: 1, keepAliveTimeout: 30_000 });
  const interrupted = () => options.signal?.aborted === true;

  try {
    for (let round = 0; round < config.rounds && !interrupted(); round++) {
      for (const variant of variants) {
        if (interrupted()) break;
        if (options.url && (round > 0 || variant !== variants[0])) {
          reporter.log(`--url given: skipping variant ${variant.name}${config.rounds > 1 ? ` (round ${round + 1})` : ''}`);
          continue;
        }
        let server: LaunchedServer | null = null;
        let baseUrl = options.url?.replace(/\/+$/, '') ?? '';
        const startLive = newLiveState(runId(variant.name, levels[0]), variant.name, levels[0]?.name ?? null, 0);
        Object.assign(startLive, { round, rounds: config.rounds, message: options.url ? `using ${baseUrl}` : 'starting server' });
        reporter.runStarted(startLive);
        try {
          if (!options.url) {
            const args = serverArgsFor(config, variant, model, options.serverArgs, options.apiKey);
            reporter.log(`${variant.name}: starting tslora serve ${args.join(' ')}`);
            const port = options.portBase ? options.portBase + launches.length : undefined;
            server = await launchServer({ args, logDir: options.outDir, name: config.rounds > 1 ? `${variant.name}-r${round + 1}` : variant.name, startupTimeoutMs: options.startupTimeoutMs, port, signal: options.signal });
            baseUrl = server.baseUrl;
          } else if (!(await isHealthy(baseUrl))) {
            throw new TsloraError('unreachable', `no healthy tslora server at ${baseUrl} (GET /health failed).`);
          }
          await ensureAdapters(baseUrl, options.apiKey, model, (line) => reporter.log(`${variant.name}: ${line}`));
          launches.push({ variant: variant.name, round, argv: server?.argv ?? [`--url ${baseUrl}`], logPath: server?.logPath ?? null, serverInfo: await serverInfo(baseUrl, options.apiKey) });

          for (const [levelIndex, level] of levels.entries()) {
            if (interrupted()) break;
            const workload = workloadFor(config, variant, level, options.overrides);
            const id = runId(variant.name, level);
            const live = levelIndex === 0
              ? startLive
              : { ...newLiveState(id, variant.name, level?.name ?? null, 0), round, rounds: config.rounds, slotsUsed: startLive.slotsUsed, slotsTotal: startLive.slotsTotal };
            Object.assign(live, { run: id, level: level?.name ?? null, total: workload.requests, phase: 'warmup', message: '' });
            if (levelIndex > 0) reporter.runStarted(live);
            const target: Target = { baseUrl, dispatcher, apiKey: options.apiKey, api: workload.api, requestTimeoutMs: workload.requestTimeoutS * 1000, signal: options.signal };
            const adapters = adaptersForWorkload(model.adapters.map((a) => a.name), workload);
            const { result, counters, engineStep } = await measureLevel({ target, workload, adapters, vocabSize: model.vocabSize, warmUp: levelIndex === 0, live });
            const levelRecords = toRecords(result, { run: id, variant: variant.name, level: level?.name ?? null, round }, clockZero);
            records.push(...levelRecords);
            const windowS = levelRecords.length
              ? (Math.max(...levelRecords.map((r) => r.sentAtMs + r.e2eMs)) - Math.min(...levelRecords.map((r) => r.sentAtMs))) / 1000
              : 0;
            for (const key of new Set([id, variant.name])) {
              windows.set(key, (windows.get(key) ?? 0) + windowS);
              lora.set(key, addCounters(lora.get(key), counters));
            }
            engineSteps.set(id, addStepHistograms(engineSteps.get(id), engineStep));
            live.phase = 'done';
            const runRecords = records.filter((r) => r.run === id);
            reporter.runFinished(summarizeRun({ run: id, variant: variant.name, level: level?.name ?? null }, runRecords, workload.sloTtftMs, lora.get(id), windows.get(id), engineStepFigures(engineSteps.get(id) ?? null)), live);
          }
        } catch (error) {
          startLive.phase = 'failed';
          if (!interrupted()) throw error; // an interrupted start-up or warm-up: keep what earlier runs measured
        } finally {
          await server?.stop();
        }
      }
    }
  } finally {
    await dispatcher.close();
  }

  const runIds = plannedRunIds(config, variants).filter((id) => records.some((r) => r.run === id || (r.variant === id && levels[0] !== null)));
  const summaries = runIds.map((id) => {
    const variant = variants.find((v) => v.name === id.split('@')[0])!;
    const level = levels.find((l) => l && runId(variant.name, l) === id) ?? null;
    const runRecords = records.filter((r) => r.run === id || (levels[0] !== null && id === variant.name && r.variant === id));
    const slo = workloadFor(config, variant, level, options.overrides).sloTtftMs;
    return summarizeRun({ run: id, variant: variant.name, level: level?.name ?? null }, runRecords, slo, lora.get(id), windows.get(id), engineStepFigures(engineSteps.get(id) ?? null));
  });
  return {
    model: { description: model.description, vocabSize: model.vocabSize, adapters: model.adapters.map(({ name, path, rank }) => ({ name, path, rank })) },
    launches,
    records,
    summaries,
    runIds,
    interrupted: interrupted(),
  };
}
