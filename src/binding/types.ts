/**
 * The whole native surface: what tslora_cpu.node and tslora_cuda.node export (same shape for both).
 * Only src/binding imports the .node files; everything else talks to these types.
 *
 * Conventions
 *  - T = tokens in a step, B = sequences in a step, N = logit rows in a step, S = LoRA slots, V = vocab.
 *  - Every entry point validates its arguments (lengths, ranges, offsets within the mapped files) and throws an
 *    Error with a string `code` property (e.g. "native_invalid_argument", "corrupt_file") instead of aborting.
 */
import type { AdapterSpec, LoraTargetModule, ModelSpec, ModelWeights } from '../engine/model/types.js';

export type NativeDevice = 'cpu' | 'cuda';

export interface DeviceInfo {
  device: NativeDevice;
  /** GPUs visible (0 for the CPU build, or when the CUDA build finds no driver/GPU). */
  gpuCount: number;
  name: string;
  totalMemoryBytes: number;
  freeMemoryBytes: number;
  /** Worker threads the CPU backend uses (0 on CUDA). */
  numThreads: number;
}

export interface CreateModelOptions {
  spec: ModelSpec;
  weights: ModelWeights;
  /** KV cache: numBlocks pages of blockSize token positions, for every layer, K and V. */
  kvNumBlocks: number;
  kvBlockSize: number;
  /** LoRA device pool: S slots of rank capacity R for each target module of every layer. 0 slots = LoRA off. */
  loraSlots: number;
  loraMaxRank: number;
  loraTargetModules: LoraTargetModule[];
  /** CPU: worker threads (0 = all cores). CUDA: ignored. */
  numThreads: number;
  /** CPU: storage of the LoRA pool (default 'f32'; 'bf16' halves it, rounding fp32 adapters). CUDA: ignored. */
  loraPoolDtype?: 'f32' | 'bf16' | 'int8';
  /** CPU: storage of the KV cache (default 'f32'; 'bf16' halves it, attention accumulates in f32). CUDA: ignored. */
  kvCacheDtype?: 'f32' | 'bf16';
  /** Tensor-parallel ranks (default 1). CPU: thread groups sharing numThreads (docs/tensor-parallel.md). */
  tpSize?: number;
  /** CUDA: device ordinal; compute dtype 'bf16' | 'f16'. CPU computes in f32 always. */
  deviceIndex?: number;
  computeDtype?: 'f32' | 'bf16' | 'f16';
  /** CUDA: largest decode batch captured as a CUDA graph; 0 disables graphs. */
  cudaGraphMaxBatchSize?: number;
}

export interface MemoryReport {
  weightBytes: number;
  kvCacheBytes: number;
  loraPoolBytes: number;
  /** Bytes held by host-tier adapters created by this model. */
  hostAdapterBytes: number;
}

/**
 * One forward step over B sequences whose new tokens are laid out contiguously (sequence b owns token rows
 * [seqTokenStart[b], seqTokenStart[b+1])). LoRA metadata follows spec e.3 and is built by the runner per backend.
 */
export interface StepInput {
  tokenIds: Int32Array; // [T]
  positions: Int32Array; // [T] absolute position of each token in its sequence
  seqTokenStart: Int32Array; // [B+1]
  seqContextLen: Int32Array; // [B] KV length of each sequence after this step (cached prefix + new tokens)
  blockTables: Int32Array; // [B * maxBlocksPerSeq] physical KV block ids, row-major
  maxBlocksPerSeq: number;

  /** 'triton' = one segment per sequence; 'csgmv' = rows permuted by slot, chunks of loraChunkSize. */
  loraBackend: 'triton' | 'csgmv';
  loraSegIndptr: Int32Array; // [G+1] segment boundaries over (permuted) token rows
  loraWeightIndices: Int32Array; // [G] slot of each segment; -1 = base (no LoRA work)
  loraPermutation: Int32Array; // [T] physical row of each permuted position; empty = identity
  loraChunkSize: number; // csgmv C (also the max segment length); triton: longest segment

