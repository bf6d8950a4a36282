// CudaModel construction: maps the safetensors files, checks every tensor (shape, dtype size, file bounds) with the
// CPU model's checks (cpu/model-checks.h), converts to the activation dtype on the host and uploads; allocates the
// KV cache and the LoRA pool.
#include <algorithm>
#include <cstring>

#include "../../cpu/model-checks.h"
#include "../../cpu/ops.h"
#include "../lora_host_image.h"  // actBitsOf
#include "cuda-model.h"
#include "lora-passes.h"

namespace tslora::cuda {

CudaModel::CudaModel(const cpu::ModelInit& init, const CudaOptions& options) : dims_(init.dims) {
  const cpu::ModelDims& d = dims_;
  cpu::checkModelInit(init, /*maxHeadDim=*/512);
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  TSLORA_CHECK_CODE(status == cudaSuccess && count > 0, "native_no_device", "no CUDA GPU is usable (",
                    status == cudaSuccess ? "no device" : cudaGetErrorName(status), "); use --device cpu");
  TSLORA_CHECK(options.deviceIndex >= 0 && options.deviceIndex < count, "deviceIndex ", options.deviceIndex,
               " is outside [0, ", count, ")");
  device_ = options.deviceIndex;
  graphMaxBs_ = options.cudaGraphMaxBatchSize;
  cudaCheck(cudaSetDevice(device_), "cudaSetDevice");
  if (options.act >= 0) {
    act_ = static_cast<Act>(options.act);
  } else {
    act_ = init.embedTokens.type == cpu::WType::F16 ? Act::F16 : Act::BF16;
  }
  cudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  cudaCheck(cudaStreamCreateWithFlags(&sideStream_, cudaStreamNonBlocking), "cudaStreamCreate (side)");
  blas_ = std::make_unique<Blas>(stream_);
  samplers_ = std::make_unique<ThreadPool>(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));

  for (const auto& path : init.files) files_.push_back(std::make_unique<cpu::MappedFile>(path));
  embed_ = uploadMatrix(init.embedTokens, d.vocab, d.hidden);
  const bool tied = init.lmHead.file == init.embedTokens.file && init.lmHead.offsetBytes == init.embedTokens.offsetBytes;
  lmHead_ = tied ? embed_ : uploadMatrix(init.lmHead, d.vocab, d.hidden);
  finalNorm_ = uploadVector(init.finalNorm, d.hidden);
  const size_t actBytes = 2;
  layers_.resize(d.numLayers);
  for (int l = 0; l < d.numLayers; ++l) {
    const cpu::LayerTensorSpecs& s = init.layers[l];
    DeviceLayer& w = layers_[l];
    w.inputNorm = uploadVector(s.inputNorm, d.hidden);
    w.postNorm = uploadVector(s.postAttentionNorm, d.hidden);
    w.qkv = deviceAlloc(static_cast<size_t>(d.qkvOut()) * d.hidden * actBytes, "qkv weights");
    uploadMatrix(s.qProj, d.qOut(), d.hidden, w.qkv);
    uploadMatrix(s.kProj, d.kvOut(), d.hidden, static_cast<char*>(w.qkv) + static_cast<size_t>(d.qOut()) * d.hidden * actBytes);
    uploadMatrix(s.vProj, d.kvOut(), d.hidden,
                 static_cast<char*>(w.qkv) + static_cast<size_t>(d.qOut() + d.kvOut()) * d.hidden * actBytes);
    w.o = uploadMatrix(s.oProj, d.hidden, d.qOut());
    w.gateUp = deviceAlloc(static_cast<size_t>(2) * d.intermediate * d.hidden * actBytes, "gate_up weights");
    uploadMatrix(s.gateProj, d.intermediate, d.hidden, w.gateUp);
    uploadMatrix(s.upProj, d.intermediate, d.hidden,
                 static_cast<char*>(w.gateUp) + static_cast<size_t>(d.intermediate) * d.hidden * actBytes);
    w.down = uploadMatrix(s.downProj, d.hidden, d.intermediate);
    if (d.qkvBias) {
      w.qBias = uploadVector(s.qBias, d.qOut());
      w.kBias = uploadVector(s.kBias, d.kvOut());
      w.vBias = uploadVector(s.vBias, d.kvOut());
    }
    if (d.qkNorm) {
      w.qNorm = uploadVector(s.qNorm, d.headDim);
      w.kNorm = uploadVector(s.kNorm, d.headDim);
    }
  }
  files_.clear();  // everything lives on the GPU now

