/**
 * Maps a Hugging Face checkpoint's tensor names onto ModelWeights (one safetensors file, or the shards listed by
 * model.safetensors.index.json) and checks every shape against the ModelSpec.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TsloraError } from '../../errors.js';
import { computeDtype, readSafetensorsHeader, toTensorRef, type SafetensorsEntry } from './safetensors.js';
import type { DType, LayerWeights, ModelSpec, ModelWeights, TensorRef } from './types.js';

const INDEX_FILE = 'model.safetensors.index.json';
const SINGLE_FILE = 'model.safetensors';

interface Located {
  entry: SafetensorsEntry;
  file: number;
}

/** The safetensors files of a model directory, in shard order. */
export async function listWeightFiles(dir: string): Promise<{ files: string[]; weightMap: Map<string, string> | null }> {
  const indexPath = join(dir, INDEX_FILE);
  if (existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await readFile(indexPath, 'utf8'));
    } catch (error) {
      throw new TsloraError('corrupt_file', `${indexPath} is not valid JSON`, { cause: error });
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw new TsloraError('corrupt_file', `${indexPath} has no weight_map`);
    }
    const weightMap = new Map(Object.entries(index.weight_map));
    for (const shard of weightMap.values()) {
      // Shards live next to the index; a path in a shard name would let the index point anywhere on disk.
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard === '..') {
        throw new TsloraError('corrupt_file', `${indexPath} names an invalid shard ${JSON.stringify(shard)}`);
      }
    }
    const files = [...new Set(weightMap.values())].map((name) => resolve(dir, name));
    for (const file of files) {
      if (!existsSync(file)) throw new TsloraError('model_not_found', `shard ${file} listed in ${INDEX_FILE} does not exist`);
    }
    return { files, weightMap };
  }
  const single = join(dir, SINGLE_FILE);
  if (existsSync(single)) return { files: [resolve(single)], weightMap: null };
  const hint = existsSync(join(dir, 'pytorch_model.bin'))
    ? 'Only pytorch_model.bin (pickle) was found; convert it to safetensors (save_pretrained(..., safe_serialization=True)).'
    : 'Expected model.safetensors or model.safetensors.index.json with its shards.';
  throw new TsloraError('model_not_found', `no safetensors weights in ${dir}`, { hint });
}

async function indexTensors(files: string[], weightMap: Map<string, string> | null): Promise<Map<string, Located>> {
  const byName = new Map<string, Located>();
  for (let file = 0; file < files.length; file++) {
    const header = await readSafetensorsHeader(files[file]);
    for (const [name, entry] of header.tensors) {
      if (byName.has(name)) throw new TsloraError('corrupt_file', `tensor '${name}' appears in two weight files`);
      byName.set(name, { entry, file });
    }
  }
  if (weightMap) {
    // listWeightFiles orders files by first appearance in the weight map, so shard names map to file indices.
    const shardIndex = new Map([...new Set(weightMap.values())].map((shard, i) => [shard, i]));
    for (const [name, shard] of weightMap) {
      const located = byName.get(name);
      if (located === undefined || located.file !== shardIndex.get(shard)) {
        throw new TsloraError('corrupt_file', `${INDEX_FILE} places tensor '${name}' in ${shard}, but that shard does not hold it`);
      }
    }
  }
  return byName;
}

class WeightMapper {
  constructor(
    private readonly tensors: Map<string, Located>,
    private readonly dir: string,
  ) {}

  take(name: string, shape: number[]): TensorRef {
    const located = this.tensors.get(name);
    if (!located) {
      throw new TsloraError('corrupt_file', `model in ${this.dir} lacks tensor '${name}'`, {
        hint: 'The checkpoint does not match its config.json; re-download or re-export the model.',
      });
    }
    return this.check(name, located, shape);
  }

  takeOptional(name: string, shape: number[]): TensorRef | undefined {
    const located = this.tensors.get(name);
    return located ? this.check(name, located, shape) : undefined;
  }

