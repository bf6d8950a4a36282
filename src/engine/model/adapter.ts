/**
 * Reads and validates a PEFT LoRA adapter directory against a base model and a LoRA pool (spec d). Only headers
 * are read: tensor data stays on disk, and NaN/Inf checks happen natively when the host copy is built.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { TsloraError, isTsloraError } from '../../errors.js';
import {
  adapterTargetSet,
  normalizeModuleName,
  parseAdapterConfig,
  sortTargets,
  targetsModule,
  type AdapterConfig,
} from './adapter-config.js';
import { readAdapterTensors, type FoundLoraPair } from './adapter-tensors.js';
import type { SafetensorsFile } from './safetensors.js';
import { readSafetensorsHeader } from './safetensors.js';
import { checkRegularFile, readRegularTextFile } from './regular-file.js';
import type { AdapterSpec, LoraTargetModule, LoraTensorPair, ModelSpec } from './types.js';

export { adapterTargetSet, normalizeModuleName } from './adapter-config.js';

export interface AdapterPoolLimits {
  /** R, the pool's rank; null while inferring it from the start-up adapters. */
  maxRank: number | null;
  /** The pool's target set; null = accept any (while inferring it). */
  targetModules: LoraTargetModule[] | null;
  /** --lora-strict-loading: LoRA tensors for modules outside the adapter's target_modules are errors. */
  strict: boolean;
}

export interface ReadAdapterResult {
  adapter: AdapterSpec;
  warnings: string[];
}

/** Bounds on the files an adapter directory holds (a client may name any directory): JSON files are small. */
export const ADAPTER_JSON_MAX_BYTES = 4 * 1024 * 1024;
export const ADAPTER_WEIGHTS_MAX_BYTES = 64 * 1024 ** 3;

/** Config options that change what the adapter computes and that tslora does not implement (spec d.2). */
const UNSUPPORTED_OPTIONS = ['layer_replication', 'trainable_token_indices', 'target_parameters', 'alora_invocation_tokens'];

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.keys(value as object).length === 0;
  return false;
}

function checkFeatures(label: string, config: AdapterConfig): void {
  if (config.peftType.toUpperCase() !== 'LORA') {
    throw new TsloraError('unsupported_adapter', `${label} is a ${config.peftType} adapter; tslora serves LoRA adapters only (peft_type "LORA")`);
  }
  if (config.raw.use_dora === true) {
    throw new TsloraError('unsupported_adapter', `${label} uses DoRA (use_dora), which tslora does not support`, {
      hint: 'Merge the DoRA adapter into the base model, or retrain as plain LoRA.',
    });
  }
  if (config.raw.lora_bias === true) {
    throw new TsloraError('unsupported_adapter', `${label} trains a bias on lora_B (lora_bias), which tslora does not support`, {
      hint: 'Retrain with lora_bias=False.',
    });
  }
  if (config.raw.fan_in_fan_out === true) {
    throw new TsloraError('incompatible', `${label} is incompatible: it sets fan_in_fan_out, which belongs to GPT-2-style Conv1D models, not this base model`, {
      hint: 'Use an adapter trained for this model architecture.',
    });
  }
  for (const option of UNSUPPORTED_OPTIONS) {
    if (!isEmpty(config.raw[option])) {
      throw new TsloraError('unsupported_adapter', `${label} uses ${option}, which tslora does not support`);
    }
  }
}

async function checkAddedTokens(label: string, dir: string, spec: ModelSpec): Promise<void> {
  const path = join(dir, 'added_tokens.json');
  if (!existsSync(path)) return;
  let added: unknown;
  try {
    added = JSON.parse(await readRegularTextFile(path, 'added_tokens.json', ADAPTER_JSON_MAX_BYTES));
  } catch (error) {
    if (isTsloraError(error)) throw error;
    throw new TsloraError('unsupported_adapter', `corrupt adapter file: ${path} is not valid JSON`);
  }
  const ids = Object.values((added ?? {}) as Record<string, unknown>);
  const newIds = ids.filter((id) => typeof id !== 'number' || id >= spec.vocabSize);
  if (newIds.length > 0) {
    throw new TsloraError('unsupported_adapter', `${label} adds tokens to the vocabulary (added tokens with ids ${newIds.slice(0, 5).join(', ')} ≥ ${spec.vocabSize}); tslora serves adapters that share the base vocabulary`, {
      hint: 'Retrain without new tokens, or merge the adapter and serve the merged model.',
    });
  }
}

function locateFiles(path: string, label: string): { dir: string; configPath: string; weightsPath: string } {
  const dir = resolve(path);
  const configPath = join(dir, 'adapter_config.json');
  // One message whether the directory is missing or holds no config, so a probe learns nothing about the disk.
  if (!existsSync(dir) || !statSync(dir).isDirectory() || !existsSync(configPath)) {
    throw new TsloraError('not_found', `no PEFT LoRA adapter at '${path}': expected a directory holding adapter_config.json and adapter_model.safetensors`);
  }
  checkRegularFile(configPath, 'adapter_config.json', ADAPTER_JSON_MAX_BYTES);
  const weightsPath = join(dir, 'adapter_model.safetensors');
  if (existsSync(weightsPath)) checkRegularFile(weightsPath, 'adapter_model.safetensors', ADAPTER_WEIGHTS_MAX_BYTES);
  else {
    if (existsSync(join(dir, 'adapter_model.bin'))) {
      throw new TsloraError('unsupported_adapter', `${label} has only adapter_model.bin (a Python pickle); tslora reads safetensors only`, {
        hint: 'Convert it: load with PEFT and save_pretrained(dir, safe_serialization=True), which writes adapter_model.safetensors.',
      });
    }
    throw new TsloraError('not_found', `no PEFT LoRA adapter at '${path}': adapter_model.safetensors not found`);
  }
  return { dir, configPath, weightsPath };
}

