/**
 * resolveServeConfig: the pure function that turns command-line values, the environment and an optional parsed
 * config file into the frozen, validated ServeConfig (defaults < config file < env < flags).
 */
import { isAbsolute, resolve, dirname } from 'node:path';
import { TsloraError } from '../errors.js';
import { layerValues, type ConfigFileValues, type LayeredValues } from './layers.js';
import type { ServeConfig, StartupAdapter, LogLevel } from './serve-config.js';
import { serveOptions } from './serve-options.js';
import { applyGeneralRules, applyLoraRules } from './serve-rules.js';

const UNSUPPORTED_BACKENDS: Readonly<Record<string, string>> = {
  flashinfer: "'flashinfer' is deprecated in SGLang; use csgmv (the default) or triton.",
  torch_native: "tslora implements only triton and csgmv; csgmv is the default.",
  ascend: "tslora implements only triton and csgmv; csgmv is the default.",
};

function layer(argvValues: Record<string, unknown>, env: Record<string, string | undefined>, configFile?: ConfigFileValues): LayeredValues {
  try {
    return layerValues(serveOptions, argvValues, env, configFile);
  } catch (error) {
    const backend = String(argvValues.loraBackend ?? env.TSLORA_LORA_BACKEND ?? configFile?.values.loraBackend ?? '');
    if (error instanceof TsloraError && error.param === 'loraBackend' && UNSUPPORTED_BACKENDS[backend]) {
      throw new TsloraError('usage', error.message, { hint: UNSUPPORTED_BACKENDS[backend], param: 'loraBackend' });
    }
    throw error;
  }
}

/** A path from the config file is relative to the file's directory; others to the working directory. */
function absolutePath(values: LayeredValues, key: string): string | null {
  const layered = values.get(key);
  const path = layered?.value as string | undefined;
  if (path === undefined) return null;
  if (isAbsolute(path)) return path;
  const source = layered?.source;
  return source?.kind === 'config' ? resolve(dirname(source.file), path) : resolve(path);
}

function absolutePaths(values: LayeredValues, key: string): string[] {
  const layered = values.get(key);
  const paths = (layered?.value as string[] | undefined) ?? [];
  const source = layered?.source;
  return paths.map((p) => (isAbsolute(p) ? p : source?.kind === 'config' ? resolve(dirname(source.file), p) : resolve(p)));
}

function adapterPathsFromFile(values: LayeredValues, adapters: StartupAdapter[]): StartupAdapter[] {
  const source = values.get('loraPaths')?.source;
  if (source?.kind !== 'config') return adapters;
  const base = dirname(source.file);
  return adapters.map((a) => (isAbsolute(a.path) ? a : { ...a, path: resolve(base, a.path) }));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value as object)) deepFreeze(inner);
  }
  return value;
}

/**
 * @param argvValues command-line values keyed by option key (undefined = not given); strings or typed values
 * @param env        the environment (TSLORA_* variables are read)
 * @param configFile a parsed --config file (see readConfigFile)
 * @throws TsloraError with code 'usage' for every invalid value (exit status 2)
 */
export function resolveServeConfig(
  argvValues: Record<string, unknown>,
  env: Record<string, string | undefined> = {},
  configFile?: ConfigFileValues,
): ServeConfig {
  const values = layer(argvValues, env, configFile);
  const lora = applyLoraRules(values);
  applyGeneralRules(values);

  const get = <T>(key: string): T => values.get(key)?.value as T;
  const orNull = <T>(key: string): T | null => (get<T | undefined>(key) ?? null);
  const chunk = get<number>('maxLoraChunkSize');

  const config: ServeConfig = {
    modelPath: absolutePath(values, 'modelPath'),
    tokenizerPath: absolutePath(values, 'tokenizerPath'),
    host: get<string>('host'),
    port: get<number>('port'),
    device: get<ServeConfig['device']>('device'),
    dtype: get<ServeConfig['dtype']>('dtype'),
    tpSize: get<number>('tpSize'),
    cudaGraphMaxBs: orNull<number>('cudaGraphMaxBs'),
    disableCudaGraph: get<boolean>('disableCudaGraph'),
    disableOverlapSchedule: get<boolean>('disableOverlapSchedule'),
    apiKey: orNull<string>('apiKey'),
    servedModelName: orNull<string>('servedModelName'),
    contextLength: orNull<number>('contextLength'),
    memFractionStatic: orNull<number>('memFractionStatic'),
    kvCacheDtype: get<ServeConfig['kvCacheDtype']>('kvCacheDtype') ?? 'auto',
    maxRunningRequests: orNull<number>('maxRunningRequests'),
    maxQueuedRequests: get<number>('maxQueuedRequests'),
    shutdownTimeout: get<number>('shutdownTimeout'),
    chunkedPrefillSize: get<number>('chunkedPrefillSize'),
    randomSeed: orNull<number>('randomSeed'),
    logLevel: get<LogLevel>('logLevel'),
    disableRadixCache: get<boolean>('disableRadixCache'),
    streamInterval: get<number>('streamInterval'),
    incrementalStreamingOutput: get<boolean>('incrementalStreamingOutput'),
    enableMetrics: get<boolean>('enableMetrics'),
    maxUnreadStreamBytes: get<number>('maxUnreadStreamBytes'),
    numThreads: get<number>('numThreads'),
    replicas: get<number>('replicas'),

    enableLora: lora.enableLora,
    loraPaths: adapterPathsFromFile(values, lora.loraPaths),
    maxLoraRank: lora.enableLora ? orNull<number>('maxLoraRank') : null,
    loraTargetModules: lora.loraTargetModules,
    maxLorasPerBatch: get<number>('maxLorasPerBatch'),
    maxLoadedLoras: lora.enableLora ? orNull<number>('maxLoadedLoras') : null,
    loraEvictionPolicy: get<ServeConfig['loraEvictionPolicy']>('loraEvictionPolicy'),
    loraBackend: get<ServeConfig['loraBackend']>('loraBackend'),
    // checked by rule 12 when LoRA is on; an inert value while LoRA is off falls back to the default
    maxLoraChunkSize: ([16, 32, 64, 128].includes(chunk) ? chunk : 16) as ServeConfig['maxLoraChunkSize'],
    loraPoolDtype: get<ServeConfig['loraPoolDtype']>('loraPoolDtype') ?? 'f32',
    enableLoraOverlapLoading: lora.enableLora && get<boolean>('enableLoraOverlapLoading'),
    loraDrainWaitThreshold: lora.enableLora ? get<number>('loraDrainWaitThreshold') : 0,
    loraStrictLoading: get<boolean>('loraStrictLoading'),
    loraResolverDir: lora.enableLora ? absolutePath(values, 'loraResolverDir') : null,
    loraAllowedDirs: absolutePaths(values, 'loraAllowedDirs'),
    demoAdapters: lora.demoAdapters,

    warnings: lora.warnings,
  };
  return deepFreeze(config);
}
