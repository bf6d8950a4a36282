// The CUDA model: weights in device memory (bf16 or fp16), the paged KV cache, the device LoRA pool
// (native/src/cuda/lora_device_pool.h), cuBLAS, and the forward step. Twin of cpu::CpuModel: same ModelInit,
// same StepInputView / StepOutputData, same host-tier adapters; sampling runs on the host with the CPU code
// (sampling.cpp), so seeded draws match the CPU backend given the same logits.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "../../cpu/mapped-file.h"
#include "../../cpu/model-init.h"
#include "../../cpu/step-io.h"
#include "../lora_device_pool.h"
#include "blas.h"
#include "cuda-check.h"
#include "kernels.h"
#include "lora-overlap.h"
#include "tslora/thread-pool.h"

namespace tslora::cuda {

struct CudaOptions {
  int deviceIndex = 0;
  int act = -1;  // -1 = follow the weights (fp16 weights → fp16, else bf16); else static_cast<int>(Act)
  int cudaGraphMaxBatchSize = 0;  // > 0: decode steps of up to this many sequences replay CUDA graphs (decode-graph.cu)
};

struct DeviceLayer {
  void* qkv = nullptr;     // [q + 2kv, H] Act (q, k, v rows stacked)
  void* o = nullptr;       // [H, q] Act
  void* gateUp = nullptr;  // [2I, H] Act (gate rows, then up rows)
  void* down = nullptr;    // [H, I] Act
  float *inputNorm = nullptr, *postNorm = nullptr;                   // [H]
  float *qBias = nullptr, *kBias = nullptr, *vBias = nullptr;        // Qwen2: [q], [kv], [kv]
  float *qNorm = nullptr, *kNorm = nullptr;                          // Qwen3: [headDim]
};

// Most rows one LoRA pass takes (the LoRA pool's static row maximum); steps without LoRA have no limit.
constexpr int kMaxStepTokens = 16384;

class CudaModel {
 public:
  CudaModel(const cpu::ModelInit& init, const CudaOptions& options);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  const cpu::ModelDims& dims() const { return dims_; }
  int deviceIndex() const { return device_; }
  Act act() const { return act_; }
  int kvNumBlocks() const { return kvNumBlocks_; }
  size_t weightBytes() const { return weightBytes_; }
  size_t kvCacheBytes() const { return kvBytes_; }
  size_t loraPoolBytes() const { return lora_ ? lora_->sizeBytes() : 0; }
  std::atomic<int64_t>& hostAdapterBytes() { return hostAdapterBytes_; }
  int loraSlots() const { return loraSlots_; }
  // The pool shape host adapters are built for (null when LoRA is off).
  const lora::host::PoolConfig* loraConfig() const { return lora_ ? &lora_->config() : nullptr; }

  // Checks the step (throws native_invalid_argument), runs it on the GPU, samples on the host.
  cpu::StepOutputData forward(const cpu::StepInputView& step);
  // Slot writes: `side` = on the side stream (copyAdapterToSlotAsync, called from a worker thread).
  void writeSlot(int slot, const lora::host::HostAdapter& adapter, bool side);
  void clearSlot(int slot);
  // Whole blocks, every layer, K and V. Ids checked by the caller.
  void copyKvBlocks(const int32_t* src, const int32_t* dst, int count);

 private:
  void* uploadMatrix(const cpu::TensorSpec& spec, int64_t rows, int64_t cols, void* dst = nullptr);
  float* uploadVector(const cpu::TensorSpec& spec, int64_t n);
  void* deviceAlloc(size_t bytes, const char* what);
  void ensureStepBuffers(int T, int N, size_t tableInts);
  void eagerLogits(const cpu::StepInputView& step, bool loraActive);
  void runLayers(const int32_t* tables, int stepT, int maxBlocksPerSeq, int r0, int r1, bool loraActive);
  // CUDA graphs for decode (decode-graph.cu): whether this step can replay one, and the replay (or the warm-up +
  // capture the first time a bucket is used). Both leave the logits of rows [0, B) in logits_.
  bool decodeGraphFits(const cpu::StepInputView& step, bool loraActive) const;
  void runDecodeGraph(const cpu::StepInputView& step, bool loraActive);
  struct DecodeGraph;
  void decodeBody(const DecodeGraph& g);
  uint64_t graphBufferKey() const;
  int graphBucket(int batch) const;
  void setLoraStep(const lora::host::StepLora& step);
  bool lmHeadLora() const { return lora_ && lora_->config().targets[static_cast<int>(lora::host::Module::LmHead)]; }
  // Eager lm_head LoRA over the N logit rows (segments = runs of equal slots, in row chunks the pool accepts).
  void applyLmHeadLora(const cpu::StepInputView& step, int N);
  void applyLoraChecked(int layer, lora::host::Module m, const void* x, int xStride, void* y, int yStride,
                        const int32_t* tokenIds = nullptr);
  bool embedLora() const { return lora_ && lora_->config().targets[static_cast<int>(lora::host::Module::Embed)]; }
  // embed_tokens LoRA (spec e.9) for `rows` token rows of the current LoRA step: the pool's gather + expand into an
  // Act delta (proj_, free before the layers run) added to the fp32 residual stream.   dTokens: [rows] device
  void applyEmbedLora(const int32_t* dTokens, int rows, float* hidden);
  void sample(const cpu::StepInputView& step, const float* logits, cpu::StepOutputData& out);
  // Sampling on the GPU (gpu-sample-step.cu, gpu-sampling.h): every row, every rule of the CPU sampler.
  bool gpuSamplingFits(const cpu::StepInputView& step) const;
  void sampleOnGpu(const cpu::StepInputView& step, cpu::StepOutputData& out);