  private check(name: string, located: Located, shape: number[]): TensorRef {
    const { entry, file } = located;
    if (computeDtype(entry) === null) {
      throw new TsloraError('unsupported_model', `tensor '${name}' has dtype ${entry.dtype}; tslora loads F32, F16 and BF16 weights`);
    }
    if (entry.shape.length !== shape.length || entry.shape.some((dim, i) => dim !== shape[i])) {
      throw new TsloraError(
        'corrupt_file',
        `tensor '${name}' has shape [${entry.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`,
        { hint: 'The weights do not match config.json.' },
      );
    }
    return toTensorRef(entry, file);
  }
}

function layerWeights(m: WeightMapper, spec: ModelSpec, i: number): LayerWeights {
  const p = `model.layers.${i}.`;
  const h = spec.hiddenSize;
  const qOut = spec.numHeads * spec.headDim;
  const kvOut = spec.numKvHeads * spec.headDim;
  const inter = spec.intermediateSize;
  const layer: LayerWeights = {
    inputNorm: m.take(`${p}input_layernorm.weight`, [h]),
    postAttentionNorm: m.take(`${p}post_attention_layernorm.weight`, [h]),
    qProj: m.take(`${p}self_attn.q_proj.weight`, [qOut, h]),
    kProj: m.take(`${p}self_attn.k_proj.weight`, [kvOut, h]),
    vProj: m.take(`${p}self_attn.v_proj.weight`, [kvOut, h]),
    oProj: m.take(`${p}self_attn.o_proj.weight`, [h, qOut]),
    gateProj: m.take(`${p}mlp.gate_proj.weight`, [inter, h]),
    upProj: m.take(`${p}mlp.up_proj.weight`, [inter, h]),
    downProj: m.take(`${p}mlp.down_proj.weight`, [h, inter]),
  };
  if (spec.qkvBias) {
    layer.qBias = m.take(`${p}self_attn.q_proj.bias`, [qOut]);
    layer.kBias = m.take(`${p}self_attn.k_proj.bias`, [kvOut]);
    layer.vBias = m.take(`${p}self_attn.v_proj.bias`, [kvOut]);
  }
  if (spec.qkNorm) {
    layer.qNorm = m.take(`${p}self_attn.q_norm.weight`, [spec.headDim]);
    layer.kNorm = m.take(`${p}self_attn.k_norm.weight`, [spec.headDim]);
  }
  return layer;
}

/** The dtype holding the largest share of the weights' bytes. */
export function dominantDtype(weights: ModelWeights): DType {
  const bytes = new Map<DType, number>();
  const add = (ref: TensorRef | undefined) => ref && bytes.set(ref.dtype, (bytes.get(ref.dtype) ?? 0) + ref.sizeBytes);
  add(weights.embedTokens);
  add(weights.finalNorm);
  if (weights.lmHead !== weights.embedTokens) add(weights.lmHead);
  for (const layer of weights.layers) for (const ref of Object.values(layer)) add(ref);
  return [...bytes.entries()].sort((a, b) => b[1] - a[1])[0][0];
}

/** Reads the headers of a model directory's safetensors files and maps them onto the spec's layout. */
export async function loadModelWeights(dir: string, spec: ModelSpec): Promise<ModelWeights> {
  const { files, weightMap } = await listWeightFiles(dir);
  const tensors = await indexTensors(files, weightMap);
  const m = new WeightMapper(tensors, dir);
  const embedTokens = m.take('model.embed_tokens.weight', [spec.vocabSize, spec.hiddenSize]);
  const lmHead = spec.tieWordEmbeddings ? embedTokens : m.take('lm_head.weight', [spec.vocabSize, spec.hiddenSize]);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < spec.numLayers; i++) layers.push(layerWeights(m, spec, i));
  return { files, embedTokens, finalNorm: m.take('model.norm.weight', [spec.hiddenSize]), lmHead, layers };
}