  const std::vector<float> inv = cpu::ropeInverseFrequencies(init.rope);
  invFreq_ = static_cast<float*>(deviceAlloc(inv.size() * sizeof(float), "rope table"));
  cudaCheck(cudaMemcpy(invFreq_, inv.data(), inv.size() * sizeof(float), cudaMemcpyHostToDevice), "rope table");

  kvNumBlocks_ = init.kvNumBlocks;
  kvBlockSize_ = init.kvBlockSize;
  // One block more than handed out: the scratch block of CUDA-graph padding rows (decode-graph.cu).
  const size_t kvAllocBytes = static_cast<size_t>(d.numLayers) * 2 * (kvNumBlocks_ + 1) * kvBlockSize_ * d.kvOut() * actBytes;
  kvBytes_ = static_cast<size_t>(d.numLayers) * 2 * kvNumBlocks_ * kvBlockSize_ * d.kvOut() * actBytes;
  kvCache_ = deviceAlloc(kvAllocBytes, "KV cache");
  weightBytes_ -= kvAllocBytes;  // deviceAlloc counts everything; the cache is reported separately
  cudaCheck(cudaMemset(kvCache_, 0, kvAllocBytes), "KV cache memset");

  loraSlots_ = init.loraSlots;
  if (init.loraSlots > 0) {
    TSLORA_CHECK(init.loraMaxRank > 0, "loraMaxRank must be positive when loraSlots > 0");
    lora::host::PoolConfig pc;
    pc.numSlots = init.loraSlots;
    pc.maxRank = init.loraMaxRank;
    pc.numLayers = d.numLayers;
    for (int m = 0; m < lora::host::kNumModules; ++m) pc.targets[m] = init.loraTargets[m];
    auto set = [&](lora::host::Module m, int in, std::vector<int> offsets) {
      lora::host::ModuleShape& sh = pc.shapes[static_cast<int>(m)];
      sh.in = in;
      sh.numSlices = static_cast<int>(offsets.size()) - 1;
      for (size_t i = 0; i < offsets.size(); ++i) sh.sliceOffsets[i] = offsets[i];
    };
    set(lora::host::Module::QKV, d.hidden, {0, d.qOut(), d.qOut() + d.kvOut(), d.qOut() + 2 * d.kvOut()});
    set(lora::host::Module::O, d.qOut(), {0, d.hidden});
    set(lora::host::Module::GateUp, d.hidden, {0, d.intermediate, 2 * d.intermediate});
    set(lora::host::Module::Down, d.intermediate, {0, d.hidden});
    set(lora::host::Module::Embed, d.vocab, {0, d.hidden});
    set(lora::host::Module::LmHead, d.hidden, {0, d.vocab});
    const lora::ActDType dtype = act_ == Act::BF16 ? lora::ActDType::BF16 : lora::ActDType::F16;
    // Every pool launch pays for its static segment maximum, so it stays small; larger steps run as passes.
    loraMaxSegments_ = kLoraSegmentsBase + init.loraSlots;
    loraMaxPassRows_ = std::min(kMaxStepTokens, 65535 / loraMaxSegments_ * 64);  // grid z = segments × 64-row tiles
    try {
      lora_ = std::make_unique<lora::DeviceLoraPool>(pc, dtype, kMaxStepTokens, loraMaxSegments_);
      loraOverlap_ = std::make_unique<LoraShrinkOverlap>();
      readSideExpandSwitches();
    } catch (const std::runtime_error& e) {
      if (dynamic_cast<const NativeError*>(&e)) throw;
      throw NativeError("native_cuda_error", e.what());
    }
  }
  // The uploads and memsets above ran on the legacy default stream, which the non-blocking compute stream does not
  // wait for: finish them before the first step.
  cudaCheck(cudaDeviceSynchronize(), "model upload");
}

CudaModel::~CudaModel() {
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  if (sideStream_) cudaStreamSynchronize(sideStream_);
  graphs_.clear();
  loraOverlap_.reset();
  lora_.reset();
  blas_.reset();
  for (void* p : allocations_) cudaFree(p);
  if (stream_) cudaStreamDestroy(stream_);
  if (sideStream_) cudaStreamDestroy(sideStream_);
}

