/**
 * The model runner: owns one native model (weights, KV cache, LoRA slot pool) and turns a scheduler step
 * (StepSequence[]) into ONE native forward call: flat token/position arrays, KV block tables, the LoRA segment
 * tables of the configured backend, per-row sampling parameters, RNG seeds and the penalty CSR.
 */
import { TsloraError } from '../../errors.js';
import type {
  MemoryReport,
  NativeBackend,
  NativeHostAdapterHandle,
  NativeModelHandle,
  StepInput,
  StepOutput,
} from '../../binding/types.js';
import { buildLoraSegments, type LoraBackend, type LoraChunkCap } from './lora-segments.js';
import type { StepSequence, StepSequenceResult } from './runner-types.js';
import type { AdapterSpec, LoraTargetModule, ModelSpec, ModelWeights } from './types.js';
import { buildSamplingRows } from './runner-sampling.js';
import { checkTensorParallelDevice } from './tensor-parallel.js';

export interface ModelRunnerOptions {
  backend: NativeBackend;
  kvNumBlocks: number;
  kvBlockSize: number;
  /** Device LoRA slots (0 = LoRA off), rank capacity and target modules of the pool. */
  loraSlots: number;
  loraMaxRank: number;
  loraTargetModules: LoraTargetModule[];
  loraBackend: LoraBackend;
  maxLoraChunkSize: LoraChunkCap;
  /** CPU worker threads (0 = all cores). */
  numThreads: number;
  /** CPU LoRA pool storage (default 'f32'). */
  loraPoolDtype?: 'f32' | 'bf16' | 'int8';
  /** CPU KV cache storage (default 'f32'). */
  kvCacheDtype?: 'f32' | 'bf16';
  /** Tensor-parallel ranks (default 1; the CPU backend only, see tensor-parallel.ts). */
  tpSize?: number;
  deviceIndex?: number;
  computeDtype?: 'f32' | 'bf16' | 'f16';
  cudaGraphMaxBatchSize?: number;
}

export interface RunnerModel {
  spec: ModelSpec;
  weights: ModelWeights;
}

export class ModelRunner {
  readonly spec: ModelSpec;
  readonly options: Readonly<ModelRunnerOptions>;
  private readonly backend: NativeBackend;
  private model: NativeModelHandle | null;
  /** Milliseconds of the last step's native forward call (SchedulerRunner.lastForwardMs). */
  lastForwardMs = 0;
  /** Launched steps not yet waited for (oldest first), and the rows of the last one launched (token references). */
  private readonly launched: Array<{ seqs: StepSequence[]; rowsOfSeq: SeqRows[] }> = [];
  private previousRows: SeqRows[] | null = null;

  constructor(model: RunnerModel, options: ModelRunnerOptions) {
    this.spec = model.spec;
    this.options = { ...options };
    this.backend = options.backend;
    checkTensorParallelDevice(this.backend.device, options.tpSize ?? 1);
    if (!this.backend.forwardLaunch || !this.backend.forwardWait) {
      this.launch = undefined;
      this.wait = undefined;
    }
    this.model = this.backend.createModel({
      spec: model.spec,
      weights: model.weights,
      kvNumBlocks: options.kvNumBlocks,
      kvBlockSize: options.kvBlockSize,
      loraSlots: options.loraSlots,
      loraMaxRank: options.loraMaxRank,
      loraTargetModules: options.loraTargetModules,
      numThreads: options.numThreads,
      loraPoolDtype: options.loraPoolDtype,
      kvCacheDtype: options.kvCacheDtype,
      tpSize: options.tpSize,
      deviceIndex: options.deviceIndex,
      computeDtype: options.computeDtype,
      cudaGraphMaxBatchSize: options.cudaGraphMaxBatchSize,
    });
  }

  private handle(): NativeModelHandle {
    if (!this.model) throw new TsloraError('internal', 'ModelRunner used after destroy()');
    return this.model;
  }

