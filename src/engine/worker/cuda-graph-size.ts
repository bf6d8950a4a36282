/**
 * The largest decode batch that replays a CUDA graph (spec e.10; decode-graph.cu). Graphs are on by default on the GPU,
 * as in SGLang: decode steps at small batch are launch-bound (hundreds of kernels per step), and a replay costs one
 * launch. Each graph bucket (1, 2, 4, 8, 16, 24, … up to the maximum) captures only launches over the engine's shared
 * step buffers, so the memory it holds is its own step tables (a few KB) and the graph itself; the maximum is bounded
 * by DEFAULT_CUDA_GRAPH_MAX_BS and by --max-running-requests (a larger batch never occurs).
 */
export const DEFAULT_CUDA_GRAPH_MAX_BS = 128;

export function cudaGraphMaxBatchSize(opts: { disableCudaGraph: boolean; cudaGraphMaxBs: number | null; maxRunningRequests: number }): number {
  if (opts.disableCudaGraph) return 0;
  if (opts.cudaGraphMaxBs !== null) return opts.cudaGraphMaxBs;
  return Math.max(1, Math.min(DEFAULT_CUDA_GRAPH_MAX_BS, opts.maxRunningRequests));
}
