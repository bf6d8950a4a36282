/**
 * The resolved, validated configuration of `tslora serve` (defaults < config file < env < flags).
 * Produced by resolveServeConfig() in src/config; consumed by src/server and, in part, by src/engine.
 */
import type { LoraTargetModule } from '../engine/model/types.js';

export interface StartupAdapter {
  name: string;
  path: string;
  pinned: boolean;
}

export type LogLevel = 'debug' | 'info' | 'warning' | 'error';

export interface ServeConfig {
  // general serving (spec a.5)
  /** Absolute path of the model directory; null = the embedded demo model (models/demo) with its adapters. */
  modelPath: string | null;
  tokenizerPath: string | null;
  host: string;
  port: number; // 0 = pick a free port
  device: 'auto' | 'cpu' | 'cuda';
  dtype: 'auto' | 'half' | 'float16' | 'bfloat16' | 'float' | 'float32';
  tpSize: number;
  cudaGraphMaxBs: number | null; // null = chosen automatically
  disableCudaGraph: boolean;
  disableOverlapSchedule: boolean;
  apiKey: string | null;
  servedModelName: string | null; // null = derived from the model path
  contextLength: number | null; // null = the model's max_position_embeddings
  memFractionStatic: number | null; // (0,1); null = backend default
  kvCacheDtype: 'auto' | 'bf16'; // KV cache storage (CPU: auto = f32); the CUDA backend ignores it
  maxRunningRequests: number | null; // null = derived from KV capacity
  maxQueuedRequests: number; // bounded waiting queue; beyond it requests get 503
  shutdownTimeout: number; // seconds a drain waits for running requests and slow readers
  chunkedPrefillSize: number; // -1 = no chunking
  randomSeed: number | null;
  logLevel: LogLevel;
  disableRadixCache: boolean;
  streamInterval: number;
  incrementalStreamingOutput: boolean;
  enableMetrics: boolean;
  maxUnreadStreamBytes: number; // a streaming client with more unread bytes buffered is disconnected
  numThreads: number; // CPU backend worker threads, 0 = all cores
  replicas: number; // server processes started by this command (ports port..port+replicas-1)

  // LoRA (spec a.1)
  enableLora: boolean; // after rules 2/3: true when --lora-paths implied it
  loraPaths: StartupAdapter[];
  maxLoraRank: number | null; // null = inferred from start-up adapters (a.4)
  loraTargetModules: LoraTargetModule[] | 'all' | null; // null = inferred (a.4); names already normalised to fused form
  maxLorasPerBatch: number;
  maxLoadedLoras: number | null; // null = unlimited
  loraEvictionPolicy: 'lru' | 'fifo';
  loraBackend: 'triton' | 'csgmv';
  maxLoraChunkSize: 16 | 32 | 64 | 128;
  loraPoolDtype: 'f32' | 'bf16' | 'int8'; // CPU backend's LoRA pool storage (the CUDA backend ignores it)
  enableLoraOverlapLoading: boolean;
  loraDrainWaitThreshold: number; // seconds, 0 = off
  loraStrictLoading: boolean;
  loraResolverDir: string | null; // absolute; null = no on-demand loading from a directory
  /** Absolute directories run-time adapter loads must resolve into; empty = no restriction. */
  loraAllowedDirs: string[];
  /**
   * True when no --model-path and no --lora-paths were given and LoRA was not turned off: the server loads the
   * embedded demo model's own adapters at start-up (rule 9 is then satisfied by them). Added by the foundation work.
   */
  demoAdapters: boolean;

  /** Non-fatal notes produced while resolving (rule 2/3 messages, inert LoRA flags); printed at start-up. */
  warnings: string[];
}
