/**
 * Turns the config's model and adapters into things a server can be launched with: model flags, the adapter
 * list (name, path, rank), and the vocabulary size for prompt ids. Synthetic models and adapters are written
 * once into a cache folder keyed by their parameters and reused by later runs.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { TsloraError } from '../../errors.js';
import { PACKAGE_ROOT } from '../config/load-config.js';
import type { BenchConfig } from '../config/schema.js';
import { synthModel } from '../synth/write-model.js';
import { synthAdapters, normalizeTargets } from '../synth/write-adapters.js';

export interface PreparedAdapter {
  name: string;
  /** null when only the name is known (adapters already on a running server) */
  path: string | null;
  rank: number | null;
  targets: string[];
}

export interface PreparedModel {
  /** flags selecting the model: [] for the demo model, else ['--model-path', dir] */
  modelArgs: string[];
  modelDir: string | null;
  description: string;
  vocabSize: number;
  adapters: PreparedAdapter[];
  isDemo: boolean;
}

export const DEMO_MODEL_DIR = join(PACKAGE_ROOT, 'models', 'demo');
/** Where synthetic models/adapters are cached: $TSLORA_BENCH_CACHE, else <tmp>/tslora-bench-synth. */
export function synthCacheDir(): string {
  return process.env.TSLORA_BENCH_CACHE || join(tmpdir(), 'tslora-bench-synth');
}
const DONE_MARKER = '.tslora-synth-complete';

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function vocabSizeOf(modelDir: string | null): number {
  const config = modelDir ? readJson(join(modelDir, 'config.json')) : null;
  const vocab = Number(config?.vocab_size);
  return Number.isFinite(vocab) && vocab > 0 ? vocab : 256;
}

function readAdapter(name: string, path: string): PreparedAdapter {
  const config = readJson(join(path, 'adapter_config.json'));
  if (!config) {
    throw new TsloraError('usage', `bench adapter '${name}': no adapter_config.json in ${path}.`, { hint: 'Adapter paths must be PEFT folders.' });
  }
  const targets = Array.isArray(config.target_modules) ? (config.target_modules as string[]) : [String(config.target_modules ?? '')];
  return { name, path, rank: Number(config.r) || null, targets };
}

function cached(key: string, write: (dir: string) => void, log: (line: string) => void): string {
  const dir = join(synthCacheDir(), key);
  if (!existsSync(join(dir, DONE_MARKER))) {
    log(`writing synthetic ${key} to ${dir}`);
    write(dir);
    writeFileSync(join(dir, DONE_MARKER), new Date().toISOString());
  }
  return dir;
}

export function prepareModel(config: BenchConfig, log: (line: string) => void): PreparedModel {
  let modelDir: string | null;
  let modelArgs: string[];
  let description: string;
  let modelKey = 'demo';
  const isDemo = 'demo' in config.model;
  if ('demo' in config.model) {
    modelDir = DEMO_MODEL_DIR;
    modelArgs = [];
    description = 'demo model (models/demo)';
  } else if ('path' in config.model) {
    modelDir = config.model.path;
    if (!existsSync(join(modelDir, 'config.json'))) throw new TsloraError('usage', `bench model path ${modelDir} has no config.json.`);
    modelArgs = ['--model-path', modelDir];
    description = modelDir;
    modelKey = basename(modelDir);
  } else {
    const s = config.model.synthetic;
    modelKey = `model-${s.shape}-l${s.layers ?? 'all'}-v${s.vocab ?? 'full'}-${s.dtype}-s${s.seed}`;
    modelDir = cached(modelKey, (dir) => synthModel({ shape: s.shape, outDir: dir, dtype: s.dtype, layers: s.layers, vocab: s.vocab, seed: s.seed }), log);
    modelArgs = ['--model-path', modelDir];
    description = `synthetic ${s.shape}${s.layers ? `, ${s.layers} layers` : ''} (${s.dtype}, random weights)`;
  }

  let adapters: PreparedAdapter[] = [];
  const spec = config.adapters;
  if ('demo' in spec) {
    const dir = join(DEMO_MODEL_DIR, 'adapters');
    const names = spec.names ?? (existsSync(dir) ? readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory()).sort() : []);
    adapters = names.map((name) => (existsSync(join(dir, name, 'adapter_config.json')) ? readAdapter(name, join(dir, name)) : { name, path: null, rank: null, targets: [] }));
  } else if ('paths' in spec) {
    const entries = Array.isArray(spec.paths) ? spec.paths.map((p) => [basename(p), p] as const) : Object.entries(spec.paths);
    adapters = entries.map(([name, path]) => readAdapter(name, path));
  } else if ('names' in spec) {
    adapters = spec.names.map((name) => ({ name, path: null, rank: null, targets: [] }));
  } else if ('synthetic' in spec) {
    const s = spec.synthetic;
    if (!modelDir || !existsSync(join(modelDir, 'config.json'))) throw new TsloraError('usage', 'synthetic adapters need a model folder with a config.json.');
    const targets = normalizeTargets(s.targets);
    const digest = createHash('sha256').update(JSON.stringify([modelKey, s.count, s.ranks, targets, s.alpha ?? null, s.seed])).digest('hex').slice(0, 10);
    const key = `loras-n${s.count}-r${s.ranks.join('_')}-${digest}`;
    const dir = cached(key, (out) => synthAdapters({ modelDir: modelDir!, outDir: out, count: s.count, ranks: s.ranks, targets, alpha: s.alpha, seed: s.seed }), log);
    adapters = Array.from({ length: s.count }, (_v, i) => ({ name: `lora-${i}`, path: join(dir, `lora-${i}`), rank: s.ranks[i % s.ranks.length], targets }));
  }
  return { modelArgs, modelDir, description, vocabSize: vocabSizeOf(modelDir), adapters, isDemo };
}

/** Pool-sizing flags a runtime-loading server needs (spec a.2 rule 9), unless the config already gives them. */
export function poolSizingArgs(adapters: PreparedAdapter[], flags: Record<string, unknown>): string[] {
  const args: string[] = [];
  const ranks = adapters.map((a) => a.rank ?? 0);
  if (!('max-lora-rank' in flags) && ranks.length > 0 && Math.max(...ranks) > 0) args.push('--max-lora-rank', String(Math.max(...ranks)));
  const targets = [...new Set(adapters.flatMap((a) => a.targets).filter(Boolean))];
  if (!('lora-target-modules' in flags) && targets.length > 0) args.push('--lora-target-modules', ...targets);
  return args;
}
