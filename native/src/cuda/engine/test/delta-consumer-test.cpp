// The side expand's consumers (session 18; forward.cu runLayers): launchAddRmsNorm (addDelta), launchSwiglu (guDelta),
// launchQkvPost (qkvDelta) and launchQkvRopeAttention (QkvRope::delta) given a projection output y (Act) and an fp32
// LoRA delta D must produce, bit for bit, what they produce without D from y' = act_round(y + D), the value the
// in-place expand stores into y. D holds -0.0f on base rows (loraExpandSmallDelta), so those rows must give y's own
// result, -0 outputs of the projection included. Vector and scalar kernels, bf16 and fp16, bias, q/k norms, decode
// rows on split edges. The same with D in the activation dtype (LoraDeltaIn::act, TSLORA_CUDA_LORA_DELTA_ACT): then
// y' = act_round(y + D) with D's Act value. The no-delta paths against fp64 references are kernel-emu-test's.
// Runs on the host emulator (built by test/native/cuda-engine-compile.test.ts against the emulated kernels) and on a GPU
// (nvcc -DTSLORA_KERNEL_TEST_ON_GPU ... native/src/cuda/engine/{attention,attention-prefill,kernels}.cu; test/gpu/
// cuda-side-expand.test.ts). Prints "N failures"; exit code 1 on any failure.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "../kernels.h"
#include "device-buf.h"
#include "half-bits.h"

using namespace tslora::cuda;
using test::fromBits;
using test::toBits;