void* CudaModel::deviceAlloc(size_t bytes, const char* what) {
  void* p = nullptr;
  cudaCheck(cudaMalloc(&p, std::max<size_t>(bytes, 1)), what);
  allocations_.push_back(p);
  weightBytes_ += bytes;
  return p;
}

void* CudaModel::uploadMatrix(const cpu::TensorSpec& s, int64_t rows, int64_t cols, void* dst) {
  const unsigned char* src = cpu::checkedMatrixData(s, files_, rows, cols);
  const size_t n = static_cast<size_t>(rows) * cols;
  if (!dst) dst = deviceAlloc(n * 2, "weights");
  const bool same = (s.type == cpu::WType::BF16 && act_ == Act::BF16) || (s.type == cpu::WType::F16 && act_ == Act::F16);
  if (same) {
    cudaCheck(cudaMemcpy(dst, src, n * 2, cudaMemcpyHostToDevice), "weight upload");
    return dst;
  }
  // Convert in slices of 16M elements (bounded host memory for large matrices).
  const size_t slice = size_t(1) << 24;
  std::vector<uint16_t> staging(std::min(n, slice));
  const lora::ActDType dtype = act_ == Act::BF16 ? lora::ActDType::BF16 : lora::ActDType::F16;
  for (size_t begin = 0; begin < n; begin += slice) {
    const size_t len = std::min(slice, n - begin);
    for (size_t i = 0; i < len; ++i) staging[i] = lora::actBitsOf(cpu::loadAsFloat(src, s.type, static_cast<int64_t>(begin + i)), dtype);
    cudaCheck(cudaMemcpy(static_cast<uint16_t*>(dst) + begin, staging.data(), len * 2, cudaMemcpyHostToDevice),
              "weight upload");
  }
  return dst;
}

float* CudaModel::uploadVector(const cpu::TensorSpec& s, int64_t n) {
  const std::vector<float> host = cpu::readVectorF32(s, files_, n);
  auto* dst = static_cast<float*>(deviceAlloc(n * sizeof(float), "norm / bias vector"));
  cudaCheck(cudaMemcpy(dst, host.data(), n * sizeof(float), cudaMemcpyHostToDevice), "vector upload");
  return dst;
}

void CudaModel::writeSlot(int slot, const lora::host::HostAdapter& adapter, bool side) {
  TSLORA_CHECK(lora_ != nullptr, "the model was created with loraSlots = 0: LoRA is disabled");
  std::lock_guard<std::mutex> lock(slotMutex_);
  cudaCheck(cudaSetDevice(device_), "cudaSetDevice");
  if (side) {  // the side-stream copies go behind every step enqueued so far (never inside a graph capture)
    std::lock_guard<std::mutex> steps(forwardMutex_);
    lora_->recordSlotReuse(stream_);
  }
  lora_->writeSlot(slot, adapter, side ? sideStream_ : stream_, side);
}

void CudaModel::clearSlot(int slot) {
  TSLORA_CHECK(lora_ != nullptr, "the model was created with loraSlots = 0: LoRA is disabled");
  std::lock_guard<std::mutex> lock(slotMutex_);
  cudaCheck(cudaSetDevice(device_), "cudaSetDevice");
  lora_->clearSlot(slot, stream_);
}

void CudaModel::copyKvBlocks(const int32_t* src, const int32_t* dst, int count) {
  std::lock_guard<std::mutex> lock(forwardMutex_);
  cudaCheck(cudaSetDevice(device_), "cudaSetDevice");
  const size_t blockBytes = static_cast<size_t>(kvBlockSize_) * dims_.kvOut() * 2;
  const size_t planeBytes = blockBytes * (kvNumBlocks_ + 1);  // one layer's K (or V), scratch block included
  auto* base = static_cast<char*>(kvCache_);
  for (int i = 0; i < count; ++i) {
    for (int plane = 0; plane < dims_.numLayers * 2; ++plane) {
      char* p = base + plane * planeBytes;
      cudaCheck(cudaMemcpyAsync(p + dst[i] * blockBytes, p + src[i] * blockBytes, blockBytes, cudaMemcpyDeviceToDevice,
                                stream_),
                "KV block copy");
    }
  }
  cudaCheck(cudaStreamSynchronize(stream_), "KV block copy");
}

}  // namespace tslora::cuda