  cpu::ModelDims dims_;
  int device_ = 0;
  Act act_ = Act::BF16;
  std::vector<void*> allocations_;  // weights, norms, invFreq, KV cache
  std::vector<std::unique_ptr<cpu::MappedFile>> files_;  // mapped during construction only
  void* embed_ = nullptr;   // [V, H] Act
  void* lmHead_ = nullptr;  // [V, H] Act (= embed_ when tied)
  float* finalNorm_ = nullptr;
  float* invFreq_ = nullptr;  // [headDim / 2]
  std::vector<DeviceLayer> layers_;
  size_t weightBytes_ = 0;
  int kvNumBlocks_ = 0, kvBlockSize_ = 0;
  void* kvCache_ = nullptr;  // [L][2][numBlocks + 1][blockSize][numKvHeads][headDim] Act; the extra block is the
                             // scratch block of graph padding rows (never handed out: id kvNumBlocks_)
  size_t kvBytes_ = 0;
  int loraSlots_ = 0;
  int loraMaxSegments_ = 0;  // the pool's static segment maximum (lora-passes.h)
  int loraMaxPassRows_ = 0;  // rows of one LoRA pass: kMaxStepTokens, and the kernels' grid limit (65535 row tiles)
  std::unique_ptr<lora::DeviceLoraPool> lora_;
  std::unique_ptr<LoraShrinkOverlap> loraOverlap_;  // shrink under the base projection (with lora_; lora-overlap.h)
  // The side expand (forward.cu): on, and its row bound; read from the environment at construction (A/B in one process)
  void readSideExpandSwitches();
  bool sideExpand_ = false;
  bool sideExpandPdl_ = true;  // the side expand as a programmatic dependent of its shrink
  bool sideExpandDeltaAct_ = false;  // TSLORA_CUDA_LORA_DELTA_ACT=1: the delta stored in the activation dtype
  int sideExpandMaxBlocks_ = 0;      // TSLORA_CUDA_LORA_SIDE_EXPAND_MAX_BLOCKS: the side expand's grid cap (0: none)
  int sideExpandMaxRows_ = 0;
  bool storeFirst_ = false;  // TSLORA_CUDA_LORA_STORE_FIRST (on unless =0, readSideExpandSwitches): prefill LoRA written before the projection (forward.cu)
  int storeFirstMinRows_ = 0;  // steps of more rows than this take it
  size_t sideExpandDeltaCols() const;  // loraDelta_'s row width
  cudaStream_t stream_ = nullptr;      // forward, KV copies, synchronous slot writes
  cudaStream_t sideStream_ = nullptr;  // asynchronous slot writes
  std::unique_ptr<Blas> blas_;
  std::unique_ptr<ThreadPool> samplers_;
  std::atomic<int64_t> hostAdapterBytes_{0};
  std::mutex forwardMutex_;  // one forward / KV copy at a time (step buffers are per model)
  std::mutex slotMutex_;     // one slot write at a time (the pool's pinned staging)

  // CUDA graphs for decode, one per (padded batch size, LoRA or not, block-table capacity); all of them capture the step buffers'
  // and the LoRA workspace's addresses, so they are dropped whenever one of those moves (graphBufferKey).
  struct DecodeGraph {
    int bs = 0, capBlocks = 0;
    bool lora = false;    // captured with the LoRA kernels (steps with an adapter row) or without (all-base steps)
    DeviceBuffer tables;  // tokenIds [bs] | positions [bs] | tokenSeq [bs] | blockTables [bs * capBlocks] | logitRows [bs]
    cudaGraphExec_t exec = nullptr;
    ~DecodeGraph() { if (exec) cudaGraphExecDestroy(exec); }
  };
  std::vector<std::unique_ptr<DecodeGraph>> graphs_;
  uint64_t graphKey_ = 0;
  int graphMaxBs_ = 0;  // 0: graphs off (also after a failed capture)
  PinnedBuffer hostGraphTables_;

  // Step buffers, grown on demand.
  DeviceBuffer hidden_, xn_, qkv_, q_, attn_, proj_, gateUp_, mlpAct_, finalRows_, logits_, tables_;
  DeviceBuffer lmDelta_;  // [N, V] Act: the lm_head LoRA delta before it is added to the fp32 logits
  DeviceBuffer loraDelta_;  // [rows ≤ 64, widest projection] fp32: the side expand's delta of one module (forward.cu)
  PinnedBuffer hostTables_, hostLogits_;
  // GPU sampling buffers (gpu-sample-step.cu), grown on demand.
  DeviceBuffer sampleUp_, sampleProbs_, sampleSorted_, sampleIdsIn_, sampleIdsSorted_, sampleSortTemp_, sampleResults_, sampleLse_;
  PinnedBuffer hostSampleUp_, hostSampleResults_;
};

}  // namespace tslora::cuda
