/** Entries of `tslora synth model|adapters` once flags are parsed (progress on stderr, summary on stdout). */
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TsloraError } from '../../errors.js';
import type { SynthDType } from './random-fill.js';
import type { SynthShape } from './shapes.js';
import { synthModel } from './write-model.js';
import { synthAdapters } from './write-adapters.js';

function requireString(options: Record<string, unknown>, key: string, flag: string, command: string): string {
  const value = options[key];
  if (typeof value !== 'string' || value === '') {
    throw new TsloraError('usage', `tslora synth ${command} needs --${flag}.`, { hint: `See 'tslora synth ${command} --help'.` });
  }
  return value;
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes > 2 ** 30 ? 1 : 3)} GiB`;

export async function runSynthModelCli(options: Record<string, unknown>): Promise<number> {
  const outDir = resolve(requireString(options, 'out', 'out', 'model'));
  const started = performance.now();
  let lastReport = 0;
  const result = synthModel({
    shape: options.shape as SynthShape,
    outDir,
    dtype: options.dtype as SynthDType | undefined,
    layers: options.layers as number | undefined,
    vocab: options.vocab as number | undefined,
    seed: options.synthSeed as number | undefined,
    onProgress: (bytes, total) => {
      const now = performance.now();
      if (process.stderr.isTTY && now - lastReport > 500) {
        lastReport = now;
        process.stderr.write(`\rwriting model.safetensors: ${gib(bytes)} of ${gib(total)} (${((100 * bytes) / total).toFixed(0)}%)`);
      }
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `wrote ${outDir}: ${options.shape}, ${result.config.num_hidden_layers} layers, ${result.tensorCount} tensors, ` +
      `${gib(result.sizeBytes)} in ${seconds.toFixed(1)} s\n`,
  );
  return 0;
}

export async function runSynthAdaptersCli(options: Record<string, unknown>): Promise<number> {
  const modelDir = resolve(requireString(options, 'model', 'model', 'adapters'));
  const outDir = resolve(requireString(options, 'out', 'out', 'adapters'));
  const ranks = ((options.rank as string[] | undefined) ?? ['16']).map((r) => {
    const value = Number(r);
    if (!Number.isInteger(value) || value < 1) throw new TsloraError('usage', `--rank must be positive integers (got ${r}).`);
    return value;
  });
  const adapters = synthAdapters({
    modelDir,
    outDir,
    count: (options.count as number | undefined) ?? 1,
    ranks,
    targets: (options.targets as string[] | undefined) ?? ['q_proj', 'v_proj'],
    alpha: options.alpha as number | undefined,
    dtype: options.dtype as SynthDType | undefined,
    seed: options.synthSeed as number | undefined,
  });
  for (const adapter of adapters) process.stdout.write(`${adapter.name}=${adapter.path}  (rank ${adapter.rank}, ${gib(adapter.sizeBytes)})\n`);
  return 0;
}