  /** Rows whose logits are computed (usually each sequence's last new token). */
  logitRows: Int32Array; // [N]
  /** Per logit row: sample a token (1) or only score `targetTokenIds` (0, prompt logprobs). */
  sampleMask: Uint8Array; // [N]
  temperature: Float32Array; // [N] 0 = greedy
  topP: Float32Array; // [N] 1 = off
  topK: Int32Array; // [N] <= 0 = off
  minP: Float32Array; // [N] 0 = off
  /** Per row 64-bit random state as two uint32 (lo, hi); the runner derives it from (seed, step). */
  rngSeeds: Uint32Array; // [N*2]
  repetitionPenalty: Float32Array; // [N] 1 = off (applies to every token in the penalty list)
  frequencyPenalty: Float32Array; // [N] 0 = off (times the output count)
  presencePenalty: Float32Array; // [N] 0 = off (if the output count > 0)
  penaltyIndptr: Int32Array; // [N+1] CSR over the two arrays below
  penaltyTokenIds: Int32Array; // [P] distinct tokens seen (prompt and output)
  penaltyOutputCounts: Int32Array; // [P] how often each appeared in the output (0 = prompt only)
  /** Token whose logprob to report per row (-1 = none), e.g. the next prompt token. */
  targetTokenIds: Int32Array; // [N]
  /** Top logprobs per row to return (0 = none); the output uses K = max over rows. */
  topLogprobsNum: Int32Array; // [N]
  /** Return the raw (pre-penalty, pre-temperature) logits of every logit row (tests, debugging). */
  returnLogits: boolean;
  /**
   * Optional CSR of token ids each row must not sample (min_new_tokens: EOS and stop ids get -inf after the
   * penalties); both absent = none. Ids must be inside the vocabulary.
   */
  suppressIndptr?: Int32Array; // [N+1]
  suppressTokenIds?: Int32Array; // [S]
  /** Optional CSR of logit_bias entries per row (added after the penalties); all three absent = none. */
  biasIndptr?: Int32Array; // [N+1]
  biasTokenIds?: Int32Array; // [B] distinct per row, inside the vocabulary
  biasValues?: Float32Array; // [B]
}

export interface StepOutput {
  sampledTokenIds: Int32Array; // [N] -1 where sampleMask = 0
  /** log softmax of the raw logits at the sampled token (SGLang reports unprocessed logprobs). */
  sampledLogprobs: Float32Array; // [N]
  targetLogprobs: Float32Array; // [N] NaN where targetTokenIds = -1
  topLogprobIds: Int32Array; // [N*K]
  topLogprobs: Float32Array; // [N*K]
  topLogprobsK: number;
  logits?: Float32Array; // [N*V] when returnLogits
  /** forwardWait only: milliseconds of the forward alone on the native step thread. */
  forwardMs?: number;
}

/** Opaque handles (napi External objects). */
export interface NativeModelHandle {
  readonly __nativeModel: unique symbol;
}
export interface NativeHostAdapterHandle {
  readonly __nativeHostAdapter: unique symbol;
}

export interface NativeBackend {
  readonly device: NativeDevice;
  deviceInfo(): DeviceInfo;
  createModel(options: CreateModelOptions): NativeModelHandle;
  /** Unmaps weights and frees the KV cache and LoRA pool. */
  destroyModel(model: NativeModelHandle): void;
  memoryReport(model: NativeModelHandle): MemoryReport;

  forward(model: NativeModelHandle, step: StepInput): StepOutput;
  /**
   * Overlap scheduling: copies the step and queues it on the model's native step thread, returning at once. A token
   * id < 0 is a reference, -(1 + row): the token the previous launched step sampled at logit row `row`. At most
   * two launched steps not yet waited for. forward(), the slot writes and copyKvBlocks first wait until no launched
   * step computes. Absent in addons built before it (the engine then runs every step synchronously).
   */
  forwardLaunch?(model: NativeModelHandle, step: StepInput): void;
  /** The oldest launched step's output (throws its error), with forwardMs = the forward alone on the step thread. */
  forwardWait?(model: NativeModelHandle): StepOutput;

  /**
   * Host tier: reads, validates (offsets, shapes, finite values) and converts an adapter to the pool's layout,
   * with per-module scaling folded into B, on a libuv worker thread (never blocks the calling thread).
   * Throws/rejects with code "corrupt_file" for NaN/Inf or truncated data.
   */
  loadHostAdapter(model: NativeModelHandle, adapter: AdapterSpec): Promise<NativeHostAdapterHandle>;
  freeHostAdapter(adapter: NativeHostAdapterHandle): void;
  hostAdapterSizeBytes(adapter: NativeHostAdapterHandle): number;

  /** Device tier: copies a host adapter into slot `slot` (rank r; other modules zeroed), synchronously. */
  copyAdapterToSlot(model: NativeModelHandle, slot: number, adapter: NativeHostAdapterHandle): void;
  /** Same copy on a side stream / background thread; resolves when the slot is readable by forward(). */
  copyAdapterToSlotAsync(model: NativeModelHandle, slot: number, adapter: NativeHostAdapterHandle): Promise<void>;
  /** Zeroes the slot and sets its rank to 0 (base / empty). */
  clearSlot(model: NativeModelHandle, slot: number): void;

  /** Copies whole KV blocks (all layers), e.g. copy-on-write of a shared partial prefix block. */
  copyKvBlocks(model: NativeModelHandle, srcBlocks: Int32Array, dstBlocks: Int32Array): void;
}
