/**
 * Entry of `tslora bench` once flags are parsed: resolve and validate the config and the --check expressions,
 * pick a reporter (Ink dashboard on a TTY, plain lines otherwise), run, write results, print the comparison
 * table, evaluate the checks. Returns the process exit code (EXIT_CODES.checkFailed when a check fails,
 * INTERRUPTED_EXIT after Ctrl-C: the results written are marked partial; a second Ctrl-C quits at once).
 */
import { resolve } from 'node:path';
import { EXIT_CODES, TsloraError } from '../errors.js';
import { evaluateCheck, parseCheck, referencedRuns, type CheckExpression } from './check/check-expression.js';
import { listBundledConfigs, loadBenchConfig } from './config/load-config.js';
import type { BenchConfig, WorkloadOverride } from './config/schema.js';
import { PlainReporter } from './reporters/plain.js';
import { summaryTables } from './report/table.js';
import { writeOutputs } from './report/write-outputs.js';
import { resultsToJson, type BenchResults } from './report/results.js';
import { captureEnvironment, describeHardware, finishEnvironment } from './runner/environment.js';
import type { BenchReporter } from './runner/reporter.js';
import { plannedRunIds, runBench, selectVariants, workloadFor } from './runner/run-bench.js';
import { planRequests } from './workload/plan.js';

export interface BenchCliOptions {
  out?: string;
  json?: boolean;
  dashboard?: boolean;
  check?: string[];
  variants?: string[];
  requests?: number;
  duration?: number;
  seed?: number;
  rounds?: number;
  dryRun?: boolean;
  list?: boolean;
  url?: string;
  apiKey?: string;
  startupTimeout?: number;
  serverArgs?: string[];
  portBase?: number;
}

/** 128 + SIGINT, as shells report a process ended by Ctrl-C. */
export const INTERRUPTED_EXIT = 130;

function overridesFrom(options: BenchCliOptions): WorkloadOverride {
  const overrides: WorkloadOverride = {};
  if (options.requests !== undefined) {
    if (options.requests < 1) throw new TsloraError('usage', `--requests must be at least 1 (got ${options.requests}).`);
    overrides.requests = options.requests;
  }
  if (options.duration !== undefined) {
    if (!(options.duration > 0)) throw new TsloraError('usage', `--duration must be a positive number of seconds (got ${options.duration}).`);
    overrides.durationS = options.duration;
  }
  if (options.seed !== undefined) overrides.seed = options.seed;
  return overrides;
}

/**
 * The config's own checks plus --check. Every reference must name a run of the config; the config's checks on
 * variants left out by --variants are dropped (they cannot be evaluated), while a --check on them is an error.
 */
/**
 * With --url only the first selected variant runs: the checks (the config's and --check) that need another run
 * cannot be evaluated; they are left out, each with a warning, instead of failing the run.
 */
export function checksForUrl(config: BenchConfig, extra: string[], runIds: string[], allRunIds: string[], warn: (line: string) => void): CheckExpression[] {
  const measured = runIds.filter((id) => id.split('@')[0] === runIds[0].split('@')[0]);
  const all = parseChecks(config, extra, allRunIds, allRunIds);
  return all.filter((check) => {
    const missing = referencedRuns(check).filter((run) => !measured.includes(run));
    if (missing.length > 0) warn(`warning: --url measures only '${measured[0]}'; check "${check.source}" needs ${missing.join(', ')} and is not evaluated`);
    return missing.length === 0;
  });
}

export function parseChecks(config: BenchConfig, extra: string[], runIds: string[], allRunIds: string[] = runIds): CheckExpression[] {
  const validate = (check: CheckExpression, known: string[]) => {
    for (const run of referencedRuns(check)) {
      if (!known.includes(run)) {
        throw new TsloraError('usage', `--check "${check.source}" refers to run '${run}', which this ${known === runIds ? 'run' : 'config'} does not produce.`, {
          hint: `Runs: ${known.join(', ')}.`,
        });
      }
    }
    return check;
  };
  const fromConfig = config.checks.map((source) => validate(parseCheck(source), allRunIds)).filter((check) => referencedRuns(check).every((run) => runIds.includes(run)));
  return [...fromConfig, ...extra.map((source) => validate(parseCheck(source), runIds))];
}

function dryRun(config: BenchConfig, options: BenchCliOptions, overrides: WorkloadOverride): string {
  const variants = selectVariants(config, options.variants ?? null);
  const levels = config.levels?.length ? config.levels : [null];
  const plan = variants.map((variant) => ({
    variant: variant.name,
    flags: { ...config.serverFlags, ...variant.flags },
    levels: levels.map((level) => {
      const workload = workloadFor(config, variant, level, overrides);
      const requests = planRequests({ workload, adapters: Array.from({ length: workload.adapterCount ?? 4 }, (_v, i) => `adapter-${i}`), vocabSize: 32000, warmup: false });
      return {
        level: level?.name ?? null,
        workload,
        firstRequests: requests.slice(0, 5).map(({ inputIds: _ids, ...rest }) => rest),
      };
    }),
  }));
  return JSON.stringify({ name: config.name, runs: plannedRunIds(config, variants), plan }, null, 2);
}