  /** Runs one forward step over `seqs` and returns one result per sequence, in order. */
  step(seqs: StepSequence[]): StepSequenceResult[] {
    if (seqs.length === 0) return [];
    const input = this.buildStepInput(seqs);
    const startedAt = performance.now();
    const output = this.backend.forward(this.handle(), input.step);
    this.lastForwardMs = performance.now() - startedAt;
    return this.collectResults(seqs, input.rowsOfSeq, output);
  }

  /**
   * Overlap scheduling: queues the step on the native step thread and returns (SchedulerRunner.launch). Undefined
   * when the addon predates forwardLaunch, so the scheduler runs synchronously.
   */
  readonly launch: ((seqs: StepSequence[]) => void) | undefined = (seqs) => {
    const input = this.buildStepInput(seqs, this.previousRows);
    this.backend.forwardLaunch!(this.handle(), input.step);
    this.launched.push({ seqs, rowsOfSeq: input.rowsOfSeq });
    this.previousRows = input.rowsOfSeq;
  };

  /** The oldest launched step's results (SchedulerRunner.wait); throws when it failed. */
  readonly wait: (() => StepSequenceResult[]) | undefined = () => {
    const step = this.launched.shift();
    if (!step) throw new TsloraError('internal', 'ModelRunner.wait: no step was launched');
    const output = this.backend.forwardWait!(this.handle());
    this.lastForwardMs = output.forwardMs ?? Number.NaN;
    return this.collectResults(step.seqs, step.rowsOfSeq, output);
  };

  /**
   * Flattens a step (exposed for tests and benchmarks that time the native call alone). `previousRows`: the rows of
   * the step launched before, for rows whose token is a reference (tokenFromPrevious → -(1 + its sample row)).
   */
  buildStepInput(seqs: StepSequence[], previousRows: SeqRows[] | null = null): { step: StepInput; rowsOfSeq: SeqRows[] } {
    const B = seqs.length;
    let T = 0;
    let maxBlocks = 1;
    for (const s of seqs) {
      if (s.tokenIds.length === 0) throw new TsloraError('internal', 'ModelRunner.step: a sequence has no tokens');
      T += s.tokenIds.length;
      maxBlocks = Math.max(maxBlocks, s.blockTable.length);
    }
    const tokenIds = new Int32Array(T);
    const positions = new Int32Array(T);
    const seqTokenStart = new Int32Array(B + 1);
    const seqContextLen = new Int32Array(B);
    const blockTables = new Int32Array(B * maxBlocks);
    const seqSlots = new Int32Array(B);
    const seqTokenCounts = new Int32Array(B);
    let row = 0;
    seqs.forEach((s, b) => {
      seqTokenStart[b] = row;
      for (let i = 0; i < s.tokenIds.length; i++) {
        tokenIds[row] = s.tokenFromPrevious === undefined ? s.tokenIds[i] : tokenReference(s, previousRows);
        positions[row] = s.startPosition + i;
        row++;
      }
      seqContextLen[b] = s.startPosition + s.tokenIds.length;
      for (let i = 0; i < s.blockTable.length; i++) blockTables[b * maxBlocks + i] = s.blockTable[i];
      seqSlots[b] = this.options.loraSlots > 0 ? s.slot : -1;
      seqTokenCounts[b] = s.tokenIds.length;
    });
    seqTokenStart[B] = T;

    const lora =
      this.options.loraSlots > 0
        ? buildLoraSegments(seqSlots, seqTokenCounts, this.options.loraBackend, this.options.maxLoraChunkSize)
        : { segIndptr: new Int32Array(0), weightIndices: new Int32Array(0), permutation: new Int32Array(0), chunkSize: 16 };

    const rows = buildSamplingRows(seqs, seqTokenStart);
    const step: StepInput = {
      tokenIds,
      positions,
      seqTokenStart,
      seqContextLen,
      blockTables,
      maxBlocksPerSeq: maxBlocks,
      loraBackend: this.options.loraBackend,
      loraSegIndptr: lora.segIndptr,
      loraWeightIndices: lora.weightIndices,
      loraPermutation: lora.permutation,
      loraChunkSize: lora.chunkSize,
      ...rows.arrays,
    };
    return { step, rowsOfSeq: rows.rowsOfSeq };
  }

