/**
 * The LoRA validation rules of spec a.2 (rules 1-15, in SGLang's order) and the general range checks of a.5.
 * All run before anything is loaded; each failure is a usage error (exit 2) saying what was given, what is
 * allowed and what to do. Checks that need the model (context length vs max_position_embeddings, tp-size vs
 * attention heads and visible GPUs, adapter rank/modules vs an explicit pool) belong to the server.
 */
import { TsloraError } from '../errors.js';
import { gotText } from './coerce.js';
import type { LayeredValues } from './layers.js';
import { parseLoraPaths } from './lora-paths.js';
import type { OptionSpec } from './option-types.js';
import type { StartupAdapter } from './serve-config.js';
import { LORA_TUNING_KEYS, serveOptions } from './serve-options.js';
import { parseTargetModules } from './target-modules.js';
import type { LoraTargetModule } from '../engine/model/types.js';

export const CHUNK_SIZES = [16, 32, 64, 128] as const;

function specOf(key: string): OptionSpec {
  const spec = serveOptions.find((o) => o.key === key);
  if (!spec) throw new Error(`no serve option '${key}'`);
  return spec;
}

function usage(key: string, message: string, hint: string): TsloraError {
  return new TsloraError('usage', message, { hint, param: key });
}

/** "(got 0)" / "(got 0 from TSLORA_X)" for the value currently held under key. */
function got(values: LayeredValues, key: string): string {
  const layered = values.get(key);
  return gotText(layered?.raw ?? layered?.value, specOf(key), layered?.source ?? { kind: 'default' });
}

function given(values: LayeredValues, key: string): boolean {
  return values.get(key)?.source.kind !== 'default';
}

function value<T>(values: LayeredValues, key: string): T {
  return values.get(key)?.value as T;
}

export interface LoraResolution {
  enableLora: boolean;
  loraPaths: StartupAdapter[];
  loraTargetModules: LoraTargetModule[] | 'all' | null;
  /** True when the demo model's own adapters stand in for --lora-paths (no --model-path, LoRA not turned off). */
  demoAdapters: boolean;
  warnings: string[];
}