export async function runBenchCli(configArg: string, rawOptions: Record<string, unknown>): Promise<number> {
  const options = rawOptions as BenchCliOptions;
  if (options.list) {
    for (const entry of listBundledConfigs()) process.stdout.write(`${entry.name.padEnd(20)} ${entry.description}\n`);
    return EXIT_CODES.ok;
  }
  const loaded = loadBenchConfig(configArg);
  const { path } = loaded;
  if (options.rounds !== undefined && options.rounds < 1) throw new TsloraError('usage', `--rounds must be at least 1 (got ${options.rounds}).`);
  const config = options.rounds !== undefined ? { ...loaded.config, rounds: options.rounds } : loaded.config;
  const overrides = overridesFrom(options);
  if (options.portBase !== undefined && !(options.portBase >= 1 && options.portBase <= 65535)) {
    throw new TsloraError('usage', `--port-base must be a port between 1 and 65535 (got ${options.portBase}).`);
  }
  const selected = selectVariants(config, options.variants ?? null);
  // --url measures the first selected variant once: plan (and show) only that
  const variants = options.url ? selected.slice(0, 1) : selected;
  const runIds = plannedRunIds(config, variants);
  const allRunIds = plannedRunIds(config, config.variants);
  const checks = options.url
    ? checksForUrl(config, options.check ?? [], runIds, allRunIds, (line) => process.stderr.write(`${line}\n`))
    : parseChecks(config, options.check ?? [], runIds, allRunIds);
  if (options.dryRun) {
    process.stdout.write(`${dryRun(config, options, overrides)}\n`);
    return EXIT_CODES.ok;
  }

  const outDir = resolve(options.out ?? `bench-out/${config.name}`);
  const useDashboard = !options.json && options.dashboard !== false && Boolean(process.stderr.isTTY);
  let reporter: BenchReporter;
  if (useDashboard) {
    const { InkReporter } = await import('./reporters/ink/ink-reporter.js');
    reporter = new InkReporter();
  } else {
    reporter = new PlainReporter();
  }
  const startedAt = new Date().toISOString();
  const environment = await captureEnvironment();
  reporter.start({ name: config.name, description: config.description ?? '', plannedRuns: runIds, outDir });
  // Ctrl-C (or SIGTERM): stop sending, cut what is in flight, stop the servers, write what was measured
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) process.exit(INTERRUPTED_EXIT); // second Ctrl-C; execa's cleanup kills the servers
    reporter.log(`${signal}: stopping; writing the results measured so far (partial). ${signal === 'SIGINT' ? 'Ctrl-C again to quit at once.' : ''}`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let output;
  try {
    output = await runBench({
      config,
      outDir,
      url: options.url ?? null,
      apiKey: options.apiKey ?? null,
      startupTimeoutMs: (options.startupTimeout ?? 300) * 1000,
      serverArgs: options.serverArgs ?? [],
      variantFilter: variants.map((v) => v.name),
      overrides,
      reporter,
      portBase: options.portBase ?? null,
      signal: interrupt.signal,
    });
  } finally {
    await reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const summaries = new Map(output.summaries.map((s) => [s.run, s]));
  const checkResults = checks.map((check) => evaluateCheck(check, summaries));
  const results: BenchResults = {
    tool: 'tslora bench',
    schemaVersion: 1,
    name: config.name,
    description: config.description ?? '',
    startedAt,
    finishedAt: new Date().toISOString(),
    configPath: path,
    config,
    environment: finishEnvironment(environment),
    model: output.model,
    launches: output.launches,
    runIds: output.runIds,
    summaries: output.summaries,
    checks: checkResults,
    records: output.records,
    ...(output.interrupted ? { partial: { reason: 'interrupted by a signal (Ctrl-C)', at: new Date().toISOString() } } : {}),
  };
  const written = writeOutputs(outDir, results);

  const human = options.json ? process.stderr : process.stdout;
  human.write(`\n${config.name} on ${describeHardware(environment)}${output.interrupted ? ' (PARTIAL: interrupted)' : ''}\n`);
  human.write(`${summaryTables(output.summaries, { color: Boolean(human.isTTY) })}\n`);
  for (const check of checkResults) human.write(`check ${check.message}\n`);
  const errors = output.records.filter((r) => r.error !== null).length;
  if (errors > 0) human.write(`warning: ${errors} requests failed; see ${written.reportPath}\n`);
  human.write(`results: ${written.resultsPath}\nreport:  ${written.reportPath}\n`);
  if (options.json) process.stdout.write(`${resultsToJson(results)}\n`);
  if (output.interrupted) return INTERRUPTED_EXIT;
  return checkResults.every((c) => c.passed) ? EXIT_CODES.ok : EXIT_CODES.checkFailed;
}
