/**
 * `tslora synth adapters`: random PEFT LoRA adapters for a model folder (adapter_config.json +
 * adapter_model.safetensors with PEFT tensor names), one folder per adapter: OUT/lora-0, OUT/lora-1, ...
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TsloraError } from '../../errors.js';
import { RandomPool, type SynthDType } from './random-fill.js';
import { writeSafetensors, type TensorToWrite } from './safetensors-writer.js';
import { ATTENTION_MODULES, projectionShapes } from './shapes.js';

export const ALL_LINEAR_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export interface SynthAdaptersOptions {
  modelDir: string;
  outDir: string;
  count: number;
  /** ranks used in turn */
  ranks: number[];
  targets: string[];
  alpha?: number;
  dtype?: SynthDType;
  seed?: number;
}

export interface SynthAdapter {
  name: string;
  path: string;
  rank: number;
  sizeBytes: number;
}

const TORCH_TO_SYNTH: Record<string, SynthDType> = { bfloat16: 'bf16', float16: 'f16', float32: 'f32' };

function readModelConfig(modelDir: string): Record<string, number | string | undefined> {
  const path = join(modelDir, 'config.json');
  if (!existsSync(path)) throw new TsloraError('usage', `--model ${modelDir} has no config.json.`, { hint: 'Point --model at a Hugging Face model folder.' });
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, number | string | undefined>;
}

export function normalizeTargets(targets: string[]): string[] {
  if (targets.length === 1 && (targets[0] === 'all' || targets[0] === 'all-linear')) return [...ALL_LINEAR_MODULES];
  for (const target of targets) {
    if (!(ALL_LINEAR_MODULES as readonly string[]).includes(target)) {
      throw new TsloraError('usage', `unknown target module '${target}'; expected some of ${ALL_LINEAR_MODULES.join(' ')}, or all.`);
    }
  }
  return [...new Set(targets)];
}

export function synthAdapters(options: SynthAdaptersOptions): SynthAdapter[] {
  const config = readModelConfig(options.modelDir);
  const hidden = Number(config.hidden_size);
  const heads = Number(config.num_attention_heads);
  const shape = {
    hidden,
    intermediate: Number(config.intermediate_size),
    heads,
    kvHeads: Number(config.num_key_value_heads ?? heads),
    headDim: Number(config.head_dim ?? hidden / heads),
  };
  const layers = Number(config.num_hidden_layers);
  const dtype = options.dtype ?? TORCH_TO_SYNTH[String(config.torch_dtype ?? config.dtype)] ?? 'bf16';
  const targets = normalizeTargets(options.targets);
  if (options.count < 1) throw new TsloraError('usage', `--count must be at least 1 (got ${options.count}).`);
  if (options.ranks.length === 0 || options.ranks.some((r) => !Number.isInteger(r) || r < 1)) {
    throw new TsloraError('usage', `--rank must be positive integers (got ${options.ranks.join(',')}).`);
  }
  const projections = projectionShapes(shape);
  mkdirSync(options.outDir, { recursive: true });
  const adapters: SynthAdapter[] = [];
  // A like PEFT's kaiming-uniform; B non-zero (PEFT starts it at 0) so the adapter changes the output. The value
  // pools are drawn once; each adapter reads its own windows of them (its own seed).
  const baseSeed = (options.seed ?? 1) * 1000;
  const valuesA = new RandomPool(dtype, 1 / Math.sqrt(shape.hidden), baseSeed);
  const valuesB = new RandomPool(dtype, 0.02, baseSeed + 500);
  for (let i = 0; i < options.count; i++) {
    const rank = options.ranks[i % options.ranks.length];
    const name = `lora-${i}`;
    const dir = join(options.outDir, name);
    mkdirSync(dir, { recursive: true });
    const seed = baseSeed + i;
    const poolA = valuesA.reseeded(dtype, seed);
    const poolB = valuesB.reseeded(dtype, seed + 500 + options.count);
    const tensors: TensorToWrite[] = [];
    for (let layer = 0; layer < layers; layer++) {
      for (const module of targets) {
        const [outDim, inDim] = projections[module];
        const prefix = `base_model.model.model.layers.${layer}.${ATTENTION_MODULES.has(module) ? 'self_attn' : 'mlp'}.${module}`;
        tensors.push({ name: `${prefix}.lora_A.weight`, dtype, shape: [rank, inDim], produce: (n) => poolA.chunk(n) });
        tensors.push({ name: `${prefix}.lora_B.weight`, dtype, shape: [outDim, rank], produce: (n) => poolB.chunk(n) });
      }
    }
    const sizeBytes = writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
    const adapterConfig = {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: resolve(options.modelDir),
      r: rank,
      lora_alpha: options.alpha ?? 2 * rank,
      lora_dropout: 0.0,
      target_modules: targets,
      bias: 'none',
      fan_in_fan_out: false,
      use_rslora: false,
      use_dora: false,
      modules_to_save: null,
      inference_mode: true,
      init_lora_weights: true,
      rank_pattern: {},
      alpha_pattern: {},
    };
    writeFileSync(join(dir, 'adapter_config.json'), `${JSON.stringify(adapterConfig, null, 2)}\n`);
    adapters.push({ name, path: dir, rank, sizeBytes });
  }
  return adapters;
}
