/**
 * Creates the model runner for the worker: picks the backend, sizes the KV cache from the memory flags, and
 * reports what was built. The only place in the engine that knows how the runner is constructed.
 */
import { loadNativeBackend, resolveDevice } from '../../binding/index.js';
import type { NativeHostAdapterHandle } from '../../binding/types.js';
import { ModelRunner } from '../model/runner.js';
import type { EngineInfo, EngineInit } from './messages.js';
import { chooseComputeDtype } from './compute-dtype.js';
import { cudaGraphMaxBatchSize } from './cuda-graph-size.js';
import { loraPoolBytes, loraPoolScaleBytes, sizeKvCache } from './kv-sizing.js';

export type HostAdapterHandle = NativeHostAdapterHandle;
export type EngineRunner = ModelRunner;

export async function createEngineRunner(init: EngineInit): Promise<{ runner: EngineRunner; info: EngineInfo }> {
  const device = resolveDevice(init.device);
  const backend = loadNativeBackend(device);
  const deviceInfo = backend.deviceInfo();
  const { dtype, warning: dtypeWarning } = chooseComputeDtype(init.dtype, init.spec.weightDtype, device);
  const bytesPerElement = dtype === 'f32' ? 4 : 2;
  const slots = init.lora.enabled ? init.lora.slots : 0;
  const loraPoolDtype = device === 'cpu' ? (init.lora.poolDtype ?? 'f32') : undefined;
  // The CPU pool's storage (--lora-pool-dtype): int8 codes plus their fp32 scales, bf16, or f32; the CUDA pool
  // follows the compute dtype (the flag is a CPU-pool option, ignored there like --kv-cache-dtype).
  const loraBytesPerElement = loraPoolDtype === 'int8' ? 1 : loraPoolDtype === 'bf16' ? 2 : bytesPerElement;
  const kvCacheDtype = device === 'cpu' && init.kvCacheDtype === 'bf16' ? 'bf16' : undefined;
  const loraBytes =
    slots > 0
      ? loraPoolBytes(init.spec, slots, init.lora.maxRank, init.lora.targetModules, loraBytesPerElement) +
        (loraPoolDtype === 'int8' ? loraPoolScaleBytes(init.spec, slots, init.lora.maxRank, init.lora.targetModules) : 0)
      : 0;
  const sizing = sizeKvCache({
    spec: init.spec,
    weights: init.weights,
    device,
    computeBytesPerElement: bytesPerElement,
    kvBytesPerElement: kvCacheDtype === 'bf16' ? 2 : bytesPerElement,
    totalMemoryBytes: deviceInfo.totalMemoryBytes,
    memFractionStatic: init.memFractionStatic,
    contextLength: init.contextLength,
    blockSize: init.kvBlockSize,
    maxRunningRequests: init.maxRunningRequests,
    loraPoolBytes: loraBytes,
    tpSize: init.tpSize,
  });
  const runner = new ModelRunner(
    { spec: init.spec, weights: init.weights },
    {
      backend,
      kvNumBlocks: sizing.numBlocks,
      kvBlockSize: init.kvBlockSize,
      loraSlots: slots,
      loraMaxRank: slots > 0 ? init.lora.maxRank : 0,
      loraTargetModules: slots > 0 ? init.lora.targetModules : [],
      loraBackend: init.lora.backend,
      maxLoraChunkSize: init.lora.chunkSize as 16 | 32 | 64 | 128,
      numThreads: init.numThreads,
      loraPoolDtype,
      kvCacheDtype,
      tpSize: init.tpSize,
      computeDtype: dtype,
      cudaGraphMaxBatchSize:
        device === 'cuda'
          ? cudaGraphMaxBatchSize({ disableCudaGraph: init.disableCudaGraph, cudaGraphMaxBs: init.cudaGraphMaxBs, maxRunningRequests: sizing.maxRunningRequests })
          : undefined,
    },
  );
  const memory = runner.memoryReport();
  return {
    runner,
    info: {
      device,
      deviceName: deviceInfo.name,
      numThreads: deviceInfo.numThreads,
      tpSize: init.tpSize,
      kvNumBlocks: sizing.numBlocks,
      kvBlockSize: init.kvBlockSize,
      maxRunningRequests: sizing.maxRunningRequests,
      weightBytes: memory.weightBytes,
      kvCacheBytes: memory.kvCacheBytes,
      loraPoolBytes: memory.loraPoolBytes,
      computeDtype: dtype,
      warnings: dtypeWarning ? [dtypeWarning] : [],
    },
  };
}
