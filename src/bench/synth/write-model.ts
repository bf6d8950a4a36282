/**
 * `tslora synth model`: a random-weight Hugging Face folder in a published shape (config.json,
 * model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json), streamed to disk.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TsloraError } from '../../errors.js';
import { RandomPool, type SynthDType } from './random-fill.js';
import { constantProducer, writeSafetensors, type TensorToWrite } from './safetensors-writer.js';
import { byteTokenizerConfig, byteTokenizerJson } from './byte-tokenizer.js';
import { SHAPES, SYNTH_BOS_ID, SYNTH_EOS_ID, hfConfig, projectionShapes, type ShapeSpec, type SynthShape } from './shapes.js';

export interface SynthModelOptions {
  shape: SynthShape;
  outDir: string;
  dtype?: SynthDType;
  layers?: number;
  vocab?: number;
  seed?: number;
  onProgress?: (bytesWritten: number, totalBytes: number) => void;
}

export interface SynthModelResult {
  outDir: string;
  config: Record<string, unknown>;
  tensorCount: number;
  sizeBytes: number;
}

/** The model's tensors in HF naming, in the order they are written. */
export function modelTensors(shape: ShapeSpec, dtype: SynthDType, pool: RandomPool): TensorToWrite[] {
  const random = (name: string, dims: number[]): TensorToWrite => ({ name, dtype, shape: dims, produce: (n) => pool.chunk(n) });
  const ones = (name: string, dims: number[]): TensorToWrite => ({ name, dtype, shape: dims, produce: constantProducer(1, dtype) });
  const tensors: TensorToWrite[] = [random('model.embed_tokens.weight', [shape.vocab, shape.hidden])];
  const projections = projectionShapes(shape);
  for (let layer = 0; layer < shape.layers; layer++) {
    const prefix = `model.layers.${layer}`;
    tensors.push(ones(`${prefix}.input_layernorm.weight`, [shape.hidden]));
    for (const module of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) {
      tensors.push(random(`${prefix}.self_attn.${module}.weight`, projections[module]));
      if (shape.family === 'qwen2' && module !== 'o_proj') tensors.push(random(`${prefix}.self_attn.${module}.bias`, [projections[module][0]]));
    }
    tensors.push(ones(`${prefix}.post_attention_layernorm.weight`, [shape.hidden]));
    for (const module of ['gate_proj', 'up_proj', 'down_proj']) tensors.push(random(`${prefix}.mlp.${module}.weight`, projections[module]));
  }
  tensors.push(ones('model.norm.weight', [shape.hidden]));
  if (!shape.tied) tensors.push(random('lm_head.weight', [shape.vocab, shape.hidden]));
  return tensors;
}

export function synthModel(options: SynthModelOptions): SynthModelResult {
  const base = SHAPES[options.shape];
  if (!base) throw new TsloraError('usage', `unknown shape '${options.shape}'; expected one of ${Object.keys(SHAPES).join(', ')}.`);
  if (options.layers !== undefined && (options.layers < 1 || !Number.isInteger(options.layers))) {
    throw new TsloraError('usage', `--layers must be a positive integer (got ${options.layers}).`);
  }
  if (options.vocab !== undefined && options.vocab < 260) {
    throw new TsloraError('usage', `--vocab must be at least 260 (256 byte tokens plus specials; got ${options.vocab}).`);
  }
  const dtype = options.dtype ?? 'bf16';
  const shape: ShapeSpec = { ...base, layers: options.layers ?? base.layers, vocab: options.vocab ?? base.vocab };
  mkdirSync(options.outDir, { recursive: true });
  const config = hfConfig(shape, dtype, options.shape);
  writeFileSync(join(options.outDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(
    join(options.outDir, 'generation_config.json'),
    `${JSON.stringify({ bos_token_id: SYNTH_BOS_ID, eos_token_id: SYNTH_EOS_ID, do_sample: false }, null, 2)}\n`,
  );
  writeFileSync(join(options.outDir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson()));
  writeFileSync(join(options.outDir, 'tokenizer_config.json'), `${JSON.stringify(byteTokenizerConfig(shape.maxPositions), null, 2)}\n`);

  // std 0.02 like HF's initializer_range: uniform in ±0.02·√3
  const pool = new RandomPool(dtype, 0.02 * Math.sqrt(3), options.seed ?? 0);
  const tensors = modelTensors(shape, dtype, pool);
  const totalBytes = tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * pool.bytesPerElement, 0);
  const sizeBytes = writeSafetensors(join(options.outDir, 'model.safetensors'), tensors, {
    metadata: { tslora_synthetic: options.shape },
    onProgress: options.onProgress ? (bytes) => options.onProgress!(bytes, totalBytes) : undefined,
  });
  return { outDir: options.outDir, config, tensorCount: tensors.length, sizeBytes };
}