  private collectResults(seqs: StepSequence[], rowsOfSeq: SeqRows[], out: StepOutput): StepSequenceResult[] {
    const K = out.topLogprobsK;
    const V = this.spec.vocabSize;
    return seqs.map((s, b) => {
      const rows = rowsOfSeq[b];
      const result: StepSequenceResult = { tokenId: -1, logprob: Number.NaN };
      if (rows.sampleRow >= 0) {
        const r = rows.sampleRow;
        result.tokenId = out.sampledTokenIds[r];
        result.logprob = out.sampledLogprobs[r];
        const n = s.sampling?.topLogprobsNum ?? 0;
        if (n > 0) {
          result.topLogprobs = [];
          for (let k = 0; k < Math.min(n, K); k++) result.topLogprobs.push([out.topLogprobIds[r * K + k], out.topLogprobs[r * K + k]]);
        }
        if (s.returnLogits && out.logits) result.logits = out.logits.slice(r * V, (r + 1) * V);
      }
      if (rows.promptRowCount > 0) {
        result.promptLogprobs = [];
        for (let i = 0; i < rows.promptRowCount; i++) result.promptLogprobs.push(out.targetLogprobs[rows.firstRow + i]);
        const n = Math.min(s.promptTopLogprobsNum ?? 0, K);
        if (n > 0) {
          result.promptTopLogprobs = [];
          for (let i = 0; i < rows.promptRowCount; i++) {
            const r = rows.firstRow + i;
            const top: Array<[number, number]> = [];
            for (let k = 0; k < n; k++) top.push([out.topLogprobIds[r * K + k], out.topLogprobs[r * K + k]]);
            result.promptTopLogprobs.push(top);
          }
        }
      }
      return result;
    });
  }

  /** Host tier: reads and converts an adapter on a worker thread. */
  loadHostAdapter(adapter: AdapterSpec): Promise<NativeHostAdapterHandle> {
    return this.backend.loadHostAdapter(this.handle(), adapter);
  }

  freeHostAdapter(host: NativeHostAdapterHandle): void {
    this.backend.freeHostAdapter(host);
  }

  hostAdapterSizeBytes(host: NativeHostAdapterHandle): number {
    return this.backend.hostAdapterSizeBytes(host);
  }

  copyAdapterToSlot(slot: number, host: NativeHostAdapterHandle): void {
    this.backend.copyAdapterToSlot(this.handle(), slot, host);
  }

  copyAdapterToSlotAsync(slot: number, host: NativeHostAdapterHandle): Promise<void> {
    return this.backend.copyAdapterToSlotAsync(this.handle(), slot, host);
  }

  clearSlot(slot: number): void {
    this.backend.clearSlot(this.handle(), slot);
  }

  copyKvBlocks(srcBlocks: ArrayLike<number>, dstBlocks: ArrayLike<number>): void {
    this.backend.copyKvBlocks(this.handle(), Int32Array.from(srcBlocks), Int32Array.from(dstBlocks));
  }

  memoryReport(): MemoryReport {
    return this.backend.memoryReport(this.handle());
  }

  /** Frees the native model (weights unmapped, KV cache and LoRA pool released). Idempotent. */
  destroy(): void {
    if (this.model) this.backend.destroyModel(this.model);
    this.model = null;
  }
}

/** -(1 + row): the native step thread reads the previous step's sampled token at that logit row. */
function tokenReference(s: StepSequence, previousRows: SeqRows[] | null): number {
  const row = previousRows?.[s.tokenFromPrevious!]?.sampleRow ?? -1;
  if (row < 0 || s.tokenIds.length !== 1) {
    throw new TsloraError('internal', `a row refers to sequence ${s.tokenFromPrevious} of the previous step, which sampled no token there`);
  }
  return -(1 + row);
}

/** Where a sequence's logit rows landed: [firstRow, firstRow + promptRowCount) prompt rows, sampleRow or -1. */
export interface SeqRows {
  firstRow: number;
  promptRowCount: number;
  sampleRow: number;
}
