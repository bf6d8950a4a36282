/**
 * PEFT adapter tensor names → LoraTensorPair (spec d.3): key parsing (with or without an adapter name before
 * `.weight`; lora_embedding_A/B), rejection of full weights, rank and shape checks, and splitting of already-fused
 * qkv_proj / gate_up_proj adapters into per-projection pairs (spec e.2).
 */
import { TsloraError } from '../../errors.js';
import { moduleScaling, peftModuleName, type AdapterConfig } from './adapter-config.js';
import { bytesPerElement, computeDtype, toTensorRef, type SafetensorsEntry, type SafetensorsFile } from './safetensors.js';
import type { LoraModuleName, LoraTensorPair, ModelSpec, TensorRef } from './types.js';

export interface FoundLoraPair {
  /** Full module path as PEFT names it (without "base_model.model."), e.g. model.layers.3.self_attn.q_proj. */
  modulePath: string;
  pair: LoraTensorPair;
}

const PREFIX = 'base_model.model.';
const LINEAR_KEY = /^(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/;
const EMBEDDING_KEY = /^(.+)\.lora_embedding_([AB])(?:\.[^.]+)?$/;
const LAYER_INDEX = /(?:^|\.)layers\.(\d+)\./;

interface Half {
  name: string;
  entry: SafetensorsEntry;
}

interface ModuleTensors {
  path: string;
  last: string;
  a?: Half;
  b?: Half;
}

/** [in, out] of an un-fused module's weight, from the base config. */
function moduleDims(spec: ModelSpec, module: LoraModuleName): { in: number; out: number } {
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  const h = spec.hiddenSize;
  const inter = spec.intermediateSize;
  switch (module) {
    case 'q_proj':
      return { in: h, out: q };
    case 'k_proj':
    case 'v_proj':
      return { in: h, out: kv };
    case 'o_proj':
      return { in: q, out: h };
    case 'gate_proj':
    case 'up_proj':
      return { in: h, out: inter };
    case 'down_proj':
      return { in: inter, out: h };
    case 'embed_tokens':
      return { in: spec.vocabSize, out: h };
    case 'lm_head':
      return { in: h, out: spec.vocabSize };
  }
}

/** Slices [name, rows] of an already-fused adapter module. */
function fusedSlices(spec: ModelSpec, last: string): Array<[LoraModuleName, number]> | null {
  const kv = spec.numKvHeads * spec.headDim;
  if (last === 'qkv_proj') return [['q_proj', spec.numHeads * spec.headDim], ['k_proj', kv], ['v_proj', kv]];
  if (last === 'gate_up_proj') return [['gate_proj', spec.intermediateSize], ['up_proj', spec.intermediateSize]];
  return null;
}

function listNames(names: string[]): string {
  return `${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`;
}

function rejectFullWeights(label: string, config: AdapterConfig, others: string[]): void {
  if (others.length === 0) return;
  if (others.some((n) => n.includes('lora_magnitude_vector'))) {
    throw new TsloraError('unsupported_adapter', `${label} uses DoRA (lora_magnitude_vector tensors), which tslora does not support`);
  }
  const saved = others.filter((n) => n.includes('modules_to_save') || config.modulesToSave.some((m) => n.includes(`.${m}.`) || n.startsWith(`${PREFIX}${m}.`)));
  if (saved.length > 0) {
    const modules = config.modulesToSave.length > 0 ? config.modulesToSave.join(', ') : listNames(saved);
    throw new TsloraError('unsupported_adapter', `${label} carries full weights for modules_to_save (${modules}); tslora serves low-rank deltas only`, {
      hint: 'Retrain or merge without modules_to_save.',
    });
  }
  const biases = others.filter((n) => n.endsWith('.bias'));
  if (biases.length > 0) {
    throw new TsloraError('unsupported_adapter', `${label} carries trained bias tensors (bias="${config.bias}"): ${listNames(biases)}; tslora serves LoRA A/B matrices only`, {
      hint: 'Retrain with bias="none".',
    });
  }
  throw new TsloraError('unsupported_adapter', `${label} carries full (non-LoRA) weights: ${listNames(others)}; tslora serves low-rank deltas only`, {
    hint: 'Remove these tensors, or merge the adapter into the base model.',
  });
}

function groupByModule(label: string, header: SafetensorsFile, config: AdapterConfig): Map<string, ModuleTensors> {
  const modules = new Map<string, ModuleTensors>();
  const others: string[] = [];
  for (const [name, entry] of header.tensors) {
    const match = LINEAR_KEY.exec(name) ?? EMBEDDING_KEY.exec(name);
    if (!match) {
      others.push(name);
      continue;
    }
    const path = match[1].startsWith(PREFIX) ? match[1].slice(PREFIX.length) : match[1];
    const module = modules.get(path) ?? { path, last: path.split('.').pop() ?? path };
    const half = match[2] === 'A' ? 'a' : 'b';
    if (module[half]) throw new TsloraError('unsupported_adapter', `corrupt adapter file: two lora_${match[2]} tensors for ${path}`);
    module[half] = { name, entry };
    modules.set(path, module);
  }
  rejectFullWeights(label, config, others);
  return modules;
}

function shapeError(label: string, tensor: string, expected: number[], actual: number[], why = ''): TsloraError {
  return new TsloraError('incompatible', `${label} is incompatible with the base model: tensor '${tensor}' has shape [${actual.join(', ')}], expected [${expected.join(', ')}]${why}`, {
    hint: 'The adapter was trained for a different base model (or a different rank_pattern); use an adapter made for this model.',
  });
}

function checkDtype(label: string, half: Half): void {
  if (computeDtype(half.entry) === null) {
    throw new TsloraError('unsupported_adapter', `${label}: tensor '${half.name}' has dtype ${half.entry.dtype}; LoRA tensors must be F32, F16 or BF16`);
  }
}

/** A row range of a [rows, cols] tensor as its own TensorRef (rows are contiguous in row-major storage). */
function rowSlice(ref: TensorRef, startRow: number, numRows: number): TensorRef {
  const cols = ref.shape[1];
  const rowBytes = cols * bytesPerElement(ref.dtype);
  return { ...ref, offsetBytes: ref.offsetBytes + startRow * rowBytes, sizeBytes: numRows * rowBytes, shape: [numRows, cols] };
}

function buildPairs(label: string, spec: ModelSpec, config: AdapterConfig, m: ModuleTensors): FoundLoraPair[] {
  if (!m.a || !m.b) {
    const missing = m.a ? 'lora_B' : 'lora_A';
    throw new TsloraError('unsupported_adapter', `corrupt adapter file: ${label} has no ${missing} tensor for ${m.path}`);
  }
  checkDtype(label, m.a);
  checkDtype(label, m.b);
  const layerMatch = LAYER_INDEX.exec(`${m.path}.`);
  const fused = fusedSlices(spec, m.last);
  const module = fused ? fused[0][0] : peftModuleName(m.last);
  if (module === null) {
    throw new TsloraError('incompatible', `${label} is incompatible with the base model: it adapts '${m.path}', which ${spec.hfArchitecture} does not have`, {
      hint: 'tslora adapts q/k/v/o_proj, gate/up/down_proj, embed_tokens and lm_head.',
    });
  }
  const layer = module === 'embed_tokens' || module === 'lm_head' ? -1 : layerMatch ? Number(layerMatch[1]) : NaN;
  if (layer !== -1 && !(layer >= 0 && layer < spec.numLayers)) {
    throw new TsloraError('incompatible', `${label} is incompatible with the base model: '${m.path}' names a layer outside 0..${spec.numLayers - 1}`);
  }
  const { rank, scaling } = moduleScaling(config, m.path);
  const dims = moduleDims(spec, module);
  const outTotal = fused ? fused.reduce((sum, [, rows]) => sum + rows, 0) : dims.out;
  const aShape = module === 'embed_tokens' ? [rank, spec.vocabSize] : [rank, dims.in];
  const bShape = [outTotal, rank];
  const rankNote = rank !== config.r ? ` (rank ${rank} from rank_pattern)` : '';
  if (m.a.entry.shape.join() !== aShape.join()) throw shapeError(label, m.a.name, aShape, m.a.entry.shape, rankNote);
  if (m.b.entry.shape.join() !== bShape.join()) throw shapeError(label, m.b.name, bShape, m.b.entry.shape, rankNote);
  const a = toTensorRef(m.a.entry, 0);
  const b = toTensorRef(m.b.entry, 0);
  if (!fused) return [{ modulePath: m.path, pair: { layer, module, rank, scaling, a, b } }];
  // Already-fused adapter: every slice sees the same A (exact), and B splits by the slice offsets (spec e.2).
  let row = 0;
  return fused.map(([sliceModule, rows]) => {
    const pair: LoraTensorPair = { layer, module: sliceModule, rank, scaling, a, b: rowSlice(b, row, rows) };
    row += rows;
    return { modulePath: m.path, pair };
  });
}

/** Every LoRA pair in an adapter file, validated against the base model; throws on anything that is not LoRA. */
export function readAdapterTensors(label: string, header: SafetensorsFile, config: AdapterConfig, spec: ModelSpec): FoundLoraPair[] {
  const found: FoundLoraPair[] = [];
  for (const module of groupByModule(label, header, config).values()) found.push(...buildPairs(label, spec, config, module));
  return found.sort((x, y) => x.pair.layer - y.pair.layer || x.pair.module.localeCompare(y.pair.module));
}