async function readHeader(weightsPath: string): Promise<SafetensorsFile> {
  try {
    return await readSafetensorsHeader(weightsPath);
  } catch (error) {
    if (isTsloraError(error) && error.code === 'corrupt_file') {
      throw new TsloraError('unsupported_adapter', `corrupt adapter file: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

function checkPool(label: string, adapter: AdapterSpec, limits: AdapterPoolLimits): void {
  if (limits.maxRank !== null && adapter.rank > limits.maxRank) {
    throw new TsloraError('incompatible', `${label} is incompatible with the LoRA pool: it has rank ${adapter.rank} but the pool was built for rank ≤ ${limits.maxRank} (--max-lora-rank)`, {
      hint: `Restart with --max-lora-rank ${adapter.rank} (or higher).`,
    });
  }
  if (limits.targetModules !== null) {
    const pool = new Set(limits.targetModules);
    const outside = adapter.targetModules.filter((m) => !pool.has(m));
    if (outside.length > 0) {
      throw new TsloraError('incompatible', `${label} is incompatible with the LoRA pool: it targets ${outside.join(', ')}, which the pool was not built for (pool: ${sortTargets(pool).join(', ') || 'none'})`, {
        hint: `Restart with --lora-target-modules covering ${sortTargets([...pool, ...adapter.targetModules]).join(' ')}, or all.`,
      });
    }
  }
}

/** Bytes of LoRA data the adapter uses (a fused A shared by several slices counts once). */
function uniqueSizeBytes(tensors: LoraTensorPair[]): number {
  const seen = new Map<string, number>();
  for (const t of tensors) for (const ref of [t.a, t.b]) seen.set(`${ref.offsetBytes}:${ref.sizeBytes}`, ref.sizeBytes);
  return [...seen.values()].reduce((sum, size) => sum + size, 0);
}

/** Keeps the pairs the adapter's target_modules cover; others are warnings (PEFT ignores them) or strict errors. */
function filterDeclared(label: string, config: AdapterConfig, pairs: FoundLoraPair[], strict: boolean, warnings: string[]): FoundLoraPair[] {
  if (config.targetModules === null) return pairs;
  const undeclared = pairs.filter((p) => !targetsModule(config.targetModules, p.modulePath, p.pair.module));
  if (undeclared.length === 0) return pairs;
  const names = [...new Set(undeclared.map((p) => p.modulePath))];
  const listed = `${names.slice(0, 4).join(', ')}${names.length > 4 ? ` and ${names.length - 4} more` : ''}`;
  if (strict) {
    throw new TsloraError('incompatible', `${label} carries LoRA tensors for modules outside its target_modules (${listed}); rejected because of --lora-strict-loading`, {
      hint: 'Fix target_modules in adapter_config.json, or start without --lora-strict-loading to ignore those tensors.',
    });
  }
  warnings.push(`${label}: ignoring LoRA tensors for modules outside its target_modules: ${listed}`);
  const skip = new Set(undeclared);
  return pairs.filter((p) => !skip.has(p));
}

/** Reads, validates and describes a PEFT LoRA adapter directory (spec d). `name` only improves messages. */
export async function readAdapter(path: string, spec: ModelSpec, limits: AdapterPoolLimits, name?: string): Promise<ReadAdapterResult> {
  const label = `adapter '${name ?? basename(resolve(path))}'`;
  const { dir, configPath, weightsPath } = locateFiles(path, label);
  const config = parseAdapterConfig(await readRegularTextFile(configPath, 'adapter_config.json', ADAPTER_JSON_MAX_BYTES));
  checkFeatures(label, config);
  await checkAddedTokens(label, dir, spec);
  const header = await readHeader(weightsPath);
  const warnings: string[] = [];
  const found = filterDeclared(label, config, readAdapterTensors(label, header, config, spec), limits.strict, warnings);
  if (found.length === 0) {
    throw new TsloraError('unsupported_adapter', `${label} contains no LoRA tensors for this model in ${weightsPath}`);
  }
  if (config.modulesToSave.length > 0) {
    warnings.push(`${label}: adapter_config.json lists modules_to_save (${config.modulesToSave.join(', ')}) but the file holds no such weights; ignoring them`);
  }
  const tensors: LoraTensorPair[] = found.map((f) => f.pair);
  const adapter: AdapterSpec = {
    path: dir,
    files: [weightsPath],
    rank: Math.max(...tensors.map((t) => t.rank)),
    targetModules: sortTargets(tensors.map((t) => normalizeModuleName(t.module))),
    tensors,
    sizeBytes: uniqueSizeBytes(tensors),
  };
  checkPool(label, adapter, limits);
  return { adapter, warnings };
}

/** The normalised modules an adapter directory declares, without reading tensors (for pool inference, spec a.4). */
export async function readAdapterTargetSet(path: string, spec: ModelSpec): Promise<LoraTargetModule[]> {
  const { configPath } = locateFiles(path, `adapter '${basename(resolve(path))}'`);
  return adapterTargetSet(parseAdapterConfig(await readRegularTextFile(configPath, 'adapter_config.json', ADAPTER_JSON_MAX_BYTES)), spec);
}
