// Shared helpers for the model-loading tests: fixture paths, reference JSON, and a tiny safetensors writer.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const FIXTURES = resolve('test/fixtures');
export const MODELS = ['tiny-llama', 'tiny-qwen2', 'tiny-qwen3'] as const;
export type FixtureModel = (typeof MODELS)[number];

export function modelDir(model: FixtureModel): string {
  return join(FIXTURES, 'models', model);
}

export interface ReferenceFile {
  model: string;
  architecture: string;
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  adapters: Array<{
    name: string;
    path: string;
    r: number;
    loraAlpha: number;
    useRslora: boolean;
    targetModules: string[] | string;
    rankPattern: Record<string, number>;
    alphaPattern: Record<string, number>;
    numTensors: number;
  }>;
  invalidAdapters: Record<string, { code: string; messageIncludes: string; structureValid?: boolean; limits?: { maxRank?: number; targetModules?: string[] } }>;
  tokenizer: Array<{ text: string; ids: number[]; idsNoSpecial: number[]; decoded: string; decodedSkipSpecial: string }>;
  chatTemplate: Array<{ messages: Array<{ role: string; content: string }>; addGenerationPrompt: boolean; rendered: string }>;
}

export function reference(model: FixtureModel): ReferenceFile {
  return JSON.parse(readFileSync(join(FIXTURES, 'reference', `${model}.json`), 'utf8'));
}

/** A temporary copy of a fixture directory; call cleanup() when done. */
export function tempCopy(src: string): { dir: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'tslora-model-test-'));
  const dir = join(root, 'copy');
  cpSync(src, dir, { recursive: true });
  return { dir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-model-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RawTensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

/** Writes a safetensors file: u64 LE header length, JSON header, data (tensors in insertion order). */
export function writeSafetensors(path: string, tensors: Record<string, RawTensor>, headerOverride?: (header: Record<string, unknown>) => void): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  headerOverride?.(header);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([prefix, json, ...Object.values(tensors).map((t) => t.data)]));
}

export function f32Tensor(shape: number[], fill: (i: number) => number = (i) => i): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) data.writeFloatLE(fill(i), i * 4);
  return { dtype: 'F32', shape, data };
}

export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2));
}