namespace {

int failures = 0;


// y (Act bits) with planted -0 and +0 values, D with -0.0f on every row of baseRows (a row mask) and deltas of the
// size a LoRA delta has elsewhere, in fp32 or (deltaAct) rounded to Act; y' = act_round(y + D) computed on the host.
struct Projection {
  Buf<uint16_t> y, yRounded;
  Buf<float> delta;
  Buf<uint16_t> deltaAct;  // D in Act bits (used when act)
  bool act;
  Projection(Act dtype, int rows, int width, std::vector<bool> baseRows, std::mt19937& rng, bool actDelta = false)
      : y(static_cast<size_t>(rows) * width), yRounded(y.size()), delta(y.size()), deltaAct(y.size()), act(actDelta) {
    std::normal_distribution<float> n01(0.0f, 1.0f);
    for (size_t i = 0; i < y.size(); ++i) {
      const int r = static_cast<int>(i / width);
      y[i] = toBits(i % 37 == 0 ? -0.0f : i % 41 == 0 ? 0.0f : n01(rng), dtype);
      delta[i] = baseRows[r] ? -0.0f : n01(rng) * (i % 3 == 0 ? 1e-3f : 0.2f);
      deltaAct[i] = toBits(delta[i], dtype);
      yRounded[i] = toBits(fromBits(y[i], dtype) + (act ? fromBits(deltaAct[i], dtype) : delta[i]), dtype);
    }
  }
  LoraDeltaIn in() { return act ? LoraDeltaIn{deltaAct.data(), true} : LoraDeltaIn{delta.data(), false}; }
};

void report(const char* name, int bad) {
  std::printf("%s: %d values differ from the kernel on act_round(y + delta)\n", name, bad);
  if (bad != 0) ++failures;
}

template <typename T>
int differing(Buf<T>& a, Buf<T>& b) {
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return bad;
}

void checkAddRmsNorm(const char* name, Act act, int H, std::mt19937& rng, bool actDelta = false) {
  const int rows = 4;
  Projection p(act, rows, H, {false, true, false, true}, rng, actDelta);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  Buf<float> hiddenA(static_cast<size_t>(rows) * H), hiddenB(hiddenA.size()), w(H);
  for (size_t i = 0; i < hiddenA.size(); ++i) hiddenA[i] = hiddenB[i] = n01(rng);
  for (int i = 0; i < H; ++i) w[i] = 1.0f + 0.2f * n01(rng);
  Buf<uint16_t> outA(p.y.size()), outB(p.y.size());
  int bad = launchAddRmsNorm(act, hiddenA.data(), p.yRounded.data(), w.data(), outA.data(), nullptr, rows, H, 1e-5f, nullptr) != cudaSuccess;
  bad += launchAddRmsNorm(act, hiddenB.data(), p.y.data(), w.data(), outB.data(), nullptr, rows, H, 1e-5f, nullptr, p.in()) != cudaSuccess;
  deviceSync("launchAddRmsNorm");
  report(name, bad + differing(hiddenA, hiddenB) + differing(outA, outB));
}

void checkSwiglu(const char* name, Act act, int T, int I, std::mt19937& rng, bool actDelta = false) {
  std::vector<bool> base(T);
  for (int t = 0; t < T; ++t) base[t] = t % 2 == 1;
  Projection p(act, T, 2 * I, base, rng, actDelta);
  Buf<uint16_t> outA(static_cast<size_t>(T) * I), outB(outA.size());
  int bad = launchSwiglu(act, p.yRounded.data(), T, I, outA.data(), nullptr) != cudaSuccess;
  bad += launchSwiglu(act, p.y.data(), T, I, outB.data(), nullptr, p.in()) != cudaSuccess;
  deviceSync("launchSwiglu");
  report(name, bad + differing(outA, outB));
}

// launchQkvPost (bias / q-k norms) and, without norms, launchQkvRopeAttention: decode rows of distinct sequences.
void checkQkv(const char* name, Act act, int H, int KvH, int D, bool bias, bool norm, std::mt19937& rng, bool actDelta = false) {
  const std::vector<int> contexts = {0, 255, 256, 40, 831};
  const int B = static_cast<int>(contexts.size()), bs = 16, maxBlocks = 64, numBlocks = B * maxBlocks;
  const int qW = H * D, kvW = KvH * D, rowW = qW + 2 * kvW;
  Projection p(act, B, rowW, {false, true, false, false, true}, rng, actDelta);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  Buf<uint16_t> kA(static_cast<size_t>(numBlocks) * bs * kvW), vA(kA.size()), kB(kA.size()), vB(kA.size());
  for (size_t i = 0; i < kA.size(); ++i) kB[i] = kA[i] = toBits(n01(rng), act), vB[i] = vA[i] = toBits(n01(rng), act);
  Buf<int32_t> ids(numBlocks), positions(B), tokenSeq(B);
  for (int i = 0; i < numBlocks; ++i) ids[i] = (i * 7 + 3) % numBlocks;
  for (int b = 0; b < B; ++b) positions[b] = contexts[b], tokenSeq[b] = b;
  Buf<float> qB(qW), kBias(kvW), vBias(kvW), qN(D), kN(D), invFreq(D / 2), scratchA(1 << 16), scratchB(1 << 16);
  for (auto* v : {&qB, &kBias, &vBias})
    for (size_t i = 0; i < v->size(); ++i) (*v)[i] = n01(rng);
  for (int i = 0; i < D; ++i) qN[i] = 1.0f + 0.2f * n01(rng), kN[i] = 1.0f + 0.2f * n01(rng);
  for (int i = 0; i < D / 2; ++i) invFreq[i] = std::pow(500000.0f, -2.0f * i / D);
  AttnTables tabs;
  tabs.positions = positions.data();
  tabs.tokenSeq = tokenSeq.data();
  tabs.blockTables = ids.data();
  tabs.maxBlocksPerSeq = maxBlocks;
  tabs.blockSize = bs;
  tabs.numSeqs = B;
  const HeadShape hs{H, KvH, D};
  const float* qb = bias ? qB.data() : nullptr;
  const float* kb = bias ? kBias.data() : nullptr;
  const float* vb = bias ? vBias.data() : nullptr;
  const float* qn = norm ? qN.data() : nullptr;
  const float* kn = norm ? kN.data() : nullptr;
  Buf<uint16_t> qA(static_cast<size_t>(B) * qW), qOutB(qA.size()), outA(qA.size()), outB(qA.size());
  int bad = launchQkvPost(act, p.yRounded.data(), B, hs, qb, kb, vb, qn, kn, 1e-6f, invFreq.data(), tabs, qA.data(), kA.data(),
                          vA.data(), nullptr) != cudaSuccess;
  bad += launchQkvPost(act, p.y.data(), B, hs, qb, kb, vb, qn, kn, 1e-6f, invFreq.data(), tabs, qOutB.data(), kB.data(), vB.data(),
                       nullptr, p.in()) != cudaSuccess;
  deviceSync("launchQkvPost");
  bad += differing(qA, qOutB) + differing(kA, kB) + differing(vA, vB);
  if (!norm) {  // the fused rope + attention launch (no q/k norms): out and the cache writes
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    QkvRope src;
    src.qBias = qb;
    src.kBias = kb;
    src.vBias = vb;
    src.invFreq = invFreq.data();
    src.qkv = p.yRounded.data();
    bad += launchQkvRopeAttention(act, src, B, hs, scale, tabs, kA.data(), vA.data(), outA.data(), scratchA.data(),
                                  scratchA.size() * sizeof(float), nullptr) != cudaSuccess;
    src.qkv = p.y.data();
    src.delta = p.in();
    bad += launchQkvRopeAttention(act, src, B, hs, scale, tabs, kB.data(), vB.data(), outB.data(), scratchB.data(),
                                  scratchB.size() * sizeof(float), nullptr) != cudaSuccess;
    deviceSync("launchQkvRopeAttention");
    bad += differing(outA, outB) + differing(kA, kB) + differing(vA, vB);
  }
  report(name, bad);
}

}  // namespace

