/**
 * The memory floor of one decode step (issue #12: a decode step should reach ≥ 0.75–0.85 of it): the bytes a step
 * must read at least once — every projection weight and the LM head (the embedding table is only gathered, a row per
 * token), the distinct adapters' A and B of every targeted module, and the KV cache of every sequence — over the
 * device-memory bandwidth MEASURED on the same GPU in the same run (bench/cuda/bandwidth.cu → its JSON's
 * floorBytesPerS, the larger of its read-kernel and copy-kernel rates). There is no default bandwidth: an H100's HBM3
 * (~3.35 TB/s) and an H200's HBM3e (~4.8 TB/s) differ by 40 %, so a datasheet or another card's figure would misstate
 * the fraction.
 */
import { readFileSync } from 'node:fs';

import type { ModelSpec } from '../../src/engine/model/types.js';

/** What bench/cuda/bandwidth.cu writes. */
export interface MeasuredBandwidth {
  gpu: string;
  readBytesPerS: number;
  copyBytesPerS: number;
  memcpyBytesPerS: number;
  floorBytesPerS: number;
  checksPassed: boolean;
}

/** Reads bandwidth.cu's JSON; refuses a measurement whose own checks failed. */
export function readMeasuredBandwidth(path: string): MeasuredBandwidth {
  const b = JSON.parse(readFileSync(path, 'utf8')) as MeasuredBandwidth;
  if (!b.checksPassed || !(b.floorBytesPerS > 0)) throw new Error(`${path}: the bandwidth measurement failed its checks or is empty`);
  return b;
}
const BYTES_PER_ELEMENT = 2; // bf16 / fp16 weights, activations and KV cache

export interface DecodeFloorInput {
  spec: ModelSpec;
  batch: number;
  /** Tokens already in the KV cache per sequence when the step runs. */
  contextTokens: number;
  /** Distinct adapters in the batch (0 = base) and their rank; all four modules of every layer are targeted. */
  distinctAdapters: number;
  rank: number;
}

export function decodeStepFloorBytes(f: DecodeFloorInput): { weightBytes: number; adapterBytes: number; kvBytes: number } {
  const s = f.spec;
  const qOut = s.numHeads * s.headDim;
  const kvOut = s.numKvHeads * s.headDim;
  const perLayerWeights = s.hiddenSize * (qOut + 2 * kvOut) + qOut * s.hiddenSize + 3 * s.intermediateSize * s.hiddenSize;
  const weightBytes = (perLayerWeights * s.numLayers + s.vocabSize * s.hiddenSize) * BYTES_PER_ELEMENT;
  // A [r, in] + B [out, r] per module: qkv (in H, out q+2kv), o (q → H), gate_up (H → 2I), down (I → H).
  const perLayerAdapter =
    f.rank * (s.hiddenSize + qOut + 2 * kvOut) + f.rank * (qOut + s.hiddenSize) +
    f.rank * (s.hiddenSize + 2 * s.intermediateSize) + f.rank * (s.intermediateSize + s.hiddenSize);
  const adapterBytes = f.distinctAdapters * perLayerAdapter * s.numLayers * BYTES_PER_ELEMENT;
  const kvBytes = f.batch * f.contextTokens * s.numLayers * 2 * kvOut * BYTES_PER_ELEMENT;
  return { weightBytes, adapterBytes, kvBytes };
}

export function decodeStepFloorMs(f: DecodeFloorInput, bandwidthBytesPerS: number): number {
  const b = decodeStepFloorBytes(f);
  return ((b.weightBytes + b.adapterBytes + b.kvBytes) / bandwidthBytesPerS) * 1000;
}
