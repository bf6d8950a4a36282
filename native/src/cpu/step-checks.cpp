// Argument checks for one forward step: every length, index and table is checked before any work is done.
// A free function so that both engines (CpuModel::validate and the CUDA engine's forward) share one set of rules.
#include <cmath>
#include <vector>

#include "step-checks.h"
#include "tslora/errors.h"

namespace tslora::cpu {

void validateStep(const StepInputView& s, const StepLimits& limits) {
  const ModelDims& dims = limits.dims;
  const int loraSlots = limits.loraSlots;
  const size_t T = s.tokenIds.size;
  TSLORA_CHECK(T > 0, "forward: tokenIds is empty");
  TSLORA_CHECK(s.positions.size == T, "forward: positions has ", s.positions.size, " entries, expected T = ", T);
  TSLORA_CHECK(s.seqTokenStart.size >= 2, "forward: seqTokenStart needs B+1 >= 2 entries");
  const size_t B = s.seqTokenStart.size - 1;
  TSLORA_CHECK(s.seqTokenStart[0] == 0 && static_cast<size_t>(s.seqTokenStart[B]) == T,
               "forward: seqTokenStart must start at 0 and end at T = ", T);
  TSLORA_CHECK(s.seqContextLen.size == B, "forward: seqContextLen has ", s.seqContextLen.size, " entries, expected B = ",
               B);
  TSLORA_CHECK(s.maxBlocksPerSeq > 0, "forward: maxBlocksPerSeq must be positive");
  TSLORA_CHECK(s.blockTables.size == B * static_cast<size_t>(s.maxBlocksPerSeq), "forward: blockTables has ",
               s.blockTables.size, " entries, expected B * maxBlocksPerSeq = ", B * s.maxBlocksPerSeq);
  const int bs = limits.kvBlockSize;
  for (size_t t = 0; t < T; ++t) {
    TSLORA_CHECK(s.tokenIds[t] >= 0 && s.tokenIds[t] < dims.vocab, "forward: token id ", s.tokenIds[t], " at row ",
                 t, " is outside the vocabulary [0, ", dims.vocab, ")");
  }
  for (size_t b = 0; b < B; ++b) {
    const int t0 = s.seqTokenStart[b], t1 = s.seqTokenStart[b + 1];
    TSLORA_CHECK(t0 < t1, "forward: sequence ", b, " has no tokens (seqTokenStart must increase)");
    const int ctx = s.seqContextLen[b];
    TSLORA_CHECK(ctx > 0 && ctx <= static_cast<int64_t>(s.maxBlocksPerSeq) * bs, "forward: seqContextLen[", b, "] = ",
                 ctx, " does not fit maxBlocksPerSeq * kvBlockSize = ", s.maxBlocksPerSeq * bs);
    for (int t = t0; t < t1; ++t) {
      TSLORA_CHECK(s.positions[t] >= 0 && s.positions[t] < ctx, "forward: position ", s.positions[t], " of row ", t,
                   " is outside [0, seqContextLen = ", ctx, ")");
    }
    const int usedBlocks = (ctx + bs - 1) / bs;
    for (int i = 0; i < usedBlocks; ++i) {
      int block = s.blockTables[b * s.maxBlocksPerSeq + i];
      TSLORA_CHECK(block >= 0 && block < limits.kvNumBlocks, "forward: block table of sequence ", b, " entry ", i,
                   " is ", block, ", outside [0, kvNumBlocks = ", limits.kvNumBlocks, ")");
    }
  }

  // LoRA tables (spec e.3).
  const size_t G = s.loraWeightIndices.size;
  TSLORA_CHECK(s.loraSegIndptr.size == G + 1 || (G == 0 && s.loraSegIndptr.size == 0),
               "forward: loraSegIndptr must have G+1 = ", G + 1, " entries, got ", s.loraSegIndptr.size);
  if (G > 0) {
    TSLORA_CHECK(s.loraSegIndptr[0] == 0 && static_cast<size_t>(s.loraSegIndptr[G]) == T,
                 "forward: loraSegIndptr must start at 0 and end at T = ", T);
    TSLORA_CHECK(s.loraChunkSize > 0, "forward: loraChunkSize must be positive");
    for (size_t g = 0; g < G; ++g) {
      int len = s.loraSegIndptr[g + 1] - s.loraSegIndptr[g];
      TSLORA_CHECK(len >= 0, "forward: loraSegIndptr must not decrease (segment ", g, ")");
      int w = s.loraWeightIndices[g];
      // Base segments (-1) do no work and may be longer than a chunk (csgmv puts all base rows in one).
      TSLORA_CHECK(w < 0 || len <= s.loraChunkSize, "forward: LoRA segment ", g, " has ", len,
                   " rows, more than loraChunkSize = ", s.loraChunkSize);
      TSLORA_CHECK(w >= -1 && w < loraSlots, "forward: loraWeightIndices[", g, "] = ", w,
                   " is not a slot in [0, ", loraSlots, ") or -1");
    }
  }
  if (s.loraPermutation.size > 0) {
    TSLORA_CHECK(s.loraPermutation.size == T, "forward: loraPermutation has ", s.loraPermutation.size,
                 " entries, expected 0 or T = ", T);
    std::vector<char> seen(T, 0);
    for (size_t i = 0; i < T; ++i) {
      int p = s.loraPermutation[i];
      TSLORA_CHECK(p >= 0 && static_cast<size_t>(p) < T && !seen[p], "forward: loraPermutation is not a permutation of [0, T)");
      seen[p] = 1;
    }
  }

  // Logit rows and sampling.
  const size_t N = s.logitRows.size;
  auto checkLen = [&](size_t got, size_t want, const char* name) {
    TSLORA_CHECK(got == want, "forward: ", name, " has ", got, " entries, expected ", want);
  };
  checkLen(s.sampleMask.size, N, "sampleMask");
  checkLen(s.temperature.size, N, "temperature");
  checkLen(s.topP.size, N, "topP");
  checkLen(s.topK.size, N, "topK");
  checkLen(s.minP.size, N, "minP");
  checkLen(s.rngSeeds.size, 2 * N, "rngSeeds");
  checkLen(s.repetitionPenalty.size, N, "repetitionPenalty");
  checkLen(s.frequencyPenalty.size, N, "frequencyPenalty");
  checkLen(s.presencePenalty.size, N, "presencePenalty");
  checkLen(s.penaltyIndptr.size, N + 1, "penaltyIndptr");
  checkLen(s.targetTokenIds.size, N, "targetTokenIds");
  checkLen(s.topLogprobsNum.size, N, "topLogprobsNum");
  checkLen(s.penaltyOutputCounts.size, s.penaltyTokenIds.size, "penaltyOutputCounts");
  TSLORA_CHECK(s.penaltyIndptr[0] == 0 && static_cast<size_t>(s.penaltyIndptr[N]) == s.penaltyTokenIds.size,
               "forward: penaltyIndptr must start at 0 and end at the penalty list length ", s.penaltyTokenIds.size);
  for (size_t i = 0; i < N; ++i) {
    TSLORA_CHECK(s.logitRows[i] >= 0 && static_cast<size_t>(s.logitRows[i]) < T, "forward: logitRows[", i, "] = ",
                 s.logitRows[i], " is outside [0, T = ", T, ")");
    TSLORA_CHECK(s.penaltyIndptr[i + 1] >= s.penaltyIndptr[i], "forward: penaltyIndptr must not decrease");
    TSLORA_CHECK(std::isfinite(s.temperature[i]) && s.temperature[i] >= 0, "forward: temperature[", i, "] = ",
                 s.temperature[i], " must be finite and >= 0");
    TSLORA_CHECK(s.topP[i] > 0 && s.topP[i] <= 1, "forward: topP[", i, "] = ", s.topP[i], " must be in (0, 1]");
    TSLORA_CHECK(s.minP[i] >= 0 && s.minP[i] <= 1, "forward: minP[", i, "] = ", s.minP[i], " must be in [0, 1]");
    TSLORA_CHECK(s.repetitionPenalty[i] > 0 && std::isfinite(s.repetitionPenalty[i]), "forward: repetitionPenalty[",
                 i, "] must be finite and > 0");
    TSLORA_CHECK(std::isfinite(s.frequencyPenalty[i]) && std::isfinite(s.presencePenalty[i]),
                 "forward: frequency/presence penalties must be finite");
    TSLORA_CHECK(s.targetTokenIds[i] >= -1 && s.targetTokenIds[i] < dims.vocab, "forward: targetTokenIds[", i,
                 "] = ", s.targetTokenIds[i], " is outside [-1, vocab)");
    TSLORA_CHECK(s.topLogprobsNum[i] >= 0 && s.topLogprobsNum[i] <= dims.vocab, "forward: topLogprobsNum[", i,
                 "] = ", s.topLogprobsNum[i], " is outside [0, vocab]");
  }
  for (size_t i = 0; i < s.penaltyTokenIds.size; ++i) {
    TSLORA_CHECK(s.penaltyTokenIds[i] >= 0 && s.penaltyTokenIds[i] < dims.vocab, "forward: penaltyTokenIds[", i,
                 "] = ", s.penaltyTokenIds[i], " is outside the vocabulary");
    TSLORA_CHECK(s.penaltyOutputCounts[i] >= 0, "forward: penaltyOutputCounts must be >= 0");
  }
}

}  // namespace tslora::cpu
