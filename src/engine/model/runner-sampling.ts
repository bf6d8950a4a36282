/**
 * Per-logit-row arrays of a step (binding StepInput): which rows produce logits, their sampling parameters, the
 * per-step RNG seed derived from (request seed, generatedCount), the penalty CSR, the suppressed-token CSR
 * (min_new_tokens), the logit_bias CSR and the prompt-logprob targets.
 */
import type { StepInput } from '../../binding/types.js';
import type { StepSampling, StepSequence } from './runner-types.js';
import type { SeqRows } from './runner.js';

type RowArrays = Pick<
  StepInput,
  | 'logitRows'
  | 'sampleMask'
  | 'temperature'
  | 'topP'
  | 'topK'
  | 'minP'
  | 'rngSeeds'
  | 'repetitionPenalty'
  | 'frequencyPenalty'
  | 'presencePenalty'
  | 'penaltyIndptr'
  | 'penaltyTokenIds'
  | 'penaltyOutputCounts'
  | 'targetTokenIds'
  | 'topLogprobsNum'
  | 'returnLogits'
  | 'suppressIndptr'
  | 'suppressTokenIds'
  | 'biasIndptr'
  | 'biasTokenIds'
  | 'biasValues'
>;

/** murmur3's 32-bit finaliser. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 64-bit RNG state (lo, hi) for one draw: a function of the request seed and how many tokens it generated. */
export function stepSeed(seed: number, generatedCount: number): [number, number] {
  const seedLo = seed >>> 0;
  const seedHi = Math.floor(seed / 4294967296) >>> 0;
  const g = fmix32((generatedCount >>> 0) ^ 0x9e3779b9);
  const lo = fmix32(seedLo ^ g);
  const hi = fmix32(seedHi ^ fmix32(g + 0x7f4a7c15 + lo));
  return [lo, hi];
}

function penaltiesActive(s: StepSampling): boolean {
  return s.repetitionPenalty !== 1 || s.frequencyPenalty !== 0 || s.presencePenalty !== 0;
}

/** Distinct tokens of prompt ∪ output with their output counts (0 = prompt only). */
function penaltyList(s: StepSampling): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < s.promptTokenIds.length; i++) if (!counts.has(s.promptTokenIds[i])) counts.set(s.promptTokenIds[i], 0);
  for (let i = 0; i < s.outputTokenIds.length; i++) {
    const t = s.outputTokenIds[i];
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  return counts;
}

interface Row {
  tokenRow: number;
  sampling: StepSampling | null;
  sample: boolean;
  target: number;
  topLogprobs: number;
}

export function buildSamplingRows(seqs: StepSequence[], seqTokenStart: Int32Array): { arrays: RowArrays; rowsOfSeq: SeqRows[] } {
  const rows: Row[] = [];
  const rowsOfSeq: SeqRows[] = [];
  seqs.forEach((s, b) => {
    const start = seqTokenStart[b];
    const n = s.tokenIds.length;
    const firstRow = rows.length;
    let promptRowCount = 0;
    if (s.promptLogprobs) {
      // Row i scores tokenIds[i + 1]; the last row scores the next prompt token when the prompt continues.
      for (let i = 0; i < n; i++) {
        const target = i + 1 < n ? s.tokenIds[i + 1] : (s.nextPromptTokenId ?? -1);
        if (i === n - 1 && target < 0) break;
        const topLogprobs = s.promptTopLogprobsNum ?? s.sampling?.topLogprobsNum ?? 0;
        rows.push({ tokenRow: start + i, sampling: s.sampling, sample: false, target, topLogprobs });
        promptRowCount++;
      }
    }
    let sampleRow = -1;
    if (s.sampling) {
      const last = rows.length > firstRow ? rows[rows.length - 1] : undefined;
      if (last && last.tokenRow === start + n - 1) {
        last.sample = true;
        last.topLogprobs = Math.max(last.topLogprobs, s.sampling.topLogprobsNum);
        sampleRow = rows.length - 1;
      } else {
        rows.push({ tokenRow: start + n - 1, sampling: s.sampling, sample: true, target: -1, topLogprobs: s.sampling.topLogprobsNum });
        sampleRow = rows.length - 1;
      }
    }
    rowsOfSeq.push({ firstRow, promptRowCount, sampleRow });
  });

  const N = rows.length;
  const a: RowArrays = {
    logitRows: new Int32Array(N),
    sampleMask: new Uint8Array(N),
    temperature: new Float32Array(N),
    topP: new Float32Array(N).fill(1),
    topK: new Int32Array(N),
    minP: new Float32Array(N),
    rngSeeds: new Uint32Array(2 * N),
    repetitionPenalty: new Float32Array(N).fill(1),
    frequencyPenalty: new Float32Array(N),
    presencePenalty: new Float32Array(N),
    penaltyIndptr: new Int32Array(N + 1),
    penaltyTokenIds: new Int32Array(0),
    penaltyOutputCounts: new Int32Array(0),
    targetTokenIds: new Int32Array(N),
    topLogprobsNum: new Int32Array(N),
    returnLogits: seqs.some((s) => s.returnLogits === true),
  };
  const suppressIndptr = new Int32Array(N + 1);
  const suppressIds: number[] = [];
  const biasIndptr = new Int32Array(N + 1);
  const biasIds: number[] = [];
  const biasValues: number[] = [];
  const penaltyIds: number[] = [];
  const penaltyCounts: number[] = [];
  rows.forEach((r, i) => {
    a.logitRows[i] = r.tokenRow;
    a.targetTokenIds[i] = r.target;
    a.topLogprobsNum[i] = r.topLogprobs;
    const s = r.sampling;
    if (s && r.sample) {
      a.sampleMask[i] = 1;
      a.temperature[i] = s.temperature;
      a.topP[i] = s.topP;
      a.topK[i] = s.topK;
      a.minP[i] = s.minP;
      const [lo, hi] = stepSeed(s.seed, s.generatedCount);
      a.rngSeeds[2 * i] = lo;
      a.rngSeeds[2 * i + 1] = hi;
      a.repetitionPenalty[i] = s.repetitionPenalty;
      a.frequencyPenalty[i] = s.frequencyPenalty;
      a.presencePenalty[i] = s.presencePenalty;
      if (s.suppressTokenIds) for (const id of new Set(Array.from(s.suppressTokenIds))) suppressIds.push(id);
      for (const [id, bias] of s.logitBias ?? []) {
        biasIds.push(id);
        biasValues.push(bias);
      }
      if (penaltiesActive(s)) {
        for (const [token, count] of penaltyList(s)) {
          penaltyIds.push(token);
          penaltyCounts.push(count);
        }
      }
    }
    a.penaltyIndptr[i + 1] = penaltyIds.length;
    suppressIndptr[i + 1] = suppressIds.length;
    biasIndptr[i + 1] = biasIds.length;
  });
  // Only when some row suppresses: the native step then skips the lists entirely (and the CUDA greedy fast path
  // stays available).
  if (suppressIds.length > 0) {
    a.suppressIndptr = suppressIndptr;
    a.suppressTokenIds = Int32Array.from(suppressIds);
  }
  if (biasIds.length > 0) {
    a.biasIndptr = biasIndptr;
    a.biasTokenIds = Int32Array.from(biasIds);
    a.biasValues = Float32Array.from(biasValues);
  }
  a.penaltyTokenIds = Int32Array.from(penaltyIds);
  a.penaltyOutputCounts = Int32Array.from(penaltyCounts);
  return { arrays: a, rowsOfSeq };
}
