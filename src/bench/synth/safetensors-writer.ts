/**
 * Streams a safetensors file to disk: u64 little-endian header length, JSON header (padded with spaces to a
 * multiple of 8), then each tensor's bytes in header order. Tensor data comes from a producer called chunk by
 * chunk, so a 16 GB model never exists in memory.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { BYTES_PER_ELEMENT, SAFETENSORS_DTYPE, type SynthDType } from './random-fill.js';

export interface TensorToWrite {
  name: string;
  dtype: SynthDType;
  shape: number[];
  /** returns the next `elements` values, encoded in `dtype` (may be a view into a shared pool) */
  produce(elements: number): Buffer;
}

const CHUNK_ELEMENTS = 1 << 20;

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

export function safetensorsHeader(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const tensor of tensors) {
    const size = elementCount(tensor.shape) * BYTES_PER_ELEMENT[tensor.dtype];
    header[tensor.name] = { dtype: SAFETENSORS_DTYPE[tensor.dtype], shape: tensor.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const jsonBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(jsonBytes.length));
  return Buffer.concat([prefix, jsonBytes]);
}

/** Writes the file; returns its size in bytes. `onProgress` gets bytes written so far. */
export function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: { metadata?: Record<string, string>; onProgress?: (bytes: number) => void } = {},
): number {
  const fd = openSync(path, 'w');
  let written = 0;
  try {
    const header = safetensorsHeader(tensors, options.metadata);
    written += writeSync(fd, header);
    for (const tensor of tensors) {
      let remaining = elementCount(tensor.shape);
      while (remaining > 0) {
        const elements = Math.min(remaining, CHUNK_ELEMENTS);
        const bytes = tensor.produce(elements);
        if (bytes.length !== elements * BYTES_PER_ELEMENT[tensor.dtype]) {
          throw new Error(`tensor ${tensor.name}: producer returned ${bytes.length} bytes for ${elements} elements`);
        }
        let offset = 0;
        while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
        written += bytes.length;
        remaining -= elements;
        options.onProgress?.(written);
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

/** A producer of a constant value (norm weights = 1, biases = 0). */
export function constantProducer(value: 0 | 1, dtype: SynthDType): (elements: number) => Buffer {
  let cached: Buffer | null = null;
  return (elements) => {
    if (!cached || cached.length < elements * BYTES_PER_ELEMENT[dtype]) {
      const bytes = Buffer.alloc(CHUNK_ELEMENTS * BYTES_PER_ELEMENT[dtype]);
      for (let i = 0; i < CHUNK_ELEMENTS; i++) {
        if (dtype === 'f32') bytes.writeFloatLE(value, i * 4);
        else if (dtype === 'bf16') bytes.writeUInt16LE(value === 1 ? 0x3f80 : 0, i * 2);
        else bytes.writeUInt16LE(value === 1 ? 0x3c00 : 0, i * 2);
      }
      cached = bytes;
    }
    return cached.subarray(0, elements * BYTES_PER_ELEMENT[dtype]);
  };
}
