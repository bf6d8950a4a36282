/**
 * --tp-size rules. The model rules mirror shardPlanProblem in native/include/tslora/shard-plan.h (the native side
 * checks them again): attention heads and the intermediate size split evenly over the ranks, KV heads are split
 * or (when fewer than the ranks) replicated, the vocabulary is split into near-equal ranges.
 * The CPU backend runs 1, 2 or 4 ranks as thread groups; this build has no multi-GPU (NCCL) tensor parallelism.
 */
import { TsloraError } from '../../errors.js';
import type { ModelSpec } from './types.js';

export const CPU_TP_SIZES: readonly number[] = [1, 2, 4];

type TpShape = Pick<ModelSpec, 'numHeads' | 'numKvHeads' | 'intermediateSize' | 'vocabSize'>;

/** Why the model cannot be split over tpSize ranks, or null. */
export function tensorParallelProblem(spec: TpShape, tpSize: number): string | null {
  if (spec.numHeads % tpSize !== 0) return `--tp-size ${tpSize} does not divide the model's ${spec.numHeads} attention heads.`;
  if (spec.numKvHeads % tpSize !== 0 && tpSize % spec.numKvHeads !== 0) {
    return `--tp-size ${tpSize} and the model's ${spec.numKvHeads} KV heads must divide one another (KV heads are split over the ranks, or replicated when fewer than the ranks).`;
  }
  if (spec.intermediateSize % tpSize !== 0) return `--tp-size ${tpSize} does not divide the model's intermediate size ${spec.intermediateSize}.`;
  if (spec.vocabSize < tpSize) return `--tp-size ${tpSize} exceeds the model's vocabulary size ${spec.vocabSize}.`;
  return null;
}

/** Throws a usage error when the model cannot be split over tpSize ranks. */
export function checkTensorParallelModel(spec: TpShape, tpSize: number): void {
  const problem = tensorParallelProblem(spec, tpSize);
  if (problem) {
    const fits = [1, 2, 4, 8].filter((n) => tensorParallelProblem(spec, n) === null);
    throw new TsloraError('usage', problem, { hint: `This model splits over --tp-size ${fits.join(', ')}.`, param: 'tpSize' });
  }
}

/** Throws a usage error when the resolved device cannot run tpSize ranks. */
export function checkTensorParallelDevice(device: 'cpu' | 'cuda', tpSize: number): void {
  if (tpSize === 1) return;
  if (device === 'cuda') {
    throw new TsloraError('usage', `--tp-size ${tpSize}: multi-GPU tensor parallelism (NCCL) is not available in this build; the CUDA backend runs one GPU.`, {
      hint: 'Run with --tp-size 1 on the GPU, or --device cpu to split the model over CPU thread groups (docs/tensor-parallel.md).',
      param: 'tpSize',
    });
  }
  if (!CPU_TP_SIZES.includes(tpSize)) {
    throw new TsloraError('usage', `--tp-size ${tpSize}: the CPU backend runs ${CPU_TP_SIZES.join(', ')} tensor-parallel ranks.`, {
      hint: 'Choose --tp-size 1, 2 or 4.',
      param: 'tpSize',
    });
  }
}
