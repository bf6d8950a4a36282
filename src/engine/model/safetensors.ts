/**
 * safetensors header reader (format: u64 little-endian header length, a JSON header, then raw tensor data).
 * Only the header is read; tensor data stays on disk for the addon to memory-map. Every dtype, shape and offset is
 * checked against the file size so that a hostile or truncated file cannot make native code read outside it.
 */
import { TsloraError } from '../../errors.js';
import { openRegularFile } from './regular-file.js';
import type { DType, TensorRef } from './types.js';

/** Bytes per element of every safetensors dtype (the ones tslora cannot compute with are still size-checked). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
};

const COMPUTE_DTYPES: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** A header larger than this is not a real checkpoint header (real ones are KBs to a few MB). */
const MAX_HEADER_BYTES = 256 * 1024 * 1024;

export function bytesPerElement(dtype: DType): number {
  return dtype === 'f32' ? 4 : 2;
}

/** One tensor entry of a safetensors header, offsets already absolute (header included). */
export interface SafetensorsEntry {
  name: string;
  /** The safetensors spelling: "F32", "BF16", "I64", ... */
  dtype: string;
  shape: number[];
  offsetBytes: number;
  sizeBytes: number;
}

export interface SafetensorsFile {
  path: string;
  fileSizeBytes: number;
  /** Absolute offset of the first data byte (8 + header length). */
  dataStartBytes: number;
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

function corrupt(path: string, detail: string, cause?: unknown): TsloraError {
  return new TsloraError('corrupt_file', `corrupt safetensors file ${path}: ${detail}`, {
    hint: 'The file is damaged or not a safetensors file; re-download or re-export it.',
    cause,
  });
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Reads and validates the header of a safetensors file. Throws TsloraError 'corrupt_file' naming the problem. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsFile> {
  const { handle, sizeBytes: fileSizeBytes } = await openRegularFile(path, 'safetensors file', Number.MAX_SAFE_INTEGER);
  try {
    if (fileSizeBytes < 8) throw corrupt(path, `file is ${fileSizeBytes} bytes, shorter than the 8-byte length prefix`);
    const prefix = Buffer.alloc(8);
    await handle.read(prefix, 0, 8, 0);
    const headerLength = prefix.readBigUInt64LE(0);
    if (headerLength > BigInt(Math.min(fileSizeBytes - 8, MAX_HEADER_BYTES))) {
      // The prefix's value is not printed: for a file that is not safetensors it is 8 bytes of its content.
      throw corrupt(path, `the 8-byte header length prefix does not fit the file (${fileSizeBytes} bytes) or exceeds ${MAX_HEADER_BYTES / 1024 / 1024} MiB`);
    }
    const headerBytes = Buffer.alloc(Number(headerLength));
    await handle.read(headerBytes, 0, headerBytes.length, 8);
    const dataStartBytes = 8 + headerBytes.length;
    return parseHeader(path, headerBytes.toString('utf8'), dataStartBytes, fileSizeBytes);
  } finally {
    await handle.close();
  }
}

function parseHeader(path: string, text: string, dataStartBytes: number, fileSizeBytes: number): SafetensorsFile {
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw corrupt(path, 'the JSON header does not parse', error);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw corrupt(path, 'the JSON header is not an object');
  }
  const dataSizeBytes = fileSizeBytes - dataStartBytes;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw !== null && typeof raw === 'object') metadata = raw as Record<string, string>;
      continue;
    }
    tensors.set(name, parseEntry(path, name, raw, dataStartBytes, dataSizeBytes));
  }
  checkNoOverlap(path, [...tensors.values()]);
  return { path, fileSizeBytes, dataStartBytes, tensors, metadata };
}

function parseEntry(path: string, name: string, raw: unknown, dataStart: number, dataSize: number): SafetensorsEntry {
  if (raw === null || typeof raw !== 'object') throw corrupt(path, `tensor '${name}' has no {dtype, shape, data_offsets}`);
  const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
    throw corrupt(path, `tensor '${name}' has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw corrupt(path, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw corrupt(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataSize) {
    throw corrupt(path, `tensor '${name}' ends at data byte ${end} but the file holds only ${dataSize} data bytes (truncated?)`);
  }
  const numElements = (shape as number[]).reduce((product, dim) => product * dim, 1);
  const expectedBytes = numElements * DTYPE_BYTES[dtype];
  if (end - begin !== expectedBytes) {
    throw corrupt(path, `tensor '${name}' spans ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expectedBytes}`);
  }
  return { name, dtype, shape: [...(shape as number[])], offsetBytes: dataStart + begin, sizeBytes: end - begin };
}

function checkNoOverlap(path: string, entries: SafetensorsEntry[]): void {
  const sorted = entries.filter((e) => e.sizeBytes > 0).sort((a, b) => a.offsetBytes - b.offsetBytes);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1];
    if (sorted[i].offsetBytes < previous.offsetBytes + previous.sizeBytes) {
      throw corrupt(path, `tensors '${previous.name}' and '${sorted[i].name}' overlap`);
    }
  }
}

/** The compute dtype of an entry, or null for dtypes tslora cannot use (I64, F64, ...). */
export function computeDtype(entry: SafetensorsEntry): DType | null {
  return COMPUTE_DTYPES[entry.dtype] ?? null;
}

/** Converts an entry to the runner's TensorRef; the caller has checked computeDtype(entry) !== null. */
export function toTensorRef(entry: SafetensorsEntry, fileIndex: number): TensorRef {
  const dtype = computeDtype(entry);
  if (dtype === null) throw new TsloraError('internal', `tensor '${entry.name}' has dtype ${entry.dtype}, not f32/f16/bf16`);
  return { file: fileIndex, offsetBytes: entry.offsetBytes, sizeBytes: entry.sizeBytes, dtype, shape: [...entry.shape] };
}
