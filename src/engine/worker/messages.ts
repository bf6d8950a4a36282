/** Messages between the engine facade (main thread) and the engine worker. Plain, structured-cloneable data. */
import type { AdapterSpec, LoraTargetModule, ModelSpec, ModelWeights } from '../model/types.js';
import type { EngineRequest, EngineStats, EngineStepTiming, TokenUpdate } from '../types.js';

export interface EngineInit {
  spec: ModelSpec;
  weights: ModelWeights;
  device: 'auto' | 'cpu' | 'cuda';
  dtype: 'auto' | 'half' | 'float16' | 'bfloat16' | 'float' | 'float32';
  numThreads: number;
  tpSize: number;
  cudaGraphMaxBs: number | null;
  disableCudaGraph: boolean;
  /** Overlap scheduling (src/engine/scheduler/lagged-step.ts); off = every step synchronous. */
  overlapSchedule: boolean;
  contextLength: number;
  memFractionStatic: number | null;
  maxRunningRequests: number | null;
  chunkedPrefillSize: number;
  disablePrefixCache: boolean;
  kvBlockSize: number;
  /** KV cache storage: 'auto' = the compute dtype; 'bf16' = bf16 on the CPU (the CUDA backend ignores it). */
  kvCacheDtype?: 'auto' | 'bf16';
  lora: {
    enabled: boolean;
    slots: number;
    maxRank: number;
    targetModules: LoraTargetModule[];
    backend: 'triton' | 'csgmv';
    chunkSize: number;
    /** CPU backend: LoRA pool storage (default f32). */
    poolDtype?: 'f32' | 'bf16' | 'int8';
    evictionPolicy: 'lru' | 'fifo';
    overlapLoading: boolean;
    drainThresholdMs: number;
  };
  eosTokenIds: number[];
}

export interface EngineInfo {
  device: 'cpu' | 'cuda';
  deviceName: string;
  numThreads: number;
  /** Tensor-parallel ranks the model is split over (CPU thread groups sharing numThreads). */
  tpSize: number;
  kvNumBlocks: number;
  kvBlockSize: number;
  maxRunningRequests: number;
  weightBytes: number;
  kvCacheBytes: number;
  loraPoolBytes: number;
  /** What the runner computes in (the CPU always f32; see compute-dtype.ts). */
  computeDtype: 'f32' | 'bf16' | 'f16';
  /** Start-up warnings of the engine (e.g. --dtype float32 on CUDA served as bf16), for the server to log. */
  warnings: string[];
}

export type ToWorker =
  | { type: 'init'; init: EngineInit }
  | { type: 'submit'; req: EngineRequest }
  | { type: 'abort'; rid: string }
  | { type: 'loadAdapter'; opId: number; id: string; adapter: AdapterSpec; pinned: boolean }
  | { type: 'freeAdapter'; opId: number; id: string }
  | { type: 'setPinned'; opId: number; id: string; pinned: boolean }
  | { type: 'stats'; opId: number }
  | { type: 'shutdown'; opId: number };

export interface WireError {
  code: string;
  message: string;
  hint?: string;
}

export type FromWorker =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'initFailed'; error: WireError }
  | { type: 'updates'; updates: TokenUpdate[]; steps?: EngineStepTiming[] }
  | { type: 'opDone'; opId: number; result?: unknown; error?: WireError };

export type { EngineStats };
