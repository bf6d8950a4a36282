/**
 * The only place that loads .node files. Two differently named addons share one surface (types.ts):
 * tslora_cpu.node and tslora_cuda.node. node-gyp-build finds each: a local build first (build/Release from
 * `npm run build:native`; build-cuda/Release from `npm run build:cuda`), else the prebuilt binary shipped in the
 * package for this platform (prebuilds/<platform>-<arch>/ for the CPU, prebuilds/cuda/prebuilds/<platform>-<arch>/
 * for CUDA: its own root, so that node-gyp-build never mistakes one addon for the other). Native errors (Error with a
 * string `code`) become TsloraErrors here.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TsloraError, toTsloraError } from '../errors.js';
import type { DeviceInfo, NativeBackend, NativeDevice } from './types.js';

export type * from './types.js';

export type DeviceRequest = 'auto' | 'cpu' | 'cuda';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const requireNative = createRequire(import.meta.url);
const nodeGypBuild = requireNative('node-gyp-build') as { resolve(dir: string): string };

const ADDON_NAMES: Record<NativeDevice, string> = { cpu: 'tslora_cpu', cuda: 'tslora_cuda' };

/** Where node-gyp-build looks for each addon: `<root>/build/Release`, then `<root>/prebuilds/<platform>-<arch>`. */
const ADDON_ROOTS: Record<NativeDevice, string> = { cpu: packageRoot, cuda: join(packageRoot, 'prebuilds', 'cuda') };

/** The addon file to load, or null when there is neither a local build nor a prebuild for this platform. */
function addonPath(device: NativeDevice): string | null {
  if (device === 'cuda') {
    const built = [join(packageRoot, 'build-cuda', 'Release', 'tslora_cuda.node'), join(packageRoot, 'build-cuda', 'tslora_cuda.node')];
    const local = built.find((p) => existsSync(p));
    if (local) return local;
  }
  try {
    return nodeGypBuild.resolve(ADDON_ROOTS[device]);
  } catch {
    return null; // "No native build was found for platform=... arch=..."
  }
}

/** Raw addon object (the backend surface plus the CPU build's `testing` ops). */
interface RawAddon extends NativeBackend {
  testing?: NativeTestingOps;
}

const loaded = new Map<NativeDevice, RawAddon>();

function loadRaw(device: NativeDevice): RawAddon {
  const cached = loaded.get(device);
  if (cached) return cached;
  const path = addonPath(device);
  if (!path) {
    const how =
      device === 'cpu'
        ? 'Build it with `npm run build:native` (needs a C++17 compiler; node-gyp uses the installed Node headers).'
        : 'Build it on a machine with the CUDA toolkit and cuBLAS: `npm run build:cuda`, or run with --device cpu.';
    const where = `${process.platform}-${process.arch}`;
    throw new TsloraError('native', `The ${device.toUpperCase()} native addon (${ADDON_NAMES[device]}.node) is not built here and no prebuilt binary for ${where} ships in this package.`, {
      hint: how,
    });
  }
  let addon: RawAddon;
  try {
    addon = requireNative(path) as RawAddon;
  } catch (cause) {
    throw new TsloraError('native', `Cannot load the native addon ${path}: ${(cause as Error).message}`, {
      cause,
      hint: device === 'cpu' ? 'Rebuild it with `npm run build:native`.' : 'Rebuild it with `npm run build:cuda`, or run with --device cpu.',
    });
  }
  loaded.set(device, addon);
  return addon;
}

/** Maps a native Error (string `code`) to a TsloraError with the matching category. */
export function nativeErrorToTslora(value: unknown): TsloraError {
  if (value instanceof TsloraError) return value;
  const code = (value as { code?: unknown } | null)?.code;
  const message = value instanceof Error ? value.message : String(value);
  if (code === 'incompatible') return new TsloraError('incompatible', message, { cause: value });
  if (code === 'not_found') return new TsloraError('not_found', message, { cause: value });
  return toTsloraError(value);
}

function guard<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => {
    try {
      return fn(...args);
    } catch (error) {
      throw nativeErrorToTslora(error);
    }
  };
}

function guardAsync<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A): Promise<R> => {
    try {
      return await fn(...args);
    } catch (error) {
      throw nativeErrorToTslora(error);
    }
  };
}