/** Rules 1-15 of spec a.2. */
export function applyLoraRules(values: LayeredValues): LoraResolution {
  const warnings: string[] = [];
  const slots = value<number>(values, 'maxLorasPerBatch');

  // Rule 1
  if (slots < 1) {
    throw usage('maxLorasPerBatch', `--max-loras-per-batch must be a positive integer (${got(values, 'maxLorasPerBatch')}).`,
      'It is the number of adapter slots on the device (default 8); base requests occupy one.');
  }

  // Rules 2 and 3: the tri-state --enable-lora
  const enableSetting = value<boolean | undefined>(values, 'enableLora');
  const rawPaths = value<unknown>(values, 'loraPaths');
  const pathsGiven = rawPaths !== undefined && !(Array.isArray(rawPaths) && rawPaths.length === 0);
  const demoModel = value<string | undefined>(values, 'modelPath') === undefined;
  let enableLora: boolean;
  let demoAdapters = false;
  if (pathsGiven && enableSetting === undefined) {
    enableLora = true;
    warnings.push('LoRA enabled because --lora-paths was given.');
  } else if (pathsGiven && enableSetting === false) {
    enableLora = false;
    warnings.push('--lora-paths ignored: LoRA is disabled (--no-enable-lora).');
  } else if (!pathsGiven && demoModel && enableSetting !== false) {
    enableLora = true; // the embedded demo model is served with its task adapters
    demoAdapters = true;
  } else {
    enableLora = enableSetting === true;
  }

  if (!enableLora) {
    for (const key of LORA_TUNING_KEYS) {
      if (given(values, key)) {
        warnings.push(`--${specOf(key).flag} has no effect: LoRA is off (turn it on with --enable-lora or --lora-paths).`);
      }
    }
  }

  let loraPaths: StartupAdapter[] = [];
  let loraTargetModules: LoraTargetModule[] | 'all' | null = null;
  if (enableLora) {
    const maxLoaded = value<number | undefined>(values, 'maxLoadedLoras');

    // Rule 4
    if (value<boolean>(values, 'enableLoraOverlapLoading') && (maxLoaded === undefined || maxLoaded > 2 * slots)) {
      throw usage('maxLoadedLoras',
        '--enable-lora-overlap-loading keeps a pinned host copy of every loaded adapter, so --max-loaded-loras must be ' +
        `set and at most 2 × --max-loras-per-batch (= ${2 * slots}); ${maxLoaded === undefined ? 'it is unset' : got(values, 'maxLoadedLoras')}.`,
        `Add --max-loaded-loras ${2 * slots} (or less), or drop --enable-lora-overlap-loading.`);
    }

    // Rules 5 and 6
    loraPaths = pathsGiven ? parseLoraPaths(rawPaths) : [];

    // Rules 7 and 8
    const rawModules = value<unknown[] | undefined>(values, 'loraTargetModules');
    if (rawModules !== undefined) {
      const parsed = parseTargetModules(rawModules);
      loraTargetModules = parsed === 'all' || parsed.length > 0 ? parsed : null;
    }

    // Rule 9
    const maxRank = value<number | undefined>(values, 'maxLoraRank');
    if (loraPaths.length === 0 && !demoAdapters && (maxRank === undefined || loraTargetModules === null)) {
      throw usage('loraPaths',
        'Without --lora-paths the adapter pool cannot be sized: give both --max-lora-rank and --lora-target-modules ' +
        '(adapters loaded later must fit them).',
        'For example: --max-lora-rank 16 --lora-target-modules all.');
    }
    if (maxRank !== undefined && maxRank < 1) {
      throw usage('maxLoraRank', `--max-lora-rank must be a positive integer (${got(values, 'maxLoraRank')}).`,
        'Give the largest adapter rank the pool must hold, or leave it out to infer it from --lora-paths.');
    }

    // Rule 10
    if (maxLoaded !== undefined && maxLoaded < slots) {
      throw usage('maxLoadedLoras', `--max-loaded-loras (${maxLoaded}) must be at least --max-loras-per-batch (${slots}).`,
        `Raise --max-loaded-loras to ${slots} or more, or lower --max-loras-per-batch.`);
    }

    // Rule 11
    if (maxLoaded !== undefined && loraPaths.length > maxLoaded) {
      throw usage('maxLoadedLoras', `--lora-paths lists ${loraPaths.length} adapters but --max-loaded-loras is ${maxLoaded}.`,
        `Raise --max-loaded-loras to ${loraPaths.length} or load fewer adapters at start-up.`);
    }

    // Rule 12
    const chunk = value<number>(values, 'maxLoraChunkSize');
    if (!(CHUNK_SIZES as readonly number[]).includes(chunk)) {
      throw usage('maxLoraChunkSize', `--max-lora-chunk-size must be 16, 32, 64 or 128 (${got(values, 'maxLoraChunkSize')}).`,
        'It bounds the csgmv chunk; 16 (the default) suits most batches.');
    }

    // Rule 13
    if (value<number>(values, 'loraDrainWaitThreshold') < 0) {
      throw usage('loraDrainWaitThreshold',
        `--lora-drain-wait-threshold must be ≥ 0 seconds (${got(values, 'loraDrainWaitThreshold')}); 0 turns draining off.`,
        'Give a waiting time in seconds, e.g. 2.');
    }

    // Rule 14
    const pinned = loraPaths.filter((a) => a.pinned).length;
    if (pinned > slots - 1) {
      throw usage('loraPaths',
        `${pinned} adapters are pinned in --lora-paths but at most ${slots - 1} (max-loras-per-batch − 1) may be; a pinned ` +
        'adapter holds its slot forever, and pinning every slot would starve base and unpinned requests.',
        `Pin fewer adapters, or raise --max-loras-per-batch to ${pinned + 1}.`);
    }
  }

  // Rule 15 (whether or not LoRA is on)
  const served = value<string | undefined>(values, 'servedModelName');
  if (served !== undefined && served.includes(':')) {
    throw usage('servedModelName', `--served-model-name must not contain ':' because 'model:adapter' selects an adapter (got ${served}).`,
      `Use another separator, e.g. '${served.replace(/:/g, '-')}'.`);
  }

  return { enableLora, loraPaths, loraTargetModules, demoAdapters, warnings };
}

