import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthModel } from '../../../src/bench/synth/write-model.js';
import { synthAdapters } from '../../../src/bench/synth/write-adapters.js';
import { float32ToBfloat16Bits, float32ToFloat16Bits } from '../../../src/bench/synth/random-fill.js';
import { byteAlphabet } from '../../../src/bench/synth/byte-tokenizer.js';
import { TsloraError } from '../../../src/errors.js';

interface HeaderEntry { dtype: string; shape: number[]; data_offsets: [number, number] }

/** Independent reader of the safetensors layout (spec: u64 LE length, JSON header, data). */
function readHeader(path: string): { header: Record<string, HeaderEntry>; dataStart: number; size: number } {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  assert.equal(length % 8, 0, 'header length is padded to 8 bytes');
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, HeaderEntry>;
  return { header, dataStart: 8 + length, size: bytes.length };
}

test('synth model writes an HF folder whose safetensors header covers the file exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synth-model-'));
  const result = synthModel({ shape: 'qwen2.5-0.5b', outDir: dir, dtype: 'bf16', layers: 2, vocab: 300 });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'qwen2');
  assert.equal(config.num_hidden_layers, 2);
  assert.equal(config.vocab_size, 300);
  assert.equal(config.hidden_size, 896);
  assert.equal(config.torch_dtype, 'bfloat16');
  const { header, dataStart, size } = readHeader(join(dir, 'model.safetensors'));
  const tensors = Object.entries(header).filter(([name]) => name !== '__metadata__');
  assert.equal(tensors.length, result.tensorCount);
  assert.deepEqual(header['model.layers.1.self_attn.k_proj.weight'].shape, [128, 896]); // 2 kv heads × 64
  assert.deepEqual(header['model.layers.0.self_attn.q_proj.bias'].shape, [896]);
  assert.deepEqual(header['model.layers.0.mlp.down_proj.weight'].shape, [896, 4864]);
  assert.equal(header['lm_head.weight'], undefined); // tied
  let end = 0;
  for (const [name, entry] of tensors.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])) {
    assert.equal(entry.dtype, 'BF16');
    assert.equal(entry.data_offsets[0], end, `${name} starts where the previous one ended`);
    assert.equal(entry.data_offsets[1] - entry.data_offsets[0], entry.shape.reduce((a, b) => a * b, 1) * 2);
    end = entry.data_offsets[1];
  }
  assert.equal(dataStart + end, size);
  // norms are exactly one, weights are random and small
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  const norm = header['model.norm.weight'];
  assert.equal(bytes.readUInt16LE(dataStart + norm.data_offsets[0]), 0x3f80);
  const q = header['model.layers.0.self_attn.q_proj.weight'];
  const values = new Set<number>();
  for (let i = 0; i < 64; i++) values.add(bytes.readUInt16LE(dataStart + q.data_offsets[0] + i * 2));
  assert.ok(values.size > 32, 'weights are not constant');
  const tokenizer = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  assert.equal(Object.keys(tokenizer.model.vocab).length, 258);
  assert.equal(new Set(byteAlphabet()).size, 256);
  assert.equal(JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')).eos_token, '<|end_of_text|>');
});

test('synth adapters write PEFT folders with PEFT tensor names, shapes and mixed ranks', () => {
  const modelDir = mkdtempSync(join(tmpdir(), 'synth-base-'));
  synthModel({ shape: 'tiny', outDir: modelDir, dtype: 'f32' });
  const outDir = mkdtempSync(join(tmpdir(), 'synth-loras-'));
  const adapters = synthAdapters({ modelDir, outDir, count: 3, ranks: [4, 8], targets: ['all'] });
  assert.deepEqual(adapters.map((a) => [a.name, a.rank]), [['lora-0', 4], ['lora-1', 8], ['lora-2', 4]]);
  const config = JSON.parse(readFileSync(join(outDir, 'lora-1', 'adapter_config.json'), 'utf8'));
  assert.equal(config.peft_type, 'LORA');
  assert.equal(config.r, 8);
  assert.equal(config.lora_alpha, 16);
  assert.deepEqual(config.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  const { header, dataStart, size } = readHeader(join(outDir, 'lora-1', 'adapter_model.safetensors'));
  assert.deepEqual(header['base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight'].shape, [8, 64]);
  assert.deepEqual(header['base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'].shape, [32, 8]); // 2 kv heads × 16
  assert.deepEqual(header['base_model.model.model.layers.0.mlp.down_proj.lora_A.weight'].shape, [8, 176]);
  assert.equal(header['base_model.model.model.layers.0.mlp.down_proj.lora_A.weight'].dtype, 'F32'); // follows the model
  assert.equal(Object.keys(header).length - 1, 2 * 7 * 2);
  assert.equal(statSync(join(outDir, 'lora-1', 'adapter_model.safetensors')).size, size);
  assert.ok(dataStart < size);
  assert.throws(() => synthAdapters({ modelDir, outDir, count: 1, ranks: [4], targets: ['mlp'] }), (e: unknown) => e instanceof TsloraError && /unknown target module 'mlp'/.test(e.message));
});

test('half-precision encoders round to nearest even', () => {
  assert.equal(float32ToFloat16Bits(1), 0x3c00);
  assert.equal(float32ToFloat16Bits(-2), 0xc000);
  assert.equal(float32ToFloat16Bits(0.0001), 0x068e); // subnormal range handled
  assert.equal(float32ToFloat16Bits(65504), 0x7bff);
  assert.equal(float32ToBfloat16Bits(1), 0x3f80);
  assert.equal(float32ToBfloat16Bits(-0.5), 0xbf00);
  assert.equal(float32ToBfloat16Bits(1.00390625), 0x3f80); // tie → even
});