/** Loads the addon for `device`; every entry point throws TsloraErrors. */
export function loadNativeBackend(device: NativeDevice): NativeBackend {
  const a = loadRaw(device);
  return {
    device,
    deviceInfo: guard(() => a.deviceInfo()),
    createModel: guard((options) => a.createModel(options)),
    destroyModel: guard((model) => a.destroyModel(model)),
    memoryReport: guard((model) => a.memoryReport(model)),
    forward: guard((model, step) => a.forward(model, step)),
    ...(typeof a.forwardLaunch === 'function' && typeof a.forwardWait === 'function'
      ? { forwardLaunch: guard((model, step) => a.forwardLaunch!(model, step)), forwardWait: guard((model) => a.forwardWait!(model)) }
      : {}),
    loadHostAdapter: guardAsync((model, adapter) => a.loadHostAdapter(model, adapter)),
    freeHostAdapter: guard((adapter) => a.freeHostAdapter(adapter)),
    hostAdapterSizeBytes: guard((adapter) => a.hostAdapterSizeBytes(adapter)),
    copyAdapterToSlot: guard((model, slot, adapter) => a.copyAdapterToSlot(model, slot, adapter)),
    copyAdapterToSlotAsync: guardAsync((model, slot, adapter) => a.copyAdapterToSlotAsync(model, slot, adapter)),
    clearSlot: guard((model, slot) => a.clearSlot(model, slot)),
    copyKvBlocks: guard((model, src, dst) => a.copyKvBlocks(model, src, dst)),
  };
}

/** Why the CUDA backend cannot run here, as a clause ("this installation has no CUDA addon"), or null when it can. */
function cudaUnavailableReason(): string | null {
  if (addonPath('cuda') === null) return `this installation has no CUDA addon (${ADDON_NAMES.cuda}.node)`;
  try {
    const info: DeviceInfo & { reason?: string } = loadNativeBackend('cuda').deviceInfo();
    return info.gpuCount > 0 ? null : `the CUDA addon found no GPU (${info.reason ?? 'no driver or no device'})`;
  } catch (error) {
    const cause = error instanceof TsloraError ? error.message : String(error);
    return `the CUDA addon could not be loaded: ${cause.replace(/\.$/, '')}`;
  }
}

/** auto = CUDA when the CUDA addon loads and reports a GPU, else CPU. */
export function resolveDevice(requested: DeviceRequest): NativeDevice {
  if (requested === 'cpu') return 'cpu';
  const reason = cudaUnavailableReason();
  if (reason === null) return 'cuda';
  if (requested === 'auto') return 'cpu';
  throw new TsloraError('usage', `--device cuda was requested, but ${reason}.`, {
    hint: 'Run with --device cpu (or auto). For a GPU: install on a Linux x64 machine with an NVIDIA driver, where the CUDA prebuild loads, or build it with `npm run build:cuda` (needs the CUDA toolkit with cuBLAS).',
    param: 'device',
  });
}

