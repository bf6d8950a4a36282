import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readSync, closeSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, toTensorRef } from '../../../src/engine/model/safetensors.js';
import { TsloraError } from '../../../src/errors.js';
import { f32Tensor, modelDir, tempDir, writeSafetensors } from './helpers.js';

async function rejectsCorrupt(path: string, includes: RegExp): Promise<void> {
  await assert.rejects(readSafetensorsHeader(path), (error: unknown) => {
    return error instanceof TsloraError && error.code === 'corrupt_file' && error.message.includes(path) && includes.test(error.message);
  });
}

test('offsets are absolute: the bytes at offsetBytes are the tensor data', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'a.safetensors');
    writeSafetensors(path, { first: f32Tensor([2, 3], (i) => i + 0.5), second: f32Tensor([4], (i) => 100 + i) }, (h) => {
      h.__metadata__ = { format: 'pt' };
    });
    const file = await readSafetensorsHeader(path);
    assert.deepEqual(file.metadata, { format: 'pt' });
    const second = file.tensors.get('second')!;
    assert.equal(second.sizeBytes, 16);
    const buffer = Buffer.alloc(16);
    const fd = openSync(path, 'r');
    readSync(fd, buffer, 0, 16, second.offsetBytes);
    closeSync(fd);
    assert.deepEqual([0, 1, 2, 3].map((i) => buffer.readFloatLE(i * 4)), [100, 101, 102, 103]);
    const ref = toTensorRef(file.tensors.get('first')!, 3);
    assert.deepEqual(ref, { file: 3, offsetBytes: file.dataStartBytes, sizeBytes: 24, dtype: 'f32', shape: [2, 3] });
  } finally {
    cleanup();
  }
});

test('reads a real checkpoint shard written by transformers', async () => {
  const file = await readSafetensorsHeader(join(modelDir('tiny-qwen3'), 'model.safetensors'));
  const embed = file.tensors.get('model.embed_tokens.weight')!;
  assert.equal(embed.dtype, 'BF16');
  assert.deepEqual(embed.shape, [320, 64]);
  assert.ok(embed.offsetBytes >= file.dataStartBytes && embed.offsetBytes + embed.sizeBytes <= file.fileSizeBytes);
});

test('rejects headers and offsets that do not fit the file', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const tiny = join(dir, 'tiny.safetensors');
    writeFileSync(tiny, Buffer.from([1, 2, 3]));
    await rejectsCorrupt(tiny, /shorter than the 8-byte/);

    const hugeLength = join(dir, 'huge.safetensors');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(1n << 40n);
    writeFileSync(hugeLength, Buffer.concat([prefix, Buffer.from('{}')]));
    await rejectsCorrupt(hugeLength, /header length prefix does not fit the file/);

    const badJson = join(dir, 'json.safetensors');
    const body = Buffer.from('{"a": ');
    const p2 = Buffer.alloc(8);
    p2.writeBigUInt64LE(BigInt(body.length));
    writeFileSync(badJson, Buffer.concat([p2, body]));
    await rejectsCorrupt(badJson, /does not parse/);

    const truncated = join(dir, 'trunc.safetensors');
    writeSafetensors(truncated, { w: f32Tensor([8, 8]) });
    const bytes = readFileSync(truncated);
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 4));
    await rejectsCorrupt(truncated, /'w' ends at data byte 256.*truncated/);

    const wrongSize = join(dir, 'size.safetensors');
    writeSafetensors(wrongSize, { w: f32Tensor([4]) }, (h) => {
      (h.w as { shape: number[] }).shape = [5];
    });
    await rejectsCorrupt(wrongSize, /'w' spans 16 bytes but F32\[5\] needs 20/);

    const overlap = join(dir, 'overlap.safetensors');
    writeSafetensors(overlap, { a: f32Tensor([4]), b: f32Tensor([4]) }, (h) => {
      (h.b as { data_offsets: number[] }).data_offsets = [8, 24];
    });
    await rejectsCorrupt(overlap, /overlap/);

    const badDtype = join(dir, 'dtype.safetensors');
    writeSafetensors(badDtype, { w: f32Tensor([4]) }, (h) => {
      (h.w as { dtype: string }).dtype = 'F31';
    });
    await rejectsCorrupt(badDtype, /unknown dtype "F31"/);

    const negative = join(dir, 'neg.safetensors');
    writeSafetensors(negative, { w: f32Tensor([4]) }, (h) => {
      (h.w as { data_offsets: number[] }).data_offsets = [16, 0];
    });
    await rejectsCorrupt(negative, /invalid data_offsets/);
  } finally {
    cleanup();
  }
});
