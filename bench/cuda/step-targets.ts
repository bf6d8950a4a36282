/**
 * Issue #12's target table, computed from one device run's benchmark outputs (never typed in by hand):
 *   node --import tsx bench/cuda/step-targets.ts --out bench/cuda/results/step-targets.json --commit SHA \
 *     [--bandwidth bw.json] [--decode-8b decode-8b.json[,more.json…]] [--lora-bench lora/bench.json] [--gemm-accumulate g.json] [--store-first 1|0] [--decode-1b decode-1b.json \
 *      --serving results.json [--serving-variant after]] [--triton-vs-csgmv results.json]
 * One entry per row of the issue's table: {value, target, met}, value null and met false with a note when the run did
 * not measure it. Several --decode-8b files (one per process, same configuration): each row is their median
 * (decode-median.ts). Rows with two figures (shared / distinct, c1 / c64, ITL / E2E) carry an object of both and are met
 * only when both are. The serving row subtracts the server's own decode step of the same level (bench summaries'
 * engineStep), not decode.ts's step at another context length.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { median, medianDecodeReport } from './decode-median.js';

/** A decode.ts row (its JSON's results[]). */
export interface DecodeRow {
  loraBackend: string;
  batch?: number;
  scenario?: string;
  stepMs: number;
  floorFraction?: number | null;
}
export interface DecodeReport {
  gpu: string;
  results: DecodeRow[];
}
/** bench/lora's lora_cuda_bench JSON: per-layer rows have module "layer" and graphUs. */
export interface LoraBenchReport {
  device: string;
  results: Array<{ case: string; strategy: string; module: string; graphUs?: number }>;
}
/** The parts of a `tslora bench` results.json used here (latencies in ms). */
export interface ServingReport {
  summaries: Array<{
    variant: string;
    level: string | null;
    itl: { p50: number };
    e2e: { p50: number };
    errors: number;
    /** The server's own decode-only forward steps in the same window (its tslora_engine_step_seconds histogram). */
    engineStep?: { decodeSteps: number; decodeStepP50Ms: number; decodeStepMeanMs: number } | null;
  }>;
}
export interface StepTargetInputs {
  decode8b?: DecodeReport;
  /** The processes decode8b is the median of (several --decode-8b files): the LoRA cost row notes each one's own ratio. */
  decode8bProcesses?: DecodeReport[];
  loraBench?: LoraBenchReport;
  decode1b?: DecodeReport;
  serving?: ServingReport;
  servingVariant?: string;
  tritonVsCsgmv?: ServingReport;
  /** bench/cuda/gemm-accumulate-bench.cu: what cuBLAS' beta = 1 adds to the prefill projections (store-first's share). */
  gemmAccumulate?: GemmAccumulateReport;
  /**
   * Whether the engine runs the store-first prefill (TSLORA_CUDA_LORA_STORE_FIRST) in the configuration the table
   * describes: then the prefill row counts the store-form kernels plus the base GEMMs' beta = 1 extra. Unset: the
   * engine's default (STORE_FIRST_ON_BY_DEFAULT).
   */
  storeFirst?: boolean;
}
export interface GemmAccumulateReport { gpu: string; m: number; layerBeta0Us: number; layerExtraUs: number }
type Figure = number | Record<string, number | null> | null;
export interface Measure {
  value: Figure;
  target: string;
  met: boolean;
  note?: string;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

function decodeRow(r: DecodeReport | undefined, batch: number, scenario: string, backend = 'csgmv'): DecodeRow | undefined {
  return r?.results.find((x) => x.loraBackend === backend && x.batch === batch && x.scenario === scenario);
}

function missing(target: string, note: string): Measure {
  return { value: null, target, met: false, note };
}

/** Both parts present → {value, met = every part meets its bound}; else null with a note naming what is missing. */
function pair(target: string, parts: Record<string, { value: number | undefined; atMost?: number; atLeast?: number }>, note: string): Measure {
  const value: Record<string, number | null> = {};
  let met = true;
  let complete = true;
  for (const [name, p] of Object.entries(parts)) {
    value[name] = p.value === undefined || !Number.isFinite(p.value) ? null : round(p.value);
    if (value[name] === null) {
      complete = false;
      met = false;
      continue;
    }
    if (p.atMost !== undefined && !(p.value! <= p.atMost)) met = false;
    if (p.atLeast !== undefined && !(p.value! >= p.atLeast)) met = false;
  }
  return complete ? { value, target, met } : { value, target, met: false, note };
}

/** A decode report's LoRA step over its base step at that batch, minus 1 (undefined without both rows). */
function loraOverhead(r: DecodeReport | undefined, batch: number, scenario: string): number | undefined {
  const base = decodeRow(r, batch, 'base');
  const lora = decodeRow(r, batch, scenario);
  return base && lora ? lora.stepMs / base.stepMs - 1 : undefined;
}

/**
 * Each process's own LoRA cost (its LoRA step over its base step), beside the value (the median LoRA step over the
 * median base step): between processes an 8B step moves by a few per cent, so a row near its target can read either
 * side of it by which estimator is used. A note only; `met` stays the value's.
 */
export function perProcessLoraCost(reports: DecodeReport[] | undefined): string | undefined {
  if (!reports || reports.length < 2) return undefined;
  const costs = (batch: number, scenario: string) =>
    reports.map((r) => loraOverhead(r, batch, scenario)).filter((c): c is number => c !== undefined && Number.isFinite(c));
  const shared = costs(1, 'shared'), distinct = costs(64, 'distinct');
  if (shared.length < 2 || distinct.length < 2) return undefined;
  const pct = (xs: number[]) => xs.map((x) => (100 * x).toFixed(1)).join(' / ');
  return `per process (each one's LoRA step over its own base step): shared ${pct(shared)} % (median ${(100 * median(shared)).toFixed(1)} %), ` +
    `distinct ${pct(distinct)} % (median ${(100 * median(distinct)).toFixed(1)} %); the value divides the median steps`;
}

function floorFraction(r: DecodeReport | undefined, batch: number, scenario: string, target: number, label: string): Measure {
  const row = decodeRow(r, batch, scenario);
  if (!row) return missing(`>= ${target}`, `no 8B csgmv decode row (${label}) in this run`);
  if (row.floorFraction === null || row.floorFraction === undefined) return missing(`>= ${target}`, 'the bandwidth was not measured in this run');
  return { value: round(row.floorFraction), target: `>= ${target}`, met: row.floorFraction >= target };
}

/**
 * The kernels the engine runs by default for each benchmark case, by lora_cuda_bench strategy name. Decode: a captured
 * decode graph of more than 16 rows runs the small-step pair (DeviceLoraPool::chooseSmallStep): v10 layout with v11's
 * narrow shrink, long-K splits and early expand launch by default (bench strategy "csgmv small v11").
 * Prefill: the tiled kernels with the default switches; backend and chunk size are user flags (--lora-backend,
 * --max-lora-chunk-size), so the best of those three counts. Strategies behind opt-in environment switches never do.
 */
export const ENGINE_LORA_STRATEGIES: Record<string, string[]> = {
  'decode 64x1 r16': ['csgmv small v11'],
  // csgmv coalesced: the engine's csgmv prefill since session 23 (lora_cuda_bench's coalesced chunks)
  'prefill 8x512 r64': ['triton', 'csgmv C16', 'csgmv C128', 'csgmv coalesced'],
};

/** The fastest layer row (graph replay) of `strategies` for a case; by default the engine's default kernels. */
function loraLayer(r: LoraBenchReport | undefined, caseName: string, strategies = ENGINE_LORA_STRATEGIES[caseName] ?? []): { us: number; strategy: string } | undefined {
  const rows = r?.results.filter((x) => x.case === caseName && x.module === 'layer' && typeof x.graphUs === 'number' && strategies.includes(x.strategy)) ?? [];
  if (!rows.length) return undefined;
  const best = rows.reduce((a, b) => (b.graphUs! < a.graphUs! ? b : a));
  return { us: best.graphUs!, strategy: best.strategy };
}

function kernelMeasure(r: LoraBenchReport | undefined, caseName: string, atMostUs: number): Measure {
  const target = `<= ${atMostUs}`;
  if (!r) return missing(target, 'the LoRA kernel benchmark did not run');
  const best = loraLayer(r, caseName);
  if (!best) return missing(target, `no row of the engine's default kernels (${ENGINE_LORA_STRATEGIES[caseName].join(', ')}) for ${caseName} in the LoRA kernel benchmark`);
  return { value: round(best.us, 1), target, met: best.us <= atMostUs, note: `strategy "${best.strategy}" (the engine's default kernels)` };
}

/**
 * The store-form expand's strategies (TSLORA_CUDA_LORA_STORE_FIRST, on by default since session 23): their kernels leave
 * the expand's read of y to the base GEMM (cuBLAS beta = 1), so their figure only compares with the in-place ones once
 * that GEMM's extra time (gemm-accumulate-bench) is added. With store-first off the prefill row notes that sum and does
 * not count it.
 */
export const STORE_STRATEGIES = ['triton store', 'csgmv C128 store', 'csgmv coalesced store'];
/** forward.cu's default of TSLORA_CUDA_LORA_STORE_FIRST: flip the two together. */
export const STORE_FIRST_ON_BY_DEFAULT = true;

const bestStoreRow = (r: LoraBenchReport | undefined) => loraLayer(r, 'prefill 8x512 r64', STORE_STRATEGIES);
const gemmAt4096 = (g: GemmAccumulateReport | undefined) => (g && g.m === 4096 ? g : undefined);
/**
 * What the row counts of beta = 1: the measured extra, but never below zero. cuBLAS may pick a faster algorithm for
 * beta = 1 than for beta = 0 (session 24's H100 measured -31.2 us per layer, session 23's +49.7 us); that is the base
 * GEMM's heuristics, not something the LoRA saves, so it is noted and not credited to the LoRA kernels.
 */
export function betaOneExtra(gemm: GemmAccumulateReport): { countedUs: number; text: string } {
  const countedUs = Math.max(0, gemm.layerExtraUs);
  const measured = gemm.layerExtraUs < 0 ? ` (measured ${round(gemm.layerExtraUs, 1)} us: beta = 1 ran faster; not credited to the LoRA)` : '';
  return { countedUs, text: `${round(countedUs, 1)} us of beta = 1 in the base GEMMs${measured}` };
}

export function storeFirstNote(r: LoraBenchReport | undefined, g: GemmAccumulateReport | undefined): string | undefined {
  const best = bestStoreRow(r);
  if (!best) return undefined;
  const kernels = `store-first, off in this run (not counted): strategy "${best.strategy}" ${round(best.us, 1)} us`;
  const gemm = gemmAt4096(g);
  if (!gemm) return `${kernels}, without the base GEMMs' extra read of y (gemm-accumulate-bench at 4096 rows did not run)`;
  const extra = betaOneExtra(gemm);
  return `${kernels} + ${extra.text} = ${round(best.us + extra.countedUs, 1)} us`;
}

/**
 * The prefill row where the engine runs store-first: the best store-form strategy plus what beta = 1 adds to the base
 * GEMMs (measured in the same run; without it the row stays unmeasured), the in-place kernels noted beside it.
 */
function storeFirstMeasure(r: LoraBenchReport | undefined, g: GemmAccumulateReport | undefined, atMostUs: number): Measure {
  const target = `<= ${atMostUs}`;
  if (!r) return missing(target, 'the LoRA kernel benchmark did not run');
  const best = bestStoreRow(r);
  if (!best) return missing(target, `no store-form row (${STORE_STRATEGIES.join(', ')}) for prefill 8x512 r64 in the LoRA kernel benchmark`);
  const gemm = gemmAt4096(g);
  if (!gemm) return missing(target, `store-first: strategy "${best.strategy}" ${round(best.us, 1)} us, but gemm-accumulate-bench at 4096 rows did not run (the base GEMMs' beta = 1 extra belongs to the row)`);
  const extra = betaOneExtra(gemm);
  const us = best.us + extra.countedUs;
  const inPlace = loraLayer(r, 'prefill 8x512 r64');
  const beside = inPlace ? `; in place: strategy "${inPlace.strategy}" ${round(inPlace.us, 1)} us` : '';
  return {
    value: round(us, 1), target, met: us <= atMostUs,
    note: `store-first: strategy "${best.strategy}" ${round(best.us, 1)} us + ${extra.text}${beside}`,
  };
}

function serving(r: ServingReport | undefined, variant: string, level: string) {
  return r?.summaries.find((s) => s.variant === variant && s.level === level && s.errors === 0);
}

export function computeStepTargets(inp: StepTargetInputs): Record<string, Measure> {
  const m: Record<string, Measure> = {};
  m['8B decode, batch 64, 8 distinct r16, csgmv: step vs floor'] = floorFraction(inp.decode8b, 64, 'distinct', 0.75, 'batch 64, distinct');
  m['8B decode, batch 1 base: step vs floor'] = floorFraction(inp.decode8b, 1, 'base', 0.85, 'batch 1, base');

  const loraCost = pair(
    '<= 0.05 / <= 0.15',
    {
      shared: { value: loraOverhead(inp.decode8b, 1, 'shared'), atMost: 0.05 },
      distinct: { value: loraOverhead(inp.decode8b, 64, 'distinct'), atMost: 0.15 },
    },
    'the 8B decode benchmark (base, shared and distinct rows) did not run',
  );
  const perProcess = perProcessLoraCost(inp.decode8bProcesses);
  m['LoRA cost over base at equal batch (8B, csgmv): one shared r16 adapter at batch 1 / 8 distinct at batch 64'] =
    perProcess && !loraCost.note ? { ...loraCost, note: perProcess } : loraCost;

  m['LoRA kernels per layer, decode 64x1 r16 (8B shapes), us'] = kernelMeasure(inp.loraBench, 'decode 64x1 r16', 30);
  const prefillName = 'LoRA kernels per layer, prefill 8x512 r64 (8B shapes), us';
  if (inp.storeFirst ?? STORE_FIRST_ON_BY_DEFAULT) {
    m[prefillName] = storeFirstMeasure(inp.loraBench, inp.gemmAccumulate, 300);
  } else {
    const prefill = kernelMeasure(inp.loraBench, 'prefill 8x512 r64', 300);
    const store = storeFirstNote(inp.loraBench, inp.gemmAccumulate);
    m[prefillName] = store ? { ...prefill, note: prefill.note ? `${prefill.note}; ${store}` : store } : prefill;
  }

  // The engine step is the same server's own decode-step p50 over the same level (its /metrics histogram, native
  // forward only), so the difference is what serving adds: scheduling, the runner's JavaScript, messaging, HTTP.
  const variant = inp.servingVariant ?? 'after';
  const gap = (level: string) => {
    const s = serving(inp.serving, variant, level);
    return s?.engineStep ? s.itl.p50 - s.engineStep.decodeStepP50Ms : undefined;
  };
  m['server ITL p50 minus engine step (1B, 8 r16 adapters, csgmv), ms: concurrency 1 / 64'] = pair(
    '<= 0.1 / <= 0.3',
    { c1: { value: gap('c1'), atMost: 0.1 }, c64: { value: gap('c64'), atMost: 0.3 } },
    `needs the serving benchmark (levels c1 and c64 of variant ${variant}, error-free) from a server that exports tslora_engine_step_seconds`,
  );

  const ratio = (metric: 'itl' | 'e2e') => {
    const t = serving(inp.tritonVsCsgmv, 'triton', 'c128');
    const c = serving(inp.tritonVsCsgmv, 'csgmv', 'c128');
    return t && c ? c[metric].p50 / t[metric].p50 : undefined;
  };
  m['csgmv vs triton at concurrency 128 (triton-vs-csgmv-h200): median ITL / E2E'] = pair(
    '<= 0.6 / <= 0.7',
    { itl: { value: ratio('itl'), atMost: 0.6 }, e2e: { value: ratio('e2e'), atMost: 0.7 } },
    '`tslora bench triton-vs-csgmv-h200` (about 4 minutes of device time) was not run in this device run',
  );
  return m;
}

function main(): void {
  const { values: a } = parseArgs({
    options: {
      out: { type: 'string' },
      commit: { type: 'string', default: 'unknown' },
      // When the table is rewritten later from a run's saved inputs: the run's own time, not the rewrite's.
      date: { type: 'string' },
      gpu: { type: 'string' },
      bandwidth: { type: 'string' },
      'decode-8b': { type: 'string' },
      'lora-bench': { type: 'string' },
      'decode-1b': { type: 'string' },
      serving: { type: 'string' },
      'serving-variant': { type: 'string', default: 'after' },
      'triton-vs-csgmv': { type: 'string' },
      'gemm-accumulate': { type: 'string' },
      // The engine ran with TSLORA_CUDA_LORA_STORE_FIRST=1 (=0): the prefill row counts the store-form kernels (or not).
      'store-first': { type: 'string' },
    },
  });
  if (!a.out) throw new Error('usage: step-targets.ts --out FILE [inputs…]');
  // A missing or unreadable input leaves its rows null (with their note), it does not stop the others.
  const read = <T>(path: string | undefined): T | undefined => {
    if (!path) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as T;
    } catch (error) {
      console.error(`step-targets: ignoring ${path}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const bandwidth = read<{ gpu: string; floorBytesPerS: number; readBytesPerS: number; copyBytesPerS: number }>(a.bandwidth);
  const decode8bProcesses = (a['decode-8b'] ?? '').split(',').filter(Boolean).map((path) => read<DecodeReport>(path))
    .filter((r): r is DecodeReport => r !== undefined);
  const inputs: StepTargetInputs = {
    decode8b: medianDecodeReport(decode8bProcesses),
    decode8bProcesses,
    loraBench: read(a['lora-bench']),
    decode1b: read(a['decode-1b']),
    serving: read(a.serving),
    servingVariant: a['serving-variant'],
    tritonVsCsgmv: read(a['triton-vs-csgmv']),
    gemmAccumulate: read(a['gemm-accumulate']),
    storeFirst: a['store-first'] === undefined ? undefined : a['store-first'] !== '0',
  };
  const gpu = a.gpu ?? bandwidth?.gpu ?? inputs.decode8b?.gpu ?? inputs.decode1b?.gpu ?? inputs.loraBench?.device ?? 'unknown';
  const report = {
    gpu,
    date: a.date ?? new Date().toISOString(),
    commit: a.commit,
    bandwidth: bandwidth ? { readBytesPerS: bandwidth.readBytesPerS, copyBytesPerS: bandwidth.copyBytesPerS, floorBytesPerS: bandwidth.floorBytesPerS } : null,
    measures: computeStepTargets(inputs),
  };
  writeFileSync(a.out, `${JSON.stringify(report, null, 2)}\n`);
  for (const [name, x] of Object.entries(report.measures)) console.log(`${x.met ? 'MET    ' : 'not met'} ${name}: ${JSON.stringify(x.value)} (target ${x.target})${x.note ? ` — ${x.note}` : ''}`);
}

if (process.argv[1]?.endsWith('step-targets.ts')) main();