/** Single CPU ops for op-level tests (tslora_cpu.node only; not part of NativeBackend). */
export interface NativeTestingOps {
  ropeInverseFrequencies(rope: {
    headDim: number;
    theta: number;
    type: 'none' | 'linear' | 'llama3';
    factor?: number;
    lowFreqFactor?: number;
    highFreqFactor?: number;
    originalMaxPositionEmbeddings?: number;
  }): Float32Array;
  /** Rotates [numHeads * headDim] in place (rotate_half layout). */
  applyRope(heads: Float32Array, numHeads: number, headDim: number, position: number, invFreq: Float32Array): void;
  rmsNorm(x: Float32Array, w: Float32Array, eps: number): Float32Array;
  /** y[M, N] = x[M, K] · w[N, K]ᵀ with w given as raw bf16/f16 bits (Uint16Array) or f32. */
  gemm(x: Float32Array, M: number, w: Uint16Array | Int8Array | Float32Array, dtype: 'bf16' | 'f16' | 'f32' | 'int8', N: number, K: number, numThreads: number): Float32Array;
  sampleRow(
    logits: Float32Array,
    params: {
      sample?: boolean;
      temperature: number;
      topP: number;
      topK: number;
      minP: number;
      seedLo: number;
      seedHi: number;
      repetitionPenalty: number;
      frequencyPenalty: number;
      presencePenalty: number;
      penaltyTokenIds: Int32Array;
      penaltyOutputCounts: Int32Array;
      targetTokenId: number;
      /** Token ids that must not be drawn (min_new_tokens: EOS and stop ids before the minimum). */
      suppressTokenIds?: Int32Array;
      /** logit_bias: values added to these ids' penalised logits (distinct ids). */
      biasTokenIds?: Int32Array;
      biasValues?: Float32Array;
    },
    topLogprobsK: number,
  ): { token: number; sampledLogprob: number; targetLogprob: number; topIds: Int32Array; topLogprobs: Float32Array };
  uniformFromSeed(lo: number, hi: number): number;
  /** Parallel memcpy of sizeBytes with numThreads: best GB/s of `repeats`, counting bytes read + written. */
  copyBandwidth(sizeBytes: number, numThreads: number, repeats: number): number;
  /** Adapter conversions to the CPU LoRA pool's format so far in this process (one per host-tier entry). */
  loraSlotConversions(): number;
  /** The CPU kernels' instruction set in use, those this machine can run, and its CPU feature flags. */
  cpuKernelIsa(): { active: string; available: string[]; features: string; prefetchBytes: number; packMinRows: number };
  /** exp(a), or silu(a)·b ('swiglu'), by the active CPU kernel copy or (scalar) its one-lane twin. */
  rowKernel(kind: 'exp' | 'swiglu', a: Float32Array, b: Float32Array | null, scalar: boolean): Float32Array;
  /** Switches this process's CPU kernels to one of `cpuKernelIsa().available` (tests and benchmarks). */
  selectCpuKernelIsa(name: string): void;
  /** Batches of at least `rows` activation rows take the packed (prefill) GEMM; 0 = never (benchmarks, tests). */
  setGemmPackMinRows(rows: number): void;
  /** Whether single-slot LoRA shrinks ride along the base GEMM (default true; benchmarks and tests). */
  setLoraShrinkFusion(on: boolean): void;
  /** Whether a fused shrink's expand runs in the base GEMM's epilogue (default true; same bits either way). */
  setLoraExpandFusion(on: boolean): void;
  /** Whether the CPU LoRA expand runs its AVX-512 copy (where the CPU has it); returns whether it now does
   *  (without an argument: only that). selectCpuKernelIsa restores its kernel set's default. */
  setLoraWideExpand(on?: boolean): boolean;
  /** Chunks per thread of a CPU GEMM with an epilogue (a fused LoRA expand); 0 = chosen from the epilogue's bytes
   *  per thread, each chunk's at least minChunkBytes (512 KiB unless set). Returns the previous count (benchmarks). */
  setGemmEpilogueChunks(chunksPerThread: number, minChunkBytes?: number): number;
  /** Chunks per thread of a CPU GEMM without an epilogue, default 4 (benchmarks). */
  setGemmChunks(chunksPerThread: number): void;
  /** Which CPU GEMMs give each thread one contiguous run of columns in pieces (a late thread's rest taken by the
   *  others) instead of chunks claimed in turn: 0 none, 1 those without an epilogue, 2 all (a fused LoRA expand's
   *  too); returns the previous mode (benchmarks, tests). */
  setGemmOwnedRanges(mode: 0 | 1 | 2): number;
  /** Runs the owned-range schedule of a CPU GEMM over `totalBlocks` blocks on its own pool, the last owner starting
   *  only after the others finished: how often each block ran, and how many the late owner's own call ran (tests). */
  ownedRangesTrial(totalBlocks: number, numThreads: number, subRanges: number): { runs: Int32Array; lateRan: number };
  /** How the CPU decode GEMV prefetches the base weights and a fused LoRA shrink's A beyond one tile of rows ahead
   *  (bits: 1 = also into L2 twice as far ahead, 2 = nothing past the range's last row); returns the previous
   *  [base, own] (benchmarks, tests). */
  setGemmPrefetchFlags(baseFlags: number, ownFlags: number): [number, number];
  /** The CPU GEMM threads' time (ns, summed over threads) and weight bytes since the last call, by kind of range
   *  (base parts, parts with their own output = a fused LoRA shrink, the epilogue's wait for those, the epilogue =
   *  a fused LoRA expand), and the calling thread's wall time inside the GEMMs; then profiling on or off for the
   *  next steps (off by default). Benchmarks only. */
  gemmProfile(on: boolean): { baseNs: number; baseBytes: number; ownNs: number; ownBytes: number; awaitNs: number; epilogueNs: number; wallNs: number };
}

export function loadNativeTestingOps(): NativeTestingOps {
  const ops = loadRaw('cpu').testing;
  if (!ops) throw new TsloraError('native', 'This build of tslora_cpu.node has no testing ops.');
  const wrapped = {} as Record<string, unknown>;
  for (const [name, fn] of Object.entries(ops)) wrapped[name] = guard(fn as (...args: unknown[]) => unknown);
  return wrapped as unknown as NativeTestingOps;
}