interface RangeCheck {
  key: string;
  ok: (v: number) => boolean;
  allowed: string;
  hint: string;
}

const RANGE_CHECKS: readonly RangeCheck[] = [
  { key: 'port', ok: (v) => v >= 0 && v <= 65535, allowed: 'an integer from 0 to 65535', hint: 'Use 0 to pick a free port.' },
  { key: 'tpSize', ok: (v) => v >= 1, allowed: 'at least 1', hint: 'It is the number of tensor-parallel ranks the model is split over.' },
  { key: 'contextLength', ok: (v) => v >= 1, allowed: 'at least 1', hint: "Leave it out to use the model's max_position_embeddings." },
  { key: 'memFractionStatic', ok: (v) => v > 0 && v < 1, allowed: 'a fraction between 0 and 1 (exclusive)', hint: 'For example 0.85.' },
  { key: 'maxRunningRequests', ok: (v) => v >= 1, allowed: 'at least 1', hint: 'Leave it out to derive it from KV capacity.' },
  { key: 'maxQueuedRequests', ok: (v) => v >= 1, allowed: 'at least 1', hint: 'It bounds the waiting queue (default 1024).' },
  { key: 'chunkedPrefillSize', ok: (v) => v === -1 || v >= 1, allowed: 'at least 1, or -1 to disable chunking', hint: 'The default is 512.' },
  { key: 'cudaGraphMaxBs', ok: (v) => v >= 1, allowed: 'at least 1', hint: 'Use --disable-cuda-graph to turn graphs off.' },
  { key: 'numThreads', ok: (v) => v >= 0, allowed: 'at least 0 (0 = all cores)', hint: 'Give the number of CPU worker threads.' },
  { key: 'randomSeed', ok: (v) => v >= 0 && v <= 0xffffffff, allowed: 'an integer from 0 to 4294967295', hint: 'Leave it out for a random seed.' },
  { key: 'maxUnreadStreamBytes', ok: (v) => v >= 1, allowed: 'at least 1', hint: 'The default is 16777216 (16 MiB).' },
  { key: 'shutdownTimeout', ok: (v) => Number.isFinite(v) && v >= 0, allowed: 'a number of seconds, at least 0', hint: 'The default is 30.' },
  { key: 'streamInterval', ok: (v) => v >= 1, allowed: 'at least 1', hint: 'It is the number of tokens per streamed event.' },
  { key: 'replicas', ok: (v) => v >= 1 && v <= 64, allowed: 'from 1 to 64', hint: 'Each replica loads the model once.' },
];

/** General checks of spec a.5 that need no model. */
export function applyGeneralRules(values: LayeredValues): void {
  for (const check of RANGE_CHECKS) {
    const v = value<number | undefined>(values, check.key);
    if (v !== undefined && !check.ok(v)) {
      throw usage(check.key, `--${specOf(check.key).flag} must be ${check.allowed} (${got(values, check.key)}).`, check.hint);
    }
  }
  for (const key of ['host', 'modelPath', 'tokenizerPath', 'servedModelName', 'apiKey', 'loraResolverDir']) {
    const v = value<string | undefined>(values, key);
    if (v !== undefined && v.trim() === '') {
      throw usage(key, `--${specOf(key).flag} must not be empty.`, `Leave --${specOf(key).flag} out to use its default.`);
    }
  }
}