int main() {
  std::mt19937 rng(18);
  checkAddRmsNorm("add + rmsnorm + delta H=2048 bf16 (vector kernel)", Act::BF16, 2048, rng);
  checkAddRmsNorm("add + rmsnorm + delta H=100 f16 (vector kernel, partial warp)", Act::F16, 100, rng);
  checkAddRmsNorm("add + rmsnorm + delta H=18 f16 (scalar kernel)", Act::F16, 18, rng);
  checkAddRmsNorm("add + rmsnorm + delta H=16384 bf16 (scalar kernel)", Act::BF16, 16384, rng);
  checkSwiglu("swiglu + delta I=8192 bf16 (8 at a time)", Act::BF16, 3, 8192, rng);
  checkSwiglu("swiglu + delta I=160 f16 (8 at a time, fixture)", Act::F16, 5, 160, rng);
  checkSwiglu("swiglu + delta I=100 bf16 (scalar)", Act::BF16, 3, 100, rng);
  checkQkv("qkv post + rope attention + delta d64 gqa4 bf16, bias", Act::BF16, 8, 2, 64, true, false, rng);
  checkQkv("qkv post + rope attention + delta d128 gqa4 f16", Act::F16, 8, 2, 128, false, false, rng);
  checkQkv("qkv post + delta d32 f16, q/k norm", Act::F16, 4, 2, 32, false, true, rng);
  // The Act delta (TSLORA_CUDA_LORA_DELTA_ACT): every kernel kind once, both dtypes.
  checkAddRmsNorm("add + rmsnorm + Act delta H=2048 bf16 (vector kernel)", Act::BF16, 2048, rng, true);
  checkAddRmsNorm("add + rmsnorm + Act delta H=100 f16 (vector kernel, partial warp)", Act::F16, 100, rng, true);
  checkAddRmsNorm("add + rmsnorm + Act delta H=18 bf16 (scalar kernel)", Act::BF16, 18, rng, true);
  checkSwiglu("swiglu + Act delta I=8192 bf16 (8 at a time)", Act::BF16, 3, 8192, rng, true);
  checkSwiglu("swiglu + Act delta I=160 f16 (8 at a time)", Act::F16, 5, 160, rng, true);
  checkSwiglu("swiglu + Act delta I=100 f16 (scalar)", Act::F16, 3, 100, rng, true);
  checkQkv("qkv post + rope attention + Act delta d64 gqa4 bf16, bias", Act::BF16, 8, 2, 64, true, false, rng, true);
  checkQkv("qkv post + Act delta d32 f16, q/k norm", Act::F16, 4, 2, 32, false, true, rng, true);
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
